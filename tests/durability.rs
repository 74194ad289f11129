//! Durability of acknowledged spans (the span log): the OpenTelemetry Python
//! SDK exports traces continuously while the server is killed with SIGKILL at
//! random moments and restarted on the same data directory and address; at the
//! end every acknowledged trace has exactly its expected verdict, and every
//! group was announced to a webhook receiver on loopback at least once.
//! And a full disk under the span log (a small tmpfs mounted on it): clients
//! get retryable errors, nothing acknowledged is lost, ingest resumes when
//! space returns.

mod common;

use common::{FRAUD_RULE, Server, python};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills in one run.
const KILLS: usize = 20;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The same rule with a group per trace: every violating trace is a new
/// group, announced by its own `signal.created`.
const PER_TRACE_RULE: &str = r#"
export default rule({
  name: "per-trace",
  severity: "high",
  when: trace.has(s => s.name === "payment.charge_card"),
  expect: trace.has(s => s.name === "payment.fraud_check"),
  message: "payment charged without a fraud check (per trace)",
  group: ["traceId"],
});
"#;

/// Every group of `rule`, paging through the inbox.
fn groups(server: &Server, key: &str, rule: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = server.api("GET", &format!("/api/v1/signals?rule={rule}&limit=100{cursor}"), Some(key), None);
        assert_eq!(status, 200, "{page}");
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return all,
        }
    }
}

/// Every occurrence of `rule`'s groups, as trace id → how many.
fn occurrences_by_trace(server: &Server, key: &str, rule: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for group in groups(server, key, rule) {
        let id = group["id"].as_str().unwrap();
        let mut cursor: Option<String> = None;
        loop {
            let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
            let (status, page) = server.api("GET", &format!("/api/v1/signals/{id}/occurrences?limit=500{after}"), Some(key), None);
            assert_eq!(status, 200, "{page}");
            for occurrence in page["items"].as_array().unwrap() {
                *counts.entry(occurrence["trace_id"].as_str().unwrap().to_string()).or_default() += 1;
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
    }
    counts
}

#[test]
fn acknowledged_traces_survive_twenty_kill_9s_with_exactly_their_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()].map(|port| format!("127.0.0.1:{port}"));
    let addrs = [ports[0].as_str(), ports[1].as_str(), ports[2].as_str()];
    // Traces close 1 s after their last span: a kill finds some live, some
    // waiting for evaluation, some evaluated.
    let flags = ["--trace-idle", "1s", "--webhook-allow-private-targets"];
    let mut server = Server::start_at(dir.path(), addrs, &flags);
    let (_, admin) = server.tenant("crash");
    server.rule(&admin, "fraud", FRAUD_RULE);
    server.rule(&admin, "per-trace", PER_TRACE_RULE);
    let (receiver, received) = common::webhook_receiver(0);
    let (status, hook) =
        server.api("POST", "/api/v1/webhooks", Some(&admin), Some(&serde_json::json!({"url": format!("http://{receiver}/hook")})));
    assert_eq!(status, 201, "{hook}");

    let mut stream = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otel/stream.py"))
        .args(["--endpoint", &format!("http://{}", addrs[1]), "--key", &admin, "--delay-ms", "10", "--timeout", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run stream.py");
    let lines = BufReader::new(stream.stdout.take().unwrap());
    let reader = std::thread::spawn(move || lines.lines().map_while(Result::ok).collect::<Vec<String>>());

    // FLUO_KILL_SEED replays a failed run's kill moments (the timing of the stream still varies).
    let seed: u64 = std::env::var("FLUO_KILL_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or_else(|| rand::rng().random());
    println!("kill moments from seed {seed}");
    let mut moments = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    for kill in 0..KILLS {
        std::thread::sleep(Duration::from_millis(moments.random_range(200..1_500)));
        server.kill9();
        server = Server::start_at(dir.path(), addrs, &flags);
        assert!(started.elapsed() < Duration::from_secs(240), "kill {kill}: the run takes too long");
    }
    // Let the stream run against the last server a moment, then stop it.
    std::thread::sleep(Duration::from_millis(1_000));
    drop(stream.stdin.take());
    assert!(stream.wait().unwrap().success(), "stream.py failed");
    let reports: Vec<Value> = reader.join().unwrap().iter().map(|line| serde_json::from_str(line).unwrap()).collect();
    let acknowledged: Vec<&Value> = reports.iter().filter(|report| report["acknowledged"] == true).collect();
    let violating: Vec<&str> = acknowledged.iter().filter(|r| r["violating"] == true).map(|r| r["trace_id"].as_str().unwrap()).collect();
    let clean: Vec<&str> = acknowledged.iter().filter(|r| r["violating"] == false).map(|r| r["trace_id"].as_str().unwrap()).collect();
    println!("{} traces sent, {} acknowledged ({} violating), {KILLS} kills", reports.len(), acknowledged.len(), violating.len());
    assert!(violating.len() >= 100 && clean.len() >= 100, "too few acknowledged traces to say anything");

    // Every acknowledged trace is evaluated (1 s idle, then the backlog).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut counts = occurrences_by_trace(&server, &admin, "fraud");
    while violating.iter().any(|trace| !counts.contains_key(*trace)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        counts = occurrences_by_trace(&server, &admin, "fraud");
    }
    // Anything counted twice would show by now.
    std::thread::sleep(Duration::from_millis(2_000));
    counts = occurrences_by_trace(&server, &admin, "fraud");
    let lost: Vec<&&str> = violating.iter().filter(|trace| !counts.contains_key(**trace)).collect();
    let duplicated: Vec<(&String, &usize)> = counts.iter().filter(|(_, count)| **count > 1).collect();
    let false_positives: Vec<&&str> = clean.iter().filter(|trace| counts.contains_key(**trace)).collect();
    let first = |ids: Vec<String>| ids.into_iter().take(10).collect::<Vec<_>>();
    assert!(
        lost.is_empty(),
        "{} acknowledged violating traces lost, e.g. {:?}",
        lost.len(),
        first(lost.iter().map(|t| t.to_string()).collect())
    );
    assert!(duplicated.is_empty(), "{} traces counted more than once: {duplicated:?}", duplicated.len());
    assert!(false_positives.is_empty(), "{} acknowledged clean traces with a violation", false_positives.len());
    let group = &server.signals(&admin, "?rule=fraud")[0];
    assert_eq!(group["occurrences"].as_u64().unwrap() as usize, counts.values().sum::<usize>(), "the group's count is its occurrences");

    // One group per violating trace, each announced to the webhook at least once (the outbox survives the kills).
    let per_trace = groups(&server, &admin, "per-trace");
    let per_trace_counts = occurrences_by_trace(&server, &admin, "per-trace");
    let wrong: Vec<(&str, Option<&usize>)> = violating
        .iter()
        .filter(|trace| per_trace_counts.get(**trace) != Some(&1))
        .map(|trace| (*trace, per_trace_counts.get(*trace)))
        .collect();
    assert!(
        wrong.is_empty(),
        "every acknowledged violating trace has its own group, once; {} do not: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    let wanted: std::collections::HashSet<String> = per_trace.iter().map(|group| group["id"].as_str().unwrap().to_string()).collect();
    let mut announced = std::collections::HashSet::new();
    let mut deliveries = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !wanted.is_subset(&announced) && Instant::now() < deadline {
        let Ok((_, body)) = received.recv_timeout(Duration::from_millis(500)) else { continue };
        deliveries += 1;
        let body: Value = serde_json::from_str(&body).unwrap();
        if body["type"] == "signal.created" {
            announced.insert(body["signal"]["id"].as_str().unwrap().to_string());
        }
    }
    let missing: Vec<&String> = wanted.difference(&announced).collect();
    println!("{} per-trace groups, {deliveries} webhook deliveries received", wanted.len());
    assert!(
        missing.is_empty(),
        "{} of {} groups never announced, e.g. {:?}",
        missing.len(),
        wanted.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// One OTLP/gRPC export of a single span; the status code.
fn grpc_export(server: &Server, key: &str, trace: u8) -> tonic::Code {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = TraceServiceClient::connect(format!("http://{}", server.grpc)).await.unwrap();
        let mut request = tonic::Request::new(common::request(vec![common::span(trace, 1, "payment.charge_card")]));
        request.metadata_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
        match client.export(request).await {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        }
    })
}

/// One OTLP/HTTP export of a single span: status and Retry-After.
fn http_export(server: &Server, key: &str, trace: u8) -> (u16, Option<String>) {
    use prost::Message as _;
    let body = common::request(vec![common::span(trace, 1, "payment.charge_card")]).encode_to_vec();
    let (status, headers, _) =
        common::http(server.http, "POST", "/v1/traces", Some(key), &[("content-type", "application/x-protobuf")], Some(&body));
    (status, headers.into_iter().find(|(name, _)| name == "retry-after").map(|(_, value)| value))
}

#[test]
fn a_full_disk_under_the_span_log_refuses_for_retry_loses_nothing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let spanlog = dir.path().join("spanlog");
    std::fs::create_dir_all(&spanlog).unwrap();
    // A real full disk: a 4 MiB tmpfs where the span log lives (needs root, as CI has).
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "fluo-test"]).arg(&spanlog).status().unwrap();
    if !mounted.success() {
        assert_eq!(
            std::env::var("FLUO_SKIP_MOUNT_TESTS").as_deref(),
            Ok("1"),
            "this test mounts a tmpfs and needs root; set FLUO_SKIP_MOUNT_TESTS=1 to skip it"
        );
        println!("skipped: no tmpfs mount (FLUO_SKIP_MOUNT_TESTS=1)");
        return;
    }
    let _mounted = Mounted(spanlog.clone());
    let flags = ["--trace-idle", "300ms", "--span-log-segment-mib", "1"];
    let server = Server::start(dir.path(), &flags);
    let (_, admin) = server.tenant("disk");
    server.rule(&admin, "fraud", FRAUD_RULE);
    let mut acknowledged = Vec::new();
    for trace in 1..=10u8 {
        assert_eq!(http_export(&server, &admin, trace).0, 200);
        acknowledged.push(trace);
    }

    // Fill the file system.
    let mut filler = std::fs::File::create(spanlog.join("filler")).unwrap();
    let chunk = vec![7u8; 64 << 10];
    while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
    let _ = std::io::Write::write_all(&mut filler, &[7]);
    drop(filler);

    // A write that still fits in a page the file already has succeeds (about
    // 20 of these small requests): each answer is a success (then it counts
    // as acknowledged) or a retryable refusal.
    let (mut refused, mut not_ready, mut outcomes) = (0, 0, Vec::new());
    for trace in 11..=70u8 {
        let code = if trace % 2 == 0 {
            match http_export(&server, &admin, trace) {
                (200, _) => 200,
                (503, retry_after) => {
                    assert_eq!(retry_after.as_deref(), Some("1"), "503 carries Retry-After");
                    503
                }
                (status, _) => panic!("trace {trace}: HTTP {status} on a full disk"),
            }
        } else {
            match grpc_export(&server, &admin, trace) {
                tonic::Code::Ok => 200,
                tonic::Code::Unavailable => 503,
                code => panic!("trace {trace}: gRPC {code:?} on a full disk"),
            }
        };
        outcomes.push(code);
        if code == 200 {
            acknowledged.push(trace);
            continue;
        }
        refused += 1;
        let (status, _, body) = common::http(server.api, "GET", "/readyz", None, &[], None);
        let body = String::from_utf8_lossy(&body).to_string();
        if status == 503 {
            assert!(body.contains("span log"), "/readyz says why: {body}");
            not_ready += 1;
        }
    }
    println!("full disk: {refused} of 60 requests refused, /readyz 503 after {not_ready} of them: {outcomes:?}");
    assert!(refused >= 20, "only {refused} of 60 requests refused on a full disk");
    assert_eq!(not_ready, refused, "/readyz answers 503 right after each refused write");
    assert_eq!(server.metric("fluo_requests_refused_total{reason=\"log_unavailable\"}"), refused as u64);

    // Space returns: ingest resumes by itself.
    std::fs::remove_file(spanlog.join("filler")).unwrap();
    for trace in 71..=80u8 {
        assert_eq!(http_export(&server, &admin, trace).0, 200, "trace {trace} after space returned");
        acknowledged.push(trace);
    }
    assert_eq!(common::http(server.api, "GET", "/readyz", None, &[], None).0, 200);

    // Nothing acknowledged is lost, nothing refused is evaluated — across a kill -9 too.
    server.kill9();
    let server = Server::start(dir.path(), &flags);
    let wanted: std::collections::HashSet<String> = acknowledged.iter().map(|trace| common::hex_trace(*trace)).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut counts = occurrences_by_trace(&server, &admin, "fraud");
    while counts.len() < wanted.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        counts = occurrences_by_trace(&server, &admin, "fraud");
    }
    std::thread::sleep(Duration::from_millis(1_000));
    counts = occurrences_by_trace(&server, &admin, "fraud");
    let found: std::collections::HashSet<String> = counts.keys().cloned().collect();
    assert_eq!(found, wanted, "exactly the acknowledged traces were evaluated");
    assert!(counts.values().all(|count| *count == 1), "none twice: {counts:?}");
}
