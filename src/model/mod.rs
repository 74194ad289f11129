//! The bottom layer: plain data and pure functions that every other module
//! may use and that use nothing else of FLUO (no I/O, no locks, no clocks but
//! [`time::now_ms`]).
//!
//! - [`tenant`]: the tenant id, the key of every tenant-owned record.
//! - [`time`]: the one clock, the one RFC 3339 formatter, the parser of client-sent times.
//! - [`trace`]: spans and traces as the rules see them.
//! - [`otlp`]: the codec between OTLP (protobuf and JSON) and [`trace`], with its caps.
//! - [`rule`]: what a rule declares about itself (form, name, severity, window).

pub mod otlp;
pub mod rule;
pub mod tenant;
pub mod time;
pub mod trace;
