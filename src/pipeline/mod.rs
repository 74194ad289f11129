//! Accepted spans → live traces → evaluation → signals: the path between the
//! ingest transports and the signal store, with admission (per-tenant span
//! and byte rates, per-tenant live and backlog limits, one memory budget for
//! all live traces) and the counters `/metrics` shows.
//!
//! [`Pipeline::accept`] is the one call both OTLP transports make after they
//! have authenticated and decoded a request. A sweeper task closes due traces;
//! [`evaluator`] runs the rules on closed traces; [`windows`] selects spans
//! for window rules as they arrive and checks each window. It owns no
//! transport and no storage format.

pub mod active;
pub mod assembler;
pub mod evaluator;
pub mod windows;

use crate::model::tenant::TenantId;
use crate::model::trace::Span;
use assembler::{Assembler, AssemblyLimits, CloseReason, ClosedTrace};
use evaluator::Evaluator;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
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
}

#[derive(Default)]
pub struct Counters {
    pub spans_accepted: AtomicU64,
    pub spans_rejected_invalid_trace_id: AtomicU64,
    pub spans_rejected_invalid_span_id: AtomicU64,
    pub spans_rejected_invalid_parent_span_id: AtomicU64,
    pub spans_dropped_span_limit: AtomicU64,
    pub spans_dropped_byte_limit: AtomicU64,
    pub spans_duplicate: AtomicU64,
    pub attribute_values_truncated: AtomicU64,
    pub attributes_dropped: AtomicU64,
    pub events_dropped: AtomicU64,
    pub links_dropped: AtomicU64,
    pub traces_closed_idle: AtomicU64,
    pub traces_closed_max_age: AtomicU64,
    pub traces_closed_shutdown: AtomicU64,
    pub traces_amended: AtomicU64,
    pub signals_created: AtomicU64,
    pub signals_duplicate: AtomicU64,
    pub signals_cleared: AtomicU64,
    pub fuel_used: AtomicU64,
    pub window_spans_selected: AtomicU64,
    pub window_spans_late: AtomicU64,
    pub window_spans_capped: AtomicU64,
    pub window_checks: AtomicU64,
    evaluations: Mutex<HashMap<&'static str, u64>>,
    /// OTLP requests refused, by reason (`unauthenticated`, `rate_limited`…).
    refusals: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Connections closed at once for a listener's connection cap, by listener.
    connections_refused: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    tenants: Mutex<HashMap<TenantId, TenantCounters>>,
    rules: Mutex<HashMap<(TenantId, String), RuleCounters>>,
}

/// One rule's figures since the server started (the `rule` label of
/// `fluo_rule_*`, and `stats` in `GET /api/v1/rules`).
#[derive(Default, Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RuleCounters {
    pub calls: u64,
    /// Calls that did not complete (fuel, deadline, memory, exception…).
    pub failures: u64,
    pub fuel_used: u64,
    pub signals_created: u64,
    /// The outcome of the latest failed call (`out_of_fuel`, `exception`…).
    pub last_failure: Option<String>,
    pub last_failure_at: Option<String>,
}

/// The same figures per tenant (the `tenant` label of `fluo_tenant_*`).
#[derive(Default, Clone)]
pub struct TenantCounters {
    pub spans_accepted: u64,
    pub spans_rejected: u64,
    pub traces_closed: u64,
    pub rule_calls: u64,
    pub rule_failures: u64,
    pub fuel_used: u64,
    pub signals_created: u64,
}

impl Counters {
    /// Adds to a tenant's own counters.
    pub fn tenant(&self, tenant: &TenantId, update: impl FnOnce(&mut TenantCounters)) {
        let mut tenants = self.tenants.lock().unwrap_or_else(|poison| poison.into_inner());
        match tenants.get_mut(tenant) {
            Some(counters) => update(counters),
            None => update(tenants.entry(tenant.clone()).or_default()),
        }
    }

    /// Adds to a rule's own counters.
    pub fn rule(&self, tenant: &TenantId, rule_id: &str, update: impl FnOnce(&mut RuleCounters)) {
        let mut rules = self.rules.lock().unwrap_or_else(|poison| poison.into_inner());
        match rules.get_mut(&(tenant.clone(), rule_id.to_string())) {
            Some(counters) => update(counters),
            None => update(rules.entry((tenant.clone(), rule_id.to_string())).or_default()),
        }
    }

    /// Counts one call of a rule: calls, fuel, and the failure if it did not complete.
    pub fn rule_call(&self, tenant: &TenantId, rule_id: &str, run: &crate::rules::RuleRun) {
        let failed = !matches!(run.outcome, crate::rules::Outcome::Ok { .. });
        self.rule(tenant, rule_id, |own| {
            own.calls += 1;
            own.fuel_used += run.fuel_used;
            if failed {
                own.failures += 1;
                own.last_failure = Some(run.outcome.kind().to_string());
                own.last_failure_at = Some(crate::model::time::rfc3339(crate::model::time::now_ms()));
            }
        });
    }

    /// A rule's figures since start (zeros if it has not run).
    pub fn rule_counters(&self, tenant: &TenantId, rule_id: &str) -> RuleCounters {
        let rules = self.rules.lock().unwrap_or_else(|poison| poison.into_inner());
        rules.get(&(tenant.clone(), rule_id.to_string())).cloned().unwrap_or_default()
    }

    /// Counts one refused OTLP request.
    pub fn refused(&self, reason: &'static str) {
        *self.refusals.lock().unwrap_or_else(|poison| poison.into_inner()).entry(reason).or_default() += 1;
    }

    /// Counts one connection closed for `listener`'s connection cap.
    pub fn connection_refused(&self, listener: &'static str) {
        *self.connections_refused.lock().unwrap_or_else(|poison| poison.into_inner()).entry(listener).or_default() += 1;
    }

    pub fn evaluation(&self, outcome: &'static str) {
        *self.evaluations.lock().unwrap_or_else(|poison| poison.into_inner()).entry(outcome).or_default() += 1;
    }

    /// Prometheus text exposition of every counter.
    pub fn prometheus(&self, buffered_spans: usize, buffered_bytes: usize) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let get = |value: &AtomicU64| value.load(Ordering::Relaxed);
        counter("fluo_spans_accepted_total", "Spans accepted by OTLP ingest.", &[("", get(&self.spans_accepted))]);
        counter(
            "fluo_spans_rejected_total",
            "Spans not kept, by reason.",
            &[
                ("{reason=\"invalid_trace_id\"}", get(&self.spans_rejected_invalid_trace_id)),
                ("{reason=\"invalid_span_id\"}", get(&self.spans_rejected_invalid_span_id)),
                ("{reason=\"invalid_parent_span_id\"}", get(&self.spans_rejected_invalid_parent_span_id)),
                ("{reason=\"trace_span_limit\"}", get(&self.spans_dropped_span_limit)),
                ("{reason=\"trace_byte_limit\"}", get(&self.spans_dropped_byte_limit)),
                ("{reason=\"duplicate\"}", get(&self.spans_duplicate)),
            ],
        );
        let refusals: Vec<(String, u64)> = {
            let map = self.refusals.lock().unwrap_or_else(|poison| poison.into_inner());
            let mut list: Vec<_> = map.iter().map(|(reason, count)| (format!("{{reason=\"{reason}\"}}"), *count)).collect();
            for known in ["rate_limited", "overloaded", "memory_budget"] {
                if !map.contains_key(known) {
                    list.push((format!("{{reason=\"{known}\"}}"), 0));
                }
            }
            list.sort();
            list
        };
        let refusal_samples: Vec<(&str, u64)> = refusals.iter().map(|(labels, count)| (labels.as_str(), *count)).collect();
        counter("fluo_requests_refused_total", "OTLP requests refused, by reason.", &refusal_samples);
        let connections: Vec<(String, u64)> = {
            let map = self.connections_refused.lock().unwrap_or_else(|poison| poison.into_inner());
            ["api", "grpc", "otlp_http"]
                .iter()
                .map(|listener| (format!("{{listener=\"{listener}\"}}"), map.get(listener).copied().unwrap_or(0)))
                .collect()
        };
        let connection_samples: Vec<(&str, u64)> = connections.iter().map(|(labels, count)| (labels.as_str(), *count)).collect();
        counter(
            "fluo_connections_refused_total",
            "Connections closed at once because the listener had its maximum open.",
            &connection_samples,
        );
        counter(
            "fluo_span_data_limited_total",
            "Parts of accepted spans cut by the span caps, by what was cut.",
            &[
                ("{what=\"value_truncated\"}", get(&self.attribute_values_truncated)),
                ("{what=\"attribute_dropped\"}", get(&self.attributes_dropped)),
                ("{what=\"event_dropped\"}", get(&self.events_dropped)),
                ("{what=\"link_dropped\"}", get(&self.links_dropped)),
            ],
        );
        counter(
            "fluo_traces_closed_total",
            "Traces closed by the assembler, by reason.",
            &[
                ("{reason=\"idle\"}", get(&self.traces_closed_idle)),
                ("{reason=\"max_age\"}", get(&self.traces_closed_max_age)),
                ("{reason=\"shutdown\"}", get(&self.traces_closed_shutdown)),
            ],
        );
        counter(
            "fluo_traces_amended_total",
            "Closed traces merged with spans that arrived after evaluation.",
            &[("", get(&self.traces_amended))],
        );
        let evaluations: Vec<(String, u64)> = {
            let map = self.evaluations.lock().unwrap_or_else(|poison| poison.into_inner());
            let mut list: Vec<_> = map.iter().map(|(outcome, count)| (format!("{{outcome=\"{outcome}\"}}"), *count)).collect();
            list.sort();
            list
        };
        let evaluation_samples: Vec<(&str, u64)> = evaluations.iter().map(|(labels, count)| (labels.as_str(), *count)).collect();
        counter("fluo_rule_evaluations_total", "Rule calls, by outcome.", &evaluation_samples);
        // Not `fluo_rule_fuel_used_total`: that family is per rule, and one name
        // holding both the total and its parts would double-count in sums.
        counter("fluo_fuel_used_total", "Fuel consumed by all rule calls.", &[("", get(&self.fuel_used))]);
        counter(
            "fluo_signals_total",
            "Violations seen, by what became of them.",
            &[
                ("{result=\"created\"}", get(&self.signals_created)),
                ("{result=\"duplicate\"}", get(&self.signals_duplicate)),
                ("{result=\"cleared\"}", get(&self.signals_cleared)),
            ],
        );
        counter(
            "fluo_window_spans_total",
            "Spans offered to window rules, by result.",
            &[
                ("{result=\"selected\"}", get(&self.window_spans_selected)),
                ("{result=\"late\"}", get(&self.window_spans_late)),
                ("{result=\"capped\"}", get(&self.window_spans_capped)),
            ],
        );
        counter("fluo_window_checks_total", "Window checks run.", &[("", get(&self.window_checks))]);
        let _ = writeln!(
            out,
            "# HELP fluo_buffered_spans Spans in live traces.\n# TYPE fluo_buffered_spans gauge\nfluo_buffered_spans {buffered_spans}"
        );
        let _ = writeln!(
            out,
            "# HELP fluo_buffered_bytes Estimated bytes of live traces.\n# TYPE fluo_buffered_bytes gauge\nfluo_buffered_bytes {buffered_bytes}"
        );
        let mut tenants: Vec<(TenantId, TenantCounters)> = self
            .tenants
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .map(|(tenant, counters)| (tenant.clone(), counters.clone()))
            .collect();
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        let per_tenant: [(&str, &str, fn(&TenantCounters) -> u64); 7] = [
            ("fluo_tenant_spans_accepted_total", "Spans accepted, per tenant.", |c| c.spans_accepted),
            ("fluo_tenant_spans_rejected_total", "Spans not kept (invalid ids, trace caps), per tenant.", |c| c.spans_rejected),
            ("fluo_tenant_traces_closed_total", "Traces closed, per tenant.", |c| c.traces_closed),
            ("fluo_tenant_rule_calls_total", "Rule calls, per tenant.", |c| c.rule_calls),
            (
                "fluo_tenant_rule_failures_total",
                "Rule calls that did not complete (fuel, deadline, memory, exception…), per tenant.",
                |c| c.rule_failures,
            ),
            ("fluo_tenant_rule_fuel_used_total", "Fuel used by rule calls, per tenant.", |c| c.fuel_used),
            ("fluo_tenant_signals_created_total", "Signals created, per tenant.", |c| c.signals_created),
        ];
        for (name, help, get) in per_tenant {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (tenant, counters) in &tenants {
                let _ = writeln!(out, "{name}{{tenant=\"{tenant}\"}} {}", get(counters));
            }
        }
        let mut rules: Vec<((TenantId, String), RuleCounters)> = self
            .rules
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .map(|(key, counters)| (key.clone(), counters.clone()))
            .collect();
        rules.sort_by(|a, b| a.0.cmp(&b.0));
        let per_rule: [(&str, &str, fn(&RuleCounters) -> u64); 4] = [
            ("fluo_rule_calls_total", "Calls of one rule.", |c| c.calls),
            ("fluo_rule_failures_total", "Calls of one rule that did not complete.", |c| c.failures),
            ("fluo_rule_fuel_used_total", "Fuel used by one rule.", |c| c.fuel_used),
            ("fluo_rule_signals_created_total", "Signals created by one rule.", |c| c.signals_created),
        ];
        for (name, help, get) in per_rule {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((tenant, rule), counters) in &rules {
                let _ = writeln!(out, "{name}{{tenant=\"{tenant}\",rule=\"{rule}\"}} {}", get(counters));
            }
        }
        out
    }
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
    pub evaluator: Evaluator,
    pub counters: std::sync::Arc<Counters>,
}

impl Pipeline {
    pub fn new(assembly: AssemblyLimits, admission: AdmissionLimits, evaluator: Evaluator, counters: std::sync::Arc<Counters>) -> Pipeline {
        Pipeline { assembler: Mutex::new(Assembler::new(assembly)), buckets: Mutex::new(HashMap::new()), admission, evaluator, counters }
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

    /// Adds admitted spans to their live traces.
    pub fn accept(&self, tenant: &TenantId, spans: Vec<Span>, now: Instant) -> assembler::Dropped {
        let count = spans.len() as u64;
        // Window rules see spans as they arrive, not after assembly.
        self.evaluator.windows.offer(tenant, &spans);
        let dropped = self.assembler().add(tenant, spans, now);
        let counters = &self.counters;
        counters.spans_accepted.fetch_add(count - dropped.span_limit - dropped.byte_limit, Ordering::Relaxed);
        counters.spans_dropped_span_limit.fetch_add(dropped.span_limit, Ordering::Relaxed);
        counters.spans_dropped_byte_limit.fetch_add(dropped.byte_limit, Ordering::Relaxed);
        counters.tenant(tenant, |own| {
            own.spans_accepted += count - dropped.span_limit - dropped.byte_limit;
            own.spans_rejected += dropped.span_limit + dropped.byte_limit;
        });
        dropped
    }

    /// Closes due traces and queues them for evaluation; returns when the next
    /// deadline falls.
    pub fn sweep(&self, now: Instant) -> Option<Instant> {
        let (closed, next) = {
            let mut assembler = self.assembler();
            let closed = assembler.close_due(now);
            (closed, assembler.next_deadline())
        };
        self.hand_over(closed);
        next
    }

    /// Closes every live trace and waits until all are evaluated (shutdown).
    pub fn finish(&self) {
        let closed = self.assembler().close_all();
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
