// The map page's 天地图 switcher in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core). Driven by tests/e2e/test_tianditu.py, which runs the app with a 天地图 key
// and a host override pointing at a stub tile server on 127.0.0.1:
//   node tianditu.mjs config.json results.json     config: {base, chromium, out}
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [configPath, resultsPath] = process.argv.slice(2);
const cfg = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const results = { errors: [], outside_requests: [] };
const save = () => fs.writeFileSync(resultsPath, JSON.stringify(results, null, 1));
fs.mkdirSync(cfg.out, { recursive: true });
const userDataDir = fs.mkdtempSync(path.join('/tmp', 'landlink-chromium-'));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: cfg.chromium, headless: true, viewport: { width: 1200, height: 800 }, locale: 'zh-CN',
  args: ['--no-sandbox', '--headless', '--disable-gpu', '--enable-unsafe-swiftshader', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage'],
});
try {
  await ctx.route((url) => url.hostname !== '127.0.0.1' && url.protocol.startsWith('http'), (route) => {
    results.outside_requests.push(route.request().url());
    return route.abort();
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.on('pageerror', (e) => results.errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && results.errors.push(m.text()));
  page.on('requestfailed', (r) => results.errors.push('failed ' + r.url()));
  await page.goto(cfg.base + '/', { waitUntil: 'load' });
  await page.waitForFunction(() => window.__landlink && window.__landlink.ready, null, { timeout: 60000 });
  results.switcher = await page.locator('.tdt-switcher').innerText();
  results.attribution_before = await page.locator('.maplibregl-ctrl-attrib-inner').innerText();
  await page.locator('.tdt-switcher input[value=img]').check();
  await page.waitForFunction(() => window.__landlink.tianditu === 'img', null, { timeout: 10000 });
  await page.waitForFunction(() => window.__landlink.map.areTilesLoaded(), null, { timeout: 30000 });
  await page.waitForTimeout(500);
  results.attribution_after = await page.locator('.maplibregl-ctrl-attrib-inner').innerText();
  results.checked = await page.locator('.tdt-switcher input:checked').getAttribute('value');
  await page.screenshot({ path: path.join(cfg.out, 'tianditu-img.png') });
  results.ok = true;
} catch (e) {
  results.error = String(e && e.stack ? e.stack : e);
  try {
    const page = ctx.pages()[0];
    results.state = await page.evaluate(() => JSON.stringify({ errors: window.__landlink.errors, t: window.__landlink.timings }));
    await page.screenshot({ path: path.join(cfg.out, 'tianditu-failed.png') });
  } catch (e2) {
    /* no page */
  }
} finally {
  save();
  await ctx.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
