//! Reading a tenant's groups: filters, pages (last seen first, by cursor) and
//! counts by severity, status and rule answer from the in-memory inbox index
//! (cost: the groups walked, not the occurrences); per-bucket occurrence
//! counts from the series.

use super::index::{Dim, Order, Summary, TenantIndex};
use super::{Signal, SignalError, Signals, Status, keyed, snooze};
use crate::model::rule::Severity;
use crate::model::tenant::TenantId;
use crate::model::time::{now_ms, rfc3339};
use serde::Serialize;
use std::cmp::Reverse;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Filter {
    /// A rule id or name.
    pub rule: Option<String>,
    /// A rule version that fired in the group.
    pub version: Option<u32>,
    pub status: Option<Status>,
    pub severity: Option<Severity>,
    /// Groups with an occurrence in this trace.
    pub trace_id: Option<String>,
    /// Last seen at or after (inclusive).
    pub since_unix_ms: Option<u64>,
    /// First seen before (exclusive).
    pub until_unix_ms: Option<u64>,
    /// Case-insensitive substring of the message or the rule name.
    pub text: Option<String>,
    /// `Some(None)`: assigned to nobody; `Some(Some(user))`: to that user.
    pub assignee: Option<Option<String>>,
    /// `Some(true)`: snoozed groups only; `Some(false)`: none of them.
    pub snoozed: Option<bool>,
    pub cursor: Option<String>,
    pub limit: usize,
}

impl Filter {
    fn keeps(&self, summary: &Summary, text: Option<&str>, now: u64) -> bool {
        self.rule.as_ref().is_none_or(|rule| &*summary.rule_id == rule || &*summary.rule_name == rule)
            && self.version.is_none_or(|version| summary.versions.contains(&version))
            && self.status.is_none_or(|status| summary.status == status)
            && self.severity.is_none_or(|severity| summary.severity == severity)
            && self.assignee.as_ref().is_none_or(|assignee| summary.assignee.as_deref() == assignee.as_deref())
            && self.until_unix_ms.is_none_or(|until| summary.created_ms < until)
            && self.snoozed.is_none_or(|snoozed| summary.snoozed(now) == snoozed)
            && text.is_none_or(|text| summary.text.contains(text))
    }

    /// The smallest ordered set that holds every group the filter keeps.
    fn dim(&self, index: &TenantIndex) -> Dim {
        let mut candidates = vec![Dim::All];
        candidates.extend(self.status.map(Dim::Status));
        candidates.extend(self.severity.map(Dim::Severity));
        // A rule given by name has no set of its own: the filter checks it.
        candidates.extend(self.rule.as_deref().map(|rule| Dim::Rule(Arc::from(rule))).filter(|dim| index.size(dim) > 0));
        candidates.extend(self.assignee.clone().map(|assignee| Dim::Assignee(assignee.map(Arc::from))));
        candidates.into_iter().min_by_key(|dim| if *dim == Dim::All { usize::MAX } else { index.size(dim) }).unwrap_or(Dim::All)
    }
}

/// Group counts for the groups a [`Filter`] keeps (cursor and limit ignored).
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Counts {
    /// Groups.
    pub total: u64,
    /// Occurrences of those groups (kept ones).
    pub occurrences: u64,
    /// Every severity, zeros included.
    pub by_severity: std::collections::BTreeMap<String, u64>,
    /// Every status, zeros included.
    pub by_status: std::collections::BTreeMap<String, u64>,
    /// Rules with at least one signal, most signals first.
    pub by_rule: Vec<RuleCount>,
    /// Occurrences per time bucket, oldest first, when buckets were asked
    /// for; of the rule asked for, else of every rule (the other filters do
    /// not narrow the series).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<Bucket>>,
}

/// The occurrences in `[start, start + bucket)`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    /// RFC 3339.
    pub start: String,
    pub start_unix_ms: u64,
    pub total: u64,
    /// Rule id → occurrences, for rules with at least one.
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
    /// Groups.
    pub count: u64,
    /// Occurrences of those groups.
    pub occurrences: u64,
    /// Severities with at least one group.
    pub by_severity: std::collections::BTreeMap<String, u64>,
}

impl Signals {
    /// Group ids with summaries the filter keeps, last seen first, after `after`.
    fn matching<'a>(
        &'a self,
        tenant: &TenantId,
        index: &'a TenantIndex,
        filter: &'a Filter,
        after: Option<Order>,
        text: Option<&'a str>,
    ) -> Result<Box<dyn Iterator<Item = ([u8; 16], &'a Summary)> + 'a>, SignalError> {
        let now = now_ms();
        let since = filter.since_unix_ms.unwrap_or(0);
        let keeps = move |(_, summary): &([u8; 16], &Summary)| filter.keeps(summary, text, now);
        if let Some(trace) = &filter.trace_id {
            // The trace's groups, from its occurrence index: as many as it has.
            let mut trace_id = [0u8; 16];
            hex::decode_to_slice(trace, &mut trace_id).map_err(|_| SignalError::Cursor)?;
            let mut found: Vec<([u8; 16], &Summary)> = Vec::new();
            for key in self.by_trace.scan_prefix(keyed(tenant, &[&trace_id])).keys() {
                let key = key?;
                let id: [u8; 16] = key[key.len() - 16..].try_into().map_err(|_| SignalError::Cursor)?;
                if let Some(summary) = index.groups.get(&id)
                    && !found.iter().any(|(seen, _)| *seen == id)
                {
                    found.push((id, summary));
                }
            }
            found.sort_by_key(|(id, summary)| (Reverse(summary.last_seen_ms), Reverse(*id)));
            let after = after.map(|(Reverse(ms), Reverse(id))| (ms, id));
            return Ok(Box::new(
                found
                    .into_iter()
                    .filter(move |(id, summary)| after.is_none_or(|after| (summary.last_seen_ms, *id) < after))
                    .filter(move |(_, summary)| summary.last_seen_ms >= since)
                    .filter(keeps),
            ));
        }
        Ok(Box::new(index.walk(&filter.dim(index), after).take_while(move |(_, summary)| summary.last_seen_ms >= since).filter(keeps)))
    }

    /// A page of groups, last seen first. The cursor names the last group of
    /// the previous page by its place in that order; a group seen again
    /// meanwhile moves to the top (and is not repeated further down).
    pub fn list(&self, tenant: &TenantId, filter: &Filter) -> Result<(Vec<Signal>, Option<String>), SignalError> {
        let limit = filter.limit.clamp(1, 500);
        let after = filter.cursor.as_deref().map(|cursor| parse_cursor(cursor).ok_or(SignalError::Cursor)).transpose()?;
        let text = filter.text.as_ref().map(|text| text.to_lowercase());
        let (ids, more) = self.index.read(tenant, |index| -> Result<_, SignalError> {
            let mut ids: Vec<([u8; 16], u64)> = self
                .matching(tenant, index, filter, after, text.as_deref())?
                .take(limit + 1)
                .map(|(id, summary)| (id, summary.last_seen_ms))
                .collect();
            let more = ids.len() > limit;
            ids.truncate(limit);
            Ok((ids, more))
        })?;
        let next_cursor = if more { ids.last().map(|(id, last_seen)| cursor(*last_seen, id)) } else { None };
        let now = now_ms();
        let mut items = Vec::with_capacity(ids.len());
        for (id, _) in ids {
            // A group changed since the index was read is shown as it is now.
            if let Some(signal) = self.get_by_id(tenant, &id)? {
                items.push(snooze::current(signal, now));
            }
        }
        Ok((items, next_cursor))
    }

    /// Counts of the groups `filter` keeps, by severity, status and rule;
    /// with `buckets`, occurrences per bucket from the series.
    pub fn counts(&self, tenant: &TenantId, filter: &Filter, buckets: Option<Buckets>) -> Result<Counts, SignalError> {
        let mut counts = Counts::default();
        for severity in Severity::ALL {
            counts.by_severity.insert(severity.as_str().to_string(), 0);
        }
        for status in Status::ALL {
            counts.by_status.insert(status.as_str().to_string(), 0);
        }
        let text = filter.text.as_ref().map(|text| text.to_lowercase());
        let mut rules: std::collections::HashMap<Arc<str>, RuleCount> = std::collections::HashMap::new();
        // Rule ids the rule filter names (by id or name), for the series.
        let mut rule_ids: Vec<String> = filter.rule.iter().cloned().collect();
        self.index.read(tenant, |index| -> Result<(), SignalError> {
            for (_, summary) in self.matching(tenant, index, filter, None, text.as_deref())? {
                counts.total += 1;
                counts.occurrences += summary.occurrences;
                *counts.by_severity.entry(summary.severity.as_str().to_string()).or_default() += 1;
                *counts.by_status.entry(summary.status.as_str().to_string()).or_default() += 1;
                let rule = rules.entry(summary.rule_id.clone()).or_insert_with(|| RuleCount {
                    rule_id: summary.rule_id.to_string(),
                    rule_name: summary.rule_name.to_string(),
                    count: 0,
                    occurrences: 0,
                    by_severity: Default::default(),
                });
                rule.count += 1;
                rule.occurrences += summary.occurrences;
                *rule.by_severity.entry(summary.severity.as_str().to_string()).or_default() += 1;
            }
            if let Some(rule) = &filter.rule {
                for summary in index.groups.values().filter(|summary| &*summary.rule_name == rule) {
                    if !rule_ids.iter().any(|id| **id == *summary.rule_id) {
                        rule_ids.push(summary.rule_id.to_string());
                    }
                }
            }
            Ok(())
        })?;
        counts.by_rule = rules.into_values().collect();
        counts.by_rule.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.rule_name.cmp(&b.rule_name)));
        if let Some(buckets) = buckets {
            let mut series = Vec::with_capacity(buckets.count);
            for index in 0..buckets.count as u64 {
                let start_unix_ms = buckets.start_unix_ms + index * buckets.width_ms;
                let mut by_rule = self.rule_totals(tenant, start_unix_ms, start_unix_ms + buckets.width_ms)?;
                if filter.rule.is_some() {
                    by_rule.retain(|rule, _| rule_ids.contains(rule));
                }
                let total = by_rule.values().sum();
                series.push(Bucket { start: rfc3339(start_unix_ms), start_unix_ms, total, by_rule });
            }
            counts.series = Some(series);
        }
        Ok(counts)
    }
}

/// `c_` then 16 hex digits of the last-seen time and 32 of the group id.
fn cursor(last_seen_ms: u64, id: &[u8; 16]) -> String {
    format!("c_{:016x}{}", last_seen_ms, hex::encode(id))
}

fn parse_cursor(text: &str) -> Option<Order> {
    let hex_part = text.strip_prefix("c_")?;
    if hex_part.len() != 48 {
        return None;
    }
    let last_seen = u64::from_str_radix(hex_part.get(..16)?, 16).ok()?;
    let mut id = [0u8; 16];
    hex::decode_to_slice(hex_part.get(16..)?, &mut id).ok()?;
    Some((Reverse(last_seen), Reverse(id)))
}
