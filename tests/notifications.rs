//! Notification channels against real receivers on loopback: an https
//! receiver whose certificate comes from a CA generated per test (generic,
//! Slack and PagerDuty bodies, the latter two checked against schemas written
//! from their documentation), Debian's Prometheus Alertmanager receiving
//! FLUO's alerts and showing them on its API, an OTLP log record read by the
//! protocol's own types, test sends, routing, the delivery metric, and what
//! is refused.

mod common;

use common::https::Received;
use common::{FRAUD_RULE, OPERATOR_KEY, Server, http, send_charge};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/tests/fixtures/schemas/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::options().should_validate_formats(true).build(&schema).unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, body: &Value) {
    let errors: Vec<String> = validator.iter_errors(body).map(|error| format!("{} at {}", error, error.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:?}\n{body:#}");
}

/// Requests that arrive until `wanted` paths each got `count`, or 20 s pass.
fn collect(received: &Receiver<Received>, wanted: &[(&str, usize)]) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut all: Vec<Received> = Vec::new();
    while wanted.iter().any(|(path, count)| all.iter().filter(|request| request.path == *path).count() < *count) {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(request) => all.push(request),
            Err(_) => panic!("not all arrived: {wanted:?}; got {:?}", all.iter().map(|request| &request.path).collect::<Vec<_>>()),
        }
    }
    all
}

fn channel(server: &Server, admin: &str, spec: Value) -> Value {
    let (status, body) = server.api("POST", "/api/v1/webhooks", Some(admin), Some(&spec));
    assert_eq!(status, 201, "{spec} → {body}");
    body
}

fn hmac(secret: &str, timestamp: &str, body: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn https_channels_get_their_own_shapes_with_a_link_to_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, ca, received) = common::https::receiver(dir.path(), 202);
    let ca = ca.to_str().unwrap().to_string();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--trace-idle",
            "200ms",
            "--webhook-allow-private-targets",
            "--webhook-ca-file",
            &ca,
            "--public-url",
            "https://fluo.example/console/",
        ],
    );
    let (_, admin) = server.tenant("acme");
    server.rule(&admin, "fraud", FRAUD_RULE);
    let base = format!("https://localhost:{}", addr.port());
    let generic = channel(&server, &admin, json!({"url": format!("{base}/generic"), "name": "ours"}));
    let slack = channel(&server, &admin, json!({"url": format!("{base}/slack"), "kind": "slack", "severities": ["high"]}));
    let pagerduty = channel(
        &server,
        &admin,
        json!({"url": format!("{base}/pd"), "kind": "pagerduty", "routing_key": "R0123456789abcdef0123456789abcde", "rules": ["fraud"]}),
    );
    assert_eq!((pagerduty["has_routing_key"].as_bool(), pagerduty.get("routing_key")), (Some(true), None), "{pagerduty}");
    let otlp = channel(
        &server,
        &admin,
        json!({"url": format!("{base}/otlp/"), "kind": "otlp", "headers": {"x-api-key": "k3y-for-the-backend"}, "severities": ["high"]}),
    );
    assert_eq!(otlp["header_names"], json!(["x-api-key"]), "{otlp}");
    assert!(!otlp.to_string().contains("k3y-for-the-backend"), "header values are never listed");
    // Routing: a channel for another service hears nothing.
    channel(&server, &admin, json!({"url": format!("{base}/inventory"), "services": ["inventory"]}));

    send_charge(&server, &admin, 0x51);
    let first = collect(&received, &[("/generic", 1), ("/slack", 1), ("/pd", 1), ("/otlp/v1/logs", 1)]);
    let group = server.signals(&admin, "?rule=fraud").remove(0);
    let id = group["id"].as_str().unwrap();
    let link = format!("https://fluo.example/console/signals/{id}");
    let by_path = |all: &[Received], path: &str| -> Vec<Received> { all.iter().filter(|request| request.path == path).cloned().collect() };

    let ours = &by_path(&first, "/generic")[0];
    let body = ours.json();
    assert_eq!(
        (body["version"].as_u64(), body["type"].as_str(), body["url"].as_str()),
        (Some(1), Some("signal.created"), Some(link.as_str()))
    );
    assert_eq!(body["signal"]["id"], group["id"]);
    let secret = generic["secret"].as_str().unwrap();
    assert_eq!(ours.header("x-fluo-signature"), Some(hmac(secret, ours.header("x-fluo-timestamp").unwrap(), &ours.body).as_str()));

    let slack_schema = schema("slack-incoming-webhook");
    let pagerduty_schema = schema("pagerduty-events-v2");
    // The schemas can fail: what Slack or PagerDuty would refuse.
    assert!(
        !slack_schema
            .is_valid(&json!({"text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "y".repeat(3001)}}]}))
    );
    assert!(
        !pagerduty_schema.is_valid(&json!({"routing_key": "k", "event_action": "trigger", "dedup_key": "d"})),
        "a trigger needs its payload"
    );
    assert!(!pagerduty_schema.is_valid(&json!({"routing_key": "k", "event_action": "resolve"})), "a resolve needs its dedup key");
    let message = by_path(&first, "/slack")[0].json();
    assert_valid(&slack_schema, &message);
    assert!(message["text"].as_str().unwrap().contains(&format!("<{link}|Open in FLUO>")), "{message}");

    let trigger = by_path(&first, "/pd")[0].json();
    assert_valid(&pagerduty_schema, &trigger);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], "R0123456789abcdef0123456789abcde");
    assert_eq!(trigger["dedup_key"], format!("fluo-{id}"));
    assert_eq!(trigger["links"][0]["href"], link);
    assert_eq!(trigger["payload"]["severity"], "error", "FLUO's high is PagerDuty's error");

    // The OTLP log record, read by the OpenTelemetry protocol's own types: it
    // carries the group's trace and span ids, so a tracing backend links it.
    let log = &by_path(&first, "/otlp/v1/logs")[0];
    assert_eq!(log.header("x-api-key"), Some("k3y-for-the-backend"));
    let export: opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest =
        serde_json::from_str(&log.body).unwrap_or_else(|error| panic!("{error}: {}", log.body));
    let record = &export.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(hex::encode(&record.trace_id), group["trace_id"].as_str().unwrap());
    assert_eq!(hex::encode(&record.span_id), group["span_ids"][0].as_str().unwrap());
    assert_eq!((record.severity_number, record.severity_text.as_str()), (17, "ERROR"));
    let attribute = |key: &str| record.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone()).and_then(|v| v.value);
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    assert_eq!(attribute("fluo.group.id"), Some(Any::StringValue(id.to_string())));
    assert_eq!(attribute("fluo.url"), Some(Any::StringValue(link.clone())));
    assert_eq!(attribute("fluo.event"), Some(Any::StringValue("signal.created".into())));

    // Acknowledged, then resolved: the same PagerDuty incident follows.
    for status in ["acknowledged", "resolved"] {
        let (code, answer) =
            server.api("POST", &format!("/api/v1/signals/{id}/status"), Some(&admin), Some(&json!({"status": status, "note": "on it"})));
        assert_eq!(code, 200, "{answer}");
    }
    let changes = collect(&received, &[("/generic", 2), ("/slack", 2), ("/pd", 2), ("/otlp/v1/logs", 2)]);
    let actions: Vec<Value> = by_path(&changes, "/pd").iter().map(Received::json).collect();
    for action in &actions {
        assert_valid(&pagerduty_schema, action);
        assert_eq!(action["dedup_key"], format!("fluo-{id}"));
    }
    assert_eq!(actions.iter().map(|action| action["event_action"].as_str().unwrap()).collect::<Vec<_>>(), ["acknowledge", "resolve"]);
    for message in by_path(&changes, "/slack") {
        assert_valid(&slack_schema, &message.json());
    }
    assert!(first.iter().chain(&changes).all(|request| request.path != "/inventory"), "the inventory channel wants another service");

    // A test send answers at once and is logged.
    let slack_id = slack["id"].as_str().unwrap();
    let (status, sent) = server.api("POST", &format!("/api/v1/webhooks/{slack_id}/test"), Some(&admin), None);
    assert_eq!((status, sent["delivered"].as_bool()), (200, Some(true)), "{sent}");
    let test = collect(&received, &[("/slack", 1)]);
    assert_valid(&slack_schema, &test[0].json());
    assert!(test[0].body.contains("test"), "{}", test[0].body);
    let (_, log) = server.api("GET", &format!("/api/v1/webhooks/{slack_id}/deliveries"), Some(&admin), None);
    assert_eq!(log["items"][0]["signal_id"], "test", "{log}");
    assert_eq!(server.api("POST", "/api/v1/webhooks/w_0000000000000000/test", Some(&admin), None).0, 404);
    assert!(server.metric("fluo_notification_deliveries_total{kind=\"otlp\",outcome=\"delivered\"}") >= 3, "the delivery metric");
    let (_, other) = server.tenant("other");
    assert_eq!(server.api("POST", &format!("/api/v1/webhooks/{slack_id}/test"), Some(&other), None).0, 404, "another tenant's channel");
}

#[test]
fn a_receiver_whose_ca_is_not_trusted_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _ca, received) = common::https::receiver(dir.path(), 200);
    let server = Server::start(&dir.path().join("data"), &["--webhook-allow-private-targets"]);
    let (_, admin) = server.tenant("acme");
    let hook = channel(&server, &admin, json!({"url": format!("https://localhost:{}/hook", addr.port())}));
    let (status, sent) = server.api("POST", &format!("/api/v1/webhooks/{}/test", hook["id"].as_str().unwrap()), Some(&admin), None);
    assert_eq!((status, sent["delivered"].as_bool(), sent["error"].as_str()), (200, Some(false), Some("not delivered")), "{sent}");
    assert!(received.recv_timeout(Duration::from_millis(500)).is_err(), "no request without a trusted certificate");
}

#[test]
fn bad_channels_and_settings_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, admin) = server.tenant("acme");
    for (spec, says) in [
        (json!({"url": "ftp://example.com/x"}), "url must be https://"),
        (json!({"url": "https://"}), "url"),
        (json!({"url": "https://127.0.0.1/x"}), "target address not allowed"),
        (json!({"url": "https://events.example.com/v2/enqueue", "kind": "pagerduty"}), "needs its routing_key"),
        (json!({"url": "https://events.example.com/v2/enqueue", "kind": "pagerduty", "routing_key": "a b"}), "visible ASCII"),
        (json!({"url": "https://hooks.example.com/x", "kind": "slack", "routing_key": "k"}), "pagerduty channels only"),
        (json!({"url": "https://hooks.example.com/x", "kind": "teams"}), "unknown variant `teams`"),
        (json!({"url": "https://hooks.example.com/x", "throttle_minutes": 0}), "throttle_minutes must be between 1 and 10080"),
        (json!({"url": "https://hooks.example.com/x", "repeat_minutes": 10081}), "repeat_minutes must be between 1 and 10080"),
        (json!({"url": "https://hooks.example.com/x", "name": "n".repeat(101)}), "name must be at most 100 bytes"),
        (json!({"url": "https://hooks.example.com/x", "services": ["s".repeat(257)]}), "at most 256 bytes"),
        (json!({"url": "https://otlp.example.com", "kind": "otlp", "headers": {"host": "evil"}}), "set by FLUO or the connection"),
        (json!({"url": "https://otlp.example.com", "kind": "otlp", "headers": {"content-type": "text/plain"}}), "set by FLUO"),
        (json!({"url": "https://otlp.example.com", "kind": "otlp", "headers": {"x-fluo-signature": "forged"}}), "set by FLUO"),
        (json!({"url": "https://otlp.example.com", "kind": "otlp", "headers": {"x-key": "a\r\nx-injected: 1"}}), "visible ASCII"),
        (json!({"url": "https://otlp.example.com", "kind": "otlp", "headers": {"bad name": "v"}}), "token characters"),
        (
            json!({"url": "https://otlp.example.com", "kind": "otlp", "headers": (0..9).map(|i| (format!("x-{i}"), "v".to_string())).collect::<std::collections::BTreeMap<_, _>>()}),
            "at most 8",
        ),
    ] {
        let (status, body) = server.api("POST", "/api/v1/webhooks", Some(&admin), Some(&spec));
        assert_eq!(status, 400, "{spec} → {body}");
        assert!(body["error"]["message"].as_str().unwrap_or_default().contains(says), "{spec} → {body}");
    }
    let (status, body) = server.api("POST", "/api/v1/webhooks", Some(&admin), Some(&json!({"url": "https://hooks.example.com/x"})));
    assert_eq!((status, body["kind"].as_str()), (201, Some("generic")), "https is accepted: {body}");
    drop(server);

    let missing = dir.path().join("no-such-ca.pem");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    for (flag, value, says) in [
        ("--webhook-ca-file", missing.to_str().unwrap(), "no-such-ca.pem"),
        ("--webhook-ca-file", not_pem.to_str().unwrap(), "no certificate in it"),
        ("--public-url", "ftp://fluo.example", "--public-url must be http(s)://"),
        ("--public-url", "https://fluo.example/?x=1", "without a query"),
    ] {
        let output = std::process::Command::new(common::binary())
            .args(["serve", "--data-dir"])
            .arg(dir.path().join("refused"))
            .args([flag, value])
            .env("FLUO_OPERATOR_KEY", OPERATOR_KEY)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(says), "{flag} {value}: {stderr}");
    }
}

/// Debian's Prometheus Alertmanager on loopback, with a temporary config and
/// storage; killed on drop.
struct Alertmanager {
    child: std::process::Child,
    web: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    fn start() -> Alertmanager {
        let binary = std::path::Path::new("/usr/bin/prometheus-alertmanager");
        assert!(binary.exists(), "alertmanager missing: run `bash scripts/setup.sh test` (Debian's prometheus-alertmanager package)");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let web: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = std::process::Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={web}"))
            // No cluster: nothing listens beyond the web address.
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start alertmanager");
        let alertmanager = Alertmanager { child, web, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "alertmanager did not become ready");
            if std::net::TcpStream::connect(web).is_ok() && http(web, "GET", "/-/ready", None, &[], None).0 == 200 {
                return alertmanager;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The alerts it holds (active, silenced, inhibited and unprocessed).
    fn alerts(&self) -> Vec<Value> {
        let (_, _, body) = http(self.web, "GET", "/api/v2/alerts", None, &[], None);
        serde_json::from_slice::<Value>(&body).unwrap().as_array().cloned().unwrap_or_default()
    }

    fn wait_alerts(&self, done: impl Fn(&[Value]) -> bool, what: &str) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let alerts = self.alerts();
            if done(&alerts) {
                return alerts;
            }
            assert!(Instant::now() < deadline, "{what}: {alerts:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn alertmanager_receives_fluos_alerts_and_their_resolution() {
    let alertmanager = Alertmanager::start();
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start(dir.path(), &["--trace-idle", "200ms", "--webhook-allow-private-targets", "--public-url", "https://fluo.example"]);
    let (_, admin) = server.tenant("acme");
    server.rule(&admin, "fraud", FRAUD_RULE);
    let hook =
        channel(&server, &admin, json!({"url": format!("http://{}", alertmanager.web), "kind": "alertmanager", "repeat_minutes": 60}));

    // A test send is an alert Alertmanager accepts (and says it is a test).
    let (status, sent) = server.api("POST", &format!("/api/v1/webhooks/{}/test", hook["id"].as_str().unwrap()), Some(&admin), None);
    assert_eq!((status, sent["delivered"].as_bool()), (200, Some(true)), "{sent}");
    alertmanager.wait_alerts(|alerts| alerts.iter().any(|alert| alert["labels"]["fluo_test"] == "true"), "the test alert");

    send_charge(&server, &admin, 0x61);
    let alerts = alertmanager.wait_alerts(
        |alerts| alerts.iter().any(|alert| alert["labels"]["alertname"] == "fraud" && alert["status"]["state"] == "active"),
        "the group's alert",
    );
    let group = server.signals(&admin, "?rule=fraud").remove(0);
    let id = group["id"].as_str().unwrap();
    let alert = alerts.iter().find(|alert| alert["labels"]["alertname"] == "fraud").unwrap();
    assert_eq!(alert["labels"]["fluo_group"], id);
    assert_eq!(alert["labels"]["severity"], "high");
    assert_eq!(alert["labels"]["service"], "shop");
    assert_eq!(alert["generatorURL"], format!("https://fluo.example/signals/{id}"));
    assert_eq!(alert["annotations"]["summary"], group["message"]);

    // Resolved in FLUO: the alert ends in Alertmanager (it no longer lists it as active).
    assert_eq!(server.api("POST", &format!("/api/v1/signals/{id}/status"), Some(&admin), Some(&json!({"status": "resolved"}))).0, 200);
    alertmanager.wait_alerts(
        |alerts| !alerts.iter().any(|alert| alert["labels"]["fluo_group"] == id && alert["status"]["state"] == "active"),
        "the alert resolved",
    );
}
