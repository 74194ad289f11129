// A trace waterfall: rows nested by parent, bars on a time axis, one colour per service, witness
// spans outlined and marked; a row (a <button>) opens the span's details.
import { h, mount } from './dom';
import { fmtDuration } from './format';
import type { FlatSpan } from './otlp';

const PALETTE = ['#3b5bdb', '#0ca678', '#f08c00', '#ae3ec9', '#1098ad', '#e8590c', '#5c940d', '#d6336c', '#495057', '#7048e8'];

export function serviceColors(spans: FlatSpan[]): Map<string, string> {
  const names = [...new Set(spans.map((s) => s.service))].sort();
  return new Map(names.map((n, i) => [n, PALETTE[i % PALETTE.length]]));
}

function niceStep(total: number, target = 5): number {
  if (total <= 0) return 1;
  const raw = total / target;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

interface Row { span: FlatSpan; depth: number }

function order(spans: FlatSpan[]): Row[] {
  const ids = new Set(spans.map((s) => s.spanId));
  const kids = new Map<string, FlatSpan[]>();
  const roots: FlatSpan[] = [];
  for (const s of spans) {
    if (s.parentSpanId && ids.has(s.parentSpanId) && s.parentSpanId !== s.spanId) {
      const list = kids.get(s.parentSpanId) ?? [];
      list.push(s);
      kids.set(s.parentSpanId, list);
    } else roots.push(s);
  }
  const byStart = (a: FlatSpan, b: FlatSpan) => a.start - b.start || a.name.localeCompare(b.name);
  const out: Row[] = [];
  const seen = new Set<string>();
  const walk = (s: FlatSpan, depth: number) => {
    if (seen.has(s.spanId)) return;
    seen.add(s.spanId);
    out.push({ span: s, depth });
    for (const c of (kids.get(s.spanId) ?? []).sort(byStart)) walk(c, depth + 1);
  };
  for (const r of roots.sort(byStart)) walk(r, 0);
  return out;
}

export interface WaterfallOptions {
  witnesses?: Iterable<string>;
  label?: string;
  /** Where the span details go (default: below the waterfall). */
  compact?: boolean;
}

export function waterfall(spans: FlatSpan[], opts: WaterfallOptions = {}): HTMLElement {
  const witnesses = new Set(opts.witnesses ?? []);
  if (spans.length === 0) return h('p', { class: 'muted' }, 'This trace has no spans.');
  const colors = serviceColors(spans);
  const t0 = Math.min(...spans.map((s) => s.start));
  const t1 = Math.max(...spans.map((s) => Math.max(s.end, s.start)));
  const total = Math.max(t1 - t0, 0.001);
  const pct = (ms: number) => `${Math.max(0, Math.min(100, (ms / total) * 100))}%`;

  const step = niceStep(total, opts.compact ? 3 : 5);
  const tickLabel = (t: number) => (t === 0 ? '0' : step >= 1 && step < 1000 ? `${Math.round(t)} ms` : fmtDuration(t));
  const ticks: HTMLElement[] = [];
  for (let t = 0; t <= total + 1e-9; t += step) {
    const tick = h('span', { class: 'wf-tick' }, tickLabel(t));
    tick.style.left = pct(t);
    if (t / total > 0.92) tick.classList.add('wf-tick-end');
    ticks.push(tick);
    if (ticks.length > 12) break;
  }
  const gridlines = () => {
    const g = h('div', { class: 'wf-grid', 'aria-hidden': 'true' });
    for (let t = 0; t <= total + 1e-9 && g.childElementCount < 13; t += step) {
      const l = h('span');
      l.style.left = pct(t);
      g.appendChild(l);
    }
    return g;
  };

  const details = h('div', { class: 'wf-details', hidden: true });
  let selected: HTMLButtonElement | null = null;

  const rows = order(spans).map(({ span, depth }) => {
    const isWitness = witnesses.has(span.spanId);
    const dur = Math.max(0, span.end - span.start);
    const bar = h('span', { class: `wf-bar${span.statusCode === 'ERROR' ? ' wf-bar-error' : ''}` });
    bar.style.left = pct(span.start - t0);
    bar.style.width = `max(2px, ${pct(dur)})`;
    bar.style.background = colors.get(span.service) ?? PALETTE[0];
    const durLabel = h('span', { class: 'wf-dur' }, fmtDuration(dur));
    durLabel.style.left = `calc(${pct(span.start - t0 + dur)} + 4px)`;
    if ((span.start - t0 + dur) / total > 0.8) {
      durLabel.style.left = '';
      if (dur / total > 0.18) {
        // a long bar near the end: the label goes inside it, at its end
        durLabel.classList.add('wf-dur-in');
        durLabel.style.right = `calc(${pct(t1 - span.end)} + 6px)`;
      } else durLabel.style.right = `calc(${pct(t1 - span.start)} + 4px)`;
    }
    const name = h(
      'span',
      { class: 'wf-name' },
      isWitness ? h('span', { class: 'wf-witness-mark', 'aria-hidden': 'true', title: 'Witness span' }, '◆') : null,
      h('span', { class: 'wf-svc-dot', 'aria-hidden': 'true' }),
      h('span', { class: 'wf-name-text' }, span.name),
      h('span', { class: 'wf-svc' }, span.service),
      span.statusCode === 'ERROR' ? h('span', { class: 'wf-err', title: 'Status: error' }, '!') : null,
      h('span', { class: 'sr-only' }, `, ${span.service}, ${fmtDuration(dur)}${isWitness ? ', witness span' : ''}${span.statusCode === 'ERROR' ? ', error' : ''}`),
    );
    (name.querySelector('.wf-svc-dot') as HTMLElement).style.background = colors.get(span.service) ?? PALETTE[0];
    name.style.paddingLeft = `${8 + depth * 14}px`;
    const row = h(
      'button',
      {
        type: 'button',
        class: `wf-row${isWitness ? ' wf-witness' : ''}`,
        'data-span-id': span.spanId,
        'aria-pressed': 'false',
      },
      name,
      h('span', { class: 'wf-track' }, gridlines(), bar, durLabel),
    );
    row.addEventListener('click', () => {
      if (selected) selected.setAttribute('aria-pressed', 'false');
      if (selected === row) {
        selected = null;
        details.hidden = true;
        return;
      }
      selected = row;
      row.setAttribute('aria-pressed', 'true');
      showDetails(details, span, t0, isWitness, colors, () => {
        row.setAttribute('aria-pressed', 'false');
        selected = null;
        details.hidden = true;
        row.focus();
      });
    });
    return row;
  });

  const legend = h(
    'ul',
    { class: 'wf-legend', 'aria-label': 'Services' },
    [...colors].map(([svc, c]) => {
      const sw = h('span', { class: 'wf-swatch', 'aria-hidden': 'true' });
      sw.style.background = c;
      return h('li', null, sw, svc);
    }),
    witnesses.size ? h('li', { class: 'wf-legend-witness' }, h('span', { class: 'wf-witness-mark', 'aria-hidden': 'true' }, '◆'), 'witness span (breaks the rule)') : null,
  );

  return h(
    'section',
    { class: `waterfall${opts.compact ? ' waterfall-compact' : ''}`, 'aria-label': opts.label ?? 'Trace waterfall' },
    h('div', { class: 'wf-meta' }, h('span', { class: 'muted small' }, `${spans.length} span${spans.length === 1 ? '' : 's'} · ${fmtDuration(total)} · trace `, h('code', null, spans[0].traceId)), legend),
    h('div', { class: 'wf-scroll' }, h('div', { class: 'wf-head', 'aria-hidden': 'true' }, h('span', { class: 'wf-name' }, 'Span'), h('span', { class: 'wf-axis' }, ticks)), h('div', { class: 'wf-rows' }, rows)),
    details,
  );
}

function table(title: string, rows: [string, string][]): HTMLElement | null {
  if (rows.length === 0) return null;
  return h(
    'div',
    { class: 'wf-attr' },
    h('h4', null, title),
    h(
      'table',
      { class: 'table table-compact' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Value'))),
      h('tbody', null, rows.map(([k, v]) => h('tr', null, h('th', { scope: 'row', class: 'mono' }, k), h('td', { class: 'mono wrap' }, v)))),
    ),
  );
}

function showDetails(host: HTMLElement, s: FlatSpan, t0: number, witness: boolean, colors: Map<string, string>, close: () => void): void {
  const sw = h('span', { class: 'wf-swatch', 'aria-hidden': 'true' });
  sw.style.background = colors.get(s.service) ?? PALETTE[0];
  const closeBtn = h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Close span details', onclick: close }, '✕');
  host.hidden = false;
  mount(
    host,
    h(
      'section',
      { class: 'span-details', 'aria-label': `Span details: ${s.name}`, role: 'region' },
      h('div', { class: 'span-details-head' }, h('h3', null, witness ? h('span', { class: 'wf-witness-mark', 'aria-hidden': 'true' }, '◆ ') : null, s.name), closeBtn),
      witness ? h('p', { class: 'alert alert-warn small' }, 'Witness span: the rule points at this span.') : null,
      h(
        'dl',
        { class: 'kv' },
        h('dt', null, 'Service'), h('dd', null, sw, ' ', s.service),
        h('dt', null, 'Kind'), h('dd', null, s.kind),
        h('dt', null, 'Status'), h('dd', null, h('span', { class: `badge span-st-${s.statusCode.toLowerCase()}` }, s.statusCode), s.statusMessage ? ` ${s.statusMessage}` : ''),
        h('dt', null, 'Duration'), h('dd', null, fmtDuration(Math.max(0, s.end - s.start))),
        h('dt', null, 'Starts at'), h('dd', null, `+${fmtDuration(s.start - t0)}`, h('span', { class: 'muted small' }, ` (${new Date(s.start).toISOString()})`)),
        h('dt', null, 'Span id'), h('dd', null, h('code', null, s.spanId)),
        h('dt', null, 'Parent'), h('dd', null, s.parentSpanId ? h('code', null, s.parentSpanId) : '— (root)'),
        s.scope ? [h('dt', null, 'Scope'), h('dd', null, s.scope)] : null,
      ),
      table('Attributes', s.attributes) ?? h('p', { class: 'muted small' }, 'No span attributes.'),
      table('Resource attributes', s.resource),
      s.events.length
        ? h(
            'div',
            { class: 'wf-attr' },
            h('h4', null, 'Events'),
            h('ul', { class: 'events' }, s.events.map((e) => h('li', null, h('strong', null, e.name), h('span', { class: 'muted small' }, ` +${fmtDuration(e.timeMs - t0)}`), e.attributes.length ? h('div', { class: 'mono small' }, e.attributes.map(([k, v]) => `${k}=${v}`).join('  ')) : null))),
          )
        : null,
    ),
  );
  host.onkeydown = (ev) => {
    if (ev.key === 'Escape') {
      ev.stopPropagation();
      close();
    }
  };
  closeBtn.focus({ preventScroll: true });
  host.scrollIntoView({ block: 'nearest' });
}
