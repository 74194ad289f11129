// A stacked bar chart of occurrence counts per time bucket and rule, drawn as SVG.
import { h, s } from './dom';

export interface ChartData {
  start: number;
  bucketMs: number;
  /** buckets[i] = Map rule name → count */
  buckets: Map<string, number>[];
}

const COLORS = ['#3b5bdb', '#f08c00', '#0ca678', '#ae3ec9', '#e03131', '#1098ad', '#5c940d', '#d6336c', '#7048e8', '#868e96'];

export function ruleColor(rules: string[], name: string): string {
  const i = rules.indexOf(name);
  return COLORS[(i < 0 ? rules.length : i) % COLORS.length];
}

export function countsChart(data: ChartData, title: string): HTMLElement {
  const rules = [...new Set(data.buckets.flatMap((b) => [...b.keys()]))].sort();
  const totals = data.buckets.map((b) => [...b.values()].reduce((a, c) => a + c, 0));
  const max = Math.max(1, ...totals);
  const W = 720;
  const H = 160;
  const padL = 34;
  const padB = 22;
  const padT = 8;
  const n = data.buckets.length;
  const bw = (W - padL) / n;
  const y = (v: number) => padT + (H - padT - padB) * (1 - v / max);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}: ${totals.reduce((a, c) => a + c, 0)} occurrences` });
  // grid + y labels
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    svg.appendChild(s('line', { x1: padL, x2: W, y1: y(v), y2: y(v), class: 'chart-grid' }));
    svg.appendChild(s('text', { x: padL - 6, y: y(v) + 4, class: 'chart-label', 'text-anchor': 'end' }, String(v)));
  }
  data.buckets.forEach((b, i) => {
    let acc = 0;
    const x = padL + i * bw + 1;
    const group = s('g', null);
    const parts: string[] = [];
    for (const r of rules) {
      const c = b.get(r) ?? 0;
      if (!c) continue;
      parts.push(`${r}: ${c}`);
      const rect = s('rect', { x, width: Math.max(1, bw - 2), y: y(acc + c), height: y(acc) - y(acc + c), fill: ruleColor(rules, r), rx: 1.5 });
      group.appendChild(rect);
      acc += c;
    }
    const t0 = new Date(data.start + i * data.bucketMs);
    group.appendChild(s('title', null, `${t0.toLocaleString(undefined, { hour: '2-digit', minute: '2-digit', month: 'short', day: 'numeric' })}: ${acc} occurrence${acc === 1 ? '' : 's'}${parts.length ? ' — ' + parts.join(', ') : ''}`));
    // a transparent hit area so the tooltip works on empty buckets too
    group.insertBefore(s('rect', { x, width: Math.max(1, bw - 2), y: padT, height: H - padT - padB, fill: 'transparent' }), group.firstChild);
    svg.appendChild(group);
    const every = Math.ceil(n / 6);
    if (i % every === 0) {
      svg.appendChild(s('text', { x: x + bw / 2, y: H - 6, class: 'chart-label', 'text-anchor': 'middle' }, t0.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })));
    }
  });
  const legend = h(
    'ul',
    { class: 'chart-legend', 'aria-label': 'Rules' },
    rules.length
      ? rules.map((r) => {
          const sw = h('span', { class: 'wf-swatch', 'aria-hidden': 'true' });
          sw.style.background = ruleColor(rules, r);
          return h('li', null, sw, r);
        })
      : h('li', { class: 'muted' }, 'No occurrences in this range'),
  );
  return h('figure', { class: 'chart-wrap' }, h('figcaption', { class: 'chart-title' }, title), svg, legend);
}
