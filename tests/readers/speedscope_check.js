// The speedscope check with speedscope's own code:
//  1. the JSON schema shipped in the npm package (ajv), then
//  2. speedscope's importer: the release build opened in headless chromium,
//     the file uploaded through its file input, and the page title must
//     become "<name> - speedscope" (an unknown or broken file shows an alert
//     instead). The flattened frame names are printed for the caller.
//
//   node speedscope_check.js FILE...     exit 0 when every file loads
'use strict';
const fs = require('fs');
const path = require('path');
const Ajv = require('ajv');
const { launch } = require('./browser');

const pkg = path.dirname(require.resolve('speedscope/package.json'));
const release = path.join(pkg, 'dist', 'release');

function schemaCheck(file) {
  const schema = JSON.parse(fs.readFileSync(path.join(release, 'file-format-schema.json'), 'utf8'));
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(schema);
  const data = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!validate(data))
    throw new Error(`${file}: schema: ${ajv.errorsText(validate.errors)}`);
  return data;
}

async function importCheck(browser, file) {
  const page = await browser.newPage();
  let alert = null;
  page.on('dialog', async (d) => { alert = d.message(); await d.dismiss(); });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto('file://' + path.join(release, 'index.html'), { waitUntil: 'load' });
  const input = await page.waitForSelector('input[type=file]', { timeout: 30000 });
  await input.uploadFile(path.resolve(file));
  const deadline = Date.now() + 30000;
  let title = '';
  while (Date.now() < deadline) {
    title = await page.title();
    if (alert) throw new Error(`${file}: speedscope refused it: ${alert}`);
    if (title.endsWith(' - speedscope')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!title.endsWith(' - speedscope'))
    throw new Error(`${file}: speedscope did not load it (title "${title}"; ${errors.join('; ')})`);
  await page.close();
  return title;
}

(async () => {
  const files = process.argv.slice(2);
  for (const f of files) schemaCheck(f);
  const { browser, close } = await launch();
  try {
    for (const f of files) {
      const title = await importCheck(browser, f);
      console.log(`ok ${f}: ${title}`);
    }
  } finally {
    await close();
  }
})().catch((e) => { console.error(`FAIL: ${e.message}`); process.exit(1); });
