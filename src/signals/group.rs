//! Grouping: a signal is an issue with occurrences. A violation's fingerprint
//! (its rule, and the names and services of its witness spans) selects its
//! group; a new occurrence of a group counts (its counter, see `counters`),
//! moves its last-seen time, becomes its latest sample when one is due, and
//! reopens a resolved group as a regression (a group marked a false positive
//! stays quiet). Every occurrence keeps its trace id and
//! witness span ids in the `signal_occurrences` tree ([`super::occurrence`]).

use super::occurrence::{self, Occurrence};
use super::{ChangeKind, Signal, SignalError, Signals, Status, StatusChange, id_bytes, keyed};
use crate::model::tenant::TenantId;
use crate::model::trace::Trace;
use sha2::{Digest, Sha256};

/// What recording one occurrence did to its group.
pub(super) enum Outcome {
    /// A new group.
    Created(Signal),
    /// A further occurrence of an existing group (after the change).
    Counted(Signal),
    /// A further occurrence that reopened a resolved group (after the change).
    Regressed(Signal),
    /// A further occurrence that ended the group's snooze (after the change).
    Woke(Signal),
}

/// The default fingerprint: the rule, and the sorted set of (service, name)
/// of the spans `span_ids` names in `trace` (ids it lacks count for nothing);
/// a violation without such spans groups by its rule alone.
pub fn fingerprint(rule_id: &str, trace: &Trace, span_ids: &[String]) -> [u8; 32] {
    let shapes: Vec<(&str, &str)> = span_ids
        .iter()
        .filter_map(|id| {
            let mut bytes = [0u8; 8];
            hex::decode_to_slice(id, &mut bytes).ok()?;
            trace.find(&bytes)
        })
        .map(|span| (span.resource.service.as_deref().unwrap_or(""), span.name.as_str()))
        .collect();
    fingerprint_of(rule_id, shapes)
}

/// The fingerprint of a violation whose rule set its own grouping key.
pub fn keyed_fingerprint(rule_id: &str, key: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((rule_id.len() as u64).to_be_bytes());
    hasher.update(rule_id.as_bytes());
    // No (service, name) pair starts with this marker's length.
    hasher.update(u64::MAX.to_be_bytes());
    hasher.update(key.as_bytes());
    hasher.finalize().into()
}

/// The fingerprint of a rule and the (service, name) pairs of its witness spans.
fn fingerprint_of<'a>(rule_id: &str, shapes: impl IntoIterator<Item = (&'a str, &'a str)>) -> [u8; 32] {
    let mut shapes: Vec<(&str, &str)> = shapes.into_iter().collect();
    shapes.sort_unstable();
    shapes.dedup();
    let mut hasher = Sha256::new();
    hasher.update((rule_id.len() as u64).to_be_bytes());
    hasher.update(rule_id.as_bytes());
    for (service, name) in shapes {
        for part in [service, name] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
    }
    hasher.finalize().into()
}

/// A group's rule versions are kept sorted and unique, at most this many (the newest).
const MAX_VERSIONS: usize = 50;
/// Occurrences per group whose trace snapshots are kept: the first and the latest ones.
pub const MAX_SAMPLES: usize = 5;
/// Once a group has its samples, a new one is taken at most this often (a
/// flood keeps counting without rewriting the group or storing snapshots).
pub const SAMPLE_EVERY_MS: u64 = 60_000;

/// Whether an occurrence at `at` should become `group`'s latest sample.
fn sample_due(group: &Signal, at: u64) -> bool {
    group.samples.len() < MAX_SAMPLES || at >= group.sampled_unix_ms.saturating_add(SAMPLE_EVERY_MS)
}

impl Signals {
    /// Adds one occurrence to the group `fingerprint` selects, creating the
    /// group from `new` if there is none (or it was deleted). Returns what it
    /// did, the group id, the trace that stopped being a sample (if one did)
    /// and whether this occurrence became a sample (its snapshot is kept).
    pub(super) fn occur(
        &self,
        tenant: &TenantId,
        fingerprint: &[u8; 32],
        new: Signal,
        occurrence: &Occurrence,
        dedup: &[u8; 32],
    ) -> Result<(Outcome, [u8; 16], Option<String>, bool), SignalError> {
        let index_key = keyed(tenant, &[fingerprint]);
        // Group creation for one tenant is serialized; counting is lock-free.
        let _creating = self.creating.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(group_id) = self.groups.get(&index_key)? {
            let group_id: [u8; 16] = group_id.as_ref().try_into().map_err(|_| SignalError::Cursor)?;
            if let Some((outcome, evicted, sampled)) = self.count(tenant, &group_id, &new, occurrence, dedup)? {
                return Ok((outcome, group_id, evicted, sampled));
            }
        }
        let group_id = id_bytes(&new.id).ok_or(SignalError::Cursor)?;
        // The index first: a kill -9 before the record leaves an entry that
        // `count` ignores (no record), and the replay makes the group anew;
        // the other way round it would leave a listed group the replay cannot
        // find, and make a second one.
        self.groups.insert(index_key, &group_id)?;
        self.insert_group(tenant, group_id, &new, Some(dedup))?;
        Ok((Outcome::Created(new), group_id, None, true))
    }

    /// Counts a further occurrence on the group `group_id`; `None` if it no
    /// longer exists. The count goes to the group's counter (exact, atomic).
    /// The group's record is rewritten only when this occurrence changes more
    /// than the count: a sample is due ([`SAMPLE_EVERY_MS`] after the last, or
    /// fewer than [`MAX_SAMPLES`] kept), the group is resolved (a regression),
    /// the rule version is new to it, or its snooze runs out; then `latest`
    /// (the occurrence's witnesses and attributes) becomes the group's latest
    /// sample. Also returns the trace that stopped being a sample, if one did,
    /// and whether this occurrence became one.
    fn count(
        &self,
        tenant: &TenantId,
        group_id: &[u8; 16],
        latest: &Signal,
        occurrence: &Occurrence,
        dedup: &[u8; 32],
    ) -> Result<Option<(Outcome, Option<String>, bool)>, SignalError> {
        if !self.signals.contains_key(keyed(tenant, &[group_id]))? {
            return Ok(None);
        }
        let counter = self.bump(tenant, group_id, 1, Some(occurrence.at_unix_ms), Some(dedup))?;
        let Some(group) = self.get_by_id(tenant, group_id)? else { return Ok(None) };
        let at = occurrence.at_unix_ms;
        let rewrite = |group: &Signal| {
            sample_due(group, at)
                || group.status == Status::Resolved
                || group.versions.binary_search(&occurrence.rule_version).is_err()
                || super::snooze::ran_out(group, at)
        };
        if !rewrite(&group) {
            self.index.touch(tenant, *group_id, counter);
            return Ok(Some((Outcome::Counted(group), None, false)));
        }
        // A regression or a snooze's end is announced: marked before the write.
        let announcing = if group.status == Status::Resolved {
            Some(super::Announcement::Regressed)
        } else if super::snooze::ran_out(&group, at) {
            Some(super::Announcement::SnoozeEnded)
        } else {
            None
        };
        if let Some(what) = announcing {
            self.mark(tenant, group_id, what)?;
        }
        let counted = self.update(tenant, group_id, |group| {
            if !rewrite(group) {
                // Another worker just took the sample: this occurrence only counts.
                return Ok(Some((false, false, None, false)));
            }
            group.trace_id = occurrence.trace_id.clone();
            group.span_ids = occurrence.span_ids.clone();
            group.message = occurrence.message.clone();
            group.witnesses = latest.witnesses.clone();
            group.attributes = latest.attributes.clone();
            group.severity = latest.severity;
            group.rule_version = occurrence.rule_version;
            group.labels = latest.labels.clone();
            group.sampled_unix_ms = at;
            if let Err(position) = group.versions.binary_search(&occurrence.rule_version) {
                group.versions.insert(position, occurrence.rule_version);
                if group.versions.len() > MAX_VERSIONS {
                    group.versions.remove(0);
                }
            }
            group.samples.retain(|sample| sample != &occurrence.trace_id);
            group.samples.push(occurrence.trace_id.clone());
            // The first sample stays; the oldest of the latest ones goes.
            let evicted = (group.samples.len() > MAX_SAMPLES).then(|| group.samples.remove(1));
            let woke = super::snooze::wake(group, at);
            let regressed = group.status == Status::Resolved;
            if regressed {
                group.history.push(StatusChange {
                    kind: ChangeKind::Status,
                    from: Status::Resolved,
                    to: Status::Open,
                    note: "regression: the rule fired again after the group was resolved".into(),
                    author: "fluo".into(),
                    author_name: None,
                    at: occurrence.at.clone(),
                });
                group.status = Status::Open;
                group.resolution = None;
                group.regressions = group.regressions.saturating_add(1);
                group.updated_at = occurrence.at.clone();
            }
            Ok(Some((regressed, woke, evicted, true)))
        })?;
        let counted = counted.map(|(group, (regressed, woke, evicted, sampled))| {
            let outcome = match (regressed, woke) {
                (true, _) => Outcome::Regressed(group),
                (false, true) => Outcome::Woke(group),
                (false, false) => Outcome::Counted(group),
            };
            (outcome, evicted, sampled)
        });
        let happened = match counted.as_ref().map(|(outcome, _, _)| outcome) {
            Some(Outcome::Regressed(_)) => Some(super::Announcement::Regressed),
            Some(Outcome::Woke(_)) => Some(super::Announcement::SnoozeEnded),
            _ => None,
        };
        if let Some(what) = announcing.filter(|what| Some(*what) != happened) {
            // Another writer changed the group first: nothing of ours to announce.
            self.unmark(tenant, group_id, what)?;
        }
        Ok(counted)
    }

    /// Removes the occurrence `occurrence_id` of group `group_id` (its trace no
    /// longer shows it); when the group has no occurrence left and is open, it
    /// is resolved as cleared. Returns the group if its status changed.
    /// Without `occurrence_id` (a signal stored before grouping), the group's
    /// one occurrence is its own.
    pub(super) fn withdraw(
        &self,
        tenant: &TenantId,
        group_id: &[u8; 16],
        occurrence_id: Option<&[u8; 16]>,
    ) -> Result<Option<Signal>, SignalError> {
        let mut at_ms = None;
        if let Some(occurrence_id) = occurrence_id {
            let key = keyed(tenant, &[group_id, occurrence_id]);
            let Some(removed) = self.occurrences.remove(&key)? else { return Ok(None) };
            self.usage.add(tenant, -super::retention::stored_bytes(&key, &removed));
            at_ms = Some(u64::from_be_bytes(occurrence_id[..8].try_into().expect("8 bytes")));
        }
        let Some(group) = self.get_by_id(tenant, group_id)? else { return Ok(None) };
        let counter = self.bump(tenant, group_id, -1, None, None)?;
        self.index.touch(tenant, *group_id, counter);
        self.count_series(tenant, group_id, &group.rule_id, at_ms.unwrap_or(group.created_unix_ms), -1)?;
        if counter.occurrences > 0 {
            return Ok(None);
        }
        // The clear is announced: marked before the write, unmarked if it did not happen.
        let clearing = group.status == Status::Open;
        if clearing {
            self.mark(tenant, group_id, super::Announcement::Cleared)?;
        }
        // Decided on the group as it is at the write: an acknowledgement that
        // lands first keeps it.
        let changed = self.transition(tenant, group_id, |group| {
            Ok((group.occurrences == 0 && group.status == Status::Open).then_some(super::status::Change {
                to: Status::Resolved,
                note: "spans that arrived later no longer violate the rule",
                author: "fluo",
                reason: Some("cleared"),
            }))
        })?;
        if clearing && changed.is_none() {
            self.unmark(tenant, group_id, super::Announcement::Cleared)?;
        }
        Ok(changed)
    }

    /// A page of a group's occurrences, newest first; the cursor is the last
    /// occurrence id of the previous page.
    pub fn occurrences(
        &self,
        tenant: &TenantId,
        group: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Occurrence>, Option<String>), SignalError> {
        let Some(group_id) = id_bytes(group) else { return Ok((Vec::new(), None)) };
        let start = keyed(tenant, &[&group_id]);
        let end = match cursor {
            Some(cursor) => keyed(tenant, &[&group_id, &occurrence::id_bytes(cursor).ok_or(SignalError::Cursor)?]),
            None => keyed(tenant, &[&group_id, &[0xff; 17]]),
        };
        let limit = limit.clamp(1, 500);
        let mut items = Vec::with_capacity(limit + 1);
        for entry in self.occurrences.range(start..end).rev().take(limit + 1) {
            let (key, record) = entry?;
            let id: [u8; 16] = key[key.len() - 16..].try_into().map_err(|_| SignalError::Cursor)?;
            items.push(occurrence::decode(&id, &record)?);
        }
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more { items.last().map(|occurrence| occurrence.id.clone()) } else { None };
        Ok((items, next))
    }
}

impl Signals {
    /// Signals stored before grouping become groups of one occurrence: their
    /// fingerprint (from the witnesses they kept), first and last seen, rule
    /// version, one occurrence record (its id is the signal's), and the
    /// trace's list of (dedup key, occurrence). Old signals of one shape stay
    /// separate groups; new occurrences go to the newest. Runs at every
    /// start and touches only signals without a fingerprint; returns how many.
    pub(super) fn migrate(&self) -> Result<usize, SignalError> {
        let mut migrated = 0;
        for entry in self.signals.iter() {
            let (key, value) = entry?;
            let mut signal: Signal = serde_json::from_slice(&value)?;
            if !signal.fingerprint.is_empty() {
                continue;
            }
            let Some((tenant, id)) = split_key(&key) else { continue };
            let shape: Vec<(String, String)> =
                signal.witnesses.iter().map(|w| (w.service.clone().unwrap_or_default(), w.name.clone())).collect();
            let fingerprint = fingerprint_of(&signal.rule_id, shape.iter().map(|(service, name)| (service.as_str(), name.as_str())));
            signal.fingerprint = hex::encode(fingerprint);
            signal.occurrences = signal.window.as_ref().map_or(1, |window| window.occurrences);
            signal.last_seen_at = signal.updated_at.clone();
            signal.last_seen_unix_ms = signal.created_unix_ms;
            signal.versions = vec![signal.rule_version];
            if signal.window.is_none() {
                signal.samples = vec![signal.trace_id.clone()];
            }
            if signal.window.is_none() {
                let mut trace_id = [0u8; 16];
                if hex::decode_to_slice(&signal.trace_id, &mut trace_id).is_ok() {
                    let record = occurrence::encode(&trace_id, &signal.span_ids, signal.rule_version, &signal.message);
                    self.occurrences.insert(keyed(&tenant, &[&id, &id]), record)?;
                    let dedup = super::dedup_key(&signal.rule_id, &signal.trace_id, &signal.message, &signal.span_ids);
                    self.by_trace.insert(keyed(&tenant, &[&trace_id, &id]), [dedup.as_slice(), &id].concat())?;
                }
                // Ids grow with time: the newest signal of a shape ends up indexed.
                self.groups.insert(keyed(&tenant, &[&fingerprint]), &id)?;
            }
            if self.signals.compare_and_swap(&key, Some(value), Some(serde_json::to_vec(&signal)?))?.is_ok() {
                migrated += 1;
            }
        }
        Ok(migrated)
    }
}

/// (tenant, signal id) of a `signals` key: the length-prefixed tenant, then 16 bytes.
pub(super) fn split_key(key: &[u8]) -> Option<(TenantId, [u8; 16])> {
    let (tenant, rest) = split_tenant(key)?;
    Some((tenant, rest.try_into().ok()?))
}

/// The tenant of a key and the key's rest.
pub(super) fn split_tenant(key: &[u8]) -> Option<(TenantId, &[u8])> {
    let (tenant, rest) = crate::store::key::Key::split_tenant(key)?;
    Some((TenantId::trusted(tenant), rest))
}
