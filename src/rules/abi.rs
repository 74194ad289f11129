//! The data that crosses the sandbox boundary, ABI `fluo_rule_v2`
//! (`wit/fluo-rule.wit`): the namespace rule modules import from, and the
//! evaluation JSON a rule call returns. The binary trace the host writes into
//! a sandbox is [`super::wire`].

use serde::{Deserialize, Serialize};

/// The import namespace of rule modules; versioned with the ABI.
pub const NAMESPACE: &str = "fluo_rule_v2";

/// Integers beyond ±this reach rules as BigInt.
pub(crate) const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The text of the result "no violations, no logs": the plugin answers it (`EMPTY_RESULT` in
/// rule-sdk/src/lib.rs) when the SDK's `__fluo_run` returns 0.
pub const EMPTY_RESULT: &str = r#"{"outcome":"ok","violations":[]}"#;

/// The same when the rule's `when` did not hold (the plugin's answer for
/// `__fluo_run` returning 1): the rule does not apply to the trace.
pub const WHEN_FAILED_RESULT: &str = r#"{"outcome":"ok","violations":[],"whenFailed":true}"#;

/// What one rule call returned, as the prelude's `__fluo_run` writes it.
#[derive(Debug, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunDoc {
    Ok {
        violations: Vec<ViolationDoc>,
        #[serde(default)]
        logs: Vec<LogDoc>,
        #[serde(default, rename = "logsTruncated")]
        logs_truncated: bool,
        #[serde(default, rename = "whenFailed")]
        when_failed: bool,
    },
    OutputCap {
        bytes: u64,
    },
    Error {
        name: String,
        message: String,
        #[serde(default)]
        stack: String,
        #[serde(default)]
        logs: Vec<LogDoc>,
        #[serde(default, rename = "logsTruncated")]
        logs_truncated: bool,
    },
}

/// A violation's span ids as the host keeps them: each decoded (16 hex digits,
/// either case), kept once per decoded id in the rule's order, written in
/// lowercase, at most `cap`. Ids that are not span ids are dropped: they
/// cannot name a witness. The SDK already refuses ids that are not in the
/// trace, but the host does not rely on code that runs in the sandbox.
pub fn witness_ids(ids: &[String], cap: usize) -> Vec<String> {
    let mut seen: Vec<[u8; 8]> = Vec::with_capacity(ids.len().min(cap));
    for id in ids {
        if seen.len() >= cap {
            break;
        }
        let mut bytes = [0u8; 8];
        if hex::decode_to_slice(id, &mut bytes).is_ok() && !seen.contains(&bytes) {
            seen.push(bytes);
        }
    }
    seen.iter().map(hex::encode).collect()
}

#[derive(Debug, Deserialize)]
pub struct ViolationDoc {
    pub message: String,
    pub severity: String,
    pub spans: Vec<String>,
    #[serde(default)]
    pub attributes: Option<serde_json::Value>,
    #[serde(default)]
    pub group: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct LogDoc {
    pub level: String,
    pub message: String,
}
