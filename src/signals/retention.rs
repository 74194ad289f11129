//! Retention of occurrences and trace snapshots: by age (`--signal-retention`)
//! and by a per-tenant byte budget (`--signal-retention-bytes`, the bytes of
//! the tenant's occurrence records and snapshots). Groups stay, with their
//! counts, series and history; what goes is the oldest occurrences (record,
//! time index, dedup and per-trace entries) and the snapshots of samples whose
//! occurrence went. Owns the sled tree `signal_occurrence_times` ((tenant,
//! occurrence id) → group id and the occurrence's bytes), which orders a
//! tenant's occurrences by time across its groups, and the per-tenant byte
//! usage kept in memory (counted once at start).

use super::{SignalError, Signals, keyed};
use crate::model::tenant::TenantId;
use std::collections::HashMap;

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

/// The time index's value: the group id, then the occurrence record's bytes.
fn time_value(group: &[u8; 16], bytes: u32) -> Vec<u8> {
    [group.as_slice(), &bytes.to_be_bytes()].concat()
}

impl Signals {
    /// Indexes a new occurrence by time and counts its bytes.
    pub(super) fn note_occurrence(
        &self,
        tenant: &TenantId,
        group: &[u8; 16],
        occurrence: &[u8; 16],
        bytes: usize,
    ) -> Result<(), SignalError> {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.times.insert(keyed(tenant, &[occurrence]), time_value(group, bytes))?;
        self.usage.add(tenant, i64::from(bytes));
        Ok(())
    }

    /// Forgets a withdrawn occurrence's time entry and bytes.
    pub(super) fn forget_occurrence(&self, tenant: &TenantId, occurrence: &[u8; 16]) -> Result<(), SignalError> {
        if let Some(value) = self.times.remove(keyed(tenant, &[occurrence]))? {
            let bytes = value.get(16..20).and_then(|b| b.try_into().ok()).map_or(0, u32::from_be_bytes);
            self.usage.add(tenant, -i64::from(bytes));
        }
        Ok(())
    }

    /// Counts every tenant's bytes (at start), and indexes by time the
    /// occurrences of a directory from before the time index.
    pub(super) fn count_usage(&self) -> Result<(), SignalError> {
        let indexed = self.meta.contains_key(b"times_built")?;
        if !indexed {
            self.times.clear()?;
            for entry in self.occurrences.iter() {
                let (key, value) = entry?;
                // (tenant, group 16, occurrence 16)
                let Some((tenant, rest)) = super::group::split_tenant(&key) else { continue };
                let (Ok(group), Ok(occurrence)) =
                    (<[u8; 16]>::try_from(&rest[..16.min(rest.len())]), <[u8; 16]>::try_from(&rest[16.min(rest.len())..]))
                else {
                    continue;
                };
                self.times.insert(keyed(&tenant, &[&occurrence]), time_value(&group, value.len() as u32))?;
            }
            self.meta.insert(b"times_built", &[])?;
        }
        for entry in self.times.iter() {
            let (key, value) = entry?;
            let Some((tenant, _)) = super::group::split_tenant(&key) else { continue };
            let bytes = value.get(16..20).and_then(|b| b.try_into().ok()).map_or(0, u32::from_be_bytes);
            self.usage.add(&tenant, i64::from(bytes));
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
            let prefix = keyed(&tenant, &[]);
            let mut expired = Vec::new();
            // By age: occurrence ids begin with their millisecond.
            for entry in self.times.range(prefix.clone()..keyed(&tenant, &[&cutoff.to_be_bytes()])) {
                expired.push(entry?);
            }
            for (key, value) in expired {
                self.expire(&tenant, &key, &value, &mut swept)?;
            }
            // By bytes: the oldest first.
            while self.usage.of(&tenant) > retention.max_bytes {
                let batch: Vec<_> = self.times.scan_prefix(&prefix).take(256).collect::<Result<_, _>>()?;
                if batch.is_empty() {
                    // Only snapshots are left; they go with their occurrences.
                    break;
                }
                for (key, value) in batch {
                    self.expire(&tenant, &key, &value, &mut swept)?;
                    if self.usage.of(&tenant) <= retention.max_bytes {
                        break;
                    }
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

    /// Removes one occurrence (given by its time-index entry) and what points at it.
    fn expire(&self, tenant: &TenantId, key: &[u8], value: &[u8], swept: &mut Swept) -> Result<(), SignalError> {
        let occurrence_id: [u8; 16] = key[key.len() - 16..].try_into().map_err(|_| SignalError::Cursor)?;
        let group_id: [u8; 16] = value.get(..16).and_then(|b| b.try_into().ok()).ok_or(SignalError::Cursor)?;
        self.forget_occurrence(tenant, &occurrence_id)?;
        let Some(record) = self.occurrences.remove(keyed(tenant, &[&group_id, &occurrence_id]))? else { return Ok(()) };
        swept.occurrences += 1;
        let occurrence: super::Occurrence = serde_json::from_slice(&record)?;
        let mut trace_id = [0u8; 16];
        if hex::decode_to_slice(&occurrence.trace_id, &mut trace_id).is_err() {
            return Ok(());
        }
        // The trace's entry for the group loses this occurrence (and its dedup key).
        let by_trace_key = keyed(tenant, &[&trace_id, &group_id]);
        if let Some(listed) = self.by_trace.get(&by_trace_key)? {
            let mut kept = Vec::with_capacity(listed.len());
            for chunk in listed.chunks_exact(48) {
                if chunk[32..] == occurrence_id {
                    self.dedup.remove(keyed(tenant, &[&chunk[..32]]))?;
                } else {
                    kept.extend_from_slice(chunk);
                }
            }
            if kept.is_empty() {
                self.by_trace.remove(&by_trace_key)?;
            } else {
                self.by_trace.insert(&by_trace_key, kept)?;
            }
        }
        // A sample whose occurrence went is no longer a sample; its snapshot goes unless another group shows it.
        let unsampled = self.update(tenant, &group_id, |group| {
            let before = group.samples.len();
            group.samples.retain(|sample| sample != &occurrence.trace_id);
            Ok((group.samples.len() != before).then_some(()))
        })?;
        if unsampled.is_some() && self.drop_snapshot_unless_sampled(tenant, &occurrence.trace_id)? {
            swept.snapshots += 1;
        }
        Ok(())
    }
}
