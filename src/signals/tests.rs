//! Unit tests of the signal store: dedup, witnesses, clearing races,
//! grouping, regressions, migration and sampled snapshots.
use super::*;
use crate::model::otlp;
use crate::model::rule::Severity;

fn trace(names: &[(&str, u8)]) -> Trace {
    let json = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
        "scopeSpans": [{"spans": names.iter().map(|(name, id)| serde_json::json!({
            "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": format!("00000000000000{id:02x}"), "name": name,
            "startTimeUnixNano": "1", "endTimeUnixNano": "2"})).collect::<Vec<_>>()}]}]});
    let spans = otlp::convert(otlp::from_json(json.to_string().as_bytes()).unwrap()).spans;
    Trace::new(spans[0].trace_id, spans)
}

fn otlp(trace: &Trace) -> Vec<u8> {
    prost::Message::encode_to_vec(&otlp::to_otlp(&trace.spans))
}

fn violation(message: &str, span: &str) -> Violation {
    Violation { message: message.into(), severity: Severity::High, span_ids: vec![span.into()], attributes: None, group: None }
}

#[test]
fn witness_copies_are_deduplicated_and_bounded() {
    let mut big = trace(&[("payment.charge_card", 1)]);
    big.spans[0].attributes.push(("blob".into(), crate::model::trace::Value::Str("x".repeat(60_000))));
    // Case variants of one id are one witness.
    let variants: Vec<String> = ["000000000000000a", "000000000000000A", "000000000000000a"].iter().map(|id| id.to_string()).collect();
    let mut budget = crate::rules::WITNESS_BYTES;
    let small = trace(&[("a", 10)]);
    assert_eq!(witnesses_of(&small, &variants, &mut budget).len(), 1);
    // One rule naming the 60 KB span in many violations stores at most the budget.
    let runs = vec![(
        RuleRef { id: "r_1".into(), name: "big".into(), version: 1, ..Default::default() },
        (0..100).map(|index| violation(&format!("v{index}"), "0000000000000001")).collect::<Vec<_>>(),
    )];
    let dir = tempfile::tempdir().unwrap();
    let signals = Signals::open(Arc::new(Store::open(dir.path()).unwrap())).unwrap();
    let recorded = signals.record(&TenantId::trusted("t_a"), &big, &otlp(&big), &runs, false).unwrap();
    // One span, one shape: one group with 100 occurrences.
    assert_eq!((recorded.created.len(), recorded.counted.len()), (1, 99));
    let group = signals.get(&TenantId::trusted("t_a"), &recorded.created[0].id).unwrap().unwrap();
    assert_eq!(group.occurrences, 100);
    let stored = serde_json::to_vec(&group).unwrap().len();
    assert!(stored <= crate::rules::WITNESS_BYTES + 4096, "{stored} bytes in the group");
    assert_eq!(group.span_ids, ["0000000000000001"]);
}

/// An acknowledgement racing an automatic clear: both go through one
/// compare-and-swap path, so whichever lands second sees the first; an
/// accepted acknowledgement is never overwritten by the clear.
#[test]
fn an_acknowledgement_racing_a_clear_is_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let signals = Arc::new(Signals::open(Arc::new(Store::open(dir.path()).unwrap())).unwrap());
    let rule = RuleRef { id: "r_1".into(), name: "fraud".into(), version: 1, ..Default::default() };
    let first = trace(&[("payment.charge_card", 1)]);
    let amended = trace(&[("payment.charge_card", 1), ("payment.fraud_check", 2)]);
    let (mut acknowledged_first, mut cleared_first) = (0, 0);
    for round in 0..300 {
        let tenant = TenantId::trusted(&format!("t_{round}"));
        let runs = vec![(rule.clone(), vec![violation("charge without fraud check", "0000000000000001")])];
        let id = signals.record(&tenant, &first, &otlp(&first), &runs, false).unwrap().created[0].id.clone();
        let start = Arc::new(std::sync::Barrier::new(2));
        let acknowledging = {
            let (signals, tenant, id, start) = (signals.clone(), tenant.clone(), id.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                signals.set_status(&tenant, &id, Status::Acknowledged, "looking", "u_ed")
            })
        };
        start.wait();
        // The amended trace no longer violates the rule: clear it.
        let recorded = signals.record(&tenant, &amended, &otlp(&amended), &[(rule.clone(), vec![])], true).unwrap();
        let acknowledgement = acknowledging.join().unwrap();
        let stored = signals.get(&tenant, &id).unwrap().unwrap();
        let authors: Vec<&str> = stored.history.iter().map(|change| change.author.as_str()).collect();
        assert_eq!(stored.history.last().map(|change| change.to), Some(stored.status), "{authors:?}");
        match (acknowledgement, recorded.cleared.is_empty()) {
            // Acknowledged first: the clear leaves it alone.
            (Ok(Some(_)), true) => {
                assert_eq!((stored.status, authors.as_slice()), (Status::Acknowledged, ["u_ed"].as_slice()));
                acknowledged_first += 1;
            }
            // Cleared first: acknowledging a resolved signal is refused, not lost.
            (Err(SignalError::Transition { .. }), false) => {
                assert_eq!((stored.status, authors.as_slice()), (Status::Resolved, ["fluo"].as_slice()));
                cleared_first += 1;
            }
            (acknowledgement, cleared_empty) => {
                panic!("acknowledgement {acknowledgement:?}, cleared: {}, stored: {authors:?}", !cleared_empty)
            }
        }
    }
    assert!(acknowledged_first + cleared_first == 300);
}

#[test]
fn dedup_clear_and_pagination() {
    let dir = tempfile::tempdir().unwrap();
    let signals = Signals::open(Arc::new(Store::open(dir.path()).unwrap())).unwrap();
    let tenant = TenantId::trusted("t_a");
    let other = TenantId::trusted("t_b");
    let rule = RuleRef { id: "r_1".into(), name: "fraud".into(), version: 1, ..Default::default() };
    let first = trace(&[("payment.charge_card", 1)]);
    let runs = vec![(rule.clone(), vec![violation("charge without fraud check", "0000000000000001")])];
    let recorded = signals.record(&tenant, &first, &otlp(&first), &runs, false).unwrap();
    assert_eq!(recorded.created.len(), 1);
    // The same violation on the amended trace is not stored twice.
    let amended = trace(&[("payment.charge_card", 1), ("cart", 2)]);
    assert_eq!(
        signals.record(&tenant, &amended, &otlp(&amended), &runs, true).unwrap(),
        Recorded { created: vec![], counted: vec![], regressed: vec![], duplicates: 1, cleared: vec![], woke: vec![] }
    );
    // The late fraud check clears it.
    let fixed = trace(&[("payment.charge_card", 1), ("payment.fraud_check", 3)]);
    let recorded = signals.record(&tenant, &fixed, &otlp(&fixed), &[(rule.clone(), vec![])], true).unwrap();
    assert_eq!(recorded.cleared.len(), 1);
    let (items, cursor) = signals.list(&tenant, &Filter { limit: 10, ..Filter::default() }).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].status, Status::Resolved);
    assert!(cursor.is_none());
    assert_eq!(items[0].witnesses[0].name, "payment.charge_card");
    assert!(signals.snapshot(&tenant, &first.trace_id).unwrap().is_some());
    // Another tenant sees nothing.
    assert!(signals.list(&other, &Filter { limit: 10, ..Filter::default() }).unwrap().0.is_empty());
    assert!(signals.get(&other, &items[0].id).unwrap().is_none());
    // Pagination: three more groups (other span names), pages of two.
    for index in 0..3 {
        let other = trace(&[(&format!("step-{index}"), 1)]);
        let runs = vec![(rule.clone(), vec![violation(&format!("v{index}"), "0000000000000001")])];
        assert_eq!(signals.record(&tenant, &other, &otlp(&other), &runs, false).unwrap().created.len(), 1);
    }
    let (page, cursor) = signals.list(&tenant, &Filter { limit: 2, ..Filter::default() }).unwrap();
    assert_eq!(page.len(), 2);
    let (rest, end) = signals.list(&tenant, &Filter { limit: 2, cursor: cursor.clone(), ..Filter::default() }).unwrap();
    assert_eq!(rest.len(), 2);
    assert!(end.is_none());
    let mut all: Vec<_> = page.iter().chain(&rest).map(|signal| signal.id.clone()).collect();
    all.dedup();
    assert_eq!(all.len(), 4);
    let open = signals.list(&tenant, &Filter { limit: 10, status: Some(Status::Open), ..Filter::default() }).unwrap().0;
    assert_eq!(open.len(), 3);
}

/// Violations of one shape are one group: counted exactly (also from
/// threads at once), the latest sample kept, a resolved group reopened as
/// a regression, a false positive kept quiet, and occurrences paged.
#[test]
fn violations_group_count_exactly_regress_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let signals = Arc::new(Signals::open(Arc::new(Store::open(dir.path()).unwrap())).unwrap());
    let tenant = TenantId::trusted("t_a");
    let rule = RuleRef { id: "r_1".into(), name: "fraud".into(), version: 1, ..Default::default() };
    let charge = |trace_byte: u8| {
        let mut trace = trace(&[("payment.charge_card", 1)]);
        trace.trace_id[15] = trace_byte;
        for span in &mut trace.spans {
            span.trace_id = trace.trace_id;
        }
        trace
    };
    let runs = vec![(rule.clone(), vec![violation("charge without fraud check", "0000000000000001")])];
    let first = signals.record(&tenant, &charge(0), &otlp(&charge(0)), &runs, false).unwrap();
    let id = first.created[0].id.clone();
    // 4 threads × 50 traces of the same shape: one group, 201 occurrences.
    let threads: Vec<_> = (0..4u8)
        .map(|thread| {
            let (signals, tenant, runs) = (signals.clone(), tenant.clone(), runs.clone());
            std::thread::spawn(move || {
                for n in 0..50u8 {
                    let trace = charge(1 + thread * 50 + n);
                    let recorded = signals.record(&tenant, &trace, &otlp(&trace), &runs, false).unwrap();
                    assert_eq!((recorded.created.len(), recorded.counted.len()), (0, 1));
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|thread| thread.join().unwrap());
    let group = signals.get(&tenant, &id).unwrap().unwrap();
    assert_eq!(group.occurrences, 201);
    assert_eq!(signals.list(&tenant, &Filter { limit: 10, ..Filter::default() }).unwrap().0.len(), 1);
    // Occurrences page newest first, every one once.
    let mut seen = std::collections::HashSet::new();
    let mut cursor = None;
    loop {
        let (page, next) = signals.occurrences(&tenant, &id, cursor.as_deref(), 64).unwrap();
        assert!(page.windows(2).all(|pair| pair[0].id > pair[1].id), "newest first");
        seen.extend(page.into_iter().map(|occurrence| occurrence.trace_id));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 201);

    // Resolved, then it fires again: a regression.
    signals.set_status(&tenant, &id, Status::Resolved, "fixed", "u_ed").unwrap();
    let version_2 = RuleRef { version: 2, ..rule.clone() };
    let again = vec![(version_2.clone(), runs[0].1.clone())];
    let recorded = signals.record(&tenant, &charge(250), &otlp(&charge(250)), &again, false).unwrap();
    assert_eq!(recorded.regressed.len(), 1);
    let group = &recorded.regressed[0];
    assert_eq!((group.status, group.regressions, group.occurrences, group.versions.as_slice()), (Status::Open, 1, 202, [1, 2].as_slice()));
    assert_eq!(group.history.last().map(|change| (change.from, change.author.as_str())), Some((Status::Resolved, "fluo")));
    // A false positive stays quiet: counted, not reopened.
    signals.set_status(&tenant, &id, Status::FalsePositive, "expected", "u_ed").unwrap();
    let recorded = signals.record(&tenant, &charge(251), &otlp(&charge(251)), &again, false).unwrap();
    assert_eq!((recorded.counted.len(), recorded.regressed.len()), (1, 0));
    assert_eq!(recorded.counted[0].status, Status::FalsePositive);
    // Another shape is another group; another tenant sees nothing.
    let mut other = trace(&[("payment.refund", 1)]);
    other.trace_id[0] = 0xee;
    assert_eq!(signals.record(&tenant, &other, &otlp(&other), &runs, false).unwrap().created.len(), 1);
    assert!(signals.occurrences(&TenantId::trusted("t_b"), &id, None, 10).unwrap().0.is_empty());
}

/// A data directory from before grouping: its signals become groups of one
/// occurrence at start, and a new violation of the same shape counts onto
/// the newest of them.
#[test]
fn signals_from_before_grouping_migrate_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::trusted("t_a");
    let rule = RuleRef { id: "r_1".into(), name: "fraud".into(), version: 3, ..Default::default() };
    let first = trace(&[("payment.charge_card", 1)]);
    let runs = vec![(rule.clone(), vec![violation("charge without fraud check", "0000000000000001")])];
    let id = {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let signals = Signals::open(store.clone()).unwrap();
        let created = signals.record(&tenant, &first, &otlp(&first), &runs, false).unwrap().created.remove(0);
        // Rewrite it as the old code stored it: no group fields, no group index, no occurrence.
        let mut old = serde_json::to_value(&created).unwrap();
        for field in ["fingerprint", "occurrences", "last_seen_at", "last_seen_unix_ms", "versions", "regressions"] {
            old.as_object_mut().unwrap().remove(field);
        }
        let key = keyed(&tenant, &[&id_bytes(&created.id).unwrap()]);
        signals.signals.insert(key, serde_json::to_vec(&old).unwrap()).unwrap();
        signals.groups.clear().unwrap();
        signals.occurrences.clear().unwrap();
        signals.by_trace.clear().unwrap();
        signals.by_trace.insert(keyed(&tenant, &[&first.trace_id, &id_bytes(&created.id).unwrap()]), &[]).unwrap();
        signals.flush().unwrap();
        created.id
    };
    let signals = Signals::open(Arc::new(Store::open(dir.path()).unwrap())).unwrap();
    let group = signals.get(&tenant, &id).unwrap().unwrap();
    assert_eq!((group.occurrences, group.versions.as_slice(), group.fingerprint.len()), (1, [3].as_slice(), 64));
    assert_eq!(signals.occurrences(&tenant, &id, None, 10).unwrap().0.len(), 1);
    // The same violation on the same trace is still a duplicate; on another trace it counts.
    assert_eq!(signals.record(&tenant, &first, &otlp(&first), &runs, false).unwrap().duplicates, 1);
    let mut second = trace(&[("payment.charge_card", 1)]);
    second.trace_id[0] = 0x11;
    let recorded = signals.record(&tenant, &second, &otlp(&second), &runs, false).unwrap();
    assert_eq!(recorded.counted.iter().map(|group| (group.id.as_str(), group.occurrences)).collect::<Vec<_>>(), [(id.as_str(), 2)]);
    // The late fraud check withdraws the old occurrence only.
    let fixed = trace(&[("payment.charge_card", 1), ("payment.fraud_check", 2)]);
    let recorded = signals.record(&tenant, &fixed, &otlp(&fixed), &[(rule, vec![])], true).unwrap();
    assert!(recorded.cleared.is_empty(), "one occurrence is left");
    assert_eq!(signals.get(&tenant, &id).unwrap().unwrap().occurrences, 1);
}

/// A flood of one violation keeps the trace snapshots of the group's
/// samples only (the first five, then at most one new one a minute), not one
/// per occurrence, and counts every occurrence without rewriting the group.
#[test]
fn a_flood_keeps_snapshots_of_samples_only() {
    let dir = tempfile::tempdir().unwrap();
    let signals = Signals::open(Arc::new(Store::open(dir.path()).unwrap())).unwrap();
    let tenant = TenantId::trusted("t_a");
    let rule = RuleRef { id: "r_1".into(), name: "fraud".into(), version: 1, ..Default::default() };
    let runs = vec![(rule, vec![violation("charge without fraud check", "0000000000000001")])];
    let traces: Vec<Trace> = (0..21u8)
        .map(|n| {
            let mut trace = trace(&[("payment.charge_card", 1)]);
            trace.trace_id[0] = n;
            trace
        })
        .collect();
    for trace in &traces[..20] {
        signals.record(&tenant, trace, &otlp(trace), &runs, false).unwrap();
    }
    let kept =
        |upto: usize| -> Vec<usize> { (0..upto).filter(|&n| signals.snapshot(&tenant, &traces[n].trace_id).unwrap().is_some()).collect() };
    assert_eq!(kept(20), [0, 1, 2, 3, 4], "the first five, none of the flood after them");
    let group = signals.list(&tenant, &Filter { limit: 10, ..Filter::default() }).unwrap().0.remove(0);
    assert_eq!((group.occurrences, group.samples.len()), (20, group::MAX_SAMPLES));
    // Fifteen occurrences only counted: the record was written for the first five only.
    assert_eq!(group.revision, 4, "one write per sample, not per occurrence");
    assert_eq!(group.trace_id, hex::encode(traces[4].trace_id), "the latest sample is the group's trace");
    assert!(group.last_seen_unix_ms >= group.sampled_unix_ms, "last seen is the latest occurrence");
    assert_eq!(signals.occurrences(&tenant, &group.id, None, 100).unwrap().0.len(), 20, "every occurrence is kept");
    // A minute after the latest sample, the next occurrence is one: the oldest of the latest ones goes.
    let id = id_bytes(&group.id).unwrap();
    signals
        .update(&tenant, &id, |group| {
            group.sampled_unix_ms -= group::SAMPLE_EVERY_MS;
            Ok(Some(()))
        })
        .unwrap();
    signals.record(&tenant, &traces[20], &otlp(&traces[20]), &runs, false).unwrap();
    assert_eq!(kept(21), [0, 2, 3, 4, 20]);
    let group = signals.get(&tenant, &group.id).unwrap().unwrap();
    assert_eq!((group.occurrences, group.trace_id.clone()), (21, hex::encode(traces[20].trace_id)));
}
