//! Hardening of the rule endpoints, against the real binary: deeply nested
//! sources get an answer instead of ending the process.

mod common;

use common::Server;
use serde_json::json;

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
