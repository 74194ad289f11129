//! Trying rules out without storing them: the template gallery, the compile
//! check an editor calls as one types, a test of any source on given traces,
//! and a backtest of a stored version (a draft too) or of an unsaved source on
//! the tenant's retained traces, with each trace's verdict.
//!
//! Compiles and tests take the tenant's compile slot (queued fairly, see
//! [`super::slots`]); backtests take a backtest slot or are refused at once
//! (429 beyond the tenant's share, 503 when the server's are taken), both with
//! `Retry-After`. All the work runs on the blocking pool within a deadline.

use super::extract::{ApiJson, ApiPath, Read, Write};
use super::rules::{example_rule, find, find_version, unknown_version};
use super::slots::SlotError;
use super::{ApiError, ApiState, COMPILE_DEADLINE, ErrorBody, Items, bad, blocking, blocking_within, body, compile_slot, tenant};
use crate::auth::Scope;
use crate::model::rule::RuleMeta;
use crate::model::rule::Severity;
use crate::pipeline::trial;
use crate::rules::Outcome;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A rule template a tenant can start from.
#[derive(Serialize, ToSchema)]
pub struct TemplateInfo {
    id: &'static str,
    title: &'static str,
    source: &'static str,
}

/// The gallery of rule templates (the ones `fluo demo` installs).
#[utoipa::path(get, path = "/api/v1/rules/templates", operation_id = "list_rule_templates", tag = "rules", responses(
    (status = 200, description = "Templates", body = Items<TemplateInfo>)
))]
pub async fn templates(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    tenant(&state, &headers, Scope::Read)?;
    let items = crate::rules::templates::TEMPLATES
        .iter()
        .map(|template| TemplateInfo { id: template.id, title: template.title, source: template.source })
        .collect();
    Ok(axum::Json(Items { items }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompileRequest {
    #[schema(max_length = 131072, example = example_rule)]
    source: String,
}

/// Why a source does not compile.
#[derive(Serialize, ToSchema)]
pub struct CompileProblem {
    message: String,
    /// 1-based, when known.
    line: Option<u32>,
    column: Option<u32>,
}

/// The verdict on a source: it compiles (and what it declares) or where it does not.
#[derive(Serialize, ToSchema)]
pub struct CompileReport {
    compiles: bool,
    /// What the rule declares about itself, when it compiles.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<RuleMeta>,
    /// Why it does not compile.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<CompileProblem>,
    compile_ms: f64,
}

/// Compiles a source without saving or running it: what an editor calls while
/// the rule is written. A source that does not compile is a normal answer
/// (`compiles: false` with the message and position), not an error status: the
/// check itself succeeded.
#[utoipa::path(post, path = "/api/v1/rules/compile", operation_id = "compile_rule", tag = "rules", request_body = CompileRequest, responses(
    (status = 200, description = "Whether it compiles: what the rule declares, or where it fails", body = CompileReport)
))]
pub async fn compile(
    State(state): State<ApiState>,
    Write(tenant): Write,
    ApiJson(request): ApiJson<CompileRequest>,
) -> Result<Response, ApiError> {
    let slot = compile_slot(&state, &tenant).await?;
    let report = blocking_within(COMPILE_DEADLINE, move || {
        let _slot = slot;
        let started = std::time::Instant::now();
        let result = crate::rules::compile::compile(&state.engine, &request.source);
        let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(match result {
            Ok((compiled, _)) => CompileReport { compiles: true, rule: Some(compiled.meta), error: None, compile_ms },
            Err(error @ crate::rules::compile::CompileError::Internal(_)) => return Err(ApiError::internal(error)),
            // Over the documented size: the request itself is refused.
            Err(error @ crate::rules::compile::CompileError::TooLarge { .. }) => return Err(bad(error.to_string())),
            Err(error) => {
                let (line, column) = error.line_column();
                let problem = CompileProblem { message: error.to_string(), line, column };
                CompileReport { compiles: false, rule: None, error: Some(problem), compile_ms }
            }
        })
    })
    .await?;
    Ok(axum::Json(report).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// JavaScript; need not be saved.
    #[schema(max_length = 131072, example = example_rule)]
    source: String,
    /// OTLP/JSON: one `ExportTraceServiceRequest` or an array of them (at most 100 traces in all).
    #[schema(example = json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
        "scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "payment.charge_card",
        "kind": 3, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000050000000"}]}]}]}))]
    traces: Value,
}

/// A span a violation points at.
#[derive(Serialize, ToSchema)]
pub struct WitnessRef {
    span_id: String,
    name: String,
    service: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TestViolation {
    message: String,
    severity: Severity,
    span_ids: Vec<String>,
    /// The rule's own grouping key, if it set one.
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    /// The span ids that exist in the trace, with their names.
    witnesses: Vec<WitnessRef>,
}

/// Where a rule threw.
#[derive(Serialize, ToSchema)]
pub struct RuleFailure {
    name: String,
    message: String,
    line: Option<u32>,
    column: Option<u32>,
}

/// One rule on one trace.
#[derive(Serialize, ToSchema)]
pub struct TraceResult {
    trace_id: String,
    spans: usize,
    /// `ok`, `out_of_fuel`, `deadline`, `memory_cap`, `stack_overflow`, `output_cap`, `exception` or `trap`.
    outcome: String,
    violations: Vec<TestViolation>,
    fuel_used: u64,
    elapsed_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<RuleFailure>,
    /// `violation`: the rule found violations. `held`: it applied (its
    /// `when` held, or it has none) and found none, so its `expect` held.
    /// `when_failed`: its `when` did not hold, so it did not apply. `error`:
    /// it did not finish (see `outcome`).
    #[schema(example = "held")]
    verdict: &'static str,
    /// True when the live path's prefilter would not run the rule on this
    /// trace: the trace cannot meet the condition derived from the rule's
    /// source (docs/rules.md, "The prefilter"). A trial runs the rule anyway.
    prefilter_skips: bool,
}

/// How long a backtest may run; its client gets 503 `busy` after it, and the
/// work stops at the next trace.
pub const BACKTEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// A trial's run in the API's shape.
fn result(tried: crate::pipeline::trial::Tried) -> TraceResult {
    let violations = tried
        .run
        .outcome
        .violations()
        .iter()
        .zip(tried.witnesses)
        .map(|(violation, witnesses)| TestViolation {
            message: violation.message.clone(),
            severity: violation.severity,
            span_ids: violation.span_ids.clone(),
            group: violation.group.clone(),
            witnesses: witnesses.into_iter().map(|w| WitnessRef { span_id: w.span_id, name: w.name, service: w.service }).collect(),
        })
        .collect();
    let error = match &tried.run.outcome {
        Outcome::Exception { name, message, line, column } => {
            Some(RuleFailure { name: name.clone(), message: message.clone(), line: *line, column: *column })
        }
        _ => None,
    };
    let verdict = match &tried.run.outcome {
        Outcome::Ok { violations } if !violations.is_empty() => "violation",
        Outcome::Ok { .. } if tried.run.when_failed => "when_failed",
        Outcome::Ok { .. } => "held",
        _ => "error",
    };
    TraceResult {
        verdict,
        trace_id: tried.trace_id,
        spans: tried.spans,
        outcome: tried.run.outcome.kind().into(),
        violations,
        fuel_used: tried.run.fuel_used,
        elapsed_us: tried.run.elapsed.as_micros() as u64,
        error,
        prefilter_skips: tried.prefilter_skips,
    }
}

#[derive(Serialize, ToSchema)]
pub struct TestReport {
    /// What the rule declared about itself.
    rule: RuleMeta,
    compile_ms: f64,
    traces: Vec<TraceResult>,
}

/// Runs a rule that need not be saved on OTLP/JSON traces.
#[utoipa::path(post, path = "/api/v1/rules/test", operation_id = "test_rule", tag = "rules", request_body = TestRequest, responses(
    (status = 200, description = "Per trace: outcome, violations, witnesses, fuel", body = TestReport),
    (status = 422, description = "The source does not compile", body = ErrorBody)
))]
pub async fn test(State(state): State<ApiState>, Write(tenant): Write, bytes: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    // Up to 1 MiB of JSON: parsed and converted on the blocking pool.
    let (source, traces) = blocking(move || {
        let request: TestRequest = body(bytes)?;
        let documents = match request.traces {
            Value::Array(items) => items,
            single => vec![single],
        };
        let mut spans = Vec::new();
        for (index, document) in documents.into_iter().enumerate() {
            let otlp: crate::model::otlp::ExportTraceServiceRequest =
                serde_json::from_value(document).map_err(|error| bad(format!("traces[{index}] is not OTLP/JSON: {error}")))?;
            spans.extend(crate::model::otlp::convert(otlp).spans);
        }
        let traces = crate::model::trace::Trace::group(spans);
        if traces.len() > 100 {
            return Err(bad("at most 100 traces per test"));
        }
        Ok((request.source, traces))
    })
    .await?;
    let slot = compile_slot(&state, &tenant).await?;
    let worker_state = state.clone();
    let report = blocking_within(COMPILE_DEADLINE, move || {
        let _slot = slot;
        let started = std::time::Instant::now();
        let (compiled, loaded) = match crate::rules::compile::compile(&worker_state.engine, &source) {
            Ok(done) => done,
            Err(error) => return Err(ApiError::compile(&error)),
        };
        let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
        let inputs = trial::inputs(&compiled.meta, traces.into_iter().map(|trace| (String::new(), trace)).collect());
        let results = trial::run(&worker_state.engine, loaded, &inputs, None).into_iter().map(result).collect();
        Ok(TestReport { rule: compiled.meta, compile_ms, traces: results })
    })
    .await?;
    Ok(axum::Json(report).into_response())
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestRequest {
    /// Default: the active version. Any stored version, a draft too.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 4294967295.0)]
    version: Option<u32>,
    /// Newest retained traces to run on: 1 to 10,000; default 1,000.
    #[schema(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceBacktestRequest {
    /// JavaScript; need not be saved.
    #[schema(max_length = 131072, example = example_rule)]
    source: String,
    /// Newest retained traces to run on: 1 to 10,000; default 1,000.
    #[schema(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct BacktestReport {
    /// The stored rule's id (absent for an unsaved source).
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    /// What the source declares about itself.
    rule: RuleMeta,
    traces_evaluated: usize,
    /// Verdict `violation`.
    traces_with_violations: usize,
    /// Verdict `held`: the rule applied and its `expect` held.
    traces_held: usize,
    /// Verdict `when_failed`: the rule's `when` did not hold.
    traces_when_failed: usize,
    /// Verdict `error`: the rule did not finish (fuel, deadline, exception…).
    traces_failed: usize,
    /// At most 100 traces: violations first, then errors, held and when_failed.
    results: Vec<TraceResult>,
}

/// Takes a backtest slot or says why not.
fn backtest_slot(state: &ApiState, tenant: &crate::model::tenant::TenantId) -> Result<super::slots::Slot, ApiError> {
    state.backtest_slots.try_acquire(tenant).map_err(|error| match error {
        SlotError::Tenant(_) => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", format!("{error}: wait for it to finish"))
                .retry_after(super::BUSY_RETRY_AFTER_SECS)
        }
        SlotError::Global(_) => ApiError::busy(format!("{error}; try again later")),
    })
}

fn backtest_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(bad("limit must be 1 to 10000"));
    }
    Ok(limit)
}

/// Runs a loaded trace rule on the tenant's newest `limit` retained traces
/// until `stop_at`, and sums up the verdicts.
fn backtest_report(
    state: &ApiState,
    tenant: &crate::model::tenant::TenantId,
    loaded: std::sync::Arc<crate::rules::LoadedRule>,
    meta: RuleMeta,
    limit: usize,
    stop_at: std::time::Instant,
) -> Result<BacktestReport, ApiError> {
    if meta.window.is_some() {
        return Err(bad("backtests run trace rules; test a window rule with POST /api/v1/rules/test"));
    }
    let inputs: Vec<trial::Input> = state
        .recent
        .newest(tenant, limit)?
        .into_iter()
        .filter(|(_, spans)| !spans.is_empty())
        .map(|(_, spans)| trial::Input {
            label: String::new(),
            trace: crate::model::trace::Trace::new(spans[0].trace_id, spans),
            window: None,
        })
        .collect();
    let mut results: Vec<TraceResult> = trial::run(&state.engine, loaded, &inputs, Some(stop_at)).into_iter().map(result).collect();
    let count = |verdict: &str| results.iter().filter(|result| result.verdict == verdict).count();
    let (violations, held, when_failed, failed) = (count("violation"), count("held"), count("when_failed"), count("error"));
    let evaluated = results.len();
    let rank = |verdict: &str| ["violation", "error", "held", "when_failed"].iter().position(|v| *v == verdict).unwrap_or(4);
    results.sort_by_key(|result| rank(result.verdict));
    results.truncate(100);
    Ok(BacktestReport {
        rule_id: None,
        version: None,
        rule: meta,
        traces_evaluated: evaluated,
        traces_with_violations: violations,
        traces_held: held,
        traces_when_failed: when_failed,
        traces_failed: failed,
        results,
    })
}

/// Runs a stored version (by default the active one; a draft too) over the
/// tenant's retained traces and reports, per trace, what it would have done.
/// The body is optional.
#[utoipa::path(post, path = "/api/v1/rules/{id}/backtest", operation_id = "backtest_rule", tag = "rules", params(("id" = String, Path, description = "Rule id")),
    request_body = Option<BacktestRequest>, responses(
    (status = 200, description = "What the version would have raised, and each trace's verdict", body = BacktestReport),
    (status = 404, description = "No such rule in this tenant", body = ErrorBody),
    (status = 422, description = "The rule has no such version", body = ErrorBody),
    (status = 429, description = "The tenant already runs a backtest (`too_many_requests`, with `Retry-After`)", body = ErrorBody),
    (status = 503, description = "The server already runs its backtests, or this one took too long (`busy`, with `Retry-After`)", body = ErrorBody)
))]
pub async fn backtest(
    State(state): State<ApiState>,
    Read(tenant): Read,
    ApiPath(id): ApiPath<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: BacktestRequest = match bytes {
        Ok(bytes) if bytes.is_empty() => BacktestRequest::default(),
        other => body(other)?,
    };
    let limit = backtest_limit(request.limit)?;
    let slot = backtest_slot(&state, &tenant)?;
    let stop_at = std::time::Instant::now() + BACKTEST_DEADLINE;
    let report = blocking_within(BACKTEST_DEADLINE, move || {
        let _slot = slot;
        let rule = find(&state, &tenant, &id)?;
        let number = match request.version {
            Some(number) => number,
            None if rule.active_version == 0 => return Err(bad("the rule has only drafts; name the version to backtest")),
            None => rule.active_version,
        };
        let (version, wasm) = match find_version(&state, &tenant, &rule, number) {
            Err(error) if request.version.is_some() && error.status == StatusCode::NOT_FOUND => return Err(unknown_version(number)),
            other => other?,
        };
        let loaded = crate::pipeline::active::load(&state.engine, &version, &wasm).map_err(ApiError::internal)?;
        let report = backtest_report(&state, &tenant, loaded, version.meta, limit, stop_at)?;
        Ok(BacktestReport { rule_id: Some(rule.id), version: Some(number), ..report })
    })
    .await?;
    Ok(axum::Json(report).into_response())
}

/// Compiles a source that need not be saved and runs it over the tenant's
/// retained traces, like a stored version's backtest.
#[utoipa::path(post, path = "/api/v1/rules/backtest", operation_id = "backtest_source", tag = "rules",
    request_body = SourceBacktestRequest, responses(
    (status = 200, description = "What the source would have raised, and each trace's verdict", body = BacktestReport),
    (status = 422, description = "The source does not compile", body = ErrorBody),
    (status = 429, description = "The tenant already runs a backtest (`too_many_requests`, with `Retry-After`)", body = ErrorBody),
    (status = 503, description = "The server already runs its backtests, every compiler stayed busy, or this took too long (`busy`, with `Retry-After`)", body = ErrorBody)
))]
pub async fn backtest_source(
    State(state): State<ApiState>,
    Write(tenant): Write,
    ApiJson(request): ApiJson<SourceBacktestRequest>,
) -> Result<Response, ApiError> {
    let limit = backtest_limit(request.limit)?;
    let slot = backtest_slot(&state, &tenant)?;
    let compile = compile_slot(&state, &tenant).await?;
    let stop_at = std::time::Instant::now() + BACKTEST_DEADLINE;
    let report = blocking_within(BACKTEST_DEADLINE, move || {
        let _slot = slot;
        let (compiled, loaded) = {
            let _compile = compile;
            crate::rules::compile::compile(&state.engine, &request.source).map_err(|error| ApiError::compile(&error))?
        };
        backtest_report(&state, &tenant, loaded, compiled.meta, limit, stop_at)
    })
    .await?;
    Ok(axum::Json(report).into_response())
}
