//! What a handler's signature says: who may call it and with what. A scope
//! extractor ([`Read`], [`Write`], [`Admin`]) authenticates the bearer
//! credential and yields the caller's tenant (401/403 otherwise), [`Authenticated`]
//! yields the verified principal and [`Operator`] admits the operator key only;
//! [`ApiPath`],
//! [`ApiQuery`] and [`ApiJson`] parse the path, the query and a JSON object body,
//! and reject in the API's one error shape. Extractors run in the order of the
//! handler's arguments, so the credential is checked before any input is read.

use super::{ApiError, ApiState, body, principal, tenant};
use crate::auth::{Principal, Scope};
use crate::model::tenant::TenantId;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

macro_rules! scoped {
    ($(#[$doc:meta])* $name:ident, $scope:expr) => {
        $(#[$doc])*
        pub struct $name(pub TenantId);

        impl FromRequestParts<ApiState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
                tenant(state, &parts.headers, $scope).map($name)
            }
        }
    };
}

scoped!(
    /// A credential with the `read` scope; its tenant.
    Read,
    Scope::Read
);
scoped!(
    /// A credential with the `write` scope; its tenant.
    Write,
    Scope::Write
);
scoped!(
    /// A credential with the `admin` scope; its tenant.
    Admin,
    Scope::Admin
);

/// Path parameters; a mismatch is 400 `invalid_request`.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<ApiState> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        Ok(ApiPath(Path::<T>::from_request_parts(parts, state).await?.0))
    }
}

/// Query parameters; unknown or malformed ones are 400 `invalid_request`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<ApiState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        Ok(ApiQuery(Query::<T>::from_request_parts(parts, state).await?.0))
    }
}

/// A JSON object body: 413 over the body limit, 400 `invalid_json` otherwise
/// unreadable (see [`body`]).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<ApiState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &ApiState) -> Result<Self, ApiError> {
        body(Bytes::from_request(request, state).await).map(ApiJson)
    }
}

/// The verified caller (a key, a session or the operator), for handlers that
/// record the author or decide by who is calling.
pub struct Authenticated(pub Principal);

impl FromRequestParts<ApiState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        principal(state, &parts.headers).map(Authenticated)
    }
}

/// The operator key; any other credential gets 403.
pub struct Operator;

impl FromRequestParts<ApiState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        match principal(state, &parts.headers)? {
            Principal::Operator => Ok(Operator),
            _ => Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only the operator key may do this")),
        }
    }
}
