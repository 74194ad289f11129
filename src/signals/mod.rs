//! Signals: the persisted record of a rule violation, and the trace snapshots
//! they point at. Owns the sled trees `signals`, `signal_by_trace`,
//! `signal_traces`, `signal_groups`, `signal_meta` and `signal_unannounced`
//! (and, through its
//! modules, `signal_occurrences`, `signal_counters` and `signal_series`).
//!
//! A signal is a group of violations ([`group`]): one fingerprint, exact
//! occurrence counts, occurrence records, sampled trace snapshots. Ids are
//! time-ordered (milliseconds, then a sequence). A violation's dedup key is
//! (rule id, trace id, message, witness span ids): evaluating an amended trace
//! again stores nothing twice, and an occurrence the amended trace no longer
//! shows is withdrawn. The trace's entries in `signal_by_trace` list the
//! dedup keys it produced, so a violation recorded before is found by one
//! prefix scan of the trace's entries. Every write of an existing group goes through
//! [`Signals::update`] (compare-and-swap, then the inbox index). It decides
//! nothing about rules or traces.
//!
//! Reading (filters, pages, counts) is in `query` over the in-memory `index`;
//! occurrence counts per minute and hour in `series`; status changes go
//! through `status`, snoozes through `snooze`.

mod counters;
mod group;
mod index;
mod occurrence;
mod query;
mod retention;
pub mod series;
mod snooze;
mod status;
mod types;

pub use group::fingerprint;
pub use occurrence::Occurrence;
pub use retention::{Retention, Swept};
pub use snooze::{MAX_SNOOZE_MS, Until};

pub use query::{Bucket, Buckets, Counts, Filter, RuleCount};
pub use types::{ChangeKind, Resolution, RuleRef, Signal, Snooze, Status, StatusChange, WindowDetails, Witness};

use crate::model::rule::Violation;
use crate::model::tenant::TenantId;
use crate::model::time::{now_ms, rfc3339};
use crate::model::trace::{Span, Trace};
use crate::store::Store;
use crate::store::key::Key;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A lifecycle event of a group whose notification must survive a crash:
/// marked (tree `signal_unannounced`) before the change is written, unmarked
/// once its notification is durable (in the webhook outbox).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announcement {
    Created,
    Regressed,
    SnoozeEnded,
    /// Resolved automatically: later spans no longer violate the rule.
    Cleared,
}

impl Announcement {
    pub const ALL: [Announcement; 4] = [Announcement::Created, Announcement::Regressed, Announcement::SnoozeEnded, Announcement::Cleared];

    fn bit(self) -> u8 {
        match self {
            Announcement::Created => 1,
            Announcement::Regressed => 2,
            Announcement::SnoozeEnded => 4,
            Announcement::Cleared => 8,
        }
    }
}

/// The pending announcements a marker holds; an empty marker (earlier
/// versions, which marked new groups only) is a creation.
fn marks(value: Option<&[u8]>) -> u8 {
    match value {
        None => 0,
        Some([]) => Announcement::Created.bit(),
        Some([bits, ..]) => *bits,
    }
}

/// Pinned sample traces per group.
pub const MAX_PINNED: usize = 10;

/// Witness spans a window signal keeps (the rest are counted, not stored).
const WINDOW_WITNESSES: usize = 20;

/// What one evaluation of one trace did to the signal store.
#[derive(Debug, Default, PartialEq)]
pub struct Recorded {
    /// New groups.
    pub created: Vec<Signal>,
    /// Further occurrences of existing groups (the groups after the change).
    pub counted: Vec<Signal>,
    /// Resolved groups that fired again, reopened (after the change).
    pub regressed: Vec<Signal>,
    /// Snoozed groups whose snooze this occurrence ended (after the change).
    pub woke: Vec<Signal>,
    /// Violations this trace had already produced.
    pub duplicates: usize,
    /// Groups resolved as cleared by this evaluation (after the change).
    pub cleared: Vec<Signal>,
}

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("invalid cursor")]
    Cursor,
    #[error("a signal cannot go from {from} to {to}")]
    Transition { from: &'static str, to: &'static str },
    #[error("only open or acknowledged groups can be snoozed; this one is {status}")]
    Snooze { status: &'static str },
    #[error("only a trace in the group's samples can be pinned")]
    NotSample,
    #[error("a group keeps at most {MAX_PINNED} pinned traces; unpin one first")]
    PinLimit,
    #[error("storage error: {0}")]
    Store(#[from] sled::Error),
    #[error("corrupt record: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("corrupt record: {0}")]
    Record(String),
}

pub struct Signals {
    store: Arc<Store>,
    signals: sled::Tree,
    /// (tenant, fingerprint) → group id.
    groups: sled::Tree,
    /// (tenant, group id, occurrence id) → [`Occurrence`] ([`occurrence`]'s binary record).
    occurrences: sled::Tree,
    /// Held while a group is looked up and created.
    creating: std::sync::Mutex<()>,
    /// (tenant, trace id, group id) → (dedup key 32, occurrence id 16) per occurrence.
    by_trace: sled::Tree,
    snapshots: sled::Tree,
    /// Occurrences per minute and hour ([`series`]).
    series: sled::Tree,
    /// Markers of one-time work done on this data directory.
    meta: sled::Tree,
    /// (tenant, group id) of new groups whose `signal.created` has not yet
    /// reached a durable notification (the webhook outbox); see [`Signals::unannounced`].
    unannounced: sled::Tree,
    /// (tenant, group id) → occurrences, last seen, sequence ([`counters`]).
    counters: sled::Tree,
    usage: retention::Usage,
    /// The inbox's filters and order, in memory ([`index`]).
    index: index::Index,
}

/// The tenant's prefix, then fixed-width parts (ids, times).
fn keyed(tenant: &TenantId, parts: &[&[u8]]) -> Vec<u8> {
    parts.iter().fold(Key::tenant(tenant), |key, part| key.raw(part)).into_vec()
}

/// Milliseconds, then a process-wide sequence: ids made later sort later, even
/// within one millisecond.
fn new_id(now: u64) -> [u8; 16] {
    static SEQUENCE: std::sync::OnceLock<std::sync::atomic::AtomicU64> = std::sync::OnceLock::new();
    let sequence = SEQUENCE.get_or_init(|| std::sync::atomic::AtomicU64::new(u64::from(rand::rng().next_u32()) << 16));
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&now.to_be_bytes());
    id[8..].copy_from_slice(&sequence.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_be_bytes());
    id
}

fn id_bytes(id: &str) -> Option<[u8; 16]> {
    let hex_part = id.strip_prefix("s_")?;
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(hex_part, &mut bytes).ok()?;
    Some(bytes)
}

/// The witness spans a violation names: each span once (ids compared decoded),
/// at most [`crate::rules::MAX_WITNESSES`], while their JSON fits in `budget`.
fn witnesses_of(trace: &Trace, span_ids: &[String], budget: &mut usize) -> Vec<Witness> {
    let mut seen: Vec<[u8; 8]> = Vec::new();
    let mut witnesses = Vec::new();
    for hex_id in span_ids {
        let mut span_id = [0u8; 8];
        if witnesses.len() >= crate::rules::MAX_WITNESSES || hex::decode_to_slice(hex_id, &mut span_id).is_err() || seen.contains(&span_id)
        {
            continue;
        }
        seen.push(span_id);
        let Some(span) = trace.find(&span_id) else { continue };
        let witness = Witness::of(span);
        let bytes = serde_json::to_vec(&witness).map_or(usize::MAX, |json| json.len());
        if bytes > *budget {
            continue;
        }
        *budget -= bytes;
        witnesses.push(witness);
    }
    witnesses
}

fn store_has_tree(store: &Store, name: &str) -> bool {
    store.db.tree_names().iter().any(|tree| tree.as_ref() == name.as_bytes())
}

fn dedup_key(rule_id: &str, trace_id: &str, message: &str, span_ids: &[String]) -> [u8; 32] {
    let mut spans = span_ids.to_vec();
    spans.sort();
    let mut hasher = Sha256::new();
    for part in [rule_id, trace_id, message] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    for span in &spans {
        hasher.update(span.as_bytes());
    }
    hasher.finalize().into()
}

impl Signals {
    /// Opens the trees and migrates signals stored before grouping (see [`group::migrate`]).
    pub fn open(store: Arc<Store>) -> Result<Signals, SignalError> {
        let signals = Signals {
            signals: store.db.open_tree("signals")?,
            groups: store.db.open_tree("signal_groups")?,
            occurrences: store.db.open_tree("signal_occurrences")?,
            creating: std::sync::Mutex::new(()),
            by_trace: store.db.open_tree("signal_by_trace")?,
            snapshots: store.db.open_tree("signal_traces")?,
            series: store.db.open_tree("signal_series")?,
            meta: store.db.open_tree("signal_meta")?,
            unannounced: store.db.open_tree("signal_unannounced")?,
            counters: store.db.open_tree("signal_counters")?,
            usage: retention::Usage::default(),
            index: index::Index::default(),
            store,
        };
        // Trees of earlier layouts: the dedup keys are in `signal_by_trace`,
        // and retention walks each group's occurrences in time order.
        for old in ["signal_dedup", "signal_occurrence_times"] {
            if store_has_tree(&signals.store, old) && signals.store.db.drop_tree(old)? {
                tracing::info!(tree = old, "tree of an earlier layout dropped");
            }
        }
        let migrated = signals.migrate()?;
        if migrated > 0 {
            signals.flush()?;
            tracing::info!(signals = migrated, "signals from before grouping migrated to groups");
        }
        if let Some(occurrences) = signals.build_series()? {
            signals.flush()?;
            tracing::info!(occurrences, "occurrence series built from the kept occurrences");
        }
        if let Some(groups) = signals.build_counters()? {
            signals.flush()?;
            tracing::info!(groups, "group counters built from the group records");
        }
        let groups = signals.build_index()?;
        signals.count_usage()?;
        tracing::info!(groups, "signal inbox index built");
        Ok(signals)
    }

    /// Reads every group into the inbox index; returns how many.
    fn build_index(&self) -> Result<usize, SignalError> {
        let mut groups = 0;
        for entry in self.signals.iter() {
            let (key, value) = entry?;
            let Some((tenant, id)) = group::split_key(&key) else { continue };
            let mut signal: Signal = serde_json::from_slice(&value)?;
            let counter = self.counter(&tenant, &id)?.unwrap_or_default();
            counter.merge_into(&mut signal);
            self.index.put(&tenant, id, &signal, counter.sequence);
            groups += 1;
        }
        Ok(groups)
    }

    /// Writes a new group with its counter and indexes it.
    fn insert_group(&self, tenant: &TenantId, id: [u8; 16], signal: &Signal, dedup: Option<&[u8; 32]>) -> Result<(), SignalError> {
        // Written before the group: sled keeps writes in order, so a group on
        // disk after a crash has its marker unless it was announced.
        self.mark(tenant, &id, Announcement::Created)?;
        self.start_counter(tenant, &id, signal, dedup)?;
        self.signals.insert(keyed(tenant, &[&id]), serde_json::to_vec(signal)?)?;
        self.index.put(tenant, id, signal, 1);
        Ok(())
    }

    /// The one write of an existing group: reads it, lets `change` modify it
    /// (`Ok(None)`: leave it as it is), raises its revision and writes it by
    /// compare-and-swap; a concurrent write makes `change` run again on the
    /// newer record, so no write is lost and counts stay exact. Then the
    /// inbox index gets the result. `None` if the group does not exist or was
    /// left; else the group as written (not flushed) and what `change` returned.
    pub(super) fn update<T>(
        &self,
        tenant: &TenantId,
        id: &[u8; 16],
        mut change: impl FnMut(&mut Signal) -> Result<Option<T>, SignalError>,
    ) -> Result<Option<(Signal, T)>, SignalError> {
        let key = keyed(tenant, &[id]);
        loop {
            let Some(value) = self.signals.get(&key)? else { return Ok(None) };
            let mut signal: Signal = serde_json::from_slice(&value)?;
            // `change` sees the exact count.
            if let Some(counter) = self.counter(tenant, id)? {
                counter.merge_into(&mut signal);
            }
            let Some(result) = change(&mut signal)? else { return Ok(None) };
            signal.revision = signal.revision.saturating_add(1);
            if self.signals.compare_and_swap(&key, Some(value), Some(serde_json::to_vec(&signal)?))?.is_ok() {
                // Occurrences counted meanwhile are in the counter.
                let counter = self.counter(tenant, id)?.unwrap_or_default();
                counter.merge_into(&mut signal);
                self.index.put(tenant, *id, &signal, counter.sequence);
                return Ok(Some((signal, result)));
            }
        }
    }

    /// Records the outcome of evaluating `trace`. `runs` holds, per rule that
    /// ran to completion, its violations. With `amended`, the trace was
    /// evaluated before: open signals of those rules that the new evaluation no
    /// longer produces are resolved as cleared. Does not flush: the evaluator
    /// commits a group of evaluations with one [`Signals::flush`].
    /// `otlp` is the trace encoded as OTLP protobuf, stored as the snapshot.
    pub fn record(
        &self,
        tenant: &TenantId,
        trace: &Trace,
        otlp: &[u8],
        runs: &[(RuleRef, Vec<Violation>)],
        amended: bool,
    ) -> Result<Recorded, SignalError> {
        let trace_id = hex::encode(trace.trace_id);
        let mut recorded = Recorded::default();
        let mut current_keys = Vec::new();
        // Whether this trace is now a sample of a group (its snapshot is kept).
        let mut sampled = false;
        let now = now_ms();
        for (rule, violations) in runs {
            // Witness copies of one rule on one trace share a byte budget (a rule
            // naming one large span in many violations must not multiply it).
            let mut witness_budget = crate::rules::WITNESS_BYTES;
            for violation in violations {
                let dedup = dedup_key(&rule.id, &trace_id, &violation.message, &violation.span_ids);
                current_keys.push(dedup);
                if self.recorded_before(tenant, &trace.trace_id, &trace_id, &dedup)? {
                    recorded.duplicates += 1;
                    continue;
                }
                let fingerprint = match &violation.group {
                    Some(key) => group::keyed_fingerprint(&rule.id, key),
                    None => group::fingerprint(&rule.id, trace, &violation.span_ids),
                };
                if self.repair_counted(tenant, trace, &fingerprint, &dedup, violation, rule.version, now)? {
                    recorded.duplicates += 1;
                    continue;
                }
                let witnesses = witnesses_of(trace, &violation.span_ids, &mut witness_budget);
                let occurrence_id = new_id(now);
                let occurrence = Occurrence::new(&occurrence_id, &trace_id, &violation.span_ids, rule.version, &violation.message, now);
                let new = Signal {
                    trace_id: trace_id.clone(),
                    span_ids: violation.span_ids.clone(),
                    witnesses,
                    samples: vec![trace_id.clone()],
                    fingerprint: hex::encode(fingerprint),
                    ..Signal::open(new_id(now), rule, violation, now)
                };
                let (outcome, group_id, evicted, became_sample) = self.occur(tenant, &fingerprint, new, &occurrence, &dedup)?;
                self.count_series(tenant, &group_id, &rule.id, now, 1)?;
                sampled |= became_sample;
                if let Some(evicted) = evicted {
                    self.drop_snapshot_unless_sampled(tenant, &evicted)?;
                }
                let record = occurrence::encode(&trace.trace_id, &violation.span_ids, rule.version, &violation.message);
                let key = keyed(tenant, &[&group_id, &occurrence_id]);
                self.usage.add(tenant, retention::stored_bytes(&key, &record));
                self.occurrences.insert(key, record)?;
                self.list_for_trace(tenant, &trace.trace_id, &group_id, &dedup, &occurrence_id)?;
                match outcome {
                    group::Outcome::Created(signal) => recorded.created.push(signal),
                    group::Outcome::Counted(signal) => recorded.counted.push(signal),
                    group::Outcome::Regressed(signal) => recorded.regressed.push(signal),
                    group::Outcome::Woke(signal) => recorded.woke.push(signal),
                }
            }
        }
        if amended {
            // Occurrences this trace produced before and no longer does are
            // withdrawn; a group left without occurrences is cleared.
            let ran: Vec<&str> = runs.iter().map(|(rule, _)| rule.id.as_str()).collect();
            for entry in self.by_trace.scan_prefix(keyed(tenant, &[&trace.trace_id])) {
                let (key, value) = entry?;
                let group_id: [u8; 16] = key[key.len() - 16..].try_into().map_err(|_| SignalError::Cursor)?;
                let Some(group) = self.get_by_id(tenant, &group_id)? else { continue };
                if !ran.contains(&group.rule_id.as_str()) {
                    continue;
                }
                // Signals from before grouping list nothing: their one violation is the signal's own.
                let listed: Vec<([u8; 32], Option<[u8; 16]>)> = if value.is_empty() {
                    vec![(dedup_key(&group.rule_id, &trace_id, &group.message, &group.span_ids), None)]
                } else {
                    value
                        .chunks_exact(48)
                        .map(|chunk| (chunk[..32].try_into().expect("32"), Some(chunk[32..].try_into().expect("16"))))
                        .collect()
                };
                let mut kept: Vec<u8> = Vec::new();
                for (dedup, occurrence_id) in listed {
                    if current_keys.contains(&dedup) {
                        kept.extend(occurrence_id.map(|id| [dedup.as_slice(), &id].concat()).unwrap_or_default());
                        continue;
                    }
                    recorded.cleared.extend(self.withdraw(tenant, &group_id, occurrence_id.as_ref())?);
                }
                if !value.is_empty() && kept.len() != value.len() {
                    self.by_trace.insert(&key, kept)?;
                }
            }
        }
        // Snapshots are kept for the groups' samples only: a flood of one
        // violation stores counts and a few traces, not a trace per occurrence.
        // An amended trace that is a sample gets its snapshot replaced.
        let snapshot_key = keyed(tenant, &[&trace.trace_id]);
        if sampled || (amended && self.snapshots.contains_key(&snapshot_key)?) {
            let replaced = self.snapshots.insert(snapshot_key, otlp)?.map_or(0, |old| old.len());
            self.usage.add(tenant, otlp.len() as i64 - replaced as i64);
        }
        Ok(recorded)
    }

    /// Whether the trace `trace_id` (`trace_hex`) produced the violation
    /// `dedup` before: one of its per-trace entries lists it.
    /// Adds (dedup key, occurrence id) to the trace's entry for the group: the
    /// entry lists one pair per occurrence the trace produced there.
    fn list_for_trace(
        &self,
        tenant: &TenantId,
        trace_id: &[u8; 16],
        group_id: &[u8; 16],
        dedup: &[u8; 32],
        occurrence_id: &[u8; 16],
    ) -> Result<(), SignalError> {
        let entry: Vec<u8> = [dedup.as_slice(), occurrence_id].concat();
        self.by_trace
            .fetch_and_update(keyed(tenant, &[trace_id, group_id]), |old| Some([old.unwrap_or_default(), entry.as_slice()].concat()))?;
        Ok(())
    }

    /// A violation counted on its group before a `kill -9` whose occurrence
    /// record or per-trace entry did not reach the disk (they are written
    /// after the count; sled keeps a prefix of writes between flushes): its
    /// replay finds its dedup key among the group's recently counted ones
    /// ([`counters`]), writes what is missing, and is not counted again.
    /// Returns whether that was the case. The group's occurrences are scanned
    /// only then (a replay after a crash).
    #[allow(clippy::too_many_arguments)]
    fn repair_counted(
        &self,
        tenant: &TenantId,
        trace: &Trace,
        fingerprint: &[u8; 32],
        dedup: &[u8; 32],
        violation: &Violation,
        version: u32,
        now: u64,
    ) -> Result<bool, SignalError> {
        let Some(group_id) = self.groups.get(keyed(tenant, &[fingerprint]))? else { return Ok(false) };
        let group_id: [u8; 16] = group_id.as_ref().try_into().map_err(|_| SignalError::Cursor)?;
        if !self.counted_recently(tenant, &group_id, dedup)? {
            return Ok(false);
        }
        let wanted = occurrence::encode(&trace.trace_id, &violation.span_ids, version, &violation.message);
        let mut found = None;
        for entry in self.occurrences.scan_prefix(keyed(tenant, &[&group_id])) {
            let (key, record) = entry?;
            if record == wanted {
                found = Some(key[key.len() - 16..].try_into().map_err(|_| SignalError::Cursor)?);
                break;
            }
        }
        let occurrence_id = match found {
            Some(id) => id,
            None => {
                let id = new_id(now);
                let key = keyed(tenant, &[&group_id, &id]);
                self.usage.add(tenant, retention::stored_bytes(&key, &wanted));
                self.occurrences.insert(key, wanted)?;
                id
            }
        };
        self.list_for_trace(tenant, &trace.trace_id, &group_id, dedup, &occurrence_id)?;
        tracing::info!(tenant = %tenant, "a violation counted before a crash was recognised on replay; its records were repaired");
        Ok(true)
    }

    fn recorded_before(&self, tenant: &TenantId, trace_id: &[u8; 16], trace_hex: &str, dedup: &[u8; 32]) -> Result<bool, SignalError> {
        for entry in self.by_trace.scan_prefix(keyed(tenant, &[trace_id])) {
            let (key, value) = entry?;
            if value.chunks_exact(48).any(|chunk| chunk[..32] == dedup[..]) {
                return Ok(true);
            }
            if value.is_empty() {
                // A signal from before grouping lists nothing: its one violation is the signal's own.
                let group_id: [u8; 16] = key[key.len() - 16..].try_into().map_err(|_| SignalError::Cursor)?;
                if let Some(group) = self.get_by_id(tenant, &group_id)?
                    && dedup_key(&group.rule_id, trace_hex, &group.message, &group.span_ids) == *dedup
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Deletes the snapshot of `trace_id` unless a group still lists it as a
    /// sample or pinned; returns whether it did.
    fn drop_snapshot_unless_sampled(&self, tenant: &TenantId, trace_id: &str) -> Result<bool, SignalError> {
        let mut id = [0u8; 16];
        if hex::decode_to_slice(trace_id, &mut id).is_err() {
            return Ok(false);
        }
        for entry in self.by_trace.scan_prefix(keyed(tenant, &[&id])) {
            let (key, _) = entry?;
            let group_key = keyed(tenant, &[&key[key.len() - 16..]]);
            if let Some(group) = self.signals.get(group_key)? {
                let group: Signal = serde_json::from_slice(&group)?;
                if group.samples.iter().chain(&group.pinned).any(|sample| sample == trace_id) {
                    return Ok(false);
                }
            }
        }
        let removed = self.snapshots.remove(keyed(tenant, &[&id]))?;
        self.usage.add(tenant, -(removed.as_ref().map_or(0, |old| old.len()) as i64));
        Ok(removed.is_some())
    }

    /// Makes every recorded signal durable (one fsync for all of them).
    pub fn flush(&self) -> Result<(), SignalError> {
        self.store.db.flush()?;
        Ok(())
    }

    /// Records a window rule's violation: updates `group` (the signal of the
    /// previous, also violating, window) if it is still open or acknowledged,
    /// else creates a signal. Returns the signal and whether it is new.
    pub fn record_window(
        &self,
        tenant: &TenantId,
        rule: &RuleRef,
        violation: &Violation,
        (start, end): (u64, u64),
        window: &Trace,
        group: Option<&str>,
    ) -> Result<(Signal, bool), SignalError> {
        let now = now_ms();
        let wanted: Vec<[u8; 8]> = violation
            .span_ids
            .iter()
            .filter_map(|id| {
                let mut bytes = [0u8; 8];
                hex::decode_to_slice(id, &mut bytes).ok().map(|()| bytes)
            })
            .collect();
        let witnesses: Vec<&Span> = window.spans.iter().filter(|span| wanted.contains(&span.span_id)).take(WINDOW_WITNESSES).collect();
        let mut trace_ids: Vec<String> = Vec::new();
        for span in &witnesses {
            let id = hex::encode(span.trace_id);
            if !trace_ids.contains(&id) {
                trace_ids.push(id);
            }
        }
        if let Some(existing) = group.and_then(id_bytes) {
            // A concurrent status change to resolved wins; this window then opens a new signal.
            let continued = self.update(tenant, &existing, |signal| {
                if !matches!(signal.status, Status::Open | Status::Acknowledged) {
                    return Ok(None);
                }
                let Some(details) = signal.window.as_mut() else { return Ok(None) };
                details.start = rfc3339(start);
                details.end = rfc3339(end);
                details.occurrences += 1;
                details.spans_in_window = window.spans.len() as u64;
                details.trace_ids = trace_ids.clone();
                signal.message = violation.message.clone();
                signal.attributes = violation.attributes.clone();
                signal.span_ids = witnesses.iter().map(|span| hex::encode(span.span_id)).collect();
                signal.witnesses = witnesses.iter().map(|span| Witness::of(span)).collect();
                signal.updated_at = rfc3339(now);
                signal.last_seen_at = rfc3339(now);
                signal.last_seen_unix_ms = now;
                if let Err(at) = signal.versions.binary_search(&rule.version) {
                    signal.versions.insert(at, rule.version);
                }
                snooze::wake(signal, now);
                Ok(Some(()))
            })?;
            if let Some((mut signal, ())) = continued {
                let counter = self.bump(tenant, &existing, 1, Some(now), None)?;
                counter.merge_into(&mut signal);
                self.index.touch(tenant, existing, counter);
                self.count_series(tenant, &existing, &rule.id, now, 1)?;
                return Ok((signal, false));
            }
        }
        let id = new_id(now);
        let signal = Signal {
            trace_id: trace_ids.first().cloned().unwrap_or_default(),
            span_ids: witnesses.iter().map(|span| hex::encode(span.span_id)).collect(),
            witnesses: witnesses.iter().map(|span| Witness::of(span)).collect(),
            window: Some(WindowDetails {
                start: rfc3339(start),
                end: rfc3339(end),
                first_start: rfc3339(start),
                occurrences: 1,
                spans_in_window: window.spans.len() as u64,
                trace_ids,
            }),
            ..Signal::open(id, rule, violation, now)
        };
        self.insert_group(tenant, id, &signal, None)?;
        self.count_series(tenant, &id, &rule.id, now, 1)?;
        Ok((signal, true))
    }

    /// Marks `what` as not yet announced for group `id`: written before the
    /// change it announces, so that the change is never on disk without it.
    fn mark(&self, tenant: &TenantId, id: &[u8; 16], what: Announcement) -> Result<(), SignalError> {
        self.unannounced.fetch_and_update(keyed(tenant, &[id]), |old| Some(vec![marks(old) | what.bit()]))?;
        Ok(())
    }

    fn unmark(&self, tenant: &TenantId, id: &[u8; 16], what: Announcement) -> Result<(), SignalError> {
        self.unannounced.fetch_and_update(keyed(tenant, &[id]), |old| {
            let left = marks(old) & !what.bit();
            (left != 0).then(|| vec![left])
        })?;
        Ok(())
    }

    /// Lifecycle events never announced: a crash came after the change
    /// reached the disk and before its notification did. The caller announces
    /// them again (the group as it is now) and calls [`Signals::announced`].
    pub fn unannounced(&self) -> Result<Vec<(TenantId, Signal, Vec<Announcement>)>, SignalError> {
        let mut pending = Vec::new();
        for entry in self.unannounced.iter() {
            let (key, value) = entry?;
            let Some((tenant, id)) = group::split_key(&key) else { continue };
            let bits = marks(Some(&value));
            match self.get_by_id(&tenant, &id)? {
                Some(signal) => {
                    pending.push((tenant, signal, Announcement::ALL.into_iter().filter(|what| bits & what.bit() != 0).collect()))
                }
                None => drop(self.unannounced.remove(&key)?),
            }
        }
        Ok(pending)
    }

    /// `what` of group `id` is announced durably (its notifications are on disk).
    pub fn announced(&self, tenant: &TenantId, id: &str, what: Announcement) -> Result<(), SignalError> {
        if let Some(bytes) = id_bytes(id) {
            self.unmark(tenant, &bytes, what)?;
        }
        Ok(())
    }

    /// A group as it is now (a snooze that ran out is shown ended).
    pub fn get(&self, tenant: &TenantId, id: &str) -> Result<Option<Signal>, SignalError> {
        let Some(bytes) = id_bytes(id) else { return Ok(None) };
        Ok(self.get_by_id(tenant, &bytes)?.map(|signal| snooze::current(signal, now_ms())))
    }

    /// A group's record with its counter merged in.
    fn get_by_id(&self, tenant: &TenantId, id: &[u8; 16]) -> Result<Option<Signal>, SignalError> {
        let Some(value) = self.signals.get(keyed(tenant, &[id]))? else { return Ok(None) };
        let mut signal: Signal = serde_json::from_slice(&value)?;
        if let Some(counter) = self.counter(tenant, id)? {
            counter.merge_into(&mut signal);
        }
        Ok(Some(signal))
    }

    /// The stored snapshot of a trace that has signals, as OTLP protobuf.
    pub fn snapshot(&self, tenant: &TenantId, trace_id: &[u8; 16]) -> Result<Option<Vec<u8>>, SignalError> {
        Ok(self.snapshots.get(keyed(tenant, &[trace_id]))?.map(|value| value.to_vec()))
    }
}

#[cfg(test)]
mod inbox_tests;
#[cfg(test)]
mod tests;
