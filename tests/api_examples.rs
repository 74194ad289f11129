//! Keeps docs/api.md and README.md true: their `curl` examples (the ```sh
//! blocks under "Main flows", and README's "Send traces, get signals") run in
//! order, in one bash, against a real `fluo serve`; every `jq -e` in them is an
//! assertion.

mod common;

use common::*;
use std::process::Command;

fn sh_blocks(markdown: &str) -> Vec<String> {
    let flows = markdown.split_once("## Main flows").expect("docs/api.md has a \"Main flows\" section").1;
    sh_blocks_of(flows)
}

/// Every ```sh block of `flows`, in order.
fn sh_blocks_of(flows: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in flows.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn the_curl_examples_in_api_md_run_against_a_real_server() {
    let markdown = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).expect("docs/api.md");
    let blocks = sh_blocks(&markdown);
    assert!(blocks.len() >= 6, "found {} example blocks", blocks.len());
    let mut script = String::from("set -euo pipefail\n");
    for (index, block) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '--- docs/api.md example block {}' >&2\n{block}", index + 1));
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--trace-idle", "200ms", "--webhook-allow-private-targets"]);
    let output = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .env("FLUO", format!("http://{}", server.api))
        .env("OTLP", format!("http://{}", server.http))
        .env("FLUO_OPERATOR_KEY", OPERATOR_KEY)
        .output()
        .expect("run bash (curl and jq come from scripts/setup.sh)");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "an example failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}", output.status);
    let expected: usize = blocks.iter().map(|block| block.matches("jq -e").count()).sum();
    let checks = stdout.lines().filter(|line| *line == "true").count();
    assert_eq!(checks, expected, "every jq -e printed true\n{stdout}");
    assert!(!stdout.lines().any(|line| line == "false"), "{stdout}");
}

/// The ```sh blocks of README.md's "Send traces, get signals", and the rule
/// file (the first ```js block) they send.
fn readme_parts(markdown: &str) -> (String, Vec<String>) {
    let rule = markdown.split_once("```js\n").and_then(|(_, rest)| rest.split_once("```")).expect("README has a js rule").0.to_string();
    let section = markdown.split_once("## Send traces, get signals").expect("README has the section").1;
    let section = section.split_once("\n## ").map_or(section, |(inside, _)| inside);
    // Up to the demo (its own test is tests/cli.rs).
    let section = section.split_once("To see signals at once").map_or(section, |(before, _)| before);
    (rule, sh_blocks_of(section))
}

/// README.md's commands, copied and run in one bash against a real server
/// (its ports substituted for 8080, 4318 and 4317) with `./your-service` a
/// program of the OpenTelemetry Python SDK configured only by the variables
/// README sets (tests/otel/your_service.py).
#[test]
fn the_readme_commands_run_against_a_real_server() {
    let markdown = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let (rule, blocks) = readme_parts(&markdown);
    assert!(blocks.len() >= 3, "found {} blocks", blocks.len());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("payment-needs-fraud-check.js"), rule).unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let service = format!("{} {}/tests/otel/your_service.py", python().display(), env!("CARGO_MANIFEST_DIR"));
    let mut script = String::from("set -euo pipefail\n");
    for (index, block) in blocks.iter().enumerate() {
        let block = block
            .replace("localhost:8080", &server.api.to_string())
            .replace("localhost:4318", &server.http.to_string())
            .replace("localhost:4317", &server.grpc.to_string())
            .replace("./your-service", &service);
        script.push_str(&format!("echo '--- README.md block {}' >&2\n{block}", index + 1));
    }
    let output = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .env("FLUO_OPERATOR_KEY", OPERATOR_KEY)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .expect("run bash");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "a README command failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}", output.status);
    assert_eq!(stdout.lines().filter(|line| *line == "exported").count(), 2, "both services exported\n{stdout}");
    let expected: usize = blocks.iter().map(|block| block.matches("jq -e").count()).sum();
    assert_eq!(stdout.lines().filter(|line| *line == "true").count(), expected, "every jq -e printed true\n{stdout}");
}
