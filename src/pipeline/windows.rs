//! Window rules: invariants over one tenant's spans across traces ("auth never
//! serves more than 50 concurrent requests"). Spans are selected as they
//! arrive (before trace assembly) by each rule's host-side selection and kept
//! per (tenant, rule), capped; windows end on multiples of the rule's `every`
//! and cover the spans that *started* in the last `length`; a window is
//! checked `grace` after its end, in a sandbox of its own with the window
//! limits, created for the check and dropped after it (a check may grow its
//! linear memory to the window cap; keeping it would hold that memory).
//! Consecutive violating windows of a rule update one open signal
//! (occurrence count) instead of raising one signal each.
//!
//! Fairness: checks run on a pool of [`WindowLimits::workers`] threads; a
//! tenant's checks run one at a time (at most one worker per tenant) and the
//! tenants with due windows are served round-robin, so a tenant whose checks
//! loop until their deadline holds one worker while the others go on. Each
//! tenant also has a time budget ([`WindowLimits::tenant_budget_per_minute`]
//! of wall-clock check time, refilled continuously): a tenant over it has its
//! due windows skipped (counted as `over_budget` rule failures) until the
//! budget refills. At most
//! [`WindowLimits::max_rules_per_tenant`] window rules of a tenant run; the
//! rest are not checked (logged).

use super::Counters;
use crate::model::rule::Selection;
use crate::model::rule::WindowSpec;
use crate::model::tenant::TenantId;
use crate::model::trace::{Span, SpanKind, Trace};
use crate::rules::{Limits, LoadedRule, Outcome, RuleEngine, Sandbox};
use crate::signals::{RuleRef, Signal, Signals};
use std::collections::{HashMap, VecDeque};
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
    /// Window rules of one tenant that run; more active ones are not checked.
    pub max_rules_per_tenant: usize,
    /// Threads checking windows (tenants share them round-robin).
    pub workers: usize,
    /// Wall-clock time a tenant's window checks may use per minute; over it,
    /// the tenant's due windows are skipped and counted.
    pub tenant_budget_per_minute: std::time::Duration,
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
            max_rules_per_tenant: 5,
            workers: 2,
            tenant_budget_per_minute: std::time::Duration::from_secs(20),
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
    /// The open signals consecutive violations are grouped into, per grouping key.
    open_signals: OpenGroups,
}

/// Per grouping key a window rule's violations set (`None`: none set), the
/// open signal its consecutive violating windows are grouped into.
type OpenGroups = Vec<(Option<String>, String)>;

/// Distinct grouping keys one window check records (further ones are counted as duplicates).
pub const GROUPS_PER_WINDOW: usize = 20;

/// One tenant's window rules, whether a worker is checking one of them, and
/// its time budget.
struct TenantWindows {
    states: Vec<WindowState>,
    busy: bool,
    /// Check time left (ms); may go negative after a long check.
    budget_ms: f64,
    /// When (`now_ms`) the budget was last refilled.
    budget_at: u64,
}

/// One window due for its check.
struct Due {
    tenant: TenantId,
    rule: RuleRef,
    loaded: Arc<LoadedRule>,
    start: u64,
    end: u64,
    spans: Vec<Span>,
    open_signals: OpenGroups,
}

#[derive(Default)]
struct State {
    tenants: HashMap<TenantId, TenantWindows>,
    /// Tenants in the order they are served next.
    ring: VecDeque<TenantId>,
}

pub struct Windows {
    state: Mutex<State>,
    engine: Arc<RuleEngine>,
    signals: Arc<Signals>,
    counters: Arc<Counters>,
    events: Arc<crate::events::EventHub>,
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
        events: Arc<crate::events::EventHub>,
        limits: WindowLimits,
    ) -> Windows {
        Windows { state: Mutex::new(State::default()), engine, signals, counters, events, limits }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn full_budget_ms(&self) -> f64 {
        self.limits.tenant_budget_per_minute.as_secs_f64() * 1000.0
    }

    /// Replaces a tenant's window rules. A rule kept at the same version keeps
    /// its spans and schedule; a new one starts with the next window. Beyond
    /// [`WindowLimits::max_rules_per_tenant`], rules are not run.
    pub fn set_rules(&self, tenant: &TenantId, rules: Vec<(RuleRef, Arc<LoadedRule>)>, now_ms: u64) {
        let full_budget = self.full_budget_ms();
        let mut state = self.lock();
        let previous = state.tenants.remove(tenant);
        let (mut old, busy, budget_ms, budget_at) = match previous {
            Some(previous) => (previous.states, previous.busy, previous.budget_ms, previous.budget_at),
            None => (Vec::new(), false, full_budget, now_ms),
        };
        let mut states = Vec::with_capacity(rules.len());
        for (rule, loaded) in rules {
            let Some(spec) = loaded.meta.window.clone() else { continue };
            if states.len() >= self.limits.max_rules_per_tenant {
                tracing::warn!(tenant = %tenant, rule = %rule.name, max = self.limits.max_rules_per_tenant, "window rule over the tenant's limit; not checked");
                continue;
            }
            let kept = old.iter().position(|state| state.rule == rule && state.spec == spec).map(|index| old.swap_remove(index));
            states.push(kept.unwrap_or_else(|| WindowState {
                next_end: first_end(now_ms, spec.every_ms.max(1)),
                rule,
                loaded,
                spec,
                spans: Vec::new(),
                open_signals: Vec::new(),
            }));
        }
        state.ring.retain(|queued| queued != tenant);
        // A tenant whose check is running stays (without rules) until it ends.
        if !states.is_empty() || busy {
            state.tenants.insert(tenant.clone(), TenantWindows { states, busy, budget_ms, budget_at });
            state.ring.push_back(tenant.clone());
        }
    }

    /// Whether `tenant` has window rules (the ingest path asks before copying spans).
    pub fn wants(&self, tenant: &TenantId) -> bool {
        self.lock().tenants.get(tenant).is_some_and(|windows| !windows.states.is_empty())
    }

    /// Selects arriving spans into the tenant's windows. A span whose every
    /// window was already checked is late (dropped, counted); one over the
    /// per-rule cap is dropped and counted too.
    /// How long after its arrival a span can still be in a window buffer
    /// (the longest window, its step and its grace); `None` without window rules.
    pub fn horizon_ms(&self) -> Option<u64> {
        let state = self.lock();
        let states = state.tenants.values().flat_map(|windows| &windows.states);
        states.map(|window| window.spec.length_ms + window.spec.every_ms + window.spec.grace_ms).max()
    }

    pub fn offer(&self, tenant: &TenantId, spans: &[Span]) {
        let mut state = self.lock();
        let Some(windows) = state.tenants.get_mut(tenant) else { return };
        let (mut selected, mut late, mut capped) = (0u64, 0u64, 0u64);
        for state in windows.states.iter_mut() {
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
        drop(state);
        let counters = &self.counters;
        counters.window_spans_selected.fetch_add(selected, Ordering::Relaxed);
        counters.window_spans_late.fetch_add(late, Ordering::Relaxed);
        counters.window_spans_capped.fetch_add(capped, Ordering::Relaxed);
    }

    /// When the next window falls due (ms since the epoch), if any.
    pub fn next_due(&self) -> Option<u64> {
        self.lock().tenants.values().flat_map(|windows| &windows.states).map(|state| state.next_end + state.spec.grace_ms).min()
    }

    /// Takes the first window due at `now_ms` of the next tenant in turn that
    /// has one and no check running, and marks that tenant busy (the caller
    /// checks it, then calls [`Windows::done`]). Windows of a tenant over its
    /// time budget are skipped here (schedule advanced, spans forgotten, counted).
    fn take_due(&self, now_ms: u64) -> Option<Due> {
        let full_budget = self.full_budget_ms();
        let mut guard = self.lock();
        let State { tenants, ring } = &mut *guard;
        for _ in 0..ring.len() {
            let tenant = ring.pop_front()?;
            ring.push_back(tenant.clone());
            let Some(windows) = tenants.get_mut(&tenant) else { continue };
            if windows.busy {
                continue;
            }
            let refill = now_ms.saturating_sub(windows.budget_at) as f64 * full_budget / 60_000.0;
            windows.budget_ms = (windows.budget_ms + refill).min(full_budget);
            windows.budget_at = windows.budget_at.max(now_ms);
            let over_budget = windows.budget_ms <= 0.0;
            for state in windows.states.iter_mut() {
                while state.next_end + state.spec.grace_ms <= now_ms {
                    let (start, end) = (state.next_end.saturating_sub(state.spec.length_ms), state.next_end);
                    let mut spans: Vec<Span> = Vec::new();
                    if !over_budget {
                        spans =
                            state.spans.iter().filter(|span| (start..end).contains(&(span.start_unix_nano / 1_000_000))).cloned().collect();
                        spans.sort_by_key(|span| (span.start_unix_nano, span.span_id));
                    }
                    state.next_end += state.spec.every_ms;
                    let keep_from = state.next_end.saturating_sub(state.spec.length_ms);
                    state.spans.retain(|span| span.start_unix_nano / 1_000_000 >= keep_from);
                    if over_budget {
                        // `fluo_rule_evaluations_total{outcome="over_budget"}`.
                        self.counters.evaluation("over_budget");
                        self.counters.rule(&tenant, &state.rule.id, |own| {
                            own.failures += 1;
                            own.last_failure = Some("over_budget".into());
                            own.last_failure_at = Some(crate::model::time::rfc3339(crate::model::time::now_ms()));
                        });
                        continue;
                    }
                    windows.busy = true;
                    return Some(Due {
                        tenant: tenant.clone(),
                        rule: state.rule.clone(),
                        loaded: state.loaded.clone(),
                        start,
                        end,
                        spans,
                        open_signals: state.open_signals.clone(),
                    });
                }
            }
        }
        None
    }

    /// Ends a tenant's check: charges its time and frees the tenant for the next one.
    fn done(&self, tenant: &TenantId, rule: &RuleRef, open_signals: OpenGroups, elapsed: std::time::Duration) {
        let mut state = self.lock();
        let Some(windows) = state.tenants.get_mut(tenant) else { return };
        windows.busy = false;
        windows.budget_ms -= elapsed.as_secs_f64() * 1000.0;
        if let Some(state) = windows.states.iter_mut().find(|state| &state.rule == rule) {
            state.open_signals = open_signals;
        }
        if windows.states.is_empty() {
            state.tenants.remove(tenant);
            state.ring.retain(|queued| queued != tenant);
        }
    }

    /// Checks one due window, if any; returns whether there was one, and the signals it created.
    fn work_once(&self, now_ms: u64) -> Option<Vec<Signal>> {
        let due = self.take_due(now_ms)?;
        let (tenant, rule) = (due.tenant.clone(), due.rule.clone());
        let started = std::time::Instant::now();
        let (created, open_signals) = self.check(due);
        self.done(&tenant, &rule, open_signals, started.elapsed());
        Some(created)
    }

    /// Checks every window due at `now_ms` on the calling thread, tenants in
    /// turn; returns the signals created (updates of a grouped signal are
    /// not returned).
    pub fn run_due(&self, now_ms: u64) -> Vec<Signal> {
        let mut created = Vec::new();
        // One window per round: a window's outcome (the open signal it grouped
        // into) is known before the rule's next window is checked.
        while let Some(signal) = self.work_once(now_ms) {
            created.extend(signal);
        }
        created
    }

    /// Runs one window check in a fresh sandbox (dropped afterwards); returns
    /// the signals it created, and per grouping key the open signal the rule's
    /// next violation with that key groups into. A key absent from this
    /// window ends its run: its next violation opens a new signal.
    fn check(&self, due: Due) -> (Vec<Signal>, OpenGroups) {
        let Due { tenant, rule, loaded, start, end, spans, open_signals } = due;
        let mut sandbox = Sandbox::with_limits(self.engine.clone(), vec![loaded], self.limits.sandbox.clone());
        let window = Trace::new([0; 16], spans);
        let run = sandbox.evaluate_window(&window, (start, end)).into_iter().next();
        drop(sandbox);
        let mut open = open_signals;
        let mut created = Vec::new();
        if let Some(run) = &run {
            self.counters.evaluation(run.outcome.kind());
            self.counters.window_checks.fetch_add(1, Ordering::Relaxed);
            self.counters.rule_call(&tenant, &rule.id, run);
            match &run.outcome {
                Outcome::Ok { violations } => {
                    let mut next: OpenGroups = Vec::new();
                    for violation in violations {
                        // One record per grouping key and window.
                        if next.iter().any(|(key, _)| *key == violation.group) || next.len() >= GROUPS_PER_WINDOW {
                            self.counters.signals_duplicate.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let previous = open.iter().find(|(key, _)| *key == violation.group).map(|(_, id)| id.as_str());
                        match self.signals.record_window(&tenant, &rule, violation, (start, end), &window, previous) {
                            Ok((signal, is_new)) => {
                                next.push((violation.group.clone(), signal.id.clone()));
                                if is_new {
                                    self.counters.signals_created.fetch_add(1, Ordering::Relaxed);
                                    self.counters.tenant(&tenant, |own| own.signals_created += 1);
                                    self.counters.rule(&tenant, &rule.id, |own| own.signals_created += 1);
                                    created.push(signal);
                                } else {
                                    self.counters.signals_duplicate.fetch_add(1, Ordering::Relaxed);
                                    // Rate thresholds count a window group's violating windows.
                                    self.events.publish(&tenant, crate::events::EventKind::Counted, signal);
                                }
                            }
                            Err(error) => tracing::error!(tenant = %tenant, rule = %rule.name, error = %error, "window signal not stored"),
                        }
                    }
                    open = next;
                }
                failed => {
                    tracing::debug!(tenant = %tenant, rule = %rule.name, outcome = failed.kind(), "window check did not complete")
                }
            }
        }
        if !created.is_empty() {
            let _ = self.signals.flush();
        }
        for signal in &created {
            self.events.publish(&tenant, crate::events::EventKind::Created, signal.clone());
        }
        (created, open)
    }

    /// Spans held in windows (for `fluo_window_buffered_spans`).
    pub fn buffered_spans(&self) -> usize {
        self.lock().tenants.values().flat_map(|windows| &windows.states).map(|state| state.spans.len()).sum()
    }

    /// Window rules of `tenant` that run (at most the per-tenant limit).
    pub fn rules_running(&self, tenant: &TenantId) -> usize {
        self.lock().tenants.get(tenant).map_or(0, |windows| windows.states.len())
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

/// Runs due window checks on [`WindowLimits::workers`] threads until `stop`
/// is set; returns the threads.
pub fn start(windows: Arc<Windows>, stop: Arc<std::sync::atomic::AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    (0..windows.limits.workers.max(1))
        .map(|index| {
            let (windows, stop) = (windows.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("fluo-windows-{index}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if windows.work_once(crate::model::time::now_ms()).is_some() {
                            continue;
                        }
                        let wait = windows.next_due().map_or(100, |due| due.saturating_sub(crate::model::time::now_ms()).clamp(5, 100));
                        std::thread::sleep(std::time::Duration::from_millis(wait));
                    }
                })
                .expect("spawn window thread")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::otlp;
    use crate::pipeline::RuleCounters;
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
        let windows = Windows::new(engine.clone(), signals, Arc::new(Counters::default()), crate::events::EventHub::new(), limits);
        for (tenant, source) in rules {
            let (_, loaded) = crate::rules::compile::compile(&engine, source).unwrap();
            let rule = RuleRef { id: format!("r_{tenant}"), name: "window".into(), version: 1, ..Default::default() };
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
        otlp::convert(otlp::from_json(json.to_string().as_bytes()).unwrap()).spans
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

    /// A window rule's grouping key: one run of consecutive violating windows per key.
    #[test]
    fn each_grouping_key_has_its_own_run_of_violating_windows() {
        let per_service = r#"export default window({
          name: "busy", select: { kind: "server" }, length: "10s", grace: "0s", group: ["service"],
          check(spans) {
            return Object.entries(groupBy(spans, "service")).filter(([, s]) => s.length > 5)
              .map(([service, s]) => ({ message: service + " busy", spans: s.slice(0, 3) }));
          },
        });"#;
        let h = harness(&[("k", per_service)], 1000);
        let k = tenant("k");
        h.windows.offer(&k, &spans("auth", 10, 1_000, 0, 100)); // [0, 10s): auth and cart
        h.windows.offer(&k, &spans("cart", 10, 2_000, 0, 100));
        h.windows.offer(&k, &spans("auth", 10, 11_000, 0, 100)); // [10s, 20s): auth only
        h.windows.offer(&k, &spans("cart", 10, 21_000, 0, 100)); // [20s, 30s): cart only
        let first = h.windows.run_due(10_000);
        let mut keys: Vec<Option<String>> = first.iter().map(|signal| signal.group_key.clone()).collect();
        keys.sort();
        assert_eq!(keys, [Some(r#"[["auth"]]"#.into()), Some(r#"[["cart"]]"#.into())], "two keys, two signals");
        assert!(h.windows.run_due(20_000).is_empty(), "auth again: its run goes on");
        let auth = first.iter().find(|signal| signal.message == "auth busy").unwrap();
        assert_eq!(h.windows.signals.get(&k, &auth.id).unwrap().unwrap().occurrences, 2);
        let again = h.windows.run_due(30_000);
        assert_eq!((again.len(), again[0].message.as_str()), (1, "cart busy"), "cart's run ended in the window without it");
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

    const LOOPING: &str = r#"export default window({ length: "10s", grace: "0s", check(spans) { while (true) {} } });"#;

    fn rule(tenant: &str, index: usize) -> RuleRef {
        RuleRef { id: format!("r_{tenant}_{index}"), name: format!("window-{index}"), version: 1, ..Default::default() }
    }

    #[test]
    fn a_tenant_over_its_time_budget_has_its_windows_skipped() {
        let mut h = harness(&[("good", LIMIT_50)], 1000);
        h.windows.limits.sandbox.fuel_per_call = 50_000_000;
        h.windows.limits.tenant_budget_per_minute = std::time::Duration::from_millis(1);
        let (_, loaded) = crate::rules::compile::compile(&h.windows.engine, LOOPING).unwrap();
        let evil = tenant("evil");
        h.windows.set_rules(&evil, (0..3).map(|index| (rule("evil", index), loaded.clone())).collect(), 0);
        for name in ["evil", "good"] {
            h.windows.offer(&tenant(name), &spans("auth", 60, 1_000, 0, 500));
        }
        let created = h.windows.run_due(12_000);
        assert_eq!(created.len(), 1, "the other tenant's window is checked");
        let calls: Vec<RuleCounters> = (0..3).map(|index| h.windows.counters.rule_counters(&evil, &format!("r_evil_{index}"))).collect();
        assert_eq!(calls.iter().map(|counters| counters.calls).sum::<u64>(), 1, "one check spends the tenant's budget");
        let skipped: Vec<_> = calls.iter().filter(|counters| counters.last_failure.as_deref() == Some("over_budget")).collect();
        assert_eq!(skipped.len(), 2, "the other two windows are skipped, not run");
    }

    #[test]
    fn window_rules_beyond_the_tenant_limit_are_not_run() {
        let mut h = harness(&[], 1000);
        h.windows.limits.max_rules_per_tenant = 2;
        let (_, loaded) = crate::rules::compile::compile(&h.windows.engine, LIMIT_50).unwrap();
        let a = tenant("a");
        h.windows.set_rules(&a, (0..5).map(|index| (rule("a", index), loaded.clone())).collect(), 0);
        assert_eq!(h.windows.rules_running(&a), 2);
        h.windows.offer(&a, &spans("auth", 60, 1_000, 0, 500));
        assert_eq!(h.windows.run_due(12_000).len(), 2);
        assert_eq!(h.windows.buffered_spans(), 0);
    }

    #[test]
    fn a_looping_tenant_holds_one_window_worker_and_the_others_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let engine = RuleEngine::new(Limits::default()).unwrap();
        let signals = Arc::new(Signals::open(Arc::new(Store::open(dir.path()).unwrap())).unwrap());
        let mut limits = WindowLimits { workers: 2, ..WindowLimits::default() };
        limits.sandbox.deadline = std::time::Duration::from_millis(1500);
        let events = crate::events::EventHub::new();
        let windows = Arc::new(Windows::new(engine.clone(), signals, Arc::new(Counters::default()), events.clone(), limits));
        let (_, looping) = crate::rules::compile::compile(&engine, LOOPING).unwrap();
        let (_, limit) = crate::rules::compile::compile(&engine, LIMIT_50).unwrap();
        // Rules set 30 s in the past: the first windows are due at once.
        let set_at = crate::model::time::now_ms() - 30_000;
        let first_end = first_end(set_at, 10_000);
        let (evil, good) = (tenant("evil"), tenant("good"));
        windows.set_rules(&evil, (0..3).map(|index| (rule("evil", index), looping.clone())).collect(), set_at);
        windows.set_rules(&good, vec![(rule("good", 0), limit)], set_at);
        windows.offer(&good, &spans("auth", 60, first_end - 9_000, 0, 500));
        let mut created = events.subscribe(&good);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = std::time::Instant::now();
        let threads = start(windows.clone(), stop.clone());
        let waited = loop {
            if created.try_recv().is_ok() {
                break started.elapsed();
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "no signal for the good tenant");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(waited < std::time::Duration::from_millis(1200), "the good tenant waited {waited:?} behind 1.5 s checks");
    }
}
