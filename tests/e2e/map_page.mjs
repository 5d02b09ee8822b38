// End-to-end run of the map page in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core: no browser download). Driven by tests/e2e/test_map_page.py, which starts the
// app against the test database loaded with the sample city and passes a JSON config:
//   node map_page.mjs config.json results.json
// config: {base, token, out, chromium, cases: {...}}. Each step records {ok, ...} in results.json;
// the pytest side asserts on them. Screenshots go to config.out.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [configPath, resultsPath] = process.argv.slice(2);
const cfg = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const cases = cfg.cases;
const results = { steps: {}, console_errors: [], outside_requests: [], requests: 0 };
const save = () => fs.writeFileSync(resultsPath, JSON.stringify(results, null, 1));
fs.mkdirSync(cfg.out, { recursive: true });

const ARGS = [
  '--no-sandbox', '--headless', '--disable-gpu', '--enable-unsafe-swiftshader',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--disable-quic', '--disable-dev-shm-usage',
];
const userDataDir = fs.mkdtempSync(path.join(cfg.tmp || '/tmp', 'landlink-chromium-'));

let currentPage = null;
async function step(name, fn) {
  const t0 = Date.now();
  try {
    const detail = (await fn()) || {};
    results.steps[name] = Object.assign({ ok: true, ms: Date.now() - t0 }, detail);
  } catch (e) {
    results.steps[name] = { ok: false, ms: Date.now() - t0, error: String(e && e.stack ? e.stack : e) };
    try {
      await currentPage.screenshot({ path: path.join(cfg.out, `failed-${name}.png`) });
    } catch (e2) {
      /* no page */
    }
  }
  save();
}

function watch(page, label) {
  const responses = [];
  page.on('console', (m) => {
    if (m.type() === 'error') results.console_errors.push(`${label}: ${m.text()} @ ${JSON.stringify(m.location())}`);
  });
  page.on('pageerror', (e) => results.console_errors.push(`${label}: pageerror ${e.message}`));
  page.on('request', (r) => {
    results.requests += 1;
    const u = new URL(r.url());
    if (!['data:', 'blob:'].includes(u.protocol) && u.hostname !== '127.0.0.1') results.outside_requests.push(r.url());
  });
  page.on('response', async (r) => {
    const ct = r.headers()['content-type'] || '';
    if (ct.includes('json')) {
      try {
        responses.push({ url: r.url(), body: await r.text() });
      } catch (e) {
        /* body gone (navigation) */
      }
    }
  });
  return responses;
}

async function ready(page) {
  await page.waitForFunction(() => window.__landlink && window.__landlink.ready, null, { timeout: 60000 });
}

/** Wait until the map has drawn everything it asked for (at most 30 s: then say so). */
async function idle(page) {
  const ok = await page.evaluate(
    () => new Promise((res) => {
      const m = window.__landlink.map;
      const t = setTimeout(() => res(false), 30000);
      m.once('idle', () => {
        clearTimeout(t);
        res(true);
      });
      m.triggerRepaint();
    })
  );
  if (!ok) throw new Error('the map did not finish drawing within 30 s');
}

/** A promise in the page resolved by the map's next moveend (or after 15 s). */
function nextMoveEnd(page) {
  return page.evaluate(
    () => new Promise((res) => {
      const t = setTimeout(() => res(false), 15000);
      window.__landlink.map.once('moveend', () => {
        clearTimeout(t);
        res(true);
      });
    })
  );
}

/** Share of map pixels (from a real screenshot) that differ from the background colour. */
async function paintedShare(page, file) {
  const png = await page.locator('#map').screenshot({ path: file });
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = 'data:image/png;base64,' + b64;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width;
    c.height = img.height;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    const bg = [0xf4, 0xf1, 0xea];
    let painted = 0;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4) {
      const diff = Math.abs(d[i] - bg[0]) + Math.abs(d[i + 1] - bg[1]) + Math.abs(d[i + 2] - bg[2]);
      if (diff > 24) painted += 1;
      if (i % 64 === 0) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
    return { share: painted / (d.length / 4), colours: colours.size };
  }, png.toString('base64'));
}

/** Fly the map to a lon/lat box and click the pixel of the given lon/lat. */
async function clickAt(page, bbox, lonlat) {
  await page.evaluate((b) => window.__landlink.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 120, duration: 0, maxZoom: 17 }), bbox);
  await idle(page);
  const pt = await page.evaluate((c) => window.__landlink.map.project(c), lonlat);
  const box = await page.locator('#map').boundingBox();
  await page.mouse.click(box.x + pt.x, box.y + pt.y);
}

// a fresh profile (--user-data-dir) every run
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: cfg.chromium, args: ARGS, headless: true,
  viewport: { width: 1400, height: 900 }, acceptDownloads: true, locale: 'zh-CN',
});
try {
  // ---------------------------------------------------------------- public view
  // nothing may leave this machine: anything not for 127.0.0.1 is recorded and refused
  await ctx.route((url) => url.hostname !== '127.0.0.1' && url.protocol.startsWith('http'), (route) => {
    results.outside_requests.push(route.request().url());
    return route.abort();
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  currentPage = page;
  const publicResponses = watch(page, 'public');

  await step('load', async () => {
    const t0 = Date.now();
    await page.goto(cfg.base + '/', { waitUntil: 'load' });
    await ready(page);
    const info = await page.evaluate(() => ({ timings: window.__landlink.timings, mode: window.__landlink.mode, errors: window.__landlink.errors }));
    return Object.assign(info, { wall_ms: Date.now() - t0 });
  });

  await step('tiles_render', async () => {
    await idle(page);
    const whole = await paintedShare(page, path.join(cfg.out, '01-city.png'));
    // zoom to the planted idle parcel's platform: parcels must draw there too
    await page.evaluate((b) => window.__landlink.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 200, duration: 0 }), cases.idle_parcel.bbox);
    await idle(page);
    const close = await paintedShare(page, path.join(cfg.out, '02-parcels.png'));
    return { city: whole, parcels: close };
  });

  await step('print', async () => {
    // 打印: the view's bbox and the layers switched on go to /api/print; A3 landscape chosen
    await page.evaluate((b) => window.__landlink.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 40, duration: 0 }), cases.city_bbox);
    await idle(page);
    const view = await page.evaluate(() => {
      const b = window.__landlink.map.getBounds();
      return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
    });
    await page.selectOption('#print-size', 'A3');
    await page.selectOption('#print-orientation', 'landscape');
    await page.fill('#print-title', '全市工业用地');
    // (Chromium shows a noopener tab once the PDF starts to arrive: the render took 16 s on a
    // slow machine, so the wait is generous: this test checks that the tab opens, not how soon)
    const popup = ctx.waitForEvent('page', { timeout: 90000 }).catch(() => null);
    await page.click('#print-button');
    const tab = await popup;
    const url = await page.evaluate(() => window.__landlink.lastPrint);
    if (tab) await tab.close().catch(() => {});
    const pdf = await page.evaluate(async (u) => {
      const r = await fetch(u);
      const b = new Uint8Array(await r.arrayBuffer());
      return { status: r.status, type: r.headers.get('content-type'), head: String.fromCharCode(...b.slice(0, 5)), bytes: b.length };
    }, url);
    return { url, view, opened: !!tab, pdf };
  });

  await step('search_enterprise', async () => {
    const e = cases.enterprise;
    const flew = nextMoveEnd(page);
    await page.fill('#search-q', e.name);
    await page.press('#search-q', 'Enter');
    await page.waitForFunction((u) => window.__landlink.lastSearch && window.__landlink.lastSearch.id === u, e.uscc, { timeout: 15000 });
    await flew;
    await idle(page);
    const center = await page.evaluate(() => window.__landlink.map.getCenter().toArray());
    const hit = await page.evaluate(() => window.__landlink.lastSearch);
    await page.screenshot({ path: path.join(cfg.out, '03-search-enterprise.png') });
    // and by USCC
    await page.evaluate(() => (window.__landlink.lastSearch = null));
    const moved = nextMoveEnd(page);
    await page.fill('#search-q', e.uscc);
    await page.press('#search-q', 'Enter');
    await page.waitForFunction((u) => window.__landlink.lastSearch && window.__landlink.lastSearch.id === u, e.uscc, { timeout: 15000 });
    await moved;
    return { hit, center, by_uscc: await page.evaluate(() => window.__landlink.lastSearch.id) };
  });

  await step('click_idle_parcel', async () => {
    const c = cases.idle_parcel;
    await page.evaluate(() => document.querySelector('#dossier-close').click());
    await clickAt(page, c.bbox, c.center);
    await page.waitForSelector(`#dossier-body[data-parcel="${c.parcel_no}"]`, { timeout: 15000 });
    const got = await page.evaluate(() => ({
      parcel: document.querySelector('#dossier-body').dataset.parcel,
      chain: document.querySelector('#dossier-body').dataset.chain,
      idle_status: (document.querySelector('#dossier-body .idle-status') || {}).dataset?.status,
      here: (document.querySelector('#dossier .chain .step.here') || {}).textContent,
      text: document.querySelector('#dossier-body').innerText,
    }));
    await idle(page);
    await page.screenshot({ path: path.join(cfg.out, '04-dossier-idle.png') });
    return got;
  });

  await step('public_no_tax', async () => {
    const c = cases.tax_parcel;
    await page.fill('#search-q', c.parcel_no);
    await page.press('#search-q', 'Enter');
    await page.waitForSelector(`#dossier-body[data-parcel="${c.parcel_no}"]`, { timeout: 15000 });
    await idle(page);
    await page.screenshot({ path: path.join(cfg.out, '05-public-dossier.png') });
    const taxRadioDisabled = await page.locator('input[name=colour-parcels][value=tax]').isDisabled();
    const text = await page.locator('#dossier-body').innerText();
    const bodies = publicResponses.map((r) => r.body);
    const leaks = bodies
      .map((b, i) => (/"(tax_paid|tax_per_mu|energy_tce|emissions_t)"\s*:\s*-?\d/.test(b) ? publicResponses[i].url : null))
      .filter(Boolean);
    return {
      text,
      chart: await page.locator('#tax-chart').count(),
      locked: await page.locator('#tax-locked').count(),
      tax_radio_disabled: taxRadioDisabled,
      leaks,
      json_responses: bodies.length,
    };
  });

  await step('reserve_filter', async () => {
    await page.click('.tabs button[data-tab=reserve]');
    await page.waitForFunction(() => window.__landlink.reserve, null, { timeout: 15000 });
    if ((await page.inputValue('#reserve-form select[name=kind]')) !== 'idle') {
      await page.selectOption('#reserve-form select[name=kind]', 'idle');
    }
    await page.selectOption('#reserve-form select[name=status]', 'idle');
    await page.evaluate(() => (window.__landlink.reserve = null));
    await page.click('#reserve-form button[type=submit]');
    await page.waitForFunction(() => window.__landlink.reserve && window.__landlink.reserve.kind === 'idle', null, { timeout: 15000 });
    const r = await page.evaluate(() => window.__landlink.reserve);
    const rows = await page.locator('#reserve-list tr.row').count();
    await page.evaluate((b) => window.__landlink.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 20, duration: 0 }), cases.city_bbox);
    await idle(page);
    await page.screenshot({ path: path.join(cfg.out, '06-reserve-idle.png') });
    return { keys: r.keys, total: r.total, rows };
  });

  await step('reserve_rectangle', async () => {
    // a rectangle drawn around the planted idle parcel finds its supply record
    const c = cases.idle_parcel;
    await page.evaluate(() => document.querySelector('#dossier-close').click());
    await page.evaluate((b) => window.__landlink.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 150, duration: 0, maxZoom: 17 }), c.bbox);
    await idle(page);
    await page.click('.draw button[data-draw=rect]');
    const box = await page.locator('#map').boundingBox();
    const a = await page.evaluate((b) => window.__landlink.map.project([b[0], b[1]]), c.bbox);
    const b = await page.evaluate((b) => window.__landlink.map.project([b[2], b[3]]), c.bbox);
    await page.evaluate(() => (window.__landlink.reserve = null));
    await page.mouse.click(box.x + a.x - 30, box.y + a.y + 30);
    await page.mouse.click(box.x + b.x + 30, box.y + b.y - 30);
    await page.waitForFunction(() => window.__landlink.reserve, null, { timeout: 15000 });
    await idle(page);
    await page.screenshot({ path: path.join(cfg.out, '07-reserve-rectangle.png') });
    const r = await page.evaluate(() => window.__landlink.reserve);
    await page.click('.draw button[data-draw=clear]');
    // a click on the listed land on the map selects its row: the list and the map in step
    const m = await page.evaluate((p) => window.__landlink.map.project(p), c.center);
    await page.mouse.click(box.x + m.x, box.y + m.y);
    await page.waitForSelector('#reserve-list tr.row.sel', { timeout: 10000 });
    const selected = await page.getAttribute('#reserve-list tr.row.sel', 'data-key');
    return { keys: r.keys, total: r.total, selected };
  });

  await step('reserve_polygon', async () => {
    // a triangle drawn around the planted idle parcel (double click closes it)
    const c = cases.idle_parcel;
    await page.evaluate(() => document.querySelector('#dossier-close').click());
    await page.evaluate((b) => window.__landlink.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 150, duration: 0, maxZoom: 17 }), c.bbox);
    await idle(page);
    await page.click('.draw button[data-draw=polygon]');
    const box = await page.locator('#map').boundingBox();
    const m = await page.evaluate((p) => window.__landlink.map.project(p), c.center);
    const pts = [[m.x - 220, m.y + 160], [m.x + 220, m.y + 160], [m.x, m.y - 240]];
    await page.evaluate(() => (window.__landlink.reserve = null));
    await page.mouse.click(box.x + pts[0][0], box.y + pts[0][1]);
    await page.mouse.click(box.x + pts[1][0], box.y + pts[1][1]);
    await page.mouse.dblclick(box.x + pts[2][0], box.y + pts[2][1]);
    await page.waitForFunction(() => window.__landlink.reserve, null, { timeout: 15000 });
    await idle(page);
    await page.screenshot({ path: path.join(cfg.out, '07b-reserve-polygon.png') });
    const r = await page.evaluate(() => window.__landlink.reserve);
    await page.click('.draw button[data-draw=clear]');
    return { keys: r.keys, total: r.total };
  });

  await step('export', async () => {
    await page.evaluate(() => (window.__landlink.reserve = null));
    await page.click('#reserve-form button[type=submit]');
    await page.waitForFunction(() => window.__landlink.reserve, null, { timeout: 15000 });
    const files = {};
    for (const fmt of ['xlsx', 'gpkg', 'shp']) {
      const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 60000 }), page.click(`.export a[data-format=${fmt}]`)]);
      const name = dl.suggestedFilename();
      const file = path.join(cfg.out, 'export-' + name);
      await dl.saveAs(file);
      files[fmt] = { file, name, bytes: fs.statSync(file).size };
    }
    return { files };
  });

  await step('dashboard', async () => {
    await page.click('.tabs button[data-tab=dashboard]');
    await page.waitForSelector('#dash-land svg', { timeout: 15000 });
    await page.waitForTimeout(300);
    await page.waitForSelector('#survey-card', { timeout: 30000 });
    await page.screenshot({ path: path.join(cfg.out, '08-dashboard.png') });
    const survey = await page.evaluate(() => ({
      state: window.__landlink.survey,
      cities: Array.from(document.querySelectorAll('#survey-card tr.city td')).map((td) => td.textContent),
      heads: Array.from(document.querySelectorAll('#survey-card table[data-part=by_chain] th')).map((th) => th.textContent),
      downloads: Array.from(document.querySelectorAll('#survey-card a[download]')).map((a) => a.href),
    }));
    return { charts: await page.locator('#dash-body svg').count(), text: await page.locator('#dash-body').innerText(), survey };
  });

  await step('plan', async () => {
    // 目标与任务: the year's targets with their states, what counts towards a 盘活 target, tasks
    await page.click('.tabs button[data-tab=plan]');
    await page.waitForSelector('#target-list tr.row', { timeout: 15000 });
    await page.waitForSelector('#task-list tr', { timeout: 15000 });
    const rows = await page.locator('#target-list tr.row').count();
    const withItems = page.locator('#target-list tr.row', { hasText: '项' }).first();
    let items = '';
    if (await withItems.count()) {
      await withItems.click();
      await page.waitForSelector('#target-items h4', { timeout: 15000 });
      items = await page.locator('#target-items').innerText();
    }
    const allTasks = await page.locator('#task-summary').innerText();
    await page.check('#task-form input[name=overdue]');
    await page.waitForFunction(() => /^逾期未完成的任务/.test(document.querySelector('#task-summary').textContent), null, { timeout: 15000 });
    await page.screenshot({ path: path.join(cfg.out, '08b-plan.png') });
    return {
      rows,
      summary: await page.locator('#target-summary').innerText(),
      table: await page.locator('#target-list').innerText(),
      items,
      all_tasks: allTasks,
      tasks: await page.locator('#task-summary').innerText(),
      task_rows: await page.locator('#task-list tr').count(),
      task_table: await page.locator('#task-list').innerText(),
    };
  });

  await step('public_leaks', async () => {
    // every JSON answer the public page received so far (dossiers, lists, summaries, indicators)
    const pattern = /"(tax_paid|tax_per_mu|energy_tce|emissions_t|energy_per_va|va_per_energy|va_per_emission)"\s*:\s*(-?\d|\{)/;
    const leaks = publicResponses.filter((r) => pattern.test(r.body)).map((r) => r.url);
    return { leaks, checked: publicResponses.map((r) => r.url.replace(cfg.base, '')) };
  });

  // ---------------------------------------------------------------- analyst view
  await step('analyst_tax', async () => {
    await page.fill('#token', cfg.token);
    await page.click('#sign-in');
    await page.waitForFunction(() => document.querySelector('#auth-state').dataset.role === 'analyst', null, { timeout: 15000 });
    const c = cases.tax_parcel;
    await page.click('.tabs button[data-tab=layers]');
    await page.fill('#search-q', c.parcel_no);
    await page.press('#search-q', 'Enter');
    await page.waitForSelector('#tax-chart svg', { timeout: 15000 });
    const text = await page.locator('#dossier-body').innerText();
    await page.check('input[name=colour-parcels][value=tax]');
    await page.waitForTimeout(300);
    await idle(page);
    await page.screenshot({ path: path.join(cfg.out, '09-analyst-dossier-tax.png') });
    const stored = await page.evaluate(() => sessionStorage.getItem('landlink.token') !== null);
    return { text, token_in_session: stored, painted: await paintedShare(page, path.join(cfg.out, '10-analyst-tax-bands.png')) };
  });

  await step('analyst_export', async () => {
    // signed in, an export is fetched with the Authorization header and saved from a blob
    await page.click('.tabs button[data-tab=reserve]');
    const urls = [];
    const onRequest = (req) => urls.push(req.url());
    page.on('request', onRequest);
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 60000 }), page.click('.export a[data-format=xlsx]')]);
    page.off('request', onRequest);
    const name = dl.suggestedFilename();
    const file = path.join(cfg.out, 'analyst-export-' + name);
    await dl.saveAs(file);
    return { name, head: fs.readFileSync(file).subarray(0, 2).toString('latin1'), token_in_url: urls.some((u) => u.includes(cfg.token)), requests: urls.length };
  });

  // ---------------------------------------------------------------- a second visit (warm caches)
  await step('reload', async () => {
    const p2 = await ctx.newPage();
    watch(p2, 'reload');
    await p2.goto(cfg.base + '/', { waitUntil: 'load' });
    await ready(p2);
    const timings = await p2.evaluate(() => window.__landlink.timings);
    await p2.close();
    return { timings };
  });
} finally {
  await ctx.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
  save();
}
