//! Rule evaluation throughput: 1, 10 and 50 active rules on 20- and 200-span
//! traces, in the wasm sandbox and — same prelude, same rules, same binary
//! trace, encoded per iteration on both sides — in native QuickJS on the host
//! (rquickjs, the QuickJS Javy embeds), the reference for the sandbox's
//! overhead. One iteration = one trace evaluated by every rule. Then where a
//! native evaluation's time goes, phase by phase, the fixed cost of one rule
//! call, and the prefilter's worst case. Run: `make bench` (figures in docs/BENCHMARKS.md).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fluo::model::trace::{Resource, Scope, Span, SpanKind, StatusCode, Trace, Value};
use fluo::rules::{Limits, RuleEngine, Sandbox, abi, compile::compile, source, wire};
use rquickjs::{Context, Function, Module, Runtime};
use std::sync::Arc;
use std::time::Duration;

const PRELUDE: &str = include_str!("../rule-sdk/src/prelude.js");

/// The plugin's trace builder, compiled natively.
mod trace_builder {
    include!("../rule-sdk/src/trace_builder.rs");
}

#[path = "support/rule_set.rs"]
mod rule_set;
use rule_set::rule_set;

fn sample_trace(spans: usize) -> Trace {
    let resource =
        Arc::new(Resource { attributes: vec![("service.name".into(), Value::Str("checkout".into()))], service: Some("checkout".into()) });
    let scope = Arc::new(Scope { name: "bench".into(), version: "1".into() });
    let names = ["GET /api/users", "auth.verify", "db.query", "cache.get", "payment.charge_card", "payment.fraud_check", "render"];
    let list = (0..spans)
        .map(|i| Span {
            trace_id: [9; 16],
            span_id: (i as u64 + 1).to_be_bytes(),
            parent_span_id: if i == 0 { None } else { Some(((i as u64 - 1) / 3 + 1).to_be_bytes()) },
            name: names[i % names.len()].into(),
            kind: if i == 0 { SpanKind::Server } else { SpanKind::Internal },
            status: StatusCode::Ok,
            status_message: String::new(),
            start_unix_nano: 1_700_000_000_000_000_000 + i as u64 * 1_000_000,
            end_unix_nano: 1_700_000_000_000_000_000 + i as u64 * 1_000_000 + 750_000,
            attributes: vec![
                ("http.status_code".into(), Value::Int(200)),
                ("http.route".into(), Value::Str("/api/users/{id}".into())),
                ("db.system".into(), Value::Str("postgresql".into())),
                ("retry".into(), Value::Bool(false)),
            ],
            events: Vec::new(),
            links: Vec::new(),
            resource: resource.clone(),
            scope: scope.clone(),
        })
        .collect();
    Trace::new([9; 16], list)
}

struct Native {
    context: Context,
    rules: usize,
}

impl Native {
    fn new(sources: &[String]) -> Native {
        let runtime = Runtime::new().expect("runtime");
        runtime.set_max_stack_size(384 * 1024);
        let context = Context::full(&runtime).expect("context");
        context.with(|ctx| {
            ctx.eval::<(), _>(PRELUDE).expect("prelude");
            for (i, text) in sources.iter().enumerate() {
                let prepared = source::prepare(text).expect("prepared");
                Module::evaluate(ctx.clone(), format!("rule{i}.mjs"), prepared.code)
                    .and_then(|promise| promise.finish::<()>())
                    .expect("rule module");
            }
        });
        Native { context, rules: sources.len() }
    }

    fn evaluate(&self, json: &[u8]) -> usize {
        self.context.with(|ctx| {
            let adopt: Function = ctx.globals().get("__fluo_adopt").expect("adopt");
            let run: Function = ctx.globals().get("__fluo_run").expect("run");
            let (trace_id, spans, _window) = trace_builder::build_trace(&ctx, json).expect("built");
            adopt.call::<_, ()>((trace_id, spans)).expect("loaded");
            let mut total = 0;
            for index in 0..self.rules as u32 {
                total += result_len(&run.call((index, 65536u32)).expect("ran"));
            }
            total
        })
    }
}

/// The length of what `__fluo_run` returned, read as the plugin reads it
/// (0 is the empty result, anything else a string copied out of JS).
fn result_len(value: &rquickjs::Value) -> usize {
    if value.as_int() == Some(0) {
        return abi::EMPTY_RESULT.len();
    }
    value.as_string().and_then(|text| text.to_string().ok()).map_or(0, |text| text.len())
}

fn bench(c: &mut Criterion) {
    let engine = RuleEngine::new(Limits::default()).expect("engine");
    let all_sources = rule_set(50);
    let compiled: Vec<_> = all_sources.iter().map(|text| compile(&engine, text).expect("rule compiles").1).collect();
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    for spans in [20usize, 200] {
        let trace = sample_trace(spans);
        for rules in [1usize, 10, 50] {
            let mut sandbox = Sandbox::new(engine.clone(), compiled[..rules].to_vec());
            let check = sandbox.evaluate(&trace);
            assert!(check.iter().all(|run| run.outcome.kind() == "ok"), "{check:?}");
            let label = format!("{rules}rules/{spans}spans");
            group.bench_function(BenchmarkId::new("sandbox", &label), |b| b.iter(|| sandbox.evaluate(&trace)));
            let native = Native::new(&all_sources[..rules]);
            group.bench_function(BenchmarkId::new("native_quickjs", &label), |b| {
                b.iter(|| native.evaluate(&wire::trace_bytes(&trace, None)))
            });
        }
    }
    group.finish();

    // Where a native evaluation's time goes (20 spans, the ten rules): the
    // host's encoding, the trace builder, the SDK's adoption, then each rule.
    let trace = sample_trace(20);
    let bytes = wire::trace_bytes(&trace, None);
    let mut group = c.benchmark_group("native_phases");
    group.bench_function("encode", |b| b.iter(|| wire::trace_bytes(&trace, None)));
    let native = Native::new(&all_sources[..10]);
    native.context.with(|ctx| {
        let adopt: Function = ctx.globals().get("__fluo_adopt").expect("adopt");
        let run: Function = ctx.globals().get("__fluo_run").expect("run");
        group.bench_function("build", |b| b.iter(|| trace_builder::build_trace(&ctx, &bytes).expect("built").1.len()));
        group.bench_function("build_and_adopt", |b| {
            b.iter(|| {
                let (trace_id, spans, _) = trace_builder::build_trace(&ctx, &bytes).expect("built");
                adopt.call::<_, ()>((trace_id, spans)).expect("adopted")
            })
        });
        for index in 0..10u32 {
            group.bench_function(format!("rule{index}"), |b| b.iter(|| result_len(&run.call((index, 65536u32)).expect("ran"))));
        }
    });
    group.finish();

    // The fixed cost of one rule call: 1 and 10 rules that do nothing on a
    // 1-span trace. (10 rules − 1 rule) ÷ 9 is what one guest call for every
    // rule of a trace could save per rule, at most.
    let trace = sample_trace(1);
    let trivial: Vec<String> = (0..10).map(|i| format!("export default t => t.spans.length < -{i};")).collect();
    let trivial_compiled: Vec<_> = trivial.iter().map(|text| compile(&engine, text).expect("rule compiles").1).collect();
    let mut group = c.benchmark_group("call_overhead");
    for rules in [1usize, 10] {
        let mut sandbox = Sandbox::new(engine.clone(), trivial_compiled[..rules].to_vec());
        let runs = sandbox.evaluate(&trace);
        assert!(runs.iter().all(|run| run.outcome.kind() == "ok" && run.outcome.violations().is_empty()), "{runs:?}");
        group.bench_function(BenchmarkId::new("sandbox", format!("{rules}trivial/1span")), |b| b.iter(|| sandbox.evaluate(&trace)));
        let native = Native::new(&trivial[..rules]);
        group.bench_function(BenchmarkId::new("native_quickjs", format!("{rules}trivial/1span")), |b| {
            b.iter(|| native.evaluate(&wire::trace_bytes(&trace, None)))
        });
    }
    group.finish();

    // The prefilter's worst case: unmetered host work. A condition at the node
    // cap (64 comparisons in a balanced && tree, 256 nodes, all true so nothing
    // short-circuits) over a trace at the default span cap (10,000 spans).
    fn balanced(from: usize, count: usize) -> String {
        if count == 1 {
            return format!("s.duration > {}", from as f64 / 1000.0);
        }
        format!("({} && {})", balanced(from, count / 2), balanced(from + count / 2, count - count / 2))
    }
    let source = format!("export default trace.has(s => {});", balanced(0, 64));
    let prefilter = source::prepare(&source).expect("prepared").prefilter;
    assert!(prefilter.is_active(), "the condition is within the node cap");
    let mut group = c.benchmark_group("prefilter");
    for spans in [20usize, 10_000] {
        let trace = sample_trace(spans);
        assert!(prefilter.may_fire(&trace));
        group.bench_function(BenchmarkId::new("worst_case_condition", format!("{spans}spans")), |b| b.iter(|| prefilter.may_fire(&trace)));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(30);
    targets = bench
}
criterion_main!(benches);
