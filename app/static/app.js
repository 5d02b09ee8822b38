/* landlink map page: plain JS, no build step. MapLibre GL JS (global maplibregl) and ECharts
 * (global echarts) are served by the app from app/static/vendor/ (copied from npm at set-up).
 * Every request goes to this server: no CDN, no base map unless one is configured. */
(function () {
  'use strict';

  const LL = (window.__landlink = { errors: [], ready: false, mode: {}, timings: {} });
  // Every request goes where the page was served from (a gateway's prefix included: the server
  // writes <base href> into index.html), never to a host named in a server-written link.
  const BASE = new URL('.', document.baseURI).href;
  const serverUrl = (path) => BASE + String(path).replace(/^\/+/, '');
  const TOKEN_KEY = 'landlink.token';
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    role: 'viewer',
    analyst: false,
    parcelColour: 'use',
    tax: null,
    zones: { district: [], platform: [], corridor: [] },
    draw: { mode: null, points: [], area: null },
    reserve: { features: [], kind: 'idle' },
    conf: {},
  };

  // ------------------------------------------------------------------ helpers
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const esc = (v) =>
    v === null || v === undefined
      ? ''
      : String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  const fmt = (v, d = 2) =>
    v === null || v === undefined || v === '' ? '—' : typeof v === 'number' ? v.toLocaleString('zh-CN', { maximumFractionDigits: d }) : esc(v);

  function toast(msg, error) {
    const t = $('#toast');
    t.textContent = msg;
    t.className = error ? 'error' : '';
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => (t.hidden = true), error ? 6000 : 3000);
  }

  function authHeaders() {
    return state.token ? { Authorization: 'Bearer ' + state.token } : {};
  }

  /** fetch with the token's header; the response when it is ok, else an Error carrying the
   * server's JSON message (or the status line) and the status. */
  async function fetchOk(url, opts) {
    const r = await fetch(url, Object.assign({}, opts, { headers: Object.assign({}, authHeaders(), (opts || {}).headers) }));
    if (!r.ok) {
      let msg = r.status + ' ' + r.statusText;
      try {
        msg = (await r.json()).message || msg;
      } catch (e) {
        /* not JSON */
      }
      const err = new Error(msg);
      err.status = r.status;
      throw err;
    }
    return r;
  }

  async function api(path, opts) {
    return (await fetchOk(serverUrl(path), opts)).json();
  }

  /** GET that answers null on 404 (an endpoint another issue has not delivered yet). */
  async function apiOptional(path) {
    try {
      return await api(path);
    } catch (e) {
      if (e.status === 404) return null;
      throw e;
    }
  }

  /** ECharts is loaded when a chart is first drawn (not at start: the map comes first). */
  let echartsLoading = null;
  function loadECharts() {
    if (window.echarts) return Promise.resolve(window.echarts);
    if (!echartsLoading) {
      echartsLoading = new Promise((resolve, reject) => {
        const s = document.createElement('script');
        s.src = serverUrl('static/vendor/echarts.min.js');
        s.onload = () => resolve(window.echarts);
        s.onerror = () => reject(new Error('echarts.min.js missing: run make web'));
        document.head.appendChild(s);
      });
    }
    return echartsLoading;
  }

  // ------------------------------------------------------------------ labels and colours
  // Every code's Chinese label and colour comes from GET /api/vocabulary (gis/core/vocabulary.py,
  // the same source as the tile style and the API's labels), fetched at start-up: no copy here.
  let VOCAB = {};
  const terms = (name) => (VOCAB[name] || { terms: [] }).terms;
  const other = (name) => (VOCAB[name] || {}).other || {};
  const termOf = (name, code) => terms(name).find((t) => t.code === code);
  /** The label of a code (the vocabulary's "other" label when missing, the code when unknown). */
  const label = (name, code) => {
    const t = termOf(name, code);
    if (t) return t.label;
    return code === null || code === undefined || code === '' ? other(name).label || '' : String(code);
  };
  const colour = (name, code) => {
    const t = termOf(name, code);
    return (t && t.colour) || other(name).colour || 'rgba(0,0,0,0)';
  };
  const mapColour = (code) => colour('map', code);
  /** MapLibre expression: the colour of the code in feature property prop. */
  const matchExpr = (prop, name, fallback) => {
    const e = ['match', ['coalesce', ['get', prop], '']];
    terms(name).forEach((t) => t.colour && e.push(t.code, t.colour));
    e.push(fallback || other(name).colour || 'rgba(0,0,0,0)');
    return e;
  };
  /** Low-efficiency parcels: the colour of their first reason in the vocabulary's order. */
  const reasonExpr = () => {
    const e = ['case'];
    terms('low_efficiency_reason').forEach((t) => e.push(['in', t.code, ['coalesce', ['get', 'reason_codes'], '']], t.colour));
    e.push(other('low_efficiency_reason').colour);
    return e;
  };
  /** Legend entries [label, colour] of a vocabulary (only its flagged terms if asked), with
   * the entry for a missing code when asked. */
  const legendOf = (name, opts) => {
    const o = opts || {};
    const rows = terms(name)
      .filter((t) => t.colour && (!o.flagged || t.flagged))
      .map((t) => [t.label, t.colour]);
    return o.other ? rows.concat([[other(name).label, other(name).colour]]) : rows;
  };

  // What the page's other scripts (static/plan.js) use: one fetch, one vocabulary, one toast.
  Object.assign(LL, {
    api,
    esc,
    fmt,
    toast,
    label: (name, code) => label(name, code),
    colour: (name, code) => colour(name, code),
    analyst: () => state.analyst,
  });
  const announce = (name, detail) => document.dispatchEvent(new CustomEvent('landlink:' + name, { detail }));

  // ------------------------------------------------------------------ layers
  // Each entry: a collection (the tiles' / OGC API's collection id), its key property (for
  // feature state), map layers on it, and legends. The same property names in tiles and GeoJSON.
  const LAYERS = [
    {
      id: 'districts', title: '行政区', on: true, key: 'code',
      legend: () => [[label('map', 'district_line'), mapColour('district_line'), 'line']],
      layers: (s) => [
        Object.assign({ id: 'districts-fill', type: 'fill', paint: { 'fill-color': ['case', ['==', ['get', 'main_urban'], true], mapColour('district_main'), mapColour('district_other')], 'fill-opacity': state.conf.basemap ? 0.15 : 0.9 } }, s),
        Object.assign({ id: 'districts-line', type: 'line', paint: { 'line-color': mapColour('district_line'), 'line-width': 1.6 } }, s),
        Object.assign({ id: 'districts-label', type: 'symbol', layout: { 'text-field': ['get', 'name'], 'text-font': ['Noto Sans Regular'], 'text-size': 14, 'symbol-placement': 'point' }, paint: { 'text-color': mapColour('label'), 'text-halo-color': mapColour('halo'), 'text-halo-width': 1.5 } }, s),
      ],
    },
    {
      id: 'corridors', title: '走廊', on: true, key: 'code',
      legend: () => legendOf('corridor').map(([l, c]) => [l, c, 'line']),
      layers: (s) => [
        Object.assign({ id: 'corridors-line', type: 'line', paint: { 'line-color': matchExpr('code', 'corridor'), 'line-width': 2.5, 'line-dasharray': [3, 2] } }, s),
      ],
    },
    {
      id: 'platforms', title: '工业平台(四类平台)', on: true, key: 'code',
      legend: () => legendOf('platform_kind', { other: true }),
      layers: (s) => [
        Object.assign({ id: 'platforms-fill', type: 'fill', paint: { 'fill-color': matchExpr('kind', 'platform_kind'), 'fill-opacity': 0.12 } }, s),
        Object.assign({ id: 'platforms-line', type: 'line', paint: { 'line-color': matchExpr('kind', 'platform_kind'), 'line-width': 2 } }, s),
        Object.assign({ id: 'platforms-label', type: 'symbol', minzoom: 10, layout: { 'text-field': ['get', 'name'], 'text-font': ['Noto Sans Regular'], 'text-size': 12 }, paint: { 'text-color': mapColour('platform_label'), 'text-halo-color': mapColour('halo'), 'text-halo-width': 1.2 } }, s),
      ],
    },
    {
      id: 'parcels', title: '现状工业用地', on: true, key: 'parcel_no', props: ['parcel_no', 'actual_use', 'eval_class', 'land_status'],
      options: [['use', '实际用途'], ['class', '评价等级'], ['tax', '亩均税收', true]],
      legend: () =>
        state.parcelColour === 'class'
          ? legendOf('eval_class', { other: true })
          : state.parcelColour === 'tax'
            ? legendOf('tax_band', { other: true })
            : legendOf('actual_use', { other: true }).concat(sourceInfo.parcels && sourceInfo.parcels.mode === 'tiles' ? [['13级以下: ' + label('map', 'aggregate') + '(亩均等级)', mapColour('aggregate')]] : []),
      layers: (s) => [
        Object.assign({ id: 'parcels-fill', type: 'fill', paint: { 'fill-color': parcelColour(), 'fill-opacity': 0.75 } }, s),
        Object.assign({ id: 'parcels-line', type: 'line', minzoom: 12, paint: { 'line-color': mapColour('parcel_line'), 'line-width': 0.4 } }, s),
      ].concat(
        // our tiles carry platform aggregates instead of parcels below zoom 13
        !s.source || s['source-layer']
          ? [Object.assign({}, s, { id: 'parcels-agg', type: 'fill', 'source-layer': 'platforms', maxzoom: 13, paint: { 'fill-color': matchExpr('tax_class', 'eval_class', mapColour('aggregate')), 'fill-opacity': 0.7 } })]
          : []
      ),
    },
    {
      id: 'unsupplied', get title() { return label('land_kind', 'unsupplied'); }, on: false, key: 'doc_no',
      legend: () => legendOf('unsupplied_status', { flagged: true }),
      layers: (s) => [
        Object.assign({ id: 'unsupplied-fill', type: 'fill', paint: { 'fill-color': matchExpr('status', 'unsupplied_status'), 'fill-opacity': 0.6 } }, s),
        Object.assign({ id: 'unsupplied-line', type: 'line', paint: { 'line-color': mapColour('unsupplied_line'), 'line-width': 1 } }, s),
      ],
    },
    {
      id: 'idle', title: '供而未用 / 闲置(按状态)', on: false, key: 'supply_no', props: ['supply_no', 'status', 'area_mu'],
      legend: () => legendOf('idle_status', { flagged: true }),
      layers: (s) => [
        Object.assign({ id: 'idle-fill', type: 'fill', paint: { 'fill-color': matchExpr('status', 'idle_status'), 'fill-opacity': 0.8 } }, s),
        Object.assign({ id: 'idle-line', type: 'line', paint: { 'line-color': mapColour('idle_line'), 'line-width': 1 } }, s),
      ],
    },
    {
      id: 'low_efficiency', title: '低效用地(按原因)', on: false, key: 'parcel_no', props: ['parcel_no', 'reason_codes', 'area_mu'],
      legend: () => legendOf('low_efficiency_reason'),
      layers: (s) => [
        Object.assign({ id: 'low_efficiency-fill', type: 'fill', paint: { 'fill-color': reasonExpr(), 'fill-opacity': 0.8 } }, s),
        Object.assign({ id: 'low_efficiency-line', type: 'line', paint: { 'line-color': mapColour('low_efficiency_line'), 'line-width': 1 } }, s),
      ],
    },
  ];

  function parcelColour() {
    if (state.parcelColour === 'class') return matchExpr('eval_class', 'eval_class');
    if (state.parcelColour === 'tax') {
      const e = matchExpr('band', 'tax_band');
      e[1] = ['coalesce', ['feature-state', 'band'], ''];
      return e;
    }
    return matchExpr('actual_use', 'actual_use');
  }

  // ------------------------------------------------------------------ map
  let map = null;
  const sourceInfo = {}; // collection -> {id, sourceLayer|null, mode}

  /** Our own vector tiles for a collection (TileJSON at /tiles/{id}.json), else GeoJSON. */
  async function sourceFor(layer, conf) {
    let tj = null;
    if (conf.tiles) try {
      const r = await fetch(serverUrl(`tiles/${layer.id}.json`), { headers: authHeaders() });
      if (r.ok) tj = await r.json();
    } catch (e) {
      tj = null;
    }
    const id = 'src-' + layer.id;
    if (tj && Array.isArray(tj.tiles) && tj.tiles.length) {
      // this server's tiles from where the page was served, whatever host the TileJSON names
      // (string work: new URL() would escape the {z})
      const tiles = tj.tiles.map((t) => (/(^|\/)tiles\//.test(t) ? serverUrl(t.replace(/^(.*?\/)?tiles\//, 'tiles/')) : t));
      const vl = (tj.vector_layers || []).find((v) => v.id === layer.id) || (tj.vector_layers || [])[0];
      const sourceLayer = vl ? vl.id : layer.id;
      const def = { type: 'vector', tiles, minzoom: tj.minzoom || 0, maxzoom: tj.maxzoom || 14, promoteId: { [sourceLayer]: layer.key } };
      if (tj.bounds) def.bounds = tj.bounds;
      return { id, def, sourceLayer, mode: 'tiles' };
    }
    const gj = serverUrl(`api/map/layers/${layer.id}.geojson`) + (layer.props ? '?props=' + layer.props.join(',') : '');
    // a hidden layer's GeoJSON is fetched when it is first switched on
    const data = layer.on ? gj : { type: 'FeatureCollection', features: [] };
    return { id, def: { type: 'geojson', data, promoteId: layer.key }, sourceLayer: null, mode: 'geojson', url: gj, loaded: layer.on };
  }

  // 矢量 / 影像 radio: replaces the 天地图 base and 注记 sources with the chosen preset's tiles
  function tiandituSwitcher(t) {
    const names = { vec: '矢量', img: '影像' };
    const el = document.createElement('div');
    el.className = 'maplibregl-ctrl maplibregl-ctrl-group tdt-switcher';
    Object.keys(t.presets).forEach((key) => {
      const label = document.createElement('label');
      const input = document.createElement('input');
      Object.assign(input, { type: 'radio', name: 'tdt-preset', value: key, checked: key === t.default });
      input.addEventListener('change', () => {
        const p = t.presets[key];
        ['tdt-labels', 'tdt-base'].forEach((id) => {
          if (map.getLayer(id)) map.removeLayer(id);
          if (map.getSource(id)) map.removeSource(id);
        });
        const before = map.getStyle().layers[1] ? map.getStyle().layers[1].id : undefined;
        const src = (tiles, attribution) => ({ type: 'raster', tiles, tileSize: 256, maxzoom: t.maxzoom || 18, attribution });
        map.addSource('tdt-base', src(p.base, t.attribution));
        map.addSource('tdt-labels', src(p.labels, ''));
        map.addLayer({ id: 'tdt-base', type: 'raster', source: 'tdt-base' }, before);
        map.addLayer({ id: 'tdt-labels', type: 'raster', source: 'tdt-labels' }, before);
        LL.tianditu = key;
      });
      label.append(input, ' ' + (names[key] || key));
      el.append(label);
    });
    return { onAdd: () => el, onRemove: () => el.remove() };
  }

  async function buildMap() {
    const conf = state.conf;
    const style = {
      version: 8,
      glyphs: BASE + 'glyphs/{fontstack}/{range}.pbf',
      sources: {},
      layers: [{ id: 'background', type: 'background', paint: { 'background-color': mapColour('background') } }],
    };
    if (conf.basemap) {
      style.sources.basemap = { type: 'raster', tiles: conf.basemap.tiles, tileSize: 256, maxzoom: conf.basemap.maxzoom || 18, attribution: conf.basemap.attribution || '' };
      style.layers.push({ id: 'basemap', type: 'raster', source: 'basemap' });
    }
    if (conf.tianditu) {
      // 天地图: a base layer and its 注记 overlay, swapped by the 矢量 / 影像 switcher
      const t = conf.tianditu;
      const preset = t.presets[t.default];
      const src = (tiles) => ({ type: 'raster', tiles, tileSize: 256, maxzoom: t.maxzoom || 18, attribution: t.attribution });
      style.sources['tdt-base'] = src(preset.base);
      style.sources['tdt-labels'] = Object.assign(src(preset.labels), { attribution: '' });
      style.layers.push({ id: 'tdt-base', type: 'raster', source: 'tdt-base' }, { id: 'tdt-labels', type: 'raster', source: 'tdt-labels' });
    }
    const infos = await Promise.all(LAYERS.map((l) => sourceFor(l, conf)));
    LAYERS.forEach((layer, i) => {
      const info = infos[i];
      sourceInfo[layer.id] = info;
      LL.mode[layer.id] = info.mode;
      style.sources[info.id] = info.def;
      const base = { source: info.id };
      if (info.sourceLayer) base['source-layer'] = info.sourceLayer;
      layer.layers(base).forEach((l) => {
        l.layout = Object.assign({}, l.layout, { visibility: layer.on ? 'visible' : 'none' });
        if (l.type === 'symbol') {
          // one label per polygon, at a point on it: tiled polygons get a label in every tile
          const lid = 'labels-' + layer.id;
          style.sources[lid] = style.sources[lid] || { type: 'geojson', data: serverUrl(`api/map/layers/${layer.id}.geojson?props=code,name&points=true`) };
          l.source = lid;
          delete l['source-layer'];
        }
        style.layers.push(l);
      });
    });
    // the land-reserve panel's current list, and what the user draws
    style.sources.reserve = { type: 'geojson', data: { type: 'FeatureCollection', features: [] } };
    style.sources.draw = { type: 'geojson', data: { type: 'FeatureCollection', features: [] } };
    style.sources.selected = { type: 'geojson', data: { type: 'FeatureCollection', features: [] } };
    style.layers.push(
      { id: 'reserve-fill', type: 'fill', source: 'reserve', paint: { 'fill-color': mapColour('reserve_fill'), 'fill-opacity': 0.35 } },
      { id: 'reserve-line', type: 'line', source: 'reserve', paint: { 'line-color': mapColour('reserve_line'), 'line-width': 2 } },
      { id: 'draw-fill', type: 'fill', source: 'draw', paint: { 'fill-color': mapColour('draw_fill'), 'fill-opacity': 0.1 } },
      { id: 'draw-line', type: 'line', source: 'draw', paint: { 'line-color': mapColour('draw_line'), 'line-width': 2, 'line-dasharray': [2, 1] } },
      { id: 'selected-line', type: 'line', source: 'selected', paint: { 'line-color': mapColour('selected'), 'line-width': 3 } }
    );
    const modes = new Set(infos.map((i) => i.mode));
    $('#source-note').textContent = modes.has('tiles')
      ? modes.has('geojson')
        ? '数据来源: 本系统矢量切片(部分图层为 GeoJSON)'
        : '数据来源: 本系统矢量切片'
      : '数据来源: 本系统 GeoJSON(矢量切片服务未启用)';

    // the city's extent: from the districts' TileJSON, else from their GeoJSON
    const districtsReq = api('api/map/layers/districts.geojson').catch(() => null);
    const tb = sourceInfo.districts.def.bounds;
    const districts = tb ? null : await districtsReq;
    const bounds = tb || (districts ? bboxOf(districts.features) : [119.0, 29.3, 120.8, 30.6]);
    map = new maplibregl.Map({
      container: 'map',
      style,
      bounds: [[bounds[0], bounds[1]], [bounds[2], bounds[3]]],
      fitBoundsOptions: { padding: 20 },
      localIdeographFontFamily: "'WenQuanYi Micro Hei', 'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif",
      attributionControl: conf.basemap || conf.tianditu ? { compact: true } : false,
      maxZoom: 19,
      transformRequest: (u) => (u.startsWith(BASE) && state.token ? { url: u, headers: authHeaders() } : { url: u }),
    });
    LL.map = map;
    LL.timings.mapCreated = Math.round(performance.now());
    map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
    map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-right');
    if (conf.tianditu) map.addControl(tiandituSwitcher(conf.tianditu), 'top-right');
    map.on('error', (e) => {
      const msg = (e && e.error && e.error.message) || String(e);
      LL.errors.push(msg);
      console.warn('map:', msg);
    });
    map.once('load', () => (LL.timings.load = Math.round(performance.now())));
    map.once('idle', () => {
      LL.timings.firstRender = Math.round(performance.now());
      LL.ready = true;
      document.body.dataset.ready = '1';
    });
    map.on('click', onMapClick);
    map.on('mousemove', onMouseMove);
    ['parcels-fill', 'idle-fill', 'low_efficiency-fill', 'unsupplied-fill', 'reserve-fill'].forEach((id) => {
      map.on('mouseenter', id, () => { if (!state.draw.mode) map.getCanvas().style.cursor = 'pointer'; });
      map.on('mouseleave', id, () => { if (!state.draw.mode) map.getCanvas().style.cursor = ''; });
    });
    districtsReq.then((g) => g && zonesFrom('district', g.features));
    api('api/map/layers/platforms.geojson').then((g) => zonesFrom('platform', g.features)).catch(() => {});
    api('api/map/layers/corridors.geojson').then((g) => zonesFrom('corridor', g.features)).catch(() => {});
  }

  function bboxOf(features) {
    const b = [Infinity, Infinity, -Infinity, -Infinity];
    const walk = (c) => {
      if (typeof c[0] === 'number') {
        b[0] = Math.min(b[0], c[0]); b[1] = Math.min(b[1], c[1]);
        b[2] = Math.max(b[2], c[0]); b[3] = Math.max(b[3], c[1]);
      } else c.forEach(walk);
    };
    features.forEach((f) => f.geometry && walk(f.geometry.coordinates));
    return b;
  }

  function zonesFrom(level, features) {
    state.zones[level] = features
      .map((f) => ({ code: f.properties.code, name: f.properties.name, bbox: bboxOf([f]) }))
      .sort((a, b) => String(a.code).localeCompare(String(b.code)));
    const sel = $(`#reserve-form select[name=${level}]`);
    sel.innerHTML = '<option value="">全部</option>' + state.zones[level].map((z) => `<option value="${esc(z.code)}">${esc(z.name)}</option>`).join('');
    if ($('#dash-form select[name=level]').value === level) fillDashCodes();
  }

  // ------------------------------------------------------------------ layer switcher
  function renderLayerList() {
    const box = $('#layer-list');
    box.innerHTML = LAYERS.map((l) => {
      const opts = l.options
        ? `<div class="opts">着色: ${l.options
          .map(([v, label, restricted]) => {
            const locked = restricted && !state.analyst;
            return `<label class="${locked ? 'locked' : ''}" title="${locked ? '需分析令牌' : ''}"><input type="radio" name="colour-${l.id}" value="${v}" ${state.parcelColour === v ? 'checked' : ''} ${locked ? 'disabled' : ''}> ${label}${locked ? '(需令牌)' : ''}</label>`;
          })
          .join('')}</div>`
        : '';
      const legend = l.on
        ? `<div class="legend">${l
          .legend()
          .map(([label, colour, kind]) => `<span><i class="${kind || ''}" style="background:${colour}"></i>${esc(label)}</span>`)
          .join('')}</div>`
        : '';
      return `<div class="layer" data-layer="${l.id}"><label><input type="checkbox" ${l.on ? 'checked' : ''}> ${l.title}</label>${opts}${legend}</div>`;
    }).join('');
  }

  function setLayerVisible(id, on) {
    const l = LAYERS.find((x) => x.id === id);
    l.on = on;
    const info = sourceInfo[id];
    if (on && map && info && info.mode === 'geojson' && !info.loaded) {
      info.loaded = true;
      map.getSource(info.id).setData(info.url);
    }
    if (map) l.layers({}).forEach((ml) => map.getLayer(ml.id) && map.setLayoutProperty(ml.id, 'visibility', on ? 'visible' : 'none'));
    renderLayerList();
  }

  async function setParcelColour(mode) {
    if (mode === 'tax') {
      if (!state.analyst) return toast('亩均税收图层需要分析令牌', true);
      await loadTaxBands();
    }
    state.parcelColour = mode;
    if (map && map.getLayer('parcels-fill')) map.setPaintProperty('parcels-fill', 'fill-color', parcelColour());
    renderLayerList();
  }

  async function loadTaxBands() {
    if (state.tax) return;
    const t = await api('api/map/parcel-tax');
    state.tax = t;
    applyTaxState();
  }

  function applyTaxState() {
    if (!state.tax || !map) return;
    const info = sourceInfo.parcels;
    Object.entries(state.tax.parcels).forEach(([id, v]) => {
      const f = { source: info.id, id };
      if (info.sourceLayer) f.sourceLayer = info.sourceLayer;
      map.setFeatureState(f, { band: v[1] });
    });
  }

  function clearTaxState() {
    state.tax = null;
    if (map && sourceInfo.parcels) {
      const info = sourceInfo.parcels;
      map.removeFeatureState(info.sourceLayer ? { source: info.id, sourceLayer: info.sourceLayer } : { source: info.id });
    }
    if (state.parcelColour === 'tax') setParcelColour('use');
  }

  // ------------------------------------------------------------------ sign-in
  async function refreshRole() {
    const el = $('#auth-state');
    if (!state.token) {
      state.role = 'viewer';
      state.analyst = false;
    } else {
      try {
        const me = await api('api/whoami');
        state.role = me.role;
        state.analyst = !!me.analyst;
      } catch (e) {
        toast('令牌无效: ' + e.message, true);
        signOut();
        return;
      }
    }
    el.dataset.role = state.role;
    el.textContent = state.analyst ? '分析视图' : state.token ? '已登录(公众权限)' : '公众视图';
    $('#token').hidden = !!state.token;
    $('#sign-in').hidden = !!state.token;
    $('#sign-out').hidden = !state.token;
    renderLayerList();
    announce('role', { role: state.role, analyst: state.analyst });
  }

  function signIn() {
    const t = $('#token').value.trim();
    if (!t) return toast('请输入令牌', true);
    state.token = t;
    sessionStorage.setItem(TOKEN_KEY, t);
    $('#token').value = '';
    refreshRole().then(afterRoleChange);
  }

  function signOut() {
    state.token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    clearTaxState();
    refreshRole().then(afterRoleChange);
  }

  function afterRoleChange() {
    if (state.dossierFor) openDossier(state.dossierFor, false);
    renderDashboard();
  }

  // ------------------------------------------------------------------ search
  let searchHits = [];
  let searchTimer;
  let searchSeq = 0;
  async function doSearch(ev) {
    if (ev) ev.preventDefault();
    clearTimeout(searchTimer);
    const seq = ++searchSeq;
    const q = $('#search-q').value.trim();
    const list = $('#search-results');
    if (q.length < 2) {
      list.hidden = true;
      return;
    }
    try {
      const r = await api('api/search?q=' + encodeURIComponent(q));
      if (seq !== searchSeq) return; // a newer search, or a pick, came first
      searchHits = r.results;
      if (!searchHits.length) {
        list.innerHTML = '<li>未找到</li>';
      } else {
        list.innerHTML = searchHits
          .map((h, i) => `<li data-i="${i}"><span class="kind">${esc(label('search_kind', h.kind))}</span>${esc(h.label)}<span class="sub">${esc(h.sub)}</span></li>`)
          .join('');
      }
      list.hidden = false;
      if (ev && ev.type === 'submit' && searchHits.length) pickHit(0);
    } catch (e) {
      toast('搜索失败: ' + e.message, true);
    }
  }

  function pickHit(i) {
    const h = searchHits[i];
    searchSeq++;
    $('#search-results').hidden = true;
    if (!h) return;
    LL.lastSearch = h;
    if (!h.bbox) return toast(`${h.label}: 无空间位置`, true);
    flyToBox(h.bbox);
    if (h.kind === 'parcel') openDossier(h.id);
    if (h.kind === 'enterprise' || h.kind === 'supply') openDossierAt(h.center, h.kind === 'enterprise' ? h.id : null, h);
  }

  function flyToBox(b) {
    const pad = Math.max(b[2] - b[0], b[3] - b[1]) * 0.6 + 0.002;
    const right = $('#dossier').hidden ? 40 : 460; // keep the target clear of the side panel
    map.fitBounds([[b[0] - pad, b[1] - pad], [b[2] + pad, b[3] + pad]], { maxZoom: 17, duration: 800, padding: { top: 40, bottom: 40, left: 40, right } });
  }

  /** After flying to an enterprise or supply record, open the parcel under its centre. */
  function openDossierAt(center, uscc, hit) {
    const seq = dossierSeq;
    map.once('moveend', async () => {
      if (seq !== dossierSeq) return; // the user went elsewhere meanwhile
      const pt = map.project(center);
      const f = map.queryRenderedFeatures(pt, { layers: ['parcels-fill'] })[0];
      if (f) openDossier(f.properties.parcel_no);
      else if (hit) toast(`已定位: ${hit.label}`);
    });
  }

  // ------------------------------------------------------------------ map click: dossier
  function onMapClick(e) {
    if (state.draw.mode) return drawClick(e);
    const feats = map.queryRenderedFeatures(e.point, {
      layers: ['parcels-fill', 'low_efficiency-fill', 'idle-fill', 'unsupplied-fill', 'reserve-fill'].filter((id) => map.getLayer(id)),
    });
    const inList = feats.find((f) => f.layer.id === 'reserve-fill');
    if (inList) selectReserveRow(inList.properties[KEY_OF[state.reserve.kind]]);
    const parcel = feats.find((f) => f.layer.id === 'parcels-fill' || f.layer.id === 'low_efficiency-fill');
    if (parcel) return openDossier(parcel.properties.parcel_no);
    const other = feats[0];
    if (!other) {
      const pf = map.getLayer('platforms-fill') && map.queryRenderedFeatures(e.point, { layers: ['platforms-fill'] })[0];
      if (pf) {
        const p = pf.properties;
        new maplibregl.Popup()
          .setLngLat(e.lngLat)
          .setHTML(`<b>${esc(p.name)}</b> (${esc(p.code)})<br>${esc(p.level || '')} ${esc(p.type || '')}<br>${esc(label('platform_kind', p.kind))}`)
          .addTo(map);
      }
      return;
    }
    const p = other.properties;
    const nos = p.parcel_nos || p.parcel_id;
    if (nos) return openDossier(String(nos).split(/[;,]/)[0].replace(/[[\]"]/g, ''));
    new maplibregl.Popup()
      .setLngLat(e.lngLat)
      .setHTML(`<b>${esc(p.doc_no || p.approval_id || p.supply_no || p.supply_id || '')}</b><br>${esc(p.status || '')} ${p.unsupplied_mu || p.area_mu ? fmt(p.unsupplied_mu || p.area_mu) + ' 亩' : ''}`)
      .addTo(map);
  }

  let dossierSeq = 0;
  async function openDossier(dkbh, fly) {
    if (!dkbh) return;
    const seq = ++dossierSeq;
    state.dossierFor = dkbh;
    const panel = $('#dossier');
    const body = $('#dossier-body');
    panel.hidden = false;
    body.innerHTML = '<p class="note">加载中…</p>';
    let d;
    try {
      d = await api('api/parcels/' + encodeURIComponent(dkbh));
      if (seq !== dossierSeq) return; // another parcel was clicked meanwhile
    } catch (e) {
      if (seq !== dossierSeq) return;
      body.innerHTML = `<p class="finding">${esc(e.message)}</p>`;
      return;
    }
    LL.dossier = d;
    map.getSource('selected').setData({ type: 'Feature', geometry: d.parcel.geometry, properties: {} });
    if (fly) flyToBox(d.parcel.bbox);
    body.innerHTML = renderDossier(d);
    body.dataset.parcel = d.parcel.parcel_no;
    body.dataset.chain = d.chain.position;
    if (d.tax_visible) loadECharts().then(() => seq === dossierSeq && drawTaxChart(d));
  }

  function row(label, value) {
    return `<tr><th>${label}</th><td>${value}</td></tr>`;
  }

  function renderDossier(d) {
    const p = d.parcel;
    const s = d.supply;
    const z = d.zones;
    const chain = d.chain.stages
      .map((st) => `<div class="step ${st.state}" data-stage="${st.code}" title="${esc(st.note || st.english)}">${st.label}</div>`)
      .join('');
    const here = d.chain.stages.find((st) => st.state === 'here');
    const chainNote = here
      ? `当前位于 <b>${here.label}</b>: ${esc(here.note || '')}`
      : '<span class="chain-cleared">已走完链条: 达标</span>';
    const flags = d.chain.stages.filter((st) => st.state === 'flag').map((st) => `${st.label}: ${esc(st.note)}`);
    const idle = d.idle
      ? `<span class="idle-status" data-status="${esc(d.idle.status)}">${esc(d.idle.status_label)}</span>`
      : '—';
    const findings = d.findings.length
      ? d.findings
        .map((f) => `<div class="finding ${f.kind}" style="border-left-color:${colour('land_kind', f.kind)}" data-kind="${f.kind}" data-status="${esc(f.status)}"><b>${esc(f.label)}</b>: ${esc(f.status_label)}${f.figure !== undefined && f.figure !== null ? ` (${fmt(f.figure, 3)} ${esc(f.unit || '')}, 标准 ${fmt(f.threshold)})` : f.restricted ? ' <span class="restricted">(数值需分析令牌)</span>' : ''}<div class="why">${esc(f.reason || '')}</div></div>`)
        .join('')
      : '<p class="note">无三块地问题</p>';
    const ents = d.enterprises.length
      ? `<table class="grid"><tr><th>企业</th><th>等级</th><th>关联</th></tr>${d.enterprises
        .map((e) => {
          const c = e.evaluation && e.evaluation.class;
          const fail = e.failed_standards.length ? `<br><span class="restricted">不达标: ${e.failed_standards.map((f) => f.year + ' ' + esc(f.kind)).join('、')}</span>` : '';
          return `<tr data-uscc="${esc(e.uscc)}"><td>${esc(e.name)}<br><span class="note">${esc(e.uscc)} · ${esc(e.industry_code)}${e.above_size ? ' · 规上' : ''}</span>${fail}</td><td>${c ? `<span class="cls cls-${esc(c)}" style="background:${colour('eval_class', c)}">${esc(c)}</span> ${e.evaluation.year}` : `<span class="note">${esc(label('eval_class', null))}</span>`}</td><td>${esc(label('link_how', e.how))}${e.how === 'nearest' ? fmt(e.distance_m, 0) + '米' : ''}</td></tr>`;
        })
        .join('')}</table>`
      : '<p class="note">无关联企业</p>';
    const tax = d.tax_visible
      ? '<h3>亩均税收(万元/亩)</h3><div id="tax-chart" class="chart"></div>'
      : '<p class="note restricted" id="tax-locked">亩均税收等税务数据需分析令牌</p>';
    const projects = d.projects.length
      ? `<table class="grid"><tr><th>项目</th><th>状态</th><th>计划/完成投资(万元)</th></tr>${d.projects
        .map((x) => `<tr><td>${esc(x.name)}</td><td>${esc(x.status || '—')}</td><td>${fmt(x.planned_investment)} / ${fmt(x.investment_made)}</td></tr>`)
        .join('')}</table>`
      : '<p class="note">无投资项目</p>';
    return `
      <h2>地块 ${esc(p.parcel_no)}</h2>
      <div class="note">${esc(z.district ? z.district.name : '')}${z.platform ? ' · ' + esc(z.platform.name) : ''}${z.corridor ? ' · ' + esc(z.corridor.name) : ''}</div>
      <h3>链条位置</h3>
      <div class="chain">${chain}</div>
      <div class="chain-note" data-position="${d.chain.position}">${chainNote}</div>
      ${flags.length ? `<div class="note">另有: ${flags.join('; ')}</div>` : ''}
      <h3>基本情况</h3>
      <table>
        ${row('面积', `<span class="area-mu">${fmt(p.area_mu, 2)}</span> 亩 (${fmt(p.area_m2, 0)} m²)`)}
        ${row('地类', `${esc(p.land_use)} (${esc(p.land_use_code)})`)}
        ${row('实际用途', esc(p.actual_use || '—'))}
        ${row('容积率 / 建筑密度', `${fmt(p.plot_ratio, 2)} / ${p.footprint_share === null ? '—' : fmt(p.footprint_share * 100, 1) + '%'}`)}
        ${row('权利人', esc(p.holder_name || '—'))}
      </table>
      <h3>供地记录</h3>
      ${s ? `<table>
        ${row('电子监管号', esc(s.supply_no) + (d.supply_link === 'overlap' ? ' <span class="note">(按空间叠合关联)</span>' : ''))}
        ${row('供地方式 / 用途', `${esc(s.method)} / ${esc(s.land_use_code)}`)}
        ${row('受让人', esc(s.grantee_name || '—'))}
        ${row('供地日期', esc(s.supplied_on))}
        ${row('约定开工 / 竣工', `${esc(s.agreed_start || '—')} / ${esc(s.agreed_completion || '—')}`)}
        ${row('实际开工 / 竣工', `${esc(s.actual_start || '—')} / ${esc(s.actual_completion || '—')}`)}
        ${s.stopped_on ? row('停工日期', esc(s.stopped_on)) : ''}
        ${row('容积率要求', `${fmt(s.plot_ratio_min)} – ${fmt(s.plot_ratio_max)}`)}
        ${row('约定 / 完成投资', `${fmt(s.agreed_investment)} / ${fmt(s.investment_made)} 万元`)}
        ${row('开发状态', idle)}
      </table>` : '<p class="note">无供地记录</p>'}
      ${d.approvals.length ? `<div class="note">批文: ${d.approvals.map((a) => esc(a.doc_no) + ' (' + esc(a.approved_on) + ')').join('、')}</div>` : ''}
      <h3>三块地认定 <span class="note">${d.run ? '检测日期 ' + esc(d.run.as_of) : '尚未检测'}</span></h3>
      <div id="findings">${findings}</div>
      <h3>企业</h3>
      ${ents}
      ${tax}
      <h3>投资项目</h3>
      ${projects}`;
  }

  function drawTaxChart(d) {
    const el = $('#tax-chart');
    if (!el) return;
    const years = [...new Set(d.enterprises.flatMap((e) => (e.tax_by_year || []).map((t) => t.year)))].sort();
    const series = d.enterprises
      .filter((e) => (e.tax_by_year || []).length)
      .map((e) => ({
        name: e.name,
        type: 'line',
        smooth: false,
        data: years.map((y) => {
          const t = e.tax_by_year.find((x) => x.year === y);
          return t ? t.tax_per_mu : null;
        }),
      }));
    const chart = echarts.init(el, null, { renderer: 'svg' });
    chart.setOption({
      animation: false,
      tooltip: { trigger: 'axis', valueFormatter: (v) => (v === null ? '—' : v + ' 万元/亩') },
      legend: { type: 'scroll', bottom: 0 },
      grid: { left: 40, right: 10, top: 10, bottom: 40 },
      xAxis: { type: 'category', data: years },
      yAxis: { type: 'value', name: '万元/亩' },
      series,
    });
  }

  // ------------------------------------------------------------------ drawing a rectangle or polygon
  function setDrawMode(mode) {
    if (mode === 'clear') {
      state.draw = { mode: null, points: [], area: null };
      map.getSource('draw').setData({ type: 'FeatureCollection', features: [] });
      $('#draw-state').textContent = '';
    } else {
      state.draw.mode = mode;
      state.draw.points = [];
      $('#draw-state').textContent = mode === 'rect' ? '点击两个对角' : '依次点击顶点, 双击结束';
      map.getCanvas().style.cursor = 'crosshair';
      map.doubleClickZoom.disable();
    }
    $$('.draw button').forEach((b) => b.classList.toggle('on', b.dataset.draw === state.draw.mode));
  }

  function drawShape(points, closed) {
    if (state.draw.mode === 'rect' && points.length === 2) {
      const [a, b] = points;
      points = [[a[0], a[1]], [b[0], a[1]], [b[0], b[1]], [a[0], b[1]]];
      closed = true;
    }
    const ring = points.concat(closed || points.length > 2 ? [points[0]] : []);
    const geom = ring.length >= 4 ? { type: 'Polygon', coordinates: [ring] } : { type: 'LineString', coordinates: ring };
    map.getSource('draw').setData({ type: 'Feature', geometry: geom, properties: {} });
    return geom;
  }

  function drawClick(e) {
    const p = [e.lngLat.lng, e.lngLat.lat];
    const d = state.draw;
    d.points.push(p);
    if (d.mode === 'rect' && d.points.length === 2) {
      const [a, b] = d.points;
      drawShape(d.points, true);
      finishDraw({ bbox: [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])] });
    } else {
      drawShape(d.points, false);
    }
  }

  function onMouseMove(e) {
    const d = state.draw;
    if (!d.mode || !d.points.length) return;
    drawShape(d.points.concat([[e.lngLat.lng, e.lngLat.lat]]), false);
  }

  function onDblClick(e) {
    const d = state.draw;
    if (d.mode !== 'polygon') return;
    e.preventDefault();
    // the double click added the last point twice
    const pts = d.points.filter((p, i) => i === 0 || p[0] !== d.points[i - 1][0] || p[1] !== d.points[i - 1][1]);
    if (pts.length < 3) return toast('多边形至少需要三个顶点', true);
    const geom = drawShape(pts, true);
    finishDraw({ polygon: geom });
  }

  function finishDraw(area) {
    state.draw.area = area;
    state.draw.mode = null;
    map.getCanvas().style.cursor = '';
    setTimeout(() => map.doubleClickZoom.enable(), 300);
    $$('.draw button').forEach((b) => b.classList.remove('on'));
    $('#draw-state').textContent = area.bbox ? '矩形范围已设定' : '多边形范围已设定';
    runReserve();
  }

  // ------------------------------------------------------------------ land-reserve panel
  /** The status filter's options: the flagged statuses (the API's default), each status, all. */
  const statusOptions = (kind) => {
    const name = { idle: 'idle_status', unsupplied: 'unsupplied_status', 'low-efficiency': 'low_efficiency_reason' }[kind];
    const each = terms(name).map((t) => [t.code, t.label]);
    if (kind === 'low-efficiency') return [['', '全部原因']].concat(each);
    return [['', kind === 'idle' ? '需关注(逾期/闲置/中止)' : '未供与部分未供']].concat(each, [['all', '全部']]);
  };

  function fillStatus() {
    const kind = $('#reserve-form select[name=kind]').value;
    $('#status-label').firstChild.textContent = kind === 'low-efficiency' ? '原因 ' : '状态 ';
    $('#reserve-form select[name=status]').innerHTML = statusOptions(kind).map(([v, l]) => `<option value="${v}">${esc(l)}</option>`).join('');
  }

  function reserveParams() {
    const f = $('#reserve-form');
    const kind = f.kind.value;
    const p = new URLSearchParams();
    ['district', 'platform', 'corridor', 'min_mu'].forEach((k) => f[k].value && p.set(k, f[k].value));
    if (f.status.value) p.set(kind === 'low-efficiency' ? 'reason' : 'status', f.status.value);
    const a = state.draw.area;
    if (a && a.bbox) p.set('bbox', a.bbox.map((v) => v.toFixed(6)).join(','));
    if (a && a.polygon) p.set('intersects', JSON.stringify(a.polygon));
    return { kind, params: p };
  }

  function updateExportLinks() {
    const { kind, params } = reserveParams();
    $$('.export a').forEach((a) => {
      const p = new URLSearchParams(params);
      p.set('format', a.dataset.format);
      a.href = serverUrl(`api/land/${kind}?${p}`);
    });
  }

  // Signed in, an export is fetched with the Authorization header (a token never goes in a URL)
  // and saved from a blob under the server's file name; public exports stay plain links.
  async function downloadWithToken(e) {
    const a = e.target.closest('.export a');
    if (!a || !state.token) return;
    e.preventDefault();
    try {
      const r = await fetchOk(a.href);
      const m = /filename="?([^";]+)"?/.exec(r.headers.get('Content-Disposition') || '');
      const url = URL.createObjectURL(await r.blob());
      const tmp = document.createElement('a');
      tmp.href = url;
      tmp.download = m ? m[1] : 'export.' + a.dataset.format;
      document.body.appendChild(tmp);
      tmp.click();
      tmp.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      toast('导出失败: ' + err.message, true);
    }
  }

  // ------------------------------------------------------------------ print (出图)
  /** The URL of GET /api/print for the current view: its bbox (lon/lat, 6 decimals), the
   * layers switched on (the page's ids, in the page's order), the parcels' 着色, and the
   * chosen title, paper size and orientation. */
  function printUrl() {
    const b = map.getBounds();
    const p = new URLSearchParams();
    p.set('bbox', [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(6)).join(','));
    p.set('layers', LAYERS.filter((l) => l.on).map((l) => l.id).join(','));
    p.set('parcel_colour', state.parcelColour);
    p.set('size', $('#print-size').value);
    p.set('orientation', $('#print-orientation').value);
    const title = $('#print-title').value.trim();
    if (title) p.set('title', title);
    return serverUrl('api/print?' + p);
  }

  // Public: the PDF opens in a new tab. Signed in, it is fetched with the Authorization header
  // (a token never goes in a URL) and opened from a blob.
  async function printView(ev) {
    if (ev) ev.preventDefault();
    if (!map) return;
    const url = printUrl();
    LL.lastPrint = url; // what the e2e test reads
    if (!state.token) {
      window.open(url, '_blank', 'noopener');
      return;
    }
    const tab = window.open('', '_blank');
    try {
      const r = await fetchOk(url);
      const blobUrl = URL.createObjectURL(await r.blob());
      if (tab) tab.location.href = blobUrl;
      else window.open(blobUrl, '_blank');
      setTimeout(() => URL.revokeObjectURL(blobUrl), 120000);
    } catch (err) {
      if (tab) tab.close();
      toast('出图失败: ' + err.message, true);
    }
  }

  const KEY_OF = { idle: 'supply_id', unsupplied: 'approval_id', 'low-efficiency': 'parcel_id' };
  const RESERVE_LIMIT = 2000;

  let reserveSeq = 0;
  async function runReserve(ev) {
    if (ev) ev.preventDefault();
    const seq = ++reserveSeq;
    const { kind, params } = reserveParams();
    updateExportLinks();
    const p = new URLSearchParams(params);
    p.set('format', 'geojson');
    p.set('limit', RESERVE_LIMIT);
    $('#reserve-count').textContent = '查询中…';
    let fc;
    try {
      fc = await api(`api/land/${kind}?${p}`);
      if (seq !== reserveSeq) return; // a newer filter was asked for
    } catch (e) {
      $('#reserve-count').textContent = '';
      toast('筛选失败: ' + e.message, true);
      return;
    }
    state.reserve = { kind, features: fc.features, total: fc.numberMatched };
    LL.reserve = { kind, keys: fc.features.map((f) => f.properties[KEY_OF[kind]]), total: fc.numberMatched };
    map.getSource('reserve').setData({ type: 'FeatureCollection', features: fc.features.filter((f) => f.geometry) });
    const areaSum = fc.features.reduce((s, f) => s + (f.properties.unsupplied_mu || f.properties.area_mu || 0), 0);
    $('#reserve-count').textContent = `共 ${fc.numberMatched} 宗${fc.numberMatched > fc.features.length ? `(列出前 ${fc.features.length} 宗)` : ''}, 合计 ${fmt(areaSum, 1)} 亩`;
    renderReserveList();
  }

  function renderReserveList() {
    const { kind, features } = state.reserve;
    const key = KEY_OF[kind];
    const status = (pr) =>
      kind === 'idle'
        ? label('idle_status', pr.status)
        : kind === 'unsupplied'
          ? label('unsupplied_status', pr.status)
          : (pr.reason_codes || []).map((c) => label('low_efficiency_reason', c)).join('、');
    $('#reserve-list').innerHTML = `<table><tr><th>${{ idle: '电子监管号', unsupplied: '批准文号', 'low-efficiency': '地块编号' }[kind]}</th><th>亩</th><th>${kind === 'low-efficiency' ? '原因' : '状态'}</th></tr>${features
      .map((f, i) => {
        const pr = f.properties;
        return `<tr class="row" data-i="${i}" data-key="${esc(pr[key])}"><td>${esc(pr[key])}</td><td>${fmt(pr.unsupplied_mu || pr.area_mu, 1)}</td><td>${esc(status(pr))}</td></tr>`;
      })
      .join('')}</table>`;
  }

  /** The list row of a feature clicked on the map: the list and the map stay in step. */
  function selectReserveRow(key) {
    let hit = null;
    $$('#reserve-list tr.row').forEach((r) => {
      const on = r.dataset.key === String(key);
      r.classList.toggle('sel', on);
      if (on) hit = r;
    });
    if (hit) hit.scrollIntoView({ block: 'nearest' });
  }

  function pickReserveRow(i) {
    const f = state.reserve.features[i];
    if (!f) return;
    $$('#reserve-list tr.row').forEach((r) => r.classList.toggle('sel', r.dataset.i === String(i)));
    if (f.geometry) {
      flyToBox(bboxOf([f]));
      map.getSource('selected').setData(f);
    }
    const pr = f.properties;
    const dk = pr.parcel_id || (pr.parcel_nos && pr.parcel_nos[0]);
    if (dk) openDossier(dk);
  }

  // ------------------------------------------------------------------ dashboard
  const charts = [];
  function fillDashCodes() {
    const level = $('#dash-form select[name=level]').value;
    const sel = $('#dash-form select[name=code]');
    sel.innerHTML = state.zones[level].map((z) => `<option value="${esc(z.code)}">${esc(z.name)}</option>`).join('');
    renderDashboard();
  }

  let dashSeq = 0;
  async function renderDashboard() {
    const seq = ++dashSeq;
    const level = $('#dash-form select[name=level]').value;
    const code = $('#dash-form select[name=code]').value;
    const body = $('#dash-body');
    if (!code || !$('#tab-dashboard').classList.contains('on')) return;
    const [summary, ind, survey] = await Promise.all([
      apiOptional(`api/land/summary?level=${level}`).catch(() => null),
      state.conf.indicators ? apiOptional(`api/indicators?level=${level}`).catch((e) => ({ error: e.message })) : null,
      SURVEY_LEVELS.includes(level) ? apiOptional(`api/survey?level=${level}`).catch((e) => ({ error: e.message })) : null,
      loadECharts(),
    ]);
    if (seq !== dashSeq) return; // the user chose another level or object meanwhile
    charts.splice(0).forEach((c) => c.dispose());
    body.innerHTML = `<div class="dash-card"><h4>三块地(本对象, 亩)</h4><div id="dash-land" class="chart"></div></div><div class="dash-card"><h4>闲置与低效面积排名(亩)</h4><div id="dash-rank" class="chart" style="height:${Math.max(240, ((summary && summary.items) || []).length * 15 + 70)}px"></div></div><div id="dash-survey"></div><div id="dash-ind"></div>`;
    if (summary && summary.items) {
      const me = summary.items.find((x) => x.code === code) || {};
      const c1 = echarts.init($('#dash-land'), null, { renderer: 'svg' });
      c1.setOption({
        animation: false,
        tooltip: {},
        grid: { left: 50, right: 10, top: 10, bottom: 25 },
        xAxis: { type: 'category', data: terms('land_kind').map((t) => t.label), axisLabel: { interval: 0, fontSize: 10 } },
        yAxis: { type: 'value' },
        series: [{ type: 'bar', data: terms('land_kind').map((t) => ({ value: +(me[t.code + '_mu'] || 0).toFixed(1), itemStyle: { color: t.colour } })) }],
      });
      const items = summary.items.slice().sort((a, b) => (a.idle_mu + a.low_efficiency_mu) - (b.idle_mu + b.low_efficiency_mu));
      const c2 = echarts.init($('#dash-rank'), null, { renderer: 'svg' });
      c2.setOption({
        animation: false,
        tooltip: { trigger: 'axis' },
        legend: { bottom: 0 },
        grid: { left: 4, right: 16, top: 5, bottom: 48, containLabel: true },
        yAxis: { type: 'category', data: items.map((x) => x.name || x.code), axisLabel: { fontSize: 10, interval: 0, width: 96, overflow: 'truncate' } },
        xAxis: { type: 'value', splitNumber: 3, axisLabel: { fontSize: 10 } },
        series: [
          { name: label('land_kind', 'idle'), type: 'bar', stack: 's', itemStyle: { color: colour('land_kind', 'idle') }, data: items.map((x) => ({ value: +x.idle_mu.toFixed(1), itemStyle: { color: x.code === code ? mapColour('chart_this') : colour('land_kind', 'idle') } })) },
          { name: label('land_kind', 'low_efficiency'), type: 'bar', stack: 's', itemStyle: { color: colour('land_kind', 'low_efficiency') }, data: items.map((x) => ({ value: +x.low_efficiency_mu.toFixed(1), itemStyle: { color: x.code === code ? mapColour('chart_this_2') : colour('land_kind', 'low_efficiency') } })) },
        ],
      });
      charts.push(c1, c2);
    }
    renderSurvey(survey, level, code);
    renderIndicators(ind, level, code);
  }

  /** 家底调查 (GET /api/survey?level=): the industrial land of every zone of the level by actual
   * use and by place on the chain (亩), this zone's row marked, the city's last; the three lists
   * to reconcile with their counts and downloads (XLSX), and the whole workbook. */
  const SURVEY_LEVELS = ['district', 'platform'];
  function renderSurvey(sv, level, code) {
    const box = $('#dash-survey');
    if (!SURVEY_LEVELS.includes(level)) {
      box.innerHTML = '<div class="dash-card"><h4>家底调查</h4><p class="note">家底调查按行政区或工业平台汇总</p></div>';
      return;
    }
    if (!sv || sv.error) {
      box.innerHTML = `<div class="dash-card"><h4>家底调查</h4><p class="note">${esc((sv && sv.error) || '家底调查暂不可用')}</p></div>`;
      return;
    }
    const useLabel = (c) => label('actual_use', c);
    const chainLabel = (c) => (c === 'cleared' ? other('chain_stage').label : label('chain_stage', c));
    const table = (part, codes, lab) =>
      `<div class="survey-table"><table data-part="${part}"><thead><tr><th>名称</th>${codes.map((c) => `<th>${esc(lab(c))}</th>`).join('')}<th>合计</th></tr></thead><tbody>${sv.rows
        .map(
          (r) =>
            `<tr class="${r.row}${r.code === code ? ' this' : ''}" data-code="${esc(r.code || r.row)}"><td>${esc(r.name)}</td>${codes
              .map((c) => `<td>${fmt(r[part][c].mu, 1)}</td>`)
              .join('')}<td>${fmt(r.total.mu, 1)}</td></tr>`
        )
        .join('')}</tbody></table></div>`;
    const lists = Object.entries(sv.lists)
      .map(
        ([name, l]) =>
          `<li data-list="${esc(name)}">${esc(l.title)}: <b>${fmt(l.count, 0)}</b> <a href="${esc(serverUrl(`api/survey/lists/${name}?level=${level}&format=xlsx`))}" download>下载</a></li>`
      )
      .join('');
    const run = sv.run ? `用地链条据 ${esc(sv.run.as_of)} 三块地认定` : '尚无三块地认定';
    box.innerHTML = `<div class="dash-card" id="survey-card"><h4>家底调查 · 按${esc(sv.level_label)}(亩) <a href="${esc(serverUrl(`api/survey.xlsx?level=${level}`))}" download>导出 XLSX</a></h4>
      <p class="note">${run}; 面积按地块在各${esc(sv.level_label)}内的面积份额计</p>
      <h4>按实际用途</h4>${table('by_use', sv.uses.map((u) => u.code), useLabel)}
      <h4>按用地链条</h4>${table('by_chain', sv.chain.map((c) => c.code), chainLabel)}
      <h4>待核对清单</h4><ul class="survey-lists">${lists}</ul></div>`;
    LL.survey = { level, rows: sv.rows.length, lists: Object.fromEntries(Object.entries(sv.lists).map(([n, l]) => [n, l.count])) };
  }

  /** §7 indicators of one zone (from GET /api/indicators?level=: every zone of the latest
   * year, each indicator with value, previous, change and rank) as a table and two charts. */
  function renderIndicators(ind, level, code) {
    const box = $('#dash-ind');
    if (!ind) {
      box.innerHTML = '<p class="note">§7 指标尚未计算(需导入企业产出并运行评价)</p>';
      return;
    }
    if (ind.error) {
      box.innerHTML = `<p class="note">指标: ${esc(ind.error)}</p>`;
      return;
    }
    const zones = ind.items || [];
    const me = zones.find((z) => z.code === code);
    if (!me) {
      box.innerHTML = '<p class="note">该对象暂无指标数据</p>';
      return;
    }
    const names = (ind.indicators || Object.keys(me.indicators)).filter((n) => me.indicators[n]);
    const indLabel = (n) => label('indicator', n);
    const good = (v, r) => (r.better === 'lower' ? v <= 0 : v >= 0);
    const arrow = (r) =>
      r.change === null || r.change === undefined
        ? '—'
        : `<span class="${good(r.change, r) ? 'up' : 'down'}">${r.change >= 0 ? '▲' : '▼'} ${fmt(Math.abs(r.change), 2)}</span>`;
    box.innerHTML = `<div class="dash-card"><h4>§7 指标(两底线 两降低 四提升) ${esc(ind.year)} 年 · ${esc(me.name)}</h4>
      <div class="kpi" id="kpi"><b>指标</b><b>数值</b><b>同比</b><b>排名</b>${names
        .map((n) => {
          const r = me.indicators[n];
          return `<span data-indicator="${esc(n)}">${esc(indLabel(n))} <span class="note">${esc(r.category || '')}</span></span><span>${r.value === null || r.value === undefined ? '—' : fmt(r.value, 2) + ' ' + esc(r.unit || '')}</span><span>${arrow(r)}</span><span>${r.rank ? r.rank + '/' + zones.length : '—'}</span>`;
        })
        .join('')}</div></div>
      <div class="dash-card"><h4>同比变化(%)</h4><div id="dash-yoy" class="chart"></div></div>
      <div class="dash-card"><h4>排名 <select id="dash-ind-pick">${names.map((n) => `<option value="${esc(n)}">${esc(indLabel(n))}</option>`).join('')}</select></h4><div id="dash-rank-ind" class="chart" style="height:${Math.max(200, zones.length * 16 + 40)}px"></div></div>`;
    const pct = names.map((n) => {
      const r = me.indicators[n];
      const v = r.previous ? (100 * (r.value - r.previous)) / Math.abs(r.previous) : null;
      return { value: v === null ? null : +v.toFixed(2), itemStyle: { color: mapColour(v === null || good(v, r) ? 'better' : 'worse') } };
    });
    const c1 = echarts.init($('#dash-yoy'), null, { renderer: 'svg' });
    c1.setOption({
      animation: false,
      tooltip: { trigger: 'axis', valueFormatter: (v) => (v === null ? '—' : v + '%') },
      grid: { left: 110, right: 20, top: 5, bottom: 20 },
      yAxis: { type: 'category', data: names.map(indLabel), axisLabel: { fontSize: 10 } },
      xAxis: { type: 'value' },
      series: [{ type: 'bar', data: pct }],
    });
    const c2 = echarts.init($('#dash-rank-ind'), null, { renderer: 'svg' });
    const drawRank = () => {
      const n = $('#dash-ind-pick').value;
      const rows = zones
        .filter((z) => z.indicators[n] && z.indicators[n].value !== null)
        .sort((a, b) => a.indicators[n].value - b.indicators[n].value);
      c2.setOption({
        animation: false,
        tooltip: { trigger: 'axis' },
        grid: { left: 4, right: 20, top: 5, bottom: 20, containLabel: true },
        yAxis: { type: 'category', data: rows.map((z) => z.name || z.code), axisLabel: { fontSize: 10, interval: 0, width: 96, overflow: 'truncate' } },
        xAxis: { type: 'value', name: (me.indicators[n] || {}).unit || '' },
        series: [{ type: 'bar', data: rows.map((z) => ({ value: +z.indicators[n].value.toFixed(2), itemStyle: { color: mapColour(z.code === code ? 'chart_this' : 'chart_other') } })) }],
      }, true);
    };
    const first = names.find((n) => me.indicators[n].value !== null && me.indicators[n].value !== undefined);
    if (first) $('#dash-ind-pick').value = first;
    drawRank();
    $('#dash-ind-pick').addEventListener('change', drawRank);
    charts.push(c1, c2);
  }

  // ------------------------------------------------------------------ wiring
  function wire() {
    $$('.tabs button').forEach((b) =>
      b.addEventListener('click', () => {
        $$('.tabs button').forEach((x) => x.classList.toggle('on', x === b));
        $$('.tab').forEach((t) => t.classList.toggle('on', t.id === 'tab-' + b.dataset.tab));
        if (b.dataset.tab === 'dashboard') renderDashboard();
        announce('tab', { tab: b.dataset.tab });
        if (b.dataset.tab === 'reserve') {
          updateExportLinks();
          if (!state.reserve.total) runReserve();
        }
      })
    );
    $('#layer-list').addEventListener('change', (e) => {
      const box = e.target.closest('.layer');
      if (e.target.type === 'checkbox') setLayerVisible(box.dataset.layer, e.target.checked);
      if (e.target.type === 'radio') setParcelColour(e.target.value).catch((err) => toast(err.message, true));
    });
    $('#print-form').addEventListener('submit', printView);
    $('#search').addEventListener('submit', doSearch);
    $('#search-q').addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => doSearch(), 250);
    });
    $('#search-results').addEventListener('click', (e) => {
      const li = e.target.closest('li[data-i]');
      if (li) pickHit(+li.dataset.i);
    });
    $('#sign-in').addEventListener('click', signIn);
    $('#token').addEventListener('keydown', (e) => e.key === 'Enter' && signIn());
    $('#sign-out').addEventListener('click', signOut);
    $('#dossier-close').addEventListener('click', () => {
      $('#dossier').hidden = true;
      state.dossierFor = null;
      map.getSource('selected').setData({ type: 'FeatureCollection', features: [] });
    });
    $('#reserve-form').addEventListener('submit', runReserve);
    $('#reserve-form select[name=kind]').addEventListener('change', () => {
      fillStatus();
      runReserve();
    });
    $('#reserve-form').addEventListener('change', (e) => e.target.name !== 'kind' && updateExportLinks());
    $('#reserve-form .export').addEventListener('click', downloadWithToken);
    $$('.draw button').forEach((b) => b.addEventListener('click', () => setDrawMode(b.dataset.draw)));
    $('#reserve-list').addEventListener('click', (e) => {
      const tr = e.target.closest('tr.row');
      if (tr) pickReserveRow(+tr.dataset.i);
    });
    $('#dash-form select[name=level]').addEventListener('change', fillDashCodes);
    $('#dash-form select[name=code]').addEventListener('change', () => {
      const level = $('#dash-form select[name=level]').value;
      const z = state.zones[level].find((x) => x.code === $('#dash-form select[name=code]').value);
      if (z && map) map.fitBounds([[z.bbox[0], z.bbox[1]], [z.bbox[2], z.bbox[3]]], { padding: 40, duration: 600 });
      renderDashboard();
    });
    window.addEventListener('resize', () => charts.forEach((c) => c.resize()));
  }

  window.addEventListener('error', (e) => LL.errors.push(String(e.message)));
  window.addEventListener('unhandledrejection', (e) => LL.errors.push(String(e.reason && e.reason.message ? e.reason.message : e.reason)));

  async function start() {
    VOCAB = (await api('api/vocabulary')).vocabularies;
    // the page's own markup names codes by data-vocabulary="name:code"; the labels come from here
    $$('[data-vocabulary]').forEach((el) => {
      const [name, code] = el.dataset.vocabulary.split(':');
      el.textContent = label(name, code);
    });
    wire();
    fillStatus();
    renderLayerList();
    await refreshRole();
    state.conf = await api('app-config.json').catch(() => ({}));
    await buildMap();
    map.on('dblclick', onDblClick);
    map.on('sourcedata', (e) => {
      if (e.sourceId === (sourceInfo.parcels || {}).id && e.isSourceLoaded && state.tax) applyTaxState();
    });
  }

  start().catch((e) => {
    LL.errors.push('start: ' + e.message);
    toast('页面初始化失败: ' + e.message, true);
    console.error(e);
  });
})();
