//! `fluo rules test DIR`: every rule of a directory (`NAME.js`) against the
//! cases beside it (`NAME.test.json`: fixture traces, each with `expect:
//! violation | none` and optional witness span names). Prints one line per
//! case, optionally writes JUnit XML, and exits non-zero when a case does not
//! hold, so a CI job can gate on it.
//!
//! Exit codes, the first that applies: 2 a rule does not compile or declares
//! a name other than its file's, 3 a cases or trace file is unreadable (or
//! there is no rule), 4 a rule failed on a case's trace (exception, fuel…),
//! 1 a case's expectation did not hold, 0 every case held.

use super::{ErrorBody, describe_failure, fail, start_engine};
use crate::pipeline::trial;
use crate::rules::{self, Limits, Outcome};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A cases file: `NAME.test.json` beside `NAME.js`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    cases: Vec<CaseSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    /// Shown in reports; default: the trace file's name.
    name: Option<String>,
    /// An OTLP/JSON file, relative to the directory. A trace rule's case holds
    /// one trace; a window rule's spans are all one window.
    trace: PathBuf,
    expect: Expect,
    /// Span names that must be among the violations' witnesses.
    #[serde(default)]
    witnesses: Vec<String>,
}

#[derive(Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Violation,
    None,
}

/// How one case ended.
#[derive(Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum CaseResult {
    Passed,
    /// The expectation did not hold.
    Failed {
        message: String,
    },
    /// The rule did not finish on the trace, or the trace file is unusable.
    Error {
        message: String,
    },
}

#[derive(Serialize)]
struct CaseReport {
    name: String,
    #[serde(flatten)]
    result: CaseResult,
    #[serde(skip)]
    elapsed: Duration,
}

/// One rule file and how it fared.
#[derive(Serialize)]
struct RuleReport {
    file: String,
    name: String,
    /// Why the rule or its cases could not be run at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// No cases file beside the rule.
    no_cases: bool,
    cases: Vec<CaseReport>,
}

#[derive(Serialize)]
struct SuiteReport {
    rules: Vec<RuleReport>,
    passed: usize,
    failed: usize,
    errors: usize,
}

/// The exit code that wins: compile 2, unreadable 3, failure 4, mismatch 1, 0.
fn worse(a: u8, b: u8) -> u8 {
    let rank = |code: u8| [0, 1, 4, 3, 2].iter().position(|c| *c == code).unwrap_or(0);
    if rank(b) > rank(a) { b } else { a }
}

/// The rule files of `dir`, by name.
pub(super) fn rule_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "js"))
        .collect();
    files.sort();
    Ok(files)
}

/// The rule's name: its file's name without `.js`.
pub(super) fn rule_name(file: &Path) -> String {
    file.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default()
}

pub fn run(args: &super::TestArgs) -> ExitCode {
    let json = args.json;
    let dir = &args.rule;
    let files = match rule_files(dir) {
        Ok(files) if files.is_empty() => {
            return fail(json, 3, ErrorBody::new("io", "no rules (*.js) in the directory".into()).in_file(&dir.display().to_string()));
        }
        Ok(files) => files,
        Err(error) => {
            return fail(json, 3, ErrorBody::new("io", format!("cannot read the directory: {error}")).in_file(&dir.display().to_string()));
        }
    };
    let engine = match start_engine(json, Limits { fuel_per_call: args.fuel, ..Limits::default() }) {
        Ok(engine) => engine,
        Err(code) => return code,
    };
    let mut code = 0u8;
    let mut rules = Vec::new();
    for file in files {
        let (report, rule_code) = run_rule(&engine, dir, &file);
        code = worse(code, rule_code);
        rules.push(report);
    }
    let count = |wanted: fn(&CaseResult) -> bool| rules.iter().flat_map(|rule| &rule.cases).filter(|case| wanted(&case.result)).count();
    let report = SuiteReport {
        passed: count(|result| matches!(result, CaseResult::Passed)),
        failed: count(|result| matches!(result, CaseResult::Failed { .. })),
        errors: count(|result| matches!(result, CaseResult::Error { .. })) + rules.iter().filter(|rule| rule.error.is_some()).count(),
        rules,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("serializable"));
    } else {
        print_suite(&report);
    }
    if let Some(path) = &args.junit {
        let written = junit(&report)
            .to_string()
            .map_err(|error| error.to_string())
            .and_then(|xml| std::fs::write(path, xml).map_err(|error| error.to_string()));
        if let Err(error) = written {
            return fail(
                json,
                3,
                ErrorBody::new("io", format!("cannot write the JUnit report: {error}")).in_file(&path.display().to_string()),
            );
        }
    }
    ExitCode::from(code)
}

/// Compiles one rule and runs its cases; the exit code it calls for.
fn run_rule(engine: &std::sync::Arc<rules::RuleEngine>, dir: &Path, file: &Path) -> (RuleReport, u8) {
    let name = rule_name(file);
    let mut report = RuleReport { file: file.display().to_string(), name: name.clone(), error: None, no_cases: false, cases: Vec::new() };
    let source = match std::fs::read(file).map(String::from_utf8) {
        Ok(Ok(source)) => source,
        Ok(Err(_)) => return (RuleReport { error: Some("the rule is not UTF-8 text".into()), ..report }, 2),
        Err(error) => return (RuleReport { error: Some(format!("cannot read the rule: {error}")), ..report }, 3),
    };
    let (compiled, loaded) = match rules::compile::compile(engine, &source) {
        Ok(done) => done,
        Err(error) => {
            let body = super::compile_error(&error, &report.file);
            let place = match (body.line, body.column) {
                (Some(line), Some(column)) => format!("line {line}, column {column}: "),
                _ => String::new(),
            };
            return (RuleReport { error: Some(format!("does not compile: {place}{}", body.message)), ..report }, 2);
        }
    };
    if let Some(declared) = compiled.meta.declared_name().filter(|declared| *declared != name) {
        let message =
            format!("the source declares name \"{declared}\" but the file is {name}.js: a rule has one name (rename one of them)");
        return (RuleReport { error: Some(message), ..report }, 2);
    }
    let cases_path = dir.join(format!("{name}.test.json"));
    let cases: CasesFile = match std::fs::read(&cases_path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return (RuleReport { no_cases: true, ..report }, 0),
        Err(error) => return (RuleReport { error: Some(format!("cannot read {}: {error}", cases_path.display())), ..report }, 3),
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(cases) => cases,
            Err(error) => {
                let message = format!("{}:{}:{}: not a cases file: {error}", cases_path.display(), error.line(), error.column());
                return (RuleReport { error: Some(message), ..report }, 3);
            }
        },
    };
    let mut code = 0u8;
    for case in cases.cases {
        let case_name = case.name.clone().unwrap_or_else(|| case.trace.display().to_string());
        let started = Instant::now();
        let (result, case_code) = run_case(engine, loaded.clone(), &compiled.meta, dir, &case);
        code = worse(code, case_code);
        report.cases.push(CaseReport { name: case_name, result, elapsed: started.elapsed() });
    }
    (report, code)
}

fn run_case(
    engine: &std::sync::Arc<rules::RuleEngine>,
    loaded: std::sync::Arc<rules::LoadedRule>,
    meta: &crate::model::rule::RuleMeta,
    dir: &Path,
    case: &CaseSpec,
) -> (CaseResult, u8) {
    let path = dir.join(&case.trace);
    // Quiet: the reason is reported with the case, not on stderr.
    let traces = match read_traces_quietly(&path) {
        Ok(traces) => traces,
        Err(message) => return (CaseResult::Error { message }, 3),
    };
    if meta.window.is_none() && traces.len() != 1 {
        let message = format!("{} holds {} traces; a case of a trace rule holds one", path.display(), traces.len());
        return (CaseResult::Error { message }, 3);
    }
    let inputs = trial::inputs(meta, traces);
    let Some(tried) = trial::run(engine, loaded, &inputs, None).into_iter().next() else {
        return (CaseResult::Error { message: "the rule did not run".into() }, 4);
    };
    let violations = match &tried.run.outcome {
        Outcome::Ok { violations } => violations,
        other => return (CaseResult::Error { message: format!("the rule failed: {}", describe_failure(other)) }, 4),
    };
    let witnesses: Vec<&str> = tried.witnesses.iter().flatten().map(|witness| witness.name.as_str()).collect();
    let failed = |message: String| (CaseResult::Failed { message }, 1);
    match case.expect {
        Expect::None if !violations.is_empty() => {
            failed(format!("expected no violation, found {}: {}", violations.len(), violations[0].message))
        }
        Expect::Violation if violations.is_empty() => {
            let why = if tried.run.when_failed { " (its `when` did not hold)" } else { "" };
            failed(format!("expected a violation, found none{why}"))
        }
        Expect::Violation => match case.witnesses.iter().find(|wanted| !witnesses.contains(&wanted.as_str())) {
            Some(missing) => failed(format!("expected witness span \"{missing}\"; the violations name {witnesses:?}")),
            None => (CaseResult::Passed, 0),
        },
        Expect::None => (CaseResult::Passed, 0),
    }
}

/// [`super::trace_file`] labelled for the case's report; its failure as text.
fn read_traces_quietly(path: &Path) -> Result<Vec<(String, crate::model::trace::Trace)>, String> {
    let label = path.display().to_string();
    match super::trace_file(path) {
        Ok(traces) => Ok(traces.into_iter().map(|trace| (label.clone(), trace)).collect()),
        Err((message, Some((line, column)))) => Err(format!("{label}:{line}:{column}: {message}")),
        Err((message, None)) => Err(format!("{label}: {message}")),
    }
}

fn print_suite(report: &SuiteReport) {
    for rule in &report.rules {
        println!("{} ({})", rule.file, rule.name);
        if let Some(error) = &rule.error {
            println!("  ERROR  {error}");
        }
        if rule.no_cases {
            println!("  (no cases: add {}.test.json beside it)", rule.name);
        }
        for case in &rule.cases {
            match &case.result {
                CaseResult::Passed => println!("  ok     {}", case.name),
                CaseResult::Failed { message } => println!("  FAIL   {}: {message}", case.name),
                CaseResult::Error { message } => println!("  ERROR  {}: {message}", case.name),
            }
        }
    }
    let without = report.rules.iter().filter(|rule| rule.no_cases).count();
    println!(
        "{} cases: {} passed, {} failed, {} errors; {} rules, {without} without cases",
        report.passed + report.failed + report.errors,
        report.passed,
        report.failed,
        report.errors,
        report.rules.len()
    );
}

/// The report as JUnit XML: one suite per rule, one test case per case (a
/// rule that cannot run is one errored case; one without cases, a skipped one).
fn junit(report: &SuiteReport) -> Report {
    let mut junit = Report::new("fluo rules test");
    for rule in &report.rules {
        let mut suite = TestSuite::new(rule.file.as_str());
        if let Some(error) = &rule.error {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(error.as_str());
            suite.add_test_case(TestCase::new("rule", status));
        }
        if rule.no_cases {
            let mut status = TestCaseStatus::skipped();
            status.set_message("no cases file beside the rule");
            suite.add_test_case(TestCase::new("rule", status));
        }
        for case in &rule.cases {
            let status = match &case.result {
                CaseResult::Passed => TestCaseStatus::success(),
                CaseResult::Failed { message } | CaseResult::Error { message } => {
                    let kind =
                        if matches!(case.result, CaseResult::Failed { .. }) { NonSuccessKind::Failure } else { NonSuccessKind::Error };
                    let mut status = TestCaseStatus::non_success(kind);
                    status.set_message(message.as_str());
                    status
                }
            };
            let mut test_case = TestCase::new(case.name.as_str(), status);
            test_case.set_classname(rule.name.as_str()).set_time(case.elapsed);
            suite.add_test_case(test_case);
        }
        junit.add_test_suite(suite);
    }
    junit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_exit_code_wins() {
        assert_eq!([0, 1, 4, 3, 2].into_iter().fold(0, worse), 2);
        assert_eq!([1, 0, 4, 1].into_iter().fold(0, worse), 4);
        assert_eq!([0, 1, 0].into_iter().fold(0, worse), 1);
    }

    #[test]
    fn a_cases_file_refuses_unknown_fields_and_expectations() {
        let good: CasesFile = serde_json::from_str(r#"{"cases":[{"trace":"a.json","expect":"none"}]}"#).unwrap();
        assert!(good.cases[0].expect == Expect::None && good.cases[0].witnesses.is_empty());
        assert!(serde_json::from_str::<CasesFile>(r#"{"cases":[{"trace":"a.json","expect":"maybe"}]}"#).is_err());
        assert!(serde_json::from_str::<CasesFile>(r#"{"cases":[{"trace":"a.json","expect":"none","expected":1}]}"#).is_err());
    }
}
