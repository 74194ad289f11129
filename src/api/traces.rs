//! The tenant's retained traces (kept `--trace-retention` after evaluation):
//! the newest as summaries, one as OTLP/JSON, and the vocabulary they use
//! (services, span names, attribute keys), which the console's rule editor
//! offers as completions.

use super::extract::{ApiPath, Read};
use super::{ApiError, ApiState, ErrorBody, bad, blocking};
use crate::model::trace::Span;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TraceQuery {
    /// 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// One retained trace, summarized.
#[derive(Serialize, ToSchema)]
pub struct TraceSummary {
    trace_id: String,
    /// The root span's name (the earliest span's, if the root is missing).
    root_name: String,
    /// The root span's service.
    service: Option<String>,
    /// Distinct services in the trace.
    services: Vec<String>,
    spans: usize,
    /// RFC 3339: the first span's start.
    start_time: String,
    duration_ms: f64,
    /// RFC 3339: when FLUO evaluated the trace.
    evaluated_at: String,
    /// Spans with an error status.
    errors: usize,
}

fn summary(evaluated_ms: u64, spans: &[Span]) -> Option<TraceSummary> {
    let first = spans.iter().min_by_key(|span| span.start_unix_nano)?;
    let root = spans.iter().find(|span| span.parent_span_id.is_none()).unwrap_or(first);
    let end = spans.iter().map(|span| span.end_unix_nano).max().unwrap_or(first.start_unix_nano);
    let services: BTreeSet<String> = spans.iter().filter_map(|span| span.resource.service.clone()).collect();
    Some(TraceSummary {
        trace_id: hex::encode(first.trace_id),
        root_name: root.name.clone(),
        service: root.resource.service.clone(),
        services: services.into_iter().collect(),
        spans: spans.len(),
        start_time: crate::model::time::rfc3339(first.start_unix_nano / 1_000_000),
        duration_ms: end.saturating_sub(first.start_unix_nano) as f64 / 1e6,
        evaluated_at: crate::model::time::rfc3339(evaluated_ms),
        errors: spans.iter().filter(|span| span.status == crate::model::trace::StatusCode::Error).count(),
    })
}

/// The tenant's retained traces, the most recently evaluated first.
#[utoipa::path(get, path = "/api/v1/traces", operation_id = "list_traces", tag = "traces", params(TraceQuery), responses(
    (status = 200, description = "Newest first", body = super::Items<TraceSummary>)
))]
pub async fn list(
    State(state): State<ApiState>,
    Read(tenant): Read,
    query: Result<Query<TraceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad("limit must be 1 to 500"));
    }
    let items = blocking(move || {
        let traces = state.recent.newest(&tenant, limit)?;
        Ok(traces.iter().filter_map(|(at, spans)| summary(*at, spans)).collect::<Vec<_>>())
    })
    .await?;
    Ok(axum::Json(super::Items { items }).into_response())
}

/// Names used in the tenant's recent traces.
#[derive(Serialize, ToSchema)]
pub struct Vocabulary {
    /// How many of the newest retained traces were read (at most 500).
    traces: usize,
    services: Vec<String>,
    span_names: Vec<String>,
    /// Span attribute keys (resource attribute keys are in `resource_attribute_keys`).
    attribute_keys: Vec<String>,
    resource_attribute_keys: Vec<String>,
}

/// Each list is sorted and holds at most this many names.
const VOCABULARY_CAP: usize = 500;

/// The services, span names and attribute keys of the tenant's newest 500
/// retained traces, sorted, at most 500 of each.
#[utoipa::path(get, path = "/api/v1/traces/vocabulary", operation_id = "trace_vocabulary", tag = "traces", responses(
    (status = 200, description = "Sorted names", body = Vocabulary)
))]
pub async fn vocabulary(State(state): State<ApiState>, Read(tenant): Read) -> Result<Response, ApiError> {
    let vocabulary = blocking(move || {
        let traces = state.recent.newest(&tenant, 500)?;
        let (mut services, mut names, mut keys, mut resource_keys) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for span in traces.iter().flat_map(|(_, spans)| spans) {
            services.extend(span.resource.service.clone());
            names.insert(span.name.clone());
            keys.extend(span.attributes.iter().map(|(key, _)| key.clone()));
            resource_keys.extend(span.resource.attributes.iter().map(|(key, _)| key.clone()));
        }
        let capped = |set: BTreeSet<String>| set.into_iter().take(VOCABULARY_CAP).collect();
        Ok(Vocabulary {
            traces: traces.len(),
            services: capped(services),
            span_names: capped(names),
            attribute_keys: capped(keys),
            resource_attribute_keys: capped(resource_keys),
        })
    })
    .await?;
    Ok(axum::Json(vocabulary).into_response())
}

/// A retained trace of the tenant (as last evaluated), as OTLP/JSON.
#[utoipa::path(get, path = "/api/v1/traces/{trace_id}", operation_id = "get_trace", tag = "traces", params(("trace_id" = String, Path, description = "32 hex digits", pattern = "^[0-9a-fA-F]{32}$")), responses(
    (status = 200, description = "OTLP/JSON `ExportTraceServiceRequest`", body = Object),
    (status = 404, description = "No such trace retained for this tenant", body = ErrorBody)
))]
pub async fn get_trace(
    State(state): State<ApiState>,
    Read(tenant): Read,
    ApiPath(trace_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let mut id = [0u8; 16];
    hex::decode_to_slice(&trace_id, &mut id).map_err(|_| bad("trace id must be 32 hex digits"))?;
    let (_, otlp) = blocking(move || {
        state
            .recent
            .get_raw(&tenant, &id)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such trace (or no longer retained)"))
    })
    .await?;
    super::signals::otlp_json(&otlp)
}
