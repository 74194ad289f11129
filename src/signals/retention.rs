//! Retention of occurrences and trace snapshots: by age (`--signal-retention`)
//! and by a per-tenant byte budget (`--signal-retention-mib`, the bytes of
//! the tenant's occurrences with their keys and per-trace entries, and of its
//! snapshots). Groups stay, with their
//! counts, series and history; what goes is the oldest occurrences (record
//! and per-trace entry with its dedup key) and the snapshots of samples whose
//! occurrence went. Owns the per-tenant byte usage kept in memory (counted
//! once at start).

use super::{SignalError, Signals, keyed};
use crate::model::tenant::TenantId;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// What retention keeps.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Occurrences and snapshots older than this go.
    pub max_age_ms: u64,
    /// A tenant's occurrence records and snapshots beyond this many bytes go, oldest first.
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention { max_age_ms: 30 * 24 * 3_600_000, max_bytes: 256 << 20 }
    }
}

/// What one sweep removed.
#[derive(Debug, Default, PartialEq)]
pub struct Swept {
    pub occurrences: u64,
    pub snapshots: u64,
    pub minute_counters: u64,
}

/// Per tenant, the bytes of its occurrence records and snapshots.
#[derive(Default)]
pub(super) struct Usage(std::sync::Mutex<HashMap<TenantId, u64>>);

impl Usage {
    pub fn add(&self, tenant: &TenantId, delta: i64) {
        let mut usage = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        let bytes = usage.entry(tenant.clone()).or_default();
        *bytes = bytes.saturating_add_signed(delta);
    }

    pub fn of(&self, tenant: &TenantId) -> u64 {
        self.0.lock().unwrap_or_else(|poison| poison.into_inner()).get(tenant).copied().unwrap_or(0)
    }

    fn tenants(&self) -> Vec<TenantId> {
        self.0.lock().unwrap_or_else(|poison| poison.into_inner()).keys().cloned().collect()
    }
}

/// What one occurrence stores, as the budget counts it: its key and record,
/// and its part of the trace's per-trace entry (a key of the same length and
/// 48 bytes of dedup key and occurrence id). Sled's own overhead is not
/// counted; docs/operations.md gives the measured ratio of disk to this.
pub(super) fn stored_bytes(key: &[u8], record: &[u8]) -> i64 {
    (2 * key.len() + record.len() + 48) as i64
}

/// A tenant's occurrence key: (tenant, group id, occurrence id).
fn parts(key: &[u8]) -> Option<([u8; 16], [u8; 16])> {
    let rest = key.get(key.len().checked_sub(32)?..)?;
    Some((rest[..16].try_into().ok()?, rest[16..].try_into().ok()?))
}

impl Signals {
    /// Counts every tenant's bytes of occurrence records and snapshots (at start).
    pub(super) fn count_usage(&self) -> Result<(), SignalError> {
        for entry in self.occurrences.iter() {
            let (key, record) = entry?;
            let Some((tenant, _)) = super::group::split_tenant(&key) else { continue };
            self.usage.add(&tenant, stored_bytes(&key, &record));
        }
        for entry in self.snapshots.iter() {
            let (key, value) = entry?;
            let Some((tenant, _)) = super::group::split_tenant(&key) else { continue };
            self.usage.add(&tenant, value.len() as i64);
        }
        Ok(())
    }

    /// A tenant's bytes of occurrence records and snapshots.
    pub fn usage_bytes(&self, tenant: &TenantId) -> u64 {
        self.usage.of(tenant)
    }

    /// Removes, for every tenant, the occurrences older than the retention
    /// age and then the oldest ones while the tenant is over its budget, with
    /// the snapshots of samples that went; minute counters past their time.
    ///
    /// A group's occurrences are in time order under its key, so the sweep
    /// visits each group once (one seek): it removes the group's expired
    /// head, then keeps the group's oldest remaining occurrence in a heap;
    /// over budget, the heap gives the tenant's oldest occurrence next.
    pub fn sweep(&self, retention: Retention, now: u64) -> Result<Swept, SignalError> {
        let mut swept = Swept::default();
        let cutoff = now.saturating_sub(retention.max_age_ms);
        // Tenants with occurrence records, and those with groups only (window
        // rules keep no records, but their minute counters expire too).
        let mut tenants = self.usage.tenants();
        for tenant in self.index.tenants() {
            if !tenants.contains(&tenant) {
                tenants.push(tenant);
            }
        }
        for tenant in tenants {
            let mut oldest = BinaryHeap::new();
            let mut from = keyed(&tenant, &[]);
            loop {
                let Some(entry) = self.occurrences.range(from.as_slice()..).next() else { break };
                let (key, _) = entry?;
                let Some((group, _)) = key.starts_with(&keyed(&tenant, &[])).then(|| parts(&key)).flatten() else { break };
                let group_start = keyed(&tenant, &[&group]);
                // By age: occurrence ids begin with their millisecond.
                let expired: Vec<_> = self
                    .occurrences
                    .range(group_start.as_slice()..keyed(&tenant, &[&group, &cutoff.to_be_bytes()]).as_slice())
                    .collect::<Result<_, _>>()?;
                for (key, record) in expired {
                    self.expire(&tenant, &key, &record, &mut swept)?;
                }
                from = keyed(&tenant, &[&group, &[0xff; 17]]);
                if let Some(head) = self.occurrences.range(group_start.as_slice()..from.as_slice()).keys().next() {
                    oldest.push(Reverse(head?));
                }
            }
            // By bytes: the oldest first.
            while self.usage.of(&tenant) > retention.max_bytes {
                let Some(Reverse(key)) = oldest.pop() else { break };
                let Some((group, _)) = parts(&key) else { continue };
                if let Some(record) = self.occurrences.get(&key)? {
                    self.expire(&tenant, &key, &record, &mut swept)?;
                }
                let group_end = keyed(&tenant, &[&group, &[0xff; 17]]);
                if let Some(next) = self.occurrences.range(key.as_ref()..group_end.as_slice()).keys().next() {
                    oldest.push(Reverse(next?));
                }
            }
            let groups: Vec<[u8; 16]> = self.index.read(&tenant, |index| index.groups.keys().copied().collect());
            swept.minute_counters += self.expire_minutes(&tenant, &groups, now.saturating_sub(super::series::MINUTES_KEPT_MS))? as u64;
        }
        if swept != Swept::default() {
            self.flush()?;
        }
        Ok(swept)
    }

    /// Removes one occurrence (its key and record) and what points at it.
    fn expire(&self, tenant: &TenantId, key: &[u8], record: &[u8], swept: &mut Swept) -> Result<(), SignalError> {
        let (group_id, occurrence_id) = parts(key).ok_or(SignalError::Cursor)?;
        if self.occurrences.remove(key)?.is_none() {
            return Ok(());
        }
        self.usage.add(tenant, -stored_bytes(key, record));
        swept.occurrences += 1;
        let trace_id = super::occurrence::trace_of(&occurrence_id, record)?;
        // The trace's entry for the group loses this occurrence (and its dedup key).
        let by_trace_key = keyed(tenant, &[&trace_id, &group_id]);
        if let Some(listed) = self.by_trace.get(&by_trace_key)? {
            let kept: Vec<u8> = listed.chunks_exact(48).filter(|chunk| chunk[32..] != occurrence_id).flatten().copied().collect();
            if kept.is_empty() {
                self.by_trace.remove(&by_trace_key)?;
            } else if kept.len() != listed.len() {
                self.by_trace.insert(&by_trace_key, kept)?;
            }
        }
        // A sample whose occurrence went is no longer a sample; its snapshot goes unless another group shows it.
        let trace_hex = hex::encode(trace_id);
        let unsampled = self.update(tenant, &group_id, |group| {
            let before = group.samples.len();
            group.samples.retain(|sample| sample != &trace_hex);
            Ok((group.samples.len() != before).then_some(()))
        })?;
        if unsampled.is_some() && self.drop_snapshot_unless_sampled(tenant, &trace_hex)? {
            swept.snapshots += 1;
        }
        Ok(())
    }
}
