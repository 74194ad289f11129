//! Closed traces → each tenant's active rules → signals, on a bounded pool of
//! worker threads (wasm never runs on async workers).
//!
//! Lanes: a tenant's traces are split over its lanes (`--eval-lanes-per-tenant`,
//! default the worker count) by trace id, so a trace and every amendment of it
//! meet in one lane, in arrival order. Each lane has its own queue and its own
//! sandbox and is evaluated by at most one worker at a time; so one tenant can
//! keep every worker busy, and a trace is never evaluated by two at once.
//!
//! Fairness: tenants with a ready lane (work waiting, no worker on it) wait in
//! one round-robin ring, each at most once; a worker takes one lane per turn
//! and the tenant goes back to the end of the ring if another of its lanes is
//! ready. A worker holds the lanes it evaluated until its group commit (when
//! the ring is empty it evaluates their next traces itself meanwhile, for at
//! most [`GROUP_COMMIT`]), so a lane's events are published in the order its
//! traces were evaluated. So a trace of a tenant waits at most
//! `ceil(k / workers)` trace evaluations, where k is the number of other
//! tenants with a backlog, each bounded by rules × per-call deadline. Before
//! evaluation a closed trace is merged with the stored copy of the same trace
//! (late spans amend it) and held to the per-trace span and byte caps again;
//! the merged trace is stored again for the next amendment.
//!
//! Group commit: new signals are flushed to disk by the worker that made them
//! once no work is waiting or [`GROUP_COMMIT`] after the oldest unflushed one,
//! whichever comes first — one fsync for many signals under load.

use super::Counters;
use super::assembler::{AssemblyLimits, ClosedTrace, cap_merged};
use crate::events::EventKind;
use crate::model::tenant::TenantId;
use crate::model::time::now_ms;
use crate::model::trace::{SpanId, Trace};
use crate::rules::{LoadedRule, Outcome, RuleEngine, Sandbox};
use crate::signals::{RuleRef, Signal, Signals};
use crate::store::traces::RecentTraces;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// The longest a stored signal waits for its flush while work keeps coming.
pub const GROUP_COMMIT: std::time::Duration = std::time::Duration::from_millis(10);

/// A tenant's active rules, replaced as a whole when one changes.
pub struct RuleSet {
    pub generation: u64,
    pub rules: Vec<(RuleRef, Arc<LoadedRule>)>,
}

/// One of a tenant's lanes: the traces whose id falls to it, in arrival
/// order, and the sandbox that evaluates them (built for a rule generation).
#[derive(Default)]
struct Lane {
    queue: VecDeque<ClosedTrace>,
    sandbox: Option<(u64, Sandbox)>,
    /// A worker holds the lane (evaluating, or until its group commit).
    busy: bool,
}

struct Slot {
    lanes: Vec<Lane>,
    rules: Option<Arc<RuleSet>>,
    in_ring: bool,
    /// Where the search for a ready lane starts next (lanes take turns).
    next: usize,
}

impl Slot {
    fn new(lanes: usize) -> Slot {
        Slot { lanes: (0..lanes).map(|_| Lane::default()).collect(), rules: None, in_ring: false, next: 0 }
    }

    /// A lane with work waiting and no worker on it, taking turns.
    fn ready(&self) -> Option<usize> {
        let count = self.lanes.len();
        (0..count).map(|offset| (self.next + offset) % count).find(|&index| {
            let lane = &self.lanes[index];
            !lane.busy && !lane.queue.is_empty()
        })
    }

    fn backlog(&self) -> usize {
        self.lanes.iter().map(|lane| lane.queue.len()).sum()
    }
}

/// The lane of a trace: its whole id folded and mixed (splitmix64's
/// finalizer), so that ids random in any of their bytes (W3C: the last 7)
/// or counted up in any of them spread evenly.
fn lane_of(trace_id: &[u8; 16], lanes: usize) -> usize {
    let id = u128::from_be_bytes(*trace_id);
    let mut x = (id as u64) ^ ((id >> 64) as u64);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % lanes as u64) as usize
}

impl State {
    /// The tenant's slot, made on first use.
    fn slot(&mut self, tenant: &TenantId) -> &mut Slot {
        let lanes = self.lanes;
        self.slots.entry(tenant.clone()).or_insert_with(|| Slot::new(lanes))
    }
}

#[derive(Default)]
struct State {
    slots: HashMap<TenantId, Slot>,
    /// Lanes per tenant.
    lanes: usize,
    ring: VecDeque<TenantId>,
    stopping: bool,
    busy_workers: usize,
    /// The most workers ever evaluating at once (tests read it).
    peak_busy: usize,
    /// Lanes held by a worker until its next flush.
    held: usize,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    idle: Condvar,
    engine: Arc<RuleEngine>,
    signals: Arc<Signals>,
    recent: Arc<RecentTraces>,
    counters: Arc<Counters>,
    /// The per-trace caps, applied again to a trace merged with late spans.
    caps: AssemblyLimits,
    /// Called with each stored signal's latency (last span → stored).
    on_signal: Option<Box<dyn Fn(std::time::Duration) + Send + Sync>>,
    /// New signals, published once they are durable (live streams, webhooks).
    events: Arc<crate::events::EventHub>,
    /// Span-log positions of the traces handed over and not yet done
    /// (evaluated, and their signals flushed).
    positions: super::spanlog::Held,
}

pub struct Evaluator {
    shared: Arc<Shared>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Evaluator {
    /// `lanes` is the number of lanes per tenant (at most that many workers
    /// evaluate one tenant's traces at once).
    pub fn start(
        workers: usize,
        lanes: usize,
        engine: Arc<RuleEngine>,
        signals: Arc<Signals>,
        recent: Arc<RecentTraces>,
        counters: Arc<Counters>,
        on_signal: Option<Box<dyn Fn(std::time::Duration) + Send + Sync>>,
        events: Arc<crate::events::EventHub>,
        caps: AssemblyLimits,
    ) -> Evaluator {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { lanes: lanes.max(1), ..State::default() }),
            work: Condvar::new(),
            idle: Condvar::new(),
            engine,
            signals,
            recent,
            counters,
            caps,
            on_signal,
            events,
            positions: super::spanlog::Held::default(),
        });
        let handles = (0..workers.max(1))
            .map(|index| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("fluo-eval-{index}"))
                    .spawn(move || worker(&shared))
                    .expect("spawn evaluation worker")
            })
            .collect::<Vec<_>>();
        Evaluator { shared, workers: Mutex::new(handles) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Replaces a tenant's active trace rules; the next trace uses them.
    pub fn set_rules(&self, tenant: &TenantId, rules: Vec<(RuleRef, Arc<LoadedRule>)>) {
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        self.lock().slot(tenant).rules = Some(Arc::new(RuleSet { generation, rules }));
    }

    pub fn rules(&self, tenant: &TenantId) -> Option<Arc<RuleSet>> {
        self.lock().slots.get(tenant).and_then(|slot| slot.rules.clone())
    }

    /// The most workers that were evaluating at the same time.
    #[cfg(test)]
    fn peak_busy(&self) -> usize {
        self.lock().peak_busy
    }

    /// Traces waiting for evaluation for `tenant`.
    pub fn backlog(&self, tenant: &TenantId) -> usize {
        self.lock().slots.get(tenant).map_or(0, Slot::backlog)
    }

    /// Every tenant's closed traces waiting for evaluation (the backlog gauges).
    pub fn backlogs(&self) -> Vec<(TenantId, usize)> {
        self.lock().slots.iter().map(|(tenant, slot)| (tenant.clone(), slot.backlog())).collect()
    }

    pub fn submit(&self, traces: Vec<ClosedTrace>) {
        if traces.is_empty() {
            return;
        }
        let mut state = self.lock();
        let lanes = state.lanes;
        for trace in traces {
            let tenant = trace.tenant.clone();
            let slot = state.slot(&tenant);
            let lane = &mut slot.lanes[lane_of(&trace.trace_id, lanes)];
            lane.queue.push_back(trace);
            if !lane.busy && !slot.in_ring {
                slot.in_ring = true;
                state.ring.push_back(tenant);
            }
        }
        drop(state);
        self.shared.work.notify_all();
    }

    /// Holds the span-log positions of `traces` until each is done; called
    /// while they leave the assembler, before [`Evaluator::submit`], so that a
    /// checkpoint always sees them in one or the other.
    pub fn hold(&self, traces: &[ClosedTrace]) {
        for trace in traces {
            self.shared.positions.hold(trace.position);
        }
    }

    /// The lowest span-log position a handed-over trace still needs (it is
    /// waiting, being evaluated, or its signals are not yet flushed).
    pub fn oldest_position(&self) -> Option<u64> {
        self.shared.positions.oldest()
    }

    /// Puts the stored copies of evaluated traces on disk (see [`RecentTraces::sync`]).
    pub fn sync_recent(&self) -> Result<(), crate::store::StoreError> {
        self.shared.recent.sync()
    }

    /// Waits until every submitted trace has been evaluated and its signals flushed.
    pub fn drain(&self) {
        let mut state = self.lock();
        while !state.ring.is_empty() || state.busy_workers > 0 || state.held > 0 {
            state = self.shared.idle.wait(state).unwrap_or_else(|poison| poison.into_inner());
        }
        drop(state);
        if let Err(error) = self.shared.signals.flush() {
            tracing::error!(error = %error, "signals not flushed");
        }
    }

    /// Drains, then stops the workers.
    pub fn stop(&self) {
        self.drain();
        self.lock().stopping = true;
        self.shared.work.notify_all();
        for handle in self.workers.lock().unwrap_or_else(|poison| poison.into_inner()).drain(..) {
            let _ = handle.join();
        }
    }
}

/// Signals written by this worker and not yet flushed: when the last span of
/// each one's trace arrived.
#[derive(Default)]
struct Unflushed {
    since: Option<Instant>,
    last_spans: Vec<Instant>,
    /// Published once the group is on disk: new signals, and signals this
    /// evaluation changed (cleared).
    events: Vec<(TenantId, EventKind, Signal)>,
    /// Span-log positions of the traces evaluated since the last flush: released after it.
    positions: Vec<u64>,
}

impl Unflushed {
    fn flush(&mut self, shared: &Shared) {
        if self.since.take().is_none() {
            return;
        }
        // What the events set off (webhook deliveries) goes to disk with the signals.
        for (tenant, kind, signal) in &self.events {
            shared.events.stage(tenant, *kind, signal);
        }
        if let Err(error) = shared.signals.flush() {
            tracing::error!(error = %error, "signals not flushed");
        }
        // The traces' stored copies reach the OS before their positions are released.
        if let Err(error) = shared.recent.flush() {
            tracing::warn!(error = %error, "recent traces not written");
        }
        if let Some(on_signal) = &shared.on_signal {
            for last_span in self.last_spans.drain(..) {
                on_signal(last_span.elapsed());
            }
        }
        self.last_spans.clear();
        for (tenant, kind, signal) in self.events.drain(..) {
            shared.events.publish(&tenant, kind, signal);
        }
        for position in self.positions.drain(..) {
            shared.positions.release(position);
        }
    }
}

fn worker(shared: &Shared) {
    let mut unflushed = Unflushed::default();
    // Lanes this worker holds until its next flush: another worker cannot
    // take their next trace before this one's events are published, so a
    // lane's notifications go out in evaluation order.
    let mut held: Vec<(TenantId, usize)> = Vec::new();
    let mut state = shared.state.lock().unwrap_or_else(|poison| poison.into_inner());
    loop {
        let held_work =
            held.iter().position(|(tenant, lane)| state.slots.get(tenant).is_some_and(|slot| !slot.lanes[*lane].queue.is_empty()));
        if unflushed.since.is_some_and(|since| (state.ring.is_empty() && held_work.is_none()) || since.elapsed() >= GROUP_COMMIT) {
            drop(state);
            unflushed.flush(shared);
            state = shared.state.lock().unwrap_or_else(|poison| poison.into_inner());
            for (tenant, lane) in held.drain(..) {
                let slot = state.slots.get_mut(&tenant).expect("slots are never removed");
                slot.lanes[lane].busy = false;
                if !slot.in_ring && slot.ready().is_some() {
                    slot.in_ring = true;
                    state.ring.push_back(tenant);
                }
                state.held -= 1;
            }
            shared.work.notify_all();
            if state.ring.is_empty() && state.busy_workers == 0 && state.held == 0 {
                shared.idle.notify_all();
            }
            continue;
        }
        // The ring's next tenant first (round-robin), else the next trace of a held lane (it shares the coming flush).
        let (tenant, lane) = match (state.ring.is_empty(), held_work) {
            (true, Some(index)) => held[index].clone(),
            _ => {
                let Some(tenant) = state.ring.pop_front() else {
                    if state.stopping {
                        return;
                    }
                    state = shared.work.wait(state).unwrap_or_else(|poison| poison.into_inner());
                    continue;
                };
                let slot = state.slots.get_mut(&tenant).expect("a tenant in the ring has a slot");
                slot.in_ring = false;
                let Some(lane) = slot.ready() else { continue };
                slot.lanes[lane].busy = true;
                slot.next = (lane + 1) % slot.lanes.len();
                // Another ready lane of this tenant waits for its next turn.
                if slot.ready().is_some() {
                    slot.in_ring = true;
                    state.ring.push_back(tenant.clone());
                }
                state.held += 1;
                held.push((tenant.clone(), lane));
                (tenant, lane)
            }
        };
        let slot = state.slots.get_mut(&tenant).expect("a held tenant has a slot");
        let rules = slot.rules.clone();
        let Some(trace) = slot.lanes[lane].queue.pop_front() else { continue };
        let mut sandbox = slot.lanes[lane].sandbox.take();
        state.busy_workers += 1;
        state.peak_busy = state.peak_busy.max(state.busy_workers);
        drop(state);

        if let Some(rules) = rules.filter(|rules| !rules.rules.is_empty()) {
            if sandbox.as_ref().is_none_or(|(generation, _)| *generation != rules.generation) {
                let loaded = rules.rules.iter().map(|(_, rule)| rule.clone()).collect();
                sandbox = Some((rules.generation, Sandbox::new(shared.engine.clone(), loaded)));
            }
            let (_, sandbox) = sandbox.as_mut().expect("set above");
            let position = trace.position;
            let (wrote, events) = evaluate(shared, &tenant, &rules, sandbox, trace);
            if let Some(last_span) = wrote {
                unflushed.last_spans.push(last_span);
                unflushed.events.extend(events.into_iter().map(|(kind, signal)| (tenant.clone(), kind, signal)));
            }
            unflushed.positions.push(position);
        } else {
            // No rules: the trace is still kept so that a rule added later can be amended against it.
            unflushed.positions.push(trace.position);
            store_only(shared, &tenant, trace);
        }
        // The span log keeps the trace until its signals and its stored copy
        // (which a replayed part of it is merged with) are flushed.
        unflushed.since.get_or_insert_with(Instant::now);

        state = shared.state.lock().unwrap_or_else(|poison| poison.into_inner());
        state.busy_workers -= 1;
        state.slots.get_mut(&tenant).expect("slots are never removed").lanes[lane].sandbox = sandbox;
    }
}

/// The closed spans merged with the stored copy of the trace, duplicates (an
/// exporter's retry) removed, held to the per-trace caps (late spans beyond
/// them are dropped and counted as the assembler drops them); and whether
/// there was a stored copy.
fn merged(shared: &Shared, tenant: &TenantId, closed: ClosedTrace) -> (Trace, bool) {
    let stored = match shared.recent.get(tenant, &closed.trace_id) {
        Ok(stored) => stored,
        Err(error) => {
            tracing::warn!(tenant = %tenant, error = %error, "recent trace unreadable");
            None
        }
    };
    let amended = stored.is_some();
    let mut seen: HashSet<SpanId> = HashSet::new();
    let mut spans = Vec::with_capacity(closed.spans.len());
    for span in stored.into_iter().flatten().chain(closed.spans) {
        if seen.insert(span.span_id) {
            spans.push(span);
        } else {
            shared.counters.spans_duplicate.fetch_add(1, Ordering::Relaxed);
        }
    }
    if amended {
        let (kept, dropped) = cap_merged(spans, &shared.caps);
        spans = kept;
        let counters = &shared.counters;
        counters.spans_dropped_span_limit.fetch_add(dropped.span_limit, Ordering::Relaxed);
        counters.spans_dropped_byte_limit.fetch_add(dropped.byte_limit, Ordering::Relaxed);
        // They were acknowledged as accepted when they arrived (counters only
        // grow); now they are also counted as dropped by the caps.
        let total = dropped.span_limit + dropped.byte_limit;
        if total > 0 {
            counters.tenant(tenant, |own| own.spans_rejected = own.spans_rejected.saturating_add(total));
        }
    }
    (Trace::new(closed.trace_id, spans), amended)
}

fn encoded(trace: &Trace) -> Vec<u8> {
    prost::Message::encode_to_vec(&crate::model::otlp::to_otlp(&trace.spans))
}

fn store_only(shared: &Shared, tenant: &TenantId, closed: ClosedTrace) {
    let (trace, _) = merged(shared, tenant, closed);
    if let Err(error) = shared.recent.put(tenant, &trace.trace_id, &encoded(&trace), now_ms()) {
        tracing::warn!(tenant = %tenant, error = %error, "recent trace not stored");
    }
}

/// Evaluates one closed trace; returns when its last span arrived if the
/// evaluation wrote signals (they await the group commit), and the events to
/// publish after it: new signals and cleared ones.
fn evaluate(
    shared: &Shared,
    tenant: &TenantId,
    rules: &RuleSet,
    sandbox: &mut Sandbox,
    closed: ClosedTrace,
) -> (Option<Instant>, Vec<(EventKind, Signal)>) {
    let last_span_at = closed.last_span_at;
    let (trace, amended) = merged(shared, tenant, closed);
    let counters = &shared.counters;
    if amended {
        counters.traces_amended.fetch_add(1, Ordering::Relaxed);
    }
    let runs = sandbox.evaluate_prefiltered(&trace);
    counters.tenant(tenant, |own| own.traces_evaluated += 1);
    let mut completed = Vec::with_capacity(runs.len());
    for ((rule, _), run) in rules.rules.iter().zip(runs) {
        if run.skipped {
            // Ran, no violation: a late span can still clear the rule's signals on this trace.
            counters.rule(tenant, &rule.id, |own| own.skipped += 1);
            completed.push((rule.clone(), Vec::new()));
            continue;
        }
        counters.fuel_used.fetch_add(run.fuel_used, Ordering::Relaxed);
        counters.evaluation(run.outcome.kind());
        let failed = !matches!(run.outcome, Outcome::Ok { .. });
        counters.tenant(tenant, |own| {
            own.rule_calls += 1;
            own.rule_failures += u64::from(failed);
            own.fuel_used += run.fuel_used;
        });
        counters.rule_call(tenant, &rule.id, &run);
        match run.outcome {
            Outcome::Ok { violations } => completed.push((rule.clone(), violations)),
            failed => {
                tracing::debug!(tenant = %tenant, rule = %rule.name, version = rule.version, outcome = failed.kind(), "rule did not complete")
            }
        }
    }
    // Encoded once: the signal snapshot and the recent-trace copy are the same bytes.
    let otlp = encoded(&trace);
    let (wrote, events) = match shared.signals.record(tenant, &trace, &otlp, &completed, amended) {
        Ok(recorded) => {
            counters.signals_created.fetch_add(recorded.created.len() as u64, Ordering::Relaxed);
            counters.tenant(tenant, |own| own.signals_created += recorded.created.len() as u64);
            for signal in &recorded.created {
                counters.rule(tenant, &signal.rule_id, |own| own.signals_created += 1);
            }
            counters.signals_duplicate.fetch_add(recorded.duplicates as u64, Ordering::Relaxed);
            counters.signals_cleared.fetch_add(recorded.cleared.len() as u64, Ordering::Relaxed);
            counters.signals_occurred.fetch_add((recorded.counted.len() + recorded.woke.len()) as u64, Ordering::Relaxed);
            counters.signals_regressed.fetch_add(recorded.regressed.len() as u64, Ordering::Relaxed);
            let wrote = !recorded.created.is_empty()
                || !recorded.counted.is_empty()
                || !recorded.regressed.is_empty()
                || !recorded.woke.is_empty()
                || !recorded.cleared.is_empty();
            // A further occurrence of a group goes to sinks (rate thresholds), not to live streams.
            let events = (recorded.created.into_iter().map(|signal| (EventKind::Created, signal)))
                .chain(recorded.regressed.into_iter().map(|signal| (EventKind::Regressed, signal)))
                .chain(recorded.woke.into_iter().map(|signal| (EventKind::SnoozeEnded, signal)))
                .chain(recorded.cleared.into_iter().map(|signal| (EventKind::StatusChanged, signal)))
                .chain(recorded.counted.into_iter().map(|signal| (EventKind::Counted, signal)))
                .collect();
            (wrote, events)
        }
        Err(error) => {
            tracing::error!(tenant = %tenant, error = %error, "signals not stored");
            (false, Vec::new())
        }
    };
    if let Err(error) = shared.recent.put(tenant, &trace.trace_id, &otlp, now_ms()) {
        tracing::warn!(tenant = %tenant, error = %error, "recent trace not stored");
    }
    (wrote.then_some(last_span_at), events)
}

#[cfg(test)]
mod tests;
