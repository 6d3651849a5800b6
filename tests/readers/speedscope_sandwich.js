// speedscope's own view of a file: the release build in headless chromium
// imports it, the Sandwich view is opened, and its table (Total, Self,
// Symbol Name) is printed as JSON: [[name, self_ns, total_ns], ...] for the
// first profile, as many rows as the table renders (the heaviest first).
//
//   node speedscope_sandwich.js FILE
'use strict';
const path = require('path');
const { launch } = require('./browser');

const pkg = path.dirname(require.resolve('speedscope/package.json'));
const release = path.join(pkg, 'dist', 'release');
const UNITS = { ns: 1, 'µs': 1e3, us: 1e3, ms: 1e6, s: 1e9, min: 60e9, h: 3600e9 };

function ns(cell) {
  const m = /^([\d.]+)\s*([a-zµ]+)/.exec(cell.trim());
  if (!m || !(m[2] in UNITS)) throw new Error(`cannot read the time "${cell}"`);
  return parseFloat(m[1]) * UNITS[m[2]];
}

(async () => {
  const file = process.argv[2];
  const { browser, close } = await launch();
  try {
    const page = await browser.newPage();
    let alert = null;
    page.on('dialog', async (d) => { alert = d.message(); await d.dismiss(); });
    await page.goto('file://' + path.join(release, 'index.html'), { waitUntil: 'load' });
    const input = await page.waitForSelector('input[type=file]', { timeout: 30000 });
    await input.uploadFile(path.resolve(file));
    await page.waitForFunction(() => document.title.endsWith(' - speedscope'), { timeout: 30000 })
      .catch(() => { throw new Error(`speedscope did not load ${file}: ${alert}`); });
    const clicked = await page.evaluate(() => {
      const tab = Array.from(document.querySelectorAll('div'))
        .find((e) => /Sandwich$/.test(e.textContent.trim()) && e.children.length <= 1);
      if (tab) tab.click();
      return !!tab;
    });
    if (!clicked) throw new Error('no Sandwich tab');
    await page.waitForFunction(() => document.querySelectorAll('tr').length > 1, { timeout: 30000 });
    const rows = await page.evaluate(() => Array.from(document.querySelectorAll('tr'))
      .map((tr) => Array.from(tr.children).map((td) => td.textContent)));
    // Header rows ("Total", "Self", "Symbol Name", with or without a sort
    // arrow, and in any order a loaded machine renders them) are the rows
    // whose time cells are not times.
    const isTime = (c) => /^[\d.]+\s*[a-zµ]+/.test(c.trim());
    const out = rows.filter((r) => r.length === 3 && isTime(r[0]) && isTime(r[1]))
      .map((r) => [r[2], ns(r[1]), ns(r[0])]);
    if (!out.length) throw new Error(`no rows in the Sandwich table: ${JSON.stringify(rows.slice(0, 3))}`);
    console.log(JSON.stringify(out));
  } finally {
    await close();
  }
})().catch((e) => { console.error(String(e)); process.exit(1); });
