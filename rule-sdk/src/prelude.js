// FLUO rule SDK prelude (ABI fluo_rule_v2).
//
// Evaluated once while the plugin is pre-initialized, so it costs nothing per
// evaluation. It defines the globals a rule may use (`trace`, `rule`, `window`,
// `duration`, `concurrency`, `rate`, `groupBy`, `percentile`, `console`) and the
// `__fluo_*` entry points the plugin's exports
// call. The reference for rule authors is docs/rules.md; the typings are
// rule-sdk/fluo.d.ts. Keep all three in step.
//
// Hidden contracts:
// - the trace the plugin builds is described in wit/fluo-rule.wit (`trace-bytes`);
// - builtins are captured here and the realm is frozen at the end, so one rule
//   cannot change what another rule of the same tenant (or this SDK) sees.
(function () {
  'use strict';

  const stringify = JSON.stringify;
  const isArray = Array.isArray;
  const freeze = Object.freeze;
  const keys = Object.keys;

  const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];
  const DEFAULT_SEVERITY = 'medium';
  const LOG_CAP = 4096;
  const MESSAGE_CAP = 4096;

  // ---------------------------------------------------------------- console --
  let logs = [];
  let logBytes = 0;
  let logsTruncated = false;
  // Set by a rule({when}) whose `when` did not hold on the current trace: the
  // rule does not apply to it (a backtest tells this apart from "expect held").
  let whenFailed = false;

  function show(value) {
    if (typeof value === 'string') return value;
    if (typeof value === 'bigint') return value.toString() + 'n';
    if (value instanceof Error) return value.name + ': ' + value.message;
    try {
      const text = stringify(value, (k, v) => (typeof v === 'bigint' ? v.toString() + 'n' : v));
      return text === undefined ? String(value) : text;
    } catch (error) {
      return String(value);
    }
  }

  function logger(level) {
    return function (...args) {
      if (logsTruncated) return;
      let line = args.map(show).join(' ');
      if (logBytes + line.length > LOG_CAP) {
        line = line.slice(0, Math.max(0, LOG_CAP - logBytes));
        logsTruncated = true;
      }
      logBytes += line.length;
      logs.push({ level, message: line });
    };
  }

  const fluoConsole = freeze({
    log: logger('info'),
    info: logger('info'),
    debug: logger('debug'),
    warn: logger('warn'),
    error: logger('error'),
  });

  // ------------------------------------------------------------- durations --
  const UNITS = {
    ms: 1, msec: 1, msecs: 1, millisecond: 1, milliseconds: 1,
    s: 1000, sec: 1000, secs: 1000, second: 1000, seconds: 1000,
    m: 60000, min: 60000, mins: 60000, minute: 60000, minutes: 60000,
    h: 3600000, hour: 3600000, hours: 3600000,
  };

  /** Milliseconds from `'5 seconds'`, `'10s'`, `'500ms'`, `'1 minute'` or a number of ms. */
  function duration(value) {
    if (typeof value === 'number') {
      if (!(value >= 0) || value === Infinity) throw new RangeError('a duration must be a finite number of milliseconds >= 0, got ' + value);
      return value;
    }
    if (typeof value !== 'string') throw new TypeError('a duration must be a number of milliseconds or a string such as "5 seconds"');
    const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$/.exec(value);
    const unit = match && UNITS[match[2].toLowerCase()];
    if (!unit) throw new TypeError('cannot read duration "' + value + '": use e.g. "500ms", "10s", "5 seconds", "1 minute"');
    return Number(match[1]) * unit;
  }

  // ------------------------------------------------------------ predicates --
  function predicate(pred, where) {
    if (typeof pred === 'function') return pred;
    if (typeof pred === 'string') {
      const name = pred;
      return (span) => span.name === name;
    }
    throw new TypeError(where + ': a predicate must be a function (span => boolean) or a span name string');
  }

  function union(a, b) {
    if (a.length === 0) return b;
    if (b.length === 0) return a;
    const out = a.slice();
    for (const span of b) if (out.indexOf(span) < 0) out.push(span);
    return out;
  }

  // --------------------------------------------------------------- patterns --
  // A pattern is evaluated against a list of spans (sorted by start time) and
  // answers { ok, w } where `w` are the witness spans that made it true.
  const NO = freeze({ ok: false, w: freeze([]) });

  class Pattern {
    // `monotone`: adding spans can only turn a non-match into a match (has,
    // count ≥, and/or of such). `within` uses it to skip hopeless windows.
    constructor(evaluate, description, monotone) {
      this._evaluate = evaluate;
      this._description = description;
      this._monotone = monotone === true;
      freeze(this);
    }
    and(other) {
      const q = toPattern(other, 'and');
      const p = this;
      return new Pattern((spans) => {
        const both = bothMatch(p, q, spans);
        return both ? { ok: true, w: union(both[0].w, both[1].w) } : NO;
      }, '(' + p._description + ' and ' + q._description + ')', p._monotone && q._monotone);
    }
    or(other) {
      const q = toPattern(other, 'or');
      const p = this;
      return new Pattern((spans) => {
        const a = p._evaluate(spans);
        const b = q._evaluate(spans);
        if (!a.ok && !b.ok) return NO;
        return { ok: true, w: union(a.ok ? a.w : [], b.ok ? b.w : []) };
      }, '(' + p._description + ' or ' + q._description + ')', p._monotone && q._monotone);
    }
    not() {
      const p = this;
      return new Pattern((spans) => (p._evaluate(spans).ok ? NO : { ok: true, w: [] }), 'not ' + p._description);
    }
    /** Matches when the pattern matches among spans that all start within `d` of each other. */
    within(d) {
      const limit = duration(d);
      const p = this;
      return new Pattern((spans) => {
        // Windows [start_i, start_i + limit] anchored at each span's start: any
        // set of spans that fits in some window fits in one anchored at its
        // earliest member, so this finds every match of positive patterns.
        if (p._monotone && !p._evaluate(spans).ok) return NO;
        let end = 0;
        for (let i = 0; i < spans.length; i++) {
          const from = spans[i].startTime;
          if (end < i) end = i;
          while (end < spans.length && spans[end].startTime - from <= limit) end++;
          const result = p._evaluate(spans.slice(i, end));
          if (result.ok) return result;
        }
        return NO;
      }, p._description + ' within ' + limit + 'ms', p._monotone);
    }
    /** Matches when a span matching `next` starts at or after the end of a witness of this pattern. */
    followedBy(next) {
      const q = toPattern(next, 'followedBy');
      const p = this;
      return new Pattern((spans) => {
        const both = bothMatch(p, q, spans);
        if (!both) return NO;
        const [a, b] = both;
        const firsts = [];
        const thens = [];
        for (const first of a.w) {
          for (const then of b.w) {
            if (then !== first && then.startTime >= first.endTime) {
              if (firsts.indexOf(first) < 0) firsts.push(first);
              if (thens.indexOf(then) < 0) thens.push(then);
            }
          }
        }
        return firsts.length ? { ok: true, w: union(firsts, thens) } : NO;
      }, p._description + ' followed by ' + q._description, p._monotone && q._monotone);
    }
    /** Evaluates the pattern on a trace: `{ matched, spans }`. */
    match(t) {
      const result = this._evaluate(spansOf(t));
      return { matched: result.ok, spans: result.w.slice() };
    }
    /** Whether the pattern matches the trace. */
    test(t) {
      return this._evaluate(spansOf(t)).ok;
    }
    toString() {
      return this._description;
    }
  }

  /** Both results when both patterns match (the second is skipped otherwise), else null. */
  function bothMatch(p, q, spans) {
    const a = p._evaluate(spans);
    if (!a.ok) return null;
    const b = q._evaluate(spans);
    return b.ok ? [a, b] : null;
  }

  function spansOf(t) {
    if (t && isArray(t.spans)) return t.spans;
    throw new TypeError('expected a trace (the argument of a check function)');
  }

  function toPattern(value, where) {
    if (value instanceof Pattern) return value;
    if (typeof value === 'function' || typeof value === 'string') return scope(null).has(value);
    throw new TypeError(where + ': expected a pattern (e.g. trace.has(...)) or a predicate');
  }

  class Count {
    constructor(select, pred, description) {
      this._select = select;
      this._pred = pred;
      this._description = description;
      freeze(this);
    }
    _matching(spans) {
      const domain = this._select(spans);
      const p = this._pred;
      const out = [];
      for (let i = 0; i < domain.length; i++) if (p(domain[i])) out.push(domain[i]);
      return out;
    }
    _compare(op, symbol, other, monotone) {
      const self = this;
      if (other instanceof Count) {
        return new Pattern((spans) => {
          const a = self._matching(spans);
          const b = other._matching(spans);
          return op(a.length, b.length) ? { ok: true, w: union(a, b) } : NO;
        }, self._description + ' ' + symbol + ' ' + other._description);
      }
      if (typeof other !== 'number' || other !== other) throw new TypeError('count(...).' + symbol + ': expected a number or another count(...)');
      return new Pattern((spans) => {
        const a = self._matching(spans);
        return op(a.length, other) ? { ok: true, w: a } : NO;
      }, self._description + ' ' + symbol + ' ' + other, monotone);
    }
    gt(n) { return this._compare((a, b) => a > b, 'gt', n, typeof n === 'number'); }
    gte(n) { return this._compare((a, b) => a >= b, 'gte', n, typeof n === 'number'); }
    lt(n) { return this._compare((a, b) => a < b, 'lt', n); }
    lte(n) { return this._compare((a, b) => a <= b, 'lte', n); }
    eq(n) { return this._compare((a, b) => a === b, 'eq', n); }
    ne(n) { return this._compare((a, b) => a !== b, 'ne', n); }
  }

  /** The pattern builder: the global `trace`, or `trace.where(...)`. */
  // The hot loops below are indexed and call the predicate directly (no
  // iterator, no wrapper per span); a span-name predicate is compared inline.
  function scope(filter) {
    const select = filter
      ? (spans) => {
          const out = [];
          for (let i = 0; i < spans.length; i++) if (filter(spans[i])) out.push(spans[i]);
          return out;
        }
      : (spans) => spans;
    return freeze({
      has(pred) {
        const p = predicate(pred, 'has');
        const name = typeof pred === 'string' ? pred : null;
        return new Pattern((spans) => {
          const domain = select(spans);
          const w = [];
          if (name !== null) {
            for (let i = 0; i < domain.length; i++) if (domain[i].name === name) w.push(domain[i]);
          } else {
            for (let i = 0; i < domain.length; i++) if (p(domain[i])) w.push(domain[i]);
          }
          return w.length ? { ok: true, w } : NO;
        }, 'has(' + describe(pred) + ')', true);
      },
      missing(pred) {
        const p = predicate(pred, 'missing');
        const name = typeof pred === 'string' ? pred : null;
        return new Pattern((spans) => {
          const domain = select(spans);
          if (name !== null) {
            for (let i = 0; i < domain.length; i++) if (domain[i].name === name) return NO;
          } else {
            for (let i = 0; i < domain.length; i++) if (p(domain[i])) return NO;
          }
          return { ok: true, w: [] };
        }, 'missing(' + describe(pred) + ')');
      },
      count(pred) {
        const p = predicate(pred === undefined ? () => true : pred, 'count');
        return new Count(select, p, 'count(' + describe(pred) + ')');
      },
      where(pred) {
        const p = predicate(pred, 'where');
        return scope(filter ? (span) => !!filter(span) && !!p(span) : p);
      },
      not(pattern) {
        return toPattern(pattern, 'not').not();
      },
    });
  }

  function describe(pred) {
    if (typeof pred === 'string') return stringify(pred);
    if (pred === undefined) return '';
    return 'fn';
  }

  // ----------------------------------------------------------------- traces --
  const PATTERN_BUILDER = scope(null);

  class Trace {
    constructor(traceId, spans) {
      this.traceId = traceId;
      this.spans = spans;
      let root = null;
      let first = Infinity;
      let last = -Infinity;
      const services = [];
      for (let i = 0; i < spans.length; i++) {
        const span = spans[i];
        if (root === null && span.parentSpanId === null) root = span;
        if (span.startTime < first) first = span.startTime;
        if (span.endTime > last) last = span.endTime;
        if (span.service !== null && services.indexOf(span.service) < 0) services.push(span.service);
      }
      this.root = root;
      this.startTime = spans.length ? first : null;
      this.endTime = spans.length ? last : null;
      this.duration = spans.length ? last - first : 0;
      this.services = freeze(services.sort());
    }
    // The span index is built on first use and kept out of the (frozen)
    // trace, in this module's own variables: no rule can reach or replace it.
    _index() {
      if (indexed.trace !== this) {
        const byId = new Map();
        const children = new Map();
        const spans = this.spans;
        for (let i = 0; i < spans.length; i++) byId.set(spans[i].spanId, spans[i]);
        for (let i = 0; i < spans.length; i++) {
          const span = spans[i];
          if (span.parentSpanId === null) continue;
          let list = children.get(span.parentSpanId);
          if (!list) children.set(span.parentSpanId, (list = []));
          list.push(span);
        }
        indexed = { trace: this, byId, children };
      }
      return indexed;
    }
    has(pred) { return this.find(pred) !== null; }
    none(pred) { return this.find(pred) === null; }
    count(pred) {
      if (pred === undefined) return this.spans.length;
      const p = predicate(pred, 'count');
      const spans = this.spans;
      let n = 0;
      for (let i = 0; i < spans.length; i++) if (p(spans[i])) n++;
      return n;
    }
    find(pred) {
      const p = predicate(pred, 'find');
      const spans = this.spans;
      for (let i = 0; i < spans.length; i++) if (p(spans[i])) return spans[i];
      return null;
    }
    filter(pred) {
      const p = predicate(pred, 'filter');
      const spans = this.spans;
      const out = [];
      for (let i = 0; i < spans.length; i++) if (p(spans[i])) out.push(spans[i]);
      return out;
    }
    span(spanId) {
      return this._index().byId.get(spanId) || null;
    }
    children(span) {
      return (this._index().children.get(idOf(span)) || []).slice();
    }
    parent(span) {
      const s = typeof span === 'string' ? this.span(span) : span;
      if (!s || s.parentSpanId === null) return null;
      return this.span(s.parentSpanId);
    }
    ancestors(span) {
      const out = [];
      const seen = new Set();
      let current = this.parent(span);
      while (current && !seen.has(current)) {
        seen.add(current);
        out.push(current);
        current = this.parent(current);
      }
      return out;
    }
    descendants(span) {
      const children = this._index().children;
      const out = [];
      const seen = new Set();
      const stack = [idOf(span)];
      while (stack.length) {
        const list = children.get(stack.pop());
        if (!list) continue;
        for (const child of list) {
          if (seen.has(child)) continue;
          seen.add(child);
          out.push(child);
          stack.push(child.spanId);
        }
      }
      return out.sort((a, b) => a.startTime - b.startTime);
    }
  }

  let indexed = { trace: null, byId: null, children: null };

  function idOf(span) {
    if (typeof span === 'string') return span;
    if (span && typeof span.spanId === 'string') return span.spanId;
    throw new TypeError('expected a span or a span id');
  }

  let currentTrace = null;
  let currentWindow = null;

  // Called by the plugin's fluo-load-trace with the spans it built from the
  // host's binary trace (rule-sdk/src/trace_builder.rs), each already frozen;
  // `window` ({start, end}, ms) when the spans are one window's selection for
  // a window rule.
  function adopt(traceId, spans, window) {
    // The trace, its spans array and its services are frozen too: no rule can
    // change what the rules after it see.
    currentTrace = freeze(new Trace(traceId, freeze(spans)));
    currentWindow = window ? freeze({ start: window.start, end: window.end, length: window.end - window.start }) : null;
    return '';
  }

  // ------------------------------------------------------- window helpers --
  function spanList(spans, where) {
    if (!isArray(spans)) throw new TypeError(where + ': expected an array of spans');
    return spans;
  }

  /**
   * Peak number of overlapping spans: `{peak, at, spans}` where `at` is the
   * instant (ms) the peak is first reached and `spans` those open then.
   * A span covers [startTime, endTime): one ending as another starts does not overlap it.
   */
  function concurrency(spans) {
    spanList(spans, 'concurrency(spans)');
    const n = spans.length;
    // Starts and ends sorted apart as numbers (the typed array's own numeric
    // sort, no comparator call per pair), then merged: at equal times an end
    // comes first. Spans whose times are not finite numbers take the general
    // path below, which orders whatever they hold as it always did.
    const starts = new Float64Array(n);
    const ends = new Float64Array(n);
    let numeric = true;
    for (let i = 0; i < n && numeric; i++) {
      const start = spans[i].startTime;
      const end = spans[i].endTime;
      numeric = typeof start === 'number' && typeof end === 'number' && isFinite(start) && isFinite(end);
      starts[i] = start;
      ends[i] = end;
    }
    if (numeric) {
      starts.sort();
      ends.sort();
      let open = 0;
      let peak = 0;
      let at = null;
      for (let i = 0, j = 0; i < n; ) {
        if (j < n && ends[j] <= starts[i]) {
          open--;
          j++;
        } else {
          open++;
          if (open > peak) {
            peak = open;
            at = starts[i];
          }
          i++;
        }
      }
      const involved = at === null ? [] : spans.filter((s) => s.startTime <= at && s.endTime > at);
      return { peak, at, spans: involved };
    }
    const points = [];
    for (let i = 0; i < spans.length; i++) {
      points.push([spans[i].startTime, 1, i]);
      points.push([spans[i].endTime, -1, i]);
    }
    points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let open = 0;
    let peak = 0;
    let at = null;
    for (const point of points) {
      open += point[1];
      if (open > peak) {
        peak = open;
        at = point[0];
      }
    }
    const involved = at === null ? [] : spans.filter((s) => s.startTime <= at && s.endTime > at);
    return { peak, at, spans: involved };
  }

  /** Spans per `per` (a duration, default 1 s) over the window (or the spans' own span of time). */
  function rate(spans, per) {
    spanList(spans, 'rate(spans, per)');
    const unit = per === undefined ? 1000 : duration(per);
    if (!(unit > 0)) throw new RangeError('rate(spans, per): per must be positive');
    let length;
    if (currentWindow !== null) {
      length = currentWindow.length;
    } else {
      let first = Infinity;
      let last = -Infinity;
      for (const s of spans) {
        if (s.startTime < first) first = s.startTime;
        if (s.startTime > last) last = s.startTime;
      }
      length = spans.length ? Math.max(last - first, unit) : unit;
    }
    return (spans.length * unit) / length;
  }

  /** A span's attribute, resource attribute or field `key`, first found. */
  function lookup(s, key) {
    if (s.attributes && s.attributes[key] !== undefined) return s.attributes[key];
    if (s.resource && s.resource.attributes && s.resource.attributes[key] !== undefined) return s.resource.attributes[key];
    return s[key];
  }

  /**
   * Groups spans by `key`: a function (span => key) or an attribute name
   * (span attributes first, then resource attributes, then span fields such as
   * `service` or `name`). Spans without the key are left out.
   */
  function groupBy(spans, key) {
    spanList(spans, 'groupBy(spans, key)');
    let keyOf;
    if (typeof key === 'function') {
      keyOf = key;
    } else if (typeof key === 'string') {
      keyOf = (s) => lookup(s, key);
    } else {
      throw new TypeError('groupBy(spans, key): key must be a function or an attribute name');
    }
    const groups = {};
    for (const s of spans) {
      const value = keyOf(s);
      if (value === undefined || value === null) continue;
      const name = typeof value === 'string' ? value : show(value);
      (groups[name] || (groups[name] = [])).push(s);
    }
    return groups;
  }

  /** The `p`th percentile (0–100, nearest rank) of the spans' durations in ms; null for no spans. */
  function percentile(spans, p) {
    spanList(spans, 'percentile(spans, p)');
    if (typeof p !== 'number' || !(p >= 0 && p <= 100)) throw new RangeError('percentile(spans, p): p must be a number from 0 to 100');
    if (spans.length === 0) return null;
    const durations = spans.map((s) => s.duration).sort((a, b) => a - b);
    const rank = Math.max(1, Math.ceil((p / 100) * durations.length));
    return durations[rank - 1];
  }

  // ------------------------------------------------------------------ rules --
  const registry = [];
  const RULE = Symbol('fluo.rule');
  const RULE_KEYS = ['name', 'severity', 'description', 'labels', 'when', 'expect', 'never', 'check', 'message', 'group'];
  const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

  /** `labels` of `rule({...})` or `window({...})`: at most 16 name → text pairs that route notifications. */
  function checkLabels(labels, where) {
    if (labels === undefined) return undefined;
    if (labels === null || typeof labels !== 'object' || isArray(labels)) {
      throw new TypeError(where + '({labels}): expected an object of name: "text" pairs');
    }
    const names = keys(labels);
    if (names.length > 16) throw new RangeError(where + '({labels}): at most 16 labels');
    const out = {};
    for (const name of names) {
      if (!LABEL_NAME.test(name) || name.startsWith('__')) {
        throw new TypeError(where + '({labels}): ' + show(name) + ' is not a label name (a letter or _, then letters, digits or _; at most 64; not starting with __)');
      }
      const value = labels[name];
      if (typeof value !== 'string' || value.length === 0 || value.length > 256) {
        throw new TypeError(where + '({labels.' + name + '}): expected a text of 1 to 256 characters');
      }
      out[name] = value;
    }
    return freeze(out);
  }
  const GROUP_KEY_CAP = 512;

  function checkSeverity(severity, where) {
    if (severity === undefined) return undefined;
    if (SEVERITIES.indexOf(severity) < 0) {
      throw new TypeError(where + ': severity must be one of ' + SEVERITIES.join(', ') + ', got ' + show(severity));
    }
    return severity;
  }

  function checkCondition(value, key) {
    if (value === undefined) return undefined;
    if (value instanceof Pattern || typeof value === 'function') return value;
    throw new TypeError('rule({' + key + '}): expected a pattern (trace.has(...)) or a function (trace => boolean)');
  }

  /** `group` of `rule({...})`: a function of the violation, or attribute keys. */
  function checkGroup(group, where) {
    if (group === undefined || typeof group === 'function') return group;
    const list = typeof group === 'string' ? [group] : group;
    if (!isArray(list) || list.length === 0 || list.length > 16 || list.some((key) => typeof key !== 'string' || key === '')) {
      throw new TypeError(where + '({group}): expected a function ({trace, spans, message} => key) or 1 to 16 attribute keys');
    }
    return freeze(list.slice());
  }

  /** A grouping key as text: strings as they are, anything else as JSON; null/undefined: none. */
  function keyText(value) {
    if (value === undefined || value === null) return null;
    if (typeof value === 'string') return value;
    if (typeof value === 'bigint') return value.toString();
    return stringify(value, bigIntSafe);
  }

  /** The rule's grouping key for violation `v` (null: group by the witness spans). */
  function groupOf(def, v, t) {
    if (v.group !== undefined && v.group !== null) return keyText(v.group);
    if (def.group === undefined) return null;
    const spans = [];
    for (const s of v.spans) {
      const span = typeof s === 'string' ? t.span(s) : s;
      if (span) spans.push(span);
    }
    if (typeof def.group === 'function') return keyText(def.group({ trace: t, spans, message: v.message }));
    return stringify(def.group.map((key) => {
      const values = [];
      for (const s of spans) {
        const value = keyText(lookup(s, key));
        if (value !== null && values.indexOf(value) < 0) values.push(value);
      }
      return values.sort();
    }));
  }

  /** `rule({...})`: a rule with metadata and explicit polarity. */
  function rule(spec) {
    if (spec === null || typeof spec !== 'object') throw new TypeError('rule(...) expects an object');
    for (const key of keys(spec)) {
      if (RULE_KEYS.indexOf(key) < 0) throw new TypeError('rule({...}): unknown field "' + key + '" (known: ' + RULE_KEYS.join(', ') + ')');
    }
    if (spec.name !== undefined && typeof spec.name !== 'string') throw new TypeError('rule({name}): expected a string');
    if (spec.description !== undefined && typeof spec.description !== 'string') throw new TypeError('rule({description}): expected a string');
    if (spec.message !== undefined && typeof spec.message !== 'string' && typeof spec.message !== 'function') {
      throw new TypeError('rule({message}): expected a string or a function');
    }
    if (spec.check !== undefined && typeof spec.check !== 'function') throw new TypeError('rule({check}): expected a function (trace => violations)');
    const def = {
      [RULE]: true,
      form: 'rule',
      name: spec.name === undefined ? null : spec.name,
      severity: checkSeverity(spec.severity, 'rule({severity})') || DEFAULT_SEVERITY,
      description: spec.description === undefined ? null : spec.description,
      labels: checkLabels(spec.labels, 'rule'),
      when: checkCondition(spec.when, 'when'),
      expect: checkCondition(spec.expect, 'expect'),
      never: checkCondition(spec.never, 'never'),
      check: spec.check,
      message: spec.message,
      group: checkGroup(spec.group, 'rule'),
    };
    if (!def.when && !def.expect && !def.never && !def.check) {
      throw new TypeError('rule({...}) needs at least one of when, expect, never or check');
    }
    return freeze(def);
  }

  const WINDOW_KEYS = ['name', 'severity', 'description', 'labels', 'select', 'length', 'every', 'grace', 'check', 'group'];
  const SELECT_KEYS = ['service', 'name', 'kind', 'attributes'];
  const KINDS = ['INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
  const HOUR = 3600 * 1000;

  function selection(select) {
    if (select === undefined) return { service: null, name: null, kind: null, attributes: {} };
    if (select === null || typeof select !== 'object') throw new TypeError('window({select}): expected an object');
    for (const key of keys(select)) {
      if (SELECT_KEYS.indexOf(key) < 0) throw new TypeError('window({select}): unknown field "' + key + '" (known: ' + SELECT_KEYS.join(', ') + ')');
    }
    for (const key of ['service', 'name']) {
      if (select[key] !== undefined && typeof select[key] !== 'string') throw new TypeError('window({select.' + key + '}): expected a string');
    }
    let kind = null;
    if (select.kind !== undefined) {
      kind = typeof select.kind === 'string' ? select.kind.toUpperCase() : '';
      if (KINDS.indexOf(kind) < 0) throw new TypeError('window({select.kind}): expected one of ' + KINDS.join(', ').toLowerCase());
    }
    const attributes = {};
    if (select.attributes !== undefined) {
      if (select.attributes === null || typeof select.attributes !== 'object' || isArray(select.attributes)) {
        throw new TypeError('window({select.attributes}): expected an object of attribute values');
      }
      for (const key of keys(select.attributes)) {
        const value = select.attributes[key];
        if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
          throw new TypeError('window({select.attributes.' + key + '}): expected a string, number or boolean');
        }
        attributes[key] = value;
      }
    }
    return { service: select.service === undefined ? null : select.service, name: select.name === undefined ? null : select.name, kind, attributes };
  }

  function windowDuration(value, what, fallback) {
    const ms = value === undefined ? fallback : duration(value);
    // At least a second: every tenant's windows are checked on one thread.
    if (!(ms >= 1000) || ms > HOUR) throw new RangeError('window({' + what + '}): must be from 1 second to 1 hour');
    return Math.round(ms);
  }

  /**
   * `window({...})`: an invariant over the spans of one tenant in a time
   * window, across traces. The host selects spans as they arrive (`select`)
   * and calls `check(spans, window)` every `every` with the spans that started
   * in the last `length`.
   */
  function windowRule(spec) {
    if (spec === null || typeof spec !== 'object') throw new TypeError('window(...) expects an object');
    for (const key of keys(spec)) {
      if (WINDOW_KEYS.indexOf(key) < 0) throw new TypeError('window({...}): unknown field "' + key + '" (known: ' + WINDOW_KEYS.join(', ') + ')');
    }
    if (spec.name !== undefined && typeof spec.name !== 'string') throw new TypeError('window({name}): expected a string');
    if (spec.description !== undefined && typeof spec.description !== 'string') throw new TypeError('window({description}): expected a string');
    if (typeof spec.check !== 'function') throw new TypeError('window({check}): expected a function (spans, window) => violations');
    if (spec.length === undefined) throw new TypeError('window({length}): required, e.g. "1 minute"');
    const length = windowDuration(spec.length, 'length');
    const every = windowDuration(spec.every, 'every', length);
    if (every > length) throw new RangeError('window({every}): must not exceed length (' + length + ' ms)');
    const grace = spec.grace === undefined ? 5000 : duration(spec.grace);
    if (!(grace >= 0) || grace > 10 * 60 * 1000) throw new RangeError('window({grace}): must be from 0 to 10 minutes');
    return freeze({
      [RULE]: true,
      form: 'window',
      name: spec.name === undefined ? null : spec.name,
      severity: checkSeverity(spec.severity, 'window({severity})') || DEFAULT_SEVERITY,
      description: spec.description === undefined ? null : spec.description,
      labels: checkLabels(spec.labels, 'window'),
      window: freeze({ select: selection(spec.select), length_ms: length, every_ms: every, grace_ms: Math.round(grace) }),
      check: spec.check,
      message: undefined,
      group: checkGroup(spec.group, 'window'),
    });
  }

  function define(value) {
    let def;
    if (value instanceof Pattern) {
      def = { form: 'pattern', name: null, severity: DEFAULT_SEVERITY, description: value.toString(), when: value, message: undefined };
    } else if (typeof value === 'function') {
      // `export default function (t) {}` is rewritten to `var __fluo$d = function…`,
      // which names the function after the binding: that is not the tenant's name.
      const name = value.name && value.name.indexOf('__fluo') !== 0 ? value.name : null;
      def = { form: 'check', name, severity: DEFAULT_SEVERITY, description: null, check: value, message: undefined };
    } else if (value && value[RULE] === true) {
      def = value;
    } else {
      throw new TypeError('a rule must export default a pattern (trace.has(...)), a check function (trace => violations), rule({...}) or window({...}); got ' + show(value));
    }
    registry.push(freeze(def));
  }

  function evalCondition(condition, t) {
    if (condition instanceof Pattern) return condition._evaluate(t.spans);
    const value = condition(t);
    if (value instanceof Pattern) return value._evaluate(t.spans);
    if (isArray(value)) return value.length ? { ok: true, w: value.filter(isSpan) } : NO;
    if (isSpan(value)) return { ok: true, w: [value] };
    return value ? { ok: true, w: [] } : NO;
  }

  function isSpan(value) {
    return value !== null && typeof value === 'object' && typeof value.spanId === 'string' && typeof value.name === 'string';
  }

  function messageOf(def, fallback, witnesses, t) {
    if (typeof def.message === 'function') {
      const text = def.message({ trace: t, spans: witnesses });
      if (typeof text !== 'string') throw new TypeError('rule({message}) function must return a string');
      return text;
    }
    if (typeof def.message === 'string') return def.message;
    return fallback;
  }

  function violationsOf(def, t) {
    if (def.form === 'check') return fromCheck(def.check(t), def, t);
    if (def.form === 'window') {
      if (currentWindow === null) throw new Error('a window rule runs on windows of spans, not on single traces');
      return fromCheck(def.check(t.spans, currentWindow), def, t);
    }
    if (currentWindow !== null) throw new Error('this rule runs on traces, not on windows of spans');
    const when = def.when ? evalCondition(def.when, t) : { ok: true, w: [] };
    if (!when.ok) {
      whenFailed = true;
      return [];
    }
    const out = [];
    const plain = !def.expect && !def.never && !def.check;
    if (plain) {
      const fallback = def.name ? def.name + ' matched' : 'pattern matched: ' + (def.when._description || 'condition');
      out.push({ message: messageOf(def, fallback, when.w, t), severity: def.severity, spans: when.w });
    }
    if (def.expect) {
      const expected = evalCondition(def.expect, t);
      if (!expected.ok) {
        const fallback = 'expected ' + (def.expect._description || 'condition') + ' did not hold';
        out.push({ message: messageOf(def, fallback, when.w, t), severity: def.severity, spans: when.w });
      }
    }
    if (def.never) {
      const forbidden = evalCondition(def.never, t);
      if (forbidden.ok) {
        const spans = union(when.w, forbidden.w);
        const fallback = 'forbidden ' + (def.never._description || 'condition') + ' held';
        out.push({ message: messageOf(def, fallback, spans, t), severity: def.severity, spans });
      }
    }
    if (def.check) for (const v of fromCheck(def.check(t), def, t)) out.push(v);
    return out;
  }

  function fromCheck(result, def, t) {
    if (result === undefined || result === null || result === false) return [];
    if (result instanceof Pattern) {
      const matched = result._evaluate(t.spans);
      if (!matched.ok) return [];
      return [{ message: messageOf(def, 'pattern matched: ' + result._description, matched.w, t), severity: def.severity, spans: matched.w }];
    }
    if (typeof result === 'object' && typeof result.then === 'function') {
      throw new TypeError('a check must return its result synchronously (async functions and promises are not supported)');
    }
    if (result === true) return [{ message: messageOf(def, (def.name || 'check') + ' failed', [], t), severity: def.severity, spans: [] }];
    const list = isArray(result) ? result : [result];
    const out = [];
    for (const item of list) {
      if (item === true) {
        out.push({ message: messageOf(def, (def.name || 'check') + ' failed', [], t), severity: def.severity, spans: [] });
        continue;
      }
      if (item === null || typeof item !== 'object' || isSpan(item)) {
        throw new TypeError('a check must return nothing, false, true, a violation {message, severity?, spans?, attributes?, group?} or an array of them; got ' + show(item));
      }
      const spans = item.spans === undefined ? [] : isArray(item.spans) ? item.spans : [item.spans];
      out.push({
        message: item.message === undefined ? messageOf(def, (def.name || 'check') + ' failed', spans, t) : item.message,
        severity: item.severity === undefined ? def.severity : checkSeverity(item.severity, 'violation'),
        spans,
        attributes: item.attributes,
        group: item.group,
      });
    }
    return out;
  }

  // Bounded size estimate, so that a 50 MB string is refused before it is copied.
  function sizeOf(value, budget) {
    if (value === undefined || value === null) return 4;
    switch (typeof value) {
      case 'string': return value.length + 2;
      case 'number': case 'boolean': return 8;
      case 'bigint': return 24;
      case 'object': {
        let total = 2;
        for (const key of keys(value)) {
          total += key.length + 4 + sizeOf(value[key], budget - total);
          if (total > budget) return total;
        }
        return total;
      }
      default: return 8;
    }
  }

  function finish(def, violations, t, cap) {
    const out = [];
    let budget = cap;
    for (const v of violations) {
      if (typeof v.message !== 'string') throw new TypeError('a violation message must be a string, got ' + show(v.message));
      if (v.message.length > MESSAGE_CAP) return { overflow: v.message.length };
      budget -= v.message.length + 64;
      if (budget < 0) return { overflow: cap - budget };
      const ids = [];
      for (const s of v.spans) {
        const id = typeof s === 'string' ? s : isSpan(s) ? s.spanId : null;
        if (id === null) throw new TypeError('violation spans must be spans or span ids, got ' + show(s));
        if (!t.span(id)) throw new TypeError('violation refers to span ' + id + ', which is not in the trace');
        if (ids.indexOf(id) < 0) ids.push(id);
      }
      budget -= ids.length * 20;
      let attributes = null;
      if (v.attributes !== undefined && v.attributes !== null) {
        if (typeof v.attributes !== 'object' || isArray(v.attributes)) throw new TypeError('violation attributes must be an object');
        budget -= sizeOf(v.attributes, budget + 1);
        if (budget < 0) return { overflow: cap - budget };
        attributes = v.attributes;
      }
      const group = groupOf(def, v, t);
      if (group !== null && group.length > GROUP_KEY_CAP) {
        throw new TypeError('a violation group key must be at most ' + GROUP_KEY_CAP + ' characters, got ' + group.length);
      }
      if (group !== null) budget -= group.length;
      out.push({ message: v.message, severity: v.severity, spans: ids, attributes, group });
    }
    return { violations: out };
  }

  function bigIntSafe(key, value) {
    return typeof value === 'bigint' ? value.toString() : value;
  }


  function run(index, cap) {
    if (logs.length !== 0) logs = [];
    logBytes = 0;
    logsTruncated = false;
    whenFailed = false;
    const def = registry[index];
    if (!def) return stringify({ outcome: 'error', name: 'Error', message: 'no rule registered at index ' + index, stack: '' });
    if (currentTrace === null) return stringify({ outcome: 'error', name: 'Error', message: 'no trace loaded', stack: '' });
    try {
      const violations = violationsOf(def, currentTrace);
      // 0: "ok, no violations, no logs", 1: the same because `when` did not
      // hold; the plugin answers its constant texts for them without copying
      // a string out of JS.
      if (violations.length === 0 && logs.length === 0) return whenFailed ? 1 : 0;
      const result = finish(def, violations, currentTrace, cap);
      if (result.overflow !== undefined) return stringify({ outcome: 'output_cap', bytes: result.overflow });
      const doc = { outcome: 'ok', violations: result.violations, logs, logsTruncated };
      if (whenFailed) doc.whenFailed = true;
      const text = stringify(doc, bigIntSafe);
      if (text.length > cap) return stringify({ outcome: 'output_cap', bytes: text.length });
      return text;
    } catch (error) {
      const isError = error instanceof Error;
      return stringify({
        outcome: 'error',
        name: isError ? error.name : 'Thrown',
        message: isError ? String(error.message) : show(error),
        stack: isError && typeof error.stack === 'string' ? error.stack.slice(0, 2048) : '',
        logs,
        logsTruncated,
      });
    }
  }

  function describeRule(index) {
    const def = registry[index];
    if (!def) throw new RangeError('no rule registered at index ' + index);
    const meta = { form: def.form, name: def.name, severity: def.severity, description: def.description };
    if (def.window) meta.window = def.window;
    if (def.labels) meta.labels = def.labels;
    return stringify(meta);
  }

  // ---------------------------------------------------------------- globals --
  const define_ = (name, value) => Object.defineProperty(globalThis, name, { value, enumerable: false, writable: false, configurable: false });
  define_('console', fluoConsole);
  define_('trace', PATTERN_BUILDER);
  define_('rule', rule);
  define_('window', windowRule);
  define_('concurrency', concurrency);
  define_('rate', rate);
  define_('groupBy', groupBy);
  define_('percentile', percentile);
  define_('duration', duration);
  define_('__fluo_define', define);
  define_('__fluo_adopt', adopt);
  define_('__fluo_run', run);
  define_('__fluo_describe', describeRule);
  define_('__fluo_count', () => registry.length);

  // No eval for rules: the source a tenant uploads is the code that runs.
  const refuse = (what) => {
    const refused = function () {
      throw new EvalError(what + ' is disabled in FLUO rules');
    };
    return refused;
  };
  const NoFunction = refuse('the Function constructor');
  NoFunction.prototype = Function.prototype;
  Object.defineProperty(globalThis, 'eval', { value: refuse('eval'), writable: false, configurable: false });
  Object.defineProperty(globalThis, 'Function', { value: NoFunction, writable: false, configurable: false });
  for (const sample of [function () {}, async function () {}, function* () {}, async function* () {}]) {
    Object.defineProperty(Object.getPrototypeOf(sample), 'constructor', { value: refuse('the Function constructor'), writable: false, configurable: false });
  }

  // Harden the realm: rules share one JS realm per tenant, so no rule may
  // change a builtin another rule (or this SDK) relies on.
  for (const name of Object.getOwnPropertyNames(globalThis)) {
    const value = globalThis[name];
    if (value !== null && (typeof value === 'object' || typeof value === 'function')) {
      freeze(value);
      if (typeof value === 'function' && value.prototype) freeze(value.prototype);
    }
  }
  for (const sample of [function () {}, async function () {}, function* () {}, async function* () {}]) freeze(Object.getPrototypeOf(sample));
  freeze(Function.prototype);
  freeze(Object.getPrototypeOf([][Symbol.iterator]()));
  // The SDK's own classes are shared by the tenant's rules too: a rule that
  // reaches `Object.getPrototypeOf(trace)` must not patch, say, `span()` (which
  // vets witness ids) for the rules that run after it.
  for (const shared of [Trace, Pattern, Count]) {
    freeze(shared.prototype);
    freeze(shared);
  }
  freeze(globalThis);
})();
