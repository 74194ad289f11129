//! A group's hot counters, apart from its record: occurrences, last seen and
//! a sequence, 24 bytes per group in the sled tree `signal_counters`
//! ((tenant, group id) → the three as u64 BE). An occurrence that changes
//! nothing else about its group (no new sample due, no regression, no new
//! rule version, no snooze ending) writes these 24 bytes, not the group's
//! JSON: a flood of one violation no longer rewrites a kilobyte-sized record
//! per trace. The counter is changed atomically by sled (exact under
//! concurrent workers); readers merge it into the record ([`Signals::get_by_id`],
//! [`Signals::update`], the inbox index).
//!
//! After the 24 bytes come the dedup keys of the group's latest
//! [`RECENT_COUNTED`] counted violations, written in the same atomic change as
//! the count: a trace replayed after `kill -9` whose violation was counted but
//! whose occurrence or per-trace entry was lost (the other writes of
//! `Signals::record` come after) is recognised by them and repaired instead of
//! counted twice.

use super::{Signal, SignalError, Signals, keyed};
use crate::model::tenant::TenantId;
use crate::model::time::rfc3339;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Counter {
    pub occurrences: u64,
    pub last_seen_ms: u64,
    /// Grows with every change: of two readings, the higher is the newer.
    pub sequence: u64,
}

/// Dedup keys of counted violations kept per group: more than the evaluation
/// workers that can be between the count and the rest of a record at a crash.
pub(super) const RECENT_COUNTED: usize = 16;

/// The counter's bytes with `dedup` appended to its recent keys (the oldest
/// dropped beyond [`RECENT_COUNTED`]), the rest of `old` kept.
fn with_recent(counter: &Counter, old: Option<&[u8]>, dedup: Option<&[u8; 32]>) -> Vec<u8> {
    let mut bytes = counter.encode();
    let mut recent: Vec<&[u8]> = old.map(|old| old.get(24..).unwrap_or_default().chunks_exact(32).collect()).unwrap_or_default();
    if let Some(dedup) = dedup {
        recent.push(dedup);
    }
    for key in &recent[recent.len().saturating_sub(RECENT_COUNTED)..] {
        bytes.extend_from_slice(key);
    }
    bytes
}

impl Counter {
    fn decode(bytes: &[u8]) -> Counter {
        let part = |at: usize| bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes);
        Counter { occurrences: part(0), last_seen_ms: part(8), sequence: part(16) }
    }

    fn encode(&self) -> Vec<u8> {
        [self.occurrences.to_be_bytes(), self.last_seen_ms.to_be_bytes(), self.sequence.to_be_bytes()].concat()
    }

    /// Puts the counter's figures into `signal`.
    pub fn merge_into(&self, signal: &mut Signal) {
        signal.occurrences = self.occurrences;
        if self.last_seen_ms > signal.last_seen_unix_ms {
            signal.last_seen_unix_ms = self.last_seen_ms;
            signal.last_seen_at = rfc3339(self.last_seen_ms);
        }
    }
}

impl Signals {
    /// Adds `delta` occurrences to the group's counter (and, with `at_ms`,
    /// moves its last seen); returns the counter after the change.
    /// `dedup` (a counted violation's key) joins the recent keys in the same write.
    pub(super) fn bump(
        &self,
        tenant: &TenantId,
        group: &[u8; 16],
        delta: i64,
        at_ms: Option<u64>,
        dedup: Option<&[u8; 32]>,
    ) -> Result<Counter, SignalError> {
        let after = self.counters.update_and_fetch(keyed(tenant, &[group]), |old| {
            let mut counter = old.map(Counter::decode).unwrap_or_default();
            counter.occurrences = counter.occurrences.saturating_add_signed(delta);
            counter.last_seen_ms = counter.last_seen_ms.max(at_ms.unwrap_or(0));
            counter.sequence += 1;
            Some(with_recent(&counter, old, dedup))
        })?;
        Ok(after.map(|bytes| Counter::decode(&bytes)).unwrap_or_default())
    }

    /// Sets a new group's counter; `dedup`: the violation that created it.
    pub(super) fn start_counter(
        &self,
        tenant: &TenantId,
        group: &[u8; 16],
        signal: &Signal,
        dedup: Option<&[u8; 32]>,
    ) -> Result<(), SignalError> {
        let counter = Counter { occurrences: signal.occurrences, last_seen_ms: signal.last_seen_unix_ms, sequence: 1 };
        self.counters.insert(keyed(tenant, &[group]), with_recent(&counter, None, dedup))?;
        Ok(())
    }

    /// Whether the violation `dedup` is among the group's recently counted ones.
    pub(super) fn counted_recently(&self, tenant: &TenantId, group: &[u8; 16], dedup: &[u8; 32]) -> Result<bool, SignalError> {
        let Some(bytes) = self.counters.get(keyed(tenant, &[group]))? else { return Ok(false) };
        Ok(bytes.get(24..).unwrap_or_default().chunks_exact(32).any(|key| key == dedup))
    }

    pub(super) fn counter(&self, tenant: &TenantId, group: &[u8; 16]) -> Result<Option<Counter>, SignalError> {
        Ok(self.counters.get(keyed(tenant, &[group]))?.map(|bytes| Counter::decode(&bytes)))
    }

    /// Gives every group without a counter one from its record, once per
    /// data directory (a directory from before counters); returns how many.
    pub(super) fn build_counters(&self) -> Result<Option<usize>, SignalError> {
        if self.meta.contains_key(b"counters_built")? {
            return Ok(None);
        }
        let mut built = 0;
        for entry in self.signals.iter() {
            let (key, value) = entry?;
            let Some((tenant, id)) = super::group::split_key(&key) else { continue };
            if self.counter(&tenant, &id)?.is_none() {
                self.start_counter(&tenant, &id, &serde_json::from_slice(&value)?, None)?;
                built += 1;
            }
        }
        self.meta.insert(b"counters_built", &[])?;
        Ok(Some(built))
    }
}
