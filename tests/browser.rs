//! The web console in a real browser: a real `fluo serve` with the built
//! console (web/dist), a tenant with an admin, a viewer and an ingest key, and
//! `web/tests/console.mjs` driving Debian's chromium through Playwright
//! (`playwright-core`, `executablePath`; no browser download). The script walks
//! the main flows, asserts what the user sees at each step, fails on any
//! console error, and writes the screenshots in docs/screenshots/. Sessions
//! last one minute here, so that the console's renewal happens during the test.
//! `make test` builds the console and installs chromium first.

mod common;

use common::Server;
use serde_json::{Value, json};
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
    let server = Server::start(
        dir.path(),
        &["--web-dir", dist.to_str().unwrap(), "--trace-idle", "1s", "--session-ttl", "1m", "--webhook-allow-private-targets"],
    );
    let (tenant, admin) = server.tenant("Acme Payments");
    let password = "correct horse battery staple";
    for (email, role) in [("ada@acme.example", "admin"), ("vic@acme.example", "viewer")] {
        let (status, body) =
            server.api("POST", "/api/v1/users", Some(&admin), Some(&json!({"email": email, "password": password, "role": role})));
        assert_eq!(status, 201, "{body}");
    }
    let ingest = server.key(&admin, &["ingest"]);
    background(&server, &admin, &ingest);

    // Every delivery succeeds: the console's delivery log must show it delivered.
    let (webhook, _deliveries) = common::webhook_receiver(0);
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
        .env("FLUO_WEBHOOK_URL", format!("http://{webhook}/fluo-hook"))
        .env("FLUO_SCREENSHOTS", repo.join("docs/screenshots"))
        .env("FLUO_CHROMIUM", &chromium)
        .status()
        .expect("run node web/tests/console.mjs");
    assert!(status.success(), "the browser test failed (its output is above): {status}");
}

/// A tenant that has been running for a while: three other template rules and
/// traces from several services, some breaking them, so that the inbox, its
/// chart and the rules list in the screenshots look like a day at work. The
/// browser test's own rule and signal are told apart by their names.
fn background(server: &Server, admin: &str, ingest: &str) {
    for id in ["pii-needs-audit-log", "server-errors-logged", "admin-needs-admin-check"] {
        let template = fluo::rules::templates::TEMPLATES.iter().find(|template| template.id == id).expect("a template");
        server.rule(admin, id, template.source);
    }
    let span = |id: &str, name: &str, kind: &str, parent: Option<&str>, start: u64, duration: u64, attributes: Value| json!({"id": id, "name": name, "kind": kind, "parent": parent, "start_ms": start, "duration_ms": duration, "attributes": attributes});
    let customer = |audited: bool| {
        let mut spans = vec![
            span(
                "root",
                "GET /customers/{id}",
                "server",
                None,
                0,
                48,
                json!({"http.route": "/customers/{id}", "http.response.status_code": 200}),
            ),
            span("db", "SELECT customers", "client", Some("root"), 6, 30, json!({"db.system": "postgresql", "data.classification": "pii"})),
        ];
        if audited {
            spans.push(span("audit", "audit.log", "internal", Some("root"), 38, 4, json!({})));
        }
        json!({"service": "accounts", "spans": spans})
    };
    let order_failed = json!({"service": "orders", "spans": [
        span("root", "POST /orders", "server", None, 0, 220, json!({"http.route": "/orders", "http.response.status_code": 503})),
        span("stock", "inventory.reserve", "client", Some("root"), 10, 200, json!({"peer.service": "inventory"})),
    ]});
    let admin_call = |checked: bool| {
        let mut spans = vec![span(
            "root",
            "DELETE /admin/users/{id}",
            "server",
            None,
            0,
            35,
            json!({"http.route": "/admin/users/{id}", "http.response.status_code": 204}),
        )];
        if checked {
            spans.push(span("authz", "authz.check_admin", "internal", Some("root"), 2, 3, json!({})));
        }
        json!({"service": "backoffice", "spans": spans})
    };
    let traces = vec![
        customer(false),
        customer(true),
        customer(false),
        order_failed.clone(),
        admin_call(true),
        customer(false),
        order_failed,
        admin_call(false),
    ];
    let report = common::send(server.grpc, "grpc", ingest, &json!({ "traces": traces }), &[]);
    assert_eq!(report["export_ok"], true, "{report}");
}
