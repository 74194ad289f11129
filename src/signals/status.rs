//! The one path of every status change: the API's workflow changes and FLUO's
//! own clearing of a signal that spans arriving later no longer justify. Both
//! go through [`Signals::transition`], which writes through [`Signals::update`].
//! Assignment is here too: like a status change it is a workflow step with a
//! history entry.

use super::{ChangeKind, Resolution, Signal, SignalError, Signals, Status, StatusChange, id_bytes};
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
        let changed = self.transition(tenant, &bytes, |_| Ok(Some(Change { to: status, note, author, reason: None })))?;
        if changed.is_some() {
            self.store.db.flush()?;
        }
        Ok(changed)
    }

    /// Assigns the signal to `user_id` (or to nobody), with a history entry,
    /// flushed before returning; `None` if the tenant has no such signal.
    /// The caller checks that the user belongs to the tenant.
    pub fn assign(&self, tenant: &TenantId, id: &str, user_id: Option<&str>, author: &str) -> Result<Option<Signal>, SignalError> {
        let Some(bytes) = id_bytes(id) else { return Ok(None) };
        let assigned = self.update(tenant, &bytes, |signal| {
            let now = rfc3339(now_ms());
            signal.history.push(StatusChange {
                kind: ChangeKind::Assigned,
                from: signal.status,
                to: signal.status,
                note: match user_id {
                    Some(user) => format!("assigned to {user}"),
                    None => "unassigned".into(),
                },
                author: author.into(),
                author_name: None,
                at: now.clone(),
            });
            signal.assignee = user_id.map(str::to_string);
            signal.updated_at = now;
            Ok(Some(()))
        })?;
        if assigned.is_some() {
            self.store.db.flush()?;
        }
        Ok(assigned.map(|(signal, ())| signal))
    }

    /// The one path of every status change, the API's and FLUO's own: lets
    /// `decide` choose a change for the group as it is now (`None`: leave
    /// it), checks the workflow, appends the history entry and writes through
    /// [`Signals::update`], so a concurrent write makes it decide again on
    /// the newer group and no change is lost. A group that ends (resolved, false
    /// positive) ends its snooze too. Returns the changed group (not flushed),
    /// or `None` if there is no such group or nothing to change.
    pub(super) fn transition<'c>(
        &self,
        tenant: &TenantId,
        id: &[u8; 16],
        decide: impl Fn(&Signal) -> Result<Option<Change<'c>>, SignalError>,
    ) -> Result<Option<Signal>, SignalError> {
        let changed = self.update(tenant, id, |signal| {
            let Some(change) = decide(signal)? else { return Ok(None) };
            if !signal.status.may_become(change.to) {
                return Err(SignalError::Transition { from: signal.status.as_str(), to: change.to.as_str() });
            }
            let now = rfc3339(now_ms());
            signal.history.push(StatusChange {
                kind: ChangeKind::Status,
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
                    signal.snooze = None;
                    Some(Resolution { reason: change.reason.unwrap_or(change.to.as_str()).into(), note: change.note.into(), at: now })
                }
                Status::Open | Status::Acknowledged => None,
            };
            Ok(Some(()))
        })?;
        Ok(changed.map(|(signal, ())| signal))
    }
}
