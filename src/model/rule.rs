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

#[cfg(test)]
mod label_tests {
    use super::check_labels;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn labels_are_bounded_like_the_sdk_bounds_them() {
        assert!(check_labels(&labels(&[("team", "payments"), ("_tier", "1"), ("a9_", "x")])).is_ok());
        for bad in [("__reserved", "x"), ("9lives", "x"), ("with-dash", "x"), ("", "x"), ("team", "")] {
            assert!(check_labels(&labels(&[bad])).is_err(), "{bad:?}");
        }
        assert!(check_labels(&labels(&[(&"n".repeat(65), "x")])).is_err());
        assert!(check_labels(&labels(&[("team", &"é".repeat(256))])).is_ok(), "256 characters, not bytes");
        assert!(check_labels(&labels(&[("team", &"v".repeat(257))])).is_err());
        let many: BTreeMap<String, String> = (0..17).map(|i| (format!("l{i}"), "x".to_string())).collect();
        assert!(check_labels(&many).is_err());
    }
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
    /// `labels` of `rule({...})` / `window({...})`: groups carry them and
    /// notification channels route by them ([`check_labels`] bounds them).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Why a rule's labels are refused, if they are: at most 16; names a letter
/// or `_`, then letters, digits or `_`, at most 64, not starting with `__`;
/// texts of 1 to 256 characters. The SDK checks the same; the host does not
/// rely on code that ran in the sandbox.
pub fn check_labels(labels: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > 16 {
        return Err("at most 16 labels".into());
    }
    for (name, value) in labels {
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || name.len() > 64 || name.starts_with("__") || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{name:?} is not a label name"));
        }
        if value.is_empty() || value.chars().count() > 256 {
            return Err(format!("label {name}: expected a text of 1 to 256 characters"));
        }
    }
    Ok(())
}

impl RuleMeta {
    /// The name the source declares with `name:` (`rule({...})`, `window({...})`);
    /// a bare check function's own name (`function retryStorm`) is not one.
    pub fn declared_name(&self) -> Option<&str> {
        if self.form == "check" { None } else { self.name.as_deref() }
    }
}
