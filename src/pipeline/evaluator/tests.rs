//! Lanes: one tenant's traces on every worker, a trace and its amendments in one lane.

use super::*;
use crate::pipeline::assembler::CloseReason;

/// A rule that works a few milliseconds on every trace and fires on none.
const SLOW: &str =
    "export default t => { let x = 0; for (let i = 0; i < 50000; i++) x += i; return x < 0 ? { message: 'never' } : undefined; };";

struct Fixture {
    _dir: tempfile::TempDir,
    evaluator: Evaluator,
    recent: Arc<RecentTraces>,
    engine: Arc<RuleEngine>,
    signals: Arc<Signals>,
    counters: Arc<Counters>,
}

fn fixture(workers: usize, lanes: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let engine = RuleEngine::new(crate::rules::Limits::default()).unwrap();
    let store = Arc::new(crate::store::Store::open(dir.path()).unwrap());
    let signals = Arc::new(Signals::open(store).unwrap());
    let recent = Arc::new(RecentTraces::open(&dir.path().join("traces"), Default::default()).unwrap());
    let counters = Arc::new(Counters::default());
    let evaluator = Evaluator::start(
        workers,
        lanes,
        engine.clone(),
        signals.clone(),
        recent.clone(),
        counters.clone(),
        None,
        crate::events::EventHub::new(),
        AssemblyLimits::default(),
    );
    Fixture { _dir: dir, evaluator, recent, engine, signals, counters }
}

fn set_rule(fixture: &Fixture, tenant: &TenantId, source: &str) {
    let (_, loaded) = crate::rules::compile::compile(&fixture.engine, source).unwrap();
    fixture
        .evaluator
        .set_rules(tenant, vec![(RuleRef { id: "r_1".into(), name: "rule".into(), version: 1, ..Default::default() }, loaded)]);
}

/// A closed part of trace `trace` with the spans `span_ids`, all named `a`.
fn part(tenant: &TenantId, trace: u128, span_ids: &[u64]) -> ClosedTrace {
    named_part(tenant, trace, &span_ids.iter().map(|id| (*id, "a")).collect::<Vec<_>>())
}

fn named_part(tenant: &TenantId, trace: u128, spans: &[(u64, &str)]) -> ClosedTrace {
    let json = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": spans.iter().map(|(id, name)| serde_json::json!({
        "traceId": format!("{trace:032x}"), "spanId": format!("{id:016x}"), "name": name,
        "startTimeUnixNano": "1", "endTimeUnixNano": "2"})).collect::<Vec<_>>()}]}]});
    let request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest = serde_json::from_value(json).unwrap();
    ClosedTrace {
        tenant: tenant.clone(),
        trace_id: trace.to_be_bytes(),
        spans: crate::model::otlp::convert(request).spans,
        reason: CloseReason::Idle,
        last_span_at: Instant::now(),
        position: 0,
    }
}

#[test]
fn a_trace_always_falls_to_the_same_lane_and_ids_spread_over_all() {
    // Counted up in the last byte, in the first, and random-looking.
    let shapes: [fn(u128) -> u128; 3] = [|n| n, |n| n << 120, |n| n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)];
    for shape in shapes {
        let mut seen = [0usize; 4];
        for n in 0..400u128 {
            let id = shape(n).to_be_bytes();
            assert_eq!(lane_of(&id, 4), lane_of(&id, 4));
            seen[lane_of(&id, 4)] += 1;
        }
        assert!(seen.iter().all(|&count| count > 50), "{seen:?}");
    }
    assert_eq!(lane_of(&[7; 16], 1), 0);
}

#[test]
fn one_tenant_occupies_every_worker_with_as_many_lanes_and_one_with_a_single_lane() {
    for (lanes, expected) in [(2, 2), (1, 1)] {
        let fixture = fixture(2, lanes);
        let tenant = TenantId::trusted("t");
        set_rule(&fixture, &tenant, SLOW);
        fixture.evaluator.submit((1..=40u128).map(|trace| part(&tenant, trace, &[1])).collect());
        fixture.evaluator.drain();
        assert_eq!(fixture.evaluator.peak_busy(), expected, "lanes {lanes}");
        assert_eq!(fixture.evaluator.backlog(&tenant), 0);
        fixture.evaluator.stop();
    }
}

#[test]
fn amendments_of_a_trace_are_merged_in_order_on_two_workers() {
    let fixture = fixture(2, 2);
    let tenant = TenantId::trusted("t");
    set_rule(&fixture, &tenant, SLOW);
    // Every trace closes three times (late spans), its parts submitted back to
    // back: evaluated concurrently, a part would merge with a stored copy
    // still missing the part before it.
    let traces = 1..=25u128;
    for trace in traces.clone() {
        fixture.evaluator.submit((0..3u64).map(|round| part(&tenant, trace, &[round * 2 + 1, round * 2 + 2])).collect());
    }
    fixture.evaluator.drain();
    assert_eq!(fixture.evaluator.peak_busy(), 2);
    for trace in traces {
        let stored = fixture.recent.get(&tenant, &trace.to_be_bytes()).unwrap().expect("stored");
        assert_eq!(stored.len(), 6, "trace {trace}: every part merged");
    }
    fixture.evaluator.stop();
}

#[test]
fn tenants_take_turns_while_one_floods_every_lane() {
    let fixture = fixture(2, 2);
    let (flood, quiet) = (TenantId::trusted("flood"), TenantId::trusted("quiet"));
    set_rule(&fixture, &flood, SLOW);
    set_rule(&fixture, &quiet, SLOW);
    fixture.evaluator.submit((1..=60u128).map(|trace| part(&flood, trace, &[1])).collect());
    std::thread::sleep(std::time::Duration::from_millis(20));
    fixture.evaluator.submit(vec![part(&quiet, 1, &[1])]);
    // The quiet tenant's one trace waits for at most a turn of each worker, not for the flood.
    let waited = Instant::now();
    while fixture.evaluator.backlog(&quiet) > 0 {
        assert!(fixture.evaluator.backlog(&flood) > 0, "the quiet trace waited for the whole flood");
        assert!(waited.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    fixture.evaluator.drain();
    fixture.evaluator.stop();
}

#[test]
fn a_rule_the_prefilter_skips_counts_as_run_and_late_spans_still_clear_its_signal() {
    let fixture = fixture(1, 1);
    let tenant = TenantId::trusted("t");
    set_rule(&fixture, &tenant, "export default trace.has('a').and(trace.missing('b'));");
    // An unrelated trace: the prefilter rules it out (no 'a'), nothing enters the sandbox.
    fixture.evaluator.submit(vec![named_part(&tenant, 1, &[(1, "x")])]);
    fixture.evaluator.drain();
    // A violation, then the late span that makes it hold: the amended trace meets no condition of the rule.
    fixture.evaluator.submit(vec![named_part(&tenant, 2, &[(1, "a")])]);
    fixture.evaluator.drain();
    let open = fixture.signals.list(&tenant, &crate::signals::Filter { limit: 10, ..Default::default() }).unwrap().0;
    assert_eq!((open.len(), open[0].status), (1, crate::signals::Status::Open));
    fixture.evaluator.submit(vec![named_part(&tenant, 2, &[(2, "b")])]);
    fixture.evaluator.drain();
    let cleared = fixture.signals.list(&tenant, &crate::signals::Filter { limit: 10, ..Default::default() }).unwrap().0;
    assert_eq!(cleared[0].status, crate::signals::Status::Resolved, "the skipped run cleared it");
    let mut stats = None;
    fixture.counters.rule(&tenant, "r_1", |own| stats = Some(own.clone()));
    let stats = stats.unwrap();
    assert_eq!((stats.calls, stats.skipped, stats.failures), (1, 2, 0), "{stats:?}");
    fixture.evaluator.stop();
}
