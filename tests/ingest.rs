//! Every OTLP ingest error path and API refusal, with the code the client
//! sees, against a real `fluo serve` on loopback. The requests are built with
//! the OpenTelemetry project's protobuf types (opentelemetry-proto) and sent
//! with tonic's client or raw HTTP/1.1.

mod common;

use common::{FRAUD_RULE, Server, http, request, span};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use std::io::Write;
use std::time::Duration;
use tonic_types::StatusExt;

async fn grpc_export(
    server: &Server,
    key: Option<&str>,
    message: ExportTraceServiceRequest,
) -> Result<ExportTraceServiceResponse, tonic::Status> {
    let mut client = TraceServiceClient::connect(format!("http://{}", server.grpc)).await.unwrap().max_encoding_message_size(64 << 20);
    let mut request = tonic::Request::new(message);
    if let Some(key) = key {
        request.metadata_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    client.export(request).await.map(|response| response.into_inner())
}

fn post_traces(
    server: &Server,
    key: Option<&str>,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut headers = vec![("content-type", content_type)];
    headers.extend_from_slice(extra);
    http(server.http, "POST", "/v1/traces", key, &headers, Some(body))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_error_paths() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms", "--tenant-rate", "1000", "--tenant-burst", "1000"]);
    let (tenant_id, admin) = server.tenant("acme");
    let ingest = server.key(&admin, &["ingest"]);
    let read_only = server.key(&admin, &["read"]);

    let status = grpc_export(&server, None, request(vec![span(1, 1, "a")])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let status = grpc_export(&server, Some("fluo_wrong"), request(vec![span(1, 1, "a")])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let status = grpc_export(&server, Some(&read_only), request(vec![span(1, 1, "a")])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "a read key cannot ingest");

    // Invalid ids are refused span by span; the valid span is kept.
    let mut bad_trace = span(2, 2, "bad");
    bad_trace.trace_id = vec![0; 16];
    let mut bad_span = span(2, 3, "bad");
    bad_span.span_id = vec![1, 2, 3];
    let response = grpc_export(&server, Some(&ingest), request(vec![span(2, 1, "good"), bad_trace, bad_span])).await.unwrap();
    let partial = response.partial_success.expect("partial success is reported");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("invalid trace id") && partial.error_message.contains("invalid span id"),
        "{}",
        partial.error_message
    );
    let response = grpc_export(&server, Some(&ingest), request(vec![span(3, 1, "fine")])).await.unwrap();
    assert!(response.partial_success.is_none(), "a fully accepted request has no partial success");
    assert_eq!(server.metric("fluo_spans_accepted_total"), 2);
    let tenant_label = format!("fluo_tenant_spans_rejected_total{{tenant=\"{}\"}}", tenant_id);
    assert_eq!(server.metric(&tenant_label), 2, "per-tenant counters");
    assert_eq!(http(server.api, "GET", "/metrics", None, &[], None).0, 401, "metrics carry per-tenant figures: operator only");
    assert_eq!(http(server.api, "GET", "/metrics", Some(&admin), &[], None).0, 403);
    assert_eq!(server.metric("fluo_spans_rejected_total{reason=\"invalid_trace_id\"}"), 1);

    // A message over 4 MiB.
    let mut big = span(4, 1, "big");
    big.attributes = vec![KeyValue {
        key: "blob".into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue("x".repeat(5 << 20))) }),
        ..Default::default()
    }];
    let status = grpc_export(&server, Some(&ingest), request(vec![big])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    // Over the tenant's rate (1000 spans/s, burst 1000): UNAVAILABLE with RetryInfo.
    let many: Vec<Span> = (0..1500u32).map(|index| span(5, 1, &format!("s{index}"))).collect();
    let status = grpc_export(&server, Some(&ingest), request(many)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let retry = status.get_details_retry_info().expect("RetryInfo detail");
    assert!(retry.retry_delay.is_some_and(|delay| delay > Duration::ZERO && delay <= Duration::from_secs(2)), "{retry:?}");
    assert_eq!(server.metric("fluo_requests_refused_total{reason=\"rate_limited\"}"), 1);

    // Bytes that are not an ExportTraceServiceRequest: INVALID_ARGUMENT.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc)).unwrap().connect().await.unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let mut garbage = tonic::Request::new(b"\xff\xff\xff\xff garbage".to_vec());
    garbage.metadata_mut().insert("authorization", format!("Bearer {ingest}").parse().unwrap());
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/opentelemetry.proto.collector.trace.v1.TraceService/Export");
    let status = client.unary::<_, ExportTraceServiceResponse, _>(garbage, path, RawCodec).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
}

/// Sends raw bytes as the request message; decodes the response with prost.
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buffer: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        buffer.put_slice(&item);
        Ok(())
    }
}

struct ResponseDecoder;

impl tonic::codec::Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, buffer: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        ExportTraceServiceResponse::decode(buffer).map(Some).map_err(|error| tonic::Status::internal(error.to_string()))
    }
}

#[test]
fn http_error_paths() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms", "--tenant-rate", "1000", "--tenant-burst", "1000"]);
    let (_, admin) = server.tenant("acme");
    let ingest = server.key(&admin, &["ingest"]);
    let body = request(vec![span(1, 1, "a")]).encode_to_vec();

    let (status, headers, _) = post_traces(&server, None, "application/x-protobuf", &[], &body);
    assert_eq!(status, 401);
    assert_eq!(header(&headers, "www-authenticate"), Some("Bearer"));
    let (status, _, error) = post_traces(&server, Some("fluo_wrong"), "application/json", &[], b"{}");
    assert_eq!(status, 401);
    let error: serde_json::Value = serde_json::from_slice(&error).unwrap();
    assert_eq!(error["code"], 16, "google.rpc.Status in JSON: {error}");

    let (status, _, error) = post_traces(&server, Some(&ingest), "application/x-protobuf", &[], b"\xff\xff\xff garbage");
    assert_eq!(status, 400);
    let error = tonic_types::Status::decode(&error[..]).expect("google.rpc.Status in protobuf");
    assert!(error.message.starts_with("malformed OTLP payload"), "{}", error.message);
    let (status, _, error) = post_traces(&server, Some(&ingest), "application/json", &[], b"{\"resourceSpans\": 7}");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&error));
    let (status, _, _) = post_traces(&server, Some(&ingest), "text/plain", &[], b"hello");
    assert_eq!(status, 415);
    let (status, _, _) = post_traces(&server, Some(&ingest), "application/x-protobuf", &[("content-encoding", "br")], &body);
    assert_eq!(status, 415);

    // OTLP/JSON per the spec's mapping: hex ids, camelCase, integer enums,
    // unknown fields ignored; invalid ids reported through partialSuccess.
    let json_body = json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
        "scopeSpans": [{"scope": {"name": "manual"}, "spans": [
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "ok", "kind": 2,
             "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000", "someFutureField": {"x": 1}},
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "", "name": "no id"}]}]}]});
    let (status, headers, response) = post_traces(&server, Some(&ingest), "application/json", &[], json_body.to_string().as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&response));
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let response: serde_json::Value = serde_json::from_slice(&response).unwrap();
    assert_eq!(response["partialSuccess"]["rejectedSpans"].to_string().trim_matches('"'), "1", "{response}");

    // Gzip bodies are accepted; a gzip bomb is stopped at 20 MiB.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&body).unwrap();
    let (status, _, response) =
        post_traces(&server, Some(&ingest), "application/x-protobuf", &[("content-encoding", "gzip")], &encoder.finish().unwrap());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&response));
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        bomb.write_all(&zeros).unwrap();
    }
    let bomb = bomb.finish().unwrap();
    assert!(bomb.len() < 1 << 20, "64 MiB of zeros compress to {} bytes", bomb.len());
    let (status, _, _) = post_traces(&server, Some(&ingest), "application/x-protobuf", &[("content-encoding", "gzip")], &bomb);
    assert_eq!(status, 413);
    let (status, _, _) = post_traces(&server, Some(&ingest), "application/x-protobuf", &[], &vec![0u8; (20 << 20) + 1]);
    assert_eq!(status, 413);

    // Over the rate: 429 with Retry-After.
    let many = request((0..1500u32).map(|index| span(6, 1, &format!("s{index}"))).collect()).encode_to_vec();
    let (status, headers, _) = post_traces(&server, Some(&ingest), "application/x-protobuf", &[], &many);
    assert_eq!(status, 429);
    let retry_after: u64 = header(&headers, "retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
}

#[test]
fn api_refusals_and_compile_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, admin) = server.tenant("acme");
    let ingest = server.key(&admin, &["ingest"]);
    let reader = server.key(&admin, &["read"]);

    let (status, body) = server.api("POST", "/api/v1/tenants", Some(&admin), Some(&json!({"name": "evil"})));
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, _) = server.api("POST", "/api/v1/tenants", None, Some(&json!({"name": "x"})));
    assert_eq!(status, 401);
    let (status, body) = server.api("GET", "/api/v1/signals", Some(&ingest), None);
    assert_eq!(status, 403, "an ingest-only key cannot read signals: {body}");
    let (status, _) = server.api("POST", "/api/v1/rules", Some(&reader), Some(&json!({"name": "r", "source": FRAUD_RULE})));
    assert_eq!(status, 403, "a read key cannot write rules");
    let (status, _) = server.api("POST", "/api/v1/keys", Some(&reader), Some(&json!({"name": "k", "scopes": ["admin"]})));
    assert_eq!(status, 403, "only admin keys make keys");
    let (status, body) = server.api("POST", "/api/v1/keys", Some(&admin), Some(&json!({"name": "k", "scopes": ["root"]})));
    assert_eq!(status, 400, "{body}");

    let (status, body) = server.api(
        "POST",
        "/api/v1/rules",
        Some(&admin),
        Some(&json!({"name": "broken", "source": "export default rule({\n  when: trace.has(s => s.name ===),\n});"})),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "compile_error");
    assert_eq!(body["error"]["line"], 2, "{body}");
    assert!(body["error"]["column"].as_u64().is_some(), "{body}");
    let (status, body) = server.api("POST", "/api/v1/rules", Some(&admin), Some(&json!({"name": "loop", "source": "while (true) {}"})));
    assert_eq!(status, 422, "a rule whose top level never ends is refused: {body}");

    let (status, body) = server.api("GET", "/api/v1/signals?status=bogus", Some(&reader), None);
    assert_eq!(status, 400, "{body}");
    let (status, _) = server.api("GET", "/api/v1/signals?trace_id=xyz", Some(&reader), None);
    assert_eq!(status, 400);
    let (status, _) = server.api("GET", "/api/v1/signals/s_00000000000000000000000000000000", Some(&reader), None);
    assert_eq!(status, 404);
    let (status, body) = server.api("POST", "/api/v1/rules", Some(&admin), Some(&json!({"name": "big", "source": "x".repeat(2 << 20)})));
    assert_eq!(status, 413, "{body}");
    let (status, body) = server.api("POST", "/api/v1/tenants", Some(common::OPERATOR_KEY), Some(&json!({"nme": "typo"})));
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_json")), "{body}");
}

/// SIGTERM closes and evaluates buffered traces before exiting.
#[test]
fn sigterm_evaluates_buffered_traces() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "60s", "--trace-max-age", "120s"]);
    let (_, admin) = server.tenant("acme");
    server.rule(&admin, "fraud", FRAUD_RULE);
    let body = request(vec![span(7, 1, "payment.charge_card")]).encode_to_vec();
    let (status, _, _) = post_traces(&server, Some(&admin), "application/x-protobuf", &[], &body);
    assert_eq!(status, 200);
    assert!(server.signals(&admin, "").is_empty(), "the trace is still live (idle 60 s)");
    assert!(server.terminate().success());
    let server = Server::start(dir.path(), &[]);
    let signals = server.signals(&admin, "");
    assert_eq!(signals.len(), 1, "{signals:?}");
    assert_eq!(signals[0]["trace_id"], "07070707070707070707070707070707");
}

/// One tenant flooding FLUO with traces for slow rules does not delay another
/// tenant's signal beyond the stated bound: with one evaluation worker, tenant
/// B's trace waits for at most one of A's trace evaluations (round robin), here
/// ≤ 3 rules × ~30 ms of fuel, while A's backlog is ~300 such evaluations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_tenant_with_slow_rules_does_not_delay_another() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms", "--eval-workers", "1"]);
    let (_, admin_a) = server.tenant("flood");
    let (_, admin_b) = server.tenant("quiet");
    let burn = "export default function (trace) { let x = 0; for (let i = 0; i < 1e9; i++) { x += i; } return []; }";
    for name in ["burn1", "burn2", "burn3"] {
        server.rule(&admin_a, name, burn);
    }
    server.rule(&admin_b, "fraud", FRAUD_RULE);
    let flood: Vec<Span> = (0..300u32)
        .map(|index| {
            let mut span = span(0, 1, "work");
            span.trace_id = [&index.to_be_bytes()[..], &[9u8; 12]].concat();
            span
        })
        .collect();
    grpc_export(&server, Some(&admin_a), request(flood)).await.unwrap();
    // Let A's traces close and queue up.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let started = std::time::Instant::now();
    grpc_export(&server, Some(&admin_b), request(vec![span(0x42, 1, "payment.charge_card")])).await.unwrap();
    let signals = tokio::task::spawn_blocking({
        let api = server.api;
        let key = admin_b.clone();
        move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let (_, body) = common::api_get(api, "/api/v1/signals", &key);
                let items = body["items"].as_array().cloned().unwrap_or_default();
                if !items.is_empty() || std::time::Instant::now() > deadline {
                    return items;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    })
    .await
    .unwrap();
    let latency = started.elapsed();
    assert_eq!(signals.len(), 1);
    let a_evaluations = server.metric("fluo_rule_evaluations_total{outcome=\"out_of_fuel\"}");
    eprintln!("tenant B's signal after {latency:?}; tenant A's rule calls so far: {a_evaluations} of 900");
    assert!(a_evaluations < 600, "A's backlog was still being worked on ({a_evaluations} of 900 calls)");
    // Bound: idle (200 ms) + one A evaluation (≤ 3 × ~30–100 ms) + B's own, with room for a noisy machine.
    assert!(latency < Duration::from_millis(1500), "tenant B waited {latency:?}");
}

/// Per-trace span cap (dropped, counted, reported) and the live-trace cap
/// (the request is refused whole, retryably).
#[test]
fn trace_caps() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--trace-idle", "60s", "--trace-max-age", "120s", "--max-spans-per-trace", "3", "--max-live-traces", "2"],
    );
    let (_, admin) = server.tenant("acme");
    let five = request((1..=5).map(|id| span(1, id, "s")).collect()).encode_to_vec();
    let (status, _, body) = post_traces(&server, Some(&admin), "application/x-protobuf", &[], &five);
    assert_eq!(status, 200);
    let response = ExportTraceServiceResponse::decode(&body[..]).unwrap();
    let partial = response.partial_success.expect("dropped spans are reported");
    assert_eq!(partial.rejected_spans, 2);
    assert!(partial.error_message.contains("span limit"), "{}", partial.error_message);
    assert_eq!(server.metric("fluo_spans_rejected_total{reason=\"trace_span_limit\"}"), 2);
    assert_eq!(server.metric("fluo_buffered_spans"), 3);

    let second = request(vec![span(2, 1, "s")]).encode_to_vec();
    let (status, _, _) = post_traces(&server, Some(&admin), "application/x-protobuf", &[], &second);
    assert_eq!(status, 200);
    let third = request(vec![span(3, 1, "s")]).encode_to_vec();
    let (status, headers, _) = post_traces(&server, Some(&admin), "application/x-protobuf", &[], &third);
    assert_eq!(status, 503, "two live traces is the cap");
    assert!(header(&headers, "retry-after").is_some());
    assert_eq!(server.metric("fluo_requests_refused_total{reason=\"overloaded\"}"), 1);
    assert_eq!(server.metric("fluo_buffered_spans"), 4, "nothing of the refused request was kept");
}

/// An SDK pointed at FLUO with OTEL_EXPORTER_OTLP_ENDPOINT also sends metrics
/// and logs: both transports say that only traces are served, and what to set.
#[tokio::test]
async fn metrics_and_logs_are_answered_traces_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for signal in ["metrics", "logs"] {
        let (status, _, body) =
            http(server.http, "POST", &format!("/v1/{signal}"), None, &[("content-type", "application/x-protobuf")], Some(b""));
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let message = body["message"].as_str().unwrap_or_default();
        assert_eq!(status, 404, "{body}");
        assert!(message.contains("traces only") && message.contains("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "{body}");
    }
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc)).unwrap().connect().await.unwrap();
    for service in ["metrics.v1.MetricsService", "logs.v1.LogsService"] {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let path = format!("/opentelemetry.proto.collector.{service}/Export").parse().unwrap();
        let codec = tonic_prost::ProstCodec::<ExportTraceServiceRequest, ExportTraceServiceResponse>::default();
        let status = grpc.unary(tonic::Request::new(ExportTraceServiceRequest::default()), path, codec).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
        assert!(status.message().contains("traces only") && status.message().contains("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "{status:?}");
    }
}
