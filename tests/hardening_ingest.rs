//! Hostile OTLP clients against a real `fluo serve` on loopback: oversized
//! attributes and byte floods (admission by bytes, the live-trace memory
//! budget), late spans past the per-trace caps, half-sent requests
//! (slowloris) and connection floods, refused requests in the metrics and the
//! log, `/metrics` scraped by a real Prometheus server, and the API's 405.

mod common;

use common::{FRAUD_RULE, OPERATOR_KEY, Server, http, request, span};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tonic_types::StatusExt;

async fn grpc_export(server: &Server, key: &str, message: ExportTraceServiceRequest) -> Result<ExportTraceServiceResponse, tonic::Status> {
    let mut client = TraceServiceClient::connect(format!("http://{}", server.grpc)).await.unwrap().max_encoding_message_size(64 << 20);
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
    client.export(request).await.map(|response| response.into_inner())
}

fn text_attribute(key: &str, length: usize) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue("x".repeat(length))) }),
        ..Default::default()
    }
}

fn post_protobuf(server: &Server, key: &str, message: &ExportTraceServiceRequest) -> (u16, Vec<(String, String)>, Vec<u8>) {
    http(server.http, "POST", "/v1/traces", Some(key), &[("content-type", "application/x-protobuf")], Some(&message.encode_to_vec()))
}

/// The spans of a retained trace, as the API serves it (OTLP/JSON).
fn stored_spans(server: &Server, key: &str, trace: u8) -> Option<Vec<Value>> {
    let (status, body) = server.api("GET", &format!("/api/v1/traces/{}", hex(&[trace; 16])), Some(key), None);
    (status == 200).then(|| {
        body["resourceSpans"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|resource| resource["scopeSpans"].as_array().unwrap().iter())
            .flat_map(|scope| scope["spans"].as_array().unwrap().iter().cloned())
            .collect()
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn wait_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Item 5: attribute values are truncated at 2 KiB and attributes capped at
/// 128 per span before a span is kept; requests are admitted by bytes as well
/// as spans, so 30 single-span requests of 3 MiB are not all accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_attributes_are_capped_and_requests_admitted_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms", "--tenant-byte-rate", "1048576"]);
    let (_, admin) = server.tenant("acme");

    let mut big = span(1, 1, "big");
    big.attributes =
        std::iter::once(text_attribute("blob", 1 << 20)).chain((0..200).map(|index| text_attribute(&format!("k{index}"), 1))).collect();
    grpc_export(&server, &admin, request(vec![big])).await.expect("accepted, capped");
    let spans = tokio::task::spawn_blocking({
        let (api, admin) = (server.api, admin.clone());
        move || {
            wait_until(Duration::from_secs(10), || {
                let (status, body) = common::api_get(api, &format!("/api/v1/traces/{}", hex(&[1; 16])), &admin);
                (status == 200).then_some(body)
            })
        }
    })
    .await
    .unwrap()
    .expect("the trace is stored");
    let attributes = spans["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].as_array().unwrap().clone();
    assert_eq!(attributes.len(), 128, "attributes per span are capped");
    assert_eq!(attributes[0]["value"]["stringValue"].as_str().unwrap().len(), 2048, "values are truncated at 2 KiB");
    assert_eq!(server.metric("fluo_span_data_limited_total{what=\"value_truncated\"}"), 1);
    assert_eq!(server.metric("fluo_span_data_limited_total{what=\"attribute_dropped\"}"), 73);

    // 1 MiB/s, bucket of 20 MiB (one maximal OTLP/HTTP body): of 30 requests
    // of 3 MiB each, about 7 pass; the rest are refused for retry.
    let (mut accepted, mut refused) = (0, 0);
    for index in 0..30u8 {
        let mut heavy = span(10 + index, 1, "heavy");
        heavy.attributes = vec![text_attribute("blob", 3 << 20)];
        match grpc_export(&server, &admin, request(vec![heavy])).await {
            Ok(_) => accepted += 1,
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                assert!(status.get_details_retry_info().and_then(|retry| retry.retry_delay).is_some(), "RetryInfo");
                refused += 1;
            }
        }
    }
    assert!((5..=8).contains(&accepted), "accepted {accepted} of 30 requests of 3 MiB with a 20 MiB bucket");
    assert_eq!(server.metric("fluo_requests_refused_total{reason=\"rate_limited\"}"), refused);
}

/// Item 5: one memory budget for all live traces: when it is full, requests
/// are refused retryably (gRPC UNAVAILABLE + RetryInfo, HTTP 503 + Retry-After)
/// instead of growing memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_traces_memory_budget_refuses_retryably() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start(dir.path(), &["--trace-idle", "60s", "--trace-max-age", "120s", "--max-trace-mib", "1", "--live-traces-mib", "2"]);
    let (_, admin) = server.tenant("acme");
    // One span of 128 values of 2 KiB: ~260 KiB live; 2 MiB hold 7 of them.
    let heavy = |trace: u8| {
        let mut heavy = span(trace, 1, "heavy");
        heavy.attributes = (0..128).map(|index| text_attribute(&format!("k{index}"), 2048)).collect();
        request(vec![heavy])
    };
    let mut outcomes = Vec::new();
    for trace in 1..=12u8 {
        outcomes.push(grpc_export(&server, &admin, heavy(trace)).await.map(|_| ()));
    }
    let accepted = outcomes.iter().take_while(|outcome| outcome.is_ok()).count();
    assert!((5..=8).contains(&accepted), "accepted {accepted}: {outcomes:?}");
    let status = outcomes.last().unwrap().as_ref().unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("memory"), "{status:?}");
    assert!(status.get_details_retry_info().and_then(|retry| retry.retry_delay).is_some(), "RetryInfo");
    let (status, headers, _) = post_protobuf(&server, &admin, &heavy(13));
    assert_eq!(status, 503);
    assert!(headers.iter().any(|(name, _)| name == "retry-after"));
    assert!(server.metric("fluo_buffered_bytes") <= 2 << 20);
    assert_eq!(server.metric("fluo_requests_refused_total{reason=\"memory_budget\"}"), 12 - accepted as u64 + 1);
}

/// Item 6: spans arriving after their trace was evaluated amend it, but the
/// merged trace keeps the per-trace span cap (50 stays 50, not 300).
#[test]
fn late_spans_do_not_grow_a_trace_past_its_caps() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "100ms", "--max-spans-per-trace", "50"]);
    let (_, admin) = server.tenant("acme");
    for batch in 0..6u8 {
        // 50 new spans of trace 9 per batch, each batch after the last was evaluated.
        let spans = (0..50u8).map(|index| {
            let mut span = span(9, 1, "s");
            span.span_id = vec![1, 1, 1, 1, 1, 1, batch + 1, index + 1];
            span
        });
        let (status, _, _) = post_protobuf(&server, &admin, &request(spans.collect()));
        assert_eq!(status, 200);
        let closed = batch as u64 + 1;
        wait_until(Duration::from_secs(10), || (server.metric("fluo_traces_closed_total{reason=\"idle\"}") >= closed).then_some(()))
            .expect("the trace closed");
        // The evaluator stores it right after it closes.
        std::thread::sleep(Duration::from_millis(400));
    }
    let spans = wait_until(Duration::from_secs(10), || stored_spans(&server, &admin, 9)).expect("stored");
    assert_eq!(spans.len(), 50, "the merged trace is held to --max-spans-per-trace");
    assert_eq!(server.metric("fluo_spans_rejected_total{reason=\"trace_span_limit\"}"), 250);
}

/// Sends the start of a request head and never finishes it.
fn half_sent(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n").unwrap();
    stream
}

/// True once the server closed `stream` (EOF or reset), false if still open after `within`.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}

/// Item 7: half-sent requests are closed after the header timeout, a flood
/// of connections beyond the cap is closed at once, and the listeners answer
/// again as soon as the slow clients are gone; an SSE stream outlives the
/// header timeout.
#[test]
fn slowloris_is_cut_off_and_connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "100ms", "--http-header-timeout", "1s", "--max-connections", "40"]);
    let (_, admin) = server.tenant("acme");
    assert!(server.log.lock().unwrap().iter().any(|line| line.contains("open files limit")), "RLIMIT_NOFILE is logged");

    // An SSE stream opened before the flood stays open past the header timeout.
    let mut sse = TcpStream::connect(server.api).unwrap();
    write!(sse, "GET /api/v1/signals/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\naccept: text/event-stream\r\n\r\n")
        .unwrap();

    for addr in [server.api, server.http] {
        let started = Instant::now();
        let mut slow: Vec<TcpStream> = (0..150).map(|_| half_sent(addr)).collect();
        // Beyond the cap (40 per listener, the SSE stream holds one on the API) connections are closed at once.
        let mut open = Vec::new();
        for (index, stream) in slow.iter_mut().enumerate().skip(60) {
            if !closed_by_server(stream, Duration::from_millis(500)) {
                open.push(index);
            }
        }
        // A slot freed by the header timeout while the server was still
        // accepting the flood may let a few late ones in.
        assert!(open.len() <= 10, "connections over the cap are closed at once; still open: {open:?}");
        // The rest are closed by the header timeout (1 s), none is kept.
        let mut kept = 0;
        for (index, stream) in slow.iter_mut().enumerate() {
            if (index < 60 || open.contains(&index)) && !closed_by_server(stream, Duration::from_secs(5)) {
                kept += 1;
            }
        }
        assert_eq!(kept, 0, "every half-sent request is closed");
        assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    }
    let (status, _, _) = http(server.api, "GET", "/healthz", None, &[], None);
    assert_eq!(status, 200);
    let (status, _, _) = post_protobuf(&server, &admin, &request(vec![span(1, 1, "payment.charge_card")]));
    assert_eq!(status, 200);
    assert!(server.metric("fluo_connections_refused_total{listener=\"api\"}") >= 80);
    assert!(server.metric("fluo_connections_refused_total{listener=\"otlp_http\"}") >= 80);

    // The stream survived ~3 s of header timeouts: a new signal still reaches it.
    server.rule(&admin, "fraud", FRAUD_RULE);
    let (status, _, _) = post_protobuf(&server, &admin, &request(vec![span(2, 1, "payment.charge_card")]));
    assert_eq!(status, 200);
    sse.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut seen = String::new();
    let mut buffer = [0u8; 8192];
    while !seen.contains("event: signal") {
        let read = sse.read(&mut buffer).expect("the stream is still open");
        assert!(read > 0, "the server closed the SSE stream: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
}

/// Item 7: the gRPC listener caps connections too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-connections", "10"]);
    let (_, admin) = server.tenant("acme");
    let mut held: Vec<TcpStream> = (0..10).map(|_| TcpStream::connect(server.grpc).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = TcpStream::connect(server.grpc).unwrap();
    assert!(closed_by_server(&mut over, Duration::from_secs(2)), "the 11th connection is closed at once");
    assert_eq!(server.metric("fluo_connections_refused_total{listener=\"grpc\"}"), 1);
    held.clear();
    std::thread::sleep(Duration::from_millis(200));
    grpc_export(&server, &admin, request(vec![span(1, 1, "a")])).await.expect("served once the slots are free");
}

/// Item 16: refused OTLP requests are counted by reason and logged; the
/// served /metrics (OpenMetrics) is scraped by a real Prometheus without
/// error; a 405 carries the API's JSON error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_metrics_are_scraped_by_prometheus_and_405_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "100ms"]);
    let (_, admin) = server.tenant("acme");
    let reader = server.key(&admin, &["read"]);
    server.rule(&admin, "fraud", FRAUD_RULE);

    let status = grpc_export(&server, "fluo_wrong", request(vec![span(1, 1, "a")])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let status = grpc_export(&server, &reader, request(vec![span(1, 1, "a")])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert_eq!(post_protobuf(&server, "fluo_wrong", &request(vec![span(1, 1, "a")])).0, 401);
    assert_eq!(post_protobuf(&server, &reader, &request(vec![span(1, 1, "a")])).0, 403);
    let (status, _, _) =
        http(server.http, "POST", "/v1/traces", Some(&admin), &[("content-type", "application/x-protobuf")], Some(b"\xff\xff garbage"));
    assert_eq!(status, 400);
    assert_eq!(server.metric("fluo_requests_refused_total{reason=\"unauthenticated\"}"), 2);
    assert_eq!(server.metric("fluo_requests_refused_total{reason=\"forbidden\"}"), 2);
    assert_eq!(server.metric("fluo_requests_refused_total{reason=\"malformed\"}"), 1);
    let logged = server.log.lock().unwrap().iter().filter(|line| line.contains("otlp request refused")).count();
    assert_eq!(logged, 5, "each refusal is logged (well under the rate limit)");
    let forbidden_logged =
        server.log.lock().unwrap().iter().any(|line| line.contains("otlp request refused") && line.contains("forbidden"));
    assert!(forbidden_logged, "the log line names the reason");

    // A rule runs, so the per-rule families have samples too.
    grpc_export(&server, &admin, request(vec![span(2, 1, "payment.charge_card")])).await.unwrap();
    let signals = tokio::task::spawn_blocking({
        let (api, admin) = (server.api, admin.clone());
        move || {
            wait_until(Duration::from_secs(20), || {
                common::api_get(api, "/api/v1/signals", &admin).1["items"].as_array().filter(|items| !items.is_empty()).cloned()
            })
        }
    })
    .await
    .unwrap();
    assert!(signals.is_some(), "the rule ran");
    let (status, _, metrics) = http(server.api, "GET", "/metrics", Some(OPERATOR_KEY), &[], None);
    assert_eq!(status, 200);
    let text = String::from_utf8(metrics).unwrap();
    assert!(text.contains("fluo_rule_fuel_used_total{tenant="), "{text}");
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF:\n{text}");
    let (_prometheus, refused) = tokio::task::spawn_blocking({
        let api = server.api;
        move || scraped_by_prometheus(api, "fluo_requests_refused_total{reason=\"unauthenticated\"}")
    })
    .await
    .unwrap();
    assert_eq!(refused, 2.0, "the value Prometheus stored from its scrape of /metrics");

    // 405 in the API's error shape, with Allow.
    let (status, headers, body) = http(server.api, "DELETE", "/healthz", None, &[], None);
    assert_eq!(status, 405);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    assert!(headers.iter().any(|(name, value)| name == "allow" && value.contains("GET")), "{headers:?}");
    let (status, _, body) = http(server.api, "PUT", "/api/v1/rules", Some(&admin), &[], None);
    assert_eq!(status, 405);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"], "method_not_allowed");
    // The OTLP/HTTP listener answers wrong methods and paths with a google.rpc.Status.
    let (status, _, body) = http(server.http, "GET", "/v1/traces", None, &[], None);
    assert_eq!(status, 405);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["message"].is_string());
}

/// A Prometheus server (Debian's, on loopback, killed on drop).
struct Prometheus {
    child: std::process::Child,
    _data: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Prometheus scraping FLUO's `/metrics` (operator key, every second),
/// waits until the target is up without a scrape error, and returns the value
/// of `query` as Prometheus stored it.
fn scraped_by_prometheus(api: SocketAddr, query: &str) -> (Prometheus, f64) {
    let binary = std::path::Path::new("/usr/bin/prometheus");
    assert!(binary.exists(), "prometheus missing: run `bash scripts/setup.sh test` (Debian's prometheus package)");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 900ms}}\nscrape_configs:\n  - job_name: fluo\n    authorization: {{type: Bearer, credentials: {OPERATOR_KEY}}}\n    static_configs: [{{targets: ['{api}']}}]\n"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let web: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = std::process::Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address={web}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start prometheus");
    let prometheus = Prometheus { child, _data: dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        assert!(Instant::now() < deadline, "Prometheus never scraped /metrics successfully; last: {last}");
        std::thread::sleep(Duration::from_millis(250));
        let Ok(stream) = TcpStream::connect(web) else { continue };
        drop(stream);
        let (status, _, body) = http(web, "GET", "/api/v1/targets", None, &[], None);
        last = String::from_utf8_lossy(&body).into_owned();
        let targets: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let target = &targets["data"]["activeTargets"][0];
        if status != 200 || target["health"] != "up" {
            continue;
        }
        assert_eq!(target["lastError"], "", "{target}");
        let encoded: String = query.bytes().map(|byte| format!("%{byte:02X}")).collect();
        let (_, _, body) = http(web, "GET", &format!("/api/v1/query?query={encoded}"), None, &[], None);
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        last = answer.to_string();
        if let Some(value) = answer["data"]["result"][0]["value"][1].as_str() {
            return (prometheus, value.parse().unwrap());
        }
    }
}
