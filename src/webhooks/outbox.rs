//! The webhook outbox: every delivery not yet finished, in the sled tree
//! `webhook_outbox` ((tenant, delivery id) → [`Outboxed`]), so that a restart
//! (`kill -9` included) delivers what was pending: at least once, with the
//! same body, timestamp and signature as before, and the same
//! `x-fluo-delivery` id for receivers that drop repeats.
//!
//! An evaluation stages its notifications here before the flush that makes
//! its signals durable ([`super::Webhooks::stage`]): both reach the disk in
//! that one flush, and delivery starts once it is done. A notification with
//! nothing staged (an API status change, a window signal) is written and
//! flushed when it is dispatched. A delivery leaves the outbox when it is
//! delivered, given up after its attempts, or its webhook is deleted.

use super::{Job, Webhooks};
use crate::model::tenant::TenantId;
use crate::model::time::now_ms;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A delivery as kept until it is finished.
#[derive(Serialize, Deserialize)]
pub(super) struct Outboxed {
    pub hook_id: String,
    pub signal_id: String,
    pub body: String,
    /// The attempt to make next.
    pub attempt: u32,
    /// Seconds since the epoch, signed with the body: the same on every attempt.
    pub timestamp: u64,
}

/// A delivery id: milliseconds, then a process-wide sequence (`d_<32 hex>`).
fn new_id() -> [u8; 16] {
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&now_ms().to_be_bytes());
    let sequence = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) ^ (u64::from(rand::random::<u32>()) << 32);
    id[8..].copy_from_slice(&sequence.to_be_bytes());
    id
}

impl Webhooks {
    /// A new delivery of `body` to `hook_id`, written to the outbox (not flushed).
    pub(super) fn outboxed(&self, tenant: &TenantId, hook_id: &str, signal_id: &str, body: Arc<str>) -> Job {
        let id = new_id();
        let mut key = super::prefix(tenant);
        key.extend_from_slice(&id);
        let job = Job {
            tenant: tenant.clone(),
            hook_id: hook_id.into(),
            signal_id: signal_id.into(),
            body,
            attempt: 1,
            timestamp: now_ms() / 1000,
            key,
            id: format!("d_{}", hex::encode(id)),
        };
        self.save(&job);
        job
    }

    /// Writes `job` as it is now (its next attempt) to the outbox.
    pub(super) fn save(&self, job: &Job) {
        let record = Outboxed {
            hook_id: job.hook_id.clone(),
            signal_id: job.signal_id.clone(),
            body: job.body.to_string(),
            attempt: job.attempt,
            timestamp: job.timestamp,
        };
        let written = serde_json::to_vec(&record)
            .map_err(|error| error.to_string())
            .and_then(|value| self.outbox.insert(&job.key, value).map(drop).map_err(|error| error.to_string()));
        if let Err(error) = written {
            tracing::error!(tenant = %job.tenant, webhook = %job.hook_id, %error, "webhook delivery not written to the outbox");
        }
    }

    /// Takes a finished delivery out of the outbox.
    pub(super) fn done(&self, job: &Job) {
        if let Err(error) = self.outbox.remove(&job.key) {
            tracing::error!(tenant = %job.tenant, webhook = %job.hook_id, %error, "finished webhook delivery not removed from the outbox");
        }
    }

    /// The deliveries a previous run left unfinished (at open).
    pub(super) fn pending_in_outbox(&self) -> Result<Vec<Job>, sled::Error> {
        let mut jobs = Vec::new();
        for entry in self.outbox.iter() {
            let (key, value) = entry?;
            let Some((tenant, id)) = crate::store::key::Key::split_tenant(&key) else { continue };
            let tenant = TenantId::trusted(tenant);
            let Ok(record) = serde_json::from_slice::<Outboxed>(&value) else {
                tracing::warn!("unreadable webhook outbox entry dropped");
                self.outbox.remove(&key)?;
                continue;
            };
            jobs.push(Job {
                tenant,
                hook_id: record.hook_id,
                signal_id: record.signal_id,
                body: record.body.into(),
                attempt: record.attempt.max(1),
                timestamp: record.timestamp,
                id: format!("d_{}", hex::encode(id)),
                key: key.to_vec(),
            });
        }
        Ok(jobs)
    }
}
