//! The web console in a real browser: a real `fluo serve` with the built
//! console (web/dist), a tenant with an admin, a viewer and an ingest key, and
//! `web/tests/console.mjs` driving Debian's chromium through Playwright
//! (`playwright-core`, `executablePath`; no browser download). The script walks
//! the main flows, asserts what the user sees at each step, fails on any
//! console error, and writes the screenshots in docs/screenshots/.
//! `make test` builds the console and installs chromium first.

mod common;

use common::Server;
use serde_json::json;
use std::path::Path;
use std::process::Command;

#[test]
fn the_console_in_chromium_from_template_to_signal_to_rollback() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dist = repo.join("web/dist");
    assert!(dist.join("index.html").exists(), "{} has no console: run `bash scripts/setup-web.sh` (make test does)", dist.display());
    let chromium = std::env::var("FLUO_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&chromium).exists(), "{chromium} missing: run `bash scripts/setup.sh test` (make test does)");
    assert!(repo.join("web/node_modules/playwright-core").exists(), "web/node_modules missing: run `bash scripts/setup-web.sh`");

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--web-dir", dist.to_str().unwrap(), "--trace-idle", "1s"]);
    let (tenant, admin) = server.tenant("Acme Payments");
    let password = "correct horse battery staple";
    for (email, role) in [("ada@acme.example", "admin"), ("vic@acme.example", "viewer")] {
        let (status, body) =
            server.api("POST", "/api/v1/users", Some(&admin), Some(&json!({"email": email, "password": password, "role": role})));
        assert_eq!(status, 201, "{body}");
    }
    let ingest = server.key(&admin, &["ingest"]);

    let status = Command::new("node")
        .arg("tests/console.mjs")
        .current_dir(repo.join("web"))
        .env("FLUO_URL", format!("http://{}", server.api))
        .env("FLUO_TENANT", &tenant)
        .env("FLUO_ADMIN_EMAIL", "ada@acme.example")
        .env("FLUO_ADMIN_PASSWORD", password)
        .env("FLUO_VIEWER_EMAIL", "vic@acme.example")
        .env("FLUO_VIEWER_PASSWORD", password)
        .env("FLUO_INGEST_KEY", &ingest)
        .env("FLUO_OTLP_GRPC", format!("http://{}", server.grpc))
        .env("FLUO_PYTHON", common::python())
        .env("FLUO_SEND_PY", repo.join("tests/otel/send.py"))
        .env("FLUO_SCREENSHOTS", repo.join("docs/screenshots"))
        .env("FLUO_CHROMIUM", &chromium)
        .status()
        .expect("run node web/tests/console.mjs");
    assert!(status.success(), "the browser test failed (its output is above): {status}");
}
