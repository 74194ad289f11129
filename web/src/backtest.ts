// A backtest's or test's verdicts as the editor shows them: the counts, one
// row per trace with its verdict, and each trace's waterfall on demand.
import { api } from './api';
import { h, mount } from './dom';
import { fmtNumber, shortId } from './format';
import { parseOtlp } from './otlp';
import { VERDICT_HINT, VERDICT_LABEL, type BacktestReport, type TraceResult, type Verdict } from './types';
import { errorBox, loading, sevBadge } from './ui';
import { waterfall } from './waterfall';

/** A backtest's verdict counts and its results, one row per trace with its verdict. */
export function backtestReport(r: BacktestReport, what: string, activeVersion?: number): HTMLElement {
  const held = r.traces_held ?? r.results.filter((x) => verdictOf(x) === 'held').length;
  const whenFailed = r.traces_when_failed ?? r.results.filter((x) => verdictOf(x) === 'when_failed').length;
  const rows = r.results.map((res, i) => {
    const verdict = verdictOf(res);
    const detailId = `bt-trace-${i}`;
    const host = h('td', { colspan: 5 });
    const detail = h('tr', { class: 'bt-detail', id: detailId, hidden: true }, host);
    const btn = h('button', { type: 'button', class: 'btn btn-small', 'aria-expanded': 'false', 'aria-controls': detailId, 'aria-label': `Show trace ${res.trace_id}` }, 'Show');
    btn.addEventListener('click', async () => {
      if (btn.getAttribute('aria-expanded') === 'true') {
        mount(host);
        detail.hidden = true;
        btn.setAttribute('aria-expanded', 'false');
        btn.textContent = 'Show';
        return;
      }
      detail.hidden = false;
      mount(host, loading());
      try {
        const doc = await api.get<unknown>(`/traces/${encodeURIComponent(res.trace_id)}`);
        mount(host, waterfall(parseOtlp(doc), { witnesses: res.violations.flatMap((v) => v.span_ids), label: `Backtested trace ${res.trace_id}`, compact: true }));
        btn.setAttribute('aria-expanded', 'true');
        btn.textContent = 'Hide';
      } catch (e) {
        mount(host, errorBox(e));
      }
    });
    const details =
      verdict === 'violation'
        ? h('ul', { class: 'violations' }, res.violations.map((v) => h('li', null, sevBadge(v.severity), ' ', v.message)))
        : verdict === 'error'
          ? h('span', { class: 'text-danger' }, res.error ? `${res.error.name}: ${res.error.message}` : `did not finish: ${res.outcome}`)
          : h('span', { class: 'muted small' }, verdict === 'held' ? 'expect held' : 'does not apply');
    return [
      h(
        'tr',
        { class: `bt-row bt-${verdict}` },
        h('th', { scope: 'row', 'data-label': 'Trace', class: 'mono small' }, h('span', { title: res.trace_id }, shortId(res.trace_id, 10))),
        h('td', { 'data-label': 'Verdict' }, verdictBadge(verdict)),
        h('td', { 'data-label': 'Spans', class: 'num' }, String(res.spans)),
        h('td', { 'data-label': 'Details' }, details),
        h('td', { 'data-label': 'Trace' }, btn),
      ),
      detail,
    ];
  });
  const summary = r.version ? `v${r.version}${r.version === activeVersion ? ' (active)' : ''}` : what;
  return h(
    'div',
    { class: 'stack' },
    h('p', { class: 'small' }, h('strong', null, `Backtest of ${summary}`), r.rule?.name ? h('span', { class: 'muted' }, ` · declares “${r.rule.name}” · ${r.rule.severity}`) : null),
    h(
      'div',
      { class: 'stats' },
      stat('Evaluated', r.traces_evaluated),
      stat('With violations', r.traces_with_violations, r.traces_with_violations ? 'warn' : ''),
      stat('Held', held, '', 'expect held'),
      stat('When failed', whenFailed, '', 'does not apply'),
      stat('Failed', r.traces_failed, r.traces_failed ? 'danger' : '', 'did not finish'),
    ),
    r.results.length
      ? h(
          'div',
          { class: 'table-scroll' },
          h(
            'table',
            { class: 'table table-compact stack-mobile bt-table' },
            h('caption', { class: 'sr-only' }, 'Backtest results'),
            h('thead', null, h('tr', null, ['Trace', 'Verdict', 'Spans', 'Details', ''].map((c, i) => h('th', { scope: 'col', class: i === 2 ? 'num' : undefined }, c)))),
            h('tbody', null, rows),
          ),
        )
      : h('p', { class: 'muted' }, r.traces_evaluated ? 'No results.' : 'No traces are retained right now; send some and try again.'),
    r.results.length < r.traces_evaluated ? h('p', { class: 'muted small' }, `${r.results.length} of ${r.traces_evaluated} traces listed: violations first, then errors, held and when failed.`) : null,
  );
}

function stat(label: string, n: number, kind = '', hint?: string): HTMLElement {
  return h('div', { class: `stat ${kind ? 'stat-' + kind : ''}` }, h('div', { class: 'stat-value' }, fmtNumber(n)), h('div', { class: 'stat-label' }, label), hint ? h('div', { class: 'stat-hint' }, hint) : null);
}

/** A trial's verdict; servers before verdicts are read from the outcome. */
export function verdictOf(r: TraceResult): Verdict {
  return r.verdict ?? (r.violations.length ? 'violation' : r.outcome === 'ok' ? 'held' : 'error');
}

export function verdictBadge(v: Verdict): HTMLElement {
  return h('span', { class: `badge verdict verdict-${v}`, title: VERDICT_HINT[v] }, VERDICT_LABEL[v]);
}
