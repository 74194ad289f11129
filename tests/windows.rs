//! Window rules end to end: spans exported by the real OpenTelemetry Python
//! SDK from many traces, selected as they arrive, checked per window.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

const AUTH_LIMIT: &str = r#"export default window({
  name: "auth-concurrency",
  severity: "high",
  select: { service: "auth", kind: "server" },
  length: "2s",
  grace: "1s",
  check(spans) {
    const c = concurrency(spans);
    if (c.peak > 50) {
      return { message: "auth served " + c.peak + " concurrent requests (limit 50)", spans: c.spans, attributes: { peak: c.peak, at: c.at } };
    }
  },
});"#;

/// `count` single-span traces of the `auth` service, the n-th starting
/// `n * step_ms` after `base_ms` and lasting `length_ms`.
fn auth_traces(count: u64, base_ms: u64, step_ms: u64, length_ms: u64) -> Value {
    let traces: Vec<Value> = (0..count)
        .map(|n| {
            json!({"service": "auth", "base_unix_ms": base_ms + n * step_ms,
                "spans": [{"id": "login", "name": "POST /login", "kind": "server", "parent": null, "start_ms": 0, "duration_ms": length_ms}]})
        })
        .collect();
    json!({ "traces": traces })
}

#[test]
fn concurrency_limit_over_spans_of_many_traces() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms"]);
    let tenants: Vec<(String, String)> = ["over", "under", "spread"].iter().map(|name| server.tenant(name)).collect();
    for (_, admin) in &tenants {
        server.rule(admin, "auth-concurrency", AUTH_LIMIT);
    }
    // All spans start inside the next 2 s window, which is checked 1 s after it ends.
    let now = fluo::model::time::now_ms();
    let base = (now / 2000 + 1) * 2000 + 100;
    let specs = [auth_traces(60, base, 0, 1500), auth_traces(40, base, 0, 1500), auth_traces(60, base, 30, 20)];
    for ((_, admin), spec) in tenants.iter().zip(&specs) {
        let report = send(server.grpc, "grpc", admin, spec, &[]);
        assert_eq!(report["exit"], 0, "{report}");
    }
    let over = server.wait_signals(&tenants[0].1, "", 1, Duration::from_secs(20));
    assert_eq!(over.len(), 1, "{over:?}");
    let signal = &over[0];
    assert_eq!(signal["message"], "auth served 60 concurrent requests (limit 50)");
    assert_eq!(signal["attributes"]["peak"], 60);
    assert_eq!(signal["window"]["spans_in_window"], 60);
    assert_eq!(signal["window"]["trace_ids"].as_array().unwrap().len(), 20, "a bounded sample of the traces involved");
    assert_eq!(signal["witnesses"][0]["service"], "auth");
    // The signal's page shows the window's witness spans (it used to answer 404).
    let (status, otlp) = server.api("GET", &format!("/api/v1/signals/{}/trace", signal["id"].as_str().unwrap()), Some(&tenants[0].1), None);
    assert_eq!(status, 200, "{otlp}");
    let spans: Vec<&Value> = otlp["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|resource| resource["scopeSpans"].as_array().unwrap())
        .flat_map(|scope| scope["spans"].as_array().unwrap())
        .collect();
    assert_eq!(spans.len(), signal["span_ids"].as_array().unwrap().len(), "{otlp}");
    assert!(spans.iter().all(|span| span["name"] == "POST /login"));
    // The next windows are empty: no second signal; under the limit and spread out: none at all.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(server.signals(&tenants[0].1, "").len(), 1);
    assert!(server.signals(&tenants[1].1, "").is_empty(), "40 overlapping is within the limit");
    assert!(server.signals(&tenants[2].1, "").is_empty(), "60 spread out in time never overlap");
    assert!(server.metric("fluo_window_spans_total{result=\"selected\"}") >= 160);
}

/// OTLP/JSON with `count` overlapping `auth` server spans, each in its own trace.
fn overlapping_auth(count: u64) -> Value {
    let spans: Vec<Value> = (0..count)
        .map(|n| {
            json!({"traceId": format!("{:032x}", n + 1), "spanId": format!("{:016x}", n + 1), "name": "POST /login", "kind": 2,
                "startTimeUnixNano": (1_800_000_000_000_000_000u64 + n * 1000).to_string(), "endTimeUnixNano": "1800000001000000000"})
        })
        .collect();
    json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "auth"}}]}, "scopeSpans": [{"spans": spans}]}]})
}

#[test]
fn a_window_rule_is_tested_on_pasted_traces_as_one_window() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, admin) = server.tenant("acme");
    let (status, report) =
        server.api("POST", "/api/v1/rules/test", Some(&admin), Some(&json!({"source": AUTH_LIMIT, "traces": overlapping_auth(60)})));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["rule"]["form"], "window");
    assert_eq!(report["rule"]["window"]["length_ms"], 2000);
    let result = &report["traces"][0];
    assert_eq!((result["outcome"].as_str(), result["spans"].as_u64()), (Some("ok"), Some(60)), "{result}");
    assert_eq!(result["violations"][0]["message"], "auth served 60 concurrent requests (limit 50)");
    let (_, fine) =
        server.api("POST", "/api/v1/rules/test", Some(&admin), Some(&json!({"source": AUTH_LIMIT, "traces": overlapping_auth(40)})));
    assert_eq!(fine["traces"][0]["violations"], json!([]));
    for (bad, says) in [
        (AUTH_LIMIT.replace(r#"length: "2s","#, r#"length: "2s", every: "500ms","#), "must be from 1 second to 1 hour"),
        (AUTH_LIMIT.replace(r#"length: "2s","#, r#"length: "2s", every: "3s","#), "must not exceed length"),
        (AUTH_LIMIT.replace("select: {", "select: { host: 'a',"), r#"unknown field "host""#),
        (AUTH_LIMIT.replace(r#"kind: "server""#, r#"kind: "serverish""#), "select.kind"),
    ] {
        let (status, body) = server.api("POST", "/api/v1/rules", Some(&admin), Some(&json!({"name": "bad", "source": bad})));
        assert_eq!(status, 422, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(says), "{body}");
    }
    let rule = server.rule(&admin, "auth-concurrency", AUTH_LIMIT);
    let (status, body) = server.api("POST", &format!("/api/v1/rules/{}/backtest", rule["id"].as_str().unwrap()), Some(&admin), None);
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
}
