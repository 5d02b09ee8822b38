/* landlink map page: the 目标与任务 tab (annual targets MB and the task table RW).
 * Reads GET /api/targets, /api/targets/{id}/items and /api/tasks; labels and colours from the
 * page's one vocabulary (window.__landlink, set up by app.js). Plain JS, no build step. */
(function () {
  'use strict';

  const LL = window.__landlink;
  const $ = (sel) => document.querySelector(sel);
  const plan = { targets: [], years: [], loaded: false, shown: false };

  const chip = (name, code, text) =>
    `<span class="chip" style="background:${LL.colour(name, code)}">${LL.esc(text || LL.label(name, code))}</span>`;

  /** The targets of the chosen year and level, with the state filter; one request per change. */
  async function loadTargets() {
    const f = $('#target-form');
    if (!plan.years.length) {
      const all = await LL.api('api/targets');
      plan.years = [...new Set(all.items.map((t) => t.ND))].sort((a, b) => b - a);
      f.year.innerHTML = plan.years.map((y) => `<option value="${y}">${y}</option>`).join('');
      const states = ['met', 'on_track', 'behind', 'no_data'];
      f.state.innerHTML =
        '<option value="">全部</option>' +
        states.map((s) => `<option value="${s}">${LL.esc(LL.label('target_state', s))}</option>`).join('');
    }
    if (!plan.years.length) {
      $('#target-summary').textContent = '尚无年度目标：导入 MB 图层（landlink import mb 文件，或 landlink template mb 取得模板）。';
      $('#target-list').innerHTML = '';
      return;
    }
    const q = new URLSearchParams({ year: f.year.value, level: f.level.value });
    const res = await LL.api('api/targets?' + q);
    plan.targets = res.items;
    renderTargets();
  }

  function renderTargets() {
    const f = $('#target-form');
    const rows = plan.targets.filter((t) => !f.state.value || t.state === f.state.value);
    const counts = {};
    plan.targets.forEach((t) => (counts[t.state] = (counts[t.state] || 0) + 1));
    const asOf = plan.targets.length ? plan.targets[0].as_of : '';
    $('#target-summary').innerHTML =
      `${LL.esc(f.year.value)} 年 ${LL.esc(f.level.selectedOptions[0].textContent)} 目标 ${plan.targets.length} 项` +
      (asOf ? `（判断日 ${LL.esc(asOf)}）` : '') +
      '：' +
      Object.keys(counts)
        .map((s) => `${chip('target_state', s)} ${counts[s]}`)
        .join(' ');
    $('#target-items').innerHTML = '';
    $('#target-list').innerHTML =
      '<table><thead><tr><th>对象</th><th>指标</th><th>目标</th><th>实际</th><th>完成率</th><th>状态</th></tr></thead><tbody>' +
      rows
        .map((t) => {
          const withheld = t.withheld ? '<span title="需分析权限">—</span>' : null;
          return (
            `<tr class="row" data-id="${t.id}" title="${LL.esc(t.ZRDW || '')}${t.SM ? ' · ' + LL.esc(t.SM) : ''}">` +
            `<td>${LL.esc(t.zone_name || t.DM)}</td><td>${LL.esc(t.indicator_label)}</td>` +
            `<td>${LL.fmt(t.MBZ)} ${LL.esc(t.unit || '')}</td>` +
            `<td>${withheld || LL.fmt(t.actual)}</td>` +
            `<td>${withheld || (t.completion === null || t.completion === undefined ? '—' : LL.fmt(t.completion, 1) + '%')}</td>` +
            `<td>${withheld || chip('target_state', t.state, t.state_label)}${t.items ? ` <small>${t.items} 项</small>` : ''}</td></tr>`
          );
        })
        .join('') +
      '</tbody></table>';
  }

  /** What counts towards a 盘活 / 淘汰 target: each item, why, and the change that made it count. */
  async function showItems(id) {
    const res = await LL.api(`api/targets/${id}/items`);
    const t = res.target;
    const head = `<h4>${LL.esc(t.zone_name || t.DM)} · ${LL.esc(t.indicator_label)}：计入 ${res.count} 项</h4>`;
    if (!res.items.length) {
      $('#target-items').innerHTML = head + '<p class="note">自基线以来尚无计入项。</p>';
      return;
    }
    $('#target-items').innerHTML =
      head +
      '<table><thead><tr><th>对象</th><th>原因</th><th>亩</th><th>变更</th></tr></thead><tbody>' +
      res.items
        .map((it) => {
          const ch = it.change;
          const change = ch ? `${LL.esc(ch.layer || '')} v${LL.esc(ch.version)} ${LL.esc(ch.who || '')} ${LL.esc((ch.at || '').slice(0, 10))}` : '—';
          return (
            `<tr><td>${LL.esc(it.name || it.item_key)}</td><td>${LL.esc(it.reason_label || it.reason)}</td>` +
            `<td>${it.mu === null || it.mu === undefined ? '—' : LL.fmt(it.mu)}</td><td>${change}</td></tr>`
          );
        })
        .join('') +
      '</tbody></table>';
  }

  async function loadTasks() {
    const f = $('#task-form');
    const q = new URLSearchParams();
    if (f.unit.value.trim()) q.set('unit', f.unit.value.trim());
    if (f.overdue.checked) q.set('overdue', 'true');
    const res = await LL.api('api/tasks' + (q.toString() ? '?' + q : ''));
    $('#task-summary').textContent = f.overdue.checked
      ? `逾期未完成的任务 ${res.count} 项（判断日 ${res.as_of}）`
      : res.count
        ? `任务 ${res.count} 项，其中逾期未完成 ${res.overdue} 项（判断日 ${res.as_of}）`
        : '尚无任务：导入 RW 图层（任务分解表）。';
    $('#task-list').innerHTML = res.count
      ? '<table><thead><tr><th>编号</th><th>工作项目</th><th>牵头单位</th><th>进度要求</th><th>状态</th></tr></thead><tbody>' +
        res.items
          .map((t) => {
            const p = t.properties || t;
            const lead = [].concat(p.QTDW || []).join('、');
            const late = t.overdue ? ' ' + chip('task_deadline', 'overdue') : '';
            return (
              `<tr title="${LL.esc(p.JTYQ || '')}"><td>${LL.esc(p.RWDM)}</td>` +
              `<td>${p.SJRW ? '　' : ''}${LL.esc(p.GZXM)}</td><td>${LL.esc(lead)}</td>` +
              `<td>${LL.esc(p.JDYQ || '')}</td><td>${chip('task_status', t.status, t.status_label)}${late}</td></tr>`
            );
          })
          .join('') +
        '</tbody></table>'
      : '';
  }

  const fail = (e) => LL.toast(e.message, true);

  function show() {
    plan.shown = true;
    loadTargets().catch(fail);
    loadTasks().catch(fail);
  }

  function wire() {
    $('#target-form').addEventListener('change', (e) =>
      e.target.name === 'state' ? renderTargets() : loadTargets().catch(fail)
    );
    $('#target-list').addEventListener('click', (e) => {
      const tr = e.target.closest('tr.row');
      if (!tr) return;
      document.querySelectorAll('#target-list tr.sel').forEach((x) => x.classList.remove('sel'));
      tr.classList.add('sel');
      showItems(+tr.dataset.id).catch(fail);
    });
    $('#task-form').addEventListener('change', () => loadTasks().catch(fail));
    $('#task-form').addEventListener('submit', (e) => {
      e.preventDefault();
      loadTasks().catch(fail);
    });
    document.addEventListener('landlink:tab', (e) => e.detail.tab === 'plan' && show());
    // a token that may see tax actuals changes what the table shows
    document.addEventListener('landlink:role', () => plan.shown && loadTargets().catch(fail));
  }

  wire();
})();
