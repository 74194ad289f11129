//! The `fluo` binary as a user runs it: `rules test` of one rule (report,
//! --json, exit codes), `serve` starting and stopping, `demo`. Rules as code
//! (`rules test DIR`, `rules apply`) are in tests/rules_as_code.rs.

mod common;

use common::{OPERATOR_KEY, Server};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fluo() -> Command {
    let mut command = Command::new(common::binary());
    command.env("RUST_BACKTRACE", "0");
    command
}

fn fixture(case: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules").join(case).join(file)
}

#[test]
fn rules_test_reports_violations_and_witnesses() {
    let output = fluo()
        .args(["rules", "test"])
        .arg(fixture("rule_expect_violation", "rule.js"))
        .arg("--trace")
        .arg(fixture("rule_expect_violation", "trace.json"))
        .arg("--trace")
        .arg(fixture("rule_expect_satisfied", "trace.json"))
        .output()
        .expect("run fluo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("1 violation(s)"), "{stdout}");
    assert!(stdout.contains("[critical] payment charged without fraud check"), "{stdout}");
    assert!(stdout.contains("a000000000000002  payment.charge_card"), "{stdout}");
    assert!(stdout.contains("no violations"), "{stdout}");
    assert!(stdout.contains("fuel "), "{stdout}");
}

#[test]
fn rules_test_json_has_the_documented_shape() {
    let output = fluo()
        .args(["rules", "test", "--json"])
        .arg(fixture("check_function_violations", "rule.js"))
        .arg("--trace")
        .arg(fixture("check_function_violations", "trace.json"))
        .output()
        .expect("run fluo");
    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["rule"]["form"], "check");
    assert_eq!(report["plugin_hash"].as_str().expect("hash").len(), 64);
    let trace = &report["traces"][0];
    assert_eq!(trace["outcome"], "ok");
    assert_eq!(trace["spans"], 3);
    assert_eq!(trace["violations"].as_array().expect("violations").len(), 2);
    assert_eq!(trace["violations"][0]["severity"], "high");
    assert_eq!(trace["witnesses"][0]["name"], "GET /a");
    assert!(trace["fuel_used"].as_u64().expect("fuel") > 0);
    assert!(trace["elapsed"].as_u64().is_some());
}

#[test]
fn compile_errors_exit_2_with_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rule = dir.path().join("broken.js");
    std::fs::write(&rule, "// broken\nexport default trace.has(s => s.name ===);\n").expect("write");
    let output =
        fluo().args(["rules", "test", "--json"]).arg(&rule).arg("--trace").arg(fixture("has_matches", "trace.json")).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON error");
    assert_eq!(report["error"]["kind"], "syntax");
    assert_eq!(report["error"]["line"], 2);
    assert!(report["error"]["column"].as_u64().expect("column") > 30);
    let output = fluo().args(["rules", "test"]).arg(&rule).arg("--trace").arg(fixture("has_matches", "trace.json")).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.js:2:"), "{stderr}");
}

#[test]
fn bad_trace_files_exit_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"resourceSpans\": [ {\"scopeSpans\": 7 } ]}").expect("write");
    let bad_ids = dir.path().join("bad-ids.json");
    std::fs::write(&bad_ids, r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"00","spanId":"0102030405060708","name":"x"}]}]}]}"#)
        .expect("write");
    for (file, expected) in [(garbage, "not an OTLP/JSON"), (bad_ids, "invalid trace id"), (dir.path().join("missing.json"), "cannot read")]
    {
        let output = fluo().args(["rules", "test"]).arg(fixture("has_matches", "rule.js")).arg("--trace").arg(&file).output().expect("run");
        assert_eq!(output.status.code(), Some(3), "{}", file.display());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn failing_rules_exit_4() {
    let output = fluo()
        .args(["rules", "test", "--json"])
        .arg(fixture("throw_reports_line", "rule.js"))
        .arg("--trace")
        .arg(fixture("throw_reports_line", "trace.json"))
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(4));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["traces"][0]["outcome"], "exception");
    assert_eq!(report["traces"][0]["line"], 3);
}

#[test]
fn serve_starts_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut child = fluo()
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let stdout = child.stdout.take().expect("stdout");
    let started = Instant::now();
    for line in BufReader::new(stdout).lines() {
        if line.expect("line").contains(" listening ") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "serve did not start");
    }
    // SIGTERM: a graceful stop.
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
}

#[test]
fn serve_reads_a_config_file_and_refuses_unknown_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // The shipped example, with flags overriding its addresses and data directory.
    let mut child = fluo()
        .args(["serve", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/fluo.toml"), "--data-dir"])
        .arg(&data)
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("FLUO_OPERATOR_KEY", "fluo_config_test_operator_key")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let stdout = child.stdout.take().expect("stdout");
    let listening = BufReader::new(stdout).lines().map_while(Result::ok).find(|line| line.contains(" listening "));
    assert!(listening.is_some_and(|line| line.contains("api=127.0.0.1:")), "flags override the file");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(child.wait().expect("wait").success());

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "trace_idel = \"5s\"\n").expect("write");
    let output = fluo().args(["serve", "--config"]).arg(&bad).output().expect("serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown key \"trace_idel\""), "{stderr}");

    let invalid = dir.path().join("invalid.toml");
    std::fs::write(&invalid, "trace_idle = \"1h\"\ntrace_max_age = \"30s\"\n").expect("write");
    let output = fluo().args(["serve", "--data-dir"]).arg(&data).args(["--config"]).arg(&invalid).output().expect("serve");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--trace-idle must be"), "{}", String::from_utf8_lossy(&output.stderr));

    for ttl in ["10s", "2d"] {
        let output = fluo().args(["serve", "--data-dir"]).arg(&data).args(["--session-ttl", ttl]).output().expect("serve");
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("--session-ttl must be between 1m and 24h"), "{ttl}");
    }
}

#[test]
fn demo_creates_a_tenant_with_the_templates_and_its_traces_raise_signals() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms"]);
    let output = std::process::Command::new(common::binary())
        .args(["demo", "--api", &format!("http://{}", server.api), "--otlp", &format!("http://{}", server.http)])
        .args(["--rate", "200", "--traces", "120"])
        .env("FLUO_OPERATOR_KEY", OPERATOR_KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let admin =
        stdout.lines().find_map(|line| line.trim().strip_prefix("admin key:")).expect("the admin key is printed").trim().to_string();
    let (_, rules) = server.api("GET", "/api/v1/rules", Some(&admin), None);
    assert_eq!(rules["items"].as_array().unwrap().len(), 6, "{rules}");
    // The demo's first five traces break each per-trace template once.
    let signals = server.wait_signals(&admin, "", 5, std::time::Duration::from_secs(20));
    let fired: std::collections::BTreeSet<&str> = signals.iter().filter_map(|signal| signal["rule_name"].as_str()).collect();
    let per_trace = ["admin-needs-admin-check", "payments-fraud-check", "pii-needs-audit-log", "retry-storm", "server-errors-logged"];
    assert!(per_trace.iter().all(|rule| fired.contains(rule)), "{fired:?}");
    let sign_in = stdout.lines().find_map(|line| line.trim().strip_prefix("sign in:")).expect("sign-in details").trim().to_string();
    let password = sign_in.rsplit("password ").next().unwrap();
    let tenant = sign_in.split(',').next().unwrap().trim_start_matches("tenant ").trim();
    let credentials = serde_json::json!({"tenant": tenant, "email": "demo@fluo.example", "password": password});
    assert_eq!(server.api("POST", "/api/v1/auth/login", None, Some(&credentials)).0, 200);
}
