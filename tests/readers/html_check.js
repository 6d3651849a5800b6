// stoke's HTML report (-f html) in headless chromium, opened from disk:
//  - no request leaves the page (every request but the file itself is
//    intercepted, counted and aborted);
//  - searching FUNC highlights it and says how many nodes match;
//  - collapsing the parent of FUNC's first visible row hides that row,
//    expanding it shows it again;
//  - the flamegraph has boxes and zooms on a click; each thread has a
//    timeline, and the resource chart is there when recorded;
//  - no element came from a name (no <img>, no extra <script>), and the
//    names given as HOSTILE (optional) are shown as text.
// Prints one JSON line. A screenshot goes to SHOT when given.
//
//   node html_check.js FILE.html FUNC [SHOT.png] [HOSTILE]
'use strict';
const path = require('path');
const { launch } = require('./browser');

(async () => {
  const [file, func, shot, hostile] = process.argv.slice(2);
  const { browser, close } = await launch();
  const result = { requests: [] };
  try {
    const page = await browser.newPage();
    const url = 'file://' + path.resolve(file);
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.setRequestInterception(true);
    page.on('request', (req) => {
      if (req.url() === url) { req.continue(); return; }
      result.requests.push(req.url());
      req.abort();
    });
    await page.setViewport({ width: 1400, height: 1000 });
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForSelector('#calltree .row', { timeout: 20000 });
    result.title = await page.title();
    result.rows = await page.$$eval('#calltree .row', (r) => r.length);
    // search
    await page.type('#search', func);
    await page.waitForFunction(() => document.getElementById('search-count').textContent !== '',
      { timeout: 10000 });
    result.search_count = await page.$eval('#search-count', (e) => e.textContent);
    const hit = await page.evaluate((f) => {
      const rows = Array.from(document.querySelectorAll('#calltree .row.match'));
      const vis = rows.filter((r) => r.offsetParent !== null);
      const exact = vis.filter((r) => r.querySelector('.name').textContent === f);
      if (!exact.length) return null;
      const row = exact[0];
      // its parent row: the .row of the .node around the .kids it is in
      const kids = row.parentNode.parentNode;
      const prow = kids.classList.contains('kids') ? kids.parentNode.querySelector(':scope > .row') : null;
      return {
        pct: row.querySelector('.pct').textContent,
        id: row.dataset.id,
        parent_id: prow ? prow.dataset.id : null,
        parent_name: prow ? prow.querySelector('.name').textContent : null,
        flame_hits: document.querySelectorAll('#flame .fb.hit').length,
      };
    }, func);
    result.hit = hit;
    if (hit && hit.parent_id) {
      const visible = (id) => page.$eval(`#calltree .row[data-id="${id}"]`, (r) => r.offsetParent !== null);
      result.visible_before = await visible(hit.id);
      await page.click(`#calltree .row[data-id="${hit.parent_id}"] .tog`);
      result.visible_collapsed = await visible(hit.id);
      result.parent_visible_collapsed = await visible(hit.parent_id);
      await page.click(`#calltree .row[data-id="${hit.parent_id}"] .tog`);
      result.visible_expanded = await visible(hit.id);
    }
    // flamegraph: zoom on the widest box below the top row
    result.flame_boxes = await page.$$eval('#flame .fb', (b) => b.length);
    const box = await page.evaluate(() => {
      const b = Array.from(document.querySelectorAll('#flame .fb'))
        .filter((e) => e.style.top === '16px')
        .sort((x, y) => parseFloat(y.style.width) - parseFloat(x.style.width))[0];
      return b ? b.dataset.id : null;
    });
    if (box) {
      await page.click(`#flame .fb[data-id="${box}"]`);
      result.zoom_info = await page.$eval('#flame-info', (e) => e.textContent);
      await page.click('#flame-reset');
      result.reset_info = await page.$eval('#flame-info', (e) => e.textContent);
    }
    result.timelines = await page.$$eval('#timelines canvas', (c) => c.length);
    result.resource_chart = await page.$$eval('#resources canvas', (c) => c.length);
    result.summary = await page.$eval('#summary', (e) => e.textContent);
    result.img = await page.$$eval('img', (e) => e.length);
    result.scripts = await page.$$eval('script', (e) => e.length);
    if (hostile) {
      await page.$eval('#search', (e) => { e.value = ''; });
      await page.type('#search', hostile.slice(0, 12));
      result.hostile_shown = await page.evaluate((h) => Array.from(
        document.querySelectorAll('#calltree .row .name')).some((n) => n.textContent === h), hostile);
      result.img_after = await page.$$eval('img', (e) => e.length);
      result.xss = await page.evaluate(() => window.__pwned === true);
    }
    result.errors = errors;
    if (shot) await page.screenshot({ path: shot, fullPage: true });
  } finally {
    await close();
  }
  console.log(JSON.stringify(result));
})().catch((e) => { console.error(`FAIL: ${e.message}`); process.exit(1); });
