//! The signal store's records as stored and served: a group (`Signal`) with
//! its status, history, witnesses, snooze and window details, and the small
//! types they are made of. Plain data with serde and OpenAPI schemas; the
//! store's behaviour is in the sibling modules.

use crate::model::rule::{Severity, Violation};
use crate::model::time::rfc3339;
use crate::model::trace::{Span, attributes_json};
use serde::{Deserialize, Serialize};

/// The rule version a violation came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleRef {
    pub id: String,
    pub name: String,
    pub version: u32,
    /// The version's labels (`rule({labels})`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Acknowledged,
    Resolved,
    FalsePositive,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Open, Status::Acknowledged, Status::Resolved, Status::FalsePositive];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
            Status::FalsePositive => "false_positive",
        }
    }

    /// The workflow: open → acknowledged → resolved / false_positive; any
    /// closed or acknowledged signal may be reopened.
    pub(super) fn may_become(self, next: Status) -> bool {
        matches!(
            (self, next),
            (Status::Open, Status::Acknowledged | Status::Resolved | Status::FalsePositive)
                | (Status::Acknowledged, Status::Resolved | Status::FalsePositive | Status::Open)
                | (Status::Resolved | Status::FalsePositive, Status::Open)
        )
    }

    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "open" => Some(Status::Open),
            "acknowledged" => Some(Status::Acknowledged),
            "resolved" => Some(Status::Resolved),
            "false_positive" => Some(Status::FalsePositive),
            _ => None,
        }
    }
}

/// A witness span as stored with its signal (the full trace is in the snapshot).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Witness {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub service: Option<String>,
    pub kind: String,
    pub status: String,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: serde_json::Value,
}

impl Witness {
    pub(super) fn of(span: &Span) -> Witness {
        Witness {
            span_id: hex::encode(span.span_id),
            parent_span_id: span.parent_span_id.map(hex::encode),
            name: span.name.clone(),
            service: span.resource.service.clone(),
            kind: span.kind.as_str().to_ascii_lowercase(),
            status: span.status.as_str().to_ascii_lowercase(),
            start_time_unix_nano: span.start_unix_nano,
            end_time_unix_nano: span.end_unix_nano,
            attributes: attributes_json(&span.attributes),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Resolution {
    pub reason: String,
    pub note: String,
    pub at: String,
}

/// What a history entry records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A status change (`from` → `to`).
    #[default]
    Status,
    /// Assigned to a user or to nobody (the note says whom); the status stays.
    Assigned,
    /// Snoozed (the note says until when); the status stays.
    Snoozed,
    /// The snooze ended: lifted by someone, its time passed or its occurrences came.
    Unsnoozed,
}

/// One change, kept in the signal's history: a status change, an assignment or a snooze.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StatusChange {
    #[serde(default)]
    pub kind: ChangeKind,
    pub from: Status,
    pub to: Status,
    pub note: String,
    /// The key (or user) that made the change; `fluo` for automatic ones.
    pub author: String,
    /// The author's current email (user) or name (key), filled in by the API
    /// when one signal is read; not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_name: Option<String>,
    pub at: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Signal {
    pub id: String,
    pub rule_id: String,
    pub rule_name: String,
    pub rule_version: u32,
    pub severity: Severity,
    pub message: String,
    pub trace_id: String,
    pub span_ids: Vec<String>,
    pub status: Status,
    pub created_at: String,
    pub created_unix_ms: u64,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attributes: Option<serde_json::Value>,
    pub witnesses: Vec<Witness>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resolution: Option<Resolution>,
    #[serde(default)]
    pub history: Vec<StatusChange>,
    /// Only for window rules: the window, how often it was seen broken in a row.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub window: Option<WindowDetails>,
    /// What groups violations into this signal (hex SHA-256 of the rule and
    /// the witness spans' services and names).
    #[serde(default)]
    pub fingerprint: String,
    /// Occurrences of this group that are kept (exact; an occurrence whose
    /// trace no longer shows it is withdrawn).
    #[serde(default = "one")]
    pub occurrences: u64,
    /// The latest occurrence (the first is `created_at`).
    #[serde(default)]
    pub last_seen_at: String,
    #[serde(default)]
    pub last_seen_unix_ms: u64,
    /// The rule versions that produced occurrences, ascending.
    #[serde(default)]
    pub versions: Vec<u32>,
    /// How often the group fired again after it was resolved.
    #[serde(default)]
    pub regressions: u32,
    /// The labels of the rule version of the group's latest sample.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The group's latest trace in the tenant's own trace backend (its
    /// trace-link template), filled in by the API when one signal is read; not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_url: Option<String>,
    /// Trace ids of the occurrences whose trace snapshots are kept: the
    /// first and the latest ones, at most five.
    #[serde(default)]
    pub samples: Vec<String>,
    /// Sample traces an investigator pinned: their snapshots stay (whatever
    /// sampling and retention do) until unpinned; at most ten.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pinned: Vec<String>,
    /// The user of the tenant the group is assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// While set (and not run out), the group stays out of the default inbox
    /// and sends no rate notification; its end is notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snooze: Option<Snooze>,
    /// The rule's own grouping key, when it set one (else the witness spans' shapes group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    /// Grows with every write of the group's record.
    #[serde(default)]
    pub revision: u64,
    /// When the latest sample was taken (a new one is due a minute later).
    #[serde(default)]
    pub sampled_unix_ms: u64,
}

/// A snooze: until a time, until the group reaches a number of occurrences,
/// whichever comes first; neither is a mute without end.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Snooze {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_unix_ms: Option<u64>,
    /// The group's occurrence count at which the snooze ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_occurrences: Option<u64>,
    pub by: String,
    pub at: String,
}

fn one() -> u64 {
    1
}

impl Signal {
    /// The tenant's trace link (`template`) for the group's latest trace: its
    /// first witness span, and the time its witnesses cover (the group's last
    /// occurrence when it names none).
    pub fn trace_link(&self, template: &str) -> String {
        let starts = self.witnesses.iter().map(|witness| witness.start_time_unix_nano / 1_000_000);
        let ends = self.witnesses.iter().map(|witness| witness.end_time_unix_nano.div_ceil(1_000_000));
        let target = crate::model::tenant::LinkTarget {
            trace_id: &self.trace_id,
            span_id: self.witnesses.first().map(|witness| witness.span_id.as_str()),
            start_unix_ms: starts.min().unwrap_or(self.last_seen_unix_ms),
            end_unix_ms: ends.max().unwrap_or(self.last_seen_unix_ms),
        };
        crate::model::tenant::trace_link(template, &target)
    }

    /// A new open signal of `rule` for `violation`, without trace, witnesses
    /// or window (the caller sets those).
    pub(super) fn open(id: [u8; 16], rule: &RuleRef, violation: &Violation, now: u64) -> Signal {
        Signal {
            id: format!("s_{}", hex::encode(id)),
            rule_id: rule.id.clone(),
            rule_name: rule.name.clone(),
            rule_version: rule.version,
            severity: violation.severity,
            message: violation.message.clone(),
            trace_id: String::new(),
            span_ids: Vec::new(),
            status: Status::Open,
            created_at: rfc3339(now),
            created_unix_ms: now,
            updated_at: rfc3339(now),
            attributes: violation.attributes.clone(),
            witnesses: Vec::new(),
            resolution: None,
            history: Vec::new(),
            window: None,
            fingerprint: String::new(),
            occurrences: 1,
            last_seen_at: rfc3339(now),
            last_seen_unix_ms: now,
            versions: vec![rule.version],
            regressions: 0,
            samples: Vec::new(),
            labels: rule.labels.clone(),
            trace_url: None,
            pinned: Vec::new(),
            assignee: None,
            snooze: None,
            group_key: violation.group.clone(),
            revision: 0,
            sampled_unix_ms: now,
        }
    }
}

/// What a window rule's signal carries beyond a trace rule's.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct WindowDetails {
    /// The latest violating window (RFC 3339; start inclusive, end exclusive).
    pub start: String,
    pub end: String,
    /// The first violating window of this run of consecutive ones.
    pub first_start: String,
    /// Consecutive violating windows grouped into this signal.
    pub occurrences: u64,
    /// Spans in the latest window.
    pub spans_in_window: u64,
    /// Trace ids of the witness spans (at most 20).
    pub trace_ids: Vec<String>,
}
