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

use crate::model::trace::{Span, Trace, Value};
use swc_core::ecma::ast::{
    BinaryOp, BlockStmtOrExpr, Callee, Decl, Expr, Function, Lit, MemberProp, ModuleItem, Pat as SwcPat, Prop, PropName, PropOrSpread,
    ReturnStmt, Stmt, UnaryOp,
};

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

const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

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
            Expr1::And(a, b) => match a.truth(span) {
                Tri::False => Tri::False,
                Tri::Maybe => Tri::Maybe,
                Tri::True => b.truth(span),
                Tri::Unknown => match b.truth(span) {
                    Tri::False => Tri::False,
                    Tri::Maybe => Tri::Maybe,
                    _ => Tri::Unknown,
                },
            },
            Expr1::Or(a, b) => match a.truth(span) {
                Tri::True => Tri::True,
                Tri::Maybe => Tri::Maybe,
                Tri::False => b.truth(span),
                Tri::Unknown => match b.truth(span) {
                    Tri::True => Tri::True,
                    Tri::Maybe => Tri::Maybe,
                    _ => Tri::Unknown,
                },
            },
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

// ------------------------------------------------------------ derivation --

/// What a module exports as its rule.
pub(crate) enum Exported<'a> {
    /// `export default <expression>` or a bare expression.
    Expr(&'a Expr),
    /// `export default function (t) {…}`.
    Function(&'a Function),
    Other,
}

/// Derives the prefilter of a module whose default export (or single bare
/// expression) is `exported`.
pub(crate) fn derive(module: &[ModuleItem], exported: Exported<'_>) -> Prefilter {
    if module.iter().any(shadows_sdk) {
        return Prefilter(None);
    }
    let pattern = match exported {
        Exported::Expr(expr) => rule_condition(expr, 0),
        Exported::Function(function) => check_function(function, 0),
        Exported::Other => Pat::Unknown,
    };
    Prefilter((pattern.decidable() && pattern.size() <= MAX_NODES).then_some(pattern))
}

impl Pat {
    /// Nodes in the condition (what one span's evaluation may visit).
    fn size(&self) -> usize {
        let scoped = |scope: &[Expr1], pred: &Expr1| 1 + pred.size() + scope.iter().map(Expr1::size).sum::<usize>();
        match self {
            Pat::Has(scope, pred) | Pat::Missing(scope, pred) | Pat::Count(scope, pred, ..) => scoped(scope, pred),
            Pat::CountVs(scope, pred, _, other_scope, other) => scoped(scope, pred) + scoped(other_scope, other),
            Pat::And(a, b) | Pat::Or(a, b) | Pat::FollowedBy(a, b) => 1 + a.size() + b.size(),
            Pat::Not(a) | Pat::Within(a) => 1 + a.size(),
            Pat::Unknown => 1,
        }
    }

    /// Whether some trace could make the pattern false (so the rule could be skipped).
    fn decidable(&self) -> bool {
        let scoped = |scope: &[Expr1], pred: &Expr1| pred.decidable() || scope.iter().any(Expr1::decidable);
        match self {
            Pat::Has(scope, pred) | Pat::Missing(scope, pred) | Pat::Count(scope, pred, ..) | Pat::CountVs(scope, pred, ..) => {
                scoped(scope, pred)
            }
            Pat::And(a, b) | Pat::FollowedBy(a, b) => a.decidable() || b.decidable(),
            Pat::Or(a, b) => a.decidable() && b.decidable(),
            Pat::Not(a) | Pat::Within(a) => a.decidable(),
            Pat::Unknown => false,
        }
    }
}

impl Expr1 {
    fn size(&self) -> usize {
        match self {
            Expr1::StrictEq(a, b) | Expr1::LooseEq(a, b) | Expr1::Rel(_, a, b) | Expr1::And(a, b) | Expr1::Or(a, b) => {
                1 + a.size() + b.size()
            }
            Expr1::Not(a) | Expr1::Method(_, a, _) => 1 + a.size(),
            _ => 1,
        }
    }

    /// Whether the expression's truth can be known for some span.
    fn decidable(&self) -> bool {
        match self {
            Expr1::Unknown => false,
            Expr1::StrictEq(a, b) | Expr1::LooseEq(a, b) | Expr1::Rel(_, a, b) => a.decidable() && b.decidable(),
            Expr1::And(a, b) => a.decidable() || b.decidable(),
            Expr1::Or(a, b) => a.decidable() && b.decidable(),
            Expr1::Not(a) | Expr1::Method(_, a, _) => a.decidable(),
            _ => true,
        }
    }
}

/// A top-level declaration that could rebind `trace` or `rule`.
fn shadows_sdk(item: &ModuleItem) -> bool {
    let named = |name: &str| matches!(name, "trace" | "rule" | "undefined");
    match item {
        ModuleItem::Stmt(Stmt::Decl(Decl::Var(var))) => {
            var.decls.iter().any(|decl| !matches!(&decl.name, SwcPat::Ident(id) if !named(&id.id.sym)))
        }
        ModuleItem::Stmt(Stmt::Decl(Decl::Fn(function))) => named(&function.ident.sym),
        ModuleItem::Stmt(Stmt::Decl(Decl::Class(class))) => named(&class.ident.sym),
        ModuleItem::Stmt(Stmt::Decl(_)) => true,
        _ => false,
    }
}

fn unparen(mut expr: &Expr) -> &Expr {
    while let Expr::Paren(paren) = expr {
        expr = &paren.expr;
    }
    expr
}

/// The condition of the exported value: a pattern, or `rule({...})`.
fn rule_condition(expr: &Expr, depth: usize) -> Pat {
    let expr = unparen(expr);
    if let Expr::Call(call) = expr
        && let Callee::Expr(callee) = &call.callee
        && matches!(unparen(callee), Expr::Ident(id) if &*id.sym == "rule")
    {
        let [argument] = call.args.as_slice() else { return Pat::Unknown };
        let Expr::Object(object) = unparen(&argument.expr) else { return Pat::Unknown };
        if argument.spread.is_some() {
            return Pat::Unknown;
        }
        let (mut when, mut expect, mut never, mut check) = (None, None, None, None);
        for prop in &object.props {
            let PropOrSpread::Prop(prop) = prop else { return Pat::Unknown };
            let (key, value) = match &**prop {
                Prop::KeyValue(pair) => (
                    match &pair.key {
                        PropName::Ident(ident) => ident.sym.to_string(),
                        PropName::Str(text) => match text.value.as_atom() {
                            Some(atom) => atom.to_string(),
                            None => return Pat::Unknown,
                        },
                        _ => return Pat::Unknown,
                    },
                    Some(&*pair.value),
                ),
                Prop::Method(method) => match &method.key {
                    PropName::Ident(ident) => (ident.sym.to_string(), None),
                    _ => return Pat::Unknown,
                },
                _ => return Pat::Unknown,
            };
            match key.as_str() {
                "when" => when = Some(value.map_or(Pat::Unknown, |value| pattern(value, depth + 1))),
                "never" => never = Some(value.map_or(Pat::Unknown, |value| pattern(value, depth + 1))),
                "expect" => expect = Some(value.map_or(Pat::Unknown, |value| pattern(value, depth + 1))),
                "check" => check = Some(value.map_or(Pat::Unknown, |value| check_expr(value, depth + 1))),
                "name" | "severity" | "description" | "message" | "group" => {}
                _ => return Pat::Unknown,
            }
        }
        // The SDK's order: `when` first (nothing else runs when it fails; when
        // it is absent it holds); then, all of them, `expect` (a violation when it
        // does not hold), `never` (when it holds) and `check`. With none of
        // those, `when` holding is the violation.
        let parts = [expect.map(|expect| Pat::Not(Box::new(expect))), never, check];
        let fires = parts.into_iter().flatten().reduce(|a, b| Pat::Or(Box::new(a), Box::new(b)));
        return match (when, fires) {
            (Some(when), Some(fires)) => Pat::And(Box::new(when), Box::new(fires)),
            (Some(when), None) => when,
            (None, Some(fires)) => fires,
            (None, None) => Pat::Unknown,
        };
    }
    match expr {
        Expr::Arrow(_) | Expr::Fn(_) => check_expr(expr, depth),
        _ => pattern(expr, depth),
    }
}

/// A check function's condition: the result it returns, when it is one of
/// the shapes below; anything else is unknown.
fn check_expr(expr: &Expr, depth: usize) -> Pat {
    match unparen(expr) {
        Expr::Arrow(arrow) if !arrow.is_async && !arrow.is_generator => {
            let [SwcPat::Ident(param)] = arrow.params.as_slice() else { return Pat::Unknown };
            match &*arrow.body {
                BlockStmtOrExpr::Expr(body) => check_result(body, &param.id.sym, depth + 1),
                BlockStmtOrExpr::BlockStmt(block) => match block.stmts.as_slice() {
                    [Stmt::Return(ReturnStmt { arg: Some(arg), .. })] => check_result(arg, &param.id.sym, depth + 1),
                    _ => Pat::Unknown,
                },
            }
        }
        Expr::Fn(function) => check_function(&function.function, depth),
        _ => Pat::Unknown,
    }
}

fn check_function(function: &Function, depth: usize) -> Pat {
    if function.is_async || function.is_generator {
        return Pat::Unknown;
    }
    let [param] = function.params.as_slice() else { return Pat::Unknown };
    let SwcPat::Ident(param) = &param.pat else { return Pat::Unknown };
    match function.body.as_ref().map(|body| body.stmts.as_slice()) {
        Some([Stmt::Return(ReturnStmt { arg: Some(arg), .. })]) => check_result(arg, &param.id.sym, depth + 1),
        _ => Pat::Unknown,
    }
}

/// What a check function returns, over its trace parameter `t`:
/// `t.filter(p)…`, `t.spans.filter(p)…` (more filters, then an optional
/// `.map(f)`: no violation when nothing is left), or `cond ? x : <falsy>`
/// with `cond` one of `t.has(p)`, `t.spans.some(p)`, and `&&` / `||` of them.
fn check_result(expr: &Expr, trace: &str, depth: usize) -> Pat {
    if depth > MAX_DEPTH {
        return Pat::Unknown;
    }
    let expr = unparen(expr);
    if let Expr::Cond(conditional) = expr {
        return match falsy_literal(&conditional.alt) {
            true => check_condition(&conditional.test, trace, depth + 1),
            false => Pat::Unknown,
        };
    }
    // `.map(f)` runs f on what the filters kept: nothing when they kept nothing.
    // (Array.prototype.map and filter check that their argument is a function even on an empty array.)
    let filtered = match method_call(expr) {
        Some((target, "map", args)) => match args.as_slice() {
            [Expr::Arrow(_) | Expr::Fn(_)] => target,
            _ => return Pat::Unknown,
        },
        _ => expr,
    };
    let mut filters = Vec::new();
    let mut at = filtered;
    loop {
        let Some((target, "filter", args)) = method_call(at) else { break };
        let [pred] = args.as_slice() else { return Pat::Unknown };
        filters.push(*pred);
        at = target;
    }
    let spans_array = matches!(unparen(at), Expr::Member(member)
        if matches!(&member.prop, MemberProp::Ident(name) if &*name.sym == "spans")
        && matches!(unparen(&member.obj), Expr::Ident(id) if &*id.sym == trace));
    let the_trace = matches!(unparen(at), Expr::Ident(id) if &*id.sym == trace);
    if filters.is_empty() || !(spans_array || the_trace) {
        return Pat::Unknown;
    }
    // The innermost filter runs first, on every span; each later one on what the one before kept.
    filters.reverse();
    // Only the trace's own filter takes a span name; Array.prototype.filter (on
    // `t.spans`, and on what any filter returned) throws on anything but a function.
    let array_filters = if spans_array { &filters[..] } else { &filters[1..] };
    if array_filters.iter().any(|pred| !matches!(unparen(pred), Expr::Arrow(_) | Expr::Fn(_))) {
        return Pat::Unknown;
    }
    let last = filters.pop().expect("at least one filter");
    Pat::Has(filters.into_iter().map(|pred| predicate(pred, depth + 1)).collect(), predicate(last, depth + 1))
}

/// A check's condition: `t.has(p)`, `t.spans.some(p)`, `&&` and `||` of them.
fn check_condition(expr: &Expr, trace: &str, depth: usize) -> Pat {
    if depth > MAX_DEPTH {
        return Pat::Unknown;
    }
    let expr = unparen(expr);
    if let Expr::Bin(bin) = expr {
        let (a, b) = (check_condition(&bin.left, trace, depth + 1), check_condition(&bin.right, trace, depth + 1));
        return match bin.op {
            // `b` runs only when `a` held, as in the builder's `and`.
            BinaryOp::LogicalAnd => Pat::And(Box::new(a), Box::new(b)),
            BinaryOp::LogicalOr => Pat::Or(Box::new(a), Box::new(b)),
            _ => Pat::Unknown,
        };
    }
    match method_call(expr) {
        Some((target, "has", args)) if matches!(unparen(target), Expr::Ident(id) if &*id.sym == trace) => match args.as_slice() {
            [pred] => Pat::Has(Vec::new(), predicate(pred, depth + 1)),
            _ => Pat::Unknown,
        },
        Some((target, "some", args))
            if matches!(unparen(target), Expr::Member(member)
                if matches!(&member.prop, MemberProp::Ident(name) if &*name.sym == "spans")
                && matches!(unparen(&member.obj), Expr::Ident(id) if &*id.sym == trace)) =>
        {
            match args.as_slice() {
                [pred @ (Expr::Arrow(_) | Expr::Fn(_))] => Pat::Has(Vec::new(), predicate(pred, depth + 1)),
                _ => Pat::Unknown,
            }
        }
        _ => Pat::Unknown,
    }
}

/// `false`, `null`, `undefined` or `[]`: a check result with no violation
/// (`0` and `''` are refused by the SDK with a TypeError, so they are not).
fn falsy_literal(expr: &Expr) -> bool {
    match unparen(expr) {
        Expr::Lit(Lit::Bool(flag)) => !flag.value,
        Expr::Lit(Lit::Null(_)) => true,
        Expr::Ident(id) => &*id.sym == "undefined",
        Expr::Array(array) => array.elems.is_empty(),
        _ => false,
    }
}

/// A builder pattern expression.
fn pattern(expr: &Expr, depth: usize) -> Pat {
    if depth > MAX_DEPTH {
        return Pat::Unknown;
    }
    let Some((target, method, args)) = method_call(expr) else { return Pat::Unknown };
    // trace.<scope>.has/missing/count(...)…
    let scoped = |args: &[&Expr], make: &dyn Fn(Vec<Expr1>, Expr1) -> Pat| -> Pat {
        match (scope_of(target, depth + 1), args) {
            (Some(scope), [pred]) => make(scope, predicate(pred, depth + 1)),
            _ => Pat::Unknown,
        }
    };
    match (method, args.as_slice()) {
        ("has", _) => scoped(&args, &|scope, pred| Pat::Has(scope, pred)),
        ("missing", _) => scoped(&args, &|scope, pred| Pat::Missing(scope, pred)),
        ("not", []) => Pat::Not(Box::new(pattern(target, depth + 1))),
        ("not", [inner]) if is_trace(target) => Pat::Not(Box::new(operand(inner, depth + 1))),
        ("and", [other]) => Pat::And(Box::new(pattern(target, depth + 1)), Box::new(operand(other, depth + 1))),
        ("or", [other]) => Pat::Or(Box::new(pattern(target, depth + 1)), Box::new(operand(other, depth + 1))),
        ("followedBy", [other]) => Pat::FollowedBy(Box::new(pattern(target, depth + 1)), Box::new(operand(other, depth + 1))),
        ("within", [_]) => Pat::Within(Box::new(pattern(target, depth + 1))),
        (compare @ ("gt" | "gte" | "lt" | "lte" | "eq" | "ne"), [argument]) => {
            let cmp = match compare {
                "gt" => Cmp::Gt,
                "gte" => Cmp::Gte,
                "lt" => Cmp::Lt,
                "lte" => Cmp::Lte,
                "eq" => Cmp::Eq,
                _ => Cmp::Ne,
            };
            let Some((scope, pred)) = count_of(target, depth + 1) else { return Pat::Unknown };
            if let Some(n) = number(argument) {
                return Pat::Count(scope, pred, cmp, n.to_bits());
            }
            match count_of(argument, depth + 1) {
                Some((other_scope, other)) => Pat::CountVs(scope, pred, cmp, other_scope, other),
                None => Pat::Unknown,
            }
        }
        _ => Pat::Unknown,
    }
}

/// An argument of `and`/`or`/…: a pattern, or a predicate (`trace.has(p)` of the unscoped builder).
fn operand(expr: &Expr, depth: usize) -> Pat {
    match unparen(expr) {
        Expr::Arrow(_) | Expr::Fn(_) => Pat::Has(Vec::new(), predicate(expr, depth)),
        Expr::Lit(Lit::Str(_)) => Pat::Has(Vec::new(), predicate(expr, depth)),
        other => pattern(other, depth),
    }
}

/// `trace.count(p)` or `trace.where(f)….count(p)`: (scope, predicate); no predicate counts every span.
fn count_of(expr: &Expr, depth: usize) -> Option<(Vec<Expr1>, Expr1)> {
    let (target, method, args) = method_call(expr)?;
    if method != "count" {
        return None;
    }
    let scope = scope_of(target, depth + 1)?;
    match args.as_slice() {
        [] => Some((scope, Expr1::Bool(true))),
        [pred] => Some((scope, predicate(pred, depth + 1))),
        _ => None,
    }
}

/// The `where` filters of a builder expression: `trace` → none.
fn scope_of(expr: &Expr, depth: usize) -> Option<Vec<Expr1>> {
    if is_trace(expr) {
        return Some(Vec::new());
    }
    if depth > MAX_DEPTH {
        return None;
    }
    let (target, method, args) = method_call(expr)?;
    match (method, args.as_slice()) {
        ("where", [filter]) => {
            let mut scope = scope_of(target, depth + 1)?;
            scope.push(predicate(filter, depth + 1));
            Some(scope)
        }
        _ => None,
    }
}

fn is_trace(expr: &Expr) -> bool {
    matches!(unparen(expr), Expr::Ident(id) if &*id.sym == "trace")
}

/// `target.method(args…)` with plain arguments (no spread).
fn method_call(expr: &Expr) -> Option<(&Expr, &str, Vec<&Expr>)> {
    let Expr::Call(call) = unparen(expr) else { return None };
    let Callee::Expr(callee) = &call.callee else { return None };
    let Expr::Member(member) = unparen(callee) else { return None };
    let MemberProp::Ident(name) = &member.prop else { return None };
    if call.args.iter().any(|arg| arg.spread.is_some()) {
        return None;
    }
    Some((&*member.obj, &*name.sym, call.args.iter().map(|arg| &*arg.expr).collect()))
}

fn number(expr: &Expr) -> Option<f64> {
    match unparen(expr) {
        Expr::Lit(Lit::Num(number)) => Some(number.value),
        Expr::Unary(unary) if unary.op == UnaryOp::Minus => number(&unary.arg).map(|n| -n),
        _ => None,
    }
}

fn string(expr: &Expr) -> Option<String> {
    match unparen(expr) {
        // A string with lone surrogates has no exact host counterpart.
        Expr::Lit(Lit::Str(text)) => text.value.as_atom().map(|atom| atom.to_string()),
        Expr::Tpl(template) if template.exprs.is_empty() && template.quasis.len() == 1 => {
            template.quasis[0].cooked.as_ref().and_then(|cooked| cooked.as_atom()).map(|atom| atom.to_string())
        }
        _ => None,
    }
}

/// A predicate: a span name string, or `s => <expr>` / `function (s) { return <expr>; }`.
fn predicate(expr: &Expr, depth: usize) -> Expr1 {
    if let Some(name) = string(expr) {
        return Expr1::StrictEq(Box::new(Expr1::Field(Field::Name)), Box::new(Expr1::Str(name)));
    }
    let (param, body) = match unparen(expr) {
        Expr::Arrow(arrow) if !arrow.is_async && !arrow.is_generator => {
            let [SwcPat::Ident(param)] = arrow.params.as_slice() else { return Expr1::Unknown };
            let body = match &*arrow.body {
                BlockStmtOrExpr::Expr(body) => &**body,
                BlockStmtOrExpr::BlockStmt(block) => match block.stmts.as_slice() {
                    [Stmt::Return(ret)] => match &ret.arg {
                        Some(arg) => &**arg,
                        None => return Expr1::Unknown,
                    },
                    _ => return Expr1::Unknown,
                },
            };
            (param.id.sym.to_string(), body)
        }
        Expr::Fn(function) if !function.function.is_async && !function.function.is_generator => {
            let [param] = function.function.params.as_slice() else { return Expr1::Unknown };
            let SwcPat::Ident(param) = &param.pat else { return Expr1::Unknown };
            let Some(body) = &function.function.body else { return Expr1::Unknown };
            let [Stmt::Return(ret)] = body.stmts.as_slice() else { return Expr1::Unknown };
            let Some(arg) = &ret.arg else { return Expr1::Unknown };
            (param.id.sym.to_string(), &**arg)
        }
        _ => return Expr1::Unknown,
    };
    span_expr(body, &param, depth + 1)
}

/// An expression over the span bound to `param`.
fn span_expr(expr: &Expr, param: &str, depth: usize) -> Expr1 {
    if depth > MAX_DEPTH {
        return Expr1::Unknown;
    }
    let expr = unparen(expr);
    let inner = |expr: &Expr| Box::new(span_expr(expr, param, depth + 1));
    match expr {
        Expr::Lit(Lit::Str(_)) | Expr::Tpl(_) => string(expr).map_or(Expr1::Unknown, Expr1::Str),
        Expr::Lit(Lit::Num(number)) => Expr1::Num(number.value.to_bits()),
        Expr::Lit(Lit::Bool(flag)) => Expr1::Bool(flag.value),
        Expr::Lit(Lit::Null(_)) => Expr1::Null,
        Expr::Ident(id) if &*id.sym == "undefined" => Expr1::Undefined,
        Expr::Unary(unary) => match unary.op {
            UnaryOp::Bang => Expr1::Not(inner(&unary.arg)),
            UnaryOp::Minus => number(expr).map_or(Expr1::Unknown, |n| Expr1::Num(n.to_bits())),
            _ => Expr1::Unknown,
        },
        Expr::Bin(bin) => {
            let (a, b) = (inner(&bin.left), inner(&bin.right));
            match bin.op {
                BinaryOp::EqEqEq => Expr1::StrictEq(a, b),
                BinaryOp::NotEqEq => Expr1::Not(Box::new(Expr1::StrictEq(a, b))),
                BinaryOp::EqEq => Expr1::LooseEq(a, b),
                BinaryOp::NotEq => Expr1::Not(Box::new(Expr1::LooseEq(a, b))),
                BinaryOp::Lt => Expr1::Rel(Cmp::Lt, a, b),
                BinaryOp::LtEq => Expr1::Rel(Cmp::Lte, a, b),
                BinaryOp::Gt => Expr1::Rel(Cmp::Gt, a, b),
                BinaryOp::GtEq => Expr1::Rel(Cmp::Gte, a, b),
                BinaryOp::LogicalAnd => Expr1::And(a, b),
                BinaryOp::LogicalOr => Expr1::Or(a, b),
                BinaryOp::In => match (string(&bin.left), attributes_of(&bin.right, param)) {
                    (Some(key), true) if !inherited(&key) => Expr1::HasAttr(key),
                    _ => Expr1::Unknown,
                },
                _ => Expr1::Unknown,
            }
        }
        Expr::Member(member) => {
            let key = match &member.prop {
                MemberProp::Ident(name) => Some(name.sym.to_string()),
                MemberProp::Computed(computed) => string(&computed.expr),
                _ => None,
            };
            let Some(key) = key else { return Expr1::Unknown };
            if matches!(unparen(&member.obj), Expr::Ident(id) if *id.sym == *param) {
                let field = match key.as_str() {
                    "name" => Field::Name,
                    "service" => Field::Service,
                    "kind" => Field::Kind,
                    "status" => Field::Status,
                    "statusMessage" => Field::StatusMessage,
                    "parentSpanId" => Field::ParentSpanId,
                    "duration" => Field::Duration,
                    "startTime" => Field::StartTime,
                    "endTime" => Field::EndTime,
                    _ => return Expr1::Unknown,
                };
                return Expr1::Field(field);
            }
            if attributes_of(&member.obj, param) && !inherited(&key) {
                return Expr1::Attr(key);
            }
            Expr1::Unknown
        }
        Expr::Call(_) => match method_call(expr) {
            Some((target, name @ ("startsWith" | "endsWith" | "includes"), args)) => {
                let [needle] = args.as_slice() else { return Expr1::Unknown };
                let Some(needle) = string(needle) else { return Expr1::Unknown };
                let method = match name {
                    "startsWith" => Method::StartsWith,
                    "endsWith" => Method::EndsWith,
                    _ => Method::Includes,
                };
                Expr1::Method(method, inner(target), needle)
            }
            _ => Expr1::Unknown,
        },
        _ => Expr1::Unknown,
    }
}

/// `s.attributes` of the predicate's parameter.
fn attributes_of(expr: &Expr, param: &str) -> bool {
    matches!(unparen(expr), Expr::Member(member)
        if matches!(&member.prop, MemberProp::Ident(name) if &*name.sym == "attributes")
        && matches!(unparen(&member.obj), Expr::Ident(id) if *id.sym == *param))
}

#[cfg(test)]
mod tests;
