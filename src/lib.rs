//! FLUO: behavioral assurance for OpenTelemetry traces.
//!
//! Module map:
//! - [`model`]: the bottom layer, no I/O: tenant ids, time, the span and trace
//!   model, the OTLP codec, rule metadata.
//! - [`auth`]: tenants, API keys, the operator key; `auth::users`: users, passwords, sessions (JWT).
//! - [`ingest`]: OTLP/gRPC and OTLP/HTTP receivers.
//! - [`pipeline`]: admission, trace assembly, rule evaluation on a worker pool.
//! - [`signals`]: the signal store (dedup, clearing, listing).
//! - [`events`]: the one event hub (new signals, status changes), per tenant.
//! - [`api`]: the HTTP API (axum).
//! - [`webhooks`]: signed webhook deliveries of new signals.
//! - [`rules`]: rule compilation (JS → Javy module), the wasmtime engine and
//!   per-tenant sandboxes, the host↔rule ABI.
//! - [`app`]: the composition root of `fluo serve`; [`listen`]: its accept loops
//!   (connection caps, header-read timeout).
//! - [`demo`]: `fluo demo`, a demo tenant and a stream of realistic traces.
//! - [`cli`]: the `fluo` command line (`rules test`, `rules apply`, `serve` arguments).
//! - [`config`]: typed configuration for `fluo serve`.
//! - [`store`]: the sled database.
//!
//! No logic lives here.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod events;
pub mod ingest;
pub mod listen;
pub mod model;
pub mod pipeline;
pub mod rules;
pub mod signals;
pub mod store;
pub mod web;
pub mod webhooks;
