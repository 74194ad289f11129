//! The binary trace the host writes into a sandbox (ABI `fluo_rule_v2`,
//! `wit/fluo-rule.wit`): a string table, fixed-size span records and separate
//! event, link, attribute-entry and value blocks, read in place by the
//! plugin's trace builder. The layout is one file shared with the plugin
//! (`rule-sdk/src/wire_layout.rs`).
//!
//! What the host decides here, so the guest only copies: times in
//! milliseconds (fractional) and nanoseconds (decimal text), ids as lowercase
//! hex, integers beyond ±(2^53−1) tagged as BigInt, bytes as base64, NaN and
//! infinities as null, a repeated attribute key keeping its last value.
//! Repeated texts (names, kinds, services, attribute keys) are stored once.

use super::abi::MAX_SAFE_INTEGER;
use crate::model::trace::{Attributes, Resource, Scope, Trace, Value};
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Arc;

/// The layout constants, shared with the plugin.
#[allow(dead_code)]
pub mod layout {
    include!("../../rule-sdk/src/wire_layout.rs");
}
use layout::*;

/// Encodes a trace. With `window` (start and end, ms since the epoch), the
/// spans are one window's selection for a window check rather than one trace.
pub fn trace_bytes(trace: &Trace, window: Option<(u64, u64)>) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes.reserve(64 + trace.spans.len() * 96);
    let mut resources: Vec<&Arc<Resource>> = Vec::new();
    let mut scopes: Vec<&Arc<Scope>> = Vec::new();
    let trace_id = w.hex(&trace.trace_id);
    for span in &trace.spans {
        let resource = index_of(&mut resources, &span.resource);
        let scope = index_of(&mut scopes, &span.scope);
        let name = w.text(&span.name);
        let span_trace_id = if span.trace_id == trace.trace_id { trace_id } else { w.hex(&span.trace_id) };
        let span_id = w.hex(&span.span_id);
        let parent = span.parent_span_id.map_or(NONE, |id| w.hex(&id));
        let kind = w.text(span.kind.as_str());
        let status = w.text(span.status.as_str());
        let status_message = w.text(&span.status_message);
        let service = span.resource.service.as_deref().map_or(NONE, |service| w.text(service));
        let start_nano = w.decimal(span.start_unix_nano);
        let end_nano = w.decimal(span.end_unix_nano);
        let (attributes, attribute_count) = w.attributes(&span.attributes);
        let events = w.events.len() / EVENT;
        for event in &span.events {
            let name = w.text(&event.name);
            let (first, count) = w.attributes(&event.attributes);
            put_u32s(&mut w.events, &[name, first, count, 0]);
            w.events.extend_from_slice(&millis(event.time_unix_nano).to_le_bytes());
        }
        let links = w.links.len() / LINK;
        for link in &span.links {
            let trace_id = w.hex(&link.trace_id);
            let span_id = w.hex(&link.span_id);
            let (first, count) = w.attributes(&link.attributes);
            put_u32s(&mut w.links, &[trace_id, span_id, first, count]);
        }
        put_u32s(
            &mut w.spans,
            &[
                name,
                span_trace_id,
                span_id,
                parent,
                kind,
                status,
                status_message,
                service,
                start_nano,
                end_nano,
                attributes,
                attribute_count,
                resource as u32,
                scope as u32,
                events as u32,
                span.events.len() as u32,
                links as u32,
                span.links.len() as u32,
            ],
        );
        let duration = span.end_unix_nano.saturating_sub(span.start_unix_nano) as f64 / 1e6;
        for time in [millis(span.start_unix_nano), millis(span.end_unix_nano), duration] {
            w.spans.extend_from_slice(&time.to_le_bytes());
        }
    }
    let mut resource_records = Vec::with_capacity(resources.len() * RESOURCE);
    for resource in &resources {
        let service = resource.service.as_deref().map_or(NONE, |service| w.text(service));
        let (first, count) = w.attributes(&resource.attributes);
        put_u32s(&mut resource_records, &[service, first, count]);
    }
    let mut scope_records = Vec::with_capacity(scopes.len() * SCOPE);
    for scope in &scopes {
        let (name, version) = (w.text(&scope.name), w.text(&scope.version));
        put_u32s(&mut scope_records, &[name, version]);
    }
    w.finish(trace_id, window, &resource_records, &scope_records)
}

fn millis(unix_nano: u64) -> f64 {
    unix_nano as f64 / 1e6
}

fn index_of<'a, T>(list: &mut Vec<&'a Arc<T>>, item: &'a Arc<T>) -> usize {
    match list.iter().position(|known| Arc::ptr_eq(known, item)) {
        Some(index) => index,
        None => {
            list.push(item);
            list.len() - 1
        }
    }
}

fn put_u32s(out: &mut Vec<u8>, words: &[u32]) {
    for word in words {
        out.extend_from_slice(&word.to_le_bytes());
    }
}

#[derive(Default)]
struct Writer<'a> {
    /// (offset, length) of each string in `bytes`.
    strings: Vec<u8>,
    bytes: Vec<u8>,
    known: HashMap<&'a str, u32>,
    spans: Vec<u8>,
    events: Vec<u8>,
    links: Vec<u8>,
    entries: Vec<u8>,
    values: Vec<u8>,
}

/// Distinct texts stored once per trace; past this many, further ones are stored per use.
const SHARED_TEXTS: usize = 4096;

impl<'a> Writer<'a> {
    /// A text that may repeat (a name, a kind, a key): stored once.
    fn text(&mut self, text: &'a str) -> u32 {
        if let Some(&index) = self.known.get(text) {
            return index;
        }
        let index = self.unique(text);
        if self.known.len() < SHARED_TEXTS {
            self.known.insert(text, index);
        }
        index
    }

    /// A text that does not repeat (a span id, a timestamp).
    fn unique(&mut self, text: &str) -> u32 {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(text.as_bytes());
        self.finish_string(start)
    }

    /// Records the bytes written since `start` as the next string.
    fn finish_string(&mut self, start: usize) -> u32 {
        let index = (self.strings.len() / STRING) as u32;
        put_u32s(&mut self.strings, &[start as u32, (self.bytes.len() - start) as u32]);
        index
    }

    /// An id as lowercase hex, written in place.
    fn hex(&mut self, id: &[u8]) -> u32 {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let start = self.bytes.len();
        for byte in id {
            self.bytes.extend_from_slice(&[DIGITS[usize::from(byte >> 4)], DIGITS[usize::from(byte & 15)]]);
        }
        self.finish_string(start)
    }

    /// A number as decimal text, written in place.
    fn decimal(&mut self, number: u64) -> u32 {
        use std::io::Write as _;
        let start = self.bytes.len();
        let _ = write!(self.bytes, "{number}");
        self.finish_string(start)
    }

    /// Writes an attribute list as consecutive entries: (first, count). A key
    /// that repeats keeps its last value, as a JS object literal would.
    fn attributes(&mut self, attributes: &'a Attributes) -> (u32, u32) {
        // A client controls how many attributes a span has: find the repeats in
        // linear time (from the end, so the last value of a key is the one
        // kept); a short list is compared pairwise, which is cheaper.
        let keep: Vec<bool> = if attributes.len() <= 16 {
            (0..attributes.len()).map(|i| attributes[i + 1..].iter().all(|(later, _)| *later != attributes[i].0)).collect()
        } else {
            let mut seen = std::collections::HashSet::with_capacity(attributes.len());
            let mut keep: Vec<bool> = attributes.iter().rev().map(|(key, _)| seen.insert(key.as_str())).collect();
            keep.reverse();
            keep
        };
        let count = keep.iter().filter(|&&kept| kept).count();
        let first = self.entries.len() / ENTRY;
        self.entries.resize(self.entries.len() + count * ENTRY, 0);
        let mut at = first;
        for ((key, value), kept) in attributes.iter().zip(keep) {
            if !kept {
                continue;
            }
            let key = self.text(key);
            let value = self.value(value);
            self.entries[at * ENTRY..at * ENTRY + 4].copy_from_slice(&key.to_le_bytes());
            self.entries[at * ENTRY + 4..at * ENTRY + 8].copy_from_slice(&value.to_le_bytes());
            at += 1;
        }
        (first as u32, count as u32)
    }

    /// Writes one value record (and what it contains) and returns its index.
    fn value(&mut self, value: &'a Value) -> u32 {
        let index = self.values.len() / VALUE;
        self.values.resize(self.values.len() + VALUE, 0);
        self.fill(index, value);
        index as u32
    }

    /// Fills the value record at `index`.
    fn fill(&mut self, index: usize, value: &'a Value) {
        let (tag, a, b) = match value {
            Value::Empty => (T_NULL, 0, 0),
            Value::Double(number) if !number.is_finite() => (T_NULL, 0, 0),
            Value::Bool(false) => (T_FALSE, 0, 0),
            Value::Bool(true) => (T_TRUE, 0, 0),
            Value::Int(number) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(number) => (T_INT, 0, *number as u64),
            Value::Int(number) => (T_BIGINT, 0, *number as u64),
            Value::Double(number) => (T_DOUBLE, 0, number.to_bits()),
            Value::Str(text) => (T_STRING, self.text(text), 0),
            Value::Bytes(bytes) => (T_STRING, self.unique(&base64::engine::general_purpose::STANDARD.encode(bytes)), 0),
            Value::Array(items) => {
                // The items are consecutive: reserve them, then fill each in place.
                let first = self.values.len() / VALUE;
                self.values.resize(self.values.len() + items.len() * VALUE, 0);
                for (offset, item) in items.iter().enumerate() {
                    self.fill(first + offset, item);
                }
                (T_ARRAY, first as u32, items.len() as u64)
            }
            Value::Map(entries) => {
                let (first, count) = self.attributes(entries);
                (T_MAP, first, count as u64)
            }
        };
        let at = index * VALUE;
        self.values[at..at + 4].copy_from_slice(&tag.to_le_bytes());
        self.values[at + 4..at + 8].copy_from_slice(&a.to_le_bytes());
        self.values[at + 8..at + 16].copy_from_slice(&b.to_le_bytes());
    }

    fn finish(self, trace_id: u32, window: Option<(u64, u64)>, resources: &[u8], scopes: &[u8]) -> Vec<u8> {
        let sections = [&self.strings[..], resources, scopes, &self.spans, &self.events, &self.links, &self.entries, &self.values];
        let mut out = Vec::with_capacity(HEADER + sections.iter().map(|s| s.len()).sum::<usize>() + self.bytes.len());
        out.extend_from_slice(&MAGIC);
        put_u32s(&mut out, &[if window.is_some() { FLAG_WINDOW } else { 0 }]);
        let (start, end) = window.unwrap_or((0, 0));
        out.extend_from_slice(&(start as f64).to_le_bytes());
        out.extend_from_slice(&(end as f64).to_le_bytes());
        let counts = [
            trace_id,
            (self.strings.len() / STRING) as u32,
            (resources.len() / RESOURCE) as u32,
            (scopes.len() / SCOPE) as u32,
            (self.spans.len() / SPAN) as u32,
            (self.events.len() / EVENT) as u32,
            (self.links.len() / LINK) as u32,
            (self.entries.len() / ENTRY) as u32,
            (self.values.len() / VALUE) as u32,
            self.bytes.len() as u32,
        ];
        put_u32s(&mut out, &counts);
        debug_assert_eq!(out.len(), HEADER);
        for section in sections {
            out.extend_from_slice(section);
        }
        out.extend_from_slice(&self.bytes);
        out
    }
}
