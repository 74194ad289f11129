//! Hardening of the rule endpoints, against the real binary: deeply nested
//! sources get an answer instead of ending the process, diffs do not stall the
//! async workers, and a tenant's rules and versions are capped.

mod common;

use common::Server;
use serde_json::json;
use std::time::{Duration, Instant};

/// Item 1: 700 nested parentheses to the compile check, 1,000 `[` to
/// `POST /rules` and `/rules/test` used to overflow the parser's stack and
/// abort the server.
#[test]
fn deeply_nested_sources_are_refused_with_a_line_and_the_server_lives() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let (_, admin) = server.tenant("acme");

    let parentheses = format!("// typed in the editor\nexport default trace.has(s => {}s{});", "(".repeat(700), ")".repeat(700));
    let (status, verdict) = server.api("POST", "/api/v1/rules/compile", Some(&admin), Some(&json!({ "source": parentheses })));
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["compiles"], false, "{verdict}");
    assert_eq!(verdict["error"]["line"], 2, "{verdict}");
    assert!(verdict["error"]["message"].as_str().unwrap().contains("nests brackets"), "{verdict}");

    let brackets = format!("export default {}1{};", "[".repeat(1000), "]".repeat(1000));
    let (status, body) = server.api("POST", "/api/v1/rules", Some(&admin), Some(&json!({ "name": "deep", "source": brackets })));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "compile_error", "{body}");
    assert_eq!(body["error"]["line"], 1, "{body}");

    let (status, body) = server.api(
        "POST",
        "/api/v1/rules/test",
        Some(&admin),
        Some(&json!({ "source": "[".repeat(1000), "traces": {"resourceSpans": []} })),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "compile_error", "{body}");
    assert!(body["error"]["line"].is_u64(), "{body}");

    let operators = format!("export default {}x;", "!".repeat(100_000));
    let (status, body) = server.api("POST", "/api/v1/rules", Some(&admin), Some(&json!({ "name": "bangs", "source": operators })));
    assert_eq!(status, 422, "{body}");

    assert!(server.child.try_wait().unwrap().is_none(), "the server is still running");
    let (status, _, _) = common::http(server.api, "GET", "/healthz", None, &[], None);
    assert_eq!(status, 200);
    // An ordinary rule still compiles.
    server.rule(&admin, "fine", "export default trace.has(s => ((s.name === 'a')));");
}

/// A rule source of about `bytes` bytes: one rule line and comment lines
/// derived from `seed`, so that two seeds give unrelated line sets.
fn large_source(seed: u64, bytes: usize) -> String {
    let mut source = String::from("export default trace.has('payment.charge_card');\n");
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while source.len() + 40 < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        source.push_str(&format!("// {state:016x}{:016x}\n", state.rotate_left(29)));
    }
    source
}

/// Item 8: two concurrent diffs of 128 KiB versions used to run on the async
/// workers and stall `/healthz` for seconds. Now they run on the blocking
/// pool with a bounded diff search.
#[test]
fn large_diffs_do_not_stall_health_checks() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, admin) = server.tenant("acme");
    let created = server.rule(&admin, "big", &large_source(1, 125_000));
    let id = created["id"].as_str().unwrap().to_string();
    let (status, body) =
        server.api("PUT", &format!("/api/v1/rules/{id}"), Some(&admin), Some(&json!({ "source": large_source(2, 125_000) })));
    assert_eq!(status, 201, "{body}");

    let path = format!("/api/v1/rules/{id}/diff?from=1&to=2");
    let api = server.api;
    let diffs: Vec<_> = (0..4)
        .map(|_| {
            let (path, admin) = (path.clone(), admin.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let (status, _, body) = common::http(api, "GET", &path, Some(&admin), &[], None);
                (status, body.len(), started.elapsed())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    let polling_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < polling_until && !diffs.iter().all(|diff| diff.is_finished()) {
        let started = Instant::now();
        let (status, _, _) = common::http(api, "GET", "/healthz", None, &[], None);
        assert_eq!(status, 200);
        slowest = slowest.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    for diff in diffs {
        let (status, length, elapsed) = diff.join().unwrap();
        assert_eq!(status, 200, "diff answered after {elapsed:?}");
        assert!(length > 1000, "a real diff came back");
    }
    assert!(slowest < Duration::from_secs(1), "/healthz took {slowest:?} while diffs ran");
}

/// Item 15: rules per tenant and versions per rule are capped (409 `quota_exceeded`).
#[test]
fn rule_and_version_quotas_answer_409() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-rules-per-tenant", "2", "--max-versions-per-rule", "2"]);
    let (_, admin) = server.tenant("acme");
    let (_, other) = server.tenant("globex");
    let source = "export default trace.has('a');";
    let id = server.rule(&admin, "one", source)["id"].as_str().unwrap().to_string();
    server.rule(&admin, "one", source);
    let (status, body) = server.api("POST", "/api/v1/rules", Some(&admin), Some(&json!({ "name": "one", "source": source })));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    let (status, body) = server.api("PUT", &format!("/api/v1/rules/{id}"), Some(&admin), Some(&json!({ "source": source })));
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("quota_exceeded")), "{body}");
    server.rule(&admin, "two", source);
    let (status, body) = server.api("POST", "/api/v1/rules", Some(&admin), Some(&json!({ "name": "three", "source": source })));
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("quota_exceeded")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("2 rules"), "{body}");
    // Quotas are per tenant; deleting a rule makes room.
    server.rule(&other, "three", source);
    let (status, _) = server.api("DELETE", &format!("/api/v1/rules/{id}"), Some(&admin), None);
    assert_eq!(status, 204);
    server.rule(&admin, "three", source);
}
