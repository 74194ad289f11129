//! Reading a tenant's signals: filters, pages (newest first, by cursor) and
//! counts by severity, status, rule and time bucket.

use super::{Signal, SignalError, Signals, Status, id_bytes, keyed, prefix};
use crate::model::rule::Severity;
use crate::model::tenant::TenantId;
use crate::model::time::rfc3339;
use serde::Serialize;

#[derive(Debug, Default)]
pub struct Filter {
    /// A rule id or name.
    pub rule: Option<String>,
    pub version: Option<u32>,
    pub status: Option<Status>,
    pub severity: Option<Severity>,
    pub trace_id: Option<String>,
    /// Created at or after (inclusive).
    pub since_unix_ms: Option<u64>,
    /// Created before (exclusive).
    pub until_unix_ms: Option<u64>,
    /// Case-insensitive substring of the message or the rule name.
    pub text: Option<String>,
    /// `Some(None)`: assigned to nobody; `Some(Some(user))`: to that user.
    pub assignee: Option<Option<String>>,
    pub cursor: Option<String>,
    pub limit: usize,
}

impl Filter {
    fn keeps(&self, signal: &Signal) -> bool {
        self.rule.as_ref().is_none_or(|rule| &signal.rule_id == rule || &signal.rule_name == rule)
            && self.version.is_none_or(|version| signal.rule_version == version)
            && self.status.is_none_or(|status| signal.status == status)
            && self.severity.is_none_or(|severity| signal.severity == severity)
            && self.trace_id.as_ref().is_none_or(|trace| signal.trace_id.eq_ignore_ascii_case(trace))
            && self.assignee.as_ref().is_none_or(|assignee| signal.assignee.as_deref() == assignee.as_deref())
            && self.text.as_ref().is_none_or(|text| {
                let text = text.to_lowercase();
                signal.message.to_lowercase().contains(&text) || signal.rule_name.to_lowercase().contains(&text)
            })
    }
}

/// Signal counts for the signals a [`Filter`] keeps (cursor and limit ignored).
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub total: u64,
    /// Every severity, zeros included.
    pub by_severity: std::collections::BTreeMap<String, u64>,
    /// Every status, zeros included.
    pub by_status: std::collections::BTreeMap<String, u64>,
    /// Rules with at least one signal, most signals first.
    pub by_rule: Vec<RuleCount>,
    /// Per time bucket, oldest first, when buckets were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<Bucket>>,
}

/// The signals created in `[start, start + bucket)`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    /// RFC 3339.
    pub start: String,
    pub start_unix_ms: u64,
    pub total: u64,
    /// Rule id → signals, for rules with at least one.
    pub by_rule: std::collections::BTreeMap<String, u64>,
}

/// Buckets of a count: `count` buckets of `width_ms` from `start_unix_ms`.
#[derive(Clone, Copy, Debug)]
pub struct Buckets {
    pub start_unix_ms: u64,
    pub width_ms: u64,
    pub count: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleCount {
    pub rule_id: String,
    pub rule_name: String,
    pub count: u64,
    /// Severities with at least one signal.
    pub by_severity: std::collections::BTreeMap<String, u64>,
}

impl Signals {
    /// The tenant's signals newest first, from `upper` (exclusive) down to
    /// `since`, that `filter` keeps.
    fn scan<'a>(&'a self, tenant: &TenantId, filter: &'a Filter, upper: Vec<u8>) -> impl Iterator<Item = Result<Signal, SignalError>> + 'a {
        let mut upper = upper;
        if let Some(until) = filter.until_unix_ms {
            // Ids start with their creation millisecond, big-endian.
            let bound = keyed(tenant, &[&until.to_be_bytes()]);
            upper = upper.min(bound);
        }
        self.signals
            .range(prefix(tenant)..upper)
            .rev()
            .map(|entry| -> Result<Signal, SignalError> { Ok(serde_json::from_slice(&entry?.1)?) })
            .take_while(
                move |signal| !matches!((signal, filter.since_unix_ms), (Ok(signal), Some(since)) if signal.created_unix_ms < since),
            )
            .filter(move |signal| signal.as_ref().map_or(true, |signal| filter.keeps(signal)))
    }

    /// A page of signals, newest first. The cursor is the last id of the previous
    /// page: ids only grow, so signals created meanwhile never shift a page.
    pub fn list(&self, tenant: &TenantId, filter: &Filter) -> Result<(Vec<Signal>, Option<String>), SignalError> {
        let limit = filter.limit.clamp(1, 500);
        let upper = match &filter.cursor {
            Some(cursor) => keyed(tenant, &[&id_bytes(cursor).ok_or(SignalError::Cursor)?]),
            None => keyed(tenant, &[&[0xff; 17]]),
        };
        let mut items = self.scan(tenant, filter, upper).take(limit + 1).collect::<Result<Vec<_>, _>>()?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more { items.last().map(|signal| signal.id.clone()) } else { None };
        Ok((items, next_cursor))
    }

    /// Counts of the signals `filter` keeps, by severity, status and rule.
    pub fn counts(&self, tenant: &TenantId, filter: &Filter, buckets: Option<Buckets>) -> Result<Counts, SignalError> {
        let mut counts = Counts::default();
        counts.series = buckets.map(|buckets| {
            (0..buckets.count as u64)
                .map(|index| {
                    let start_unix_ms = buckets.start_unix_ms + index * buckets.width_ms;
                    Bucket { start: rfc3339(start_unix_ms), start_unix_ms, total: 0, by_rule: Default::default() }
                })
                .collect()
        });
        for severity in Severity::ALL {
            counts.by_severity.insert(severity.as_str().to_string(), 0);
        }
        for status in Status::ALL {
            counts.by_status.insert(status.as_str().to_string(), 0);
        }
        let mut rules: std::collections::HashMap<String, RuleCount> = std::collections::HashMap::new();
        for signal in self.scan(tenant, filter, keyed(tenant, &[&[0xff; 17]])) {
            let signal = signal?;
            counts.total += 1;
            *counts.by_severity.entry(signal.severity.as_str().to_string()).or_default() += 1;
            *counts.by_status.entry(signal.status.as_str().to_string()).or_default() += 1;
            let rule = rules.entry(signal.rule_id.clone()).or_insert_with(|| RuleCount {
                rule_id: signal.rule_id.clone(),
                rule_name: signal.rule_name.clone(),
                count: 0,
                by_severity: Default::default(),
            });
            rule.count += 1;
            *rule.by_severity.entry(signal.severity.as_str().to_string()).or_default() += 1;
            if let (Some(series), Some(buckets)) = (counts.series.as_mut(), buckets) {
                let index = signal.created_unix_ms.checked_sub(buckets.start_unix_ms).map(|offset| offset / buckets.width_ms);
                if let Some(bucket) = index.and_then(|index| series.get_mut(index as usize)) {
                    bucket.total += 1;
                    *bucket.by_rule.entry(signal.rule_id.clone()).or_default() += 1;
                }
            }
        }
        counts.by_rule = rules.into_values().collect();
        counts.by_rule.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.rule_name.cmp(&b.rule_name)));
        Ok(counts)
    }
}
