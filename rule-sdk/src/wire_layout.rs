// The layout of the binary trace (ABI v2, wit/fluo-rule.wit `trace-bytes`):
// one file `include!`d by the host's encoder (src/rules/wire.rs) and by the
// plugin's decoder (trace_builder.rs), so the two cannot drift apart.
//
// All integers little-endian. A header of HEADER bytes, then the sections in
// this order, each an array of fixed-size records: strings, resources,
// scopes, spans, events, links, entries, values; then the string bytes.
// String references are indexes into the strings section; NONE means null.

/// The first four bytes of every binary trace.
pub const MAGIC: [u8; 4] = *b"FLT2";
/// A string reference meaning "null" (a root span's parent, a span without service).
pub const NONE: u32 = u32::MAX;
/// Header flag: the spans are one window of a window rule.
pub const FLAG_WINDOW: u32 = 1;

/// Header: magic, flags, window start and end (f64 ms), then the trace id's
/// string and the counts below, all u32.
pub const HEADER: usize = 64;
pub const H_FLAGS: usize = 4;
pub const H_WINDOW_START: usize = 8;
pub const H_WINDOW_END: usize = 16;
pub const H_TRACE_ID: usize = 24;
pub const H_STRINGS: usize = 28;
pub const H_RESOURCES: usize = 32;
pub const H_SCOPES: usize = 36;
pub const H_SPANS: usize = 40;
pub const H_EVENTS: usize = 44;
pub const H_LINKS: usize = 48;
pub const H_ENTRIES: usize = 52;
pub const H_VALUES: usize = 56;
pub const H_STRING_BYTES: usize = 60;

/// String: u32 offset into the string bytes, u32 length (UTF-8).
pub const STRING: usize = 8;
/// Resource: service string (or NONE), first attribute entry, entry count.
pub const RESOURCE: usize = 12;
/// Scope: name string, version string.
pub const SCOPE: usize = 8;
/// Span: ten u32 strings, eight u32 indexes, three f64 times.
pub const SPAN: usize = 96;
pub const S_NAME: usize = 0;
pub const S_TRACE_ID: usize = 4;
pub const S_SPAN_ID: usize = 8;
pub const S_PARENT: usize = 12;
pub const S_KIND: usize = 16;
pub const S_STATUS: usize = 20;
pub const S_STATUS_MESSAGE: usize = 24;
pub const S_SERVICE: usize = 28;
pub const S_START_NANO: usize = 32;
pub const S_END_NANO: usize = 36;
pub const S_ATTRIBUTES: usize = 40;
pub const S_ATTRIBUTE_COUNT: usize = 44;
pub const S_RESOURCE: usize = 48;
pub const S_SCOPE: usize = 52;
pub const S_EVENTS: usize = 56;
pub const S_EVENT_COUNT: usize = 60;
pub const S_LINKS: usize = 64;
pub const S_LINK_COUNT: usize = 68;
pub const S_START_TIME: usize = 72;
pub const S_END_TIME: usize = 80;
pub const S_DURATION: usize = 88;
/// Event: name string, first attribute entry, entry count, padding, f64 time.
pub const EVENT: usize = 24;
/// Link: trace id string, span id string, first attribute entry, entry count.
pub const LINK: usize = 16;
/// Attribute entry (of a span, event, link, resource or map value): key string, value index.
pub const ENTRY: usize = 8;
/// Value: u32 tag, u32 `a`, u64 `b`.
pub const VALUE: usize = 16;

/// Value tags. INT's `b` is an i64 within ±(2^53−1) (a number in JS); BIGINT's
/// an i64 beyond it (a BigInt); DOUBLE's the bits of a finite f64 (NaN and
/// infinities are sent as NULL); STRING's `a` a string; ARRAY's `a` the first
/// of `b` consecutive values; MAP's `a` the first of `b` consecutive entries.
pub const T_NULL: u32 = 0;
pub const T_FALSE: u32 = 1;
pub const T_TRUE: u32 = 2;
pub const T_INT: u32 = 3;
pub const T_BIGINT: u32 = 4;
pub const T_DOUBLE: u32 = 5;
pub const T_STRING: u32 = 6;
pub const T_ARRAY: u32 = 7;
pub const T_MAP: u32 = 8;
