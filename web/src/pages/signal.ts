// One signal: what broke, the trace waterfall with witness spans, status history and actions.
import { api, errorMessage } from '../api';
import { h, mount } from '../dom';
import { fmtDate, fmtDuration, timeAgo } from '../format';
import { parseOtlp } from '../otlp';
import type { Ctx } from '../router';
import { canWrite, READ_ONLY_TITLE } from '../session';
import { ACTION_LABEL, STATUS_LABEL, TRANSITIONS, type Signal, type Status } from '../types';
import { errorBox, keyVal, loading, sevBadge, statusBadge, toast } from '../ui';
import { waterfall } from '../waterfall';

export function signalPage(ctx: Ctx): () => void {
  let alive = true;
  const id = ctx.params.id;
  let sig: Signal | null = null;
  const head = h('div');
  const actions = h('section', { class: 'card', 'aria-labelledby': 'actions-title' });
  const history = h('section', { class: 'card', 'aria-labelledby': 'history-title' });
  const traceHost = h('section', { class: 'card trace-card', 'aria-labelledby': 'trace-title' }, h('h2', { id: 'trace-title', class: 'h3' }, 'Trace'), loading('Loading the trace…'));
  mount(ctx.root, loading('Loading the signal…'));

  function renderHead(): void {
    const s = sig!;
    mount(
      head,
      h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/signals' }, 'Signals'), ' / ', h('span', { 'aria-current': 'page', class: 'mono' }, s.id)),
      h(
        'header',
        { class: 'page-header' },
        h(
          'div',
          { class: 'page-title' },
          h('div', { class: 'row wrap-row' }, sevBadge(s.severity), h('span', { id: 'signal-status' }, statusBadge(s.status)), h('span', { class: 'muted small' }, `${timeAgo(s.created_unix_ms)} · ${fmtDate(s.created_at)}`)),
          h('h1', null, s.message),
        ),
      ),
      h(
        'div',
        { class: 'card' },
        keyVal([
          ['Rule', [h('a', { href: `/rules/${encodeURIComponent(s.rule_id)}?version=${s.rule_version}` }, `${s.rule_name} v${s.rule_version}`), h('span', { class: 'muted small' }, ' (source of that version)')]],
          ['Occurrences', `${s.occurrences ?? 1}${s.last_seen_at ? ` · last ${fmtDate(s.last_seen_at)}` : ''}${s.versions && s.versions.length > 1 ? ` · versions ${s.versions.join(', ')}` : ''}${s.regressions ? ` · ${s.regressions} regression${s.regressions === 1 ? '' : 's'}` : ''}`],
          ['Trace', h('code', null, s.trace_id)],
          ['Witness spans', s.witnesses.length ? s.witnesses.map((w, i) => [i ? ', ' : '', h('span', { class: 'mono' }, w.name), w.service ? h('span', { class: 'muted' }, ` (${w.service})`) : null]) : s.span_ids.join(', ') || '—'],
          ['Signal id', h('code', null, s.id)],
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
                ['Traces', s.window.trace_ids.length ? s.window.trace_ids.map((t) => h('code', { class: 'block' }, t)) : '—'],
              ]),
            )
          : null,
      ),
    );
  }

  function renderActions(): void {
    const s = sig!;
    const allowed = TRANSITIONS[s.status];
    const note = h('textarea', { id: 'status-note', rows: 2, placeholder: 'What did you find? (optional)' });
    const buttons = allowed.map((to) => {
      const b = h('button', { type: 'button', class: `btn ${to === 'acknowledged' || (to === 'resolved' && s.status === 'acknowledged') ? 'btn-primary' : ''}` }, ACTION_LABEL[to]);
      if (!canWrite()) {
        b.disabled = true;
        b.title = READ_ONLY_TITLE;
      }
      b.addEventListener('click', () => void change(to, note.value.trim(), b));
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

  function renderHistory(): void {
    const s = sig!;
    const items = s.history ?? [];
    mount(
      history,
      h('h2', { id: 'history-title', class: 'h3' }, 'Status history'),
      items.length
        ? h(
            'ol',
            { class: 'timeline', id: 'status-history' },
            items.map((c) =>
              h(
                'li',
                null,
                h('div', null, statusBadge(c.from), ' → ', statusBadge(c.to)),
                c.note ? h('p', { class: 'note' }, c.note) : null,
                h('div', { class: 'muted small' }, `${c.author_name ?? c.author} · `, h('time', { datetime: c.at, title: fmtDate(c.at) }, fmtDate(c.at))),
              ),
            ),
          )
        : h('p', { class: 'muted small' }, `Opened ${fmtDate(s.created_at)}; no status change yet.`),
    );
  }

  async function change(to: Status, note: string, btn: HTMLButtonElement): Promise<void> {
    btn.disabled = true;
    try {
      sig = await api.post<Signal>(`/signals/${encodeURIComponent(id)}/status`, { status: to, note: note || undefined });
      toast(`Signal ${STATUS_LABEL[to].toLowerCase()}`);
      renderHead();
      renderActions();
      renderHistory();
    } catch (e) {
      toast(errorMessage(e), 'error');
      btn.disabled = false;
    }
  }

  async function load(): Promise<void> {
    try {
      sig = await api.get<Signal>(`/signals/${encodeURIComponent(id)}`);
    } catch (e) {
      if (alive) mount(ctx.root, h('nav', { class: 'crumbs' }, h('a', { href: '/signals' }, 'Signals')), errorBox(e, () => void load()));
      return;
    }
    if (!alive) return;
    renderHead();
    renderActions();
    renderHistory();
    mount(ctx.root, head, h('div', { class: 'signal-layout' }, traceHost, h('div', { class: 'signal-side' }, actions, history)));
    try {
      const doc = await api.get<unknown>(`/signals/${encodeURIComponent(id)}/trace`);
      if (!alive) return;
      const spans = parseOtlp(doc);
      const wit = new Set([...sig.span_ids, ...sig.witnesses.map((w) => w.span_id)]);
      mount(
        traceHost,
        h('h2', { id: 'trace-title', class: 'h3' }, 'Trace'),
        h('p', { class: 'muted small' }, 'Select a span (click, or Tab then Enter) for its details. Witness spans are marked ◆ and outlined.'),
        waterfall(spans, { witnesses: wit, label: 'Trace waterfall' }),
      );
    } catch (e) {
      if (!alive) return;
      mount(traceHost, h('h2', { id: 'trace-title', class: 'h3' }, 'Trace'), errorBox(e), sig.witnesses.length ? witnessFallback(sig) : null);
    }
  }

  void load();
  return () => {
    alive = false;
  };
}

/** When the snapshot is gone: the witnesses the signal carries. */
function witnessFallback(s: Signal): HTMLElement {
  return h(
    'ul',
    { class: 'violations' },
    s.witnesses.map((w) => h('li', null, h('strong', null, w.name), ` ${w.service ?? ''} · ${w.kind} · ${fmtDuration((w.end_time_unix_nano - w.start_time_unix_nano) / 1e6)}`)),
  );
}
