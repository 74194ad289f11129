//! The pipeline's counters (global, per tenant, per rule) and their
//! exposition on `/metrics` in the OpenMetrics text format, written by the
//! `prometheus-client` encoder. Every module of the path counts here; the API
//! reads a rule's figures back for `GET /rules`.

use crate::model::tenant::TenantId;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The content type of [`exposition`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Default, Debug)]
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
    /// Further occurrences of an existing group.
    pub signals_occurred: AtomicU64,
    /// Resolved groups reopened by a new occurrence.
    pub signals_regressed: AtomicU64,
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
    /// Traces the rule's prefilter ruled out: not run, counted as run with no
    /// violation (not as calls).
    pub skipped: u64,
    /// The outcome of the latest failed call (`out_of_fuel`, `exception`…).
    pub last_failure: Option<String>,
    pub last_failure_at: Option<String>,
}

/// The same figures per tenant (the `tenant` label of `fluo_tenant_*`).
#[derive(Default, Clone, Debug)]
pub struct TenantCounters {
    pub spans_accepted: u64,
    pub spans_rejected: u64,
    pub traces_closed: u64,
    /// Traces evaluated by the tenant's rules (amendments included).
    pub traces_evaluated: u64,
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
}

/// Labels of one sample.
type Labels = Vec<(&'static str, String)>;

fn label(name: &'static str, value: impl Into<String>) -> Labels {
    vec![(name, value.into())]
}

/// One family: a counter (its samples carry `_total`) or a gauge.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut descriptor = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let metric = descriptor.encode_family(&labels)?;
        match kind {
            MetricType::Gauge => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric)?,
            _ => ConstCounter::new(value).encode(metric)?,
        }
    }
    Ok(())
}

/// A counter family kept elsewhere (the notification channels' deliveries),
/// shown with the pipeline's.
#[derive(Debug, Clone)]
pub struct CounterFamily {
    pub name: &'static str,
    pub help: &'static str,
    pub samples: Vec<(Vec<(&'static str, String)>, u64)>,
}

/// What `/metrics` shows: the counters and the live-trace gauges of one moment.
#[derive(Debug)]
struct Exposition {
    extra: Vec<CounterFamily>,
    counters: Arc<Counters>,
    buffered_spans: usize,
    buffered_bytes: usize,
    /// Closed traces waiting for evaluation, per tenant.
    backlog: Vec<(TenantId, usize)>,
}

impl prometheus_client::collector::Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = &self.counters;
        let get = |value: &AtomicU64| value.load(Ordering::Relaxed);
        let one = |value: &AtomicU64| [(Labels::new(), value.load(Ordering::Relaxed))];
        let locked =
            |map: &Mutex<std::collections::BTreeMap<&'static str, u64>>| map.lock().unwrap_or_else(|poison| poison.into_inner()).clone();
        let counter = MetricType::Counter;
        let e = &mut encoder;
        family(e, "fluo_spans_accepted", "Spans accepted by OTLP ingest.", counter, one(&counters.spans_accepted))?;
        family(
            e,
            "fluo_spans_rejected",
            "Spans not kept, by reason.",
            counter,
            [
                (label("reason", "invalid_trace_id"), get(&counters.spans_rejected_invalid_trace_id)),
                (label("reason", "invalid_span_id"), get(&counters.spans_rejected_invalid_span_id)),
                (label("reason", "invalid_parent_span_id"), get(&counters.spans_rejected_invalid_parent_span_id)),
                (label("reason", "trace_span_limit"), get(&counters.spans_dropped_span_limit)),
                (label("reason", "trace_byte_limit"), get(&counters.spans_dropped_byte_limit)),
                (label("reason", "duplicate"), get(&counters.spans_duplicate)),
            ],
        )?;
        let mut refusals = locked(&counters.refusals);
        for known in ["rate_limited", "overloaded", "memory_budget", "log_unavailable"] {
            refusals.entry(known).or_insert(0);
        }
        family(
            e,
            "fluo_requests_refused",
            "OTLP requests refused, by reason.",
            counter,
            refusals.into_iter().map(|(reason, count)| (label("reason", reason), count)),
        )?;
        let connections = locked(&counters.connections_refused);
        family(
            e,
            "fluo_connections_refused",
            "Connections closed at once because the listener had its maximum open.",
            counter,
            ["api", "grpc", "otlp_http"].map(|listener| (label("listener", listener), connections.get(listener).copied().unwrap_or(0))),
        )?;
        family(
            e,
            "fluo_span_data_limited",
            "Parts of accepted spans cut by the span caps, by what was cut.",
            counter,
            [
                (label("what", "value_truncated"), get(&counters.attribute_values_truncated)),
                (label("what", "attribute_dropped"), get(&counters.attributes_dropped)),
                (label("what", "event_dropped"), get(&counters.events_dropped)),
                (label("what", "link_dropped"), get(&counters.links_dropped)),
            ],
        )?;
        family(
            e,
            "fluo_traces_closed",
            "Traces closed by the assembler, by reason.",
            counter,
            [
                (label("reason", "idle"), get(&counters.traces_closed_idle)),
                (label("reason", "max_age"), get(&counters.traces_closed_max_age)),
                (label("reason", "shutdown"), get(&counters.traces_closed_shutdown)),
            ],
        )?;
        family(
            e,
            "fluo_traces_amended",
            "Closed traces merged with spans that arrived after evaluation.",
            counter,
            one(&counters.traces_amended),
        )?;
        let mut evaluations: Vec<(&'static str, u64)> = counters
            .evaluations
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .map(|(outcome, count)| (*outcome, *count))
            .collect();
        evaluations.sort();
        family(
            e,
            "fluo_rule_evaluations",
            "Rule calls, by outcome.",
            counter,
            evaluations.into_iter().map(|(outcome, count)| (label("outcome", outcome), count)),
        )?;
        // Not `fluo_rule_fuel_used`: that family is per rule, and one name
        // holding both the total and its parts would double-count in sums.
        family(e, "fluo_fuel_used", "Fuel consumed by all rule calls.", counter, one(&counters.fuel_used))?;
        family(
            e,
            "fluo_signals",
            "Violations seen, by what became of them.",
            counter,
            [
                (label("result", "created"), get(&counters.signals_created)),
                (label("result", "duplicate"), get(&counters.signals_duplicate)),
                (label("result", "cleared"), get(&counters.signals_cleared)),
                (label("result", "occurrence"), get(&counters.signals_occurred)),
                (label("result", "regression"), get(&counters.signals_regressed)),
            ],
        )?;
        family(
            e,
            "fluo_window_spans",
            "Spans offered to window rules, by result.",
            counter,
            [
                (label("result", "selected"), get(&counters.window_spans_selected)),
                (label("result", "late"), get(&counters.window_spans_late)),
                (label("result", "capped"), get(&counters.window_spans_capped)),
            ],
        )?;
        family(e, "fluo_window_checks", "Window checks run.", counter, one(&counters.window_checks))?;
        family(e, "fluo_buffered_spans", "Spans in live traces.", MetricType::Gauge, [(Labels::new(), self.buffered_spans as u64)])?;
        family(
            e,
            "fluo_buffered_bytes",
            "Estimated bytes of live traces.",
            MetricType::Gauge,
            [(Labels::new(), self.buffered_bytes as u64)],
        )?;

        let mut backlog = self.backlog.clone();
        backlog.sort();
        family(
            e,
            "fluo_evaluation_backlog",
            "Closed traces waiting for evaluation.",
            MetricType::Gauge,
            [(Labels::new(), backlog.iter().map(|(_, waiting)| *waiting as u64).sum())],
        )?;
        family(
            e,
            "fluo_tenant_evaluation_backlog",
            "Closed traces waiting for evaluation, per tenant.",
            MetricType::Gauge,
            backlog.iter().map(|(tenant, waiting)| (label("tenant", tenant.as_str()), *waiting as u64)),
        )?;

        let mut tenants: Vec<(TenantId, TenantCounters)> =
            counters.tenants.lock().unwrap_or_else(|poison| poison.into_inner()).iter().map(|(t, c)| (t.clone(), c.clone())).collect();
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        let per_tenant: [(&str, &str, fn(&TenantCounters) -> u64); 8] = [
            ("fluo_tenant_spans_accepted", "Spans accepted, per tenant.", |c| c.spans_accepted),
            ("fluo_tenant_spans_rejected", "Spans not kept (invalid ids, trace caps), per tenant.", |c| c.spans_rejected),
            ("fluo_tenant_traces_closed", "Traces closed, per tenant.", |c| c.traces_closed),
            ("fluo_tenant_traces_evaluated", "Traces evaluated by the tenant's rules, per tenant.", |c| c.traces_evaluated),
            ("fluo_tenant_rule_calls", "Rule calls, per tenant.", |c| c.rule_calls),
            ("fluo_tenant_rule_failures", "Rule calls that did not complete (fuel, deadline, memory, exception…), per tenant.", |c| {
                c.rule_failures
            }),
            ("fluo_tenant_rule_fuel_used", "Fuel used by rule calls, per tenant.", |c| c.fuel_used),
            ("fluo_tenant_signals_created", "Signals created, per tenant.", |c| c.signals_created),
        ];
        for (name, help, value) in per_tenant {
            family(e, name, help, counter, tenants.iter().map(|(tenant, c)| (label("tenant", tenant.as_str()), value(c))))?;
        }
        let mut rules: Vec<((TenantId, String), RuleCounters)> =
            counters.rules.lock().unwrap_or_else(|poison| poison.into_inner()).iter().map(|(k, c)| (k.clone(), c.clone())).collect();
        rules.sort_by(|a, b| a.0.cmp(&b.0));
        let per_rule: [(&str, &str, fn(&RuleCounters) -> u64); 5] = [
            ("fluo_rule_calls", "Calls of one rule.", |c| c.calls),
            ("fluo_rule_failures", "Calls of one rule that did not complete.", |c| c.failures),
            ("fluo_rule_fuel_used", "Fuel used by one rule.", |c| c.fuel_used),
            ("fluo_rule_signals_created", "Signals created by one rule.", |c| c.signals_created),
            ("fluo_rule_skipped", "Traces one rule's prefilter ruled out (not run; no violation).", |c| c.skipped),
        ];
        for (name, help, value) in per_rule {
            let samples = rules.iter().map(|((tenant, rule), c)| (vec![("tenant", tenant.to_string()), ("rule", rule.clone())], value(c)));
            family(e, name, help, counter, samples)?;
        }
        for extra in &self.extra {
            family(e, extra.name, extra.help, counter, extra.samples.iter().cloned())?;
        }
        Ok(())
    }
}

/// Every counter, the live-trace gauges and the evaluation backlog (per
/// tenant) in the OpenMetrics text format ([`CONTENT_TYPE`]).
pub fn exposition(
    counters: &Arc<Counters>,
    buffered_spans: usize,
    buffered_bytes: usize,
    backlog: Vec<(TenantId, usize)>,
    extra: Vec<CounterFamily>,
) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Exposition { extra, counters: counters.clone(), buffered_spans, buffered_bytes, backlog }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("writing to a String does not fail");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_is_openmetrics_with_the_documented_names() {
        let counters = Arc::new(Counters::default());
        counters.spans_accepted.fetch_add(3, Ordering::Relaxed);
        let tenant = TenantId::trusted("t_1");
        counters.tenant(&tenant, |own| own.spans_accepted += 3);
        counters.rule(&tenant, "r_1", |own| own.calls += 2);
        counters.refused("unauthenticated");
        counters.tenant(&TenantId::trusted("t_1"), |own| own.traces_evaluated += 4);
        let deliveries = CounterFamily {
            name: "fluo_notification_deliveries",
            help: "Notification deliveries, by channel kind and outcome.",
            samples: vec![(vec![("kind", "otlp".into()), ("outcome", "delivered".into())], 2)],
        };
        let text = exposition(&counters, 5, 640, vec![(TenantId::trusted("t_1"), 7)], vec![deliveries]);
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            "fluo_notification_deliveries_total{kind=\"otlp\",outcome=\"delivered\"} 2",
            "# TYPE fluo_spans_accepted counter",
            "fluo_spans_accepted_total 3",
            "fluo_requests_refused_total{reason=\"unauthenticated\"} 1",
            "fluo_requests_refused_total{reason=\"rate_limited\"} 0",
            "fluo_connections_refused_total{listener=\"grpc\"} 0",
            "# TYPE fluo_buffered_spans gauge",
            "fluo_buffered_spans 5",
            "fluo_buffered_bytes 640",
            "fluo_tenant_spans_accepted_total{tenant=\"t_1\"} 3",
            "fluo_tenant_traces_evaluated_total{tenant=\"t_1\"} 4",
            "fluo_evaluation_backlog 7",
            "fluo_tenant_evaluation_backlog{tenant=\"t_1\"} 7",
            "fluo_rule_calls_total{tenant=\"t_1\",rule=\"r_1\"} 2",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
        }
        assert_eq!(lines.last(), Some(&"# EOF"));
    }
}
