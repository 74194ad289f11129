//! OTLP/gRPC ingest on one core, in process, through the same code the gRPC
//! service runs after tonic has read the message: decode the protobuf,
//! authenticate the key, admit, convert and assemble (no rules); then the same
//! plus closing every trace and evaluating it with 10 rules (one evaluation
//! worker; the bench thread waits for it, so one core works at a time). Each is
//! compared, in the same run, with plain prost decoding of the same requests.
//! Also: memory per buffered span (a counting allocator) and the latency from a
//! trace's last span to its stored signal with the sweeper running.
//!
//! Run: `cargo bench --bench ingest` (`make bench`). Requests: 1,000 spans
//! each (50 traces × 20 spans, 6 attributes per span). Figures in docs/BENCHMARKS.md.

use fluo::app::Services;
use fluo::config::Config;
use fluo::pipeline::AdmissionLimits;
use fluo::pipeline::assembler::AssemblyLimits;
use fluo::pipeline::segments::Durability;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/rule_set.rs"]
mod rule_set;
#[path = "support/traffic.rs"]
mod traffic;
use traffic::{REALISTIC_RULES, SPANS_PER_TRACE, TRACES_PER_REQUEST, mixed_request, request};

struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);
/// Counting is on only while memory is measured: one atomic shared by every
/// thread's allocations would slow the multi-threaded sections down.
static COUNTING: AtomicBool = AtomicBool::new(false);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATED.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SAMPLES: usize = 9;

fn config(dir: &std::path::Path, idle: Duration, durability: Durability) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        operator_key: None,
        jwt_key_file: None,
        identity: fluo::auth::IdentityLimits::default(),
        web_dir: "web/dist".into(),
        limits: fluo::rules::Limits::default(),
        // Admission out of the way: the benchmark measures the ingest path itself.
        assembly: AssemblyLimits { idle, max_age: Duration::from_secs(30), max_live_bytes: usize::MAX, ..AssemblyLimits::default() },
        admission: AdmissionLimits {
            spans_per_second: u64::MAX / 4,
            burst_spans: u64::MAX / 4,
            max_backlog_traces: usize::MAX,
            bytes_per_second: u64::MAX / 4,
            burst_bytes: u64::MAX / 4,
        },
        trace_retention: fluo::store::traces::TraceRetention { fsync: durability == Durability::Fsync, ..Default::default() },
        ingest_durability: durability,
        span_log_segment_bytes: 64 << 20,
        signal_retention: fluo::signals::Retention::default(),
        signal_sweep_every: Duration::from_secs(60),
        eval_workers: 1,
        eval_lanes_per_tenant: 1,
        windows: fluo::pipeline::windows::WindowLimits::default(),
        rule_quotas: fluo::api::RuleQuotas::default(),
        webhooks: fluo::webhooks::WebhookSettings::default(),
        span_limits: fluo::model::otlp::SpanLimits::default(),
        listeners: fluo::listen::HttpLimits::default(),
    }
}

/// Compiles the benchmark's ten rules and makes them `tenant`'s active set.
fn install_rules(services: &Services, tenant: &fluo::model::tenant::TenantId) {
    install(services, tenant, rule_set::rule_set(10));
}

/// The ten rules with the last replaced by one that every trace violates
/// (each trace then writes an occurrence: the signal store and its flush work).
fn install_violated_rules(services: &Services, tenant: &fluo::model::tenant::TenantId) {
    let mut rules = rule_set::rule_set(10);
    rules[9] = "export default t => ({ message: 'every trace' });".into();
    install(services, tenant, rules);
}

fn install(services: &Services, tenant: &fluo::model::tenant::TenantId, sources: Vec<String>) {
    let rules = sources
        .iter()
        .enumerate()
        .map(|(index, source)| {
            let (_, loaded) = fluo::rules::compile::compile(&services.engine, source).expect("rule compiles");
            (fluo::signals::RuleRef { id: format!("r_{index}"), name: format!("rule{index}"), version: 1, ..Default::default() }, loaded)
        })
        .collect();
    services.pipeline.set_rules(tenant, rules);
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `FLUO_BENCH_ONLY=lanes` (or `mix`) runs that section alone (for profiling).
    match std::env::var("FLUO_BENCH_ONLY").as_deref() {
        Ok("lanes") => {
            return lanes(&|number| (0..20).map(|seed| request(number * 100 + seed, TRACES_PER_REQUEST).encode_to_vec()).collect());
        }
        Ok("mix") => return mix(),
        _ => {}
    }
    // Fresh trace ids in every round (a repeated id would be an amendment).
    let round =
        |number: u64| -> Vec<Vec<u8>> { (0..20).map(|seed| request(number * 100 + seed, TRACES_PER_REQUEST).encode_to_vec()).collect() };
    let requests = round(0);
    let spans_per_sample = (requests.len() * TRACES_PER_REQUEST * SPANS_PER_TRACE) as f64;
    println!(
        "machine: {} cores; requests of {} spans, {} KiB each",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        TRACES_PER_REQUEST * SPANS_PER_TRACE,
        requests[0].len() / 1024
    );

    let dir = tempfile::tempdir().unwrap();
    // The span log is off here (what these figures always measured); `span_log` compares its modes.
    let (services, _) = Services::open(&config(dir.path(), Duration::from_secs(5), Durability::Off), None).unwrap();
    let ingest = services.ingest();
    let (_, plain_key) = services.auth.create_tenant("plain").unwrap();
    let (_, ruled_key) = services.auth.create_tenant("ruled").unwrap();
    let plain_header = format!("Bearer {}", plain_key.key);
    let ruled_header = format!("Bearer {}", ruled_key.key);
    let ruled_tenant = ingest.authenticate(Some(&ruled_header)).unwrap();
    install_rules(&services, &ruled_tenant);
    let (_, violated_key) = services.auth.create_tenant("violated").unwrap();
    let violated_header = format!("Bearer {}", violated_key.key);
    install_violated_rules(&services, &ingest.authenticate(Some(&violated_header)).unwrap());

    let far = || Instant::now() + Duration::from_secs(3600);
    let (mut decode, mut plain, mut ruled, mut violated) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for sample in 0..SAMPLES + 1 {
        let requests = round(sample as u64 * 2 + 1);
        let ruled_requests = round(sample as u64 * 2 + 2);
        let started = Instant::now();
        let mut count = 0;
        for bytes in &requests {
            count += ExportTraceServiceRequest::decode(&bytes[..]).unwrap().resource_spans.len();
        }
        let decode_time = started.elapsed().as_secs_f64();
        assert_eq!(count, requests.len());

        // Each request as the gRPC service handles it: authenticate, decode, export.
        let export_all = |requests: &[Vec<u8>], header: &str| {
            for bytes in requests {
                let tenant = ingest.authenticate(Some(header)).unwrap();
                let request = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
                ingest.export(&tenant, request, Instant::now()).unwrap();
            }
        };
        let evaluate_all = || {
            services.pipeline.sweep(far());
            services.pipeline.evaluator.drain();
        };
        let started = Instant::now();
        export_all(&requests, &plain_header);
        let plain_time = started.elapsed().as_secs_f64();
        evaluate_all();

        let started = Instant::now();
        export_all(&ruled_requests, &ruled_header);
        evaluate_all();
        let ruled_time = started.elapsed().as_secs_f64();

        let violated_requests = round(sample as u64 * 2 + 50_001);
        let started = Instant::now();
        export_all(&violated_requests, &violated_header);
        evaluate_all();
        let violated_time = started.elapsed().as_secs_f64();
        if sample > 0 {
            violated.push(spans_per_sample / violated_time);
            // The first round warms caches and sled.
            decode.push(spans_per_sample / decode_time);
            plain.push(spans_per_sample / plain_time);
            ruled.push(spans_per_sample / ruled_time);
        }
    }
    let (decode, plain, ruled, violated) = (median(decode), median(plain), median(ruled), median(violated));
    println!("throughput, median of {SAMPLES} rounds of {spans_per_sample} spans:");
    println!("  protobuf decode only         {:>10.0} spans/s", decode);
    println!("  ingest, no rules             {:>10.0} spans/s  ({:.2}x the decode time)", plain, decode / plain);
    println!("  ingest + evaluate, 10 rules  {:>10.0} spans/s  ({:.2}x the decode time)", ruled, decode / ruled);
    println!("    the same, every trace violating one rule {:>10.0} spans/s  ({:.2}x the decode time)", violated, decode / violated);
    let counters = &services.pipeline.counters;
    println!(
        "  signals created {}, duplicates {}",
        counters.signals_created.load(Ordering::Relaxed),
        counters.signals_duplicate.load(Ordering::Relaxed)
    );
    let outcomes: Vec<_> = fluo::pipeline::metrics::exposition(counters, 0, 0, Vec::new(), Vec::new())
        .lines()
        .filter(|line| line.starts_with("fluo_rule_evaluations_total{"))
        .map(str::to_string)
        .collect();
    println!("  {}", outcomes.join(", "));

    // The same traces through the bare sandbox: what the pipeline adds around it.
    let traces: Vec<fluo::model::trace::Trace> = round(99)
        .iter()
        .flat_map(|bytes| {
            fluo::model::trace::Trace::group(fluo::model::otlp::convert(ExportTraceServiceRequest::decode(&bytes[..]).unwrap()).spans)
        })
        .collect();
    let rules: Vec<_> = services.pipeline.evaluator.rules(&ruled_tenant).unwrap().rules.iter().map(|(_, rule)| rule.clone()).collect();
    let mut sandbox = fluo::rules::Sandbox::new(services.engine.clone(), rules.clone());
    let mut bare = Vec::new();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        for trace in &traces {
            sandbox.evaluate(trace);
        }
        bare.push(spans_per_sample / started.elapsed().as_secs_f64());
    }
    let bare = median(bare);
    println!("  sandbox evaluate only        {:>10.0} spans/s  = {:.0} µs per 20-span trace", bare, 1e6 * SPANS_PER_TRACE as f64 / bare);
    // The same on two threads at once, each with its own sandbox: what the machine gives two workers.
    let mut sandboxes: Vec<_> = (0..2).map(|_| fluo::rules::Sandbox::new(services.engine.clone(), rules.clone())).collect();
    let mut pair = Vec::new();
    for _ in 0..SAMPLES + 1 {
        let started = Instant::now();
        std::thread::scope(|scope| {
            for sandbox in sandboxes.iter_mut() {
                let traces = &traces;
                scope.spawn(move || {
                    for trace in traces {
                        sandbox.evaluate(trace);
                    }
                });
            }
        });
        pair.push(2.0 * spans_per_sample / started.elapsed().as_secs_f64());
    }
    pair.remove(0);
    let pair = median(pair);
    println!("  sandbox evaluate only, 2 threads {:>6.0} spans/s  ({:.2}x one thread)", pair, pair / bare);

    // Memory per buffered span: allocated bytes held by the assembler.
    COUNTING.store(true, Ordering::SeqCst);
    let before = ALLOCATED.load(Ordering::Relaxed);
    let tenant = ingest.authenticate(Some(&plain_header)).unwrap();
    for seed in 10_000..10_020 {
        ingest.export(&tenant, request(seed, TRACES_PER_REQUEST), Instant::now()).unwrap();
    }
    let held = ALLOCATED.load(Ordering::Relaxed) - before;
    COUNTING.store(false, Ordering::SeqCst);
    let buffered = services.pipeline.buffered_spans();
    println!(
        "memory: {buffered} buffered spans hold {} KiB = {} bytes per span (6 attributes, shared resource)",
        held / 1024,
        held / buffered as isize
    );
    services.pipeline.sweep(far());
    services.pipeline.evaluator.drain();
    drop(services);

    lanes(&round);
    mix();
    span_log(&round);
    trace_store(&round);
    latency();
}

/// The recent-trace store: one trace's put then get (the stored bytes back,
/// and decoded into spans), as the evaluator and the API do, flushed every 64
/// traces (the evaluator's group commit) and synced every 1,000 (the span
/// log's checkpoint), against the sled trees it replaced (two inserts and a
/// time index; flushed every 64 as the group commit flushed them), in the same run.
fn trace_store(round: &dyn Fn(u64) -> Vec<Vec<u8>>) {
    use fluo::store::traces::{Compression, RecentTraces, TraceRetention};
    let tenant = fluo::model::tenant::TenantId::trusted("bench");
    // Traces as the evaluator stores them: grouped, then encoded alone.
    let traces = |number: u64| -> Vec<([u8; 16], Vec<u8>)> {
        round(number)
            .iter()
            .flat_map(|bytes| {
                fluo::model::trace::Trace::group(fluo::model::otlp::convert(ExportTraceServiceRequest::decode(&bytes[..]).unwrap()).spans)
            })
            .map(|trace| (trace.trace_id, fluo::model::otlp::to_otlp(&trace.spans).encode_to_vec()))
            .collect()
    };
    let size = traces(0).iter().map(|(_, otlp)| otlp.len()).sum::<usize>() / traces(0).len();
    println!("recent-trace store: put + get of one 20-span trace ({size} bytes), median of {SAMPLES} rounds of 1,000 traces");
    let decode = |otlp: &[u8]| fluo::model::otlp::convert(ExportTraceServiceRequest::decode(otlp).unwrap()).spans.len();
    let mut figures = Vec::new();
    for variant in ["sled (before)", "log", "log, zstd"] {
        let dir = tempfile::tempdir().unwrap();
        let compression = if variant == "log, zstd" { Compression::Zstd } else { Compression::None };
        let store = RecentTraces::open(&dir.path().join("traces"), TraceRetention { compression, ..Default::default() }).unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let (by_id, by_time) = (db.open_tree("recent_traces").unwrap(), db.open_tree("recent_traces_by_time").unwrap());
        let (mut raw, mut spans) = (Vec::new(), Vec::new());
        for sample in 0..SAMPLES + 1 {
            let batch = traces(2_000 + sample as u64);
            let mut took = [0.0f64; 2];
            for (decoded, took) in [false, true].into_iter().zip(took.iter_mut()) {
                let started = Instant::now();
                for (n, (trace_id, otlp)) in batch.iter().enumerate() {
                    let mut id = *trace_id;
                    id[0] ^= u8::from(decoded);
                    let at = fluo::model::time::now_ms();
                    let back = if variant == "sled (before)" {
                        let key = [tenant.as_str().as_bytes(), &id].concat();
                        let mut value = at.to_be_bytes().to_vec();
                        value.extend_from_slice(otlp);
                        if let Some(previous) = by_id.insert(&key, value).unwrap() {
                            by_time.remove([&previous[..8], &key].concat()).unwrap();
                        }
                        by_time.insert([&at.to_be_bytes()[..], &key].concat(), &[]).unwrap();
                        if n % 64 == 63 {
                            db.flush().unwrap();
                        }
                        by_id.get(&key).unwrap().unwrap()[8..].to_vec()
                    } else {
                        store.put(&tenant, &id, otlp, at).unwrap();
                        if n % 64 == 63 {
                            store.flush().unwrap();
                        }
                        if n % 1_000 == 999 {
                            store.sync().unwrap();
                        }
                        store.get_raw(&tenant, &id).unwrap().unwrap().1
                    };
                    if decoded {
                        assert_eq!(decode(&back), SPANS_PER_TRACE);
                    } else {
                        assert_eq!(back.len(), otlp.len());
                    }
                }
                *took = started.elapsed().as_secs_f64() * 1e6 / batch.len() as f64;
            }
            if sample > 0 {
                raw.push(took[0]);
                spans.push(took[1]);
            }
        }
        let (raw, spans) = (median(raw), median(spans));
        let disk = if variant == "sled (before)" { db.size_on_disk().unwrap() } else { store.bytes() };
        figures.push(raw);
        println!(
            "  {variant:<14} put + get {raw:>6.1} µs (sled ÷ this {:>5.2}), put + get decoded {spans:>6.1} µs; {:.0} bytes stored per copy",
            figures[0] / raw,
            disk as f64 / (2.0 * (SAMPLES + 1) as f64 * traces(0).len() as f64)
        );
    }
}

/// The realistic mix: decode of the traffic, ingest + evaluate with the ten
/// realistic rules (one worker), and the sandbox alone on the same traces with
/// and without the prefilter, in one run.
fn mix() {
    let round = |number: u64| -> Vec<Vec<u8>> {
        (0..20).map(|seed| mixed_request(number * 100 + seed + 7_000_000, TRACES_PER_REQUEST).encode_to_vec()).collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let (services, _) = Services::open(&config(dir.path(), Duration::from_secs(5), Durability::Off), None).unwrap();
    let ingest = services.ingest();
    let (_, key) = services.auth.create_tenant("mix").unwrap();
    let header = format!("Bearer {}", key.key);
    let tenant = ingest.authenticate(Some(&header)).unwrap();
    install(&services, &tenant, REALISTIC_RULES.iter().map(|rule| rule.to_string()).collect());
    let spans = (20 * TRACES_PER_REQUEST * SPANS_PER_TRACE) as f64;
    let (mut decode, mut pipeline) = (Vec::new(), Vec::new());
    for sample in 0..SAMPLES + 1 {
        let requests = round(sample as u64);
        let started = Instant::now();
        for bytes in &requests {
            std::hint::black_box(ExportTraceServiceRequest::decode(&bytes[..]).unwrap());
        }
        let decode_time = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for bytes in &requests {
            let tenant = ingest.authenticate(Some(&header)).unwrap();
            ingest.export(&tenant, ExportTraceServiceRequest::decode(&bytes[..]).unwrap(), Instant::now()).unwrap();
        }
        services.pipeline.sweep(Instant::now() + Duration::from_secs(3600));
        services.pipeline.evaluator.drain();
        if sample > 0 {
            decode.push(spans / decode_time);
            pipeline.push(spans / started.elapsed().as_secs_f64());
        }
    }
    let (decode, pipeline) = (median(decode), median(pipeline));
    println!("realistic mix (9 in 10 traces irrelevant to the payment rules), 10 realistic rules, median of {SAMPLES} rounds:");
    println!("  protobuf decode only         {decode:>10.0} spans/s");
    println!("  ingest + evaluate, 10 rules  {pipeline:>10.0} spans/s  ({:.2}x the decode time)", decode / pipeline);
    let traces: Vec<fluo::model::trace::Trace> = round(99)
        .iter()
        .flat_map(|bytes| {
            fluo::model::trace::Trace::group(fluo::model::otlp::convert(ExportTraceServiceRequest::decode(&bytes[..]).unwrap()).spans)
        })
        .collect();
    let rules: Vec<_> = services.pipeline.evaluator.rules(&tenant).unwrap().rules.iter().map(|(_, rule)| rule.clone()).collect();
    let mut sandbox = fluo::rules::Sandbox::new(services.engine.clone(), rules);
    let (mut filtered, mut full, mut skipped) = (Vec::new(), Vec::new(), 0usize);
    for sample in 0..SAMPLES + 1 {
        let started = Instant::now();
        for trace in &traces {
            let runs = sandbox.evaluate_prefiltered(trace);
            if sample == 0 {
                skipped += runs.iter().filter(|run| run.skipped).count();
            }
        }
        let filtered_time = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for trace in &traces {
            sandbox.evaluate(trace);
        }
        if sample > 0 {
            filtered.push(spans / filtered_time);
            full.push(spans / started.elapsed().as_secs_f64());
        }
    }
    let (filtered, full) = (median(filtered), median(full));
    println!(
        "  sandbox alone, prefilter on  {filtered:>10.0} spans/s  ({:.2}x the decode time; {:.1}% of rule runs skipped)",
        decode / filtered,
        100.0 * skipped as f64 / (traces.len() * REALISTIC_RULES.len()) as f64
    );
    println!("  sandbox alone, prefilter off {full:>10.0} spans/s  ({:.2}x the decode time)", decode / full);
}

/// One tenant, ingest + evaluate with the ten rules: one worker (one lane)
/// against two workers with two lanes per tenant, rounds alternating between
/// the two set-ups in one run.
fn lanes(round: &dyn Fn(u64) -> Vec<Vec<u8>>) {
    println!("one tenant, ingest + evaluate with 10 rules, median of {SAMPLES} rounds, alternating:");
    let setups: Vec<_> = [1usize, 2]
        .into_iter()
        .map(|workers| {
            let dir = tempfile::tempdir().unwrap();
            let config = Config {
                eval_workers: workers,
                eval_lanes_per_tenant: workers,
                ..config(dir.path(), Duration::from_secs(5), Durability::Off)
            };
            let (services, _) = Services::open(&config, None).unwrap();
            let (_, key) = services.auth.create_tenant("lanes").unwrap();
            let header = format!("Bearer {}", key.key);
            install_rules(&services, &services.ingest().authenticate(Some(&header)).unwrap());
            (dir, services, header)
        })
        .collect();
    let mut rates = vec![Vec::new(); setups.len()];
    for sample in 0..SAMPLES + 1 {
        for (index, (_, services, header)) in setups.iter().enumerate() {
            let requests = round(3_000 + sample as u64 * 2 + index as u64);
            let spans = (requests.len() * TRACES_PER_REQUEST * SPANS_PER_TRACE) as f64;
            let ingest = services.ingest();
            let started = Instant::now();
            for bytes in &requests {
                let tenant = ingest.authenticate(Some(header)).unwrap();
                ingest.export(&tenant, ExportTraceServiceRequest::decode(&bytes[..]).unwrap(), Instant::now()).unwrap();
            }
            services.pipeline.sweep(Instant::now() + Duration::from_secs(3600));
            services.pipeline.evaluator.drain();
            if sample > 0 {
                rates[index].push(spans / started.elapsed().as_secs_f64());
            }
        }
    }
    let rates: Vec<f64> = rates.into_iter().map(median).collect();
    println!("  1 worker              {:>10.0} spans/s", rates[0]);
    println!("  2 workers, 2 lanes    {:>10.0} spans/s  ({:.2}x one worker)", rates[1], rates[1] / rates[0]);
}

/// Ingest (no rules) with the span log off, `os` and `fsync`: one request in
/// flight, then 8 (group commit shares an fsync among the requests waiting);
/// throughput and each request's latency, one run.
fn span_log(round: &dyn Fn(u64) -> Vec<Vec<u8>>) {
    println!("span log: ingest without rules, median of {SAMPLES} rounds; request latency over all rounds");
    let mut baseline = 0.0;
    for in_flight in [1usize, 8] {
        for durability in [Durability::Off, Durability::Os, Durability::Fsync] {
            let dir = tempfile::tempdir().unwrap();
            let (services, _) = Services::open(&config(dir.path(), Duration::from_secs(5), durability), None).unwrap();
            let ingest = services.ingest();
            let (_, key) = services.auth.create_tenant("log").unwrap();
            let header = format!("Bearer {}", key.key);
            let (mut rates, mut latencies) = (Vec::new(), Vec::new());
            for sample in 0..SAMPLES + 1 {
                let requests = round(1_000 + sample as u64);
                let spans = (requests.len() * TRACES_PER_REQUEST * SPANS_PER_TRACE) as f64;
                let next = std::sync::atomic::AtomicUsize::new(0);
                let started = Instant::now();
                let took: Vec<f64> = std::thread::scope(|scope| {
                    let workers: Vec<_> = (0..in_flight)
                        .map(|_| {
                            scope.spawn(|| {
                                let mut took = Vec::new();
                                while let Some(bytes) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                                    let sent = Instant::now();
                                    let tenant = ingest.authenticate(Some(&header)).unwrap();
                                    let request = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
                                    ingest.export(&tenant, request, Instant::now()).unwrap();
                                    took.push(sent.elapsed().as_secs_f64() * 1000.0);
                                }
                                took
                            })
                        })
                        .collect();
                    workers.into_iter().flat_map(|worker| worker.join().unwrap()).collect()
                });
                let elapsed = started.elapsed().as_secs_f64();
                services.pipeline.sweep(Instant::now() + Duration::from_secs(3600));
                services.pipeline.evaluator.drain();
                if sample > 0 {
                    rates.push(spans / elapsed);
                    latencies.extend(took);
                }
            }
            let rate = median(rates);
            if durability == Durability::Off {
                baseline = rate;
            }
            latencies.sort_by(f64::total_cmp);
            let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
            println!(
                "  {in_flight} in flight, log {:<5} {:>10.0} spans/s ({:>5.1}% of off)  request p50 {:.2} ms, p99 {:.2} ms",
                format!("{durability:?}").to_lowercase(),
                rate,
                100.0 * rate / baseline,
                latencies[latencies.len() / 2],
                p99
            );
        }
    }
}

/// Last span → stored signal, with the real sweeper and a 1 s idle timeout:
/// 100 traces per second (10% violating) for 20 seconds.
fn latency() {
    let idle = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let sink = latencies.clone();
    let on_signal = Box::new(move |latency: Duration| sink.lock().unwrap().push(latency.as_secs_f64() * 1000.0));
    let (services, _) = Services::open(&config(dir.path(), idle, Durability::Fsync), Some(on_signal)).unwrap();
    let ingest = services.ingest();
    let (_, key) = services.auth.create_tenant("latency").unwrap();
    let tenant = ingest.authenticate(Some(&format!("Bearer {}", key.key))).unwrap();
    install_rules(&services, &tenant);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    runtime.spawn(fluo::pipeline::sweeper(services.pipeline.clone(), idle.min(Duration::from_millis(250)), stopped));
    let started = Instant::now();
    let mut seed = 1_000_000;
    while started.elapsed() < Duration::from_secs(20) {
        // One trace (20 spans) every 10 ms: requests of a single trace.
        ingest.export(&tenant, request(seed, 1), Instant::now()).unwrap();
        seed += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(idle + Duration::from_secs(1));
    let _ = stop.send(true);
    services.pipeline.evaluator.drain();
    let mut values = latencies.lock().unwrap().clone();
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() as f64 * q) as usize).min(values.len() - 1)];
    println!(
        "latency last span → stored signal (idle {} ms, 100 traces/s, {} signals): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        idle.as_millis(),
        values.len(),
        at(0.5),
        at(0.99),
        values.last().copied().unwrap_or(0.0)
    );
}
