//! Reminders and test sends: `signal.reminder` to channels with a repeat
//! interval for each group that stays open (not acknowledged, not snoozed),
//! and a channel's test send (one attempt, logged, answered at once).

use super::{Delivery, Job, Webhook, WebhookError, Webhooks, wants};
use crate::model::tenant::TenantId;
use crate::model::time::{now_ms, rfc3339};
use crate::signals::{Filter, Signal, Signals, Status};
use crate::store::key::Key;
use std::sync::Arc;
use std::time::Duration;

/// How often open groups are looked at for reminders.
pub const REMIND_EVERY: Duration = Duration::from_secs(30);

/// Open groups looked at per tenant and round: the last seen first (the
/// store's order), in pages of the store's largest (500).
const GROUPS_PER_ROUND: usize = 1000;

impl Webhooks {
    /// Every tenant's channels that have a repeat interval.
    pub(super) fn repeating(&self) -> Vec<(TenantId, Webhook)> {
        self.hooks
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(key, value)| {
                let (tenant, _) = Key::split_tenant(&key)?;
                let hook: Webhook = serde_json::from_slice(&value).ok()?;
                hook.repeat_minutes.map(|_| (TenantId::trusted(tenant), hook))
            })
            .collect()
    }

    /// Queues `signal.reminder` for each of `open` that `hook` wants and was
    /// last told of at least its repeat interval ago. A group the channel was
    /// never told of (since this process started) starts its interval now.
    pub(super) fn remind(&self, tenant: &TenantId, hook: &Webhook, open: &[Signal], now: u64) -> usize {
        let Some(minutes) = hook.repeat_minutes else { return 0 };
        let mut due = Vec::new();
        {
            let mut sent = self.sent.lock().unwrap_or_else(|poison| poison.into_inner());
            for group in open.iter().filter(|group| wants(hook, group)) {
                let last = sent.entry((tenant.clone(), hook.id.clone(), group.id.clone())).or_insert(now);
                if now.saturating_sub(*last) >= u64::from(minutes) * 60_000 {
                    *last = now;
                    due.push(group);
                }
            }
        }
        for group in &due {
            let body = self.body(tenant, hook, group, "signal.reminder", None);
            let job = self.outboxed(tenant, &hook.id, &group.id, body);
            self.enqueue(job, true);
        }
        due.len()
    }

    /// One round of reminders over every tenant's repeating channels.
    pub fn remind_all(&self, signals: &Signals) {
        let now = now_ms();
        let mut open_of: std::collections::HashMap<TenantId, Vec<Signal>> = std::collections::HashMap::new();
        for (tenant, hook) in self.repeating() {
            let open = open_of.entry(tenant.clone()).or_insert_with(|| open_groups(signals, &tenant));
            self.remind(&tenant, &hook, open, now);
        }
    }

    /// Sends a test event to a channel now: one attempt, no retry, logged
    /// like any delivery. `None` if the tenant has no such channel.
    pub async fn test_send(self: &Arc<Self>, tenant: &TenantId, id: &str) -> Result<Option<Delivery>, WebhookError> {
        let (this, owner, hook_id) = (self.clone(), tenant.clone(), id.to_string());
        let hook = tokio::task::spawn_blocking(move || this.get(&owner, &hook_id))
            .await
            .map_err(|error| WebhookError::Invalid(error.to_string()))??;
        let Some(hook) = hook else { return Ok(None) };
        let now = now_ms();
        let signal: Signal = serde_json::from_value(serde_json::json!({
            "id": "s_test", "rule_id": "r_test", "rule_name": "fluo-test", "rule_version": 1, "severity": "info",
            "message": "A test notification from FLUO: this channel works.", "trace_id": "00000000000000000000000000000000",
            "span_ids": [], "status": "open", "created_at": rfc3339(now), "created_unix_ms": now, "updated_at": rfc3339(now),
            "last_seen_at": rfc3339(now), "last_seen_unix_ms": now, "witnesses": [],
        }))
        .expect("the test group is a group");
        let body = self.body(tenant, &hook, &signal, "signal.test", None);
        let job = Job {
            tenant: tenant.clone(),
            hook_id: hook.id.clone(),
            signal_id: signal.id.clone(),
            body,
            attempt: 1,
            timestamp: now / 1000,
            key: Vec::new(),
            id: format!("d_test_{now}"),
        };
        let delivery = Delivery::of("test".into(), 1, self.post(&hook, &job).await);
        let (this, owner, logged) = (self.clone(), tenant.clone(), delivery.clone());
        tokio::task::spawn_blocking(move || this.log(&owner, &hook.id, &logged))
            .await
            .map_err(|error| WebhookError::Invalid(error.to_string()))??;
        Ok(Some(delivery))
    }
}

/// Up to [`GROUPS_PER_ROUND`] of the tenant's open, unsnoozed groups, last seen first.
pub(super) fn open_groups(signals: &Signals, tenant: &TenantId) -> Vec<Signal> {
    let mut groups = Vec::new();
    let mut cursor = None;
    loop {
        let filter = Filter { status: Some(Status::Open), snoozed: Some(false), limit: 500, cursor: cursor.take(), ..Filter::default() };
        let Ok((page, next)) = signals.list(tenant, &filter) else { break };
        groups.extend(page);
        match next {
            Some(next) if groups.len() < GROUPS_PER_ROUND => cursor = Some(next),
            _ => break,
        }
    }
    groups.truncate(GROUPS_PER_ROUND);
    groups
}

/// Runs reminder rounds every [`REMIND_EVERY`] until `stop` fires.
pub async fn remind(webhooks: Arc<Webhooks>, signals: Arc<Signals>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(REMIND_EVERY) => {}
        }
        let (webhooks, signals) = (webhooks.clone(), signals.clone());
        let _ = tokio::task::spawn_blocking(move || webhooks.remind_all(&signals)).await;
    }
}
