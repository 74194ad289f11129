//! Reads a rule's JavaScript and finds its form, then rewrites it so that the
//! module registers its rule with the SDK (`__fluo_define`) when evaluated.
//!
//! Three forms are accepted (docs/rules.md): `export default <pattern | check
//! function | rule({...})>`, or a file that is one bare pattern expression. The
//! rewrite keeps every line where it was, and every column except on the line
//! where a bare expression starts (recorded in [`Prepared::shift`] so that
//! error positions can be mapped back).
//!
//! Parsing uses swc's ECMAScript parser (already in the tree through
//! javy-codegen); QuickJS remains the authority on what compiles.

use swc_core::common::{BytePos, FileName, SourceMap, Spanned};
use swc_core::ecma::ast::{DefaultDecl, EsVersion, ModuleDecl, ModuleItem, Stmt};
use swc_core::ecma::parser::{self, EsSyntax, Syntax};

/// The name of the module-scoped binding that holds the default export.
const DEFAULT_BINDING: &str = "__fluo$d";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The JavaScript handed to Javy.
    pub code: String,
    pub form: SourceForm,
    /// `(line, column, delta)`: columns after `column` on `line` (1-based) are
    /// `delta` further right in `code` than in the tenant's source.
    pub shift: Option<(u32, u32, u32)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceForm {
    ExportDefault,
    BareExpression,
}

/// A source problem with its 1-based position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError {
    pub message: String,
    pub line: u32,
    pub column: u32,
}

pub fn prepare(source: &str) -> Result<Prepared, SourceError> {
    let source_map: SourceMap = Default::default();
    let file = source_map.new_source_file(FileName::Anon.into(), source.to_owned());
    let start = file.start_pos;
    let offset = |pos: BytePos| (pos.0 - start.0) as usize;
    let position = |pos: BytePos| -> (u32, u32) { line_column(source, offset(pos)) };
    let mut recovered = Vec::new();
    let module =
        parser::parse_file_as_module(&file, Syntax::Es(EsSyntax::default()), EsVersion::EsNext, None, &mut recovered).map_err(|error| {
            let (line, column) = position(error.span().lo);
            SourceError { message: format!("syntax error: {}", error.into_kind().msg()), line, column }
        })?;
    if let Some(error) = recovered.into_iter().next() {
        let (line, column) = position(error.span().lo);
        return Err(SourceError { message: format!("syntax error: {}", error.into_kind().msg()), line, column });
    }

    let mut default_export = None;
    let mut statements = Vec::new();
    for item in &module.body {
        match item {
            ModuleItem::ModuleDecl(ModuleDecl::Import(import)) => {
                let (line, column) = position(import.span.lo);
                return Err(SourceError {
                    message: "rules cannot import modules: the SDK (trace, rule, duration, console) is global".into(),
                    line,
                    column,
                });
            }
            ModuleItem::ModuleDecl(decl @ (ModuleDecl::ExportDefaultDecl(_) | ModuleDecl::ExportDefaultExpr(_))) => {
                default_export = Some(decl);
            }
            ModuleItem::ModuleDecl(ModuleDecl::ExportNamed(named)) => {
                let renames_default = named.specifiers.iter().any(|specifier| {
                    matches!(specifier, swc_core::ecma::ast::ExportSpecifier::Named(named)
                        if named.exported.as_ref().map(|exported| exported.atom().as_ref() == "default").unwrap_or(false))
                });
                if renames_default || named.src.is_some() {
                    let (line, column) = position(named.span.lo);
                    return Err(SourceError {
                        message: "use `export default <rule>`: re-exports and `export { x as default }` are not supported".into(),
                        line,
                        column,
                    });
                }
            }
            ModuleItem::ModuleDecl(ModuleDecl::ExportAll(all)) => {
                let (line, column) = position(all.span.lo);
                return Err(SourceError { message: "rules cannot re-export modules".into(), line, column });
            }
            ModuleItem::Stmt(Stmt::Empty(_)) => {}
            ModuleItem::Stmt(statement) => statements.push(statement),
            ModuleItem::ModuleDecl(_) => {}
        }
    }

    if let Some(decl) = default_export {
        let item_start = offset(decl.span().lo);
        let keywords_end = export_default_end(source, item_start).ok_or_else(|| {
            let (line, column) = position(decl.span().lo);
            SourceError { message: "could not read `export default`".into(), line, column }
        })?;
        let named = match decl {
            ModuleDecl::ExportDefaultDecl(d) => match &d.decl {
                DefaultDecl::Fn(f) => f.ident.as_ref().map(|ident| ident.sym.to_string()),
                DefaultDecl::Class(c) => c.ident.as_ref().map(|ident| ident.sym.to_string()),
                DefaultDecl::TsInterfaceDecl(_) => None,
            },
            _ => None,
        };
        let region = &source[item_start..keywords_end];
        // `export default function f() {}` stays a hoisted declaration; anything
        // else becomes `var __fluo$d=<expression>` in the same number of bytes.
        let head = match &named {
            Some(_) => String::new(),
            None => format!("var {DEFAULT_BINDING}="),
        };
        let mut replacement = head.clone();
        for ch in region[head.len().min(region.len())..].chars() {
            replacement.push(if ch == '\n' || ch == '\r' { ch } else { ' ' });
        }
        // The region holds `export` + `default` (at least 14 bytes); the head is 13.
        debug_assert_eq!(replacement.len(), region.len());
        let binding = named.unwrap_or_else(|| DEFAULT_BINDING.to_string());
        let code = format!("{}{}{}\n;__fluo_define({binding});\n", &source[..item_start], replacement, &source[keywords_end..]);
        return Ok(Prepared { code, form: SourceForm::ExportDefault, shift: None });
    }

    match statements.as_slice() {
        [Stmt::Expr(expression)] => {
            let lo = offset(expression.expr.span().lo);
            let hi = offset(expression.expr.span().hi);
            let prefix = "__fluo_define(";
            let (line, column) = line_column(source, lo);
            let code = format!("{}{}{}){}\n", &source[..lo], prefix, &source[lo..hi], &source[hi..]);
            Ok(Prepared { code, form: SourceForm::BareExpression, shift: Some((line, column, prefix.len() as u32)) })
        }
        [] => Err(SourceError {
            message: "the rule defines nothing: `export default` a pattern (trace.has(...)), a check function or rule({...})".into(),
            line: 1,
            column: 1,
        }),
        [_, second, ..] if statements.iter().all(|s| matches!(s, Stmt::Expr(_))) => {
            let (line, column) = position(second.span().lo);
            Err(SourceError { message: "a bare rule must be one pattern expression; use `export default` for more".into(), line, column })
        }
        _ => Err(SourceError {
            message: "the rule has no `export default`: export a pattern (trace.has(...)), a check function or rule({...})".into(),
            line: 1,
            column: 1,
        }),
    }
}

/// The byte offset just after the `default` keyword of an `export default`
/// that starts at `start` (comments and whitespace may sit between the words).
fn export_default_end(source: &str, start: usize) -> Option<usize> {
    source.get(start..)?.strip_prefix("export")?;
    let mut index = start + "export".len();
    let bytes = source.as_bytes();
    loop {
        match bytes.get(index..)? {
            [b'/', b'/', ..] => index += source[index..].find('\n')?,
            [b'/', b'*', ..] => index += source[index..].find("*/")? + 2,
            [c, ..] if c.is_ascii_whitespace() => index += 1,
            _ => break,
        }
    }
    source[index..].starts_with("default").then_some(index + "default".len())
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(source: &str, offset: usize) -> (u32, u32) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() as u32 + 1;
    (line, column)
}

impl Prepared {
    /// Maps a 1-based position in [`Prepared::code`] back to the tenant's source.
    pub fn original_position(&self, line: u32, column: u32) -> (u32, u32) {
        match self.shift {
            Some((shift_line, shift_column, delta)) if line == shift_line && column > shift_column + delta => (line, column - delta),
            Some((shift_line, shift_column, _)) if line == shift_line && column > shift_column => (line, shift_column),
            _ => (line, column),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_default_keeps_lines_and_columns() {
        let source = "// payments\nexport default trace.has('a');\n";
        let prepared = prepare(source).expect("valid rule");
        assert_eq!(prepared.form, SourceForm::ExportDefault);
        let line = prepared.code.lines().nth(1).expect("second line");
        assert_eq!(line, "var __fluo$d=  trace.has('a');");
        assert_eq!(line.len(), "export default trace.has('a');".len());
        assert!(prepared.code.ends_with("__fluo_define(__fluo$d);\n"));
    }

    #[test]
    fn named_default_function_stays_a_declaration() {
        let prepared = prepare("export default function check(t) { return check.length > 5; }").expect("valid");
        assert!(prepared.code.starts_with("               function check(t)"));
        assert!(prepared.code.contains("__fluo_define(check);"));
    }

    #[test]
    fn bare_expression_is_wrapped_and_positions_map_back() {
        let prepared = prepare("  trace.has('a')\n    .and(trace.missing('b'));\n").expect("valid");
        assert_eq!(prepared.form, SourceForm::BareExpression);
        assert!(prepared.code.starts_with("  __fluo_define(trace.has('a')\n    .and(trace.missing('b')));"));
        assert_eq!(prepared.original_position(1, 3 + 14 + 6), (1, 9));
        assert_eq!(prepared.original_position(2, 7), (2, 7));
    }

    #[test]
    fn export_default_in_strings_and_comments_is_not_confused() {
        let source = "const s = 'export default 1'; /* export default 2 */\nexport default trace.has(s);";
        let prepared = prepare(source).expect("valid");
        assert!(prepared.code.starts_with("const s = 'export default 1'; /* export default 2 */\nvar __fluo$d=  trace.has(s);"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let error = prepare("export default trace.has(s => s.name ===);\n").expect_err("invalid");
        assert_eq!(error.line, 1);
        assert!(error.column > 30, "{error:?}");
        assert!(error.message.starts_with("syntax error"));
    }

    #[test]
    fn imports_and_missing_exports_are_refused() {
        assert!(prepare("import x from 'y';\nexport default x;").expect_err("import").message.contains("cannot import"));
        assert!(prepare("const a = 1;\nfunction f() {}").expect_err("no export").message.contains("no `export default`"));
        assert!(prepare("").expect_err("empty").message.contains("defines nothing"));
        assert!(prepare("trace.has('a');\ntrace.has('b');").expect_err("two").message.contains("one pattern expression"));
    }
}
