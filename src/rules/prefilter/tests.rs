//! The prefilter: what it derives, and a differential test against the
//! sandbox on generated rules and traces (a skipped rule must be one that,
//! run, reports nothing and throws nothing).

use super::*;
use crate::model::trace::{Resource, Scope, SpanKind, StatusCode};
use crate::rules::{Outcome, RuleEngine, Sandbox};
use std::sync::Arc;

fn prefilter(source: &str) -> Prefilter {
    crate::rules::source::prepare(source).unwrap().prefilter
}

fn span(id: u8, name: &str, service: Option<&str>, attributes: Vec<(&str, Value)>) -> Span {
    Span {
        trace_id: [1; 16],
        span_id: [0, 0, 0, 0, 0, 0, 0, id],
        parent_span_id: None,
        name: name.into(),
        kind: SpanKind::Server,
        status: StatusCode::Unset,
        status_message: String::new(),
        start_unix_nano: 1_000_000 * u64::from(id),
        end_unix_nano: 1_000_000 * u64::from(id) + 500_000,
        attributes: attributes.into_iter().map(|(key, value)| (key.to_string(), value)).collect(),
        events: Vec::new(),
        links: Vec::new(),
        resource: Arc::new(Resource { attributes: Vec::new(), service: service.map(str::to_string) }),
        scope: Arc::new(Scope::default()),
    }
}

fn trace(spans: Vec<Span>) -> Trace {
    Trace::new([1; 16], spans)
}

#[test]
fn derives_conditions_for_patterns_and_rules_and_none_for_what_it_cannot_judge() {
    for source in [
        "trace.has('payment.charge_card').and(trace.missing('payment.fraud_check'))",
        "export default trace.has(s => s.name === 'a' && s.attributes['http.status_code'] >= 500);",
        "export default rule({ name: 'x', when: trace.has('a'), expect: trace.has('b'), message: 'm' });",
        "export default rule({ never: trace.has(s => s.kind === 'SERVER') });",
        "export default trace.where(s => s.service === 'payments').count(s => s.status === 'ERROR').gt(2);",
        "export default trace.has('lock.acquire').followedBy(trace.has('lock.release'));",
        "export default trace.has('login.failed').and(trace.has('account.locked')).within('5 seconds');",
        "export default trace.count('request').gt(trace.count('response'));",
        // Check functions of the common shapes.
        "export default function (t) { return t.filter(s => s.kind === 'SERVER' && s.attributes['http.status_code'] >= 500).map(s => ({ message: 'x', spans: [s] })); }",
        "export default t => t.spans.some(s => s.duration > 5000 && s.name === 'slow') ? { message: 'slow span' } : false;",
        "export default t => t.has('a') && t.has('b') ? true : null;",
        "export default rule({ name: 'c', check: t => t.spans.filter(s => s.name === 'a').map(s => ({ message: 'a' })) });",
        "export default rule({ expect: trace.has('b') });",
        // Absence: skipped only when what must be absent is there for sure.
        "export default trace.missing('audit.log');",
        "export default trace.has('a').not();",
        "export default trace.count('db.query').lt(3);",
    ] {
        assert!(prefilter(source).is_active(), "{source}");
    }
    for source in [
        // Check functions and what the host cannot see stay in the sandbox.
        "export default function (t) { return t.has('a'); }",
        "export default t => t.spans.length > 3 ? { message: 'long' } : false;",
        "export default t => t.has('a') ? { message: 'a' } : 0;",
        "export default t => { const x = t.filter('a'); return x.map(s => ({ message: 'a' })); };",
        "export default rule({ never: trace.has('b'), check: t => [] });",
        "const NAME = 'a'; export default trace.has(s => s.name === NAME);",
        "export default trace.has(s => s.events.length > 0);",
        // A module that rebinds the builder.
        "const trace = { has: () => true }; export default trace.has('a');",
        "export default window({ name: 'w', select: {}, length: '10s', check: spans => [] });",
    ] {
        assert!(!prefilter(source).is_active(), "{source}");
    }
}

#[test]
fn rules_out_only_traces_that_cannot_match_without_a_throw() {
    let a = span(1, "a", Some("payments"), vec![("http.status_code", Value::Int(503)), ("cache.hit", Value::Bool(false))]);
    let b = span(2, "b", None, vec![("http.status_code", Value::Str("200".into())), ("nested", Value::Map(Vec::new()))]);
    let cases: &[(&str, bool, bool)] = &[
        // (source, may fire on [a, b], may fire on [b])
        ("trace.has('a')", true, false),
        ("trace.has(s => s.attributes['http.status_code'] >= 500)", true, true), // "200" >= 500 is left to JS
        ("trace.has(s => s.attributes['http.status_code'] === 503)", true, false),
        ("trace.has(s => s.service === 'payments')", true, false),
        ("trace.has(s => s.attributes['cache.hit'] === false)", true, false),
        ("trace.has(s => 'cache.hit' in s.attributes)", true, false),
        ("trace.has(s => s.attributes.missing.x === 1)", true, true), // throws on every span
        ("trace.has(s => s.attributes['nested'] > 1)", true, true),   // coercing an object may throw
        ("trace.has(s => s.name === 'zzz' && s.attributes.missing.x)", false, false), // never reaches the throw
        ("trace.has(s => s.attributes.missing.x && s.name === 'zzz')", true, true),
        ("trace.has(s => s.name.startsWith('a'))", true, false),
        ("trace.where(s => s.name === 'b').has(s => s.attributes['http.status_code'] === 503)", false, false),
        ("rule({ when: trace.has('a'), expect: trace.has('zzz') })", true, false),
        ("rule({ when: trace.has('a'), expect: trace.has('b') })", false, false), // the expectation holds
        ("rule({ when: trace.has('a'), never: trace.has('zzz') })", false, false), // the forbidden span is absent
        ("rule({ when: trace.has('a'), never: trace.has('b') })", true, false),
        ("rule({ expect: trace.has('a'), never: trace.has('zzz') })", false, true),
        ("trace.has('a').or(trace.has('zzz'))", true, false),
        ("trace.count().gt(1)", true, false),
        ("trace.count('a').eq(0).not()", true, false),
        ("trace.missing('a')", false, true),
        ("trace.has('a').not()", false, true),
        ("trace.count(s => s.name === 'a' || s.name === 'b').lt(2)", false, true),
    ];
    for (source, both, only_b) in cases {
        let filter = prefilter(source);
        assert_eq!(filter.may_fire(&trace(vec![a.clone(), b.clone()])), *both, "{source} on [a, b]");
        assert_eq!(filter.may_fire(&trace(vec![b.clone()])), *only_b, "{source} on [b]");
    }
}

#[test]
fn deep_sources_are_judged_to_a_bounded_depth() {
    let a = trace(vec![span(1, "a", None, Vec::new())]);
    let none = trace(vec![span(1, "z", None, Vec::new())]);
    let parenthesized = prefilter(&format!("trace.has(s => {}s.name === 'a'{})", "(".repeat(90), ")".repeat(90)));
    assert!(parenthesized.may_fire(&a) && !parenthesized.may_fire(&none));
    // Beyond the depth limit a predicate is unknown, so it always runs.
    let chain = prefilter(&format!("trace.has(s => {} s.name === 'a')", "s.name === 'b' || ".repeat(5_000)));
    assert!(chain.may_fire(&none));
    let chained = prefilter(&format!("trace.has('a'){}", ".and(trace.has('a'))".repeat(500)));
    assert!(chained.may_fire(&none) && chained.may_fire(&a));
    // Wide but shallow: balanced, 48 levels could hold far more than a source; the node cap keeps the host's work small.
    let wide = (0..10).fold("s.name === 'a'".to_string(), |inner, _| format!("({inner} && {inner})"));
    assert!(wide.len() < 128 << 10);
    assert!(!prefilter(&format!("trace.has(s => {wide})")).is_active(), "1,023 comparisons: over the node cap, always run");
    let small = (0..4).fold("s.name === 'a'".to_string(), |inner, _| format!("({inner} && {inner})"));
    assert!(prefilter(&format!("trace.has(s => {small})")).is_active());
}

// ----------------------------------------------------- differential test --

/// xorshift64*: reproducible without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NAMES: &[&str] = &["a", "b", "db.query", "GET /x", ""];
const KEYS: &[&str] = &["k", "n", "flag", "toString", "$int"];

fn literal(random: &mut Random) -> String {
    random.pick(&["'a'", "'500'", "''", "500", "0", "-1", "1.5", "true", "false", "null", "undefined", "9007199254740993n"]).to_string()
}

fn access(random: &mut Random) -> String {
    match random.below(4) {
        0 => format!("s.attributes['{}']", random.pick(KEYS)),
        1 => format!("s.attributes.{}", random.pick(&["k", "n", "flag"])),
        2 => format!("s.{}", random.pick(&["name", "service", "kind", "status", "statusMessage", "parentSpanId", "duration", "events"])),
        _ => format!("s.attributes.{}.x", random.pick(&["k", "n"])),
    }
}

fn span_expression(random: &mut Random, depth: usize) -> String {
    if depth > 2 || random.below(3) > 0 {
        return match random.below(9) {
            0 => format!("s.name === '{}'", random.pick(NAMES)),
            1 => format!("{} {} {}", access(random), random.pick(&["===", "!==", "==", "!="]), literal(random)),
            2 => format!("{} {} {}", access(random), random.pick(&["<", "<=", ">", ">="]), literal(random)),
            3 => format!("'{}' in s.attributes", random.pick(KEYS)),
            4 => access(random),
            5 => format!("{}.{}('{}')", access(random), random.pick(&["startsWith", "endsWith", "includes"]), random.pick(&["a", "5", ""])),
            6 => format!("s.kind === '{}'", random.pick(&["SERVER", "CLIENT"])),
            7 => format!("s.status === '{}'", random.pick(&["ERROR", "UNSET"])),
            _ => format!("s.service === '{}'", random.pick(&["x", "y"])),
        };
    }
    match random.below(3) {
        0 => format!("({} && {})", span_expression(random, depth + 1), span_expression(random, depth + 1)),
        1 => format!("({} || {})", span_expression(random, depth + 1), span_expression(random, depth + 1)),
        _ => format!("!({})", span_expression(random, depth + 1)),
    }
}

fn predicate_source(random: &mut Random) -> String {
    match random.below(4) {
        0 => format!("'{}'", random.pick(NAMES)),
        1 => format!("function (s) {{ return {}; }}", span_expression(random, 0)),
        _ => format!("s => {}", span_expression(random, 0)),
    }
}

fn pattern_source(random: &mut Random, depth: usize) -> String {
    let scope = if random.below(4) == 0 { format!("trace.where({})", predicate_source(random)) } else { "trace".to_string() };
    if depth > 2 || random.below(2) == 0 {
        return match random.below(5) {
            0 | 1 => format!("{scope}.has({})", predicate_source(random)),
            2 => format!("{scope}.missing({})", predicate_source(random)),
            3 => format!(
                "{scope}.count({}).{}({})",
                predicate_source(random),
                random.pick(&["gt", "gte", "lt", "lte", "eq", "ne"]),
                random.pick(&["0", "1", "2", "-1", "0.5"])
            ),
            _ => format!("trace.count({}).gt(trace.count({}))", predicate_source(random), predicate_source(random)),
        };
    }
    let inner = pattern_source(random, depth + 1);
    match random.below(7) {
        0 => format!("{inner}.and({})", pattern_source(random, depth + 1)),
        1 => format!("{inner}.or({})", pattern_source(random, depth + 1)),
        2 => format!("{inner}.not()"),
        3 => format!("trace.not({inner})"),
        4 => format!("{inner}.within({})", random.pick(&["'1ms'", "2", "'1 second'"])),
        5 => format!("{inner}.followedBy({})", pattern_source(random, depth + 1)),
        _ => format!("{inner}.and({})", predicate_source(random)),
    }
}

/// A check function of a shape the prefilter judges, or close to one.
fn check_source(random: &mut Random) -> String {
    let base = random.pick(&["t", "t.spans"]).to_string();
    let function_predicate = |random: &mut Random| format!("s => {}", span_expression(random, 0));
    let filter = |random: &mut Random, base: &str| {
        if base == "t" { predicate_source(random) } else { function_predicate(random) }
    };
    let condition = |random: &mut Random| match random.below(3) {
        0 => format!("t.has({})", predicate_source(random)),
        1 => format!("t.spans.some({})", function_predicate(random)),
        _ => format!("(t.has({}) {} t.spans.some({}))", predicate_source(random), random.pick(&["&&", "||"]), function_predicate(random)),
    };
    match random.below(5) {
        0 => format!("t => {base}.filter({}).map(s => ({{ message: 'm ' + s.name, spans: [s] }}))", filter(random, &base)),
        1 => format!(
            "function (t) {{ return {base}.filter({}).filter({}).map(s => ({{ message: 'm' }})); }}",
            filter(random, &base),
            filter(random, &base)
        ),
        2 => format!(
            "t => {} ? {{ message: 'c' }} : {}",
            condition(random),
            random.pick(&["false", "null", "undefined", "[]", "0", "''", "true"])
        ),
        3 => format!("t => {base}.filter({})", filter(random, &base)),
        _ => format!("t => {{ return {} ? [{{ message: 'c' }}] : []; }}", condition(random)),
    }
}

fn rule_source(random: &mut Random) -> String {
    match random.below(8) {
        6 => format!("export default {};", check_source(random)),
        7 => format!("export default rule({{ name: 'c', check: {} }});", check_source(random)),
        0 => pattern_source(random, 0),
        1 | 2 => format!("export default {};", pattern_source(random, 0)),
        3 => format!("export default rule({{ when: {}, expect: {} }});", pattern_source(random, 0), pattern_source(random, 0)),
        4 => format!("export default rule({{ never: {} }});", pattern_source(random, 0)),
        _ => format!(
            "export default rule({{ when: {}, never: {}, message: ({{ spans }}) => 'n=' + spans.length }});",
            pattern_source(random, 0),
            pattern_source(random, 0)
        ),
    }
}

fn value(random: &mut Random, depth: usize) -> Value {
    match random.below(if depth > 0 { 12 } else { 14 }) {
        0 => Value::Str(random.pick(&["a", "500", "", "5a"]).to_string()),
        1 => Value::Int(*random.pick(&[0, 500, -1, (1 << 53) + 1])),
        2 => Value::Double(*random.pick(&[0.0, 1.5, 500.0, f64::NAN, f64::INFINITY, -0.0])),
        3 => Value::Bool(random.below(2) == 0),
        4 => Value::Bytes(if random.below(2) == 0 { Vec::new() } else { b"hi".to_vec() }),
        5 => Value::Empty,
        6..=11 => Value::Str(random.pick(NAMES).to_string()),
        12 => Value::Array((0..random.below(3)).map(|_| value(random, depth + 1)).collect()),
        _ => Value::Map(match random.below(3) {
            0 => vec![("$int".into(), Value::Str(random.pick(&["0", "7"]).to_string()))],
            1 => vec![("toString".into(), Value::Int(1)), ("valueOf".into(), Value::Int(2))],
            _ => vec![("x".into(), value(random, depth + 1))],
        }),
    }
}

fn random_trace(random: &mut Random, number: u64) -> Trace {
    let count = 1 + random.below(5);
    let spans = (0..count)
        .map(|index| {
            let attributes = (0..random.below(4)).map(|_| (*random.pick(KEYS), value(random, 0))).collect();
            let (name, service) = (*random.pick(NAMES), *random.pick(&[Some("x"), Some("y"), None]));
            let mut span = span(index as u8 + 1, name, service, attributes);
            span.trace_id = u128::from(number).to_be_bytes();
            span.kind = *random.pick(&[SpanKind::Server, SpanKind::Client, SpanKind::Internal]);
            span.status = *random.pick(&[StatusCode::Unset, StatusCode::Error]);
            span.start_unix_nano = 1_000_000_000 + random.below(3_000_000) as u64;
            span.end_unix_nano = span.start_unix_nano + random.below(2_000_000) as u64;
            span
        })
        .collect();
    Trace::new(u128::from(number).to_be_bytes(), spans)
}

#[test]
fn differential_the_prefilter_never_skips_a_rule_that_would_report_or_fail() {
    const RULES: usize = 400;
    const TRACES: usize = 260;
    let engine = RuleEngine::new(crate::rules::Limits::default()).unwrap();
    let mut random = Random(0x5eed_f1f0_2026_1205);
    let sources: Vec<String> = (0..RULES).map(|_| rule_source(&mut random)).collect();
    let rules: Vec<_> = sources
        .iter()
        .map(|source| crate::rules::compile::compile(&engine, source).unwrap_or_else(|error| panic!("{source}: {error}")).1)
        .collect();
    let traces: Vec<Trace> = (0..TRACES).map(|number| random_trace(&mut random, number as u64 + 1)).collect();
    let (mut pairs, mut skipped, mut fired, mut failed) = (0usize, 0usize, 0usize, 0usize);
    for (batch, chunk) in rules.chunks(50).enumerate() {
        let mut full = Sandbox::new(engine.clone(), chunk.to_vec());
        let mut filtered = Sandbox::new(engine.clone(), chunk.to_vec());
        for trace in &traces {
            let (all, some) = (full.evaluate(trace), filtered.evaluate_prefiltered(trace));
            for (index, (run, other)) in all.iter().zip(&some).enumerate() {
                let source = &sources[batch * 50 + index];
                pairs += 1;
                match &run.outcome {
                    Outcome::Ok { violations } if !violations.is_empty() => fired += 1,
                    Outcome::Ok { .. } => {}
                    _ => failed += 1,
                }
                if other.skipped {
                    skipped += 1;
                    assert!(!chunk[index].may_fire(trace));
                    assert!(
                        matches!(&run.outcome, Outcome::Ok { violations } if violations.is_empty()),
                        "skipped, but the rule gave {:?}\nrule: {source}\ntrace: {trace:#?}",
                        run.outcome
                    );
                } else {
                    assert_eq!(run.outcome, other.outcome, "rule: {source}");
                }
            }
        }
    }
    assert!(pairs >= 100_000, "{pairs} pairs");
    eprintln!("{pairs} pairs: {skipped} skipped, {fired} fired, {failed} failed");
    // The test means something only if each kind of answer is common.
    assert!(skipped > pairs / 10 && fired > pairs / 20 && failed > pairs / 100, "{skipped} skipped, {fired} fired, {failed} failed");
}

/// Found by the differential test: an attribute named like a member of the
/// (frozen) Object.prototype, or a map value shaped like the ABI's BigInt
/// escape, failed loading the whole trace for every rule.
#[test]
fn attribute_keys_named_like_object_prototype_members_reach_rules_as_own_properties() {
    let engine = RuleEngine::new(crate::rules::Limits::default()).unwrap();
    let source = "export default trace.has(s => s.attributes['toString'] === 'x' && s.attributes['__proto__'] === 'y' \
                  && Object.keys(s.attributes).length === 6 && s.attributes.valueOf.n === 1 \
                  && s.attributes.$int === '5' && s.attributes.m.$int === 'a' && s.attributes.m2.$map.$int === 7);";
    let (_, rule) = crate::rules::compile::compile(&engine, source).unwrap();
    let attributes = vec![
        ("toString", Value::Str("x".into())),
        ("__proto__", Value::Str("y".into())),
        ("valueOf", Value::Map(vec![("n".into(), Value::Int(1))])),
        // A map whose only key is the ABI's BigInt escape is still a map.
        ("$int", Value::Str("5".into())),
        ("m", Value::Map(vec![("$int".into(), Value::Str("a".into()))])),
        ("m2", Value::Map(vec![("$map".into(), Value::Map(vec![("$int".into(), Value::Int(7))]))])),
    ];
    let runs = Sandbox::new(engine, vec![rule]).evaluate(&trace(vec![span(1, "a", None, attributes)]));
    assert!(matches!(&runs[0].outcome, Outcome::Ok { violations } if violations.len() == 1), "{:?}", runs[0].outcome);
}
