//! OTLP/HTTP: `POST /v1/traces` with `application/x-protobuf` or
//! `application/json` bodies, optionally gzip-compressed. The credential is
//! checked before the body is read; the body is read up to
//! [`MAX_HTTP_BODY`](super::MAX_HTTP_BODY) and decompressed through a reader
//! that stops at the same cap, so a gzip bomb costs at most the cap in memory,
//! and must arrive within [`HTTP_BODY_TIMEOUT`](super::HTTP_BODY_TIMEOUT).
//! Every refusal is counted and logged through [`Ingest::refused`].
//! Responses and error bodies (`google.rpc.Status`) use the request's encoding,
//! as the OTLP/HTTP specification asks.

use super::{HTTP_BODY_TIMEOUT, Ingest, IngestError, MAX_HTTP_BODY, PartialSuccess, convert};
use crate::model::tenant::TenantId;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse};
use prost::Message;
use std::io::Read;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

pub fn router(ingest: Ingest) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .route("/v1/metrics", any(|| async { traces_only("metrics") }))
        .route("/v1/logs", any(|| async { traces_only("logs") }))
        .fallback(|| async { not_served(StatusCode::NOT_FOUND, "no such endpoint: OTLP/HTTP traces are sent to POST /v1/traces") })
        .method_not_allowed_fallback(|| async { not_served(StatusCode::METHOD_NOT_ALLOWED, "send traces with POST") })
        .layer(DefaultBodyLimit::disable())
        .with_state(ingest)
}

/// OTLP metrics or logs: said plainly, with what to set instead (an SDK
/// pointed at FLUO with `OTEL_EXPORTER_OTLP_ENDPOINT` sends all three).
fn traces_only(signal: &str) -> Response {
    let variable = if signal == "metrics" { "OTEL_METRICS_EXPORTER" } else { "OTEL_LOGS_EXPORTER" };
    not_served(
        StatusCode::NOT_FOUND,
        &format!(
            "FLUO receives OTLP traces only; /v1/{signal} is not served. Point only traces here \
             (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=<this server>/v1/traces) or set {variable}=none"
        ),
    )
}

/// Another path or method: a `google.rpc.Status` in JSON like every OTLP/HTTP error.
fn not_served(status: StatusCode, message: &str) -> Response {
    let code = if status == StatusCode::NOT_FOUND { tonic::Code::NotFound } else { tonic::Code::Unimplemented };
    let code = code as i32;
    let body = serde_json::to_vec(&serde_json::json!({"code": code, "message": message})).expect("json");
    (status, [(header::CONTENT_TYPE, Encoding::Json.content_type())], body).into_response()
}

async fn export(State(ingest): State<Ingest>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    // Set by the accept loop (`crate::listen`); absent when the router is driven directly.
    let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|info| info.0);
    let (encoding, tenant, result) = receive(&ingest, &parts.headers, body).await;
    match result {
        Ok(partial) => success(encoding, partial),
        Err(error) => {
            ingest.refused(&error, "http", tenant.as_ref(), peer);
            failure(encoding, error)
        }
    }
}

/// Checks, reads, decodes and exports one request; says in which encoding to
/// answer and, once known, for which tenant.
async fn receive(ingest: &Ingest, headers: &HeaderMap, body: Body) -> (Encoding, Option<TenantId>, Result<PartialSuccess, IngestError>) {
    let media_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    let encoding = match media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => return (Encoding::Json, None, Err(IngestError::UnsupportedMediaType(other.to_string()))),
    };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let tenant = match ingest.authenticate(authorization) {
        Ok(tenant) => tenant,
        Err(error) => return (encoding, None, Err(error)),
    };
    let result = receive_body(ingest, headers, body, encoding, tenant.clone()).await;
    (encoding, Some(tenant), result)
}

async fn receive_body(
    ingest: &Ingest,
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
    tenant: TenantId,
) -> Result<PartialSuccess, IngestError> {
    let gzip =
        match headers.get(header::CONTENT_ENCODING).and_then(|value| value.to_str().ok()).map(|value| value.trim().to_ascii_lowercase()) {
            None => false,
            Some(value) if value.is_empty() || value == "identity" => false,
            Some(value) if value == "gzip" => true,
            Some(other) => return Err(IngestError::UnsupportedEncoding(other)),
        };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()).and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_HTTP_BODY as u64) {
        return Err(IngestError::TooLarge { limit: MAX_HTTP_BODY });
    }
    let body = match tokio::time::timeout(HTTP_BODY_TIMEOUT, axum::body::to_bytes(body, MAX_HTTP_BODY)).await {
        Err(_elapsed) => return Err(IngestError::BodyTimeout { limit: HTTP_BODY_TIMEOUT }),
        Ok(Ok(body)) => body,
        Ok(Err(error)) => {
            // `to_bytes` fails with `LengthLimitError` (a chunked body over the cap) or a transport error.
            return Err(match error.into_inner().downcast::<http_body_util::LengthLimitError>() {
                Ok(_) => IngestError::TooLarge { limit: MAX_HTTP_BODY },
                Err(other) => IngestError::Malformed(format!("unreadable body: {other}")),
            });
        }
    };
    let ingest = ingest.clone();
    tokio::task::spawn_blocking(move || {
        let request = decode(&body, gzip, encoding)?;
        ingest.export(&tenant, request, Instant::now())
    })
    .await
    .unwrap_or(Err(IngestError::Internal))
}

fn decode(body: &Bytes, gzip: bool, encoding: Encoding) -> Result<convert::ExportTraceServiceRequest, IngestError> {
    let inflated;
    let bytes: &[u8] = if gzip {
        let mut out = Vec::new();
        let mut reader = flate2::read::MultiGzDecoder::new(&body[..]).take(MAX_HTTP_BODY as u64 + 1);
        reader.read_to_end(&mut out).map_err(|error| IngestError::Malformed(format!("invalid gzip body: {error}")))?;
        if out.len() > MAX_HTTP_BODY {
            return Err(IngestError::TooLarge { limit: MAX_HTTP_BODY });
        }
        inflated = out;
        &inflated
    } else {
        body
    };
    match encoding {
        Encoding::Protobuf => convert::ExportTraceServiceRequest::decode(bytes).map_err(|error| IngestError::Malformed(error.to_string())),
        Encoding::Json => convert::from_json(bytes).map_err(|error| IngestError::Malformed(error.to_string())),
    }
}

fn success(encoding: Encoding, partial: PartialSuccess) -> Response {
    let response = ExportTraceServiceResponse {
        partial_success: (partial.rejected_spans > 0)
            .then(|| ExportTracePartialSuccess { rejected_spans: partial.rejected_spans, error_message: partial.error_message }),
    };
    let body = match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
    };
    ([(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}

fn failure(encoding: Encoding, error: IngestError) -> Response {
    let message = error.to_string();
    let code = error.grpc_code() as i32;
    let body = match encoding {
        Encoding::Protobuf => tonic_types::Status { code, message, details: vec![] }.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&serde_json::json!({"code": code, "message": message})).expect("json"),
    };
    let mut response = (error.http_status(), [(header::CONTENT_TYPE, encoding.content_type())], body).into_response();
    if let Some(delay) = error.retry_after() {
        let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    if error.http_status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}
