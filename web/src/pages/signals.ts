// The signals inbox: filters in the URL, live updates over SSE, counts chart, bulk status changes.
import { api, errorMessage, qs, sessionEnded } from '../api';
import { countsChart, type ChartData } from '../chart';
import { h, mount } from '../dom';
import { fmtDate, fromLocalInput, shortId, timeAgo, toLocalInput } from '../format';
import { type Ctx, setQuery } from '../router';
import { canWrite, READ_ONLY_TITLE } from '../session';
import { openStream, type StreamState } from '../sse';
import { SEVERITIES, STATUSES, STATUS_LABEL, TRANSITIONS, type Counts, type RuleInfo, type Signal, type SignalPage, type Status } from '../types';
import { emptyState, errorBox, loading, pageHeader, sevBadge, statusBadge, toast } from '../ui';

const FILTERS = ['status', 'severity', 'rule', 'since', 'until', 'q'] as const;
type Filters = Partial<Record<(typeof FILTERS)[number], string>>;

function matches(sig: Signal, f: Filters): boolean {
  if (f.status && sig.status !== f.status) return false;
  if (f.severity && sig.severity !== f.severity) return false;
  if (f.rule && sig.rule_id !== f.rule && sig.rule_name !== f.rule) return false;
  if (f.since && sig.created_unix_ms < Date.parse(f.since)) return false;
  if (f.until && sig.created_unix_ms >= Date.parse(f.until)) return false;
  if (f.q) {
    const q = f.q.toLowerCase();
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
  let nextCursor: string | null = null;
  let counts: Counts | null = null;
  let chart: ChartData | null = null;
  const selected = new Set<string>();
  const fresh = new Set<string>();
  let rules: RuleInfo[] = [];

  // ---- filter form ----
  const status = h('select', { id: 'f-status', name: 'status' }, h('option', { value: '' }, 'Any status'), STATUSES.map((s) => h('option', { value: s }, STATUS_LABEL[s])));
  const severity = h('select', { id: 'f-severity', name: 'severity' }, h('option', { value: '' }, 'Any severity'), SEVERITIES.map((s) => h('option', { value: s }, s)));
  const rule = h('select', { id: 'f-rule', name: 'rule' }, h('option', { value: '' }, 'Any rule'));
  const since = h('input', { id: 'f-since', name: 'since', type: 'datetime-local' });
  const until = h('input', { id: 'f-until', name: 'until', type: 'datetime-local' });
  const q = h('input', { id: 'f-q', name: 'q', type: 'search', placeholder: 'message or rule', autocomplete: 'off' });
  status.value = filters.status ?? '';
  severity.value = filters.severity ?? '';
  since.value = toLocalInput(filters.since ?? null);
  until.value = toLocalInput(filters.until ?? null);
  q.value = filters.q ?? '';
  if (filters.rule) rule.appendChild(h('option', { value: filters.rule }, filters.rule));
  rule.value = filters.rule ?? '';

  const form = h(
    'form',
    { class: 'filters', id: 'signal-filters', role: 'search', 'aria-label': 'Filter signals' },
    h('div', { class: 'field' }, h('label', { for: 'f-status' }, 'Status'), status),
    h('div', { class: 'field' }, h('label', { for: 'f-severity' }, 'Severity'), severity),
    h('div', { class: 'field' }, h('label', { for: 'f-rule' }, 'Rule'), rule),
    h('div', { class: 'field' }, h('label', { for: 'f-since' }, 'From'), since),
    h('div', { class: 'field' }, h('label', { for: 'f-until' }, 'Until'), until),
    h('div', { class: 'field field-grow' }, h('label', { for: 'f-q' }, 'Search'), q),
    h('div', { class: 'field field-buttons' }, h('button', { type: 'submit', class: 'btn' }, 'Apply'), h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => clear() }, 'Clear')),
  );
  const readForm = () => {
    const f: Filters = {};
    if (status.value) f.status = status.value;
    if (severity.value) f.severity = severity.value;
    if (rule.value) f.rule = rule.value;
    const s1 = fromLocalInput(since.value);
    const s2 = fromLocalInput(until.value);
    if (s1) f.since = s1;
    if (s2) f.until = s2;
    if (q.value.trim()) f.q = q.value.trim();
    return f;
  };
  const apply = () => {
    for (const k of FILTERS) delete filters[k];
    Object.assign(filters, readForm());
    const p = new URLSearchParams();
    for (const k of FILTERS) if (filters[k]) p.set(k, filters[k]!);
    setQuery(p);
    filtersToggle.textContent = `Filters${activeFilters() ? ` (${activeFilters()})` : ''}`;
    void load();
  };
  const clear = () => {
    status.value = severity.value = rule.value = since.value = until.value = q.value = '';
    apply();
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    apply();
  });
  for (const el of [status, severity, rule, since, until]) el.addEventListener('change', apply);

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
    pageHeader('Signals', 'Rule violations found in your traces, newest first.', [filtersToggle, live]),
    form,
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

  // ---- rendering ----
  function renderSummary(): void {
    if (!counts) {
      mount(summary);
      return;
    }
    mount(
      summary,
      h('div', { class: 'card total-card' }, h('div', { class: 'stat-value', id: 'signal-total' }, String(counts.total)), h('div', { class: 'stat-label' }, Object.keys(filters).length ? 'matching signals' : 'signals')),
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

  function renderChart(): void {
    if (!chart) {
      mount(chartHost, loading('Loading chart…'));
      return;
    }
    const hours = Math.round((chart.bucketMs * chart.buckets.length) / 3_600_000);
    mount(chartHost, countsChart(chart, filters.since || filters.until ? 'Signals by rule in the selected range' : `Signals by rule, last ${hours} h`));
  }

  function renderBulk(): void {
    bulk.hidden = selected.size === 0;
    if (!selected.size) return;
    const note = h('input', { id: 'bulk-note', type: 'text', placeholder: 'optional', autocomplete: 'off' });
    const act = (to: Status) => {
      const b = h('button', { type: 'button', class: 'btn btn-small' }, to === 'acknowledged' ? 'Acknowledge' : to === 'resolved' ? 'Resolve' : 'Mark false positive');
      b.addEventListener('click', () => void bulkChange(to, note.value.trim(), b));
      return b;
    };
    mount(
      bulk,
      h('strong', null, `${selected.size} selected`),
      h('div', { class: 'field field-inline' }, h('label', { for: 'bulk-note' }, 'Note'), note),
      act('acknowledged'),
      act('resolved'),
      act('false_positive'),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost', onclick: () => { selected.clear(); renderList(); } }, 'Clear selection'),
    );
  }

  async function bulkChange(to: Status, note: string, btn: HTMLButtonElement): Promise<void> {
    btn.disabled = true;
    const targets = items.filter((s) => selected.has(s.id));
    let done = 0;
    let skipped = 0;
    const errors: string[] = [];
    await Promise.all(
      targets.map(async (s) => {
        if (!TRANSITIONS[s.status].includes(to)) {
          skipped++;
          return;
        }
        try {
          const updated = await api.post<Signal>(`/signals/${encodeURIComponent(s.id)}/status`, { status: to, note: note || undefined });
          items = items.map((x) => (x.id === updated.id ? updated : x));
          done++;
        } catch (e) {
          errors.push(`${shortId(s.id, 12)}: ${errorMessage(e)}`);
        }
      }),
    );
    selected.clear();
    toast(`${done} changed to ${STATUS_LABEL[to].toLowerCase()}${skipped ? `, ${skipped} skipped (not allowed from their status)` : ''}${errors.length ? `, ${errors.length} failed: ${errors[0]}` : ''}`, errors.length ? 'error' : 'ok');
    if (filters.status) items = items.filter((x) => matches(x, filters));
    renderList();
    void loadCounts();
  }

  function row(sig: Signal): HTMLElement {
    const cb = h('input', { type: 'checkbox', 'aria-label': `Select signal: ${sig.message}`, checked: selected.has(sig.id) });
    if (!canWrite()) {
      cb.disabled = true;
      cb.title = READ_ONLY_TITLE;
    }
    cb.addEventListener('change', () => {
      if (cb.checked) selected.add(sig.id);
      else selected.delete(sig.id);
      renderBulk();
    });
    const tr = h(
      'tr',
      { class: `sig-row${fresh.has(sig.id) ? ' fresh' : ''}`, 'data-signal-id': sig.id },
      h('td', { class: 'cb', 'data-label': 'Select' }, cb),
      h('td', { 'data-label': 'Severity' }, sevBadge(sig.severity)),
      h('th', { scope: 'row', 'data-label': 'Message', class: 'msg' }, h('a', { href: `/signals/${encodeURIComponent(sig.id)}`, class: 'sig-link' }, sig.message), fresh.has(sig.id) ? h('span', { class: 'badge badge-new' }, 'new') : null),
      h('td', { 'data-label': 'Rule' }, h('a', { href: `/rules/${encodeURIComponent(sig.rule_id)}?version=${sig.rule_version}`, class: 'muted-link' }, sig.rule_name), h('span', { class: 'muted small' }, ` v${sig.rule_version}`)),
      h('td', { 'data-label': 'Trace', class: 'mono small' }, h('span', { title: sig.trace_id }, shortId(sig.trace_id, 12))),
      h('td', { 'data-label': 'Occurrences', class: 'small num', title: sig.last_seen_at ? `last seen ${fmtDate(sig.last_seen_at)}` : '' }, String(sig.occurrences ?? 1)),
      h('td', { 'data-label': 'Age', class: 'small' }, h('time', { datetime: sig.created_at, title: fmtDate(sig.created_at), 'data-ms': sig.created_unix_ms }, timeAgo(sig.created_unix_ms))),
      h('td', { 'data-label': 'Status' }, statusBadge(sig.status)),
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
    all.checked = items.length > 0 && items.every((s) => selected.has(s.id));
    if (!canWrite()) {
      all.disabled = true;
      all.title = READ_ONLY_TITLE;
    }
    all.addEventListener('change', () => {
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
          h('caption', { class: 'sr-only' }, 'Signals, newest first'),
          h('thead', null, h('tr', null, h('th', { scope: 'col', class: 'cb' }, all), ['Severity', 'Message', 'Rule', 'Trace', 'Occurrences', 'Age', 'Status'].map((c) => h('th', { scope: 'col' }, c)))),
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
        : h('p', { class: 'muted small' }, `${items.length} signal${items.length === 1 ? '' : 's'} shown — that is all.`),
    );
  }

  // ---- loading ----
  const baseQuery = () => ({ ...filters });

  async function loadCounts(): Promise<void> {
    try {
      counts = await api.get<Counts>(`/signals/counts${qs(baseQuery())}`);
      if (alive) renderSummary();
    } catch {
      /* the list shows errors */
    }
  }

  async function loadChart(): Promise<void> {
    const n = 24;
    let end: number;
    let bucketMs: number;
    if (filters.until || filters.since) {
      end = filters.until ? Date.parse(filters.until) : Date.now();
      const start = filters.since ? Date.parse(filters.since) : end - 24 * 3_600_000;
      bucketMs = Math.max(60_000, Math.ceil((end - start) / n / 60_000) * 60_000);
    } else {
      // The last 24 h in whole hours; the current hour is the last bucket, so live signals land in it.
      bucketMs = 3_600_000;
      end = Math.ceil((Date.now() + 1) / bucketMs) * bucketMs;
    }
    const first = end - bucketMs * n;
    try {
      // One query: the counts of the range, per bucket of bucketMs.
      const c = await api.get<Counts>(`/signals/counts${qs({ ...baseQuery(), since: String(first), until: String(first + n * bucketMs), bucket_minutes: bucketMs / 60_000 })}`);
      if (!alive) return;
      const names = new Map(c.by_rule.map((r) => [r.rule_id, r.rule_name]));
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
    chart = null;
    renderChart();
    try {
      const page = await api.get<SignalPage>(`/signals${qs({ ...baseQuery(), limit: 50 })}`);
      if (!alive) return;
      items = page.items;
      nextCursor = page.next_cursor ?? null;
      renderList();
    } catch (e) {
      if (alive) mount(listHost, errorBox(e, () => void load()));
      return;
    }
    void loadCounts();
    void loadChart();
  }

  async function loadMore(btn: HTMLButtonElement): Promise<void> {
    btn.disabled = true;
    btn.textContent = 'Loading…';
    try {
      const page = await api.get<SignalPage>(`/signals${qs({ ...baseQuery(), limit: 50, cursor: nextCursor })}`);
      const have = new Set(items.map((s) => s.id));
      items = items.concat(page.items.filter((s) => !have.has(s.id)));
      nextCursor = page.next_cursor ?? null;
      renderList();
    } catch (e) {
      toast(errorMessage(e), 'error');
      btn.disabled = false;
      btn.textContent = 'Load older signals';
    }
  }

  // ---- live ----
  let wasDown = false;
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
    live.title = detail ?? (st === 'live' ? 'New signals appear as they are found' : '');
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
      if (ev.event !== 'signal' && ev.event !== 'status') return;
      let sig: Signal;
      try {
        sig = JSON.parse(ev.data) as Signal;
      } catch {
        return;
      }
      if (ev.event === 'status') {
        // Someone (maybe in another tab) changed a signal's status: show it, and
        // drop it from a list filtered on a status it no longer has.
        const at = items.findIndex((s) => s.id === sig.id);
        if (at < 0) return;
        if (matches(sig, filters)) items[at] = sig;
        else items.splice(at, 1);
        renderList();
        void loadCounts();
        return;
      }
      if (!matches(sig, filters) || items.some((s) => s.id === sig.id)) return;
      items.unshift(sig);
      fresh.add(sig.id);
      window.setTimeout(() => {
        fresh.delete(sig.id);
        document.querySelector(`tr[data-signal-id="${CSS.escape(sig.id)}"]`)?.classList.remove('fresh');
        document.querySelector(`tr[data-signal-id="${CSS.escape(sig.id)}"] .badge-new`)?.remove();
      }, 6000);
      if (counts) {
        counts.total++;
        counts.by_severity[sig.severity] = (counts.by_severity[sig.severity] ?? 0) + 1;
        counts.by_status[sig.status] = (counts.by_status[sig.status] ?? 0) + 1;
        renderSummary();
      }
      if (chart) {
        // An hour boundary passed since loading: slide the window along (not for fixed ranges).
        while (!filters.until && !filters.since && sig.created_unix_ms >= chart.start + chart.bucketMs * chart.buckets.length) {
          chart.buckets.shift();
          chart.buckets.push(new Map());
          chart.start += chart.bucketMs;
        }
        const i = Math.floor((sig.created_unix_ms - chart.start) / chart.bucketMs);
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

  const ages = window.setInterval(() => {
    for (const t of ctx.root.querySelectorAll<HTMLElement>('time[data-ms]')) t.textContent = timeAgo(Number(t.dataset.ms));
  }, 15_000);

  void load();
  return () => {
    alive = false;
    stop();
    window.clearInterval(ages);
  };
}
