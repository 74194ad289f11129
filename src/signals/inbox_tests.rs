//! Unit tests of grouping keys, exact counts under concurrency, snoozes, the
//! inbox index (filters, order, pages, counts) and the occurrence series.
use super::*;
use crate::model::otlp;
use crate::model::rule::Severity;

fn trace_n(n: u32, names: &[(&str, u8)]) -> Trace {
    let json = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
        "scopeSpans": [{"spans": names.iter().map(|(name, id)| serde_json::json!({
            "traceId": format!("{n:032x}"), "spanId": format!("00000000000000{id:02x}"), "name": name,
            "startTimeUnixNano": "1", "endTimeUnixNano": "2"})).collect::<Vec<_>>()}]}]});
    let spans = otlp::convert(otlp::from_json(json.to_string().as_bytes()).unwrap()).spans;
    Trace::new(spans[0].trace_id, spans)
}

fn violation(message: &str, span: &str, group: Option<&str>) -> Violation {
    Violation {
        message: message.into(),
        severity: Severity::High,
        span_ids: vec![span.into()],
        attributes: None,
        group: group.map(str::to_string),
    }
}

/// Opens the store in `dir`; a store just dropped may hold sled's lock for a
/// moment (its flusher thread lets go on its next tick).
fn open(dir: &std::path::Path) -> Signals {
    for _ in 0..50 {
        if let Ok(store) = Store::open(dir) {
            return Signals::open(Arc::new(store)).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the store in {} stayed locked", dir.display());
}

fn rule(id: &str) -> RuleRef {
    RuleRef { id: id.into(), name: format!("{id}-name"), version: 1, ..Default::default() }
}

/// Records one violation of `rule_id` naming span 1 of trace `n`.
fn occur(signals: &Signals, tenant: &TenantId, n: u32, rule_id: &str, span_name: &str, group: Option<&str>) -> Recorded {
    let trace = trace_n(n, &[(span_name, 1)]);
    let runs = vec![(rule(rule_id), vec![violation("broken", "0000000000000001", group)])];
    signals.record(tenant, &trace, b"", &runs, false).unwrap()
}

fn all(signals: &Signals, tenant: &TenantId, filter: Filter) -> Vec<Signal> {
    signals.list(tenant, &Filter { limit: 500, ..filter }).unwrap().0
}

#[test]
fn a_rules_own_key_groups_across_shapes_and_apart_within_one() {
    let dir = tempfile::tempdir().unwrap();
    let signals = open(dir.path());
    let tenant = TenantId::trusted("t");
    // Default: the witness's (service, name).
    occur(&signals, &tenant, 1, "r", "a", None);
    occur(&signals, &tenant, 2, "r", "a", None);
    occur(&signals, &tenant, 3, "r", "b", None);
    // A key: other span names, one group per key.
    occur(&signals, &tenant, 4, "r", "x", Some("/checkout"));
    occur(&signals, &tenant, 5, "r", "y", Some("/checkout"));
    occur(&signals, &tenant, 6, "r", "a", Some("/cart"));
    let mut groups: Vec<(Option<String>, u64)> =
        all(&signals, &tenant, Filter::default()).into_iter().map(|g| (g.group_key, g.occurrences)).collect();
    groups.sort();
    assert_eq!(groups, vec![(None, 1), (None, 2), (Some("/cart".into()), 1), (Some("/checkout".into()), 2)]);
    // Another rule with the same key is another group.
    assert_eq!(occur(&signals, &tenant, 7, "other", "x", Some("/checkout")).created.len(), 1);
}

#[test]
fn counts_stay_exact_under_concurrent_evaluation_workers_and_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let signals = Arc::new(open(dir.path()));
    let tenant = TenantId::trusted("t");
    let workers: Vec<_> = (0..8u32)
        .map(|worker| {
            let (signals, tenant) = (signals.clone(), tenant.clone());
            std::thread::spawn(move || {
                for n in 0..150 {
                    occur(&signals, &tenant, worker * 1000 + n + 1, "r", "charge", None);
                    // Every trace once more: a duplicate never counts.
                    if n % 10 == 0 {
                        assert_eq!(occur(&signals, &tenant, worker * 1000 + n + 1, "r", "charge", None).duplicates, 1);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let groups = all(&signals, &tenant, Filter::default());
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].occurrences, 1200);
    let counts = signals.counts(&tenant, &Filter::default(), None).unwrap();
    assert_eq!((counts.total, counts.occurrences), (1, 1200));
    let now = now_ms();
    assert_eq!(signals.rule_totals(&tenant, now - 3_600_000, now + 1).unwrap().get("r"), Some(&1200));
    let (occurrences, _) = signals.occurrences(&tenant, &groups[0].id, None, 500).unwrap();
    assert_eq!(occurrences.len(), 500);
    signals.flush().unwrap();
    drop(signals);
    // Reopened: the index is rebuilt from disk with the same figures.
    let signals = open(dir.path());
    let counts = signals.counts(&tenant, &Filter::default(), None).unwrap();
    assert_eq!((counts.total, counts.occurrences), (1, 1200));
}

#[test]
fn snoozes_end_by_count_with_history_and_by_time_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let signals = open(dir.path());
    let tenant = TenantId::trusted("t");
    let id = occur(&signals, &tenant, 1, "r", "a", None).created[0].id.clone();
    let snoozed = signals.snooze(&tenant, &id, Until { time_ms: None, more_occurrences: Some(3) }, "u_1").unwrap().unwrap();
    assert_eq!(snoozed.snooze.as_ref().unwrap().until_occurrences, Some(4));
    assert_eq!(all(&signals, &tenant, Filter { snoozed: Some(false), ..Filter::default() }).len(), 0);
    assert_eq!(all(&signals, &tenant, Filter { snoozed: Some(true), ..Filter::default() }).len(), 1);
    assert!(occur(&signals, &tenant, 2, "r", "a", None).woke.is_empty());
    assert!(occur(&signals, &tenant, 3, "r", "a", None).woke.is_empty());
    let woke = occur(&signals, &tenant, 4, "r", "a", None).woke;
    assert_eq!(woke.len(), 1);
    assert!(woke[0].snooze.is_none());
    let kinds: Vec<ChangeKind> = woke[0].history.iter().map(|change| change.kind).collect();
    assert_eq!(kinds, [ChangeKind::Snoozed, ChangeKind::Unsnoozed]);
    assert_eq!(all(&signals, &tenant, Filter { snoozed: Some(false), ..Filter::default() }).len(), 1);
    // By time: out of the inbox until the time passes, then back without an occurrence.
    let until = now_ms() + 300;
    signals.snooze(&tenant, &id, Until { time_ms: Some(until), more_occurrences: None }, "u_1").unwrap().unwrap();
    assert_eq!(all(&signals, &tenant, Filter { snoozed: Some(false), ..Filter::default() }).len(), 0);
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(all(&signals, &tenant, Filter { snoozed: Some(false), ..Filter::default() }).len(), 1);
    assert!(signals.get(&tenant, &id).unwrap().unwrap().snooze.is_none());
    // A mute lasts until lifted; resolved groups cannot be snoozed.
    signals.snooze(&tenant, &id, Until::default(), "u_1").unwrap().unwrap();
    let lifted = signals.unsnooze(&tenant, &id, "u_2").unwrap().unwrap();
    assert!(lifted.snooze.is_none());
    signals.set_status(&tenant, &id, Status::Resolved, "", "u_1").unwrap().unwrap();
    assert!(matches!(signals.snooze(&tenant, &id, Until::default(), "u_1"), Err(SignalError::Snooze { .. })));
}

#[test]
fn the_inbox_filters_orders_pages_and_counts_from_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let signals = open(dir.path());
    let tenant = TenantId::trusted("t");
    let other = TenantId::trusted("t2");
    // Ten groups: rules r0..r4, two shapes each.
    let mut ids = Vec::new();
    for n in 0..10u32 {
        let recorded = occur(&signals, &tenant, n + 1, &format!("r{}", n % 5), &format!("span{}", n / 5), None);
        ids.push(recorded.created[0].id.clone());
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    occur(&signals, &other, 99, "r0", "span0", None);
    // Last seen first: the newest group leads; a group seen again moves to the top.
    assert_eq!(all(&signals, &tenant, Filter::default())[0].id, ids[9]);
    occur(&signals, &tenant, 50, "r0", "span0", None);
    let listed = all(&signals, &tenant, Filter::default());
    assert_eq!(listed.len(), 10);
    assert_eq!(listed[0].id, ids[0]);
    // Pages of three cover every group once.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = signals.list(&tenant, &Filter { limit: 3, cursor: cursor.clone(), ..Filter::default() }).unwrap();
        seen.extend(page.into_iter().map(|group| group.id));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((seen.len(), sorted.len()), (10, 10));
    assert!(matches!(signals.list(&tenant, &Filter { cursor: Some("s_bad".into()), ..Filter::default() }), Err(SignalError::Cursor)));
    // Filters: rule by id and by name, status, assignee, text, trace, version.
    assert_eq!(all(&signals, &tenant, Filter { rule: Some("r1".into()), ..Filter::default() }).len(), 2);
    assert_eq!(all(&signals, &tenant, Filter { rule: Some("r1-name".into()), ..Filter::default() }).len(), 2);
    signals.set_status(&tenant, &ids[3], Status::Acknowledged, "", "u").unwrap();
    signals.assign(&tenant, &ids[4], Some("u_7"), "u").unwrap();
    let acknowledged = all(&signals, &tenant, Filter { status: Some(Status::Acknowledged), ..Filter::default() });
    assert_eq!(acknowledged.iter().map(|g| g.id.clone()).collect::<Vec<_>>(), [ids[3].clone()]);
    assert_eq!(all(&signals, &tenant, Filter { assignee: Some(Some("u_7".into())), ..Filter::default() })[0].id, ids[4]);
    assert_eq!(all(&signals, &tenant, Filter { assignee: Some(None), ..Filter::default() }).len(), 9);
    assert_eq!(all(&signals, &tenant, Filter { text: Some("R2-NAME".into()), ..Filter::default() }).len(), 2);
    assert_eq!(all(&signals, &tenant, Filter { trace_id: Some(format!("{:032x}", 50)), ..Filter::default() })[0].id, ids[0]);
    assert_eq!(all(&signals, &tenant, Filter { version: Some(2), ..Filter::default() }).len(), 0);
    // Time: last seen at or after `since`.
    let since = now_ms() + 1000;
    assert!(all(&signals, &tenant, Filter { since_unix_ms: Some(since), ..Filter::default() }).is_empty());
    // Counts follow the same filters.
    let counts = signals.counts(&tenant, &Filter::default(), None).unwrap();
    assert_eq!((counts.total, counts.occurrences), (10, 11));
    assert_eq!((counts.by_status["open"], counts.by_status["acknowledged"]), (9, 1));
    assert_eq!(counts.by_rule[0].rule_id, "r0");
    assert_eq!(counts.by_rule[0].occurrences, 3);
    let counts = signals.counts(&tenant, &Filter { rule: Some("r0".into()), ..Filter::default() }, None).unwrap();
    assert_eq!(counts.total, 2);
    // Another tenant sees its own only.
    assert_eq!(all(&signals, &other, Filter::default()).len(), 1);
}

#[test]
fn series_add_minutes_at_the_ends_and_hours_between() {
    let dir = tempfile::tempdir().unwrap();
    let signals = open(dir.path());
    let tenant = TenantId::trusted("t");
    let group = [7u8; 16];
    let hour = series::HOUR_MS;
    let base = 1_000 * hour;
    for (at, n) in [(base + 5 * 60_000, 2), (base + hour + 1, 3), (base + 2 * hour + 30 * 60_000, 4)] {
        signals.count_series(&tenant, &group, "r", at, n).unwrap();
    }
    let id = format!("s_{}", hex::encode(group));
    assert_eq!(signals.group_series(&tenant, &id, base, hour, 3).unwrap(), [2, 3, 4]);
    // An unaligned range: minutes at both ends, the whole hour between.
    assert_eq!(signals.group_series(&tenant, &id, base + 10 * 60_000, 2 * hour + 30 * 60_000, 1).unwrap(), [7]);
    assert_eq!(signals.group_series(&tenant, &id, base + 10 * 60_000, 2 * hour + 31 * 60_000, 1).unwrap(), [7 + 0]);
    assert_eq!(signals.group_series(&tenant, &id, base, 5 * 60_000, 2).unwrap(), [0, 2]);
    assert_eq!(signals.rule_totals(&tenant, base, base + 3 * hour).unwrap().get("r"), Some(&9));
    // Taking back: a withdrawn occurrence leaves its bucket.
    signals.count_series(&tenant, &group, "r", base + hour + 1, -3).unwrap();
    assert_eq!(signals.group_series(&tenant, &id, base, hour, 3).unwrap(), [2, 0, 4]);
    // Old minutes go; hours stay.
    assert!(signals.expire_minutes(&tenant, &[group], base + 3 * hour).unwrap() > 0);
    assert_eq!(signals.group_series(&tenant, &id, base, hour, 3).unwrap(), [2, 0, 4]);
}

#[test]
fn series_are_built_once_for_a_directory_from_before_them() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::trusted("t");
    {
        let signals = open(dir.path());
        for n in 1..=5 {
            occur(&signals, &tenant, n, "r", "a", None);
        }
        // As a data directory written before series, counters and the time index existed
        // (its group records still count their occurrences).
        let id = id_bytes(&all(&signals, &tenant, Filter::default())[0].id).unwrap();
        signals.update(&tenant, &id, |group| Ok(Some(assert_eq!(group.occurrences, 5)))).unwrap();
        signals.series.clear().unwrap();
        signals.counters.clear().unwrap();
        signals.meta.clear().unwrap();
        // Its occurrence records were JSON, and it had trees this layout drops.
        for entry in signals.occurrences.iter() {
            let (key, record) = entry.unwrap();
            let occurrence = super::occurrence::decode(&key[key.len() - 16..].try_into().unwrap(), &record).unwrap();
            signals.occurrences.insert(key, serde_json::to_vec(&occurrence).unwrap()).unwrap();
        }
        for old in ["signal_dedup", "signal_occurrence_times"] {
            signals.store.db.open_tree(old).unwrap().insert(b"k", b"v").unwrap();
        }
        signals.flush().unwrap();
    }
    let signals = open(dir.path());
    let trees = signals.store.db.tree_names();
    assert!(!trees.iter().any(|tree| tree.as_ref() == b"signal_dedup" || tree.as_ref() == b"signal_occurrence_times"));
    let id = all(&signals, &tenant, Filter::default())[0].id.clone();
    let (kept, _) = signals.occurrences(&tenant, &id, None, 50).unwrap();
    assert_eq!(kept.len(), 5, "JSON records still read");
    assert_eq!(kept[0].trace_id, format!("{:032x}", 5));
    // The same violation of a trace seen before is a duplicate (its dedup key is in the per-trace entry).
    assert_eq!(occur(&signals, &tenant, 5, "r", "a", None).duplicates, 1);
    let now = now_ms();
    assert_eq!(signals.rule_totals(&tenant, now - 3_600_000, now + 1).unwrap().get("r"), Some(&5));
    assert_eq!(signals.build_series().unwrap(), None);
    let groups = all(&signals, &tenant, Filter::default());
    assert_eq!((groups.len(), groups[0].occurrences), (1, 5), "the counter is built from the record");
    assert!(signals.usage_bytes(&tenant) > 0, "usage is counted from the occurrences");
    assert_eq!(occur(&signals, &tenant, 6, "r", "a", None).counted[0].occurrences, 6);
}

#[test]
fn retention_removes_old_occurrences_by_age_and_by_budget_and_keeps_the_groups() {
    let dir = tempfile::tempdir().unwrap();
    let signals = open(dir.path());
    let tenant = TenantId::trusted("t");
    let keep_all = Retention { max_age_ms: u64::MAX / 2, max_bytes: u64::MAX };
    let record = |n: u32| {
        let trace = trace_n(n, &[("charge", 1)]);
        let runs = vec![(rule("r"), vec![violation("broken", "0000000000000001", None)])];
        signals.record(&tenant, &trace, &[7u8; 1000], &runs, false).unwrap()
    };
    let id = record(1).created[0].id.clone();
    for n in 2..=40 {
        record(n);
    }
    assert_eq!(signals.sweep(keep_all, now_ms()).unwrap(), Swept::default());
    let full = signals.usage_bytes(&tenant);
    // Snapshots of five samples (1000 bytes each) and forty occurrence records.
    assert!(full > 5000 && full < 5000 + 40 * 400, "{full} bytes");
    // By budget: the oldest go until the tenant fits.
    let budget = full - 3000;
    let swept = signals.sweep(Retention { max_bytes: budget, ..keep_all }, now_ms()).unwrap();
    assert!(swept.occurrences > 0 && signals.usage_bytes(&tenant) <= budget);
    let (kept, _) = signals.occurrences(&tenant, &id, None, 500).unwrap();
    assert_eq!(kept.len() as u64, 40 - swept.occurrences);
    // The newest stayed.
    assert_eq!(kept[0].trace_id, format!("{:032x}", 40));
    // The first sample's occurrence went with its snapshot.
    let group = signals.get(&tenant, &id).unwrap().unwrap();
    assert!(!group.samples.contains(&format!("{:032x}", 1)));
    assert!(signals.snapshot(&tenant, &1u128.to_be_bytes()).unwrap().is_none());
    // By age: everything older than now goes; the group stays with its count.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let swept = signals.sweep(Retention { max_age_ms: 1, ..keep_all }, now_ms()).unwrap();
    assert_eq!(swept.occurrences as usize, kept.len());
    assert!(signals.occurrences(&tenant, &id, None, 500).unwrap().0.is_empty());
    let group = signals.get(&tenant, &id).unwrap().unwrap();
    assert_eq!((group.occurrences, group.samples.len()), (40, 0));
    assert_eq!(signals.usage_bytes(&tenant), 0);
    // Usage is counted again at start.
    record(41);
    let before = signals.usage_bytes(&tenant);
    signals.flush().unwrap();
    drop(signals);
    assert_eq!(open(dir.path()).usage_bytes(&tenant), before);
}

#[test]
fn a_pinned_sample_keeps_its_snapshot_through_sampling_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let signals = open(dir.path());
    let tenant = TenantId::trusted("t");
    let record = |n: u32| {
        let trace = trace_n(n, &[("charge", 1)]);
        let runs = vec![(rule("r"), vec![violation("broken", "0000000000000001", None)])];
        signals.record(&tenant, &trace, &[n as u8; 100], &runs, false).unwrap()
    };
    let id = record(1).created[0].id.clone();
    for n in 2..=5 {
        record(n);
    }
    let second = format!("{:032x}", 2);
    assert!(matches!(signals.pin(&tenant, &id, &format!("{:032x}", 99)), Err(SignalError::NotSample)));
    assert_eq!(signals.pin(&tenant, &id, &second).unwrap().unwrap().pinned, [second.clone()]);
    // A new sample evicts trace 2 from the samples; pinned, its snapshot stays.
    let group_id = id_bytes(&id).unwrap();
    signals
        .update(&tenant, &group_id, |group| {
            group.sampled_unix_ms = 0;
            Ok(Some(()))
        })
        .unwrap();
    record(6);
    let group = signals.get(&tenant, &id).unwrap().unwrap();
    assert!(!group.samples.contains(&second));
    assert!(signals.snapshot(&tenant, &2u128.to_be_bytes()).unwrap().is_some());
    // Retention takes its occurrence, not its snapshot.
    signals.sweep(Retention { max_age_ms: 0, max_bytes: u64::MAX }, now_ms() + 1).unwrap();
    assert!(signals.snapshot(&tenant, &2u128.to_be_bytes()).unwrap().is_some());
    // Unpinned, it goes.
    assert!(signals.unpin(&tenant, &id, &second).unwrap().unwrap().pinned.is_empty());
    assert!(signals.snapshot(&tenant, &2u128.to_be_bytes()).unwrap().is_none());
}

#[test]
fn a_new_group_stays_unannounced_until_its_notification_is_durable_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::trusted("t");
    let id = {
        let signals = open(dir.path());
        let id = occur(&signals, &tenant, 1, "r", "a", None).created[0].id.clone();
        assert!(occur(&signals, &tenant, 2, "r", "a", None).created.is_empty(), "a further occurrence is no new group");
        signals.flush().unwrap();
        id
    };
    // A crash before the announcement: the group comes back unannounced.
    let signals = open(dir.path());
    let pending = signals.unannounced().unwrap();
    assert_eq!(
        pending.iter().map(|(tenant, group, what)| (tenant.as_str(), group.id.as_str(), what.clone())).collect::<Vec<_>>(),
        [("t", id.as_str(), vec![Announcement::Created])]
    );
    signals.announced(&tenant, &id, Announcement::Created).unwrap();
    assert!(signals.unannounced().unwrap().is_empty());
}

#[test]
fn a_regression_and_an_automatic_clear_stay_unannounced_until_announced() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::trusted("t");
    let pending =
        |signals: &Signals| -> Vec<Vec<Announcement>> { signals.unannounced().unwrap().into_iter().map(|(_, _, what)| what).collect() };
    let signals = open(dir.path());
    let id = occur(&signals, &tenant, 1, "r", "a", None).created[0].id.clone();
    signals.announced(&tenant, &id, Announcement::Created).unwrap();
    assert!(occur(&signals, &tenant, 2, "r", "a", None).regressed.is_empty());
    assert!(pending(&signals).is_empty(), "a further occurrence of an open group announces nothing");
    signals.set_status(&tenant, &id, Status::Resolved, "", "u_1").unwrap().unwrap();
    assert_eq!(occur(&signals, &tenant, 3, "r", "a", None).regressed.len(), 1);
    signals.flush().unwrap();
    drop(signals);
    // A crash before the regression's notification: it comes back.
    let signals = open(dir.path());
    assert_eq!(pending(&signals), [vec![Announcement::Regressed]]);
    signals.announced(&tenant, &id, Announcement::Regressed).unwrap();
    assert!(pending(&signals).is_empty());

    // Trace 3 amended without the violation, then 1 and 2: the last withdrawal clears the group.
    let clean = |n: u32| {
        let trace = trace_n(n, &[("a", 1)]);
        signals.record(&tenant, &trace, b"", &[(rule("r"), vec![])], true).unwrap()
    };
    assert!(clean(3).cleared.is_empty() && clean(2).cleared.is_empty());
    assert!(pending(&signals).is_empty(), "occurrences left: no clear, no marker");
    assert_eq!(clean(1).cleared.len(), 1);
    signals.flush().unwrap();
    drop(signals);
    let signals = open(dir.path());
    assert_eq!(pending(&signals), [vec![Announcement::Cleared]]);
    signals.announced(&tenant, &id, Announcement::Cleared).unwrap();
    assert!(pending(&signals).is_empty());
}

#[test]
fn a_replay_after_a_lost_by_trace_write_repairs_it_instead_of_counting_twice() {
    // A kill -9 can leave a group's creation and its occurrence on disk but not
    // the trace's by_trace entry (sled keeps a prefix of the writes).
    let dir = tempfile::tempdir().unwrap();
    let signals = open(dir.path());
    let tenant = TenantId::trusted("t");
    let first = occur(&signals, &tenant, 7, "r", "a", Some("per-trace-key"));
    assert_eq!(first.created.len(), 1);
    let trace = trace_n(7, &[("a", 1)]);
    for entry in signals.by_trace.scan_prefix(keyed(&tenant, &[&trace.trace_id])) {
        signals.by_trace.remove(entry.unwrap().0).unwrap();
    }
    let replayed = occur(&signals, &tenant, 7, "r", "a", Some("per-trace-key"));
    assert_eq!((replayed.created.len(), replayed.counted.len(), replayed.duplicates), (0, 0, 1), "the replay is a duplicate");
    let groups = all(&signals, &tenant, Filter::default());
    assert_eq!(groups.iter().map(|g| g.occurrences).collect::<Vec<_>>(), vec![1]);
    // The entry is back: an amendment without the violation still withdraws it.
    assert!(signals.by_trace.scan_prefix(keyed(&tenant, &[&trace.trace_id])).next().is_some());
    // Another trace's violation in the same group is still counted.
    let other = occur(&signals, &tenant, 8, "r", "a", Some("per-trace-key"));
    assert_eq!(other.counted.len(), 1);
}

#[test]
fn a_replay_of_a_counted_violation_whose_records_were_lost_is_repaired_not_counted_again() {
    // A kill -9 between the count of a violation on an existing group and its
    // occurrence and by_trace writes: both are gone, the count is not.
    let dir = tempfile::tempdir().unwrap();
    let signals = open(dir.path());
    let tenant = TenantId::trusted("t");
    assert_eq!(occur(&signals, &tenant, 7, "r", "a", Some("key")).created.len(), 1);
    assert_eq!(occur(&signals, &tenant, 8, "r", "a", Some("key")).counted.len(), 1);
    let trace = trace_n(8, &[("a", 1)]);
    for entry in signals.by_trace.scan_prefix(keyed(&tenant, &[&trace.trace_id])) {
        signals.by_trace.remove(entry.unwrap().0).unwrap();
    }
    let group = all(&signals, &tenant, Filter::default()).remove(0);
    let group_id = id_bytes(&group.id).unwrap();
    let occurrences = |signals: &Signals| signals.occurrences.scan_prefix(keyed(&tenant, &[&group_id])).count();
    let last = signals.occurrences.scan_prefix(keyed(&tenant, &[&group_id])).last().unwrap().unwrap().0;
    signals.occurrences.remove(last).unwrap();
    assert_eq!(occurrences(&signals), 1);

    let replayed = occur(&signals, &tenant, 8, "r", "a", Some("key"));
    assert_eq!((replayed.counted.len(), replayed.duplicates), (0, 1), "the replay is recognised");
    assert_eq!(all(&signals, &tenant, Filter::default()).remove(0).occurrences, 2, "counted once");
    assert_eq!(occurrences(&signals), 2, "the lost occurrence is written again");
    assert!(signals.by_trace.scan_prefix(keyed(&tenant, &[&trace.trace_id])).next().is_some(), "and its per-trace entry");
    // Replayed once more (a second crash): still a duplicate, nothing added.
    assert_eq!(occur(&signals, &tenant, 8, "r", "a", Some("key")).duplicates, 1);
    assert_eq!(occurrences(&signals), 2);
    // Only recent violations are remembered: after RECENT_COUNTED others, a
    // trace that was never recorded is counted as new.
    for trace in 9..9 + counters::RECENT_COUNTED as u32 {
        assert_eq!(occur(&signals, &tenant, trace, "r", "a", Some("key")).counted.len(), 1);
    }
    assert_eq!(all(&signals, &tenant, Filter::default()).remove(0).occurrences, 2 + counters::RECENT_COUNTED as u64);
}
