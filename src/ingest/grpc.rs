//! OTLP/gRPC: tonic's `TraceService` on its own listener. Authentication runs
//! in an interceptor, before the message is read; messages over
//! [`MAX_GRPC_MESSAGE`](super::MAX_GRPC_MESSAGE) are refused by tonic's decoder.
//! Tonic reports an oversized message as OUT_OF_RANGE, the gRPC specification
//! says RESOURCE_EXHAUSTED; a response layer translates the code (this service
//! never returns OUT_OF_RANGE itself). Likewise tonic-prost reports a message
//! that does not decode as INTERNAL ("failed to decode Protobuf message…");
//! OTLP wants INVALID_ARGUMENT for a malformed payload, so the layer rewrites
//! that one too. Gzip-compressed messages are accepted. Every refusal —
//! interceptor, handler, or the decoder codes the layer rewrites — is counted
//! and logged through [`Ingest::refused`].
//!
//! Connections: the caller caps how many are open (`crate::listen`); HTTP/2
//! keep-alive pings find dead peers, and one export may take at most
//! [`REQUEST_TIMEOUT`].

use super::{Ingest, IngestError};
use crate::model::tenant::TenantId;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse};
use std::future::Future;
use std::time::Instant;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The longest one export may take (tonic answers DEADLINE_EXCEEDED beyond).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// HTTP/2 keep-alive: a ping this often on an idle connection, and the
/// connection closed if the answer takes longer than [`KEEPALIVE_TIMEOUT`].
pub const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
pub const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

struct Service {
    ingest: Ingest,
}

pub fn status_of(error: &IngestError) -> Status {
    let message = error.to_string();
    match error.retry_after() {
        Some(delay) => Status::with_error_details(error.grpc_code(), message, ErrorDetails::with_retry_info(Some(delay))),
        None if matches!(error, IngestError::Internal) => Status::internal("internal error"),
        None => Status::new(error.grpc_code(), message),
    }
}

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(&self, request: Request<ExportTraceServiceRequest>) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let tenant = request.extensions().get::<TenantId>().cloned().ok_or_else(|| Status::unauthenticated("missing credentials"))?;
        let peer = request.remote_addr();
        let message = request.into_inner();
        let ingest = self.ingest.clone();
        let for_export = tenant.clone();
        let result = tokio::task::spawn_blocking(move || ingest.export(&for_export, message, Instant::now()))
            .await
            .unwrap_or(Err(IngestError::Internal));
        if let Err(error) = &result {
            self.ingest.refused(error, "grpc", Some(&tenant), peer);
        }
        match result {
            Ok(partial) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: (partial.rejected_spans > 0)
                    .then(|| ExportTracePartialSuccess { rejected_spans: partial.rejected_spans, error_message: partial.error_message }),
            })),
            Err(error) => Err(status_of(&error)),
        }
    }
}

/// Serves OTLP/gRPC on the `incoming` connections until `shutdown`
/// completes (the caller bounds the connections: `crate::listen`).
pub async fn serve<Io>(
    incoming: impl futures::Stream<Item = std::io::Result<Io>> + Send + 'static,
    ingest: Ingest,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + tonic::transport::server::Connected + Unpin + Send + 'static,
{
    let auth_ingest = ingest.clone();
    let interceptor = move |mut request: Request<()>| {
        let header = request.metadata().get("authorization").and_then(|value| value.to_str().ok());
        match auth_ingest.authenticate(header) {
            Ok(tenant) => {
                request.extensions_mut().insert(tenant);
                Ok(request)
            }
            Err(error) => {
                auth_ingest.refused(&error, "grpc", None, request.remote_addr());
                Err(status_of(&error))
            }
        }
    };
    let layer_ingest = ingest.clone();
    let service = TraceServiceServer::new(Service { ingest })
        .max_decoding_message_size(super::MAX_GRPC_MESSAGE)
        .accept_compressed(CompressionEncoding::Gzip);
    let service = tonic::service::interceptor::InterceptedService::new(service, interceptor);
    tonic::transport::Server::builder()
        .timeout(REQUEST_TIMEOUT)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(tower::util::MapResponseLayer::new(move |response| otlp_codes(response, &layer_ingest)))
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// The grpc-message (percent-encoded) for a service FLUO does not serve.
const TRACES_ONLY: &str = "FLUO%20receives%20OTLP%20traces%20only%20(TraceService%2FExport)%3B%20metrics%20and%20logs%20are%20not%20served%3A%20set%20OTEL_EXPORTER_OTLP_TRACES_ENDPOINT%20or%20OTEL_METRICS_EXPORTER%3Dnone%20and%20OTEL_LOGS_EXPORTER%3Dnone";

/// Rewrites the codes tonic's decoder uses into the ones OTLP specifies, and
/// says what is served when another service is called.
fn otlp_codes(mut response: ::http::Response<tonic::body::Body>, ingest: &Ingest) -> ::http::Response<tonic::body::Body> {
    let headers = response.headers();
    let code = headers.get("grpc-status").and_then(|status| status.to_str().ok()).and_then(|status| status.parse::<i32>().ok());
    let decode_failure =
        headers.get("grpc-message").is_some_and(|message| message.as_bytes().starts_with(b"failed%20to%20decode%20Protobuf"));
    // Another service (metrics, logs): tonic answers UNIMPLEMENTED without a word.
    if code == Some(tonic::Code::Unimplemented as i32) && !headers.contains_key("grpc-message") {
        response.headers_mut().insert("grpc-message", ::http::HeaderValue::from_static(TRACES_ONLY));
        return response;
    }
    let replacement = match code.map(tonic::Code::from) {
        Some(tonic::Code::OutOfRange) => Some(tonic::Code::ResourceExhausted),
        Some(tonic::Code::Internal) if decode_failure => Some(tonic::Code::InvalidArgument),
        _ => None,
    };
    if let Some(replacement) = replacement {
        let error = match replacement {
            tonic::Code::ResourceExhausted => IngestError::TooLarge { limit: super::MAX_GRPC_MESSAGE },
            _ => IngestError::Malformed("failed to decode protobuf message".into()),
        };
        ingest.refused(&error, "grpc", None, None);
        let value = (replacement as i32).to_string().parse().expect("a number is a valid header value");
        response.headers_mut().insert("grpc-status", value);
    }
    response
}
