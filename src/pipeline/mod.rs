//! Accepted spans → live traces → evaluation → signals: the path between the
//! ingest transports and the signal store, with admission (per-tenant span
//! and byte rates, per-tenant live and backlog limits, one memory budget for
//! all live traces). Its counters and their exposition are [`metrics`].
//!
//! [`Pipeline::accept`] is the one call both OTLP transports make after they
//! have authenticated and decoded a request. A sweeper task closes due traces;
//! [`evaluator`] runs the rules on closed traces; [`windows`] selects spans
//! for window rules as they arrive and checks each window. It owns no
//! transport and no storage format.

pub mod active;
pub mod assembler;
pub mod evaluator;
pub mod metrics;
pub mod segments;
pub mod spanlog;
pub mod trial;
pub mod windows;

pub use metrics::{Counters, RuleCounters, TenantCounters};

use crate::model::tenant::TenantId;
use crate::model::trace::Span;
use assembler::{Assembler, AssemblyLimits, CloseReason, ClosedTrace};
use evaluator::Evaluator;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Per-tenant admission limits.
#[derive(Clone, Debug)]
pub struct AdmissionLimits {
    /// Sustained spans per second per tenant.
    pub spans_per_second: u64,
    /// Bucket size: spans a tenant may send at once after a quiet period.
    pub burst_spans: u64,
    /// Closed traces waiting for evaluation beyond which a tenant's requests are refused.
    pub max_backlog_traces: usize,
    /// Sustained request bytes (protobuf-encoded size) per second per tenant.
    pub bytes_per_second: u64,
    /// Bucket size in bytes; at least the largest request a transport accepts.
    pub burst_bytes: u64,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            spans_per_second: 200_000,
            burst_spans: 400_000,
            max_backlog_traces: 20_000,
            bytes_per_second: 32 << 20,
            burst_bytes: 64 << 20,
        }
    }
}

/// Why a request was refused as a whole; the client should retry later.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// Over the tenant's rate: retry after this long.
    RateLimited { retry_after: Duration },
    /// Too many live or waiting traces for this tenant.
    Overloaded { retry_after: Duration },
    /// The live traces of all tenants fill the memory budget.
    MemoryBudget { retry_after: Duration },
    /// The span log cannot record the spans (disk full, I/O error).
    LogUnavailable { retry_after: Duration },
}

struct Bucket {
    spans: f64,
    bytes: f64,
    at: Instant,
}

pub struct Pipeline {
    assembler: Mutex<Assembler>,
    buckets: Mutex<HashMap<TenantId, Bucket>>,
    admission: AdmissionLimits,
    /// Trace rules, on closed traces.
    pub evaluator: Evaluator,
    /// Window rules, on spans as they arrive, checked on their own threads.
    pub windows: std::sync::Arc<windows::Windows>,
    window_threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    window_stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Where accepted spans are recorded before they are acknowledged.
    log: std::sync::Arc<dyn spanlog::SpanLog>,
    /// Positions of requests between their append and their assembly.
    accepting: spanlog::Held,
    /// (ms since the epoch, next log position) at each checkpoint: what was
    /// appended before a time (for window buffers, see [`Pipeline::checkpoint`]).
    marks: Mutex<std::collections::VecDeque<(u64, u64)>>,
    pub counters: std::sync::Arc<Counters>,
}

/// Extra time a span may stay in a window buffer beyond the windows' horizon
/// (clock skew between a span's start and its arrival).
const WINDOW_SLACK_MS: u64 = 60_000;

impl Pipeline {
    /// Starts the window threads; `evaluator` runs already.
    pub fn new(
        assembly: AssemblyLimits,
        admission: AdmissionLimits,
        evaluator: Evaluator,
        windows: std::sync::Arc<windows::Windows>,
        log: std::sync::Arc<dyn spanlog::SpanLog>,
        counters: std::sync::Arc<Counters>,
    ) -> Pipeline {
        let window_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let window_threads = Mutex::new(windows::start(windows.clone(), window_stop.clone()));
        Pipeline {
            assembler: Mutex::new(Assembler::new(assembly)),
            buckets: Mutex::new(HashMap::new()),
            admission,
            evaluator,
            windows,
            window_threads,
            window_stop,
            log,
            accepting: spanlog::Held::default(),
            marks: Mutex::default(),
            counters,
        }
    }

    /// At start: replays what the span log kept into the windows and the
    /// assembler, so traces live at a crash close on their normal schedule.
    /// Returns how many spans came back.
    pub fn recover(&self, now: Instant, limits: &crate::model::otlp::SpanLimits) -> Result<usize, spanlog::LogError> {
        let started = Instant::now();
        let checkpoint = self.log.last_checkpoint();
        let (mut spans_back, mut requests, mut windows_only) = (0, 0, 0);
        self.log.replay(spanlog::Position::default(), &mut |position, tenant, otlp| {
            // Converted as ingest converted it (the same span caps).
            let Ok(request) = prost::Message::decode(otlp) else {
                tracing::error!(position = position.0, "undecodable request in the span log skipped");
                return;
            };
            let spans = crate::model::otlp::convert_with(request, limits).spans;
            spans_back += spans.len();
            requests += 1;
            self.windows.offer(tenant, &spans);
            if position < checkpoint.evaluated {
                // Its trace was evaluated: only a window buffer may still need it.
                windows_only += 1;
            } else {
                self.assembler().add(tenant, spans, now, position.0);
            }
        })?;
        tracing::info!(
            requests,
            windows_only,
            spans = spans_back,
            took_ms = started.elapsed().as_millis() as u64,
            loses = self.log.loses_on_crash(),
            "span log replayed: live traces rebuilt"
        );
        Ok(spans_back)
    }

    /// Moves the span log's checkpoint: `evaluated` to the oldest position
    /// still needed by a request being assembled, a live trace or a trace
    /// handed to the evaluator and not yet done; `keep_from` further back
    /// while a window buffer may hold spans appended since (a span appended
    /// before `now_ms` − the windows' horizon is in no window any more).
    pub fn checkpoint(&self, now_ms: u64) -> Result<spanlog::Checkpoint, spanlog::LogError> {
        // Read first: every position handed out later is at least this.
        let next = self.log.next_position().0;
        let mut keep_from = next;
        {
            let mut marks = self.marks.lock().unwrap_or_else(|poison| poison.into_inner());
            marks.push_back((now_ms, next));
            if let Some(horizon) = self.windows.horizon_ms() {
                let due = now_ms.saturating_sub(horizon.saturating_add(WINDOW_SLACK_MS));
                while marks.len() > 1 && marks[1].0 <= due {
                    marks.pop_front();
                }
                keep_from = if marks[0].0 <= due { marks[0].1 } else { 0 };
            } else {
                let older = marks.len() - 1;
                marks.drain(..older);
            }
        }
        let mut evaluated = next;
        for held in [self.accepting.oldest(), {
            // Under the assembler's lock a closed trace is either still in it or held by the evaluator.
            let assembler = self.assembler();
            assembler.oldest_position().into_iter().chain(self.evaluator.oldest_position()).min()
        }] {
            evaluated = evaluated.min(held.unwrap_or(u64::MAX));
        }
        let checkpoint =
            spanlog::Checkpoint { evaluated: spanlog::Position(evaluated), keep_from: spanlog::Position(keep_from.min(evaluated)) };
        // The stored copies of the traces before `evaluated` (which a late
        // span is merged with) are on disk before the log stops replaying them.
        self.evaluator.sync_recent().map_err(|error| spanlog::LogError(format!("recent traces not synced: {error}")))?;
        self.log.checkpoint(checkpoint)?;
        Ok(checkpoint)
    }

    /// Why the span log refuses appends now, if it does (`/readyz` says so).
    pub fn log_failing(&self) -> Option<String> {
        self.log.failing()
    }

    /// Replaces a tenant's active rules: trace rules go to the evaluator,
    /// window rules to the windows. Only [`active`] calls it in the server.
    pub fn set_rules(&self, tenant: &TenantId, rules: Vec<(crate::signals::RuleRef, std::sync::Arc<crate::rules::LoadedRule>)>) {
        let (windowed, traced): (Vec<_>, Vec<_>) = rules.into_iter().partition(|(_, loaded)| loaded.meta.window.is_some());
        self.windows.set_rules(tenant, windowed, crate::model::time::now_ms());
        self.evaluator.set_rules(tenant, traced);
    }

    /// Drains and stops the evaluator, then the window threads.
    pub fn stop(&self) {
        self.evaluator.stop();
        self.window_stop.store(true, Ordering::Relaxed);
        for handle in self.window_threads.lock().unwrap_or_else(|poison| poison.into_inner()).drain(..) {
            let _ = handle.join();
        }
    }

    fn assembler(&self) -> std::sync::MutexGuard<'_, Assembler> {
        self.assembler.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Admits a request of `span_count` spans and `bytes` bytes (its
    /// protobuf-encoded size) for `tenant`, or says when to retry. Nothing is
    /// taken from the tenant's buckets unless the whole request is admitted.
    pub fn admit(&self, tenant: &TenantId, span_count: usize, bytes: usize, now: Instant) -> Result<(), Refusal> {
        let (over_live, over_memory, idle) = {
            let assembler = self.assembler();
            let limits = assembler.limits();
            // In memory a span costs its struct besides its encoded bytes.
            let estimate = bytes.saturating_add(span_count.saturating_mul(std::mem::size_of::<Span>()));
            (
                assembler.live_traces(tenant) >= limits.max_live_traces,
                assembler.buffered_bytes().saturating_add(estimate) > limits.max_live_bytes,
                limits.idle,
            )
        };
        if over_memory {
            // Memory comes back as traces close: at the latest after `idle`.
            return Err(Refusal::MemoryBudget { retry_after: idle.clamp(Duration::from_secs(1), Duration::from_secs(30)) });
        }
        if over_live || self.evaluator.backlog(tenant) >= self.admission.max_backlog_traces {
            return Err(Refusal::Overloaded { retry_after: Duration::from_secs(1) });
        }
        let span_rate = self.admission.spans_per_second.max(1) as f64;
        let span_burst = self.admission.burst_spans.max(1) as f64;
        let byte_rate = self.admission.bytes_per_second.max(1) as f64;
        let byte_burst = self.admission.burst_bytes.max(1) as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|poison| poison.into_inner());
        let bucket = buckets.entry(tenant.clone()).or_insert(Bucket { spans: span_burst, bytes: byte_burst, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.spans = (bucket.spans + elapsed * span_rate).min(span_burst);
        bucket.bytes = (bucket.bytes + elapsed * byte_rate).min(byte_burst);
        bucket.at = now;
        let (wanted_spans, wanted_bytes) = (span_count as f64, bytes as f64);
        if wanted_spans <= bucket.spans && wanted_bytes <= bucket.bytes {
            bucket.spans -= wanted_spans;
            bucket.bytes -= wanted_bytes;
            return Ok(());
        }
        // A request larger than a bucket can never pass whole: say so with the
        // time a full bucket takes, and let the client split or back off.
        let missing_spans = (wanted_spans.min(span_burst) - bucket.spans).max(0.0);
        let missing_bytes = (wanted_bytes.min(byte_burst) - bucket.bytes).max(0.0);
        let wait = (missing_spans / span_rate).max(missing_bytes / byte_rate).max(0.001);
        Err(Refusal::RateLimited { retry_after: Duration::from_secs_f64(wait) })
    }

    /// Records an admitted request (`otlp`: as OTLP protobuf, see
    /// [`spanlog::SpanLog::append`]) in the span log, then adds its converted
    /// `spans` to their live traces. If the log refuses them, nothing is added and the request must
    /// not be acknowledged.
    /// Whether [`Pipeline::accept`] needs the request's encoding (the span log keeps it).
    pub fn logs_requests(&self) -> bool {
        self.log.keeps()
    }

    pub fn accept(&self, tenant: &TenantId, spans: Vec<Span>, otlp: &[u8], now: Instant) -> Result<assembler::Dropped, Refusal> {
        let count = spans.len() as u64;
        // Held from before the append until the spans are in their live traces.
        let floor = self.log.next_position().0;
        self.accepting.hold(floor);
        let position = match self.log.append(tenant, otlp) {
            Ok(position) => position,
            Err(error) => {
                self.accepting.release(floor);
                tracing::error!(tenant = %tenant, %error, "spans refused: the span log cannot record them");
                return Err(Refusal::LogUnavailable { retry_after: Duration::from_secs(1) });
            }
        };
        // Window rules see spans as they arrive, not after assembly.
        self.windows.offer(tenant, &spans);
        let dropped = self.assembler().add(tenant, spans, now, position.0);
        self.accepting.release(floor);
        let counters = &self.counters;
        counters.spans_accepted.fetch_add(count - dropped.span_limit - dropped.byte_limit, Ordering::Relaxed);
        counters.spans_dropped_span_limit.fetch_add(dropped.span_limit, Ordering::Relaxed);
        counters.spans_dropped_byte_limit.fetch_add(dropped.byte_limit, Ordering::Relaxed);
        counters.tenant(tenant, |own| {
            own.spans_accepted += count - dropped.span_limit - dropped.byte_limit;
            own.spans_rejected += dropped.span_limit + dropped.byte_limit;
        });
        Ok(dropped)
    }

    /// Closes due traces and queues them for evaluation; returns when the next
    /// deadline falls.
    pub fn sweep(&self, now: Instant) -> Option<Instant> {
        let (closed, next) = {
            let mut assembler = self.assembler();
            let closed = assembler.close_due(now);
            self.evaluator.hold(&closed);
            (closed, assembler.next_deadline())
        };
        self.hand_over(closed);
        next
    }

    /// Closes every live trace and waits until all are evaluated (shutdown).
    pub fn finish(&self) {
        let closed = {
            let mut assembler = self.assembler();
            let closed = assembler.close_all();
            self.evaluator.hold(&closed);
            closed
        };
        self.hand_over(closed);
        self.evaluator.drain();
    }

    pub fn buffered_spans(&self) -> usize {
        self.assembler().buffered_spans()
    }

    pub fn buffered_bytes(&self) -> usize {
        self.assembler().buffered_bytes()
    }

    /// Counts what the span caps cut from accepted spans.
    pub fn count_limited(&self, limited: &crate::model::otlp::Limited) {
        let counters = &self.counters;
        counters.attribute_values_truncated.fetch_add(limited.truncated_values, Ordering::Relaxed);
        counters.attributes_dropped.fetch_add(limited.dropped_attributes, Ordering::Relaxed);
        counters.events_dropped.fetch_add(limited.dropped_events, Ordering::Relaxed);
        counters.links_dropped.fetch_add(limited.dropped_links, Ordering::Relaxed);
    }

    fn hand_over(&self, closed: Vec<ClosedTrace>) {
        for trace in &closed {
            let counter = match trace.reason {
                CloseReason::Idle => &self.counters.traces_closed_idle,
                CloseReason::MaxAge => &self.counters.traces_closed_max_age,
                CloseReason::Shutdown => &self.counters.traces_closed_shutdown,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.counters.tenant(&trace.tenant, |own| own.traces_closed += 1);
        }
        self.evaluator.submit(closed);
    }

    pub fn count_rejections(&self, tenant: &TenantId, rejected: &[(crate::model::otlp::Rejection, u64)]) {
        use crate::model::otlp::Rejection;
        self.counters.tenant(tenant, |own| own.spans_rejected += rejected.iter().map(|(_, count)| count).sum::<u64>());
        for (reason, count) in rejected {
            let counter = match reason {
                Rejection::InvalidTraceId => &self.counters.spans_rejected_invalid_trace_id,
                Rejection::InvalidSpanId => &self.counters.spans_rejected_invalid_span_id,
                Rejection::InvalidParentSpanId => &self.counters.spans_rejected_invalid_parent_span_id,
            };
            counter.fetch_add(*count, Ordering::Relaxed);
        }
    }
}

/// Sleeps until the next trace deadline (at most `tick`), closes due traces,
/// until `stop` fires.
pub async fn sweeper(pipeline: std::sync::Arc<Pipeline>, tick: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let now = Instant::now();
        let next = pipeline.sweep(now).unwrap_or(now + tick).min(now + tick).max(now + Duration::from_millis(1));
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::spanlog::{LogError, Position, SpanLog};
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    /// A span log that keeps batches in memory and can be made to fail.
    #[derive(Default)]
    struct Kept {
        batches: Mutex<Vec<(TenantId, Vec<u8>)>>,
        failing: AtomicBool,
    }

    impl SpanLog for Kept {
        fn append(&self, tenant: &TenantId, otlp: &[u8]) -> Result<Position, LogError> {
            if self.failing.load(Ordering::Relaxed) {
                return Err(LogError("disk full".into()));
            }
            let mut batches = self.batches.lock().unwrap();
            batches.push((tenant.clone(), otlp.to_vec()));
            Ok(Position(batches.len() as u64 - 1))
        }

        fn replay(&self, from: Position, each: &mut dyn FnMut(Position, &TenantId, &[u8])) -> Result<(), LogError> {
            for (index, (tenant, otlp)) in self.batches.lock().unwrap().iter().enumerate().skip(from.0 as usize) {
                each(Position(index as u64), tenant, otlp);
            }
            Ok(())
        }

        fn checkpoint(&self, _checkpoint: super::spanlog::Checkpoint) -> Result<(), LogError> {
            Ok(())
        }

        fn last_checkpoint(&self) -> super::spanlog::Checkpoint {
            super::spanlog::Checkpoint::default()
        }

        fn next_position(&self) -> Position {
            Position(self.batches.lock().unwrap().len() as u64)
        }

        fn loses_on_crash(&self) -> &'static str {
            "nothing (test)"
        }
    }

    fn pipeline(dir: &std::path::Path, log: Arc<dyn SpanLog>) -> Pipeline {
        let engine = crate::rules::RuleEngine::new(crate::rules::Limits::default()).unwrap();
        pipeline_on(dir, log, engine)
    }

    fn pipeline_on(dir: &std::path::Path, log: Arc<dyn SpanLog>, engine: Arc<crate::rules::RuleEngine>) -> Pipeline {
        let store = Arc::new(crate::store::Store::open(dir).unwrap());
        let signals = Arc::new(crate::signals::Signals::open(store.clone()).unwrap());
        let recent = Arc::new(crate::store::traces::RecentTraces::open(&dir.join("traces"), Default::default()).unwrap());
        let counters = Arc::new(Counters::default());
        let events = crate::events::EventHub::new();
        let evaluator = Evaluator::start(
            1,
            1,
            engine.clone(),
            signals.clone(),
            recent,
            counters.clone(),
            None,
            events.clone(),
            AssemblyLimits::default(),
        );
        let windows = Arc::new(windows::Windows::new(engine, signals, counters.clone(), events, windows::WindowLimits::default()));
        Pipeline::new(AssemblyLimits::default(), AdmissionLimits::default(), evaluator, windows, log, counters)
    }

    fn spans(count: u8) -> (Vec<Span>, Vec<u8>) {
        trace_spans(0x0af7651916cd43dd8448eb211c80319c, count)
    }

    /// A request of `count` spans of trace `trace`: (its spans, as OTLP protobuf).
    fn trace_spans(trace: u128, count: u8) -> (Vec<Span>, Vec<u8>) {
        let json = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": (1..=count).map(|id| serde_json::json!({
            "traceId": format!("{trace:032x}"), "spanId": format!("00000000000000{id:02x}"), "name": "a",
            "startTimeUnixNano": "1", "endTimeUnixNano": "2"})).collect::<Vec<_>>()}]}]});
        let request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest = serde_json::from_value(json).unwrap();
        let otlp = prost::Message::encode_to_vec(&request);
        (crate::model::otlp::convert(request).spans, otlp)
    }

    /// Waits until every handed-over trace is evaluated and its position released.
    fn settle(pipeline: &Pipeline) {
        pipeline.evaluator.drain();
        for _ in 0..100 {
            if pipeline.evaluator.oldest_position().is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn accept(
        pipeline: &Pipeline,
        tenant: &TenantId,
        (spans, otlp): (Vec<Span>, Vec<u8>),
        now: Instant,
    ) -> Result<assembler::Dropped, Refusal> {
        pipeline.accept(tenant, spans, &otlp, now)
    }

    #[test]
    fn spans_are_logged_before_assembly_refused_when_the_log_fails_and_replayed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Kept::default());
        let tenant = TenantId::trusted("t");
        let first = pipeline(dir.path(), log.clone());
        accept(&first, &tenant, spans(3), Instant::now()).unwrap();
        assert_eq!((log.batches.lock().unwrap().len(), first.buffered_spans()), (1, 3));

        log.failing.store(true, Ordering::Relaxed);
        let refused = accept(&first, &tenant, spans(5), Instant::now());
        assert!(matches!(refused, Err(Refusal::LogUnavailable { .. })), "{refused:?}");
        assert_eq!(first.buffered_spans(), 3, "what the log refused is not assembled either");
        assert_eq!(first.counters.spans_accepted.load(Ordering::Relaxed), 3);
        first.stop();
        drop(first);

        // A new process on the same log rebuilds the live trace.
        log.failing.store(false, Ordering::Relaxed);
        let other_dir = tempfile::tempdir().unwrap();
        let second = pipeline(other_dir.path(), log.clone());
        assert_eq!(second.recover(Instant::now(), &crate::model::otlp::SpanLimits::default()).unwrap(), 3);
        assert_eq!(second.buffered_spans(), 3);
        second.stop();
    }

    #[test]
    fn the_checkpoint_passes_evaluated_traces_only_and_a_restart_rebuilds_the_live_ones() {
        use super::segments::{Durability, Segments};
        let (dir, log_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let tenant = TenantId::trusted("t");
        let start = Instant::now();
        {
            let log = Arc::new(Segments::open(log_dir.path(), Durability::Fsync, 1 << 20).unwrap());
            let first = pipeline(dir.path(), log.clone());
            accept(&first, &tenant, trace_spans(1, 2), start).unwrap();
            accept(&first, &tenant, trace_spans(2, 3), start + Duration::from_secs(4)).unwrap();
            let checkpoint = first.checkpoint(crate::model::time::now_ms()).unwrap();
            assert_eq!(checkpoint.evaluated, Position(0), "both traces are live");
            // The first trace closes (idle), is evaluated and flushed; the second stays live.
            first.sweep(start + Duration::from_millis(5_500));
            settle(&first);
            let checkpoint = first.checkpoint(crate::model::time::now_ms()).unwrap();
            assert_eq!((checkpoint.evaluated, checkpoint.keep_from), (Position(1), Position(1)));
            assert_eq!(log.last_checkpoint(), checkpoint);
            // A crash: the live trace is never closed.
            first.stop();
        }
        let log = Arc::new(Segments::open(log_dir.path(), Durability::Fsync, 1 << 20).unwrap());
        let other_dir = tempfile::tempdir().unwrap();
        let second = pipeline(other_dir.path(), log);
        assert_eq!(
            second.recover(Instant::now(), &crate::model::otlp::SpanLimits::default()).unwrap(),
            3,
            "the live trace's spans come back"
        );
        assert_eq!(second.buffered_spans(), 3, "the evaluated trace is not assembled again");
        second.stop();
    }

    #[test]
    fn window_buffers_come_back_from_the_log_and_evaluated_traces_do_not() {
        use super::segments::{Durability, Segments};
        const WINDOW: &str = r#"export default window({
          name: "auth-concurrency", severity: "high", select: { service: "auth" }, length: "10s", grace: "2s",
          check(spans) { if (spans.length > 1000) return { message: "many", spans: [] }; },
        });"#;
        let (dir, log_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let tenant = TenantId::trusted("t");
        let engine = crate::rules::RuleEngine::new(crate::rules::Limits::default()).unwrap();
        let (_, loaded) = crate::rules::compile::compile(&engine, WINDOW).unwrap();
        let rule = crate::signals::RuleRef { id: "r_w".into(), name: "auth-concurrency".into(), version: 1, ..Default::default() };
        // Three auth spans starting now, in three traces.
        let now_ns = crate::model::time::now_ms() * 1_000_000;
        let json = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "auth"}}]},
            "scopeSpans": [{"spans": (1..=3u64).map(|n| serde_json::json!({"traceId": format!("{n:032x}"), "spanId": format!("{n:016x}"),
                "name": "GET /login", "kind": 2, "startTimeUnixNano": now_ns.to_string(), "endTimeUnixNano": (now_ns + 1_000_000).to_string()}))
                .collect::<Vec<_>>()}]}]});
        let request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest = serde_json::from_value(json).unwrap();
        let otlp = prost::Message::encode_to_vec(&request);
        let start = Instant::now();
        {
            let log = Arc::new(Segments::open(log_dir.path(), Durability::Fsync, 1 << 20).unwrap());
            let first = pipeline_on(dir.path(), log.clone(), engine.clone());
            first.set_rules(&tenant, vec![(rule.clone(), loaded.clone())]);
            first.accept(&tenant, crate::model::otlp::convert(request).spans, &otlp, start).unwrap();
            assert_eq!(first.windows.buffered_spans(), 3);
            // The traces close and are evaluated; the window still holds their spans.
            first.sweep(start + Duration::from_secs(6));
            settle(&first);
            let checkpoint = first.checkpoint(crate::model::time::now_ms()).unwrap();
            assert_eq!((checkpoint.evaluated, checkpoint.keep_from), (Position(1), Position(0)), "the window keeps the request");
            first.stop();
        }
        let log = Arc::new(Segments::open(log_dir.path(), Durability::Fsync, 1 << 20).unwrap());
        let other_dir = tempfile::tempdir().unwrap();
        let second = pipeline_on(other_dir.path(), log, engine);
        second.set_rules(&tenant, vec![(rule, loaded)]);
        assert_eq!(second.recover(Instant::now(), &crate::model::otlp::SpanLimits::default()).unwrap(), 3);
        assert_eq!(second.windows.buffered_spans(), 3, "the window's spans are back");
        assert_eq!(second.buffered_spans(), 0, "their evaluated traces are not assembled again");
        second.stop();
    }
}
