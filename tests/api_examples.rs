//! Keeps docs/api.md true: its `curl` examples (the ```sh blocks under "Main
//! flows") run in order, in one bash, against a real `fluo serve`; every
//! `jq -e` in them is an assertion.

mod common;

use common::*;
use std::process::Command;

fn sh_blocks(markdown: &str) -> Vec<String> {
    let flows = markdown.split_once("## Main flows").expect("docs/api.md has a \"Main flows\" section").1;
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
