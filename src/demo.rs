//! `fluo demo`: against a running `fluo serve`, creates a demo tenant (admin
//! key, ingest key, a sign-in user), installs the rule templates, and sends a
//! stream of realistic traces over OTLP/HTTP, some of which break the rules,
//! so that a new user sees signals within seconds.

use crate::rules::templates::TEMPLATES;
use axum::body::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use rand::Rng;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DemoArgs {
    /// The FLUO API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// The FLUO OTLP/HTTP endpoint.
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    pub otlp: String,
    /// The operator key the server was started with.
    #[arg(long, env = "FLUO_OPERATOR_KEY", hide_env_values = true)]
    pub operator_key: String,
    /// Name of the demo tenant (unique on the server). Default: `demo`, or
    /// `demo-` and six hex digits when `demo` exists already.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Traces per second.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Stop after this many traces (default: until interrupted).
    #[arg(long)]
    pub traces: Option<u64>,
}

type Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// OTLP requests the demo has in flight at once.
const IN_FLIGHT: usize = 8;

async fn call(client: &Client, method: &str, url: &str, key: &str, content_type: &str, body: Vec<u8>) -> anyhow::Result<(u16, Bytes)> {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))?;
    let response = client.request(request).await.map_err(|error| anyhow::anyhow!("{url}: {error}"))?;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

async fn api(client: &Client, args: &DemoArgs, path: &str, key: &str, body: Value) -> anyhow::Result<Value> {
    let url = format!("{}{path}", args.api.trim_end_matches('/'));
    let (status, bytes) = call(client, "POST", &url, key, "application/json", body.to_string().into_bytes()).await?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    anyhow::ensure!((200..300).contains(&status), "POST {path} answered {status}: {value}");
    Ok(value)
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let client: Client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let mut name = args.tenant.clone().unwrap_or_else(|| "demo".into());
    let tenants = format!("{}/api/v1/tenants", args.api.trim_end_matches('/'));
    let mut created =
        call(&client, "POST", &tenants, &args.operator_key, "application/json", json!({ "name": name }).to_string().into_bytes()).await?;
    if created.0 == 409 && args.tenant.is_none() {
        name = format!("demo-{}", hex::encode(rand::random::<[u8; 3]>()));
        created = call(&client, "POST", &tenants, &args.operator_key, "application/json", json!({ "name": name }).to_string().into_bytes())
            .await?;
    }
    let (status, bytes) = created;
    let created: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    anyhow::ensure!(status == 201, "POST /api/v1/tenants answered {status}: {created}");
    let (tenant, admin) =
        (created["id"].as_str().unwrap_or_default().to_string(), created["admin_key"].as_str().unwrap_or_default().to_string());
    let ingest = api(&client, &args, "/api/v1/keys", &admin, json!({"name": "demo-sender", "scopes": ["ingest"]})).await?;
    let ingest = ingest["key"].as_str().unwrap_or_default().to_string();
    let password: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(16).map(char::from).collect();
    api(&client, &args, "/api/v1/users", &admin, json!({"email": "demo@fluo.example", "password": password, "role": "admin"})).await?;
    for template in TEMPLATES {
        api(&client, &args, "/api/v1/rules", &admin, json!({"name": template.id, "source": template.source, "message": template.title}))
            .await?;
    }
    println!("demo tenant {name} ({tenant}) with {} rules", TEMPLATES.len());
    println!("  admin key:  {admin}");
    println!("  ingest key: {ingest}");
    println!("  sign in:    tenant {name}, demo@fluo.example, password {password}");
    println!("  console:    {}/login?tenant={tenant}", args.api.trim_end_matches('/'));
    println!("sending traces to {} ({} per second); some break the rules", args.otlp, args.rate);

    let url = format!("{}/v1/traces", args.otlp.trim_end_matches('/'));
    let pause = Duration::from_secs_f64(1.0 / args.rate.clamp(0.1, 10_000.0));
    let started = Instant::now();
    let (mut sent, mut reported) = (0u64, 0u64);
    let mut next_burst = Instant::now() + Duration::from_secs(3);
    let mut in_flight = tokio::task::JoinSet::new();
    while args.traces.is_none_or(|limit| sent < limit) {
        // The first traces break each per-trace rule once, so a new user
        // sees every kind of signal at once; the rest are left to chance.
        let forced = FIRST_BREAKS.get(sent as usize).copied();
        let mut requests = vec![scenario(&mut rand::rng(), forced)];
        // Now and then a login burst over the auth service's concurrency limit.
        if Instant::now() >= next_burst {
            requests.extend((0..60).map(|_| login(&mut rand::rng(), 400)));
            next_burst = Instant::now() + Duration::from_secs(20);
        }
        // Up to IN_FLIGHT requests at once, as an application's exporters
        // send: the server's span log then shares one fsync among them.
        for request in requests {
            while in_flight.len() >= IN_FLIGHT {
                in_flight.join_next().await.expect("tasks are in flight")??;
            }
            let (client, url, ingest) = (client.clone(), url.clone(), ingest.clone());
            in_flight.spawn(async move {
                let body = prost::Message::encode_to_vec(&request);
                let (status, answer) = call(&client, "POST", &url, &ingest, "application/x-protobuf", body).await?;
                anyhow::ensure!(status == 200, "OTLP export answered {status}: {}", String::from_utf8_lossy(&answer));
                Ok(())
            });
            sent += 1;
        }
        if sent >= reported + 50 {
            reported = sent;
            println!("{sent} traces sent in {:.0} s", started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(pause).await;
    }
    while let Some(done) = in_flight.join_next().await {
        done??;
    }
    println!("{sent} traces sent; signals: GET {}/api/v1/signals with the admin key", args.api.trim_end_matches('/'));
    Ok(())
}

/// Builds one trace's spans, grouped by service, times relative to now.
struct Builder {
    trace_id: [u8; 16],
    base_ns: u64,
    by_service: BTreeMap<&'static str, Vec<Span>>,
}

fn text(value: &str) -> AnyValue {
    AnyValue { value: Some(any_value::Value::StringValue(value.into())) }
}

fn int(value: i64) -> AnyValue {
    AnyValue { value: Some(any_value::Value::IntValue(value)) }
}

impl Builder {
    fn new(rng: &mut impl Rng) -> Builder {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
        Builder { trace_id: rng.random(), base_ns: now, by_service: BTreeMap::new() }
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        service: &'static str,
        name: &str,
        kind: span::SpanKind,
        parent: Option<[u8; 8]>,
        start_ms: u64,
        duration_ms: u64,
        attributes: Vec<(&str, AnyValue)>,
    ) -> [u8; 8] {
        let id: [u8; 8] = rand::rng().random();
        let failed = attributes.iter().any(|(key, value)| {
            *key == "http.response.status_code" && matches!(value.value, Some(any_value::Value::IntValue(code)) if code >= 500)
        });
        self.by_service.entry(service).or_default().push(Span {
            trace_id: self.trace_id.to_vec(),
            span_id: id.to_vec(),
            parent_span_id: parent.map(|parent| parent.to_vec()).unwrap_or_default(),
            name: name.into(),
            kind: kind as i32,
            start_time_unix_nano: self.base_ns + start_ms * 1_000_000,
            end_time_unix_nano: self.base_ns + (start_ms + duration_ms) * 1_000_000,
            attributes: attributes
                .into_iter()
                .map(|(key, value)| KeyValue { key: key.into(), value: Some(value), ..Default::default() })
                .collect(),
            status: failed.then(|| Status { code: status::StatusCode::Error as i32, ..Default::default() }),
            ..Default::default()
        });
        id
    }

    fn request(self) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: self
                .by_service
                .into_iter()
                .map(|(service, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            KeyValue { key: "service.name".into(), value: Some(text(service)), ..Default::default() },
                            KeyValue { key: "deployment.environment".into(), value: Some(text("demo")), ..Default::default() },
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                    ..Default::default()
                })
                .collect(),
        }
    }
}

/// A login to the auth service lasting `duration_ms`.
fn login(rng: &mut impl Rng, duration_ms: u64) -> ExportTraceServiceRequest {
    let mut trace = Builder::new(rng);
    trace.span("auth", "POST /login", span::SpanKind::Server, None, 0, duration_ms, vec![("http.route", text("/login"))]);
    trace.request()
}

/// Scenario picks (see `scenario`) that break, in turn, each per-trace template.
const FIRST_BREAKS: [u32; 5] = [0, 40, 60, 75, 88];

/// One realistic trace; about one in eight breaks a rule. `forced` picks the
/// scenario and makes it break.
fn scenario(rng: &mut impl Rng, forced: Option<u32>) -> ExportTraceServiceRequest {
    use span::SpanKind::{Client, Internal, Server};
    let breaks = forced.is_some() || rng.random_bool(0.125);
    let pick = forced.unwrap_or_else(|| rng.random_range(0..100));
    let mut trace = Builder::new(rng);
    match pick {
        0..40 => {
            let root = trace.span("checkout", "POST /checkout", Server, None, 0, 180, vec![("http.route", text("/checkout"))]);
            trace.span("checkout", "cart.load", Internal, Some(root), 5, 20, vec![]);
            if !breaks {
                trace.span(
                    "payments",
                    "payment.fraud_check",
                    Internal,
                    Some(root),
                    30,
                    40,
                    vec![("fraud.score", int(rng.random_range(1..40)))],
                );
            }
            trace.span(
                "payments",
                "payment.charge_card",
                Client,
                Some(root),
                80,
                70,
                vec![("payment.amount", int(rng.random_range(500..50_000)))],
            );
        }
        40..60 => {
            let root = trace.span("accounts", "GET /customers/{id}", Server, None, 0, 60, vec![("http.route", text("/customers/{id}"))]);
            trace.span("accounts", "db.query customers", Client, Some(root), 5, 30, vec![("data.classification", text("pii"))]);
            if !breaks {
                trace.span("accounts", "audit.log", Internal, Some(root), 40, 5, vec![("audit.actor", text("support-agent"))]);
            }
        }
        60..75 => {
            let code = if forced.is_some() || rng.random_bool(0.3) { 500 } else { 200 };
            let root = trace.span("orders", "GET /orders", Server, None, 0, 90, vec![("http.response.status_code", int(code))]);
            if code == 500 && !breaks {
                trace.span("orders", "log.error", Internal, Some(root), 80, 1, vec![("exception.type", text("TimeoutError"))]);
            }
        }
        75..88 => {
            let root =
                trace.span("backoffice", "DELETE /admin/users/{id}", Server, None, 0, 50, vec![("http.route", text("/admin/users/{id}"))]);
            if !breaks {
                trace.span("backoffice", "authz.check_admin", Internal, Some(root), 2, 3, vec![]);
            }
            trace.span("backoffice", "db.delete users", Client, Some(root), 10, 20, vec![]);
        }
        88..95 => {
            let root = trace.span("gateway", "GET /stock", Server, None, 0, 400, vec![("http.route", text("/stock"))]);
            for attempt in 0..if breaks { 8 } else { 2 } {
                trace.span(
                    "gateway",
                    "GET inventory",
                    Client,
                    Some(root),
                    10 + attempt * 40,
                    30,
                    vec![("server.address", text("inventory.internal")), ("http.request.resend_count", int(attempt as i64))],
                );
            }
        }
        _ => {
            let duration_ms = rng.random_range(20..120);
            return login(rng, duration_ms);
        }
    }
    trace.request()
}
