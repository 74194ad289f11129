//! FLUO: behavioral assurance for OpenTelemetry traces.
//!
//! Module map:
//! - [`trace`]: the span and trace model shared by everything else.
//! - [`ingest`]: OTLP → span model (`convert`); transports arrive with issue 3.
//! - [`rules`]: rule compilation (JS → Javy module), the wasmtime engine and
//!   per-tenant sandboxes, the host↔rule ABI.
//! - [`app`]: the composition root of `fluo serve`.
//! - [`cli`]: the `fluo` command line (`rules test`, `rules push`, `serve` arguments).
//! - [`config`]: typed configuration for `fluo serve`.
//! - [`store`]: the sled database.
//!
//! No logic lives here.

pub mod app;
pub mod cli;
pub mod config;
pub mod ingest;
pub mod rules;
pub mod store;
pub mod trace;
