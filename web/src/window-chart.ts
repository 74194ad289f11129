// A window rule's metric over time, instead of rows of identical violations. For the concurrency
// template (rule-sdk/templates/auth-concurrency.js: attributes {peak, at}, message "… (limit 50)")
// the curve of requests in flight is computed here from the window's witness spans (the spans
// GET /signals/{id}/trace serves for a window group), with the limit as a dashed line and the
// witness spans drawn as a strip of bars below it.
import { h, s } from './dom';
import { fmtDuration } from './format';
import type { FlatSpan } from './otlp';
import type { Signal } from './types';

interface ConcurrencyAttrs { peak?: unknown; at?: unknown; limit?: unknown }

/** A window group whose attributes carry a concurrency `peak` (the template's shape). */
export function isConcurrencyGroup(sig: Signal): boolean {
  const a = sig.attributes as ConcurrencyAttrs | null | undefined;
  return !!sig.window && !!a && typeof a === 'object' && typeof a.peak === 'number';
}

/**
 * The limit the rule compares with. The template does not put it in the attributes, only in the
 * message ("auth served 57 concurrent requests (limit 50)"): a `limit` attribute wins if a rule
 * sets one, else the number after "limit" in the message; none found: no line is drawn.
 */
export function concurrencyLimit(sig: Signal): number | null {
  const a = sig.attributes as ConcurrencyAttrs | null | undefined;
  if (a && typeof a.limit === 'number') return a.limit;
  const m = /\blimit\s*:?\s*(\d+(?:\.\d+)?)/i.exec(sig.message);
  return m ? Number(m[1]) : null;
}

/** Requests in flight as a step function: [time ms, count from then on]. */
export function concurrencySteps(spans: FlatSpan[]): [number, number][] {
  const ev: [number, number][] = [];
  for (const sp of spans) {
    ev.push([sp.start, 1]);
    ev.push([Math.max(sp.end, sp.start), -1]);
  }
  // Ends before starts at the same instant: back-to-back requests do not overlap.
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: [number, number][] = [];
  let n = 0;
  for (const [t, d] of ev) {
    n += d;
    if (out.length && out[out.length - 1][0] === t) out[out.length - 1][1] = n;
    else out.push([t, n]);
  }
  return out;
}

export function concurrencyChart(sig: Signal, spans: FlatSpan[]): HTMLElement {
  if (!spans.length) return h('p', { class: 'muted small' }, 'The window has no spans to draw.');
  const limit = concurrencyLimit(sig);
  const steps = concurrencySteps(spans);
  const peak = Math.max(...steps.map((x) => x[1]));
  const peakAt = steps.find((x) => x[1] === peak)![0];
  const t0 = Math.min(...spans.map((x) => x.start));
  const t1 = Math.max(...spans.map((x) => x.end), t0 + 1);
  const W = 720;
  const padL = 34;
  const padR = 8;
  const padT = 10;
  const curveH = 150;
  const lane = Math.max(1.5, Math.min(4, 90 / spans.length));
  const stripTop = padT + curveH + 22;
  const H = stripTop + lane * spans.length + 18;
  // The peak the rule reported (over all spans of the window, not only the witnesses it kept).
  const a = sig.attributes as ConcurrencyAttrs | null | undefined;
  const reported = a && typeof a.peak === 'number' ? a.peak : null;
  const reportedAt = a && typeof a.at === 'number' ? a.at : null;
  const top = Math.max(peak, limit ?? 0, reported ?? 0) * 1.1 || 1;
  const x = (t: number) => padL + ((W - padL - padR) * (t - t0)) / (t1 - t0);
  const y = (v: number) => padT + curveH * (1 - v / top);
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`,
    class: 'chart chart-tall',
    role: 'img',
    'aria-label': `Concurrent requests over the window's ${spans.length} witness spans: peak ${peak}${limit !== null ? `, limit ${limit}` : ''}`,
  });
  for (const v of [0, Math.round(top / 2), Math.floor(top)]) {
    svg.appendChild(s('line', { x1: padL, x2: W - padR, y1: y(v), y2: y(v), class: 'chart-grid' }));
    svg.appendChild(s('text', { x: padL - 6, y: y(v) + 4, class: 'chart-label', 'text-anchor': 'end' }, String(v)));
  }
  // the step curve
  let d = `M ${x(t0)} ${y(0)}`;
  let prev = 0;
  for (const [t, n] of steps) {
    d += ` L ${x(t)} ${y(prev)} L ${x(t)} ${y(n)}`;
    prev = n;
  }
  d += ` L ${x(t1)} ${y(prev)}`;
  svg.appendChild(s('path', { d: `${d} L ${x(t1)} ${y(0)} Z`, class: 'conc-area' }));
  svg.appendChild(s('path', { d, class: 'conc-line' }));
  if (limit !== null) {
    svg.appendChild(s('line', { x1: padL, x2: W - padR, y1: y(limit), y2: y(limit), class: 'conc-limit' }));
    svg.appendChild(s('text', { x: W - padR, y: y(limit) - 4, class: 'chart-label conc-limit-label', 'text-anchor': 'end' }, `limit ${limit}`));
  }
  if (reported !== null && reported !== peak) {
    const rx = reportedAt !== null && reportedAt >= t0 && reportedAt <= t1 ? x(reportedAt) : x(peakAt);
    svg.appendChild(s('line', { x1: rx, x2: rx, y1: y(0), y2: y(reported), class: 'conc-reported' }));
    svg.appendChild(s('circle', { cx: rx, cy: y(reported), r: 4, class: 'conc-reported-dot' }, s('title', null, `the rule's peak: ${reported} across the whole window`)));
    svg.appendChild(s('text', { x: Math.min(rx + 6, W - 110), y: y(reported) + 4, class: 'chart-label' }, `rule's peak ${reported}`));
  }
  svg.appendChild(s('circle', { cx: x(peakAt), cy: y(peak), r: 4, class: 'conc-peak' }, s('title', null, `peak ${peak} at +${fmtDuration(peakAt - t0)}`)));
  svg.appendChild(s('text', { x: Math.min(x(peakAt) + 6, W - 60), y: y(peak) - 6, class: 'chart-label' }, `peak ${peak}`));
  // the witness spans, one thin bar each, in start order
  svg.appendChild(s('text', { x: padL, y: stripTop - 6, class: 'chart-label' }, `${spans.length} witness span${spans.length === 1 ? '' : 's'}`));
  [...spans]
    .sort((a, b) => a.start - b.start)
    .forEach((sp, i) => {
      const r = s('rect', { x: x(sp.start), width: Math.max(1, x(sp.end) - x(sp.start)), y: stripTop + i * lane, height: Math.max(1, lane - 0.5), class: 'conc-span' });
      r.appendChild(s('title', null, `${sp.name} (${sp.service}) · ${fmtDuration(sp.end - sp.start)} · trace ${sp.traceId.slice(0, 12)}`));
      svg.appendChild(r);
    });
  svg.appendChild(s('text', { x: padL, y: H - 4, class: 'chart-label' }, '0'));
  svg.appendChild(s('text', { x: W - padR, y: H - 4, class: 'chart-label', 'text-anchor': 'end' }, `+${fmtDuration(t1 - t0)}`));
  return h(
    'figure',
    { class: 'chart-wrap', id: 'concurrency-chart' },
    h('figcaption', { class: 'chart-title' }, `Requests in flight, computed from the witness spans: peak ${peak}${reported !== null && reported !== peak ? ` (the rule saw ${reported})` : ''}${limit !== null ? ` against a limit of ${limit}` : ''}`),
    svg,
    h('p', { class: 'muted small' }, 'The curve counts the witness spans the rule reported (the first 20 for the template), so it can stay below the peak the rule saw across all spans of the window.'),
  );
}
