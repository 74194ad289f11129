//! Hostile rules: each limit of the sandbox is hit on purpose, the outcome is
//! typed, and the next evaluation in the same sandbox is undisturbed.

use fluo::model::trace::{Resource, Scope, Span, SpanKind, StatusCode, Trace};
use fluo::rules::{Limits, Outcome, RuleEngine, Sandbox, compile::compile};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

fn engine() -> Arc<RuleEngine> {
    static ENGINE: OnceLock<Arc<RuleEngine>> = OnceLock::new();
    ENGINE.get_or_init(|| RuleEngine::new(Limits::default()).expect("engine")).clone()
}

fn span(name: &str, id: u8, start_ms: u64) -> Span {
    Span {
        trace_id: [7; 16],
        span_id: [0, 0, 0, 0, 0, 0, 0, id],
        parent_span_id: None,
        name: name.into(),
        kind: SpanKind::Server,
        status: StatusCode::Unset,
        status_message: String::new(),
        start_unix_nano: 1_700_000_000_000_000_000 + start_ms * 1_000_000,
        end_unix_nano: 1_700_000_000_000_000_000 + (start_ms + 5) * 1_000_000,
        attributes: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
        resource: Arc::new(Resource { attributes: Vec::new(), service: Some("svc".into()) }),
        scope: Arc::new(Scope::default()),
    }
}

fn sample() -> Trace {
    Trace::new([7; 16], vec![span("payment.charge_card", 1, 0), span("checkout", 2, 1)])
}

const GOOD: &str = "export default trace.has('payment.charge_card');";

/// Runs `hostile` then a well-behaved rule in one sandbox, twice (two traces),
/// and returns the hostile rule's outcomes.
fn hostile_then_good(engine: &Arc<RuleEngine>, hostile: &str) -> Vec<Outcome> {
    let (_, bad) = compile(engine, hostile).expect("hostile rule compiles");
    let (_, good) = compile(engine, GOOD).expect("good rule compiles");
    let mut sandbox = Sandbox::new(engine.clone(), vec![bad, good]);
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let runs = sandbox.evaluate(&sample());
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[1].outcome.violations().len(), 1, "the good rule still works after the hostile one: {:?}", runs[1].outcome);
        outcomes.push(runs[0].outcome.clone());
    }
    assert_eq!(outcomes[0].kind(), outcomes[1].kind(), "same outcome on the next trace");
    outcomes
}

#[test]
fn endless_loop_runs_out_of_fuel() {
    let outcomes = hostile_then_good(&engine(), "export default function (t) { while (true) {} }");
    assert_eq!(outcomes[0], Outcome::OutOfFuel);
}

#[test]
fn endless_loop_hits_the_deadline_when_fuel_would_not_stop_it() {
    let limits = Limits { fuel_per_call: u64::MAX / 4, deadline: Duration::from_millis(50), ..Limits::default() };
    let engine = RuleEngine::new(limits).expect("engine");
    let outcomes = hostile_then_good(&engine, "export default function (t) { for (;;) {} }");
    assert_eq!(outcomes[0], Outcome::Deadline);
}

#[test]
fn growing_an_array_forever_hits_the_memory_cap() {
    let limits = Limits { fuel_per_call: 20_000_000_000, deadline: Duration::from_secs(10), memory_bytes: 32 << 20, ..Limits::default() };
    let engine = RuleEngine::new(limits).expect("engine");
    let outcomes = hostile_then_good(
        &engine,
        "export default function (t) {\n  const hoard = [];\n  for (;;) hoard.push(new Array(4096).fill(hoard.length));\n}",
    );
    assert!(matches!(outcomes[0], Outcome::MemoryCap { requested_bytes } if requested_bytes > 32 << 20), "{:?}", outcomes[0]);
}

#[test]
fn unbounded_recursion_is_contained() {
    let outcomes = hostile_then_good(&engine(), "function down(n) { return down(n + 1) + 1; }\nexport default t => down(0);");
    match &outcomes[0] {
        Outcome::Exception { name, message, .. } => assert!(name == "RangeError" || message.contains("stack"), "{outcomes:?}"),
        Outcome::StackOverflow => {}
        other => panic!("expected a stack error, got {other:?}"),
    }
}

/// Building 50 MB in JS costs more than the default fuel budget (which then
/// stops the rule first); these tests raise fuel and deadline so that the
/// output cap itself is what is exercised.
fn generous_engine() -> Arc<RuleEngine> {
    static ENGINE: OnceLock<Arc<RuleEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            RuleEngine::new(Limits {
                fuel_per_call: 20_000_000_000,
                deadline: Duration::from_secs(20),
                memory_bytes: 256 << 20,
                ..Limits::default()
            })
            .expect("engine")
        })
        .clone()
}

#[test]
fn a_50_mb_message_with_default_limits_is_stopped_by_fuel() {
    let outcomes = hostile_then_good(&engine(), "export default t => ({ message: 'x'.repeat(50 * 1024 * 1024) });");
    assert_eq!(outcomes[0], Outcome::OutOfFuel);
}

#[test]
fn a_50_mb_message_hits_the_output_cap() {
    let outcomes = hostile_then_good(&generous_engine(), "export default t => ({ message: 'x'.repeat(50 * 1024 * 1024) });");
    assert!(matches!(outcomes[0], Outcome::OutputCap { bytes } if bytes >= 50 * 1024 * 1024), "{:?}", outcomes[0]);
}

#[test]
fn a_50_mb_attribute_hits_the_output_cap() {
    let outcomes = hostile_then_good(
        &generous_engine(),
        "export default t => ({ message: 'm', attributes: { blob: 'x'.repeat(50 * 1024 * 1024) } });",
    );
    assert!(matches!(outcomes[0], Outcome::OutputCap { .. }), "{:?}", outcomes[0]);
}

#[test]
fn many_violations_hit_the_output_cap() {
    let outcomes = hostile_then_good(
        &generous_engine(),
        "export default t => Array.from({ length: 100000 }, (_, i) => ({ message: 'violation ' + i }));",
    );
    assert!(matches!(outcomes[0], Outcome::OutputCap { .. }), "{:?}", outcomes[0]);
}

#[test]
fn a_thrown_error_carries_its_message_and_line() {
    let outcomes =
        hostile_then_good(&engine(), "export default function (t) {\n  if (t.spans.length > 0) {\n    throw new Error('x');\n  }\n}");
    match &outcomes[0] {
        Outcome::Exception { name, message, line, column } => {
            assert_eq!(name, "Error");
            assert_eq!(message, "x");
            assert_eq!(*line, Some(3));
            assert!(column.is_some());
        }
        other => panic!("expected an exception, got {other:?}"),
    }
}

#[test]
fn logs_are_capped() {
    let (_, rule) = compile(&engine(), "export default t => { for (let i = 0; i < 10000; i++) console.log('line', i); return false; }")
        .expect("compiles");
    let mut sandbox = Sandbox::new(engine(), vec![rule]);
    let run = sandbox.evaluate(&sample()).pop().expect("run");
    assert!(matches!(run.outcome, Outcome::Ok { .. }));
    assert!(run.logs_truncated);
    let bytes: usize = run.logs.iter().map(|log| log.message.len()).sum();
    assert!(bytes <= 4096, "{bytes} bytes of logs");
}

#[test]
fn nothing_outside_the_sandbox_is_reachable() {
    let probe = r#"export default function (t) {
  const reachable = [];
  for (const name of ['require', 'process', 'fetch', 'XMLHttpRequest', 'WebAssembly', 'std', 'os', 'Deno', 'Bun', 'Javy', 'globalThis.__fluo_secret']) {
    if (typeof globalThis[name] !== 'undefined') reachable.push(name);
  }
  try { eval('1'); reachable.push('eval'); } catch (e) {}
  try { new Function('return 1')(); reachable.push('Function constructor'); } catch (e) {}
  try { globalThis.leak = 1; reachable.push('global write'); } catch (e) {}
  try { Array.prototype.includes = () => true; reachable.push('prototype write'); } catch (e) {}
  try { trace.has = null; reachable.push('sdk write'); } catch (e) {}
  return reachable.length ? { message: 'reachable: ' + reachable.join(', ') } : false;
}"#;
    let (_, rule) = compile(&engine(), probe).expect("compiles");
    let mut sandbox = Sandbox::new(engine(), vec![rule]);
    let run = sandbox.evaluate(&sample()).pop().expect("run");
    assert_eq!(run.outcome, Outcome::Ok { violations: vec![] }, "{:?}", run.outcome);
}

#[test]
fn dynamic_import_is_refused() {
    let (_, rule) = compile(&engine(), "export default async function (t) { await import('fs'); }").expect("compiles");
    let mut sandbox = Sandbox::new(engine(), vec![rule]);
    let run = sandbox.evaluate(&sample()).pop().expect("run");
    // An async check returns a promise, which is not a violation shape: the SDK refuses it.
    assert!(matches!(run.outcome, Outcome::Exception { .. }), "{:?}", run.outcome);
}

#[test]
fn clock_and_randomness_are_deterministic() {
    let rule = "export default t => ({ message: Date.now() + ' ' + Math.random() });";
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (_, loaded) = compile(&engine(), rule).expect("compiles");
        let mut sandbox = Sandbox::new(engine(), vec![loaded]);
        let run = sandbox.evaluate(&sample()).pop().expect("run");
        seen.push(run.outcome.violations()[0].message.clone());
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn tenants_do_not_share_js_state() {
    // Module-level state lives in the tenant's instance only.
    let counter = "let seen = 0;\nexport default t => ({ message: 'seen ' + (++seen) });";
    let (_, a) = compile(&engine(), counter).expect("compiles");
    let (_, b) = compile(&engine(), counter).expect("compiles");
    let mut tenant_a = Sandbox::new(engine(), vec![a]);
    let mut tenant_b = Sandbox::new(engine(), vec![b]);
    for _ in 0..3 {
        tenant_a.evaluate(&sample());
    }
    let run = tenant_b.evaluate(&sample()).pop().expect("run");
    assert_eq!(run.outcome.violations()[0].message, "seen 1");
}

#[test]
fn top_level_failures_are_compile_errors() {
    let engine = engine();
    let cases = [
        ("export default 42;", "must export default a pattern"),
        ("const x = 1;\nthrow new TypeError('at load');\nexport default trace.has('a');", "at load"),
        ("export default rule({ when: trace.has('a'), expcet: trace.has('b') });", "unknown field \"expcet\""),
        ("export default rule({ severity: 'urgent', when: trace.has('a') });", "severity must be one of"),
        ("export default trace.has('a').within('soon');", "cannot read duration"),
        ("while (true) {}\nexport default trace.has('a');", "ran out of fuel"),
    ];
    for (source, expected) in cases {
        let error = compile(&engine, source).expect_err(source);
        assert!(error.to_string().contains(expected), "{source}: {error}");
    }
    let error = compile(&engine, "const a = 1;\nconst b = 2;\nexport default function (t) {\n  return t.spans.map(s => s.name ===);\n}")
        .expect_err("syntax");
    assert_eq!(error.line_column().0, Some(4), "{error}");
    let error = compile(&engine, "const x = 1;\nthrow new TypeError('at load');\nexport default trace.has('a');").expect_err("throws");
    assert_eq!(error.line_column().0, Some(2), "{error}");
}

#[test]
fn oversized_sources_are_refused() {
    let source = format!("export default trace.has('a'); // {}", "x".repeat(200 * 1024));
    assert!(matches!(compile(&engine(), &source), Err(fluo::rules::CompileError::TooLarge { .. })));
}

/// Item 3 of the hardening issue: a rule that patches the SDK's `Trace`
/// prototype (so that `span()` accepts any spelling of an id) and returns
/// thousands of case variants of one span id. The prototype is frozen, the
/// host keeps each decoded id once, and the rule after it is undisturbed.
#[test]
fn a_rule_cannot_patch_the_sdk_or_multiply_one_witness() {
    let engine = engine();
    let hostile = r#"export default function (t) {
        const proto = Object.getPrototypeOf(t);
        for (const name of ['span', 'has', 'find', 'children']) { try { proto[name] = () => true; } catch (e) {} }
        try { t.span = () => true; } catch (e) {}
        const id = t.spans[0].spanId;
        const variants = [];
        for (let i = 0; i < 1000; i++) {
            let variant = '';
            for (let k = 0; k < id.length; k++) variant += (i >> (k % 12)) & 1 ? id[k].toUpperCase() : id[k];
            variants.push(variant);
        }
        return { message: 'many spellings', spans: variants };
    }"#;
    let victim = r#"export default function (t) {
        return t.span('ffffffffffffffff') === null && t.has('payment.charge_card')
            ? { message: 'charge', spans: [t.find('payment.charge_card')] } : false;
    }"#;
    let (_, bad) = compile(&engine, hostile).expect("hostile rule compiles");
    let (_, good) = compile(&engine, victim).expect("victim rule compiles");
    let mut sandbox = Sandbox::new(engine.clone(), vec![bad, good]);
    let mut first = span("payment.charge_card", 1, 0);
    first.span_id = [0xab, 0xcd, 0xef, 0xab, 0xcd, 0xef, 0xab, 0xcd];
    let trace = Trace::new([7; 16], vec![first, span("checkout", 2, 1)]);
    for _ in 0..2 {
        let runs = sandbox.evaluate(&trace);
        // 1,000 spellings fit in the fuel budget, so the rule runs to its
        // end; with a patched `span()` all of them came back as witnesses.
        let outcome = &runs[0].outcome;
        assert!(matches!(outcome, Outcome::Ok { .. } | Outcome::Exception { .. }), "the rule ran to its end: {}", outcome.kind());
        for violation in outcome.violations() {
            assert!(
                violation.span_ids.len() <= 1,
                "one span, one witness id: {} ids, {:?}…",
                violation.span_ids.len(),
                &violation.span_ids[..violation.span_ids.len().min(4)]
            );
        }
        assert_eq!(runs[1].outcome.violations().len(), 1, "the next rule still sees the real SDK: {:?}", runs[1].outcome);
        assert_eq!(runs[1].outcome.violations()[0].span_ids, vec!["abcdefabcdefabcd".to_string()]);
    }
}

#[test]
fn a_grouping_key_past_512_characters_is_an_exception_of_its_rule() {
    let outcomes = hostile_then_good(&engine(), "export default rule({ when: trace.has('checkout'), group: () => 'k'.repeat(100000) });");
    assert!(matches!(&outcomes[0], Outcome::Exception { message, .. } if message.contains("at most 512")), "{:?}", outcomes[0]);
    // A malformed `group` is refused when the rule is compiled.
    for source in ["export default rule({ when: trace.has('x'), group: 42 });", "export default rule({ when: trace.has('x'), group: [] });"]
    {
        assert!(compile(&engine(), source).is_err(), "{source}");
    }
}

#[test]
fn grouping_keys_come_from_attribute_values_functions_or_the_violation() {
    let engine = engine();
    let mut trace = sample();
    for (span, route) in trace.spans.iter_mut().zip(["/pay", "/cart"]) {
        span.attributes.push(("http.route".into(), fluo::model::trace::Value::Str(route.into())));
    }
    let key = |source: &str| -> Vec<Option<String>> {
        let (_, rule) = compile(&engine, source).expect("compiles");
        let runs = Sandbox::new(engine.clone(), vec![rule]).evaluate(&trace);
        runs[0].outcome.violations().iter().map(|violation| violation.group.clone()).collect()
    };
    // Attribute keys: the witnesses' distinct values, sorted, per key (span, then resource attributes, then fields).
    assert_eq!(
        key("export default rule({ when: t => t.spans, group: ['http.route', 'service'] });"),
        [Some(r#"[["/cart","/pay"],["svc"]]"#.into())]
    );
    assert_eq!(key("export default rule({ when: trace.has('checkout'), group: 'http.route' });"), [Some(r#"[["/cart"]]"#.into())]);
    // A function: text as it is, other values as JSON, null for the default grouping.
    assert_eq!(
        key("export default rule({ when: trace.has('checkout'), group: ({ spans }) => spans[0].name });"),
        [Some("checkout".into())]
    );
    assert_eq!(key("export default rule({ when: trace.has('checkout'), group: () => ({ a: 1 }) });"), [Some(r#"{"a":1}"#.into())]);
    assert_eq!(key("export default rule({ when: trace.has('checkout'), group: () => null });"), [None]);
    // A check's violation carries its own; without one, none.
    assert_eq!(key("export default t => [{ message: 'm', group: 'mine' }, { message: 'n' }];"), [Some("mine".into()), None]);
}
