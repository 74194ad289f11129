//! JavaScript → a dynamically linked Javy rule module, validated.
//!
//! Steps: size check → form detection and rewrite (`source`) → [`super::codegen`]
//! (QuickJS bytecode compiled by the plugin itself, wrapped in a module of well under 1 KB
//! importing the plugin) → import/export validation → a trial start in a
//! fresh sandbox, so that a rule whose top level throws, loops or exports
//! something that is not a rule is refused here with its line and column.

use super::Outcome;
use super::codegen::{self, BytecodeError};
use super::engine::{LoadedRule, RuleEngine};
use super::sandbox::Sandbox;
use super::source::{self, Prepared};
use crate::model::rule::RuleMeta;
use serde::Serialize;
use std::sync::Arc;

/// A compiled, validated rule: what a rule version stores.
#[derive(Clone, Debug)]
pub struct CompiledRule {
    /// The dynamically linked Javy module.
    pub wasm: Vec<u8>,
    /// The plugin snapshot the module was generated against.
    pub plugin_hash: String,
    pub meta: RuleMeta,
    pub prepared: Prepared,
}

/// Why a source was refused; positions are 1-based, in the tenant's source.
#[derive(Clone, Debug, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CompileError {
    #[error("rule source is {bytes} bytes; the limit is {limit}")]
    TooLarge { bytes: usize, limit: usize },
    #[error("{message} (line {line}, column {column})")]
    Syntax { message: String, line: u32, column: u32 },
    /// The module compiled but its top level failed or exported no rule.
    #[error("{message}{}", position(*line, *column))]
    Definition { message: String, line: Option<u32>, column: Option<u32> },
    #[error("internal compiler error: {0}")]
    Internal(String),
}

fn position(line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" (line {line}, column {column})"),
        (Some(line), None) => format!(" (line {line})"),
        _ => String::new(),
    }
}

impl CompileError {
    pub fn line_column(&self) -> (Option<u32>, Option<u32>) {
        match self {
            CompileError::Syntax { line, column, .. } => (Some(*line), Some(*column)),
            CompileError::Definition { line, column, .. } => (*line, *column),
            _ => (None, None),
        }
    }
}

/// Compiles and validates a rule: the source's bytecode from the engine's
/// plugin, the module around it compiled by wasmtime, a trial start (a few
/// ms to tens of ms; docs/BENCHMARKS.md). Run it off async workers.
pub fn compile(engine: &Arc<RuleEngine>, source_text: &str) -> Result<(CompiledRule, Arc<LoadedRule>), CompileError> {
    let limit = engine.limits().source_bytes;
    if source_text.len() > limit {
        return Err(CompileError::TooLarge { bytes: source_text.len(), limit });
    }
    let prepared = source::prepare(source_text).map_err(|error| CompileError::Syntax {
        message: error.message,
        line: error.line,
        column: error.column,
    })?;
    let wasm = generate(engine, &prepared)?;
    let (module, imports) = engine.load_module(&wasm).map_err(|error| CompileError::Internal(format!("{error:#}")))?;
    let placeholder = RuleMeta {
        form: String::new(),
        name: None,
        severity: "medium".into(),
        description: None,
        window: None,
        labels: Default::default(),
    };
    let loaded = Arc::new(LoadedRule { module, imports, meta: placeholder, prepared: Some(prepared.clone()) });
    let mut trial = Sandbox::new(engine.clone(), vec![loaded.clone()]);
    let meta = trial.describe(0).map_err(definition_error)?;
    drop(trial);
    crate::model::rule::check_labels(&meta.labels).map_err(|message| CompileError::Definition {
        message: format!("labels: {message}"),
        line: None,
        column: None,
    })?;
    // The module is already compiled and validated: only the metadata changes.
    let loaded = Arc::new(LoadedRule {
        module: loaded.module.clone(),
        imports: loaded.imports.clone(),
        meta: meta.clone(),
        prepared: Some(prepared.clone()),
    });
    Ok((CompiledRule { wasm, plugin_hash: engine.plugin_hash().to_string(), meta, prepared }, loaded))
}

fn generate(engine: &RuleEngine, prepared: &Prepared) -> Result<Vec<u8>, CompileError> {
    match codegen::bytecode(engine, prepared.code.as_bytes()) {
        Ok(bytecode) => Ok(codegen::module(&bytecode)),
        Err(BytecodeError::Source(text)) => Err(match quickjs_error(&text) {
            Some((message, line, column)) => {
                let (line, column) = prepared.original_position(line, column);
                CompileError::Syntax { message, line, column }
            }
            None => CompileError::Internal(text),
        }),
        Err(BytecodeError::Sandbox(outcome)) => Err(CompileError::Definition {
            message: format!("compiling the source exceeded its budget: {}", outcome.kind()),
            line: None,
            column: None,
        }),
    }
}

/// Reads `SyntaxError: <message>\n    at function.mjs:L:C` out of the plugin's compile error.
fn quickjs_error(text: &str) -> Option<(String, u32, u32)> {
    let start = text.find("Error: ").map(|at| text[..at].rfind(' ').map(|space| space + 1).unwrap_or(0))?;
    let body = &text[start..];
    let message = body.lines().next()?.trim().to_string();
    let at = body.find("function.mjs:")?;
    let mut numbers = body[at + "function.mjs:".len()..].split(|c: char| !c.is_ascii_digit()).filter(|part| !part.is_empty());
    let line = numbers.next()?.parse().ok()?;
    let column = numbers.next()?.parse().ok()?;
    Some((message, line, column))
}

fn definition_error(outcome: Outcome) -> CompileError {
    match outcome {
        Outcome::Exception { name, message, line, column } => {
            CompileError::Definition { message: format!("{name}: {message}"), line, column }
        }
        Outcome::OutOfFuel => CompileError::Definition { message: "the rule's top level ran out of fuel".into(), line: None, column: None },
        Outcome::Deadline => {
            CompileError::Definition { message: "the rule's top level exceeded the deadline".into(), line: None, column: None }
        }
        Outcome::MemoryCap { .. } => {
            CompileError::Definition { message: "the rule's top level exceeded the memory cap".into(), line: None, column: None }
        }
        Outcome::StackOverflow => {
            CompileError::Definition { message: "the rule's top level overflowed the stack".into(), line: None, column: None }
        }
        other => CompileError::Definition { message: format!("the rule failed to start: {}", other.kind()), line: None, column: None },
    }
}

#[cfg(test)]
mod tests {
    use super::quickjs_error;

    #[test]
    fn reads_quickjs_positions() {
        let text = "Failed to compile source code: SyntaxError: unexpected token in expression: ')'\n    at function.mjs:3:12\n";
        assert_eq!(quickjs_error(text), Some(("SyntaxError: unexpected token in expression: ')'".into(), 3, 12)));
        assert_eq!(quickjs_error("something else"), None);
    }
}
