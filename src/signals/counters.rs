//! A group's hot counters, apart from its record: occurrences, last seen and
//! a sequence, 24 bytes per group in the sled tree `signal_counters`
//! ((tenant, group id) → the three as u64 BE). An occurrence that changes
//! nothing else about its group (no new sample due, no regression, no new
//! rule version, no snooze ending) writes these 24 bytes, not the group's
//! JSON: a flood of one violation no longer rewrites a kilobyte-sized record
//! per trace. The counter is changed atomically by sled (exact under
//! concurrent workers); readers merge it into the record ([`Signals::get_by_id`],
//! [`Signals::update`], the inbox index).

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
    pub(super) fn bump(&self, tenant: &TenantId, group: &[u8; 16], delta: i64, at_ms: Option<u64>) -> Result<Counter, SignalError> {
        let after = self.counters.update_and_fetch(keyed(tenant, &[group]), |old| {
            let mut counter = old.map(Counter::decode).unwrap_or_default();
            counter.occurrences = counter.occurrences.saturating_add_signed(delta);
            counter.last_seen_ms = counter.last_seen_ms.max(at_ms.unwrap_or(0));
            counter.sequence += 1;
            Some(counter.encode())
        })?;
        Ok(after.map(|bytes| Counter::decode(&bytes)).unwrap_or_default())
    }

    /// Sets a new group's counter.
    pub(super) fn start_counter(&self, tenant: &TenantId, group: &[u8; 16], signal: &Signal) -> Result<(), SignalError> {
        let counter = Counter { occurrences: signal.occurrences, last_seen_ms: signal.last_seen_unix_ms, sequence: 1 };
        self.counters.insert(keyed(tenant, &[group]), counter.encode())?;
        Ok(())
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
                self.start_counter(&tenant, &id, &serde_json::from_slice(&value)?)?;
                built += 1;
            }
        }
        self.meta.insert(b"counters_built", &[])?;
        Ok(Some(built))
    }
}
