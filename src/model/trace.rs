//! The span and trace model every other module shares: what an OTLP span
//! becomes once it is validated, and a trace as the rules see it.
//!
//! This module owns no I/O and no policy: ingest decides what is valid
//! (`ingest::convert`), the assembler (issue 3) decides when a trace is complete.

use std::sync::Arc;

/// A typed attribute value, as OTLP's `AnyValue`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(String, Value)>),
    Empty,
}

impl Value {
    /// Plain JSON for API responses (bytes as base64; integers stay integers).
    pub fn to_json(&self) -> serde_json::Value {
        use base64::Engine as _;
        match self {
            Value::Str(text) => text.clone().into(),
            Value::Bool(flag) => (*flag).into(),
            Value::Int(number) => (*number).into(),
            Value::Double(number) => serde_json::Number::from_f64(*number).map(Into::into).unwrap_or(serde_json::Value::Null),
            Value::Bytes(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes).into(),
            Value::Array(items) => items.iter().map(Value::to_json).collect(),
            Value::Map(entries) => attributes_json(entries),
            Value::Empty => serde_json::Value::Null,
        }
    }
}

/// Attributes as a JSON object (later duplicates win, as in rules).
pub fn attributes_json(attributes: &Attributes) -> serde_json::Value {
    serde_json::Value::Object(attributes.iter().map(|(key, value)| (key.clone(), value.to_json())).collect())
}

/// Key/value attributes in their received order (later duplicates win when
/// they are turned into a JS object).
pub type Attributes = Vec<(String, Value)>;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resource {
    pub attributes: Attributes,
    /// The `service.name` resource attribute, if it is a string.
    pub service: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scope {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum SpanKind {
    // The OTLP enum values: `to_otlp` relies on them.
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl SpanKind {
    pub fn from_otlp(kind: i32) -> SpanKind {
        match kind {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "UNSPECIFIED",
            SpanKind::Internal => "INTERNAL",
            SpanKind::Server => "SERVER",
            SpanKind::Client => "CLIENT",
            SpanKind::Producer => "PRODUCER",
            SpanKind::Consumer => "CONSUMER",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum StatusCode {
    Unset = 0,
    Ok = 1,
    Error = 2,
}

impl StatusCode {
    pub fn from_otlp(code: i32) -> StatusCode {
        match code {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "UNSET",
            StatusCode::Ok => "OK",
            StatusCode::Error => "ERROR",
        }
    }
}

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub name: String,
    pub time_unix_nano: u64,
    pub attributes: Attributes,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub attributes: Attributes,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub status: StatusCode,
    pub status_message: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: Attributes,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
    /// Shared by the spans of one `ResourceSpans`.
    pub resource: Arc<Resource>,
    /// Shared by the spans of one `ScopeSpans`.
    pub scope: Arc<Scope>,
}

/// The spans of one trace, ordered by start time (ties by span id), as rules see them.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub trace_id: TraceId,
    pub spans: Vec<Span>,
}

impl Trace {
    pub fn new(trace_id: TraceId, mut spans: Vec<Span>) -> Trace {
        spans.sort_by(|a, b| a.start_unix_nano.cmp(&b.start_unix_nano).then(a.span_id.cmp(&b.span_id)));
        Trace { trace_id, spans }
    }

    /// Groups spans by trace id, in order of first appearance.
    pub fn group(spans: Vec<Span>) -> Vec<Trace> {
        let mut order: Vec<TraceId> = Vec::new();
        let mut groups: std::collections::HashMap<TraceId, Vec<Span>> = std::collections::HashMap::new();
        for span in spans {
            let entry = groups.entry(span.trace_id).or_default();
            if entry.is_empty() {
                order.push(span.trace_id);
            }
            entry.push(span);
        }
        order.into_iter().map(|trace_id| Trace::new(trace_id, groups.remove(&trace_id).unwrap_or_default())).collect()
    }

    pub fn find(&self, span_id: &SpanId) -> Option<&Span> {
        self.spans.iter().find(|span| &span.span_id == span_id)
    }
}
