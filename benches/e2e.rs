//! End to end over OTLP/HTTP: the real `fluo serve` on loopback, one tenant,
//! ten rules, four client connections posting pre-encoded protobuf requests
//! (1,000 spans each) as fast as they are answered. The clock runs from the
//! first request until the server's own metric says every trace was
//! evaluated (`fluo_tenant_traces_evaluated_total`), so the figure is spans
//! ingested *and* evaluated per second, on the same 2 cores as the clients.
//! A refused request (429/503) is retried after its `Retry-After`, so nothing
//! is dropped. Two rule sets on the same traffic: the ten rules of
//! docs/rules.md's forms (`REALISTIC_RULES`) and the rules benchmark's ten
//! (three of them check functions or negations that always run).
//!
//! Run: `cargo bench --bench e2e` (`make bench`). Figures in docs/BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/rule_set.rs"]
mod rule_set;
#[path = "support/traffic.rs"]
mod traffic;

use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use traffic::{REALISTIC_RULES, SPANS_PER_TRACE, TRACES_PER_REQUEST, mixed_request};

const REQUESTS: usize = 400;
const CONNECTIONS: usize = 4;

/// A keep-alive HTTP/1.1 client for one connection: POST, read the status and body.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Client { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream }
    }

    /// Returns the status and the Retry-After seconds, if any.
    fn post(&mut self, addr: SocketAddr, key: &str, body: &[u8]) -> (u16, Option<u64>) {
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).unwrap();
        self.writer.write_all(body).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split_whitespace().nth(1).expect("a status line").parse().unwrap();
        let (mut length, mut retry_after) = (0usize, None);
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "retry-after" => retry_after = value.trim().parse().ok(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, retry_after)
    }
}

fn run(label: &str, rules: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    // Admission far above the offered load: the figure is the pipeline's, not the rate limit's.
    let server =
        common::Server::start(dir.path(), &["--trace-idle", "300ms", "--tenant-rate", "100000000", "--tenant-byte-rate", "100000000000"]);
    let (tenant, admin) = server.tenant("e2e");
    let key = server.key(&admin, &["ingest"]);
    for (index, source) in rules.iter().enumerate() {
        server.rule(&admin, &format!("rule-{index}"), source);
    }
    let requests: Vec<Vec<u8>> =
        (0..REQUESTS as u64).map(|seed| mixed_request(seed + 9_000_000, TRACES_PER_REQUEST).encode_to_vec()).collect();
    let traces = (REQUESTS * TRACES_PER_REQUEST) as u64;
    let metric = format!("fluo_tenant_traces_evaluated_total{{tenant=\"{tenant}\"}}");
    let before = server.metric(&metric);
    let next = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..CONNECTIONS {
            scope.spawn(|| {
                let mut client = Client::connect(server.http);
                while let Some(body) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                    loop {
                        match client.post(server.http, &key, body) {
                            (200, _) => break,
                            (429 | 503, retry_after) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_secs(retry_after.unwrap_or(1)).min(Duration::from_millis(200)));
                            }
                            (status, _) => panic!("OTLP/HTTP answered {status}"),
                        }
                    }
                }
            });
        }
    });
    let sent = started.elapsed();
    while server.metric(&metric) < before + traces {
        assert!(started.elapsed() < Duration::from_secs(600), "traces were not all evaluated");
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = started.elapsed();
    let spans = (REQUESTS * TRACES_PER_REQUEST * SPANS_PER_TRACE) as f64;
    println!(
        "  {label:<44} {:>9.0} spans/s ingested and evaluated ({:.2} s; all acknowledged after {:.2} s; {} refusals retried)",
        spans / done.as_secs_f64(),
        done.as_secs_f64(),
        sent.as_secs_f64(),
        refused.load(Ordering::Relaxed)
    );
}

fn main() {
    // Cargo passes `--bench`; nothing to parse.
    println!(
        "end to end over OTLP/HTTP: {REQUESTS} requests of {} spans on {CONNECTIONS} connections, one tenant, traces idle-closed after 300 ms; {} cores",
        TRACES_PER_REQUEST * SPANS_PER_TRACE,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let realistic: Vec<String> = REALISTIC_RULES.iter().map(|rule| rule.to_string()).collect();
    run("10 rules in the reference's forms", &realistic);
    run("the rules benchmark's 10 rules", &rule_set::rule_set(10));
}
