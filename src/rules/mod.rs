//! The rule engine: JavaScript rules compiled to dynamically linked Javy
//! modules (`compile`), run in per-tenant wasmtime sandboxes (`sandbox`) on one
//! shared engine (`engine`), talking the `fluo_rule_v2` ABI (`abi`).
//!
//! This module owns the types every caller sees: [`Limits`], [`Outcome`],
//! [`RuleRun`] (a rule's [`Violation`]s and metadata are plain data of the
//! model layer). It must not know about tenants' storage or HTTP.

pub mod abi;
pub mod codegen;
pub mod compile;
pub mod engine;
pub mod plugin;
pub mod prefilter;
pub mod sandbox;
pub mod source;
pub mod templates;
pub mod wire;

use crate::model::rule::Violation;
use serde::Serialize;
use std::time::Duration;

pub use abi::LogDoc;
pub use compile::{CompileError, CompiledRule};
pub use engine::{LoadedRule, RuleEngine};
pub use sandbox::Sandbox;

/// Limits applied to every rule call (see docs/operations.md for how the
/// defaults were chosen and measured).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Fuel (roughly, wasm instructions) for one rule on one trace.
    pub fuel_per_call: u64,
    /// Fuel for moving one trace into JS, per byte of the binary trace (plus a base).
    pub fuel_per_trace_byte: u64,
    /// Linear memory of one sandbox (all rules of a tenant share it).
    pub memory_bytes: usize,
    /// Wasm stack; engine-wide.
    pub wasm_stack_bytes: usize,
    /// Wall-clock deadline for one call, enforced with epoch interruption.
    pub deadline: Duration,
    /// Largest result one call may return (violations and logs).
    pub output_bytes: usize,
    /// Largest rule source accepted by the compiler.
    pub source_bytes: usize,
}

impl Limits {
    /// Ticks of the engine's epoch that make up the per-call deadline.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        (self.deadline.as_micros() / engine::EPOCH_TICK.as_micros()).max(1) as u64 + 1
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel_per_call: 200_000_000,
            fuel_per_trace_byte: 2_000,
            memory_bytes: 64 << 20,
            wasm_stack_bytes: 512 << 10,
            deadline: Duration::from_millis(100),
            output_bytes: 64 << 10,
            source_bytes: 128 << 10,
        }
    }
}

/// Witness spans one violation may name; the host keeps the first this many
/// distinct ids (docs/rules.md).
pub const MAX_WITNESSES: usize = 100;

/// Bytes of witness spans stored with the signals of one rule on one trace
/// (as JSON); witnesses beyond keep their ids in `span_ids` but are not copied.
pub const WITNESS_BYTES: usize = 1 << 20;

/// How one rule call on one trace ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The rule ran; no violations means the trace satisfies it.
    Ok { violations: Vec<Violation> },
    /// The fuel budget ran out (an endless or too expensive rule).
    OutOfFuel,
    /// The wall-clock deadline passed.
    Deadline,
    /// The sandbox's linear memory would have grown past its cap.
    MemoryCap { requested_bytes: u64 },
    /// The wasm stack overflowed (QuickJS usually raises a RangeError first).
    StackOverflow,
    /// The result was larger than the output cap.
    OutputCap { bytes: u64 },
    /// The rule threw (or returned something the SDK refuses).
    Exception { name: String, message: String, line: Option<u32>, column: Option<u32> },
    /// Any other trap; the message is the engine's.
    Trap { message: String },
}

impl Outcome {
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Ok { .. } => "ok",
            Outcome::OutOfFuel => "out_of_fuel",
            Outcome::Deadline => "deadline",
            Outcome::MemoryCap { .. } => "memory_cap",
            Outcome::StackOverflow => "stack_overflow",
            Outcome::OutputCap { .. } => "output_cap",
            Outcome::Exception { .. } => "exception",
            Outcome::Trap { .. } => "trap",
        }
    }

    pub fn violations(&self) -> &[Violation] {
        match self {
            Outcome::Ok { violations } => violations,
            _ => &[],
        }
    }
}

/// One rule's run on one trace.
#[derive(Clone, Debug, Serialize)]
pub struct RuleRun {
    #[serde(flatten)]
    pub outcome: Outcome,
    pub fuel_used: u64,
    #[serde(serialize_with = "micros")]
    pub elapsed: Duration,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogDoc>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub logs_truncated: bool,
    /// The host's prefilter ruled the trace out: the rule did not run and
    /// counts as run with no violation ([`prefilter`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// The rule's `when` did not hold, so it did not apply to the trace
    /// (only `rule({when, ...})` sets it; a skipped run does not).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub when_failed: bool,
}

impl RuleRun {
    /// The run of a rule the prefilter skipped.
    pub fn skipped() -> RuleRun {
        RuleRun {
            outcome: Outcome::Ok { violations: Vec::new() },
            fuel_used: 0,
            elapsed: Duration::ZERO,
            logs: Vec::new(),
            logs_truncated: false,
            skipped: true,
            when_failed: false,
        }
    }
}

fn micros<S: serde::Serializer>(elapsed: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(elapsed.as_micros() as u64)
}
