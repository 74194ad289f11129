// One group of violations (a signal): what broke, how often (chart, occurrence list), the sample
// traces in the waterfall beside the rule's condition, two occurrences compared, and the work:
// status, assignment, snooze, history. A window rule's group shows its metric over time.
import { api, errorMessage, qs, request, sessionEnded } from '../api';
import { openStream } from '../sse';
import { h, mount } from '../dom';
import { fmtDate, fmtDuration, shortId, timeAgo } from '../format';
import { groupKeyLabel, isSnoozed, loadUsers, myId, RANGES, seriesChart, snoozeText, userLabel } from '../groups';
import { traceLink, type LinkTarget } from '../links';
import { parseOtlp, type FlatSpan } from '../otlp';
import type { Ctx } from '../router';
import { canWrite, READ_ONLY_TITLE } from '../session';
import { ACTION_LABEL, STATUS_LABEL, TRANSITIONS, type Occurrence, type OccurrencePage, type RuleInfo, type Series, type Signal, type StatusChange, type TenantSettings, type UserInfo } from '../types';
import { errorBox, keyVal, loading, sevBadge, statusBadge, toast } from '../ui';
import { waterfall } from '../waterfall';
import { concurrencyChart, isConcurrencyGroup } from '../window-chart';

const OCC_PAGE = 20;

export function signalPage(ctx: Ctx): () => void {
  let alive = true;
  const id = ctx.params.id;
  const enc = encodeURIComponent(id);
  let sig: Signal | null = null;
  let users = new Map<string, UserInfo>();
  let occurrences: Occurrence[] = [];
  let occCursor: string | null = null;
  const compare = new Set<string>(); // occurrence ids ticked for comparison
  let rangeKey = '24h';
  let sample = ''; // the trace id shown in the waterfall ('' = the latest sample)
  let linkTemplate: string | null = null; // the tenant's trace-link template (Settings), once read

  const head = h('div');
  const actions = h('section', { class: 'card', 'aria-labelledby': 'actions-title' });
  const assignCard = h('section', { class: 'card', 'aria-labelledby': 'assign-title' });
  const snoozeCard = h('section', { class: 'card', 'aria-labelledby': 'snooze-title' });
  const history = h('section', { class: 'card', 'aria-labelledby': 'history-title' });
  const chartCard = h('section', { class: 'card chart-card', 'aria-labelledby': 'occ-chart-title' });
  const metricCard = h('section', { class: 'card chart-card', 'aria-labelledby': 'metric-title', hidden: true });
  const traceHost = h('div', null, loading('Loading the trace…'));
  const ruleHost = h('div', { class: 'rule-cond' }, loading('Loading the rule…'));
  const sampleSelect = h('select', { id: 'sample-trace' });
  const pinButton = h('button', { type: 'button', class: 'btn btn-small btn-ghost', id: 'pin-sample' }, 'Pin') as HTMLButtonElement;
  const traceLinkHost = h('span', { class: 'trace-link' });
  const traceCard = h(
    'section',
    { class: 'card trace-card', 'aria-labelledby': 'trace-title' },
    h('div', { class: 'section-head' }, h('div', { class: 'row wrap-row' }, h('h2', { id: 'trace-title', class: 'h3' }, 'Sample trace'), traceLinkHost), h('div', { class: 'field field-inline' }, h('label', { for: 'sample-trace' }, 'Sample'), sampleSelect, pinButton)),
    h('div', { class: 'trace-with-rule' }, traceHost, ruleHost),
  );
  const occCard = h('section', { class: 'card', 'aria-labelledby': 'occ-title' });
  const compareHost = h('section', { class: 'card compare-traces', 'aria-labelledby': 'compare-title', hidden: true });
  mount(ctx.root, loading('Loading the signal…'));

  const kindLabel = () => (sig?.window ? ['violating window', 'violating windows'] : ['occurrence', 'occurrences']) as [string, string];

  function renderHead(): void {
    const s = sig!;
    const n = s.occurrences ?? 1;
    mount(
      head,
      h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/signals' }, 'Signals'), ' / ', h('span', { 'aria-current': 'page', class: 'mono' }, s.id)),
      h(
        'header',
        { class: 'page-header' },
        h(
          'div',
          { class: 'page-title' },
          h(
            'div',
            { class: 'row wrap-row' },
            sevBadge(s.severity),
            h('span', { id: 'signal-status' }, statusBadge(s.status)),
            isSnoozed(s) ? h('span', { class: 'badge badge-muted', id: 'snooze-badge', title: snoozeText(s) }, 'snoozed') : null,
            s.regressions ? h('span', { class: 'badge badge-danger' }, `regressed ${s.regressions}×`) : null,
            h('span', { class: 'muted small' }, `${n} ${n === 1 ? kindLabel()[0] : kindLabel()[1]} · last ${timeAgo(s.last_seen_unix_ms ?? s.created_unix_ms)}`),
          ),
          h('h1', null, s.message),
        ),
      ),
      h(
        'div',
        { class: 'card' },
        keyVal([
          ['Rule', [h('a', { href: `/rules/${encodeURIComponent(s.rule_id)}?version=${s.rule_version}` }, `${s.rule_name} v${s.rule_version}`), h('span', { class: 'muted small' }, ' (source of that version)')]],
          ...(s.labels && Object.keys(s.labels).length
            ? ([['Labels', h('span', { id: 'rule-labels' }, Object.entries(s.labels).map(([name, value]) => h('code', { class: 'tag' }, `${name}=${value}`)))]] as [string, HTMLElement][])
            : []),
          ['Occurrences', h('span', { id: 'occurrence-count' }, `${n}${s.versions && s.versions.length ? ` · from version${s.versions.length > 1 ? 's' : ''} ${s.versions.join(', ')}` : ''}${s.regressions ? ` · ${s.regressions} regression${s.regressions === 1 ? '' : 's'}` : ''}`)],
          ['First seen', h('time', { datetime: s.created_at }, fmtDate(s.created_at))],
          ['Last seen', h('time', { datetime: s.last_seen_at ?? s.created_at }, fmtDate(s.last_seen_at ?? s.created_at))],
          ['Assignee', h('span', { id: 'assignee' }, s.assignee ? userLabel(s.assignee, users) : 'nobody')],
          ...(isSnoozed(s) ? ([['Snooze', snoozeText(s)]] as [string, string][]) : []),
          ...(s.group_key ? ([['Group key', h('code', { title: s.group_key }, groupKeyLabel(s.group_key))]] as [string, HTMLElement][]) : []),
          ['Latest trace', h('code', null, s.trace_id)],
          ['Witness spans', s.witnesses.length ? witnessSummary(s) : s.span_ids.join(', ') || '—'],
          ...(s.resolution ? ([['Resolution', `${s.resolution.reason}: ${s.resolution.note} (${fmtDate(s.resolution.at)})`]] as [string, string][]) : []),
          ...(s.attributes && typeof s.attributes === 'object' && Object.keys(s.attributes as object).length ? ([['Attributes', h('code', { class: 'wrap' }, JSON.stringify(s.attributes))]] as [string, HTMLElement][]) : []),
        ]),
        s.window
          ? h(
              'div',
              { class: 'window-details' },
              h('h2', { class: 'h3' }, 'Window'),
              keyVal([
                ['Latest violating window', `${fmtDate(s.window.start)} → ${fmtDate(s.window.end)}`],
                ['Run started', fmtDate(s.window.first_start)],
                ['Occurrences', `${s.window.occurrences} consecutive window${s.window.occurrences === 1 ? '' : 's'}`],
                ['Spans in window', String(s.window.spans_in_window)],
                ['Traces', s.window.trace_ids.length ? [s.window.trace_ids.slice(0, 5).map((t) => h('code', { class: 'block' }, t)), s.window.trace_ids.length > 5 ? h('span', { class: 'muted small' }, `… ${s.window.trace_ids.length - 5} more`) : null] : '—'],
              ]),
            )
          : null,
      ),
    );
  }

  // ---- the work: status, assignment, snooze ----
  function disableForViewer(b: HTMLButtonElement | HTMLSelectElement | HTMLInputElement): void {
    if (!canWrite()) {
      b.disabled = true;
      b.title = READ_ONLY_TITLE;
    }
  }

  function renderActions(): void {
    const s = sig!;
    const allowed = TRANSITIONS[s.status];
    const note = h('textarea', { id: 'status-note', rows: 2, placeholder: 'What did you find? (optional)' });
    const buttons = allowed.map((to) => {
      const b = h('button', { type: 'button', class: `btn ${to === 'acknowledged' || (to === 'resolved' && s.status === 'acknowledged') ? 'btn-primary' : ''}` }, ACTION_LABEL[to]);
      disableForViewer(b);
      b.addEventListener('click', () => void write(`/status`, { status: to, note: note.value.trim() || undefined }, `Signal ${STATUS_LABEL[to].toLowerCase()}`, b));
      return b;
    });
    mount(
      actions,
      h('h2', { id: 'actions-title', class: 'h3' }, 'Work this signal'),
      canWrite()
        ? [h('div', { class: 'field' }, h('label', { for: 'status-note' }, 'Note'), note), h('div', { class: 'row wrap-row' }, buttons)]
        : [h('p', { class: 'muted small' }, READ_ONLY_TITLE + '.'), h('div', { class: 'row wrap-row' }, buttons)],
    );
  }

  function renderAssign(): void {
    const s = sig!;
    const me = myId();
    const parts: HTMLElement[] = [];
    if (users.size) {
      // Admins may list the tenant's users: any of them, or nobody.
      const pick = h('select', { id: 'assign-user' }, h('option', { value: '' }, 'Nobody'), [...users.values()].sort((a, b) => a.email.localeCompare(b.email)).map((u) => h('option', { value: u.id }, u.id === me ? `${u.email} (me)` : u.email)));
      pick.value = s.assignee ?? '';
      const b = h('button', { type: 'button', class: 'btn btn-small' }, 'Assign');
      disableForViewer(pick);
      disableForViewer(b);
      b.addEventListener('click', () => void write('/assign', { user_id: pick.value || null }, pick.value ? `Assigned to ${userLabel(pick.value, users)}` : 'Unassigned', b));
      parts.push(h('div', { class: 'field field-inline' }, h('label', { for: 'assign-user' }, 'Assign to'), pick, b));
    }
    // Everyone who may write can take it (editors may not list users: no 403, only "me").
    if (me && s.assignee !== me) {
      const b = h('button', { type: 'button', class: 'btn btn-small' }, 'Assign to me');
      disableForViewer(b);
      b.addEventListener('click', () => void write('/assign', { user_id: me }, 'Assigned to you', b));
      parts.push(b);
    }
    if (s.assignee) {
      const b = h('button', { type: 'button', class: 'btn btn-small btn-ghost' }, 'Unassign');
      disableForViewer(b);
      b.addEventListener('click', () => void write('/assign', { user_id: null }, 'Unassigned', b));
      parts.push(b);
    }
    mount(assignCard, h('h2', { id: 'assign-title', class: 'h3' }, 'Assignee'), h('p', { class: 'small', id: 'assignee-now' }, s.assignee ? userLabel(s.assignee, users) : 'Nobody is assigned.'), h('div', { class: 'row wrap-row' }, parts));
  }

  function renderSnooze(): void {
    const s = sig!;
    const snoozable = s.status === 'open' || s.status === 'acknowledged';
    if (isSnoozed(s)) {
      const lift = h('button', { type: 'button', class: 'btn btn-small' }, 'Lift snooze');
      disableForViewer(lift);
      lift.addEventListener('click', () => void write('/snooze', undefined, 'Snooze lifted', lift, 'DELETE'));
      mount(snoozeCard, h('h2', { id: 'snooze-title', class: 'h3' }, 'Snooze'), h('p', { class: 'small', id: 'snooze-now' }, `${snoozeText(s)}. It is hidden from the inbox until then.`), lift);
      return;
    }
    const kind = h(
      'select',
      { id: 'snooze-kind' },
      h('option', { value: '60' }, 'for 1 hour'),
      h('option', { value: '480' }, 'for 8 hours'),
      h('option', { value: '1440' }, 'for 24 hours'),
      h('option', { value: '10080' }, 'for 7 days'),
      h('option', { value: 'until' }, 'until a time'),
      h('option', { value: 'occurrences' }, 'until N more occurrences'),
      h('option', { value: 'mute' }, 'until lifted (mute)'),
    );
    const until = h('input', { id: 'snooze-until', type: 'datetime-local' });
    const count = h('input', { id: 'snooze-count', type: 'number', min: 1, max: 1_000_000_000, value: '10' });
    const untilField = h('div', { class: 'field', hidden: true }, h('label', { for: 'snooze-until' }, 'Until'), until);
    const countField = h('div', { class: 'field', hidden: true }, h('label', { for: 'snooze-count' }, 'More occurrences'), count);
    kind.addEventListener('change', () => {
      untilField.hidden = kind.value !== 'until';
      countField.hidden = kind.value !== 'occurrences';
    });
    const go = h('button', { type: 'button', class: 'btn btn-small' }, 'Snooze');
    disableForViewer(kind);
    disableForViewer(go);
    if (!snoozable) {
      go.disabled = true;
      go.title = 'Only open or acknowledged signals can be snoozed';
    }
    go.addEventListener('click', () => {
      const body: Record<string, unknown> = {};
      if (kind.value === 'until') {
        const t = new Date(until.value);
        if (!until.value || Number.isNaN(t.getTime()) || t.getTime() <= Date.now()) {
          toast('Choose a time in the future', 'error');
          return;
        }
        body.until = t.toISOString();
      } else if (kind.value === 'occurrences') {
        const n = Number(count.value);
        if (!Number.isInteger(n) || n < 1) {
          toast('Give a whole number of occurrences (1 or more)', 'error');
          return;
        }
        body.occurrences = n;
      } else if (kind.value !== 'mute') body.for_minutes = Number(kind.value);
      void write('/snooze', body, 'Snoozed', go);
    });
    mount(
      snoozeCard,
      h('h2', { id: 'snooze-title', class: 'h3' }, 'Snooze'),
      h('p', { class: 'muted small' }, snoozable ? 'Hide it from the inbox for a while; it keeps counting.' : 'Only open or acknowledged signals can be snoozed.'),
      h('div', { class: 'field' }, h('label', { for: 'snooze-kind' }, 'How long'), kind),
      untilField,
      countField,
      go,
    );
  }

  async function write(path: string, body: unknown, done: string, btn: HTMLButtonElement, method: 'POST' | 'DELETE' = 'POST'): Promise<void> {
    btn.disabled = true;
    try {
      sig = method === 'DELETE' ? await request<Signal>('DELETE', `/signals/${enc}${path}`) : await api.post<Signal>(`/signals/${enc}${path}`, body);
      toast(done);
      renderAll();
    } catch (e) {
      toast(errorMessage(e), 'error');
      btn.disabled = false;
    }
  }

  // ---- history ----
  /** A history note as people read it: user ids as emails, timestamps in local time. */
  function readableNote(note: string): string {
    return note.replace(/\bu_[0-9a-f]{8,}\b/g, (id) => userLabel(id, users)).replace(/\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\b/g, (iso) => fmtDate(iso));
  }

  function historyEntry(c: StatusChange): HTMLElement {
    // Assignments and snoozes keep the status (from = to); what changed is in the note.
    const kind = c.kind ?? 'status';
    const what =
      kind === 'assigned'
        ? h('span', { class: 'badge badge-accent' }, 'assignment')
        : kind === 'snoozed'
          ? h('span', { class: 'badge badge-muted' }, 'snoozed')
          : kind === 'unsnoozed'
            ? h('span', { class: 'badge badge-muted' }, 'snooze ended')
            : h('span', null, statusBadge(c.from ?? ''), ' → ', statusBadge(c.to ?? ''));
    return h(
      'li',
      { class: `hist-${kind}`, 'data-kind': kind },
      h('div', null, what),
      c.note ? h('p', { class: 'note' }, readableNote(c.note)) : null,
      h('div', { class: 'muted small' }, `${c.author_name ?? (c.author === 'fluo' ? 'FLUO' : userLabel(c.author, users))} · `, h('time', { datetime: c.at, title: fmtDate(c.at) }, fmtDate(c.at))),
    );
  }

  function renderHistory(): void {
    const s = sig!;
    const items = s.history ?? [];
    mount(
      history,
      h('h2', { id: 'history-title', class: 'h3' }, 'History'),
      items.length ? h('ol', { class: 'timeline', id: 'status-history' }, items.map(historyEntry)) : h('p', { class: 'muted small' }, `First seen ${fmtDate(s.created_at)}; nothing changed since.`),
    );
  }

  function renderAll(): void {
    renderHead();
    renderActions();
    renderAssign();
    renderSnooze();
    renderHistory();
    renderSamples();
  }

  // ---- the occurrence chart ----
  async function loadSeries(): Promise<void> {
    const r = RANGES.find((x) => x.key === rangeKey) ?? RANGES[2];
    const bucketMs = r.bucketMin * 60_000;
    const end = Math.ceil((Date.now() + 1) / bucketMs) * bucketMs;
    const start = end - Math.ceil(r.ms / bucketMs) * bucketMs;
    const picker = h(
      'div',
      { class: 'ranges', role: 'group', 'aria-label': 'Chart range' },
      RANGES.map((x) => h('button', { type: 'button', class: 'btn btn-small range-btn', 'aria-pressed': String(x.key === rangeKey), onclick: () => { rangeKey = x.key; void loadSeries(); } }, x.label)),
    );
    const title = `${sig?.window ? 'Violating windows' : 'Occurrences'}, last ${r.label}`;
    const headRow = h('div', { class: 'section-head' }, h('h2', { id: 'occ-chart-title', class: 'h3' }, sig?.window ? 'Violating windows over time' : 'Occurrences over time'), picker);
    try {
      const s = await api.get<Series>(`/signals/${enc}/series${qs({ since: new Date(start).toISOString(), until: new Date(end).toISOString(), bucket_minutes: r.bucketMin })}`);
      if (!alive) return;
      mount(chartCard, headRow, seriesChart({ start: s.start_unix_ms, bucketMs: s.bucket_ms, counts: s.counts }, title, kindLabel()));
    } catch (e) {
      if (alive) mount(chartCard, headRow, errorBox(e));
    }
  }

  // ---- occurrences ----
  function renderOccurrences(): void {
    const rows = occurrences.map((o) => {
      const cb = h('input', { type: 'checkbox', 'aria-label': `Compare the trace of ${fmtDate(o.at)}`, checked: compare.has(o.id) });
      cb.disabled = !compare.has(o.id) && compare.size >= 2;
      cb.addEventListener('change', () => {
        if (cb.checked) compare.add(o.id);
        else compare.delete(o.id);
        renderOccurrences();
      });
      const show = h('button', { type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': `Show trace ${o.trace_id} in the waterfall` }, 'Show');
      show.addEventListener('click', () => {
        showSample(o.trace_id);
        traceCard.scrollIntoView({ block: 'start' });
      });
      return h(
        'tr',
        { class: 'occ-row' },
        h('td', { class: 'cb', 'data-label': 'Compare' }, cb),
        h('td', { 'data-label': 'When', class: 'small' }, h('time', { datetime: o.at, title: fmtDate(o.at) }, fmtDate(o.at))),
        h(
          'td',
          { 'data-label': 'Trace', class: 'mono small' },
          h('span', { title: o.trace_id }, shortId(o.trace_id, 16)),
          linkTemplate ? [' ', outLink(traceLink(linkTemplate, occurrenceTarget(o)), '↗', `Open trace ${o.trace_id} in your backend`)] : null,
          sig?.pinned?.includes(o.trace_id) ? h('span', { class: 'badge badge-gap', title: 'Pinned: its trace snapshot is kept until unpinned' }, 'pinned') : sig?.samples?.includes(o.trace_id) ? h('span', { class: 'badge badge-gap', title: 'Its trace snapshot is kept' }, 'sample') : null),
        h('td', { 'data-label': 'Version', class: 'small' }, `v${o.rule_version}`),
        h('td', { 'data-label': 'Message', class: 'small' }, o.message),
        h('td', { 'data-label': '' }, show),
      );
    });
    const cmp = h('button', { type: 'button', class: 'btn btn-small btn-primary', disabled: compare.size !== 2 }, 'Compare traces');
    cmp.addEventListener('click', () => void showCompare());
    mount(
      occCard,
      h('div', { class: 'section-head' }, h('h2', { id: 'occ-title', class: 'h3' }, sig?.window ? 'Violating windows' : 'Occurrences'), occurrences.length > 1 ? h('div', { class: 'row' }, h('span', { class: 'muted small' }, compare.size === 2 ? 'Two chosen.' : 'Tick two to compare their traces.'), cmp) : null),
      occurrences.length
        ? h(
            'div',
            { class: 'table-scroll' },
            h(
              'table',
              { class: 'table stack-mobile', 'aria-label': 'Occurrences' },
              h('thead', null, h('tr', null, ['Compare', 'When', 'Trace', 'Version', 'Message', ''].map((c) => h('th', { scope: 'col' }, c)))),
              h('tbody', null, rows),
            ),
          )
        : h('p', { class: 'muted small' }, sig?.window ? "A window rule's group counts its violating windows (the chart above); the latest window is described at the top, its spans are in the chart and the trace below." : 'No occurrence record is kept any more (retention); the counts and the chart still hold them.'),
      h(
        'div',
        { class: 'more' },
        occCursor
          ? h('button', { type: 'button', class: 'btn btn-small', onclick: (ev: Event) => void loadOccurrences(ev.currentTarget as HTMLButtonElement) }, 'Load older occurrences')
          : occurrences.length
            ? h('p', { class: 'muted small', id: 'occ-end' }, `${occurrences.length} shown${(sig?.occurrences ?? 0) > occurrences.length ? ` of ${sig?.occurrences} (older records are past retention)` : ''} — that is all.`)
            : null,
      ),
    );
  }

  async function loadOccurrences(btn?: HTMLButtonElement): Promise<void> {
    if (btn) {
      btn.disabled = true;
      btn.textContent = 'Loading…';
    }
    try {
      const page = await api.get<OccurrencePage>(`/signals/${enc}/occurrences${qs({ limit: OCC_PAGE, cursor: btn ? occCursor : null })}`);
      if (!alive) return;
      const have = new Set(occurrences.map((o) => o.id));
      occurrences = btn ? occurrences.concat(page.items.filter((o) => !have.has(o.id))) : page.items;
      occCursor = page.next_cursor ?? null;
      renderOccurrences();
      renderSamples();
    } catch (e) {
      if (btn) {
        toast(errorMessage(e), 'error');
        btn.disabled = false;
        btn.textContent = 'Load older occurrences';
      } else if (alive) mount(occCard, h('h2', { id: 'occ-title', class: 'h3' }, 'Occurrences'), errorBox(e, () => void loadOccurrences()));
    }
  }

  // ---- traces ----
  /** A trace of this group: a sample's snapshot (kept), else the retained trace (~15 minutes). */
  let latest: { traceId: string; spans: Promise<FlatSpan[]> } | null = null;
  /** The latest sample's trace, read once (the waterfall and a window's chart both draw it). */
  function latestTrace(): Promise<FlatSpan[]> {
    const s = sig!;
    if (!latest || latest.traceId !== s.trace_id) {
      const spans = api.get<unknown>(`/signals/${enc}/trace`).then(parseOtlp);
      latest = { traceId: s.trace_id, spans };
      spans.catch(() => (latest = null)); // a failure is not kept: Retry asks again
    }
    return latest.spans;
  }

  async function loadTrace(traceId: string | null): Promise<FlatSpan[]> {
    const s = sig!;
    if (!traceId || traceId === s.trace_id) return latestTrace();
    if (s.samples?.includes(traceId)) {
      const spans = parseOtlp(await api.get<unknown>(`/signals/${enc}/trace${qs({ trace_id: traceId })}`));
      // A server without ?trace_id= answers the latest sample: then ask for the retained trace.
      if (spans.length && spans.every((x) => x.traceId === traceId)) return spans;
    }
    return parseOtlp(await api.get<unknown>(`/traces/${encodeURIComponent(traceId)}`));
  }

  function witnessesOf(traceId: string | null): Set<string> {
    const s = sig!;
    if (!traceId || traceId === s.trace_id) return new Set([...s.span_ids, ...s.witnesses.map((w) => w.span_id)]);
    return new Set(occurrences.filter((o) => o.trace_id === traceId).flatMap((o) => o.span_ids));
  }

  function renderSamples(): void {
    const s = sig!;
    const pinned = s.pinned ?? [];
    const ids = [...(s.samples ?? [])].reverse(); // latest first
    if (!ids.includes(s.trace_id)) ids.unshift(s.trace_id);
    for (const t of pinned) if (!ids.includes(t)) ids.push(t);
    if (sample && !ids.includes(sample)) ids.push(sample);
    const when = new Map(occurrences.map((o) => [o.trace_id, o.at]));
    const role = (t: string) => `${t === s.trace_id ? 'latest · ' : s.samples?.[0] === t ? 'first · ' : ''}${pinned.includes(t) ? 'pinned · ' : ''}`;
    mount(
      sampleSelect,
      ids.map((t) => h('option', { value: t === s.trace_id ? '' : t }, `${role(t)}${shortId(t, 12)}${when.get(t) ? ` · ${fmtDate(when.get(t))}` : ''}`)),
    );
    sampleSelect.value = sample;
    renderPin();
    renderTraceLink();
  }

  /**
   * "Open trace in your backend" for the trace in the waterfall: the server's link for the latest
   * (`trace_url`), the template filled in here for another sample (its spans give the times).
   */
  function renderTraceLink(spans?: FlatSpan[]): void {
    const s = sig!;
    let url: string | null = null;
    if (!sample) url = s.trace_url ?? (linkTemplate ? traceLink(linkTemplate, signalTarget(s)) : null);
    else if (linkTemplate) {
      const occ = occurrences.find((o) => o.trace_id === sample);
      const mine = spans?.filter((x) => x.traceId === sample) ?? [];
      const target: LinkTarget = mine.length
        ? { traceId: sample, spanId: occ?.span_ids[0] ?? null, startMs: Math.min(...mine.map((x) => x.start)), endMs: Math.max(...mine.map((x) => x.end)) }
        : occ
          ? occurrenceTarget(occ)
          : { traceId: sample, startMs: s.last_seen_unix_ms ?? s.created_unix_ms, endMs: s.last_seen_unix_ms ?? s.created_unix_ms };
      url = traceLink(linkTemplate, target);
    }
    mount(traceLinkHost, url ? outLink(url, 'Open trace in your backend', undefined, 'btn btn-small') : null);
  }

  /** Pin or unpin the shown sample: a pinned snapshot outlives sampling and retention. */
  function renderPin(): void {
    const s = sig!;
    const shown = sample || s.trace_id;
    const isPinned = (s.pinned ?? []).includes(shown);
    const pinnable = isPinned || (s.samples ?? []).includes(shown);
    pinButton.textContent = isPinned ? 'Unpin' : 'Pin';
    pinButton.disabled = !pinnable || (!isPinned && (s.pinned ?? []).length >= 10);
    pinButton.title = !pinnable ? 'Only a sample can be pinned' : isPinned ? 'Let sampling and retention remove this trace again' : 'Keep this trace until you unpin it (at most ten per signal)';
    // The occurrence list marks pinned traces too.
    pinButton.onclick = () =>
      void (isPinned
        ? write(`/pins/${encodeURIComponent(shown)}`, null, 'Sample unpinned', pinButton, 'DELETE')
        : write('/pins', { trace_id: shown }, 'Sample pinned: its trace is kept until you unpin it', pinButton)
      ).then(renderOccurrences);
  }
  sampleSelect.addEventListener('change', () => showSample(sampleSelect.value));

  function showSample(traceId: string): void {
    sample = traceId === sig?.trace_id ? '' : traceId;
    renderSamples();
    void loadWaterfall();
  }

  async function loadWaterfall(): Promise<void> {
    const s = sig!;
    mount(traceHost, loading('Loading the trace…'));
    try {
      const spans = await loadTrace(sample || null);
      if (!alive) return;
      if (sample) renderTraceLink(spans);
      mount(
        traceHost,
        h('p', { class: 'muted small' }, 'Select a span (click, or Tab then Enter) for its details. Witness spans are marked ◆ and outlined.'),
        waterfall(spans, { witnesses: witnessesOf(sample || null), label: 'Trace waterfall' }),
      );
    } catch (e) {
      if (!alive) return;
      mount(traceHost, errorBox(e), !sample && s.witnesses.length ? witnessFallback(s) : null);
    }
  }

  async function showCompare(): Promise<void> {
    const [a, b] = occurrences.filter((o) => compare.has(o.id)).sort((x, y) => x.at_unix_ms - y.at_unix_ms);
    if (!a || !b) return;
    compareHost.hidden = false;
    const col = (o: Occurrence, host: HTMLElement) => h('div', { class: 'compare-col' }, h('h3', { class: 'h4' }, `${fmtDate(o.at)} · v${o.rule_version}`), h('p', { class: 'mono small muted' }, o.trace_id), host);
    const ha = h('div', null, loading('Loading…'));
    const hb = h('div', null, loading('Loading…'));
    mount(
      compareHost,
      h('div', { class: 'section-head' }, h('h2', { id: 'compare-title', class: 'h3' }, 'Two occurrences side by side'), h('button', { type: 'button', class: 'btn btn-small btn-ghost', onclick: () => { compareHost.hidden = true; } }, 'Close comparison')),
      h('div', { class: 'compare-grid' }, col(a, ha), col(b, hb)),
    );
    compareHost.scrollIntoView({ block: 'start' });
    await Promise.all(
      [
        [a, ha],
        [b, hb],
      ].map(async ([o, host]) => {
        const occ = o as Occurrence;
        try {
          const spans = await loadTrace(occ.trace_id);
          if (alive) mount(host as HTMLElement, waterfall(spans, { witnesses: new Set(occ.span_ids), label: `Trace of ${fmtDate(occ.at)}`, compact: true }));
        } catch (e) {
          if (alive) mount(host as HTMLElement, errorBox(e), h('p', { class: 'muted small' }, 'Only the samples (the first and the latest four) keep their trace; others are retained for about 15 minutes after evaluation.'));
        }
      }),
    );
  }

  async function loadRule(): Promise<void> {
    const s = sig!;
    try {
      const r = await api.get<RuleInfo>(`/rules/${encodeURIComponent(s.rule_id)}`);
      if (!alive) return;
      const src = r.active?.source;
      mount(
        ruleHost,
        h('h3', { class: 'h4' }, `The rule's condition (active: v${r.active_version})`),
        src ? h('pre', { class: 'code rule-source', tabindex: 0, 'aria-label': `Source of ${r.name} v${r.active_version}` }, h('code', null, src)) : h('p', { class: 'muted small' }, 'The source is not available.'),
        r.active_version !== s.rule_version ? h('p', { class: 'muted small' }, `The latest occurrence came from v${s.rule_version}.`) : null,
      );
    } catch (e) {
      if (alive) mount(ruleHost, h('h3', { class: 'h4' }, "The rule's condition"), h('p', { class: 'muted small' }, `Not available: ${errorMessage(e)}`));
    }
  }

  async function loadMetric(): Promise<void> {
    const s = sig!;
    if (!isConcurrencyGroup(s)) return;
    metricCard.hidden = false;
    mount(metricCard, h('h2', { id: 'metric-title', class: 'h3' }, 'Concurrency in the latest violating window'), loading('Loading the window…'));
    try {
      const spans = await latestTrace();
      if (!alive) return;
      mount(metricCard, h('h2', { id: 'metric-title', class: 'h3' }, 'Concurrency in the latest violating window'), concurrencyChart(s, spans));
    } catch (e) {
      if (alive) mount(metricCard, h('h2', { id: 'metric-title', class: 'h3' }, 'Concurrency in the latest violating window'), errorBox(e), h('p', { class: 'muted small' }, 'The window\'s spans are read from the retained traces; once those are gone the curve cannot be drawn.'));
    }
  }

  async function load(): Promise<void> {
    try {
      sig = await api.get<Signal>(`/signals/${enc}`);
    } catch (e) {
      if (alive) mount(ctx.root, h('nav', { class: 'crumbs' }, h('a', { href: '/signals' }, 'Signals')), errorBox(e, () => void load()));
      return;
    }
    if (!alive) return;
    renderAll();
    renderSamples();
    mount(
      ctx.root,
      head,
      h('div', { class: 'signal-layout' }, h('div', { class: 'signal-main' }, metricCard, chartCard, occCard), h('div', { class: 'signal-side' }, actions, assignCard, snoozeCard, history)),
      traceCard,
      compareHost,
    );
    mount(chartCard, loading('Loading the chart…'));
    void loadUsers().then((u) => {
      if (!alive || !u.size) return;
      users = u;
      renderAll();
    });
    void loadSeries();
    void loadOccurrences();
    void loadRule();
    void loadMetric();
    void loadLinkTemplate();
    await loadWaterfall();
  }

  /** The tenant's trace-link template, for the links of other traces than the latest. */
  async function loadLinkTemplate(): Promise<void> {
    try {
      linkTemplate = (await api.get<TenantSettings>('/settings')).trace_link_template;
    } catch {
      return; // an older server, or no permission: the latest trace's own link still shows
    }
    if (!alive || !linkTemplate) return;
    renderOccurrences();
    renderTraceLink();
  }

  // Live: a status change, a regression, an assignment or a snooze of this group (from anyone).
  const stop = openStream({
    path: '/signals/stream',
    onUnauthorized: sessionEnded,
    onEvent: (ev) => {
      if (!sig || !['status', 'regression', 'update'].includes(ev.event)) return;
      let next: Signal;
      try {
        next = JSON.parse(ev.data) as Signal;
      } catch {
        return;
      }
      if (next.id !== sig.id) return;
      const grew = (next.occurrences ?? 0) > (sig.occurrences ?? 0);
      sig = next;
      // The note being typed survives: only the parts that show the group are redrawn.
      renderHead();
      renderAssign();
      renderSnooze();
      renderHistory();
      renderSamples();
      if (ev.event === 'status' || ev.event === 'regression') renderActions();
      if (grew) {
        void loadSeries();
        void loadOccurrences(); // and the sample list with it
      }
    },
  });

  void load();
  return () => {
    alive = false;
    stop();
  };
}

/** The latest sample's witness spans by (name, service): a window's twenty alike are one entry "×20". */
function witnessSummary(s: Signal): HTMLElement[] {
  const by = new Map<string, { name: string; service?: string | null; n: number }>();
  for (const w of s.witnesses) {
    const k = `${w.name}\u0000${w.service ?? ''}`;
    const e = by.get(k);
    if (e) e.n++;
    else by.set(k, { name: w.name, service: w.service, n: 1 });
  }
  return [...by.values()].map((e, i) => h('span', null, i ? ', ' : '', h('span', { class: 'mono' }, e.name), e.service ? h('span', { class: 'muted' }, ` (${e.service})`) : null, e.n > 1 ? h('span', { class: 'muted' }, ` ×${e.n}`) : null));
}

/** A link to the tenant's trace backend: a new tab, no referrer, no access to this window. */
function outLink(href: string, text: string, label?: string, cls = 'out-link'): HTMLAnchorElement {
  return h('a', { href, target: '_blank', rel: 'noopener noreferrer', class: cls, 'aria-label': label, title: `${label ?? text} (opens in a new tab)` }, text, label ? null : h('span', { 'aria-hidden': 'true' }, ' ↗'));
}

/** As the server links a signal (Signal::trace_link): its first witness span and the time its witnesses cover. */
function signalTarget(s: Signal): LinkTarget {
  const at = s.last_seen_unix_ms ?? s.created_unix_ms;
  const w = s.witnesses;
  return {
    traceId: s.trace_id,
    spanId: w[0]?.span_id ?? null,
    startMs: w.length ? Math.min(...w.map((x) => Math.floor(x.start_time_unix_nano / 1e6))) : at,
    endMs: w.length ? Math.max(...w.map((x) => Math.ceil(x.end_time_unix_nano / 1e6))) : at,
  };
}

/** An occurrence's trace: its first witness span; it ended before it was evaluated (`at`), so the hour before. */
function occurrenceTarget(o: Occurrence): LinkTarget {
  return { traceId: o.trace_id, spanId: o.span_ids[0] ?? null, startMs: o.at_unix_ms - 3_600_000, endMs: o.at_unix_ms };
}

/** When the snapshot is gone: the witnesses the signal carries. */
function witnessFallback(s: Signal): HTMLElement {
  return h(
    'ul',
    { class: 'violations' },
    s.witnesses.map((w) => h('li', null, h('strong', null, w.name), ` ${w.service ?? ''} · ${w.kind} · ${fmtDuration((w.end_time_unix_nano - w.start_time_unix_nano) / 1e6)}`)),
  );
}
