//! Webhook endpoints (admin): create (the signing secret is shown once), list,
//! delete, and each webhook's delivery log.

use super::{ApiError, ApiState, ErrorBody, Items, bad, body, tenant};
use crate::auth::Scope;
use crate::rules::Severity;
use crate::webhooks::{Delivery, WebhookInfo};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

impl From<crate::webhooks::WebhookError> for ApiError {
    fn from(error: crate::webhooks::WebhookError) -> ApiError {
        match error {
            crate::webhooks::WebhookError::Invalid(message) => bad(message),
            other => ApiError::internal(other),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `http://host[:port]/path`.
    #[schema(max_length = 2048, pattern = r"^http://[^/?#\s]+")]
    url: String,
    /// Only signals of these severities; empty or absent: all.
    #[serde(default)]
    severities: Vec<Severity>,
    /// Only signals of these rules (ids or names); empty or absent: all.
    #[serde(default)]
    rules: Vec<String>,
}

/// A new webhook with the secret its deliveries are signed with (shown once).
#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    webhook: WebhookInfo,
    secret: String,
}

/// Creates a webhook: every new signal that matches is POSTed to it, signed.
#[utoipa::path(post, path = "/api/v1/webhooks", operation_id = "create_webhook", tag = "webhooks", request_body = NewWebhook, responses(
    (status = 201, description = "Created", body = WebhookCreated)
))]
pub async fn create(State(state): State<ApiState>, headers: HeaderMap, bytes: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    let request: NewWebhook = body(bytes)?;
    let (hook, secret) = state.webhooks.create(&tenant, &request.url, request.severities, request.rules)?;
    Ok((StatusCode::CREATED, axum::Json(WebhookCreated { webhook: hook.public(), secret })).into_response())
}

/// The tenant's webhooks, without secrets.
#[utoipa::path(get, path = "/api/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks", responses((status = 200, description = "Webhooks", body = Items<WebhookInfo>)))]
pub async fn list(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    let items: Vec<_> = state.webhooks.list(&tenant)?.iter().map(crate::webhooks::Webhook::public).collect();
    Ok(axum::Json(Items { items }).into_response())
}

/// Deletes a webhook; deliveries in progress stop.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", operation_id = "delete_webhook", tag = "webhooks", params(("id" = String, Path, description = "Webhook id")), responses(
    (status = 204, description = "Deleted"),
    (status = 404, description = "No such webhook in this tenant", body = ErrorBody)
))]
pub async fn delete(
    State(state): State<ApiState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    let Path(id) = id?;
    if state.webhooks.delete(&tenant, &id)? { Ok(StatusCode::NO_CONTENT.into_response()) } else { Err(ApiError::not_found("webhook")) }
}

/// Every delivery attempt of a webhook, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", operation_id = "list_webhook_deliveries", tag = "webhooks", params(("id" = String, Path, description = "Webhook id")), responses(
    (status = 200, description = "Delivery attempts", body = Items<Delivery>),
    (status = 404, description = "No such webhook in this tenant", body = ErrorBody)
))]
pub async fn deliveries(
    State(state): State<ApiState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    let Path(id) = id?;
    match state.webhooks.deliveries(&tenant, &id)? {
        Some(items) => Ok(axum::Json(Items { items }).into_response()),
        None => Err(ApiError::not_found("webhook")),
    }
}
