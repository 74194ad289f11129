//! Derivation: a rule's syntax tree (swc) → its prefilter condition
//! ([`super::Pat`]), for the shapes listed in [`super`]; anything else is
//! unknown. Bounded: trees deeper than [`MAX_DEPTH`] are unknown, and
//! conditions over [`MAX_NODES`] nodes are dropped.

use super::{Cmp, Expr1, Field, MAX_DEPTH, MAX_NODES, Method, Pat, Prefilter, inherited};
use swc_core::ecma::ast::{
    BinaryOp, BlockStmtOrExpr, Callee, Decl, Expr, Function, Lit, MemberProp, ModuleItem, Pat as SwcPat, Prop, PropName, PropOrSpread,
    ReturnStmt, Stmt, UnaryOp,
};

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
