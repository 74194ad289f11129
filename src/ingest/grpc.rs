//! OTLP/gRPC: tonic's `TraceService` on its own listener. Authentication runs
//! in an interceptor, before the message is read; messages over
//! [`MAX_GRPC_MESSAGE`](super::MAX_GRPC_MESSAGE) are refused by tonic's decoder.
//! Tonic reports an oversized message as OUT_OF_RANGE, the gRPC specification
//! says RESOURCE_EXHAUSTED; a response layer translates the code (this service
//! never returns OUT_OF_RANGE itself). Likewise tonic-prost reports a message
//! that does not decode as INTERNAL ("failed to decode Protobuf message…");
//! OTLP wants INVALID_ARGUMENT for a malformed payload, so the layer rewrites
//! that one too. Gzip-compressed messages are accepted.

use super::{Ingest, IngestError};
use crate::auth::TenantId;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse};
use std::future::Future;
use std::time::Instant;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

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
        let message = request.into_inner();
        let ingest = self.ingest.clone();
        let result = tokio::task::spawn_blocking(move || ingest.export(&tenant, message, Instant::now()))
            .await
            .unwrap_or(Err(IngestError::Internal));
        match result {
            Ok(partial) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: (partial.rejected_spans > 0)
                    .then(|| ExportTracePartialSuccess { rejected_spans: partial.rejected_spans, error_message: partial.error_message }),
            })),
            Err(error) => Err(status_of(&error)),
        }
    }
}

/// Serves OTLP/gRPC on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ingest: Ingest,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let auth_ingest = ingest.clone();
    let interceptor = move |mut request: Request<()>| {
        let header = request.metadata().get("authorization").and_then(|value| value.to_str().ok());
        match auth_ingest.authenticate(header) {
            Ok(tenant) => {
                request.extensions_mut().insert(tenant);
                Ok(request)
            }
            Err(error) => Err(status_of(&error)),
        }
    };
    let service = TraceServiceServer::new(Service { ingest })
        .max_decoding_message_size(super::MAX_GRPC_MESSAGE)
        .accept_compressed(CompressionEncoding::Gzip);
    let service = tonic::service::interceptor::InterceptedService::new(service, interceptor);
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(otlp_codes))
        .add_service(service)
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), shutdown)
        .await
}

/// Rewrites the codes tonic's decoder uses into the ones OTLP specifies.
fn otlp_codes(mut response: ::http::Response<tonic::body::Body>) -> ::http::Response<tonic::body::Body> {
    let headers = response.headers();
    let code = headers.get("grpc-status").and_then(|status| status.to_str().ok()).and_then(|status| status.parse::<i32>().ok());
    let decode_failure =
        headers.get("grpc-message").is_some_and(|message| message.as_bytes().starts_with(b"failed%20to%20decode%20Protobuf"));
    let replacement = match code.map(tonic::Code::from) {
        Some(tonic::Code::OutOfRange) => Some(tonic::Code::ResourceExhausted),
        Some(tonic::Code::Internal) if decode_failure => Some(tonic::Code::InvalidArgument),
        _ => None,
    };
    if let Some(replacement) = replacement {
        let value = (replacement as i32).to_string().parse().expect("a number is a valid header value");
        response.headers_mut().insert("grpc-status", value);
    }
    response
}
