// Pieces shared by the inbox and the group page: sparklines, a one-series bar chart,
// who a user id is, and whether a group is snoozed.
import { api } from './api';
import { h, s } from './dom';
import { fmtDate } from './format';
import { isAdmin, session } from './session';
import type { Signal, UserInfo } from './types';

/** A small inline SVG of hourly counts (the current hour last). */
export function sparkline(counts: number[], label: string): SVGSVGElement {
  const W = 96;
  const H = 22;
  const n = Math.max(1, counts.length);
  const max = Math.max(1, ...counts);
  const bw = W / n;
  const total = counts.reduce((a, c) => a + c, 0);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'spark', role: 'img', 'aria-label': `${label}: ${total} in the last ${counts.length} hours` });
  svg.appendChild(s('line', { x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5, class: 'spark-base' }));
  counts.forEach((c, i) => {
    if (!c) return;
    const bh = Math.max(2, ((H - 2) * c) / max);
    svg.appendChild(s('rect', { x: i * bw + 0.5, width: Math.max(1, bw - 1), y: H - bh, height: bh, class: 'spark-bar', rx: 0.5 }));
  });
  svg.appendChild(s('title', null, `${total} in the last ${counts.length} hours (hourly, current hour last)`));
  return svg;
}

export interface BarSeries {
  start: number;
  bucketMs: number;
  counts: number[];
}

/** Bars of one series over time (a group's occurrences, or violating windows). */
export function seriesChart(data: BarSeries, title: string, unit: [string, string] = ['occurrence', 'occurrences']): HTMLElement {
  const W = 720;
  const H = 150;
  const padL = 34;
  const padB = 22;
  const padT = 8;
  const n = Math.max(1, data.counts.length);
  const max = Math.max(1, ...data.counts);
  const total = data.counts.reduce((a, c) => a + c, 0);
  const bw = (W - padL) / n;
  const y = (v: number) => padT + (H - padT - padB) * (1 - v / max);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}: ${total} ${total === 1 ? unit[0] : unit[1]}` });
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    svg.appendChild(s('line', { x1: padL, x2: W, y1: y(v), y2: y(v), class: 'chart-grid' }));
    svg.appendChild(s('text', { x: padL - 6, y: y(v) + 4, class: 'chart-label', 'text-anchor': 'end' }, String(v)));
  }
  const every = Math.ceil(n / 6);
  const long = data.bucketMs * n > 36 * 3_600_000;
  data.counts.forEach((c, i) => {
    const x = padL + i * bw + 1;
    const t0 = new Date(data.start + i * data.bucketMs);
    const g = s('g', null, s('rect', { x, width: Math.max(1, bw - 2), y: padT, height: H - padT - padB, fill: 'transparent' }));
    if (c) g.appendChild(s('rect', { x, width: Math.max(1, bw - 2), y: y(c), height: y(0) - y(c), class: 'chart-bar', rx: 1.5 }));
    g.appendChild(s('title', null, `${t0.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })}: ${c} ${c === 1 ? unit[0] : unit[1]}`));
    svg.appendChild(g);
    if (i % every === 0) {
      const label = long ? t0.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) : t0.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
      svg.appendChild(s('text', { x: x + bw / 2, y: H - 6, class: 'chart-label', 'text-anchor': 'middle' }, label));
    }
  });
  return h('figure', { class: 'chart-wrap' }, h('figcaption', { class: 'chart-title' }, title), svg);
}

/** Quick ranges: how far back, and a bucket width that gives at most ~60 buckets. */
export const RANGES: { key: string; label: string; ms: number; bucketMin: number }[] = [
  { key: '15m', label: '15 m', ms: 15 * 60_000, bucketMin: 1 },
  { key: '1h', label: '1 h', ms: 3_600_000, bucketMin: 1 },
  { key: '24h', label: '24 h', ms: 24 * 3_600_000, bucketMin: 30 },
  { key: '7d', label: '7 d', ms: 7 * 24 * 3_600_000, bucketMin: 180 },
];

// ---- users ----
let users: Map<string, UserInfo> | null = null;
let pendingUsers: Promise<Map<string, UserInfo>> | null = null;

/** The tenant's users, for admins (others may not list them: an empty map, no request). */
export function loadUsers(): Promise<Map<string, UserInfo>> {
  if (users) return Promise.resolve(users);
  if (!isAdmin()) return Promise.resolve(new Map());
  if (!pendingUsers) {
    pendingUsers = api
      .get<{ items: UserInfo[] }>('/users')
      .then((r) => (users = new Map(r.items.map((u) => [u.id, u]))))
      .catch(() => new Map<string, UserInfo>())
      .finally(() => (pendingUsers = null));
  }
  return pendingUsers;
}

export function myId(): string | null {
  return session()?.user.id ?? null;
}

/** A user id as a person: their email if known, "me", or the id. */
export function userLabel(id: string | null | undefined, known?: Map<string, UserInfo>): string {
  if (!id) return 'nobody';
  const me = session()?.user;
  if (me && me.id === id) return `${me.email} (me)`;
  return known?.get(id)?.email ?? users?.get(id)?.email ?? id;
}

// ---- snooze ----
export function isSnoozed(sig: Signal, now = Date.now()): boolean {
  const z = sig.snooze;
  if (!z) return false;
  return !(z.until_unix_ms && z.until_unix_ms <= now);
}

export function snoozeText(sig: Signal): string {
  const z = sig.snooze;
  if (!z) return '';
  const parts: string[] = [];
  if (z.until) parts.push(`until ${fmtDate(z.until)}`);
  if (z.until_occurrences) parts.push(`until occurrence ${z.until_occurrences}`);
  return parts.length ? `Snoozed ${parts.join(' or ')}` : 'Muted until lifted';
}

/** A rule's own group key (e.g. `[["/legacy/54"]]` for `group: ["http.route"]`) as a short label. */
export function groupKeyLabel(key: string | null | undefined): string {
  if (!key) return '';
  try {
    const flat = (JSON.parse(key) as unknown[]).flat(3).map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
    return flat.join(' · ') || key;
  } catch {
    return key;
  }
}
