import { api, errorMessage } from '../api';
import { h, mount } from '../dom';
import { fmtNumber, timeAgo } from '../format';
import type { Ctx } from '../router';
import { canWrite, READ_ONLY_TITLE } from '../session';
import type { RuleInfo } from '../types';
import { emptyState, errorBox, loading, pageHeader, sevBadge, toast } from '../ui';

export function rulesPage(ctx: Ctx): () => void {
  let alive = true;
  const body = h('div', null, loading('Loading rules…'));
  const newBtn = canWrite()
    ? h('a', { href: '/rules/new', class: 'btn btn-primary' }, 'New rule')
    : h('button', { type: 'button', class: 'btn btn-primary', disabled: true, title: READ_ONLY_TITLE }, 'New rule');
  mount(
    ctx.root,
    pageHeader('Rules', 'JavaScript invariants over your traces, compiled to WebAssembly. Every save is a new immutable version.', [
      h('a', { href: '/rules/templates', class: 'btn' }, 'From template'),
      newBtn,
    ]),
    body,
  );

  async function toggle(rule: RuleInfo, input: HTMLInputElement): Promise<void> {
    input.disabled = true;
    try {
      const next = await api.post<RuleInfo>(`/rules/${encodeURIComponent(rule.id)}/${input.checked ? 'enable' : 'disable'}`, {});
      rule.enabled = next.enabled;
      toast(`${rule.name} ${next.enabled ? 'enabled' : 'disabled'}`);
    } catch (e) {
      input.checked = rule.enabled;
      toast(errorMessage(e), 'error');
    } finally {
      input.disabled = !canWrite();
    }
  }

  async function load(): Promise<void> {
    try {
      const { items } = await api.get<{ items: RuleInfo[] }>('/rules');
      if (!alive) return;
      if (items.length === 0) {
        mount(
          body,
          emptyState(
            'No rules yet',
            'A rule is an invariant your traces must keep, like "every card charge is fraud-checked first". Start from a template or write one.',
            h('div', { class: 'row' }, h('a', { href: '/rules/templates', class: 'btn btn-primary' }, 'Browse templates'), canWrite() ? h('a', { href: '/rules/new', class: 'btn' }, 'Write a rule') : null),
          ),
        );
        return;
      }
      items.sort((a, b) => a.name.localeCompare(b.name));
      const rows = items.map((r) => {
        const sw = h('input', { type: 'checkbox', class: 'switch', role: 'switch', checked: r.enabled, 'aria-label': `Enabled: ${r.name}` });
        if (!canWrite()) {
          sw.disabled = true;
          sw.title = READ_ONLY_TITLE;
        }
        sw.addEventListener('change', () => void toggle(r, sw));
        const st = r.stats;
        return h(
          'tr',
          { class: r.enabled ? '' : 'row-muted' },
          h('th', { scope: 'row', 'data-label': 'Rule' }, h('a', { href: `/rules/${encodeURIComponent(r.id)}`, class: 'strong' }, r.name), h('div', { class: 'muted small' }, `updated ${timeAgo(Date.parse(r.updated_at))}`)),
          h('td', { 'data-label': 'Form' }, h('span', { class: 'tag', title: `declared form: ${r.form}` }, r.form === 'window' ? 'window' : 'trace')),
          h('td', { 'data-label': 'Severity' }, sevBadge(r.severity)),
          h(
            'td',
            { 'data-label': 'Version' },
            r.active_version ? h('span', { class: 'mono' }, `v${r.active_version}`) : h('span', { class: 'badge badge-muted', title: 'No version runs until one is activated' }, 'only drafts'),
            r.has_draft
              ? h('span', { class: 'muted small' }, ` · draft v${r.latest_version}`)
              : r.latest_version !== r.active_version
                ? h('span', { class: 'muted small' }, ` / latest v${r.latest_version}`)
                : h('span', { class: 'muted small' }, ' (latest)'),
          ),
          h('td', { 'data-label': 'Enabled' }, sw),
          h(
            'td',
            { 'data-label': 'Evaluations', class: 'num', title: st ? `${fmtNumber(st.skipped)} traces skipped by the prefilter (they could not meet the rule's condition)` : undefined },
            fmtNumber(st?.calls),
            st && st.skipped > 0 ? h('div', { class: 'muted small' }, `+ ${fmtNumber(st.skipped)} skipped`) : null,
          ),
          h('td', { 'data-label': 'Failures', class: `num${st && st.failures > 0 ? ' text-danger' : ''}`, title: st?.last_failure ? `last: ${st.last_failure}` : undefined }, fmtNumber(st?.failures)),
          h('td', { 'data-label': 'Fuel used', class: 'num' }, fmtNumber(st?.fuel_used)),
          h('td', { 'data-label': 'Occurrences 24 h', class: 'num' }, r.occurrences_24h ? h('a', { href: `/signals?rule=${encodeURIComponent(r.id)}` }, fmtNumber(r.occurrences_24h)) : fmtNumber(r.occurrences_24h ?? null)),
        );
      });
      mount(
        body,
        h(
          'div',
          { class: 'card table-card' },
          h(
            'table',
            { class: 'table stack-mobile' },
            h('caption', { class: 'sr-only' }, 'Rules'),
            h(
              'thead',
              null,
              h('tr', null, ['Rule', 'Form', 'Severity', 'Version', 'Enabled', 'Evaluations', 'Failures', 'Fuel used', 'Occurrences 24 h'].map((c, i) => h('th', { scope: 'col', class: i >= 5 ? 'num' : undefined }, c))),
            ),
            h('tbody', null, rows),
          ),
        ),
        h('p', { class: 'muted small' }, 'Evaluations, failures and fuel count since the server started.'),
      );
    } catch (e) {
      if (alive) mount(body, errorBox(e, () => void load()));
    }
  }
  void load();
  return () => {
    alive = false;
  };
}
