// Shapes of the FLUO API (docs/openapi.json).

export type Severity = 'critical' | 'high' | 'medium' | 'low' | 'info';
export type Status = 'open' | 'acknowledged' | 'resolved' | 'false_positive';
export type Role = 'admin' | 'editor' | 'viewer';
export const SEVERITIES: Severity[] = ['critical', 'high', 'medium', 'low', 'info'];
export const STATUSES: Status[] = ['open', 'acknowledged', 'resolved', 'false_positive'];

export interface UserInfo { id: string; email: string; role: Role; created_at: string }
export interface Token { token: string; expires_at: string; user: UserInfo }

export interface Principal {
  kind: 'user' | 'key';
  id: string;
  email?: string | null;
  role?: Role | null;
  scopes: string[];
}
export interface Info {
  version: string;
  tenant: string;
  otlp_grpc_port: number;
  otlp_http_port: number;
  principal: Principal;
}

export interface RuleCounters {
  calls: number; failures: number; fuel_used: number; signals_created: number;
  /** Traces the rule's prefilter ruled out (not run, not counted as calls). */
  skipped: number;
  last_failure?: string | null; last_failure_at?: string | null;
}
export interface VersionInfo {
  version: number; message?: string | null; author?: string | null; author_name?: string | null; created_at: string;
  plugin_hash: string; form: string; severity: string; description?: string | null; source?: string | null;
}
export interface RuleInfo {
  /** active_version: the version that runs; 0 while the rule has only drafts. */
  id: string; name: string; active_version: number; latest_version: number; enabled: boolean;
  /** A version newer than the active one is stored (a draft). */
  has_draft?: boolean;
  created_at: string; updated_at: string; severity: string; form: string;
  active?: VersionInfo | null;
  /** The latest version with its source, when newer than the active one (GET /rules/{id} only). */
  draft?: VersionInfo | null;
  stats?: RuleCounters | null; occurrences_24h?: number | null;
}
/** `active`: false for a version stored as a draft. */
export interface RuleCreated { id: string; name: string; version: number; active?: boolean }
export interface Template { id: string; title: string; source: string }
export interface Compiled { name?: string | null; severity: string; description?: string | null; form: string; compile_ms: number }

export interface WitnessRef { span_id: string; name: string; service?: string | null }
export interface TestViolation { message: string; severity: Severity; span_ids: string[]; witnesses: WitnessRef[] }
export interface RuleFailure { name: string; message: string; line?: number | null; column?: number | null }
/**
 * A rule on one trace: `violation` (it found some), `held` (it applied — its `when` held or it
 * has none — and its `expect` held), `when_failed` (its `when` did not hold: it does not apply),
 * `error` (it did not finish).
 */
export type Verdict = 'violation' | 'held' | 'when_failed' | 'error';
export const VERDICT_LABEL: Record<Verdict, string> = { violation: 'Violation', held: 'Held', when_failed: 'When failed', error: 'Error' };
export const VERDICT_HINT: Record<Verdict, string> = {
  violation: 'the rule found violations',
  held: 'the rule applied and its expect held',
  when_failed: 'its when did not hold: the rule does not apply',
  error: 'the rule did not finish',
};
export interface TraceResult {
  trace_id: string; spans: number; outcome: string; violations: TestViolation[];
  fuel_used: number; elapsed_us: number; error?: RuleFailure | null;
  /** Absent from servers before verdicts. */
  verdict?: Verdict;
  /** The live path's prefilter would not run the rule on this trace. */
  prefilter_skips: boolean;
}
export interface TestReport { rule: { form: string; name?: string | null; severity: string; description?: string | null }; compile_ms: number; traces: TraceResult[] }
/** A backtest: the verdicts' counts, and at most 100 results (violations first, then errors, held, when_failed). */
export interface BacktestReport {
  /** Absent for an unsaved source. */
  rule_id?: string; version?: number;
  rule?: { form: string; name?: string | null; severity: string; description?: string | null };
  traces_evaluated: number; traces_with_violations: number;
  traces_held?: number; traces_when_failed?: number; traces_failed: number; results: TraceResult[];
}
/** The tenant's own settings (GET/PUT /settings). */
export interface TenantSettings {
  trace_link_template: string | null;
  trace_retention_minutes: number | null;
  effective_trace_retention_minutes: number;
  default_trace_retention_minutes: number;
  max_trace_retention_minutes: number;
}

export interface Witness {
  span_id: string; parent_span_id?: string | null; name: string; service?: string | null; kind: string;
  status: string; start_time_unix_nano: number; end_time_unix_nano: number; attributes: Record<string, unknown>;
}
/** A history entry: a status change, an assignment (from/to: user ids or null), a snooze or its end. */
export type HistoryKind = 'status' | 'assigned' | 'snoozed' | 'unsnoozed';
export interface StatusChange {
  kind?: HistoryKind; from: string | null; to: string | null; note: string | null; author: string; author_name?: string | null; at: string;
}
export interface Snooze { until?: string | null; until_unix_ms?: number | null; until_occurrences?: number | null; by: string; at: string }
export interface WindowDetails {
  start: string; end: string; first_start: string; occurrences: number; spans_in_window: number; trace_ids: string[];
}
export interface Signal {
  id: string; rule_id: string; rule_name: string; rule_version: number; severity: Severity; message: string;
  trace_id: string; span_ids: string[]; status: Status; created_at: string; created_unix_ms: number;
  updated_at: string; attributes?: unknown; witnesses: Witness[];
  resolution?: { reason: string; note: string; at: string } | null;
  history?: StatusChange[]; window?: WindowDetails | null;
  /** The rule's labels (`rule({labels})`), as of the group's latest sample. */
  labels?: Record<string, string>;
  /** The group: how many violations it holds, when the latest was, which rule versions fired. */
  fingerprint?: string; occurrences?: number; last_seen_at?: string; last_seen_unix_ms?: number;
  versions?: number[]; regressions?: number; samples?: string[];
  /** Samples an investigator pinned: their snapshots stay until unpinned (at most ten). */
  pinned?: string[];
  assignee?: string | null; snooze?: Snooze | null; group_key?: string | null;
  /** The tenant's trace-link template filled in for the latest trace (GET /signals/{id}, when set). */
  trace_url?: string | null;
}
export interface SignalPage { items: Signal[]; next_cursor?: string | null; sparklines?: Record<string, number[]> }
export interface Occurrence { id: string; trace_id: string; span_ids: string[]; rule_version: number; message: string; at: string; at_unix_ms: number }
export interface OccurrencePage { items: Occurrence[]; next_cursor?: string | null }
export interface Series { start_unix_ms: number; bucket_ms: number; counts: number[] }
export interface Counts {
  total: number; occurrences?: number; by_severity: Record<string, number>; by_status: Record<string, number>;
  by_rule: { rule_id: string; rule_name: string; count: number; occurrences?: number; by_severity: Record<string, number> }[];
  /** With bucket_minutes: per bucket, rule id → count. */
  series?: { start: string; start_unix_ms: number; total: number; by_rule: Record<string, number> }[];
}

export interface KeyInfo { id: string; name: string; scopes: string[]; created_at: string; expires_at?: string | null; last_used_at?: string | null }
export interface KeyCreated { id: string; name: string; key: string; scopes: string[]; expires_at?: string | null }
export type ChannelKind = 'generic' | 'slack' | 'pagerduty' | 'alertmanager' | 'otlp';
export const CHANNEL_KINDS: { kind: ChannelKind; label: string; placeholder: string }[] = [
  { kind: 'generic', label: 'Generic (signed JSON)', placeholder: 'https://alerts.example.com/fluo' },
  { kind: 'slack', label: 'Slack incoming webhook', placeholder: 'https://hooks.slack.com/services/…' },
  { kind: 'pagerduty', label: 'PagerDuty Events v2', placeholder: 'https://events.pagerduty.com/v2/enqueue' },
  { kind: 'alertmanager', label: 'Prometheus Alertmanager', placeholder: 'http://alertmanager.internal:9093' },
  { kind: 'otlp', label: 'OTLP logs (your telemetry backend)', placeholder: 'https://otlp.example.com:4318' },
];
export interface WebhookInfo {
  id: string;
  url: string;
  kind: ChannelKind;
  name: string;
  severities: Severity[];
  rules: string[];
  services: string[];
  /** Rule labels a group must have (absent: any). */
  labels?: Record<string, string>;
  has_routing_key: boolean;
  throttle_minutes?: number;
  repeat_minutes?: number;
  header_names: string[];
  created_at: string;
}
export interface WebhookCreated extends WebhookInfo { secret: string }
export interface Delivery { signal_id: string; attempt: number; error?: string | null; delivered: boolean; at: string }
export interface TraceSummary { trace_id: string; root_name: string | null; service: string | null; spans: number; start_time: string; duration_ms: number }
export interface Vocabulary { services: string[]; span_names: string[]; attribute_keys: string[]; resource_attribute_keys?: string[] }

/** Allowed status changes (docs/api.md, "Status workflow"). */
export const TRANSITIONS: Record<Status, Status[]> = {
  open: ['acknowledged', 'resolved', 'false_positive'],
  acknowledged: ['resolved', 'false_positive', 'open'],
  resolved: ['open'],
  false_positive: ['open'],
};
export const STATUS_LABEL: Record<Status, string> = {
  open: 'Open', acknowledged: 'Acknowledged', resolved: 'Resolved', false_positive: 'False positive',
};
export const ACTION_LABEL: Record<Status, string> = {
  open: 'Reopen', acknowledged: 'Acknowledge', resolved: 'Resolve', false_positive: 'Mark false positive',
};
