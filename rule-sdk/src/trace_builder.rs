// Builds the JS trace (span objects, shared resource and scope objects) from
// the host's trace JSON (wit/fluo-rule.wit, `trace-json`) directly through the
// QuickJS API, without JSON.parse: QuickJS's JSON.parse costs ≈23 ns per byte
// (measured: 230 µs for a 20-span, 10 KB trace, natively), serde_json plus
// object construction with interned keys is several times cheaper.
//
// This file is `include!`d by the plugin (with `rquickjs` = javy's re-export)
// and by the native-QuickJS benchmark, so both measure the same code.

use rquickjs::object::Property;
use rquickjs::{Array, Atom, BigInt, Ctx, Exception, Object, Value};
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraceIn<'a> {
    #[serde(borrow)]
    trace_id: Cow<'a, str>,
    #[serde(default)]
    #[allow(dead_code)]
    big_ints: bool,
    resources: Vec<ResourceIn<'a>>,
    scopes: Vec<ScopeIn<'a>>,
    spans: Vec<SpanIn<'a>>,
    /// Present when the spans are one window of a window rule.
    #[serde(default)]
    window: Option<WindowIn>,
}

#[derive(Deserialize)]
struct WindowIn {
    start: f64,
    end: f64,
}

#[derive(Deserialize)]
struct ResourceIn<'a> {
    attributes: serde_json::Value,
    #[serde(borrow)]
    service: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ScopeIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    version: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpanIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    trace_id: Cow<'a, str>,
    #[serde(borrow)]
    span_id: Cow<'a, str>,
    #[serde(borrow)]
    parent_span_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow)]
    status_message: Cow<'a, str>,
    #[serde(borrow)]
    service: Option<Cow<'a, str>>,
    start_time: f64,
    end_time: f64,
    duration: f64,
    #[serde(borrow)]
    start_time_unix_nano: Cow<'a, str>,
    #[serde(borrow)]
    end_time_unix_nano: Cow<'a, str>,
    attributes: serde_json::Value,
    resource: usize,
    scope: usize,
    events: Vec<EventIn<'a>>,
    links: Vec<LinkIn<'a>>,
}

#[derive(Deserialize)]
struct EventIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    time: f64,
    attributes: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkIn<'a> {
    #[serde(borrow)]
    trace_id: Cow<'a, str>,
    #[serde(borrow)]
    span_id: Cow<'a, str>,
    attributes: serde_json::Value,
}

/// The property names of a span, interned once per build, in ABI order (the
/// same order for every span, so QuickJS shares one shape among them).
struct Keys<'js> {
    name: Atom<'js>,
    trace_id: Atom<'js>,
    span_id: Atom<'js>,
    parent_span_id: Atom<'js>,
    kind: Atom<'js>,
    status: Atom<'js>,
    status_message: Atom<'js>,
    service: Atom<'js>,
    start_time: Atom<'js>,
    end_time: Atom<'js>,
    duration: Atom<'js>,
    start_time_unix_nano: Atom<'js>,
    end_time_unix_nano: Atom<'js>,
    attributes: Atom<'js>,
    resource: Atom<'js>,
    scope: Atom<'js>,
    events: Atom<'js>,
    links: Atom<'js>,
    time: Atom<'js>,
    version: Atom<'js>,
}

impl<'js> Keys<'js> {
    fn new(ctx: &Ctx<'js>) -> rquickjs::Result<Keys<'js>> {
        let atom = |name: &str| Atom::from_str(ctx.clone(), name);
        Ok(Keys {
            name: atom("name")?,
            trace_id: atom("traceId")?,
            span_id: atom("spanId")?,
            parent_span_id: atom("parentSpanId")?,
            kind: atom("kind")?,
            status: atom("status")?,
            status_message: atom("statusMessage")?,
            service: atom("service")?,
            start_time: atom("startTime")?,
            end_time: atom("endTime")?,
            duration: atom("duration")?,
            start_time_unix_nano: atom("startTimeUnixNano")?,
            end_time_unix_nano: atom("endTimeUnixNano")?,
            attributes: atom("attributes")?,
            resource: atom("resource")?,
            scope: atom("scope")?,
            events: atom("events")?,
            links: atom("links")?,
            time: atom("time")?,
            version: atom("version")?,
        })
    }
}

fn text<'js>(ctx: &Ctx<'js>, value: &str) -> rquickjs::Result<Value<'js>> {
    Ok(rquickjs::String::from_str(ctx.clone(), value)?.into_value())
}

/// Strings that repeat across a trace's spans (its trace id, kinds, statuses,
/// services, span names): each distinct text becomes one JS string, shared.
struct Shared<'a, 'js> {
    ctx: Ctx<'js>,
    texts: std::collections::HashMap<&'a str, Value<'js>>,
}

/// Distinct texts shared per trace; past this many, further ones are made per use.
const SHARED_TEXTS: usize = 512;

impl<'a, 'js> Shared<'a, 'js> {
    fn new(ctx: &Ctx<'js>) -> Self {
        Shared { ctx: ctx.clone(), texts: std::collections::HashMap::new() }
    }

    fn text(&mut self, value: &'a str) -> rquickjs::Result<Value<'js>> {
        if let Some(known) = self.texts.get(value) {
            return Ok(known.clone());
        }
        let made = text(&self.ctx, value)?;
        if self.texts.len() < SHARED_TEXTS {
            self.texts.insert(value, made.clone());
        }
        Ok(made)
    }

    fn optional(&mut self, value: &'a Option<Cow<'a, str>>) -> rquickjs::Result<Value<'js>> {
        match value {
            Some(value) => self.text(value),
            None => Ok(Value::new_null(self.ctx.clone())),
        }
    }
}

fn optional_text<'js>(ctx: &Ctx<'js>, value: &Option<Cow<'_, str>>) -> rquickjs::Result<Value<'js>> {
    match value {
        Some(value) => text(ctx, value),
        None => Ok(Value::new_null(ctx.clone())),
    }
}

/// An attribute value: JSON as is, except `{"$int": "<decimal>"}` → BigInt
/// and `{"$map": {…}}` → that map (the host's escape for a map whose only key
/// is `$int` or `$map`).
fn attribute<'js>(ctx: &Ctx<'js>, value: &serde_json::Value) -> rquickjs::Result<Value<'js>> {
    Ok(match value {
        serde_json::Value::Null => Value::new_null(ctx.clone()),
        serde_json::Value::Bool(flag) => Value::new_bool(ctx.clone(), *flag),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(int) if i32::try_from(int).is_ok() => Value::new_int(ctx.clone(), int as i32),
            _ => Value::new_float(ctx.clone(), number.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(value) => text(ctx, value)?,
        serde_json::Value::Array(items) => {
            let array = Array::new(ctx.clone())?;
            for (index, item) in items.iter().enumerate() {
                array.set(index, attribute(ctx, item)?)?;
            }
            array.into_value()
        }
        serde_json::Value::Object(entries) => {
            if entries.len() == 1 {
                if let Some(serde_json::Value::String(decimal)) = entries.get("$int") {
                    let parsed: i64 = decimal.parse().map_err(|_| Exception::throw_type(ctx, "bad $int attribute"))?;
                    return Ok(BigInt::from_i64(ctx.clone(), parsed)?.into_value());
                }
                if let Some(serde_json::Value::Object(map)) = entries.get("$map") {
                    return attributes(ctx, map);
                }
            }
            attributes(ctx, entries)?
        }
    })
}

/// An attributes object (a span's, a resource's…, or a map value): its keys as
/// own properties.
fn attributes<'js>(ctx: &Ctx<'js>, entries: &serde_json::Map<String, serde_json::Value>) -> rquickjs::Result<Value<'js>> {
    let object = Object::new(ctx.clone())?;
    for (key, item) in entries {
        // Defined, not assigned: a key such as `toString` or `__proto__`
        // becomes an own property instead of hitting the frozen
        // Object.prototype (a read-only error that failed the whole trace).
        let value = Property::from(attribute(ctx, item)?).writable().enumerable().configurable();
        object.prop(key.as_str(), value)?;
    }
    Ok(object.into_value())
}

/// A top-level attributes object: never read as an escape.
fn attribute_object<'js>(ctx: &Ctx<'js>, value: &serde_json::Value) -> rquickjs::Result<Value<'js>> {
    match value {
        serde_json::Value::Object(entries) => attributes(ctx, entries),
        other => attribute(ctx, other),
    }
}

/// Parses the trace JSON and returns `(traceId, spans, window)` as JS values;
/// `window` is `{start, end}` (ms) for a window's spans, else undefined.
pub fn build_trace<'js>(ctx: &Ctx<'js>, bytes: &[u8]) -> rquickjs::Result<(Value<'js>, Array<'js>, Value<'js>)> {
    let doc: TraceIn<'_> = serde_json::from_slice(bytes).map_err(|error| Exception::throw_type(ctx, &format!("bad trace JSON: {error}")))?;
    let keys = Keys::new(ctx)?;
    let mut resources = Vec::with_capacity(doc.resources.len());
    for resource in &doc.resources {
        let object = Object::new(ctx.clone())?;
        object.set(keys.attributes.clone(), attribute_object(ctx, &resource.attributes)?)?;
        object.set(keys.service.clone(), optional_text(ctx, &resource.service)?)?;
        resources.push(object.into_value());
    }
    let mut scopes = Vec::with_capacity(doc.scopes.len());
    for scope in &doc.scopes {
        let object = Object::new(ctx.clone())?;
        object.set(keys.name.clone(), text(ctx, &scope.name)?)?;
        object.set(keys.version.clone(), text(ctx, &scope.version)?)?;
        scopes.push(object.into_value());
    }
    let spans = Array::new(ctx.clone())?;
    let mut shared = Shared::new(ctx);
    for (index, span) in doc.spans.iter().enumerate() {
        let object = Object::new(ctx.clone())?;
        object.set(keys.name.clone(), shared.text(&span.name)?)?;
        object.set(keys.trace_id.clone(), shared.text(&span.trace_id)?)?;
        object.set(keys.span_id.clone(), text(ctx, &span.span_id)?)?;
        object.set(keys.parent_span_id.clone(), optional_text(ctx, &span.parent_span_id)?)?;
        object.set(keys.kind.clone(), shared.text(&span.kind)?)?;
        object.set(keys.status.clone(), shared.text(&span.status)?)?;
        object.set(keys.status_message.clone(), shared.text(&span.status_message)?)?;
        object.set(keys.service.clone(), shared.optional(&span.service)?)?;
        object.set(keys.start_time.clone(), Value::new_float(ctx.clone(), span.start_time))?;
        object.set(keys.end_time.clone(), Value::new_float(ctx.clone(), span.end_time))?;
        object.set(keys.duration.clone(), Value::new_float(ctx.clone(), span.duration))?;
        object.set(keys.start_time_unix_nano.clone(), text(ctx, &span.start_time_unix_nano)?)?;
        object.set(keys.end_time_unix_nano.clone(), text(ctx, &span.end_time_unix_nano)?)?;
        object.set(keys.attributes.clone(), attribute_object(ctx, &span.attributes)?)?;
        let resource = resources.get(span.resource).cloned().ok_or_else(|| Exception::throw_range(ctx, "span refers to a missing resource"))?;
        object.set(keys.resource.clone(), resource)?;
        let scope = scopes.get(span.scope).cloned().ok_or_else(|| Exception::throw_range(ctx, "span refers to a missing scope"))?;
        object.set(keys.scope.clone(), scope)?;
        let events = Array::new(ctx.clone())?;
        for (position, event) in span.events.iter().enumerate() {
            let item = Object::new(ctx.clone())?;
            item.set(keys.name.clone(), shared.text(&event.name)?)?;
            item.set(keys.time.clone(), Value::new_float(ctx.clone(), event.time))?;
            item.set(keys.attributes.clone(), attribute_object(ctx, &event.attributes)?)?;
            events.set(position, item)?;
        }
        object.set(keys.events.clone(), events)?;
        let links = Array::new(ctx.clone())?;
        for (position, link) in span.links.iter().enumerate() {
            let item = Object::new(ctx.clone())?;
            item.set(keys.trace_id.clone(), text(ctx, &link.trace_id)?)?;
            item.set(keys.span_id.clone(), text(ctx, &link.span_id)?)?;
            item.set(keys.attributes.clone(), attribute_object(ctx, &link.attributes)?)?;
            links.set(position, item)?;
        }
        object.set(keys.links.clone(), links)?;
        spans.set(index, object)?;
    }
    let window = match &doc.window {
        Some(window) => {
            let object = Object::new(ctx.clone())?;
            object.set("start", Value::new_float(ctx.clone(), window.start))?;
            object.set("end", Value::new_float(ctx.clone(), window.end))?;
            object.into_value()
        }
        None => Value::new_undefined(ctx.clone()),
    };
    Ok((text(ctx, &doc.trace_id)?, spans, window))
}
