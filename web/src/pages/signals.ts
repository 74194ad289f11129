// The signals inbox: groups of violations (issues with occurrences). Filters in the URL, live
// updates over SSE, counts chart following the time range, bulk status changes (also to every
// group matching the filter, page by page), snoozed groups hidden unless asked for.
import { api, errorMessage, qs, sessionEnded } from '../api';
import { countsChart, type ChartData } from '../chart';
import { h, mount } from '../dom';
import { fmtDate, fromLocalInput, shortId, timeAgo, toLocalInput } from '../format';
import { groupKeyLabel, isSnoozed, loadUsers, myId, RANGES, snoozeText, sparkline, userLabel } from '../groups';
import { type Ctx, setQuery } from '../router';
import { canWrite, READ_ONLY_TITLE } from '../session';
import { openStream, type StreamState } from '../sse';
import { SEVERITIES, STATUSES, STATUS_LABEL, TRANSITIONS, type Counts, type RuleInfo, type Signal, type SignalPage, type Status, type UserInfo } from '../types';
import { emptyState, errorBox, loading, pageHeader, sevBadge, statusBadge, toast } from '../ui';

// `range` is a quick range (15m, 1h, 24h, 7d) relative to now; `snoozed=all` shows snoozed groups too.
const FILTERS = ['status', 'severity', 'rule', 'assignee', 'range', 'since', 'until', 'q', 'snoozed'] as const;
type Filters = Partial<Record<(typeof FILTERS)[number], string>>;
const PAGE = 50;
const REFRESH_MS = 20_000;

/** The API's filters for the inbox's: a quick range becomes `since`, snoozed groups are left out by default. */
function apiFilters(f: Filters): Record<string, string> {
  const q: Record<string, string> = {};
  for (const k of ['status', 'severity', 'rule', 'assignee', 'since', 'until', 'q'] as const) if (f[k]) q[k] = f[k]!;
  const r = RANGES.find((x) => x.key === f.range);
  if (r) q.since = new Date(Date.now() - r.ms).toISOString();
  if (f.snoozed !== 'all') q.snoozed = 'false';
  return q;
}

function matches(sig: Signal, f: Filters): boolean {
  const a = apiFilters(f);
  if (a.status && sig.status !== a.status) return false;
  if (a.severity && sig.severity !== a.severity) return false;
  if (a.rule && sig.rule_id !== a.rule && sig.rule_name !== a.rule) return false;
  if (a.assignee === 'none' && sig.assignee) return false;
  if (a.assignee && a.assignee !== 'none' && sig.assignee !== a.assignee) return false;
  if (a.snoozed === 'false' && isSnoozed(sig)) return false;
  // since: last seen at or after; until: first seen before
  if (a.since && (sig.last_seen_unix_ms ?? sig.created_unix_ms) < Date.parse(a.since)) return false;
  if (a.until && sig.created_unix_ms >= Date.parse(a.until)) return false;
  if (a.q) {
    const q = a.q.toLowerCase();
    if (!sig.message.toLowerCase().includes(q) && !sig.rule_name.toLowerCase().includes(q)) return false;
  }
  return true;
}

export function signalsPage(ctx: Ctx): () => void {
  let alive = true;
  const filters: Filters = {};
  for (const k of FILTERS) {
    const v = ctx.query.get(k);
    if (v) filters[k] = v;
  }
  let items: Signal[] = [];
  let sparks: Record<string, number[]> = {};
  let nextCursor: string | null = null;
  let counts: Counts | null = null;
  let chart: ChartData | null = null;
  const selected = new Set<string>();
  /** Every group matching the filter is selected (not only those shown). */
  let allMatching = false;
  const fresh = new Set<string>();
  let rules: RuleInfo[] = [];
  let users = new Map<string, UserInfo>();

  // ---- filter form ----
  const status = h('select', { id: 'f-status', name: 'status' }, h('option', { value: '' }, 'Any status'), STATUSES.map((s) => h('option', { value: s }, STATUS_LABEL[s])));
  const severity = h('select', { id: 'f-severity', name: 'severity' }, h('option', { value: '' }, 'Any severity'), SEVERITIES.map((s) => h('option', { value: s }, s)));
  const rule = h('select', { id: 'f-rule', name: 'rule' }, h('option', { value: '' }, 'Any rule'));
  const assignee = h('select', { id: 'f-assignee', name: 'assignee' });
  const since = h('input', { id: 'f-since', name: 'since', type: 'datetime-local' });
  const until = h('input', { id: 'f-until', name: 'until', type: 'datetime-local' });
  const q = h('input', { id: 'f-q', name: 'q', type: 'search', placeholder: 'message or rule', autocomplete: 'off' });
  const showSnoozed = h('input', { id: 'f-snoozed', name: 'snoozed', type: 'checkbox' });
  status.value = filters.status ?? '';
  severity.value = filters.severity ?? '';
  since.value = toLocalInput(filters.since ?? null);
  until.value = toLocalInput(filters.until ?? null);
  q.value = filters.q ?? '';
  showSnoozed.checked = filters.snoozed === 'all';
  if (filters.rule) rule.appendChild(h('option', { value: filters.rule }, filters.rule));
  rule.value = filters.rule ?? '';
  const fillAssignees = () => {
    const me = myId();
    const cur = filters.assignee ?? '';
    mount(
      assignee,
      h('option', { value: '' }, 'Anyone'),
      h('option', { value: 'none' }, 'Unassigned'),
      me ? h('option', { value: me }, 'Assigned to me') : null,
      [...users.values()].filter((u) => u.id !== me).sort((a, b) => a.email.localeCompare(b.email)).map((u) => h('option', { value: u.id }, u.email)),
      cur && cur !== 'none' && cur !== me && !users.has(cur) ? h('option', { value: cur }, cur) : null,
    );
    assignee.value = cur;
  };
  fillAssignees();

  const form = h(
    'form',
    { class: 'filters', id: 'signal-filters', role: 'search', 'aria-label': 'Filter signals' },
    h('div', { class: 'field' }, h('label', { for: 'f-status' }, 'Status'), status),
    h('div', { class: 'field' }, h('label', { for: 'f-severity' }, 'Severity'), severity),
    h('div', { class: 'field' }, h('label', { for: 'f-rule' }, 'Rule'), rule),
    h('div', { class: 'field' }, h('label', { for: 'f-assignee' }, 'Assignee'), assignee),
    h('div', { class: 'field' }, h('label', { for: 'f-since' }, 'Last seen from'), since),
    h('div', { class: 'field' }, h('label', { for: 'f-until' }, 'First seen before'), until),
    h('div', { class: 'field field-grow' }, h('label', { for: 'f-q' }, 'Search'), q),
    h('div', { class: 'field field-buttons' }, h('button', { type: 'submit', class: 'btn' }, 'Apply'), h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => clear() }, 'Clear')),
  );
  const readForm = () => {
    const f: Filters = {};
    if (status.value) f.status = status.value;
    if (severity.value) f.severity = severity.value;
    if (rule.value) f.rule = rule.value;
    if (assignee.value) f.assignee = assignee.value;
    const s1 = fromLocalInput(since.value);
    const s2 = fromLocalInput(until.value);
    if (s1) f.since = s1;
    else if (filters.range) f.range = filters.range;
    if (s2) f.until = s2;
    if (q.value.trim()) f.q = q.value.trim();
    if (showSnoozed.checked) f.snoozed = 'all';
    return f;
  };
  const apply = (next?: Filters) => {
    const f = next ?? readForm();
    for (const k of FILTERS) delete filters[k];
    Object.assign(filters, f);
    const p = new URLSearchParams();
    for (const k of FILTERS) if (filters[k]) p.set(k, filters[k]!);
    setQuery(p);
    filtersToggle.textContent = `Filters${activeFilters() ? ` (${activeFilters()})` : ''}`;
    renderRanges();
    void load();
  };
  const clear = () => {
    status.value = severity.value = rule.value = assignee.value = since.value = until.value = q.value = '';
    showSnoozed.checked = false;
    apply({});
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    apply();
  });
  for (const el of [status, severity, rule, assignee, since, until, showSnoozed]) el.addEventListener('change', () => apply());

  // Quick ranges: last 15 m, 1 h, 24 h, 7 d (groups last seen within it; the chart follows).
  const ranges = h('div', { class: 'ranges', role: 'group', 'aria-label': 'Time range' });
  function renderRanges(): void {
    mount(
      ranges,
      h('span', { class: 'muted small' }, 'Last seen:'),
      RANGES.map((r) =>
        h('button', { type: 'button', class: 'btn btn-small range-btn', 'aria-pressed': String(filters.range === r.key), onclick: () => setRange(filters.range === r.key ? null : r.key) }, r.label),
      ),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost range-btn', 'aria-pressed': String(!filters.range && !filters.since && !filters.until), onclick: () => setRange(null) }, 'Any time'),
    );
  }
  function setRange(key: string | null): void {
    const f = readForm();
    delete f.since;
    delete f.until;
    delete f.range;
    since.value = until.value = '';
    if (key) f.range = key;
    apply(f);
  }
  renderRanges();
  const snoozedToggle = h('label', { class: 'check snoozed-toggle' }, showSnoozed, 'Show snoozed');

  // On phones the filters fold away behind a button.
  const activeFilters = () => Object.keys(filters).length;
  const filtersToggle = h('button', { type: 'button', class: 'btn btn-small filters-toggle', 'aria-expanded': 'false', 'aria-controls': 'signal-filters' }, `Filters${activeFilters() ? ` (${activeFilters()})` : ''}`);
  filtersToggle.addEventListener('click', () => {
    const open = form.classList.toggle('open');
    filtersToggle.setAttribute('aria-expanded', String(open));
  });

  // ---- parts ----
  const live = h('span', { class: 'live live-connecting', role: 'status' }, 'Connecting…');
  const summary = h('div', { class: 'summary' });
  const chartHost = h('div', { class: 'card chart-card' });
  const bulk = h('div', { class: 'bulk', hidden: true, role: 'region', 'aria-label': 'Bulk actions' });
  const listHost = h('div', null, loading('Loading signals…'));
  const more = h('div', { class: 'more' });
  const notice = h('div');

  mount(
    ctx.root,
    pageHeader('Signals', 'Rule violations found in your traces, grouped: one row per issue, with its occurrences. Latest first.', [filtersToggle, live]),
    form,
    h('div', { class: 'inbox-bar' }, ranges, snoozedToggle),
    notice,
    h('div', { class: 'signals-top' }, summary, chartHost),
    bulk,
    listHost,
    more,
  );

  api
    .get<{ items: RuleInfo[] }>('/rules')
    .then((r) => {
      if (!alive) return;
      rules = r.items.sort((a, b) => a.name.localeCompare(b.name));
      const cur = rule.value;
      mount(rule, h('option', { value: '' }, 'Any rule'), rules.map((x) => h('option', { value: x.id }, x.name)));
      if (cur && !rules.some((x) => x.id === cur)) {
        const byName = rules.find((x) => x.name === cur);
        rule.appendChild(h('option', { value: byName ? byName.id : cur }, byName ? byName.name : cur));
        rule.value = byName ? byName.id : cur;
      } else rule.value = cur;
    })
    .catch(() => undefined);
  void loadUsers().then((u) => {
    if (!alive) return;
    users = u;
    fillAssignees();
    if (items.length) renderList();
  });

  // ---- rendering ----
  function renderSummary(): void {
    if (!counts) {
      mount(summary);
      return;
    }
    const filtered = Object.keys(filters).some((k) => k !== 'snoozed');
    mount(
      summary,
      h(
        'div',
        { class: 'card total-card' },
        h('div', { class: 'stat-value', id: 'signal-total' }, String(counts.total)),
        h('div', { class: 'stat-label' }, `${filtered ? 'matching groups' : 'groups'}${filters.snoozed === 'all' ? '' : ' (not snoozed)'}`),
        counts.occurrences !== undefined ? h('div', { class: 'small muted', id: 'occurrence-total' }, `${counts.occurrences} occurrence${counts.occurrences === 1 ? '' : 's'}`) : null,
      ),
      h(
        'ul',
        { class: 'sev-counts', 'aria-label': 'By severity' },
        SEVERITIES.map((s) =>
          h('li', null, h('a', { href: `/signals${qs({ ...filters, severity: s })}`, class: `sev-count sev-${s}`, 'aria-label': `${counts!.by_severity[s] ?? 0} ${s}` }, h('span', { class: 'n' }, String(counts!.by_severity[s] ?? 0)), h('span', null, s))),
        ),
      ),
      h('ul', { class: 'status-counts muted small', 'aria-label': 'By status' }, STATUSES.map((s) => h('li', null, `${STATUS_LABEL[s]}: ${counts!.by_status[s] ?? 0}`))),
    );
  }

  function chartTitle(): string {
    const r = RANGES.find((x) => x.key === filters.range);
    if (r) return `Occurrences by rule, last ${r.label}`;
    if (filters.since || filters.until) return 'Occurrences by rule in the selected range';
    return 'Occurrences by rule, last 24 h';
  }

  function renderChart(): void {
    if (!chart) {
      mount(chartHost, loading('Loading chart…'));
      return;
    }
    mount(chartHost, countsChart(chart, chartTitle()));
  }

  function renderBulk(): void {
    bulk.hidden = selected.size === 0 && !allMatching;
    if (bulk.hidden) return;
    const note = h('input', { id: 'bulk-note', type: 'text', placeholder: 'optional', autocomplete: 'off' });
    const act = (to: Status) => {
      const b = h('button', { type: 'button', class: 'btn btn-small' }, to === 'acknowledged' ? 'Acknowledge' : to === 'resolved' ? 'Resolve' : 'Mark false positive');
      b.addEventListener('click', () => void bulkChange(to, note.value.trim(), b));
      return b;
    };
    const total = counts?.total ?? items.length;
    const everyShown = items.length > 0 && items.every((s) => selected.has(s.id));
    mount(
      bulk,
      h('strong', { id: 'bulk-count' }, allMatching ? `All ${total} matching selected` : `${selected.size} selected`),
      !allMatching && everyShown && total > items.length
        ? h('button', { type: 'button', class: 'btn btn-small btn-ghost', onclick: () => { allMatching = true; renderBulk(); } }, `Select all ${total} matching`)
        : null,
      h('div', { class: 'field field-inline' }, h('label', { for: 'bulk-note' }, 'Note'), note),
      act('acknowledged'),
      act('resolved'),
      act('false_positive'),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', onclick: () => { selected.clear(); allMatching = false; renderList(); } }, 'Clear selection'),
    );
  }

  /** Every group matching the filter, read page by page with the cursor. */
  async function allMatchingGroups(): Promise<Signal[]> {
    const out: Signal[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 1000; i++) {
      const page: SignalPage = await api.get<SignalPage>(`/signals${qs({ ...apiFilters(filters), limit: 100, cursor })}`);
      out.push(...page.items);
      cursor = page.next_cursor ?? null;
      if (!cursor) break;
    }
    return out;
  }

  async function bulkChange(to: Status, note: string, btn: HTMLButtonElement): Promise<void> {
    btn.disabled = true;
    let targets: Signal[];
    try {
      targets = allMatching ? await allMatchingGroups() : items.filter((s) => selected.has(s.id));
    } catch (e) {
      toast(errorMessage(e), 'error');
      btn.disabled = false;
      return;
    }
    let done = 0;
    let skipped = 0;
    const errors: string[] = [];
    const queue = targets.slice();
    // A few at a time: a thousand matching groups do not become a thousand requests at once.
    const worker = async () => {
      for (let s = queue.shift(); s; s = queue.shift()) {
        if (!TRANSITIONS[s.status].includes(to)) {
          skipped++;
          continue;
        }
        try {
          const updated = await api.post<Signal>(`/signals/${encodeURIComponent(s.id)}/status`, { status: to, note: note || undefined });
          items = items.map((x) => (x.id === updated.id ? updated : x));
          done++;
        } catch (e) {
          errors.push(`${shortId(s.id, 12)}: ${errorMessage(e)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    selected.clear();
    allMatching = false;
    toast(`${done} changed to ${STATUS_LABEL[to].toLowerCase()}${skipped ? `, ${skipped} skipped (not allowed from their status)` : ''}${errors.length ? `, ${errors.length} failed: ${errors[0]}` : ''}`, errors.length ? 'error' : 'ok');
    items = items.filter((x) => matches(x, filters));
    renderList();
    void loadCounts();
  }

  function row(sig: Signal): HTMLElement {
    const cb = h('input', { type: 'checkbox', 'aria-label': `Select signal: ${sig.message}`, checked: allMatching || selected.has(sig.id) });
    if (!canWrite()) {
      cb.disabled = true;
      cb.title = READ_ONLY_TITLE;
    }
    cb.addEventListener('change', () => {
      if (allMatching) {
        // Unticking one leaves "all matching": the shown ones stay selected, but this one.
        allMatching = false;
        for (const s of items) selected.add(s.id);
      }
      if (cb.checked) selected.add(sig.id);
      else selected.delete(sig.id);
      renderBulk();
    });
    const n = sig.occurrences ?? 1;
    const spark = sparks[sig.id];
    const lastMs = sig.last_seen_unix_ms ?? sig.created_unix_ms;
    const snoozed = isSnoozed(sig);
    const tr = h(
      'tr',
      { class: `sig-row${fresh.has(sig.id) ? ' fresh' : ''}${snoozed ? ' snoozed' : ''}`, 'data-signal-id': sig.id },
      h('td', { class: 'cb', 'data-label': 'Select' }, cb),
      h('td', { 'data-label': 'Severity' }, sevBadge(sig.severity)),
      h(
        'th',
        { scope: 'row', 'data-label': 'Message', class: 'msg' },
        h('a', { href: `/signals/${encodeURIComponent(sig.id)}`, class: 'sig-link' }, sig.message),
        sig.group_key ? h('span', { class: 'tag tag-gap', title: 'The group key the rule sets' }, groupKeyLabel(sig.group_key)) : null,
        fresh.has(sig.id) ? h('span', { class: 'badge badge-new' }, 'new') : null,
        sig.regressions ? h('span', { class: 'badge badge-danger badge-gap', title: `Reopened ${sig.regressions} time${sig.regressions === 1 ? '' : 's'} after being resolved` }, `regressed${sig.regressions > 1 ? ` ×${sig.regressions}` : ''}`) : null,
        h('span', { class: 'muted small mono block', title: sig.trace_id }, `latest trace ${shortId(sig.trace_id, 12)}`),
      ),
      h('td', { 'data-label': 'Rule' }, h('a', { href: `/rules/${encodeURIComponent(sig.rule_id)}?version=${sig.rule_version}`, class: 'muted-link' }, sig.rule_name), h('span', { class: 'muted small' }, ` v${sig.rule_version}`)),
      h('td', { 'data-label': 'Occurrences', class: 'occ' }, h('span', { class: 'occ-n num', 'aria-label': `${n} occurrence${n === 1 ? '' : 's'}` }, String(n)), spark ? sparkline(spark, `Occurrences of ${sig.message}`) : null),
      h('td', { 'data-label': 'First seen', class: 'small' }, h('time', { datetime: sig.created_at, title: fmtDate(sig.created_at), 'data-ms': sig.created_unix_ms }, timeAgo(sig.created_unix_ms))),
      h('td', { 'data-label': 'Last seen', class: 'small' }, h('time', { datetime: sig.last_seen_at ?? sig.created_at, title: fmtDate(lastMs), 'data-ms': lastMs }, timeAgo(lastMs))),
      h('td', { 'data-label': 'Assignee', class: 'small assignee' }, sig.assignee ? userLabel(sig.assignee, users) : h('span', { class: 'muted' }, '—')),
      h('td', { 'data-label': 'Status' }, statusBadge(sig.status), snoozed ? h('span', { class: 'badge badge-muted badge-gap snooze-mark', title: snoozeText(sig) }, 'snoozed') : null),
    );
    return tr;
  }

  function renderList(): void {
    renderBulk();
    if (items.length === 0) {
      mount(
        listHost,
        Object.keys(filters).length
          ? emptyState('No signals match', 'Try other filters, or clear them.', h('button', { type: 'button', class: 'btn', onclick: () => clear() }, 'Clear filters'))
          : emptyState('No signals yet', ['Signals appear here live when a trace breaks a rule. Make sure rules are enabled and traces are arriving — see ', h('a', { href: '/start' }, 'Getting started'), '.']),
      );
      mount(more);
      return;
    }
    const all = h('input', { type: 'checkbox', 'aria-label': 'Select all shown signals' });
    all.checked = allMatching || (items.length > 0 && items.every((s) => selected.has(s.id)));
    if (!canWrite()) {
      all.disabled = true;
      all.title = READ_ONLY_TITLE;
    }
    all.addEventListener('change', () => {
      allMatching = false;
      for (const s of items) {
        if (all.checked) selected.add(s.id);
        else selected.delete(s.id);
      }
      renderList();
    });
    mount(
      listHost,
      h(
        'div',
        { class: 'card table-card' },
        h(
          'table',
          { class: 'table stack-mobile signals-table' },
          h('caption', { class: 'sr-only' }, 'Signal groups, last seen first'),
          h('thead', null, h('tr', null, h('th', { scope: 'col', class: 'cb' }, all), ['Severity', 'Message', 'Rule', 'Occurrences (24 h)', 'First seen', 'Last seen', 'Assignee', 'Status'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', { id: 'signal-rows' }, items.map(row)),
        ),
      ),
    );
    renderMore();
  }

  function renderMore(): void {
    mount(
      more,
      nextCursor
        ? h('button', { type: 'button', class: 'btn', onclick: (ev: Event) => void loadMore(ev.currentTarget as HTMLButtonElement) }, 'Load older signals')
        : h('p', { class: 'muted small' }, `${items.length} group${items.length === 1 ? '' : 's'} shown — that is all.`),
    );
  }

  // ---- loading ----
  async function loadCounts(): Promise<void> {
    try {
      counts = await api.get<Counts>(`/signals/counts${qs(apiFilters(filters))}`);
      if (alive) {
        renderSummary();
        if (!bulk.hidden) renderBulk();
      }
    } catch {
      /* the list shows errors */
    }
  }

  async function loadChart(): Promise<void> {
    const r = RANGES.find((x) => x.key === filters.range);
    let bucketMs: number;
    let first: number;
    let n: number;
    if (r) {
      // The quick range, in buckets that end with the current one (≤ 60 of them).
      bucketMs = r.bucketMin * 60_000;
      const end = Math.ceil((Date.now() + 1) / bucketMs) * bucketMs;
      n = Math.ceil(r.ms / bucketMs);
      first = end - n * bucketMs;
    } else if (filters.until || filters.since) {
      const end = filters.until ? Date.parse(filters.until) : Date.now();
      const start = filters.since ? Date.parse(filters.since) : end - 24 * 3_600_000;
      n = 48;
      bucketMs = Math.max(60_000, Math.ceil((end - start) / n / 60_000) * 60_000);
      n = Math.max(1, Math.ceil((end - start) / bucketMs));
      first = end - n * bucketMs;
    } else {
      // The last 24 h in whole hours; the current hour is the last bucket, so live signals land in it.
      bucketMs = 3_600_000;
      n = 24;
      first = Math.ceil((Date.now() + 1) / bucketMs) * bucketMs - n * bucketMs;
    }
    try {
      // One query: the occurrences of the range, per bucket (the series follows the rule filter only).
      const c = await api.get<Counts>(`/signals/counts${qs({ ...(filters.rule ? { rule: filters.rule } : {}), since: new Date(first).toISOString(), until: new Date(first + n * bucketMs).toISOString(), bucket_minutes: bucketMs / 60_000 })}`);
      if (!alive) return;
      const names = new Map(c.by_rule.map((x) => [x.rule_id, x.rule_name]));
      for (const x of rules) names.set(x.id, x.name);
      const series = c.series ?? [];
      chart = { start: first, bucketMs, buckets: series.map((b) => new Map(Object.entries(b.by_rule).map(([id, count]) => [names.get(id) ?? id, count]))) };
      renderChart();
    } catch (e) {
      if (alive) mount(chartHost, errorBox(e));
    }
  }

  async function load(): Promise<void> {
    mount(listHost, loading('Loading signals…'));
    selected.clear();
    allMatching = false;
    chart = null;
    renderChart();
    try {
      const page = await api.get<SignalPage>(`/signals${qs({ ...apiFilters(filters), limit: PAGE, sparkline: 'true' })}`);
      if (!alive) return;
      items = page.items;
      sparks = page.sparklines ?? {};
      nextCursor = page.next_cursor ?? null;
      renderList();
    } catch (e) {
      if (alive) mount(listHost, errorBox(e, () => void load()));
      return;
    }
    void loadCounts();
    void loadChart();
  }

  /** Further occurrences are not streamed: re-read counts, chart and the first page now and then. */
  async function refresh(): Promise<void> {
    if (!alive || document.hidden) return;
    void loadCounts();
    void loadChart();
    // Only when nothing is selected and no older page was loaded: the list does not jump under the user.
    if (selected.size || allMatching || items.length > PAGE) return;
    const seen = liveEvents;
    try {
      const page = await api.get<SignalPage>(`/signals${qs({ ...apiFilters(filters), limit: PAGE, sparkline: 'true' })}`);
      // An event arrived meanwhile: this answer may be older than the list; the next refresh catches up.
      if (!alive || selected.size || allMatching || seen !== liveEvents) return;
      // Redraw only when something shown changed, and never under the keyboard focus (it would be lost).
      const sig = (list: Signal[], sp: Record<string, number[]>) => JSON.stringify(list.map((s) => [s.id, s.status, s.occurrences, s.last_seen_unix_ms, s.assignee, s.snooze, sp[s.id]]));
      if (sig(items, sparks) === sig(page.items, page.sparklines ?? {})) return;
      if (listHost.contains(document.activeElement)) return;
      items = page.items;
      sparks = page.sparklines ?? {};
      nextCursor = page.next_cursor ?? null;
      renderList();
    } catch {
      /* the next refresh tries again */
    }
  }

  async function loadMore(btn: HTMLButtonElement): Promise<void> {
    btn.disabled = true;
    btn.textContent = 'Loading…';
    try {
      const page = await api.get<SignalPage>(`/signals${qs({ ...apiFilters(filters), limit: PAGE, cursor: nextCursor, sparkline: 'true' })}`);
      const have = new Set(items.map((s) => s.id));
      items = items.concat(page.items.filter((s) => !have.has(s.id)));
      sparks = { ...sparks, ...(page.sparklines ?? {}) };
      nextCursor = page.next_cursor ?? null;
      renderList();
    } catch (e) {
      toast(errorMessage(e), 'error');
      btn.disabled = false;
      btn.textContent = 'Load older signals';
    }
  }

  function bumpSpark(id: string): void {
    const sp = (sparks[id] ??= new Array(24).fill(0));
    sp[sp.length - 1]++;
  }

  // ---- live ----
  let wasDown = false;
  let liveEvents = 0; // events applied to the list, so that a slower refresh does not undo them
  const setLive = (st: StreamState, detail?: string) => {
    if (!alive) return;
    // The stream does not replay what happened while it was down: re-read the list.
    if (st === 'reconnecting') wasDown = true;
    if (st === 'live' && wasDown) {
      wasDown = false;
      void load();
    }
    live.className = `live live-${st}`;
    live.textContent = st === 'live' ? 'Live' : st === 'connecting' ? 'Connecting…' : st === 'reconnecting' ? 'Reconnecting…' : 'Offline';
    live.title = detail ?? (st === 'live' ? 'New groups, regressions and changes appear as they happen' : '');
  };
  const stop = openStream({
    path: '/signals/stream',
    onState: setLive,
    onUnauthorized: sessionEnded,
    onEvent: (ev) => {
      if (ev.event === 'lagged') {
        mount(notice, h('div', { class: 'alert alert-warn', role: 'status' }, `The live stream fell behind and skipped ${ev.data} signals. `, h('button', { type: 'button', class: 'btn btn-small', onclick: () => { mount(notice); void load(); } }, 'Reload')));
        return;
      }
      if (!['signal', 'status', 'regression', 'update'].includes(ev.event)) return;
      let sig: Signal;
      try {
        sig = JSON.parse(ev.data) as Signal;
      } catch {
        return;
      }
      liveEvents++;
      const at = items.findIndex((s) => s.id === sig.id);
      if (ev.event === 'status' || ev.event === 'update' || (ev.event === 'regression' && at >= 0)) {
        // A change to a group (maybe from another tab): show it, and drop it from a list
        // it no longer matches (another status, snoozed, assigned to someone else).
        if (at >= 0) {
          if (matches(sig, filters)) {
            items[at] = sig;
            if (ev.event === 'regression') {
              // A new occurrence reopened it: it is the latest seen now.
              items.splice(at, 1);
              items.unshift(sig);
              bumpSpark(sig.id);
              fresh.add(sig.id);
              unfreshLater(sig.id);
            }
          } else items.splice(at, 1);
          renderList();
        } else if (matches(sig, filters) && ev.event === 'update') {
          // e.g. a snooze ended: back in the inbox
          items.unshift(sig);
          renderList();
        }
        void loadCounts();
        if (ev.event === 'regression') void loadChart();
        return;
      }
      // A new group, or a regression of one not shown (e.g. the list shows open ones).
      if (!matches(sig, filters) || at >= 0) return;
      items.unshift(sig);
      bumpSpark(sig.id);
      fresh.add(sig.id);
      unfreshLater(sig.id);
      void loadCounts();
      if (chart) {
        const t = sig.last_seen_unix_ms ?? sig.created_unix_ms;
        // A bucket boundary passed since loading: slide the window along (not for fixed ranges).
        while (!filters.until && !filters.since && t >= chart.start + chart.bucketMs * chart.buckets.length) {
          chart.buckets.shift();
          chart.buckets.push(new Map());
          chart.start += chart.bucketMs;
        }
        const i = Math.floor((t - chart.start) / chart.bucketMs);
        if (i >= 0 && i < chart.buckets.length) {
          chart.buckets[i].set(sig.rule_name, (chart.buckets[i].get(sig.rule_name) ?? 0) + 1);
          renderChart();
        }
      }
      const tbody = document.getElementById('signal-rows');
      if (tbody && alive) {
        tbody.insertBefore(row(sig), tbody.firstChild);
        renderMore();
      } else renderList();
    },
  });

  function unfreshLater(id: string): void {
    window.setTimeout(() => {
      fresh.delete(id);
      document.querySelector(`tr[data-signal-id="${CSS.escape(id)}"]`)?.classList.remove('fresh');
      document.querySelector(`tr[data-signal-id="${CSS.escape(id)}"] .badge-new`)?.remove();
    }, 6000);
  }

  const ages = window.setInterval(() => {
    for (const t of ctx.root.querySelectorAll<HTMLElement>('time[data-ms]')) t.textContent = timeAgo(Number(t.dataset.ms));
  }, 15_000);
  const refresher = window.setInterval(() => void refresh(), REFRESH_MS);

  void load();
  return () => {
    alive = false;
    stop();
    window.clearInterval(ages);
    window.clearInterval(refresher);
  };
}
