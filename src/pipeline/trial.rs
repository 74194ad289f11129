//! Trying one rule outside the live path: `fluo rules test`, `POST
//! /rules/test` and backtests run a compiled rule on given traces through
//! here. A trace rule runs on each trace; a window rule runs once, on the
//! spans it selects from all of them as one window ([`super::windows::one_window`]).
//! Each run comes back with its witness spans resolved to names and services.

use crate::model::rule::RuleMeta;
use crate::model::trace::Trace;
use crate::rules::{LoadedRule, RuleEngine, RuleRun, Sandbox};
use std::sync::Arc;
use std::time::Instant;

/// What a trial runs the rule on: labelled traces (a file name, or empty).
pub struct Input {
    pub label: String,
    pub trace: Trace,
    /// For a window rule: the window's bounds (ms).
    pub window: Option<(u64, u64)>,
}

/// The inputs for `meta`'s form: each trace for a trace rule, one window of
/// all of them for a window rule (labelled with its bounds).
pub fn inputs(meta: &RuleMeta, traces: Vec<(String, Trace)>) -> Vec<Input> {
    match &meta.window {
        Some(spec) => {
            let (trace, bounds) = super::windows::one_window(traces.iter().map(|(_, trace)| trace), spec);
            vec![Input { label: format!("one window [{}, {}) ms", bounds.0, bounds.1), trace, window: Some(bounds) }]
        }
        None => traces.into_iter().map(|(label, trace)| Input { label, trace, window: None }).collect(),
    }
}

/// A span a violation names that exists in the trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Witness {
    pub span_id: String,
    pub name: String,
    pub service: Option<String>,
}

/// One run of the rule on one input.
pub struct Tried {
    pub label: String,
    pub trace_id: String,
    pub spans: usize,
    pub run: RuleRun,
    /// Per violation, in order: its span ids that exist in the trace.
    pub witnesses: Vec<Vec<Witness>>,
    /// The live path's prefilter would not run the rule on this trace
    /// (the trial runs it anyway, for its logs).
    pub prefilter_skips: bool,
}

/// Runs `rule` on every input in order, on one sandbox; stops before the next
/// input once `stop_at` has passed.
pub fn run(engine: &Arc<RuleEngine>, rule: Arc<LoadedRule>, inputs: &[Input], stop_at: Option<Instant>) -> Vec<Tried> {
    let mut sandbox = Sandbox::new(engine.clone(), vec![rule.clone()]);
    let mut tried = Vec::with_capacity(inputs.len());
    for input in inputs {
        if stop_at.is_some_and(|stop_at| Instant::now() >= stop_at) {
            break;
        }
        let runs = match input.window {
            Some(bounds) => sandbox.evaluate_window(&input.trace, bounds),
            None => sandbox.evaluate(&input.trace),
        };
        let Some(run) = runs.into_iter().next() else { continue };
        let witness = |id: &String| {
            let mut span_id = [0u8; 8];
            hex::decode_to_slice(id, &mut span_id).ok()?;
            let span = input.trace.find(&span_id)?;
            Some(Witness { span_id: id.clone(), name: span.name.clone(), service: span.resource.service.clone() })
        };
        let witnesses = run.outcome.violations().iter().map(|violation| violation.span_ids.iter().filter_map(witness).collect()).collect();
        tried.push(Tried {
            label: input.label.clone(),
            trace_id: hex::encode(input.trace.trace_id),
            spans: input.trace.spans.len(),
            run,
            witnesses,
            prefilter_skips: input.window.is_none() && !rule.may_fire(&input.trace),
        });
    }
    tried
}
