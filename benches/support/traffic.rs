//! The traffic the ingest and end-to-end benchmarks send: OTLP requests of
//! 50 traces × 20 spans with 6 attributes per span, and the rule sets they run.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

pub const TRACES_PER_REQUEST: usize = 50;
pub const SPANS_PER_TRACE: usize = 20;
fn text(value: &str) -> Option<AnyValue> {
    Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue { key: key.into(), value, ..Default::default() }
}

/// One request; every tenth trace charges a card without a fraud check.
pub fn request(seed: u64, traces: usize) -> ExportTraceServiceRequest {
    let names = ["GET /api/checkout", "auth.verify", "db.query", "cache.get", "payment.fraud_check", "payment.charge_card", "render"];
    let mut spans = Vec::with_capacity(traces * SPANS_PER_TRACE);
    for trace in 0..traces as u64 {
        let trace_number = seed * traces as u64 + trace + 1;
        let trace_id = [trace_number.to_be_bytes(), 0xfeed_u64.to_be_bytes()].concat();
        for index in 0..SPANS_PER_TRACE as u64 {
            let mut name = names[index as usize % names.len()];
            if trace_number % 10 == 0 && name == "payment.fraud_check" {
                name = "inventory.reserve";
            }
            let start = 1_700_000_000_000_000_000 + index * 1_000_000;
            spans.push(Span {
                trace_id: trace_id.clone(),
                span_id: (trace_number << 8 | (index + 1)).to_be_bytes().to_vec(),
                parent_span_id: if index == 0 { vec![] } else { (trace_number << 8 | 1).to_be_bytes().to_vec() },
                name: name.into(),
                kind: if index == 0 { 2 } else { 1 },
                start_time_unix_nano: start,
                end_time_unix_nano: start + 750_000,
                attributes: vec![
                    kv("http.method", text("POST")),
                    kv("http.route", text("/api/checkout")),
                    kv("http.status_code", Some(AnyValue { value: Some(any_value::Value::IntValue(200)) })),
                    kv("net.peer.name", text("payments.internal")),
                    kv("user.id", text("u-12345")),
                    kv("retry", Some(AnyValue { value: Some(any_value::Value::BoolValue(false)) })),
                ],
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", text("checkout")), kv("host.name", text("node-7"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

/// Ten rules as the SDK reference writes them (every one in a form the
/// prefilter judges), for [`mix`].
pub const REALISTIC_RULES: [&str; 10] = [
    "export default trace.has('payment.charge_card').and(trace.missing('payment.fraud_check'));",
    "export default rule({ name: 'admin-needs-auth', when: trace.has('GET /api/admin'), expect: trace.has('auth.verify') });",
    "export default rule({ name: '5xx', when: trace.has(s => s.kind === 'SERVER' && s.attributes['http.status_code'] >= 500), group: ['http.route'] });",
    "export default trace.where(s => s.service === 'payments').has(s => s.status === 'ERROR');",
    "export default trace.count(s => s.name === 'db.query').gt(25);",
    "export default rule({ name: 'pii', when: trace.has(s => s.attributes['pii.accessed'] === true), expect: trace.has('audit.log') });",
    "export default rule({ name: 'no-bypass', when: trace.has('payment.charge_card'), never: trace.has('payment.bypass') });",
    "export default trace.has('login.failed').and(trace.has('account.locked')).within('5s');",
    "export default rule({ name: 'lock-released', when: trace.has('lock.acquire'), expect: trace.has('lock.release') });",
    "export default trace.has(s => s.name === 'cache.get' && s.duration > 500);",
];

/// Traffic where most traces are irrelevant to most rules: 9 traces in 10 are
/// catalogue requests (HTTP server span, auth, queries, cache, render), 1 in
/// 10 a checkout that charges a card (with its fraud check, so no violation).
pub fn mixed_request(seed: u64, traces: usize) -> ExportTraceServiceRequest {
    let browse = ["GET /api/catalog", "auth.verify", "db.query", "cache.get", "render"];
    let checkout = ["POST /api/checkout", "auth.verify", "db.query", "payment.fraud_check", "payment.charge_card"];
    let mut request = request(seed, traces);
    let spans = &mut request.resource_spans[0].scope_spans[0].spans;
    for span in spans.iter_mut() {
        let trace_number = u64::from_be_bytes(span.trace_id[..8].try_into().unwrap());
        let index = (u64::from_be_bytes(span.span_id[..].try_into().unwrap()) & 0xff) as usize - 1;
        let names = if trace_number % 10 == 3 { &checkout } else { &browse };
        span.name = names[index % names.len()].into();
    }
    request
}
