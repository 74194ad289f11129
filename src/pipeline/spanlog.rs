//! The span log: where accepted spans are recorded before their OTLP request
//! is acknowledged, and whence they are replayed at start to rebuild the
//! traces that were live at a crash. [`Pipeline::accept`](super::Pipeline::accept)
//! appends every admitted request's spans before the assembler sees them;
//! [`Pipeline::recover`](super::Pipeline::recover) replays at start.
//!
//! [`InProcess`] is today's log: it keeps nothing, so a crash loses the live
//! traces (docs/operations.md says so). A durable implementation (local
//! segments with group commit, issue 15) and, in a cluster, a Kafka-protocol
//! log partitioned by (tenant, trace id) implement the same trait: a
//! [`Position`] is then a segment offset or a partition offset, and
//! [`SpanLog::checkpoint`] the point before which every trace is evaluated.

use crate::model::tenant::TenantId;
use crate::model::trace::Span;

/// A place in the log, increasing in append order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position(pub u64);

/// The log cannot take the spans now; the client should retry.
#[derive(Debug, thiserror::Error)]
#[error("span log unavailable: {0}")]
pub struct LogError(pub String);

pub trait SpanLog: Send + Sync {
    /// Records one request's accepted spans of `tenant`. When it returns, the
    /// spans are as durable as this log promises and the request may be
    /// acknowledged; an error means the request must not be.
    fn append(&self, tenant: &TenantId, spans: &[Span]) -> Result<Position, LogError>;
    /// Calls `each` with every batch kept from `from` on, in append order.
    fn replay(&self, from: Position, each: &mut dyn FnMut(Position, &TenantId, Vec<Span>)) -> Result<(), LogError>;
    /// Every trace with spans before `upto` has been evaluated and stored:
    /// those entries are no longer needed to recover.
    fn checkpoint(&self, upto: Position) -> Result<(), LogError>;
    /// What a crash loses with this log, in a few words (logged at start).
    fn loses_on_crash(&self) -> &'static str;
}

/// The log of a process that keeps no record: positions count appends, and
/// there is never anything to replay.
#[derive(Debug, Default)]
pub struct InProcess {
    appended: std::sync::atomic::AtomicU64,
}

impl SpanLog for InProcess {
    fn append(&self, _tenant: &TenantId, _spans: &[Span]) -> Result<Position, LogError> {
        Ok(Position(self.appended.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
    }

    fn replay(&self, _from: Position, _each: &mut dyn FnMut(Position, &TenantId, Vec<Span>)) -> Result<(), LogError> {
        Ok(())
    }

    fn checkpoint(&self, _upto: Position) -> Result<(), LogError> {
        Ok(())
    }

    fn loses_on_crash(&self) -> &'static str {
        "the spans of every live (not yet evaluated) trace"
    }
}
