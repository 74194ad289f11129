//! The span log: where accepted spans are recorded before their OTLP request
//! is acknowledged, and whence they are replayed at start to rebuild the
//! traces that were live at a crash. [`Pipeline::accept`](super::Pipeline::accept)
//! appends every admitted request's spans before the assembler sees them;
//! [`Pipeline::recover`](super::Pipeline::recover) replays at start.
//!
//! [`super::segments::Segments`] is the durable log (local segment files,
//! group commit); [`InProcess`] keeps nothing (tests, and what a crash then
//! loses is every live trace). In a cluster, a Kafka-protocol log partitioned
//! by (tenant, trace id) implements the same trait: a [`Position`] is then a
//! partition offset, and [`SpanLog::checkpoint`] the committed consumer
//! offset — the point before which every trace is evaluated.

use crate::model::tenant::TenantId;

/// A place in the log, increasing in append order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position(pub u64);

/// What recovery needs: in a cluster, the committed offsets of two consumer
/// groups of the same partition (assembly and windows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every trace with spans before it was evaluated and its signals stored:
    /// replayed requests before it go to window buffers only.
    pub evaluated: Position,
    /// Nothing before it is needed (no window buffer holds such spans); at most `evaluated`.
    pub keep_from: Position,
}

/// The log cannot take the spans now; the client should retry.
#[derive(Debug, thiserror::Error)]
#[error("span log unavailable: {0}")]
pub struct LogError(pub String);

pub trait SpanLog: Send + Sync {
    /// Records one admitted request of `tenant`, `otlp` being the request as
    /// OTLP protobuf (`ExportTraceServiceRequest`, before conversion: replay
    /// converts it as ingest did). When it returns, the request is as durable
    /// as this log promises and may be acknowledged; an error means it must not be.
    fn append(&self, tenant: &TenantId, otlp: &[u8]) -> Result<Position, LogError>;
    /// Calls `each` with every request kept from `from` (and from the last
    /// checkpoint's [`Checkpoint::keep_from`]) on, in append order.
    fn replay(&self, from: Position, each: &mut dyn FnMut(Position, &TenantId, &[u8])) -> Result<(), LogError>;
    /// Whether appended requests are kept (else the caller need not encode them).
    fn keeps(&self) -> bool {
        true
    }
    /// Records what recovery needs from now on; entries before
    /// `keep_from` may be deleted. Never goes back.
    fn checkpoint(&self, checkpoint: Checkpoint) -> Result<(), LogError>;
    /// The checkpoint recorded last (at start: the one before a crash).
    fn last_checkpoint(&self) -> Checkpoint;
    /// The position the next append gets: a lower bound for any append under way.
    fn next_position(&self) -> Position;
    /// Why appends fail now (disk full, I/O error), if they do.
    fn failing(&self) -> Option<String> {
        None
    }
    /// What a crash loses with this log, in a few words (logged at start).
    fn loses_on_crash(&self) -> &'static str;
}

/// Span-log positions still needed, each with how many holders it has: a
/// multiset whose lowest element bounds the checkpoint.
#[derive(Debug, Default)]
pub struct Held(std::sync::Mutex<std::collections::BTreeMap<u64, usize>>);

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, usize>> {
        self.0.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    pub fn hold(&self, position: u64) {
        *self.lock().entry(position).or_default() += 1;
    }

    pub fn release(&self, position: u64) {
        let mut held = self.lock();
        if let std::collections::btree_map::Entry::Occupied(mut entry) = held.entry(position) {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }

    pub fn oldest(&self) -> Option<u64> {
        self.lock().keys().next().copied()
    }
}

/// The log of a process that keeps no record: positions count appends, and
/// there is never anything to replay.
#[derive(Debug, Default)]
pub struct InProcess {
    appended: std::sync::atomic::AtomicU64,
}

impl SpanLog for InProcess {
    fn append(&self, _tenant: &TenantId, _otlp: &[u8]) -> Result<Position, LogError> {
        Ok(Position(self.appended.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
    }

    fn replay(&self, _from: Position, _each: &mut dyn FnMut(Position, &TenantId, &[u8])) -> Result<(), LogError> {
        Ok(())
    }

    fn keeps(&self) -> bool {
        false
    }

    fn checkpoint(&self, _checkpoint: Checkpoint) -> Result<(), LogError> {
        Ok(())
    }

    fn last_checkpoint(&self) -> Checkpoint {
        Checkpoint::default()
    }

    fn next_position(&self) -> Position {
        Position(self.appended.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn loses_on_crash(&self) -> &'static str {
        "the spans of every live (not yet evaluated) trace"
    }
}
