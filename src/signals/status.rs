//! The one path of every status change: the API's workflow changes and FLUO's
//! own clearing of a signal that spans arriving later no longer justify. Both
//! go through [`Signals::transition`], which writes with compare-and-swap.

use super::{Resolution, Signal, SignalError, Signals, Status, StatusChange, id_bytes, keyed};
use crate::model::tenant::TenantId;
use crate::model::time::{now_ms, rfc3339};

/// A status change, as [`Signals::transition`] applies it.
pub(super) struct Change<'a> {
    pub to: Status,
    pub note: &'a str,
    pub author: &'a str,
    /// The resolution's reason when `to` ends the signal (the status's name if none).
    pub reason: Option<&'a str>,
}

impl Signals {
    /// Changes a signal's status (flushed before returning); `None` if the
    /// tenant has no such signal.
    pub fn set_status(&self, tenant: &TenantId, id: &str, status: Status, note: &str, author: &str) -> Result<Option<Signal>, SignalError> {
        let Some(bytes) = id_bytes(id) else { return Ok(None) };
        let changed = self.transition(&keyed(tenant, &[&bytes]), |_| Ok(Some(Change { to: status, note, author, reason: None })))?;
        if changed.is_some() {
            self.store.db.flush()?;
        }
        Ok(changed)
    }

    /// Assigns the signal to `user_id` (or to nobody) by compare-and-swap,
    /// flushed before returning; `None` if the tenant has no such signal.
    /// The caller checks that the user belongs to the tenant.
    pub fn assign(&self, tenant: &TenantId, id: &str, user_id: Option<&str>) -> Result<Option<Signal>, SignalError> {
        let Some(bytes) = id_bytes(id) else { return Ok(None) };
        let key = keyed(tenant, &[&bytes]);
        loop {
            let Some(value) = self.signals.get(&key)? else { return Ok(None) };
            let mut signal: Signal = serde_json::from_slice(&value)?;
            signal.assignee = user_id.map(str::to_string);
            signal.updated_at = rfc3339(now_ms());
            if self.signals.compare_and_swap(&key, Some(value), Some(serde_json::to_vec(&signal)?))?.is_ok() {
                self.store.db.flush()?;
                return Ok(Some(signal));
            }
        }
    }

    /// The one path of every status change, the API's and FLUO's own: reads
    /// the signal, lets `decide` choose a change for it as it is now (`None`:
    /// leave it), checks the workflow, appends the history entry and writes
    /// with compare-and-swap; a concurrent write makes it decide again on the
    /// newer signal, so no change is lost. Returns the changed signal (not
    /// flushed), or `None` if there is no such signal or nothing to change.
    pub(super) fn transition<'c>(
        &self,
        key: &[u8],
        decide: impl Fn(&Signal) -> Result<Option<Change<'c>>, SignalError>,
    ) -> Result<Option<Signal>, SignalError> {
        loop {
            let Some(value) = self.signals.get(key)? else { return Ok(None) };
            let mut signal: Signal = serde_json::from_slice(&value)?;
            let Some(change) = decide(&signal)? else { return Ok(None) };
            if !signal.status.may_become(change.to) {
                return Err(SignalError::Transition { from: signal.status.as_str(), to: change.to.as_str() });
            }
            let now = rfc3339(now_ms());
            signal.history.push(StatusChange {
                from: signal.status,
                to: change.to,
                note: change.note.into(),
                author: change.author.into(),
                author_name: None,
                at: now.clone(),
            });
            signal.status = change.to;
            signal.updated_at = now.clone();
            signal.resolution = match change.to {
                Status::Resolved | Status::FalsePositive => {
                    Some(Resolution { reason: change.reason.unwrap_or(change.to.as_str()).into(), note: change.note.into(), at: now })
                }
                Status::Open | Status::Acknowledged => None,
            };
            if self.signals.compare_and_swap(key, Some(value), Some(serde_json::to_vec(&signal)?))?.is_ok() {
                return Ok(Some(signal));
            }
        }
    }
}
