// Shared by the browser test (console.mjs): the environment it runs in, the
// watch on console errors and foreign requests, steps, screenshots, sign-in,
// sending traces through the real OpenTelemetry Python SDK, and the API as
// the signed-in user.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
const need = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`console.mjs: the environment variable ${name} is required`);
    process.exit(2);
  }
  return v;
};
export const BASE = need('FLUO_URL').replace(/\/$/, '');
export const TENANT = need('FLUO_TENANT');
export const ADMIN = { email: need('FLUO_ADMIN_EMAIL'), password: need('FLUO_ADMIN_PASSWORD') };
export const VIEWER = { email: need('FLUO_VIEWER_EMAIL'), password: need('FLUO_VIEWER_PASSWORD') };
export const INGEST_KEY = need('FLUO_INGEST_KEY');
export const OTLP_GRPC = need('FLUO_OTLP_GRPC');
export const PYTHON = need('FLUO_PYTHON');
export const SEND_PY = need('FLUO_SEND_PY');
export const WEBHOOK_URL = need('FLUO_WEBHOOK_URL'); // a receiver on loopback that answers 200
export const SHOTS = path.resolve(process.env.FLUO_SCREENSHOTS || path.join(here, '..', '..', 'docs', 'screenshots'));
export const CHROMIUM = process.env.FLUO_CHROMIUM || '/usr/bin/chromium';
// A fresh server gets the template's own name; FLUO_TEST_UNIQUE=1 makes reruns on one server possible
// (except the editor's save of the payments template, whose source declares the template's name: a rule has one name).
export const SUFFIX = process.env.FLUO_TEST_UNIQUE ? `-${Date.now().toString(36)}` : '';
export const RULE = `payments-fraud-check${SUFFIX}`;
export const KEY_NAME = `browser-test-collector${SUFFIX}`;
export const MESSAGE = 'payment charged without a fraud check';
export const TIMEOUT = 15_000;

mkdirSync(SHOTS, { recursive: true });
export const started = Date.now();
export const problems = [];
export const dialogs = []; // native dialogs (confirm) seen, accepted
let currentStep = '(setup)';

/** Console errors a step expects (e.g. the browser's own line for a 400 the page shows): each forgives one. */
const expected = [];
export function expectConsoleError(pattern) {
  expected.push(pattern);
}

export function watch(page, label) {
  page.on('console', (m) => {
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    const forgiven = expected.findIndex((re) => re.test(m.text()));
    if (forgiven >= 0) return void expected.splice(forgiven, 1);
    const url = m.location()?.url ?? '';
    problems.push(`[${label}] ${currentStep}: console ${m.type()}: ${m.text()}${url ? ` (${url})` : ''}`);
  });
  page.on('pageerror', (e) => problems.push(`[${label}] ${currentStep}: page error: ${e.message}`));
  // Everything comes from this FLUO: no CDN, no font service, no third party.
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(`${BASE}/`) && !url.startsWith('data:')) problems.push(`[${label}] ${currentStep}: request to another origin: ${url}`);
  });
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.accept();
  });
}

export async function step(name, fn) {
  currentStep = name;
  const t0 = Date.now();
  process.stdout.write(`• ${name} … `);
  try {
    await fn();
    console.log(`ok (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    console.log('FAILED');
    throw Object.assign(e instanceof Error ? e : new Error(String(e)), { step: name });
  }
}

export async function shot(page, name) {
  const vp = page.viewportSize();
  await page.evaluate(() => document.querySelectorAll('.toast').forEach((t) => t.remove())); // transient noise
  await page.screenshot({ path: path.join(SHOTS, `${name}-${vp.width}x${vp.height}.png`) });
}

export async function signIn(page, who, { screenshot } = {}) {
  await page.goto(`${BASE}/login`);
  const tenant = page.getByLabel('Tenant (name or ID)');
  await tenant.click();
  await tenant.fill('');
  await page.keyboard.type(TENANT);
  await page.keyboard.press('Tab');
  await page.keyboard.type(who.email);
  if (screenshot) await shot(page, 'login');
  await page.keyboard.press('Tab');
  await page.keyboard.type(who.password);
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/signals(\?|$)/, { timeout: TIMEOUT });
}

/** Sends traces through the real OpenTelemetry Python SDK exporter (tests/otel/send.py). */
export function sendTraces(spec) {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [SEND_PY, '--endpoint', OTLP_GRPC, '--protocol', 'grpc', '--key', INGEST_KEY, '--spec', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`send.py exited ${code}: ${err.trim()}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()));
      } catch (e) {
        reject(new Error(`send.py printed no JSON: ${out} ${err}`));
      }
    });
    child.stdin.end(JSON.stringify(spec));
  });
}

export function checkoutTrace({ fraudCheck }) {
  const spans = [
    { id: 'root', name: 'POST /checkout', kind: 'server', parent: null, start_ms: 0, duration_ms: 140, attributes: { 'http.route': '/checkout', 'http.response.status_code': 200 } },
    { id: 'cart', name: 'cart.load', kind: 'internal', parent: 'root', start_ms: 5, duration_ms: 20, service: 'checkout' },
    { id: 'charge', name: 'payment.charge_card', kind: 'client', parent: 'root', start_ms: 60, duration_ms: 55, service: 'payments', attributes: { amount: 4200, currency: 'EUR' } },
  ];
  if (fraudCheck) spans.push({ id: 'fraud', name: 'payment.fraud_check', kind: 'client', parent: 'root', start_ms: 30, duration_ms: 20, service: 'risk' });
  return { service: 'checkout', spans };
}

/** An OTLP/JSON document as a file exporter writes it: a charge without a fraud check. */
export function otlpJson() {
  const hex = (n) => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('');
  const traceId = hex(32);
  const root = hex(16);
  const t = BigInt(Date.now()) * 1_000_000n;
  const ns = (ms) => String(t + BigInt(ms) * 1_000_000n);
  const res = (name) => ({ attributes: [{ key: 'service.name', value: { stringValue: name } }] });
  return JSON.stringify(
    {
      resourceSpans: [
        { resource: res('checkout'), scopeSpans: [{ spans: [{ traceId, spanId: root, name: 'POST /checkout', kind: 2, startTimeUnixNano: ns(0), endTimeUnixNano: ns(120) }] }] },
        {
          resource: res('payments'),
          scopeSpans: [{ spans: [{ traceId, spanId: hex(16), parentSpanId: root, name: 'payment.charge_card', kind: 3, startTimeUnixNano: ns(40), endTimeUnixNano: ns(90), attributes: [{ key: 'amount', value: { intValue: '4200' } }] }] }],
        },
      ],
    },
    null,
    2,
  );
}

/** Many auth requests at once (one trace each, all starting together): breaks the concurrency template's limit of 50. */
export function authBurst(n) {
  // Windows are aligned to multiples of their length (10 s): a burst that
  // straddled a boundary would be split between two windows, neither over the
  // limit. Start it where the whole burst (n × 4 ms) fits in one window.
  let base = Date.now();
  const into = base % 10_000;
  if (into + n * 4 + 100 >= 10_000) base += 10_000 - into + 100;
  return {
    traces: Array.from({ length: n }, (_, i) => ({
      service: 'auth',
      base_unix_ms: base,
      spans: [{ id: 'root', name: 'POST /login', kind: 'server', parent: null, start_ms: i * 4, duration_ms: 900 - i * 4, attributes: { 'http.route': '/login', 'http.response.status_code': 200 } }],
    })),
  };
}

/** The API as the signed-in page's user, asked from Node (the page's console stays quiet). */
export async function apiAs(page, method, path, body) {
  const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('fluo.session')).token);
  const res = await fetch(`${BASE}/api/v1${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

export const editorLine = (page, n) => page.locator('.cm-editor .cm-content .cm-line').nth(n - 1);
export const compileStatus = (page) => page.locator('#compile-status');

/** The name of the step running now (for failure reports). */
export const current = () => currentStep;
