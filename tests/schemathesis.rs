//! Schemathesis (from PyPI, installed by scripts/setup-python.sh) against the
//! OpenAPI document a real `fluo serve` serves: no 5xx, and no answer that
//! contradicts the document (status codes, content types, headers, response
//! schemas), schema-violating requests refused, unauthenticated requests
//! refused, created resources readable. The tenant has a rule, a signal from
//! an ingested trace, and a signed-in user before the run, so the operations
//! that need existing ids reach their logic.

mod common;

use common::*;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

#[test]
fn schemathesis_finds_no_server_error_and_no_contradiction_of_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms", "--webhook-allow-private-targets"]);
    let (tenant, admin) = server.tenant("fuzzed");
    server.rule(&admin, "fraud", FRAUD_RULE);
    let report = send(server.http, "http", &admin, &json!({"traces": [checkout(false)]}), &[]);
    assert_eq!(report["exit"], 0, "{report}");
    let signals = server.wait_signals(&admin, "", 1, Duration::from_secs(20));
    assert_eq!(signals.len(), 1, "the ingested trace gives a signal");
    let (signal, trace) = (signals[0]["id"].as_str().unwrap(), signals[0]["trace_id"].as_str().unwrap());
    let (status, _) = server.api(
        "POST",
        "/api/v1/users",
        Some(&admin),
        Some(&json!({"email": "fuzz@example.com", "password": "a long enough password", "role": "admin"})),
    );
    assert_eq!(status, 201);
    // Two sessions: one the fuzzer renews, one it signs out.
    let sign_in = || {
        let credentials = json!({"tenant": tenant, "email": "fuzz@example.com", "password": "a long enough password"});
        let (status, login) = server.api("POST", "/api/v1/auth/login", None, Some(&credentials));
        assert_eq!(status, 200, "{login}");
        login["token"].as_str().unwrap().to_string()
    };
    let (renewed, ended) = (sign_in(), sign_in());
    // The fuzzer's own key: it may not revoke it (DELETE /keys/{id} is excluded
    // below; tests/api.rs covers revocation), everything else it may do.
    let key = server.key(&admin, &["admin"]);

    let config = format!(
        r#"
headers = {{ Authorization = "Bearer {key}" }}

# A body over 1 MiB is refused with 413 before it is read: a rejection too.
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]

[[operations]]
include-path-regex = "^/(api/v1/tenants|metrics)$"
headers = {{ Authorization = "Bearer {OPERATOR_KEY}" }}

[[operations]]
include-path = "/api/v1/auth/renew"
headers = {{ Authorization = "Bearer {renewed}" }}

[[operations]]
include-path = "/api/v1/auth/logout"
headers = {{ Authorization = "Bearer {ended}" }}

[[operations]]
include-path-regex = "^/api/v1/signals/\\{{id\\}}"
parameters = {{ "path.id" = "{signal}" }}

[[operations]]
include-path = "/api/v1/traces/{{trace_id}}"
parameters = {{ "path.trace_id" = "{trace}" }}
"#
    );
    std::fs::write(dir.path().join("schemathesis.toml"), config).unwrap();
    let schemathesis = python().parent().unwrap().join("schemathesis");
    let seed = std::env::var("FLUO_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261127".into());
    let output = Command::new(&schemathesis)
        .current_dir(dir.path())
        .args(["run", &format!("http://{}/api/v1/openapi.json", server.api)])
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        // Endless by design (SSE); tests/api.rs reads it. A webhook's test send
        // connects to the fuzzer's URL at once (network tests stay on loopback);
        // tests/notifications.rs tests it.
        .args([
            "--exclude-path",
            "/api/v1/signals/stream",
            "--exclude-operation-id",
            "revoke_key",
            "--exclude-operation-id",
            "test_webhook",
        ])
        .args(["--max-examples", "25", "--workers", "1", "--seed", &seed, "--no-color"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis (scripts/setup-python.sh installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{text}");
    assert!(output.status.success(), "schemathesis failed (seed {seed}):\n{text}");
    let tested = text.lines().find(|line| line.trim_start().starts_with("Tested:")).unwrap_or_default();
    assert!(tested.contains("Tested: 51"), "every operation but the three excluded ran: {tested:?}");
    let (status, after) = server.api("GET", &format!("/api/v1/signals/{signal}"), Some(&admin), None);
    assert_eq!(status, 200, "the run left the signal readable: {after}");
}
