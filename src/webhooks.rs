//! Per-tenant webhooks: which new signals go where (severities, rules), the
//! delivery of each as an HTTP POST signed with HMAC-SHA256 over
//! `"{timestamp}.{body}"`, retries with exponential backoff, and a delivery
//! log per webhook. Owns the sled trees `webhooks` and `webhook_deliveries`.
//!
//! Deliveries are plain `http://` (hyper's client); `https://` URLs are refused
//! at creation because FLUO has no TLS client yet — put an egress proxy in
//! front of a TLS receiver.

use crate::auth::{TenantId, now_ms};
use crate::rules::Severity;
use crate::signals::{Signal, rfc3339};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// Attempts per delivery; waits between them double from 1 s.
pub const ATTEMPTS: u32 = 5;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// Empty: every severity.
    pub severities: Vec<Severity>,
    /// Rule ids or names; empty: every rule.
    pub rules: Vec<String>,
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
    pub created_at: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    pub signal_id: String,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub delivered: bool,
    pub at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("storage error: {0}")]
    Store(#[from] sled::Error),
}

pub struct Webhooks {
    hooks: sled::Tree,
    deliveries: sled::Tree,
    client: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, String>,
}

fn prefix(tenant: &TenantId) -> Vec<u8> {
    let mut key = (tenant.as_str().len() as u32).to_be_bytes().to_vec();
    key.extend_from_slice(tenant.as_str().as_bytes());
    key
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "{timestamp}.{body}").
pub fn signature(secret: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Webhooks {
    pub fn open(db: &sled::Db) -> Result<Webhooks, WebhookError> {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Ok(Webhooks { hooks: db.open_tree("webhooks")?, deliveries: db.open_tree("webhook_deliveries")?, client })
    }

    /// Registers a webhook; the returned secret is shown once.
    pub fn create(
        &self,
        tenant: &TenantId,
        url: &str,
        severities: Vec<Severity>,
        rules: Vec<String>,
    ) -> Result<(Webhook, String), WebhookError> {
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
            secret: secret.clone(),
            created_at: rfc3339(now_ms()),
        };
        let mut key = prefix(tenant);
        key.extend_from_slice(hook.id.as_bytes());
        self.hooks.insert(key, serde_json::to_vec(&hook).map_err(|error| WebhookError::Invalid(error.to_string()))?)?;
        self.hooks.flush()?;
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

    pub fn delete(&self, tenant: &TenantId, id: &str) -> Result<bool, WebhookError> {
        let mut key = prefix(tenant);
        key.extend_from_slice(id.as_bytes());
        let removed = self.hooks.remove(key)?.is_some();
        self.hooks.flush()?;
        Ok(removed)
    }

    /// The newest deliveries of a webhook (at most 100), newest first; `None` if the tenant has no such webhook.
    pub fn deliveries(&self, tenant: &TenantId, id: &str) -> Result<Option<Vec<Delivery>>, WebhookError> {
        let mut key = prefix(tenant);
        key.extend_from_slice(id.as_bytes());
        if !self.hooks.contains_key(&key)? {
            return Ok(None);
        }
        key.push(b'/');
        Ok(Some(
            self.deliveries
                .scan_prefix(key)
                .values()
                .rev()
                .take(100)
                .filter_map(|value| value.ok())
                .filter_map(|value| serde_json::from_slice(&value).ok())
                .collect(),
        ))
    }

    fn log(&self, tenant: &TenantId, hook: &Webhook, delivery: &Delivery) {
        let mut key = prefix(tenant);
        key.extend_from_slice(hook.id.as_bytes());
        key.push(b'/');
        key.extend_from_slice(&now_ms().to_be_bytes());
        key.extend_from_slice(delivery.signal_id.as_bytes());
        key.extend_from_slice(&delivery.attempt.to_be_bytes());
        if let Ok(value) = serde_json::to_vec(delivery) {
            let _ = self.deliveries.insert(key, value);
        }
    }

    async fn post(&self, hook: &Webhook, body: &str) -> Result<u16, String> {
        let timestamp = now_ms() / 1000;
        let request = http::Request::post(&hook.url)
            .header("content-type", "application/json")
            .header("user-agent", "fluo-webhook")
            .header("x-fluo-timestamp", timestamp.to_string())
            .header("x-fluo-signature", signature(&hook.secret, timestamp, body))
            .body(body.to_string())
            .map_err(|error| error.to_string())?;
        match tokio::time::timeout(Duration::from_secs(10), self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response.status().as_u16()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("timed out after 10 s".into()),
        }
    }

    /// Delivers `signal` to every matching webhook of `tenant`, each with retries.
    pub fn dispatch(self: &Arc<Self>, tenant: &TenantId, signal: &Signal) {
        let Ok(hooks) = self.list(tenant) else { return };
        for hook in hooks {
            let wanted = (hook.severities.is_empty() || hook.severities.contains(&signal.severity))
                && (hook.rules.is_empty() || hook.rules.iter().any(|rule| rule == &signal.rule_id || rule == &signal.rule_name));
            if !wanted {
                continue;
            }
            let (this, tenant, signal) = (self.clone(), tenant.clone(), signal.clone());
            tokio::spawn(async move {
                let body = serde_json::to_string(&serde_json::json!({"type": "signal.created", "signal": signal})).unwrap_or_default();
                for attempt in 1..=ATTEMPTS {
                    let result = this.post(&hook, &body).await;
                    let delivered = matches!(result, Ok(status) if (200..300).contains(&status));
                    let (status, error) = match result {
                        Ok(status) => (Some(status), None),
                        Err(error) => (None, Some(error)),
                    };
                    this.log(
                        &tenant,
                        &hook,
                        &Delivery { signal_id: signal.id.clone(), attempt, status, error, delivered, at: rfc3339(now_ms()) },
                    );
                    if delivered {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
                }
                tracing::warn!(tenant = %tenant, webhook = %hook.id, signal = %signal.id, "webhook delivery gave up");
            });
        }
    }
}

/// Forwards every new signal to the tenant's webhooks until `stop` fires.
pub async fn dispatcher(
    webhooks: Arc<Webhooks>,
    mut events: tokio::sync::broadcast::Receiver<Arc<(TenantId, Signal)>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            _ = stop.changed() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(event) => webhooks.dispatch(&event.0, &event.1),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "webhook dispatcher fell behind; signals not delivered")
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
