//! API key lifecycle and the signal status workflow, against `fluo serve` on
//! loopback (issue 4, first part): listing without secrets, expiry,
//! immediate revocation, tenant scoping (another tenant's ids answer 404),
//! status transitions with history.

mod common;

use common::{FRAUD_RULE, Server, hex_trace, http, request, send_charge, span};
use prost::Message;
use serde_json::json;
use std::time::Duration;

#[test]
fn keys_are_listed_without_secrets_expire_and_are_revoked_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, admin) = server.tenant("acme");
    let (_, other_admin) = server.tenant("globex");
    let reader = server.key(&admin, &["read"]);
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&reader), None).0, 200);

    let (status, keys) = server.api("GET", "/api/v1/keys", Some(&admin), None);
    assert_eq!(status, 200, "{keys}");
    let items = keys["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the admin key and the read key");
    assert!(!keys.to_string().contains(&reader) && !keys.to_string().contains(&admin), "no secret is ever listed");
    let reader_id = items.iter().find(|key| key["scopes"] == json!(["read"])).unwrap()["id"].as_str().unwrap().to_string();
    assert!(items.iter().any(|key| key["last_used_at"].is_string()), "last use is recorded");
    assert_eq!(server.api("GET", "/api/v1/keys", Some(&reader), None).0, 403, "listing keys needs admin");

    // Another tenant cannot see or revoke it.
    assert_eq!(server.api("DELETE", &format!("/api/v1/keys/{reader_id}"), Some(&other_admin), None).0, 404);
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&reader), None).0, 200);
    // Revoked: the very next request fails.
    assert_eq!(server.api("DELETE", &format!("/api/v1/keys/{reader_id}"), Some(&admin), None).0, 204);
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&reader), None).0, 401);
    assert_eq!(server.api("DELETE", &format!("/api/v1/keys/{reader_id}"), Some(&admin), None).0, 404);

    // Expiry.
    let soon = fluo::model::time::rfc3339(fluo::model::time::now_ms() + 1500);
    let (status, body) =
        server.api("POST", "/api/v1/keys", Some(&admin), Some(&json!({"name": "short", "scopes": ["read"], "expires_at": soon})));
    assert_eq!(status, 201, "{body}");
    let short = body["key"].as_str().unwrap().to_string();
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&short), None).0, 200);
    std::thread::sleep(Duration::from_millis(1700));
    assert_eq!(server.api("GET", "/api/v1/signals", Some(&short), None).0, 401, "an expired key stops working");
    let (status, _) = server.api(
        "POST",
        "/api/v1/keys",
        Some(&admin),
        Some(&json!({"name": "past", "scopes": ["read"], "expires_at": "2020-01-01T00:00:00Z"})),
    );
    assert_eq!(status, 400);
}

#[test]
fn signal_status_workflow_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms"]);
    let (_, admin) = server.tenant("acme");
    let (_, other_admin) = server.tenant("globex");
    let reader = server.key(&admin, &["read"]);
    server.rule(&admin, "fraud", FRAUD_RULE);
    let body = request(vec![span(7, 1, "payment.charge_card")]).encode_to_vec();
    let (status, _, _) = http(server.http, "POST", "/v1/traces", Some(&admin), &[("content-type", "application/x-protobuf")], Some(&body));
    assert_eq!(status, 200);
    let signals = server.wait_signals(&admin, "", 1, Duration::from_secs(20));
    let id = signals[0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/signals/{id}/status");

    assert_eq!(server.api("POST", &path, Some(&reader), Some(&json!({"status": "acknowledged"}))).0, 403, "read keys cannot change status");
    assert_eq!(server.api("POST", &path, Some(&other_admin), Some(&json!({"status": "acknowledged"}))).0, 404, "another tenant's signal");
    for read in [format!("/api/v1/signals/{id}"), format!("/api/v1/signals/{id}/trace")] {
        let (status, body) = server.api("GET", &read, Some(&other_admin), None);
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{read}");
    }
    assert_eq!(server.api("POST", &path, Some(&admin), Some(&json!({"status": "closed"}))).0, 400);

    let (status, signal) = server.api("POST", &path, Some(&admin), Some(&json!({"status": "acknowledged", "note": "looking into it"})));
    assert_eq!(status, 200, "{signal}");
    assert_eq!(signal["status"], "acknowledged");
    let (status, signal) = server.api("POST", &path, Some(&admin), Some(&json!({"status": "false_positive", "note": "test card"})));
    assert_eq!(status, 200);
    assert_eq!(signal["resolution"]["reason"], "false_positive");
    let (status, body) = server.api("POST", &path, Some(&admin), Some(&json!({"status": "resolved"})));
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("invalid_transition")), "{body}");
    let (status, signal) = server.api("POST", &path, Some(&admin), Some(&json!({"status": "open", "note": "not a test card after all"})));
    assert_eq!(status, 200);
    assert!(signal["resolution"].is_null());

    let (_, stored) = server.api("GET", &format!("/api/v1/signals/{id}"), Some(&reader), None);
    let history = stored["history"].as_array().unwrap();
    assert_eq!(history.len(), 3, "{stored}");
    assert_eq!(history[0]["from"], "open");
    assert_eq!(history[0]["to"], "acknowledged");
    assert_eq!(history[0]["note"], "looking into it");
    assert!(history[0]["author"].as_str().unwrap().starts_with("k_"), "the author is the key id");
    assert!(history[0]["author_name"].as_str().unwrap().starts_with("key "), "and its name: {stored}");
    assert_eq!(history[2]["to"], "open");
    assert_eq!(server.signals(&admin, "?status=open").len(), 1);
}

const FRAUD_RULE_V2: &str = r#"
export default rule({
  severity: "critical",
  when: trace.has(s => s.name === "payment.charge_card"),
  expect: trace.has(s => s.name === "payment.fraud_check"),
  message: "v2: card charged without a fraud check",
});
"#;

#[test]
fn rule_lifecycle_versions_diff_rollback_enable_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms"]);
    let (_, admin) = server.tenant("acme");
    let (_, other) = server.tenant("globex");
    let created = server.rule(&admin, "fraud", FRAUD_RULE);
    let id = created["id"].as_str().unwrap().to_string();
    let (status, v2) =
        server.api("PUT", &format!("/api/v1/rules/{id}"), Some(&admin), Some(&json!({"source": FRAUD_RULE_V2, "message": "louder"})));
    assert_eq!((status, v2["version"].as_u64()), (201, Some(2)), "{v2}");

    let (_, list) = server.api("GET", "/api/v1/rules", Some(&admin), None);
    assert_eq!(list["items"][0]["active_version"], 2);
    assert_eq!(list["items"][0]["latest_version"], 2);
    assert_eq!(list["items"][0]["severity"], "critical");
    let (_, versions) = server.api("GET", &format!("/api/v1/rules/{id}/versions"), Some(&admin), None);
    assert_eq!(versions["items"].as_array().unwrap().len(), 2);
    assert_eq!(versions["items"][1]["message"], "louder");
    assert!(versions["items"][1]["author"].as_str().unwrap().starts_with("k_"));
    assert!(versions["items"][1]["author_name"].as_str().unwrap().starts_with("key "), "{versions}");
    let (_, one) = server.api("GET", &format!("/api/v1/rules/{id}/versions/1"), Some(&admin), None);
    assert_eq!(one["source"], FRAUD_RULE);
    let (_, diff) = server.api("GET", &format!("/api/v1/rules/{id}/diff?from=1&to=2"), Some(&admin), None);
    let diff = diff["diff"].as_str().unwrap();
    assert!(diff.contains("-  severity: \"high\",") && diff.contains("+  severity: \"critical\","), "{diff}");

    // Version 2 fires.
    let trace = send_charge(&server, &admin, 0x21);
    let signals = server.wait_signals(&admin, &format!("?trace_id={trace}"), 1, Duration::from_secs(20));
    assert_eq!((signals[0]["rule_version"].as_u64(), signals[0]["severity"].as_str()), (Some(2), Some("critical")));
    // Roll back to version 1.
    let (status, rolled) = server.api("POST", &format!("/api/v1/rules/{id}/activate"), Some(&admin), Some(&json!({"version": 1})));
    assert_eq!((status, rolled["active_version"].as_u64()), (200, Some(1)), "{rolled}");
    let (status, error) = server.api("POST", &format!("/api/v1/rules/{id}/activate"), Some(&admin), Some(&json!({"version": 9})));
    assert_eq!((status, error["error"]["code"].as_str()), (422, Some("unknown_version")), "a version the rule does not have");
    let trace = send_charge(&server, &admin, 0x22);
    let signals = server.wait_signals(&admin, &format!("?trace_id={trace}"), 1, Duration::from_secs(20));
    assert_eq!(signals[0]["rule_version"], 1);
    // Disabled: silent. Enabled again: fires.
    assert_eq!(server.api("POST", &format!("/api/v1/rules/{id}/disable"), Some(&admin), None).0, 200);
    let quiet = send_charge(&server, &admin, 0x23);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(server.signals(&admin, &format!("?trace_id={quiet}")).is_empty(), "a disabled rule does not run");
    assert_eq!(server.api("POST", &format!("/api/v1/rules/{id}/enable"), Some(&admin), None).0, 200);

    // Another tenant sees none of it.
    for (method, path) in [
        ("GET", format!("/api/v1/rules/{id}")),
        ("GET", format!("/api/v1/rules/{id}/versions")),
        ("GET", format!("/api/v1/rules/{id}/versions/1")),
        ("GET", format!("/api/v1/rules/{id}/diff?from=1&to=2")),
        ("POST", format!("/api/v1/rules/{id}/enable")),
        ("POST", format!("/api/v1/rules/{id}/disable")),
        ("DELETE", format!("/api/v1/rules/{id}")),
    ] {
        assert_eq!(server.api(method, &path, Some(&other), None).0, 404, "{method} {path}");
    }
    assert_eq!(server.api("PUT", &format!("/api/v1/rules/{id}"), Some(&other), Some(&json!({"source": FRAUD_RULE}))).0, 404);
    assert_eq!(server.api("POST", &format!("/api/v1/rules/{id}/activate"), Some(&other), Some(&json!({"version": 1}))).0, 404);

    // The rollback survives a restart.
    drop(server);
    let server = Server::start(dir.path(), &["--trace-idle", "200ms"]);
    let (_, rule) = server.api("GET", &format!("/api/v1/rules/{id}"), Some(&admin), None);
    assert_eq!((rule["active_version"].as_u64(), rule["enabled"].as_bool()), (Some(1), Some(true)), "{rule}");
    let trace = send_charge(&server, &admin, 0x24);
    assert_eq!(server.wait_signals(&admin, &format!("?trace_id={trace}"), 1, Duration::from_secs(20))[0]["rule_version"], 1);

    // Deleted: gone, its signals keep its name and version.
    assert_eq!(server.api("DELETE", &format!("/api/v1/rules/{id}"), Some(&admin), None).0, 204);
    assert_eq!(server.api("GET", &format!("/api/v1/rules/{id}"), Some(&admin), None).0, 404);
    // The three violating traces are one group: one shape of witness spans.
    let kept = server.signals(&admin, "?rule=fraud");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!((kept[0]["occurrences"].as_u64(), kept[0]["rule_version"].as_u64()), (Some(3), Some(1)), "{kept:?}");
    let after = send_charge(&server, &admin, 0x25);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(server.signals(&admin, &format!("?trace_id={after}")).is_empty(), "a deleted rule does not run");
}

fn otlp_json(trace: &str, names: &[(&str, &str)]) -> serde_json::Value {
    let spans: Vec<_> = names
        .iter()
        .map(|(id, name)| json!({"traceId": trace, "spanId": id, "name": name, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000"}))
        .collect();
    json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]}, "scopeSpans": [{"spans": spans}]}]})
}

#[test]
fn test_a_rule_before_saving_backtest_it_and_read_retained_traces() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms"]);
    let (_, admin) = server.tenant("acme");
    let (_, other) = server.tenant("globex");
    let bad_trace = "0af7651916cd43dd8448eb211c80319c";
    let good_trace = "1af7651916cd43dd8448eb211c80319c";
    let traces = json!([
        otlp_json(bad_trace, &[("00000000000000a1", "payment.charge_card")]),
        otlp_json(good_trace, &[("00000000000000b1", "payment.charge_card"), ("00000000000000b2", "payment.fraud_check")])
    ]);
    let (status, report) = server.api("POST", "/api/v1/rules/test", Some(&admin), Some(&json!({"source": FRAUD_RULE, "traces": traces})));
    assert_eq!(status, 200, "{report}");
    let results = report["traces"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let bad = results.iter().find(|result| result["trace_id"] == bad_trace).unwrap();
    assert_eq!(bad["outcome"], "ok");
    assert_eq!(bad["violations"][0]["witnesses"][0]["name"], "payment.charge_card");
    assert!(bad["fuel_used"].as_u64().unwrap() > 0);
    let good = results.iter().find(|result| result["trace_id"] == good_trace).unwrap();
    assert_eq!(good["violations"], json!([]));
    assert!(server.api("GET", "/api/v1/rules", Some(&admin), None).1["items"].as_array().unwrap().is_empty(), "testing saves nothing");

    let (status, error) = server.api(
        "POST",
        "/api/v1/rules/test",
        Some(&admin),
        Some(&json!({"source": "export default rule({\n  when: )\n});", "traces": []})),
    );
    assert_eq!((status, error["error"]["line"].as_u64()), (422, Some(2)), "{error}");
    let thrower = "export default function (trace) {\n  throw new Error('boom');\n}";
    let (_, report) = server.api("POST", "/api/v1/rules/test", Some(&admin), Some(&json!({"source": thrower, "traces": traces})));
    assert_eq!(report["traces"][0]["outcome"], "exception");
    assert_eq!(report["traces"][0]["error"]["line"], 2, "{report}");
    let (status, _) =
        server.api("POST", "/api/v1/rules/test", Some(&admin), Some(&json!({"source": FRAUD_RULE, "traces": {"resourceSpans": 5}})));
    assert_eq!(status, 400);

    // Traces the tenant sent are retained; a backtest of a new rule finds the violating ones.
    let sent = send_charge(&server, &admin, 0x31);
    std::thread::sleep(Duration::from_millis(800));
    let (status, trace) = server.api("GET", &format!("/api/v1/traces/{sent}"), Some(&admin), None);
    assert_eq!(status, 200, "{trace}");
    assert_eq!(trace["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"], "payment.charge_card");
    assert_eq!(server.api("GET", &format!("/api/v1/traces/{sent}"), Some(&other), None).0, 404, "another tenant's trace");
    let created = server.rule(&admin, "fraud", FRAUD_RULE);
    let (status, backtest) = server.api("POST", &format!("/api/v1/rules/{}/backtest", created["id"].as_str().unwrap()), Some(&admin), None);
    assert_eq!(status, 200, "{backtest}");
    assert_eq!(backtest["traces_evaluated"], 1);
    assert_eq!(backtest["traces_with_violations"], 1);
    assert_eq!(backtest["results"][0]["trace_id"], sent);
    assert_eq!(server.api("POST", &format!("/api/v1/rules/{}/backtest", created["id"].as_str().unwrap()), Some(&other), None).0, 404);
    let (status, error) = server.api(
        "POST",
        &format!("/api/v1/rules/{}/backtest", created["id"].as_str().unwrap()),
        Some(&admin),
        Some(&json!({"version": 7})),
    );
    assert_eq!((status, error["error"]["code"].as_str()), (422, Some("unknown_version")), "{error}");

    // The retained traces, newest first, and the names they use (for the editor's completions).
    let newer = send_charge(&server, &admin, 0x32);
    std::thread::sleep(Duration::from_millis(800));
    let (status, listed) = server.api("GET", "/api/v1/traces?limit=10", Some(&admin), None);
    assert_eq!(status, 200, "{listed}");
    let ids: Vec<&str> = listed["items"].as_array().unwrap().iter().map(|item| item["trace_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [newer.as_str(), sent.as_str()], "newest evaluated first");
    assert_eq!(listed["items"][0]["root_name"], "payment.charge_card");
    assert_eq!(listed["items"][0]["spans"], 1);
    assert_eq!(server.api("GET", "/api/v1/traces?limit=1", Some(&admin), None).1["items"].as_array().unwrap().len(), 1);
    assert_eq!(server.api("GET", "/api/v1/traces?limit=0", Some(&admin), None).0, 400);
    assert_eq!(server.api("GET", "/api/v1/traces", Some(&other), None).1["items"], json!([]), "another tenant's traces are not listed");
    let (status, vocabulary) = server.api("GET", "/api/v1/traces/vocabulary", Some(&admin), None);
    assert_eq!(status, 200, "{vocabulary}");
    assert_eq!(vocabulary["traces"], 2);
    assert_eq!(vocabulary["span_names"], json!(["payment.charge_card"]));
    assert_eq!(server.api("GET", "/api/v1/traces/vocabulary", Some(&other), None).1["span_names"], json!([]));
}

#[test]
fn compile_check_templates_and_caller_info() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (tenant, admin) = server.tenant("acme");
    let (reader, ingest) = (server.key(&admin, &["read"]), server.key(&admin, &["ingest"]));

    let (status, compiled) = server.api("POST", "/api/v1/rules/compile", Some(&admin), Some(&json!({"source": FRAUD_RULE})));
    assert_eq!(status, 200, "{compiled}");
    assert_eq!((compiled["compiles"].as_bool(), compiled["rule"]["form"].as_str()), (Some(true), Some("rule")), "{compiled}");
    assert!(compiled["compile_ms"].as_f64().unwrap() > 0.0);
    // Not compiling is the check's answer (200), with the message and where.
    let broken = "export default rule({\n  name: \"x\",\n  when: )\n});";
    let (status, verdict) = server.api("POST", "/api/v1/rules/compile", Some(&admin), Some(&json!({"source": broken})));
    assert_eq!((status, verdict["compiles"].as_bool(), verdict["error"]["line"].as_u64()), (200, Some(false), Some(3)), "{verdict}");
    assert!(verdict.get("rule").is_none());
    let (_, verdict) = server.api("POST", "/api/v1/rules/compile", Some(&admin), Some(&json!({"source": "export default 42;"})));
    assert_eq!(verdict["compiles"], false, "a module that exports no rule: {verdict}");
    assert_eq!(server.api("POST", "/api/v1/rules/compile", Some(&admin), Some(&json!({"source": 5}))).0, 400);
    let huge = "a".repeat(131_073);
    assert_eq!(server.api("POST", "/api/v1/rules/compile", Some(&admin), Some(&json!({"source": huge}))).0, 400, "over 128 KiB");
    assert_eq!(server.api("POST", "/api/v1/rules/compile", Some(&reader), Some(&json!({"source": FRAUD_RULE}))).0, 403);
    assert!(server.api("GET", "/api/v1/rules", Some(&admin), None).1["items"].as_array().unwrap().is_empty(), "compiling saves nothing");

    let (status, body) = server.api("GET", "/api/v1/rules/templates", Some(&reader), None);
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    assert!(items.iter().all(|item| item["source"].as_str().unwrap().contains("export default")));
    assert!(items.iter().any(|item| item["id"] == "auth-concurrency"));
    assert_eq!(server.api("GET", "/api/v1/rules/templates", Some(&ingest), None).0, 403);
    assert_eq!(server.api("GET", "/api/v1/rules/templates", None, None).0, 401);

    let (status, info) = server.api("GET", "/api/v1/info", Some(&reader), None);
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["tenant"], tenant);
    assert_eq!(info["otlp_grpc_port"], server.grpc.port());
    assert_eq!(info["otlp_http_port"], server.http.port());
    assert_eq!((info["principal"]["kind"].as_str(), info["principal"]["scopes"].clone()), (Some("key"), json!(["read"])));
    assert_eq!(server.api("GET", "/api/v1/info", Some(&ingest), None).0, 403, "an ingest key reads nothing");
    assert_eq!(server.api("GET", "/api/v1/info", Some(common::OPERATOR_KEY), None).0, 403, "the operator has no tenant");
    server.api(
        "POST",
        "/api/v1/users",
        Some(&admin),
        Some(&json!({"email": "vi@acme.example", "password": "correct horse battery", "role": "viewer"})),
    );
    let login = json!({"tenant": tenant, "email": "vi@acme.example", "password": "correct horse battery"});
    let token = server.api("POST", "/api/v1/auth/login", None, Some(&login)).1["token"].as_str().unwrap().to_string();
    let (_, info) = server.api("GET", "/api/v1/info", Some(&token), None);
    assert_eq!(info["principal"]["kind"], "user");
    assert_eq!(info["principal"]["email"], "vi@acme.example");
    assert_eq!((info["principal"]["role"].as_str(), info["principal"]["scopes"].clone()), (Some("viewer"), json!(["read"])));
}

/// Opens an SSE stream; returns a receiver of the `data:` lines of `signal` events.
fn stream(api: std::net::SocketAddr, key: &str) -> std::sync::mpsc::Receiver<serde_json::Value> {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(api).unwrap();
    write!(
        socket,
        "GET /api/v1/signals/stream HTTP/1.1\r\nhost: {api}\r\nauthorization: Bearer {key}\r\naccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        let mut buffer = [0u8; 8192];
        while let Ok(read) = socket.read(&mut buffer) {
            if read == 0 {
                return;
            }
            seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
            // `event: signal` (new) or `event: status` (changed): the data is
            // the signal; the event's name is added to it as `_event`.
            while let Some(start) = seen.find("event: ") {
                let Some(name_end) = seen[start..].find('\n') else { break };
                let name = seen[start + "event: ".len()..start + name_end].to_string();
                let Some(data) = seen[start..].find("data: ") else { break };
                let rest = &seen[start + data + "data: ".len()..];
                let Some(end) = rest.find('\n') else { break };
                if let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&rest[..end]) {
                    value["_event"] = name.into();
                    let _ = sender.send(value);
                }
                seen = rest[end..].to_string();
            }
        }
    });
    receiver
}

#[test]
fn live_stream_of_new_signals_is_per_tenant_and_readyz() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms"]);
    assert_eq!(http(server.api, "GET", "/readyz", None, &[], None).0, 200);
    // Request ids: echoed when given, made up otherwise.
    let (_, headers, _) = http(server.api, "GET", "/healthz", None, &[("x-request-id", "abc-123")], None);
    assert!(headers.iter().any(|(name, value)| name == "x-request-id" && value == "abc-123"));
    let (_, headers, _) = http(server.api, "GET", "/api/v1/signals", None, &[], None);
    assert!(headers.iter().any(|(name, value)| name == "x-request-id" && value.len() == 16), "{headers:?}");
    let (_, admin) = server.tenant("acme");
    let (_, other) = server.tenant("globex");
    server.rule(&admin, "fraud", FRAUD_RULE);
    let reader = server.key(&admin, &["read"]);
    let mine = stream(server.api, &reader);
    let theirs = stream(server.api, &other);
    assert_eq!(http(server.api, "GET", "/api/v1/signals/stream", Some("fluo_wrong"), &[], None).0, 401);
    std::thread::sleep(Duration::from_millis(300));
    let trace = send_charge(&server, &admin, 0x41);
    let signal = mine.recv_timeout(Duration::from_secs(20)).expect("the signal arrives on the stream");
    assert_eq!(signal["_event"], "signal");
    assert_eq!(signal["trace_id"], trace);
    assert_eq!(signal["rule_name"], "fraud");
    assert!(theirs.recv_timeout(Duration::from_millis(1500)).is_err(), "another tenant's stream stays silent");
    // The streamed signal is already stored.
    assert_eq!(server.signals(&admin, &format!("?trace_id={trace}")).len(), 1);
    // A status change reaches the tenant's open streams too.
    let id = signal["id"].as_str().unwrap();
    let (status, _) = server.api(
        "POST",
        &format!("/api/v1/signals/{id}/status"),
        Some(&admin),
        Some(&json!({"status": "acknowledged", "note": "on it"})),
    );
    assert_eq!(status, 200);
    let changed = mine.recv_timeout(Duration::from_secs(10)).expect("the status change arrives on the stream");
    assert_eq!(
        (changed["_event"].as_str(), changed["id"].as_str(), changed["status"].as_str()),
        (Some("status"), Some(id), Some("acknowledged"))
    );
    assert!(theirs.recv_timeout(Duration::from_millis(500)).is_err(), "another tenant's stream stays silent");
}

/// A signal that FLUO clears itself (spans that arrived later satisfy the
/// rule) reaches the live stream like a change made through the API.
#[test]
fn an_automatic_clear_reaches_the_live_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms"]);
    let (_, admin) = server.tenant("acme");
    server.rule(&admin, "fraud", FRAUD_RULE);
    let events = stream(server.api, &admin);
    std::thread::sleep(Duration::from_millis(300));
    let trace = send_charge(&server, &admin, 0x42);
    let signal = events.recv_timeout(Duration::from_secs(20)).expect("the signal arrives on the stream");
    assert_eq!((signal["_event"].as_str(), signal["trace_id"].as_str()), (Some("signal"), Some(trace.as_str())));
    // The fraud check arrives after the trace was evaluated: the amended trace
    // no longer violates the rule, so FLUO resolves the signal as cleared.
    let late = request(vec![span(0x42, 2, "payment.fraud_check")]).encode_to_vec();
    let (status, _, _) = http(server.http, "POST", "/v1/traces", Some(&admin), &[("content-type", "application/x-protobuf")], Some(&late));
    assert_eq!(status, 200);
    let changed = events.recv_timeout(Duration::from_secs(20)).expect("the automatic change arrives on the stream");
    assert_eq!(
        (changed["_event"].as_str(), changed["id"].as_str(), changed["status"].as_str()),
        (Some("status"), signal["id"].as_str(), Some("resolved")),
        "{changed}"
    );
    assert_eq!(changed["resolution"]["reason"], "cleared", "{changed}");
    assert_eq!(changed["history"][0]["author"], "fluo", "{changed}");
}

#[test]
fn webhooks_are_signed_retried_filtered_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms", "--webhook-allow-private-targets"]);
    let (_, admin) = server.tenant("acme");
    let (_, other) = server.tenant("globex");
    server.rule(&admin, "fraud", FRAUD_RULE);
    let (addr, received) = common::webhook_receiver(1);
    let (low_addr, low_received) = common::webhook_receiver(1);
    let (status, hook) = server.api(
        "POST",
        "/api/v1/webhooks",
        Some(&admin),
        Some(&json!({"url": format!("http://{addr}/hook"), "severities": ["high", "critical"]})),
    );
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_string();
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let (status, _) = server.api(
        "POST",
        "/api/v1/webhooks",
        Some(&admin),
        Some(&json!({"url": format!("http://{low_addr}/hook"), "severities": ["low"]})),
    );
    assert_eq!(status, 201);
    assert_eq!(server.api("POST", "/api/v1/webhooks", Some(&admin), Some(&json!({"url": "ftp://x"}))).0, 400);
    let (_, listed) = server.api("GET", "/api/v1/webhooks", Some(&admin), None);
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains(&secret), "the secret is shown once");

    let trace = send_charge(&server, &admin, 0x51);
    // First attempt gets 500, the retry (after 1 s) is delivered.
    let (first_headers, first) = received.recv_timeout(Duration::from_secs(20)).expect("first attempt");
    let (headers, body) = received.recv_timeout(Duration::from_secs(20)).expect("retry");
    assert_eq!(first, body, "the retry sends the same body");
    let value = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).unwrap();
    for same in ["x-fluo-delivery", "x-fluo-timestamp", "x-fluo-signature"] {
        let before = first_headers.iter().find(|(key, _)| key == same).map(|(_, value)| value.clone());
        assert_eq!(before, Some(value(same)), "a retry repeats {same}");
    }
    assert!(value("x-fluo-delivery").starts_with("d_"));
    let timestamp: u64 = value("x-fluo-timestamp").parse().unwrap();
    assert_eq!(value("x-fluo-signature"), fluo::webhooks::signature(&secret, timestamp, &body), "HMAC-SHA256 over timestamp.body");
    assert_ne!(value("x-fluo-signature"), fluo::webhooks::signature("whsec_wrong", timestamp, &body));
    let payload: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["signal"]["trace_id"], trace);
    assert!(low_received.recv_timeout(Duration::from_millis(1000)).is_err(), "a webhook for other severities gets nothing");

    let (status, log) = server.api("GET", &format!("/api/v1/webhooks/{hook_id}/deliveries"), Some(&admin), None);
    assert_eq!(status, 200);
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{log}");
    assert_eq!((items[0]["attempt"].as_u64(), items[0]["delivered"].as_bool()), (Some(2), Some(true)));
    // Delivered or not; the receiver's own answer (500) is not shown.
    assert_eq!(
        (items[1]["attempt"].as_u64(), items[1]["delivered"].as_bool(), items[1]["error"].as_str()),
        (Some(1), Some(false), Some("not delivered"))
    );
    // Only these fields; ids and timestamps may contain the digits "500" by chance, so look at keys, not text.
    for item in items {
        let keys: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["at", "attempt", "delivered", "error", "signal_id"], "{log}");
    }
    assert_eq!(server.api("GET", &format!("/api/v1/webhooks/{hook_id}/deliveries"), Some(&other), None).0, 404);
    assert_eq!(server.api("DELETE", &format!("/api/v1/webhooks/{hook_id}"), Some(&other), None).0, 404);
    assert_eq!(server.api("DELETE", &format!("/api/v1/webhooks/{hook_id}"), Some(&admin), None).0, 204);
}

const LOOPING_RULE: &str = "export default function (trace) { while (true) {} }";
const CHARGE_SEEN: &str = r#"export default rule({ severity: "low",
  when: trace.has(s => s.name === "payment.charge_card"), expect: trace.has(s => s.name === "nothing"), message: "a charge was seen" });"#;

#[test]
fn signal_filters_counts_and_per_rule_figures() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms"]);
    let (_, admin) = server.tenant("acme");
    let (_, other) = server.tenant("globex");
    let fraud = server.rule(&admin, "fraud", FRAUD_RULE)["id"].as_str().unwrap().to_string();
    let seen = server.rule(&admin, "seen", CHARGE_SEEN)["id"].as_str().unwrap().to_string();
    let looping = server.rule(&admin, "loop", LOOPING_RULE)["id"].as_str().unwrap().to_string();
    send_charge(&server, &admin, 0x61);
    assert_eq!(server.wait_signals(&admin, "", 2, Duration::from_secs(20)).len(), 2);
    let middle = fluo::model::time::now_ms();
    std::thread::sleep(Duration::from_millis(20));
    // Version 2 of "seen" fires on the next trace.
    server.rule(&admin, "seen", &CHARGE_SEEN.replace("a charge was seen", "seen again"));
    // The same violations on another trace are further occurrences of the two groups.
    send_charge(&server, &admin, 0x62);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !server.signals(&admin, "").iter().all(|group| group["occurrences"] == 2) {
        assert!(std::time::Instant::now() < deadline, "{:?}", server.signals(&admin, ""));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.signals(&admin, "").len(), 2, "two groups, not four signals");

    let ids = |query: &str| -> Vec<String> {
        server
            .signals(&admin, query)
            .iter()
            .map(|signal| signal["trace_id"].as_str().unwrap().to_string() + "/" + signal["rule_name"].as_str().unwrap())
            .collect()
    };
    assert_eq!(ids(&format!("?rule={seen}&version=2")), [format!("{}/seen", hex_trace(0x62))]);
    assert_eq!(ids(&format!("?until={middle}")).len(), 2, "until is exclusive and by creation (first occurrence) time");
    assert_eq!(ids(&format!("?since={middle}")).len(), 2, "since is by last seen: both groups were seen again after");
    let later = fluo::model::time::now_ms() + 60_000;
    assert_eq!(ids(&format!("?since={later}")).len(), 0, "neither was seen after");
    assert_eq!(ids("?q=SEEN+AGAIN"), [format!("{}/seen", hex_trace(0x62))], "q is case-insensitive text in the message");
    assert_eq!(ids("?q=fraud&severity=high").len(), 1, "q also matches the rule name");
    assert_eq!(ids("?q=nothing-like-this"), Vec::<String>::new());
    let long_text = format!("?q={}", "x".repeat(300));
    for bad in ["?version=0", "?limit=0", "?limit=501", "?until=yesterday", "?status=closed", &long_text] {
        let (status, body) = server.api("GET", &format!("/api/v1/signals{bad}"), Some(&admin), None);
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(server.api("GET", &format!("/api/v1/signals/counts{bad}"), Some(&admin), None).0, 400, "{bad}");
    }

    let (status, counts) = server.api("GET", "/api/v1/signals/counts", Some(&admin), None);
    assert_eq!(status, 200);
    assert_eq!(counts["total"], 2);
    assert_eq!((counts["by_severity"]["high"].as_u64(), counts["by_severity"]["low"].as_u64()), (Some(1), Some(1)));
    assert_eq!(counts["by_severity"]["critical"], 0, "every severity is listed");
    assert_eq!(counts["by_status"]["open"], 2);
    let by_rule = counts["by_rule"].as_array().unwrap();
    assert_eq!(by_rule.len(), 2, "{counts}");
    assert!(by_rule.iter().all(|rule| rule["count"] == 1));
    let (_, filtered) = server.api("GET", &format!("/api/v1/signals/counts?rule={fraud}"), Some(&admin), None);
    assert_eq!((filtered["total"].as_u64(), filtered["by_rule"][0]["rule_name"].as_str()), (Some(1), Some("fraud")));
    let (_, theirs) = server.api("GET", "/api/v1/signals/counts", Some(&other), None);
    assert_eq!(theirs["total"], 0, "another tenant counts nothing of ours");
    // Occurrences per time bucket: two 5-minute buckets around the middle (the
    // series count by the minute, so the middle's minute goes to one of them).
    let since = middle - 5 * 60_000;
    let (status, series) = server.api("GET", &format!("/api/v1/signals/counts?since={since}&bucket_minutes=5"), Some(&admin), None);
    assert_eq!(status, 200, "{series}");
    let buckets = series["series"].as_array().unwrap();
    assert_eq!(buckets.len(), 2, "{series}");
    assert_eq!((buckets[0]["start_unix_ms"].as_u64(), buckets[1]["start_unix_ms"].as_u64()), (Some(since), Some(middle)));
    assert_eq!(buckets[0]["total"].as_u64().unwrap() + buckets[1]["total"].as_u64().unwrap(), 4, "{series}");
    let of = |rule: &str| buckets.iter().map(|bucket| bucket["by_rule"][rule].as_u64().unwrap_or(0)).sum::<u64>();
    assert_eq!((of(&fraud), of(&seen)), (2, 2), "{series}");
    let (_, one_rule) =
        server.api("GET", &format!("/api/v1/signals/counts?since={since}&bucket_minutes=5&rule={fraud}"), Some(&admin), None);
    let total: u64 = one_rule["series"].as_array().unwrap().iter().map(|bucket| bucket["total"].as_u64().unwrap()).sum();
    assert_eq!(total, 2, "the series follows the rule filter: {one_rule}");
    assert!(counts.get("series").is_none(), "no series unless asked for");
    for bad in ["?bucket_minutes=5", "?since=0&bucket_minutes=1", "?since=0&bucket_minutes=0", "?since=0&bucket_minutes=1441"] {
        assert_eq!(server.api("GET", &format!("/api/v1/signals/counts{bad}"), Some(&admin), None).0, 400, "{bad}");
    }
    assert_eq!(server.api("GET", &format!("/api/v1/signals?since={since}&bucket_minutes=5"), Some(&admin), None).0, 400, "counts only");

    let (_, rules) = server.api("GET", "/api/v1/rules", Some(&admin), None);
    let rule = |id: &str| rules["items"].as_array().unwrap().iter().find(|rule| rule["id"] == id).unwrap().clone();
    let (fraud_info, loop_info) = (rule(&fraud), rule(&looping));
    assert_eq!((fraud_info["stats"]["calls"].as_u64(), fraud_info["stats"]["failures"].as_u64()), (Some(2), Some(0)));
    assert_eq!((fraud_info["stats"]["signals_created"].as_u64(), fraud_info["occurrences_24h"].as_u64()), (Some(1), Some(2)));
    assert!(fraud_info["stats"]["fuel_used"].as_u64().unwrap() > 0);
    assert_eq!((loop_info["stats"]["failures"].as_u64(), loop_info["stats"]["last_failure"].as_str()), (Some(2), Some("out_of_fuel")));
    assert_eq!(loop_info["occurrences_24h"], 0);
    let (_, _, text) = http(server.api, "GET", "/metrics", Some(common::OPERATOR_KEY), &[], None);
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.lines().any(|line| line.starts_with("fluo_rule_failures_total{") && line.contains(&looping) && line.ends_with(" 2")),
        "{text}"
    );
    assert!(text.lines().any(|line| line.starts_with("fluo_rule_signals_created_total{") && line.contains(&fraud) && line.ends_with(" 1")));
    assert!(text.lines().any(|line| line == "fluo_signals_total{result=\"occurrence\"} 2"), "{text}");
}

#[test]
fn the_console_is_served_at_the_root_with_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let web = tempfile::tempdir().unwrap();
    std::fs::create_dir(web.path().join("assets")).unwrap();
    std::fs::write(web.path().join("index.html"), "<!doctype html><title>FLUO console</title>").unwrap();
    std::fs::write(web.path().join("assets/app-1a2b.js"), "export {}").unwrap();
    let server = Server::start(dir.path(), &["--web-dir", web.path().to_str().unwrap()]);
    let header = |headers: &[(String, String)], name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    for page in ["/", "/signals/0123", "/rules/new?template=x"] {
        let (status, headers, body) = http(server.api, "GET", page, None, &[], None);
        assert_eq!(status, 200, "{page}");
        assert!(String::from_utf8_lossy(&body).contains("FLUO console"), "{page} is the console's page");
        let csp = header(&headers, "content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(header(&headers, "x-content-type-options").as_deref(), Some("nosniff"));
    }
    let (status, headers, _) = http(server.api, "GET", "/assets/app-1a2b.js", None, &[], None);
    assert_eq!((status, header(&headers, "content-type").as_deref()), (200, Some("text/javascript; charset=utf-8")));
    assert_eq!(http(server.api, "GET", "/assets/missing.js", None, &[], None).0, 404);
    // The API keeps its own answers: JSON errors, never the console's page.
    let (status, headers, body) = http(server.api, "GET", "/api/v1/nothing-here", None, &[], None);
    assert_eq!((status, header(&headers, "content-type").as_deref()), (404, Some("application/json")));
    assert!(String::from_utf8_lossy(&body).contains("no such endpoint"));
    assert_eq!(http(server.api, "POST", "/rules", None, &[], None).0, 404, "only GET reaches the console");

    // Without a built console the API still works and `/` says how to build it.
    let bare = tempfile::tempdir().unwrap();
    let server = Server::start(bare.path(), &["--web-dir", bare.path().join("missing").to_str().unwrap()]);
    let (status, _, body) = http(server.api, "GET", "/", None, &[], None);
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("make build"));
    assert_eq!(http(server.api, "GET", "/healthz", None, &[], None).0, 200);
}

/// The whole server in-process: `app::serve_on` on listeners the test binds to
/// port 0, no child process and no log scraping; stopping it flushes the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_runs_in_process_on_listeners_the_test_binds() {
    use clap::Parser;
    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        serve: fluo::config::ServeArgs,
    }
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let loopback = "127.0.0.1:0";
    let args = Args::parse_from([
        "fluo",
        "--data-dir",
        data_dir,
        "--operator-key",
        common::OPERATOR_KEY,
        "--trace-idle",
        "200ms",
        "--grpc-addr",
        loopback,
        "--http-addr",
        loopback,
        "--api-addr",
        loopback,
    ]);
    let config = fluo::config::Config::from_args(args.serve).unwrap();
    let (services, _) = fluo::app::Services::open(&config, None).unwrap();
    let listeners = fluo::app::Listeners::bind(&config).await.unwrap();
    let (api, otlp) = (listeners.api.local_addr().unwrap(), listeners.http.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let client = tokio::task::spawn_blocking(move || {
        let call = |method: &str, path: &str, key: &str, body: serde_json::Value| {
            let (status, _, bytes) =
                http(api, method, path, Some(key), &[("content-type", "application/json")], Some(body.to_string().as_bytes()));
            (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default())
        };
        let (status, tenant) = call("POST", "/api/v1/tenants", common::OPERATOR_KEY, json!({"name": "acme"}));
        assert_eq!(status, 201, "{tenant}");
        let admin = tenant["admin_key"].as_str().unwrap().to_string();
        assert_eq!(call("POST", "/api/v1/rules", &admin, json!({"name": "fraud", "source": FRAUD_RULE})).0, 201);
        let charge = request(vec![span(0x61, 1, "payment.charge_card")]).encode_to_vec();
        let (status, _, _) = http(otlp, "POST", "/v1/traces", Some(&admin), &[("content-type", "application/x-protobuf")], Some(&charge));
        assert_eq!(status, 200);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, _, bytes) = http(api, "GET", "/api/v1/signals", Some(&admin), &[], None);
            let signals: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            if signals["items"].as_array().is_some_and(|items| items.len() == 1) {
                return signals["items"][0]["trace_id"].as_str().unwrap().to_string();
            }
            assert!(std::time::Instant::now() < deadline, "no signal: {signals}");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let server = fluo::app::serve_on(&config, &services, listeners, async {
        let _ = stopped.await;
    });
    let stopping = async {
        let result = client.await;
        let _ = stop.send(());
        result
    };
    let (served, trace) = tokio::join!(server, stopping);
    served.unwrap();
    assert_eq!(trace.unwrap(), "61".repeat(16));
    services.stop().unwrap();
}
