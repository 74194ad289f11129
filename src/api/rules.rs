//! Rule endpoints: create, update (a new immutable version each time), list,
//! get, versions, diff, activate any version (rollback), enable/disable,
//! delete; test a source on given traces and backtest a version on the
//! tenant's retained traces. After every change the tenant's active rule set is rebuilt from the
//! store, reusing already loaded modules, and handed to the evaluator.

use super::{ApiError, ApiState, bad, body, principal, tenant};
use crate::auth::{Scope, TenantId};
use crate::signals::RuleRef;
use crate::store::{RuleState, RuleVersion, rule_id};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such rule")
}

fn state_json(state: &RuleState) -> Value {
    json!({
        "id": state.id, "name": state.name, "active_version": state.active_version, "latest_version": state.latest_version,
        "enabled": state.enabled, "created_at": crate::signals::rfc3339(state.created_unix_ms),
        "updated_at": crate::signals::rfc3339(state.updated_unix_ms),
    })
}

fn version_json(version: &RuleVersion, with_source: bool) -> Value {
    let mut value = json!({
        "version": version.version, "message": version.message, "author": version.author,
        "created_at": crate::signals::rfc3339(version.created_unix_ms), "plugin_hash": version.plugin_hash,
        "form": version.meta.form, "severity": version.meta.severity, "description": version.meta.description,
    });
    if with_source {
        value["source"] = version.source.clone().into();
    }
    value
}

/// Runs blocking store work off the async workers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(ApiError::internal)?
}

/// Rebuilds `tenant`'s active rules from the store and hands them to the
/// evaluator. Versions generated against another plugin build are recompiled.
fn reload(state: &ApiState, tenant: &TenantId) -> Result<(), ApiError> {
    let current = state.pipeline.evaluator.rules(tenant);
    let mut rules = Vec::new();
    for (version, wasm) in state.store.active_versions_of(tenant.as_str()).map_err(ApiError::internal)? {
        let id = rule_id(tenant.as_str(), &version.rule);
        let reused = current
            .iter()
            .flat_map(|set| &set.rules)
            .find(|(rule, _)| rule.id == id && rule.version == version.version)
            .map(|(_, loaded)| loaded.clone());
        let loaded = match reused {
            Some(loaded) => loaded,
            None if version.plugin_hash == state.engine.plugin_hash() => state
                .engine
                .load_rule(&wasm, version.meta.clone(), crate::rules::source::prepare(&version.source).ok())
                .map_err(ApiError::internal)?,
            None => crate::rules::compile::compile(&state.engine, &version.source).map(|(_, loaded)| loaded).map_err(ApiError::internal)?,
        };
        rules.push((RuleRef { id, name: version.rule.clone(), version: version.version }, loaded));
    }
    state.pipeline.evaluator.set_rules(tenant, rules);
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewRule {
    name: String,
    source: String,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewVersion {
    source: String,
    message: Option<String>,
}

/// Compiles (at most two at once), stores (flushed) and activates a version.
async fn store_version(
    state: &ApiState,
    tenant: &TenantId,
    author: String,
    name: String,
    source: String,
    message: Option<String>,
) -> Result<Response, ApiError> {
    if message.as_ref().is_some_and(|message| message.len() > 1024) {
        return Err(bad("message must be at most 1024 bytes".into()));
    }
    let _slot = state.compile_slots.acquire().await.map_err(ApiError::internal)?;
    let engine = state.engine.clone();
    let compiled = blocking(move || Ok(crate::rules::compile::compile(&engine, &source).map(|(compiled, _)| (compiled, source)))).await?;
    let (compiled, source) = compiled.map_err(|error| {
        let (line, column) = error.line_column();
        let mut api_error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "compile_error", error.to_string());
        api_error.extra = json!({"line": line, "column": column});
        api_error
    })?;
    let (state_for_store, tenant_for_store, rule_name) = (state.clone(), tenant.clone(), name.clone());
    let version = blocking(move || {
        let version = state_for_store
            .store
            .push_version(
                tenant_for_store.as_str(),
                &rule_name,
                &source,
                compiled.meta.clone(),
                &compiled.plugin_hash,
                &compiled.wasm,
                message,
                Some(author),
            )
            .map_err(ApiError::internal)?;
        reload(&state_for_store, &tenant_for_store)?;
        Ok(version)
    })
    .await?;
    let id = rule_id(tenant.as_str(), &name);
    Ok((StatusCode::CREATED, axum::Json(json!({"id": id, "name": name, "version": version}))).into_response())
}

pub(super) async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let principal = principal(&state, &headers)?;
    let tenant = principal.tenant_with(Scope::Write)?.clone();
    let request: NewRule = body(bytes)?;
    let name = request.name.trim().to_string();
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(bad("rule name must be 1 to 128 printable characters".into()));
    }
    store_version(&state, &tenant, principal.author(), name, request.source, request.message).await
}

/// A new version of an existing rule.
pub(super) async fn update(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let principal = principal(&state, &headers)?;
    let tenant = principal.tenant_with(Scope::Write)?.clone();
    let request: NewVersion = body(bytes)?;
    let rule = state.store.rule_by_id(tenant.as_str(), &id).map_err(ApiError::internal)?.ok_or_else(not_found)?;
    store_version(&state, &tenant, principal.author(), rule.name, request.source, request.message).await
}

pub(super) async fn list(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Read)?;
    let store = state.store.clone();
    let items = blocking(move || {
        let mut items = Vec::new();
        for rule in store.rules(tenant.as_str()).map_err(ApiError::internal)? {
            let active = store.version(tenant.as_str(), &rule.name, rule.active_version).map_err(ApiError::internal)?;
            let mut item = state_json(&rule);
            if let Some((version, _)) = active {
                item["severity"] = version.meta.severity.into();
                item["form"] = version.meta.form.into();
            }
            items.push(item);
        }
        Ok(items)
    })
    .await?;
    Ok(axum::Json(json!({ "items": items })).into_response())
}

pub(super) async fn get_one(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Read)?;
    let rule = state.store.rule_by_id(tenant.as_str(), &id).map_err(ApiError::internal)?.ok_or_else(not_found)?;
    let (active, _) =
        state.store.version(tenant.as_str(), &rule.name, rule.active_version).map_err(ApiError::internal)?.ok_or_else(not_found)?;
    let mut value = state_json(&rule);
    value["active"] = version_json(&active, true);
    Ok(axum::Json(value).into_response())
}

pub(super) async fn versions(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Read)?;
    let rule = state.store.rule_by_id(tenant.as_str(), &id).map_err(ApiError::internal)?.ok_or_else(not_found)?;
    let versions = state.store.versions(tenant.as_str(), &rule.name).map_err(ApiError::internal)?;
    let items: Vec<Value> = versions.iter().map(|version| version_json(version, false)).collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

pub(super) async fn version(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, number)): Path<(String, u32)>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Read)?;
    let rule = state.store.rule_by_id(tenant.as_str(), &id).map_err(ApiError::internal)?.ok_or_else(not_found)?;
    let (version, _) = state.store.version(tenant.as_str(), &rule.name, number).map_err(ApiError::internal)?.ok_or_else(not_found)?;
    Ok(axum::Json(version_json(&version, true)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DiffQuery {
    from: u32,
    to: u32,
}

/// A unified diff of two versions' sources.
pub(super) async fn diff(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Read)?;
    let Query(query) = query.map_err(|rejection| bad(rejection.body_text()))?;
    let rule = state.store.rule_by_id(tenant.as_str(), &id).map_err(ApiError::internal)?.ok_or_else(not_found)?;
    let source = |number: u32| -> Result<String, ApiError> {
        let (version, _) = state.store.version(tenant.as_str(), &rule.name, number).map_err(ApiError::internal)?.ok_or_else(not_found)?;
        Ok(version.source)
    };
    let (old, new) = (source(query.from)?, source(query.to)?);
    let diff =
        similar::TextDiff::from_lines(&old, &new).unified_diff().header(&format!("v{}", query.from), &format!("v{}", query.to)).to_string();
    Ok(axum::Json(json!({"from": query.from, "to": query.to, "diff": diff})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Activate {
    version: u32,
}

/// Makes any stored version the active one (rollback or roll forward).
pub(super) async fn activate(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Write)?;
    let request: Activate = body(bytes)?;
    let changed = blocking(move || {
        let Some(rule) = state.store.rule_by_id(tenant.as_str(), &id).map_err(ApiError::internal)? else { return Ok(None) };
        let Some(rule) = state.store.activate(tenant.as_str(), &rule.name, request.version).map_err(ApiError::internal)? else {
            return Ok(None);
        };
        reload(&state, &tenant)?;
        Ok(Some(rule))
    })
    .await?;
    Ok(axum::Json(state_json(&changed.ok_or_else(not_found)?)).into_response())
}

async fn set_enabled(state: ApiState, headers: HeaderMap, id: String, enabled: bool) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Write)?;
    let changed = blocking(move || {
        let Some(rule) = state.store.rule_by_id(tenant.as_str(), &id).map_err(ApiError::internal)? else { return Ok(None) };
        let changed = state.store.set_enabled(tenant.as_str(), &rule.name, enabled).map_err(ApiError::internal)?;
        reload(&state, &tenant)?;
        Ok(changed)
    })
    .await?;
    Ok(axum::Json(state_json(&changed.ok_or_else(not_found)?)).into_response())
}

pub(super) async fn enable(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    set_enabled(state, headers, id, true).await
}

pub(super) async fn disable(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    set_enabled(state, headers, id, false).await
}

/// Deletes a rule and its versions; its signals keep its name and version.
pub(super) async fn delete(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Write)?;
    let deleted = blocking(move || {
        let Some(rule) = state.store.rule_by_id(tenant.as_str(), &id).map_err(ApiError::internal)? else { return Ok(false) };
        state.store.delete_rule(tenant.as_str(), &rule.name).map_err(ApiError::internal)?;
        reload(&state, &tenant)?;
        Ok(true)
    })
    .await?;
    if deleted { Ok(StatusCode::NO_CONTENT.into_response()) } else { Err(not_found()) }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TestRequest {
    source: String,
    /// OTLP/JSON: one `ExportTraceServiceRequest` or an array of them.
    traces: Value,
}

/// One rule on a set of traces: per trace its outcome, violations, witness
/// spans, fuel and time.
fn run_on(state: &ApiState, loaded: std::sync::Arc<crate::rules::LoadedRule>, traces: &[crate::trace::Trace]) -> Vec<Value> {
    let mut sandbox = crate::rules::Sandbox::new(state.engine.clone(), vec![loaded]);
    traces
        .iter()
        .map(|trace| {
            let run = sandbox.evaluate(trace).into_iter().next();
            let mut value = json!({"trace_id": hex::encode(trace.trace_id), "spans": trace.spans.len()});
            if let Some(run) = run {
                let witnesses: Vec<Value> = run
                    .outcome
                    .violations()
                    .iter()
                    .map(|violation| {
                        let names: Vec<Value> = violation
                            .span_ids
                            .iter()
                            .filter_map(|id| {
                                let mut span_id = [0u8; 8];
                                hex::decode_to_slice(id, &mut span_id).ok()?;
                                trace.find(&span_id).map(|span| json!({"span_id": id, "name": span.name, "service": span.resource.service}))
                            })
                            .collect();
                        json!({"message": violation.message, "severity": violation.severity, "span_ids": violation.span_ids, "witnesses": names})
                    })
                    .collect();
                value["outcome"] = run.outcome.kind().into();
                value["violations"] = witnesses.into();
                value["fuel_used"] = run.fuel_used.into();
                value["elapsed_us"] = (run.elapsed.as_micros() as u64).into();
                if let crate::rules::Outcome::Exception { name, message, line, column } = &run.outcome {
                    value["error"] = json!({"name": name, "message": message, "line": line, "column": column});
                }
            }
            value
        })
        .collect()
}

/// Runs a rule that need not be saved on OTLP/JSON traces.
pub(super) async fn test(
    State(state): State<ApiState>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let _tenant = tenant(&state, &headers, Scope::Write)?;
    let request: TestRequest = body(bytes)?;
    let documents = match request.traces {
        Value::Array(items) => items,
        single => vec![single],
    };
    let mut spans = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let otlp: crate::ingest::convert::ExportTraceServiceRequest =
            serde_json::from_value(document).map_err(|error| bad(format!("traces[{index}] is not OTLP/JSON: {error}")))?;
        spans.extend(crate::ingest::convert::convert(otlp).spans);
    }
    let traces = crate::trace::Trace::group(spans);
    if traces.len() > 100 {
        return Err(bad("at most 100 traces per test".into()));
    }
    let _slot = state.compile_slots.acquire().await.map_err(ApiError::internal)?;
    let worker_state = state.clone();
    let (compiled, results) = blocking(move || {
        let started = std::time::Instant::now();
        let (compiled, loaded) = match crate::rules::compile::compile(&worker_state.engine, &request.source) {
            Ok(done) => done,
            Err(error) => return Ok(Err(error)),
        };
        let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
        let results = run_on(&worker_state, loaded, &traces);
        Ok(Ok(((compiled.meta, compile_ms), results)))
    })
    .await?
    .map_err(|error| {
        let (line, column) = error.line_column();
        let mut api_error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "compile_error", error.to_string());
        api_error.extra = json!({"line": line, "column": column});
        api_error
    })?;
    let ((meta, compile_ms), results) = (compiled, results);
    Ok(axum::Json(json!({"rule": meta, "compile_ms": compile_ms, "traces": results})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct BacktestRequest {
    version: Option<u32>,
    limit: Option<usize>,
}

/// Runs a stored version over the tenant's retained traces and reports which
/// would have produced signals.
pub(super) async fn backtest(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Read)?;
    let request: BacktestRequest = match bytes {
        Ok(bytes) if bytes.is_empty() => BacktestRequest::default(),
        other => body(other)?,
    };
    let limit = request.limit.unwrap_or(1000).clamp(1, 10_000);
    let report = blocking(move || {
        let Some(rule) = state.store.rule_by_id(tenant.as_str(), &id).map_err(ApiError::internal)? else { return Ok(None) };
        let number = request.version.unwrap_or(rule.active_version);
        let Some((version, wasm)) = state.store.version(tenant.as_str(), &rule.name, number).map_err(ApiError::internal)? else {
            return Ok(None);
        };
        let loaded = if version.plugin_hash == state.engine.plugin_hash() {
            state
                .engine
                .load_rule(&wasm, version.meta.clone(), crate::rules::source::prepare(&version.source).ok())
                .map_err(ApiError::internal)?
        } else {
            crate::rules::compile::compile(&state.engine, &version.source).map(|(_, loaded)| loaded).map_err(ApiError::internal)?
        };
        let traces: Vec<crate::trace::Trace> = state
            .recent
            .of_tenant(&tenant, limit)
            .map_err(ApiError::internal)?
            .into_iter()
            .filter(|spans| !spans.is_empty())
            .map(|spans| crate::trace::Trace::new(spans[0].trace_id, spans))
            .collect();
        let results = run_on(&state, loaded, &traces);
        let failed = results.iter().filter(|result| result["outcome"] != "ok").count();
        let hits: Vec<Value> =
            results.into_iter().filter(|result| result["violations"].as_array().is_some_and(|items| !items.is_empty())).collect();
        Ok(Some(json!({
            "rule_id": rule.id, "version": number, "traces_evaluated": traces.len(), "traces_with_violations": hits.len(),
            "traces_failed": failed, "results": hits.into_iter().take(100).collect::<Vec<_>>(),
        })))
    })
    .await?;
    Ok(axum::Json(report.ok_or_else(not_found)?).into_response())
}
