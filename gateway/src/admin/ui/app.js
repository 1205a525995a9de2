// Arena admin UI: polls /ui/state every second and draws it; release buttons POST to
// /releases/NAME/ACTION with the admin token (kept in sessionStorage for this tab only).
// Every value from the gateway is escaped before it reaches the page (paths in the error lines
// come from clients).
'use strict';
(function () {
  const TOKEN_KEY = 'arena-admin-token';
  const POLL_MS = 1000;
  const STALE_MS = 4000;
  const POINTS = 150; // five minutes of two-second points

  const $ = (sel, root) => (root || document).querySelector(sel);
  const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  const esc = (v) => String(v === null || v === undefined ? '' : v).replace(/[&<>"']/g, (c) => ESC[c]);
  const isNum = (v) => typeof v === 'number' && isFinite(v);

  let token = '';
  try { token = sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { token = ''; }
  let lastOkAt = 0;
  let lastError = '';
  let serverSkew = 0; // server clock minus ours, ms
  let timer = null;
  let polling = false;

  // ---------------------------------------------------------------- formatting
  function rate(v) {
    if (!isNum(v)) return '–';
    if (v >= 100000) return (v / 1000).toFixed(0) + 'k';
    if (v >= 10000) return (v / 1000).toFixed(1) + 'k';
    if (v >= 100) return v.toFixed(0);
    if (v >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }
  function pct(v) {
    if (!isNum(v)) return '–';
    const p = v * 100;
    if (p === 0) return '0%';
    if (p < 0.01) return '<0.01%';
    if (p < 10) return p.toFixed(2) + '%';
    return p.toFixed(1) + '%';
  }
  function ms(v) {
    if (!isNum(v)) return '–';
    if (v < 1) return v.toFixed(2);
    if (v < 10) return v.toFixed(1);
    if (v < 10000) return v.toFixed(0);
    return (v / 1000).toFixed(1) + 's';
  }
  function secs(v) {
    if (!isNum(v)) return '–';
    return v < 10 ? v.toFixed(1) + ' s' : v < 120 ? v.toFixed(0) + ' s' : (v / 60).toFixed(1) + ' min';
  }
  function clock(unixMs) {
    if (!isNum(unixMs)) return '–';
    const d = new Date(unixMs);
    return d.toTimeString().slice(0, 8);
  }
  function ago(unixMs) {
    if (!isNum(unixMs)) return '';
    const s = Math.max(0, (Date.now() + serverSkew - unixMs) / 1000);
    return secs(s) + ' ago';
  }
  const errClass = (v) => (!isNum(v) ? '' : v >= 0.05 ? 'bad' : v >= 0.005 ? 'warn' : 'ok');
  function bar(share, cls) {
    const w = isNum(share) ? Math.max(0, Math.min(1, share)) * 100 : 0;
    return `<span class="bar ${cls || ''}"><i style="width:${w.toFixed(1)}%"></i></span>`;
  }

  // ---------------------------------------------------------------- sparklines
  function path(vals, n, w, h, max) {
    const pad = 2;
    const x = (i) => (((n - vals.length + i) / Math.max(n - 1, 1)) * w).toFixed(1);
    const y = (v) => (h - pad - (Math.min(v, max) / max) * (h - 2 * pad)).toFixed(1);
    const segs = [];
    let cur = [];
    vals.forEach((v, i) => {
      if (isNum(v)) cur.push(x(i) + ',' + y(v));
      else if (cur.length) { segs.push(cur); cur = []; }
    });
    if (cur.length) segs.push(cur);
    return segs.map((s) => (s.length === 1 ? [s[0], s[0]] : s));
  }
  function spark(series, opts) {
    const o = opts || {};
    const w = o.w || 120;
    const h = o.h || 26;
    const list = o.multi ? series : [{ vals: series, cls: '' }];
    const all = [];
    list.forEach((s) => (s.vals || []).forEach((v) => { if (isNum(v)) all.push(v); }));
    let max = isNum(o.max) ? o.max : Math.max(o.floor || 0, ...all);
    if (!(max > 0)) max = 1;
    const n = Math.max(POINTS, ...list.map((s) => (s.vals || []).length));
    let body = `<line class="base" x1="0" y1="${h - 1}" x2="${w}" y2="${h - 1}"/>`;
    list.forEach((s) => {
      path(s.vals || [], n, w, h, max).forEach((seg) => {
        body += `<polyline class="${s.cls}" points="${seg.join(' ')}"/>`;
      });
    });
    return `<svg class="spark ${o.cls || ''}" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" preserveAspectRatio="none" aria-hidden="true">${body}</svg>`;
  }

  // ---------------------------------------------------------------- token and banner
  function authHeaders(extra) {
    const h = Object.assign({}, extra || {});
    if (token) h.authorization = 'Bearer ' + token;
    return h;
  }
  function showToken() {
    $('#token-state').textContent = token ? 'admin token set (this tab)' : 'no admin token: read-only';
    $('#token-state').className = token ? 'ok' : 'muted';
  }
  function banner(text, kind) {
    const b = $('#banner');
    if (!text) { b.hidden = true; b.textContent = ''; return; }
    b.hidden = false;
    b.className = kind || '';
    b.textContent = text;
  }
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('#token').value.trim();
    if (!v) return;
    token = v;
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* private mode: this page only */ }
    $('#token').value = '';
    showToken();
    pollNow();
  });
  $('#token-clear').addEventListener('click', () => {
    token = '';
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing kept */ }
    showToken();
    pollNow();
  });

  // ---------------------------------------------------------------- polling
  function pollNow() {
    clearTimeout(timer);
    poll();
  }
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const r = await fetch('/ui/state', { headers: authHeaders(), cache: 'no-store' });
      if (r.status === 401 || r.status === 403) {
        const b = await r.json().catch(() => ({}));
        lastError = `${r.status} ${b.error || ''}`;
        banner(
          r.status === 403
            ? `This gateway needs a token for reads but has none configured (${b.message || 'forbidden'}).`
            : token
              ? `The admin token was refused (401: ${b.message || 'unauthorized'}). Enter the right one at the top right.`
              : 'This admin API needs the token for reads (admin.read_token: required). Enter it at the top right.',
          'bad',
        );
        $('#token').focus();
        return;
      }
      if (!r.ok) throw new Error('HTTP ' + r.status);
      const s = await r.json();
      lastOkAt = Date.now();
      lastError = '';
      if (isNum(s.now_ms)) serverSkew = s.now_ms - Date.now();
      banner(s.draining ? 'This gateway is draining (SIGTERM): /readyz answers 503.' : '', 'warn');
      render(s);
    } catch (e) {
      lastError = String((e && e.message) || e);
    } finally {
      polling = false;
      showPoll();
      clearTimeout(timer);
      timer = setTimeout(poll, POLL_MS);
    }
  }
  function showPoll() {
    const p = $('#poll');
    const age = lastOkAt ? Date.now() - lastOkAt : Infinity;
    if (!lastError && age < STALE_MS) {
      p.className = 'pill live';
      p.textContent = 'LIVE';
    } else {
      p.className = 'pill stale';
      p.textContent = lastOkAt
        ? `STALE ${secs(age / 1000)}${lastError ? ' · ' + lastError : ''}`
        : `NO DATA${lastError ? ' · ' + lastError : ''}`;
    }
  }
  function tick() {
    $('#clock').textContent = clock(Date.now() + serverSkew);
    showPoll();
  }
  setInterval(tick, 250);
  tick();

  // ---------------------------------------------------------------- sections
  function setCount(id, text) { $(`#${id} h2 .count`).textContent = text; }

  function render(s) {
    renderTop(s);
    renderRoutes(s);
    renderClusters(s);
    renderReleases(s);
    renderFunctions(s);
    renderConfig(s);
    renderErrors(s);
  }

  function kpi(id, value, unit, sparkHtml, cls) {
    const k = $('#' + id);
    $('.value', k).innerHTML = `${esc(value)}${unit ? `<small>${esc(unit)}</small>` : ''}`;
    $('.value', k).className = 'value ' + (cls || '');
    $('.spark-slot', k).innerHTML = sparkHtml;
  }
  function renderTop(s) {
    const t = (s.total && s.total.live) || {};
    const sp = (s.total && s.total.spark) || {};
    kpi('kpi-rate', rate(t.rate), '', spark(sp.rate, { w: 110, h: 34 }));
    kpi('kpi-err', pct(t.error_rate), '', spark(sp.error_rate, { w: 110, h: 34, cls: 'err', floor: 0.01 }), errClass(t.error_rate));
    kpi('kpi-p50', ms(t.p50_ms), 'ms', '');
    kpi('kpi-p99', ms(t.p99_ms), 'ms', spark(sp.p99_ms, { w: 110, h: 34, cls: 'lat' }));
    const rl = s.reload || {};
    const bad = rl.last_result === 'rejected';
    $('#conf').innerHTML = `config gen <b class="mono">${esc(s.generation)}</b> · last reload ` +
      (rl.last_result
        ? `<b class="${bad ? 'bad' : 'ok'}">${esc(bad ? 'REJECTED' : rl.last_result)}</b> <span class="dim">(${esc(rl.last_trigger || '')})</span>`
        : '<span class="dim">none since start</span>');
  }

  function renderRoutes(s) {
    const routes = s.routes || [];
    setCount('routes', routes.length);
    if (!routes.length) { $('#routes .body').innerHTML = '<div class="empty">no routes configured</div>'; return; }
    let h = '<table><thead><tr><th>route</th><th>cluster</th><th class="num">req/s</th><th></th><th class="num">5xx</th><th></th><th class="num">p50 ms</th><th class="num">p99 ms</th><th></th></tr></thead><tbody>';
    routes.forEach((r) => {
      const l = r.live || {};
      const sp = r.spark || {};
      const tags = [r.release ? `release ${r.release}` : '', r.fallback ? `faas ${r.fallback}` : ''].filter(Boolean).join(' · ');
      h += `<tr data-route="${esc(r.name)}"><td class="name">${esc(r.name)}</td>` +
        `<td>${esc(r.cluster)}${tags ? `<div class="dim" style="font-size:12px">${esc(tags)}</div>` : ''}</td>` +
        `<td class="num big" data-field="rate">${rate(l.rate)}</td><td class="spark-cell">${spark(sp.rate, {})}</td>` +
        `<td class="num big ${errClass(l.error_rate)}" data-field="error_rate">${pct(l.error_rate)}</td><td class="spark-cell">${spark(sp.error_rate, { cls: 'err', floor: 0.01, w: 90 })}</td>` +
        `<td class="num" data-field="p50">${ms(l.p50_ms)}</td><td class="num big" data-field="p99">${ms(l.p99_ms)}</td>` +
        `<td class="spark-cell">${spark(sp.p99_ms, { cls: 'lat' })}</td></tr>`;
    });
    $('#routes .body').innerHTML = h + '</tbody></table>';
  }

  function podState(p, nowMs) {
    const hl = p.health || {};
    if (p.state === 'ejected') {
      const left = hl.ejected_for_s;
      const until = isNum(left) ? clock(nowMs + left * 1000) : '';
      return `<span class="badge st-ejected">ejected</span> <span class="mono until" data-field="ejected-until">${isNum(left) ? `${secs(left)} left · until ${until}` : ''}</span>`;
    }
    if (p.state === 'draining') return '<span class="badge st-draining">draining</span>';
    if (hl.probing) return '<span class="badge st-probing">probing</span>';
    return '<span class="badge st-healthy">healthy</span>';
  }
  function renderClusters(s) {
    const cs = s.clusters || [];
    setCount('clusters', cs.length);
    if (!cs.length) { $('#clusters .body').innerHTML = '<div class="empty">no clusters</div>'; return; }
    let h = '<div class="cards">';
    cs.forEach((c) => {
      const d = c.discovery || {};
      const pods = c.pods || [];
      h += `<div class="card cluster" data-cluster="${esc(c.name)}"><div class="card-head"><span class="name">${esc(c.name)}</span>` +
        `<span class="muted">${esc(c.lb)} · ${pods.length} pods · <b class="mono">${rate(c.rate)}</b> req/s</span>` +
        `<span><b class="ok">${c.healthy} healthy</b>${c.ejected ? ` · <b class="bad">${c.ejected} ejected</b>` : ''}${c.draining ? ` · <b class="warn">${c.draining} draining</b>` : ''}</span>` +
        (d.stale ? `<span class="bad">DNS STALE: ${esc(d.last_result)} ${esc(d.last_error || '')}</span>` : '') +
        (!d.resolved ? '<span class="warn">waiting for discovery</span>' : '') +
        '</div>';
      if (!pods.length) { h += '<div class="empty">no pods</div></div>'; return; }
      h += '<table class="pods"><thead><tr><th>pod</th><th>state</th><th class="num">in flight</th><th class="num">EWMA ms</th><th>utilisation</th><th>share</th><th class="num">req/s</th><th class="num">fail</th><th class="num">ejections</th></tr></thead><tbody>';
      pods.forEach((p) => {
        const hl = p.health || {};
        const util = p.reported_utilization;
        h += `<tr data-pod="${esc(p.address)}" data-state="${esc(p.state)}"><td class="mono">${esc(p.address)}${p.source === 'dns' ? ' <span class="dim">dns</span>' : ''}</td>` +
          `<td data-field="state">${podState(p, s.now_ms)}</td>` +
          `<td class="num">${esc(p.in_flight)}</td><td class="num">${ms(p.ewma_ms)}</td>` +
          `<td>${isNum(util) ? bar(util, util > 0.9 ? 'hot' : util > 0.7 ? 'warm' : '') + `<span class="num">${(util * 100).toFixed(0)}%</span>` : '<span class="dim">not reported</span>'}</td>` +
          `<td data-field="share">${bar(p.share)}<span class="num">${pct(p.share)}</span></td>` +
          `<td class="num">${rate(p.rate)}</td><td class="num ${errClass(p.failure_rate)}">${pct(p.failure_rate)}</td>` +
          `<td class="num">${esc(hl.ejections)}${hl.consecutive_failures ? ` <span class="warn" title="consecutive failures">(${esc(hl.consecutive_failures)} in a row)</span>` : ''}</td></tr>`;
      });
      h += '</tbody></table></div>';
    });
    $('#clusters .body').innerHTML = h + '</div>';
  }

  // Releases: one card per release, its controls built once so typing a weight survives polls.
  function releaseCard(name) {
    const body = $('#releases .body');
    for (const c of body.querySelectorAll('.card.release')) if (c.dataset.release === name) return c;
    const card = document.createElement('div');
    card.className = 'card release';
    card.dataset.release = name;
    card.innerHTML = '<div class="rel-live"></div><div class="rel-controls">' +
      '<button type="button" data-action="pause">Pause</button>' +
      '<button type="button" data-action="resume" class="go">Resume</button>' +
      '<button type="button" data-action="promote" class="go">Promote</button>' +
      '<button type="button" data-action="rollback" class="danger">Rollback</button>' +
      '<span class="sep"></span>' +
      '<input type="number" min="0" max="100" step="0.01" placeholder="%" aria-label="canary weight, percent" data-field="weight-input">' +
      '<button type="button" data-action="weight">Set weight</button>' +
      '</div><div class="rel-msg" role="status" aria-live="polite"></div>';
    card.querySelectorAll('button[data-action]').forEach((b) => b.addEventListener('click', () => act(card, b.dataset.action)));
    $('input', card).addEventListener('keydown', (ev) => { if (ev.key === 'Enter') act(card, 'weight'); });
    body.appendChild(card);
    return card;
  }
  function cmpRow(v, w, worse) {
    w = w || {};
    return `<tr class="${v}" data-version="${v}"><td class="v">${v}</td><td class="num">${esc(w.requests)}</td><td class="num">${esc(w.failures)}</td>` +
      `<td class="num ${worse.err ? 'worse' : ''}" data-field="error_rate">${pct(w.error_rate)}</td><td class="num">${ms(w.p50_ms)}</td>` +
      `<td class="num ${worse.p99 ? 'worse' : ''}" data-field="p99">${ms(w.p99_ms)}</td></tr>`;
  }
  function verdictText(v) {
    if (!v) return '<span class="dim">no verdict yet</span>';
    const kind = v.verdict || '';
    const cls = kind === 'breach' ? 'bad' : kind === 'healthy' ? 'ok' : 'muted';
    let extra = '';
    if (kind === 'breach') extra = ` — ${esc(v.reason || '')}${isNum(v.limit) ? ` (limit ${v.reason === 'error_rate' ? pct(v.limit) : esc(v.limit) + '×'})` : ''}`;
    if (kind === 'insufficient') extra = ` — fewer than ${esc(v.min_requests)} requests per version in the window`;
    return `verdict <b class="${cls}">${esc(kind.toUpperCase())}</b>${extra} <span class="dim">${ago(v.at_ms)}</span>`;
  }
  function renderReleases(s) {
    const rs = s.releases || [];
    setCount('releases', rs.length);
    const body = $('#releases .body');
    const empty = $('.empty', body);
    if (!rs.length) {
      body.querySelectorAll('.card.release').forEach((c) => c.remove());
      if (!empty) body.innerHTML = '<div class="empty">no releases configured</div>';
      else empty.textContent = 'no releases configured';
      return;
    }
    if (empty) empty.remove();
    const names = new Set(rs.map((r) => r.name));
    body.querySelectorAll('.card.release').forEach((c) => { if (!names.has(c.dataset.release)) c.remove(); });
    rs.forEach((r) => {
      const card = releaseCard(r.name);
      const win = r.window || {};
      const st = win.stable || {};
      const ca = win.canary || {};
      const an = r.analysis || {};
      const worse = {
        err: isNum(ca.error_rate) && isNum(st.error_rate) && isNum(an.max_error_rate_delta) && ca.requests > 0 &&
          ca.error_rate - st.error_rate > an.max_error_rate_delta,
        p99: isNum(ca.p99_ms) && isNum(st.p99_ms) && isNum(an.max_p99_ratio) && st.p99_ms > 0 && ca.requests > 0 &&
          ca.p99_ms > st.p99_ms * an.max_p99_ratio && ca.p99_ms - st.p99_ms > 1,
      };
      const sp = r.spark || {};
      const steps = r.steps && r.steps.length ? `step ${r.step ? esc(r.step) : '–'}/${r.steps.length} · ${esc(r.steps.join(' → '))}` : 'manual weight';
      const hist = (r.history || []).slice(-3).reverse().map((t) =>
        `<div>${esc(clock(t.at_ms))} ${esc(t.from)} → <b>${esc(t.to)}</b> at ${esc((t.weight_bp / 100).toString())}% — ${esc(t.reason)}</div>`).join('');
      card.classList.toggle('breach', r.state === 'rolled_back' || (r.last_verdict && r.last_verdict.verdict === 'breach'));
      $('.rel-live', card).innerHTML =
        `<div class="card-head"><span class="name">${esc(r.name)}</span><span class="phase phase-${esc(r.state)}" data-field="phase">${esc(String(r.state).replace('_', ' '))}</span>` +
        `<span class="muted">${esc(r.stable)} → <b style="color:var(--canary)">${esc(r.canary)}</b> · routes ${esc((r.routes || []).join(', '))} · ${esc(r.scope)}</span></div>` +
        '<div class="rel-top">' +
        `<div class="rel-weight" data-field="weight">${esc(r.weight_text)}<small>canary weight</small>${bar(r.weight / 100, 'canary wide')}</div>` +
        '<table class="cmp"><thead><tr><th></th><th class="num">req</th><th class="num">fail</th><th class="num">5xx</th><th class="num">p50 ms</th><th class="num">p99 ms</th></tr></thead><tbody>' +
        cmpRow('stable', st, {}) + cmpRow('canary', ca, worse) + '</tbody></table></div>' +
        '<div class="rel-sparks">' +
        `<div><span>weight</span>${spark(sp.weight, { cls: 'weight', max: 100, w: 110 })}</div>` +
        `<div><span>5xx <span style="color:var(--stable)">stable</span> / <span style="color:var(--canary)">canary</span></span>${spark([{ vals: sp.stable_error_rate, cls: 'stable' }, { vals: sp.canary_error_rate, cls: 'canary' }], { multi: true, floor: 0.01, w: 140 })}</div>` +
        `<div><span>p99 <span style="color:var(--stable)">stable</span> / <span style="color:var(--canary)">canary</span></span>${spark([{ vals: sp.stable_p99_ms, cls: 'stable' }, { vals: sp.canary_p99_ms, cls: 'canary' }], { multi: true, w: 140 })}</div>` +
        '</div>' +
        `<div class="muted" style="font-size:12px">${steps} · window ${esc(an.window)} · min ${esc(an.min_requests)} req · max 5xx delta ${pct(an.max_error_rate_delta)} · max p99 ×${esc(an.max_p99_ratio)} · on failure ${esc(r.on_failure)}</div>` +
        `<div class="rel-verdict">${verdictText(r.last_verdict)}</div>` +
        `<div class="rel-history">${hist}</div>`;
    });
  }

  async function act(card, action) {
    const name = card.dataset.release;
    const msg = $('.rel-msg', card);
    const say = (kind, text) => { msg.dataset.kind = kind; msg.textContent = `${clock(Date.now())} ${text}`; };
    let body = {};
    if (action === 'weight') {
      const v = $('input', card).value.trim();
      if (v === '' || !isFinite(Number(v))) { say('error', 'Give the canary weight in percent (0–100) first.'); return; }
      body = { weight: `${Number(v)}%` };
    }
    if (action === 'rollback') body = { reason: 'rolled back from the web UI' };
    say('pending', `${action}…`);
    let r;
    let b = {};
    try {
      r = await fetch(`/releases/${encodeURIComponent(name)}/${action}`, {
        method: 'POST',
        headers: authHeaders({ 'content-type': 'application/json' }),
        body: JSON.stringify(body),
        cache: 'no-store',
      });
      b = await r.json().catch(() => ({}));
    } catch (e) {
      say('error', `${action} failed: the gateway did not answer (${(e && e.message) || e}).`);
      return;
    }
    if (r.ok) {
      const rel = b.release || {};
      say('ok', `${action}: done — ${String(rel.state || '').replace('_', ' ')} at ${rel.weight_text || '?'}.`);
      if (action === 'weight') $('input', card).value = '';
      pollNow();
      return;
    }
    const why = b.message || b.error || r.statusText;
    if (r.status === 401) {
      say('error', token
        ? `${action} refused (401 unauthorized): ${why}. The token entered is wrong: enter the right one at the top right.`
        : `${action} refused (401 unauthorized): ${why}. Release controls need the admin token: enter it at the top right.`);
      $('#token').focus();
    } else if (r.status === 403) {
      say('error', `${action} refused (403 forbidden): ${why}`);
    } else if (r.status === 409) {
      say('error', `${action} refused (409): ${why}`);
    } else {
      say('error', `${action} failed (${r.status}): ${why}`);
    }
  }

  function renderFunctions(s) {
    const fs = s.functions || [];
    setCount('functions', fs.length);
    if (!fs.length) { $('#functions .body').innerHTML = '<div class="empty">no functions configured</div>'; return; }
    let h = '<table><thead><tr><th>function</th><th>in flight / limit</th><th class="num">calls/s</th><th></th><th class="num">share</th><th class="num">errors</th><th class="num">saturated/s</th></tr></thead><tbody>';
    fs.forEach((f) => {
      const sat = f.saturation;
      h += `<tr data-function="${esc(f.name)}"><td><span class="name" style="font-weight:700">${esc(f.name)}</span> <span class="dim">${esc(f.kind)}</span>` +
        `<div class="dim" style="font-size:12px">${f.routes && f.routes.length ? 'for ' + esc(f.routes.join(', ')) : 'no route falls back to it'}</div></td>` +
        `<td>${bar(sat, sat >= 0.9 ? 'hot' : sat >= 0.7 ? 'warm' : '')}<span class="num">${esc(f.in_flight)} / ${esc(f.max_concurrency)}</span></td>` +
        `<td class="num big">${rate(f.rate)}</td><td class="spark-cell">${spark((f.spark || {}).rate, { w: 90 })}</td>` +
        `<td class="num" data-field="share">${pct(f.share)}</td>` +
        `<td class="num ${errClass(f.error_rate)}" data-field="error_rate">${pct(f.error_rate)}</td>` +
        `<td class="num ${f.saturated_rate > 0 ? 'bad' : ''}">${rate(f.saturated_rate)}</td></tr>`;
    });
    $('#functions .body').innerHTML = h + '</tbody></table>';
  }

  function renderConfig(s) {
    const rl = s.reload || {};
    const au = s.auth || {};
    const diags = rl.diagnostics || [];
    const bad = rl.last_result === 'rejected';
    let h = '<dl class="kv">' +
      `<dt>generation in use</dt><dd class="mono" data-field="generation">${esc(s.generation)}</dd>` +
      `<dt>last reload</dt><dd data-field="reload">${rl.last_result
        ? `<b class="${bad ? 'bad' : 'ok'}">${esc(bad ? 'rejected: the running config was kept' : rl.last_result)}</b> <span class="dim">trigger ${esc(rl.last_trigger)}</span>`
        : '<span class="dim">none since start</span>'}</dd>` +
      `<dt>last accepted</dt><dd>${isNum(rl.last_success_unix_s) ? `${esc(clock(rl.last_success_unix_s * 1000))} <span class="dim">${ago(rl.last_success_unix_s * 1000)}</span>` : '–'}</dd>` +
      `<dt>file watch</dt><dd class="dim">${esc(rl.watch_checks)} checks</dd>` +
      `<dt>admin token</dt><dd>${au.token_configured ? 'configured' : '<span class="warn">none configured: controls are refused</span>'} · reads ${au.reads_need_token ? '<b>need it</b>' : 'open'}</dd>` +
      `<dt>gateway</dt><dd class="dim">arena ${esc(s.version)}${s.draining ? ' · <b class="warn">draining</b>' : ''}</dd>` +
      '</dl>';
    if (diags.length) {
      h += `<div style="margin-top:8px">${diags.map((d) =>
        `<div class="diag"><span class="sev ${d.severity === 'error' ? 'bad' : 'warn'}">${esc(d.severity)}</span><span class="mono dim">${esc(d.location)}</span> ${esc(d.message)}${d.hint ? ` <span class="dim">— ${esc(d.hint)}</span>` : ''}</div>`).join('')}</div>`;
    }
    $('#config .body').innerHTML = h;
  }

  function renderErrors(s) {
    const es = s.errors || [];
    setCount('errors', es.length);
    if (!es.length) { $('#errors .body').innerHTML = '<div class="empty">no errors since start</div>'; return; }
    let h = '<table><thead><tr><th>time</th><th class="num">status</th><th>request</th><th>route</th><th>backend</th><th class="num">tries</th><th>error</th><th>detail</th><th>request id</th></tr></thead><tbody>';
    es.forEach((e) => {
      const t = typeof e.ts === 'string' ? e.ts.slice(11, 23) : '';
      h += `<tr><td class="mono">${esc(t)}</td><td class="num bad">${e.status ? esc(e.status) : 'none'}</td>` +
        `<td class="mono path" title="${esc(e.path)}">${esc(e.method)} ${esc(e.path)}</td>` +
        `<td>${esc(e.route || '–')}${e.release ? ` <span class="dim">${esc(e.release)}=${esc(e.version)}</span>` : ''}</td>` +
        `<td class="mono">${esc(e.backend || '–')}</td><td class="num">${esc(e.attempts)}</td>` +
        `<td class="bad">${esc(e.error || '')}</td><td class="detail">${esc(e.detail || '')}</td><td class="mono dim">${esc(e.request_id)}</td></tr>`;
    });
    $('#errors .body').innerHTML = h + '</tbody></table>';
  }

  showToken();
  poll();
})();
