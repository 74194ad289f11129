//! Rules as code, as a CI job runs it: `fluo rules test DIR` (cases beside
//! the rules, exit codes, JUnit XML) and `fluo rules apply DIR` against a real
//! server (plan, apply, prune, refusals); and drafts: a version saved without
//! running, backtested with per-trace verdicts, then activated.

mod common;

use common::{FRAUD_RULE, Server, send_charge, send_span};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A copy of `tests/fixtures/rules-dir` to change.
fn rules_dir(into: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules-dir");
    let target = into.join("rules");
    std::fs::create_dir_all(target.join("traces")).unwrap();
    for sub in ["", "traces"] {
        for entry in std::fs::read_dir(source.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, target.join(sub).join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    target
}

fn fluo(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(common::binary());
    command.args(args).arg(dir).env("RUST_BACKTRACE", "0").env_remove("FLUO_API_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run fluo")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn rules_test_runs_a_directory_against_its_cases_and_gates_ci() {
    let temp = tempfile::tempdir().unwrap();
    let dir = rules_dir(temp.path());
    let junit = temp.path().join("junit.xml");
    let junit_arg = junit.to_str().unwrap();

    let output = fluo(&["rules", "test", "--junit", junit_arg], &dir, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("5 cases: 5 passed, 0 failed, 0 errors; 2 rules"), "{}", text(&output));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="5""#) && xml.contains(r#"failures="0""#), "{xml}");
    assert!(xml.contains(r#"<testcase name="a charge without a fraud check" classname="payment-needs-fraud-check""#), "{xml}");

    // A failing expectation: exit 1, the case named with why, a JUnit failure.
    let cases = dir.join("payment-needs-fraud-check.test.json");
    let changed = std::fs::read_to_string(&cases)
        .unwrap()
        .replace(r#""traces/no-charge.json", "expect": "none""#, r#""traces/no-charge.json", "expect": "violation""#);
    std::fs::write(&cases, changed).unwrap();
    let output = fluo(&["rules", "test", "--junit", junit_arg], &dir, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("FAIL   no charge at all: expected a violation, found none (its `when` did not hold)"),
        "{}",
        text(&output)
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"failures="1""#) && xml.contains("<failure"), "{xml}");

    // A witness that is not among the violation's spans fails too.
    let cases = dir.join("no-bypass.test.json");
    std::fs::write(&cases, r#"{"cases": [{"trace": "traces/bypass.json", "expect": "violation", "witnesses": ["payment.refund"]}]}"#)
        .unwrap();
    let output = fluo(&["rules", "test", "--json"], &dir, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let case = &report["rules"][0]["cases"][0];
    assert_eq!((case["name"].as_str(), case["result"].as_str()), (Some("traces/bypass.json"), Some("failed")), "{report}");
    assert!(case["message"].as_str().unwrap().contains(r#"expected witness span "payment.refund""#), "{report}");

    // A rule whose source declares another name than its file's: exit 2.
    std::fs::write(dir.join("other-name.js"), "export default rule({ name: 'not-other-name', when: trace.has('x') });").unwrap();
    let output = fluo(&["rules", "test"], &dir, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("declares name \"not-other-name\" but the file is other-name.js"), "{}", text(&output));
    std::fs::remove_file(dir.join("other-name.js")).unwrap();

    // A rule that throws on a case's trace: exit 4; an unreadable cases file: exit 3.
    std::fs::write(dir.join("thrower.js"), "export default function (trace) { throw new Error('boom'); }").unwrap();
    std::fs::write(dir.join("thrower.test.json"), r#"{"cases": [{"trace": "traces/bypass.json", "expect": "none"}]}"#).unwrap();
    let output = fluo(&["rules", "test"], &dir, &[]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    assert!(text(&output).contains("the rule failed: Error: boom"), "{}", text(&output));
    std::fs::write(dir.join("thrower.test.json"), r#"{"cases": [{"trace": "traces/missing.json", "expect": "none"}]}"#).unwrap();
    let output = fluo(&["rules", "test"], &dir, &[]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    std::fs::write(dir.join("thrower.test.json"), r#"{"cases": [{"trace": "traces/bypass.json", "expect": "none", "extra": 1}]}"#).unwrap();
    let output = fluo(&["rules", "test"], &dir, &[]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(text(&output).contains("unknown field `extra`"), "{}", text(&output));

    // An empty directory is an error, not a silent pass.
    let empty = temp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(fluo(&["rules", "test"], &empty, &[]).status.code(), Some(3));
}

#[test]
fn rules_apply_plans_applies_and_prunes_through_the_api() {
    let temp = tempfile::tempdir().unwrap();
    let dir = rules_dir(temp.path());
    let server = Server::start(&temp.path().join("data"), &[]);
    let (_, admin) = server.tenant("acme");
    let writer = server.key(&admin, &["read", "write"]);
    let api = format!("http://{}", server.api);
    let with_key = |key: &str| vec![("FLUO_API_KEY", key.to_string()), ("FLUO_API", api.clone())];
    let run = |args: &[&str], key: &str| {
        let env = with_key(key);
        let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
        fluo(args, &dir, &env)
    };
    let names = || -> Vec<String> {
        let (_, listed) = server.api("GET", "/api/v1/rules", Some(&admin), None);
        let mut names: Vec<String> = listed["items"].as_array().unwrap().iter().map(|rule| rule["name"].as_str().unwrap().into()).collect();
        names.sort();
        names
    };
    server.rule(&admin, "legacy", FRAUD_RULE);

    // The plan, as a CI job's check step sees it: changes to make → exit 1.
    let output = run(&["rules", "apply", "--dry-run"], &writer);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let plan = text(&output);
    assert!(plan.contains("create     no-bypass  (new rule, version 1)"), "{plan}");
    assert!(plan.contains("create     payment-needs-fraud-check"), "{plan}");
    assert!(plan.contains("keep       legacy  (not in the directory; --prune would delete it)"), "{plan}");
    assert!(plan.contains("2 change(s) to make"), "{plan}");
    assert_eq!(names(), ["legacy"], "a dry run changes nothing");

    let output = run(&["rules", "apply", "--message", "from CI"], &writer);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(names(), ["legacy", "no-bypass", "payment-needs-fraud-check"]);
    let (_, listed) = server.api("GET", "/api/v1/rules", Some(&admin), None);
    let fraud = listed["items"].as_array().unwrap().iter().find(|rule| rule["name"] == "payment-needs-fraud-check").unwrap().clone();
    let (_, versions) = server.api("GET", &format!("/api/v1/rules/{}/versions", fraud["id"].as_str().unwrap()), Some(&admin), None);
    assert_eq!(versions["items"][0]["message"], "from CI");
    let output = run(&["rules", "apply", "--dry-run"], &writer);
    assert_eq!(output.status.code(), Some(0), "in sync: {}", text(&output));
    assert!(text(&output).contains("unchanged  no-bypass"), "{}", text(&output));

    // A changed file is a new version; --prune deletes what has no file (a write key).
    let file = dir.join("no-bypass.js");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("'high'", "'critical'")).unwrap();
    let output = run(&["rules", "apply", "--dry-run", "--prune"], &writer);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains("update     no-bypass  (new version 2)"), "{}", text(&output));
    assert!(text(&output).contains("delete     legacy"), "{}", text(&output));
    let output = run(&["rules", "apply", "--prune"], &writer);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(names(), ["no-bypass", "payment-needs-fraud-check"]);
    let (_, listed) = server.api("GET", "/api/v1/rules", Some(&admin), None);
    let bypass = listed["items"].as_array().unwrap().iter().find(|rule| rule["name"] == "no-bypass").unwrap().clone();
    assert_eq!((bypass["active_version"].as_u64(), bypass["severity"].as_str()), (Some(2), Some("critical")));

    // Invalid rules stop everything before any change (exit 2): a compile
    // error with its place, and a source that names itself otherwise.
    std::fs::write(dir.join("broken.js"), "export default rule({\n  when: )\n});").unwrap();
    std::fs::write(dir.join("misnamed.js"), "export default rule({ name: 'another', when: trace.has('x') });").unwrap();
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("'critical'", "'low'")).unwrap();
    let output = run(&["rules", "apply"], &writer);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("broken.js:2:"), "{}", text(&output));
    assert!(text(&output).contains("misnamed.js: the source declares name \"another\""), "{}", text(&output));
    let (_, bypass_now) = server.api("GET", &format!("/api/v1/rules/{}", bypass["id"].as_str().unwrap()), Some(&admin), None);
    assert_eq!(bypass_now["active_version"], 2, "nothing was applied");
    std::fs::remove_file(dir.join("broken.js")).unwrap();
    std::fs::remove_file(dir.join("misnamed.js")).unwrap();

    // No key: exit 3; a wrong key or a read-only one: exit 4, with the API's reason.
    assert_eq!(fluo(&["rules", "apply"], &dir, &[("FLUO_API", api.as_str())]).status.code(), Some(3));
    let output = run(&["rules", "apply"], "fluo_wrong_key");
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    assert!(text(&output).contains("answered 401"), "{}", text(&output));
    let reader = server.key(&admin, &["read"]);
    let output = run(&["rules", "apply"], &reader);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    assert!(text(&output).contains("answered 403"), "{}", text(&output));
    // Nothing listens here: exit 4.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let output = fluo(&["rules", "apply"], &dir, &[("FLUO_API_KEY", writer.as_str()), ("FLUO_API", &format!("http://{closed}"))]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));

    // --draft stores the change without running it.
    let output = run(&["rules", "apply", "--draft"], &writer);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let (_, bypass_now) = server.api("GET", &format!("/api/v1/rules/{}", bypass["id"].as_str().unwrap()), Some(&admin), None);
    assert_eq!((bypass_now["active_version"].as_u64(), bypass_now["latest_version"].as_u64()), (Some(2), Some(3)), "{bypass_now}");
    assert_eq!(bypass_now["has_draft"], true);
    assert!(bypass_now["draft"]["source"].as_str().unwrap().contains("'low'"));
    let output = run(&["rules", "apply", "--draft", "--dry-run"], &writer);
    assert_eq!(output.status.code(), Some(0), "the draft is the latest source: {}", text(&output));
}

/// Sends trace `trace` with a fraud check and a charge (two spans, one request).
fn send_checked_charge(server: &Server, key: &str, trace: u8) {
    use prost::Message as _;
    let spans = vec![common::span(trace, 1, "payment.fraud_check"), common::span(trace, 2, "payment.charge_card")];
    let body = common::request(spans).encode_to_vec();
    let headers = [("content-type", "application/x-protobuf")];
    assert_eq!(common::http(server.http, "POST", "/v1/traces", Some(key), &headers, Some(&body)).0, 200);
}

#[test]
fn a_draft_is_backtested_with_verdicts_and_fires_only_once_activated() {
    let temp = tempfile::tempdir().unwrap();
    let server = Server::start(temp.path(), &["--trace-idle", "200ms"]);
    let (_, admin) = server.tenant("acme");

    // Retained traces: a charge without a check, one with a check, one without a charge.
    let bare = send_charge(&server, &admin, 0x41);
    send_checked_charge(&server, &admin, 0x42);
    send_span(&server, &admin, 0x43, "catalog.list");
    std::thread::sleep(Duration::from_millis(800));

    // An unsaved source, backtested: each trace's verdict.
    let (status, report) = server.api("POST", "/api/v1/rules/backtest", Some(&admin), Some(&json!({"source": FRAUD_RULE, "limit": 100})));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["traces_evaluated"], 3, "{report}");
    assert_eq!(
        (&report["traces_with_violations"], &report["traces_held"], &report["traces_when_failed"], &report["traces_failed"]),
        (&json!(1), &json!(1), &json!(1), &json!(0)),
        "{report}"
    );
    let verdicts: Vec<(&str, &str)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| (result["trace_id"].as_str().unwrap(), result["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        verdicts,
        [(bare.as_str(), "violation"), (common::hex_trace(0x42).as_str(), "held"), (common::hex_trace(0x43).as_str(), "when_failed")]
    );
    assert_eq!((report["rule"]["form"].as_str(), report["rule"]["severity"].as_str()), (Some("rule"), Some("high")));
    assert!(report.get("rule_id").is_none());
    let (status, error) = server.api("POST", "/api/v1/rules/backtest", Some(&admin), Some(&json!({"source": "export default rule({"})));
    assert_eq!(status, 422, "{error}");
    let (status, _) = server.api("POST", "/api/v1/rules/backtest", Some(&admin), Some(&json!({"source": FRAUD_RULE, "limit": 0})));
    assert_eq!(status, 400);
    let reader = server.key(&admin, &["read"]);
    assert_eq!(server.api("POST", "/api/v1/rules/backtest", Some(&reader), Some(&json!({"source": FRAUD_RULE}))).0, 403);

    // A rule has one name: a source that declares another is refused.
    let (status, error) = server.api(
        "POST",
        "/api/v1/rules",
        Some(&admin),
        Some(&json!({"name": "other", "source": FRAUD_RULE.replace("severity:", "name: \"fraud\", severity:")})),
    );
    assert_eq!((status, error["error"]["code"].as_str()), (422, Some("name_mismatch")), "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains(r#"declares name "fraud" but the rule is "other""#), "{error}");

    // Saved as a draft: stored, not active, not running.
    let (status, created) =
        server.api("POST", "/api/v1/rules", Some(&admin), Some(&json!({"name": "fraud", "source": FRAUD_RULE, "draft": true})));
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["version"].as_u64(), created["active"].as_bool()), (Some(1), Some(false)));
    let id = created["id"].as_str().unwrap().to_string();
    let (_, rule) = server.api("GET", &format!("/api/v1/rules/{id}"), Some(&admin), None);
    assert_eq!((rule["active_version"].as_u64(), rule["has_draft"].as_bool()), (Some(0), Some(true)), "{rule}");
    assert!(rule.get("active").is_none() && rule["draft"]["version"] == 1, "{rule}");
    send_charge(&server, &admin, 0x44);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(server.signals(&admin, "").is_empty(), "a draft does not fire");

    // The draft's backtest names its version; the default (active) needs one.
    let (status, report) = server.api("POST", &format!("/api/v1/rules/{id}/backtest"), Some(&admin), Some(&json!({"version": 1})));
    assert_eq!(status, 200, "{report}");
    assert_eq!((report["version"].as_u64(), report["traces_with_violations"].as_u64()), (Some(1), Some(2)), "{report}");
    assert_eq!(server.api("POST", &format!("/api/v1/rules/{id}/backtest"), Some(&admin), None).0, 400);

    // Activated, it fires on new traces.
    let (status, activated) = server.api("POST", &format!("/api/v1/rules/{id}/activate"), Some(&admin), Some(&json!({"version": 1})));
    assert_eq!((status, activated["active_version"].as_u64(), activated["has_draft"].as_bool()), (200, Some(1), Some(false)));
    send_charge(&server, &admin, 0x45);
    let signals = server.wait_signals(&admin, "", 1, Duration::from_secs(10));
    assert_eq!(signals[0]["rule_name"], "fraud");

    let (status, error) = server.api(
        "PUT",
        &format!("/api/v1/rules/{id}"),
        Some(&admin),
        Some(&json!({"source": "export default rule({ name: 'renamed', when: trace.has('x') });"})),
    );
    assert_eq!((status, error["error"]["code"].as_str()), (422, Some("name_mismatch")), "{error}");

    // A draft of an active rule leaves the active version running.
    let v2 = FRAUD_RULE.replace("\"high\"", "\"low\"");
    let (status, stored) = server.api("PUT", &format!("/api/v1/rules/{id}"), Some(&admin), Some(&json!({"source": v2, "draft": true})));
    assert_eq!((status, stored["version"].as_u64(), stored["active"].as_bool()), (201, Some(2), Some(false)), "{stored}");
    let (_, listed) = server.api("GET", "/api/v1/rules", Some(&admin), None);
    let listed = &listed["items"][0];
    assert_eq!(
        (listed["active_version"].as_u64(), listed["latest_version"].as_u64(), listed["severity"].as_str()),
        (Some(1), Some(2), Some("high"))
    );
}
