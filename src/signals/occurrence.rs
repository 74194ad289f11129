//! Occurrence records: one per violation of a group, kept until retention
//! removes it, in the sled tree `signal_occurrences` under (tenant, group id,
//! occurrence id). The id begins with the occurrence's millisecond, so a
//! group's occurrences are in time order and the record need not repeat it.
//!
//! The record is binary: a version byte (1), the trace id (16 bytes), the
//! rule version (u32 BE), the number of witness span ids (u8) and the ids
//! (8 bytes each), then the message (UTF-8, to the end). A typical one is
//! about 70 bytes where its JSON was 244. Records written as JSON (before
//! this format) are still read.

use super::SignalError;
use crate::model::time::rfc3339;
use serde::{Deserialize, Serialize};

/// One violation of a group, as kept until retention removes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Occurrence {
    pub id: String,
    pub trace_id: String,
    pub span_ids: Vec<String>,
    pub rule_version: u32,
    pub message: String,
    pub at: String,
    pub at_unix_ms: u64,
}

const VERSION: u8 = 1;
/// Bytes before the span ids: version, trace id, rule version, span count.
const HEAD: usize = 1 + 16 + 4 + 1;

/// The binary record of one violation. Span ids that are not 16 hex digits
/// (the sandbox never returns such) and those past 255 are left out.
pub(super) fn encode(trace_id: &[u8; 16], span_ids: &[String], rule_version: u32, message: &str) -> Vec<u8> {
    let spans: Vec<[u8; 8]> = span_ids
        .iter()
        .filter_map(|id| {
            let mut bytes = [0u8; 8];
            hex::decode_to_slice(id, &mut bytes).ok().map(|()| bytes)
        })
        .take(usize::from(u8::MAX))
        .collect();
    let mut record = Vec::with_capacity(HEAD + spans.len() * 8 + message.len());
    record.push(VERSION);
    record.extend_from_slice(trace_id);
    record.extend_from_slice(&rule_version.to_be_bytes());
    record.push(spans.len() as u8);
    spans.iter().for_each(|span| record.extend_from_slice(span));
    record.extend_from_slice(message.as_bytes());
    record
}

/// The occurrence `id` (16 bytes: its millisecond, then a sequence) stored as `record`.
pub(super) fn decode(id: &[u8; 16], record: &[u8]) -> Result<Occurrence, SignalError> {
    if record.first() == Some(&b'{') {
        return Ok(serde_json::from_slice(record)?);
    }
    let corrupt = || SignalError::Record(format!("occurrence o_{}", hex::encode(id)));
    if record.len() < HEAD || record[0] != VERSION {
        return Err(corrupt());
    }
    let spans = usize::from(record[HEAD - 1]);
    let message = record.get(HEAD + spans * 8..).ok_or_else(corrupt)?;
    let at_unix_ms = u64::from_be_bytes(id[..8].try_into().expect("8 bytes"));
    Ok(Occurrence {
        id: format!("o_{}", hex::encode(id)),
        trace_id: hex::encode(&record[1..17]),
        span_ids: record[HEAD..HEAD + spans * 8].chunks_exact(8).map(hex::encode).collect(),
        rule_version: u32::from_be_bytes(record[17..21].try_into().expect("4 bytes")),
        message: std::str::from_utf8(message).map_err(|_| corrupt())?.to_owned(),
        at: rfc3339(at_unix_ms),
        at_unix_ms,
    })
}

/// The trace id of a record, without decoding the rest.
pub(super) fn trace_of(id: &[u8; 16], record: &[u8]) -> Result<[u8; 16], SignalError> {
    if record.first() == Some(&VERSION) && record.len() >= HEAD {
        return Ok(record[1..17].try_into().expect("16 bytes"));
    }
    let mut trace_id = [0u8; 16];
    hex::decode_to_slice(decode(id, record)?.trace_id, &mut trace_id)
        .map_err(|_| SignalError::Record(format!("occurrence o_{}", hex::encode(id))))?;
    Ok(trace_id)
}

impl Occurrence {
    /// The occurrence `id` of a violation at `now`, as the API shows it.
    pub(super) fn new(id: &[u8; 16], trace_id: &str, span_ids: &[String], rule_version: u32, message: &str, now: u64) -> Occurrence {
        Occurrence {
            id: format!("o_{}", hex::encode(id)),
            trace_id: trace_id.into(),
            span_ids: span_ids.to_vec(),
            rule_version,
            message: message.into(),
            at: rfc3339(now),
            at_unix_ms: now,
        }
    }
}

/// The 16 bytes of an occurrence id `o_<32 hex>`.
pub(super) fn id_bytes(id: &str) -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(id.strip_prefix("o_")?, &mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::super::new_id;
    use super::*;

    #[test]
    fn a_record_reads_back_as_written_and_is_small() {
        let id = new_id(1_700_000_000_123);
        let spans = vec!["00f067aa0ba902b7".to_string(), "0000000000000001".to_string()];
        let record = encode(&[7; 16], &spans, 3, "payment charged without a fraud check");
        assert_eq!(record.len(), HEAD + 16 + 37);
        let occurrence = decode(&id, &record).unwrap();
        assert_eq!(occurrence.trace_id, hex::encode([7u8; 16]));
        assert_eq!(occurrence.span_ids, spans);
        assert_eq!(occurrence.rule_version, 3);
        assert_eq!(occurrence.message, "payment charged without a fraud check");
        assert_eq!(occurrence.at_unix_ms, 1_700_000_000_123);
        assert_eq!(occurrence.at, "2023-11-14T22:13:20.123Z");
        assert_eq!(id_bytes(&occurrence.id), Some(id));
        assert_eq!(trace_of(&id, &record).unwrap(), [7; 16]);
    }

    #[test]
    fn json_records_from_before_still_read() {
        let id = new_id(1_700_000_000_000);
        let old = Occurrence {
            id: format!("o_{}", hex::encode(id)),
            trace_id: hex::encode([9u8; 16]),
            span_ids: vec!["0000000000000002".into()],
            rule_version: 1,
            message: "old".into(),
            at: rfc3339(1_700_000_000_000),
            at_unix_ms: 1_700_000_000_000,
        };
        let json = serde_json::to_vec(&old).unwrap();
        assert_eq!(decode(&id, &json).unwrap(), old);
        assert_eq!(trace_of(&id, &json).unwrap(), [9; 16]);
    }

    #[test]
    fn truncated_or_unknown_records_are_errors_not_panics() {
        let id = new_id(1);
        let record = encode(&[1; 16], &["0000000000000003".into()], 1, "m");
        for cut in 0..HEAD + 8 {
            assert!(decode(&id, &record[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(&id, &[2; 40]).is_err());
        let mut bad_utf8 = record.clone();
        bad_utf8.push(0xff);
        assert!(decode(&id, &bad_utf8).is_err());
    }
}
