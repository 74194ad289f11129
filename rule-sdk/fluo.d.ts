// TypeScript typings of everything a FLUO rule can use (ABI fluo_rule_v2).
// The SDK is global: rules have no imports. Reference: docs/rules.md.
// Use with `"lib": ["es2023"]` and no DOM lib (it declares its own `console`);
// checked with `tsc --strict --lib es2023` (TypeScript 5).

/** A typed attribute value (OTLP AnyValue). Integers beyond ±(2^53−1) are BigInt; bytes are base64 strings. */
type AttributeValue = string | number | bigint | boolean | null | AttributeValue[] | { [key: string]: AttributeValue };

/** Attributes keep their OTLP keys verbatim: `span.attributes['http.status_code']`. */
interface Attributes {
  readonly [key: string]: AttributeValue;
}

type SpanKind = 'UNSPECIFIED' | 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';
type SpanStatus = 'UNSET' | 'OK' | 'ERROR';
type Severity = 'critical' | 'high' | 'medium' | 'low' | 'info';

interface SpanEvent {
  readonly name: string;
  /** Milliseconds since the Unix epoch. */
  readonly time: number;
  readonly attributes: Attributes;
}

interface SpanLink {
  readonly traceId: string;
  readonly spanId: string;
  readonly attributes: Attributes;
}

/** One span (shared by the tenant's rules: treat as read-only). Times are milliseconds since the Unix epoch (fractional). */
interface Span {
  readonly name: string;
  /** 32 lowercase hex digits. */
  readonly traceId: string;
  /** 16 lowercase hex digits. */
  readonly spanId: string;
  /** null at the root. */
  readonly parentSpanId: string | null;
  readonly kind: SpanKind;
  readonly status: SpanStatus;
  readonly statusMessage: string;
  /** The resource attribute service.name, or null. */
  readonly service: string | null;
  readonly startTime: number;
  readonly endTime: number;
  /** endTime − startTime, in milliseconds. */
  readonly duration: number;
  /** Exact start time, nanoseconds since the Unix epoch, as a decimal string. */
  readonly startTimeUnixNano: string;
  readonly endTimeUnixNano: string;
  readonly attributes: Attributes;
  readonly resource: { readonly attributes: Attributes; readonly service: string | null };
  readonly scope: { readonly name: string; readonly version: string };
  readonly events: readonly SpanEvent[];
  readonly links: readonly SpanLink[];
}

/** A span predicate: a function, or a span name to compare with `span.name`. */
type Predicate = ((span: Span) => unknown) | string;

/** The assembled trace handed to check functions. */
interface Trace {
  readonly traceId: string;
  /** All spans, ordered by start time. */
  readonly spans: readonly Span[];
  /** The first span without a parent, or null when the trace has no root. */
  readonly root: Span | null;
  /** Earliest start, latest end (ms since the epoch); null for an empty trace. */
  readonly startTime: number | null;
  readonly endTime: number | null;
  /** Latest end − earliest start, in ms (0 for an empty trace). */
  readonly duration: number;
  /** Distinct service names, sorted. */
  readonly services: readonly string[];
  has(pred: Predicate): boolean;
  none(pred: Predicate): boolean;
  count(pred?: Predicate): number;
  find(pred: Predicate): Span | null;
  filter(pred: Predicate): Span[];
  /** The span with this id, or null. */
  span(spanId: string): Span | null;
  children(span: Span | string): Span[];
  parent(span: Span | string): Span | null;
  /** Parent, grandparent, … up to the root. */
  ancestors(span: Span | string): Span[];
  /** All spans below, ordered by start time. */
  descendants(span: Span | string): Span[];
}

/** A pattern over a trace; a match carries its witness spans. */
interface Pattern {
  and(other: Pattern | Predicate): Pattern;
  or(other: Pattern | Predicate): Pattern;
  not(): Pattern;
  /** Matches when the pattern matches among spans that all start within the duration. */
  within(duration: Duration): Pattern;
  /** Matches when a span matching `next` starts at or after the end of a witness of this pattern. */
  followedBy(next: Pattern | Predicate): Pattern;
  /** Evaluates the pattern on a trace (inside check functions). */
  match(trace: Trace): { matched: boolean; spans: Span[] };
  test(trace: Trace): boolean;
}

interface Count {
  gt(n: number | Count): Pattern;
  gte(n: number | Count): Pattern;
  lt(n: number | Count): Pattern;
  lte(n: number | Count): Pattern;
  eq(n: number | Count): Pattern;
  ne(n: number | Count): Pattern;
}

interface PatternBuilder {
  /** Some span matches; witnesses: every matching span. */
  has(pred: Predicate): Pattern;
  /** No span matches; no witnesses. */
  missing(pred: Predicate): Pattern;
  /** The number of matching spans (all spans without a predicate). */
  count(pred?: Predicate): Count;
  /** Restricts the spans that the following has/missing/count see. */
  where(pred: Predicate): PatternBuilder;
  not(pattern: Pattern | Predicate): Pattern;
}

/** `'5 seconds'`, `'10s'`, `'500ms'`, `'1 minute'`, `'2h'`, or milliseconds. */
type Duration = number | string;

interface Violation {
  message?: string;
  severity?: Severity;
  /** Witness spans (or span ids) of this trace. */
  spans?: Span | string | ReadonlyArray<Span | string>;
  /** Extra JSON-serializable context, stored with the signal. */
  attributes?: Record<string, unknown>;
  /** This violation's grouping key (at most 512 characters as text); overrides the rule's `group`. */
  group?: string | number | boolean | null;
}

type CheckResult = void | undefined | null | boolean | Violation | ReadonlyArray<Violation | true>;
type CheckFunction = (trace: Trace) => CheckResult;
type Condition = Pattern | ((trace: Trace) => boolean | Span | readonly Span[] | Pattern | null | undefined);

interface RuleSpec {
  name?: string;
  /** Default 'medium'. */
  severity?: Severity;
  description?: string;
  /** At most 16 name → text pairs (names: a letter or _, then letters, digits or _; texts 1–256 characters). Groups carry them; notification channels route by them; Alertmanager gets them as alert labels. */
  labels?: Record<string, string>;
  /** The rule applies only to traces where this holds. */
  when?: Condition;
  /** Violation when this does not hold. */
  expect?: Condition;
  /** Violation when this holds. */
  never?: Condition;
  /** Any further check, as a check function. */
  check?: CheckFunction;
  message?: string | ((context: { trace: Trace; spans: Span[] }) => string);
  /**
   * What makes two violations one signal. Default: the witness spans' services and names.
   * A function of the violation (its key: a string, or any JSON value; null/undefined for the default),
   * or 1 to 16 attribute keys whose values on the witness spans (span, then resource attributes, then span fields) form the key.
   */
  group?: ((violation: { trace: Trace; spans: Span[]; message: string }) => unknown) | string | readonly string[];
}

interface RuleDefinition {
  readonly form: 'rule';
  readonly name: string | null;
  readonly severity: Severity;
}

/** The pattern builder. Inside a check function, the parameter named `trace` shadows it. */
declare const trace: PatternBuilder;
/** A rule with metadata and explicit polarity. */
declare function rule(spec: RuleSpec): RuleDefinition;
/** Milliseconds of a duration. */
declare function duration(value: Duration): number;
/** Logs go to the test report (4 KiB per call at most), not to the host's stdout. */
declare const console: {
  log(...args: unknown[]): void;
  info(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
};

/** Which spans a window rule receives; the host applies it as spans arrive. All given fields must match. */
interface WindowSelection {
  /** `service.name` of the span's resource. */
  service?: string;
  /** Span name. */
  name?: string;
  kind?: 'server' | 'client' | 'internal' | 'producer' | 'consumer';
  /** Attribute values that must be equal. */
  attributes?: Record<string, string | number | boolean>;
}

/** The window a check runs on: spans that started in [start, end), in ms since the epoch. */
interface WindowBounds {
  readonly start: number;
  readonly end: number;
  readonly length: number;
}

interface WindowSpec {
  name?: string;
  severity?: Severity;
  description?: string;
  /** As in `rule({labels})`. */
  labels?: Record<string, string>;
  select?: WindowSelection;
  /** Window length, 1 second to 1 hour. */
  length: Duration;
  /** How often a window is checked, at least 1 second (default: `length`, tumbling; shorter: sliding). */
  every?: Duration;
  /** How long after a window's end late spans still count (default 5 s, at most 10 minutes). */
  grace?: Duration;
  /** Called once per window with the selected spans (sorted by start time), of any number of traces. */
  check(spans: readonly Span[], window: WindowBounds): CheckResult;
}

interface WindowDefinition {
  readonly form: 'window';
  readonly name: string | null;
  readonly severity: Severity;
}

/** An invariant over one tenant's spans in a time window, across traces. */
declare function window(spec: WindowSpec): WindowDefinition;
/** Peak number of overlapping spans, the instant (ms) it is first reached, and the spans open then. */
declare function concurrency(spans: readonly Span[]): { peak: number; at: number | null; spans: Span[] };
/** Spans per `per` (default 1 s) over the current window (outside a window: over the spans' own time range). */
declare function rate(spans: readonly Span[], per?: Duration): number;
/** Spans grouped by a key function or an attribute name (span, then resource attributes, then span fields); spans without the key are left out. */
declare function groupBy(spans: readonly Span[], key: string | ((span: Span) => unknown)): Record<string, Span[]>;
/** The p-th percentile (0–100, nearest rank) of the spans' durations in ms; null for no spans. */
declare function percentile(spans: readonly Span[], p: number): number | null;
