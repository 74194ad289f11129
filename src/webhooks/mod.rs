//! Per-tenant webhooks: which new signals go where (severities, rules), the
//! delivery of each as an HTTP POST signed with HMAC-SHA256 over
//! `"{timestamp}.{body}"`, retries with exponential backoff, and a delivery
//! log per webhook (the newest [`DELIVERIES_KEPT`], deleted with the webhook).
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
//! Deliveries are plain `http://` (hyper's client); `https://` URLs are refused
//! at creation because FLUO has no TLS client yet — put an egress proxy in
//! front of a TLS receiver.

use crate::model::tenant::TenantId;

use crate::model::rule::Severity;
use crate::model::time::now_ms;
use crate::model::time::rfc3339;
use crate::signals::Signal;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
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

/// What the delivery log says when FLUO refused the target address.
pub const REFUSED_TARGET: &str = "target address not allowed (loopback, private, link-local, metadata or unspecified)";

/// What bounds webhooks.
#[derive(Clone, Debug)]
pub struct WebhookLimits {
    /// Webhooks per tenant; one more is refused with 409.
    pub max_per_tenant: usize,
    /// Deliveries in flight at once (one connection each), across tenants.
    pub workers: usize,
    /// Whether loopback, private, link-local and the like may be targets.
    pub allow_private_targets: bool,
}

impl Default for WebhookLimits {
    fn default() -> WebhookLimits {
        WebhookLimits { max_per_tenant: 20, workers: 4, allow_private_targets: false }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// Empty: every severity.
    pub severities: Vec<Severity>,
    /// Rule ids or names; empty: every rule.
    pub rules: Vec<String>,
    /// Also notify when a group's occurrences exceed this rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Stored; never listed (see [`Webhook::public`]).
    pub secret: String,
    pub created_at: String,
}

impl Webhook {
    /// The webhook as the API shows it: without its secret.
    pub fn public(&self) -> WebhookInfo {
        WebhookInfo {
            id: self.id.clone(),
            url: self.url.clone(),
            severities: self.severities.clone(),
            rules: self.rules.clone(),
            rate: self.rate,
            created_at: self.created_at.clone(),
        }
    }
}

/// A webhook as listed: never its secret.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookInfo {
    pub id: String,
    pub url: String,
    /// Empty: every severity.
    pub severities: Vec<Severity>,
    /// Rule ids or names; empty: every rule.
    pub rules: Vec<String>,
    /// Also notified when a group's occurrences exceed this rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    pub created_at: String,
}

/// One delivery attempt: whether the receiver took it (a 2xx answer). What
/// the receiver answered otherwise is not recorded.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    pub signal_id: String,
    pub attempt: u32,
    /// Why it was not delivered: `target address not allowed (…)` when FLUO
    /// refused the address, else `not delivered`.
    pub error: Option<String>,
    pub delivered: bool,
    pub at: String,
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
mod rate;
mod targets;
pub use rate::Rate;
use targets::is_refused;
pub use targets::{CheckedResolver, GuardedConnector, RefusedTarget, loose_ipv4, refused_host, refused_ip};

/// Whether `hook` wants events of `signal` (its severity and rule filters).
fn wants(hook: &Webhook, signal: &Signal) -> bool {
    (hook.severities.is_empty() || hook.severities.contains(&signal.severity))
        && (hook.rules.is_empty() || hook.rules.iter().any(|rule| rule == &signal.rule_id || rule == &signal.rule_name))
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
    client: hyper_util::client::legacy::Client<GuardedConnector, String>,
    limits: WebhookLimits,
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
    pub fn open(db: &sled::Db, limits: WebhookLimits) -> Result<Webhooks, WebhookError> {
        // No idle connections are kept: at most one open connection per worker.
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(GuardedConnector::new(limits.allow_private_targets));
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
    pub fn create(
        &self,
        tenant: &TenantId,
        url: &str,
        severities: Vec<Severity>,
        rules: Vec<String>,
        rate: Option<Rate>,
    ) -> Result<(Webhook, String), WebhookError> {
        if let Some(rate) = rate {
            rate.check().map_err(WebhookError::Invalid)?;
        }
        if url.len() > 2048 {
            return Err(WebhookError::Invalid("url must be at most 2048 bytes".into()));
        }
        let uri: http::Uri = url.parse().map_err(|_| WebhookError::Invalid("url is not a URL".into()))?;
        match uri.scheme_str() {
            Some("http") if uri.host().is_some() => {}
            Some("https") => {
                return Err(WebhookError::Invalid("https webhooks need a TLS client, which FLUO lacks yet; use an egress proxy".into()));
            }
            _ => return Err(WebhookError::Invalid("url must be http://host[:port]/path".into())),
        }
        if !self.limits.allow_private_targets && uri.host().is_some_and(refused_host) {
            return Err(WebhookError::Invalid(format!("url: {REFUSED_TARGET}")));
        }
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
            url: url.into(),
            severities,
            rules,
            rate,
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

    /// The outboxed (not flushed) deliveries of `signal` as event `kind` to the tenant's webhooks that want it.
    fn jobs(&self, tenant: &TenantId, signal: &Signal, kind: &str) -> Vec<Job> {
        let Ok(hooks) = self.list(tenant) else { return Vec::new() };
        let body: Arc<str> = serde_json::to_string(&serde_json::json!({"type": kind, "signal": signal})).unwrap_or_default().into();
        hooks.into_iter().filter(|hook| wants(hook, signal)).map(|hook| self.outboxed(tenant, &hook.id, &signal.id, body.clone())).collect()
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
            if let Some(observed) = self.rates.occurred(tenant, &hook.id, rate, group, now) {
                let body = serde_json::json!({
                    "type": "signal.rate_exceeded",
                    "signal": group,
                    "rate": {"count": rate.count, "minutes": rate.minutes, "observed": observed},
                });
                let body: Arc<str> = serde_json::to_string(&body).unwrap_or_default().into();
                let job = self.outboxed(tenant, &hook.id, &group.id, body);
                self.enqueue(job, true);
            }
        }
    }

    async fn post(&self, hook: &Webhook, job: &Job) -> Result<bool, bool> {
        let Ok(request) = http::Request::post(&hook.url)
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
            Ok(Err(error)) => Err(is_refused(&error)),
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
        let error = match result {
            Ok(true) => None,
            Err(true) => Some(REFUSED_TARGET.to_string()),
            _ => Some("not delivered".to_string()),
        };
        let delivery = Delivery { signal_id: job.signal_id.clone(), attempt: job.attempt, error, delivered, at: rfc3339(now_ms()) };
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
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn every_spelling_of_an_internal_address_is_refused() {
        for host in [
            "127.0.0.1",
            "localhost",
            "LOCALHOST.",
            "api.localhost",
            "127.1",
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "0.0.0.0",
            "0",
            "[::]",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "[::ffff:169.254.169.254]",
            "[::127.0.0.1]",
            "[64:ff9b::10.0.0.1]",
            "[2002:7f00:1::]",
            "169.254.169.254",
            "100.100.100.200",
            "100.64.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "[fc00::1]",
            "[fd00:ec2::254]",
            "[fe80::1]",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(refused_host(host), "{host} must be refused");
        }
        for host in ["93.184.215.14", "example.com", "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]", "8.8.8.8", "1.2.3"] {
            assert!(!refused_host(host), "{host} is public");
        }
    }

    #[test]
    fn loose_ipv4_reads_what_getaddrinfo_reads() {
        assert_eq!(loose_ipv4("127.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(loose_ipv4("2130706433"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(loose_ipv4("0x7f.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(loose_ipv4("10.0x10.1"), Some(Ipv4Addr::new(10, 16, 0, 1)));
        assert_eq!(loose_ipv4("256.1.1.1"), None);
        assert_eq!(loose_ipv4("4294967296"), None);
        assert_eq!(loose_ipv4("example.com"), None);
    }

    #[tokio::test]
    async fn the_connector_refuses_resolved_and_literal_internal_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        for url in [
            format!("http://localhost:{port}/"),
            format!("http://127.0.0.1:{port}/"),
            format!("http://127.1:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
        ] {
            let connecting = tower::ServiceExt::oneshot(GuardedConnector::new(false), url.parse::<http::Uri>().unwrap());
            let Err(error) = connecting.await else { panic!("{url} connected") };
            assert!(is_refused(&*error), "{url}: {error}");
        }
        let allowed =
            tower::ServiceExt::oneshot(GuardedConnector::new(true), format!("http://localhost:{port}/").parse::<http::Uri>().unwrap());
        assert!(allowed.await.is_ok(), "with the flag, loopback is reachable");
    }

    #[test]
    fn the_delivery_log_keeps_the_newest_and_goes_with_its_webhook() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let webhooks = Webhooks::open(&db, WebhookLimits { max_per_tenant: 2, ..WebhookLimits::default() }).unwrap();
        let tenant = TenantId::trusted("acme");
        let (hook, _) = webhooks.create(&tenant, "http://93.184.215.14/hook", Vec::new(), Vec::new(), None).unwrap();
        for attempt in 1..=(DELIVERIES_KEPT as u32 + 30) {
            let delivery = Delivery { signal_id: "s_1".into(), attempt, error: None, delivered: true, at: String::new() };
            webhooks.log(&tenant, &hook.id, &delivery).unwrap();
        }
        assert_eq!(webhooks.logged(&tenant, &hook.id), DELIVERIES_KEPT);
        let newest = webhooks.deliveries(&tenant, &hook.id).unwrap().unwrap();
        assert_eq!(newest[0].attempt, DELIVERIES_KEPT as u32 + 30, "the newest are kept");
        assert!(webhooks.delete(&tenant, &hook.id).unwrap());
        assert_eq!(webhooks.logged(&tenant, &hook.id), 0, "deleted with the webhook");
        // Logging for a deleted webhook (an attempt in flight) writes nothing.
        let late = Delivery { signal_id: "s_2".into(), attempt: 1, error: None, delivered: true, at: String::new() };
        webhooks.log(&tenant, &hook.id, &late).unwrap();
        assert_eq!(webhooks.logged(&tenant, &hook.id), 0);
    }

    #[test]
    fn a_tenants_queue_is_bounded_and_served_in_turn() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let webhooks = Webhooks::open(&db, WebhookLimits::default()).unwrap();
        let job = |tenant: &str, n: usize| webhooks.outboxed(&TenantId::trusted(tenant), "w", &format!("s_{n}"), Arc::from(""));
        for n in 0..QUEUE_PER_TENANT + 5 {
            webhooks.enqueue(job("noisy", n), true);
        }
        assert_eq!(webhooks.pending(&TenantId::trusted("noisy")), QUEUE_PER_TENANT);
        assert_eq!(webhooks.dropped.load(Ordering::Relaxed), 5);
        assert_eq!(webhooks.outbox.len(), QUEUE_PER_TENANT, "a dropped delivery leaves the outbox too");
        webhooks.enqueue(job("quiet", 0), true);
        let first_two: Vec<String> = (0..2).map(|_| webhooks.next_job().unwrap().tenant.to_string()).collect();
        assert!(first_two.contains(&"quiet".to_string()), "the quiet tenant waits one turn, not {QUEUE_PER_TENANT} jobs");
    }

    #[test]
    fn staged_deliveries_wait_for_their_dispatch_and_survive_a_restart_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = TenantId::trusted("t");
        let signal: Signal = serde_json::from_value(serde_json::json!({
            "id": "s_1", "rule_id": "r", "rule_name": "r", "rule_version": 1, "severity": "high", "message": "m",
            "trace_id": "00000000000000000000000000000001", "span_ids": [], "status": "open", "created_at": "",
            "created_unix_ms": 0, "updated_at": "", "witnesses": []
        }))
        .unwrap();
        let (id, timestamp, body) = {
            let db = sled::open(dir.path()).unwrap();
            let webhooks = Webhooks::open(&db, WebhookLimits { allow_private_targets: true, ..WebhookLimits::default() }).unwrap();
            webhooks.create(&tenant, "http://127.0.0.1:9/hook", Vec::new(), Vec::new(), None).unwrap();
            webhooks.stage(&tenant, &signal, "signal.created");
            assert!(webhooks.next_job().is_none(), "staged: not deliverable before its flush");
            assert_eq!(webhooks.outbox.len(), 1);
            db.flush().unwrap();
            webhooks.dispatch(&tenant, &signal, "signal.created");
            let job = webhooks.next_job().expect("deliverable after its dispatch");
            assert!(webhooks.next_job().is_none(), "the dispatch took the staged delivery, not a second one");
            // A crash before it is delivered.
            (job.id, job.timestamp, job.body)
        };
        let db = sled::open(dir.path()).unwrap();
        let webhooks = Webhooks::open(&db, WebhookLimits::default()).unwrap();
        let resumed = webhooks.next_job().expect("resumed from the outbox");
        assert_eq!((resumed.id, resumed.timestamp, resumed.body, resumed.attempt), (id, timestamp, body, 1));
        assert_eq!(webhooks.pending(&tenant), 1);
        webhooks.done(&Job { ..webhooks.outboxed(&tenant, "w", "s_2", Arc::from("")) });
        assert_eq!(webhooks.outbox.len(), 1, "only the finished one went");
    }
}
