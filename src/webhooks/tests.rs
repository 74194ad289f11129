//! Unit tests of the webhook store, queue and address checks.

use super::*;
use serde_json::json;
use std::net::Ipv4Addr;

fn spec(value: serde_json::Value) -> WebhookSpec {
    serde_json::from_value(value).unwrap()
}

fn group(id: &str, service: &str) -> Signal {
    serde_json::from_value(json!({
        "id": id, "rule_id": "r", "rule_name": "r", "rule_version": 1, "severity": "high", "message": "m",
        "trace_id": "00000000000000000000000000000001", "span_ids": [], "status": "open", "created_at": "",
        "created_unix_ms": 0, "updated_at": "",
        "witnesses": [{"span_id": "0000000000000001", "parent_span_id": null, "name": "n", "service": service, "kind": "internal",
            "status": "unset", "start_time_unix_nano": 0, "end_time_unix_nano": 1, "attributes": {}}]
    }))
    .unwrap()
}

#[test]
fn a_throttle_holds_back_firing_events_of_a_group_but_never_status_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let webhooks = Webhooks::open(&db, WebhookSettings::default()).unwrap();
    let tenant = TenantId::trusted("t");
    let (hook, _) = webhooks.create(&tenant, spec(json!({"url": "http://93.184.215.14/h", "throttle_minutes": 10}))).unwrap();
    let minute = 60_000;
    assert!(webhooks.admit(&tenant, &hook, "s_1", "signal.created", 0));
    assert!(!webhooks.admit(&tenant, &hook, "s_1", "signal.regressed", minute), "within 10 minutes");
    assert!(webhooks.admit(&tenant, &hook, "s_2", "signal.created", minute), "another group has its own time");
    assert!(webhooks.admit(&tenant, &hook, "s_1", "signal.status_changed", 2 * minute), "a state change always goes");
    assert!(!webhooks.admit(&tenant, &hook, "s_1", "signal.rate_exceeded", 11 * minute), "counted from the latest send");
    assert!(webhooks.admit(&tenant, &hook, "s_1", "signal.regressed", 12 * minute));
    assert_eq!(webhooks.throttled.load(Ordering::Relaxed), 2);
}

#[test]
fn reminders_come_once_per_interval_for_open_groups_the_channel_wants() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let webhooks = Webhooks::open(&db, WebhookSettings::default()).unwrap();
    let tenant = TenantId::trusted("t");
    let (hook, _) =
        webhooks.create(&tenant, spec(json!({"url": "http://93.184.215.14/h", "repeat_minutes": 5, "services": ["payments"]}))).unwrap();
    let open = [group("s_1", "payments"), group("s_2", "inventory")];
    let minute = 60_000;
    assert_eq!(webhooks.remind(&tenant, &hook, &open, 0), 0, "the interval starts when the group is first seen");
    assert_eq!(webhooks.remind(&tenant, &hook, &open, 4 * minute), 0);
    assert_eq!(webhooks.remind(&tenant, &hook, &open, 5 * minute), 1, "s_1 only: s_2 is another service's");
    let job = webhooks.next_job().expect("a reminder queued");
    let body: serde_json::Value = serde_json::from_str(&job.body).unwrap();
    assert_eq!((body["type"].as_str(), body["signal"]["id"].as_str()), (Some("signal.reminder"), Some("s_1")));
    assert_eq!(webhooks.remind(&tenant, &hook, &open, 6 * minute), 0, "not again before the next interval");
    assert_eq!(webhooks.remind(&tenant, &hook, &open, 10 * minute), 1);
    assert_eq!(webhooks.repeating().len(), 1);
}

#[test]
fn every_spelling_of_an_internal_address_is_refused() {
    for host in [
        "127.0.0.1",
        "localhost",
        "LOCALHOST.",
        "api.localhost",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "0.0.0.0",
        "0",
        "[::]",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[::127.0.0.1]",
        "[64:ff9b::10.0.0.1]",
        "[2002:7f00:1::]",
        "169.254.169.254",
        "100.100.100.200",
        "100.64.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "[fc00::1]",
        "[fd00:ec2::254]",
        "[fe80::1]",
        "224.0.0.1",
        "255.255.255.255",
    ] {
        assert!(refused_host(host), "{host} must be refused");
    }
    for host in ["93.184.215.14", "example.com", "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]", "8.8.8.8", "1.2.3"] {
        assert!(!refused_host(host), "{host} is public");
    }
}

#[test]
fn loose_ipv4_reads_what_getaddrinfo_reads() {
    assert_eq!(loose_ipv4("127.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
    assert_eq!(loose_ipv4("2130706433"), Some(Ipv4Addr::new(127, 0, 0, 1)));
    assert_eq!(loose_ipv4("0x7f.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
    assert_eq!(loose_ipv4("10.0x10.1"), Some(Ipv4Addr::new(10, 16, 0, 1)));
    assert_eq!(loose_ipv4("256.1.1.1"), None);
    assert_eq!(loose_ipv4("4294967296"), None);
    assert_eq!(loose_ipv4("example.com"), None);
}

#[tokio::test]
async fn the_connector_refuses_resolved_and_literal_internal_addresses() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    for url in [
        format!("http://localhost:{port}/"),
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
    ] {
        let connecting = tower::ServiceExt::oneshot(GuardedConnector::new(false), url.parse::<http::Uri>().unwrap());
        let Err(error) = connecting.await else { panic!("{url} connected") };
        assert!(is_refused(&*error), "{url}: {error}");
    }
    let allowed =
        tower::ServiceExt::oneshot(GuardedConnector::new(true), format!("http://localhost:{port}/").parse::<http::Uri>().unwrap());
    assert!(allowed.await.is_ok(), "with the flag, loopback is reachable");
}

#[test]
fn the_delivery_log_keeps_the_newest_and_goes_with_its_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let webhooks = Webhooks::open(&db, WebhookSettings { max_per_tenant: 2, ..WebhookSettings::default() }).unwrap();
    let tenant = TenantId::trusted("acme");
    let (hook, _) = webhooks.create(&tenant, spec(json!({"url": "http://93.184.215.14/hook"}))).unwrap();
    for attempt in 1..=(DELIVERIES_KEPT as u32 + 30) {
        let delivery = Delivery { signal_id: "s_1".into(), attempt, error: None, delivered: true, at: String::new() };
        webhooks.log(&tenant, &hook.id, &delivery).unwrap();
    }
    assert_eq!(webhooks.logged(&tenant, &hook.id), DELIVERIES_KEPT);
    let newest = webhooks.deliveries(&tenant, &hook.id).unwrap().unwrap();
    assert_eq!(newest[0].attempt, DELIVERIES_KEPT as u32 + 30, "the newest are kept");
    assert!(webhooks.delete(&tenant, &hook.id).unwrap());
    assert_eq!(webhooks.logged(&tenant, &hook.id), 0, "deleted with the webhook");
    // Logging for a deleted webhook (an attempt in flight) writes nothing.
    let late = Delivery { signal_id: "s_2".into(), attempt: 1, error: None, delivered: true, at: String::new() };
    webhooks.log(&tenant, &hook.id, &late).unwrap();
    assert_eq!(webhooks.logged(&tenant, &hook.id), 0);
}

#[test]
fn a_tenants_queue_is_bounded_and_served_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let webhooks = Webhooks::open(&db, WebhookSettings::default()).unwrap();
    let job = |tenant: &str, n: usize| webhooks.outboxed(&TenantId::trusted(tenant), "w", &format!("s_{n}"), Arc::from(""));
    for n in 0..QUEUE_PER_TENANT + 5 {
        webhooks.enqueue(job("noisy", n), true);
    }
    assert_eq!(webhooks.pending(&TenantId::trusted("noisy")), QUEUE_PER_TENANT);
    assert_eq!(webhooks.dropped.load(Ordering::Relaxed), 5);
    assert_eq!(webhooks.outbox.len(), QUEUE_PER_TENANT, "a dropped delivery leaves the outbox too");
    webhooks.enqueue(job("quiet", 0), true);
    let first_two: Vec<String> = (0..2).map(|_| webhooks.next_job().unwrap().tenant.to_string()).collect();
    assert!(first_two.contains(&"quiet".to_string()), "the quiet tenant waits one turn, not {QUEUE_PER_TENANT} jobs");
}

#[test]
fn staged_deliveries_wait_for_their_dispatch_and_survive_a_restart_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::trusted("t");
    let signal: Signal = serde_json::from_value(serde_json::json!({
        "id": "s_1", "rule_id": "r", "rule_name": "r", "rule_version": 1, "severity": "high", "message": "m",
        "trace_id": "00000000000000000000000000000001", "span_ids": [], "status": "open", "created_at": "",
        "created_unix_ms": 0, "updated_at": "", "witnesses": []
    }))
    .unwrap();
    let (id, timestamp, body) = {
        let db = sled::open(dir.path()).unwrap();
        let webhooks = Webhooks::open(&db, WebhookSettings { allow_private_targets: true, ..WebhookSettings::default() }).unwrap();
        webhooks.create(&tenant, spec(json!({"url": "http://127.0.0.1:9/hook"}))).unwrap();
        webhooks.stage(&tenant, &signal, "signal.created");
        assert!(webhooks.next_job().is_none(), "staged: not deliverable before its flush");
        assert_eq!(webhooks.outbox.len(), 1);
        db.flush().unwrap();
        webhooks.dispatch(&tenant, &signal, "signal.created");
        let job = webhooks.next_job().expect("deliverable after its dispatch");
        assert!(webhooks.next_job().is_none(), "the dispatch took the staged delivery, not a second one");
        // A crash before it is delivered.
        (job.id, job.timestamp, job.body)
    };
    let db = sled::open(dir.path()).unwrap();
    let webhooks = Webhooks::open(&db, WebhookSettings::default()).unwrap();
    let resumed = webhooks.next_job().expect("resumed from the outbox");
    assert_eq!((resumed.id, resumed.timestamp, resumed.body, resumed.attempt), (id, timestamp, body, 1));
    assert_eq!(webhooks.pending(&tenant), 1);
    webhooks.done(&Job { ..webhooks.outboxed(&tenant, "w", "s_2", Arc::from("")) });
    assert_eq!(webhooks.outbox.len(), 1, "only the finished one went");
}

#[test]
fn reminders_look_at_open_groups_past_the_stores_page_size() {
    use crate::model::rule::{Severity, Violation};
    use crate::signals::{RuleRef, Signals};
    let dir = tempfile::tempdir().unwrap();
    let signals = Signals::open(Arc::new(crate::store::Store::open(dir.path()).unwrap())).unwrap();
    let tenant = TenantId::trusted("t");
    // 1,100 groups (a distinct span name each), more than two pages of 500.
    for n in 0..1100u32 {
        let json = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": format!("{:032x}", n + 1), "spanId": "0000000000000001",
            "name": format!("span-{n}"), "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]});
        let spans = crate::model::otlp::convert(crate::model::otlp::from_json(json.to_string().as_bytes()).unwrap()).spans;
        let trace = crate::model::trace::Trace::new(spans[0].trace_id, spans);
        let violation = Violation {
            message: "m".into(),
            severity: Severity::High,
            span_ids: vec!["0000000000000001".into()],
            attributes: None,
            group: None,
        };
        let rule = RuleRef { id: "r".into(), name: "r".into(), version: 1, ..Default::default() };
        signals.record(&tenant, &trace, b"", &[(rule, vec![violation])], false).unwrap();
    }
    let open = remind::open_groups(&signals, &tenant);
    assert_eq!(open.len(), 1000, "GROUPS_PER_ROUND, across pages");
    let mut ids: Vec<&str> = open.iter().map(|group| group.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "no group twice");
}
