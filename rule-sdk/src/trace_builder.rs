// Builds the JS trace (span objects, shared resource and scope objects) from
// the host's binary trace (ABI v2: wit/fluo-rule.wit, `trace-bytes`; the
// layout is wire_layout.rs, shared with the host's encoder) directly through
// the QuickJS API. Nothing is parsed: records are read in place, and each
// distinct string of the trace's string table becomes one JS string, shared
// by every span that refers to it (names, kinds, services, attribute keys).
//
// Spans, their attribute objects, events and links, resources and scopes are
// immutable: every property is defined once, non-writable and
// non-configurable, and no property can be added (`Object.isFrozen(span)` is
// true). Defining them so costs about what assigning them did; freezing built
// objects afterwards (Object.freeze) cost more than building them.
//
// This file is `include!`d by the plugin (with `rquickjs` = javy's re-export)
// and by the native-QuickJS benchmark, so both measure the same code.

use rquickjs::{Array, BigInt, Ctx, Exception, Object, Value};

#[allow(dead_code)]
mod layout {
    include!("wire_layout.rs");
}
use layout::*;

use rquickjs::qjs;

/// The property names of spans, events, links, resources and scopes, as raw
/// atoms interned once per build (freed when the build ends), in ABI order
/// (the same order for every span, so QuickJS shares one shape among them).
const KEY_NAMES: [&str; 20] = [
    "name",
    "traceId",
    "spanId",
    "parentSpanId",
    "kind",
    "status",
    "statusMessage",
    "service",
    "startTime",
    "endTime",
    "duration",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "attributes",
    "resource",
    "scope",
    "events",
    "links",
    "time",
    "version",
];
const K_NAME: usize = 0;
const K_TRACE_ID: usize = 1;
const K_SPAN_ID: usize = 2;
const K_ATTRIBUTES: usize = 13;
const K_RESOURCE: usize = 14;
const K_SCOPE: usize = 15;
const K_EVENTS: usize = 16;
const K_LINKS: usize = 17;
const K_TIME: usize = 18;
const K_VERSION: usize = 19;
const K_SERVICE: usize = 7;
const K_START_TIME: usize = 8;
const K_START_NANO: usize = 11;

/// The binary trace, checked: every section lies within the bytes. Indexes
/// read from records are checked when they are followed.
struct Wire<'a> {
    bytes: &'a [u8],
    counts: [usize; 9],
    at: [usize; 9],
}

const STRINGS: usize = 0;
const RESOURCES: usize = 1;
const SCOPES: usize = 2;
const SPANS: usize = 3;
const EVENTS: usize = 4;
const LINKS: usize = 5;
const ENTRIES: usize = 6;
const VALUES: usize = 7;
const TEXT: usize = 8;

fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn float(bytes: &[u8], at: usize) -> f64 {
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&bytes[at..at + 8]);
    f64::from_le_bytes(eight)
}

impl<'a> Wire<'a> {
    fn read(bytes: &'a [u8]) -> Result<Wire<'a>, &'static str> {
        if bytes.len() < HEADER || bytes[..4] != MAGIC {
            return Err("not a FLUO binary trace (ABI v2)");
        }
        let sizes = [STRING, RESOURCE, SCOPE, SPAN, EVENT, LINK, ENTRY, VALUE, 1];
        let fields = [H_STRINGS, H_RESOURCES, H_SCOPES, H_SPANS, H_EVENTS, H_LINKS, H_ENTRIES, H_VALUES, H_STRING_BYTES];
        let mut counts = [0usize; 9];
        let mut at = [0usize; 9];
        let mut next = HEADER;
        for section in 0..9 {
            counts[section] = word(bytes, fields[section]) as usize;
            at[section] = next;
            next = counts[section].checked_mul(sizes[section]).and_then(|size| next.checked_add(size)).ok_or("section too large")?;
        }
        if next != bytes.len() {
            return Err("sections do not add up to the trace's length");
        }
        Ok(Wire { bytes, counts, at })
    }

    /// The byte offset of record `index` of `section`, checked.
    fn record(&self, section: usize, index: usize, size: usize) -> rquickjs::Result<usize> {
        if index >= self.counts[section] {
            return Err(rquickjs::Error::new_from_js("index", "record out of range"));
        }
        Ok(self.at[section] + index * size)
    }

    fn u32(&self, at: usize) -> usize {
        word(self.bytes, at) as usize
    }

    fn text(&self, index: usize) -> rquickjs::Result<&'a str> {
        let at = self.record(STRINGS, index, STRING)?;
        let (offset, length) = (self.u32(at), self.u32(at + 4));
        let end = offset.checked_add(length).filter(|&end| end <= self.counts[TEXT]);
        let end = end.ok_or_else(|| rquickjs::Error::new_from_js("index", "string out of range"))?;
        let bytes = &self.bytes[self.at[TEXT] + offset..self.at[TEXT] + end];
        std::str::from_utf8(bytes).map_err(|_| rquickjs::Error::new_from_js("bytes", "string is not UTF-8"))
    }

    /// A range of `count` records from `first` of `section`, checked.
    fn range(&self, section: usize, first: usize, count: usize) -> rquickjs::Result<std::ops::Range<usize>> {
        match first.checked_add(count) {
            Some(end) if end <= self.counts[section] => Ok(first..end),
            _ => Err(rquickjs::Error::new_from_js("index", "range out of bounds")),
        }
    }
}

/// How deep values may nest (the host's ingest caps them at 16).
const MAX_DEPTH: usize = 64;

/// Turns records into JS values: strings made once per trace, objects sealed.
struct Builder<'a, 'js> {
    ctx: Ctx<'js>,
    wire: Wire<'a>,
    keys: [qjs::JSAtom; 20],
    strings: Vec<Option<Value<'js>>>,
    /// Attribute keys as atoms, made once per string of the trace.
    atoms: Vec<qjs::JSAtom>,
    /// The one empty, frozen array every span without events or links shares.
    empty: Value<'js>,
}

/// `Object.preventExtensions`: with every property defined non-writable and
/// non-configurable, the object is then frozen.
fn seal<'js>(ctx: &Ctx<'js>, object: &Object<'js>) {
    unsafe {
        rquickjs::qjs::JS_PreventExtensions(ctx.as_raw().as_ptr(), object.as_raw());
    }
}

fn freeze_array<'js>(ctx: &Ctx<'js>, array: &Array<'js>) {
    unsafe {
        rquickjs::qjs::JS_FreezeObject(ctx.as_raw().as_ptr(), array.as_raw());
    }
}

impl Drop for Builder<'_, '_> {
    fn drop(&mut self) {
        let ctx = self.ctx.as_raw().as_ptr();
        for &atom in self.keys.iter().chain(self.atoms.iter()) {
            if atom != qjs::JS_ATOM_NULL {
                unsafe { qjs::JS_FreeAtom(ctx, atom) };
            }
        }
    }
}

fn new_atom<'js>(ctx: &Ctx<'js>, text: &str) -> rquickjs::Result<qjs::JSAtom> {
    let atom = unsafe { qjs::JS_NewAtomLen(ctx.as_raw().as_ptr(), text.as_ptr().cast(), text.len() as _) };
    if atom == qjs::JS_ATOM_NULL { Err(rquickjs::Error::Exception) } else { Ok(atom) }
}

/// Defines a read-only, enumerable, non-configurable property (the raw call:
/// the safe wrapper's atom and descriptor handling cost as much as the define).
fn define<'js>(ctx: &Ctx<'js>, object: &Object<'js>, atom: qjs::JSAtom, value: Value<'js>) -> rquickjs::Result<()> {
    // JS_DefinePropertyValue takes the value's reference; the context
    // reference the wrapper holds is released as rquickjs's own
    // `into_js_value` does (forgetting the wrapper alone would leak it).
    let raw = value.as_raw();
    unsafe { qjs::JS_FreeContext(ctx.as_raw().as_ptr()) };
    std::mem::forget(value);
    let flags = (qjs::JS_PROP_ENUMERABLE | qjs::JS_PROP_THROW) as _;
    let done = unsafe { qjs::JS_DefinePropertyValue(ctx.as_raw().as_ptr(), object.as_raw(), atom, raw, flags) };
    if done < 0 { Err(rquickjs::Error::Exception) } else { Ok(()) }
}

impl<'a, 'js> Builder<'a, 'js> {
    fn string(&mut self, index: usize) -> rquickjs::Result<Value<'js>> {
        if let Some(Some(known)) = self.strings.get(index) {
            return Ok(known.clone());
        }
        let text = self.wire.text(index)?;
        let made = rquickjs::String::from_str(self.ctx.clone(), text)?.into_value();
        self.strings[index] = Some(made.clone());
        Ok(made)
    }

    fn atom(&mut self, index: usize) -> rquickjs::Result<qjs::JSAtom> {
        match self.atoms.get(index) {
            Some(&known) if known != qjs::JS_ATOM_NULL => Ok(known),
            Some(_) => {
                let made = new_atom(&self.ctx, self.wire.text(index)?)?;
                self.atoms[index] = made;
                Ok(made)
            }
            None => Err(rquickjs::Error::new_from_js("index", "string out of range")),
        }
    }

    fn optional(&mut self, index: usize) -> rquickjs::Result<Value<'js>> {
        if index == NONE as usize { Ok(Value::new_null(self.ctx.clone())) } else { self.string(index) }
    }

    fn value(&mut self, index: usize, depth: usize) -> rquickjs::Result<Value<'js>> {
        // The host nests values at most 16 deep (ingest's cap); a deeper (or
        // cyclic) chain is not a trace the host wrote.
        if depth > MAX_DEPTH {
            return Err(Exception::throw_range(&self.ctx, "values nested too deep in the binary trace"));
        }
        let at = self.wire.record(VALUES, index, VALUE)?;
        let tag = word(self.wire.bytes, at);
        let a = self.wire.u32(at + 4);
        let b = u64::from_le_bytes(self.wire.bytes[at + 8..at + 16].try_into().expect("8 bytes"));
        let ctx = self.ctx.clone();
        Ok(match tag {
            T_NULL => Value::new_null(ctx),
            T_FALSE => Value::new_bool(ctx, false),
            T_TRUE => Value::new_bool(ctx, true),
            T_INT => match i32::try_from(b as i64) {
                Ok(int) => Value::new_int(ctx, int),
                Err(_) => Value::new_float(ctx, b as i64 as f64),
            },
            T_BIGINT => BigInt::from_i64(ctx, b as i64)?.into_value(),
            T_DOUBLE => Value::new_float(ctx, f64::from_bits(b)),
            T_STRING => self.string(a)?,
            T_ARRAY => {
                let range = self.wire.range(VALUES, a, b as usize)?;
                let array = Array::new(ctx.clone())?;
                for (position, item) in range.enumerate() {
                    array.set(position, self.value(item, depth + 1)?)?;
                }
                freeze_array(&ctx, &array);
                array.into_value()
            }
            T_MAP => self.nested_attributes(a, b as usize, depth + 1)?,
            _ => return Err(Exception::throw_type(&ctx, "unknown value tag in the binary trace")),
        })
    }

    /// Defines the property named by key `key` (a `K_*` index) on `object`.
    fn put(&self, object: &Object<'js>, key: usize, value: Value<'js>) -> rquickjs::Result<()> {
        define(&self.ctx, object, self.keys[key], value)
    }

    /// A span's events or links: the one shared empty array, or a frozen array
    /// of sealed items, each filled by `fill` from its record's offset.
    fn list(
        &mut self,
        section: usize,
        size: usize,
        first: usize,
        count: usize,
        fill: fn(&mut Self, usize, &Object<'js>) -> rquickjs::Result<()>,
    ) -> rquickjs::Result<Value<'js>> {
        if count == 0 {
            return Ok(self.empty.clone());
        }
        let list = Array::new(self.ctx.clone())?;
        for (position, index) in self.wire.range(section, first, count)?.enumerate() {
            let at = self.wire.record(section, index, size)?;
            let item = Object::new(self.ctx.clone())?;
            fill(self, at, &item)?;
            seal(&self.ctx, &item);
            list.set(position, item)?;
        }
        freeze_array(&self.ctx, &list);
        Ok(list.into_value())
    }

    /// An attributes object: its keys as own properties, defined (not
    /// assigned, so a key such as `toString` or `__proto__` is data and never
    /// hits the frozen Object.prototype), read-only.
    fn attributes(&mut self, first: usize, count: usize) -> rquickjs::Result<Value<'js>> {
        self.nested_attributes(first, count, 0)
    }

    fn nested_attributes(&mut self, first: usize, count: usize, depth: usize) -> rquickjs::Result<Value<'js>> {
        let object = Object::new(self.ctx.clone())?;
        for entry in self.wire.range(ENTRIES, first, count)? {
            let at = self.wire.record(ENTRIES, entry, ENTRY)?;
            let key = self.atom(self.wire.u32(at))?;
            let value = self.value(self.wire.u32(at + 4), depth)?;
            define(&self.ctx, &object, key, value)?;
        }
        seal(&self.ctx, &object);
        Ok(object.into_value())
    }
}

/// Reads the binary trace and returns `(traceId, spans, window)` as JS values;
/// `window` is `{start, end}` (ms) for a window's spans, else undefined.
pub fn build_trace<'js>(ctx: &Ctx<'js>, bytes: &[u8]) -> rquickjs::Result<(Value<'js>, Array<'js>, Value<'js>)> {
    let wire = Wire::read(bytes).map_err(|error| Exception::throw_type(ctx, &format!("bad binary trace: {error}")))?;
    let empty = Array::new(ctx.clone())?;
    freeze_array(ctx, &empty);
    let count = wire.counts[STRINGS];
    let keys = [qjs::JS_ATOM_NULL; 20];
    let atoms = vec![qjs::JS_ATOM_NULL; count];
    let mut b = Builder { ctx: ctx.clone(), wire, keys, strings: vec![None; count], atoms, empty: empty.into_value() };
    // Made into the builder's slots one by one, so that it frees what exists if one fails.
    for (index, name) in KEY_NAMES.into_iter().enumerate() {
        b.keys[index] = new_atom(ctx, name)?;
    }
    let k = b.keys;
    let mut resources = Vec::with_capacity(b.wire.counts[RESOURCES]);
    for index in 0..b.wire.counts[RESOURCES] {
        let at = b.wire.record(RESOURCES, index, RESOURCE)?;
        let (service, first, count) = (b.wire.u32(at), b.wire.u32(at + 4), b.wire.u32(at + 8));
        let object = Object::new(ctx.clone())?;
        define(ctx, &object, k[K_ATTRIBUTES], b.attributes(first, count)?)?;
        define(ctx, &object, k[K_SERVICE], b.optional(service)?)?;
        seal(ctx, &object);
        resources.push(object.into_value());
    }
    let mut scopes = Vec::with_capacity(b.wire.counts[SCOPES]);
    for index in 0..b.wire.counts[SCOPES] {
        let at = b.wire.record(SCOPES, index, SCOPE)?;
        let object = Object::new(ctx.clone())?;
        define(ctx, &object, k[K_NAME], b.string(b.wire.u32(at))?)?;
        define(ctx, &object, k[K_VERSION], b.string(b.wire.u32(at + 4))?)?;
        seal(ctx, &object);
        scopes.push(object.into_value());
    }
    let spans = Array::new(ctx.clone())?;
    for index in 0..b.wire.counts[SPANS] {
        let at = b.wire.record(SPANS, index, SPAN)?;
        let object = Object::new(ctx.clone())?;
        // name … service: eight strings, the optional ones null at NONE.
        for (key, offset) in [S_NAME, S_TRACE_ID, S_SPAN_ID, S_PARENT, S_KIND, S_STATUS, S_STATUS_MESSAGE, S_SERVICE].into_iter().enumerate() {
            let value = b.optional(b.wire.u32(at + offset))?;
            define(ctx, &object, k[key], value)?;
        }
        for (key, offset) in [(K_START_TIME, S_START_TIME), (K_START_TIME + 1, S_END_TIME), (K_START_TIME + 2, S_DURATION)] {
            define(ctx, &object, k[key], Value::new_float(ctx.clone(), float(b.wire.bytes, at + offset)))?;
        }
        define(ctx, &object, k[K_START_NANO], b.string(b.wire.u32(at + S_START_NANO))?)?;
        define(ctx, &object, k[K_START_NANO + 1], b.string(b.wire.u32(at + S_END_NANO))?)?;
        let attributes = b.attributes(b.wire.u32(at + S_ATTRIBUTES), b.wire.u32(at + S_ATTRIBUTE_COUNT))?;
        define(ctx, &object, k[K_ATTRIBUTES], attributes)?;
        let resource = resources.get(b.wire.u32(at + S_RESOURCE)).cloned();
        let resource = resource.ok_or_else(|| Exception::throw_range(ctx, "span refers to a missing resource"))?;
        define(ctx, &object, k[K_RESOURCE], resource)?;
        let scope = scopes.get(b.wire.u32(at + S_SCOPE)).cloned();
        let scope = scope.ok_or_else(|| Exception::throw_range(ctx, "span refers to a missing scope"))?;
        define(ctx, &object, k[K_SCOPE], scope)?;
        let events = b.list(EVENTS, EVENT, b.wire.u32(at + S_EVENTS), b.wire.u32(at + S_EVENT_COUNT), |b, at, item| {
            let name = b.string(b.wire.u32(at))?;
            b.put(item, K_NAME, name)?;
            b.put(item, K_TIME, Value::new_float(b.ctx.clone(), float(b.wire.bytes, at + 16)))?;
            let attributes = b.attributes(b.wire.u32(at + 4), b.wire.u32(at + 8))?;
            b.put(item, K_ATTRIBUTES, attributes)
        })?;
        define(ctx, &object, k[K_EVENTS], events)?;
        let links = b.list(LINKS, LINK, b.wire.u32(at + S_LINKS), b.wire.u32(at + S_LINK_COUNT), |b, at, item| {
            let (trace_id, span_id) = (b.string(b.wire.u32(at))?, b.string(b.wire.u32(at + 4))?);
            b.put(item, K_TRACE_ID, trace_id)?;
            b.put(item, K_SPAN_ID, span_id)?;
            let attributes = b.attributes(b.wire.u32(at + 8), b.wire.u32(at + 12))?;
            b.put(item, K_ATTRIBUTES, attributes)
        })?;
        define(ctx, &object, k[K_LINKS], links)?;
        seal(ctx, &object);
        spans.set(index, object)?;
    }
    let window = if word(b.wire.bytes, H_FLAGS) & FLAG_WINDOW != 0 {
        let object = Object::new(ctx.clone())?;
        object.set("start", Value::new_float(ctx.clone(), float(b.wire.bytes, H_WINDOW_START)))?;
        object.set("end", Value::new_float(ctx.clone(), float(b.wire.bytes, H_WINDOW_END)))?;
        object.into_value()
    } else {
        Value::new_undefined(ctx.clone())
    };
    let trace_id = b.string(word(b.wire.bytes, H_TRACE_ID) as usize)?;
    Ok((trace_id, spans, window))
}
