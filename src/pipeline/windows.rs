//! Window rules: invariants over one tenant's spans across traces ("auth never
//! serves more than 50 concurrent requests"). Spans are selected as they
//! arrive (before trace assembly) by each rule's host-side selection and kept
//! per (tenant, rule), capped; windows end on multiples of the rule's `every`
//! and cover the spans that *started* in the last `length`; a window is
//! checked `grace` after its end, in a sandbox of its own with the window
//! limits. Consecutive violating windows of a rule update one open signal
//! (occurrence count) instead of raising one signal each.

use super::Counters;
use crate::auth::TenantId;
use crate::rules::abi::{Selection, WindowSpec};
use crate::rules::{Limits, LoadedRule, Outcome, RuleEngine, Sandbox};
use crate::signals::{RuleRef, Signal, Signals};
use crate::trace::{Span, SpanKind, Trace};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// What bounds window evaluation.
#[derive(Clone, Debug)]
pub struct WindowLimits {
    /// Selected spans kept per (tenant, rule); beyond, new ones are dropped and counted.
    pub max_spans: usize,
    /// Sandbox limits for one window check (larger than a trace rule's: a
    /// window can hold 100,000 spans).
    pub sandbox: Limits,
}

impl Default for WindowLimits {
    fn default() -> WindowLimits {
        WindowLimits {
            max_spans: 200_000,
            sandbox: Limits {
                fuel_per_call: 20_000_000_000,
                memory_bytes: 1 << 30,
                deadline: std::time::Duration::from_secs(10),
                output_bytes: 256 << 10,
                ..Limits::default()
            },
        }
    }
}

struct WindowState {
    rule: RuleRef,
    loaded: Arc<LoadedRule>,
    spec: WindowSpec,
    spans: Vec<Span>,
    /// End (ms since the epoch) of the next window to check.
    next_end: u64,
    /// The open signal consecutive violations are grouped into.
    open_signal: Option<String>,
    /// Kept between windows; taken out while a check runs.
    sandbox: Option<Sandbox>,
}

/// One window due for its check.
struct Due {
    tenant: TenantId,
    rule: RuleRef,
    loaded: Arc<LoadedRule>,
    start: u64,
    end: u64,
    spans: Vec<Span>,
    sandbox: Option<Sandbox>,
    open_signal: Option<String>,
}

pub struct Windows {
    tenants: Mutex<HashMap<TenantId, Vec<WindowState>>>,
    engine: Arc<RuleEngine>,
    signals: Arc<Signals>,
    counters: Arc<Counters>,
    events: tokio::sync::broadcast::Sender<Arc<(TenantId, Signal)>>,
    limits: WindowLimits,
}

fn first_end(now_ms: u64, every_ms: u64) -> u64 {
    (now_ms / every_ms + 1) * every_ms
}

fn selects(selection: &Selection, span: &Span) -> bool {
    selection.service.as_ref().is_none_or(|service| span.resource.service.as_deref() == Some(service.as_str()))
        && selection.name.as_ref().is_none_or(|name| &span.name == name)
        && selection.kind.as_ref().is_none_or(|kind| span.kind.as_str() == kind.as_str() && span.kind != SpanKind::Unspecified)
        && selection
            .attributes
            .iter()
            .all(|(key, wanted)| span.attributes.iter().any(|(name, value)| name == key && &value.to_json() == wanted))
}

impl Windows {
    pub fn new(
        engine: Arc<RuleEngine>,
        signals: Arc<Signals>,
        counters: Arc<Counters>,
        events: tokio::sync::broadcast::Sender<Arc<(TenantId, Signal)>>,
        limits: WindowLimits,
    ) -> Windows {
        Windows { tenants: Mutex::new(HashMap::new()), engine, signals, counters, events, limits }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Vec<WindowState>>> {
        self.tenants.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Replaces a tenant's window rules. A rule kept at the same version keeps
    /// its spans and schedule; a new one starts with the next window.
    pub fn set_rules(&self, tenant: &TenantId, rules: Vec<(RuleRef, Arc<LoadedRule>)>, now_ms: u64) {
        let mut tenants = self.lock();
        let mut old: Vec<WindowState> = tenants.remove(tenant).unwrap_or_default();
        let mut states = Vec::with_capacity(rules.len());
        for (rule, loaded) in rules {
            let Some(spec) = loaded.meta.window.clone() else { continue };
            let kept = old.iter().position(|state| state.rule == rule && state.spec == spec).map(|index| old.swap_remove(index));
            states.push(kept.unwrap_or_else(|| WindowState {
                next_end: first_end(now_ms, spec.every_ms.max(1)),
                rule,
                loaded,
                spec,
                spans: Vec::new(),
                open_signal: None,
                sandbox: None,
            }));
        }
        if !states.is_empty() {
            tenants.insert(tenant.clone(), states);
        }
    }

    /// Whether `tenant` has window rules (the ingest path asks before copying spans).
    pub fn wants(&self, tenant: &TenantId) -> bool {
        self.lock().contains_key(tenant)
    }

    /// Selects arriving spans into the tenant's windows. A span whose every
    /// window was already checked is late (dropped, counted); one over the
    /// per-rule cap is dropped and counted too.
    pub fn offer(&self, tenant: &TenantId, spans: &[Span]) {
        let mut tenants = self.lock();
        let Some(states) = tenants.get_mut(tenant) else { return };
        let (mut selected, mut late, mut capped) = (0u64, 0u64, 0u64);
        for state in states.iter_mut() {
            let oldest_pending = state.next_end.saturating_sub(state.spec.length_ms);
            for span in spans.iter().filter(|span| selects(&state.spec.select, span)) {
                if span.start_unix_nano / 1_000_000 < oldest_pending {
                    late += 1;
                } else if state.spans.len() >= self.limits.max_spans {
                    capped += 1;
                } else {
                    state.spans.push(span.clone());
                    selected += 1;
                }
            }
        }
        drop(tenants);
        let counters = &self.counters;
        counters.window_spans_selected.fetch_add(selected, Ordering::Relaxed);
        counters.window_spans_late.fetch_add(late, Ordering::Relaxed);
        counters.window_spans_capped.fetch_add(capped, Ordering::Relaxed);
    }

    /// When the next window falls due (ms since the epoch), if any.
    pub fn next_due(&self) -> Option<u64> {
        self.lock().values().flatten().map(|state| state.next_end + state.spec.grace_ms).min()
    }

    /// Takes each rule's first window due at `now_ms` out of the state
    /// (advancing its schedule and forgetting spans no later window needs).
    fn take_due(&self, now_ms: u64) -> Vec<Due> {
        let mut due = Vec::new();
        for (tenant, states) in self.lock().iter_mut() {
            for state in states.iter_mut() {
                if state.next_end + state.spec.grace_ms <= now_ms {
                    let (start, end) = (state.next_end.saturating_sub(state.spec.length_ms), state.next_end);
                    let mut spans: Vec<Span> =
                        state.spans.iter().filter(|span| (start..end).contains(&(span.start_unix_nano / 1_000_000))).cloned().collect();
                    spans.sort_by_key(|span| (span.start_unix_nano, span.span_id));
                    state.next_end += state.spec.every_ms;
                    let keep_from = state.next_end.saturating_sub(state.spec.length_ms);
                    state.spans.retain(|span| span.start_unix_nano / 1_000_000 >= keep_from);
                    // A window whose check is still running is not due twice.
                    let sandbox = state.sandbox.take();
                    due.push(Due {
                        tenant: tenant.clone(),
                        rule: state.rule.clone(),
                        loaded: state.loaded.clone(),
                        start,
                        end,
                        spans,
                        sandbox,
                        open_signal: state.open_signal.clone(),
                    });
                }
            }
        }
        due
    }

    /// Checks every window due at `now_ms`, one after the other; returns the
    /// signals created (updates of a grouped signal are not returned).
    pub fn run_due(&self, now_ms: u64) -> Vec<Signal> {
        let mut created = Vec::new();
        // One window per rule per round: a window's outcome (the open signal
        // it grouped into) is known before the rule's next window is checked.
        loop {
            let due = self.take_due(now_ms);
            if due.is_empty() {
                return created;
            }
            for due in due {
                created.extend(self.check(due));
            }
        }
    }

    fn check(&self, due: Due) -> Option<Signal> {
        let Due { tenant, rule, loaded, start, end, spans, sandbox, open_signal } = due;
        let mut sandbox = sandbox.unwrap_or_else(|| Sandbox::with_limits(self.engine.clone(), vec![loaded], self.limits.sandbox.clone()));
        let window = Trace::new([0; 16], spans);
        let run = sandbox.evaluate_window(&window, (start, end)).into_iter().next();
        let mut outcome_group = open_signal;
        let mut created = None;
        if let Some(run) = &run {
            self.counters.evaluation(run.outcome.kind());
            self.counters.window_checks.fetch_add(1, Ordering::Relaxed);
            self.counters.rule_call(&tenant, &rule.id, run);
            match &run.outcome {
                Outcome::Ok { violations } if violations.is_empty() => outcome_group = None,
                Outcome::Ok { violations } => {
                    match self.signals.record_window(&tenant, &rule, &violations[0], (start, end), &window, outcome_group.as_deref()) {
                        Ok((signal, is_new)) => {
                            outcome_group = Some(signal.id.clone());
                            if is_new {
                                self.counters.signals_created.fetch_add(1, Ordering::Relaxed);
                                self.counters.tenant(&tenant, |own| own.signals_created += 1);
                                self.counters.rule(&tenant, &rule.id, |own| own.signals_created += 1);
                                created = Some(signal);
                            } else {
                                self.counters.signals_duplicate.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(error) => tracing::error!(tenant = %tenant, rule = %rule.name, error = %error, "window signal not stored"),
                    }
                }
                failed => {
                    tracing::debug!(tenant = %tenant, rule = %rule.name, outcome = failed.kind(), "window check did not complete")
                }
            }
        }
        if let Some(signal) = &created {
            let _ = self.signals.flush();
            let _ = self.events.send(Arc::new((tenant.clone(), signal.clone())));
        }
        if let Some(state) = self.lock().get_mut(&tenant).and_then(|states| states.iter_mut().find(|state| state.rule == rule)) {
            state.sandbox = Some(sandbox);
            state.open_signal = outcome_group;
        }
        created
    }

    /// Spans held in windows (for `fluo_window_buffered_spans`).
    pub fn buffered_spans(&self) -> usize {
        self.lock().values().flatten().map(|state| state.spans.len()).sum()
    }
}

/// For testing a window rule on given traces (`fluo rules test`, `POST
/// /rules/test`): the spans the rule selects from all of them, as one window
/// from the first start to just after the last end.
pub fn one_window<'a>(traces: impl IntoIterator<Item = &'a Trace>, spec: &WindowSpec) -> (Trace, (u64, u64)) {
    let spans: Vec<Span> = traces.into_iter().flat_map(|trace| &trace.spans).filter(|span| selects(&spec.select, span)).cloned().collect();
    let start = spans.iter().map(|span| span.start_unix_nano / 1_000_000).min().unwrap_or(0);
    let end = spans.iter().map(|span| span.end_unix_nano / 1_000_000 + 1).max().unwrap_or(start + 1);
    (Trace::new([0; 16], spans), (start, end.max(start + 1)))
}

/// Runs due window checks until `stop` is set.
pub fn run(windows: Arc<Windows>, stop: Arc<std::sync::atomic::AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        windows.run_due(crate::auth::now_ms());
        let wait = windows.next_due().map_or(100, |due| due.saturating_sub(crate::auth::now_ms()).clamp(5, 100));
        std::thread::sleep(std::time::Duration::from_millis(wait));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::convert;
    use crate::store::Store;

    const LIMIT_50: &str = r#"export default window({
      name: "auth-concurrency", severity: "high", select: { service: "auth", kind: "server" }, length: "10s", grace: "2s",
      check(spans) {
        const c = concurrency(spans);
        if (c.peak > 50) return { message: "peak concurrency " + c.peak, spans: c.spans, attributes: { peak: c.peak, at: c.at } };
      },
    });"#;

    struct Harness {
        windows: Windows,
        _dir: tempfile::TempDir,
    }

    fn harness(rules: &[(&str, &str)], max_spans: usize) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let engine = RuleEngine::new(Limits::default()).unwrap();
        let signals = Arc::new(Signals::open(Arc::new(Store::open(dir.path()).unwrap())).unwrap());
        let limits = WindowLimits { max_spans, ..WindowLimits::default() };
        let windows = Windows::new(engine.clone(), signals, Arc::new(Counters::default()), tokio::sync::broadcast::channel(16).0, limits);
        for (tenant, source) in rules {
            let (_, loaded) = crate::rules::compile::compile(&engine, source).unwrap();
            let rule = RuleRef { id: format!("r_{tenant}"), name: "window".into(), version: 1 };
            windows.set_rules(&TenantId::trusted(tenant), vec![(rule, loaded)], 0);
        }
        Harness { windows, _dir: dir }
    }

    /// `count` spans of `service`, each `length_ms` long, the n-th starting at `start_ms + n * step_ms`.
    fn spans(service: &str, count: usize, start_ms: u64, step_ms: u64, length_ms: u64) -> Vec<Span> {
        let spans: Vec<serde_json::Value> = (0..count)
            .map(|n| {
                let start = (start_ms + n as u64 * step_ms) * 1_000_000;
                serde_json::json!({"traceId": format!("{:032x}", n + 1), "spanId": format!("{:016x}", start_ms * 1000 + n as u64 + 1),
                    "name": "GET /login", "kind": 2, "startTimeUnixNano": start.to_string(),
                    "endTimeUnixNano": (start + length_ms * 1_000_000).to_string()})
            })
            .collect();
        let json = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"spans": spans}]}]});
        convert::convert(convert::from_json(json.to_string().as_bytes()).unwrap()).spans
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::trusted(name)
    }

    #[test]
    fn tumbling_windows_find_the_peak_and_group_consecutive_violations() {
        let h = harness(&[("a", LIMIT_50)], 1000);
        let a = tenant("a");
        h.windows.offer(&a, &spans("auth", 60, 1_000, 0, 500)); // window [0, 10s): 60 at once
        h.windows.offer(&a, &spans("billing", 80, 1_000, 0, 500)); // not selected
        h.windows.offer(&a, &spans("auth", 60, 12_000, 0, 500)); // [10s, 20s): broken again
        h.windows.offer(&a, &spans("auth", 40, 21_000, 0, 500)); // [20s, 30s): fine
        h.windows.offer(&a, &spans("auth", 60, 31_000, 100, 50)); // [30s, 40s): 60 spread out: fine
        h.windows.offer(&a, &spans("auth", 63, 45_000, 0, 500)); // [40s, 50s): broken anew
        assert!(h.windows.run_due(11_999).is_empty(), "not due before end + grace");
        let created = h.windows.run_due(12_000);
        assert_eq!(created.len(), 1);
        let first = &created[0];
        assert_eq!(first.attributes.as_ref().unwrap()["peak"], 60);
        assert_eq!(first.message, "peak concurrency 60");
        let details = first.window.as_ref().unwrap();
        assert_eq!((details.start.as_str(), details.end.as_str()), ("1970-01-01T00:00:00.000Z", "1970-01-01T00:00:10.000Z"));
        assert_eq!((details.occurrences, details.spans_in_window, details.trace_ids.len()), (1, 60, 20), "a bounded sample");
        assert_eq!(first.witnesses.len(), 20);
        assert!(h.windows.run_due(22_000).is_empty(), "the second violating window updates the open signal");
        let grouped = h.windows.signals.get(&a, &first.id).unwrap().unwrap();
        assert_eq!(grouped.window.as_ref().unwrap().occurrences, 2);
        assert!(h.windows.run_due(42_000).is_empty(), "40 overlapping and 60 spread out are within the limit");
        let again = h.windows.run_due(52_000);
        assert_eq!(again.len(), 1, "after a good window, a violation opens a new signal");
        assert_eq!(again[0].attributes.as_ref().unwrap()["peak"], 63);
    }

    #[test]
    fn sliding_windows_see_a_burst_in_every_window_that_covers_it() {
        let sliding = LIMIT_50.replace(r#"length: "10s","#, r#"length: "10s", every: "5s","#);
        let h = harness(&[("s", &sliding), ("t", LIMIT_50)], 1000);
        for name in ["s", "t"] {
            h.windows.offer(&tenant(name), &spans("auth", 60, 7_000, 0, 500));
        }
        let created = h.windows.run_due(30_000);
        assert_eq!(created.len(), 2, "one signal per tenant");
        let occurrences = |name: &str| {
            let signal = created.iter().find(|signal| signal.rule_id == format!("r_{name}")).unwrap();
            h.windows.signals.get(&tenant(name), &signal.id).unwrap().unwrap().window.unwrap().occurrences
        };
        assert_eq!(occurrences("s"), 2, "windows [0,10s) and [5s,15s) both hold the burst");
        assert_eq!(occurrences("t"), 1, "tumbling: one window holds it");
    }

    #[test]
    fn late_spans_count_within_the_grace_period_only() {
        let h = harness(&[("a", LIMIT_50)], 1000);
        let a = tenant("a");
        h.windows.offer(&a, &spans("auth", 30, 5_000, 0, 500));
        // At 11 s (within the 2 s grace of [0, 10s)) 30 more arrive: 60 in all.
        h.windows.offer(&a, &spans("auth", 30, 5_100, 0, 500));
        assert_eq!(h.windows.run_due(12_000).len(), 1);
        // [0, 10s) is checked: spans for it are late now, and dropped.
        h.windows.offer(&a, &spans("auth", 60, 9_000, 0, 500));
        assert_eq!(h.windows.counters.window_spans_late.load(Ordering::Relaxed), 60);
        assert!(h.windows.run_due(22_000).is_empty());
        assert_eq!(h.windows.buffered_spans(), 0);
    }

    #[test]
    fn the_memory_cap_drops_and_counts() {
        let h = harness(&[("a", LIMIT_50)], 100);
        let a = tenant("a");
        h.windows.offer(&a, &spans("auth", 150, 1_000, 0, 500));
        assert_eq!(h.windows.buffered_spans(), 100);
        assert_eq!(h.windows.counters.window_spans_capped.load(Ordering::Relaxed), 50);
        let created = h.windows.run_due(12_000);
        assert_eq!(created[0].attributes.as_ref().unwrap()["peak"], 100, "the check saw the kept spans");
    }

    #[test]
    fn a_hostile_window_check_does_not_stop_another_tenants() {
        let hostile = r#"export default window({ length: "10s", grace: "0s", check(spans) { while (true) {} } });"#;
        let mut h = harness(&[("evil", hostile), ("good", LIMIT_50)], 1000);
        h.windows.limits.sandbox.fuel_per_call = 50_000_000;
        for name in ["evil", "good"] {
            h.windows.offer(&tenant(name), &spans("auth", 60, 1_000, 0, 500));
        }
        let created = h.windows.run_due(12_000);
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].rule_id, "r_good");
        let evil = h.windows.counters.rule_counters(&tenant("evil"), "r_evil");
        assert_eq!((evil.failures, evil.last_failure.as_deref()), (1, Some("out_of_fuel")));
        // The hostile rule runs again next window, and fails again, alone.
        assert!(h.windows.run_due(22_000).is_empty());
        assert_eq!(h.windows.counters.rule_counters(&tenant("evil"), "r_evil").failures, 2);
    }
}
