//! One tenant's sandbox: a wasmtime store holding one instance of the
//! pre-initialized plugin and one instance of each of the tenant's active rule
//! modules, all sharing the plugin's JS runtime. A trace is moved into JS once
//! (`fluo-load-trace`) and every rule runs on it (`fluo-run`).
//!
//! Every call gets the fuel budget, the memory cap (a [`ResourceLimiter`] that
//! records why it refused), the engine's wasm stack cap and an epoch deadline.
//! After any trap the instance is discarded and rebuilt from the snapshot
//! before the next call, so a hostile rule cannot disturb what runs after it.
//!
//! A sandbox never holds another tenant's rules; it is not `Sync` and is used
//! by one thread at a time.

use super::abi::{self, RunDoc};
use super::engine::{LoadedRule, PluginExport, RuleEngine};
use super::source::Prepared;
use super::wire;
use super::{Limits, MAX_WITNESSES, Outcome, RuleRun};
use crate::model::rule::RuleMeta;
use crate::model::rule::{Severity, Violation};
use crate::model::trace::Trace;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::{Extern, Instance, Memory, ResourceLimiter, Store, Trap, TypedFunc};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// Bytes of stderr kept (the plugin prints uncaught errors of a module's top level there).
const STDERR_CAP: usize = 4096;

pub struct SandboxState {
    pub(crate) wasi: WasiP1Ctx,
    limiter: Limiter,
    stderr: MemoryOutputPipe,
}

/// Caps linear memory and remembers that it did, so the outcome is typed
/// rather than guessed from an error message.
struct Limiter {
    cap: usize,
    refused: Option<usize>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

struct Live {
    store: Store<SandboxState>,
    memory: Memory,
    input: TypedFunc<u32, u32>,
    load: TypedFunc<u32, u32>,
    run: TypedFunc<(u32, u32), u32>,
    describe: TypedFunc<u32, u32>,
    /// Registry index of each rule in this instance (None: it failed to start).
    slots: Vec<Option<u32>>,
    /// Whether the current trace is loaded in this instance.
    loaded: bool,
}

pub struct Sandbox {
    engine: Arc<RuleEngine>,
    /// The engine's limits, or larger ones for window checks.
    limits: Limits,
    rules: Vec<Arc<LoadedRule>>,
    live: Option<Live>,
    /// Why a rule could not be started (its module's top level failed).
    start_failures: Vec<Option<Outcome>>,
    /// How many times the instance was rebuilt after a failure.
    pub rebuilds: u64,
}

impl Sandbox {
    pub fn new(engine: Arc<RuleEngine>, rules: Vec<Arc<LoadedRule>>) -> Sandbox {
        let limits = engine.limits.clone();
        Sandbox::with_limits(engine, rules, limits)
    }

    /// A sandbox whose calls get `limits` instead of the engine's (the wasm
    /// stack stays engine-wide).
    pub fn with_limits(engine: Arc<RuleEngine>, rules: Vec<Arc<LoadedRule>>, limits: Limits) -> Sandbox {
        let count = rules.len();
        Sandbox { engine, limits, rules, live: None, start_failures: vec![None; count], rebuilds: 0 }
    }

    pub fn rules(&self) -> &[Arc<LoadedRule>] {
        &self.rules
    }

    /// Runs every rule on the trace, in order; one result per rule.
    pub fn evaluate(&mut self, trace: &Trace) -> Vec<RuleRun> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        self.evaluate_bytes(&wire::trace_bytes(trace, None), &vec![true; self.rules.len()])
    }

    /// Runs the rules whose prefilter the trace meets, in order; the others
    /// get [`RuleRun::skipped`]. When every rule is ruled out the trace is not
    /// moved into the sandbox at all.
    pub fn evaluate_prefiltered(&mut self, trace: &Trace) -> Vec<RuleRun> {
        let run: Vec<bool> = self.rules.iter().map(|rule| rule.may_fire(trace)).collect();
        if !run.contains(&true) {
            return run.iter().map(|_| RuleRun::skipped()).collect();
        }
        self.evaluate_bytes(&wire::trace_bytes(trace, None), &run)
    }

    /// Runs every rule (window checks) on the spans of one window, given as a
    /// trace whose spans come from many traces.
    pub fn evaluate_window(&mut self, spans: &Trace, window: (u64, u64)) -> Vec<RuleRun> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        self.evaluate_bytes(&wire::trace_bytes(spans, Some(window)), &vec![true; self.rules.len()])
    }

    /// Runs the rules marked in `run` on the binary trace (loaded once, on the
    /// first rule that runs); the others get [`RuleRun::skipped`].
    fn evaluate_bytes(&mut self, trace: &[u8], run: &[bool]) -> Vec<RuleRun> {
        if let Some(live) = self.live.as_mut() {
            live.loaded = false;
        }
        run.iter().enumerate().map(|(index, &run)| if run { self.run_one(index, trace) } else { RuleRun::skipped() }).collect()
    }

    fn run_one(&mut self, index: usize, trace: &[u8]) -> RuleRun {
        let started = Instant::now();
        let failed = |outcome: Outcome, started: Instant| RuleRun {
            outcome,
            fuel_used: 0,
            elapsed: started.elapsed(),
            logs: Vec::new(),
            logs_truncated: false,
            skipped: false,
            when_failed: false,
        };
        if let Err(outcome) = self.ensure_live() {
            return failed(outcome, started);
        }
        if let Some(outcome) = &self.start_failures[index] {
            return failed(outcome.clone(), started);
        }
        if let Err(outcome) = self.ensure_loaded(trace) {
            self.live = None;
            return failed(outcome, started);
        }
        let live = self.live.as_mut().expect("ensured above");
        let Some(slot) = live.slots[index] else {
            return failed(Outcome::Trap { message: "rule did not register".into() }, started);
        };
        let fuel = self.limits.fuel_per_call;
        prepare_call(&mut live.store, fuel, self.limits.deadline_ticks());
        let output_cap = self.limits.output_bytes as u32;
        let call_started = Instant::now();
        let result = live.run.call(&mut live.store, (slot, output_cap));
        let elapsed = call_started.elapsed();
        let fuel_used = fuel.saturating_sub(live.store.get_fuel().unwrap_or(0));
        let refused = live.store.data().limiter.refused;
        let read = match result {
            Ok(ret) => read_result(&mut live.store, live.memory, ret, output_cap as usize + 4096),
            Err(error) => Err(classify(error, &live.store)),
        };
        let (outcome, logs, logs_truncated, when_failed) = match (read, refused) {
            // A refused growth is the cause even when the guest survived it
            // (QuickJS turns a failed allocation into a catchable exception).
            (_, Some(requested)) => {
                self.discard();
                (Outcome::MemoryCap { requested_bytes: requested as u64 }, Vec::new(), false, false)
            }
            (Err(outcome), None) => {
                self.discard();
                (outcome, Vec::new(), false, false)
            }
            (Ok(text), None) => interpret(&text, self.rules[index].prepared.as_ref()),
        };
        RuleRun { outcome, fuel_used, elapsed, logs, logs_truncated, skipped: false, when_failed }
    }

    fn discard(&mut self) {
        self.live = None;
        self.rebuilds = self.rebuilds.saturating_add(1);
    }

    fn ensure_live(&mut self) -> Result<(), Outcome> {
        if self.live.is_some() {
            return Ok(());
        }
        // Start the rules in order; a rule whose top level fails poisons the
        // instance, so it is marked and the instance is built again without it.
        loop {
            match self.build() {
                Ok(live) => {
                    self.live = Some(live);
                    return Ok(());
                }
                Err((Some(index), outcome)) => self.start_failures[index] = Some(outcome),
                Err((None, outcome)) => return Err(outcome),
            }
        }
    }

    fn build(&self) -> Result<Live, (Option<usize>, Outcome)> {
        let engine = &self.engine;
        let (mut store, stderr) = sandbox_store(engine, &self.limits);
        let host = |error: wasmtime::Error| (None, Outcome::Trap { message: format!("sandbox setup failed: {error}") });
        let plugin = engine.plugin_pre.instantiate(&mut store).map_err(|error| (None, classify(error, &store)))?;
        let memory = plugin.get_memory(&mut store, "memory").ok_or_else(|| host(wasmtime::Error::msg("plugin has no memory")))?;
        let input = plugin.get_typed_func::<u32, u32>(&mut store, "fluo-input").map_err(host)?;
        let load = plugin.get_typed_func::<u32, u32>(&mut store, "fluo-load-trace").map_err(host)?;
        let run = plugin.get_typed_func::<(u32, u32), u32>(&mut store, "fluo-run").map_err(host)?;
        let describe = plugin.get_typed_func::<u32, u32>(&mut store, "fluo-describe").map_err(host)?;
        let count = plugin.get_typed_func::<(), u32>(&mut store, "fluo-rule-count").map_err(host)?;
        let invoke = plugin.get_func(&mut store, "invoke").ok_or_else(|| host(wasmtime::Error::msg("plugin has no invoke")))?;
        let realloc =
            plugin.get_func(&mut store, "cabi_realloc").ok_or_else(|| host(wasmtime::Error::msg("plugin has no cabi_realloc")))?;

        let mut slots = Vec::with_capacity(self.rules.len());
        for (index, rule) in self.rules.iter().enumerate() {
            if self.start_failures[index].is_some() {
                slots.push(None);
                continue;
            }
            let imports: Vec<Extern> = rule
                .imports
                .iter()
                .map(|import| match import {
                    PluginExport::Invoke => Extern::Func(invoke),
                    PluginExport::Realloc => Extern::Func(realloc),
                    PluginExport::Memory => Extern::Memory(memory),
                })
                .collect();
            let before = count.call(&mut store, ()).map_err(|error| (None, classify(error, &store)))?;
            prepare_call(&mut store, self.limits.fuel_per_call, self.limits.deadline_ticks());
            let started = Instance::new(&mut store, &rule.module, &imports)
                .and_then(|instance| instance.get_typed_func::<(), ()>(&mut store, "_start"))
                .and_then(|start| start.call(&mut store, ()));
            if let Err(error) = started {
                let outcome = match classify(error, &store) {
                    Outcome::Trap { message } => top_level_error(&message, &stderr.contents(), rule),
                    other => other,
                };
                return Err((Some(index), outcome));
            }
            let after = count.call(&mut store, ()).map_err(|error| (None, classify(error, &store)))?;
            if after != before + 1 {
                return Err((
                    Some(index),
                    Outcome::Trap { message: format!("rule registered {} definitions, expected 1", after.saturating_sub(before)) },
                ));
            }
            slots.push(Some(before));
        }
        Ok(Live { store, memory, input, load, run, describe, slots, loaded: false })
    }

    fn ensure_loaded(&mut self, trace: &[u8]) -> Result<(), Outcome> {
        let limits = self.limits.clone();
        let live = self.live.as_mut().expect("live");
        if live.loaded {
            return Ok(());
        }
        let fuel = (trace.len() as u64).saturating_mul(limits.fuel_per_trace_byte).saturating_add(limits.fuel_per_call);
        prepare_call(&mut live.store, fuel, limits.deadline_ticks().saturating_mul(4));
        let len = u32::try_from(trace.len()).map_err(|_| Outcome::MemoryCap { requested_bytes: trace.len() as u64 })?;
        let outcome = (|| {
            let pointer = live.input.call(&mut live.store, len)?;
            live.memory.write(&mut live.store, pointer as usize, trace)?;
            live.load.call(&mut live.store, len)
        })();
        let refused = live.store.data().limiter.refused;
        let ret = match (outcome, refused) {
            (_, Some(requested)) => return Err(Outcome::MemoryCap { requested_bytes: requested as u64 }),
            (Err(error), None) => return Err(classify(error, &live.store)),
            (Ok(ret), None) => ret,
        };
        let status = read_u32s(&live.store, live.memory, ret).map(|area| area[0]);
        match status {
            Some(0) => {
                live.loaded = true;
                Ok(())
            }
            _ => {
                let text = read_result(&mut live.store, live.memory, ret, 4096).unwrap_or_else(|outcome| format!("{outcome:?}"));
                Err(Outcome::Trap { message: format!("loading the trace failed: {text}") })
            }
        }
    }

    /// The metadata the rule at `index` registered (used when validating a
    /// freshly compiled rule).
    pub fn describe(&mut self, index: usize) -> Result<RuleMeta, Outcome> {
        self.ensure_live()?;
        if let Some(outcome) = &self.start_failures[index] {
            return Err(outcome.clone());
        }
        let limits = self.limits.clone();
        let live = self.live.as_mut().expect("live");
        let slot = live.slots[index].ok_or(Outcome::Trap { message: "rule did not register".into() })?;
        prepare_call(&mut live.store, limits.fuel_per_call, limits.deadline_ticks());
        let ret = live.describe.call(&mut live.store, slot).map_err(|error| classify(error, &live.store))?;
        let text = read_result(&mut live.store, live.memory, ret, 64 * 1024)?;
        serde_json::from_str(&text).map_err(|error| Outcome::Trap { message: format!("bad rule description: {error}") })
    }
}

/// A store for one sandbox instance: deterministic WASI with captured
/// output, the memory cap, the epoch deadline trap, and fuel and deadline for
/// one call of `limits`. Returns it with its stderr.
pub(crate) fn sandbox_store(engine: &RuleEngine, limits: &Limits) -> (Store<SandboxState>, MemoryOutputPipe) {
    let stderr = MemoryOutputPipe::new(STDERR_CAP);
    let mut builder = WasiCtxBuilder::new();
    deterministic_wasi_ctx::add_determinism_to_wasi_ctx_builder(&mut builder);
    builder.stdout(MemoryOutputPipe::new(STDERR_CAP)).stderr(stderr.clone());
    let state =
        SandboxState { wasi: builder.build_p1(), limiter: Limiter { cap: limits.memory_bytes, refused: None }, stderr: stderr.clone() };
    let mut store = Store::new(&engine.engine, state);
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_trap();
    prepare_call(&mut store, limits.fuel_per_call, limits.deadline_ticks());
    (store, stderr)
}

fn prepare_call(store: &mut Store<SandboxState>, fuel: u64, ticks: u64) {
    // Setting fuel only fails when fuel is not enabled, which the engine does.
    let _ = store.set_fuel(fuel);
    store.set_epoch_deadline(ticks);
    store.data_mut().limiter.refused = None;
}

fn read_u32s(store: &Store<SandboxState>, memory: Memory, pointer: u32) -> Option<[u32; 3]> {
    let mut bytes = [0u8; 12];
    memory.read(store, pointer as usize, &mut bytes).ok()?;
    let word = |i: usize| u32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    Some([word(0), word(1), word(2)])
}

/// Reads `[status, pointer, length]` and the bytes it points at; refuses more
/// than `cap` bytes without copying them.
fn read_result(store: &mut Store<SandboxState>, memory: Memory, ret: u32, cap: usize) -> Result<String, Outcome> {
    let [status, pointer, length] = read_u32s(store, memory, ret).ok_or(Outcome::Trap { message: "result area out of bounds".into() })?;
    if length as usize > cap {
        return Err(Outcome::OutputCap { bytes: length as u64 });
    }
    let mut bytes = vec![0u8; length as usize];
    memory.read(&*store, pointer as usize, &mut bytes).map_err(|_| Outcome::Trap { message: "result out of bounds".into() })?;
    let text = String::from_utf8(bytes).map_err(|_| Outcome::Trap { message: "result is not utf-8".into() })?;
    if status != 0 {
        return Err(Outcome::Trap { message: text });
    }
    Ok(text)
}

pub(crate) fn classify(error: wasmtime::Error, store: &Store<SandboxState>) -> Outcome {
    if let Some(requested) = store.data().limiter.refused {
        return Outcome::MemoryCap { requested_bytes: requested as u64 };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::OutOfFuel,
        Some(Trap::Interrupt) => Outcome::Deadline,
        Some(Trap::StackOverflow) => Outcome::StackOverflow,
        Some(trap) => {
            let stderr = store.data().stderr.contents();
            let printed = String::from_utf8_lossy(&stderr).trim().to_string();
            Outcome::Trap { message: if printed.is_empty() { trap.to_string() } else { printed } }
        }
        None => Outcome::Trap { message: format!("{error}") },
    }
}

/// The plugin prints a module's uncaught top-level error (`Error: msg\n at … (function.mjs:L:C)`) and aborts.
fn top_level_error(message: &str, stderr: &[u8], rule: &LoadedRule) -> Outcome {
    let printed = String::from_utf8_lossy(stderr);
    let text = if printed.trim().is_empty() { message.to_string() } else { printed.trim().to_string() };
    let first = text.lines().next().unwrap_or("").to_string();
    let (name, message) = match first.split_once(": ") {
        Some((name, rest)) if !name.contains(' ') => (name.to_string(), rest.to_string()),
        _ => ("Error".to_string(), first),
    };
    let (line, column) = position_in(&text, rule.prepared.as_ref());
    Outcome::Exception { name, message, line, column }
}

/// The first `function.mjs:L:C` in a QuickJS stack, mapped back to the tenant's source.
pub(crate) fn position_in(stack: &str, prepared: Option<&Prepared>) -> (Option<u32>, Option<u32>) {
    let Some(at) = stack.find("function.mjs:") else {
        return (None, None);
    };
    let rest = &stack[at + "function.mjs:".len()..];
    let mut numbers =
        rest.split(|c: char| !c.is_ascii_digit()).filter(|part| !part.is_empty()).take(2).map(|part| part.parse::<u32>().ok());
    let (Some(Some(line)), Some(Some(column))) = (numbers.next(), numbers.next()) else {
        return (None, None);
    };
    let (line, column) = match prepared {
        Some(prepared) => prepared.original_position(line, column),
        None => (line, column),
    };
    (Some(line), Some(column))
}

/// Reads what `__fluo_run` returned. The text comes from the sandbox: any
/// bytes must give an outcome (never a panic), and witness ids are normalized
/// and capped here ([`abi::witness_ids`]).
/// Besides the outcome: the logs, whether they were cut, and whether the
/// rule's `when` did not hold.
pub(crate) fn interpret(text: &str, prepared: Option<&Prepared>) -> (Outcome, Vec<abi::LogDoc>, bool, bool) {
    // The common cases, written as constants by the SDK: skip the JSON parse.
    if text == abi::EMPTY_RESULT {
        return (Outcome::Ok { violations: Vec::new() }, Vec::new(), false, false);
    }
    if text == abi::WHEN_FAILED_RESULT {
        return (Outcome::Ok { violations: Vec::new() }, Vec::new(), false, true);
    }
    let doc: RunDoc = match serde_json::from_str(text) {
        Ok(doc) => doc,
        Err(error) => return (Outcome::Trap { message: format!("unreadable rule result: {error}") }, Vec::new(), false, false),
    };
    match doc {
        RunDoc::Ok { violations, logs, logs_truncated, when_failed } => {
            let violations = violations
                .into_iter()
                .map(|v| Violation {
                    message: v.message,
                    severity: Severity::parse(&v.severity).unwrap_or(Severity::Medium),
                    span_ids: abi::witness_ids(&v.spans, MAX_WITNESSES),
                    attributes: v.attributes,
                    // The SDK bounds the key; a longer one from a hand-made module is cut at a character.
                    group: v.group.map(|mut key| {
                        let mut at = key.len().min(crate::model::rule::MAX_GROUP_KEY);
                        while !key.is_char_boundary(at) {
                            at -= 1;
                        }
                        key.truncate(at);
                        key
                    }),
                })
                .collect();
            (Outcome::Ok { violations }, logs, logs_truncated, when_failed)
        }
        RunDoc::OutputCap { bytes } => (Outcome::OutputCap { bytes }, Vec::new(), false, false),
        RunDoc::Error { name, message, stack, logs, logs_truncated } => {
            let (line, column) = position_in(&stack, prepared);
            (Outcome::Exception { name, message, line, column }, logs, logs_truncated, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn result_with_spans(spans: &[String]) -> String {
        serde_json::json!({"outcome": "ok", "violations": [{"message": "m", "severity": "high", "spans": spans}]}).to_string()
    }

    #[test]
    fn case_variants_of_one_span_id_are_one_witness() {
        let id = "00aabbccddeeff11";
        let mut variants = vec![id.to_string(), id.to_ascii_uppercase(), "00AaBbCcDdEeFf11".to_string(), "not hex".to_string()];
        for index in 0..3000 {
            let mut variant: Vec<char> = id.chars().collect();
            for (position, ch) in variant.iter_mut().enumerate() {
                if index >> (position % 12) & 1 == 1 {
                    *ch = ch.to_ascii_uppercase();
                }
            }
            variants.push(variant.into_iter().collect());
        }
        let (outcome, ..) = interpret(&result_with_spans(&variants), None);
        assert_eq!(outcome.violations()[0].span_ids, vec![id.to_string()]);
    }

    #[test]
    fn witnesses_per_violation_are_capped() {
        let ids: Vec<String> = (0..5000u64).map(|n| hex::encode(n.to_be_bytes())).collect();
        let (outcome, ..) = interpret(&result_with_spans(&ids), None);
        assert_eq!(outcome.violations()[0].span_ids, ids[..MAX_WITNESSES].to_vec());
    }

    /// Span ids the way a hostile rule might spell them.
    fn span_id_spellings() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-fA-F]{16}",
            "(0{0,15}1){1}[aA]{0,3}",
            any::<String>(),
            proptest::sample::select(vec!["00aabbccddeeff11".to_string(), "00AABBCCDDEEFF11".to_string()]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::default())]

        #[test]
        fn proptest_interpret_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = interpret(&String::from_utf8_lossy(&bytes), None);
        }

        #[test]
        fn proptest_interpret_never_panics_on_json_shapes(text in "[{}\\[\\]\":,a-z0-9 ]{0,400}", stack in ".{0,200}") {
            let _ = interpret(&text, None);
            let error = serde_json::json!({"outcome": "error", "name": "E", "message": "m", "stack": stack}).to_string();
            let _ = interpret(&error, None);
            let with_position = serde_json::json!({"outcome": "error", "name": "E", "message": "m", "stack": format!("at function.mjs:{stack}")}).to_string();
            let _ = interpret(&with_position, None);
        }

        #[test]
        fn proptest_witness_caps_hold(ids in proptest::collection::vec(span_id_spellings(), 0..400)) {
            let (outcome, ..) = interpret(&result_with_spans(&ids), None);
            let kept = &outcome.violations()[0].span_ids;
            prop_assert!(kept.len() <= MAX_WITNESSES);
            let mut distinct = kept.clone();
            distinct.sort();
            distinct.dedup();
            prop_assert_eq!(distinct.len(), kept.len());
            for id in kept {
                prop_assert!(id.len() == 16 && id.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')), "{}", id);
                prop_assert!(ids.iter().any(|given| given.eq_ignore_ascii_case(id)));
            }
        }
    }
}
