// stoke serve in a real browser (headless chromium through puppeteer-core),
// as a user clicks through it:
//   node serve_check.js CONFIG.json
// CONFIG: { url, shots (screenshot directory), base_cmd, new_cmd (the
// command lines of two runs), top_fn, top_self (what `stoke top` says of
// base), top_caller (its caller), leaf_grew (the function whose share grew from base to new),
// fail_max, pass_max (gate thresholds that fail and pass), launch_cmd }.
// Prints one "ok ..." line per step; exits 1 with "FAIL: ..." otherwise.
'use strict';
const fs = require('fs');
const path = require('path');
const { launch } = require('./browser');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const base = new URL(cfg.url).origin;

function fail(msg) { throw new Error(msg); }
async function shot(page, name) {
  await page.screenshot({ path: path.join(cfg.shots, name + '.png'), fullPage: true });
}
async function waitFor(what, fn, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
// The id of the run whose command line is cmd, from the runs table.
async function runId(page, cmd) {
  const ids = await page.$$eval('#runs tr.run', (rows, c) => rows
    .filter((r) => r.cells[1].textContent.trim() === c)
    .map((r) => r.cells[6].textContent.trim()), cmd);
  if (ids.length !== 1) fail(`expected one run of "${cmd}", found ${ids.length}`);
  return ids[0];
}

(async () => {
  fs.mkdirSync(cfg.shots, { recursive: true });
  const { browser, close } = await launch();
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1000 });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));

    // 1. The printed URL: the token becomes a cookie, the runs are listed.
    const resp = await page.goto(cfg.url, { waitUntil: 'load' });
    if (resp.status() !== 200) fail(`the printed URL gave ${resp.status()}`);
    if (page.url() !== base + '/') fail(`the token stayed in the address: ${page.url()}`);
    const nruns = await page.$$eval('#runs tr.run', (r) => r.length);
    if (nruns !== 2) fail(`the runs list has ${nruns} rows, not 2`);
    await shot(page, '1-runs');
    // Filter: only the base run stays visible.
    await page.type('#filter', cfg.base_cmd);
    const visible = await page.$$eval('#runs tr.run', (rows) => rows
      .filter((r) => r.style.display !== 'none').map((r) => r.cells[1].textContent.trim()));
    if (visible.length !== 1 || visible[0] !== cfg.base_cmd)
      fail(`the filter left ${JSON.stringify(visible)}`);
    await page.$eval('#filter', (i) => { i.value = ''; i.dispatchEvent(new Event('input')); });
    // Sort by samples, both ways: the rows follow the numbers.
    const samplesTh = '#runs thead th:nth-child(3)';
    const order = async () => page.$$eval('#runs tr.run', (rows) => rows.map((r) => Number(r.cells[2].dataset.v)));
    await page.click(samplesTh);
    const up = await order();
    await page.click(samplesTh);
    const down = await order();
    if (!(up[0] <= up[1]) || !(down[0] >= down[1]) || up[0] !== down[1])
      fail(`sorting by samples gave ${JSON.stringify(up)} then ${JSON.stringify(down)}`);
    console.log('ok runs list (2 runs, filter, sort)');

    // 2. Click the base run: its top function and share are stoke top's.
    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.$$eval('#runs tr.run', (rows, c) => rows
        .find((r) => r.cells[1].textContent.trim() === c).querySelector('a').click(), cfg.base_cmd),
    ]);
    const top = await page.$eval('#top tbody tr', (r) => ({
      fn: r.querySelector('.fn').textContent, self: r.querySelector('.self').textContent,
      callers: r.cells[6].textContent }));
    if (top.fn !== cfg.top_fn || top.self !== cfg.top_self)
      fail(`run page top: ${top.fn} ${top.self}; stoke top: ${cfg.top_fn} ${cfg.top_self}`);
    if (!top.callers.includes(cfg.top_caller))
      fail(`the top function's callers "${top.callers}" lack ${cfg.top_caller}`);
    console.log(`ok run page top function ${top.fn} ${top.self} (as stoke top), called by ${top.callers}`);
    // The flame graph and speedscope's timeline load.
    const flame = await page.$eval('#flame', (o) => o.getAttribute('data'));
    const fr = await page.evaluate(async (u) => {
      const r = await fetch(u); return { status: r.status, text: await r.text() };
    }, flame);
    if (fr.status !== 200 || !fr.text.includes(cfg.top_fn)) fail(`flame graph: ${fr.status}`);
    const frame = await waitFor('the speedscope frame', async () => {
      const f = page.frames().find((x) => x.url().includes('/speedscope/index.html'));
      if (!f) return null;
      const t = await f.title().catch(() => '');
      return t.endsWith(' - speedscope') ? t : null;
    }, 60000);
    console.log(`ok flame graph and speedscope timeline ("${frame}")`);
    await shot(page, '2-run');

    // 3. The call graph (graphviz), at the default thresholds.
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#callgraph-open')]);
    await page.waitForSelector('#callgraph', { timeout: 30000 });
    const img = await waitFor('the call graph image', () => page.$eval('#callgraph',
      (i) => (i.complete && i.naturalWidth > 0 ? { w: i.naturalWidth, src: i.getAttribute('src') } : null)), 60000);
    const svg = await page.evaluate(async (u) => (await fetch(u)).text(), img.src);
    if (!svg.includes('<svg') || !svg.includes(cfg.top_fn)) fail('the call graph lacks the top function');
    console.log(`ok call graph (${img.w} px wide, names ${cfg.top_fn})`);
    await shot(page, '3-callgraph');

    // 4. Compare base and new; the gate at two thresholds.
    for (const [max, want] of [[cfg.fail_max, 'FAIL'], [cfg.pass_max, 'PASS']]) {
      await page.goto(base + '/', { waitUntil: 'load' });
      const a = await runId(page, cfg.base_cmd);
      const b = await runId(page, cfg.new_cmd);
      await page.select('#cmp-a', a);
      await page.select('#cmp-b', b);
      await page.$eval('#cmp-max', (i, v) => { i.value = v; }, String(max));
      await Promise.all([page.waitForNavigation({ waitUntil: 'load' }),
        page.click('#compare button[type=submit]')]);
      const verdict = await page.$eval('#verdict', (p) => p.textContent);
      if (!verdict.startsWith(want)) fail(`gate at ${max} points: "${verdict}", expected ${want}`);
      if (want === 'FAIL') {
        const bad = await page.$eval('#regressions', (u) => u.textContent);
        if (!bad.includes(cfg.leaf_grew)) fail(`the regressions do not name ${cfg.leaf_grew}: ${bad}`);
        await shot(page, '4-compare-fail');
      } else {
        await shot(page, '5-compare-pass');
      }
      console.log(`ok compare at ${max} points: ${verdict}`);
    }

    // 5. Launch a record from the page; the job shows progress, then the run.
    await page.goto(base + '/', { waitUntil: 'load' });
    await page.type('#launch-command', cfg.launch_cmd);
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }),
      page.click('#launch-record button[type=submit]')]);
    if (!page.url().startsWith(base + '/jobs')) fail(`the launch landed on ${page.url()}`);
    const state = await page.$eval('.job .state', (p) => p.textContent);
    console.log(`ok launched: ${state}`);
    await shot(page, '6-job');
    // The jobs page reloads itself each second while the job runs.
    await waitFor('the launched run', async () => {
      try { return await page.$('a.new-run'); } catch (e) { return null; }
    }, 120000);
    const done = await page.$eval('.job .state', (p) => p.textContent);
    if (!done.startsWith('done')) fail(`the job ended: ${done}`);
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('a.new-run')]);
    const h1 = await page.$eval('h1', (h) => h.textContent);
    if (h1 !== cfg.launch_cmd) fail(`the new run is "${h1}", not "${cfg.launch_cmd}"`);
    await page.goto(base + '/', { waitUntil: 'load' });
    const after = await page.$$eval('#runs tr.run', (r) => r.length);
    if (after !== 3) fail(`the runs list has ${after} rows after the launch, not 3`);
    await shot(page, '7-launched');
    console.log('ok launched record appears in the runs list');

    // 6. Without the token (a fresh browser context: no cookie): 403.
    const ctx = await browser.createBrowserContext();
    const p2 = await ctx.newPage();
    const r2 = await p2.goto(base + '/', { waitUntil: 'load' });
    if (r2.status() !== 403) fail(`without the token: ${r2.status()}`);
    await p2.screenshot({ path: path.join(cfg.shots, '8-no-token.png') });
    await ctx.close();
    console.log('ok no token: 403');
    if (errors.length) fail(`page errors: ${errors.join('; ')}`);
  } finally {
    await close();
  }
})().catch((e) => { console.error(`FAIL: ${e.message}`); process.exit(1); });
