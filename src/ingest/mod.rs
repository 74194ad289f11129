//! OTLP ingestion. For now only the conversion of OTLP requests into the span
//! model (`convert`); the gRPC and HTTP adapters arrive with issue 3.

pub mod convert;
