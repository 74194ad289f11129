//! The data that crosses the sandbox boundary, ABI `fluo_rule_v1`
//! (`wit/fluo-rule.wit`): the trace JSON the host writes into a sandbox and the
//! evaluation JSON a rule call returns.
//!
//! Hidden contract with `rule-sdk/src/prelude.js`: field names, times in
//! milliseconds since the epoch (fractional), integers beyond ±(2^53−1) as
//! `{"$int": "<decimal>"}` with `bigInts: true`, bytes as base64, resources and
//! scopes listed once and referenced by index. A map value whose only key is
//! `$int` or `$map` is sent as `{"$map": <the map>}`, so that no map reads as
//! a BigInt; attribute objects themselves (a span's `attributes`) are never
//! read that way.

use crate::model::trace::{Attributes, Resource, Scope, Span, Trace, Value};
use base64::Engine as _;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The import namespace of rule modules; versioned with the ABI.
pub const NAMESPACE: &str = "fluo_rule_v1";

/// Integers beyond ±this reach rules as BigInt.
pub(crate) const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Serializes a trace into the JSON the sandbox's `__fluo_load` reads.
/// With `window` (start and end, ms since the epoch), the spans are one
/// window's selection for a window check rather than one trace.
pub fn trace_json(trace: &Trace, window: Option<(u64, u64)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + trace.spans.len() * 512);
    let mut serializer = serde_json::Serializer::new(&mut out);
    TraceDoc(trace, window).serialize(&mut serializer).expect("serializing into memory cannot fail");
    out
}

struct TraceDoc<'a>(&'a Trace, Option<(u64, u64)>);

impl Serialize for TraceDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let trace = self.0;
        let mut resources: Vec<&Arc<Resource>> = Vec::new();
        let mut scopes: Vec<&Arc<Scope>> = Vec::new();
        let mut span_refs = Vec::with_capacity(trace.spans.len());
        let mut big_ints = false;
        for span in &trace.spans {
            let resource = index_of(&mut resources, &span.resource);
            let scope = index_of(&mut scopes, &span.scope);
            span_refs.push((resource, scope));
            big_ints = big_ints
                || has_big_int(&span.attributes)
                || span.events.iter().any(|event| has_big_int(&event.attributes))
                || span.links.iter().any(|link| has_big_int(&link.attributes));
        }
        big_ints = big_ints || resources.iter().any(|resource| has_big_int(&resource.attributes));

        let mut map = serializer.serialize_map(Some(5 + usize::from(self.1.is_some())))?;
        map.serialize_entry("traceId", &hex::encode(trace.trace_id))?;
        if let Some((start, end)) = self.1 {
            map.serialize_entry("window", &WindowDoc { start, end })?;
        }
        map.serialize_entry("bigInts", &big_ints)?;
        map.serialize_entry("resources", &Seq(resources.iter().map(|resource| ResourceDoc(resource))))?;
        map.serialize_entry("scopes", &Seq(scopes.iter().map(|scope| ScopeDoc(scope))))?;
        map.serialize_entry(
            "spans",
            &Seq(trace.spans.iter().zip(span_refs).map(|(span, (resource, scope))| SpanDoc { span, resource, scope })),
        )?;
        map.end()
    }
}

fn index_of<'a, T>(list: &mut Vec<&'a Arc<T>>, item: &'a Arc<T>) -> usize {
    match list.iter().position(|known| Arc::ptr_eq(known, item)) {
        Some(index) => index,
        None => {
            list.push(item);
            list.len() - 1
        }
    }
}

fn has_big_int(attributes: &Attributes) -> bool {
    fn big(value: &Value) -> bool {
        match value {
            Value::Int(number) => !(-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(number),
            Value::Array(items) => items.iter().any(big),
            Value::Map(entries) => entries.iter().any(|(_, value)| big(value)),
            _ => false,
        }
    }
    attributes.iter().any(|(_, value)| big(value))
}

/// Serializes an iterator as a JSON array (the iterator is cloned, not consumed).
struct Seq<I>(I);

impl<I, T> Serialize for Seq<I>
where
    I: Iterator<Item = T> + Clone,
    T: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for item in self.0.clone() {
            seq.serialize_element(&item)?;
        }
        seq.end()
    }
}

struct ResourceDoc<'a>(&'a Resource);

impl Serialize for ResourceDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("attributes", &AttributesDoc(&self.0.attributes))?;
        map.serialize_entry("service", &self.0.service)?;
        map.end()
    }
}

struct ScopeDoc<'a>(&'a Scope);

impl Serialize for ScopeDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("name", &self.0.name)?;
        map.serialize_entry("version", &self.0.version)?;
        map.end()
    }
}

fn millis(unix_nano: u64) -> f64 {
    unix_nano as f64 / 1e6
}

struct SpanDoc<'a> {
    span: &'a Span,
    resource: usize,
    scope: usize,
}

impl Serialize for SpanDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let span = self.span;
        let mut map = serializer.serialize_map(Some(18))?;
        map.serialize_entry("name", &span.name)?;
        map.serialize_entry("traceId", &hex::encode(span.trace_id))?;
        map.serialize_entry("spanId", &hex::encode(span.span_id))?;
        map.serialize_entry("parentSpanId", &span.parent_span_id.map(hex::encode))?;
        map.serialize_entry("kind", span.kind.as_str())?;
        map.serialize_entry("status", span.status.as_str())?;
        map.serialize_entry("statusMessage", &span.status_message)?;
        map.serialize_entry("service", &span.resource.service)?;
        map.serialize_entry("startTime", &millis(span.start_unix_nano))?;
        map.serialize_entry("endTime", &millis(span.end_unix_nano))?;
        map.serialize_entry("duration", &(span.end_unix_nano.saturating_sub(span.start_unix_nano) as f64 / 1e6))?;
        map.serialize_entry("startTimeUnixNano", &span.start_unix_nano.to_string())?;
        map.serialize_entry("endTimeUnixNano", &span.end_unix_nano.to_string())?;
        map.serialize_entry("attributes", &AttributesDoc(&span.attributes))?;
        map.serialize_entry("resource", &self.resource)?;
        map.serialize_entry("scope", &self.scope)?;
        map.serialize_entry(
            "events",
            &Seq(span.events.iter().map(|event| EventDoc {
                name: &event.name,
                time: millis(event.time_unix_nano),
                attributes: &event.attributes,
            })),
        )?;
        map.serialize_entry(
            "links",
            &Seq(span.links.iter().map(|link| LinkDoc {
                trace_id: hex::encode(link.trace_id),
                span_id: hex::encode(link.span_id),
                attributes: &link.attributes,
            })),
        )?;
        map.end()
    }
}

#[derive(Clone)]
struct EventDoc<'a> {
    name: &'a str,
    time: f64,
    attributes: &'a Attributes,
}

impl Serialize for EventDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("name", self.name)?;
        map.serialize_entry("time", &self.time)?;
        map.serialize_entry("attributes", &AttributesDoc(self.attributes))?;
        map.end()
    }
}

#[derive(Clone)]
struct LinkDoc<'a> {
    trace_id: String,
    span_id: String,
    attributes: &'a Attributes,
}

impl Serialize for LinkDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("traceId", &self.trace_id)?;
        map.serialize_entry("spanId", &self.span_id)?;
        map.serialize_entry("attributes", &AttributesDoc(self.attributes))?;
        map.end()
    }
}

/// Attributes as a JSON object. A key that repeats keeps its last value (as
/// a JS object literal would), so the entries are de-duplicated first.
struct AttributesDoc<'a>(&'a Attributes);

impl Serialize for AttributesDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = self.0;
        // A client controls how many attributes a span has: find the repeats in
        // linear time (from the end, so the last value of a key is the one kept).
        let mut seen = std::collections::HashSet::with_capacity(entries.len());
        let keep: Vec<bool> = entries.iter().rev().map(|(key, _)| seen.insert(key.as_str())).collect();
        let mut map = serializer.serialize_map(Some(seen.len()))?;
        for ((key, value), keep) in entries.iter().zip(keep.into_iter().rev()) {
            if keep {
                map.serialize_entry(key, &ValueDoc(value))?;
            }
        }
        map.end()
    }
}

/// Whether a map value would read as an escape (`{"$int": …}`, `{"$map": …}`): its keys are all one of those.
fn escaped(entries: &Attributes) -> bool {
    entries.first().is_some_and(|(first, _)| (first == "$int" || first == "$map") && entries.iter().all(|(key, _)| key == first))
}

struct ValueDoc<'a>(&'a Value);

impl Serialize for ValueDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Str(text) => serializer.serialize_str(text),
            Value::Bool(flag) => serializer.serialize_bool(*flag),
            Value::Int(number) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(number) => serializer.serialize_i64(*number),
            Value::Int(number) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("$int", &number.to_string())?;
                map.end()
            }
            // JSON has no NaN or infinities; rules see null for them.
            Value::Double(number) if number.is_finite() => serializer.serialize_f64(*number),
            Value::Double(_) | Value::Empty => serializer.serialize_unit(),
            Value::Bytes(bytes) => serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes)),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&ValueDoc(item))?;
                }
                seq.end()
            }
            Value::Map(entries) if escaped(entries) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("$map", &AttributesDoc(entries))?;
                map.end()
            }
            Value::Map(entries) => AttributesDoc(entries).serialize(serializer),
        }
    }
}

/// The prelude's constant result for "no violations, no logs" (`EMPTY_RESULT` in prelude.js).
pub const EMPTY_RESULT: &str = r#"{"outcome":"ok","violations":[]}"#;

/// What one rule call returned, as the prelude's `__fluo_run` writes it.
#[derive(Debug, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunDoc {
    Ok {
        violations: Vec<ViolationDoc>,
        #[serde(default)]
        logs: Vec<LogDoc>,
        #[serde(default, rename = "logsTruncated")]
        logs_truncated: bool,
    },
    OutputCap {
        bytes: u64,
    },
    Error {
        name: String,
        message: String,
        #[serde(default)]
        stack: String,
        #[serde(default)]
        logs: Vec<LogDoc>,
        #[serde(default, rename = "logsTruncated")]
        logs_truncated: bool,
    },
}

/// A violation's span ids as the host keeps them: each decoded (16 hex digits,
/// either case), kept once per decoded id in the rule's order, written in
/// lowercase, at most `cap`. Ids that are not span ids are dropped: they
/// cannot name a witness. The SDK already refuses ids that are not in the
/// trace, but the host does not rely on code that runs in the sandbox.
pub fn witness_ids(ids: &[String], cap: usize) -> Vec<String> {
    let mut seen: Vec<[u8; 8]> = Vec::with_capacity(ids.len().min(cap));
    for id in ids {
        if seen.len() >= cap {
            break;
        }
        let mut bytes = [0u8; 8];
        if hex::decode_to_slice(id, &mut bytes).is_ok() && !seen.contains(&bytes) {
            seen.push(bytes);
        }
    }
    seen.iter().map(hex::encode).collect()
}

#[derive(Debug, Deserialize)]
pub struct ViolationDoc {
    pub message: String,
    pub severity: String,
    pub spans: Vec<String>,
    #[serde(default)]
    pub attributes: Option<serde_json::Value>,
    #[serde(default)]
    pub group: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct LogDoc {
    pub level: String,
    pub message: String,
}

#[derive(Serialize)]
struct WindowDoc {
    start: u64,
    end: u64,
}
