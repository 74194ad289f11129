//! A tenant's own settings: the trace-link template that sends users from a
//! signal or trace to their trace backend, and how long the tenant's
//! evaluated traces are kept (within the operator's maximum). Anyone in the
//! tenant may read them; changing them takes the admin scope.

use super::extract::{Admin, ApiJson, Read};
use super::{ApiError, ApiState, bad, blocking};
use crate::model::tenant::{TenantSettings, check_trace_link_template};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// The settings as stored, with the bounds that apply to them.
#[derive(Serialize, ToSchema)]
pub struct SettingsInfo {
    /// Where the tenant's trace backend shows a trace, with `{trace_id}`;
    /// null: signals and traces link only within FLUO.
    #[schema(example = "https://jaeger.example/trace/{trace_id}")]
    trace_link_template: Option<String>,
    /// How long the tenant's evaluated traces are kept (backtests, the
    /// console, late spans amending them), in minutes; null: the server's default.
    trace_retention_minutes: Option<u32>,
    /// What applies now: the tenant's retention or the server's default.
    effective_trace_retention_minutes: u64,
    /// The server's default and the most a tenant may ask for.
    default_trace_retention_minutes: u64,
    max_trace_retention_minutes: u64,
}

/// The whole settings document: a field left out or null takes the default.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    /// An http(s) URL with `{trace_id}`; may also use `{span_id}`,
    /// `{start_unix_ms}`, `{end_unix_ms}`, `{start_unix_s}`, `{end_unix_s}`.
    /// At most 2048 bytes.
    #[serde(default)]
    #[schema(max_length = 2048, example = "https://jaeger.example/trace/{trace_id}")]
    trace_link_template: Option<String>,
    /// 1 to the server's maximum (`max_trace_retention_minutes`).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 43200)]
    trace_retention_minutes: Option<u32>,
}

fn minutes(duration: Duration) -> u64 {
    duration.as_secs() / 60
}

fn info(state: &ApiState, tenant: &crate::model::tenant::TenantId, settings: TenantSettings) -> SettingsInfo {
    let (default, max) = state.recent.retention_bounds();
    SettingsInfo {
        trace_link_template: settings.trace_link_template,
        trace_retention_minutes: settings.trace_retention_minutes,
        effective_trace_retention_minutes: minutes(state.recent.retention_of(tenant)),
        default_trace_retention_minutes: minutes(default),
        max_trace_retention_minutes: minutes(max),
    }
}

/// The tenant's settings.
#[utoipa::path(get, path = "/api/v1/settings", operation_id = "get_settings", tag = "settings", responses(
    (status = 200, description = "The settings", body = SettingsInfo)
))]
pub async fn get(State(state): State<ApiState>, Read(tenant): Read) -> Result<Response, ApiError> {
    let info = blocking(move || {
        let settings = state.auth.settings(&tenant)?;
        Ok(info(&state, &tenant, settings))
    })
    .await?;
    Ok(axum::Json(info).into_response())
}

/// Replaces the tenant's settings (admin). A shorter retention hides older
/// traces at once; their bytes go when the store's segments expire.
#[utoipa::path(put, path = "/api/v1/settings", operation_id = "put_settings", tag = "settings", request_body = SettingsUpdate, responses(
    (status = 200, description = "The settings now", body = SettingsInfo),
    (status = 400, description = "A template that is not an http(s) URL with {trace_id}, an unknown placeholder, or a retention out of bounds", body = super::ErrorBody)
))]
pub async fn put(
    State(state): State<ApiState>,
    Admin(tenant): Admin,
    ApiJson(update): ApiJson<SettingsUpdate>,
) -> Result<Response, ApiError> {
    let template = update.trace_link_template.filter(|template| !template.trim().is_empty());
    if let Some(template) = &template {
        check_trace_link_template(template).map_err(bad)?;
    }
    let max = minutes(state.recent.retention_bounds().1);
    if let Some(wanted) = update.trace_retention_minutes
        && !(1..=max).contains(&u64::from(wanted))
    {
        return Err(bad(format!("trace_retention_minutes must be 1 to {max} (the server's --trace-retention-max)")));
    }
    let settings = TenantSettings { trace_link_template: template, trace_retention_minutes: update.trace_retention_minutes };
    let info = blocking(move || {
        // One change at a time, so that what is applied is what was stored last.
        static APPLYING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = APPLYING.lock().unwrap_or_else(|poison| poison.into_inner());
        state.auth.set_settings(&tenant, &settings)?;
        let age = settings.trace_retention_minutes.map(|minutes| Duration::from_secs(u64::from(minutes) * 60));
        state.recent.set_tenant_retention(&tenant, age);
        state.webhooks.set_trace_link(&tenant, settings.trace_link_template.as_deref());
        Ok(info(&state, &tenant, settings))
    })
    .await?;
    Ok(axum::Json(info).into_response())
}
