// Drives the admin web UI in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core from target/tools/ui) for gateway/tests/ui.rs, which starts the gateway, the
// pods and the traffic and passes everything in the environment:
//   UI_MODE      full | auth
//   UI_ADMIN     http://127.0.0.1:PORT (the admin listener)
//   UI_TOKEN     the admin token
//   UI_TOOLS     directory holding node_modules/playwright-core
//   UI_CHROMIUM  the browser binary
//   UI_SHOTS     directory for screenshots
//   full mode:   UI_FAULT_POD (the stable pod to break, ip:port), UI_BAD_CANARY (canary ip:port)
// Every wait is bounded; any failure takes a screenshot, prints why and exits 1.
import { createRequire } from 'node:module';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const MODE = env('UI_MODE');
const ADMIN = env('UI_ADMIN');
const TOKEN = env('UI_TOKEN');
const SHOTS = env('UI_SHOTS');
mkdirSync(SHOTS, { recursive: true });
// This mode's screenshots of an earlier run would pass for this one's.
for (const f of readdirSync(SHOTS)) if (f.startsWith(`${MODE}-`)) rmSync(join(SHOTS, f));
const require = createRequire(join(env('UI_TOOLS'), 'package.json'));
const { chromium } = require('playwright-core');

// The whole run is bounded too, whatever hangs.
const watchdog = setTimeout(() => {
  console.error('FAIL: the browser test did not finish within 150 s');
  process.exit(1);
}, 150_000);

const log = (...a) => console.log('[ui]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Polls `probe` (every 200 ms) until it returns a truthy value, for at most `ms`.
async function until(what, probe, ms = 10_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not seen within ${ms} ms (last: ${JSON.stringify(last)})`);
    await sleep(200);
  }
}

const num = (text) => {
  const m = /-?[0-9]+(\.[0-9]+)?/.exec(String(text || '').replace(/,/g, ''));
  return m ? Number(m[0]) : NaN;
};

async function api(path, init) {
  const r = await fetch(ADMIN + path, init);
  return { status: r.status, body: await r.json().catch(() => null) };
}

let browser;
let page;
let step = 'start';
const shots = [];
async function shot(name) {
  const file = join(SHOTS, `${MODE}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
  log('screenshot', file);
}

async function text(sel) {
  const el = await page.$(sel);
  return el ? (await el.textContent()).trim() : null;
}

async function full() {
  const FAULT = env('UI_FAULT_POD');
  const CANARY = env('UI_BAD_CANARY');

  step = 'every section renders real numbers';
  await page.goto(ADMIN + '/ui', { waitUntil: 'load', timeout: 15_000 });
  await until('the live pill', async () => (await text('#poll')) === 'LIVE');
  await until('route rates', async () => {
    for (const r of ['matches', 'live', 'stats']) {
      const rate = num(await text(`tr[data-route="${r}"] [data-field="rate"]`));
      const p99 = num(await text(`tr[data-route="${r}"] [data-field="p99"]`));
      const err = await text(`tr[data-route="${r}"] [data-field="error_rate"]`);
      if (!(rate > 0 && p99 > 0 && /%$/.test(err || ''))) return false;
    }
    return true;
  }, 15_000);
  await until('total rate in the header', async () => num(await text('#kpi-rate .value')) > 0);
  await until('every pod healthy with a share', async () => {
    const rows = await page.$$eval('tr[data-pod]', (trs) => trs.map((t) => ({
      pod: t.dataset.pod, state: t.dataset.state, share: t.querySelector('[data-field="share"]').textContent.trim(),
    })));
    return rows.length === 4 && rows.every((r) => r.state === 'healthy' && /[0-9]%$/.test(r.share)) && rows;
  });
  await until('the function serves a share', async () => {
    const share = num(await text('tr[data-function="live-fn"] [data-field="share"]'));
    return share > 0 && share <= 100;
  }, 15_000);
  await until('the release at 20 % with both versions counted', async () => {
    const w = await text('[data-release="v2"] [data-field="weight"]');
    const st = await page.$$eval('[data-release="v2"] tr[data-version] td:nth-child(2)', (tds) => tds.map((t) => Number(t.textContent)));
    return /^20%/.test(w || '') && st.length === 2 && st.every((n) => n > 0);
  });
  if ((await text('[data-release="v2"] [data-field="phase"]')) !== 'progressing') throw new Error('release not progressing');
  const gen = await text('#config [data-field="generation"]');
  if (gen !== '1') throw new Error(`config generation shown ${gen}`);
  if (!/none since start/.test((await text('#config [data-field="reload"]')) || '')) throw new Error('reload line');
  await shot('01-overview');

  step = 'a button without the token fails with a clear message';
  await page.click('[data-release="v2"] button[data-action="rollback"]');
  const refusal = await until('the 401 message', async () => {
    const m = await page.$('[data-release="v2"] .rel-msg[data-kind="error"]');
    const t = m && (await m.textContent());
    return t && /401/.test(t) && /token/i.test(t) && t;
  });
  log('refusal:', refusal);
  const still = await api('/releases/v2');
  if (still.body.weight !== 20) throw new Error(`weight changed without a token: ${still.body.weight}`);
  await shot('02-no-token');

  step = 'a failing pod shows as ejected within a few seconds';
  const t0 = Date.now();
  let r = await fetch(`http://${FAULT}/_pod/config`, { method: 'POST', body: '{"error_rate": 1.0}' });
  if (r.status !== 200) throw new Error(`pod config: ${r.status}`);
  // The canary turns bad too (slow and failing a third of its answers): the release card shows it.
  r = await fetch(`http://${CANARY}/_pod/config`, { method: 'POST', body: '{"error_rate": 0.3, "latency_ms": 40}' });
  if (r.status !== 200) throw new Error(`canary config: ${r.status}`);
  const ejected = await until('the pod ejected', async () => {
    const row = await page.$(`tr[data-pod="${FAULT}"][data-state="ejected"]`);
    return row && (await row.textContent());
  }, 10_000);
  log(`ejected shown after ${Date.now() - t0} ms:`, ejected.replace(/\s+/g, ' '));
  if (!/left · until [0-9]{2}:[0-9]{2}:[0-9]{2}/.test(ejected)) throw new Error(`no "until" on the ejected pod: ${ejected}`);
  await until('the error lines', async () => {
    const rows = await page.$$eval('#errors tbody tr', (trs) => trs.map((t) => t.textContent));
    return rows.length > 0 && rows.some((t) => t.includes('500')) && rows.length;
  });
  await until('the canary failing in the comparison', async () =>
    num(await text('[data-release="v2"] tr[data-version="canary"] [data-field="error_rate"]')) > 0, 10_000);
  await shot('03-bad-pod-and-canary');

  step = 'with the token, set weight then rollback';
  await page.fill('#token', TOKEN);
  await page.click('#token-save');
  await until('the token taken', async () => /token set/.test((await text('#token-state')) || ''));
  await page.fill('[data-release="v2"] input[data-field="weight-input"]', '35');
  await page.click('[data-release="v2"] button[data-action="weight"]');
  await until('weight 35 % shown', async () =>
    /^35%/.test((await text('[data-release="v2"] [data-field="weight"]')) || '') &&
    (await text('[data-release="v2"] [data-field="phase"]')) === 'paused');
  await page.click('[data-release="v2"] button[data-action="rollback"]');
  await until('rolled back at 0 % shown', async () => {
    const w = await text('[data-release="v2"] [data-field="weight"]');
    const phase = await text('[data-release="v2"] [data-field="phase"]');
    const msg = await page.$('[data-release="v2"] .rel-msg[data-kind="ok"]');
    return /^0%/.test(w || '') && phase === 'rolled back' && msg;
  });
  const after = await api('/releases/v2');
  if (after.body.weight !== 0 || after.body.state !== 'rolled_back') {
    throw new Error(`after the click: ${JSON.stringify({ weight: after.body.weight, state: after.body.state })}`);
  }
  await shot('04-rolled-back');
}

async function auth() {
  step = 'reads need the token: the page asks for it and shows nothing';
  const resp = await page.goto(ADMIN + '/ui', { waitUntil: 'load', timeout: 15_000 });
  if (resp.status() !== 401) throw new Error(`/ui without a token answered ${resp.status()}`);
  const asked = await until('the token prompt', async () => {
    const b = await page.$('#banner:not([hidden])');
    const t = b && (await b.textContent());
    return t && /token/i.test(t) && t;
  });
  log('prompt:', asked);
  if ((await page.$$('tr[data-route]')).length !== 0) throw new Error('routes shown without the token');
  await shot('01-asks-for-token');

  step = 'a wrong token is refused, clearly';
  await page.fill('#token', 'not-the-token');
  await page.click('#token-save');
  await until('the refusal', async () => /refused/i.test((await text('#banner')) || ''));

  step = 'the right token shows the data';
  await page.fill('#token', TOKEN);
  await page.click('#token-save');
  await until('routes with numbers', async () => num(await text('tr[data-route="matches"] [data-field="rate"]')) > 0, 15_000);
  if (!(await page.$('#banner[hidden]'))) throw new Error('the token prompt stayed up');
  await shot('02-with-token');
}

let failed = false;
try {
  browser = await chromium.launch({
    executablePath: env('UI_CHROMIUM'),
    headless: true,
    timeout: 30_000,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (e) => { console.error('page error:', e.message); failed = true; });
  page.on('console', (m) => { if (m.type() === 'error') console.error('console error:', m.text()); });
  if (MODE === 'full') await full();
  else if (MODE === 'auth') await auth();
  else throw new Error(`unknown UI_MODE ${MODE}`);
  if (failed) throw new Error('the page threw (see "page error" above)');
  console.log(JSON.stringify({ ok: true, mode: MODE, screenshots: shots }));
} catch (e) {
  console.error(`FAIL at "${step}": ${e.message}`);
  if (page) await shot('failure').catch(() => {});
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  clearTimeout(watchdog);
}
