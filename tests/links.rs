//! Links out: a tenant's trace-link template (checked, shown on a signal and
//! carried by notifications) and its trace retention (within the operator's
//! maximum, applied to what the tenant's traces API serves, kept across a
//! restart).

mod common;

use common::{FRAUD_RULE, Server, send_charge};
use serde_json::json;
use std::time::Duration;

#[test]
fn a_tenant_links_signals_to_its_trace_backend_and_sets_its_trace_retention() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let flags = ["--trace-idle", "200ms", "--webhook-allow-private-targets", "--trace-retention", "2m", "--trace-retention-max", "3h"];
    let server = Server::start(&data, &flags);
    let (_, admin) = server.tenant("acme");
    let (_, other) = server.tenant("globex");
    let reader = server.key(&admin, &["read"]);

    let (status, settings) = server.api("GET", "/api/v1/settings", Some(&reader), None);
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["trace_link_template"], serde_json::Value::Null);
    assert_eq!(
        (settings["effective_trace_retention_minutes"].as_u64(), settings["max_trace_retention_minutes"].as_u64()),
        (Some(2), Some(180))
    );

    // Refused, with the reason: no {trace_id}, an unknown placeholder, not http(s),
    // too long, a retention beyond the maximum or zero, an unknown field; a reader may not write.
    for (body, reason) in [
        (json!({"trace_link_template": "https://jaeger.example/trace/"}), "{trace_id}"),
        (json!({"trace_link_template": "https://jaeger.example/trace/{trace_id}?t={traceId}"}), "unknown placeholder {traceId}"),
        (json!({"trace_link_template": "javascript:alert(1)//{trace_id}"}), "http or https URL"),
        (json!({"trace_link_template": format!("https://x.example/{{trace_id}}?{}", "a".repeat(2048))}), "2048 bytes"),
        (json!({"trace_retention_minutes": 181}), "1 to 180"),
        (json!({"trace_retention_minutes": 0}), "1 to 180"),
    ] {
        let (status, error) = server.api("PUT", "/api/v1/settings", Some(&admin), Some(&body));
        assert_eq!(status, 400, "{body}: {error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(reason), "{body}: {error}");
    }
    assert_eq!(server.api("PUT", "/api/v1/settings", Some(&admin), Some(&json!({"trace_link": "x"}))).0, 400);
    assert_eq!(server.api("PUT", "/api/v1/settings", Some(&reader), Some(&json!({}))).0, 403);

    let template = "https://jaeger.example/trace/{trace_id}?uiFind={span_id}&start={start_unix_ms}";
    let (status, settings) = server.api(
        "PUT",
        "/api/v1/settings",
        Some(&admin),
        Some(&json!({"trace_link_template": template, "trace_retention_minutes": 120})),
    );
    assert_eq!(status, 200, "{settings}");
    assert_eq!(
        (settings["trace_retention_minutes"].as_u64(), settings["effective_trace_retention_minutes"].as_u64()),
        (Some(120), Some(120))
    );
    assert_eq!(server.api("GET", "/api/v1/settings", Some(&other), None).1["trace_link_template"], serde_json::Value::Null, "per tenant");

    // A signal carries the filled-in link; so does a notification.
    let (addr, received) = common::webhook_receiver(0);
    let (status, hook) = server.api("POST", "/api/v1/webhooks", Some(&admin), Some(&json!({"url": format!("http://{addr}/hook")})));
    assert_eq!(status, 201, "{hook}");
    server.rule(&admin, "fraud", FRAUD_RULE);
    let trace = send_charge(&server, &admin, 0x51);
    let signals = server.wait_signals(&admin, "", 1, Duration::from_secs(10));
    let (_, signal) = server.api("GET", &format!("/api/v1/signals/{}", signals[0]["id"].as_str().unwrap()), Some(&reader), None);
    let expected = format!("https://jaeger.example/trace/{trace}?uiFind=0101010101010101&start=1700000000000");
    assert_eq!(signal["trace_url"], expected.as_str(), "{signal}");
    let (_, body) = received.recv_timeout(Duration::from_secs(10)).expect("a notification");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["trace_url"], expected.as_str(), "{body}");

    // The retention applies to what is served, and survives a restart.
    let (status, _) = server.api("GET", &format!("/api/v1/traces/{trace}"), Some(&admin), None);
    assert_eq!(status, 200);
    let api = server.api.to_string();
    let (grpc, http) = (server.grpc.to_string(), server.http.to_string());
    server.terminate();
    let server = Server::start_at(&data, [grpc.as_str(), http.as_str(), api.as_str()], &flags);
    let (_, settings) = server.api("GET", "/api/v1/settings", Some(&admin), None);
    assert_eq!(settings["effective_trace_retention_minutes"], 120);
    assert_eq!(server.api("GET", &format!("/api/v1/traces/{trace}"), Some(&admin), None).0, 200);
    // Back to the default: null clears both settings.
    let (status, settings) = server.api("PUT", "/api/v1/settings", Some(&admin), Some(&json!({})));
    assert_eq!((status, settings["effective_trace_retention_minutes"].as_u64()), (200, Some(2)));
    assert_eq!(settings["trace_link_template"], serde_json::Value::Null);
}

#[test]
fn the_operator_maximum_bounds_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(common::binary())
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--trace-retention", "2h", "--trace-retention-max", "1h"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--trace-retention must be at least 1m and at most --trace-retention-max"));
}

/// A rule's labels (`rule({labels})`) are checked by the SDK, carried by its
/// groups, and route notifications: a channel with labels hears only the
/// groups whose rule has them all.
#[test]
fn rule_labels_are_checked_carried_by_groups_and_route_channels() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms", "--webhook-allow-private-targets"]);
    let (_, admin) = server.tenant("acme");
    let compiles = |labels: &str| {
        let source = format!("export default rule({{ labels: {labels}, when: trace.has('payment.charge_card') }});");
        let (status, report) = server.api("POST", "/api/v1/rules/compile", Some(&admin), Some(&json!({ "source": source })));
        assert_eq!(status, 200, "{report}");
        report
    };
    assert_eq!(compiles(r#"{team: "payments", tier: "1"}"#)["rule"]["labels"], json!({"team": "payments", "tier": "1"}));
    for (labels, reason) in [
        (r#"{__name__: "x"}"#, "is not a label name"),
        (r#"{"with-dash": "x"}"#, "is not a label name"),
        (r#"{team: ""}"#, "1 to 256 characters"),
        (r#"{team: 7}"#, "1 to 256 characters"),
        (r#"["team"]"#, "expected an object"),
    ] {
        let report = compiles(labels);
        assert_eq!(report["compiles"], false, "{labels}: {report}");
        assert!(report["error"]["message"].as_str().unwrap().contains(reason), "{labels}: {report}");
    }
    let seventeen: Vec<String> = (0..17).map(|i| format!("l{i}: \"x\"")).collect();
    assert!(compiles(&format!("{{{}}}", seventeen.join(", ")))["error"]["message"].as_str().unwrap().contains("at most 16"));

    let (payments_addr, payments) = common::webhook_receiver(0);
    let (search_addr, search) = common::webhook_receiver(0);
    for (addr, team) in [(payments_addr, "payments"), (search_addr, "search")] {
        let spec = json!({"url": format!("http://{addr}/hook"), "labels": {"team": team}});
        let (status, hook) = server.api("POST", "/api/v1/webhooks", Some(&admin), Some(&spec));
        assert_eq!((status, &hook["labels"]["team"]), (201, &json!(team)), "{hook}");
    }
    let (status, error) = server.api(
        "POST",
        "/api/v1/webhooks",
        Some(&admin),
        Some(&json!({"url": format!("http://{payments_addr}/x"), "labels": {"__x": "y"}})),
    );
    assert_eq!(status, 400, "{error}");
    let source = FRAUD_RULE.replace("severity:", r#"labels: { team: "payments" }, severity:"#);
    server.rule(&admin, "fraud", &source);
    send_charge(&server, &admin, 0x61);
    let (_, body) = payments.recv_timeout(Duration::from_secs(10)).expect("the payments channel hears of it");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((body["type"].as_str(), &body["signal"]["labels"]), (Some("signal.created"), &json!({"team": "payments"})));
    assert!(search.recv_timeout(Duration::from_secs(2)).is_err(), "the search channel does not");
}
