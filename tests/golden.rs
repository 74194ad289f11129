//! Golden rule cases: every folder under tests/fixtures/rules/ holds a rule, an
//! OTLP/JSON trace and the expected result; each is compiled with Javy and run
//! in the sandbox exactly as the server and `fluo rules test` do.

use fluo::model::otlp;
use fluo::model::trace::Trace;
use fluo::pipeline::trial;
use fluo::rules::{Limits, Outcome, RuleEngine, compile::compile};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules");
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(&root).expect("fixtures folder").map(|entry| entry.expect("entry").path()).filter(|path| path.is_dir()).collect();
    cases.sort();
    cases
}

fn load_trace(path: &Path) -> Trace {
    let request = otlp::from_json(&std::fs::read(path).expect("trace.json")).expect("OTLP/JSON");
    let converted = otlp::convert(request);
    assert_eq!(converted.rejected_total(), 0, "{}: rejected spans", path.display());
    let mut traces = Trace::group(converted.spans);
    assert!(traces.len() <= 1, "{}: one trace per case", path.display());
    traces.pop().unwrap_or_else(|| Trace::new([0; 16], Vec::new()))
}

/// Compares one case; returns whether the live path's prefilter would skip
/// the rule on the case's trace, or a description of the mismatch.
fn check(engine: &Arc<RuleEngine>, case: &Path) -> Result<bool, String> {
    let source = std::fs::read_to_string(case.join("rule.js")).map_err(|e| e.to_string())?;
    let expected: Value =
        serde_json::from_slice(&std::fs::read(case.join("expected.json")).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let trace = load_trace(&case.join("trace.json"));
    let (_, loaded) = compile(engine, &source).map_err(|error| format!("compile error: {error}"))?;
    let input = trial::Input { label: case.display().to_string(), trace, window: None };
    let tried = trial::run(engine, loaded, std::slice::from_ref(&input), None).pop().expect("one run");
    let run = &tried.run;
    let want_outcome = expected["outcome"].as_str().expect("outcome");
    // With the prefilter on (the live path), the case must give the same verdict.
    let clean = want_outcome == "ok" && expected["violations"].as_array().is_some_and(|violations| violations.is_empty());
    if tried.prefilter_skips && !clean {
        return Err(format!("the prefilter would skip the rule, but the case expects {want_outcome} with violations"));
    }
    if run.outcome.kind() != want_outcome {
        return Err(format!("outcome {:?}, expected {want_outcome}", run.outcome));
    }
    match &run.outcome {
        Outcome::Ok { violations } => {
            let want = expected["violations"].as_array().expect("violations");
            if violations.len() != want.len() {
                return Err(format!("{} violations, expected {}: {violations:?}", violations.len(), want.len()));
            }
            for ((got, witnesses), want) in violations.iter().zip(&tried.witnesses).zip(want) {
                if got.severity.as_str() != want["severity"].as_str().expect("severity") {
                    return Err(format!("severity {:?}, expected {}", got.severity, want["severity"]));
                }
                if let Some(message) = want["message"].as_str()
                    && got.message != message
                {
                    return Err(format!("message {:?}, expected {message:?}", got.message));
                }
                if let Some(part) = want["message_contains"].as_str()
                    && !got.message.contains(part)
                {
                    return Err(format!("message {:?} lacks {part:?}", got.message));
                }
                if witnesses.len() != got.span_ids.len() {
                    return Err(format!("span ids {:?} name spans the trace lacks", got.span_ids));
                }
                let mut names: Vec<String> = witnesses.iter().map(|witness| witness.name.clone()).collect();
                let mut want_names: Vec<String> =
                    want["spans"].as_array().expect("spans").iter().map(|n| n.as_str().expect("name").to_string()).collect();
                names.sort();
                want_names.sort();
                if names != want_names {
                    return Err(format!("witnesses {names:?}, expected {want_names:?}"));
                }
            }
        }
        Outcome::Exception { message, line, .. } => {
            if let Some(part) = expected["message_contains"].as_str()
                && !message.contains(part)
            {
                return Err(format!("message {message:?} lacks {part:?}"));
            }
            if let Some(want_line) = expected["line"].as_u64()
                && *line != Some(want_line as u32)
            {
                return Err(format!("line {line:?}, expected {want_line}"));
            }
        }
        _ => {}
    }
    Ok(tried.prefilter_skips)
}

#[test]
fn golden_rule_cases() {
    let cases = cases();
    assert!(cases.len() >= 30, "at least 30 golden cases, found {}", cases.len());
    let engine = RuleEngine::new(Limits::default()).expect("engine");
    // Compiling is the slow part (javy-codegen compiles the plugin per call): two workers.
    let results: Vec<Result<bool, String>> = std::thread::scope(|scope| {
        let chunks: Vec<Vec<PathBuf>> = (0..2).map(|worker| cases.iter().skip(worker).step_by(2).cloned().collect()).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let engine = engine.clone();
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|case| {
                            check(&engine, case).map_err(|why| format!("{}: {why}", case.file_name().unwrap_or_default().to_string_lossy()))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|handle| handle.join().expect("worker")).collect()
    });
    let failures: Vec<&String> = results.iter().filter_map(|result| result.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.iter().map(|failure| failure.as_str()).collect::<Vec<_>>().join("\n")
    );
    // The prefilter's path is exercised: some clean cases are ones it skips.
    let skipped = results.iter().filter(|result| matches!(result, Ok(true))).count();
    eprintln!("{skipped} of {} golden cases are skipped by the prefilter (each expects no violation)", cases.len());
    assert!(skipped > 0);
}
