//! Hardening of webhooks and the live stream, black-box: internal webhook
//! targets refused in every spelling, the webhook quota, no retries to a
//! deleted webhook, deliveries bounded by the worker pool, and live streams
//! that end when their credential stops being valid and are capped per
//! credential.

mod common;

use common::*;
use prost::Message;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ALLOW: &str = "--webhook-allow-private-targets";

fn send_charge(server: &Server, key: &str, trace: u8) {
    let body = request(vec![span(trace, 1, "payment.charge_card")]).encode_to_vec();
    let (status, _, _) = http(server.http, "POST", "/v1/traces", Some(key), &[("content-type", "application/x-protobuf")], Some(&body));
    assert_eq!(status, 200);
}

#[test]
fn internal_webhook_targets_are_refused_in_every_spelling_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (_, admin) = server.tenant("acme");
    for host in [
        "127.0.0.1",
        "localhost",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "0.0.0.0",
        "[::]",
        "169.254.169.254",
        "[::ffff:169.254.169.254]",
        "100.100.100.200",
        "100.64.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.0.1",
        "[fc00::1]",
        "[fd00:ec2::254]",
        "[fe80::1]",
    ] {
        let url = format!("http://{host}:8080/hook");
        let (status, body) = server.api("POST", "/api/v1/webhooks", Some(&admin), Some(&json!({ "url": url })));
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{url}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("not allowed"), "{url}: {body}");
    }
    let (_, listed) = server.api("GET", "/api/v1/webhooks", Some(&admin), None);
    assert_eq!(listed["items"], json!([]));
    // A public address is accepted (never delivered to in this test: no signal is raised).
    assert_eq!(server.api("POST", "/api/v1/webhooks", Some(&admin), Some(&json!({"url": "http://93.184.215.14/hook"}))).0, 201);
}

#[test]
fn webhooks_are_capped_per_tenant_and_a_deleted_one_gets_no_retries() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms", ALLOW, "--webhook-max-per-tenant", "2"]);
    let (_, admin) = server.tenant("acme");
    let (_, other) = server.tenant("globex");
    server.rule(&admin, "fraud", FRAUD_RULE);
    // Always answers 500: every delivery is retried.
    let (addr, received) = webhook_receiver(usize::MAX);
    let create = |key: &str| server.api("POST", "/api/v1/webhooks", Some(key), Some(&json!({"url": format!("http://{addr}/hook")})));
    let (status, hook) = create(&admin);
    assert_eq!(status, 201, "{hook}");
    assert_eq!(create(&admin).0, 201);
    let (status, body) = create(&admin);
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("at most 2 webhooks"), "{body}");
    assert_eq!(create(&other).0, 201, "the quota is per tenant");
    // Only the first webhook stays.
    let (_, listed) = server.api("GET", "/api/v1/webhooks", Some(&admin), None);
    for item in listed["items"].as_array().unwrap() {
        if item["id"] != hook["id"] {
            assert_eq!(server.api("DELETE", &format!("/api/v1/webhooks/{}", item["id"].as_str().unwrap()), Some(&admin), None).0, 204);
        }
    }
    let hook_id = hook["id"].as_str().unwrap();

    send_charge(&server, &admin, 0x61);
    received.recv_timeout(Duration::from_secs(20)).expect("the first attempt");
    // The attempt is logged once the receiver's answer is in: after the receiver saw it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let log = loop {
        let (status, log) = server.api("GET", &format!("/api/v1/webhooks/{hook_id}/deliveries"), Some(&admin), None);
        assert_eq!(status, 200);
        if !log["items"].as_array().unwrap().is_empty() || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let first = &log["items"][0];
    assert_eq!((first["delivered"].as_bool(), first["error"].as_str()), (Some(false), Some("not delivered")), "{log}");
    assert!(first.get("status").is_none(), "the receiver's answer is not shown: {log}");
    assert_eq!(server.api("DELETE", &format!("/api/v1/webhooks/{hook_id}"), Some(&admin), None).0, 204);
    // Retries would come after 1 s and 3 s.
    assert!(received.recv_timeout(Duration::from_secs(4)).is_err(), "a deleted webhook got another attempt");
}

/// A receiver that holds each request for `hold` before answering 200, and
/// records how many it held at once.
fn slow_receiver(hold: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (open, peak, total) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (peak_out, total_out) = (peak.clone(), total.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (open, peak, total) = (open.clone(), peak.clone(), total.clone());
            std::thread::spawn(move || {
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && !line.trim().is_empty() {
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                std::thread::sleep(hold);
                let _ = write!(stream, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                drop(stream);
                open.fetch_sub(1, Ordering::SeqCst);
                total.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, peak_out, total_out)
}

#[test]
fn deliveries_go_through_a_bounded_pool_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trace-idle", "200ms", ALLOW, "--webhook-workers", "2"]);
    let (_, admin) = server.tenant("acme");
    server.rule(&admin, "fraud", FRAUD_RULE);
    let (addr, peak, total) = slow_receiver(Duration::from_millis(300));
    for _ in 0..6 {
        let (status, body) = server.api("POST", "/api/v1/webhooks", Some(&admin), Some(&json!({"url": format!("http://{addr}/hook")})));
        assert_eq!(status, 201, "{body}");
    }
    // One new group, announced to each of the six webhooks (a second trace
    // of the same shape is an occurrence and announces nothing).
    for trace in 0x71..0x73 {
        send_charge(&server, &admin, trace);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while total.load(Ordering::SeqCst) < 6 {
        assert!(Instant::now() < deadline, "only {} of 6 deliveries arrived", total.load(Ordering::SeqCst));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(peak.load(Ordering::SeqCst) <= 2, "{} deliveries at once with 2 workers", peak.load(Ordering::SeqCst));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(total.load(Ordering::SeqCst), 6, "the second trace's occurrence is not announced");
}

/// Opens a live stream; returns the socket (reading) after the response head.
fn open_stream(api: std::net::SocketAddr, key: &str) -> (u16, BufReader<std::net::TcpStream>) {
    let mut socket = std::net::TcpStream::connect(api).unwrap();
    write!(
        socket,
        "GET /api/v1/signals/stream HTTP/1.1\r\nhost: {api}\r\nauthorization: Bearer {key}\r\naccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut reader = BufReader::new(socket);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
    }
    (status, reader)
}

/// Reads until the server ends the stream; returns what it sent, or panics after `within`.
fn read_until_closed(mut reader: BufReader<std::net::TcpStream>, within: Duration) -> String {
    let started = Instant::now();
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return seen,
            Ok(read) => {
                seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
                // The response ended: the last chunk of the chunked body (the connection may stay open).
                if seen.ends_with("\r\n0\r\n\r\n") || seen.starts_with("0\r\n\r\n") {
                    assert!(started.elapsed() < within, "stream ended only after {:?}", started.elapsed());
                    return seen;
                }
            }
            Err(error) => panic!("stream still open after {:?} ({error}); got {seen:?}", started.elapsed()),
        }
        assert!(started.elapsed() < within, "stream still open after {within:?}; got {seen:?}");
    }
}

#[test]
fn a_live_stream_ends_when_its_credential_does_and_is_capped_per_credential() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (tenant, admin) = server.tenant("acme");
    let (status, created) = server.api("POST", "/api/v1/keys", Some(&admin), Some(&json!({"name": "dashboard", "scopes": ["read"]})));
    assert_eq!(status, 201, "{created}");
    let (key, key_id) = (created["key"].as_str().unwrap().to_string(), created["id"].as_str().unwrap().to_string());

    // Eight streams per key; the ninth is refused.
    let streams: Vec<_> = (0..8).map(|_| open_stream(server.api, &key)).collect();
    assert!(streams.iter().all(|(status, _)| *status == 200));
    // (Read as a stream: before the cap, the ninth was a stream that never ended.)
    let (status, mut ninth) = open_stream(server.api, &key);
    assert_eq!(status, 429, "the ninth stream of one key is refused");
    let mut body = Vec::new();
    while serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        let mut chunk = [0u8; 1024];
        let read = ninth.read(&mut chunk).unwrap();
        assert!(read > 0, "the refusal has a JSON body: {}", String::from_utf8_lossy(&body));
        body.extend_from_slice(&chunk[..read]);
    }
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
    assert_eq!(open_stream(server.api, &admin).0, 200, "another key has its own streams");

    // Revoking the key ends every stream of it within seconds.
    assert_eq!(server.api("DELETE", &format!("/api/v1/keys/{key_id}"), Some(&admin), None).0, 204);
    for (_, reader) in streams {
        let seen = read_until_closed(reader, Duration::from_secs(6));
        assert!(seen.contains("event: end") && seen.contains("credential_invalid"), "{seen:?}");
    }

    // A session's stream ends when the session is logged out.
    server.api(
        "POST",
        "/api/v1/users",
        Some(&admin),
        Some(&json!({"email": "vi@acme.example", "password": "correct horse battery", "role": "viewer"})),
    );
    let login = json!({"tenant": tenant, "email": "vi@acme.example", "password": "correct horse battery"});
    let token = server.api("POST", "/api/v1/auth/login", None, Some(&login)).1["token"].as_str().unwrap().to_string();
    let (status, reader) = open_stream(server.api, &token);
    assert_eq!(status, 200);
    assert_eq!(server.api("POST", "/api/v1/auth/logout", Some(&token), None).0, 204);
    read_until_closed(reader, Duration::from_secs(6));
}
