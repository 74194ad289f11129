// Browser test of the FLUO console against a real server (see the env variables below).
// Run: FLUO_URL=… FLUO_TENANT=… … npm test   (tests/browser.rs starts a server and sets them).
// It drives the console the way a user does (roles, labels, keyboard), asserts what is shown,
// saves screenshots, and fails on any console error or warning or any request to another origin.
// The environment, steps, sign-in and trace sending are in support.mjs.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import {
  BASE,
  TENANT,
  ADMIN,
  VIEWER,
  WEBHOOK_URL,
  SHOTS,
  CHROMIUM,
  SUFFIX,
  RULE,
  KEY_NAME,
  MESSAGE,
  TIMEOUT,
  started,
  problems,
  dialogs,
  watch,
  step,
  shot,
  signIn,
  sendTraces,
  checkoutTrace,
  otlpJson,
  authBurst,
  apiAs,
  editorLine,
  compileStatus,
  current,
  here,
  expectConsoleError,
} from './support.mjs';

const TRACE_LINK = 'https://traces.example/trace/{trace_id}';

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    headless: true,
  });
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT);
  watch(page, 'admin 1440');
  let ruleUrl = '';
  let firstSession = null;
  let signalUrl = '';
  let checkout = null; // the first two checkout traces sent: [with a fraud check, without]
  const WINDOW_RULE = `auth-concurrency${SUFFIX}`;

  try {
    await step('sign in as admin (typing, Enter submits)', async () => {
      await signIn(page, ADMIN, { screenshot: true });
      const nav = page.getByRole('navigation', { name: 'Main' });
      await nav.getByText(ADMIN.email.toLowerCase()).waitFor();
      await nav.getByText(TENANT).waitFor();
      await nav.getByLabel('Role: admin').waitFor();
      firstSession = await page.evaluate(() => JSON.parse(sessionStorage.getItem('fluo.session')));
    });

    await step('template gallery → "Payments need a fraud check" → Use', async () => {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rules' }).click();
      await page.getByRole('heading', { name: 'Rules', level: 1 }).waitFor();
      await page.getByRole('link', { name: 'From template' }).click();
      const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'Payments need a fraud check' }) });
      await card.getByText('payment.fraud_check').first().waitFor();
      await card.getByRole('button', { name: /^Use template/ }).click();
      await page.waitForURL(/\/rules\/new\?template=payments-fraud-check/);
      const name = page.getByLabel('Rule name');
      assert.equal(await name.inputValue(), 'payments-fraud-check');
      if (RULE !== 'payments-fraud-check') await name.fill(RULE);
      await editorLine(page, 3).getByText('payments-fraud-check').waitFor();
      await compileStatus(page).getByText(/Compiles: rule/).waitFor({ timeout: 30_000 });
    });

    await step('delete a comma → compile error at its line (diagnostic, gutter, "Line N")', async () => {
      const line4 = editorLine(page, 4);
      assert.match(await line4.innerText(), /severity: "critical",$/);
      await line4.click();
      await page.keyboard.press('End');
      await page.keyboard.press('Backspace');
      assert.match(await line4.innerText(), /severity: "critical"$/);
      const status = compileStatus(page);
      await status.getByText(/^Line \d+: /).waitFor({ timeout: 30_000 });
      const text = await status.innerText();
      const n = Number(/Line (\d+):/.exec(text)[1]);
      assert.equal(n, 5, `the error should be on line 5 (after the missing comma): ${text}`);
      await editorLine(page, n).locator('.cm-lintRange-error').first().waitFor();
      const marker = page.locator('.cm-gutter-lint .cm-lint-marker-error').first();
      await marker.waitFor();
      const [mb, lb] = [await marker.boundingBox(), await editorLine(page, n).boundingBox()];
      assert.ok(Math.abs(mb.y + mb.height / 2 - (lb.y + lb.height / 2)) < lb.height, 'the gutter marker is on the error line');
    });

    await step('fix it → compiles again', async () => {
      await page.keyboard.type(',');
      await compileStatus(page).getByText(/Compiles: rule/).waitFor({ timeout: 30_000 });
      assert.equal(await page.locator('.cm-lintRange-error').count(), 0);
    });

    await step('Test: paste an OTLP/JSON trace, run, see the violation and the witness span', async () => {
      await page.getByRole('tab', { name: 'Test', exact: true }).click();
      await page.getByLabel('Traces (OTLP/JSON)').fill(otlpJson());
      await page.getByRole('button', { name: 'Run test' }).click();
      const result = page.locator('article.result').first();
      await result.getByText('1 violation').waitFor({ timeout: 30_000 });
      await result.getByText(MESSAGE).waitFor();
      const witness = result.getByRole('button', { name: /payment\.charge_card.*witness span/ });
      await witness.waitFor();
      assert.match(await witness.getAttribute('class'), /wf-witness/);
      const other = result.getByRole('button', { name: /POST \/checkout/ });
      assert.doesNotMatch(await other.getAttribute('class'), /wf-witness/);
      await shot(page, 'editor');
    });

    await step('save with a message → version 1', async () => {
      await page.getByRole('button', { name: 'Save rule' }).click();
      const dialog = page.getByRole('dialog', { name: 'Save rule' });
      await dialog.getByLabel(/version message/).fill('first version, from the template');
      await page.keyboard.press('Enter');
      await page.waitForURL(/\/rules\/r_[^/?]+$/);
      ruleUrl = page.url();
      await page.getByRole('heading', { level: 1, name: RULE }).waitFor();
      await page.getByText('active: v1').waitFor();
    });

    await step('edit (severity high) and save again → version 2', async () => {
      const line4 = editorLine(page, 4);
      await line4.waitFor();
      await line4.click();
      await page.keyboard.press('End');
      await page.keyboard.press('Shift+Home');
      await page.keyboard.insertText('severity: "high",');
      assert.match(await line4.innerText(), /^\s*severity: "high",$/);
      await compileStatus(page).getByText(/Compiles: rule.*· high ·/).waitFor({ timeout: 30_000 });
      await page.getByRole('button', { name: 'Save version' }).click();
      await page.getByRole('dialog', { name: 'Save version 2' }).getByLabel(/version message/).fill('high, not critical: pages at night are for outages');
      await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
      await page.getByText('active: v2').waitFor();
      await page.getByText('latest: v2').waitFor();
    });

    await step('rules list shows the rule', async () => {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rules' }).click();
      const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: RULE, exact: true }) });
      await row.waitFor();
      await row.getByText('high').waitFor();
      await row.getByText('v2').waitFor();
      assert.equal(await row.getByRole('switch').isChecked(), true);
      await shot(page, 'rules');
    });

    await step('signals inbox: send traces with the OpenTelemetry SDK, the signal appears live', async () => {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Signals' }).click();
      await page.getByRole('heading', { name: 'Signals', level: 1 }).waitFor();
      await page.locator('.live-live').waitFor();
      await page.evaluate(() => (window.__noReload = true));
      const sent = await sendTraces({ traces: [checkoutTrace({ fraudCheck: true }), checkoutTrace({ fraudCheck: false })] });
      assert.equal(sent.export_ok, true);
      checkout = sent.traces.map((t) => t.trace_id);
      const traceId = sent.traces[1].trace_id;
      const row = page.locator('tr.sig-row').filter({ hasText: RULE }).filter({ has: page.locator(`span[title="${traceId}"]`) });
      await row.waitFor({ timeout: 30_000 });
      await row.getByText(MESSAGE).waitFor();
      assert.match(await row.getAttribute('class'), /fresh/, 'a new signal is highlighted');
      assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was not reloaded');
      assert.equal(await page.locator('tr.sig-row').filter({ hasText: RULE }).count(), 1, 'the compliant trace made no signal');
      await shot(page, 'signals');
    });

    await step('open the signal with the keyboard (focus the link, Enter)', async () => {
      const link = page.locator('tr.sig-row').filter({ hasText: RULE }).getByRole('link', { name: MESSAGE });
      await link.focus();
      await page.keyboard.press('Enter');
      await page.waitForURL(/\/signals\/s_/);
      signalUrl = page.url();
      await page.getByRole('heading', { level: 1, name: MESSAGE }).waitFor();
    });

    await step('waterfall highlights the offending span; span details open', async () => {
      const wf = page.getByRole('region', { name: 'Trace waterfall' });
      const witness = wf.getByRole('button', { name: /payment\.charge_card.*witness span/ });
      await witness.waitFor();
      assert.match(await witness.getAttribute('class'), /wf-witness/);
      assert.equal(await wf.locator('.wf-row').count(), 3);
      assert.equal(await wf.locator('.wf-row.wf-witness').count(), 1);
      await wf.getByText('payments', { exact: true }).first().waitFor(); // legend
      await witness.focus();
      await page.keyboard.press('Enter');
      const details = page.getByRole('region', { name: 'Span details: payment.charge_card' });
      await details.waitFor();
      await details.getByText('CLIENT').waitFor();
      await details.getByRole('rowheader', { name: 'amount', exact: true }).waitFor();
      await details.getByRole('cell', { name: '4200' }).waitFor();
      await details.getByText('service.name').waitFor();
      await page.getByRole('heading', { name: 'Sample trace' }).evaluate((e) => e.scrollIntoView({ block: 'start' }));
      await page.waitForTimeout(150);
      await shot(page, 'signal');
    });

    await step('acknowledge with a note → the note is in the status history', async () => {
      const note = 'charge path bypasses the risk service since deploy 4711';
      await page.getByLabel('Note').fill(note);
      await page.getByRole('button', { name: 'Acknowledge' }).click();
      await page.locator('#signal-status').getByText('Acknowledged').waitFor();
      const history = page.locator('#status-history');
      await history.getByText(note).waitFor();
      await history.getByText(ADMIN.email.toLowerCase()).waitFor(); // who, by email, not by user id
      await history.getByText('Open').first().waitFor();
      assert.equal(await page.getByRole('button', { name: 'Acknowledge' }).count(), 0);
      await page.getByRole('button', { name: 'Resolve' }).waitFor();
    });

    await step('rule history: diff of v1 and v2, roll back to v1', async () => {
      await page.getByRole('link', { name: `${RULE} v2` }).click();
      await page.waitForURL(/\/rules\/r_[^/]+\?version=2/);
      await page.getByText('You are viewing version 2 (read-only)').waitFor();
      await page.getByRole('link', { name: 'Open the editor' }).click();
      await page.getByRole('tab', { name: 'History' }).click();
      const versions = page.getByRole('table', { name: 'Versions' });
      await versions.getByText('first version, from the template').waitFor();
      await versions.getByText(ADMIN.email.toLowerCase()).first().waitFor(); // the author of each version
      await versions.getByText('high, not critical: pages at night are for outages').waitFor();
      const merge = page.locator('.cm-mergeView');
      await merge.waitFor();
      await merge.locator('.cm-changedLine').first().waitFor();
      const a = await merge.locator('.cm-merge-a .cm-changedLine').first().innerText();
      const b = await merge.locator('.cm-merge-b .cm-changedLine').first().innerText();
      assert.match(a, /critical/);
      assert.match(b, /high/);
      await page.getByRole('button', { name: 'Activate (v1)' }).click();
      await page.getByRole('dialog', { name: 'Activate version 1?' }).getByRole('button', { name: 'Activate v1' }).click();
      await page.getByText('active: v1').waitFor();
      await page.getByText('latest: v2').waitFor();
      assert.equal(new URL(page.url()).pathname, new URL(ruleUrl).pathname);
    });

    await step('backtest the active version over the retained traces', async () => {
      await page.getByRole('tab', { name: 'Backtest' }).click();
      await page.getByRole('button', { name: 'Run backtest' }).click();
      const stat = (label) => page.locator('.stat').filter({ has: page.getByText(label, { exact: true }) }).locator('.stat-value');
      await stat('Evaluated').waitFor({ timeout: 30_000 });
      assert.ok(Number(await stat('Evaluated').innerText()) >= 2, 'both sent checkout traces are retained');
      assert.equal(Number(await stat('With violations').innerText()), 1, 'the trace without a fraud check');
      assert.equal(Number(await stat('Failed').innerText()), 0);
    });

    await step('a draft: backtest the changed text before saving (a verdict per trace), save it as a draft; v1 stays active', async () => {
      // The editor still holds v2's text (severity high); the change: severity medium.
      const line4 = editorLine(page, 4);
      await line4.click();
      await page.keyboard.press('End');
      await page.keyboard.press('Shift+Home');
      await page.keyboard.insertText('severity: "medium",');
      await compileStatus(page).getByText(/Compiles: rule.*· medium ·/).waitFor({ timeout: 30_000 });
      await page.getByRole('button', { name: 'Backtest on retained traces' }).click();
      await page.getByText('Backtest of the text in the editor').waitFor({ timeout: 30_000 });
      const stat = async (label) => Number(await page.locator('.stat').filter({ has: page.getByText(label, { exact: true }) }).locator('.stat-value').innerText());
      const evaluated = await stat('Evaluated');
      // Retained: the background's traces (no card charge) and the 2 checkout traces; every one is run.
      const retained = (await apiAs(page, 'GET', '/traces?limit=500')).body.items.length;
      assert.equal(evaluated, retained, `every retained trace is evaluated (${retained})`);
      assert.ok(evaluated >= 10, `the 8 background and 2 checkout traces at least: ${evaluated}`);
      assert.equal(await stat('With violations'), 1, 'the checkout without a fraud check');
      assert.equal(await stat('Held'), 1, 'the checkout with a fraud check');
      assert.equal(await stat('When failed'), evaluated - 2, 'no card charge: the rule does not apply');
      assert.equal(await stat('Failed'), 0);
      const results = page.getByRole('table', { name: 'Backtest results' });
      const row = (traceId) => results.locator('tr.bt-row').filter({ has: page.locator(`span[title="${traceId}"]`) });
      await row(checkout[1]).getByText('Violation', { exact: true }).waitFor();
      await row(checkout[1]).getByText(MESSAGE).waitFor();
      await row(checkout[0]).getByText('Held', { exact: true }).waitFor();
      assert.equal(await results.locator('tr.bt-row').count(), evaluated, 'every trace has its row');
      assert.equal(await results.locator('tr.bt-when_failed').count(), evaluated - 2);
      assert.equal(await results.locator('tr.bt-row').first().getAttribute('class'), 'bt-row bt-violation', 'violations first');
      await page.locator('.stats').evaluate((e) => e.scrollIntoView({ block: 'center' }));
      await shot(page, 'editor-backtest');
      await page.getByRole('button', { name: 'Save version' }).click();
      const dialog = page.getByRole('dialog', { name: 'Save version 3' });
      await dialog.getByLabel(/version message/).fill('medium: tried on retained traces first');
      await dialog.getByLabel('Save as draft (does not run until activated)').check();
      await dialog.getByRole('button', { name: 'Save' }).click();
      await page.locator('#draft-version').getByText('draft: v3').waitFor();
      await page.getByText('active: v1').waitFor();
      await page.getByText('Editing draft v3').waitFor();
      const rule = (await apiAs(page, 'GET', `/rules/${new URL(ruleUrl).pathname.split('/').pop()}`)).body;
      assert.equal(rule.active_version, 1, 'the draft is not active');
      assert.equal(rule.latest_version, 3);
      assert.equal(rule.has_draft, true);
      assert.match(rule.draft.source, /severity: "medium"/);
    });

    await step('editor completions: span names seen in traces, SDK members', async () => {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rules' }).click();
      await page.getByRole('link', { name: 'New rule' }).click();
      await page.waitForURL(/\/rules\/new$/);
      const when = page.locator('.cm-editor .cm-content .cm-line').filter({ hasText: 'when: trace.has(s => s.name === "")' });
      await when.click();
      await page.keyboard.press('End');
      for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowLeft'); // between the quotes
      await page.keyboard.type('pay');
      await page.keyboard.press('Control+Space');
      const menu = page.locator('.cm-tooltip-autocomplete');
      await menu.getByText('payment.charge_card', { exact: true }).waitFor();
      await menu.getByText('span name').first().waitFor();
      // CodeMirror ignores Enter for 75 ms after the list changes (no accidental accepts): pause like a person.
      await page.waitForTimeout(300);
      await page.keyboard.press('Enter');
      await page.locator('.cm-editor .cm-content .cm-line').filter({ hasText: 'when: trace.has(s => s.name === "payment.charge_card")' }).waitFor();
      await page.keyboard.press('Control+End');
      await page.keyboard.press('Enter');
      await page.keyboard.type('trace.');
      await page.keyboard.press('Control+Space');
      await menu.getByText('has', { exact: true }).first().waitFor();
      await page.keyboard.press('Escape');
    });

    await step('bulk resolve in the inbox; another open inbox sees the change live', async () => {
      const other = await ctx.newPage();
      other.setDefaultTimeout(TIMEOUT);
      watch(other, 'admin 1440, second tab');
      await signIn(other, ADMIN);
      const theirs = other.locator('tr.sig-row').filter({ hasText: RULE });
      await theirs.getByText('Acknowledged').waitFor();
      await other.locator('.live-live').waitFor();
      await other.evaluate(() => (window.__noReload = true));

      // The editor left by the previous step has unsaved text: leaving asks first.
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Signals' }).click();
      assert.match(dialogs.at(-1) ?? '', /changes are not saved/, 'leaving an edited rule asks first');
      const mine = page.locator('tr.sig-row').filter({ hasText: RULE });
      await mine.getByRole('checkbox', { name: `Select signal: ${MESSAGE}` }).check();
      const bulk = page.getByRole('region', { name: 'Bulk actions' });
      await bulk.getByText('1 selected').waitFor();
      await bulk.getByLabel('Note').fill('fixed in deploy 4712');
      await bulk.getByRole('button', { name: 'Resolve', exact: true }).click();
      await mine.getByText('Resolved').waitFor();

      await theirs.getByText('Resolved').waitFor();
      assert.equal(await other.evaluate(() => window.__noReload), true, 'the second tab was not reloaded');
      await other.close();
    });

    await step('settings (admin): create an API key, the secret is shown once', async () => {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings' }).click();
      await page.getByRole('heading', { name: 'API keys' }).waitFor();
      await page.getByRole('button', { name: 'Create API key' }).click();
      const dialog = page.getByRole('dialog', { name: 'Create API key' });
      await dialog.getByLabel('Name').fill(KEY_NAME);
      assert.equal(await dialog.getByLabel('ingest').isChecked(), true);
      await dialog.getByRole('button', { name: 'Create key' }).click();
      const secret = dialog.locator('.secret-value');
      await secret.waitFor();
      assert.match(await secret.innerText(), /^fluo_[0-9a-f]{16,}$/);
      await dialog.getByText('shown only once').waitFor();
      await dialog.getByRole('button', { name: 'Copy' }).waitFor();
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });
      const keys = page.getByRole('table', { name: 'API keys' });
      await keys.getByText(KEY_NAME).waitFor();
      await page.locator('.secret-value').waitFor({ state: 'detached' }); // the secret is not shown again
      await page.getByRole('heading', { name: 'Users' }).waitFor();
      await page.getByRole('table', { name: 'Users' }).getByText(VIEWER.email.toLowerCase()).waitFor();
      await shot(page, 'settings');
    });

    await step('notification channel: add it, the secret is shown once, a test send and a new signal are delivered and logged', async () => {
      await page.getByRole('button', { name: 'Add channel' }).click();
      const dialog = page.getByRole('dialog', { name: 'Add notification channel' });
      // PagerDuty asks for its routing key; the generic kind does not.
      await dialog.getByLabel('Kind').selectOption('pagerduty');
      await dialog.getByLabel('PagerDuty routing key').waitFor();
      await dialog.getByLabel('Kind').selectOption('generic');
      await dialog.getByLabel('PagerDuty routing key').waitFor({ state: 'hidden' });
      await dialog.getByLabel('Name').fill('ops receiver');
      await dialog.getByLabel('URL').fill(WEBHOOK_URL);
      // Only groups of rules labelled team=payments (the template's label) reach it.
      await dialog.getByLabel('Rule labels').fill('team=payments');
      await dialog.getByRole('button', { name: 'Add channel' }).click();
      const secret = dialog.locator('.secret-value');
      await secret.waitFor();
      assert.ok((await secret.innerText()).length >= 32, 'a signing secret');
      await dialog.getByRole('button', { name: 'Done' }).click();
      const hook = page.locator('.hook-list li').filter({ hasText: WEBHOOK_URL });
      await hook.waitFor();
      await hook.getByText('ops receiver').waitFor();
      await hook.getByText('Labels: team=payments').waitFor();
      await hook.getByRole('button', { name: 'Send test' }).click();
      await page.getByText('Test delivered to ops receiver').waitFor();
      const sent = await sendTraces({ traces: [checkoutTrace({ fraudCheck: false })] });
      assert.equal(sent.export_ok, true);
      const log = hook.getByRole('button', { name: 'Delivery log' });
      for (let attempt = 0; ; attempt++) {
        await log.click(); // opens and reads the log
        await hook.locator('.deliveries').getByText(/No deliveries yet|delivered|HTTP|failed/).first().waitFor();
        // A delivered new signal (the test send is logged too, without a signal link).
        const delivered = hook.locator('.deliveries tr').filter({ has: page.getByRole('link', { name: /^s_/ }) }).filter({ has: page.getByText('delivered', { exact: true }) });
        if (await delivered.count()) break;
        if (attempt === 30) throw new Error(`no delivery logged: ${await hook.innerText()}`);
        await log.click(); // closes it
        await page.waitForTimeout(500);
      }
      await hook.getByRole('link', { name: /^s_/ }).first().waitFor();
      await hook.getByText('test send').first().waitFor();
      // The group's link (as a notification carries it) opened in a new tab of this browser: no second sign-in.
      const signalId = (await hook.getByRole('link', { name: /^s_/ }).first().innerText()).trim();
      const tab = await page.context().newPage();
      try {
        await tab.goto(`${BASE}/signals/${signalId}`);
        await tab.getByRole('heading', { name: 'Work this signal' }).waitFor({ timeout: TIMEOUT });
        // The group carries its rule's labels.
        await tab.locator('#rule-labels').getByText('team=payments').waitFor();
        assert.ok(new URL(tab.url()).pathname === `/signals/${signalId}`, `the new tab stayed on the signal, not ${tab.url()}`);
      } finally {
        await tab.close();
      }
    });

    await step('trace links: a bad template shows the server\'s error; the signal links to its trace in your backend', async () => {
      const section = page.locator('#links');
      await section.getByRole('heading', { name: 'Trace links and retention' }).waitFor();
      const template = section.getByLabel('Trace link template');
      const save = section.getByRole('button', { name: 'Save', exact: true });
      await template.fill('https://traces.example/trace/{trace_id}?span={spanid}');
      expectConsoleError(/status of 400/); // the browser's own line for the refused PUT
      await save.click();
      await section.getByRole('alert').getByText(/unknown placeholder \{spanid\}/).waitFor();
      assert.equal(await template.getAttribute('aria-invalid'), 'true');
      await template.fill(TRACE_LINK);
      await section.getByLabel('Trace retention (minutes)').fill('');
      await save.click();
      await page.getByText('Trace link and retention saved').waitFor();
      assert.equal(await section.getByRole('alert').count(), 0);
      assert.equal((await apiAs(page, 'GET', '/settings')).body.trace_link_template, TRACE_LINK);
      await page.goto(signalUrl);
      const signal = (await apiAs(page, 'GET', `/signals/${new URL(signalUrl).pathname.split('/').pop()}`)).body;
      const expected = TRACE_LINK.replace('{trace_id}', signal.trace_id);
      assert.equal(signal.trace_url, expected);
      const link = page.getByRole('link', { name: 'Open trace in your backend', exact: true });
      await link.waitFor();
      assert.equal(await link.getAttribute('href'), expected);
      assert.equal(await link.getAttribute('target'), '_blank');
      assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');
      // each occurrence links its own trace, the template filled in by the console
      const occ = page.getByRole('table', { name: 'Occurrences' });
      const first = occ.getByRole('link', { name: /^Open trace [0-9a-f]{32} in your backend$/ }).first();
      await first.waitFor();
      const id = /Open trace ([0-9a-f]{32})/.exec(await first.getAttribute('aria-label'))[1];
      assert.equal(await first.getAttribute('href'), TRACE_LINK.replace('{trace_id}', id));
    });

    await step('a window rule (the concurrency template) and a burst of 60 auth requests at once', async () => {
      // Started here, checked later: the window closes 10 s after it opens, plus 2 s of grace.
      // A rule has one name: the template's declared name follows the rule's.
      const source = readFileSync(path.join(here, '..', '..', 'rule-sdk', 'templates', 'auth-concurrency.js'), 'utf8').replace('name: "auth-concurrency"', `name: "${WINDOW_RULE}"`);
      const created = await apiAs(page, 'POST', '/rules', { name: WINDOW_RULE, source });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const sent = await sendTraces(authBurst(60));
      assert.equal(sent.export_ok, true);
    });

    await step('inbox of groups: counts, sparklines; a resolved group regresses live', async () => {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Signals' }).click();
      await page.locator('.live-live').waitFor();
      const mine = page.locator('tr.sig-row').filter({ hasText: RULE });
      await mine.locator('svg.spark').waitFor(); // its occurrences in the last 24 hours
      assert.ok(Number(await mine.locator('.occ-n').innerText()) >= 2, 'the webhook step added an occurrence to the group');
      await page.locator('#occurrence-total').getByText(/\d+ occurrences/).waitFor();
      // quick ranges: groups last seen within the range, the chart follows it
      const ranges = page.getByRole('group', { name: 'Time range' });
      await ranges.getByRole('button', { name: '1 h' }).click();
      await page.waitForURL(/range=1h/);
      await page.getByText('Occurrences by rule, last 1 h').waitFor();
      await mine.locator('svg.spark').waitFor();
      await ranges.getByRole('button', { name: 'Any time' }).click();
      await page.getByText('Occurrences by rule, last 24 h').waitFor();
      await mine.locator('svg.spark').waitFor();
      assert.equal(await page.getByRole('table').locator('th', { hasText: 'Occurrences' }).count(), 1);
      // resolve it, then the same violation again: FLUO reopens it, and the open inbox shows it at once
      await mine.getByRole('checkbox', { name: `Select signal: ${MESSAGE}` }).check();
      const bulk = page.getByRole('region', { name: 'Bulk actions' });
      await bulk.getByRole('button', { name: 'Resolve', exact: true }).click();
      await mine.getByText('Resolved').waitFor();
      await page.evaluate(() => (window.__noReload = true));
      const sent = await sendTraces({ traces: [checkoutTrace({ fraudCheck: false })] });
      assert.equal(sent.export_ok, true);
      await mine.getByText('Open', { exact: true }).waitFor({ timeout: 30_000 });
      await mine.getByText(/regressed/).waitFor();
      assert.match(await mine.getAttribute('class'), /fresh/, 'the regression is highlighted');
      assert.equal(await page.locator('tr.sig-row').first().getAttribute('data-signal-id'), await mine.getAttribute('data-signal-id'), 'latest seen first');
      assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was not reloaded');
    });

    await step('group page: occurrences over time, the list with paging, the rule beside the trace', async () => {
      const sent = await sendTraces({ traces: Array.from({ length: 22 }, () => checkoutTrace({ fraudCheck: false })) });
      assert.equal(sent.export_ok, true);
      // Further occurrences are not streamed: wait for them (asked from Node, no page reloads: each
      // would open another event stream while the last one is still closing), then open the group.
      const signalPath = `/signals/${new URL(signalUrl).pathname.split('/').pop()}`;
      for (let attempt = 0; ; attempt++) {
        const { body } = await apiAs(page, 'GET', signalPath);
        if (body.occurrences >= 25) break;
        if (attempt === 60) throw new Error(`the occurrences did not arrive: ${body.occurrences}`);
        await page.waitForTimeout(500);
      }
      await page.goto(signalUrl);
      const count = page.locator('#occurrence-count');
      assert.ok(parseInt(await count.innerText(), 10) >= 25, 'the group counts them all');
      await page.getByRole('heading', { name: 'Occurrences over time' }).waitFor();
      await page.getByRole('img', { name: /^Occurrences, last 24 h: \d+ occurrences/ }).waitFor();
      await page.getByRole('group', { name: 'Chart range' }).getByRole('button', { name: '1 h' }).click();
      await page.getByRole('img', { name: /^Occurrences, last 1 h: \d+ occurrences/ }).waitFor();
      const occ = page.getByRole('table', { name: 'Occurrences' });
      await occ.locator('tbody tr').first().waitFor();
      assert.equal(await occ.locator('tbody tr').count(), 20, 'a page of 20');
      await page.getByRole('button', { name: 'Load older occurrences' }).click();
      await page.locator('#occ-end').waitFor();
      assert.ok((await occ.locator('tbody tr').count()) >= 25, 'older ones appended');
      await occ.getByText('v2').first().waitFor(); // the first occurrence came from version 2
      await occ.getByText('v1').first().waitFor(); // later ones from v1 (rolled back)
      const cond = page.locator('pre.rule-source');
      await cond.getByText(/payment\.fraud_check/).first().waitFor();
      const wf = page.getByRole('region', { name: 'Trace waterfall' });
      await wf.locator('.wf-row.wf-witness').first().waitFor();
      // the first sample (kept since the group began) in the same waterfall
      const sample = page.getByLabel('Sample', { exact: true });
      const first = sample.locator('option', { hasText: /^first · / });
      await sample.selectOption(await first.getAttribute('value'));
      await page.getByRole('region', { name: 'Trace waterfall' }).getByText(await first.getAttribute('value')).waitFor();
      await page.getByRole('region', { name: 'Trace waterfall' }).locator('.wf-row.wf-witness').first().waitFor();
      await page.getByRole('heading', { name: 'Occurrences over time' }).scrollIntoViewIfNeeded();
      await shot(page, 'signal-occurrences');
    });

    await step('group page: pin the first sample (its trace outlives sampling), then unpin it', async () => {
      const sample = page.getByLabel('Sample', { exact: true });
      const first = await sample.locator('option', { hasText: /^first · / }).getAttribute('value');
      await sample.selectOption(first);
      await page.getByRole('button', { name: 'Pin', exact: true }).click();
      await sample.locator('option', { hasText: /^first · pinned · / }).waitFor({ state: 'attached' });
      const signalPath = `/signals/${new URL(signalUrl).pathname.split('/').pop()}`;
      assert.deepEqual((await apiAs(page, 'GET', signalPath)).body.pinned, [first]);
      await page.getByRole('table', { name: 'Occurrences' }).getByText('pinned', { exact: true }).first().waitFor();
      await page.getByRole('button', { name: 'Unpin', exact: true }).click();
      await page.getByRole('button', { name: 'Pin', exact: true }).waitFor();
      assert.equal((await apiAs(page, 'GET', signalPath)).body.pinned, undefined, 'no pins left');
    });

    await step('group page: compare two occurrences\' traces side by side', async () => {
      const occ = page.getByRole('table', { name: 'Occurrences' });
      await occ.getByRole('checkbox').first().check();
      await occ.getByRole('checkbox').last().check();
      assert.equal(await occ.getByRole('checkbox').nth(1).isDisabled(), true, 'two at most');
      await page.getByRole('button', { name: 'Compare traces' }).click();
      const cmp = page.getByRole('region', { name: 'Two occurrences side by side' });
      await cmp.waitFor();
      const panes = cmp.locator('.waterfall');
      await panes.nth(1).waitFor();
      assert.equal(await panes.count(), 2);
      for (let i = 0; i < 2; i++) assert.equal(await panes.nth(i).locator('.wf-row.wf-witness').count(), 1, 'each with its witness span');
      await cmp.scrollIntoViewIfNeeded();
      await shot(page, 'signal-compare');
    });

    await step('assign it to me; the inbox filters by assignee', async () => {
      await page.getByRole('button', { name: 'Assign to me' }).click();
      await page.locator('#assignee-now').getByText(`${ADMIN.email} (me)`).waitFor();
      await page.locator('#status-history li[data-kind="assigned"]').getByText(`${ADMIN.email} (me)`).waitFor(); // a person, not a user id
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Signals' }).click();
      await page.getByLabel('Assignee').selectOption({ label: 'Assigned to me' });
      await page.waitForURL(/assignee=u_/);
      const rows = page.locator('tr.sig-row');
      await rows.filter({ hasText: RULE }).getByText(`${ADMIN.email} (me)`).waitFor();
      for (const r of await rows.all()) assert.match(await r.locator('.assignee').innerText(), /\(me\)/, 'only groups assigned to me');
      await page.getByLabel('Assignee').selectOption({ label: 'Unassigned' });
      await rows.filter({ hasText: RULE }).waitFor({ state: 'detached' });
      await page.getByLabel('Assignee').selectOption({ label: 'Anyone' });
      await rows.filter({ hasText: RULE }).waitFor();
    });

    await step('snooze it for an hour: it leaves the inbox, "Show snoozed" brings it back; lift it', async () => {
      await page.locator('tr.sig-row').filter({ hasText: RULE }).getByRole('link', { name: MESSAGE }).click();
      await page.getByLabel('How long').selectOption({ label: 'for 1 hour' });
      await page.getByRole('button', { name: 'Snooze', exact: true }).click();
      await page.locator('#snooze-now').getByText(/Snoozed until/).waitFor();
      await page.locator('#status-history li[data-kind="snoozed"]').waitFor();
      await page.locator('#snooze-badge').waitFor();
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Signals' }).click();
      await page.locator('tr.sig-row').first().waitFor();
      assert.equal(await page.locator('tr.sig-row').filter({ hasText: RULE }).count(), 0, 'a snoozed group is not in the inbox');
      await page.getByLabel('Show snoozed').check();
      const mine = page.locator('tr.sig-row').filter({ hasText: RULE });
      await mine.locator('.snooze-mark').waitFor();
      await mine.getByRole('link', { name: MESSAGE }).click();
      await page.getByRole('button', { name: 'Lift snooze' }).click();
      await page.locator('#status-history li[data-kind="unsnoozed"]').waitFor();
      assert.equal(await page.locator('#snooze-badge').count(), 0);
    });

    await step('snooze until one more occurrence: it comes back to the open inbox live when it happens', async () => {
      await page.getByLabel('How long').selectOption({ label: 'until N more occurrences' });
      await page.getByLabel('More occurrences').fill('1');
      await page.getByRole('button', { name: 'Snooze', exact: true }).click();
      await page.locator('#snooze-now').getByText(/Snoozed until occurrence \d+/).waitFor();
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Signals' }).click();
      await page.locator('.live-live').waitFor();
      await page.locator('tr.sig-row').first().waitFor();
      const mine = page.locator('tr.sig-row').filter({ hasText: RULE });
      assert.equal(await mine.count(), 0, 'snoozed: not in the inbox');
      await page.evaluate(() => (window.__noReload = true));
      assert.equal((await sendTraces({ traces: [checkoutTrace({ fraudCheck: false })] })).export_ok, true);
      await mine.waitFor({ timeout: 30_000 }); // the snooze ended: back, without a reload
      assert.equal(await mine.locator('.snooze-mark').count(), 0);
      assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was not reloaded');
    });

    await step('the window group: the concurrency curve with its limit, the violating windows', async () => {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Signals' }).click();
      const row = page.locator('tr.sig-row').filter({ hasText: WINDOW_RULE });
      await row.waitFor({ timeout: 45_000 }); // live, once the window has closed
      await row.getByRole('link', { name: /auth served \d+ concurrent requests \(limit 50\)/ }).click();
      const chart = page.locator('#concurrency-chart');
      await chart.waitFor();
      await chart.getByText(/against a limit of 50/).waitFor();
      await chart.getByRole('img', { name: /Concurrent requests over the window's \d+ witness spans: peak \d+, limit 50/ }).waitFor();
      assert.ok((await chart.locator('rect.conc-span').count()) >= 1, 'the witness spans are marked');
      await page.getByRole('heading', { name: 'Violating windows over time' }).waitFor();
      await page.getByRole('img', { name: /^Violating windows, last 24 h: \d+ violating window/ }).waitFor();
      await page.getByRole('heading', { name: 'Concurrency in the latest violating window' }).evaluate((e) => e.scrollIntoView({ block: 'start' }));
      await shot(page, 'signal-window');
      // the inbox again, with the groups of this session, for its screenshot
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Signals' }).click();
      await page.locator('tr.sig-row').filter({ hasText: RULE }).locator('svg.spark').waitFor();
      await page.locator('#occurrence-total').waitFor();
      await page.getByRole('img', { name: /^Occurrences by rule, last 24 h/ }).waitFor();
      await shot(page, 'signals');
    });

    await step('getting started shows this server\'s OTLP endpoint', async () => {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Getting started' }).click();
      const info = await page.evaluate(async () => {
        const s = JSON.parse(sessionStorage.getItem('fluo.session'));
        const r = await fetch('/api/v1/info', { headers: { authorization: `Bearer ${s.token}` } });
        return r.json();
      });
      const host = new URL(BASE).hostname;
      await page.getByText(`OTEL_EXPORTER_OTLP_ENDPOINT=http://${host}:${info.otlp_http_port}`).waitFor();
      await page.getByText(`endpoint: ${host}:${info.otlp_grpc_port}`).waitFor();
      await page.getByRole('button', { name: 'Create an ingest key' }).waitFor();
      await shot(page, 'start');
    });

    await step('viewer: no editing controls; sign out ends the session', async () => {
      const vctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
      const v = await vctx.newPage();
      v.setDefaultTimeout(TIMEOUT);
      watch(v, 'viewer');
      await signIn(v, VIEWER);
      const nav = v.getByRole('navigation', { name: 'Main' });
      await nav.getByLabel('Role: viewer').waitFor();
      assert.equal(await nav.getByRole('link', { name: 'Settings' }).count(), 0, 'no Settings for a viewer');
      // signals: no bulk selection
      const row = v.locator('tr.sig-row').filter({ hasText: RULE }).first();
      await row.waitFor();
      assert.equal(await row.getByRole('checkbox').isDisabled(), true);
      // the signal: status buttons disabled
      await v.goto(signalUrl);
      await v.getByRole('heading', { level: 1, name: MESSAGE }).waitFor();
      for (const name of ['Resolve', 'Reopen', 'Mark false positive']) {
        const b = v.getByRole('button', { name });
        if (await b.count()) assert.equal(await b.isDisabled(), true, `${name} is disabled`);
      }
      assert.equal(await v.getByLabel('Note').count(), 0);
      for (const name of ['Assign to me', 'Snooze', 'Lift snooze']) {
        const b = v.getByRole('button', { name, exact: true });
        if (await b.count()) assert.equal(await b.isDisabled(), true, `${name} is disabled`);
      }
      await v.getByRole('table', { name: 'Occurrences' }).locator('tbody tr').first().waitFor(); // reading is allowed
      await v.getByRole('link', { name: 'Open trace in your backend', exact: true }).waitFor();
      // rules: no new rule, no enable toggle, a read-only editor
      await nav.getByRole('link', { name: 'Rules' }).click();
      await v.getByRole('button', { name: 'New rule' }).waitFor();
      assert.equal(await v.getByRole('button', { name: 'New rule' }).isDisabled(), true);
      const rrow = v.getByRole('row').filter({ has: v.getByRole('link', { name: RULE, exact: true }) });
      assert.equal(await rrow.getByRole('switch').isDisabled(), true);
      await rrow.getByRole('link', { name: RULE, exact: true }).click();
      await v.getByText('active: v1').waitFor();
      await v.getByText('read-only', { exact: true }).waitFor();
      for (const name of ['Save version', 'Save rule', 'Disable', 'Enable']) assert.equal(await v.getByRole('button', { name, exact: true }).count(), 0, `no ${name}`);
      assert.equal(await v.locator('.cm-content').getAttribute('contenteditable'), 'false');
      assert.equal(await v.getByRole('button', { name: 'Run test' }).isDisabled(), true);
      await v.getByRole('tab', { name: 'History' }).click();
      await v.getByRole('table', { name: 'Versions' }).waitFor();
      assert.equal(await v.getByRole('button', { name: /^Activate/ }).count(), 0, 'no Activate');
      assert.equal(await v.getByRole('button', { name: /Delete/ }).count(), 0, 'no Delete');
      // settings by URL: admins only
      await v.goto(`${BASE}/settings`);
      await v.getByRole('heading', { name: 'Administrators only' }).waitFor();
      await v.locator('#trace-link-template').getByText(TRACE_LINK, { exact: true }).waitFor(); // read-only
      assert.equal(await v.getByRole('button', { name: 'Save', exact: true }).count(), 0, 'no Save');
      // Signing out ends the session on the server, not only in the tab.
      const token = await v.evaluate(() => JSON.parse(sessionStorage.getItem('fluo.session')).token);
      await v.getByRole('navigation', { name: 'Main' }).getByRole('button', { name: 'Sign out' }).click();
      await v.waitForURL(/\/login/);
      await v.getByLabel('Tenant (name or ID)').waitFor();
      assert.equal(await v.evaluate(() => sessionStorage.getItem('fluo.session')), null);
      // Asked from Node, not the page: the page's console stays free of this expected 401.
      const { status } = await fetch(`${BASE}/api/v1/info`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(status, 401, 'the signed-out token is refused');
      await vctx.close();
    });

    await step('phone viewport (390×844): navigation collapses; screenshots', async () => {
      const mctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
      const m = await mctx.newPage();
      m.setDefaultTimeout(TIMEOUT);
      watch(m, 'admin 390');
      await signIn(m, ADMIN, { screenshot: true });
      const menu = m.getByRole('button', { name: 'Menu' });
      await menu.waitFor();
      assert.equal(await m.getByRole('navigation', { name: 'Main' }).isVisible(), false, 'the navigation is collapsed');
      await m.locator('.live-live').waitFor();
      await m.locator('tr.sig-row').first().waitFor();
      await shot(m, 'signals');
      await menu.click();
      await m.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rules' }).click();
      await m.getByRole('link', { name: RULE, exact: true }).waitFor();
      assert.equal(await m.getByRole('navigation', { name: 'Main' }).isVisible(), false, 'the navigation closes after a choice');
      await shot(m, 'rules');
      await m.goto(signalUrl);
      const witness = m.getByRole('region', { name: 'Trace waterfall' }).getByRole('button', { name: /payment\.charge_card.*witness span/ });
      await witness.click();
      await m.getByRole('region', { name: 'Span details: payment.charge_card' }).waitFor();
      await m.getByRole('heading', { name: 'Trace' }).scrollIntoViewIfNeeded();
      await shot(m, 'signal');
      await m.goto(`${BASE}/rules/new?template=payments-fraud-check`);
      await compileStatus(m).getByText(/Compiles: rule/).waitFor({ timeout: 30_000 });
      await m.getByLabel('Traces (OTLP/JSON)').fill(otlpJson());
      await m.getByRole('button', { name: 'Run test' }).click();
      await m.locator('article.result').getByText('1 violation').waitFor({ timeout: 30_000 });
      await m.locator('article.result').scrollIntoViewIfNeeded();
      await shot(m, 'editor');
      await m.goto(`${BASE}/settings`);
      await m.getByRole('table', { name: 'API keys' }).getByText(KEY_NAME).waitFor();
      await shot(m, 'settings');
      await m.goto(`${BASE}/start`);
      await m.getByText(/OTEL_EXPORTER_OTLP_ENDPOINT=/).waitFor();
      await shot(m, 'start');
      await mctx.close();
    });

    await step('select all N matching: one bulk change reaches every matching group, page after page', async () => {
      // 55 routes answering 503 without an error log: 55 groups of server-errors-logged (grouped by route).
      const base = Date.now();
      const traces = Array.from({ length: 55 }, (_, i) => ({
        service: 'gateway',
        base_unix_ms: base,
        spans: [{ id: 'root', name: `GET /legacy/${i}`, kind: 'server', parent: null, start_ms: i, duration_ms: 12, attributes: { 'http.route': `/legacy/${i}`, 'http.response.status_code': 503 } }],
      }));
      const open = async () => (await apiAs(page, 'GET', '/signals/counts?q=5xx&status=open')).body.total;
      const before = await open(); // the background's /orders group, unless a rerun resolved it
      assert.equal((await sendTraces({ traces })).export_ok, true);
      for (let attempt = 0; (await open()) < before + 55; attempt++) {
        if (attempt === 40) throw new Error(`the 5xx groups did not arrive: ${await open()}`);
        await page.waitForTimeout(500);
      }
      const n = await open();
      await page.goto(`${BASE}/signals?status=open&q=5xx`);
      await page.locator('#signal-total').getByText(String(n), { exact: true }).waitFor();
      assert.equal(await page.locator('tr.sig-row').count(), 50, 'one page of 50');
      await page.getByRole('checkbox', { name: 'Select all shown signals' }).check();
      const bulk = page.getByRole('region', { name: 'Bulk actions' });
      await bulk.getByText('50 selected').waitFor();
      await bulk.getByRole('button', { name: `Select all ${n} matching` }).click();
      await bulk.getByText(`All ${n} matching selected`).waitFor();
      await bulk.getByLabel('Note').fill('legacy routes retired');
      await bulk.getByRole('button', { name: 'Resolve', exact: true }).click();
      await page.getByText(`${n} changed to resolved`).waitFor({ timeout: 30_000 });
      assert.equal(await open(), 0, 'none of them is open any more, not only the 50 shown');
      await page.getByRole('heading', { name: 'No signals match' }).waitFor();
    });

    await step('the session renewed itself before its token ran out (tokens last 1 minute here)', async () => {
      const now = await page.evaluate(() => JSON.parse(sessionStorage.getItem('fluo.session')));
      assert.notEqual(now.token, firstSession.token, 'a renewed token');
      assert.ok(Date.parse(now.expires_at) > Date.parse(firstSession.expires_at), 'that lives longer');
      const { status } = await fetch(`${BASE}/api/v1/info`, { headers: { authorization: `Bearer ${now.token}` } });
      assert.equal(status, 200, 'and works');
    });

    await step('activate the draft: v3 runs from now on (it did not before)', async () => {
      const ruleId = new URL(ruleUrl).pathname.split('/').pop();
      const signalPath = `/signals/${new URL(signalUrl).pathname.split('/').pop()}`;
      const versions = new Set();
      for (let cursor = null, n = 0; n < 20; n++) {
        const { body } = await apiAs(page, 'GET', `${signalPath}/occurrences?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        for (const o of body.items) versions.add(o.rule_version);
        if (!(cursor = body.next_cursor)) break;
      }
      assert.ok(versions.has(1) && !versions.has(3), `the draft did not run while it was a draft: versions ${[...versions]}`);
      await page.goto(ruleUrl);
      await page.getByText('active: v1').waitFor();
      const bar = page.getByRole('region', { name: 'Draft' });
      await bar.getByText('Draft v3 is stored and not running').waitFor();
      await bar.getByRole('button', { name: 'Open draft v3' }).click();
      await editorLine(page, 4).getByText('severity: "medium",').waitFor();
      await bar.getByText('Editing draft v3').waitFor();
      await bar.getByRole('button', { name: 'Activate v3' }).click();
      await page.getByRole('dialog', { name: 'Activate version 3?' }).getByRole('button', { name: 'Activate v3' }).click();
      await page.getByText('active: v3').waitFor();
      assert.equal(await page.locator('#draft-version').count(), 0, 'no draft any more');
      const rule = (await apiAs(page, 'GET', `/rules/${ruleId}`)).body;
      assert.equal(rule.active_version, 3);
      assert.equal(rule.has_draft, false);
    });

    await step('no console errors or warnings, no request to another origin', async () => {
      if (problems.length) throw new Error(`${problems.length} console problem(s):\n  ${problems.join('\n  ')}`);
    });
  } catch (e) {
    try {
      await page.screenshot({ path: path.join(SHOTS, 'failure.png'), fullPage: true });
    } catch {
      /* the page may be gone */
    }
    console.error(`\nFAILED at step "${e.step ?? current()}": ${e.message}`);
    if (problems.length && !/console problem/.test(e.message)) console.error(`console problems so far:\n  ${problems.join('\n  ')}`);
    await browser.close();
    process.exit(1);
  }
  await browser.close();
  console.log(`\nconsole test passed in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
}

main().catch((e) => {
  console.error(`console.mjs: ${e.stack ?? e}`);
  process.exit(1);
});
