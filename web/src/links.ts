// Links out to the tenant's own trace backend: its trace-link template (Settings) filled in for
// a trace, the way the server fills it for a signal's `trace_url` (src/model/tenant.rs).

/** The placeholders a template may use. */
export const TRACE_LINK_PLACEHOLDERS = ['trace_id', 'span_id', 'start_unix_ms', 'end_unix_ms', 'start_unix_s', 'end_unix_s'] as const;

/** Templates for common backends, shown as examples. */
export const TRACE_LINK_EXAMPLES: { backend: string; template: string }[] = [
  { backend: 'Jaeger', template: 'https://jaeger.example/trace/{trace_id}' },
  { backend: 'Grafana Tempo', template: 'https://grafana.example/explore?left=%7B%22datasource%22:%22tempo%22,%22queries%22:[%7B%22query%22:%22{trace_id}%22%7D]%7D' },
  { backend: 'Honeycomb', template: 'https://ui.honeycomb.io/TEAM/environments/ENV/trace?trace_id={trace_id}&trace_start_ts={start_unix_s}&trace_end_ts={end_unix_s}' },
];

/** What a link is made for: a trace, optionally one of its spans, the time it covers (Unix ms). */
export interface LinkTarget {
  traceId: string;
  spanId?: string | null;
  startMs: number;
  endMs: number;
}

/**
 * `template` with its placeholders filled in. Ids are hex and times are numbers, so nothing needs
 * escaping; a missing span id is empty; an unknown `{…}` stays as it is.
 */
export function traceLink(template: string, t: LinkTarget): string {
  const values: Record<string, string> = {
    trace_id: t.traceId,
    span_id: t.spanId ?? '',
    start_unix_ms: String(Math.floor(t.startMs)),
    end_unix_ms: String(Math.ceil(t.endMs)),
    start_unix_s: String(Math.floor(t.startMs / 1000)),
    end_unix_s: String(Math.ceil(t.endMs / 1000)),
  };
  return template.replace(/\{([a-z_]*)\}/g, (whole, name: string) => (Object.hasOwn(values, name) ? values[name] : whole));
}
