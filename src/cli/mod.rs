//! The `fluo` command line: argument parsing and `rules test` of one rule on
//! given traces. A directory of rules with expectations is [`suite`]; rules
//! as code against a server's API is [`apply`]. `serve` is handed to
//! [`crate::config`] and the server wiring.
//!
//! Exit codes of `fluo rules test RULE --trace …`: 0 the rule ran on every
//! trace (whatever the verdict), 2 the rule does not compile, 3 a trace file
//! is unreadable, 4 the rule failed on at least one trace (exception, fuel,
//! memory, deadline…).

pub mod apply;
pub mod suite;

use crate::model::otlp;
use crate::model::trace::Trace;
use crate::rules::{self, CompileError, Limits, Outcome, RuleEngine, RuleRun};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "fluo", version, about = "Behavioral assurance for OpenTelemetry traces")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the FLUO server on an embedded sled database.
    Serve(crate::config::ServeArgs),
    /// Work with rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Print the API's OpenAPI document (the one served at /api/v1/openapi.json).
    Openapi,
    /// Create a demo tenant with the rule templates on a running server and send
    /// it a stream of realistic traces, some of which break the rules.
    Demo(crate::demo::DemoArgs),
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Run a rule on OTLP/JSON traces exactly as the server would (a file and
    /// `--trace`), or every rule of a directory against the cases beside it
    /// (a directory; docs/rules.md, "Rules as code").
    Test(TestArgs),
    /// Make a server's rules match a directory of rules, through its API.
    Apply(apply::ApplyArgs),
}

#[derive(Args)]
pub struct TestArgs {
    /// A rule (JavaScript), or a directory of rules (`NAME.js`) with their
    /// cases (`NAME.test.json`).
    pub rule: PathBuf,
    /// With a rule file: an OTLP/JSON file (ExportTraceServiceRequest, as
    /// written by OpenTelemetry file exporters); repeat for more. Spans are
    /// grouped by trace id.
    #[arg(long = "trace")]
    pub traces: Vec<PathBuf>,
    /// Print the result as JSON (shape in docs/rules.md, "fluo rules test").
    #[arg(long)]
    pub json: bool,
    /// With a directory: also write the results as JUnit XML to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Fuel per rule call.
    #[arg(long, default_value_t = Limits::default().fuel_per_call)]
    pub fuel: u64,
}

#[derive(Serialize)]
struct Report {
    rule: crate::model::rule::RuleMeta,
    plugin_hash: String,
    compile_ms: f64,
    traces: Vec<TraceReport>,
}

#[derive(Serialize)]
struct TraceReport {
    file: String,
    trace_id: String,
    spans: usize,
    #[serde(flatten)]
    run: RuleRun,
    witnesses: Vec<Witness>,
    /// The live path's prefilter would not run the rule on this trace.
    prefilter_skips: bool,
}

#[derive(Serialize)]
struct Witness {
    span_id: String,
    name: String,
}

#[derive(Serialize)]
struct ErrorReport<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
pub(super) struct ErrorBody<'a> {
    kind: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<u32>,
}

impl<'a> ErrorBody<'a> {
    fn new(kind: &'a str, message: String) -> ErrorBody<'a> {
        ErrorBody { kind, message, file: None, line: None, column: None }
    }

    fn in_file(mut self, file: &str) -> ErrorBody<'a> {
        self.file = Some(file.to_string());
        self
    }
}

/// Reads a rule's source, or reports why not (exit code 2).
pub(super) fn read_rule(json: bool, path: &std::path::Path) -> Result<String, ExitCode> {
    let file = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => {
            String::from_utf8(bytes).map_err(|_| fail(json, 2, ErrorBody::new("io", "the rule is not UTF-8 text".into()).in_file(&file)))
        }
        Err(error) => Err(fail(json, 2, ErrorBody::new("io", format!("cannot read the rule: {error}")).in_file(&file))),
    }
}

/// Reads OTLP/JSON trace files into traces (grouped by trace id; a file
/// without spans is one empty trace), or reports why not (exit code 3).
pub(super) fn read_traces(json: bool, paths: &[PathBuf]) -> Result<Vec<(String, Trace)>, ExitCode> {
    let mut traces = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        let grouped = trace_file(path).map_err(|(message, position)| {
            let body = ErrorBody::new("trace_file", message).in_file(&file);
            fail(json, 3, ErrorBody { line: position.map(|(line, _)| line), column: position.map(|(_, column)| column), ..body })
        })?;
        if grouped.is_empty() {
            traces.push((file.clone(), Trace::new([0; 16], Vec::new())));
        }
        traces.extend(grouped.into_iter().map(|trace| (file.clone(), trace)));
    }
    Ok(traces)
}

/// The traces of one OTLP/JSON file, grouped by trace id; or why not, with
/// the line and column of a JSON error.
pub(super) fn trace_file(path: &std::path::Path) -> Result<Vec<Trace>, (String, Option<(u32, u32)>)> {
    let bytes = std::fs::read(path).map_err(|error| (format!("cannot read the trace file: {error}"), None))?;
    let request = otlp::from_json(&bytes).map_err(|error| {
        (format!("not an OTLP/JSON ExportTraceServiceRequest: {error}"), Some((error.line() as u32, error.column() as u32)))
    })?;
    let converted = otlp::convert(request);
    if converted.rejected_total() > 0 {
        return Err((format!("invalid spans: {}", converted.rejection_message()), None));
    }
    Ok(Trace::group(converted.spans))
}

/// Where and why a rule does not compile.
fn compile_error(error: &CompileError, file: &str) -> ErrorBody<'static> {
    let (line, column) = error.line_column();
    let kind = match error {
        CompileError::TooLarge { .. } => "too_large",
        CompileError::Syntax { .. } => "syntax",
        CompileError::Definition { .. } => "definition",
        CompileError::Internal(_) => "internal",
    };
    let message = match error {
        CompileError::Syntax { message, .. } | CompileError::Definition { message, .. } => message.clone(),
        other => other.to_string(),
    };
    ErrorBody { kind, message, file: Some(file.to_string()), line, column }
}

/// Starts the rule engine, or reports why not (exit code 4).
pub(super) fn start_engine(json: bool, limits: Limits) -> Result<std::sync::Arc<RuleEngine>, ExitCode> {
    RuleEngine::new(limits).map_err(|error| fail(json, 4, ErrorBody::new("sandbox", format!("cannot start the rule engine: {error:#}"))))
}

pub(super) fn fail(json: bool, code: u8, body: ErrorBody<'_>) -> ExitCode {
    if json {
        println!("{}", serde_json::to_string_pretty(&ErrorReport { error: body }).expect("serializable"));
    } else {
        let place = match (&body.file, body.line, body.column) {
            (Some(file), Some(line), Some(column)) => format!("{file}:{line}:{column}: "),
            (Some(file), Some(line), None) => format!("{file}:{line}: "),
            (Some(file), _, _) => format!("{file}: "),
            _ => String::new(),
        };
        eprintln!("error: {place}{}", body.message);
    }
    ExitCode::from(code)
}

pub fn rules_test(args: TestArgs) -> ExitCode {
    let json = args.json;
    if args.rule.is_dir() {
        if !args.traces.is_empty() {
            return fail(
                json,
                3,
                ErrorBody::new("usage", "--trace goes with a rule file; a directory's traces are named by its cases".into()),
            );
        }
        return suite::run(&args);
    }
    if args.traces.is_empty() {
        return fail(json, 3, ErrorBody::new("usage", "give at least one --trace FILE to run the rule on".into()));
    }
    if args.junit.is_some() {
        return fail(json, 3, ErrorBody::new("usage", "--junit goes with a directory of rules and cases".into()));
    }
    let rule_file = args.rule.display().to_string();
    let source = match read_rule(json, &args.rule) {
        Ok(source) => source,
        Err(code) => return code,
    };
    let traces = match read_traces(json, &args.traces) {
        Ok(traces) => traces,
        Err(code) => return code,
    };
    let engine = match start_engine(json, Limits { fuel_per_call: args.fuel, ..Limits::default() }) {
        Ok(engine) => engine,
        Err(code) => return code,
    };
    let compile_started = Instant::now();
    let (compiled, loaded) = match rules::compile::compile(&engine, &source) {
        Ok(result) => result,
        Err(error) => return fail(json, 2, compile_error(&error, &rule_file)),
    };
    let compile_ms = compile_started.elapsed().as_secs_f64() * 1e3;
    let inputs = crate::pipeline::trial::inputs(&compiled.meta, traces);
    let mut any_failed = false;
    let mut reports = Vec::new();
    for tried in crate::pipeline::trial::run(&engine, loaded, &inputs, None) {
        any_failed |= !matches!(tried.run.outcome, Outcome::Ok { .. });
        let witnesses = tried.witnesses.into_iter().flatten().map(|w| Witness { span_id: w.span_id, name: w.name }).collect();
        reports.push(TraceReport {
            file: tried.label,
            trace_id: tried.trace_id,
            spans: tried.spans,
            run: tried.run,
            witnesses,
            prefilter_skips: tried.prefilter_skips,
        });
    }
    let report = Report { rule: compiled.meta, plugin_hash: compiled.plugin_hash, compile_ms, traces: reports };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("serializable"));
    } else {
        print_report(&report);
    }
    if any_failed { ExitCode::from(4) } else { ExitCode::SUCCESS }
}

fn print_report(report: &Report) {
    let rule = &report.rule;
    println!(
        "rule {} ({} form, default severity {}) compiled in {:.0} ms",
        rule.name.as_deref().unwrap_or("(unnamed)"),
        rule.form,
        rule.severity,
        report.compile_ms
    );
    for trace in &report.traces {
        let verdict = match &trace.run.outcome {
            Outcome::Ok { violations } if violations.is_empty() => "no violations".to_string(),
            Outcome::Ok { violations } => format!("{} violation(s)", violations.len()),
            other => format!("FAILED: {}", describe_failure(other)),
        };
        println!(
            "trace {} ({}, {} spans): {verdict}  [fuel {}, {:.3} ms{}]",
            trace.trace_id,
            trace.file,
            trace.spans,
            trace.run.fuel_used,
            trace.run.elapsed.as_secs_f64() * 1e3,
            if trace.prefilter_skips { "; the prefilter skips this trace" } else { "" }
        );
        for violation in trace.run.outcome.violations() {
            println!("  [{}] {}", violation.severity.as_str(), violation.message);
            for id in &violation.span_ids {
                let name = trace.witnesses.iter().find(|w| &w.span_id == id).map(|w| w.name.as_str()).unwrap_or("?");
                println!("      span {id}  {name}");
            }
        }
        for log in &trace.run.logs {
            println!("  log {}: {}", log.level, log.message);
        }
    }
}

pub fn describe_failure(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Ok { .. } => "ok".into(),
        Outcome::OutOfFuel => "out of fuel".into(),
        Outcome::Deadline => "deadline exceeded".into(),
        Outcome::MemoryCap { requested_bytes } => format!("memory cap (asked for {requested_bytes} bytes)"),
        Outcome::StackOverflow => "stack overflow".into(),
        Outcome::OutputCap { bytes } => format!("output cap ({bytes} bytes)"),
        Outcome::Exception { name, message, line, column } => match (line, column) {
            (Some(line), Some(column)) => format!("{name}: {message} (line {line}, column {column})"),
            _ => format!("{name}: {message}"),
        },
        Outcome::Trap { message } => format!("trap: {message}"),
    }
}
