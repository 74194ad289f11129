//! End to end with a real OpenTelemetry SDK exporter (Python opentelemetry-sdk,
//! tests/otel/send.py) against `fluo serve` on loopback: the fraud-check
//! invariant over OTLP/gRPC and OTLP/HTTP, tenant isolation, late spans that
//! clear a "missing span" signal, and signals surviving `kill -9`.

mod common;

use common::{FRAUD_RULE, Server, checkout, send};
use serde_json::json;
use std::time::Duration;

/// Tenant B's rule flags every trace it sees: if A's spans ever reached it, B would get signals.
const SEES_EVERYTHING: &str = "export default function (trace) { return trace.spans.length > 0 ? { message: 'saw a trace' } : []; }";

#[test]
fn fraud_check_over_grpc_and_http_with_isolation_and_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "300ms"]);
    let (_, admin_a) = server.tenant("acme");
    let (_, admin_b) = server.tenant("globex");
    let ingest_a = server.key(&admin_a, &["ingest"]);
    let rule = server.rule(&admin_a, "fraud", FRAUD_RULE);
    assert_eq!(rule["version"], 1);
    server.rule(&admin_b, "everything", SEES_EVERYTHING);

    for protocol in ["grpc", "http"] {
        let endpoint = if protocol == "grpc" { server.grpc } else { server.http };
        let report = send(endpoint, protocol, &ingest_a, &json!({"traces": [checkout(false), checkout(true)]}), &[]);
        assert_eq!(report["export_ok"], true, "{report}");
        let bad_trace = report["traces"][0]["trace_id"].as_str().unwrap();
        let good_trace = report["traces"][1]["trace_id"].as_str().unwrap();
        let charge = report["traces"][0]["spans"]["charge"].as_str().unwrap();
        let signals = server.wait_signals(&admin_a, &format!("?trace_id={bad_trace}"), 1, Duration::from_secs(20));
        assert_eq!(signals.len(), 1, "{protocol}: {signals:?}");
        let signal = &signals[0];
        assert_eq!(signal["span_ids"], json!([charge]), "{protocol}: the signal names the charge span");
        assert_eq!(signal["rule_name"], "fraud");
        assert_eq!(signal["rule_version"], 1);
        assert_eq!(signal["severity"], "high");
        assert_eq!(signal["status"], "open");
        assert_eq!(signal["message"], "payment charged without a fraud check");
        assert_eq!(signal["witnesses"][0]["name"], "payment.charge_card");
        assert_eq!(signal["witnesses"][0]["service"], "payments");
        // Both traces were closed and evaluated (the good one after or with the bad one).
        std::thread::sleep(Duration::from_millis(600));
        assert!(server.signals(&admin_a, &format!("?trace_id={good_trace}")).is_empty(), "{protocol}: the fraud-checked trace is fine");
    }
    let all_a = server.signals(&admin_a, "");
    assert_eq!(all_a.len(), 1, "the two violating traces are one group: {all_a:?}");
    assert_eq!(all_a[0]["occurrences"], 2, "exactly one occurrence per violating trace: {all_a:?}");
    assert!(server.signals(&admin_b, "").is_empty(), "tenant B's rule never saw tenant A's spans");
    // Filters: by rule name or id, severity, status, time; pagination of the occurrences.
    assert_eq!(server.signals(&admin_a, "?rule=fraud").len(), 1);
    assert_eq!(server.signals(&admin_a, &format!("?rule={}", rule["id"].as_str().unwrap())).len(), 1);
    assert!(server.signals(&admin_a, "?rule=other").is_empty());
    assert_eq!(server.signals(&admin_a, "?severity=high&status=open").len(), 1);
    assert!(server.signals(&admin_a, "?severity=low").is_empty());
    assert_eq!(server.signals(&admin_a, "?since=2020-01-01T00:00:00Z").len(), 1);
    assert!(server.signals(&admin_a, "?since=2999-01-01T00:00:00Z").is_empty());
    let group = all_a[0]["id"].as_str().unwrap();
    let (status, page) = server.api("GET", &format!("/api/v1/signals/{group}/occurrences?limit=1"), Some(&admin_a), None);
    assert_eq!(status, 200);
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let (_, rest) = server.api("GET", &format!("/api/v1/signals/{group}/occurrences?limit=1&cursor={cursor}"), Some(&admin_a), None);
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    assert_ne!(page["items"][0]["trace_id"], rest["items"][0]["trace_id"]);
    // Another tenant's signal id is not found, not forbidden.
    assert_eq!(server.api("GET", &format!("/api/v1/signals/{group}"), Some(&admin_b), None).0, 404);
    assert_eq!(server.api("GET", &format!("/api/v1/signals/{group}/occurrences"), Some(&admin_b), None).0, 404);
    // The snapshot of the trace is kept with the signal.
    let (status, snapshot) =
        server.api("GET", &format!("/api/v1/signals/{}/trace", all_a[0]["id"].as_str().unwrap()), Some(&admin_a), None);
    assert_eq!(status, 200);
    let spans: usize =
        snapshot["resourceSpans"].as_array().unwrap().iter().map(|r| r["scopeSpans"][0]["spans"].as_array().unwrap().len()).sum();
    assert_eq!(spans, 2);

    server.kill9();
    let server = Server::start(dir.path(), &["--trace-idle", "300ms"]);
    let after = server.signals(&admin_a, "");
    assert_eq!(after, all_a, "signals survive kill -9 unchanged");
    // Keys and rules survived too: the same key ingests, the same rule fires.
    let report = send(server.grpc, "grpc", &ingest_a, &json!({"traces": [checkout(false)]}), &[]);
    assert_eq!(report["export_ok"], true, "{report}");
    let trace = report["traces"][0]["trace_id"].as_str().unwrap();
    assert_eq!(server.wait_signals(&admin_a, &format!("?trace_id={trace}"), 1, Duration::from_secs(20)).len(), 1);
}

#[test]
fn a_late_fraud_check_clears_the_signal_and_nothing_is_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "300ms"]);
    let (tenant, admin) = server.tenant("acme");
    server.rule(&admin, "fraud", FRAUD_RULE);
    // The fraud-check span is exported 2 s after the rest: the trace is
    // evaluated without it first (signal), then amended (cleared).
    let report = send(server.http, "http", &admin, &json!({"traces": [checkout(true)]}), &["--late", "fraud", "--late-after-ms", "2000"]);
    assert_eq!(report["export_ok"], true, "{report}");
    let trace = report["traces"][0]["trace_id"].as_str().unwrap();
    let query = format!("?trace_id={trace}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let signals = loop {
        let signals = server.signals(&admin, &query);
        if signals.first().is_some_and(|signal| signal["status"] == "resolved") || std::time::Instant::now() > deadline {
            break signals;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(signals.len(), 1, "one signal for the trace, not one per evaluation: {signals:?}");
    assert_eq!(signals[0]["status"], "resolved");
    assert_eq!(signals[0]["resolution"]["reason"], "cleared");
    assert!(server.signals(&admin, "?status=open").is_empty());
    assert_eq!(server.metric("fluo_traces_amended_total"), 1);

    // A late span that does not change the verdict adds no second signal.
    let mut trace = checkout(false);
    trace["spans"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "audit", "name": "audit.write", "parent": "root", "start_ms": 100, "duration_ms": 5}));
    let report = send(server.grpc, "grpc", &admin, &json!({ "traces": [trace] }), &["--late", "audit", "--late-after-ms", "1500"]);
    let trace = report["traces"][0]["trace_id"].as_str().unwrap();
    let query = format!("?trace_id={trace}");
    assert_eq!(server.wait_signals(&admin, &query, 1, Duration::from_secs(20)).len(), 1);
    std::thread::sleep(Duration::from_millis(2500));
    let signals = server.signals(&admin, &query);
    assert_eq!(signals.len(), 1, "{signals:?}");
    assert_eq!(signals[0]["status"], "open");
    assert_eq!(server.metric("fluo_traces_amended_total"), 2);
    assert_eq!(server.metric("fluo_signals_total{result=\"duplicate\"}"), 1);
    // Two traces, each evaluated, then again when amended; nothing waiting.
    assert_eq!(server.metric(&format!("fluo_tenant_traces_evaluated_total{{tenant=\"{tenant}\"}}")), 4);
    let (_, _, body) = common::http(server.api, "GET", "/metrics", Some(common::OPERATOR_KEY), &[], None);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains(&format!("fluo_tenant_evaluation_backlog{{tenant=\"{tenant}\"}} 0")), "the backlog gauge is exposed");
    assert!(text.lines().any(|line| line == "fluo_evaluation_backlog 0"), "the total backlog gauge is exposed");
}
