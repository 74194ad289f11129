//! Who may call: tenants (operator only), API keys with scopes, tenant users
//! with roles, and their sessions (sign-in, renewal, sign-out).

use super::extract::{Admin, ApiJson, ApiPath, Authenticated, Operator};
use super::{ApiError, ApiState, ErrorBody, Items, bad, blocking, parse_time, principal};
use crate::auth::users::{LoginError, Session, Token, UserInfo};
use crate::auth::{KeyInfo, Principal, Scope};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// 1 to 128 characters, not all blank; unique (trimmed, case-insensitive).
    #[schema(min_length = 1, max_length = 128, pattern = r"\S")]
    name: String,
}

/// A tenant as the operator lists it.
#[derive(Serialize, ToSchema)]
pub struct TenantInfo {
    id: String,
    name: String,
    created_at: String,
}

/// Every tenant, in id order (operator key only).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", operation_id = "list_tenants", responses(
    (status = 200, description = "Tenants", body = Items<TenantInfo>)
))]
pub async fn list_tenants(State(state): State<ApiState>, _operator: Operator) -> Result<Response, ApiError> {
    let tenants = blocking(move || Ok(state.auth.tenants()?)).await?;
    let items: Vec<TenantInfo> = tenants
        .into_iter()
        .map(|tenant| TenantInfo { id: tenant.id, name: tenant.name, created_at: crate::model::time::rfc3339(tenant.created_unix_ms) })
        .collect();
    Ok(axum::Json(Items { items }).into_response())
}

/// A new tenant with its first admin key (shown this once).
#[derive(Serialize, ToSchema)]
pub struct TenantCreated {
    id: String,
    name: String,
    admin_key: String,
}

/// Creates a tenant (operator key only) and returns its first admin key.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = NewTenant, responses(
    (status = 201, description = "Created", body = TenantCreated),
    (status = 409, description = "A tenant with this name exists", body = ErrorBody)
))]
pub async fn create_tenant(
    State(state): State<ApiState>,
    _operator: Operator,
    ApiJson(request): ApiJson<NewTenant>,
) -> Result<Response, ApiError> {
    let (tenant, key) = state.auth.create_tenant(&request.name)?;
    let created = TenantCreated { id: tenant.id, name: tenant.name, admin_key: key.key };
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[schema(min_length = 1, max_length = 128)]
    name: String,
    /// Any of `ingest`, `read`, `write`, `admin` (admin implies the others).
    #[schema(value_type = Vec<Scope>, min_items = 1)]
    scopes: Vec<String>,
    /// RFC 3339 or milliseconds since the epoch; the key stops working then.
    expires_at: Option<String>,
}

/// A new key: its secret is shown this once.
#[derive(Serialize, ToSchema)]
pub struct KeyCreated {
    id: String,
    name: String,
    key: String,
    scopes: Vec<Scope>,
    expires_at: Option<String>,
}

/// Creates an API key (admin).
#[utoipa::path(post, path = "/api/v1/keys", tag = "identity", request_body = NewKey, responses(
    (status = 201, description = "Created", body = KeyCreated),
    (status = 409, description = "The tenant holds its quota of keys (--max-keys-per-tenant); revoke one first", body = ErrorBody)
))]
pub async fn create_key(
    State(state): State<ApiState>,
    Admin(tenant): Admin,
    ApiJson(request): ApiJson<NewKey>,
) -> Result<Response, ApiError> {
    let expires = request.expires_at.as_deref().map(|text| parse_time("expires_at", text)).transpose()?;
    let key = state.auth.create_key(&tenant, &request.name, &request.scopes, expires)?;
    let created =
        KeyCreated { id: key.id, name: key.name, key: key.key, scopes: key.scopes, expires_at: expires.map(crate::model::time::rfc3339) };
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// The tenant's keys, without secrets (admin).
#[utoipa::path(get, path = "/api/v1/keys", tag = "identity", responses((status = 200, description = "Keys", body = Items<KeyInfo>)))]
pub async fn list_keys(State(state): State<ApiState>, Admin(tenant): Admin) -> Result<Response, ApiError> {
    Ok(axum::Json(Items { items: state.auth.list_keys(&tenant)? }).into_response())
}

/// Revokes a key; its next request is refused (admin).
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "identity", params(("id" = String, Path, description = "Key id")), responses(
    (status = 204, description = "Revoked"),
    (status = 404, description = "No such key in this tenant", body = ErrorBody)
))]
pub async fn revoke_key(State(state): State<ApiState>, Admin(tenant): Admin, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    if state.auth.revoke_key(&tenant, &id)? { Ok(StatusCode::NO_CONTENT.into_response()) } else { Err(ApiError::not_found("key")) }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Stored lower-cased; unique in the tenant.
    #[schema(max_length = 254, pattern = r"^\S*@\S*$")]
    email: String,
    /// At least 12 characters, at most 1024 bytes.
    #[schema(min_length = 12, max_length = 1024)]
    password: String,
    #[schema(value_type = crate::auth::users::Role)]
    role: String,
}

/// Creates a user of the tenant (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "identity", request_body = NewUser, responses(
    (status = 201, description = "Created", body = UserInfo),
    (status = 409, description = "The email is taken in this tenant, or the tenant has its quota of users (--max-users-per-tenant)", body = ErrorBody)
))]
pub async fn create_user(
    State(state): State<ApiState>,
    Admin(tenant): Admin,
    ApiJson(request): ApiJson<NewUser>,
) -> Result<Response, ApiError> {
    let role = crate::auth::users::Role::parse(&request.role).ok_or_else(|| bad("role must be admin, editor or viewer"))?;
    let auth = state.auth.clone();
    let user = blocking(move || Ok(auth.users.create(&tenant, &request.email, &request.password, role)?)).await?;
    Ok((StatusCode::CREATED, axum::Json(user)).into_response())
}

/// The tenant's users (admin); never a password hash.
#[utoipa::path(get, path = "/api/v1/users", tag = "identity", responses((status = 200, description = "Users", body = Items<UserInfo>)))]
pub async fn list_users(State(state): State<ApiState>, Admin(tenant): Admin) -> Result<Response, ApiError> {
    Ok(axum::Json(Items { items: state.auth.users.list(&tenant)? }).into_response())
}

/// Deletes a user and ends their sessions (admin).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "identity", params(("id" = String, Path, description = "User id")), responses(
    (status = 204, description = "Deleted"),
    (status = 404, description = "No such user in this tenant", body = ErrorBody)
))]
pub async fn delete_user(State(state): State<ApiState>, Admin(tenant): Admin, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    if state.auth.users.delete(&tenant, &id)? { Ok(StatusCode::NO_CONTENT.into_response()) } else { Err(ApiError::not_found("user")) }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The tenant's id or its name.
    tenant: String,
    email: String,
    password: String,
}

/// Signs a user in. Failures are one generic 401; after five in a row for the
/// same tenant and email from the same client network, 429 with a doubling
/// Retry-After (other clients, such as the account's owner, are not slowed).
/// Tenant over 128 bytes, email over 254 or password over 1024: 400 before any
/// check; all password-check slots busy: 503.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "identity", request_body = Login, responses(
    (status = 200, description = "A session token (15 minutes)", body = Token),
    (status = 401, description = "Invalid credentials", body = ErrorBody),
    (status = 429, description = "Too many failed sign-ins from this client; see Retry-After", body = ErrorBody,
        headers(("retry-after" = u64, description = "Seconds to wait"))),
    (status = 503, description = "Too many sign-ins at once; see Retry-After", body = ErrorBody,
        headers(("retry-after" = u64, description = "Seconds to wait")))
))]
pub async fn login(
    State(state): State<ApiState>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    ApiJson(request): ApiJson<Login>,
) -> Result<Response, ApiError> {
    let client = peer.map(|axum::Extension(axum::extract::ConnectInfo(address))| address.ip());
    let auth = state.auth.clone();
    let result = blocking(move || Ok(auth.users.login(&request.tenant, &request.email, &request.password, client))).await?;
    let retry_after = |mut response: Response, wait: std::time::Duration| {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(wait.as_secs().max(1)));
        response
    };
    match result {
        Ok(token) => Ok(axum::Json(token).into_response()),
        Err(LoginError::Invalid) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "invalid credentials")),
        Err(LoginError::Malformed(message)) => Err(bad(message)),
        Err(LoginError::SlowDown(wait)) => {
            let error =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", "too many failed sign-ins; wait before trying again");
            Ok(retry_after(error.into_response(), wait))
        }
        Err(LoginError::Busy) => {
            let error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "too many sign-ins at once; retry shortly");
            Ok(retry_after(error.into_response(), std::time::Duration::from_secs(1)))
        }
        Err(LoginError::Store(error)) => Err(ApiError::internal(error)),
    }
}

fn session(state: &ApiState, headers: &HeaderMap) -> Result<Session, ApiError> {
    match principal(state, headers)? {
        Principal::User(session) => Ok(session),
        _ => Err(bad("this needs a session token, not a key")),
    }
}

/// A fresh token for the same session (before the current one expires), valid
/// for `--session-ttl` but never past `--session-max-lifetime` from the
/// sign-in; after that, 401: sign in again.
#[utoipa::path(post, path = "/api/v1/auth/renew", tag = "identity", responses(
    (status = 200, description = "A new token for the same session", body = Token),
    (status = 400, description = "Called with a key, not a session token", body = ErrorBody)
))]
pub async fn renew(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let session = session(&state, &headers)?;
    Ok(axum::Json(state.auth.users.renew(&session)?).into_response())
}

/// Ends the session: every token of it stops working.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "identity", responses(
    (status = 204, description = "Signed out"),
    (status = 400, description = "Called with a key, not a session token", body = ErrorBody)
))]
pub async fn logout(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let session = session(&state, &headers)?;
    state.auth.users.logout(&session)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Who the credential is, in which tenant, with which scopes.
#[derive(Serialize, ToSchema)]
pub struct Caller {
    /// `user` (a session token) or `key`.
    kind: &'static str,
    /// The user id or the key id.
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<crate::auth::users::Role>,
    /// What the credential may do (a role's scopes for a user).
    scopes: Vec<Scope>,
}

/// What a client (the console) needs to know about this server and the caller.
#[derive(Serialize, ToSchema)]
pub struct Info {
    /// FLUO's version.
    version: &'static str,
    tenant: String,
    /// The ports OTLP is received on (the host is the one the client reached).
    otlp_grpc_port: u16,
    otlp_http_port: u16,
    principal: Caller,
}

/// The caller and the server's OTLP ports; any tenant credential but an
/// ingest-only key.
#[utoipa::path(get, path = "/api/v1/info", operation_id = "get_info", tag = "identity", responses(
    (status = 200, description = "The caller and the server", body = Info)
))]
pub async fn info(State(state): State<ApiState>, Authenticated(principal): Authenticated) -> Result<Response, ApiError> {
    let tenant = principal.tenant_with(Scope::Read)?.clone();
    let caller = match &principal {
        Principal::User(session) => {
            let scopes = session.role.scopes().to_vec();
            let email = state.auth.users.email(tenant.as_str(), &session.user_id)?;
            Caller { kind: "user", id: session.user_id.clone(), email, role: Some(session.role), scopes }
        }
        Principal::Key { key_id, scopes, .. } => {
            Caller { kind: "key", id: key_id.clone(), email: None, role: None, scopes: scopes.clone() }
        }
        Principal::Operator => return Err(crate::auth::AuthError::Forbidden("the operator key has no tenant").into()),
    };
    Ok(axum::Json(Info {
        version: env!("CARGO_PKG_VERSION"),
        tenant: tenant.as_str().to_string(),
        otlp_grpc_port: state.otlp_ports.0,
        otlp_http_port: state.otlp_ports.1,
        principal: caller,
    })
    .into_response())
}
