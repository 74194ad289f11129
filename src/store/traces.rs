//! Recently evaluated traces, per tenant, as OTLP protobuf: what a trace
//! looked like when it was last evaluated, so that spans arriving later amend
//! it instead of starting a new trace, and what backtests and the console read.
//! Owns the directory `<data dir>/traces`.
//!
//! The store is a log: each evaluation appends the trace (the bytes the
//! evaluator already encoded for the signal snapshot, optionally zstd-compressed)
//! as one checksummed frame ([`super::frames`]) to the current segment, and an
//! in-memory index maps (tenant, trace id) to the newest copy. Nothing is
//! rewritten or removed in place: retention deletes whole segments, the
//! oldest first, once all of a segment is older than `--trace-retention` or
//! the segments exceed `--trace-retention-mib`. A copy older than the
//! retention is not served even while its segment remains. At open the
//! segments are read to rebuild the index (a torn tail is cut).
//!
//! Records reach the OS at every [`RecentTraces::flush`] (the evaluator's
//! group commit) and the disk at every [`RecentTraces::sync`] (before the
//! span log's checkpoint passes them, when durability is `fsync`): a copy the
//! span log would no longer replay is never lost.
//!
//! A record's payload: flags (u8; bit 0: zstd), the evaluation time (Unix
//! ms, u64 LE), the trace id (16 bytes), the tenant (u16 LE length, bytes),
//! then the OTLP protobuf `ExportTraceServiceRequest`.
//!
//! The sled trees `recent_traces` and `recent_traces_by_time` of earlier
//! versions are copied into the log at the first open and dropped.

use super::frames;
use crate::model::tenant::TenantId;
use crate::model::trace::{Span, TraceId};
use prost::Message;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Whether stored traces are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    None,
    /// zstd level 1: about a third of the bytes for typical traces, for a few µs per trace.
    Zstd,
}

#[derive(Clone, Debug)]
pub struct TraceRetention {
    /// How long after its evaluation a trace is served.
    pub age: std::time::Duration,
    /// The longest a tenant may ask for ([`RecentTraces::set_tenant_retention`]).
    pub max_age: std::time::Duration,
    /// The most the segments may hold; the oldest go first.
    pub max_bytes: u64,
    pub compression: Compression,
    /// Whether [`RecentTraces::sync`] fsyncs (else records only reach the OS).
    pub fsync: bool,
}

impl Default for TraceRetention {
    fn default() -> Self {
        TraceRetention {
            age: std::time::Duration::from_secs(15 * 60),
            max_age: std::time::Duration::from_secs(24 * 3600),
            max_bytes: 1 << 30,
            compression: Compression::None,
            fsync: true,
        }
    }
}

/// A stored trace (OTLP protobuf, decompressed) can be no larger than this;
/// the per-trace byte cap keeps traces far below it.
const MAX_TRACE: usize = 256 << 20;
const FIXED: usize = 1 + 8 + 16 + 2;
const SIZES: std::ops::RangeInclusive<usize> = FIXED..=MAX_TRACE;
const ZSTD: u8 = 1;
/// Records are written to the OS when this many bytes are buffered (and at every flush).
const WRITE_AT: usize = 256 << 10;

/// Where a copy is: segment, offset and length of its frame, when it was evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Location {
    segment: u64,
    offset: u64,
    len: u32,
    at: u64,
}

#[derive(Default)]
struct TenantIndex {
    newest: HashMap<TraceId, Location>,
    /// Every copy in append order (superseded ones included), for
    /// newest-first listing and for forgetting a deleted segment's copies.
    order: VecDeque<(TraceId, Location)>,
}

struct Segment {
    file: Arc<File>,
    /// Bytes written or buffered.
    len: u64,
    /// The latest evaluation time of a copy in it.
    newest_at: u64,
}

struct Inner {
    segments: BTreeMap<u64, Segment>,
    /// The segment appended to (the last of `segments`).
    current: u64,
    /// Frames of the current segment not yet written to its file, which holds `written` bytes.
    buffer: Vec<u8>,
    written: u64,
    /// Bytes written since the last sync.
    unsynced: bool,
    tenants: HashMap<TenantId, TenantIndex>,
    bytes: u64,
    /// Tenants whose traces are served for another time than the default (ms).
    ages: HashMap<TenantId, u64>,
}

pub struct RecentTraces {
    dir: PathBuf,
    retention: TraceRetention,
    segment_bytes: u64,
    inner: Mutex<Inner>,
}

/// One record read back.
struct Record<'a> {
    at: u64,
    trace_id: TraceId,
    tenant: &'a str,
    compressed: bool,
    otlp: &'a [u8],
}

fn parse(payload: &[u8]) -> Option<Record<'_>> {
    let flags = *payload.first()?;
    let at = u64::from_le_bytes(payload.get(1..9)?.try_into().ok()?);
    let trace_id: TraceId = payload.get(9..25)?.try_into().ok()?;
    let tenant_len = usize::from(u16::from_le_bytes(payload.get(25..27)?.try_into().ok()?));
    let tenant = std::str::from_utf8(payload.get(27..27 + tenant_len)?).ok()?;
    Some(Record { at, trace_id, tenant, compressed: flags & ZSTD != 0, otlp: &payload[27 + tenant_len..] })
}

/// A stored trace's spans: capped once at ingest (and when merged), so read
/// back without caps — a trace kept under larger configured caps stays whole.
fn stored_spans(otlp: &[u8]) -> Option<Vec<Span>> {
    let request = crate::model::otlp::ExportTraceServiceRequest::decode(otlp).ok()?;
    Some(crate::model::otlp::convert_with(request, &crate::model::otlp::SpanLimits::NONE).spans)
}

fn io_error(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> super::StoreError {
    let what = format!("{what} {}", path.display());
    super::io(move || what)
}

thread_local! {
    /// zstd contexts are costly to make (tens of µs): one per thread, reused.
    static ZSTD_CONTEXTS: std::cell::RefCell<Option<(zstd::bulk::Compressor<'static>, zstd::bulk::Decompressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

fn with_zstd<T>(
    work: impl FnOnce(&mut zstd::bulk::Compressor<'static>, &mut zstd::bulk::Decompressor<'static>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    ZSTD_CONTEXTS.with(|contexts| {
        let mut contexts = contexts.borrow_mut();
        if contexts.is_none() {
            *contexts = Some((zstd::bulk::Compressor::new(1)?, zstd::bulk::Decompressor::new()?));
        }
        let (compressor, decompressor) = contexts.as_mut().expect("set above");
        work(compressor, decompressor)
    })
}

fn compress(otlp: &[u8]) -> std::io::Result<Vec<u8>> {
    with_zstd(|compressor, _| compressor.compress(otlp))
}

/// A compressed record's bytes, if its frame states a size within bounds and decompresses to it.
fn decompress(compressed: &[u8]) -> Option<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(compressed).ok()??;
    let size = usize::try_from(size).ok().filter(|size| *size <= MAX_TRACE)?;
    let otlp = with_zstd(|_, decompressor| decompressor.decompress(compressed, size)).ok()?;
    (otlp.len() == size).then_some(otlp)
}

fn now_ms() -> u64 {
    crate::model::time::now_ms()
}

impl Inner {
    fn index(&mut self, tenant: &TenantId, trace_id: TraceId, location: Location) {
        let index = self.tenants.entry(tenant.clone()).or_default();
        index.newest.insert(trace_id, location);
        index.order.push_back((trace_id, location));
    }

    /// Writes the buffered frames to the current segment. On failure they
    /// are lost (the file is cut back; the index entries pointing there
    /// fail their check when read) and the error is returned.
    fn write(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let segment = self.segments.get_mut(&self.current).expect("the current segment is listed");
        let result = (&*segment.file).write_all(&self.buffer);
        match result {
            Ok(()) => {
                self.written += self.buffer.len() as u64;
                self.unsynced = true;
            }
            Err(_) => {
                let _ = segment.file.set_len(self.written);
                self.bytes -= segment.len - self.written;
                segment.len = self.written;
            }
        }
        self.buffer.clear();
        result
    }

    /// Forgets the copies in `segment` (being deleted); returns how many there were.
    fn forget(&mut self, segment: u64) -> usize {
        let mut forgotten = 0;
        self.tenants.retain(|_, index| {
            while index.order.front().is_some_and(|(_, location)| location.segment <= segment) {
                let (trace_id, location) = index.order.pop_front().expect("checked");
                if index.newest.get(&trace_id) == Some(&location) {
                    index.newest.remove(&trace_id);
                }
                forgotten += 1;
            }
            !index.order.is_empty()
        });
        forgotten
    }

    fn location(&self, tenant: &TenantId, trace_id: &TraceId, cutoff: u64) -> Option<Location> {
        let location = *self.tenants.get(tenant)?.newest.get(trace_id)?;
        (location.at >= cutoff).then_some(location)
    }

    /// The frame at `location`: from the buffer, or a handle to read it from.
    fn frame(&self, location: Location) -> Option<Result<Vec<u8>, Arc<File>>> {
        if location.segment == self.current && location.offset >= self.written {
            let start = (location.offset - self.written) as usize;
            return Some(Ok(self.buffer.get(start..start + location.len as usize)?.to_vec()));
        }
        Some(Err(self.segments.get(&location.segment)?.file.clone()))
    }
}

impl RecentTraces {
    /// Opens (or creates) the store in `dir` and rebuilds its index.
    pub fn open(dir: &Path, retention: TraceRetention) -> super::Result<RecentTraces> {
        let started = std::time::Instant::now();
        std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
        let listed = frames::list(dir).map_err(io_error("list", dir))?;
        let mut inner = Inner {
            segments: BTreeMap::new(),
            current: 0,
            buffer: Vec::new(),
            written: 0,
            unsynced: false,
            tenants: HashMap::new(),
            bytes: 0,
            ages: HashMap::new(),
        };
        let mut copies = 0usize;
        for (number, path) in &listed {
            let mut found = Vec::new();
            let len = frames::scan_and_repair(path, SIZES, "the trace store", |offset, payload| match parse(payload) {
                Some(record) => {
                    let location = Location { segment: *number, offset, len: (frames::HEADER + payload.len()) as u32, at: record.at };
                    found.push((TenantId::trusted(record.tenant), record.trace_id, location));
                    true
                }
                None => false,
            })
            .map_err(io_error("read", path))?;
            let newest_at = found.iter().map(|(_, _, location)| location.at).max().unwrap_or(0);
            copies += found.len();
            for (tenant, trace_id, location) in found {
                inner.index(&tenant, trace_id, location);
            }
            let file = OpenOptions::new().read(true).append(true).open(path).map_err(io_error("open", path))?;
            inner.segments.insert(*number, Segment { file: Arc::new(file), len, newest_at });
            inner.bytes += len;
        }
        let store = RecentTraces {
            dir: dir.to_path_buf(),
            segment_bytes: (retention.max_bytes / 16).clamp(1 << 20, 64 << 20),
            retention,
            inner: Mutex::new(inner),
        };
        {
            let mut inner = store.lock();
            match inner.segments.last_key_value() {
                Some((number, segment)) => {
                    (inner.current, inner.written) = (*number, segment.len);
                }
                None => store.start_segment(&mut inner, 0)?,
            }
        }
        tracing::info!(copies, segments = listed.len(), elapsed_ms = started.elapsed().as_millis() as u64, "recent traces indexed");
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn start_segment(&self, inner: &mut Inner, number: u64) -> super::Result<()> {
        let path = self.dir.join(frames::segment_name(number));
        let file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(io_error("create", &path))?;
        frames::sync_dir(&self.dir).map_err(io_error("sync", &self.dir))?;
        inner.segments.insert(number, Segment { file: Arc::new(file), len: 0, newest_at: 0 });
        (inner.current, inner.written) = (number, 0);
        Ok(())
    }

    /// Closes the current segment (its frames written and, with fsync, synced) and starts the next.
    fn roll(&self, inner: &mut Inner) -> super::Result<()> {
        inner.write().map_err(io_error("write", &self.dir))?;
        if self.retention.fsync {
            inner.segments[&inner.current].file.sync_data().map_err(io_error("sync", &self.dir))?;
        }
        let next = inner.current + 1;
        self.start_segment(inner, next)?;
        self.enforce_bytes(inner);
        Ok(())
    }

    /// Deletes the oldest closed segments while the store is over its byte budget.
    fn enforce_bytes(&self, inner: &mut Inner) {
        while inner.bytes > self.retention.max_bytes {
            let Some((&oldest, _)) = inner.segments.first_key_value() else { break };
            if oldest == inner.current {
                break;
            }
            self.delete(inner, oldest);
        }
    }

    fn delete(&self, inner: &mut Inner, number: u64) -> usize {
        let path = self.dir.join(frames::segment_name(number));
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(segment = %path.display(), %error, "trace store segment not deleted");
        }
        if let Some(segment) = inner.segments.remove(&number) {
            inner.bytes -= segment.len;
        }
        inner.forget(number)
    }

    /// Stores a trace given as encoded OTLP protobuf (`encode(to_otlp(spans))`),
    /// evaluated at `now_unix_ms`; it replaces the tenant's earlier copy.
    pub fn put(&self, tenant: &TenantId, trace_id: &TraceId, otlp: &[u8], now_unix_ms: u64) -> super::Result<()> {
        let tenant_len = u16::try_from(tenant.as_str().len()).map_err(|_| super::StoreError::Invalid("tenant id too long"))?;
        if otlp.len() > MAX_TRACE - FIXED - usize::from(tenant_len) {
            return Err(super::StoreError::Invalid("trace too large to store"));
        }
        let compressed = match self.retention.compression {
            Compression::None => None,
            Compression::Zstd => Some(compress(otlp).map_err(io_error("compress", &self.dir))?),
        };
        let mut inner = self.lock();
        if inner.segments[&inner.current].len >= self.segment_bytes {
            self.roll(&mut inner)?;
        }
        let offset = inner.segments[&inner.current].len;
        let start = frames::begin(&mut inner.buffer);
        inner.buffer.push(if compressed.is_some() { ZSTD } else { 0 });
        inner.buffer.extend_from_slice(&now_unix_ms.to_le_bytes());
        inner.buffer.extend_from_slice(trace_id);
        inner.buffer.extend_from_slice(&tenant_len.to_le_bytes());
        inner.buffer.extend_from_slice(tenant.as_str().as_bytes());
        inner.buffer.extend_from_slice(compressed.as_deref().unwrap_or(otlp));
        frames::finish(&mut inner.buffer, start);
        let len = (inner.buffer.len() - start) as u64;
        let current = inner.current;
        let segment = inner.segments.get_mut(&current).expect("the current segment is listed");
        segment.len += len;
        segment.newest_at = segment.newest_at.max(now_unix_ms);
        inner.bytes += len;
        inner.index(tenant, *trace_id, Location { segment: current, offset, len: len as u32, at: now_unix_ms });
        if inner.buffer.len() >= WRITE_AT {
            inner.write().map_err(io_error("write", &self.dir))?;
        }
        Ok(())
    }

    /// Writes what [`put`](Self::put) buffered to the OS (it survives `kill -9`).
    pub fn flush(&self) -> super::Result<()> {
        self.lock().write().map_err(io_error("write", &self.dir))
    }

    /// Flushes, then (with fsync) syncs the current segment to the disk.
    pub fn sync(&self) -> super::Result<()> {
        let file = {
            let mut inner = self.lock();
            inner.write().map_err(io_error("write", &self.dir))?;
            if !self.retention.fsync || !std::mem::take(&mut inner.unsynced) {
                return Ok(());
            }
            inner.segments[&inner.current].file.clone()
        };
        file.sync_data().map_err(io_error("sync", &self.dir))
    }

    /// The checked record at `location`, decompressed: (evaluation time, OTLP protobuf).
    fn read(&self, tenant: &TenantId, trace_id: &TraceId, location: Location, frame: Result<Vec<u8>, Arc<File>>) -> Option<(u64, Vec<u8>)> {
        let frame = frame.or_else(|file| {
            let mut bytes = vec![0; location.len as usize];
            file.read_exact_at(&mut bytes, location.offset).map(|()| bytes)
        });
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(tenant = %tenant, %error, "recent trace unreadable");
                return None;
            }
        };
        // A copy whose write failed may have been overwritten by another: the
        // checksum and the ids say whether these bytes are still it.
        let record = frames::check(&frame).and_then(parse)?;
        if record.tenant != tenant.as_str() || record.trace_id != *trace_id {
            return None;
        }
        let otlp = if record.compressed { decompress(record.otlp)? } else { record.otlp.to_vec() };
        Some((record.at, otlp))
    }

    /// The oldest evaluation time of `tenant`'s traces that is still served.
    fn cutoff(&self, inner: &Inner, tenant: &TenantId) -> u64 {
        let age = inner.ages.get(tenant).copied().unwrap_or(self.retention.age.as_millis() as u64);
        now_ms().saturating_sub(age)
    }

    /// Serves `tenant`'s traces for `age` (at most the maximum) after their
    /// evaluation instead of the default (`None`: the default again). Segments are deleted only once
    /// the longest of these has passed ([`RecentTraces::longest_retention`]);
    /// the byte cap still applies to all tenants together.
    pub fn set_tenant_retention(&self, tenant: &TenantId, age: Option<std::time::Duration>) {
        let mut inner = self.lock();
        match age {
            Some(age) => inner.ages.insert(tenant.clone(), age.min(self.retention.max_age).as_millis() as u64),
            None => inner.ages.remove(tenant),
        };
    }

    /// The server's default retention and the longest a tenant may ask for.
    pub fn retention_bounds(&self) -> (std::time::Duration, std::time::Duration) {
        (self.retention.age, self.retention.max_age)
    }

    /// How long `tenant`'s traces are served.
    pub fn retention_of(&self, tenant: &TenantId) -> std::time::Duration {
        self.lock().ages.get(tenant).map_or(self.retention.age, |ms| std::time::Duration::from_millis(*ms))
    }

    /// The longest time any tenant's traces are served: what pruning keeps.
    pub fn longest_retention(&self) -> std::time::Duration {
        let longest = self.lock().ages.values().copied().max().unwrap_or(0);
        self.retention.age.max(std::time::Duration::from_millis(longest))
    }

    /// The stored copy as (evaluation time, OTLP protobuf), if still retained.
    pub fn get_raw(&self, tenant: &TenantId, trace_id: &TraceId) -> super::Result<Option<(u64, Vec<u8>)>> {
        let (location, frame) = {
            let inner = self.lock();
            let Some(location) = inner.location(tenant, trace_id, self.cutoff(&inner, tenant)) else { return Ok(None) };
            let Some(frame) = inner.frame(location) else { return Ok(None) };
            (location, frame)
        };
        Ok(self.read(tenant, trace_id, location, frame))
    }

    /// The spans of `trace_id` as last evaluated, if still retained.
    pub fn get(&self, tenant: &TenantId, trace_id: &TraceId) -> super::Result<Option<Vec<Span>>> {
        Ok(self.get_raw(tenant, trace_id)?.and_then(|(_, otlp)| stored_spans(&otlp)))
    }

    /// Up to `limit` of the tenant's retained traces, the most recently
    /// evaluated first, with their evaluation time (Unix ms).
    pub fn newest(&self, tenant: &TenantId, limit: usize) -> super::Result<Vec<(u64, Vec<Span>)>> {
        let wanted: Vec<(TraceId, Location, Result<Vec<u8>, Arc<File>>)> = {
            let inner = self.lock();
            let cutoff = self.cutoff(&inner, tenant);
            let Some(index) = inner.tenants.get(tenant) else { return Ok(Vec::new()) };
            index
                .order
                .iter()
                .rev()
                .take_while(|(_, location)| location.at >= cutoff)
                .filter(|(trace_id, location)| index.newest.get(trace_id) == Some(location))
                .take(limit)
                .filter_map(|(trace_id, location)| Some((*trace_id, *location, inner.frame(*location)?)))
                .collect()
        };
        Ok(wanted
            .into_iter()
            .filter_map(|(trace_id, location, frame)| {
                let (at, otlp) = self.read(tenant, &trace_id, location, frame)?;
                Some((at, stored_spans(&otlp)?))
            })
            .collect())
    }

    /// Deletes the segments whose every copy was evaluated before
    /// `cutoff_unix_ms` (the current one too: the next put starts another);
    /// returns how many copies they held.
    pub fn prune(&self, cutoff_unix_ms: u64) -> super::Result<usize> {
        let mut inner = self.lock();
        let expired: Vec<u64> = inner
            .segments
            .iter()
            .take_while(|(_, segment)| segment.newest_at < cutoff_unix_ms && segment.len > 0)
            .map(|(number, _)| *number)
            .collect();
        let mut removed = 0;
        for number in expired {
            if number == inner.current {
                self.roll(&mut inner)?;
            }
            removed += self.delete(&mut inner, number);
        }
        self.enforce_bytes(&mut inner);
        Ok(removed)
    }

    /// Bytes the segments hold now.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Copies the traces of the sled trees of earlier versions into the log
    /// (with their evaluation times), then drops those trees.
    pub fn migrate_from_sled(&self, db: &sled::Db) -> super::Result<usize> {
        let names = db.tree_names();
        if !names.iter().any(|name| name.as_ref() == b"recent_traces") {
            return Ok(0);
        }
        let (traces, by_time) = (db.open_tree("recent_traces")?, db.open_tree("recent_traces_by_time")?);
        let mut copied = 0;
        for entry in by_time.iter() {
            let (index, _) = entry?;
            let Some(key) = index.get(8..) else { continue };
            let Some((tenant, trace_id)) = super::key::Key::split_tenant(key) else { continue };
            let Ok(trace_id) = TraceId::try_from(trace_id) else { continue };
            let tenant = TenantId::trusted(tenant);
            let Some(value) = traces.get(key)? else { continue };
            if value.len() < 8 {
                continue;
            }
            let at = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
            self.put(&tenant, &trace_id, &value[8..], at)?;
            copied += 1;
        }
        self.sync()?;
        db.drop_tree("recent_traces")?;
        db.drop_tree("recent_traces_by_time")?;
        tracing::info!(copied, "recent traces moved from the database to the trace store");
        Ok(copied)
    }
}

#[cfg(test)]
mod tests;
