//! Tests of the segment log: round trips across reopen, torn tails, group
//! commit under concurrent appenders, checkpoints, and a full disk.

use super::*;

/// A request of `count` spans of trace `trace`, as OTLP protobuf.
fn spans(trace: u8, count: u8, name: &str) -> Vec<u8> {
    let json = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeSpans": [{"spans": (1..=count).map(|id| serde_json::json!({
        "traceId": format!("{trace:032x}"), "spanId": format!("{id:016x}"), "name": name,
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000001000000",
        "attributes": [{"key": "k", "value": {"stringValue": "v"}}]})).collect::<Vec<_>>()}]}]});
    let request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest = serde_json::from_value(json).unwrap();
    prost::Message::encode_to_vec(&request)
}

fn replayed(log: &Segments, from: u64) -> Vec<(u64, String, Vec<u8>)> {
    let mut out = Vec::new();
    log.replay(Position(from), &mut |position, tenant, otlp| out.push((position.0, tenant.to_string(), otlp.to_vec()))).unwrap();
    out
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    list(dir).unwrap().into_iter().map(|(_, path)| path).collect()
}

#[test]
fn appended_requests_replay_in_order_after_reopen_and_positions_keep_growing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (TenantId::trusted("a"), TenantId::trusted("b"));
    {
        let log = Segments::open(dir.path(), Durability::Fsync, 1 << 20).unwrap();
        assert_eq!(log.append(&a, &spans(1, 3, "x")).unwrap(), Position(0));
        assert_eq!(log.append(&b, &spans(2, 1, "y")).unwrap(), Position(1));
    }
    let log = Segments::open(dir.path(), Durability::Fsync, 1 << 20).unwrap();
    let back = replayed(&log, 0);
    assert_eq!(back.len(), 2);
    assert_eq!((back[0].0, back[0].1.as_str(), back[0].2.clone()), (0, "a", spans(1, 3, "x")));
    assert_eq!((back[1].0, back[1].1.as_str(), back[1].2.clone()), (1, "b", spans(2, 1, "y")));
    assert_eq!(log.append(&a, &spans(3, 1, "z")).unwrap(), Position(2), "positions continue after a restart");
    assert_eq!(replayed(&log, 2).len(), 1);
}

#[test]
fn a_torn_tail_is_truncated_at_open_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::trusted("t");
    {
        let log = Segments::open(dir.path(), Durability::Os, 1 << 20).unwrap();
        for n in 0..3 {
            log.append(&tenant, &spans(n, 2, "x")).unwrap();
        }
    }
    let path = segment_files(dir.path()).pop().unwrap();
    let whole = std::fs::metadata(&path).unwrap().len();
    // A crash in the middle of the fourth record's write.
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
    drop(file);
    let log = Segments::open(dir.path(), Durability::Os, 1 << 20).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole, "the torn bytes are cut");
    assert_eq!(replayed(&log, 0).len(), 3);
    assert_eq!(log.append(&tenant, &spans(9, 1, "y")).unwrap(), Position(3));
    drop(log);

    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let log = Segments::open(dir.path(), Durability::Os, 1 << 20).unwrap();
    assert_eq!(replayed(&log, 0).len(), 3, "a record whose checksum fails is dropped with what follows");
    assert_eq!(log.append(&tenant, &spans(9, 1, "y")).unwrap(), Position(3), "its position is given again");
}

#[test]
fn concurrent_appenders_share_fsyncs_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Segments::open(dir.path(), Durability::Fsync, 1 << 12).unwrap());
    let threads: Vec<_> = (0..8u8)
        .map(|thread| {
            let log = log.clone();
            std::thread::spawn(move || {
                let tenant = TenantId::trusted(&format!("t{thread}"));
                (0..50).map(|n| log.append(&tenant, &spans(thread * 50 + n, 1, "x")).unwrap().0).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut positions: Vec<u64> = threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect();
    positions.sort();
    assert_eq!(positions, (0..400).collect::<Vec<_>>(), "every append has its own position");
    let back = replayed(&log, 0);
    assert_eq!(back.iter().map(|(position, _, _)| *position).collect::<Vec<_>>(), positions, "replayed in position order");
    assert!(segment_files(dir.path()).len() > 1, "segments roll over at their size");
}

#[test]
fn a_checkpoint_deletes_whole_segments_before_it_and_replay_starts_there() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::trusted("t");
    {
        let log = Segments::open(dir.path(), Durability::Os, 1 << 12).unwrap();
        for n in 0..100 {
            log.append(&tenant, &spans(n, 4, "a-somewhat-long-span-name")).unwrap();
        }
        let before = segment_files(dir.path()).len();
        assert!(before > 3, "{before} segments");
        log.checkpoint(Checkpoint { evaluated: Position(80), keep_from: Position(60) }).unwrap();
        let after = segment_files(dir.path());
        assert!(after.len() < before);
        assert!(list(dir.path()).unwrap()[0].0 <= 60, "the segment holding position 60 stays");
        assert_eq!(replayed(&log, 0).first().map(|record| record.0), Some(60));
        // A checkpoint never goes back.
        log.checkpoint(Checkpoint { evaluated: Position(10), keep_from: Position(10) }).unwrap();
        assert_eq!(replayed(&log, 0).len(), 40);
    }
    let log = Segments::open(dir.path(), Durability::Os, 1 << 12).unwrap();
    assert_eq!(replayed(&log, 0).len(), 40, "the checkpoint survives a restart");
    assert_eq!(log.last_checkpoint(), Checkpoint { evaluated: Position(80), keep_from: Position(60) });
    assert_eq!(log.next_position(), Position(100));
}

#[test]
fn a_full_disk_refuses_those_requests_only_and_the_log_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::trusted("t");
    let log = Segments::open(dir.path(), Durability::Fsync, 1 << 20).unwrap();
    log.append(&tenant, &spans(1, 1, "x")).unwrap();
    log.inject_disk_full(2);
    for n in 2..4 {
        let refused = log.append(&tenant, &spans(n, 1, "x")).unwrap_err();
        assert!(refused.0.contains("No space left"), "{refused}");
        assert!(log.failing().is_some());
    }
    log.append(&tenant, &spans(4, 1, "x")).unwrap();
    assert_eq!(log.failing(), None, "the next write that works clears the state");
    drop(log);
    let log = Segments::open(dir.path(), Durability::Fsync, 1 << 20).unwrap();
    let back: Vec<u8> = replayed(&log, 0)
        .iter()
        .map(|(_, _, otlp)| crate::model::otlp::convert(prost::Message::decode(otlp.as_slice()).unwrap()).spans[0].trace_id[15])
        .collect();
    assert_eq!(back, [1, 4], "acknowledged requests only, whole");
}

#[test]
fn an_unreadable_checkpoint_file_means_replaying_everything_kept() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::trusted("t");
    {
        let log = Segments::open(dir.path(), Durability::Os, 1 << 20).unwrap();
        for n in 0..5 {
            log.append(&tenant, &spans(n, 1, "x")).unwrap();
        }
        log.checkpoint(Checkpoint { evaluated: Position(3), keep_from: Position(3) }).unwrap();
    }
    for garbage in [&b"not numbers\n"[..], b"", b"\xff\xfe", b"99999999999999999999999999 7"] {
        std::fs::write(dir.path().join("checkpoint"), garbage).unwrap();
        let log = Segments::open(dir.path(), Durability::Os, 1 << 20).unwrap();
        assert_eq!(log.last_checkpoint(), Checkpoint::default(), "{garbage:?} reads as no checkpoint");
        assert_eq!(replayed(&log, 0).len(), 5, "every kept request is replayed (safe: evaluated ones are recognised)");
        assert_eq!(log.next_position(), Position(5), "positions still continue after the last record");
    }
}
