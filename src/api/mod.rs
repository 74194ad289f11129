//! The HTTP API under `/api/v1` (axum): tenants (operator), keys (tenant
//! admin), rules ([`rules`]: versions, activation, enable/disable) and signals, plus
//! `/healthz` and `/metrics`. One error shape, `{"error":{"code","message",…}}`,
//! produced by [`ApiError`] only; 5xx bodies stay generic. The tenant always
//! comes from the verified credential. Issue 4 completes the surface.

use crate::auth::{Auth, AuthError, Principal, Scope, TenantId};
use crate::pipeline::Pipeline;
use crate::rules::{RuleEngine, Severity};
use crate::signals::{Filter, SignalError, Signals, Status};
use crate::store::Store;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

mod rules;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

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
    /// Compiling takes ~1.2 s of CPU: at most this many at once, the rest wait.
    pub compile_slots: Arc<tokio::sync::Semaphore>,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    pub(crate) extra: serde_json::Value,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), extra: json!({}) }
    }

    pub(crate) fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %error, "api request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let (Some(error), Some(extra)) = (error.as_object_mut(), self.extra.as_object()) {
            error.extend(extra.clone());
        }
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        match error {
            AuthError::Missing | AuthError::Unknown => ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", error.to_string()),
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
            SignalError::Cursor => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "invalid cursor"),
            SignalError::Transition { from, to } => {
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", format!("a signal cannot go from {from} to {to}"))
            }
            other => ApiError::internal(other),
        }
    }
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/tenants", post(create_tenant))
        .route("/api/v1/keys", post(create_key).get(list_keys))
        .route("/api/v1/users", post(create_user).get(list_users))
        .route("/api/v1/webhooks", post(create_webhook).get(list_webhooks))
        .route("/api/v1/webhooks/{id}", axum::routing::delete(delete_webhook))
        .route("/api/v1/webhooks/{id}/deliveries", get(webhook_deliveries))
        .route("/api/v1/users/{id}", axum::routing::delete(delete_user))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/renew", post(renew))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/keys/{id}", axum::routing::delete(revoke_key))
        .route("/api/v1/signals/{id}/status", post(set_signal_status))
        .route("/api/v1/rules", post(rules::create).get(rules::list))
        .route("/api/v1/rules/{id}", get(rules::get_one).put(rules::update).delete(rules::delete))
        .route("/api/v1/rules/{id}/versions", get(rules::versions))
        .route("/api/v1/rules/{id}/versions/{version}", get(rules::version))
        .route("/api/v1/rules/{id}/diff", get(rules::diff))
        .route("/api/v1/rules/{id}/activate", post(rules::activate))
        .route("/api/v1/rules/{id}/enable", post(rules::enable))
        .route("/api/v1/rules/test", post(rules::test))
        .route("/api/v1/rules/{id}/backtest", post(rules::backtest))
        .route("/api/v1/traces/{trace_id}", get(get_trace))
        .route("/api/v1/rules/{id}/disable", post(rules::disable))
        .route("/api/v1/signals", get(list_signals))
        .route("/api/v1/signals/stream", get(stream_signals))
        .route("/api/v1/signals/{id}", get(get_signal))
        .route("/api/v1/signals/{id}/trace", get(signal_trace))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

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

pub(crate) fn tenant(state: &ApiState, headers: &HeaderMap, scope: Scope) -> Result<TenantId, ApiError> {
    Ok(principal(state, headers)?.tenant_with(scope)?.clone())
}

/// Parses a JSON body; a body over the limit is 413, anything unparsable 400.
pub(crate) fn body<T: for<'de> Deserialize<'de>>(bytes: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = bytes.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("request body over {MAX_BODY} bytes"))
        }
        _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", rejection.body_text()),
    })?;
    serde_json::from_slice(&bytes).map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", error.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    name: String,
}

async fn create_tenant(
    State(state): State<ApiState>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !matches!(principal(&state, &headers)?, Principal::Operator) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "creating tenants needs the operator key"));
    }
    let request: NewTenant = body(bytes)?;
    let (tenant, key) = state.auth.create_tenant(&request.name)?;
    Ok((StatusCode::CREATED, axum::Json(json!({"id": tenant.id, "name": tenant.name, "admin_key": key.key}))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    scopes: Vec<String>,
    /// RFC 3339; the key stops working then.
    expires_at: Option<String>,
}

async fn create_key(State(state): State<ApiState>, headers: HeaderMap, bytes: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    let request: NewKey = body(bytes)?;
    let expires = request.expires_at.as_deref().map(parse_time).transpose()?;
    let key = state.auth.create_key(&tenant, &request.name, &request.scopes, expires)?;
    let expires_at = expires.map(crate::signals::rfc3339);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": key.id, "name": key.name, "key": key.key, "scopes": key.scopes, "expires_at": expires_at})),
    )
        .into_response())
}

async fn list_keys(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    Ok(axum::Json(json!({ "items": state.auth.list_keys(&tenant)? })).into_response())
}

async fn revoke_key(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    if state.auth.revoke_key(&tenant, &id)? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such key"))
    }
}

impl From<crate::webhooks::WebhookError> for ApiError {
    fn from(error: crate::webhooks::WebhookError) -> ApiError {
        match error {
            crate::webhooks::WebhookError::Invalid(message) => bad(message),
            other => ApiError::internal(other),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    url: String,
    #[serde(default)]
    severities: Vec<String>,
    #[serde(default)]
    rules: Vec<String>,
}

async fn create_webhook(
    State(state): State<ApiState>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    let request: NewWebhook = body(bytes)?;
    let severities = request
        .severities
        .iter()
        .map(|text| Severity::parse(text).ok_or_else(|| bad(format!("unknown severity {text:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let (hook, secret) = state.webhooks.create(&tenant, &request.url, severities, request.rules)?;
    let mut value = hook.public();
    value["secret"] = secret.into();
    Ok((StatusCode::CREATED, axum::Json(value)).into_response())
}

async fn list_webhooks(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    let items: Vec<_> = state.webhooks.list(&tenant)?.iter().map(crate::webhooks::Webhook::public).collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

async fn delete_webhook(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    if state.webhooks.delete(&tenant, &id)? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such webhook"))
    }
}

async fn webhook_deliveries(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    match state.webhooks.deliveries(&tenant, &id)? {
        Some(items) => Ok(axum::Json(json!({ "items": items })).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such webhook")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    password: String,
    role: String,
}

async fn create_user(
    State(state): State<ApiState>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    let request: NewUser = body(bytes)?;
    let role = crate::users::Role::parse(&request.role).ok_or_else(|| bad("role must be admin, editor or viewer".into()))?;
    let auth = state.auth.clone();
    let user = tokio::task::spawn_blocking(move || auth.users.create(&tenant, &request.email, &request.password, role))
        .await
        .map_err(ApiError::internal)??;
    Ok((StatusCode::CREATED, axum::Json(user)).into_response())
}

async fn list_users(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    Ok(axum::Json(json!({ "items": state.auth.users.list(&tenant)? })).into_response())
}

async fn delete_user(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Admin)?;
    if state.auth.users.delete(&tenant, &id)? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such user"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    tenant: String,
    email: String,
    password: String,
}

/// Signs a user in: `{token, expires_at, user}`. Failures are one generic 401;
/// after five in a row for the same address, 429 with a doubling Retry-After.
async fn login(State(state): State<ApiState>, bytes: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let request: Login = body(bytes)?;
    let auth = state.auth.clone();
    let result = tokio::task::spawn_blocking(move || auth.users.login(&request.tenant, &request.email, &request.password))
        .await
        .map_err(ApiError::internal)?;
    match result {
        Ok(token) => Ok(axum::Json(token).into_response()),
        Err(crate::users::LoginError::Invalid) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "invalid credentials")),
        Err(crate::users::LoginError::SlowDown(wait)) => {
            let mut response =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", "too many failed sign-ins; wait before trying again")
                    .into_response();
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(wait.as_secs().max(1)));
            Ok(response)
        }
        Err(crate::users::LoginError::Store(error)) => Err(ApiError::internal(error)),
    }
}

fn session(state: &ApiState, headers: &HeaderMap) -> Result<crate::users::Session, ApiError> {
    match principal(state, headers)? {
        Principal::User(session) => Ok(session),
        _ => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "this needs a session token, not a key")),
    }
}

async fn renew(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let session = session(&state, &headers)?;
    Ok(axum::Json(state.auth.users.renew(&session)?).into_response())
}

async fn logout(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let session = session(&state, &headers)?;
    state.auth.users.logout(&session)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: String,
    note: Option<String>,
}

/// Moves a signal through open → acknowledged → resolved / false_positive
/// (or back to open), keeping who, when and why in its history.
async fn set_signal_status(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let principal = principal(&state, &headers)?;
    let tenant = principal.tenant_with(Scope::Write)?.clone();
    let author = principal.author();
    let request: StatusChange = body(bytes)?;
    let status = Status::parse(&request.status).ok_or_else(|| bad(format!("unknown status {:?}", request.status)))?;
    let note = request.note.unwrap_or_default();
    if note.len() > 4096 {
        return Err(bad("note must be at most 4096 bytes".into()));
    }
    match state.signals.set_status(&tenant, &id, status, &note, &author)? {
        Some(signal) => Ok(axum::Json(signal).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such signal")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalQuery {
    rule: Option<String>,
    status: Option<String>,
    severity: Option<String>,
    trace_id: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

pub(crate) fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

async fn list_signals(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<SignalQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Read)?;
    let Query(query) = query.map_err(|rejection| bad(rejection.body_text()))?;
    let status =
        query.status.as_deref().map(|text| Status::parse(text).ok_or_else(|| bad(format!("unknown status {text:?}")))).transpose()?;
    let severity =
        query.severity.as_deref().map(|text| Severity::parse(text).ok_or_else(|| bad(format!("unknown severity {text:?}")))).transpose()?;
    let since_unix_ms = query.since.as_deref().map(parse_time).transpose()?;
    if let Some(trace_id) = &query.trace_id {
        if trace_id.len() != 32 || hex::decode(trace_id).is_err() {
            return Err(bad("trace_id must be 32 hex digits".into()));
        }
    }
    let filter = Filter {
        rule: query.rule,
        status,
        severity,
        trace_id: query.trace_id,
        since_unix_ms,
        cursor: query.cursor,
        limit: query.limit.unwrap_or(50),
    };
    let signals = state.signals.clone();
    let (items, next_cursor) = tokio::task::spawn_blocking(move || signals.list(&tenant, &filter)).await.map_err(ApiError::internal)??;
    Ok(axum::Json(json!({"items": items, "next_cursor": next_cursor})).into_response())
}

/// RFC 3339 (`2026-11-27T10:00:00Z`) or milliseconds since the epoch.
fn parse_time(text: &str) -> Result<u64, ApiError> {
    if let Ok(millis) = text.parse::<u64>() {
        return Ok(millis);
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|since| since.as_millis() as u64)
        .ok_or_else(|| bad(format!("since must be RFC 3339 or milliseconds since the epoch, not {text:?}")))
}

async fn get_signal(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Read)?;
    match state.signals.get(&tenant, &id)? {
        Some(signal) => Ok(axum::Json(signal).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such signal")),
    }
}

/// The trace snapshot of a signal, as OTLP/JSON.
async fn signal_trace(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Read)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such signal");
    let signal = state.signals.get(&tenant, &id)?.ok_or_else(not_found)?;
    let mut trace_id = [0u8; 16];
    hex::decode_to_slice(&signal.trace_id, &mut trace_id).map_err(ApiError::internal)?;
    let snapshot = state.signals.snapshot(&tenant, &trace_id)?.ok_or_else(not_found)?;
    let request =
        <crate::ingest::convert::ExportTraceServiceRequest as prost::Message>::decode(&snapshot[..]).map_err(ApiError::internal)?;
    Ok(axum::Json(request).into_response())
}

/// A retained trace of the tenant (as last evaluated), as OTLP/JSON.
async fn get_trace(State(state): State<ApiState>, headers: HeaderMap, Path(trace_id): Path<String>) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers, Scope::Read)?;
    let mut id = [0u8; 16];
    hex::decode_to_slice(&trace_id, &mut id).map_err(|_| bad("trace id must be 32 hex digits".into()))?;
    let (_, otlp) = state
        .recent
        .get_raw(&tenant, &id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such trace (or no longer retained)"))?;
    let request = <crate::ingest::convert::ExportTraceServiceRequest as prost::Message>::decode(&otlp[..]).map_err(ApiError::internal)?;
    Ok(axum::Json(request).into_response())
}

/// Ready once the listeners run (this handler answering) and the database answers.
async fn ready(State(state): State<ApiState>) -> Response {
    if *state.shutdown.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response();
    }
    match state.store.db.contains_key(b"readyz") {
        Ok(_) => "ready".into_response(),
        Err(error) => {
            tracing::error!(error = %error, "database not readable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// New signals of the tenant as Server-Sent Events (`event: signal`, the
/// signal as JSON), once each is on disk. A client too slow to keep up gets
/// `event: lagged` with how many it missed, and should re-read the list.
async fn stream_signals(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let tenant = tenant(&state, &headers, Scope::Read)?;
    let receiver = state.pipeline.evaluator.subscribe();
    let stream = futures::stream::unfold((receiver, state.shutdown.clone(), tenant), |(mut receiver, mut shutdown, tenant)| async move {
        loop {
            let event = tokio::select! {
                _ = shutdown.changed() => return None,
                event = receiver.recv() => event,
            };
            match event {
                Ok(event) if event.0 == tenant => {
                    let data = serde_json::to_string(&event.1).unwrap_or_default();
                    let item = Event::default().event("signal").id(event.1.id.clone()).data(data);
                    return Some((Ok::<_, std::convert::Infallible>(item), (receiver, shutdown, tenant)));
                }
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    let item = Event::default().event("lagged").data(missed.to_string());
                    return Some((Ok(item), (receiver, shutdown, tenant)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// Prometheus text; carries per-tenant figures, so it needs the operator key.
async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !matches!(principal(&state, &headers)?, Principal::Operator) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "metrics need the operator key"));
    }
    let text = state.pipeline.counters.prometheus(state.pipeline.buffered_spans());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
