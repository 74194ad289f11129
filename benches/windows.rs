//! Window rules on one core: selecting arriving spans (the ingest path's cost
//! per span for a tenant with a window rule), and checking one window of
//! 100,000 selected spans with `concurrency()` (the window moves into the
//! sandbox, the check runs, the signal is stored). Three runs each, median.
//!
//! Run: `cargo bench --bench windows` (`make bench`). Figures in docs/BENCHMARKS.md.

use fluo::model::otlp;
use fluo::model::tenant::TenantId;
use fluo::pipeline::Counters;
use fluo::pipeline::windows::{WindowLimits, Windows};
use fluo::rules::{Limits, RuleEngine};
use fluo::signals::{RuleRef, Signals};
use fluo::store::Store;
use std::sync::Arc;
use std::time::Instant;

const RULE: &str = r#"export default window({
  name: "auth-concurrency", select: { service: "auth", kind: "server" }, length: "1 minute", grace: "0s",
  check(spans) {
    const c = concurrency(spans);
    if (c.peak > 50) return { message: "peak " + c.peak, spans: c.spans.slice(0, 20), attributes: { peak: c.peak, at: c.at } };
  },
});"#;

const SPANS: usize = 100_000;

/// `count` server spans of `service` in one request-sized batch, 6 attributes
/// each, starting 0.5 ms apart from `start_ms` and lasting 40 ms (peak ≈ 80).
fn batch(service: &str, count: usize, first: usize, start_ms: u64) -> Vec<fluo::model::trace::Span> {
    let spans: Vec<serde_json::Value> = (first..first + count)
        .map(|n| {
            let start = start_ms * 1_000_000 + n as u64 * 500_000;
            let attributes: Vec<serde_json::Value> = (0..6)
                .map(|a| serde_json::json!({"key": format!("attr.{a}"), "value": {"stringValue": format!("value-{}", n % 97)}}))
                .collect();
            serde_json::json!({"traceId": format!("{:032x}", n / 4 + 1), "spanId": format!("{:016x}", n + 1), "name": "POST /login",
                "kind": 2, "startTimeUnixNano": start.to_string(), "endTimeUnixNano": (start + 40_000_000).to_string(), "attributes": attributes})
        })
        .collect();
    let json = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"spans": spans}]}]});
    otlp::convert(otlp::from_json(json.to_string().as_bytes()).unwrap()).spans
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let engine = RuleEngine::new(Limits::default()).expect("engine");
    let (_, loaded) = fluo::rules::compile::compile(&engine, RULE).expect("the rule compiles");
    let tenant = TenantId::trusted("bench");
    // Requests of 1,000 spans: half `auth` (selected), half `billing` (not).
    let requests: Vec<Vec<fluo::model::trace::Span>> = (0..2 * SPANS / 1000)
        .map(|index| {
            let service = if index % 2 == 0 { "auth" } else { "billing" };
            batch(service, 1000, (index / 2) * 1000, 60_000)
        })
        .collect();
    let (mut select_rates, mut check_rates, mut check_seconds) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let signals = Arc::new(Signals::open(Arc::new(Store::open(dir.path()).unwrap())).unwrap());
        let windows =
            Windows::new(engine.clone(), signals, Arc::new(Counters::default()), fluo::events::EventHub::new(), WindowLimits::default());
        let rule = RuleRef { id: "r_bench".into(), name: "auth-concurrency".into(), version: 1, ..Default::default() };
        windows.set_rules(&tenant, vec![(rule, loaded.clone())], 0);
        let started = Instant::now();
        for request in &requests {
            windows.offer(&tenant, request);
        }
        let offered = started.elapsed().as_secs_f64();
        assert_eq!(windows.buffered_spans(), SPANS);
        select_rates.push((2 * SPANS) as f64 / offered);
        let started = Instant::now();
        let created = windows.run_due(120_000);
        let checked = started.elapsed().as_secs_f64();
        assert_eq!(created.len(), 1, "the window's peak is over the limit");
        check_seconds.push(checked);
        check_rates.push(SPANS as f64 / checked);
    }
    println!("selection: {:.0} spans offered/s (median of 3; half selected)", median(select_rates));
    println!("window check, {SPANS} spans: {:.2} s = {:.0} spans/s (median of 3)", median(check_seconds), median(check_rates));
}
