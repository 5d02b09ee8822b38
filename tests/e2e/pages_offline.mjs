// Loads pages in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core) and
// records every request each page makes. Driven by tests/e2e/test_pages_offline.py:
//   node pages_offline.mjs config.json results.json
// config: {chromium, tmp, out, pages: [{name, url, ready}]}, where ready says when the page has
// rendered: {selector, min} (that many elements), or {map: true} (the map page's ready flag). results: {name: {ok, error,
// requests: [url], failed: [url status], outside: [url], console_errors: [text]}}.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [configPath, resultsPath] = process.argv.slice(2);
const cfg = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const results = {};
const save = () => fs.writeFileSync(resultsPath, JSON.stringify(results, null, 1));
fs.mkdirSync(cfg.out, { recursive: true });

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  args: [
    '--no-sandbox', '--headless', '--disable-gpu', '--enable-unsafe-swiftshader',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic', '--disable-dev-shm-usage',
  ],
});
try {
  for (const p of cfg.pages) {
    const origin = new URL(p.url).origin;
    const r = (results[p.name] = { ok: false, requests: [], failed: [], outside: [], console_errors: [] });
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('request', (q) => {
      const u = new URL(q.url());
      if (['data:', 'blob:'].includes(u.protocol)) return;
      r.requests.push(q.url());
      if (u.origin !== origin) r.outside.push(q.url());
    });
    page.on('requestfailed', (q) => r.failed.push(`${q.url()} ${q.failure() && q.failure().errorText}`));
    page.on('response', (s) => s.status() >= 400 && r.failed.push(`${s.url()} ${s.status()}`));
    page.on('console', (m) => m.type() === 'error' && r.console_errors.push(m.text()));
    page.on('pageerror', (e) => r.console_errors.push(`pageerror ${e.message}`));
    try {
      await page.goto(p.url, { waitUntil: 'load', timeout: 60000 });
      // a function, not a string: the documentation pages' CSP forbids eval
      await page.waitForFunction(
        (w) => (w.selector ? document.querySelectorAll(w.selector).length >= w.min : window.__landlink && window.__landlink.ready === true),
        p.ready,
        { timeout: 60000 },
      );
      await page.waitForLoadState('networkidle', { timeout: 30000 }).catch(() => {});
      r.ok = true;
    } catch (e) {
      r.error = String(e && e.message ? e.message : e);
    }
    try {
      await page.screenshot({ path: path.join(cfg.out, `${p.name}.png`) });
    } catch (e) {
      /* no screenshot */
    }
    await context.close();
    save();
  }
} finally {
  await browser.close();
  save();
}
