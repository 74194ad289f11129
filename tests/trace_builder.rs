//! The plugin's trace builder, compiled natively against the same QuickJS:
//! any bytes give a trace or an error (never a panic, never a leak: QuickJS
//! aborts the process when a runtime is freed with objects still alive), and a
//! valid trace survives every truncation and byte flip as an error or a trace.

use fluo::model::trace::{Event, Link, Resource, Scope, Span, SpanKind, StatusCode, Trace, Value};
use fluo::rules::wire::trace_bytes;
use proptest::prelude::*;
use rquickjs::{Context, Runtime};
use std::sync::Arc;

mod trace_builder {
    include!("../rule-sdk/src/trace_builder.rs");
}

fn sample() -> Trace {
    let resource = Arc::new(Resource { attributes: vec![("service.name".into(), Value::Str("svc".into()))], service: Some("svc".into()) });
    let scope = Arc::new(Scope { name: "s".into(), version: "1".into() });
    let spans = (0..3u8)
        .map(|i| Span {
            trace_id: [1; 16],
            span_id: [i + 1; 8],
            parent_span_id: if i == 0 { None } else { Some([1; 8]) },
            name: format!("op{i}"),
            kind: SpanKind::Server,
            status: StatusCode::Ok,
            status_message: String::new(),
            start_unix_nano: 1_000 + u64::from(i),
            end_unix_nano: 2_000,
            attributes: vec![
                ("k".into(), Value::Array(vec![Value::Int(1), Value::Map(vec![("m".into(), Value::Int(i64::MIN))])])),
                ("d".into(), Value::Double(1.5)),
            ],
            events: vec![Event { name: "e".into(), time_unix_nano: 1_500, attributes: vec![("x".into(), Value::Bool(true))] }],
            links: vec![Link { trace_id: [2; 16], span_id: [3; 8], attributes: vec![] }],
            resource: resource.clone(),
            scope: scope.clone(),
        })
        .collect();
    Trace::new([1; 16], spans)
}

/// Builds `bytes` in a fresh runtime, which is then freed (aborting on a leak).
/// Returns how many spans were built, or the error.
fn build(bytes: &[u8]) -> Result<usize, String> {
    let runtime = Runtime::new().expect("runtime");
    let context = Context::full(&runtime).expect("context");
    context.with(|ctx| match trace_builder::build_trace(&ctx, bytes) {
        Ok((_, spans, _)) => Ok(spans.len()),
        Err(error) => {
            let caught = ctx.catch();
            Err(format!("{error}: {caught:?}"))
        }
    })
}

#[test]
fn a_valid_trace_builds_and_the_runtime_frees_cleanly() {
    assert_eq!(build(&trace_bytes(&sample(), None)), Ok(3));
    assert_eq!(build(&trace_bytes(&sample(), Some((0, 10)))), Ok(3));
}

#[test]
fn every_truncation_and_byte_flip_is_an_error_or_a_trace() {
    let bytes = trace_bytes(&sample(), None);
    for end in 0..bytes.len() {
        assert!(build(&bytes[..end]).is_err(), "a trace cut at {end} of {} bytes is refused", bytes.len());
    }
    for at in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0xff;
        let _ = build(&flipped);
    }
}

#[test]
fn wrong_magic_is_named_in_the_error() {
    let mut bytes = trace_bytes(&sample(), None);
    bytes[0] = b'{';
    let error = build(&bytes).expect_err("refused");
    assert!(error.contains("not a FLUO binary trace"), "{error}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn proptest_arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..512), keep_magic in any::<bool>()) {
        if keep_magic && bytes.len() >= 4 {
            bytes[..4].copy_from_slice(b"FLT2");
        }
        let _ = build(&bytes);
    }
}
