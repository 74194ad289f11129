//! What a rule declares about itself, as stored with each version and shown
//! by the API: its form, name, severity and, for a window rule, its window
//! and span selection, and what it reports (a [`Violation`]). Plain data: the
//! sandbox ([`crate::rules`]) produces it,
//! the store keeps it, the pipeline and the API read it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    pub const ALL: [Severity; 5] = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low, Severity::Info];

    pub fn parse(text: &str) -> Option<Severity> {
        Some(match text {
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "medium" => Severity::Medium,
            "low" => Severity::Low,
            "info" => Severity::Info,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    pub message: String,
    pub severity: Severity,
    /// Witness span ids (lowercase hex, distinct, at most [`crate::rules::MAX_WITNESSES`]),
    /// in the order the rule reported them.
    pub span_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<serde_json::Value>,
    /// The rule's own grouping key (`group` in `rule({...})`, `window({...})`
    /// or a check's violation), at most [`MAX_GROUP_KEY`] bytes; `None`: the
    /// witness spans' shapes group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// The longest grouping key a rule may set (the SDK refuses longer ones).
pub const MAX_GROUP_KEY: usize = 512;

/// What a window rule declared: which spans it wants and how often it runs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct WindowSpec {
    /// Span selection the host applies as spans arrive.
    pub select: Selection,
    pub length_ms: u64,
    /// Evaluation period; equal to the length: tumbling, shorter: sliding.
    pub every_ms: u64,
    /// How long after a window's end late spans still count.
    pub grace_ms: u64,
}

/// All given fields must match (attribute values by JSON equality).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Selection {
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// `SERVER`, `CLIENT`, `INTERNAL`, `PRODUCER` or `CONSUMER`.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, serde_json::Value>,
}

/// What a rule declared about itself (`__fluo_describe`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RuleMeta {
    /// `pattern`, `check` or `rule`.
    pub form: String,
    pub name: Option<String>,
    pub severity: String,
    pub description: Option<String>,
    /// Only for `form: "window"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSpec>,
}

impl RuleMeta {
    /// The name the source declares with `name:` (`rule({...})`, `window({...})`);
    /// a bare check function's own name (`function retryStorm`) is not one.
    pub fn declared_name(&self) -> Option<&str> {
        if self.form == "check" { None } else { self.name.as_deref() }
    }
}
