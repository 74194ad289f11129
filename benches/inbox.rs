//! The signal inbox at scale, on one core: 1,000,000 occurrences in 10,000
//! groups of one tenant (20 rules, five severities, some groups acknowledged,
//! resolved or assigned), recorded through `Signals::record` as the evaluator
//! does; then p50 and p99 of each inbox query (first page, filters, a
//! cursor page, text, counts, the chart's series, a group's occurrences,
//! sparklines, `GET /rules`' figures) and the bytes on disk per occurrence.
//!
//! Run: `cargo bench --bench inbox` (`make bench`). Figures in docs/BENCHMARKS.md.

use fluo::model::rule::{Severity, Violation};
use fluo::model::tenant::TenantId;
use fluo::model::trace::Trace;
use fluo::signals::{Buckets, Filter, RuleRef, Signals, Status};
use fluo::store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GROUPS: u32 = 10_000;
/// Occurrences per group; `FLUO_BENCH_PER_GROUP` sets fewer for a quick run.
fn per_group() -> u32 {
    std::env::var("FLUO_BENCH_PER_GROUP").ok().and_then(|v| v.parse().ok()).unwrap_or(100)
}
const RULES: u32 = 20;
const RUNS: usize = 200;

fn template() -> Trace {
    let json = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "0000000000000001", "name": "payment.charge_card",
            "kind": 2, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000020000000",
            "attributes": [{"key": "http.route", "value": {"stringValue": "/api/checkout"}}, {"key": "http.response.status_code", "value": {"intValue": "500"}}]}]}]}]});
    let spans = fluo::model::otlp::convert(fluo::model::otlp::from_json(json.to_string().as_bytes()).unwrap()).spans;
    Trace::new(spans[0].trace_id, spans)
}

fn severity(group: u32) -> Severity {
    Severity::ALL[(group % 5) as usize]
}

/// p50 and p99 of `runs` calls of `work` (given the run's index), in ms.
fn measure(runs: usize, mut work: impl FnMut(usize)) -> (f64, f64) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|run| {
            let start = Instant::now();
            work(run);
            start.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(times[runs / 2]), ms(times[(runs * 99 / 100).min(runs - 1)]))
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let signals = Signals::open(Arc::new(Store::open(dir.path()).unwrap())).unwrap();
    let tenant = TenantId::trusted("bench");
    let mut trace = template();
    let otlp = prost::Message::encode_to_vec(&fluo::model::otlp::to_otlp(&trace.spans));
    let empty = dir_bytes(dir.path());

    // Round-robin over the groups, as a steady stream of violations would arrive.
    let started = Instant::now();
    let mut group_ids = vec![String::new(); GROUPS as usize];
    for round in 0..per_group() {
        for group in 0..GROUPS {
            let n = u128::from(round) * u128::from(GROUPS) + u128::from(group) + 1;
            trace.trace_id = n.to_be_bytes();
            for span in &mut trace.spans {
                span.trace_id = trace.trace_id;
            }
            let rule = RuleRef {
                id: format!("r_{:02}", group % RULES),
                name: format!("rule-{:02}", group % RULES),
                version: 1,
                ..Default::default()
            };
            let violation = Violation {
                message: format!("violation {group} of checkout"),
                severity: severity(group),
                span_ids: vec!["0000000000000001".into()],
                attributes: None,
                group: Some(format!("g{group}")),
            };
            let recorded = signals.record(&tenant, &trace, &otlp, &[(rule, vec![violation])], false).unwrap();
            if let Some(created) = recorded.created.first() {
                group_ids[group as usize] = created.id.clone();
            }
        }
        // The evaluator commits a group of evaluations with one flush.
        signals.flush().unwrap();
    }
    let recording = started.elapsed();
    for (group, id) in group_ids.iter().enumerate() {
        match group % 10 {
            1 => drop(signals.set_status(&tenant, id, Status::Acknowledged, "", "bench").unwrap()),
            2 => drop(signals.set_status(&tenant, id, Status::Resolved, "", "bench").unwrap()),
            3 => drop(signals.assign(&tenant, id, Some(&format!("u_{}", group % 7)), "bench").unwrap()),
            _ => {}
        }
    }
    signals.flush().unwrap();
    let occurrences = u64::from(GROUPS) * u64::from(per_group());
    let bytes = dir_bytes(dir.path()) - empty;
    println!(
        "recorded {occurrences} occurrences in {GROUPS} groups in {:.1} s ({:.1} µs per occurrence, one thread)",
        recording.as_secs_f64(),
        recording.as_secs_f64() * 1e6 / occurrences as f64
    );
    println!(
        "data directory: {:.1} MiB, {} bytes per occurrence (groups, occurrences, series, indexes, sampled snapshots); tenant usage counted for retention: {} bytes per occurrence",
        bytes as f64 / (1 << 20) as f64,
        bytes / occurrences,
        signals.usage_bytes(&tenant) / occurrences
    );

    let filter = |edit: &dyn Fn(&mut Filter)| {
        let mut filter = Filter { limit: 50, ..Filter::default() };
        edit(&mut filter);
        filter
    };
    let now = fluo::model::time::now_ms();
    let hour = fluo::signals::series::HOUR_MS;
    let second_page = signals.list(&tenant, &filter(&|_| {})).unwrap().1;
    let mut rows: Vec<(&str, (f64, f64))> = Vec::new();
    rows.push(("list, first page (50)", measure(RUNS, |_| drop(signals.list(&tenant, &filter(&|_| {})).unwrap()))));
    rows.push((
        "list, next page by cursor",
        measure(RUNS, |_| drop(signals.list(&tenant, &filter(&|f| f.cursor = second_page.clone())).unwrap())),
    ));
    rows.push((
        "list ?severity=critical",
        measure(RUNS, |_| drop(signals.list(&tenant, &filter(&|f| f.severity = Some(Severity::Critical))).unwrap())),
    ));
    rows.push((
        "list ?rule= (one of 20)",
        measure(RUNS, |run| drop(signals.list(&tenant, &filter(&|f| f.rule = Some(format!("r_{:02}", run % 20)))).unwrap())),
    ));
    rows.push((
        "list ?status=acknowledged",
        measure(RUNS, |_| drop(signals.list(&tenant, &filter(&|f| f.status = Some(Status::Acknowledged))).unwrap())),
    ));
    rows.push((
        "list ?assignee= (one of 7)",
        measure(RUNS, |run| drop(signals.list(&tenant, &filter(&|f| f.assignee = Some(Some(format!("u_{}", run % 7))))).unwrap())),
    ));
    rows.push((
        "list ?q= (one group's text)",
        measure(RUNS, |run| {
            drop(signals.list(&tenant, &filter(&|f| f.text = Some(format!("violation {} of", run * 37 % 10_000)))).unwrap())
        }),
    ));
    rows.push((
        "list ?trace_id=",
        measure(RUNS, |run| drop(signals.list(&tenant, &filter(&|f| f.trace_id = Some(format!("{:032x}", run * 4999 + 1)))).unwrap())),
    ));
    rows.push(("counts", measure(RUNS, |_| drop(signals.counts(&tenant, &filter(&|_| {}), None).unwrap()))));
    let day = Buckets { start_unix_ms: (now / hour - 23) * hour, width_ms: hour, count: 24 };
    rows.push((
        "counts ?rule= with 24 hourly buckets",
        measure(RUNS, |run| drop(signals.counts(&tenant, &filter(&|f| f.rule = Some(format!("r_{:02}", run % 20))), Some(day)).unwrap())),
    ));
    let five_minutes = Buckets { start_unix_ms: now - 3_600_000, width_ms: 300_000, count: 12 };
    rows.push((
        "counts, last hour in 5-minute buckets",
        measure(RUNS, |_| drop(signals.counts(&tenant, &filter(&|_| {}), Some(five_minutes)).unwrap())),
    ));
    rows.push((
        "occurrences of a group, first page (50)",
        measure(RUNS, |run| drop(signals.occurrences(&tenant, &group_ids[run * 47 % group_ids.len()], None, 50).unwrap())),
    ));
    rows.push((
        "sparklines of a page (50 × 24 h)",
        measure(RUNS, |_| {
            let (page, _) = signals.list(&tenant, &filter(&|_| {})).unwrap();
            for group in &page {
                drop(signals.group_series(&tenant, &group.id, day.start_unix_ms, hour, 24).unwrap());
            }
        }),
    ));
    rows.push((
        "GET /rules figures (24 h per rule)",
        measure(RUNS, |_| drop(signals.rule_totals(&tenant, now - 24 * hour, now + 1).unwrap())),
    ));
    println!("{:<42} {:>9} {:>9}", "query (one thread)", "p50 ms", "p99 ms");
    for (name, (p50, p99)) in rows {
        println!("{name:<42} {p50:>9.3} {p99:>9.3}");
    }
}
