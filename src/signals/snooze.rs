//! Snoozing a group: it leaves the default inbox and sends no rate
//! notification until a time passes or until it has a number of further
//! occurrences, whichever comes first; with neither it is muted until someone
//! lifts it. A snooze that ends by an occurrence is recorded in the history
//! and notified (the group is back); one whose time passed is shown ended at
//! once and recorded at the group's next write. Pinning a sample trace is
//! here too: like a snooze, an investigator's mark on the group.

use super::{ChangeKind, MAX_PINNED, Signal, SignalError, Signals, Snooze, Status, StatusChange, id_bytes};
use crate::model::tenant::TenantId;
use crate::model::time::{now_ms, rfc3339};

/// How long a snooze may last at most (one year).
pub const MAX_SNOOZE_MS: u64 = 366 * 24 * 3_600_000;

/// Whether `group`'s snooze ran out at `now` (by time or by its count).
pub(super) fn ran_out(group: &Signal, now: u64) -> bool {
    group.snooze.as_ref().is_some_and(|snooze| {
        snooze.until_unix_ms.is_some_and(|until| until <= now) || snooze.until_occurrences.is_some_and(|count| group.occurrences >= count)
    })
}

/// Ends `group`'s snooze if it ran out, with a history entry by FLUO;
/// returns whether it did.
pub(super) fn wake(group: &mut Signal, now: u64) -> bool {
    if !ran_out(group, now) {
        return false;
    }
    let snooze = group.snooze.take().expect("ran out");
    let note = match snooze.until_occurrences {
        Some(count) if group.occurrences >= count => format!("snooze ended: the group reached {count} occurrences"),
        _ => "snooze ended: its time passed".to_string(),
    };
    group.history.push(StatusChange {
        kind: ChangeKind::Unsnoozed,
        from: group.status,
        to: group.status,
        note,
        author: "fluo".into(),
        author_name: None,
        at: rfc3339(now),
    });
    true
}

/// `signal` as shown at `now`: a snooze whose time passed is ended.
pub(super) fn current(mut signal: Signal, now: u64) -> Signal {
    if signal.snooze.as_ref().is_some_and(|snooze| snooze.until_unix_ms.is_some_and(|until| until <= now)) {
        signal.snooze = None;
    }
    signal
}

/// What a snooze waits for: a time and/or further occurrences.
#[derive(Clone, Copy, Debug, Default)]
pub struct Until {
    pub time_ms: Option<u64>,
    pub more_occurrences: Option<u64>,
}

impl Signals {
    /// Snoozes an open or acknowledged group (flushed before returning);
    /// `None` if the tenant has no such group. A new snooze replaces the old.
    pub fn snooze(&self, tenant: &TenantId, id: &str, until: Until, author: &str) -> Result<Option<Signal>, SignalError> {
        let Some(bytes) = id_bytes(id) else { return Ok(None) };
        let now = now_ms();
        let snoozed = self.update(tenant, &bytes, |group| {
            if !matches!(group.status, Status::Open | Status::Acknowledged) {
                return Err(SignalError::Snooze { status: group.status.as_str() });
            }
            let until_occurrences = until.more_occurrences.map(|more| group.occurrences.saturating_add(more));
            let mut parts = Vec::new();
            if let Some(time) = until.time_ms {
                parts.push(format!("until {}", rfc3339(time)));
            }
            if let (Some(more), Some(count)) = (until.more_occurrences, until_occurrences) {
                parts.push(format!("until {more} more occurrences (count {count})"));
            }
            let note =
                if parts.is_empty() { "muted until the snooze is lifted".to_string() } else { format!("snoozed {}", parts.join(" or ")) };
            group.history.push(StatusChange {
                kind: ChangeKind::Snoozed,
                from: group.status,
                to: group.status,
                note,
                author: author.into(),
                author_name: None,
                at: rfc3339(now),
            });
            group.snooze = Some(Snooze {
                until: until.time_ms.map(rfc3339),
                until_unix_ms: until.time_ms,
                until_occurrences,
                by: author.into(),
                at: rfc3339(now),
            });
            group.updated_at = rfc3339(now);
            Ok(Some(()))
        })?;
        if snoozed.is_some() {
            self.store.db.flush()?;
        }
        Ok(snoozed.map(|(group, ())| group))
    }

    /// Lifts a group's snooze (flushed before returning); `None` if the tenant
    /// has no such group. A group that is not snoozed is returned unchanged.
    pub fn unsnooze(&self, tenant: &TenantId, id: &str, author: &str) -> Result<Option<Signal>, SignalError> {
        let Some(bytes) = id_bytes(id) else { return Ok(None) };
        let now = now_ms();
        let lifted = self.update(tenant, &bytes, |group| {
            if group.snooze.take().is_none() {
                return Ok(None);
            }
            group.history.push(StatusChange {
                kind: ChangeKind::Unsnoozed,
                from: group.status,
                to: group.status,
                note: "snooze lifted".into(),
                author: author.into(),
                author_name: None,
                at: rfc3339(now),
            });
            group.updated_at = rfc3339(now);
            Ok(Some(()))
        })?;
        match lifted {
            Some((group, ())) => {
                self.store.db.flush()?;
                Ok(Some(group))
            }
            None => self.get(tenant, id),
        }
    }

    /// Pins one of the group's sample traces (flushed); `None` if the tenant
    /// has no such group. Its snapshot then stays until it is unpinned.
    pub fn pin(&self, tenant: &TenantId, id: &str, trace_id: &str) -> Result<Option<Signal>, SignalError> {
        let Some(bytes) = id_bytes(id) else { return Ok(None) };
        let trace_id = trace_id.to_ascii_lowercase();
        let pinned = self.update(tenant, &bytes, |group| {
            if group.pinned.contains(&trace_id) {
                return Ok(None);
            }
            if !group.samples.contains(&trace_id) {
                return Err(SignalError::NotSample);
            }
            if group.pinned.len() >= MAX_PINNED {
                return Err(SignalError::PinLimit);
            }
            group.pinned.push(trace_id.clone());
            Ok(Some(()))
        })?;
        match pinned {
            Some((group, ())) => {
                self.store.db.flush()?;
                Ok(Some(group))
            }
            None => self.get(tenant, id),
        }
    }

    /// Unpins a trace (flushed); its snapshot goes unless it is still a sample.
    pub fn unpin(&self, tenant: &TenantId, id: &str, trace_id: &str) -> Result<Option<Signal>, SignalError> {
        let Some(bytes) = id_bytes(id) else { return Ok(None) };
        let trace_id = trace_id.to_ascii_lowercase();
        let unpinned = self.update(tenant, &bytes, |group| {
            let before = group.pinned.len();
            group.pinned.retain(|pinned| pinned != &trace_id);
            Ok((group.pinned.len() != before).then_some(()))
        })?;
        match unpinned {
            Some((group, ())) => {
                self.drop_snapshot_unless_sampled(tenant, &trace_id)?;
                self.store.db.flush()?;
                Ok(Some(group))
            }
            None => self.get(tenant, id),
        }
    }
}
