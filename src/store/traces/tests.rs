//! Tests of the recent-trace store: round trips, replacement, isolation,
//! retention by age and by bytes, restart, torn tails, compression, a failed
//! write, and the move from the sled trees of earlier versions.

use super::*;

fn otlp(trace: u8, spans: u8, name: &str) -> (TraceId, Vec<u8>) {
    let json = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeSpans": [{"spans": (1..=spans).map(|id| serde_json::json!({
        "traceId": format!("{trace:032x}"), "spanId": format!("{id:016x}"), "name": name,
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000001000000",
        "attributes": [{"key": "k", "value": {"stringValue": "some repeated attribute value"}}]})).collect::<Vec<_>>()}]}]});
    let request: crate::model::otlp::ExportTraceServiceRequest = serde_json::from_value(json).unwrap();
    let mut id = [0u8; 16];
    id[15] = trace;
    (id, request.encode_to_vec())
}

fn retention(max_bytes: u64, compression: Compression) -> TraceRetention {
    TraceRetention {
        age: std::time::Duration::from_secs(3600),
        max_age: std::time::Duration::from_secs(7200),
        max_bytes,
        compression,
        fsync: true,
    }
}

fn names(store: &RecentTraces, tenant: &TenantId, limit: usize) -> Vec<String> {
    store.newest(tenant, limit).unwrap().into_iter().map(|(_, spans)| spans[0].name.clone()).collect()
}

#[test]
fn put_get_replace_and_isolate_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecentTraces::open(dir.path(), TraceRetention::default()).unwrap();
    let (a, b) = (TenantId::trusted("a"), TenantId::trusted("b"));
    let (id, first) = otlp(1, 3, "first");
    store.put(&a, &id, &first, now_ms()).unwrap();
    assert_eq!(store.get(&a, &id).unwrap().unwrap().len(), 3);
    assert!(store.get(&b, &id).unwrap().is_none(), "another tenant's trace is not found");
    let (_, second) = otlp(1, 5, "second");
    store.put(&a, &id, &second, now_ms()).unwrap();
    let spans = store.get(&a, &id).unwrap().unwrap();
    assert_eq!((spans.len(), spans[0].name.as_str()), (5, "second"), "the newest copy is served");
    assert_eq!(store.get_raw(&a, &id).unwrap().unwrap().1, second);
    let (other, third) = otlp(2, 1, "third");
    store.put(&a, &other, &third, now_ms()).unwrap();
    assert_eq!(names(&store, &a, 10), ["third", "second"], "newest first, a replaced copy listed once");
    assert_eq!(names(&store, &a, 1), ["third"]);
    assert!(names(&store, &b, 10).is_empty());
}

#[test]
fn the_index_is_rebuilt_at_open_and_a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::trusted("t");
    {
        let store = RecentTraces::open(dir.path(), TraceRetention::default()).unwrap();
        for n in 1..=3 {
            let (id, bytes) = otlp(n, 2, &format!("t{n}"));
            store.put(&tenant, &id, &bytes, now_ms()).unwrap();
        }
        store.sync().unwrap();
    }
    let (_, path) = frames::list(dir.path()).unwrap().pop().unwrap();
    let whole = std::fs::metadata(&path).unwrap().len();
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&[200, 0, 0, 0, 9, 9, 9, 9, 1, 2, 3]).unwrap();
    drop(file);
    let store = RecentTraces::open(dir.path(), TraceRetention::default()).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole, "the torn bytes are cut");
    assert_eq!(names(&store, &tenant, 10), ["t3", "t2", "t1"]);
    let (id, bytes) = otlp(4, 1, "t4");
    store.put(&tenant, &id, &bytes, now_ms()).unwrap();
    assert_eq!(store.get(&tenant, &id).unwrap().unwrap()[0].name, "t4", "served from the buffer before any flush");
    drop(store);
    let store = RecentTraces::open(dir.path(), TraceRetention::default()).unwrap();
    assert!(store.get(&tenant, &id).unwrap().is_none(), "a put never flushed is not on disk (the span log replays it)");
    store.put(&tenant, &id, &bytes, now_ms()).unwrap();
    store.flush().unwrap();
    drop(store);
    let store = RecentTraces::open(dir.path(), TraceRetention::default()).unwrap();
    assert_eq!(store.get(&tenant, &id).unwrap().unwrap()[0].name, "t4", "a flushed put survives");
}

#[test]
fn age_retention_hides_old_copies_and_deletes_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecentTraces::open(dir.path(), retention(1 << 30, Compression::None)).unwrap();
    let tenant = TenantId::trusted("t");
    let now = now_ms();
    let (old, bytes) = otlp(1, 2, "old");
    store.put(&tenant, &old, &bytes, now - 2 * 3600 * 1000).unwrap();
    assert!(store.get(&tenant, &old).unwrap().is_none(), "older than the retention: not served though still stored");
    assert!(names(&store, &tenant, 10).is_empty());
    assert_eq!(store.prune(now - 3600 * 1000).unwrap(), 1, "the segment holding only it is deleted");
    assert_eq!(frames::list(dir.path()).unwrap().len(), 1, "a fresh current segment remains");
    let (fresh, bytes) = otlp(2, 2, "fresh");
    store.put(&tenant, &fresh, &bytes, now).unwrap();
    assert_eq!(store.prune(now - 3600 * 1000).unwrap(), 0);
    assert_eq!(names(&store, &tenant, 10), ["fresh"]);
}

#[test]
fn the_byte_budget_deletes_the_oldest_segments_first() {
    let dir = tempfile::tempdir().unwrap();
    // 16 MiB budget: 1 MiB segments.
    let store = RecentTraces::open(dir.path(), retention(16 << 20, Compression::None)).unwrap();
    let tenant = TenantId::trusted("t");
    let mut ids = Vec::new();
    for n in 0..40u32 {
        for m in 0..50u8 {
            let (mut id, bytes) = otlp(m, 100, "x");
            id[..4].copy_from_slice(&n.to_be_bytes());
            store.put(&tenant, &id, &bytes, now_ms()).unwrap();
            ids.push(id);
        }
    }
    store.prune(0).unwrap();
    let bytes = store.bytes();
    assert!(bytes <= 16 << 20, "{bytes} bytes kept");
    let on_disk: u64 = frames::list(dir.path()).unwrap().iter().map(|(_, path)| std::fs::metadata(path).unwrap().len()).sum();
    store.flush().unwrap();
    assert!(on_disk <= 16 << 20);
    assert!(store.get(&tenant, &ids[0]).unwrap().is_none(), "the oldest went");
    assert!(store.get(&tenant, ids.last().unwrap()).unwrap().is_some(), "the newest stayed");
    let kept = ids.iter().filter(|id| store.get(&tenant, id).unwrap().is_some()).count();
    assert!(kept > ids.len() / 4 && kept < ids.len(), "{kept} of {} kept", ids.len());
}

#[test]
fn compressed_copies_read_back_the_same_and_are_smaller() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::trusted("t");
    let (id, bytes) = otlp(7, 50, "compressed");
    let store = RecentTraces::open(dir.path(), retention(1 << 30, Compression::Zstd)).unwrap();
    store.put(&tenant, &id, &bytes, now_ms()).unwrap();
    assert_eq!(store.get_raw(&tenant, &id).unwrap().unwrap().1, bytes);
    assert!(store.bytes() < bytes.len() as u64 / 3, "{} of {} bytes", store.bytes(), bytes.len());
    store.sync().unwrap();
    drop(store);
    // Reopened without compression: compressed records still read.
    let store = RecentTraces::open(dir.path(), retention(1 << 30, Compression::None)).unwrap();
    assert_eq!(store.get_raw(&tenant, &id).unwrap().unwrap().1, bytes);
}

#[test]
fn a_corrupt_record_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::trusted("t");
    let store = RecentTraces::open(dir.path(), TraceRetention::default()).unwrap();
    let (id, bytes) = otlp(3, 4, "x");
    store.put(&tenant, &id, &bytes, now_ms()).unwrap();
    store.sync().unwrap();
    let (_, path) = frames::list(dir.path()).unwrap().pop().unwrap();
    let mut on_disk = std::fs::read(&path).unwrap();
    let middle = on_disk.len() / 2;
    on_disk[middle] ^= 0x10;
    std::fs::write(&path, &on_disk).unwrap();
    assert!(store.get(&tenant, &id).unwrap().is_none(), "the checksum fails: absent, not an error or a panic");
}

#[test]
fn hostile_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecentTraces::open(dir.path(), TraceRetention::default()).unwrap();
    let long = TenantId::trusted(&"x".repeat(70_000));
    assert!(store.put(&long, &[1; 16], b"", now_ms()).is_err());
}

#[test]
fn traces_of_the_sled_trees_move_into_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path().join("db")).unwrap();
    let (traces, by_time) = (db.open_tree("recent_traces").unwrap(), db.open_tree("recent_traces_by_time").unwrap());
    let tenant = TenantId::trusted("t");
    let (id, bytes) = otlp(5, 2, "migrated");
    let key = crate::store::key::Key::tenant(&tenant).raw(&id).into_vec();
    let at = now_ms() - 1000;
    let mut value = at.to_be_bytes().to_vec();
    value.extend_from_slice(&bytes);
    traces.insert(&key, value).unwrap();
    let mut index = at.to_be_bytes().to_vec();
    index.extend_from_slice(&key);
    by_time.insert(index, &[]).unwrap();
    let store = RecentTraces::open(&dir.path().join("traces"), TraceRetention::default()).unwrap();
    assert_eq!(store.migrate_from_sled(&db).unwrap(), 1);
    assert_eq!(store.get_raw(&tenant, &id).unwrap().unwrap(), (at, bytes));
    assert!(!db.tree_names().iter().any(|name| name.as_ref() == b"recent_traces"), "the trees are dropped");
    assert_eq!(store.migrate_from_sled(&db).unwrap(), 0, "nothing to move twice");
}

#[test]
fn a_compressed_record_that_lies_about_its_size_is_not_served() {
    assert!(decompress(b"not zstd at all").is_none());
    let bytes = vec![42u8; 10_000];
    let compressed = compress(&bytes).unwrap();
    assert_eq!(decompress(&compressed).unwrap(), bytes);
    assert!(decompress(&compressed[..compressed.len() - 2]).is_none(), "truncated");
}

#[test]
fn a_tenant_retention_shortens_or_lengthens_what_is_served_within_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecentTraces::open(dir.path(), retention(1 << 30, Compression::None)).unwrap();
    let (short, long, plain) = (TenantId::trusted("short"), TenantId::trusted("long"), TenantId::trusted("plain"));
    let minutes_ago = |minutes: u64| now_ms() - minutes * 60 * 1000;
    for tenant in [&short, &long, &plain] {
        let (old, bytes) = otlp(2, 1, "ninety minutes ago");
        store.put(tenant, &old, &bytes, minutes_ago(90)).unwrap();
        let (recent, bytes) = otlp(1, 1, "ten minutes ago");
        store.put(tenant, &recent, &bytes, minutes_ago(10)).unwrap();
    }
    let minutes = |n: u64| std::time::Duration::from_secs(n * 60);
    store.set_tenant_retention(&short, Some(minutes(5)));
    store.set_tenant_retention(&long, Some(minutes(100_000)));
    assert!(names(&store, &short, 10).is_empty(), "both are older than 5 minutes");
    assert_eq!(names(&store, &plain, 10), ["ten minutes ago"], "the default hour");
    assert_eq!(names(&store, &long, 10), ["ten minutes ago", "ninety minutes ago"], "two hours, the maximum");
    assert_eq!(store.retention_of(&long), minutes(120), "capped at the maximum");
    assert_eq!(store.longest_retention(), minutes(120), "pruning keeps the longest");
    let mut id = [0u8; 16];
    id[15] = 2;
    assert!(store.get(&plain, &id).unwrap().is_none() && store.get(&long, &id).unwrap().is_some());
    store.set_tenant_retention(&long, None);
    assert_eq!(store.longest_retention(), minutes(60));
    assert!(store.get(&long, &id).unwrap().is_none(), "back to the default");
}
