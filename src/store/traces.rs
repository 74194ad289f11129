//! Recently evaluated traces, per tenant, as OTLP protobuf: what a trace looked
//! like when it was last evaluated, so that spans arriving later amend it
//! instead of starting a new trace. Owns the trees `recent_traces` and
//! `recent_traces_by_time`; entries older than the retention are pruned.
//! Written without a flush: losing the last half second of these on a crash
//! only means a late span is evaluated on its own.

use crate::model::tenant::TenantId;
use crate::model::trace::{Span, TraceId};
use prost::Message;

pub struct RecentTraces {
    traces: sled::Tree,
    by_time: sled::Tree,
}

fn trace_key(tenant: &TenantId, trace_id: &TraceId) -> Vec<u8> {
    super::key::Key::tenant(tenant).raw(trace_id).into_vec()
}

/// A stored trace's spans: capped once at ingest (and when merged), so read
/// back without caps — a trace kept under larger configured caps stays whole.
fn stored_spans(request: crate::model::otlp::ExportTraceServiceRequest) -> Vec<Span> {
    crate::model::otlp::convert_with(request, &crate::model::otlp::SpanLimits::NONE).spans
}

impl RecentTraces {
    pub fn open(db: &sled::Db) -> super::Result<RecentTraces> {
        Ok(RecentTraces { traces: db.open_tree("recent_traces")?, by_time: db.open_tree("recent_traces_by_time")? })
    }

    /// The spans of `trace_id` as last evaluated, if still retained.
    pub fn get(&self, tenant: &TenantId, trace_id: &TraceId) -> super::Result<Option<Vec<Span>>> {
        let Some(value) = self.traces.get(trace_key(tenant, trace_id))? else { return Ok(None) };
        if value.len() < 8 {
            return Ok(None);
        }
        // A record that no longer decodes (it was written by this process) is
        // treated as absent rather than failing the evaluation.
        Ok(crate::model::otlp::ExportTraceServiceRequest::decode(&value[8..]).ok().map(stored_spans))
    }

    /// Stores a trace given as encoded OTLP protobuf (`encode(to_otlp(spans))`).
    pub fn put(&self, tenant: &TenantId, trace_id: &TraceId, otlp: &[u8], now_unix_ms: u64) -> super::Result<()> {
        let key = trace_key(tenant, trace_id);
        let mut value = Vec::with_capacity(8 + otlp.len());
        value.extend_from_slice(&now_unix_ms.to_be_bytes());
        value.extend_from_slice(otlp);
        if let Some(previous) = self.traces.insert(&key, value)? {
            let mut old_index = previous[..8].to_vec();
            old_index.extend_from_slice(&key);
            self.by_time.remove(old_index)?;
        }
        let mut index = now_unix_ms.to_be_bytes().to_vec();
        index.extend_from_slice(&key);
        self.by_time.insert(index, &[])?;
        Ok(())
    }

    /// The stored copy as (evaluation time, OTLP protobuf).
    pub fn get_raw(&self, tenant: &TenantId, trace_id: &TraceId) -> super::Result<Option<(u64, Vec<u8>)>> {
        let Some(value) = self.traces.get(trace_key(tenant, trace_id))? else { return Ok(None) };
        if value.len() < 8 {
            return Ok(None);
        }
        let at = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
        Ok(Some((at, value[8..].to_vec())))
    }

    /// Up to `limit` of the tenant's retained traces, the most recently
    /// evaluated first, with their evaluation time (Unix ms). It walks the time
    /// index of every tenant backwards, so its cost grows with all retained
    /// traces (bounded by `--trace-retention`), not only this tenant's.
    pub fn newest(&self, tenant: &TenantId, limit: usize) -> super::Result<Vec<(u64, Vec<Span>)>> {
        let prefix = trace_key(tenant, &[0; 16]);
        let prefix = &prefix[..prefix.len() - 16];
        let mut traces = Vec::new();
        for entry in self.by_time.iter().rev() {
            if traces.len() >= limit {
                break;
            }
            let (index, _) = entry?;
            if index.len() < 8 || !index[8..].starts_with(prefix) {
                continue;
            }
            let Some(value) = self.traces.get(&index[8..])? else { continue };
            if value.len() < 8 {
                continue;
            }
            let at = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
            if let Ok(request) = crate::model::otlp::ExportTraceServiceRequest::decode(&value[8..]) {
                traces.push((at, stored_spans(request)));
            }
        }
        Ok(traces)
    }

    /// Removes traces evaluated before `cutoff_unix_ms`; returns how many.
    pub fn prune(&self, cutoff_unix_ms: u64) -> super::Result<usize> {
        let mut removed = 0;
        for entry in self.by_time.range(..cutoff_unix_ms.to_be_bytes().to_vec()) {
            let (index, _) = entry?;
            self.traces.remove(&index[8..])?;
            self.by_time.remove(&index)?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let recent = RecentTraces::open(&db).unwrap();
        let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"a"}]}]}]}"#;
        let spans = crate::model::otlp::convert(crate::model::otlp::from_json(json.as_bytes()).unwrap()).spans;
        let tenant = TenantId::trusted("t");
        let otlp = crate::model::otlp::to_otlp(&spans).encode_to_vec();
        recent.put(&tenant, &spans[0].trace_id, &otlp, 1_000).unwrap();
        recent.put(&tenant, &spans[0].trace_id, &otlp, 2_000).unwrap();
        assert_eq!(recent.get(&tenant, &spans[0].trace_id).unwrap().unwrap(), spans);
        assert!(recent.get(&TenantId::trusted("u"), &spans[0].trace_id).unwrap().is_none());
        assert_eq!(recent.prune(1_500).unwrap(), 0, "the re-put moved the entry to 2000");
        assert_eq!(recent.prune(2_001).unwrap(), 1);
        assert!(recent.get(&tenant, &spans[0].trace_id).unwrap().is_none());
    }
}
