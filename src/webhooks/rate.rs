//! Occurrence-rate thresholds: a webhook may ask to hear when a group has
//! more than `count` occurrences within `minutes` ("more than 100 in 5
//! minutes"). Each (webhook, group) keeps its occurrences per minute for the
//! last `minutes`; crossing the threshold sends one `signal.rate_exceeded`,
//! and the next one no sooner than `minutes` later, so a flood notifies once
//! per window, never per occurrence. A snoozed group sends none. The counts
//! live in memory: after a restart they start from zero (a threshold may be
//! crossed later than it was, never twice within a window).

use crate::model::tenant::TenantId;
use crate::signals::Signal;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// More than `count` occurrences of one group within `minutes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rate {
    /// 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1000000)]
    pub count: u32,
    /// 1 to 60.
    #[schema(minimum = 1, maximum = 60)]
    pub minutes: u32,
}

impl Rate {
    pub fn check(&self) -> Result<(), String> {
        if !(1..=1_000_000).contains(&self.count) {
            return Err("rate.count must be 1 to 1000000".into());
        }
        if !(1..=60).contains(&self.minutes) {
            return Err("rate.minutes must be 1 to 60".into());
        }
        Ok(())
    }
}

/// (webhook, group) counters beyond this many are pruned of idle ones.
const TRACKED: usize = 50_000;
const MINUTE_MS: u64 = 60_000;

#[derive(Default)]
struct Window {
    /// (minute, occurrences), oldest first.
    minutes: VecDeque<(u64, u64)>,
    /// No further notification before this time.
    quiet_until_ms: u64,
}

#[derive(Default)]
pub(super) struct Rates {
    windows: Mutex<HashMap<(TenantId, String, String), Window>>,
}

impl Rates {
    /// Counts one occurrence of `group` at `now` for webhook `hook` with
    /// threshold `rate`; returns the occurrences in the window when this one
    /// crossed the threshold and a notification is due.
    pub fn occurred(&self, tenant: &TenantId, hook: &str, rate: Rate, group: &Signal, now: u64) -> Option<u64> {
        let span_ms = u64::from(rate.minutes) * MINUTE_MS;
        let minute = now / MINUTE_MS;
        let mut windows = self.windows.lock().unwrap_or_else(|poison| poison.into_inner());
        if windows.len() >= TRACKED {
            // Groups quiet for an hour (the longest window) count for nothing.
            windows.retain(|_, window| window.minutes.back().is_some_and(|(last, _)| last + 60 >= minute));
        }
        let window = windows.entry((tenant.clone(), hook.to_string(), group.id.clone())).or_default();
        match window.minutes.back_mut() {
            Some((last, count)) if *last == minute => *count += 1,
            _ => window.minutes.push_back((minute, 1)),
        }
        let oldest = minute + 1 - u64::from(rate.minutes);
        while window.minutes.front().is_some_and(|(first, _)| *first < oldest) {
            window.minutes.pop_front();
        }
        let observed: u64 = window.minutes.iter().map(|(_, count)| count).sum();
        let snoozed = group.snooze.as_ref().is_some_and(|snooze| snooze.until_unix_ms.is_none_or(|until| until > now));
        if observed > u64::from(rate.count) && now >= window.quiet_until_ms && !snoozed {
            window.quiet_until_ms = now + span_ms;
            return Some(observed);
        }
        None
    }

    /// Forgets a deleted webhook's counters.
    pub fn forget(&self, tenant: &TenantId, hook: &str) {
        self.windows.lock().unwrap_or_else(|poison| poison.into_inner()).retain(|(t, h, _), _| !(t == tenant && h == hook));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str) -> Signal {
        serde_json::from_value(serde_json::json!({
            "id": id, "rule_id": "r", "rule_name": "r", "rule_version": 1, "severity": "high", "message": "m",
            "trace_id": "", "span_ids": [], "status": "open", "created_at": "", "created_unix_ms": 0, "updated_at": "",
            "witnesses": []
        }))
        .unwrap()
    }

    #[test]
    fn a_threshold_notifies_once_per_window_and_never_while_snoozed() {
        let rates = Rates::default();
        let tenant = TenantId::trusted("t");
        let rate = Rate { count: 3, minutes: 5 };
        let a = group("s_a");
        let start = 1_000 * MINUTE_MS;
        let fired: Vec<Option<u64>> = (0..10).map(|i| rates.occurred(&tenant, "w", rate, &a, start + i * 1000)).collect();
        // The fourth occurrence crosses "more than 3"; the rest of the window stays quiet.
        assert_eq!(fired.iter().filter(|f| f.is_some()).count(), 1);
        assert_eq!(fired[3], Some(4));
        // Another group and another webhook count apart.
        assert_eq!(rates.occurred(&tenant, "w", rate, &group("s_b"), start), None);
        // Six minutes later the old occurrences left the window and the quiet time
        // (five minutes from the notification) is over: four new ones fire again.
        let later = start + 6 * MINUTE_MS;
        let again: Vec<Option<u64>> = (0..4).map(|i| rates.occurred(&tenant, "w", rate, &a, later + i)).collect();
        assert_eq!(again, vec![None, None, None, Some(4)]);
        // A snoozed group crosses silently.
        let mut snoozed = group("s_c");
        snoozed.snooze =
            Some(crate::signals::Snooze { until: None, until_unix_ms: None, until_occurrences: None, by: "u".into(), at: String::new() });
        assert!((0..10).all(|i| rates.occurred(&tenant, "w", rate, &snoozed, start + i).is_none()));
        rates.forget(&tenant, "w");
        assert!(rates.windows.lock().unwrap().is_empty());
    }
}
