//! OTLP → span model: validates ids span by span and maps `AnyValue`s to typed
//! [`Value`]s. A span with an invalid id is rejected on its own (OTLP partial
//! success) while the rest of the request is kept.
//!
//! It must not allocate without bound on behalf of a client: nesting of
//! `AnyValue`s is capped at [`MAX_VALUE_DEPTH`], and [`SpanLimits`] cap what a
//! converted span keeps — attributes per span (and per event, link and
//! resource), events and links per span, and the bytes of every attribute
//! value, key and name (truncated, as Tempo truncates values at 2 KiB). What
//! was cut is counted in [`Converted::limited`]. Spans read back from FLUO's
//! own store are converted with [`SpanLimits::NONE`]: they were capped once.

use crate::model::trace::{Attributes, Event, Link, Resource, Scope, Span, SpanId, SpanKind, StatusCode, TraceId, Value};
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use std::sync::Arc;

/// Arrays and key/value lists nested deeper than this become `Empty`.
pub const MAX_VALUE_DEPTH: usize = 16;

/// OTel SDKs keep at most 128 events and 128 links per span by default
/// (`OTEL_SPAN_EVENT_COUNT_LIMIT`, `OTEL_SPAN_LINK_COUNT_LIMIT`); so does FLUO.
pub const MAX_EVENTS_PER_SPAN: usize = 128;
pub const MAX_LINKS_PER_SPAN: usize = 128;
/// What an array or map element costs against a value's byte budget besides
/// its own strings, so that a long array of empty values is bounded too.
const ELEMENT_COST: usize = 16;

/// Caps applied while converting (`--max-attributes-per-span`,
/// `--max-attribute-value-bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanLimits {
    /// Attributes kept per span (also per event, link and resource); the rest are dropped.
    pub max_attributes: usize,
    /// Bytes kept of each attribute value (strings and bytes truncated, arrays
    /// and maps cut), key, span name, event name and status message.
    pub max_value_bytes: usize,
    pub max_events: usize,
    pub max_links: usize,
}

impl SpanLimits {
    /// No caps: for spans FLUO stored itself, already capped at ingest.
    pub const NONE: SpanLimits =
        SpanLimits { max_attributes: usize::MAX, max_value_bytes: usize::MAX, max_events: usize::MAX, max_links: usize::MAX };
}

impl Default for SpanLimits {
    fn default() -> Self {
        SpanLimits { max_attributes: 128, max_value_bytes: 2048, max_events: MAX_EVENTS_PER_SPAN, max_links: MAX_LINKS_PER_SPAN }
    }
}

/// What the caps cut from the accepted spans (the spans themselves are kept).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limited {
    /// Attribute values, keys and names truncated to `max_value_bytes`.
    pub truncated_values: u64,
    /// Attributes dropped over `max_attributes`.
    pub dropped_attributes: u64,
    pub dropped_events: u64,
    pub dropped_links: u64,
}

/// Why a span was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rejection {
    InvalidTraceId,
    InvalidSpanId,
    InvalidParentSpanId,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::InvalidTraceId => "invalid trace id (must be 16 bytes, not all zero)",
            Rejection::InvalidSpanId => "invalid span id (must be 8 bytes, not all zero)",
            Rejection::InvalidParentSpanId => "invalid parent span id (must be empty or 8 bytes)",
        }
    }
}

/// The accepted spans of a request and the rejected ones, by reason.
#[derive(Debug, Default)]
pub struct Converted {
    pub spans: Vec<Span>,
    pub rejected: Vec<(Rejection, u64)>,
    pub limited: Limited,
}

impl Converted {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|(_, count)| count).sum()
    }

    /// One line for OTLP's `partial_success.error_message`.
    pub fn rejection_message(&self) -> String {
        self.rejected.iter().map(|(reason, count)| format!("{count} span(s): {}", reason.as_str())).collect::<Vec<_>>().join("; ")
    }

    fn reject(&mut self, reason: Rejection) {
        match self.rejected.iter_mut().find(|(known, _)| *known == reason) {
            Some((_, count)) => *count = count.saturating_add(1),
            None => self.rejected.push((reason, 1)),
        }
    }
}

/// Converts with the default [`SpanLimits`].
pub fn convert(request: ExportTraceServiceRequest) -> Converted {
    convert_with(request, &SpanLimits::default())
}

/// Converts, validating ids span by span and applying `limits`.
pub fn convert_with(request: ExportTraceServiceRequest, limits: &SpanLimits) -> Converted {
    let mut converted = Converted::default();
    let mut cap = Capper { limits, limited: Limited::default() };
    for resource_spans in request.resource_spans {
        let resource_attributes = resource_spans.resource.map(|resource| cap.attributes(resource.attributes)).unwrap_or_default();
        let service = resource_attributes.iter().rev().find_map(|(key, value)| match (key.as_str(), value) {
            ("service.name", Value::Str(name)) => Some(name.clone()),
            _ => None,
        });
        let resource = Arc::new(Resource { attributes: resource_attributes, service });
        for scope_spans in resource_spans.scope_spans {
            let scope = Arc::new(
                scope_spans.scope.map(|scope| Scope { name: cap.text(scope.name), version: cap.text(scope.version) }).unwrap_or_default(),
            );
            for span in scope_spans.spans {
                let Some(trace_id) = trace_id_of(&span.trace_id) else {
                    converted.reject(Rejection::InvalidTraceId);
                    continue;
                };
                let Some(span_id) = span_id_of(&span.span_id) else {
                    converted.reject(Rejection::InvalidSpanId);
                    continue;
                };
                let parent_span_id = match span.parent_span_id.len() {
                    0 => None,
                    8 => span_id_of(&span.parent_span_id),
                    _ => {
                        converted.reject(Rejection::InvalidParentSpanId);
                        continue;
                    }
                };
                let status = span.status.unwrap_or_default();
                let dropped_events = span.events.len().saturating_sub(limits.max_events);
                let dropped_links = span.links.len().saturating_sub(limits.max_links);
                cap.limited.dropped_events = cap.limited.dropped_events.saturating_add(dropped_events as u64);
                cap.limited.dropped_links = cap.limited.dropped_links.saturating_add(dropped_links as u64);
                converted.spans.push(Span {
                    trace_id,
                    span_id,
                    parent_span_id,
                    name: cap.text(span.name),
                    kind: SpanKind::from_otlp(span.kind),
                    status: StatusCode::from_otlp(status.code),
                    status_message: cap.text(status.message),
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                    attributes: cap.attributes(span.attributes),
                    events: span
                        .events
                        .into_iter()
                        .take(limits.max_events)
                        .map(|event| Event {
                            name: cap.text(event.name),
                            time_unix_nano: event.time_unix_nano,
                            attributes: cap.attributes(event.attributes),
                        })
                        .collect(),
                    links: span
                        .links
                        .into_iter()
                        .take(limits.max_links)
                        .filter_map(|link| {
                            Some(Link {
                                trace_id: trace_id_of(&link.trace_id)?,
                                span_id: span_id_of(&link.span_id)?,
                                attributes: cap.attributes(link.attributes),
                            })
                        })
                        .collect(),
                    resource: resource.clone(),
                    scope: scope.clone(),
                });
            }
        }
    }
    converted.limited = cap.limited;
    converted
}

/// Applies [`SpanLimits`] and counts what it cut.
struct Capper<'a> {
    limits: &'a SpanLimits,
    limited: Limited,
}

impl Capper<'_> {
    fn attributes(&mut self, key_values: Vec<KeyValue>) -> Attributes {
        let dropped = key_values.len().saturating_sub(self.limits.max_attributes);
        self.limited.dropped_attributes = self.limited.dropped_attributes.saturating_add(dropped as u64);
        key_values
            .into_iter()
            .take(self.limits.max_attributes)
            .map(|kv| {
                let key = self.text(kv.key);
                let mut budget = self.limits.max_value_bytes;
                let value = self.value(kv.value, 0, &mut budget);
                (key, value)
            })
            .collect()
    }

    /// A name, key or message cut to `max_value_bytes` (at a character boundary).
    fn text(&mut self, mut text: String) -> String {
        if text.len() > self.limits.max_value_bytes {
            text.truncate(floor_char_boundary(&text, self.limits.max_value_bytes));
            self.limited.truncated_values = self.limited.truncated_values.saturating_add(1);
        }
        text
    }

    /// One value within `budget` bytes; one truncation is counted per
    /// attribute however deep it happened.
    fn value(&mut self, any: Option<AnyValue>, depth: usize, budget: &mut usize) -> Value {
        let (value, truncated) = value_within(any, depth, budget);
        if truncated {
            self.limited.truncated_values = self.limited.truncated_values.saturating_add(1);
        }
        value
    }
}

/// The largest index ≤ `at` that is a character boundary of `text`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at).rev().find(|&index| text.is_char_boundary(index)).unwrap_or(0)
}

/// Converts `any` spending at most `budget` bytes: strings and bytes are
/// truncated, arrays and maps end where the budget does (each element costs
/// [`ELEMENT_COST`] plus its key). Returns the value and whether anything was cut.
fn value_within(any: Option<AnyValue>, depth: usize, budget: &mut usize) -> (Value, bool) {
    if depth > MAX_VALUE_DEPTH {
        return (Value::Empty, false);
    }
    let mut truncated = false;
    let value = match any.and_then(|any| any.value) {
        None => Value::Empty,
        Some(any_value::Value::StringValue(mut text)) => {
            if text.len() > *budget {
                text.truncate(floor_char_boundary(&text, *budget));
                truncated = true;
            }
            *budget -= text.len();
            Value::Str(text)
        }
        Some(any_value::Value::BoolValue(flag)) => Value::Bool(flag),
        Some(any_value::Value::IntValue(number)) => Value::Int(number),
        Some(any_value::Value::DoubleValue(number)) => Value::Double(number),
        Some(any_value::Value::BytesValue(mut bytes)) => {
            if bytes.len() > *budget {
                bytes.truncate(*budget);
                truncated = true;
            }
            *budget -= bytes.len();
            Value::Bytes(bytes)
        }
        Some(any_value::Value::ArrayValue(array)) => {
            let mut items = Vec::new();
            for item in array.values {
                if *budget < ELEMENT_COST {
                    truncated = true;
                    break;
                }
                *budget -= ELEMENT_COST;
                let (item, item_truncated) = value_within(Some(item), depth + 1, budget);
                truncated |= item_truncated;
                items.push(item);
            }
            Value::Array(items)
        }
        Some(any_value::Value::KvlistValue(list)) => {
            let mut entries = Vec::new();
            for kv in list.values {
                if *budget < ELEMENT_COST.saturating_add(kv.key.len()) {
                    truncated = true;
                    break;
                }
                *budget -= ELEMENT_COST + kv.key.len();
                let (item, item_truncated) = value_within(kv.value, depth + 1, budget);
                truncated |= item_truncated;
                entries.push((kv.key, item));
            }
            Value::Map(entries)
        }
        // An index into a profiles string table; meaningless in a trace.
        Some(any_value::Value::StringValueStrindex(_)) => Value::Empty,
    };
    (value, truncated)
}

fn trace_id_of(bytes: &[u8]) -> Option<TraceId> {
    let id: TraceId = bytes.try_into().ok()?;
    (id != [0; 16]).then_some(id)
}

// All-zero ids are invalid (OTLP); for a parent, it is how some exporters spell "no parent".
fn span_id_of(bytes: &[u8]) -> Option<SpanId> {
    let id: SpanId = bytes.try_into().ok()?;
    (id != [0; 8]).then_some(id)
}

/// Attributes without caps.
pub fn attributes(key_values: Vec<KeyValue>) -> Attributes {
    Capper { limits: &SpanLimits::NONE, limited: Limited::default() }.attributes(key_values)
}

#[cfg(test)]
fn value(any: Option<AnyValue>, depth: usize) -> Value {
    value_within(any, depth, &mut { usize::MAX }).0
}

/// Reads OTLP/JSON: one `ExportTraceServiceRequest` (hex ids, camelCase, as
/// the OpenTelemetry SDK file exporters write it) or several in a row — JSON
/// lines, as the Collector's `file` exporter writes one request per line.
/// The requests' resource spans are concatenated.
pub fn from_json(bytes: &[u8]) -> Result<ExportTraceServiceRequest, serde_json::Error> {
    let mut merged = ExportTraceServiceRequest::default();
    for request in serde_json::Deserializer::from_slice(bytes).into_iter::<ExportTraceServiceRequest>() {
        merged.resource_spans.extend(request?.resource_spans);
    }
    Ok(merged)
}

/// Span model → OTLP, for trace snapshots: spans sharing a resource and a
/// scope (the same `Arc`s, as `convert` makes them) are grouped back together.
/// `convert(to_otlp(spans))` gives the spans back.
pub fn to_otlp(spans: &[Span]) -> ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
    use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span as OtlpSpan, Status, span::Event as OtlpEvent, span::Link as OtlpLink,
    };
    let mut request = ExportTraceServiceRequest::default();
    let mut resources: Vec<*const Resource> = Vec::new();
    let mut scopes: Vec<Vec<*const Scope>> = Vec::new();
    for span in spans {
        let resource_index = match resources.iter().position(|known| *known == Arc::as_ptr(&span.resource)) {
            Some(index) => index,
            None => {
                resources.push(Arc::as_ptr(&span.resource));
                scopes.push(Vec::new());
                request.resource_spans.push(ResourceSpans {
                    resource: Some(OtlpResource { attributes: key_values(&span.resource.attributes), ..Default::default() }),
                    ..Default::default()
                });
                resources.len() - 1
            }
        };
        let scope_list = &mut scopes[resource_index];
        let resource_spans = &mut request.resource_spans[resource_index];
        let scope_index = match scope_list.iter().position(|known| *known == Arc::as_ptr(&span.scope)) {
            Some(index) => index,
            None => {
                scope_list.push(Arc::as_ptr(&span.scope));
                resource_spans.scope_spans.push(ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: span.scope.name.clone(),
                        version: span.scope.version.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                scope_list.len() - 1
            }
        };
        resource_spans.scope_spans[scope_index].spans.push(OtlpSpan {
            trace_id: span.trace_id.to_vec(),
            span_id: span.span_id.to_vec(),
            parent_span_id: span.parent_span_id.map(|id| id.to_vec()).unwrap_or_default(),
            name: span.name.clone(),
            kind: span.kind as i32,
            start_time_unix_nano: span.start_unix_nano,
            end_time_unix_nano: span.end_unix_nano,
            attributes: key_values(&span.attributes),
            events: span
                .events
                .iter()
                .map(|event| OtlpEvent {
                    name: event.name.clone(),
                    time_unix_nano: event.time_unix_nano,
                    attributes: key_values(&event.attributes),
                    ..Default::default()
                })
                .collect(),
            links: span
                .links
                .iter()
                .map(|link| OtlpLink {
                    trace_id: link.trace_id.to_vec(),
                    span_id: link.span_id.to_vec(),
                    attributes: key_values(&link.attributes),
                    ..Default::default()
                })
                .collect(),
            status: Some(Status { code: span.status as i32, message: span.status_message.clone() }),
            ..Default::default()
        });
    }
    request
}

fn key_values(attributes: &Attributes) -> Vec<KeyValue> {
    attributes.iter().map(|(key, value)| KeyValue { key: key.clone(), value: Some(any_value_of(value)), ..Default::default() }).collect()
}

fn any_value_of(value: &Value) -> AnyValue {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    let value = match value {
        Value::Str(text) => Some(any_value::Value::StringValue(text.clone())),
        Value::Bool(flag) => Some(any_value::Value::BoolValue(*flag)),
        Value::Int(number) => Some(any_value::Value::IntValue(*number)),
        Value::Double(number) => Some(any_value::Value::DoubleValue(*number)),
        Value::Bytes(bytes) => Some(any_value::Value::BytesValue(bytes.clone())),
        Value::Array(items) => Some(any_value::Value::ArrayValue(ArrayValue { values: items.iter().map(any_value_of).collect() })),
        Value::Map(entries) => Some(any_value::Value::KvlistValue(KeyValueList { values: key_values(entries) })),
        Value::Empty => None,
    };
    AnyValue { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
      "scopeSpans":[{"scope":{"name":"manual","version":"1"},"spans":[
        {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"a","kind":2,
         "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000500000000",
         "attributes":[{"key":"big","value":{"intValue":"9007199254740993"}},{"key":"f","value":{"boolValue":false}}],
         "status":{"code":2,"message":"boom"},"unknownField":1},
        {"traceId":"00000000000000000000000000000000","spanId":"b7ad6b7169203332","name":"bad"},
        {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"0000000000000000","name":"bad2"}
      ]}]}]}"#;

    #[test]
    fn converts_and_rejects_span_by_span() {
        let converted = convert(from_json(SAMPLE.as_bytes()).expect("valid OTLP/JSON"));
        assert_eq!(converted.spans.len(), 1);
        assert_eq!(converted.rejected_total(), 2);
        let span = &converted.spans[0];
        assert_eq!(span.name, "a");
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(span.status, StatusCode::Error);
        assert_eq!(span.resource.service.as_deref(), Some("checkout"));
        assert_eq!(span.attributes[0], ("big".to_string(), Value::Int(9007199254740993)));
        assert_eq!(span.attributes[1], ("f".to_string(), Value::Bool(false)));
        assert_eq!(span.end_unix_nano - span.start_unix_nano, 500_000_000);
    }

    #[test]
    fn otlp_round_trip_keeps_spans() {
        let spans = convert(from_json(SAMPLE.as_bytes()).unwrap()).spans;
        let again = convert(to_otlp(&spans)).spans;
        assert_eq!(again, spans);
        assert_eq!(to_otlp(&spans).resource_spans.len(), 1);
    }

    #[test]
    fn json_lines_are_concatenated() {
        let line = SAMPLE.replace('\n', " ");
        let two = format!("{line}\n{line}\n");
        let request = from_json(two.as_bytes()).expect("JSON lines");
        assert_eq!(request.resource_spans.len(), 2);
        let error = from_json(format!("{line}\n{{\"resourceSpans\": 3}}\n").as_bytes()).expect_err("second line is bad");
        assert_eq!(error.line(), 2);
    }

    #[test]
    fn deep_values_are_cut() {
        let mut any = AnyValue { value: Some(any_value::Value::StringValue("leaf".into())) };
        for _ in 0..100 {
            any = AnyValue {
                value: Some(any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue { values: vec![any] })),
            };
        }
        let mut depth = 0;
        let mut current = value(Some(any), 0);
        while let Value::Array(mut items) = current {
            depth += 1;
            current = items.pop().unwrap_or(Value::Empty);
        }
        assert_eq!(current, Value::Empty);
        assert_eq!(depth, MAX_VALUE_DEPTH + 1);
    }

    fn string_value(text: &str) -> Option<AnyValue> {
        Some(AnyValue { value: Some(any_value::Value::StringValue(text.into())) })
    }

    #[test]
    fn caps_attributes_and_truncates_values_at_character_boundaries() {
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan, span::Event as OtlpEvent};
        let many: Vec<KeyValue> =
            (0..200).map(|index| KeyValue { key: format!("k{index}"), value: string_value("v"), ..Default::default() }).collect();
        let long = KeyValue { key: "long".into(), value: string_value(&"é".repeat(3000)), ..Default::default() };
        let span = OtlpSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "n".repeat(5000),
            attributes: std::iter::once(long.clone()).chain(many.clone()).collect(),
            events: (0..300).map(|_| OtlpEvent { name: "e".into(), attributes: many.clone(), ..Default::default() }).collect(),
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
                ..Default::default()
            }],
        };
        let converted = convert(request);
        let span = &converted.spans[0];
        assert_eq!(span.attributes.len(), 128);
        assert_eq!(span.name.len(), 2048);
        let Value::Str(text) = &span.attributes[0].1 else { panic!("a string") };
        assert_eq!(text.len(), 2048, "1024 two-byte characters");
        assert!(text.chars().all(|c| c == 'é'));
        assert_eq!(span.events.len(), MAX_EVENTS_PER_SPAN);
        assert!(span.events.iter().all(|event| event.attributes.len() == 128));
        assert_eq!(
            converted.limited,
            Limited { truncated_values: 2, dropped_attributes: 73 + 128 * 72, dropped_events: 172, dropped_links: 0 }
        );
        let odd = SpanLimits { max_value_bytes: 17, ..SpanLimits::default() };
        let mut capper = Capper { limits: &odd, limited: Limited::default() };
        assert_eq!(capper.text("é".repeat(10)), "é".repeat(8), "cut before the character that crosses byte 17");
    }

    #[test]
    fn arrays_and_maps_are_held_to_the_value_budget() {
        use opentelemetry_proto::tonic::common::v1::ArrayValue;
        let empties =
            AnyValue { value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![AnyValue { value: None }; 1_000_000] })) };
        let limits = SpanLimits::default();
        let mut capper = Capper { limits: &limits, limited: Limited::default() };
        let mut budget = limits.max_value_bytes;
        let Value::Array(items) = capper.value(Some(empties), 0, &mut budget) else { panic!("an array") };
        assert_eq!(items.len(), 2048 / ELEMENT_COST);
        assert_eq!(capper.limited.truncated_values, 1);
    }

    /// What a value costs against `max_value_bytes` (see `value_within`).
    fn cost(value: &Value) -> usize {
        match value {
            Value::Str(text) => text.len(),
            Value::Bytes(bytes) => bytes.len(),
            Value::Array(items) => items.iter().map(|item| ELEMENT_COST + cost(item)).sum(),
            Value::Map(entries) => entries.iter().map(|(key, item)| ELEMENT_COST + key.len() + cost(item)).sum(),
            _ => 0,
        }
    }

    mod properties {
        use super::*;
        use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan, span::Event as OtlpEvent};
        use proptest::prelude::*;
        use prost::Message;

        fn any_value() -> impl Strategy<Value = AnyValue> {
            let leaf = prop_oneof![
                ".{0,300}".prop_map(any_value::Value::StringValue),
                any::<bool>().prop_map(any_value::Value::BoolValue),
                any::<i64>().prop_map(any_value::Value::IntValue),
                // Finite: NaN is unequal to itself, and JSON has no spelling for it.
                (-1e12f64..1e12).prop_map(any_value::Value::DoubleValue),
                proptest::collection::vec(any::<u8>(), 0..300).prop_map(any_value::Value::BytesValue),
            ]
            .prop_map(|value| AnyValue { value: Some(value) });
            leaf.prop_recursive(4, 64, 8, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..8)
                        .prop_map(|values| AnyValue { value: Some(any_value::Value::ArrayValue(ArrayValue { values })) }),
                    proptest::collection::vec(("[a-z.]{0,40}", inner), 0..8).prop_map(|entries| AnyValue {
                        value: Some(any_value::Value::KvlistValue(KeyValueList {
                            values: entries
                                .into_iter()
                                .map(|(key, value)| KeyValue { key, value: Some(value), ..Default::default() })
                                .collect(),
                        })),
                    }),
                ]
            })
        }

        fn key_values(max: usize) -> impl Strategy<Value = Vec<KeyValue>> {
            proptest::collection::vec(("[a-z.]{0,60}", any_value()), 0..max).prop_map(|pairs| {
                pairs.into_iter().map(|(key, value)| KeyValue { key, value: Some(value), ..Default::default() }).collect()
            })
        }

        /// Ids are mostly valid, sometimes of any length (and so invalid).
        fn id(length: usize) -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                4 => proptest::collection::vec(any::<u8>(), length..=length),
                1 => proptest::collection::vec(any::<u8>(), 0..20),
            ]
        }

        fn span() -> impl Strategy<Value = OtlpSpan> {
            (id(16), id(8), ".{0,80}", key_values(40), proptest::collection::vec((".{0,20}", key_values(4)), 0..4), any::<u64>(), 0..6i32)
                .prop_map(|(trace_id, span_id, name, attributes, events, start, kind)| OtlpSpan {
                    trace_id,
                    span_id,
                    name,
                    kind,
                    attributes,
                    start_time_unix_nano: start,
                    end_time_unix_nano: start.saturating_add(1),
                    events: events.into_iter().map(|(name, attributes)| OtlpEvent { name, attributes, ..Default::default() }).collect(),
                    ..Default::default()
                })
        }

        fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
            proptest::collection::vec((key_values(6), proptest::collection::vec(proptest::collection::vec(span(), 0..5), 0..3)), 0..3)
                .prop_map(|resources| ExportTraceServiceRequest {
                    resource_spans: resources
                        .into_iter()
                        .map(|(attributes, scopes)| ResourceSpans {
                            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource { attributes, ..Default::default() }),
                            scope_spans: scopes.into_iter().map(|spans| ScopeSpans { spans, ..Default::default() }).collect(),
                            ..Default::default()
                        })
                        .collect(),
                })
        }

        fn limits() -> impl Strategy<Value = SpanLimits> {
            (1usize..50, 16usize..400).prop_map(|(max_attributes, max_value_bytes)| SpanLimits {
                max_attributes,
                max_value_bytes,
                max_events: 3,
                ..SpanLimits::default()
            })
        }

        fn within(attributes: &Attributes, limits: &SpanLimits) -> bool {
            attributes.len() <= limits.max_attributes
                && attributes.iter().all(|(key, value)| key.len() <= limits.max_value_bytes && cost(value) <= limits.max_value_bytes)
        }

        // Case count: proptest's default (256), or PROPTEST_CASES for a longer run
        // (docs/operations.md).
        proptest! {
            #[test]
            fn proptest_arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                if let Ok(request) = ExportTraceServiceRequest::decode(&bytes[..]) {
                    let _ = convert(request);
                }
                if let Ok(request) = from_json(&bytes) {
                    let _ = convert(request);
                }
            }

            #[test]
            fn proptest_arbitrary_json_text_never_panics(text in r#"[\[\]{}:,"a-zA-Z0-9 .\-]{0,400}"#) {
                let _ = from_json(text.as_bytes()).map(convert);
            }

            #[test]
            fn proptest_valid_requests_convert_within_the_caps(request in request(), limits in limits()) {
                let sent: Vec<&OtlpSpan> =
                    request.resource_spans.iter().flat_map(|resource| &resource.scope_spans).flat_map(|scope| &scope.spans).collect();
                let valid: Vec<(Vec<u8>, Vec<u8>)> = sent
                    .iter()
                    .filter(|span| {
                        trace_id_of(&span.trace_id).is_some()
                            && span_id_of(&span.span_id).is_some()
                            && matches!(span.parent_span_id.len(), 0 | 8)
                    })
                    .map(|span| (span.trace_id.clone(), span.span_id.clone()))
                    .collect();
                let total = sent.len() as u64;
                // Through the wire and back, as a transport sees it.
                let decoded = ExportTraceServiceRequest::decode(&request.encode_to_vec()[..]).expect("own encoding decodes");
                let converted = convert_with(decoded, &limits);
                prop_assert_eq!(converted.spans.len() as u64 + converted.rejected_total(), total);
                let ids: Vec<(Vec<u8>, Vec<u8>)> =
                    converted.spans.iter().map(|span| (span.trace_id.to_vec(), span.span_id.to_vec())).collect();
                prop_assert_eq!(ids, valid, "ids round-trip, in order");
                for span in &converted.spans {
                    prop_assert!(span.name.len() <= limits.max_value_bytes);
                    prop_assert!(within(&span.attributes, &limits));
                    prop_assert!(within(&span.resource.attributes, &limits));
                    prop_assert!(span.events.len() <= limits.max_events);
                    for event in &span.events {
                        prop_assert!(event.name.len() <= limits.max_value_bytes && within(&event.attributes, &limits));
                    }
                }
                // A converted trace survives FLUO's own storage format unchanged.
                let again = convert_with(to_otlp(&converted.spans), &SpanLimits::NONE);
                prop_assert_eq!(again.spans, converted.spans);
            }

            #[test]
            fn proptest_json_round_trip_keeps_ids(request in request()) {
                let json = serde_json::to_vec(&request).expect("serializes");
                let back = from_json(&json).expect("own OTLP/JSON parses");
                let converted = convert_with(request, &SpanLimits::NONE);
                let from_json = convert_with(back, &SpanLimits::NONE);
                let ids = |spans: &[Span]| spans.iter().map(|span| (span.trace_id, span.span_id)).collect::<Vec<_>>();
                prop_assert_eq!(ids(&from_json.spans), ids(&converted.spans));
                prop_assert_eq!(from_json.rejected_total(), converted.rejected_total());
            }
        }
    }
}
