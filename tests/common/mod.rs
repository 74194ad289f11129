//! Shared by the server tests: starting `fluo serve` on loopback ports chosen
//! by the OS, a minimal HTTP/1.1 client (no client library to build), and the
//! real OpenTelemetry Python SDK sender (tests/otel/send.py), and a webhook
//! receiver.
#![allow(dead_code)]

pub mod https;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const OPERATOR_KEY: &str = "fluo_test_operator_key_0123456789";

/// The `fluo` binary under test: this build's, or `FLUO_BIN` to run the
/// black-box tests against another build (how a regression test is shown to
/// fail on the code before its fix).
pub fn binary() -> PathBuf {
    std::env::var_os("FLUO_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_fluo")))
}

pub struct Server {
    pub child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub api: SocketAddr,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_at(data_dir, ["127.0.0.1:0"; 3], extra)
    }

    /// Starts on the given gRPC, HTTP and API addresses (a restart keeps them).
    pub fn start_at(data_dir: &Path, [grpc, http, api]: [&str; 3], extra: &[&str]) -> Server {
        let mut child = Command::new(binary())
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--grpc-addr", grpc, "--http-addr", http, "--api-addr", api])
            .args(extra)
            .env("FLUO_OPERATOR_KEY", OPERATOR_KEY)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fluo serve");
        let stdout = child.stdout.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (sender, receiver) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(" listening ") {
                    let _ = sender.send(line.clone());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let line = receiver.recv_timeout(Duration::from_secs(120)).expect("server did not report its addresses");
        let field = |name: &str| -> SocketAddr {
            let start = line.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} in {line}")) + name.len() + 1;
            line[start..].split_whitespace().next().unwrap().parse().unwrap()
        };
        Server { grpc: field("grpc"), http: field("http"), api: field("api"), child, log }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn api(&self, method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(|body| body.to_string().into_bytes());
        let (status, _, bytes) = http(self.api, method, path, key, &[("content-type", "application/json")], body.as_deref());
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Creates a tenant; returns (id, admin key).
    pub fn tenant(&self, name: &str) -> (String, String) {
        let (status, body) = self.api("POST", "/api/v1/tenants", Some(OPERATOR_KEY), Some(&json!({ "name": name })));
        assert_eq!(status, 201, "{body}");
        (body["id"].as_str().unwrap().into(), body["admin_key"].as_str().unwrap().into())
    }

    pub fn key(&self, admin: &str, scopes: &[&str]) -> String {
        let (status, body) = self.api("POST", "/api/v1/keys", Some(admin), Some(&json!({"name": "test", "scopes": scopes})));
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().unwrap().into()
    }

    pub fn rule(&self, key: &str, name: &str, source: &str) -> Value {
        let (status, body) = self.api("POST", "/api/v1/rules", Some(key), Some(&json!({"name": name, "source": source})));
        assert_eq!(status, 201, "{body}");
        body
    }

    pub fn signals(&self, key: &str, query: &str) -> Vec<Value> {
        let (status, body) = self.api("GET", &format!("/api/v1/signals{query}"), Some(key), None);
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().unwrap().clone()
    }

    /// Polls until `wanted` signals match `query`, or the timeout passes.
    pub fn wait_signals(&self, key: &str, query: &str, wanted: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let items = self.signals(key, query);
            if items.len() >= wanted || Instant::now() > deadline {
                return items;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn metric(&self, name_and_labels: &str) -> u64 {
        let (_, _, bytes) = http(self.api, "GET", "/metrics", Some(OPERATOR_KEY), &[], None);
        let text = String::from_utf8(bytes).unwrap();
        text.lines().find_map(|line| line.strip_prefix(name_and_labels).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET with a key, parsed as JSON (for use where `Server` is borrowed elsewhere).
pub fn api_get(api: SocketAddr, path: &str, key: &str) -> (u16, Value) {
    let (status, _, bytes) = http(api, "GET", path, Some(key), &[], None);
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// One HTTP/1.1 request with `Connection: close`; returns status, headers (lowercased names) and body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    if let Some(key) = key {
        request.push_str(&format!("authorization: Bearer {key}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or_default();
    request.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    // The server may answer (413) before reading the whole body and close.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let split = response.windows(4).position(|window| window == b"\r\n\r\n").expect("a complete response head");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let mut body = response[split + 4..].to_vec();
    if headers.iter().any(|(name, value)| name == "transfer-encoding" && value.contains("chunked")) {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|window| window == b"\r\n") else { return out };
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

pub fn python() -> PathBuf {
    let venv = std::env::var_os("FLUO_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/fluo-venv"));
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} missing: run `bash scripts/setup-python.sh` (make test does)", python.display());
    python
}

/// Sends `spec` with the OpenTelemetry Python SDK; returns send.py's report.
pub fn send(endpoint: SocketAddr, protocol: &str, key: &str, spec: &Value, extra: &[&str]) -> Value {
    let mut child = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otel/send.py"))
        .args(["--endpoint", &format!("http://{endpoint}"), "--protocol", protocol, "--key", key, "--spec", "-"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run send.py");
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(output.stdout.trim_ascii()).unwrap_or(Value::Null);
    report.as_object().map(|_| ()).unwrap_or_else(|| {
        panic!("send.py said: {}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    });
    let mut report = report;
    report["stderr"] = String::from_utf8_lossy(&output.stderr).into();
    report["exit"] = output.status.code().unwrap_or(-1).into();
    report
}

/// A span built with the OpenTelemetry project's protobuf types: trace id = 16 × `trace`, span id = 8 × `id`.
pub fn span(trace: u8, id: u8, name: &str) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: name.into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_100_000_000,
        ..Default::default()
    }
}

pub fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue { value: Some(any_value::Value::StringValue("shop".into())) }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

/// A checkout trace; with `fraud_check` the charge is preceded by a fraud check.
pub fn checkout(fraud_check: bool) -> Value {
    let mut spans = vec![
        json!({"id": "root", "name": "checkout", "kind": "server", "parent": null, "start_ms": 0, "duration_ms": 120, "attributes": {"http.route": "/checkout"}}),
        json!({"id": "charge", "name": "payment.charge_card", "kind": "client", "parent": "root", "start_ms": 40, "duration_ms": 50, "service": "payments", "attributes": {"amount": 42}}),
    ];
    if fraud_check {
        spans.push(json!({"id": "fraud", "name": "payment.fraud_check", "kind": "internal", "parent": "root", "start_ms": 10, "duration_ms": 20, "service": "payments"}));
    }
    json!({"service": "checkout", "spans": spans})
}

pub const FRAUD_RULE: &str = r#"
export default rule({
  severity: "high",
  when: trace.has(s => s.name === "payment.charge_card"),
  expect: trace.has(s => s.name === "payment.fraud_check"),
  message: "payment charged without a fraud check",
});
"#;

/// A webhook receiver on loopback: answers the first `failures` requests 500
/// and the rest 200, and passes on each request's headers (lower-cased names)
/// and body.
pub fn webhook_receiver(failures: usize) -> (SocketAddr, std::sync::mpsc::Receiver<(Vec<(String, String)>, String)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut count = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            // A sender that dies mid-request (a server killed with -9) is skipped, not answered.
            let Ok(https::Received { headers, body, .. }) = https::read_request(&mut stream) else { continue };
            let status = if count < failures { "500 Internal Server Error" } else { "200 OK" };
            count += 1;
            if write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").is_err() {
                continue;
            }
            let _ = sender.send((headers, body));
        }
    });
    (addr, receiver)
}

/// Sends one span `payment.charge_card` of trace `trace` over OTLP/HTTP protobuf; its trace id in hex.
pub fn send_charge(server: &Server, key: &str, trace: u8) -> String {
    send_span(server, key, trace, "payment.charge_card");
    hex_trace(trace)
}

/// Sends one span `name` of trace `trace` over OTLP/HTTP protobuf (the request must succeed).
pub fn send_span(server: &Server, key: &str, trace: u8, name: &str) {
    use prost::Message as _;
    let body = request(vec![span(trace, 1, name)]).encode_to_vec();
    let (status, _, _) = http(server.http, "POST", "/v1/traces", Some(key), &[("content-type", "application/x-protobuf")], Some(&body));
    assert_eq!(status, 200);
}

pub fn hex_trace(trace: u8) -> String {
    format!("{trace:02x}").repeat(16)
}
