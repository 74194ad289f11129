//! Live traces per tenant: spans are gathered by (tenant, trace id) until the
//! trace has been idle for `idle` or exists for `max_age`; then it is closed
//! and handed on. Time is a parameter (`now`) everywhere, so tests drive it.
//!
//! Deadlines sit in one min-heap and are checked lazily: a popped deadline
//! whose trace received spans since is pushed back with its new deadline, so
//! adding a span never touches the heap. Caps: spans and estimated bytes per
//! trace (excess spans are dropped and counted); the number of live traces
//! per tenant and the estimated bytes of all live traces
//! ([`Assembler::buffered_bytes`] against `max_live_bytes`) are enforced by the
//! caller refusing new requests, which a client retries, so nothing is dropped
//! for them. The same per-trace caps apply again when a closed trace is merged
//! with its stored copy ([`cap_merged`]), so late spans cannot grow a trace past
//! them. It must not evaluate or store anything.

use crate::model::tenant::TenantId;
use crate::model::trace::{Attributes, Span, TraceId, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct AssemblyLimits {
    pub idle: Duration,
    pub max_age: Duration,
    pub max_live_traces: usize,
    pub max_spans_per_trace: usize,
    pub max_trace_bytes: usize,
    /// Estimated bytes of all live traces of all tenants (`--live-traces-mib`).
    pub max_live_bytes: usize,
}

impl Default for AssemblyLimits {
    fn default() -> Self {
        AssemblyLimits {
            idle: Duration::from_secs(5),
            max_age: Duration::from_secs(30),
            max_live_traces: 100_000,
            max_spans_per_trace: 10_000,
            max_trace_bytes: 16 << 20,
            max_live_bytes: 1 << 30,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    Idle,
    MaxAge,
    Shutdown,
}

/// A trace that is complete as far as assembly can tell.
#[derive(Debug)]
pub struct ClosedTrace {
    pub tenant: TenantId,
    pub trace_id: TraceId,
    pub spans: Vec<Span>,
    pub reason: CloseReason,
    /// When its last span arrived (for latency measurement).
    pub last_span_at: Instant,
    /// The span-log position of its first spans: the log keeps it until the
    /// trace is evaluated ([`super::spanlog`]).
    pub position: u64,
}

/// Spans of one `add` call that were not kept, by reason.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub span_limit: u64,
    pub byte_limit: u64,
}

struct Live {
    spans: Vec<Span>,
    bytes: usize,
    first: Instant,
    last: Instant,
    /// The lowest span-log position of its spans.
    position: u64,
}

#[derive(Default)]
pub struct Assembler {
    limits: AssemblyLimits,
    tenants: HashMap<TenantId, HashMap<TraceId, Live>>,
    deadlines: BinaryHeap<Reverse<(Instant, TenantId, TraceId)>>,
    spans: usize,
    bytes: usize,
}

impl Assembler {
    pub fn new(limits: AssemblyLimits) -> Assembler {
        Assembler { limits, ..Assembler::default() }
    }

    pub fn limits(&self) -> &AssemblyLimits {
        &self.limits
    }

    pub fn live_traces(&self, tenant: &TenantId) -> usize {
        self.tenants.get(tenant).map_or(0, HashMap::len)
    }

    /// Spans buffered across all tenants.
    pub fn buffered_spans(&self) -> usize {
        self.spans
    }

    /// Estimated bytes ([`approx_size`]) of the spans buffered across all tenants.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Adds one request's spans, recorded at `position` in the span log.
    pub fn add(&mut self, tenant: &TenantId, spans: Vec<Span>, now: Instant, position: u64) -> Dropped {
        let mut dropped = Dropped::default();
        let limits = &self.limits;
        let traces = match self.tenants.get_mut(tenant) {
            Some(traces) => traces,
            None => self.tenants.entry(tenant.clone()).or_default(),
        };
        for span in spans {
            let size = approx_size(&span);
            let live = traces.entry(span.trace_id).or_insert_with(|| {
                self.deadlines.push(Reverse((now + limits.idle.min(limits.max_age), tenant.clone(), span.trace_id)));
                Live { spans: Vec::new(), bytes: 0, first: now, last: now, position }
            });
            live.last = now;
            live.position = live.position.min(position);
            if live.spans.len() >= limits.max_spans_per_trace {
                dropped.span_limit += 1;
                continue;
            }
            if live.bytes.saturating_add(size) > limits.max_trace_bytes {
                dropped.byte_limit += 1;
                continue;
            }
            live.bytes += size;
            live.spans.push(span);
            self.spans += 1;
            self.bytes = self.bytes.saturating_add(size);
        }
        dropped
    }

    /// Closes every trace whose idle or age deadline has passed at `now`.
    pub fn close_due(&mut self, now: Instant) -> Vec<ClosedTrace> {
        let mut closed = Vec::new();
        while let Some(Reverse((deadline, _, _))) = self.deadlines.peek() {
            if *deadline > now {
                break;
            }
            let Some(Reverse((_, tenant, trace_id))) = self.deadlines.pop() else { break };
            let Some(traces) = self.tenants.get_mut(&tenant) else { continue };
            let Some(live) = traces.get(&trace_id) else { continue };
            let idle_at = live.last + self.limits.idle;
            let old_at = live.first + self.limits.max_age;
            let due = idle_at.min(old_at);
            if due > now {
                self.deadlines.push(Reverse((due, tenant, trace_id)));
                continue;
            }
            let reason = if old_at <= now && old_at < idle_at { CloseReason::MaxAge } else { CloseReason::Idle };
            let live = traces.remove(&trace_id).expect("looked up above");
            if traces.is_empty() {
                self.tenants.remove(&tenant);
            }
            self.spans -= live.spans.len();
            self.bytes = self.bytes.saturating_sub(live.bytes);
            closed.push(ClosedTrace { tenant, trace_id, spans: live.spans, reason, last_span_at: live.last, position: live.position });
        }
        closed
    }

    /// The lowest span-log position any live trace still needs.
    pub fn oldest_position(&self) -> Option<u64> {
        self.tenants.values().flat_map(HashMap::values).map(|live| live.position).min()
    }

    /// When the next deadline falls (a sweeper sleeps until then).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((deadline, _, _))| *deadline)
    }

    /// Closes everything (shutdown).
    pub fn close_all(&mut self) -> Vec<ClosedTrace> {
        self.deadlines.clear();
        self.spans = 0;
        self.bytes = 0;
        let mut closed = Vec::new();
        for (tenant, traces) in self.tenants.drain() {
            for (trace_id, live) in traces {
                closed.push(ClosedTrace {
                    tenant: tenant.clone(),
                    trace_id,
                    spans: live.spans,
                    reason: CloseReason::Shutdown,
                    last_span_at: live.last,
                    position: live.position,
                });
            }
        }
        closed
    }
}

/// Keeps the spans of a merged trace (the stored copy first, then the late
/// spans) while they fit the per-trace span and byte caps; the rest are dropped
/// and counted, as [`Assembler::add`] drops them for a live trace.
pub fn cap_merged(spans: Vec<Span>, limits: &AssemblyLimits) -> (Vec<Span>, Dropped) {
    let mut dropped = Dropped::default();
    let mut bytes = 0usize;
    let mut kept = Vec::with_capacity(spans.len().min(limits.max_spans_per_trace));
    for span in spans {
        if kept.len() >= limits.max_spans_per_trace {
            dropped.span_limit += 1;
            continue;
        }
        let size = approx_size(&span);
        if bytes.saturating_add(size) > limits.max_trace_bytes {
            dropped.byte_limit += 1;
            continue;
        }
        bytes += size;
        kept.push(span);
    }
    (kept, dropped)
}

/// An estimate of a span's memory: the struct plus its strings and values.
pub fn approx_size(span: &Span) -> usize {
    std::mem::size_of::<Span>()
        + span.name.len()
        + span.status_message.len()
        + attributes_size(&span.attributes)
        + span.events.iter().map(|event| 48 + event.name.len() + attributes_size(&event.attributes)).sum::<usize>()
        + span.links.iter().map(|link| 48 + attributes_size(&link.attributes)).sum::<usize>()
}

fn attributes_size(attributes: &Attributes) -> usize {
    attributes.iter().map(|(key, value)| 32 + key.len() + value_size(value)).sum()
}

fn value_size(value: &Value) -> usize {
    match value {
        Value::Str(text) => text.len(),
        Value::Bytes(bytes) => bytes.len(),
        Value::Array(items) => items.iter().map(|item| 32 + value_size(item)).sum(),
        Value::Map(entries) => attributes_size(entries),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::trace::{Resource, Scope, SpanKind, StatusCode};
    use std::sync::Arc;

    fn span(trace: u8, id: u8) -> Span {
        Span {
            trace_id: [trace; 16],
            span_id: [id; 8],
            parent_span_id: None,
            name: format!("span-{id}"),
            kind: SpanKind::Internal,
            status: StatusCode::Unset,
            status_message: String::new(),
            start_unix_nano: 1,
            end_unix_nano: 2,
            attributes: vec![],
            events: vec![],
            links: vec![],
            resource: Arc::new(Resource::default()),
            scope: Arc::new(Scope::default()),
        }
    }

    fn limits() -> AssemblyLimits {
        AssemblyLimits { idle: Duration::from_secs(5), max_age: Duration::from_secs(30), ..AssemblyLimits::default() }
    }

    #[test]
    fn closes_when_idle_and_not_before() {
        let tenant = TenantId::trusted("t");
        let mut assembler = Assembler::new(limits());
        let start = Instant::now();
        assembler.add(&tenant, vec![span(1, 1)], start, 0);
        assembler.add(&tenant, vec![span(1, 2)], start + Duration::from_secs(3), 0);
        assert!(assembler.close_due(start + Duration::from_secs(5)).is_empty(), "the second span restarted the idle clock");
        assert_eq!(assembler.next_deadline(), Some(start + Duration::from_secs(8)));
        let closed = assembler.close_due(start + Duration::from_secs(8));
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].spans.len(), 2);
        assert_eq!(closed[0].reason, CloseReason::Idle);
        assert_eq!(assembler.buffered_spans(), 0);
        assert_eq!(assembler.live_traces(&tenant), 0);
    }

    #[test]
    fn a_busy_trace_closes_at_max_age() {
        let tenant = TenantId::trusted("t");
        let mut assembler = Assembler::new(limits());
        let start = Instant::now();
        let mut closed = Vec::new();
        for second in 0..40 {
            let now = start + Duration::from_secs(second);
            assembler.add(&tenant, vec![span(1, second as u8 + 1)], now, 0);
            closed.extend(assembler.close_due(now));
        }
        assert_eq!(closed[0].reason, CloseReason::MaxAge);
        assert_eq!(closed[0].spans.len(), 31, "spans of seconds 0..=30");
    }

    #[test]
    fn tenants_do_not_share_traces_and_caps_count_drops() {
        let a = TenantId::trusted("a");
        let b = TenantId::trusted("b");
        let mut assembler = Assembler::new(AssemblyLimits { max_spans_per_trace: 2, ..limits() });
        let now = Instant::now();
        assembler.add(&a, vec![span(1, 1)], now, 0);
        let dropped = assembler.add(&b, vec![span(1, 2), span(1, 3), span(1, 4)], now, 0);
        assert_eq!(dropped, Dropped { span_limit: 1, byte_limit: 0 });
        let mut closed = assembler.close_due(now + Duration::from_secs(5));
        closed.sort_by(|x, y| x.tenant.cmp(&y.tenant));
        assert_eq!(closed.iter().map(|trace| (trace.tenant.as_str(), trace.spans.len())).collect::<Vec<_>>(), [("a", 1), ("b", 2)]);
        let mut small = Assembler::new(AssemblyLimits { max_trace_bytes: approx_size(&span(1, 1)) * 2, ..limits() });
        assert_eq!(small.add(&a, (1..=3).map(|id| span(1, id)).collect(), now, 0).byte_limit, 1);
        assert_eq!(small.buffered_bytes(), approx_size(&span(1, 1)) * 2);
        assert_eq!(small.close_all().len(), 1);
        assert_eq!(small.buffered_bytes(), 0);
    }

    #[test]
    fn buffered_bytes_follow_adds_and_closes() {
        let tenant = TenantId::trusted("t");
        let mut assembler = Assembler::new(limits());
        let now = Instant::now();
        assembler.add(&tenant, vec![span(1, 1), span(2, 1)], now, 0);
        assert_eq!(assembler.buffered_bytes(), approx_size(&span(1, 1)) * 2);
        assert_eq!(assembler.close_due(now + Duration::from_secs(5)).len(), 2);
        assert_eq!(assembler.buffered_bytes(), 0);
    }

    #[test]
    fn merged_traces_keep_the_caps() {
        let caps = AssemblyLimits { max_spans_per_trace: 50, ..limits() };
        let (kept, dropped) = cap_merged((1..=300).map(|id| span(1, id as u8)).collect(), &caps);
        assert_eq!(kept.len(), 50);
        assert_eq!(kept[0].span_id, [1; 8], "the stored spans come first and are kept");
        assert_eq!(dropped, Dropped { span_limit: 250, byte_limit: 0 });
        let one = approx_size(&span(1, 1));
        let caps = AssemblyLimits { max_trace_bytes: one * 3, ..limits() };
        let (kept, dropped) = cap_merged((1..=5).map(|id| span(1, id)).collect(), &caps);
        assert_eq!((kept.len(), dropped), (3, Dropped { span_limit: 0, byte_limit: 2 }));
    }
}
