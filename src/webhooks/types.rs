//! What a channel is, as created (`WebhookSpec`), stored (`Webhook`, with its
//! secret and routing key) and listed (`WebhookInfo`, without them), and one
//! delivery attempt as logged (`Delivery`).

use super::{ChannelKind, Rate};
use crate::model::rule::Severity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Extra request headers a channel may set, at most.
pub const MAX_HEADERS: usize = 8;

/// The most minutes a throttle or repeat interval may be (a week).
pub const MAX_INTERVAL_MINUTES: u32 = 7 * 24 * 60;

/// What a new channel is: its target, its kind and its routing.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// `https://host[:port]/path` or `http://…`; for Alertmanager its base
    /// URL (FLUO posts to `/api/v2/alerts` under it).
    #[schema(max_length = 2048, pattern = r"^https?://[^/?#\s]+")]
    pub url: String,
    /// The body's shape; absent: `generic`.
    #[serde(default)]
    pub kind: ChannelKind,
    /// A name to tell channels apart (at most 100 bytes).
    #[serde(default)]
    #[schema(max_length = 100)]
    pub name: String,
    /// Only groups of these severities; empty or absent: all.
    #[serde(default)]
    pub severities: Vec<Severity>,
    /// Only groups of these rules (ids or names); empty or absent: all.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Only groups whose witness spans include one of these services; empty or absent: all.
    #[serde(default)]
    pub services: Vec<String>,
    /// Only groups whose rule has every one of these labels with this text
    /// (`rule({labels})`); empty or absent: all. At most 16.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Also `signal.rate_exceeded` when a group has more than `count`
    /// occurrences within `minutes` (once per window, never while snoozed).
    #[serde(default)]
    pub rate: Option<Rate>,
    /// PagerDuty only, and required there: the integration's routing key
    /// (stored, never listed).
    #[serde(default)]
    #[schema(max_length = 128)]
    pub routing_key: Option<String>,
    /// At most one notification that a group fires (created, regressed,
    /// snooze ended, rate exceeded) per this many minutes; status changes
    /// always go. Absent: no throttle.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10080)]
    pub throttle_minutes: Option<u32>,
    /// While a group stays open (not snoozed), `signal.reminder` every this
    /// many minutes. Absent: no reminders. Alertmanager channels should set
    /// one below 180 (a firing alert ends 3 h after its latest send).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10080)]
    pub repeat_minutes: Option<u32>,
    /// Request headers sent with every delivery (an OTLP backend's API key,
    /// a receiver's bearer token): at most 8, names of 1–64 token characters
    /// (not `host`, `content-*`, `connection`, `transfer-encoding`,
    /// `user-agent`, `x-fluo-*` and the like), values of 1–1024 visible
    /// characters. Stored, never listed: the API shows their names only.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// Stored before channel kinds existed: generic.
    #[serde(default)]
    pub kind: ChannelKind,
    #[serde(default)]
    pub name: String,
    /// Empty: every severity.
    pub severities: Vec<Severity>,
    /// Rule ids or names; empty: every rule.
    pub rules: Vec<String>,
    /// Witness services; empty: every service.
    #[serde(default)]
    pub services: Vec<String>,
    /// Rule labels a group must have; empty: any.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Also notify when a group's occurrences exceed this rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// PagerDuty's routing key; never listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_minutes: Option<u32>,
    /// Extra request headers; their values are never listed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Stored; never listed (see [`Webhook::public`]).
    pub secret: String,
    pub created_at: String,
}

impl Webhook {
    /// The webhook as the API shows it: without its secret or routing key.
    pub fn public(&self) -> WebhookInfo {
        WebhookInfo {
            id: self.id.clone(),
            url: self.url.clone(),
            kind: self.kind,
            name: self.name.clone(),
            severities: self.severities.clone(),
            rules: self.rules.clone(),
            services: self.services.clone(),
            labels: self.labels.clone(),
            rate: self.rate,
            has_routing_key: self.routing_key.is_some(),
            throttle_minutes: self.throttle_minutes,
            repeat_minutes: self.repeat_minutes,
            header_names: self.headers.keys().cloned().collect(),
            created_at: self.created_at.clone(),
        }
    }

    /// Where deliveries are POSTed: the URL, or for Alertmanager and OTLP
    /// their endpoint under it.
    pub(super) fn target(&self) -> String {
        let path = match self.kind {
            ChannelKind::Alertmanager => "/api/v2/alerts",
            ChannelKind::Otlp => "/v1/logs",
            _ => return self.url.clone(),
        };
        let base = self.url.trim_end_matches('/');
        if base.ends_with(path) { base.to_string() } else { format!("{base}{path}") }
    }
}

/// A webhook as listed: never its secret or routing key.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookInfo {
    pub id: String,
    pub url: String,
    pub kind: ChannelKind,
    pub name: String,
    /// Empty: every severity.
    pub severities: Vec<Severity>,
    /// Rule ids or names; empty: every rule.
    pub rules: Vec<String>,
    /// Witness services; empty: every service.
    pub services: Vec<String>,
    /// Rule labels a group must have; empty: any.
    pub labels: BTreeMap<String, String>,
    /// Also notified when a group's occurrences exceed this rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Whether a PagerDuty routing key is stored.
    pub has_routing_key: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_minutes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_minutes: Option<u32>,
    /// The names of the extra request headers (their values are not shown).
    pub header_names: Vec<String>,
    pub created_at: String,
}

/// One delivery attempt: whether the receiver took it (a 2xx answer). What
/// the receiver answered otherwise is not recorded.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    pub signal_id: String,
    pub attempt: u32,
    /// Why it was not delivered: `target address not allowed (…)` when FLUO
    /// refused the address, else `not delivered`.
    pub error: Option<String>,
    pub delivered: bool,
    pub at: String,
}

impl Delivery {
    /// The log entry of one attempt, from what [`super::Webhooks`]'s post
    /// returned: `Ok(true)` delivered, `Err(true)` FLUO refused the address,
    /// anything else not delivered (the receiver's answer is not recorded).
    pub(super) fn of(signal_id: String, attempt: u32, result: Result<bool, bool>) -> Delivery {
        let error = match result {
            Ok(true) => None,
            Err(true) => Some(super::REFUSED_TARGET.to_string()),
            _ => Some("not delivered".to_string()),
        };
        let at = crate::model::time::rfc3339(crate::model::time::now_ms());
        Delivery { signal_id, attempt, error, delivered: result == Ok(true), at }
    }
}
