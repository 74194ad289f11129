//! `fluo serve` configuration: one typed [`Config`] from flags, `FLUO_*`
//! environment variables and an optional TOML file, defaults in code,
//! validated before anything starts. Precedence: flag, then environment, then
//! file, then default. This is the only module that reads the environment.

use crate::model::otlp::SpanLimits;
use crate::pipeline::AdmissionLimits;
use crate::pipeline::assembler::AssemblyLimits;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// A TOML file whose keys are these options' long names (`trace_idle = "5s"`).
    #[arg(long, env = "FLUO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded sled database (created if missing).
    #[arg(long, env = "FLUO_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// OTLP/gRPC listen address.
    #[arg(long, env = "FLUO_GRPC_ADDR", default_value = "0.0.0.0:4317")]
    pub grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address.
    #[arg(long, env = "FLUO_HTTP_ADDR", default_value = "0.0.0.0:4318")]
    pub http_addr: SocketAddr,
    /// API listen address.
    #[arg(long, env = "FLUO_API_ADDR", default_value = "0.0.0.0:8080")]
    pub api_addr: SocketAddr,
    /// The operator key (manages tenants); generated and printed once if unset.
    #[arg(long, env = "FLUO_OPERATOR_KEY", hide_env_values = true)]
    pub operator_key: Option<String>,
    /// The key session tokens are signed with (≥ 32 bytes, mode 0600); default:
    /// `<data dir>/jwt.key`, generated at first start.
    #[arg(long, env = "FLUO_JWT_KEY_FILE")]
    pub jwt_key_file: Option<PathBuf>,
    /// How long a session token lives (1 minute to 24 hours); the console renews it before it ends.
    #[arg(long, env = "FLUO_SESSION_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub session_ttl: Duration,
    /// How long after sign-in a session can still be renewed (5m to 30 days); no token outlives it.
    #[arg(long, env = "FLUO_SESSION_MAX_LIFETIME", default_value = "12h", value_parser = humantime::parse_duration)]
    pub session_max_lifetime: Duration,
    /// Password checks (argon2id, 19 MiB each) at once; sign-ins beyond get 503 (1 to 256).
    #[arg(long, env = "FLUO_SIGNIN_CONCURRENCY", default_value_t = crate::auth::users::SIGNIN_CONCURRENCY)]
    pub signin_concurrency: usize,
    /// API keys a tenant may hold; creating more gets 409 (1 to 100000).
    #[arg(long, env = "FLUO_MAX_KEYS_PER_TENANT", default_value_t = crate::auth::MAX_KEYS_PER_TENANT)]
    pub max_keys_per_tenant: usize,
    /// Users a tenant may have; creating more gets 409 (1 to 1000000).
    #[arg(long, env = "FLUO_MAX_USERS_PER_TENANT", default_value_t = crate::auth::users::MAX_USERS_PER_TENANT)]
    pub max_users_per_tenant: usize,
    /// Open event streams per API key or user; more get 429 (1 to 1024).
    #[arg(long, env = "FLUO_STREAMS_PER_CREDENTIAL", default_value_t = crate::auth::STREAMS_PER_CREDENTIAL)]
    pub streams_per_credential: usize,
    /// The built web console (`web/dist`, made by `make build`), served at `/` of the API address.
    #[arg(long, env = "FLUO_WEB_DIR", default_value = "web/dist")]
    pub web_dir: PathBuf,
    /// A trace closes after this long without new spans.
    #[arg(long, env = "FLUO_TRACE_IDLE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub trace_idle: Duration,
    /// A trace closes at this age even if spans keep coming.
    #[arg(long, env = "FLUO_TRACE_MAX_AGE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub trace_max_age: Duration,
    /// Evaluated traces are kept this long so that late spans amend them.
    #[arg(long, env = "FLUO_TRACE_RETENTION", default_value = "15m", value_parser = humantime::parse_duration)]
    pub trace_retention: Duration,
    /// The longest a tenant may ask its traces to be kept (its setting
    /// `trace_retention_minutes`); the byte cap still applies to all tenants.
    #[arg(long, env = "FLUO_TRACE_RETENTION_MAX", default_value = "24h", value_parser = humantime::parse_duration)]
    pub trace_retention_max: Duration,
    /// The most bytes the recent-trace store keeps, in MiB; the oldest traces go first.
    #[arg(long, env = "FLUO_TRACE_RETENTION_MIB", default_value_t = 1024)]
    pub trace_retention_mib: u64,
    /// Whether recent traces are stored compressed (`zstd`: about a third of
    /// the disk for a few µs per trace) or not (`none`).
    #[arg(long, env = "FLUO_TRACE_COMPRESSION", value_enum, default_value = "none")]
    pub trace_compression: crate::store::traces::Compression,
    /// When an OTLP request is acknowledged: `fsync` (its spans are on disk,
    /// surviving power loss), `os` (handed to the operating system, surviving
    /// a crash of FLUO but not of the machine) or `off` (no span log: a crash
    /// loses every live trace).
    #[arg(long, env = "FLUO_INGEST_DURABILITY", value_enum, default_value = "fsync")]
    pub ingest_durability: crate::pipeline::segments::Durability,
    /// Size at which a span-log segment is closed and a new one started, in MiB.
    #[arg(long, env = "FLUO_SPAN_LOG_SEGMENT_MIB", default_value_t = 64)]
    pub span_log_segment_mib: u64,
    /// Signal occurrences and their trace snapshots are kept this long (groups stay, with their counts).
    #[arg(long, env = "FLUO_SIGNAL_RETENTION", default_value = "30days", value_parser = humantime::parse_duration)]
    pub signal_retention: Duration,
    /// Bytes of occurrence records and trace snapshots a tenant may keep, in MiB; the oldest go first.
    #[arg(long, env = "FLUO_SIGNAL_RETENTION_MIB", default_value_t = 256)]
    pub signal_retention_mib: u64,
    /// How often retention runs.
    #[arg(long, env = "FLUO_SIGNAL_SWEEP_EVERY", default_value = "60s", value_parser = humantime::parse_duration)]
    pub signal_sweep_every: Duration,
    /// Live traces per tenant; beyond it the tenant's requests are refused for retry.
    #[arg(long, env = "FLUO_MAX_LIVE_TRACES", default_value_t = AssemblyLimits::default().max_live_traces)]
    pub max_live_traces: usize,
    /// Spans per trace; more are dropped and counted.
    #[arg(long, env = "FLUO_MAX_SPANS_PER_TRACE", default_value_t = AssemblyLimits::default().max_spans_per_trace)]
    pub max_spans_per_trace: usize,
    /// Estimated bytes per live trace, in MiB; spans beyond are dropped and counted.
    #[arg(long, env = "FLUO_MAX_TRACE_MIB", default_value_t = 16)]
    pub max_trace_mib: usize,
    /// Sustained spans per second per tenant.
    #[arg(long, env = "FLUO_TENANT_RATE", default_value_t = AdmissionLimits::default().spans_per_second)]
    pub tenant_rate: u64,
    /// Spans a tenant may send at once (default: twice the rate).
    #[arg(long, env = "FLUO_TENANT_BURST")]
    pub tenant_burst: Option<u64>,
    /// Sustained request bytes (protobuf-encoded) per second per tenant; the
    /// bucket holds twice this, and at least one maximal OTLP/HTTP body (20 MiB).
    #[arg(long, env = "FLUO_TENANT_BYTE_RATE", default_value_t = AdmissionLimits::default().bytes_per_second)]
    pub tenant_byte_rate: u64,
    /// Estimated MiB of all live traces of all tenants; beyond, requests are refused for retry.
    #[arg(long, env = "FLUO_LIVE_TRACES_MIB", default_value_t = AssemblyLimits::default().max_live_bytes >> 20)]
    pub live_traces_mib: usize,
    /// Attributes kept per span (and per event, link and resource); more are dropped and counted.
    #[arg(long, env = "FLUO_MAX_ATTRIBUTES_PER_SPAN", default_value_t = SpanLimits::default().max_attributes)]
    pub max_attributes_per_span: usize,
    /// Bytes kept of each attribute value, key and span or event name; longer ones are truncated and counted.
    #[arg(long, env = "FLUO_MAX_ATTRIBUTE_VALUE_BYTES", default_value_t = SpanLimits::default().max_value_bytes)]
    pub max_attribute_value_bytes: usize,
    /// On the API and OTLP/HTTP listeners: a request head must arrive within this (also the idle keep-alive timeout).
    #[arg(long, env = "FLUO_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub http_header_timeout: Duration,
    /// Open connections per listener (API, OTLP/HTTP, OTLP/gRPC); more are closed at once.
    #[arg(long, env = "FLUO_MAX_CONNECTIONS", default_value_t = crate::listen::HttpLimits::default().max_connections)]
    pub max_connections: usize,
    /// Threads evaluating rules (default: available cores).
    #[arg(long, env = "FLUO_EVAL_WORKERS")]
    pub eval_workers: Option<usize>,
    /// Lanes per tenant: how many evaluation workers one tenant's traces can occupy at once (default: --eval-workers).
    #[arg(long, env = "FLUO_EVAL_LANES_PER_TENANT")]
    pub eval_lanes_per_tenant: Option<usize>,
    /// Fuel per rule call.
    #[arg(long, env = "FLUO_RULE_FUEL", default_value_t = crate::rules::Limits::default().fuel_per_call)]
    pub rule_fuel: u64,
    /// Linear memory cap per tenant sandbox, in MiB.
    #[arg(long, env = "FLUO_RULE_MEMORY_MIB", default_value_t = 64)]
    pub rule_memory_mib: usize,
    /// Wall-clock deadline per rule call, in milliseconds.
    #[arg(long, env = "FLUO_RULE_DEADLINE_MS", default_value_t = 100)]
    pub rule_deadline_ms: u64,
    /// Selected spans kept per window rule; beyond, new ones are dropped and counted.
    #[arg(long, env = "FLUO_WINDOW_MAX_SPANS", default_value_t = crate::pipeline::windows::WindowLimits::default().max_spans)]
    pub window_max_spans: usize,
    /// Fuel per window check.
    #[arg(long, env = "FLUO_WINDOW_FUEL", default_value_t = crate::pipeline::windows::WindowLimits::default().sandbox.fuel_per_call)]
    pub window_fuel: u64,
    /// Linear memory cap of a window check's sandbox, in MiB.
    #[arg(long, env = "FLUO_WINDOW_MEMORY_MIB", default_value_t = 1024)]
    pub window_memory_mib: usize,
    /// Wall-clock deadline per window check, in milliseconds.
    #[arg(long, env = "FLUO_WINDOW_DEADLINE_MS", default_value_t = 10_000)]
    pub window_deadline_ms: u64,
    /// Rules a tenant may have; one more is refused with 409 `quota_exceeded`.
    #[arg(long, env = "FLUO_MAX_RULES_PER_TENANT", default_value_t = crate::api::RuleQuotas::default().rules_per_tenant)]
    pub max_rules_per_tenant: usize,
    /// Versions a rule may have; one more is refused with 409 `quota_exceeded`.
    #[arg(long, env = "FLUO_MAX_VERSIONS_PER_RULE", default_value_t = crate::api::RuleQuotas::default().versions_per_rule)]
    pub max_versions_per_rule: u32,
    /// Window rules of one tenant that run; more active ones are not checked.
    #[arg(long, env = "FLUO_WINDOW_MAX_RULES", default_value_t = crate::pipeline::windows::WindowLimits::default().max_rules_per_tenant)]
    pub window_max_rules: usize,
    /// Threads checking windows; tenants share them round-robin, one check per tenant at a time.
    #[arg(long, env = "FLUO_WINDOW_WORKERS", default_value_t = crate::pipeline::windows::WindowLimits::default().workers)]
    pub window_workers: usize,
    /// Wall-clock window-check time per tenant per minute; over it, the tenant's windows are skipped.
    #[arg(long, env = "FLUO_WINDOW_TENANT_BUDGET", default_value = "20s", value_parser = humantime::parse_duration)]
    pub window_tenant_budget: Duration,
    /// Let webhooks reach loopback, private, link-local (cloud metadata) and
    /// other internal addresses (refused by default: webhook URLs are tenant input).
    #[arg(long, env = "FLUO_WEBHOOK_ALLOW_PRIVATE_TARGETS")]
    pub webhook_allow_private_targets: bool,
    /// Webhooks per tenant; one more is refused (409).
    #[arg(long, env = "FLUO_WEBHOOK_MAX_PER_TENANT", default_value_t = crate::webhooks::WebhookSettings::default().max_per_tenant)]
    pub webhook_max_per_tenant: usize,
    /// Webhook deliveries in flight at once (one connection each), across tenants.
    #[arg(long, env = "FLUO_WEBHOOK_WORKERS", default_value_t = crate::webhooks::WebhookSettings::default().workers)]
    pub webhook_workers: usize,
    /// More certificate authorities (a PEM file) that https webhook receivers'
    /// certificates may chain to, besides the system's.
    #[arg(long, env = "FLUO_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,
    /// Where users reach the console (`https://fluo.example.com`); every
    /// notification links to a group there. Default: `http://` and the API address.
    #[arg(long, env = "FLUO_PUBLIC_URL")]
    pub public_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub operator_key: Option<String>,
    pub jwt_key_file: Option<PathBuf>,
    /// Sessions, sign-in concurrency, key and user quotas, streams per credential.
    pub identity: crate::auth::IdentityLimits,
    pub web_dir: PathBuf,
    pub limits: crate::rules::Limits,
    pub assembly: AssemblyLimits,
    pub admission: AdmissionLimits,
    pub trace_retention: crate::store::traces::TraceRetention,
    pub ingest_durability: crate::pipeline::segments::Durability,
    pub span_log_segment_bytes: u64,
    pub signal_retention: crate::signals::Retention,
    pub signal_sweep_every: Duration,
    pub eval_workers: usize,
    /// Lanes per tenant (each with its own sandbox); at most `eval_workers` are busy at once.
    pub eval_lanes_per_tenant: usize,
    pub windows: crate::pipeline::windows::WindowLimits,
    pub rule_quotas: crate::api::RuleQuotas,
    pub webhooks: crate::webhooks::WebhookSettings,
    pub span_limits: SpanLimits,
    pub listeners: crate::listen::HttpLimits,
}

const FILE_KEYS: &[&str] = &[
    "data_dir",
    "grpc_addr",
    "http_addr",
    "api_addr",
    "operator_key",
    "jwt_key_file",
    "session_ttl",
    "session_max_lifetime",
    "signin_concurrency",
    "max_keys_per_tenant",
    "max_users_per_tenant",
    "streams_per_credential",
    "web_dir",
    "trace_idle",
    "trace_max_age",
    "trace_retention",
    "trace_retention_max",
    "trace_retention_mib",
    "trace_compression",
    "ingest_durability",
    "span_log_segment_mib",
    "signal_retention",
    "signal_retention_mib",
    "signal_sweep_every",
    "max_live_traces",
    "max_spans_per_trace",
    "max_trace_mib",
    "tenant_rate",
    "tenant_burst",
    "tenant_byte_rate",
    "live_traces_mib",
    "max_attributes_per_span",
    "max_attribute_value_bytes",
    "http_header_timeout",
    "max_connections",
    "eval_workers",
    "eval_lanes_per_tenant",
    "rule_fuel",
    "rule_memory_mib",
    "rule_deadline_ms",
    "window_max_spans",
    "window_fuel",
    "window_memory_mib",
    "window_deadline_ms",
    "max_rules_per_tenant",
    "max_versions_per_rule",
    "window_max_rules",
    "window_workers",
    "window_tenant_budget",
    "webhook_allow_private_targets",
    "webhook_max_per_tenant",
    "webhook_workers",
    "webhook_ca_file",
    "public_url",
];

/// Reads the config file named by `--config`/`FLUO_CONFIG` (if any) and
/// exports its values as `FLUO_*` variables that are not already set, so that
/// clap applies the precedence flag > environment > file > default. Call it
/// first thing in `main`, before any thread exists.
pub fn apply_config_file(args: &[String]) -> Result<()> {
    let from_args = args.iter().enumerate().find_map(|(index, arg)| {
        arg.strip_prefix("--config=").map(str::to_string).or_else(|| (arg == "--config").then(|| args.get(index + 1).cloned()).flatten())
    });
    let Some(path) = from_args.or_else(|| std::env::var("FLUO_CONFIG").ok()) else { return Ok(()) };
    let text = std::fs::read_to_string(&path).with_context(|| format!("read config file {path}"))?;
    let table: toml::Table = text.parse().with_context(|| format!("parse config file {path}"))?;
    for (key, value) in table {
        let key = key.replace('-', "_");
        if !FILE_KEYS.contains(&key.as_str()) {
            bail!("config file {path}: unknown key {key:?} (known: {})", FILE_KEYS.join(", "));
        }
        let value = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(number) => number.to_string(),
            other => bail!("config file {path}: {key} must be a string or an integer, not {other}"),
        };
        let variable = format!("FLUO_{}", key.to_ascii_uppercase());
        if std::env::var_os(&variable).is_none() {
            // SAFETY: called at the start of `main`, before any other thread
            // exists, so nothing reads the environment concurrently.
            unsafe { std::env::set_var(variable, value) };
        }
    }
    Ok(())
}

impl Config {
    pub fn from_args(args: ServeArgs) -> Result<Config> {
        if args.rule_fuel < 1_000_000 {
            bail!("--rule-fuel must be at least 1000000 (a rule needs some fuel to run at all)");
        }
        if !(4..=4096).contains(&args.rule_memory_mib) {
            bail!("--rule-memory-mib must be between 4 and 4096");
        }
        if !(1..=60_000).contains(&args.rule_deadline_ms) {
            bail!("--rule-deadline-ms must be between 1 and 60000");
        }
        if args.trace_idle < Duration::from_millis(10) || args.trace_idle > args.trace_max_age {
            bail!("--trace-idle must be at least 10ms and at most --trace-max-age");
        }
        if args.trace_max_age > Duration::from_secs(3600) {
            bail!("--trace-max-age must be at most 1h");
        }
        if args.trace_retention < Duration::from_secs(60) || args.trace_retention > args.trace_retention_max {
            bail!("--trace-retention must be at least 1m and at most --trace-retention-max");
        }
        if args.trace_retention_max > Duration::from_secs(30 * 24 * 3600) {
            bail!("--trace-retention-max must be at most 30d");
        }
        if args.max_live_traces == 0 || args.max_spans_per_trace == 0 || args.max_trace_mib == 0 || args.tenant_rate == 0 {
            bail!("--max-live-traces, --max-spans-per-trace, --max-trace-mib and --tenant-rate must be positive");
        }
        if !(1..=10_000).contains(&args.max_attributes_per_span) {
            bail!("--max-attributes-per-span must be between 1 and 10000");
        }
        if !(16..=(1 << 20)).contains(&args.max_attribute_value_bytes) {
            bail!("--max-attribute-value-bytes must be between 16 and 1048576");
        }
        if args.tenant_byte_rate < 1024 {
            bail!("--tenant-byte-rate must be at least 1024 (bytes per second)");
        }
        if args.live_traces_mib < args.max_trace_mib || args.live_traces_mib > (1 << 30) {
            bail!("--live-traces-mib must be at least --max-trace-mib");
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&args.http_header_timeout) {
            bail!("--http-header-timeout must be between 1s and 10m");
        }
        if !(1..=1_000_000).contains(&args.max_connections) {
            bail!("--max-connections must be between 1 and 1000000");
        }
        let limits = crate::rules::Limits {
            fuel_per_call: args.rule_fuel,
            memory_bytes: args.rule_memory_mib << 20,
            deadline: Duration::from_millis(args.rule_deadline_ms),
            ..crate::rules::Limits::default()
        };
        if args.window_max_spans == 0 || args.window_fuel < 1_000_000 {
            bail!("--window-max-spans must be positive and --window-fuel at least 1000000");
        }
        if !(4..=4096).contains(&args.window_memory_mib) || !(1..=600_000).contains(&args.window_deadline_ms) {
            bail!("--window-memory-mib must be between 4 and 4096 and --window-deadline-ms between 1 and 600000");
        }
        if !(Duration::from_secs(60)..=Duration::from_secs(24 * 3600)).contains(&args.session_ttl) {
            bail!("--session-ttl must be between 1m and 24h");
        }
        if !(1..=1000).contains(&args.window_max_rules) || !(1..=64).contains(&args.window_workers) {
            bail!("--window-max-rules must be between 1 and 1000 and --window-workers between 1 and 64");
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&args.window_tenant_budget) {
            bail!("--window-tenant-budget must be between 100ms and 1h");
        }
        if !(Duration::from_secs(300)..=Duration::from_secs(30 * 24 * 3600)).contains(&args.session_max_lifetime) {
            bail!("--session-max-lifetime must be between 5m and 30 days");
        }
        if !(1..=256).contains(&args.signin_concurrency) {
            bail!("--signin-concurrency must be between 1 and 256");
        }
        if !(1..=100_000).contains(&args.max_keys_per_tenant) || !(1..=1_000_000).contains(&args.max_users_per_tenant) {
            bail!("--max-keys-per-tenant must be between 1 and 100000 and --max-users-per-tenant between 1 and 1000000");
        }
        if !(1..=1024).contains(&args.streams_per_credential) {
            bail!("--streams-per-credential must be between 1 and 1024");
        }
        let identity = crate::auth::IdentityLimits {
            session_ttl: args.session_ttl,
            session_max_lifetime: args.session_max_lifetime,
            signin_concurrency: args.signin_concurrency,
            max_keys_per_tenant: args.max_keys_per_tenant,
            max_users_per_tenant: args.max_users_per_tenant,
            streams_per_credential: args.streams_per_credential,
        };
        let windows = crate::pipeline::windows::WindowLimits {
            max_spans: args.window_max_spans,
            max_rules_per_tenant: args.window_max_rules,
            workers: args.window_workers,
            tenant_budget_per_minute: args.window_tenant_budget,
            sandbox: crate::rules::Limits {
                fuel_per_call: args.window_fuel,
                memory_bytes: args.window_memory_mib << 20,
                deadline: Duration::from_millis(args.window_deadline_ms),
                ..crate::pipeline::windows::WindowLimits::default().sandbox
            },
        };
        if args.max_rules_per_tenant == 0 || args.max_versions_per_rule == 0 {
            bail!("--max-rules-per-tenant and --max-versions-per-rule must be positive");
        }
        if !(1..=10_000).contains(&args.webhook_max_per_tenant) || !(1..=256).contains(&args.webhook_workers) {
            bail!("--webhook-max-per-tenant must be between 1 and 10000 and --webhook-workers between 1 and 256");
        }
        if let Some(path) = &args.webhook_ca_file {
            crate::webhooks::tls::read_ca_file(path).map_err(|error| anyhow::anyhow!("--webhook-ca-file {error}"))?;
        }
        let public_url = match &args.public_url {
            Some(url) => {
                let uri: http::Uri = url.parse().map_err(|_| anyhow::anyhow!("--public-url {url:?} is not a URL"))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() || uri.query().is_some() {
                    bail!("--public-url must be http(s)://host[:port][/path], without a query");
                }
                url.trim_end_matches('/').to_string()
            }
            None => format!("http://{}", args.api_addr),
        };
        let webhooks = crate::webhooks::WebhookSettings {
            max_per_tenant: args.webhook_max_per_tenant,
            workers: args.webhook_workers,
            allow_private_targets: args.webhook_allow_private_targets,
            ca_file: args.webhook_ca_file.clone(),
            public_url,
        };
        let workers = args.eval_workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        if args.eval_lanes_per_tenant.is_some_and(|lanes| !(1..=64).contains(&lanes)) {
            bail!("--eval-lanes-per-tenant must be between 1 and 64");
        }
        Ok(Config {
            data_dir: args.data_dir,
            grpc_addr: args.grpc_addr,
            http_addr: args.http_addr,
            api_addr: args.api_addr,
            operator_key: args.operator_key,
            jwt_key_file: args.jwt_key_file,
            identity,
            web_dir: args.web_dir,
            limits,
            assembly: AssemblyLimits {
                idle: args.trace_idle,
                max_age: args.trace_max_age,
                max_live_traces: args.max_live_traces,
                max_spans_per_trace: args.max_spans_per_trace,
                max_trace_bytes: args.max_trace_mib.saturating_mul(1 << 20),
                max_live_bytes: args.live_traces_mib.saturating_mul(1 << 20),
            },
            admission: AdmissionLimits {
                spans_per_second: args.tenant_rate,
                burst_spans: args.tenant_burst.unwrap_or(args.tenant_rate.saturating_mul(2)).max(1),
                bytes_per_second: args.tenant_byte_rate,
                burst_bytes: args.tenant_byte_rate.saturating_mul(2).max(crate::ingest::MAX_HTTP_BODY as u64),
                ..AdmissionLimits::default()
            },
            span_limits: SpanLimits {
                max_attributes: args.max_attributes_per_span,
                max_value_bytes: args.max_attribute_value_bytes,
                ..SpanLimits::default()
            },
            listeners: crate::listen::HttpLimits { header_timeout: args.http_header_timeout, max_connections: args.max_connections },
            trace_retention: crate::store::traces::TraceRetention {
                age: args.trace_retention,
                max_age: args.trace_retention_max,
                max_bytes: args.trace_retention_mib.clamp(16, 1 << 20) << 20,
                compression: args.trace_compression,
                fsync: args.ingest_durability == crate::pipeline::segments::Durability::Fsync,
            },
            ingest_durability: args.ingest_durability,
            span_log_segment_bytes: args.span_log_segment_mib.clamp(1, 4096) << 20,
            signal_retention: crate::signals::Retention {
                max_age_ms: args.signal_retention.as_millis().try_into().unwrap_or(u64::MAX),
                max_bytes: args.signal_retention_mib.saturating_mul(1 << 20),
            },
            signal_sweep_every: args.signal_sweep_every.max(Duration::from_secs(1)),
            eval_workers: workers.clamp(1, 64),
            eval_lanes_per_tenant: args.eval_lanes_per_tenant.unwrap_or(workers).clamp(1, 64),
            windows,
            rule_quotas: crate::api::RuleQuotas {
                rules_per_tenant: args.max_rules_per_tenant,
                versions_per_rule: args.max_versions_per_rule,
            },
            webhooks,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        serve: super::ServeArgs,
    }

    fn config(extra: &[&str]) -> super::Config {
        let mut args = vec!["fluo", "--data-dir", "/nonexistent-fluo-test", "--operator-key", "test-operator-key-0123456789abcdef"];
        args.extend_from_slice(extra);
        super::Config::from_args(Args::parse_from(args).serve).unwrap()
    }

    #[test]
    fn log_and_trace_store_sizes_are_clamped() {
        let low = config(&["--span-log-segment-mib", "0", "--trace-retention-mib", "0"]);
        assert_eq!((low.span_log_segment_bytes, low.trace_retention.max_bytes), (1 << 20, 16 << 20));
        let high = config(&["--span-log-segment-mib", "999999", "--trace-retention-mib", "18446744073709551615"]);
        assert_eq!((high.span_log_segment_bytes, high.trace_retention.max_bytes), (4096 << 20, 1 << 40));
        let fsync = config(&[]);
        assert!(fsync.trace_retention.fsync, "fsync durability syncs the trace store too");
        assert!(!config(&["--ingest-durability", "os"]).trace_retention.fsync);
    }

    #[test]
    fn lanes_per_tenant_default_to_the_workers_and_are_bounded() {
        let default = config(&["--eval-workers", "3"]);
        assert_eq!((default.eval_workers, default.eval_lanes_per_tenant), (3, 3));
        assert_eq!(config(&["--eval-workers", "4", "--eval-lanes-per-tenant", "1"]).eval_lanes_per_tenant, 1);
        for bad in ["0", "65"] {
            let mut args = vec!["fluo", "--data-dir", "/nonexistent-fluo-test", "--operator-key", "test-operator-key-0123456789abcdef"];
            args.extend_from_slice(&["--eval-lanes-per-tenant", bad]);
            let error = super::Config::from_args(Args::parse_from(args).serve).err().expect("refused").to_string();
            assert!(error.contains("--eval-lanes-per-tenant"), "{error}");
        }
    }
}
