//! OTLP trace ingestion: the one [`Ingest::export`] function that both
//! transports ([`grpc`], [`http`]) call once they have a decoded request and
//! the caller's `Authorization` header, and the one error enum
//! ([`IngestError`]) mapped once to gRPC codes and HTTP statuses, as the OTLP
//! specification asks (<https://opentelemetry.io/docs/specs/otlp/>).
//!
//! Spans with invalid ids are refused one by one and reported through
//! `partial_success`; so are spans dropped by the per-trace caps. A request
//! over the tenant's span or byte rate, its backlog, or the global memory
//! budget for live traces is refused whole, retryably. Accepted spans are
//! capped by [`convert::SpanLimits`] (attributes, value bytes). Every refused
//! request is counted by reason and logged, at most [`REFUSAL_LOGS_PER_MINUTE`]
//! lines a minute ([`Ingest::refused`]).

pub mod grpc;
pub mod http;

use crate::auth::{Auth, AuthError, Scope};

use crate::model::otlp::{self as convert, ExportTraceServiceRequest};
use crate::model::tenant::TenantId;
use crate::pipeline::{Pipeline, Refusal};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// gRPC messages above this are refused with RESOURCE_EXHAUSTED.
pub const MAX_GRPC_MESSAGE: usize = 4 << 20;
/// OTLP/HTTP bodies above this, after decompression, are refused with 413.
pub const MAX_HTTP_BODY: usize = 20 << 20;
/// An OTLP/HTTP body must arrive within this, else 408 (a slow body holds a connection).
pub const HTTP_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Refused requests are logged at most this often; the rest are counted and
/// summed up in the next line (a client can make every request fail).
pub const REFUSAL_LOGS_PER_MINUTE: u32 = 20;

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
    #[error("server memory for live traces is full; retry after {retry_after:?}")]
    MemoryBudget { retry_after: Duration },
    #[error("the span log cannot record spans now; retry after {retry_after:?}")]
    LogUnavailable { retry_after: Duration },
    #[error("request body not received within {limit:?}")]
    BodyTimeout { limit: Duration },
    #[error("internal error")]
    Internal,
}

impl IngestError {
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            IngestError::RateLimited { retry_after }
            | IngestError::Overloaded { retry_after }
            | IngestError::MemoryBudget { retry_after }
            | IngestError::LogUnavailable { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The `reason` label of `fluo_requests_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Unauthenticated(_) => "unauthenticated",
            IngestError::Forbidden(_) => "forbidden",
            IngestError::Malformed(_) => "malformed",
            IngestError::TooLarge { .. } => "too_large",
            IngestError::UnsupportedMediaType(_) => "unsupported_media_type",
            IngestError::UnsupportedEncoding(_) => "unsupported_encoding",
            IngestError::RateLimited { .. } => "rate_limited",
            IngestError::Overloaded { .. } => "overloaded",
            IngestError::MemoryBudget { .. } => "memory_budget",
            IngestError::LogUnavailable { .. } => "log_unavailable",
            IngestError::BodyTimeout { .. } => "body_timeout",
            IngestError::Internal => "internal",
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
            IngestError::RateLimited { .. }
            | IngestError::Overloaded { .. }
            | IngestError::MemoryBudget { .. }
            | IngestError::LogUnavailable { .. } => tonic::Code::Unavailable,
            IngestError::BodyTimeout { .. } => tonic::Code::DeadlineExceeded,
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
            IngestError::Overloaded { .. } | IngestError::MemoryBudget { .. } | IngestError::LogUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            IngestError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
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
    /// Caps applied to every accepted span.
    pub span_limits: convert::SpanLimits,
    refusal_log: Arc<Mutex<LogBudget>>,
}

/// Allows `per_window` log lines per `window`; counts the rest.
#[derive(Debug)]
pub struct LogBudget {
    per_window: u32,
    window: Duration,
    started: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogBudget {
    pub fn new(per_window: u32, window: Duration) -> LogBudget {
        LogBudget { per_window, window, started: None, logged: 0, suppressed: 0 }
    }

    /// `Some(lines suppressed since the last one logged)` if a line may be logged at `now`.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.started.is_none_or(|started| now.saturating_duration_since(started) >= self.window) {
            self.started = Some(now);
            self.logged = 0;
        }
        if self.logged >= self.per_window {
            self.suppressed = self.suppressed.saturating_add(1);
            return None;
        }
        self.logged += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// The answer to a request the pipeline refused.
fn refused(refusal: Refusal) -> IngestError {
    match refusal {
        Refusal::RateLimited { retry_after } => IngestError::RateLimited { retry_after },
        Refusal::Overloaded { retry_after } => IngestError::Overloaded { retry_after },
        Refusal::MemoryBudget { retry_after } => IngestError::MemoryBudget { retry_after },
        Refusal::LogUnavailable { retry_after } => IngestError::LogUnavailable { retry_after },
    }
}

impl Ingest {
    pub fn new(auth: Arc<Auth>, pipeline: Arc<Pipeline>, span_limits: convert::SpanLimits) -> Ingest {
        let refusal_log = Arc::new(Mutex::new(LogBudget::new(REFUSAL_LOGS_PER_MINUTE, Duration::from_secs(60))));
        Ingest { auth, pipeline, span_limits, refusal_log }
    }

    /// Counts a refused request by reason and logs it (rate-limited). The
    /// transports call it for every error they answer.
    pub fn refused(&self, error: &IngestError, transport: &'static str, tenant: Option<&TenantId>, peer: Option<SocketAddr>) {
        self.pipeline.counters.refused(error.reason());
        let allowed = self.refusal_log.lock().unwrap_or_else(|poison| poison.into_inner()).allow(Instant::now());
        let Some(suppressed) = allowed else { return };
        let tenant = tenant.map(TenantId::as_str).unwrap_or("-");
        let peer = peer.map(|peer| peer.to_string()).unwrap_or_else(|| "-".into());
        tracing::warn!(transport, reason = error.reason(), tenant, peer = %peer, error = %error, suppressed, "otlp request refused");
    }

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
        // Admitted by bytes as well as spans: the encoded size is the same
        // measure for both transports and encodings (JSON is larger on the wire).
        let bytes = prost::Message::encoded_len(&request);
        self.pipeline.admit(tenant, span_count, bytes, now).map_err(refused)?;
        // The span log keeps the request as received (replay converts it again).
        let otlp = if self.pipeline.logs_requests() { prost::Message::encode_to_vec(&request) } else { Vec::new() };
        let converted = convert::convert_with(request, &self.span_limits);
        self.pipeline.count_rejections(tenant, &converted.rejected);
        self.pipeline.count_limited(&converted.limited);
        let mut rejected = converted.rejected_total();
        let mut messages = Vec::new();
        if rejected > 0 {
            messages.push(converted.rejection_message());
        }
        let dropped = self.pipeline.accept(tenant, converted.spans, &otlp, now).map_err(refused)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_logs_are_limited_per_window_and_report_what_they_skipped() {
        let mut budget = LogBudget::new(2, Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(budget.allow(start), Some(0));
        assert_eq!(budget.allow(start), Some(0));
        assert_eq!(budget.allow(start + Duration::from_secs(1)), None);
        assert_eq!(budget.allow(start + Duration::from_secs(59)), None);
        assert_eq!(budget.allow(start + Duration::from_secs(60)), Some(2), "the next window's first line says how many were skipped");
        assert_eq!(budget.allow(start + Duration::from_secs(61)), Some(0));
    }

    #[test]
    fn every_error_has_a_reason_label() {
        let errors = [
            IngestError::Unauthenticated(AuthError::Missing),
            IngestError::Malformed("x".into()),
            IngestError::TooLarge { limit: 1 },
            IngestError::MemoryBudget { retry_after: Duration::from_secs(1) },
            IngestError::BodyTimeout { limit: HTTP_BODY_TIMEOUT },
        ];
        let reasons: Vec<&str> = errors.iter().map(IngestError::reason).collect();
        assert_eq!(reasons, ["unauthenticated", "malformed", "too_large", "memory_budget", "body_timeout"]);
        assert_eq!(errors[3].grpc_code(), tonic::Code::Unavailable);
        assert_eq!(errors[3].http_status(), ::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(errors[3].retry_after().is_some());
    }
}
