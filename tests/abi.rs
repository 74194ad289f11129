//! Keeps wit/fluo-rule.wit, the built plugin and the host's trace JSON in step.

use fluo::model::trace::{Event, Link, Resource, Scope, Span, SpanKind, StatusCode, Trace, Value};
use fluo::rules::abi::{NAMESPACE, trace_json};
use fluo::rules::plugin::RAW_PLUGIN;
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

/// Field names of `record NAME { … }` in the WIT file, camelCased.
fn record_fields(name: &str) -> BTreeSet<String> {
    let start = WIT.find(&format!("record {name} {{")).unwrap_or_else(|| panic!("record {name} in the WIT"));
    let body = &WIT[start..];
    let body = &body[body.find('{').expect("{") + 1..body.find('}').expect("}")];
    body.split([',', '\n'])
        .map(|part| part.split("//").next().unwrap_or("").trim())
        .filter(|part| !part.is_empty())
        .map(|part| camel(part.split(':').next().expect("field").trim()))
        .collect()
}

fn keys(value: &serde_json::Value) -> BTreeSet<String> {
    value.as_object().expect("object").keys().cloned().collect()
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
    assert!(
        prelude.contains(&format!("const EMPTY_RESULT = '{}';", fluo::rules::abi::EMPTY_RESULT)),
        "the host's fast path matches the SDK's constant"
    );
}

#[test]
fn trace_json_fields_match_the_wit_records() {
    let resource = Arc::new(Resource { attributes: vec![("service.name".into(), Value::Str("svc".into()))], service: Some("svc".into()) });
    let span = Span {
        trace_id: [1; 16],
        span_id: [2; 8],
        parent_span_id: Some([3; 8]),
        name: "n".into(),
        kind: SpanKind::Client,
        status: StatusCode::Error,
        status_message: "m".into(),
        start_unix_nano: 1,
        end_unix_nano: 2,
        attributes: vec![("big".into(), Value::Int(i64::MAX)), ("small".into(), Value::Int(5)), ("b".into(), Value::Bytes(vec![1, 2]))],
        events: vec![Event { name: "e".into(), time_unix_nano: 1, attributes: vec![] }],
        links: vec![Link { trace_id: [4; 16], span_id: [5; 8], attributes: vec![] }],
        resource,
        scope: Arc::new(Scope { name: "s".into(), version: "1".into() }),
    };
    let trace = Trace::new([1; 16], vec![span]);
    let plain: serde_json::Value = serde_json::from_slice(&trace_json(&trace, None)).expect("json");
    assert!(plain.get("window").is_none(), "a trace has no window");
    let doc: serde_json::Value = serde_json::from_slice(&trace_json(&trace, Some((1000, 2000)))).expect("json");
    assert_eq!(keys(&doc), record_fields("trace-json"));
    assert_eq!(keys(&doc["window"]), record_fields("window-bounds"));
    assert_eq!((doc["window"]["start"].as_u64(), doc["window"]["end"].as_u64()), (Some(1000), Some(2000)));
    assert_eq!(keys(&doc["spans"][0]), record_fields("span"));
    assert_eq!(keys(&doc["spans"][0]["events"][0]), record_fields("event"));
    assert_eq!(keys(&doc["spans"][0]["links"][0]), record_fields("link"));
    assert_eq!(keys(&doc["resources"][0]), record_fields("resource-doc"));
    assert_eq!(keys(&doc["scopes"][0]), record_fields("scope-doc"));
    assert_eq!(doc["bigInts"], true);
    assert_eq!(doc["spans"][0]["attributes"]["big"]["$int"], i64::MAX.to_string());
    assert_eq!(doc["spans"][0]["attributes"]["small"], 5);
    assert_eq!(doc["spans"][0]["attributes"]["b"], "AQI=");
}
