// The interactive SVG flamegraph in headless chromium:
//  - ?s=REGEX runs the search on load and shows "Matched: X%";
//  - the Search control (through its prompt) does the same;
//  - clicking a box zooms (Reset Zoom appears, the URL keeps ?x=&y=) and
//    Reset Zoom undoes it.
// Prints one JSON line: {matched, prompt_matched, zoomed, reset}.
//
//   node svg_check.js FILE.svg REGEX
'use strict';
const path = require('path');
const { launch } = require('./browser');

(async () => {
  const [file, regex] = process.argv.slice(2);
  const { browser, close } = await launch();
  const result = {};
  try {
    const page = await browser.newPage();
    const url = 'file://' + path.resolve(file);
    await page.goto(url + '?s=' + encodeURIComponent(regex), { waitUntil: 'load' });
    const text = (sel) => page.$eval(sel, (e) => ({
      text: e.textContent, hidden: e.classList.contains('hide') }));
    result.matched = (await text('#matched')).text;
    // the same through the Search control and its prompt
    await page.goto(url, { waitUntil: 'load' });
    page.once('dialog', (d) => d.accept(regex));
    await page.click('#search');
    await page.waitForFunction(() => !document.getElementById('matched').classList.contains('hide'),
      { timeout: 10000 });
    result.prompt_matched = (await text('#matched')).text;
    result.search_url = new URL(page.url()).searchParams.get('s');
    // zoom into the widest box below the root, then reset
    const target = await page.evaluate(() => {
      const rects = Array.from(document.querySelectorAll('g.f rect'))
        .filter((r) => r.getAttributeNS('urn:stoke:flamegraph', 'd') === '1');
      rects.sort((a, b) => b.getAttribute('width') - a.getAttribute('width'));
      return rects.length ? rects[0].parentNode.querySelector('title').textContent : null;
    });
    if (target) {
      const boxes = await page.$$('g.f');
      for (const b of boxes) {
        const t = await b.$eval('title', (e) => e.textContent);
        if (t === target) { await b.click(); break; }
      }
      result.zoomed = !(await text('#unzoom')).hidden;
      result.zoom_url = new URL(page.url()).search;
      await page.click('#unzoom');
      result.reset = (await text('#unzoom')).hidden;
    }
  } finally {
    await close();
  }
  console.log(JSON.stringify(result));
})().catch((e) => { console.error(`FAIL: ${e.message}`); process.exit(1); });
