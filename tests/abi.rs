//! Keeps wit/fluo-rule.wit, the built plugin, the binary trace layout and the
//! span objects rules see in step.

use fluo::model::trace::{Event, Link, Resource, Scope, Span, SpanKind, StatusCode, Trace, Value};
use fluo::rules::abi::NAMESPACE;
use fluo::rules::plugin::RAW_PLUGIN;
use fluo::rules::wire::layout;
use fluo::rules::{Limits, Outcome, RuleEngine, Sandbox, compile::compile};
use std::collections::BTreeSet;
use std::sync::Arc;

const WIT: &str = include_str!("../wit/fluo-rule.wit");

fn camel(kebab: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for ch in kebab.trim_start_matches('%').chars() {
        if ch == '-' {
            upper = true;
        } else if upper {
            out.extend(ch.to_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

/// Field names of `record NAME { … }` in the WIT file, camelCased, in order.
fn record_field_list(name: &str) -> Vec<String> {
    let start = WIT.find(&format!("record {name} {{")).unwrap_or_else(|| panic!("record {name} in the WIT"));
    let body = &WIT[start..];
    let body = &body[body.find('{').expect("{") + 1..body.find('}').expect("}")];
    body.split([',', '\n'])
        .map(|part| part.split("//").next().unwrap_or("").trim())
        .filter(|part| !part.is_empty())
        .map(|part| camel(part.split(':').next().expect("field").trim()))
        .collect()
}

fn record_fields(name: &str) -> BTreeSet<String> {
    record_field_list(name).into_iter().collect()
}

#[test]
fn plugin_exports_match_the_wit() {
    let declared: BTreeSet<String> =
        WIT.lines().filter_map(|line| line.trim().split_once(": func")).map(|(name, _)| name.to_string()).collect();
    assert!(declared.contains("fluo-run"), "{declared:?}");
    let engine = wasmtime::Engine::default();
    let module = wasmtime::Module::new(&engine, RAW_PLUGIN).expect("plugin compiles");
    let exported: BTreeSet<String> =
        module.exports().map(|export| export.name().to_string()).filter(|name| name.starts_with("fluo-")).collect();
    assert_eq!(declared, exported, "fluo-* exports of the plugin vs wit/fluo-rule.wit");
    for javy in ["invoke", "compile-src", "cabi_realloc", "initialize-runtime", "memory"] {
        assert!(module.get_export(javy).is_some(), "javy export {javy}");
    }
}

#[test]
fn namespace_and_package_version_agree() {
    let major = WIT
        .lines()
        .find_map(|line| line.strip_prefix("package fluo:rule@"))
        .and_then(|version| version.split('.').next())
        .expect("package line");
    assert_eq!(NAMESPACE, format!("fluo_rule_v{major}"));
    // The plugin declares its import namespace in a custom section.
    let needle = NAMESPACE.as_bytes();
    assert!(RAW_PLUGIN.windows(needle.len()).any(|window| window == needle), "plugin names namespace {NAMESPACE}");
    let prelude = include_str!("../rule-sdk/src/prelude.js");
    assert!(prelude.contains(&format!("ABI {NAMESPACE}")));
    let plugin = include_str!("../rule-sdk/src/lib.rs");
    assert!(
        plugin.contains(&format!("const EMPTY_RESULT: &[u8] = br#\"{}\"#;", fluo::rules::abi::EMPTY_RESULT)),
        "the host's fast path matches the plugin's constant"
    );
    assert!(
        plugin.contains(&format!("const WHEN_FAILED_RESULT: &[u8] = br#\"{}\"#;", fluo::rules::abi::WHEN_FAILED_RESULT)),
        "the host's second fast path matches the plugin's constant"
    );
    assert!(prelude.contains("return whenFailed ? 1 : 0;"), "the SDK answers 0 or 1 for an empty result");
}

/// `record NAME { … } // bytes: N` in the WIT: the size its fields add up to, and N.
fn record_size(name: &str) -> (usize, usize) {
    let start = WIT.find(&format!("record {name} {{")).unwrap_or_else(|| panic!("record {name} in the WIT"));
    let line_end = start + WIT[start..].find('\n').expect("line");
    let declared = WIT[start..line_end].split("// bytes: ").nth(1).unwrap_or_else(|| panic!("{name} declares its size")).trim();
    let body = &WIT[start..];
    let body = &body[body.find('{').expect("{") + 1..body.find('}').expect("}")];
    let code: String = body.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join(" ");
    let size = code
        .split(',')
        .filter_map(|part| part.split_once(':'))
        .map(|(_, ty)| match ty.trim() {
            "u32" => 4,
            "u64" | "f64" => 8,
            other => panic!("{name}: unexpected field type {other}"),
        })
        .sum();
    (size, declared.parse().expect("a number of bytes"))
}

#[test]
fn binary_layout_matches_the_wit_records() {
    for (record, size) in [
        ("string-record", layout::STRING),
        ("resource-record", layout::RESOURCE),
        ("scope-record", layout::SCOPE),
        ("span-record", layout::SPAN),
        ("event-record", layout::EVENT),
        ("link-record", layout::LINK),
        ("entry-record", layout::ENTRY),
        ("value-record", layout::VALUE),
    ] {
        let (fields, declared) = record_size(record);
        assert_eq!((fields, declared), (size, size), "{record}: fields, declared size, layout constant");
    }
    assert_eq!(layout::HEADER, 64);
    assert!(WIT.contains("A 64-byte header: magic \"FLT2\""));
    assert_eq!(&layout::MAGIC, b"FLT2");
}

#[test]
fn span_objects_rules_see_match_the_wit_records() {
    let resource = Arc::new(Resource { attributes: vec![("service.name".into(), Value::Str("svc".into()))], service: Some("svc".into()) });
    let span = Span {
        trace_id: [1; 16],
        span_id: [2; 8],
        parent_span_id: Some([3; 8]),
        name: "n".into(),
        kind: SpanKind::Client,
        status: StatusCode::Error,
        status_message: "m".into(),
        start_unix_nano: 1_700_000_000_123_456_789,
        end_unix_nano: 1_700_000_000_223_456_789,
        attributes: vec![
            ("big".into(), Value::Int(i64::MAX)),
            ("small".into(), Value::Int(5)),
            ("b".into(), Value::Bytes(vec![1, 2])),
            ("nan".into(), Value::Double(f64::NAN)),
            ("list".into(), Value::Array(vec![Value::Int(1), Value::Array(vec![Value::Str("x".into())]), Value::Bool(false)])),
            ("map".into(), Value::Map(vec![("$int".into(), Value::Str("7".into()))])),
            ("small".into(), Value::Int(6)),
        ],
        events: vec![Event { name: "e".into(), time_unix_nano: 1_000_000, attributes: vec![("k".into(), Value::Double(0.5))] }],
        links: vec![Link { trace_id: [4; 16], span_id: [5; 8], attributes: vec![] }],
        resource,
        scope: Arc::new(Scope { name: "s".into(), version: "1".into() }),
    };
    let trace = Trace::new([1; 16], vec![span]);
    let rule = r#"export default function (t) {
      const s = t.spans[0];
      const objects = [s, s.attributes, s.attributes.list, s.attributes.map, s.events, s.events[0], s.events[0].attributes,
        s.links, s.links[0], s.resource, s.resource.attributes, s.scope];
      const out = {
        span: Object.keys(s), event: Object.keys(s.events[0]), link: Object.keys(s.links[0]),
        resource: Object.keys(s.resource), scope: Object.keys(s.scope),
        frozen: objects.map(Object.isFrozen),
        big: typeof s.attributes.big, bigText: String(s.attributes.big),
        attributes: Object.assign({}, s.attributes, { big: undefined }),
        eventValues: [s.events[0].name, s.events[0].time, s.events[0].attributes.k],
        ids: [s.traceId, s.spanId, s.parentSpanId, s.links[0].traceId, s.links[0].spanId],
        times: [s.startTime, s.endTime, s.duration, s.startTimeUnixNano, s.endTimeUnixNano],
        fields: [s.name, s.kind, s.status, s.statusMessage, s.service, s.resource.service, s.scope.name, s.scope.version],
      };
      let refused = 0;
      for (const write of [() => { s.name = 'x'; }, () => { s.attributes.small = 1; }, () => { s.extra = 1; }, () => { delete s.name; },
        () => { s.events.push({}); }, () => { s.resource.attributes.x = 1; }]) {
        try { write(); } catch (error) { if (error instanceof TypeError) refused++; }
      }
      out.refused = refused;
      return { message: JSON.stringify(out), spans: [s] };
    }"#;
    let engine = RuleEngine::new(Limits::default()).expect("engine");
    let (_, loaded) = compile(&engine, rule).expect("rule compiles");
    let mut sandbox = Sandbox::new(engine, vec![loaded]);
    let runs = sandbox.evaluate(&trace);
    let Outcome::Ok { violations } = &runs[0].outcome else { panic!("{:?}", runs[0].outcome) };
    let seen: serde_json::Value = serde_json::from_str(&violations[0].message).expect("json");
    let names =
        |key: &str| -> Vec<String> { seen[key].as_array().expect(key).iter().map(|v| v.as_str().expect("name").to_string()).collect() };
    assert_eq!(names("span"), record_field_list("span"), "span keys, in order");
    assert_eq!(names("event").iter().cloned().collect::<BTreeSet<_>>(), record_fields("event"));
    assert_eq!(names("link").iter().cloned().collect::<BTreeSet<_>>(), record_fields("link"));
    assert_eq!(names("resource").iter().cloned().collect::<BTreeSet<_>>(), record_fields("resource-doc"));
    assert_eq!(names("scope").iter().cloned().collect::<BTreeSet<_>>(), record_fields("scope-doc"));
    assert!(seen["frozen"].as_array().expect("frozen").iter().all(|f| f == true), "{}", seen["frozen"]);
    assert_eq!(seen["refused"], 6, "every write to a span is a TypeError");
    assert_eq!((seen["big"].as_str(), seen["bigText"].as_str()), (Some("bigint"), Some(i64::MAX.to_string().as_str())));
    assert_eq!(
        seen["attributes"],
        serde_json::json!({"small": 6, "b": "AQI=", "nan": null, "list": [1, ["x"], false], "map": {"$int": "7"}}),
        "last value of a repeated key; bytes as base64; NaN as null; nested arrays; a map shaped like an escape is a map"
    );
    assert_eq!(seen["eventValues"], serde_json::json!(["e", 1, 0.5]));
    assert_eq!(seen["ids"], serde_json::json!(["01".repeat(16), "02".repeat(8), "03".repeat(8), "04".repeat(16), "05".repeat(8)]));
    assert_eq!(
        seen["times"],
        serde_json::json!([1_700_000_000_123.456_8, 1_700_000_000_223.456_8, 100, "1700000000123456789", "1700000000223456789"])
    );
    assert_eq!(seen["fields"], serde_json::json!(["n", "CLIENT", "ERROR", "m", "svc", "svc", "s", "1"]));
}
