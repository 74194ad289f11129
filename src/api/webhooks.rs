//! Webhook (notification channel) endpoints (admin): create (the signing
//! secret is shown once), list, delete, a test send, and each channel's
//! delivery log.

use super::extract::{Admin, ApiJson, ApiPath};
use super::{ApiError, ApiState, ErrorBody, Items, bad, blocking};
use crate::webhooks::{Delivery, WebhookInfo, WebhookSpec};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

impl From<crate::webhooks::WebhookError> for ApiError {
    fn from(error: crate::webhooks::WebhookError) -> ApiError {
        match error {
            crate::webhooks::WebhookError::Invalid(message) => bad(message),
            quota @ crate::webhooks::WebhookError::Quota(_) => ApiError::new(StatusCode::CONFLICT, "conflict", quota.to_string()),
            other => ApiError::internal(other),
        }
    }
}

/// A new webhook with the secret its deliveries are signed with (shown once).
#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    webhook: WebhookInfo,
    secret: String,
}

/// Creates a notification channel: every group event that matches (created,
/// regressed, status changed, snooze ended, rate exceeded, reminders) is
/// POSTed to it in its kind's shape, signed. Loopback, private, link-local and
/// other internal targets are refused (400) unless the operator allows them;
/// at most 20 webhooks per tenant by default (409 beyond).
#[utoipa::path(post, path = "/api/v1/webhooks", operation_id = "create_webhook", tag = "webhooks", request_body = WebhookSpec, responses(
    (status = 201, description = "Created", body = WebhookCreated),
    (status = 409, description = "The tenant has as many webhooks as allowed", body = ErrorBody)
))]
pub async fn create(
    State(state): State<ApiState>,
    Admin(tenant): Admin,
    ApiJson(request): ApiJson<WebhookSpec>,
) -> Result<Response, ApiError> {
    let (hook, secret) = blocking(move || Ok(state.webhooks.create(&tenant, request)?)).await?;
    Ok((StatusCode::CREATED, axum::Json(WebhookCreated { webhook: hook.public(), secret })).into_response())
}

/// The tenant's webhooks, without secrets.
#[utoipa::path(get, path = "/api/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks", responses((status = 200, description = "Webhooks", body = Items<WebhookInfo>)))]
pub async fn list(State(state): State<ApiState>, Admin(tenant): Admin) -> Result<Response, ApiError> {
    let items: Vec<_> = blocking(move || Ok(state.webhooks.list(&tenant)?.iter().map(crate::webhooks::Webhook::public).collect())).await?;
    Ok(axum::Json(Items { items }).into_response())
}

/// Deletes a webhook and its delivery log; queued deliveries and retries to it stop.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", operation_id = "delete_webhook", tag = "webhooks", params(("id" = String, Path, description = "Webhook id")), responses(
    (status = 204, description = "Deleted"),
    (status = 404, description = "No such webhook in this tenant", body = ErrorBody)
))]
pub async fn delete(State(state): State<ApiState>, Admin(tenant): Admin, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    if blocking(move || Ok(state.webhooks.delete(&tenant, &id)?)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("webhook"))
    }
}

/// The newest 100 delivery attempts of a webhook, newest first: delivered or
/// not (the receiver's answer is not recorded).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", operation_id = "list_webhook_deliveries", tag = "webhooks", params(("id" = String, Path, description = "Webhook id")), responses(
    (status = 200, description = "Delivery attempts", body = Items<Delivery>),
    (status = 404, description = "No such webhook in this tenant", body = ErrorBody)
))]
pub async fn deliveries(State(state): State<ApiState>, Admin(tenant): Admin, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    match blocking(move || Ok(state.webhooks.deliveries(&tenant, &id)?)).await? {
        Some(items) => Ok(axum::Json(Items { items }).into_response()),
        None => Err(ApiError::not_found("webhook")),
    }
}

/// Sends a test notification to a channel now, in its kind's shape (one
/// attempt, no retry, logged with the deliveries as `signal_id` `test`), and
/// answers whether the receiver took it.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", operation_id = "test_webhook", tag = "webhooks", params(("id" = String, Path, description = "Webhook id")), responses(
    (status = 200, description = "The attempt: delivered or not", body = Delivery),
    (status = 404, description = "No such webhook in this tenant", body = ErrorBody)
))]
pub async fn test(State(state): State<ApiState>, Admin(tenant): Admin, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    match state.webhooks.test_send(&tenant, &id).await? {
        Some(delivery) => Ok(axum::Json(delivery).into_response()),
        None => Err(ApiError::not_found("webhook")),
    }
}
