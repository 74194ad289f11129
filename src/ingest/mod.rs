//! OTLP trace ingestion: the one [`Ingest::export`] function that both
//! transports ([`grpc`], [`http`]) call once they have a decoded request and
//! the caller's `Authorization` header, and the one error enum
//! ([`IngestError`]) mapped once to gRPC codes and HTTP statuses, as the OTLP
//! specification asks (<https://opentelemetry.io/docs/specs/otlp/>).
//!
//! Spans with invalid ids are refused one by one and reported through
//! `partial_success`; so are spans dropped by the per-trace caps. A request
//! over the tenant's rate or backlog is refused whole, retryably.

pub mod convert;
pub mod grpc;
pub mod http;

use crate::auth::{Auth, AuthError, Scope, TenantId};
use crate::pipeline::{Pipeline, Refusal};
use convert::ExportTraceServiceRequest;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// gRPC messages above this are refused with RESOURCE_EXHAUSTED.
pub const MAX_GRPC_MESSAGE: usize = 4 << 20;
/// OTLP/HTTP bodies above this, after decompression, are refused with 413.
pub const MAX_HTTP_BODY: usize = 20 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Unauthenticated(AuthError),
    #[error("{0}")]
    Forbidden(AuthError),
    #[error("malformed OTLP payload: {0}")]
    Malformed(String),
    #[error("payload larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("unsupported media type {0:?}: send application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    #[error("unsupported content encoding {0:?}: send gzip or identity")]
    UnsupportedEncoding(String),
    #[error("tenant over its ingest rate; retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error("tenant has too many traces in flight; retry after {retry_after:?}")]
    Overloaded { retry_after: Duration },
    #[error("internal error")]
    Internal,
}

impl IngestError {
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            IngestError::RateLimited { retry_after } | IngestError::Overloaded { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The gRPC status code (OTLP/gRPC "Failures").
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            IngestError::Unauthenticated(_) => tonic::Code::Unauthenticated,
            IngestError::Forbidden(_) => tonic::Code::PermissionDenied,
            IngestError::Malformed(_) | IngestError::UnsupportedMediaType(_) | IngestError::UnsupportedEncoding(_) => {
                tonic::Code::InvalidArgument
            }
            IngestError::TooLarge { .. } => tonic::Code::ResourceExhausted,
            IngestError::RateLimited { .. } | IngestError::Overloaded { .. } => tonic::Code::Unavailable,
            IngestError::Internal => tonic::Code::Internal,
        }
    }

    /// The HTTP status (OTLP/HTTP "Failures"; 429 and 503 are the retryable ones).
    pub fn http_status(&self) -> ::http::StatusCode {
        use ::http::StatusCode;
        match self {
            IngestError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            IngestError::Forbidden(_) => StatusCode::FORBIDDEN,
            IngestError::Malformed(_) => StatusCode::BAD_REQUEST,
            IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::UnsupportedMediaType(_) | IngestError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// OTLP's `partial_success`: spans not kept and why.
#[derive(Debug, Default, PartialEq)]
pub struct PartialSuccess {
    pub rejected_spans: i64,
    pub error_message: String,
}

#[derive(Clone)]
pub struct Ingest {
    pub auth: Arc<Auth>,
    pub pipeline: Arc<Pipeline>,
}

impl Ingest {
    /// Verifies the credential: a key with the `ingest` scope.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<TenantId, IngestError> {
        let principal = self.auth.authenticate(authorization).map_err(IngestError::Unauthenticated)?;
        principal.tenant_with(Scope::Ingest).cloned().map_err(IngestError::Forbidden)
    }

    /// Admits, converts and assembles one decoded request for `tenant`.
    /// Blocking work: call it off the async workers for large requests.
    pub fn export(&self, tenant: &TenantId, request: ExportTraceServiceRequest, now: Instant) -> Result<PartialSuccess, IngestError> {
        let span_count: usize =
            request.resource_spans.iter().flat_map(|resource| &resource.scope_spans).map(|scope| scope.spans.len()).sum();
        if span_count == 0 {
            return Ok(PartialSuccess::default());
        }
        self.pipeline.admit(tenant, span_count, now).map_err(|refusal| match refusal {
            Refusal::RateLimited { retry_after } => IngestError::RateLimited { retry_after },
            Refusal::Overloaded { retry_after } => IngestError::Overloaded { retry_after },
        })?;
        let converted = convert::convert(request);
        self.pipeline.count_rejections(tenant, &converted.rejected);
        let mut rejected = converted.rejected_total();
        let mut messages = Vec::new();
        if rejected > 0 {
            messages.push(converted.rejection_message());
        }
        let dropped = self.pipeline.accept(tenant, converted.spans, now);
        if dropped.span_limit > 0 {
            messages.push(format!("{} span(s): trace over its span limit", dropped.span_limit));
        }
        if dropped.byte_limit > 0 {
            messages.push(format!("{} span(s): trace over its size limit", dropped.byte_limit));
        }
        rejected += dropped.span_limit + dropped.byte_limit;
        Ok(PartialSuccess { rejected_spans: rejected.min(i64::MAX as u64) as i64, error_message: messages.join("; ") })
    }
}
