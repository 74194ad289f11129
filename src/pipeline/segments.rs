//! The durable span log: append-only segment files in `<data dir>/spanlog`,
//! written with group commit. Owns its directory and nothing else.
//!
//! Each admitted request is one record: a frame (`len` u32 LE, CRC-32 of
//! the rest u32 LE), then the record's position (u64 LE), the tenant
//! (u16 LE length, bytes) and the request as OTLP protobuf. Appenders encode
//! their record, put it in the shared buffer and wait; one writer thread
//! writes everything buffered with one `write` and, in [`Durability::Fsync`]
//! mode, one `fdatasync`, then wakes them all: many clients share an fsync.
//! A failed write (disk full, I/O error) fails exactly the records of that
//! write, truncates the file back to its last good length, and is retried
//! with the next appends: the server recovers when space returns.
//!
//! A segment is named by the first position it holds and closed at
//! `segment_bytes`. At open the last segment is checked record by record;
//! a torn or corrupt tail (a crash in the middle of a write) is truncated,
//! with a log line saying how much. [`SpanLog::checkpoint`] records the
//! checkpoint (file `checkpoint`: two positions, replaced atomically) and
//! deletes the segments wholly before its `keep_from`.

use super::spanlog::{Checkpoint, LogError, Position, SpanLog};
use crate::model::tenant::TenantId;
use crate::store::frames::{self, list, segment_name, sync_dir};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// What an acknowledged request survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// Written and fsynced before the OTLP success: survives `kill -9` and power loss.
    Fsync,
    /// Written to the operating system before the OTLP success: survives
    /// `kill -9`, not a power failure or kernel crash.
    Os,
    /// No span log: a crash loses every live trace (for throwaway setups and
    /// for measuring what the log costs).
    Off,
}

/// A record larger than this is refused (a request is far smaller: the
/// transports cap bodies well below it).
const MAX_RECORD: usize = 256 << 20;
/// Payload sizes a record can have: position and tenant length at least.
const RECORD_SIZES: std::ops::RangeInclusive<usize> = 10..=MAX_RECORD;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("span log in {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
}

/// The outcome of one group commit, shared by the appenders whose records it wrote.
#[derive(Default)]
struct Batch {
    outcome: Mutex<Option<Result<(), String>>>,
    done: Condvar,
}

impl Batch {
    fn finish(&self, outcome: Result<(), String>) {
        *self.outcome.lock().unwrap_or_else(|poison| poison.into_inner()) = Some(outcome);
        self.done.notify_all();
    }

    fn wait(&self) -> Result<(), String> {
        let mut outcome = self.outcome.lock().unwrap_or_else(|poison| poison.into_inner());
        loop {
            if let Some(result) = outcome.as_ref() {
                return result.clone();
            }
            outcome = self.done.wait(outcome).unwrap_or_else(|poison| poison.into_inner());
        }
    }
}

struct Pending {
    /// Records not yet handed to the writer.
    buffer: Vec<u8>,
    /// The batch those records belong to.
    batch: Arc<Batch>,
    /// The position the next record gets.
    next: u64,
    /// Position of the first record in `buffer`.
    first_in_buffer: u64,
    stop: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// The segment files and what the writer thread owns.
struct Files {
    dir: PathBuf,
    current: File,
    /// Bytes of the current segment known good.
    current_len: u64,
    segment_bytes: u64,
    durability: Durability,
    /// Writes still to fail as if the disk were full (tests inject them).
    inject: Arc<std::sync::atomic::AtomicU32>,
}

pub struct Segments {
    shared: Arc<Shared>,
    dir: PathBuf,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The last checkpoint; replay starts at its `keep_from`.
    checkpoint: Mutex<Checkpoint>,
    /// Why the last write failed, while it is the last outcome.
    failing: Arc<Mutex<Option<String>>>,
    durability: Durability,
    inject: Arc<std::sync::atomic::AtomicU32>,
}

fn io(dir: &Path) -> impl Fn(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io { dir: dir.to_path_buf(), source }
}

/// One record read back.
struct Record {
    position: u64,
    tenant: TenantId,
    otlp: Vec<u8>,
}

/// The record a frame's payload holds, if it is one.
fn parse(payload: &[u8]) -> Option<Record> {
    let position = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let tenant_len = usize::from(u16::from_le_bytes(payload.get(8..10)?.try_into().ok()?));
    let tenant = std::str::from_utf8(payload.get(10..10 + tenant_len)?).ok()?;
    Some(Record { position, tenant: TenantId::trusted(tenant), otlp: payload[10 + tenant_len..].to_vec() })
}

/// Checks `path` record by record and truncates it after the last good one;
/// returns the good length and the position after its last record.
fn repair(path: &Path) -> std::io::Result<(u64, Option<u64>)> {
    let mut next = None;
    let good = frames::scan_and_repair(path, RECORD_SIZES, "the span log", |_, payload| match parse(payload) {
        Some(record) => {
            next = Some(record.position + 1);
            true
        }
        None => false,
    })?;
    Ok((good, next))
}

impl Segments {
    /// Opens (or creates) the log in `dir`, repairs a torn tail and starts
    /// the writer thread.
    pub fn open(dir: &Path, durability: Durability, segment_bytes: u64) -> Result<Segments, OpenError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let checkpoint = read_checkpoint(dir);
        let segments = list(dir).map_err(io(dir))?;
        let (current_first, current_len, next) = match segments.last() {
            Some((first, path)) => {
                let (good, next) = repair(path).map_err(io(dir))?;
                (*first, good, next.unwrap_or(*first))
            }
            None => (checkpoint.evaluated.0, 0, checkpoint.evaluated.0),
        };
        let next = next.max(checkpoint.evaluated.0);
        let path = dir.join(segment_name(current_first));
        let current = OpenOptions::new().create(true).append(true).open(&path).map_err(io(dir))?;
        if segments.is_empty() {
            sync_dir(dir).map_err(io(dir))?;
        }
        let inject = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let files = Files {
            dir: dir.to_path_buf(),
            current,
            current_len,
            segment_bytes: segment_bytes.max(1 << 12),
            durability,
            inject: inject.clone(),
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending { buffer: Vec::new(), batch: Arc::default(), next, first_in_buffer: next, stop: false }),
            wake: Condvar::new(),
        });
        let failing = Arc::new(Mutex::new(None));
        let writer = {
            let (shared, failing) = (shared.clone(), failing.clone());
            std::thread::Builder::new().name("fluo-spanlog".into()).spawn(move || write_loop(&shared, files, &failing)).map_err(io(dir))?
        };
        Ok(Segments {
            shared,
            dir: dir.to_path_buf(),
            writer: Mutex::new(Some(writer)),
            checkpoint: Mutex::new(checkpoint),
            failing,
            durability,
            inject,
        })
    }

    /// Makes the next `writes` writes fail as a full disk would (for tests of that path).
    pub fn inject_disk_full(&self, writes: u32) {
        self.inject.store(writes, std::sync::atomic::Ordering::SeqCst);
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.shared.pending.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Stops the writer after it wrote what is buffered.
    pub fn close(&self) {
        self.pending().stop = true;
        self.shared.wake.notify_all();
        if let Some(writer) = self.writer.lock().unwrap_or_else(|poison| poison.into_inner()).take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        self.close();
    }
}

/// The checkpoint file: `evaluated keep_from`, two decimal positions. A file
/// that is not exactly that (torn, edited, corrupt) counts as no checkpoint:
/// everything kept is replayed, which is safe (what was evaluated is
/// recognised), where trusting a part of it could skip unevaluated requests.
fn read_checkpoint(dir: &Path) -> Checkpoint {
    let path = dir.join("checkpoint");
    let Ok(text) = std::fs::read_to_string(&path) else { return Checkpoint::default() };
    let numbers: Vec<Option<u64>> = text.split_whitespace().map(|n| n.parse::<u64>().ok()).collect();
    match numbers[..] {
        [Some(evaluated), Some(keep_from)] if keep_from <= evaluated => {
            Checkpoint { evaluated: Position(evaluated), keep_from: Position(keep_from) }
        }
        _ => {
            tracing::warn!(file = %path.display(), "span log checkpoint unreadable; replaying everything kept");
            Checkpoint::default()
        }
    }
}

/// The writer thread: takes what is buffered, writes and syncs it, tells the batch.
fn write_loop(shared: &Shared, mut files: Files, failing: &Mutex<Option<String>>) {
    loop {
        let (buffer, batch, first, next) = {
            let mut pending = shared.pending.lock().unwrap_or_else(|poison| poison.into_inner());
            while pending.buffer.is_empty() && !pending.stop {
                pending = shared.wake.wait(pending).unwrap_or_else(|poison| poison.into_inner());
            }
            if pending.buffer.is_empty() {
                return;
            }
            let first = pending.first_in_buffer;
            pending.first_in_buffer = pending.next;
            (std::mem::take(&mut pending.buffer), std::mem::take(&mut pending.batch), first, pending.next)
        };
        let outcome = files.write(&buffer, first, next).map_err(|error| error.to_string());
        *failing.lock().unwrap_or_else(|poison| poison.into_inner()) = outcome.clone().err();
        batch.finish(outcome);
    }
}

impl Files {
    /// Writes records `first..next` (`buffer`), starting a new segment first
    /// when the current one is full; on failure cuts the segment back.
    fn write(&mut self, buffer: &[u8], first: u64, next: u64) -> std::io::Result<()> {
        if self.current_len >= self.segment_bytes {
            let path = self.dir.join(segment_name(first));
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            sync_dir(&self.dir)?;
            self.current = file;
            self.current_len = 0;
        }
        let injected = self
            .inject
            .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let written = if injected {
            // Half a write, then the error: as a disk that fills up mid-write.
            let _ = self.current.write_all(&buffer[..buffer.len() / 2]);
            Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
        } else {
            Ok(())
        };
        let written = written.and_then(|()| self.current.write_all(buffer)).and_then(|()| match self.durability {
            Durability::Fsync => self.current.sync_data(),
            Durability::Os | Durability::Off => Ok(()),
        });
        match written {
            Ok(()) => {
                self.current_len += buffer.len() as u64;
                Ok(())
            }
            Err(error) => {
                // The records of this write were not acknowledged: cut them
                // off, so the file holds whole records only.
                let _ = self.current.set_len(self.current_len);
                let _ = self.current.seek(SeekFrom::End(0));
                tracing::error!(%error, records = next - first, "span log write failed; those requests are refused");
                Err(error)
            }
        }
    }
}

impl SpanLog for Segments {
    fn append(&self, tenant: &TenantId, otlp: &[u8]) -> Result<Position, LogError> {
        let tenant_bytes = tenant.as_str().as_bytes();
        let tenant_len = u16::try_from(tenant_bytes.len()).map_err(|_| LogError("tenant id too long".into()))?;
        let len = 10 + tenant_bytes.len() + otlp.len();
        if len > MAX_RECORD {
            return Err(LogError(format!("a request of {len} bytes is larger than a span log record ({MAX_RECORD})")));
        }
        let (position, batch) = {
            let mut pending = self.pending();
            if pending.stop {
                return Err(LogError("the span log is closed".into()));
            }
            let position = pending.next;
            pending.next += 1;
            let start = frames::begin(&mut pending.buffer);
            pending.buffer.extend_from_slice(&position.to_le_bytes());
            pending.buffer.extend_from_slice(&tenant_len.to_le_bytes());
            pending.buffer.extend_from_slice(tenant_bytes);
            pending.buffer.extend_from_slice(otlp);
            frames::finish(&mut pending.buffer, start);
            (position, pending.batch.clone())
        };
        self.shared.wake.notify_one();
        batch.wait().map_err(LogError)?;
        Ok(Position(position))
    }

    fn replay(&self, from: Position, each: &mut dyn FnMut(Position, &TenantId, &[u8])) -> Result<(), LogError> {
        let from = from.0.max(self.last_checkpoint().keep_from.0);
        let segments = list(&self.dir).map_err(|error| LogError(error.to_string()))?;
        let mut buffer = Vec::new();
        for (index, (_, path)) in segments.iter().enumerate() {
            // A segment wholly before `from` is skipped unread.
            if segments.get(index + 1).is_some_and(|(next_first, _)| *next_first <= from) {
                continue;
            }
            let file = File::open(path).map_err(|error| LogError(format!("{}: {error}", path.display())))?;
            let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
            loop {
                match frames::read(&mut reader, &mut buffer, RECORD_SIZES).map(|frame| frame.map(|_| parse(&buffer))) {
                    Ok(None) => break,
                    Ok(Some(Some(record))) => {
                        if record.position < from {
                            continue;
                        }
                        each(Position(record.position), &record.tenant, &record.otlp);
                    }
                    Ok(Some(None)) | Err(()) => {
                        // Only the last segment can have a torn tail, and it was
                        // repaired at open: this is corruption in the middle.
                        tracing::error!(segment = %path.display(), "corrupt record in the span log; the rest of this segment is skipped");
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn checkpoint(&self, wanted: Checkpoint) -> Result<(), LogError> {
        let error = |error: std::io::Error| LogError(error.to_string());
        let mut checkpoint = self.checkpoint.lock().unwrap_or_else(|poison| poison.into_inner());
        let evaluated = wanted.evaluated.max(checkpoint.evaluated);
        let next = Checkpoint { evaluated, keep_from: wanted.keep_from.max(checkpoint.keep_from).min(evaluated) };
        if next == *checkpoint {
            return Ok(());
        }
        let temporary = self.dir.join("checkpoint.tmp");
        std::fs::write(&temporary, format!("{} {}\n", next.evaluated.0, next.keep_from.0)).map_err(error)?;
        File::open(&temporary).and_then(|file| file.sync_all()).map_err(error)?;
        std::fs::rename(&temporary, self.dir.join("checkpoint")).map_err(error)?;
        sync_dir(&self.dir).map_err(error)?;
        *checkpoint = next;
        // Segments whose successor starts at or before `keep_from` hold nothing needed.
        let segments = list(&self.dir).map_err(error)?;
        for pair in segments.windows(2) {
            if pair[1].0 <= next.keep_from.0 {
                std::fs::remove_file(&pair[0].1).map_err(error)?;
            }
        }
        Ok(())
    }

    fn last_checkpoint(&self) -> Checkpoint {
        *self.checkpoint.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn next_position(&self) -> Position {
        Position(self.pending().next)
    }

    /// Why appends fail now, if the last write failed.
    fn failing(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(|poison| poison.into_inner()).clone()
    }

    fn loses_on_crash(&self) -> &'static str {
        match self.durability {
            Durability::Fsync => "nothing acknowledged (every acknowledged request was fsynced)",
            Durability::Os | Durability::Off => {
                "nothing acknowledged on kill -9; on a power failure or kernel crash, what the OS had not written back"
            }
        }
    }
}

#[cfg(test)]
mod tests;
