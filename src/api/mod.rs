//! The HTTP API under `/api/v1` (axum) and its OpenAPI document. Handlers live
//! by subject: [`identity`] (tenants, keys, users, sessions), [`rules`]
//! (versions and their lifecycle), [`trying`] (templates, compile check, test,
//! backtest), [`signals`], [`traces`] (retained traces), [`settings`] (the
//! tenant's trace links and retention), [`webhooks`]; this
//! module owns the router, the one error shape `{"error":{"code","message",…}}`
//! (produced by [`ApiError`] only; 5xx bodies stay generic), the extractors
//! handlers declare their caller and inputs with (`extract`), request ids and
//! the operational endpoints; every other GET goes to
//! the web console ([`crate::web`]). Every route is registered through
//! `utoipa_axum::routes!` from its handler's `#[utoipa::path]`, so the document
//! served at `/api/v1/openapi.json` and the router come from the same code.
//! The tenant always comes from the verified credential.

use crate::auth::{Auth, AuthError, Principal, Scope};

use crate::model::tenant::TenantId;
use crate::pipeline::Pipeline;
use crate::rules::RuleEngine;
use crate::signals::{SignalError, Signals};
use crate::store::Store;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod extract;
mod groups;
mod identity;
mod rules;
mod settings;
mod signals;
pub mod slots;

pub use rules::RuleQuotas;
mod traces;
mod trying;
mod webhooks;

/// Request bodies above this get 413 (a rule source is at most 128 KiB).
pub const MAX_BODY: usize = 1 << 20;

#[derive(Clone)]
pub struct ApiState {
    pub auth: Arc<Auth>,
    pub store: Arc<Store>,
    pub signals: Arc<Signals>,
    pub engine: Arc<RuleEngine>,
    pub pipeline: Arc<Pipeline>,
    pub recent: Arc<crate::store::traces::RecentTraces>,
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Fires when the server stops: live streams end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Compiling (and testing) takes ~1.2 s of CPU: at most this many at once
    /// server-wide and per tenant, the rest wait in line ([`slots`]).
    pub compile_slots: Arc<slots::TenantSlots>,
    /// Backtests at once, server-wide and per tenant; beyond, 429 or 503 with `Retry-After`.
    pub backtest_slots: Arc<slots::TenantSlots>,
    /// How many rules a tenant and versions a rule may have.
    pub rule_quotas: RuleQuotas,
    /// The OTLP/gRPC and OTLP/HTTP ports, as bound (`GET /api/v1/info`).
    pub otlp_ports: (u16, u16),
    /// The one event hub: status changes made through the API are published
    /// here, live streams subscribe to their tenant's channel.
    pub events: Arc<crate::events::EventHub>,
    /// The web console's files, served at `/`.
    pub console: Arc<crate::web::Console>,
}

/// Every error answer: `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_request`, `invalid_json`, `unauthenticated`, `forbidden`,
    /// `not_found`, `method_not_allowed`, `conflict`, `invalid_transition`, `payload_too_large`, `compile_error`,
    /// `unknown_version`, `too_many_attempts`, `too_many_requests`, `too_many_streams`, `quota_exceeded`, `busy`, `internal`.
    code: &'static str,
    message: String,
    /// Where a rule failed to compile (1-based), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<u32>,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: ErrorDetail,
    /// Seconds, sent as `Retry-After` (429 and 503 answers).
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, detail: ErrorDetail { code, message: message.into(), line: None, column: None }, retry_after: None }
    }

    /// Asks the client to come back after `seconds` (`Retry-After`).
    pub(crate) fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    /// 503 `busy`: the server could not do this in time; the client may retry.
    pub(crate) fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message).retry_after(BUSY_RETRY_AFTER_SECS)
    }

    pub(crate) fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %error, "api request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }

    pub(crate) fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no such {what}"))
    }

    /// 422 for a rule that does not compile, with its position when known.
    pub(crate) fn compile(error: &crate::rules::compile::CompileError) -> ApiError {
        let (line, column) = error.line_column();
        let mut api_error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "compile_error", error.to_string());
        (api_error.detail.line, api_error.detail.column) = (line, column);
        api_error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(ErrorBody { error: self.detail })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        match error {
            AuthError::Missing | AuthError::Unknown | AuthError::Expired(_) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", error.to_string())
            }
            AuthError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", error.to_string()),
            AuthError::Invalid(message) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message),
            AuthError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            AuthError::Store(error) => ApiError::internal(error),
        }
    }
}

impl From<SignalError> for ApiError {
    fn from(error: SignalError) -> ApiError {
        match error {
            SignalError::Cursor => bad("invalid cursor"),
            SignalError::Transition { from, to } => {
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", format!("a signal cannot go from {from} to {to}"))
            }
            error @ SignalError::Snooze { .. } => ApiError::new(StatusCode::CONFLICT, "invalid_transition", error.to_string()),
            error @ SignalError::NotSample => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_a_sample", error.to_string()),
            error @ SignalError::PinLimit => ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string()),
            other => ApiError::internal(other),
        }
    }
}

/// The store failed: logged, and a generic 500 for the client.
impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> ApiError {
        ApiError::internal(error)
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        bad(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        bad(rejection.body_text())
    }
}

pub(crate) fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FLUO API",
        description = "Behavioral assurance for OpenTelemetry traces: tenants, keys, users, rules, signals, webhooks. \
            Every endpoint but sign-in and the health checks takes `Authorization: Bearer <API key or session token>`; \
            the tenant always comes from that credential.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Conventions),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "tenants", description = "Operator: create tenants"),
        (name = "identity", description = "API keys, users and sessions"),
        (name = "rules", description = "Rule versions, activation, testing and backtests"),
        (name = "signals", description = "Violations, their workflow and live stream"),
        (name = "traces", description = "Retained traces and the names they use"),
        (name = "webhooks", description = "Notification channels: generic, Slack, PagerDuty, Alertmanager"),
        (name = "settings", description = "The tenant's trace-link template and trace retention"),
        (name = "operations", description = "Health, readiness, metrics, this document")
    )
)]
struct ApiDoc;

/// Adds what every operation shares: the bearer scheme, and the error answers
/// that any authenticated operation can give (so each handler lists only its
/// own: 404, 409, 422, 429).
struct Conventions;

impl utoipa::Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, ResponseBuilder, security::SecurityRequirement};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (`fluo_…`), the operator key, or a session token from /auth/login"))
                    .build(),
            ),
        );
        let error = |description: &str| -> RefOr<utoipa::openapi::Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new().schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody"))).build(),
                )
                .into()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = !path.starts_with("/api/v1/") || path == "/api/v1/auth/login" || path == "/api/v1/openapi.json";
            for operation in [&mut item.get, &mut item.post, &mut item.put, &mut item.delete].into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                let has_body = operation.request_body.is_some();
                let has_parameters = operation.parameters.as_ref().is_some_and(|parameters| !parameters.is_empty());
                if has_body || has_parameters {
                    responses.entry("400".into()).or_insert_with(|| error("Malformed request: bad JSON, parameter or value"));
                }
                if has_body {
                    responses.entry("413".into()).or_insert_with(|| error("Request body over 1 MiB"));
                }
                if !public {
                    responses.entry("401".into()).or_insert_with(|| error("No credential, or an unknown, expired or revoked one"));
                    responses.entry("403".into()).or_insert_with(|| error("The credential lacks the scope or role this needs"));
                    operation.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
                }
                if !public {
                    responses.entry("503".into()).or_insert_with(|| {
                        error("The server is busy: the work did not finish within its deadline, or no slot was free (`busy`, with `Retry-After`)")
                    });
                }
                if path.starts_with("/api/v1/") {
                    responses.entry("500".into()).or_insert_with(|| error("Internal error (details are in the server log only)"));
                }
            }
        }
    }
}

/// Every operation, registered from its handler's annotation.
fn operations() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(identity::create_tenant, identity::list_tenants))
        .routes(routes!(identity::create_key, identity::list_keys))
        .routes(routes!(identity::revoke_key))
        .routes(routes!(identity::create_user, identity::list_users))
        .routes(routes!(identity::delete_user))
        .routes(routes!(identity::login))
        .routes(routes!(identity::renew))
        .routes(routes!(identity::logout))
        .routes(routes!(identity::info))
        .routes(routes!(rules::create, rules::list))
        .routes(routes!(rules::get_one, rules::update, rules::delete))
        .routes(routes!(rules::versions))
        .routes(routes!(rules::version))
        .routes(routes!(rules::diff))
        .routes(routes!(rules::activate))
        .routes(routes!(rules::enable))
        .routes(routes!(rules::disable))
        .routes(routes!(trying::test))
        .routes(routes!(trying::backtest))
        .routes(routes!(trying::backtest_source))
        .routes(routes!(trying::templates))
        .routes(routes!(trying::compile))
        .routes(routes!(signals::list))
        .routes(routes!(signals::counts))
        .routes(routes!(signals::stream))
        .routes(routes!(signals::get_one))
        .routes(routes!(signals::trace))
        .routes(routes!(groups::occurrences))
        .routes(routes!(groups::series))
        .routes(routes!(signals::set_status))
        .routes(routes!(groups::assign))
        .routes(routes!(groups::snooze, groups::unsnooze))
        .routes(routes!(groups::pin))
        .routes(routes!(groups::unpin))
        .routes(routes!(traces::list))
        .routes(routes!(traces::vocabulary))
        .routes(routes!(traces::get_trace))
        .routes(routes!(settings::get, settings::put))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::delete))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::test))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_document))
}

/// The OpenAPI document the API serves (also written to `docs/openapi.json`
/// by `fluo openapi`; a test keeps the two equal).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = operations().split_for_parts().1;
    Conventions.modify(&mut document);
    document
}

pub fn router(state: ApiState) -> axum::Router {
    let (router, mut document) = operations().split_for_parts();
    Conventions.modify(&mut document);
    let served = Arc::new(document.to_pretty_json().expect("the OpenAPI document serializes"));
    router
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::Extension(OpenApiJson(served)))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

/// Paths that are not the API's are the web console's.
async fn fallback(State(state): State<ApiState>, method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let api =
        ["/api/", "/v1/"].iter().any(|prefix| path.starts_with(prefix)) || matches!(path, "/api" | "/healthz" | "/readyz" | "/metrics");
    if api || !matches!(method, axum::http::Method::GET | axum::http::Method::HEAD) {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response();
    }
    state.console.serve(path, crate::web::accepts_gzip(&headers))
}

/// A path the API serves, with a method it does not: the API's error shape
/// (axum's default is an empty body; the router keeps the `Allow` header).
async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("this endpoint does not accept {method}"))
}

#[derive(Clone)]
struct OpenApiJson(Arc<String>);

/// Gives every request an id (the client's `x-request-id` if it is short and
/// printable, else a new one), returns it in `x-request-id`, and logs one
/// line per request with it.
async fn request_id(mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let given = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty() && value.len() <= 128 && value.bytes().all(|byte| byte.is_ascii_graphic()));
    let id = match given {
        Some(id) => id.to_string(),
        None => {
            let mut bytes = [0u8; 8];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
            hex::encode(bytes)
        }
    };
    let value = header::HeaderValue::from_str(&id).expect("checked printable ASCII");
    request.headers_mut().insert("x-request-id", value.clone());
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    response.headers_mut().insert("x-request-id", value);
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(request_id = %id, %method, path, status, elapsed_ms, "api request");
    } else {
        tracing::info!(request_id = %id, %method, path, status, elapsed_ms, "api request");
    }
    response
}

pub(crate) fn principal(state: &ApiState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    Ok(state.auth.authenticate(headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()))?)
}

/// Who the tenant's authors are now, for showing: user id → email, key id →
/// key name. Ids of deleted users or keys are absent.
pub(crate) fn author_names(state: &ApiState, tenant: &TenantId) -> Result<std::collections::HashMap<String, String>, ApiError> {
    let mut names: std::collections::HashMap<String, String> =
        state.auth.list_keys(tenant)?.into_iter().map(|key| (key.id, format!("key {}", key.name))).collect();
    names.extend(state.auth.users.list(tenant)?.into_iter().map(|user| (user.id, user.email)));
    Ok(names)
}

pub(crate) fn tenant(state: &ApiState, headers: &HeaderMap, scope: Scope) -> Result<TenantId, ApiError> {
    Ok(principal(state, headers)?.tenant_with(scope)?.clone())
}

/// Parses a JSON body; a body over the limit is 413, anything unparsable 400.
pub(crate) fn body<T: for<'de> Deserialize<'de>>(bytes: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = bytes.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("request body over {MAX_BODY} bytes"))
        }
        _ => bad(rejection.body_text()),
    })?;
    let invalid = |error: serde_json::Error| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", error.to_string());
    // serde also reads a struct from a JSON array; every body here is an object.
    match serde_json::from_slice::<serde_json::Value>(&bytes).map_err(invalid)? {
        value @ serde_json::Value::Object(_) => serde_json::from_value(value).map_err(invalid),
        _ => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", "the body must be a JSON object")),
    }
}

/// How long store work (reads, writes, flushes, diffs) on the blocking pool may
/// take before the client gets 503 `busy`.
pub const WORK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long compiling or testing a rule may take (its slot wait not included).
pub const COMPILE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a request may wait in line for a compile slot.
pub const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// `Retry-After` of a 503 `busy` answer, in seconds.
pub const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// Runs blocking store or sandbox work off the async workers, within
/// [`WORK_DEADLINE`].
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    blocking_within(WORK_DEADLINE, work).await
}

/// Runs blocking work off the async workers; if it has not finished after
/// `deadline`, the client gets 503 `busy` with `Retry-After`. The work itself
/// cannot be interrupted and goes on; whatever it holds (a slot moved into
/// it) is released when it ends, not when the client is answered.
pub(crate) async fn blocking_within<T: Send + 'static>(
    deadline: std::time::Duration,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::time::timeout(deadline, tokio::task::spawn_blocking(work)).await {
        Ok(joined) => joined.map_err(ApiError::internal)?,
        Err(_) => {
            tracing::warn!(deadline_ms = deadline.as_millis() as u64, "api work exceeded its deadline");
            Err(ApiError::busy(format!("the server did not finish this within {} s; try again later", deadline.as_secs())))
        }
    }
}

/// A compile slot for `tenant` (see [`slots`]), waiting at most [`SLOT_WAIT`].
pub(crate) async fn compile_slot(state: &ApiState, tenant: &TenantId) -> Result<slots::Slot, ApiError> {
    tokio::time::timeout(SLOT_WAIT, state.compile_slots.acquire(tenant))
        .await
        .map_err(|_| ApiError::busy(format!("every rule compiler stayed busy for {} s; try again later", SLOT_WAIT.as_secs())))
}

/// RFC 3339 (`2026-11-27T10:00:00Z`) or milliseconds since the epoch, between
/// 1970 and the end of 9999 ([`crate::model::time::parse`]); 400 otherwise.
pub(crate) fn parse_time(field: &str, text: &str) -> Result<u64, ApiError> {
    crate::model::time::parse(field, text).map_err(|error| bad(error.to_string()))
}

/// `{"items": [...]}`: every list answer.
#[derive(Serialize, ToSchema)]
pub struct Items<T: ToSchema> {
    pub items: Vec<T>,
}

/// Liveness: answers while the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Ready once the listeners run (this handler answering), the database
/// answers and the span log's last write succeeded.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = String, content_type = "text/plain"),
    (status = 503, description = "Stopping, the database does not answer, or the span log cannot be written (the reason follows)", body = String, content_type = "text/plain")
))]
async fn readyz(State(state): State<ApiState>) -> Response {
    if *state.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response();
    }
    if let Some(reason) = state.pipeline.log_failing() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("span log unavailable (OTLP requests are refused for retry): {reason}"))
            .into_response();
    }
    match state.store.db.contains_key(b"readyz") {
        Ok(_) => "ready".into_response(),
        Err(error) => {
            tracing::error!(error = %error, "database not readable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// The counters in the OpenMetrics text format (which Prometheus scrapes);
/// they carry per-tenant figures, so they need the operator key.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "OpenMetrics text format 1.0.0", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    (status = 401, description = "No or unknown credential", body = ErrorBody),
    (status = 403, description = "Not the operator key", body = ErrorBody)
), security(("bearer" = [])))]
async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !matches!(principal(&state, &headers)?, Principal::Operator) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "metrics need the operator key"));
    }
    use crate::pipeline::metrics;
    let (outcomes, dropped, throttled) = state.webhooks.outcomes();
    let notifications = vec![
        metrics::CounterFamily {
            name: "fluo_notification_deliveries",
            help: "Notification delivery attempts, by channel kind and outcome (delivered, failed, refused, gave_up).",
            samples: outcomes
                .into_iter()
                .map(|(kind, outcome, count)| (vec![("kind", kind.as_str().to_string()), ("outcome", outcome.to_string())], count))
                .collect(),
        },
        metrics::CounterFamily {
            name: "fluo_notifications_not_sent",
            help: "Notifications not sent, by reason: a tenant's full delivery queue, a channel's throttle.",
            samples: vec![(vec![("reason", "queue_full".to_string())], dropped), (vec![("reason", "throttled".to_string())], throttled)],
        },
    ];
    let text = metrics::exposition(
        &state.pipeline.counters,
        state.pipeline.buffered_spans(),
        state.pipeline.buffered_bytes(),
        state.pipeline.evaluator.backlogs(),
        notifications,
    );
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

/// This document (OpenAPI 3.1), generated from the handlers' annotations.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "get_openapi_document", tag = "operations", responses((status = 200, description = "The OpenAPI document", body = Object)))]
async fn openapi_document(axum::Extension(OpenApiJson(json)): axum::Extension<OpenApiJson>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json.as_str().to_owned()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocking_work_past_its_deadline_is_503_busy_with_retry_after() {
        let (finished, done) = std::sync::mpsc::channel();
        let answer = blocking_within(std::time::Duration::from_millis(50), move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let _ = finished.send(());
            Ok(())
        })
        .await
        .expect_err("past the deadline");
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.detail.code, "busy");
        let response = answer.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], BUSY_RETRY_AFTER_SECS.to_string().as_str());
        // The work itself goes on to its end.
        done.recv_timeout(std::time::Duration::from_secs(5)).expect("the work finished");
        assert_eq!(blocking_within(std::time::Duration::from_secs(5), || Ok(7)).await.expect("in time"), 7);
    }
}
