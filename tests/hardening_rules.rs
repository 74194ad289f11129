//! Hardening of the rule endpoints, against the real binary: deeply nested
//! sources get an answer instead of ending the process, diffs do not stall the
//! async workers, a rule cannot multiply a witness, and a tenant's rules and
//! versions are capped.

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

/// A rule source of `lines` comment lines after the rule line, each
/// `//{marker}`: two markers give two versions that share no line but the
/// first, the worst case for a line diff (every line an edit).
fn comment_lines(marker: char, lines: usize) -> String {
    let mut source = String::from("export default trace.has('payment.charge_card');\n");
    for _ in 0..lines {
        source.push_str("//");
        source.push(marker);
        source.push('\n');
    }
    source
}

/// Item 8: diffs of two 128 KiB versions used to run on the async workers
/// with an unbounded search (for versions that share no line it is quadratic)
/// and stalled `/healthz` and other tenants' exports for seconds. Now they run
/// on the blocking pool with a bounded diff search.
#[test]
fn large_diffs_do_not_stall_health_checks() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, admin) = server.tenant("acme");
    let lines = 30_000;
    let created = server.rule(&admin, "big", &comment_lines('a', lines));
    let id = created["id"].as_str().unwrap().to_string();
    let (status, body) =
        server.api("PUT", &format!("/api/v1/rules/{id}"), Some(&admin), Some(&json!({ "source": comment_lines('b', lines) })));
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
    std::thread::sleep(Duration::from_millis(50));
    let mut slowest = Duration::ZERO;
    let polling_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < polling_until && !diffs.iter().all(|diff| diff.is_finished()) {
        let started = Instant::now();
        let (status, _, _) = common::http(api, "GET", "/healthz", None, &[], None);
        assert_eq!(status, 200);
        slowest = slowest.max(started.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(slowest < Duration::from_secs(1), "/healthz took {slowest:?} while diffs ran");
    for diff in diffs {
        let (status, length, elapsed) = diff.join().unwrap();
        assert!(elapsed < Duration::from_secs(15), "a diff took {elapsed:?}");
        assert_eq!(status, 200, "diff answered after {elapsed:?}");
        assert!(length > 1000, "a real diff came back");
    }
}

/// Item 3: a rule that patched the SDK's shared `Trace` prototype (so that
/// `span()` vouched for any id) returned thousands of case spellings of one
/// span id (1,000 fit in the fuel budget), and the host stored a full copy
/// of that span per spelling: one 60 KB span became a 60 MB signal. Now the SDK's classes are
/// frozen, ids are de-duplicated by their decoded value and witnesses capped.
#[test]
fn one_span_cannot_be_multiplied_into_a_huge_signal() {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms"]);
    let (_, admin) = server.tenant("acme");
    server.rule(
        &admin,
        "spellings",
        r#"export default function (t) {
            try { Object.getPrototypeOf(t).span = () => true; } catch (e) {}
            const id = t.spans[0].spanId;
            const variants = [];
            for (let i = 0; i < 1000; i++) {
                let variant = '';
                for (let k = 0; k < id.length; k++) variant += (i >> (k % 12)) & 1 ? id[k].toUpperCase() : id[k];
                variants.push(variant);
            }
            return { message: 'many spellings', spans: variants };
        }"#,
    );
    // Its signal says that a trace has been evaluated.
    server.rule(&admin, "sentinel", "export default rule({ when: trace.has('payment.charge_card'), message: 'checked' });");

    let mut big = common::span(0x33, 0xab, "payment.charge_card");
    big.attributes = (0..30)
        .map(|i| KeyValue {
            key: format!("blob.{i}"),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue("x".repeat(2000))) }),
            ..Default::default()
        })
        .collect();
    // A tenant's traces are evaluated and recorded in order: once the second
    // trace's sentinel occurrence is counted, the first trace's signals are there too.
    for spans in [vec![big], vec![common::span(0x35, 0x01, "payment.charge_card")]] {
        let body = common::request(spans).encode_to_vec();
        let (status, _, _) =
            common::http(server.http, "POST", "/v1/traces", Some(&admin), &[("content-type", "application/x-protobuf")], Some(&body));
        assert_eq!(status, 200);
        std::thread::sleep(Duration::from_millis(500));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.signals(&admin, "?q=checked").first().is_none_or(|group| group["occurrences"] != 2) {
        assert!(std::time::Instant::now() < deadline, "both traces were evaluated: {:?}", server.signals(&admin, "?q=checked"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _, list) = common::http(server.api, "GET", "/api/v1/signals", Some(&admin), &[], None);
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    for item in list["items"].as_array().unwrap() {
        let path = format!("/api/v1/signals/{}", item["id"].as_str().unwrap());
        let (status, _, signal) = common::http(server.api, "GET", &path, Some(&admin), &[], None);
        assert_eq!(status, 200);
        assert!(signal.len() < 256 * 1024, "{} bytes for one signal of a 60 KB span", signal.len());
        let signal: serde_json::Value = serde_json::from_slice(&signal).unwrap();
        assert!(signal["witnesses"].as_array().unwrap().len() <= 1, "one span, at most one witness");
    }
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
