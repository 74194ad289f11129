//! Per-tenant notification channels ("webhooks" in the API): which group
//! events go where (severities, rules, services), in which shape (FLUO's own
//! body, Slack, PagerDuty Events v2 or Alertmanager: [`payload`]), throttled
//! per group and repeated while a group stays open; the delivery of each as an
//! HTTP POST signed with HMAC-SHA256 over `"{timestamp}.{body}"`, retries with
//! exponential backoff, a test send, and a delivery log per channel (the
//! newest [`DELIVERIES_KEPT`], deleted with the channel).
//! Owns the sled trees `webhooks` and `webhook_deliveries` (and, through
//! [`outbox`], `webhook_outbox`: deliveries survive a restart).
//!
//! A webhook URL makes the server connect somewhere, so the target is checked
//! on the address actually connected to: names are resolved by
//! [`CheckedResolver`] and every loopback, private, shared (100.64/10),
//! link-local (metadata at 169.254.169.254), unique-local, multicast,
//! documentation and unspecified address is refused, as are IPv4-mapped,
//! -compatible, NAT64 and 6to4 spellings of them ([`refused_ip`]); literal
//! addresses and the numeric IPv4 spellings (`127.1`, `2130706433`,
//! `0x7f000001`) are refused already at creation. `--webhook-allow-private-targets`
//! lifts this for operators whose receivers are internal (and for tests).
//!
//! Deliveries go through one bounded queue per tenant (at most
//! [`QUEUE_PER_TENANT`] signals waiting or retrying), taken round-robin by a
//! fixed pool of workers, each holding at most one connection; a deleted
//! webhook gets no further attempt. The log records delivered or not, never
//! the receiver's answer (status codes or errors of internal services are not
//! shown to the tenant).
//!
//! Deliveries speak `https://` (rustls, with the system's roots and an
//! optional CA file: [`tls`]) and plain `http://`.

use crate::model::tenant::TenantId;

use crate::model::time::now_ms;
use crate::model::time::rfc3339;
use crate::signals::Signal;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Attempts per delivery; waits between them double from 1 s.
pub const ATTEMPTS: u32 = 5;

/// Delivery attempts kept per webhook (older ones are deleted).
pub const DELIVERIES_KEPT: usize = 100;

/// Signals a tenant may have waiting or retrying for delivery at once; more
/// are dropped (counted, logged at most every 10 s).
pub const QUEUE_PER_TENANT: usize = 1000;

/// The longest one delivery attempt (connect, send, answer) may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// (tenant, channel, group) send times kept for throttles and reminders, at most.
pub const MAX_REMEMBERED_SENDS: usize = 100_000;

/// What the delivery log says when FLUO refused the target address.
pub const REFUSED_TARGET: &str = "target address not allowed (loopback, private, link-local, metadata or unspecified)";

/// What bounds and shapes deliveries.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Webhooks per tenant; one more is refused with 409.
    pub max_per_tenant: usize,
    /// Deliveries in flight at once (one connection each), across tenants.
    pub workers: usize,
    /// Whether loopback, private, link-local and the like may be targets.
    pub allow_private_targets: bool,
    /// More certificate authorities (PEM) that receivers' certificates may chain to.
    pub ca_file: Option<std::path::PathBuf>,
    /// Where users reach the console: every body links to `{public_url}/signals/{id}`.
    pub public_url: String,
}

impl Default for WebhookSettings {
    fn default() -> WebhookSettings {
        WebhookSettings {
            max_per_tenant: 20,
            workers: 4,
            allow_private_targets: false,
            ca_file: None,
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("a tenant may have at most {0} webhooks; delete one first")]
    Quota(usize),
    #[error("storage error: {0}")]
    Store(#[from] sled::Error),
}

mod outbox;
pub mod payload;
mod rate;
mod remind;
mod targets;
pub mod tls;
mod types;
pub use payload::ChannelKind;
pub use rate::Rate;
pub use remind::{REMIND_EVERY, remind};
use targets::is_refused;
pub use targets::{CheckedResolver, GuardedConnector, RefusedTarget, loose_ipv4, refused_host, refused_ip};
pub use types::{Delivery, MAX_HEADERS, MAX_INTERVAL_MINUTES, Webhook, WebhookInfo, WebhookSpec};

/// Whether `hook` wants events of `signal` (its severity, rule and service filters).
fn wants(hook: &Webhook, signal: &Signal) -> bool {
    (hook.severities.is_empty() || hook.severities.contains(&signal.severity))
        && (hook.rules.is_empty() || hook.rules.iter().any(|rule| rule == &signal.rule_id || rule == &signal.rule_name))
        && (hook.services.is_empty()
            || signal.witnesses.iter().any(|witness| witness.service.as_ref().is_some_and(|service| hook.services.contains(service))))
        && hook.labels.iter().all(|(name, value)| signal.labels.get(name) == Some(value))
}

/// An error with its causes, `: `-separated (hyper's client errors say little at the top).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why a channel's extra headers are refused, if they are: too many, a name
/// that is not an HTTP token or that FLUO sets itself (or that changes how the
/// request is framed or routed), a value that is empty, too long or not
/// visible ASCII (no CR or LF: no header injection).
fn check_headers(headers: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    if headers.len() > MAX_HEADERS {
        return Err(format!("headers: at most {MAX_HEADERS}"));
    }
    const RESERVED: [&str; 10] =
        ["host", "connection", "transfer-encoding", "te", "upgrade", "keep-alive", "user-agent", "expect", "trailer", "forwarded"];
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        let token = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte));
        if !token {
            return Err(format!("header name {name:?} must be 1 to 64 token characters"));
        }
        if RESERVED.contains(&lower.as_str())
            || lower.starts_with("content-")
            || lower.starts_with("x-fluo-")
            || lower.starts_with("proxy-")
        {
            return Err(format!("header {name:?} is set by FLUO or the connection, not by a channel"));
        }
        if value.is_empty() || value.len() > 1024 || !value.bytes().all(|byte| byte == b' ' || byte == b'\t' || byte.is_ascii_graphic()) {
            return Err(format!("header {name:?}: its value must be 1 to 1024 visible ASCII characters"));
        }
    }
    Ok(())
}

/// Events that say a group fires (throttled); the others change its state.
fn fires(kind: &str) -> bool {
    matches!(kind, "signal.created" | "signal.regressed" | "signal.snooze_ended" | "signal.rate_exceeded")
}

/// One signal on its way to one webhook, as kept in the outbox.
struct Job {
    tenant: TenantId,
    hook_id: String,
    signal_id: String,
    body: Arc<str>,
    attempt: u32,
    /// Seconds since the epoch, signed with the body (the same on every attempt).
    timestamp: u64,
    /// Its outbox key.
    key: Vec<u8>,
    /// `d_<32 hex>`, sent as `x-fluo-delivery`.
    id: String,
}

/// Per-tenant queues taken round-robin; `pending` also counts jobs waiting
/// for their retry.
#[derive(Default)]
struct Queue {
    waiting: HashMap<TenantId, VecDeque<Job>>,
    ring: VecDeque<TenantId>,
    pending: HashMap<TenantId, usize>,
}

pub struct Webhooks {
    hooks: sled::Tree,
    deliveries: sled::Tree,
    client: tls::Client,
    limits: WebhookSettings,
    queue: Mutex<Queue>,
    ready: tokio::sync::Notify,
    /// Serializes creation so that the per-tenant quota holds.
    creating: Mutex<()>,
    /// Signals not queued because their tenant's queue was full.
    pub dropped: AtomicU64,
    last_warning_ms: AtomicU64,
    /// Occurrence counts of webhooks with a rate threshold.
    rates: rate::Rates,
    /// Per tenant, its webhooks with a rate threshold (read per occurrence,
    /// so kept in memory; dropped on every change of the tenant's webhooks).
    rated: Mutex<HashMap<TenantId, Arc<Vec<Webhook>>>>,
    /// Deliveries not yet finished ([`outbox`]).
    outbox: sled::Tree,
    /// Deliveries written to the outbox by [`Webhooks::stage`], waiting for
    /// the flush of their signals: (tenant, signal id, event type) → jobs.
    staged: Mutex<HashMap<(TenantId, String, String), Vec<Job>>>,
    /// When each (tenant, channel, group) was last told of: for throttles and
    /// reminders. In memory: after a restart, a throttled group may be
    /// notified once more and reminders start over.
    sent: Mutex<HashMap<(TenantId, String, String), u64>>,
    /// Notifications not sent because of a channel's throttle.
    pub throttled: AtomicU64,
    /// Delivery attempts by channel kind and outcome (`delivered`, `failed`,
    /// `refused`, `gave_up`), for `/metrics`.
    outcomes: Mutex<std::collections::BTreeMap<(ChannelKind, &'static str), u64>>,
    /// Each tenant's trace-link template (its settings), for the link to the
    /// group's trace in the tenant's own backend that bodies carry.
    trace_links: Mutex<HashMap<TenantId, Arc<str>>>,
}

fn prefix(tenant: &TenantId) -> Vec<u8> {
    crate::store::key::Key::tenant(tenant).into_vec()
}

fn hook_key(tenant: &TenantId, id: &str) -> Vec<u8> {
    let mut key = prefix(tenant);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The prefix of a webhook's delivery log.
fn log_prefix(tenant: &TenantId, id: &str) -> Vec<u8> {
    let mut key = hook_key(tenant, id);
    key.push(b'/');
    key
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "{timestamp}.{body}").
pub fn signature(secret: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Webhooks {
    pub fn open(db: &sled::Db, limits: WebhookSettings) -> Result<Webhooks, WebhookError> {
        // No idle connections are kept: at most one open connection per worker.
        let client = tls::client(limits.allow_private_targets, limits.ca_file.as_deref()).map_err(WebhookError::Invalid)?;
        let webhooks = Webhooks {
            hooks: db.open_tree("webhooks")?,
            deliveries: db.open_tree("webhook_deliveries")?,
            client,
            limits,
            queue: Mutex::new(Queue::default()),
            ready: tokio::sync::Notify::new(),
            creating: Mutex::new(()),
            dropped: AtomicU64::new(0),
            last_warning_ms: AtomicU64::new(0),
            rates: rate::Rates::default(),
            rated: Mutex::new(HashMap::new()),
            outbox: db.open_tree("webhook_outbox")?,
            staged: Mutex::new(HashMap::new()),
            sent: Mutex::new(HashMap::new()),
            throttled: AtomicU64::new(0),
            outcomes: Mutex::new(std::collections::BTreeMap::new()),
            trace_links: Mutex::new(HashMap::new()),
        };
        // What a previous run left undelivered goes out first, whatever the queue bound.
        let pending = webhooks.pending_in_outbox()?;
        if !pending.is_empty() {
            tracing::info!(deliveries = pending.len(), "webhook deliveries resumed from the outbox");
        }
        for job in pending {
            *webhooks.lock().pending.entry(job.tenant.clone()).or_default() += 1;
            webhooks.enqueue(job, false);
        }
        Ok(webhooks)
    }

    /// Registers a webhook; the returned secret is shown once.
    pub fn create(&self, tenant: &TenantId, spec: WebhookSpec) -> Result<(Webhook, String), WebhookError> {
        let invalid = |message: &str| Err(WebhookError::Invalid(message.into()));
        if let Some(rate) = spec.rate {
            rate.check().map_err(WebhookError::Invalid)?;
        }
        if spec.url.len() > 2048 {
            return invalid("url must be at most 2048 bytes");
        }
        let uri: http::Uri = spec.url.parse().map_err(|_| WebhookError::Invalid("url is not a URL".into()))?;
        match uri.scheme_str() {
            Some("http" | "https") if uri.host().is_some_and(|host| !host.is_empty()) => {}
            _ => return invalid("url must be https://host[:port]/path or http://host[:port]/path"),
        }
        if !self.limits.allow_private_targets && uri.host().is_some_and(refused_host) {
            return Err(WebhookError::Invalid(format!("url: {REFUSED_TARGET}")));
        }
        if spec.name.len() > 100 {
            return invalid("name must be at most 100 bytes");
        }
        if spec.rules.len() > 100 || spec.services.len() > 100 || spec.rules.iter().chain(&spec.services).any(|item| item.len() > 256) {
            return invalid("rules and services: at most 100 each, each at most 256 bytes");
        }
        crate::model::rule::check_labels(&spec.labels).map_err(|message| WebhookError::Invalid(format!("labels: {message}")))?;
        for (field, minutes) in [("throttle_minutes", spec.throttle_minutes), ("repeat_minutes", spec.repeat_minutes)] {
            if minutes.is_some_and(|minutes| !(1..=MAX_INTERVAL_MINUTES).contains(&minutes)) {
                return Err(WebhookError::Invalid(format!("{field} must be between 1 and {MAX_INTERVAL_MINUTES}")));
            }
        }
        match (spec.kind, spec.routing_key.as_deref()) {
            (ChannelKind::Pagerduty, None) => return invalid("a pagerduty channel needs its routing_key"),
            (ChannelKind::Pagerduty, Some(key)) if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) => {
                return invalid("routing_key must be 1 to 128 visible ASCII characters");
            }
            (ChannelKind::Pagerduty, Some(_)) => {}
            (_, Some(_)) => return invalid("routing_key is for pagerduty channels only"),
            (_, None) => {}
        }
        check_headers(&spec.headers).map_err(WebhookError::Invalid)?;
        let _creating = self.creating.lock().unwrap_or_else(|poison| poison.into_inner());
        if self.hooks.scan_prefix(prefix(tenant)).count() >= self.limits.max_per_tenant {
            return Err(WebhookError::Quota(self.limits.max_per_tenant));
        }
        let mut bytes = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let secret = format!("whsec_{}", hex::encode(bytes));
        let mut id = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
        let hook = Webhook {
            id: format!("w_{}", hex::encode(id)),
            url: spec.url,
            kind: spec.kind,
            name: spec.name,
            severities: spec.severities,
            rules: spec.rules,
            services: spec.services,
            labels: spec.labels,
            rate: spec.rate,
            routing_key: spec.routing_key,
            throttle_minutes: spec.throttle_minutes,
            repeat_minutes: spec.repeat_minutes,
            headers: spec.headers,
            secret: secret.clone(),
            created_at: rfc3339(now_ms()),
        };
        self.hooks
            .insert(hook_key(tenant, &hook.id), serde_json::to_vec(&hook).map_err(|error| WebhookError::Invalid(error.to_string()))?)?;
        self.hooks.flush()?;
        self.rated.lock().unwrap_or_else(|poison| poison.into_inner()).remove(tenant);
        Ok((hook, secret))
    }

    pub fn list(&self, tenant: &TenantId) -> Result<Vec<Webhook>, WebhookError> {
        Ok(self
            .hooks
            .scan_prefix(prefix(tenant))
            .values()
            .filter_map(|value| value.ok())
            .filter_map(|value| serde_json::from_slice(&value).ok())
            .collect())
    }

    fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<Webhook>, WebhookError> {
        Ok(self.hooks.get(hook_key(tenant, id))?.and_then(|value| serde_json::from_slice(&value).ok()))
    }

    /// Deletes a webhook and its delivery log; queued deliveries to it stop.
    pub fn delete(&self, tenant: &TenantId, id: &str) -> Result<bool, WebhookError> {
        let removed = self.hooks.remove(hook_key(tenant, id))?.is_some();
        if removed {
            self.delete_log(tenant, id)?;
            self.rates.forget(tenant, id);
            self.rated.lock().unwrap_or_else(|poison| poison.into_inner()).remove(tenant);
        }
        self.hooks.flush()?;
        Ok(removed)
    }

    fn delete_log(&self, tenant: &TenantId, id: &str) -> Result<(), WebhookError> {
        let mut batch = sled::Batch::default();
        for key in self.deliveries.scan_prefix(log_prefix(tenant, id)).keys() {
            batch.remove(key?);
        }
        self.deliveries.apply_batch(batch)?;
        Ok(())
    }

    /// Delivery attempts kept for a webhook (at most [`DELIVERIES_KEPT`]).
    pub fn logged(&self, tenant: &TenantId, id: &str) -> usize {
        self.deliveries.scan_prefix(log_prefix(tenant, id)).count()
    }

    /// The newest deliveries of a webhook (at most 100), newest first; `None` if the tenant has no such webhook.
    pub fn deliveries(&self, tenant: &TenantId, id: &str) -> Result<Option<Vec<Delivery>>, WebhookError> {
        if !self.hooks.contains_key(hook_key(tenant, id))? {
            return Ok(None);
        }
        Ok(Some(
            self.deliveries
                .scan_prefix(log_prefix(tenant, id))
                .values()
                .rev()
                .take(DELIVERIES_KEPT)
                .filter_map(|value| value.ok())
                .filter_map(|value| serde_json::from_slice(&value).ok())
                .collect(),
        ))
    }

    /// Appends to a webhook's log (if it still exists) and drops the oldest
    /// entries beyond [`DELIVERIES_KEPT`].
    fn log(&self, tenant: &TenantId, hook_id: &str, delivery: &Delivery) -> Result<(), WebhookError> {
        if !self.hooks.contains_key(hook_key(tenant, hook_id))? {
            return Ok(());
        }
        let mut key = log_prefix(tenant, hook_id);
        key.extend_from_slice(&now_ms().to_be_bytes());
        key.extend_from_slice(delivery.signal_id.as_bytes());
        key.extend_from_slice(&delivery.attempt.to_be_bytes());
        let value = serde_json::to_vec(delivery).map_err(|error| WebhookError::Invalid(error.to_string()))?;
        self.deliveries.insert(key, value)?;
        let kept = self.logged(tenant, hook_id);
        if kept > DELIVERIES_KEPT {
            let mut batch = sled::Batch::default();
            for old in self.deliveries.scan_prefix(log_prefix(tenant, hook_id)).keys().take(kept - DELIVERIES_KEPT) {
                batch.remove(old?);
            }
            self.deliveries.apply_batch(batch)?;
        }
        Ok(())
    }

    /// Logs a warning a tenant can cause at most every 10 s.
    fn warn_limited(&self, message: &'static str, tenant: &TenantId) {
        let now = now_ms();
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 10_000
            && self.last_warning_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(tenant = %tenant, dropped_total = self.dropped.load(Ordering::Relaxed), "{message}");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Puts a job in its tenant's queue; a new one only if the tenant has room.
    fn enqueue(&self, job: Job, new: bool) -> bool {
        let mut queue = self.lock();
        let pending = queue.pending.entry(job.tenant.clone()).or_default();
        if new {
            if *pending >= QUEUE_PER_TENANT {
                drop(queue);
                self.done(&job);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.warn_limited("webhook queue full; signal not delivered", &job.tenant);
                return false;
            }
            *pending += 1;
        }
        let tenant = job.tenant.clone();
        let waiting = queue.waiting.entry(tenant.clone()).or_default();
        waiting.push_back(job);
        if waiting.len() == 1 {
            queue.ring.push_back(tenant);
        }
        drop(queue);
        self.ready.notify_one();
        true
    }

    /// The next job, one tenant after the other.
    fn next_job(&self) -> Option<Job> {
        let mut queue = self.lock();
        let tenant = queue.ring.pop_front()?;
        let waiting = queue.waiting.get_mut(&tenant)?;
        let job = waiting.pop_front();
        if waiting.is_empty() {
            queue.waiting.remove(&tenant);
        } else {
            queue.ring.push_back(tenant);
        }
        job
    }

    fn finish(&self, tenant: &TenantId) {
        let mut queue = self.lock();
        if let Some(pending) = queue.pending.get_mut(tenant) {
            *pending = pending.saturating_sub(1);
            if *pending == 0 {
                queue.pending.remove(tenant);
            }
        }
    }

    /// Delivery attempts by (channel kind, outcome), and the notifications
    /// not sent: dropped (a full queue) and throttled.
    pub fn outcomes(&self) -> (Vec<(ChannelKind, &'static str, u64)>, u64, u64) {
        let outcomes = self.outcomes.lock().unwrap_or_else(|poison| poison.into_inner());
        (
            outcomes.iter().map(|((kind, outcome), count)| (*kind, *outcome, *count)).collect(),
            self.dropped.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed),
        )
    }

    /// Signals of `tenant` waiting or retrying.
    pub fn pending(&self, tenant: &TenantId) -> usize {
        self.lock().pending.get(tenant).copied().unwrap_or(0)
    }

    /// Queues `signal` for every webhook of `tenant` that wants it, as an
    /// event of type `kind` (`signal.created`, `signal.regressed`,
    /// `signal.status_changed`, `signal.snooze_ended`). Reads the store: call
    /// it from a thread that may block (the event hub's publishers are the
    /// evaluator's, window and API blocking threads).
    ///
    /// Deliveries [`Webhooks::stage`]d for this event start now (their
    /// signals were flushed since); otherwise they are written to the outbox
    /// and flushed first.
    pub fn dispatch(&self, tenant: &TenantId, signal: &Signal, kind: &str) {
        let staged =
            self.staged.lock().unwrap_or_else(|poison| poison.into_inner()).remove(&(tenant.clone(), signal.id.clone(), kind.into()));
        let jobs = match staged {
            Some(jobs) => jobs,
            None => {
                let jobs = self.jobs(tenant, signal, kind);
                if !jobs.is_empty()
                    && let Err(error) = self.outbox.flush()
                {
                    tracing::error!(tenant = %tenant, %error, "webhook outbox not flushed");
                }
                jobs
            }
        };
        for job in jobs {
            self.enqueue(job, true);
        }
    }

    /// Writes the deliveries of an event to the outbox before the flush that
    /// makes its signal durable (the evaluator's group commit): both are on
    /// disk together, and [`Webhooks::dispatch`] of the same event, after the
    /// flush, starts them.
    pub fn stage(&self, tenant: &TenantId, signal: &Signal, kind: &str) {
        let jobs = self.jobs(tenant, signal, kind);
        if !jobs.is_empty() {
            self.staged.lock().unwrap_or_else(|poison| poison.into_inner()).insert((tenant.clone(), signal.id.clone(), kind.into()), jobs);
        }
    }

    /// The group's page in the console.
    pub fn link(&self, signal_id: &str) -> String {
        format!("{}/signals/{signal_id}", self.limits.public_url.trim_end_matches('/'))
    }

    /// Sets (or, with `None`, clears) the tenant's trace-link template.
    pub fn set_trace_link(&self, tenant: &TenantId, template: Option<&str>) {
        let mut links = self.trace_links.lock().unwrap_or_else(|poison| poison.into_inner());
        match template {
            Some(template) => links.insert(tenant.clone(), template.into()),
            None => links.remove(tenant),
        };
    }

    /// The body `hook` gets for event `kind` of `signal`.
    fn body(&self, tenant: &TenantId, hook: &Webhook, signal: &Signal, kind: &str, rate: Option<serde_json::Value>) -> Arc<str> {
        let link = self.link(&signal.id);
        let template = self.trace_links.lock().unwrap_or_else(|poison| poison.into_inner()).get(tenant).cloned();
        let trace_url = template.map(|template| signal.trace_link(&template));
        let event = payload::Event { kind, signal, link: &link, rate, trace_url: trace_url.as_deref() };
        serde_json::to_string(&payload::body(hook.kind, &event, hook.routing_key.as_deref())).unwrap_or_default().into()
    }

    /// Whether `hook` may be told that `group` fires now (its throttle), and
    /// if so, records that it was; state changes always go and are recorded.
    fn admit(&self, tenant: &TenantId, hook: &Webhook, group: &str, kind: &str, now: u64) -> bool {
        let mut sent = self.sent.lock().unwrap_or_else(|poison| poison.into_inner());
        let key = (tenant.clone(), hook.id.clone(), group.to_string());
        if fires(kind)
            && let (Some(minutes), Some(last)) = (hook.throttle_minutes, sent.get(&key))
            && now.saturating_sub(*last) < u64::from(minutes) * 60_000
        {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        // Entries older than the longest interval say nothing any more; if
        // that is not enough, all are forgotten (a throttled group may then be
        // notified once more): the map stays bounded.
        if sent.len() >= MAX_REMEMBERED_SENDS {
            sent.retain(|_, last| now.saturating_sub(*last) < u64::from(MAX_INTERVAL_MINUTES) * 60_000);
            if sent.len() >= MAX_REMEMBERED_SENDS {
                sent.clear();
            }
        }
        sent.insert(key, now);
        true
    }

    /// The outboxed (not flushed) deliveries of `signal` as event `kind` to the tenant's webhooks that want it.
    fn jobs(&self, tenant: &TenantId, signal: &Signal, kind: &str) -> Vec<Job> {
        let Ok(hooks) = self.list(tenant) else { return Vec::new() };
        let now = now_ms();
        hooks
            .into_iter()
            .filter(|hook| wants(hook, signal) && self.admit(tenant, hook, &signal.id, kind, now))
            .map(|hook| {
                let body = self.body(tenant, &hook, signal, kind, None);
                self.outboxed(tenant, &hook.id, &signal.id, body)
            })
            .collect()
    }

    /// Counts a further occurrence of `group` for the webhooks with a rate
    /// threshold, and queues `signal.rate_exceeded` to those it crossed.
    pub fn occurred(&self, tenant: &TenantId, group: &Signal) {
        let rated = {
            let mut cache = self.rated.lock().unwrap_or_else(|poison| poison.into_inner());
            match cache.get(tenant) {
                Some(rated) => rated.clone(),
                None => {
                    let Ok(hooks) = self.list(tenant) else { return };
                    let rated = Arc::new(hooks.into_iter().filter(|hook| hook.rate.is_some()).collect::<Vec<_>>());
                    cache.insert(tenant.clone(), rated.clone());
                    rated
                }
            }
        };
        let now = now_ms();
        for hook in rated.iter().filter(|hook| wants(hook, group)) {
            let Some(rate) = hook.rate else { continue };
            if let Some(observed) = self.rates.occurred(tenant, &hook.id, rate, group, now)
                && self.admit(tenant, hook, &group.id, "signal.rate_exceeded", now)
            {
                let rate = serde_json::json!({"count": rate.count, "minutes": rate.minutes, "observed": observed});
                let body = self.body(tenant, hook, group, "signal.rate_exceeded", Some(rate));
                let job = self.outboxed(tenant, &hook.id, &group.id, body);
                self.enqueue(job, true);
            }
        }
    }

    async fn post(&self, hook: &Webhook, job: &Job) -> Result<bool, bool> {
        let mut request = http::Request::post(hook.target());
        for (name, value) in &hook.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let Ok(request) = request
            .header("content-type", "application/json")
            .header("user-agent", "fluo-webhook")
            .header("x-fluo-delivery", &job.id)
            .header("x-fluo-timestamp", job.timestamp.to_string())
            .header("x-fluo-signature", signature(&hook.secret, job.timestamp, &job.body))
            .body(job.body.to_string())
        else {
            return Err(false);
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, self.client.request(request)).await {
            // The body is not read: only whether the receiver took it counts.
            Ok(Ok(response)) => Ok(response.status().is_success()),
            Ok(Err(error)) => {
                // For the operator's log only: the tenant sees "not delivered".
                tracing::debug!(tenant = %job.tenant, webhook = %hook.id, error = %crate::webhooks::chain(&error), "webhook attempt failed");
                Err(is_refused(&error))
            }
            Err(_) => Err(false),
        }
    }

    /// One attempt of one job; schedules its retry if it failed.
    async fn attempt(self: &Arc<Self>, job: Job) {
        let (this, tenant, hook_id) = (self.clone(), job.tenant.clone(), job.hook_id.clone());
        let hook = tokio::task::spawn_blocking(move || this.get(&tenant, &hook_id)).await.ok().and_then(Result::ok).flatten();
        let Some(hook) = hook else {
            // Deleted meanwhile: no further attempts.
            self.done(&job);
            self.finish(&job.tenant);
            return;
        };
        let result = self.post(&hook, &job).await;
        let delivered = result == Ok(true);
        let outcome = match result {
            Ok(true) => "delivered",
            Err(true) => "refused",
            _ if job.attempt >= ATTEMPTS => "gave_up",
            _ => "failed",
        };
        *self.outcomes.lock().unwrap_or_else(|poison| poison.into_inner()).entry((hook.kind, outcome)).or_default() += 1;
        let delivery = Delivery::of(job.signal_id.clone(), job.attempt, result);
        let (this, tenant, hook_id) = (self.clone(), job.tenant.clone(), job.hook_id.clone());
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || this.log(&tenant, &hook_id, &delivery)).await {
            tracing::warn!(tenant = %job.tenant, webhook = %job.hook_id, error = %error, "webhook delivery not logged");
        }
        if delivered || job.attempt >= ATTEMPTS {
            if !delivered {
                self.warn_limited("webhook delivery gave up", &job.tenant);
            }
            self.done(&job);
            self.finish(&job.tenant);
            return;
        }
        let wait = Duration::from_secs(1 << (job.attempt - 1));
        let job = Job { attempt: job.attempt + 1, ..job };
        self.save(&job);
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            this.enqueue(job, false);
        });
    }
}

/// Runs the delivery workers until `stop` fires.
pub async fn deliver(webhooks: Arc<Webhooks>, stop: tokio::sync::watch::Receiver<bool>) {
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..webhooks.limits.workers.max(1) {
        let (webhooks, mut stop) = (webhooks.clone(), stop.clone());
        workers.spawn(async move {
            loop {
                let job = loop {
                    if let Some(job) = webhooks.next_job() {
                        break job;
                    }
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = webhooks.ready.notified() => {}
                    }
                };
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = webhooks.attempt(job) => {}
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests;
