//! Occurrence series: how many occurrences fell in each minute and each hour,
//! per group and per rule of a tenant. Owns the sled tree `signal_series`.
//! Every occurrence adds one to four counters (a withdrawn one takes them
//! back), so charts, sparklines and "occurrences in the last 24 hours" read a
//! few counters per bucket, never the occurrences themselves. A range sums
//! minute counters at its ragged ends and hour counters in between; minute
//! counters older than [`MINUTES_KEPT_MS`] are deleted by retention, after
//! which older ranges are exact to the hour.

use super::{SignalError, Signals, keyed};
use crate::model::tenant::TenantId;
use std::collections::BTreeMap;

pub const MINUTE_MS: u64 = 60_000;
pub const HOUR_MS: u64 = 3_600_000;
/// Minute counters are kept this long (hour counters as long as the group).
pub const MINUTES_KEPT_MS: u64 = 8 * 24 * HOUR_MS;

const TENANT: u8 = b'T';
const GROUP: u8 = b'G';
const MINUTE: u8 = b'm';
const HOUR: u8 = b'h';

/// `(tenant, 'G', group, resolution)`: the prefix of a group's counters.
fn group_prefix(tenant: &TenantId, group: &[u8; 16], resolution: u8) -> Vec<u8> {
    keyed(tenant, &[&[GROUP], group, &[resolution]])
}

/// `(tenant, 'T', resolution)`: the prefix of a tenant's per-rule counters,
/// followed by the bucket start and the rule id.
fn tenant_prefix(tenant: &TenantId, resolution: u8) -> Vec<u8> {
    keyed(tenant, &[&[TENANT], &[resolution]])
}

fn add(tree: &sled::Tree, key: Vec<u8>, delta: i64) -> Result<(), SignalError> {
    tree.fetch_and_update(key, |old| {
        let old = old.and_then(|bytes| bytes.try_into().ok()).map_or(0, u64::from_be_bytes);
        let new = old.saturating_add_signed(delta);
        (new > 0).then(|| new.to_be_bytes().to_vec())
    })?;
    Ok(())
}

fn count(value: &[u8]) -> u64 {
    value.try_into().map_or(0, u64::from_be_bytes)
}

impl Signals {
    /// Adds `delta` occurrences at `at_ms` to the counters of `group` and of its rule.
    pub(super) fn count_series(
        &self,
        tenant: &TenantId,
        group: &[u8; 16],
        rule_id: &str,
        at_ms: u64,
        delta: i64,
    ) -> Result<(), SignalError> {
        for (resolution, width) in [(MINUTE, MINUTE_MS), (HOUR, HOUR_MS)] {
            let bucket = (at_ms - at_ms % width).to_be_bytes();
            add(&self.series, [group_prefix(tenant, group, resolution).as_slice(), &bucket].concat(), delta)?;
            add(&self.series, [tenant_prefix(tenant, resolution).as_slice(), &bucket, rule_id.as_bytes()].concat(), delta)?;
        }
        Ok(())
    }

    /// Visits the counters under `prefix` for `[from, to)`: minutes at the
    /// ragged ends, hours in between. `visit` gets the key's rest after the
    /// bucket (the rule id for tenant counters) and the count.
    fn sum_range(&self, prefix: impl Fn(u8) -> Vec<u8>, from: u64, to: u64, mut visit: impl FnMut(&[u8], u64)) -> Result<(), SignalError> {
        if from >= to {
            return Ok(());
        }
        let whole_from = from.div_ceil(HOUR_MS) * HOUR_MS;
        let whole_to = to - to % HOUR_MS;
        let mut spans = Vec::new();
        if whole_from < whole_to {
            spans.push((MINUTE, from, whole_from));
            spans.push((HOUR, whole_from, whole_to));
            spans.push((MINUTE, whole_to, to));
        } else {
            spans.push((MINUTE, from, to));
        }
        for (resolution, start, end) in spans {
            if start >= end {
                continue;
            }
            let prefix = prefix(resolution);
            let low = [prefix.as_slice(), &start.to_be_bytes()].concat();
            let high = [prefix.as_slice(), &end.to_be_bytes()].concat();
            for entry in self.series.range(low..high) {
                let (key, value) = entry?;
                visit(&key[prefix.len() + 8..], count(&value));
            }
        }
        Ok(())
    }

    /// A group's occurrences per bucket: `count` buckets of `width_ms` from `start_ms`.
    pub fn group_series(
        &self,
        tenant: &TenantId,
        group: &str,
        start_ms: u64,
        width_ms: u64,
        count: usize,
    ) -> Result<Vec<u64>, SignalError> {
        let Some(group) = super::id_bytes(group) else { return Ok(vec![0; count]) };
        let group = &group;
        (0..count as u64)
            .map(|index| {
                let from = start_ms + index * width_ms;
                let mut total = 0;
                self.sum_range(|resolution| group_prefix(tenant, group, resolution), from, from + width_ms, |_, n| total += n)?;
                Ok(total)
            })
            .collect()
    }

    /// A tenant's occurrences in `[from, to)` per rule id.
    pub fn rule_totals(&self, tenant: &TenantId, from: u64, to: u64) -> Result<BTreeMap<String, u64>, SignalError> {
        let mut totals = BTreeMap::new();
        self.sum_range(
            |resolution| tenant_prefix(tenant, resolution),
            from,
            to,
            |rule, n| *totals.entry(String::from_utf8_lossy(rule).into_owned()).or_default() += n,
        )?;
        Ok(totals)
    }

    /// Deletes the tenant's minute counters older than `before_ms` (hour
    /// counters stay); returns how many.
    pub(super) fn expire_minutes(&self, tenant: &TenantId, groups: &[[u8; 16]], before_ms: u64) -> Result<usize, SignalError> {
        let mut removed = 0;
        let prefixes = groups.iter().map(|group| group_prefix(tenant, group, MINUTE)).chain([tenant_prefix(tenant, MINUTE)]);
        for prefix in prefixes {
            let high = [prefix.as_slice(), &before_ms.to_be_bytes()].concat();
            for key in self.series.range(prefix..high).keys() {
                self.series.remove(key?)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Set once the series hold every occurrence (data written before series existed is counted at start).
const BUILT: &[u8] = b"series_built";

impl Signals {
    /// Counts every kept occurrence into the series, once per data
    /// directory (a directory from before series existed); returns how many
    /// occurrences were counted, `None` if the series were built already.
    pub(super) fn build_series(&self) -> Result<Option<u64>, SignalError> {
        if self.meta.contains_key(BUILT)? {
            return Ok(None);
        }
        self.series.clear()?;
        let mut counted = 0u64;
        for entry in self.signals.iter() {
            let (key, value) = entry?;
            let Some((tenant, id)) = super::group::split_key(&key) else { continue };
            let group: super::Signal = serde_json::from_slice(&value)?;
            if group.window.is_some() {
                // Window groups keep no occurrence records: their count goes in at the last window.
                self.count_series(
                    &tenant,
                    &id,
                    &group.rule_id,
                    group.last_seen_unix_ms.max(group.created_unix_ms),
                    group.occurrences as i64,
                )?;
                counted += group.occurrences;
                continue;
            }
            for key in self.occurrences.scan_prefix(keyed(&tenant, &[&id])).keys() {
                // An occurrence id begins with its millisecond.
                let key = key?;
                let at_ms = key.get(key.len() - 16..key.len() - 8).and_then(|ms| ms.try_into().ok()).map_or(0, u64::from_be_bytes);
                self.count_series(&tenant, &id, &group.rule_id, at_ms, 1)?;
                counted += 1;
            }
        }
        self.meta.insert(BUILT, &[])?;
        Ok(Some(counted))
    }
}
