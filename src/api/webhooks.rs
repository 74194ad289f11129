//! Webhook endpoints (admin): create (the signing secret is shown once), list,
//! delete, and each webhook's delivery log.

use super::extract::{Admin, ApiJson, ApiPath};
use super::{ApiError, ApiState, ErrorBody, Items, bad, blocking};
use crate::model::rule::Severity;
use crate::webhooks::{Delivery, WebhookInfo};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
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
    /// Also `signal.rate_exceeded` when a group has more than `count`
    /// occurrences within `minutes` (once per window, never while snoozed).
    rate: Option<crate::webhooks::Rate>,
}

/// A new webhook with the secret its deliveries are signed with (shown once).
#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    webhook: WebhookInfo,
    secret: String,
}

/// Creates a webhook: every new signal that matches is POSTed to it, signed.
/// Loopback, private, link-local and other internal targets are refused
/// (400) unless the operator allows them; at most 20 webhooks per tenant by
/// default (409 beyond).
#[utoipa::path(post, path = "/api/v1/webhooks", operation_id = "create_webhook", tag = "webhooks", request_body = NewWebhook, responses(
    (status = 201, description = "Created", body = WebhookCreated),
    (status = 409, description = "The tenant has as many webhooks as allowed", body = ErrorBody)
))]
pub async fn create(
    State(state): State<ApiState>,
    Admin(tenant): Admin,
    ApiJson(request): ApiJson<NewWebhook>,
) -> Result<Response, ApiError> {
    let (hook, secret) =
        blocking(move || Ok(state.webhooks.create(&tenant, &request.url, request.severities, request.rules, request.rate)?)).await?;
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
