// The rule editor: source with live compile errors, Test / Backtest / History panels, save, activate.
import { EditorView, EditorView as EV, basicSetup } from 'codemirror';
import { EditorState } from '@codemirror/state';
import { javascript } from '@codemirror/lang-javascript';
import { ApiError, api, errorMessage, qs } from '../api';
import { editorTheme, ruleEditor, setVocabulary, shadowMount, type CompileProblem } from '../cm';
import { h, mount } from '../dom';
import { fmtDate, fmtDuration, fmtNumber, shortId } from '../format';
import { parseOtlp } from '../otlp';
import { type Ctx, clearLeaveGuard, navigate, setLeaveGuard } from '../router';
import { sampleTrace } from '../sample';
import { canWrite, READ_ONLY_TITLE } from '../session';
import { loadTemplates } from '../templates';
import { backtestReport, verdictBadge, verdictOf } from '../backtest';
import { type BacktestReport, type Compiled, type RuleCreated, type RuleInfo, type TestReport, type TraceResult, type TraceSummary, type VersionInfo, type Vocabulary } from '../types';
import { confirmDialog, emptyState, errorBox, loading, openDialog, sevBadge, toast } from '../ui';
import { waterfall } from '../waterfall';

const SKELETON = `// Describe the invariant in one line.
export default rule({
  name: "my-rule",
  severity: "medium",
  description: "what must always hold",
  when: trace.has(s => s.name === ""),
  expect: trace.has(s => s.name === ""),
  message: "what went wrong",
});
`;

interface CompileVerdict {
  compiles: boolean;
  rule?: TestReport['rule'];
  error?: { message: string; line?: number | null; column?: number | null };
  compile_ms: number;
}

/** Compiles without saving (POST /rules/compile): what the rule declares, or where it fails. */
async function compileSource(source: string, signal: AbortSignal): Promise<{ ok: Compiled } | { problem: CompileProblem }> {
  const r = await api.post<CompileVerdict>('/rules/compile', { source }, { signal });
  if (r.compiles && r.rule) return { ok: { ...r.rule, compile_ms: r.compile_ms } };
  const error = r.error ?? { message: 'does not compile' };
  return { problem: { message: error.message, line: error.line ?? undefined, column: error.column ?? undefined } };
}

// The names in the tenant's recent traces, re-read each time an editor opens (new traces bring new names).
function loadVocabulary(): void {
  api
    .get<Vocabulary>('/traces/vocabulary')
    .then(setVocabulary)
    .catch(() => undefined); // completions from the SDK still work
}

export function editorPage(ctx: Ctx): () => void {
  const isNew = !ctx.params.id;
  const ruleId = ctx.params.id ?? null;
  const viewVersion = ctx.query.get('version') ? Number(ctx.query.get('version')) : null;
  let alive = true;
  let view: EditorView | null = null;
  let mergeView: { destroy(): void } | null = null;
  let rule: RuleInfo | null = null;
  let versions: VersionInfo[] = [];
  let savedSource = '';
  let readOnlyVersion: VersionInfo | null = null;
  /** The stored version whose source the editor was loaded with (or last saved as); null for a new rule. */
  let editorVersion: number | null = null;

  mount(ctx.root, loading('Loading the rule…'));

  // ---- parts ----
  const status = h('div', { class: 'compile-status', id: 'compile-status', role: 'status', 'aria-live': 'polite' });
  const dirty = h('span', { class: 'dirty muted small', hidden: true }, '● unsaved changes');
  const nameInput = h('input', { id: 'rule-name', type: 'text', required: true, spellcheck: 'false', autocomplete: 'off', pattern: '[A-Za-z0-9._-]+' });
  const editorHost = h('div', { class: 'cm-host' });
  const headerHost = h('div');
  const panelHost = h('div', { class: 'panel-body' });
  const wideHost = h('section', { class: 'card compare-card', 'aria-labelledby': 'compare-title', hidden: true });

  function setStatus(kind: 'idle' | 'busy' | 'ok' | 'error', content: (Node | string)[]): void {
    status.className = `compile-status cs-${kind}`;
    mount(status, content);
  }

  const compiler = canWrite()
    ? async (source: string, signal: AbortSignal): Promise<CompileProblem | null> => {
        setStatus('busy', [h('span', { class: 'spinner spinner-small', 'aria-hidden': 'true' }), 'Compiling…']);
        try {
          const verdict = await compileSource(source, signal);
          if ('problem' in verdict) {
            const msg = verdict.problem.message.replace(/\s*\(line \d+(, column \d+)?\)\s*$/, '');
            const line = verdict.problem.line;
            setStatus('error', [h('span', { class: 'cs-icon', 'aria-hidden': 'true' }, '✕'), h('span', { class: 'cs-text' }, line ? `Line ${line}: ${msg}` : msg)]);
            return { ...verdict.problem, message: msg };
          }
          const c = verdict.ok;
          setStatus('ok', [h('span', { class: 'cs-icon', 'aria-hidden': 'true' }, '✓'), h('span', { class: 'cs-text' }, `Compiles: ${c.form}${c.name ? ` “${c.name}”` : ''} · ${c.severity} · ${Math.round(c.compile_ms)} ms`)]);
          return null;
        } catch (e) {
          if (e instanceof DOMException && e.name === 'AbortError') throw e;
          setStatus('error', [`Cannot compile: ${errorMessage(e)}`]);
          return null;
        }
      }
    : undefined;

  function editable(): boolean {
    return canWrite() && !readOnlyVersion;
  }

  function onChange(doc: string): void {
    dirty.hidden = doc === savedSource;
  }

  // ---- header ----
  function renderHeader(): void {
    const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/rules' }, 'Rules'), ' / ', h('span', { 'aria-current': 'page' }, rule ? rule.name : 'New rule'));
    const actions: (Node | null)[] = [];
    if (rule && canWrite()) {
      const toggle = h('button', { type: 'button', class: 'btn' }, rule.enabled ? 'Disable' : 'Enable');
      toggle.addEventListener('click', async () => {
        toggle.disabled = true;
        try {
          rule = { ...rule!, ...(await api.post<RuleInfo>(`/rules/${enc(rule!.id)}/${rule!.enabled ? 'disable' : 'enable'}`, {})) };
          toast(`Rule ${rule.enabled ? 'enabled' : 'disabled'}`);
          renderHeader();
        } catch (e) {
          toast(errorMessage(e), 'error');
          toggle.disabled = false;
        }
      });
      actions.push(toggle);
    }
    if (editable()) {
      const save = h('button', { type: 'button', class: 'btn btn-primary', 'aria-keyshortcuts': 'Control+S' }, rule ? 'Save version' : 'Save rule');
      save.addEventListener('click', () => void saveFlow());
      actions.push(save);
    } else if (!canWrite()) {
      actions.push(h('span', { class: 'badge role role-viewer', title: READ_ONLY_TITLE }, 'read-only'));
    }
    mount(
      headerHost,
      crumbs,
      h(
        'header',
        { class: 'page-header' },
        h(
          'div',
          { class: 'page-title' },
          h('h1', null, rule ? rule.name : 'New rule'),
          rule
            ? h(
                'div',
                { class: 'row wrap-row' },
                sevBadge(rule.severity),
                h('span', { class: 'tag', title: `declared form: ${rule.form}` }, rule.form === 'window' ? 'window rule' : 'trace rule'),
                rule.active_version
                  ? h('span', { class: 'badge badge-accent', id: 'active-version' }, `active: v${rule.active_version}`)
                  : h('span', { class: 'badge badge-muted', id: 'active-version', title: 'No version runs until one is activated' }, 'only drafts'),
                hasDraft(rule) ? h('span', { class: 'badge badge-draft', id: 'draft-version', title: 'Stored, not running until activated' }, `draft: v${rule.latest_version}`) : null,
                h('span', { class: 'badge' }, `latest: v${rule.latest_version}`),
                h('span', { class: `badge ${rule.enabled ? 'badge-ok' : 'badge-muted'}` }, rule.enabled ? 'enabled' : 'disabled'),
                dirty,
              )
            : h('p', { class: 'muted' }, 'Not saved yet. Saving compiles, stores version 1 and activates it (or keeps it as a draft).', dirty),
        ),
        h('div', { class: 'page-actions' }, actions),
      ),
      draftBar(),
      readOnlyVersion
        ? h(
            'div',
            { class: 'alert alert-info row wrap-row' },
            h('span', null, `You are viewing version ${readOnlyVersion.version} (read-only)${readOnlyVersion.version === rule?.active_version ? ', the active version' : ''}.`),
            h('a', { href: `/rules/${enc(rule!.id)}`, class: 'btn btn-small' }, 'Open the editor'),
            canWrite() && rule && readOnlyVersion.version !== rule.active_version ? activateButton(readOnlyVersion.version, 'Activate this version') : null,
          )
        : null,
    );
  }

  /** The draft, when there is one: what it is, and what can be done with it (open it, activate it). */
  function draftBar(): HTMLElement | null {
    if (!rule || readOnlyVersion || !hasDraft(rule)) return null;
    const r = rule;
    const draft = r.latest_version;
    const editing = editorVersion === draft;
    const parts: (Node | string | null)[] = [];
    if (editing) {
      parts.push(h('span', null, h('strong', null, `Editing draft v${draft}`), r.active_version ? ` — it does not run; v${r.active_version} does until you activate it.` : ' — the rule has only drafts: nothing runs until you activate one.'));
      if (r.active_version) parts.push(openVersionButton(r.active_version, `Open active v${r.active_version}`));
    } else {
      parts.push(h('span', null, `Draft v${draft} is stored and not running. The editor shows `, editorVersion ? `v${editorVersion}` : 'your text', '.'));
      parts.push(openVersionButton(draft, `Open draft v${draft}`));
    }
    if (canWrite()) parts.push(activateButton(draft, `Activate v${draft}`, 'btn btn-small btn-primary'));
    return h('div', { class: 'alert alert-info row wrap-row draft-bar', role: 'region', 'aria-label': 'Draft' }, parts);
  }

  /** Loads a stored version's source into the editor (asks first when there are unsaved changes). */
  function openVersionButton(version: number, label: string): HTMLButtonElement {
    const b = h('button', { type: 'button', class: 'btn btn-small' }, label);
    b.addEventListener('click', async () => {
      if (!view) return;
      if (view.state.doc.toString() !== savedSource && !(await confirmDialog('Replace your changes?', `The editor has unsaved changes; opening v${version} replaces them.`, `Open v${version}`))) return;
      try {
        const v = version === rule?.draft?.version && rule.draft.source != null ? rule.draft : await api.get<VersionInfo>(`/rules/${enc(rule!.id)}/versions/${version}`);
        const source = v.source ?? '';
        savedSource = source;
        editorVersion = version;
        view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: source } });
        dirty.hidden = true;
        renderHeader();
        toast(`Opened v${version}`);
      } catch (e) {
        toast(errorMessage(e), 'error');
      }
    });
    return b;
  }

  function activateButton(version: number, label = 'Activate', cls = 'btn btn-small'): HTMLButtonElement {
    const b = h('button', { type: 'button', class: cls, 'aria-label': label.includes(`v${version}`) ? undefined : `${label} (v${version})` }, label);
    if (!canWrite()) {
      b.disabled = true;
      b.title = READ_ONLY_TITLE;
    }
    b.addEventListener('click', async () => {
      const ok = await confirmDialog(`Activate version ${version}?`, `New traces will be checked by version ${version} of “${rule!.name}” from now on. Other versions stay stored.`, `Activate v${version}`, false);
      if (!ok) return;
      try {
        rule = { ...rule!, ...(await api.post<RuleInfo>(`/rules/${enc(rule!.id)}/activate`, { version })) };
        toast(`Version ${version} is active`);
        await reload();
      } catch (e) {
        toast(errorMessage(e), 'error');
      }
    });
    return b;
  }

  // ---- save ----
  async function saveFlow(): Promise<void> {
    if (!view) return;
    const source = view.state.doc.toString();
    if (!rule) {
      const name = nameInput.value.trim();
      if (!name) {
        toast('Give the rule a name first.', 'error');
        nameInput.focus();
        return;
      }
    }
    const answer = await saveDialog(rule ? `Save version ${rule.latest_version + 1}` : 'Save rule', !rule);
    if (answer === null) return;
    const { message, draft } = answer;
    const saved = (created: RuleCreated) =>
      draft ? `Saved version ${created.version} as a draft: it does not run until you activate it` : rule ? `Saved version ${created.version}` : `Saved “${created.name}” as version ${created.version}`;
    try {
      if (!rule) {
        const created = await api.post<RuleCreated>('/rules', { name: nameInput.value.trim(), source, message: message || undefined, draft: draft || undefined });
        toast(saved(created));
        savedSource = source;
        navigate(`/rules/${enc(created.id)}`, { replace: true });
      } else {
        const created = await api.put<RuleCreated>(`/rules/${enc(rule.id)}`, { source, message: message || undefined, draft: draft || undefined });
        toast(saved(created));
        savedSource = source;
        editorVersion = created.version;
        dirty.hidden = true;
        await reload();
      }
    } catch (e) {
      if (e instanceof ApiError && e.code === 'compile_error') {
        toast(`Not saved: ${e.line ? `line ${e.line}: ` : ''}${e.message}`, 'error');
      } else toast(`Not saved: ${errorMessage(e)}`, 'error');
    }
  }

  /** The version message and whether to store the version as a draft; null when cancelled. */
  function saveDialog(title: string, first: boolean): Promise<{ message: string; draft: boolean } | null> {
    return new Promise((resolve) => {
      let answered = false;
      const message = h('input', { id: 'save-message', type: 'text', autocomplete: 'off', 'aria-describedby': 'save-message-hint' });
      const draft = h('input', { id: 'save-draft', type: 'checkbox', 'aria-describedby': 'save-draft-hint' });
      const form = h(
        'form',
        { class: 'stack' },
        h('div', { class: 'field' }, h('label', { for: 'save-message' }, 'What changed? (version message)'), message, h('span', { class: 'hint', id: 'save-message-hint' }, 'Stored with the version and shown in the history, like a commit message.')),
        h(
          'div',
          { class: 'field' },
          h('label', { class: 'check', for: 'save-draft' }, draft, 'Save as draft (does not run until activated)'),
          h('span', { class: 'hint', id: 'save-draft-hint' }, first ? 'The rule is stored without an active version: nothing runs until you activate one.' : `v${rule?.active_version || '—'} keeps running; try the draft with Backtest, then activate it.`),
        ),
        h(
          'div',
          { class: 'dialog-actions' },
          h('button', { type: 'button', class: 'btn', onclick: () => d.close() }, 'Cancel'),
          h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save'),
        ),
      );
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        answered = true;
        resolve({ message: message.value.trim(), draft: draft.checked });
        d.close();
      });
      const d = openDialog(title, form, { onClose: () => (answered ? undefined : resolve(null)) });
      message.focus();
    });
  }

  // ---- panels ----
  const tabs = ['Test', 'Backtest', 'History'] as const;
  type Tab = (typeof tabs)[number];
  let currentTab: Tab = (ctx.query.get('tab') as Tab) || 'Test';
  const tabButtons = new Map<Tab, HTMLButtonElement>();
  const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Rule tools' });
  for (const t of tabs) {
    const b = h('button', { type: 'button', role: 'tab', id: `tab-${t}`, 'aria-controls': 'rule-panel', class: 'tab' }, t);
    b.addEventListener('click', () => selectTab(t));
    b.addEventListener('keydown', (ev) => {
      const i = tabs.indexOf(t);
      if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') {
        const next = tabs[(i + (ev.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length];
        selectTab(next);
        tabButtons.get(next)!.focus();
        ev.preventDefault();
      }
    });
    tabButtons.set(t, b);
    tablist.appendChild(b);
  }
  const panel = h('div', { class: 'panel', id: 'rule-panel', role: 'tabpanel' }, panelHost);

  function selectTab(t: Tab): void {
    currentTab = t;
    for (const [name, b] of tabButtons) {
      b.setAttribute('aria-selected', String(name === t));
      b.tabIndex = name === t ? 0 : -1;
    }
    panel.setAttribute('aria-labelledby', `tab-${t}`);
    mergeView?.destroy();
    mergeView = null;
    wideHost.hidden = true;
    mount(wideHost);
    if (t === 'Test') renderTest();
    else if (t === 'Backtest') renderBacktest();
    else renderHistory();
  }

  // Test panel state survives tab switches.
  const traceInput = h('textarea', { id: 'test-traces', class: 'mono', rows: 10, spellcheck: 'false', placeholder: '{"resourceSpans": [...]} — one OTLP/JSON document or an array of them' });
  const testResults = h('div', { class: 'test-results', 'aria-live': 'polite' });

  function renderTest(): void {
    const run = h('button', { type: 'button', class: 'btn btn-primary' }, 'Run test');
    if (!canWrite()) {
      run.disabled = true;
      run.title = 'Testing compiles the source, which needs the editor or admin role';
    }
    const recent = h('select', { id: 'recent-trace' }, h('option', { value: '' }, 'Loading recent traces…'));
    recent.disabled = true;
    api
      .get<{ items: TraceSummary[] }>(`/traces${qs({ limit: 50 })}`)
      .then(({ items }) => {
        mount(recent, h('option', { value: '' }, items.length ? `Pick one of ${items.length} recent traces…` : 'No recent traces'));
        for (const t of items) recent.appendChild(h('option', { value: t.trace_id }, `${t.root_name ?? '(no root)'} · ${t.service ?? '?'} · ${t.spans} spans · ${fmtDuration(t.duration_ms)} · ${shortId(t.trace_id)}`));
        recent.disabled = items.length === 0;
      })
      .catch((e) => {
        mount(recent, h('option', { value: '' }, `Recent traces: ${errorMessage(e)}`));
      });
    recent.addEventListener('change', async () => {
      if (!recent.value) return;
      try {
        const doc = await api.get<unknown>(`/traces/${enc(recent.value)}`);
        traceInput.value = JSON.stringify(doc, null, 2);
      } catch (e) {
        toast(errorMessage(e), 'error');
      }
    });
    run.addEventListener('click', () => void runTest(run));
    mount(
      panelHost,
      h('p', { class: 'muted small' }, 'Runs the source in the editor on traces you give it; nothing is saved.'),
      h('div', { class: 'field' }, h('label', { for: 'test-traces' }, 'Traces (OTLP/JSON)'), traceInput),
      h(
        'div',
        { class: 'row wrap-row' },
        h('label', { for: 'recent-trace', class: 'sr-only' }, 'Recent trace'),
        recent,
        h('button', { type: 'button', class: 'btn', onclick: () => (traceInput.value = sampleTrace()) }, 'Insert sample trace'),
        run,
      ),
      testResults,
    );
  }

  async function runTest(btn: HTMLButtonElement): Promise<void> {
    let traces: unknown;
    try {
      traces = JSON.parse(traceInput.value);
    } catch (e) {
      mount(testResults, h('div', { class: 'alert alert-error', role: 'alert' }, `The traces are not valid JSON: ${(e as Error).message}`));
      return;
    }
    btn.disabled = true;
    mount(testResults, loading('Compiling and running…'));
    try {
      const report = await api.post<TestReport>('/rules/test', { source: view!.state.doc.toString(), traces });
      const spans = parseOtlp(traces);
      mount(
        testResults,
        h('p', { class: 'muted small' }, `Compiled in ${Math.round(report.compile_ms)} ms · ${report.traces.length} trace${report.traces.length === 1 ? '' : 's'}`),
        report.traces.length === 0 ? h('p', { class: 'muted' }, 'No traces in the input.') : null,
        report.traces.map((r) => traceResult(r, spans.filter((s) => s.traceId === r.trace_id))),
      );
    } catch (e) {
      const text = e instanceof ApiError && e.code === 'compile_error' && e.line ? `Line ${e.line}: ${e.message}` : errorMessage(e);
      mount(testResults, h('div', { class: 'alert alert-error', role: 'alert' }, text));
    } finally {
      btn.disabled = !canWrite();
    }
  }

  function traceResult(r: TraceResult, spans: ReturnType<typeof parseOtlp>): HTMLElement {
    const witnesses = r.violations.flatMap((v) => v.span_ids);
    const ok = r.outcome === 'ok';
    const verdict = verdictOf(r);
    return h(
      'article',
      { class: `result ${r.violations.length ? 'result-violation' : ok ? 'result-pass' : 'result-failed'}`, 'aria-label': `Result for trace ${r.trace_id}` },
      h(
        'div',
        { class: 'result-head' },
        h('strong', null, r.violations.length ? `${r.violations.length} violation${r.violations.length === 1 ? '' : 's'}` : !ok ? `Failed: ${r.outcome}` : verdict === 'when_failed' ? 'Does not apply (its when did not hold)' : 'No violation (its expect held)'),
        verdictBadge(verdict),
        h('span', { class: `badge ${ok ? 'badge-ok' : 'badge-danger'}` }, `outcome: ${r.outcome}`),
        h('span', { class: 'muted small' }, `trace ${shortId(r.trace_id, 12)} · ${r.spans} spans · fuel ${fmtNumber(r.fuel_used)} · ${fmtDuration(r.elapsed_us / 1000)}`),
        r.prefilter_skips
          ? h('span', { class: 'badge', title: 'Live traces like this one skip the rule: they cannot meet the condition FLUO derives from its source (run here anyway for its logs)' }, 'skipped live by the prefilter')
          : null,
      ),
      r.error ? h('div', { class: 'alert alert-error' }, `${r.error.name}: ${r.error.message}${r.error.line ? ` (line ${r.error.line})` : ''}`) : null,
      r.violations.length
        ? h(
            'ul',
            { class: 'violations' },
            r.violations.map((v) =>
              h('li', null, sevBadge(v.severity), ' ', h('span', { class: 'violation-message' }, v.message), v.witnesses.length ? h('div', { class: 'muted small' }, 'witnesses: ', v.witnesses.map((w) => `${w.name}${w.service ? ` (${w.service})` : ''}`).join(', ')) : null),
            ),
          )
        : null,
      spans.length ? waterfall(spans, { witnesses, label: `Tested trace ${r.trace_id}`, compact: true }) : null,
    );
  }

  function renderBacktest(): void {
    const limit = h('input', { id: 'bt-limit', type: 'number', min: 1, max: 10000, value: 1000 });
    const out = h('div', { class: 'bt-out', 'aria-live': 'polite' });
    const buttons: HTMLButtonElement[] = [];
    const run = async (what: string, ask: () => Promise<BacktestReport>) => {
      for (const b of buttons) b.disabled = true;
      mount(out, loading(`Backtesting ${what} over retained traces…`));
      try {
        const r = await ask();
        if (alive) mount(out, backtestReport(r, what, rule?.active_version));
      } catch (e) {
        const text = e instanceof ApiError && e.code === 'compile_error' && e.line ? `Line ${e.line}: ${e.message}` : errorMessage(e);
        mount(out, h('div', { class: 'alert alert-error', role: 'alert' }, h('strong', null, 'Error: '), text));
      } finally {
        for (const b of buttons) b.disabled = b.dataset.never === 'true';
      }
    };
    const max = () => Math.min(10000, Math.max(1, Number(limit.value) || 1000));

    // The editor's text, saved or not.
    const runText = h('button', { type: 'button', class: 'btn btn-primary' }, 'Backtest on retained traces');
    if (!canWrite()) {
      runText.disabled = true;
      runText.dataset.never = 'true';
      runText.title = 'Backtesting the text compiles it, which needs the editor or admin role';
    }
    runText.addEventListener('click', () => void run('the text in the editor', () => api.post<BacktestReport>('/rules/backtest', { source: view!.state.doc.toString(), limit: max() })));
    buttons.push(runText);

    // A stored version, a draft too.
    let stored: HTMLElement | null = null;
    if (rule && versions.length) {
      const r = rule;
      const label = (n: number) => `v${n}${n === r.active_version ? ' (active)' : hasDraft(r) && n === r.latest_version ? ' (draft)' : ''}`;
      const version = h('select', { id: 'bt-version' }, versions.slice().reverse().map((v) => h('option', { value: v.version }, label(v.version))));
      version.value = String(r.active_version || r.latest_version);
      const runStored = h('button', { type: 'button', class: 'btn' }, 'Run backtest');
      runStored.addEventListener('click', () => {
        const n = Number(version.value);
        void run(`v${n}`, () => api.post<BacktestReport>(`/rules/${enc(r.id)}/backtest`, { version: n, limit: max() }));
      });
      buttons.push(runStored);
      stored = h(
        'div',
        { class: 'bt-source', role: 'group', 'aria-labelledby': 'bt-stored-title' },
        h('h3', { class: 'h4', id: 'bt-stored-title' }, 'A stored version'),
        h('div', { class: 'row wrap-row align-end' }, h('div', { class: 'field' }, h('label', { for: 'bt-version' }, 'Version'), version), runStored),
      );
    }
    mount(
      panelHost,
      h('p', { class: 'muted small' }, 'Runs a rule over the traces the server still retains (Settings → Trace links and retention), without creating signals.'),
      h('div', { class: 'field' }, h('label', { for: 'bt-limit' }, 'Max traces'), limit, h('span', { class: 'hint' }, 'The newest retained traces, 1 to 10,000.')),
      h(
        'div',
        { class: 'bt-source', role: 'group', 'aria-labelledby': 'bt-text-title' },
        h('h3', { class: 'h4', id: 'bt-text-title' }, 'The text in the editor'),
        h('p', { class: 'muted small' }, 'Unsaved changes included: try a change before you save it.'),
        runText,
      ),
      stored,
      out,
    );
  }

  function renderHistory(): void {
    if (!rule) {
      mount(panelHost, emptyState('No history yet', 'Each save stores an immutable version here.'));
      return;
    }
    const r = rule;
    const list = h(
      'table',
      { class: 'table table-compact stack-mobile' },
      h('caption', { class: 'sr-only' }, 'Versions'),
      h('thead', null, h('tr', null, ['Version', 'Message', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        null,
        versions
          .slice()
          .reverse()
          .map((v) =>
            h(
              'tr',
              { class: v.version === r.active_version ? 'row-active' : '' },
              h('th', { scope: 'row', 'data-label': 'Version' }, h('span', { class: 'mono' }, `v${v.version}`), v.version === r.active_version ? h('span', { class: 'badge badge-accent', 'aria-label': 'active version' }, 'active') : null),
              h(
                'td',
                { 'data-label': 'Message' },
                h('div', null, v.message || h('span', { class: 'muted' }, '(no message)')),
                h('div', { class: 'muted small' }, `${fmtDate(v.created_at)} · by `, v.author_name ? h('span', { title: v.author ?? '' }, v.author_name) : h('span', { class: 'mono' }, v.author ?? 'unknown')),
              ),
              h(
                'td',
                { 'data-label': 'Actions' },
                h('div', { class: 'row' }, h('a', { href: `/rules/${enc(r.id)}?version=${v.version}`, class: 'btn btn-small', 'aria-label': `View v${v.version}` }, 'View'), v.version !== r.active_version && canWrite() ? activateButton(v.version) : null),
              ),
            ),
          ),
      ),
    );
    const from = h('select', { id: 'diff-from' }, versions.map((v) => h('option', { value: v.version }, `v${v.version}`)));
    const to = h('select', { id: 'diff-to' }, versions.map((v) => h('option', { value: v.version }, `v${v.version}`)));
    from.value = String(Math.max(1, r.latest_version - 1));
    to.value = String(r.latest_version);
    const diffHost = h('div', { class: 'diff-host' });
    const show = h('button', { type: 'button', class: 'btn' }, 'Compare');
    const showDiff = async () => {
      mount(diffHost, loading('Loading both versions…'));
      try {
        const [a, b] = await Promise.all([
          api.get<VersionInfo>(`/rules/${enc(r.id)}/versions/${from.value}`),
          api.get<VersionInfo>(`/rules/${enc(r.id)}/versions/${to.value}`),
        ]);
        const { MergeView } = await import('@codemirror/merge');
        if (!alive) return;
        mergeView?.destroy();
        const ro = [basicSetup, javascript(), editorTheme, EditorState.readOnly.of(true), EV.editable.of(false), EV.theme({ '.cm-scroller': { overflow: 'auto' } })];
        const host = h('div', { class: 'merge' });
        mount(
          diffHost,
          h('div', { class: 'diff-labels', 'aria-hidden': 'true' }, h('span', null, `v${a.version}${a.message ? ` — ${a.message}` : ''}`), h('span', null, `v${b.version}${b.message ? ` — ${b.message}` : ''}`)),
          h('section', { 'aria-label': `Differences between v${a.version} and v${b.version}` }, host),
        );
        const { root, parent } = shadowMount(host);
        mergeView = new MergeView({
          root,
          a: { doc: a.source ?? '', extensions: [...ro, EV.contentAttributes.of({ 'aria-label': `Version ${a.version} source` })] },
          b: { doc: b.source ?? '', extensions: [...ro, EV.contentAttributes.of({ 'aria-label': `Version ${b.version} source` })] },
          parent,
          highlightChanges: true,
          gutter: true,
        });
        if (a.source === b.source) diffHost.appendChild(h('p', { class: 'muted small' }, 'The two versions have the same source.'));
      } catch (e) {
        mount(diffHost, errorBox(e));
      }
    };
    show.addEventListener('click', () => void showDiff());
    const del = h('button', { type: 'button', class: 'btn btn-danger' }, 'Delete rule…');
    if (!canWrite()) {
      del.disabled = true;
      del.title = READ_ONLY_TITLE;
    }
    del.addEventListener('click', async () => {
      const ok = await confirmDialog(`Delete “${r.name}”?`, 'All its versions are deleted and it stops running at once. Its signals stay, with the rule name and version.', 'Delete rule');
      if (!ok) return;
      try {
        await api.del(`/rules/${enc(r.id)}`);
        toast(`Deleted “${r.name}”`);
        clearLeaveGuard(leaveGuard); // nothing left to save
        navigate('/rules', { replace: true });
      } catch (e) {
        toast(errorMessage(e), 'error');
      }
    });
    mount(
      panelHost,
      h('h2', { class: 'h3' }, 'Versions'),
      h('div', { class: 'table-scroll' }, list),
      versions.length > 1 ? h('p', { class: 'muted small' }, 'The comparison of two versions is below the editor.') : null,
      canWrite() ? h('div', { class: 'danger-zone' }, h('h2', { class: 'h3' }, 'Danger zone'), del) : null,
    );
    // The side-by-side diff needs the page's width: a card under the editor and the panel.
    if (versions.length > 1) {
      wideHost.hidden = false;
      mount(
        wideHost,
        h('h2', { class: 'h3', id: 'compare-title' }, 'Compare versions'),
        h('div', { class: 'row wrap-row align-end' }, h('div', { class: 'field' }, h('label', { for: 'diff-from' }, 'From'), from), h('div', { class: 'field' }, h('label', { for: 'diff-to' }, 'To'), to), show),
        diffHost,
      );
    }
    if (versions.length > 1) void showDiff();
  }

  // ---- load ----
  async function reload(): Promise<void> {
    if (!ruleId) return;
    const [r, vs] = await Promise.all([api.get<RuleInfo>(`/rules/${enc(ruleId)}`), api.get<{ items: VersionInfo[] }>(`/rules/${enc(ruleId)}/versions`)]);
    rule = r;
    versions = vs.items.sort((a, b) => a.version - b.version);
    renderHeader();
    if (currentTab === 'History' || currentTab === 'Backtest') selectTab(currentTab);
  }

  async function init(): Promise<void> {
    let source = SKELETON;
    try {
      if (ruleId) {
        await reload();
        if (!alive) return;
        if (viewVersion !== null && Number.isFinite(viewVersion)) {
          readOnlyVersion = await api.get<VersionInfo>(`/rules/${enc(ruleId)}/versions/${viewVersion}`);
          source = readOnlyVersion.source ?? '';
        } else {
          // The active version, or the draft while the rule has only drafts.
          const shown = rule!.active_version || rule!.latest_version;
          const stored = rule!.active_version ? rule!.active : rule!.draft;
          source = (stored?.source != null ? stored.source : (await api.get<VersionInfo>(`/rules/${enc(ruleId)}/versions/${shown}`)).source) ?? '';
          editorVersion = shown;
        }
        savedSource = source;
      } else {
        const tid = ctx.query.get('template');
        nameInput.value = 'my-rule';
        if (tid) {
          const t = (await loadTemplates()).find((x) => x.id === tid);
          if (t) {
            source = t.source;
            nameInput.value = t.id;
          } else toast(`No template “${tid}”`, 'error');
        }
        savedSource = '';
      }
    } catch (e) {
      if (alive) mount(ctx.root, h('nav', { class: 'crumbs' }, h('a', { href: '/rules' }, 'Rules')), errorBox(e, () => void init()));
      return;
    }
    if (!alive) return;
    if (canWrite()) loadVocabulary();
    renderHeader();
    const readOnly = !editable();
    mount(
      ctx.root,
      headerHost,
      h(
        'div',
        { class: 'editor-layout' },
        h(
          'section',
          { class: 'card editor-card', 'aria-label': 'Source' },
          isNew
            ? h('div', { class: 'field field-inline' }, h('label', { for: 'rule-name' }, 'Rule name'), nameInput, h('span', { class: 'hint' }, 'Letters, digits, . _ - ; saving an existing name adds a version to it.'))
            : null,
          editorHost,
          canWrite() && !readOnly ? status : h('div', { class: 'compile-status cs-idle' }, readOnly && canWrite() ? 'Read-only view of a stored version.' : 'Read-only: your role cannot change rules.'),
        ),
        h('section', { class: 'card tools-card', 'aria-label': 'Test, backtest and history' }, tablist, panel),
      ),
      wideHost,
    );
    view = ruleEditor({ parent: editorHost, doc: source, readOnly, compile: readOnly ? undefined : compiler, onChange, label: 'Rule source' });
    if (!readOnly) setStatus('idle', ['Edit the source; it is compiled as you type.']);
    dirty.hidden = isNew ? false : true;
    selectTab(tabs.includes(currentTab) ? currentTab : 'Test');
    if (isNew && !readOnly) view.focus();
  }

  const onKey = (ev: KeyboardEvent) => {
    if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 's' && editable() && view) {
      ev.preventDefault();
      void saveFlow();
    }
  };
  document.addEventListener('keydown', onKey);
  const unsaved = () => Boolean(view && editable() && view.state.doc.toString() !== savedSource);
  const beforeUnload = (ev: BeforeUnloadEvent) => {
    if (unsaved()) ev.preventDefault();
  };
  window.addEventListener('beforeunload', beforeUnload);
  // Leaving through the console's own links asks too (the browser's Back button cannot be held).
  const leaveGuard = () => !unsaved() || window.confirm('Leave this rule? Your changes are not saved.');
  setLeaveGuard(leaveGuard);

  void init();
  return () => {
    alive = false;
    document.removeEventListener('keydown', onKey);
    window.removeEventListener('beforeunload', beforeUnload);
    clearLeaveGuard(leaveGuard);
    mergeView?.destroy();
    view?.destroy();
  };
}

/** Whether a version newer than the active one is stored (servers before drafts: never). */
function hasDraft(r: RuleInfo): boolean {
  return r.has_draft ?? false;
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

