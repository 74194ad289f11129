//! The inbox index: per tenant, a compact summary of every group in memory and
//! ordered sets of group ids (by last seen, newest first) per filterable value
//! (status, severity, rule, assignee), so that a page costs the groups it
//! reads, not the tenant's history. A query walks the smallest set its filter
//! names and checks the rest of the filter on the summaries; only the page's
//! groups are then read from sled. Built from the `signals` tree at start and
//! kept current by every write of a group ([`Signals::update`] and group
//! creation); a summary never replaces one of a newer revision, so writes
//! that finish out of order leave the newest.

use super::{Signal, Status};
use crate::model::rule::Severity;
use crate::model::tenant::TenantId;
use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

/// What the inbox filters on, per group.
#[derive(Clone, Debug)]
pub(super) struct Summary {
    pub revision: u64,
    /// The sequence of the counter reading `occurrences` and `last_seen_ms` come from.
    pub counter_sequence: u64,
    pub status: Status,
    pub severity: Severity,
    pub rule_id: Arc<str>,
    pub rule_name: Arc<str>,
    pub versions: Vec<u32>,
    pub assignee: Option<Arc<str>>,
    pub created_ms: u64,
    pub last_seen_ms: u64,
    pub occurrences: u64,
    /// Snoozed until this time (ms) or, with `u64::MAX`, without a time limit.
    pub snoozed_until_ms: Option<u64>,
    /// The message and the rule name, lowercase, for text search.
    pub text: Box<str>,
}

impl Summary {
    pub fn of(signal: &Signal) -> Summary {
        Summary {
            revision: signal.revision,
            counter_sequence: 0,
            status: signal.status,
            severity: signal.severity,
            rule_id: signal.rule_id.as_str().into(),
            rule_name: signal.rule_name.as_str().into(),
            versions: signal.versions.clone(),
            assignee: signal.assignee.as_deref().map(Arc::from),
            created_ms: signal.created_unix_ms,
            last_seen_ms: signal.last_seen_unix_ms.max(signal.created_unix_ms),
            occurrences: signal.occurrences,
            snoozed_until_ms: signal.snooze.as_ref().map(|snooze| snooze.until_unix_ms.unwrap_or(u64::MAX)),
            text: format!("{}\n{}", signal.message.to_lowercase(), signal.rule_name.to_lowercase()).into(),
        }
    }

    pub fn snoozed(&self, now: u64) -> bool {
        self.snoozed_until_ms.is_some_and(|until| until > now)
    }
}

/// One ordered set of groups.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Dim {
    All,
    Status(Status),
    Severity(Severity),
    Rule(Arc<str>),
    Assignee(Option<Arc<str>>),
}

/// Newest last-seen first, then newest id first.
pub(super) type Order = (Reverse<u64>, Reverse<[u8; 16]>);

#[derive(Default)]
pub(super) struct TenantIndex {
    pub groups: HashMap<[u8; 16], Summary>,
    sets: HashMap<Dim, BTreeSet<Order>>,
}

fn dims(summary: &Summary) -> [Dim; 5] {
    [
        Dim::All,
        Dim::Status(summary.status),
        Dim::Severity(summary.severity),
        // Rules are found by id or name: both are indexed under the id; a name
        // is turned into ids by the query.
        Dim::Rule(summary.rule_id.clone()),
        Dim::Assignee(summary.assignee.clone()),
    ]
}

impl TenantIndex {
    fn put(&mut self, id: [u8; 16], mut summary: Summary) {
        if let Some(old) = self.groups.get(&id) {
            if old.revision > summary.revision {
                return;
            }
            let old = self.groups.remove(&id).expect("present");
            self.unlink(id, &old);
            // A newer counter reading stays.
            if old.counter_sequence > summary.counter_sequence {
                summary.counter_sequence = old.counter_sequence;
                summary.occurrences = old.occurrences;
                summary.last_seen_ms = old.last_seen_ms;
            }
        }
        let order = (Reverse(summary.last_seen_ms), Reverse(id));
        for dim in dims(&summary) {
            self.sets.entry(dim).or_default().insert(order);
        }
        self.groups.insert(id, summary);
    }

    fn unlink(&mut self, id: [u8; 16], old: &Summary) {
        let order = (Reverse(old.last_seen_ms), Reverse(id));
        for dim in dims(old) {
            if let Some(set) = self.sets.get_mut(&dim) {
                set.remove(&order);
                if set.is_empty() {
                    self.sets.remove(&dim);
                }
            }
        }
    }

    /// The group ids of `dim`, newest first, strictly after `after`.
    pub fn walk<'a>(&'a self, dim: &Dim, after: Option<Order>) -> Box<dyn Iterator<Item = ([u8; 16], &'a Summary)> + 'a> {
        let Some(set) = self.sets.get(dim) else { return Box::new(std::iter::empty()) };
        let range = match after {
            Some(after) => set.range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => set.range(..),
        };
        Box::new(range.filter_map(move |(_, Reverse(id))| self.groups.get(id).map(|summary| (*id, summary))))
    }

    /// How many groups `dim` holds (to pick the smallest set).
    pub fn size(&self, dim: &Dim) -> usize {
        self.sets.get(dim).map_or(0, BTreeSet::len)
    }
}

/// Every tenant's index.
#[derive(Default)]
pub(super) struct Index {
    tenants: RwLock<HashMap<TenantId, TenantIndex>>,
}

impl Index {
    /// Indexes `signal` as written, with the figures of counter reading `sequence`.
    pub fn put(&self, tenant: &TenantId, id: [u8; 16], signal: &Signal, sequence: u64) {
        let summary = Summary { counter_sequence: sequence, ..Summary::of(signal) };
        let mut tenants = self.tenants.write().unwrap_or_else(|poison| poison.into_inner());
        tenants.entry(tenant.clone()).or_default().put(id, summary);
    }

    /// Takes a newer counter reading of a group (an occurrence that did not
    /// rewrite the group's record).
    pub fn touch(&self, tenant: &TenantId, id: [u8; 16], counter: super::counters::Counter) {
        let mut tenants = self.tenants.write().unwrap_or_else(|poison| poison.into_inner());
        let Some(index) = tenants.get_mut(tenant) else { return };
        let Some(old) = index.groups.get(&id) else { return };
        if old.counter_sequence >= counter.sequence {
            return;
        }
        let mut summary = old.clone();
        summary.counter_sequence = counter.sequence;
        summary.occurrences = counter.occurrences;
        summary.last_seen_ms = summary.last_seen_ms.max(counter.last_seen_ms);
        index.put(id, summary);
    }

    /// The tenants with groups.
    pub fn tenants(&self) -> Vec<TenantId> {
        self.tenants.read().unwrap_or_else(|poison| poison.into_inner()).keys().cloned().collect()
    }

    /// Runs `read` on the tenant's index (an empty one if the tenant has no group).
    pub fn read<T>(&self, tenant: &TenantId, read: impl FnOnce(&TenantIndex) -> T) -> T {
        let tenants = self.tenants.read().unwrap_or_else(|poison| poison.into_inner());
        match tenants.get(tenant) {
            Some(index) => read(index),
            None => read(&TenantIndex::default()),
        }
    }
}
