//! The host-side prefilter: from a rule's source, a condition every trace the
//! rule can report must meet, decided on the host's spans without entering
//! the sandbox. A trace that cannot meet it skips the rule (the rule counts
//! as run with no violation); when no rule of a tenant remains, the trace is
//! never moved into JS at all.
//!
//! Derivation reads the default export's syntax tree (swc, in
//! [`super::source`]): patterns of the builder (`has`, `missing`, `count`,
//! `where`, `and`, `or`, `not`, `within`, `followedBy`), `rule({when, never})`
//! and predicates of the shape `s => <expression over s>` whose every part is
//! understood here: span fields, `s.attributes[...]` / `.key`, literals,
//! `=== !== == !=`, `< <= > >=`, `&& || !`, `in`, and `startsWith`,
//! `endsWith`, `includes` with a literal. Anything else is *unknown*.
//!
//! Evaluation is abstract interpretation with four answers per expression:
//! false, true, unknown-but-no-throw, and "may throw or cannot tell" (X).
//! A rule is skipped only when its condition is *false without a throw*
//! for the trace: so JS, running it, would also have reported nothing and
//! thrown nothing. X anywhere on the path that decides keeps the rule in the
//! sandbox. The equality and truthiness rules follow what the sandbox gives
//! rules (docs/rules.md, "Spans"): BigInt beyond ±(2^53−1), bytes as base64,
//! NaN and infinities as `null`, later duplicate attribute keys win.
//!
//! Differential test: `src/rules/prefilter/tests.rs` runs generated rules
//! on generated traces with and without the prefilter.

use super::abi::MAX_SAFE_INTEGER;
use crate::model::trace::{Span, Trace, Value};

/// Deepest tree the derivation builds; deeper sources are unknown (the
/// evaluation recurses on worker threads with ordinary stacks).
const MAX_DEPTH: usize = 48;

/// Largest condition kept, in nodes: evaluating it is host work that no fuel
/// meters, so a rule whose condition is larger always runs instead.
const MAX_NODES: usize = 256;

/// A rule's prefilter: `None` when the rule must always run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefilter(Option<Pat>);

impl Prefilter {
    /// Whether `trace` can make the rule report anything (or throw): false
    /// only when the rule, run, would report nothing without a failure.
    pub fn may_fire(&self, trace: &Trace) -> bool {
        match &self.0 {
            None => true,
            Some(pattern) => pattern.eval(&trace.spans, false) != Tri::False,
        }
    }

    /// Whether the rule can ever be skipped.
    pub fn is_active(&self) -> bool {
        self.0.is_some()
    }
}

/// Four-valued result: `Unknown` ran without a throw; `Maybe` might throw or
/// could not be decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tri {
    False,
    True,
    Unknown,
    Maybe,
}

impl Tri {
    fn of(value: bool) -> Tri {
        if value { Tri::True } else { Tri::False }
    }

    fn not(self) -> Tri {
        match self {
            Tri::False => Tri::True,
            Tri::True => Tri::False,
            other => other,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Ne,
}

impl Cmp {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Gt => a > b,
            Cmp::Gte => a >= b,
            Cmp::Lt => a < b,
            Cmp::Lte => a <= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }

    /// The comparison over counts anywhere in `lo..=hi` against `n`.
    fn over(self, (lo, hi): (u64, u64), n: f64) -> Tri {
        let (mut any_true, mut any_false) = (false, false);
        // Monotone in the count except eq/ne: check both ends and, for eq/ne, whether n is inside.
        for count in [lo, hi] {
            if self.holds(count as f64, n) {
                any_true = true;
            } else {
                any_false = true;
            }
        }
        if matches!(self, Cmp::Eq | Cmp::Ne) && n.fract() == 0.0 && n >= lo as f64 && n <= hi as f64 {
            if self == Cmp::Eq { any_true = true } else { any_false = true }
        }
        match (any_true, any_false) {
            (true, false) => Tri::True,
            (false, true) => Tri::False,
            _ => Tri::Unknown,
        }
    }
}

/// A pattern of the builder; a scope is the conjunction of `where` filters.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pat {
    Has(Vec<Expr1>, Expr1),
    Missing(Vec<Expr1>, Expr1),
    Count(Vec<Expr1>, Expr1, Cmp, u64),
    CountVs(Vec<Expr1>, Expr1, Cmp, Vec<Expr1>, Expr1),
    And(Box<Pat>, Box<Pat>),
    Or(Box<Pat>, Box<Pat>),
    Not(Box<Pat>),
    Within(Box<Pat>),
    FollowedBy(Box<Pat>, Box<Pat>),
    Unknown,
}

/// An expression over one span (the predicate's parameter).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr1 {
    Str(String),
    /// A number literal, as its bits.
    Num(u64),
    Bool(bool),
    Null,
    Undefined,
    Field(Field),
    Attr(String),
    StrictEq(Box<Expr1>, Box<Expr1>),
    LooseEq(Box<Expr1>, Box<Expr1>),
    Rel(Cmp, Box<Expr1>, Box<Expr1>),
    And(Box<Expr1>, Box<Expr1>),
    Or(Box<Expr1>, Box<Expr1>),
    Not(Box<Expr1>),
    HasAttr(String),
    Method(Method, Box<Expr1>, String),
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Name,
    Service,
    Kind,
    Status,
    StatusMessage,
    ParentSpanId,
    Duration,
    StartTime,
    EndTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    StartsWith,
    EndsWith,
    Includes,
}

/// A value as a rule would see it, as far as the host can tell.
#[derive(Clone, Copy, Debug)]
enum Js<'a> {
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
    /// A string whose text the host does not build (bytes as base64): its emptiness is known.
    SomeString {
        empty: bool,
    },
    BigInt,
    /// An array or object: coercing it may run rule-controlled keys (`toString`), so may throw.
    Object,
}

impl Js<'_> {
    fn truthy(self) -> Tri {
        match self {
            Js::Undefined | Js::Null => Tri::False,
            Js::Bool(flag) => Tri::of(flag),
            Js::Num(number) => Tri::of(number != 0.0 && !number.is_nan()),
            Js::Str(text) => Tri::of(!text.is_empty()),
            Js::SomeString { empty } => Tri::of(!empty),
            Js::BigInt => Tri::Unknown,
            Js::Object => Tri::True,
        }
    }

    fn primitive(self) -> bool {
        matches!(self, Js::Undefined | Js::Null | Js::Bool(_) | Js::Num(_) | Js::Str(_))
    }
}

/// Object.prototype's names: looked up on an attributes object they are found even when absent.
fn inherited(key: &str) -> bool {
    matches!(
        key,
        "constructor"
            | "__proto__"
            | "toString"
            | "toLocaleString"
            | "valueOf"
            | "hasOwnProperty"
            | "isPrototypeOf"
            | "propertyIsEnumerable"
            | "__defineGetter__"
            | "__defineSetter__"
            | "__lookupGetter__"
            | "__lookupSetter__"
    )
}

fn js_of(value: &Value) -> Js<'_> {
    match value {
        Value::Str(text) => Js::Str(text),
        Value::Bool(flag) => Js::Bool(*flag),
        Value::Int(number) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(number) => Js::Num(*number as f64),
        Value::Int(_) => Js::BigInt,
        Value::Double(number) if number.is_finite() => Js::Num(*number),
        Value::Double(_) | Value::Empty => Js::Null,
        Value::Bytes(bytes) => Js::SomeString { empty: bytes.is_empty() },
        Value::Array(_) | Value::Map(_) => Js::Object,
    }
}

fn attribute<'a>(span: &'a Span, key: &str) -> Js<'a> {
    // Later duplicates win, as in the object rules see.
    span.attributes.iter().rev().find(|(name, _)| name == key).map_or(Js::Undefined, |(_, value)| js_of(value))
}

impl Expr1 {
    /// The expression's value; `None` when it may throw or cannot be told.
    fn value<'a>(&'a self, span: &'a Span) -> Option<Js<'a>> {
        Some(match self {
            Expr1::Str(text) => Js::Str(text),
            Expr1::Num(bits) => Js::Num(f64::from_bits(*bits)),
            Expr1::Bool(flag) => Js::Bool(*flag),
            Expr1::Null => Js::Null,
            Expr1::Undefined => Js::Undefined,
            Expr1::Field(field) => match field {
                Field::Name => Js::Str(&span.name),
                Field::Service => span.resource.service.as_deref().map_or(Js::Null, Js::Str),
                Field::Kind => Js::Str(span.kind.as_str()),
                Field::Status => Js::Str(span.status.as_str()),
                Field::StatusMessage => Js::Str(&span.status_message),
                Field::ParentSpanId => match span.parent_span_id {
                    Some(_) => Js::SomeString { empty: false },
                    None => Js::Null,
                },
                Field::Duration => Js::Num(span.end_unix_nano.saturating_sub(span.start_unix_nano) as f64 / 1e6),
                Field::StartTime => Js::Num(span.start_unix_nano as f64 / 1e6),
                Field::EndTime => Js::Num(span.end_unix_nano as f64 / 1e6),
            },
            Expr1::Attr(key) => attribute(span, key),
            // `a && b` and `a || b` are one of their operands, not a boolean.
            Expr1::And(..) | Expr1::Or(..) | Expr1::Unknown => return None,
            boolean => return boolean.truth(span).to_bool_value(),
        })
    }

    /// Whether the expression is truthy for `span`.
    fn truth(&self, span: &Span) -> Tri {
        match self {
            Expr1::StrictEq(a, b) => match (a.value(span), b.value(span)) {
                (Some(a), Some(b)) => strict_eq(a, b),
                _ => Tri::Maybe,
            },
            Expr1::LooseEq(a, b) => match (a.value(span), b.value(span)) {
                (Some(a), Some(b)) => loose_eq(a, b),
                _ => Tri::Maybe,
            },
            Expr1::Rel(cmp, a, b) => match (a.value(span), b.value(span)) {
                (Some(a), Some(b)) => relational(*cmp, a, b),
                _ => Tri::Maybe,
            },
            Expr1::And(a, b) => short_circuit(a.truth(span), || b.truth(span), Tri::False),
            Expr1::Or(a, b) => short_circuit(a.truth(span), || b.truth(span), Tri::True),
            Expr1::Not(a) => a.truth(span).not(),
            Expr1::HasAttr(key) => Tri::of(span.attributes.iter().any(|(name, _)| name == key)),
            Expr1::Method(method, target, needle) => match target.value(span) {
                Some(Js::Str(text)) => Tri::of(match method {
                    Method::StartsWith => text.starts_with(needle.as_str()),
                    Method::EndsWith => text.ends_with(needle.as_str()),
                    Method::Includes => text.contains(needle.as_str()),
                }),
                Some(Js::SomeString { .. }) => Tri::Unknown,
                // undefined.startsWith(...), (5).startsWith(...): a TypeError.
                _ => Tri::Maybe,
            },
            Expr1::Unknown => Tri::Maybe,
            value => match value.value(span) {
                Some(value) => value.truthy(),
                None => Tri::Maybe,
            },
        }
    }
}

/// `a && b` (`stop` is false) or `a || b` (`stop` is true): `b` runs only
/// when `a` did not decide; an unknown `a` leaves only what `b` decides alone.
fn short_circuit(a: Tri, b: impl FnOnce() -> Tri, stop: Tri) -> Tri {
    match a {
        Tri::Maybe => Tri::Maybe,
        a if a == stop => stop,
        Tri::Unknown => match b() {
            Tri::Maybe => Tri::Maybe,
            b if b == stop => stop,
            _ => Tri::Unknown,
        },
        _ => b(),
    }
}

impl Tri {
    fn to_bool_value(self) -> Option<Js<'static>> {
        match self {
            Tri::False => Some(Js::Bool(false)),
            Tri::True => Some(Js::Bool(true)),
            // A boolean, value unknown: compared further, nothing certain follows.
            Tri::Unknown | Tri::Maybe => None,
        }
    }
}

fn strict_eq(a: Js, b: Js) -> Tri {
    match (a, b) {
        (Js::Undefined, Js::Undefined) | (Js::Null, Js::Null) => Tri::True,
        (Js::Bool(x), Js::Bool(y)) => Tri::of(x == y),
        (Js::Num(x), Js::Num(y)) => Tri::of(x == y),
        (Js::Str(x), Js::Str(y)) => Tri::of(x == y),
        (Js::SomeString { .. }, Js::Str(_) | Js::SomeString { .. }) | (Js::Str(_), Js::SomeString { .. }) => Tri::Unknown,
        (Js::BigInt, Js::BigInt) | (Js::Object, Js::Object) => Tri::Unknown,
        _ => Tri::False,
    }
}

fn loose_eq(a: Js, b: Js) -> Tri {
    let nullish = |value: Js| matches!(value, Js::Undefined | Js::Null);
    match (a, b) {
        (a, b) if nullish(a) && nullish(b) => Tri::True,
        (a, b) if nullish(a) || nullish(b) => Tri::False,
        (a, b) if a.primitive() && b.primitive() && std::mem::discriminant(&a) == std::mem::discriminant(&b) => strict_eq(a, b),
        // Coercions between strings, numbers and booleans: left to JS, no throw.
        (a, b) if !matches!(a, Js::Object) && !matches!(b, Js::Object) => Tri::Unknown,
        _ => Tri::Maybe,
    }
}

fn relational(cmp: Cmp, a: Js, b: Js) -> Tri {
    let number = |value: Js| match value {
        Js::Num(number) => Some(number),
        Js::Null => Some(0.0),
        Js::Bool(flag) => Some(f64::from(u8::from(flag))),
        Js::Undefined => Some(f64::NAN),
        _ => None,
    };
    match (number(a), number(b)) {
        // NaN compares false with everything.
        (Some(x), Some(y)) => Tri::of(cmp.holds(x, y)),
        _ if matches!(a, Js::Object) || matches!(b, Js::Object) => Tri::Maybe,
        _ => Tri::Unknown,
    }
}

impl Pat {
    /// `subset`: the answer must hold for every subset of `spans` too (inside `within`).
    fn eval(&self, spans: &[Span], subset: bool) -> Tri {
        match self {
            Pat::Has(scope, pred) => {
                let (lo, hi) = match counts(scope, pred, spans) {
                    Some(range) => range,
                    None => return Tri::Maybe,
                };
                if hi == 0 {
                    Tri::False
                } else if lo > 0 && !subset {
                    Tri::True
                } else {
                    Tri::Unknown
                }
            }
            Pat::Missing(scope, pred) => match counts(scope, pred, spans) {
                None => Tri::Maybe,
                Some((_, 0)) => Tri::True,
                Some((lo, _)) if lo > 0 && !subset => Tri::False,
                Some(_) => Tri::Unknown,
            },
            Pat::Count(scope, pred, cmp, n) => match counts(scope, pred, spans) {
                None => Tri::Maybe,
                Some((lo, hi)) => cmp.over((if subset { 0 } else { lo }, hi), f64::from_bits(*n)),
            },
            Pat::CountVs(scope, pred, cmp, other_scope, other) => match (counts(scope, pred, spans), counts(other_scope, other, spans)) {
                (Some((_, 0)), Some(_)) if *cmp == Cmp::Gt => Tri::False,
                (Some(_), Some(_)) => Tri::Unknown,
                _ => Tri::Maybe,
            },
            // The second pattern runs only when the first matched.
            Pat::And(a, b) | Pat::FollowedBy(a, b) => {
                let first = a.eval(spans, subset);
                let result = match first {
                    Tri::False => return Tri::False,
                    Tri::Maybe => return Tri::Maybe,
                    _ => b.eval(spans, subset),
                };
                match (self, first, result) {
                    (_, _, Tri::False) => Tri::False,
                    (_, _, Tri::Maybe) => Tri::Maybe,
                    (Pat::And(..), Tri::True, Tri::True) => Tri::True,
                    _ => Tri::Unknown,
                }
            }
            // Both sides always run.
            Pat::Or(a, b) => match (a.eval(spans, subset), b.eval(spans, subset)) {
                (Tri::Maybe, _) | (_, Tri::Maybe) => Tri::Maybe,
                (Tri::False, Tri::False) => Tri::False,
                (Tri::True, _) | (_, Tri::True) => Tri::True,
                _ => Tri::Unknown,
            },
            Pat::Not(a) => a.eval(spans, subset).not(),
            // Evaluated on windows (subsets) of the spans: only what holds for every subset carries over.
            Pat::Within(a) => match a.eval(spans, true) {
                Tri::True => Tri::Unknown,
                other => other,
            },
            Pat::Unknown => Tri::Maybe,
        }
    }
}

/// How many spans match `pred` within the `where` scope, at least and at
/// most; `None` when a predicate the builder would run may throw.
fn counts(scope: &[Expr1], pred: &Expr1, spans: &[Span]) -> Option<(u64, u64)> {
    let (mut lo, mut hi) = (0u64, 0u64);
    for span in spans {
        // The scope's filters run in order, each only on what the previous let through.
        let mut selected = Tri::True;
        for filter in scope {
            match filter.truth(span) {
                Tri::False => {
                    selected = Tri::False;
                    break;
                }
                Tri::Maybe => return None,
                Tri::Unknown => selected = Tri::Unknown,
                Tri::True => {}
            }
        }
        if selected == Tri::False {
            continue;
        }
        match pred.truth(span) {
            Tri::Maybe => return None,
            Tri::False => {}
            Tri::True => {
                hi += 1;
                lo += u64::from(selected == Tri::True);
            }
            Tri::Unknown => hi += 1,
        }
    }
    Some((lo, hi))
}

mod derive;
pub(crate) use derive::{Exported, derive};

#[cfg(test)]
mod tests;
