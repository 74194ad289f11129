//! Grouped signals over the API, against `fluo serve` on loopback: occurrence
//! counts and pages, regressions, false positives, assignment, kill -9; a
//! rule's own grouping key; snoozes by count and by time; rate thresholds;
//! series and sparklines; notifications per lifecycle event counted by a
//! webhook receiver, never one per occurrence.

mod common;

use common::{FRAUD_RULE, Server, send_charge, send_span};
use serde_json::json;
use std::time::Duration;

/// Violations of one shape on many traces are one group with exact
/// occurrences; webhooks hear of the new group, of status changes and of a
/// regression, never of single occurrences; a false positive stays quiet.
#[test]
fn violations_group_and_notifications_follow_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms", "--webhook-allow-private-targets"]);
    let (_, admin) = server.tenant("acme");
    server.rule(&admin, "fraud", FRAUD_RULE);
    let (addr, received) = common::webhook_receiver(0);
    let (status, hook) = server.api("POST", "/api/v1/webhooks", Some(&admin), Some(&json!({"url": format!("http://{addr}/hook")})));
    assert_eq!(status, 201, "{hook}");
    let wait_for = |what: &str, done: &dyn Fn(&serde_json::Value) -> bool| -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let groups = server.signals(&admin, "?rule=fraud");
            if let Some(group) = groups.first().filter(|group| groups.len() == 1 && done(group)) {
                return group.clone();
            }
            assert!(std::time::Instant::now() < deadline, "{what}: {groups:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let traces: Vec<String> = (0x71..0x76).map(|trace| send_charge(&server, &admin, trace)).collect();
    let group = wait_for("five occurrences in one group", &|group| group["occurrences"] == 5);
    let id = group["id"].as_str().unwrap().to_string();
    let (status, page) = server.api("GET", &format!("/api/v1/signals/{id}/occurrences?limit=3"), Some(&admin), None);
    assert_eq!(status, 200, "{page}");
    let cursor = page["next_cursor"].as_str().expect("a second page").to_string();
    let (_, rest) = server.api("GET", &format!("/api/v1/signals/{id}/occurrences?limit=3&cursor={cursor}"), Some(&admin), None);
    let mut seen: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|o| o["trace_id"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    assert_eq!(seen, traces, "every occurrence once, paged");
    let (_, body) = received.recv_timeout(Duration::from_secs(20)).expect("the new group is announced");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["type"], "signal.created");
    assert!(received.recv_timeout(Duration::from_millis(1500)).is_err(), "occurrences are not announced");

    // Resolved (announced as `signal.resolved`), then it fires again: a regression, announced once.
    assert_eq!(server.api("POST", &format!("/api/v1/signals/{id}/status"), Some(&admin), Some(&json!({"status": "resolved"}))).0, 200);
    let (_, body) = received.recv_timeout(Duration::from_secs(20)).expect("the status change is announced");
    let payload: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((payload["type"].as_str(), payload["signal"]["status"].as_str()), (Some("signal.resolved"), Some("resolved")));
    send_charge(&server, &admin, 0x76);
    let group = wait_for("reopened", &|group| group["status"] == "open");
    assert_eq!((group["occurrences"].as_u64(), group["regressions"].as_u64()), (Some(6), Some(1)), "{group}");
    let (_, body) = received.recv_timeout(Duration::from_secs(20)).expect("the regression is announced");
    let payload: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((payload["type"].as_str(), payload["signal"]["id"].as_str()), (Some("signal.regressed"), Some(id.as_str())));

    // A false positive only counts.
    assert_eq!(
        server.api("POST", &format!("/api/v1/signals/{id}/status"), Some(&admin), Some(&json!({"status": "false_positive"}))).0,
        200
    );
    let (_, body) = received.recv_timeout(Duration::from_secs(20)).expect("the status change is announced");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["type"], "signal.status_changed");
    send_charge(&server, &admin, 0x77);
    let group = wait_for("counted", &|group| group["occurrences"] == 7);
    assert_eq!(group["status"], "false_positive");
    assert!(received.recv_timeout(Duration::from_millis(1500)).is_err(), "a false positive stays quiet");
    assert_eq!(server.api("GET", "/api/v1/signals/s_00/occurrences", Some(&admin), None).0, 404);
    assert_eq!(server.api("GET", &format!("/api/v1/signals/{id}/occurrences?limit=0"), Some(&admin), None).0, 400);

    // Assigned to a user of the tenant, found by assignee, and back to nobody.
    let (status, user) = server.api(
        "POST",
        "/api/v1/users",
        Some(&admin),
        Some(&json!({"email": "oncall@acme.example", "password": "a long enough password", "role": "editor"})),
    );
    assert_eq!(status, 201, "{user}");
    let user_id = user["id"].as_str().unwrap().to_string();
    let assign = |body: serde_json::Value| server.api("POST", &format!("/api/v1/signals/{id}/assign"), Some(&admin), Some(&body));
    let (status, assigned) = assign(json!({"user_id": user_id}));
    assert_eq!((status, assigned["assignee"].as_str()), (200, Some(user_id.as_str())), "{assigned}");
    assert_eq!(server.signals(&admin, &format!("?assignee={user_id}")).len(), 1);
    assert!(server.signals(&admin, "?assignee=none").is_empty());
    let (_, globex) = server.tenant("globex");
    let (_, stranger) = server.api(
        "POST",
        "/api/v1/users",
        Some(&globex),
        Some(&json!({"email": "someone@globex.example", "password": "a long enough password", "role": "viewer"})),
    );
    let (status, refused) = assign(json!({"user_id": stranger["id"]}));
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("unknown_user")), "another tenant's user: {refused}");
    assert_eq!(server.api("POST", &format!("/api/v1/signals/{id}/assign"), Some(&globex), Some(&json!({"user_id": null}))).0, 404);
    let (status, unassigned) = assign(json!({"user_id": null}));
    assert_eq!((status, unassigned.get("assignee")), (200, None), "{unassigned}");
    assert_eq!(server.signals(&admin, "?assignee=none").len(), 1);

    // Exact after kill -9: every occurrence of an evaluated trace survives,
    // none is counted twice, and the group keeps its status and history.
    std::thread::sleep(Duration::from_millis(1000));
    let before = server.signals(&admin, "?rule=fraud");
    server.kill9();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms", "--webhook-allow-private-targets"]);
    let after = server.signals(&admin, "?rule=fraud");
    assert_eq!(after, before, "the group is unchanged by kill -9");
    let (_, page) = server.api("GET", &format!("/api/v1/signals/{id}/occurrences?limit=100"), Some(&admin), None);
    assert_eq!(page["items"].as_array().unwrap().len(), 7, "{page}");
    send_charge(&server, &admin, 0x78);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.signals(&admin, "?rule=fraud")[0]["occurrences"] != 8 {
        assert!(std::time::Instant::now() < deadline, "{:?}", server.signals(&admin, "?rule=fraud"));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every webhook body that arrives within `quiet` of the previous one, as JSON.
fn drain(received: &std::sync::mpsc::Receiver<(Vec<(String, String)>, String)>, quiet: Duration) -> Vec<serde_json::Value> {
    let mut bodies = Vec::new();
    while let Ok((_, body)) = received.recv_timeout(quiet) {
        bodies.push(serde_json::from_str(&body).unwrap());
    }
    bodies
}

fn types(bodies: &[serde_json::Value]) -> Vec<String> {
    bodies.iter().map(|body| body["type"].as_str().unwrap().to_string()).collect()
}

/// Any payment span violates; `group` makes charges and refunds one group.
const PAYMENTS: &str = r#"export default rule({
  name: "payments", severity: "high",
  when: trace.has(s => s.name.startsWith("payment.")),
  group: () => "payments",
});"#;

#[test]
fn own_keys_snoozes_rates_and_series_notify_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms", "--webhook-allow-private-targets"]);
    let (_, admin) = server.tenant("acme");
    server.rule(&admin, "payments", PAYMENTS);
    let (addr, received) = common::webhook_receiver(0);
    let hook = json!({"url": format!("http://{addr}/hook"), "rate": {"count": 3, "minutes": 1}});
    let (status, created) = server.api("POST", "/api/v1/webhooks", Some(&admin), Some(&hook));
    assert_eq!((status, created["rate"]["count"].as_u64()), (201, Some(3)), "{created}");
    for bad in [json!({"count": 0, "minutes": 1}), json!({"count": 3, "minutes": 61})] {
        let (status, body) =
            server.api("POST", "/api/v1/webhooks", Some(&admin), Some(&json!({"url": format!("http://{addr}/x"), "rate": bad})));
        assert_eq!(status, 400, "{body}");
    }
    // Charges and refunds: one group by the rule's key (by default they would be two).
    for (trace, name) in [
        (0x11, "payment.charge_card"),
        (0x12, "payment.refund"),
        (0x13, "payment.charge_card"),
        (0x14, "payment.refund"),
        (0x15, "payment.refund"),
    ] {
        send_span(&server, &admin, trace, name);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let group = loop {
        let groups = server.signals(&admin, "");
        if groups.len() == 1 && groups[0]["occurrences"] == 5 {
            break groups[0].clone();
        }
        assert!(groups.len() <= 1 && std::time::Instant::now() < deadline, "{groups:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(group["group_key"], "payments");
    let id = group["id"].as_str().unwrap().to_string();
    // One new group, one crossed threshold (the fourth occurrence in a minute): two messages for five
    // occurrences (delivery workers run in parallel, so they may arrive in either order).
    let bodies = drain(&received, Duration::from_millis(2000));
    let mut kinds = types(&bodies);
    kinds.sort();
    assert_eq!(kinds, ["signal.created", "signal.rate_exceeded"], "{bodies:?}");
    let rate = bodies.iter().find(|body| body["type"] == "signal.rate_exceeded").unwrap();
    assert_eq!((rate["rate"]["observed"].as_u64(), rate["signal"]["occurrences"].as_u64()), (Some(4), Some(4)));

    // Any sample's trace, to compare two occurrences; other traces are not served.
    let sample = |trace: &str| server.api("GET", &format!("/api/v1/signals/{id}/trace?trace_id={trace}"), Some(&admin), None);
    let (status, first) = sample(&"11".repeat(16));
    assert_eq!(
        (status, first["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"].as_str()),
        (200, Some("payment.charge_card")),
        "{first}"
    );
    assert_eq!(sample(&"99".repeat(16)).0, 404);
    assert_eq!(sample("xyz").0, 400);
    // A sample pinned keeps its snapshot; only samples can be pinned.
    let pin = |trace: &str| server.api("POST", &format!("/api/v1/signals/{id}/pins"), Some(&admin), Some(&json!({"trace_id": trace})));
    let (status, pinned) = pin(&"12".repeat(16));
    assert_eq!((status, pinned["pinned"][0].as_str()), (200, Some("12".repeat(16).as_str())), "{pinned}");
    let (status, refused) = pin(&"99".repeat(16));
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("not_a_sample")), "{refused}");
    assert_eq!(pin("nothex").0, 400);
    let (status, unpinned) = server.api("DELETE", &format!("/api/v1/signals/{id}/pins/{}", "12".repeat(16)), Some(&admin), None);
    assert_eq!((status, unpinned.get("pinned")), (200, None), "{unpinned}");

    // Series and sparklines count the same occurrences.
    let (status, series) = server.api("GET", &format!("/api/v1/signals/{id}/series?bucket_minutes=5"), Some(&admin), None);
    assert_eq!(status, 200, "{series}");
    assert_eq!(series["counts"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).sum::<u64>(), 5);
    let (_, page) = server.api("GET", "/api/v1/signals?sparkline=true", Some(&admin), None);
    assert_eq!(page["sparklines"][&id].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).sum::<u64>(), 5, "{page}");
    let (_, rules) = server.api("GET", "/api/v1/rules", Some(&admin), None);
    assert_eq!(rules["items"][0]["occurrences_24h"], 5, "{rules}");
    for bad in ["bucket_minutes=0", "bucket_minutes=1&since=0", "since=2000&until=1000"] {
        let (status, body) = server.api("GET", &format!("/api/v1/signals/{id}/series?{bad}"), Some(&admin), None);
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // Snoozed until two more occurrences: out of the inbox, then back with one message.
    let snooze = |body: serde_json::Value| server.api("POST", &format!("/api/v1/signals/{id}/snooze"), Some(&admin), Some(&body));
    for bad in [
        json!({"for_minutes": 5, "until": "2099-01-01T00:00:00Z"}),
        json!({"for_minutes": 0}),
        json!({"until": "2001-01-01T00:00:00Z"}),
        json!({"occurrences": 0}),
        json!({"occurrences": 1, "extra": 1}),
    ] {
        let (status, body) = snooze(bad.clone());
        assert!(status == 400 || status == 422, "{bad}: {status} {body}");
    }
    let (_, globex) = server.tenant("globex");
    assert_eq!(server.api("POST", &format!("/api/v1/signals/{id}/snooze"), Some(&globex), Some(&json!({}))).0, 404);
    let (status, snoozed) = snooze(json!({"occurrences": 2}));
    assert_eq!((status, snoozed["snooze"]["until_occurrences"].as_u64()), (200, Some(7)), "{snoozed}");
    assert!(server.signals(&admin, "?snoozed=false").is_empty());
    assert_eq!(server.signals(&admin, "?snoozed=true").len(), 1);
    send_span(&server, &admin, 0x16, "payment.charge_card");
    send_span(&server, &admin, 0x17, "payment.refund");
    let bodies = drain(&received, Duration::from_millis(3000));
    assert_eq!(types(&bodies), ["signal.snooze_ended"], "{bodies:?}");
    let group = &server.signals(&admin, "?snoozed=false")[0];
    assert!(group.get("snooze").is_none(), "{group}");
    let kinds: Vec<&str> = group["history"].as_array().unwrap().iter().map(|change| change["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["snoozed", "unsnoozed"]);

    // Snoozed for a minute, lifted by hand; a resolved group cannot be snoozed.
    assert_eq!(snooze(json!({"for_minutes": 1})).0, 200);
    assert!(server.signals(&admin, "?snoozed=false").is_empty());
    let (status, lifted) = server.api("DELETE", &format!("/api/v1/signals/{id}/snooze"), Some(&admin), None);
    assert_eq!((status, lifted.get("snooze")), (200, None), "{lifted}");
    assert_eq!(server.api("POST", &format!("/api/v1/signals/{id}/status"), Some(&admin), Some(&json!({"status": "resolved"}))).0, 200);
    let (status, refused) = snooze(json!({"for_minutes": 5}));
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("invalid_transition")), "{refused}");
    assert_eq!(types(&drain(&received, Duration::from_millis(1500))), ["signal.resolved"]);
}

#[test]
fn retention_removes_old_occurrences_and_keeps_the_group_with_its_count() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms", "--signal-retention", "2s", "--signal-sweep-every", "1s"]);
    let (_, admin) = server.tenant("acme");
    server.rule(&admin, "fraud", FRAUD_RULE);
    for trace in [0x31, 0x32] {
        send_charge(&server, &admin, trace);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.signals(&admin, "").first().is_none_or(|group| group["occurrences"] != 2) {
        assert!(std::time::Instant::now() < deadline, "{:?}", server.signals(&admin, ""));
        std::thread::sleep(Duration::from_millis(100));
    }
    let id = server.signals(&admin, "")[0]["id"].as_str().unwrap().to_string();
    // Older than two seconds, swept every second: the occurrences and the samples' snapshots go.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, page) = server.api("GET", &format!("/api/v1/signals/{id}/occurrences"), Some(&admin), None);
        if page["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{page}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let group = &server.signals(&admin, "")[0];
    assert_eq!((group["occurrences"].as_u64(), group["samples"].as_array().unwrap().len()), (Some(2), 0), "{group}");
    assert_eq!(server.api("GET", &format!("/api/v1/signals/{id}/trace"), Some(&admin), None).0, 404);
}
