// OTLP/JSON (resourceSpans → scopeSpans → spans, nanosecond strings) into flat spans.

export interface SpanEvent { name: string; timeMs: number; attributes: [string, string][] }
export interface FlatSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  name: string;
  service: string;
  kind: string;
  statusCode: 'UNSET' | 'OK' | 'ERROR';
  statusMessage: string;
  /** ms since the epoch (fractional) */
  start: number;
  end: number;
  attributes: [string, string][];
  resource: [string, string][];
  scope: string;
  events: SpanEvent[];
}

type AnyValue = Record<string, unknown>;
interface KeyValue { key: string; value?: AnyValue }

export function anyValue(v: AnyValue | undefined): string {
  if (!v) return '';
  if ('stringValue' in v) return String(v.stringValue);
  if ('intValue' in v) return String(v.intValue);
  if ('doubleValue' in v) return String(v.doubleValue);
  if ('boolValue' in v) return String(v.boolValue);
  if ('bytesValue' in v) return `bytes(${String(v.bytesValue)})`;
  if ('arrayValue' in v) {
    const vals = ((v.arrayValue as { values?: AnyValue[] })?.values ?? []).map(anyValue);
    return `[${vals.join(', ')}]`;
  }
  if ('kvlistValue' in v) {
    const kvs = ((v.kvlistValue as { values?: KeyValue[] })?.values ?? []).map((kv) => `${kv.key}: ${anyValue(kv.value)}`);
    return `{${kvs.join(', ')}}`;
  }
  return JSON.stringify(v);
}

function attrs(list: unknown): [string, string][] {
  if (!Array.isArray(list)) return [];
  return (list as KeyValue[]).map((kv) => [kv.key, anyValue(kv.value)]);
}

function nanosToMs(v: unknown): number {
  if (v === undefined || v === null || v === '') return 0;
  const s = String(v);
  // Keep precision: split seconds and the sub-second nanoseconds.
  if (s.length > 9) return Number(s.slice(0, -6)) + Number(s.slice(-6)) / 1e6;
  return Number(s) / 1e6;
}

const KINDS: Record<string, string> = {
  '0': 'UNSPECIFIED', '1': 'INTERNAL', '2': 'SERVER', '3': 'CLIENT', '4': 'PRODUCER', '5': 'CONSUMER',
};
function kindOf(k: unknown): string {
  if (k === undefined || k === null) return 'UNSPECIFIED';
  const s = String(k);
  return KINDS[s] ?? s.replace(/^SPAN_KIND_/, '');
}
function statusOf(code: unknown): FlatSpan['statusCode'] {
  const s = String(code ?? '0');
  if (s === '1' || s === 'STATUS_CODE_OK') return 'OK';
  if (s === '2' || s === 'STATUS_CODE_ERROR') return 'ERROR';
  return 'UNSET';
}

/** Hex ids; OTLP/JSON uses hex, some exporters write base64. */
function hexId(v: unknown): string {
  const s = String(v ?? '');
  if (/^[0-9a-fA-F]*$/.test(s)) return s.toLowerCase();
  try {
    return Array.from(atob(s), (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
  } catch {
    return s;
  }
}

/** Spans of one OTLP/JSON document, or of an array of documents. */
export function parseOtlp(doc: unknown): FlatSpan[] {
  const docs = Array.isArray(doc) ? doc : [doc];
  const out: FlatSpan[] = [];
  for (const d of docs) {
    const rss = (d as { resourceSpans?: unknown[] })?.resourceSpans;
    if (!Array.isArray(rss)) continue;
    for (const rs of rss as Record<string, unknown>[]) {
      const resource = attrs((rs.resource as { attributes?: unknown } | undefined)?.attributes);
      const service = resource.find(([k]) => k === 'service.name')?.[1] ?? 'unknown';
      const scopes = (rs.scopeSpans ?? rs.instrumentationLibrarySpans ?? []) as Record<string, unknown>[];
      for (const ss of scopes) {
        const scope = (ss.scope as { name?: string } | undefined)?.name ?? '';
        for (const sp of (ss.spans ?? []) as Record<string, unknown>[]) {
          const status = (sp.status ?? {}) as { code?: unknown; message?: string };
          const parent = hexId(sp.parentSpanId);
          out.push({
            traceId: hexId(sp.traceId),
            spanId: hexId(sp.spanId),
            parentSpanId: parent ? parent : null,
            name: String(sp.name ?? ''),
            service,
            kind: kindOf(sp.kind),
            statusCode: statusOf(status.code),
            statusMessage: status.message ?? '',
            start: nanosToMs(sp.startTimeUnixNano),
            end: nanosToMs(sp.endTimeUnixNano),
            attributes: attrs(sp.attributes),
            resource,
            scope,
            events: ((sp.events ?? []) as Record<string, unknown>[]).map((e) => ({
              name: String(e.name ?? ''),
              timeMs: nanosToMs(e.timeUnixNano),
              attributes: attrs(e.attributes),
            })),
          });
        }
      }
    }
  }
  return out;
}
