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
//!
//! swc's parser (and the drop of its syntax tree) recurses once per nesting
//! level, and a stack overflow aborts the whole process. So a source is first
//! scanned ([`check_nesting`]): brackets nested more than [`MAX_NESTING`] deep,
//! or as many prefix operators in a row or right-associative operators in one
//! expression, are refused with their line and column. The parser then runs on
//! a thread of its own with a [`PARSER_STACK_BYTES`] stack, which holds what
//! the scan lets through for any source within the size limit.

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
    /// What a trace must have for the rule to report anything ([`super::prefilter`]).
    pub prefilter: super::prefilter::Prefilter,
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

/// Deepest nesting of `(`, `[`, `{` and template `${` a rule may have.
/// Real rules stay far below (the templates reach 6).
pub const MAX_NESTING: usize = 100;

/// Stack of the thread the parser runs on. Only the pages a parse touches are
/// committed; the reservation is virtual. The scan bounds brackets, prefix
/// operator runs and right-associative chains, each to [`MAX_NESTING`], but
/// they compose (a chain inside each bracket level) and left-associative
/// chains (`a+a+…`, 64 K deep in 128 KiB) still nest the syntax tree, whose drop
/// recurses; the stack is sized for the worst the source limit allows
/// (measured in `prepare_survives_every_nesting_construct`).
pub const PARSER_STACK_BYTES: usize = 512 << 20;

/// Checks nesting, then parses and rewrites on a thread with a large stack
/// (see the module docs).
pub fn prepare(source: &str) -> Result<Prepared, SourceError> {
    check_nesting(source)?;
    let internal = |message: &str| SourceError { message: message.into(), line: 1, column: 1 };
    std::thread::scope(|scope| {
        let parser = std::thread::Builder::new()
            .name("fluo-rule-parse".into())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(scope, || prepare_here(source))
            .map_err(|_| internal("the rule parser could not start; try again"))?;
        parser.join().map_err(|_| internal("the rule parser failed on this source"))?
    })
}

/// Where the source nests deeper than [`MAX_NESTING`] (brackets, prefix
/// operator runs, right-associative chains), as an error.
///
/// A rough JavaScript tokenizer, conservative on purpose: it skips strings,
/// comments, template text and regular expression literals (telling a regex
/// from a division by the token before the `/`, as a parser would), and counts
/// every other bracket. When it guesses wrong it counts too much (a refused
/// rule that nests 100 brackets inside a regex) or too little (the parser's
/// large stack still holds).
pub fn check_nesting(source: &str) -> Result<(), SourceError> {
    let bytes = source.as_bytes();
    let too_deep = |at: usize| {
        let (line, column) = line_column(source, at);
        SourceError { message: format!("the rule nests brackets more than {MAX_NESTING} levels deep"), line, column }
    };
    let too_many_operators = |at: usize| {
        let (line, column) = line_column(source, at);
        SourceError { message: format!("the rule chains more than {MAX_NESTING} operators in one expression"), line, column }
    };
    // Open brackets; `$` is a template substitution `${`, whose `}` resumes the template text.
    let mut open: Vec<u8> = Vec::new();
    // Per open bracket (and the top level): right-associative operators since
    // the last `,` or `;` (`a => b => …`, `a ? b : c ? …`, `a = b = …`, `a ** b ** …`),
    // which nest the parser as deep as brackets do.
    let mut chains: Vec<usize> = vec![0];
    // Whether a `/` here starts a regular expression (no operand before it).
    let mut operand_expected = true;
    // Operator characters and prefix keywords since the last operand: a run
    // of prefix operators (`!!!x`, `- - -x`, `typeof typeof x`) nests like brackets.
    let mut operators = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        match byte {
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                index = memchr_or_end(bytes, index, b'\n');
                continue;
            }
            b'/' if bytes.get(index + 1) == Some(&b'*') => {
                index = source[index + 2..].find("*/").map_or(bytes.len(), |end| index + 2 + end + 2);
                continue;
            }
            b'/' if operand_expected => {
                index = skip_regex(bytes, index + 1);
                operand_expected = false;
                operators = 0;
                continue;
            }
            b'\'' | b'"' => {
                index = skip_string(bytes, index + 1, byte);
                operand_expected = false;
                operators = 0;
                continue;
            }
            b'`' => {
                operators = 0;
                let (end, opened) = template_text(bytes, index + 1, &mut open, &mut chains);
                if open.len() > MAX_NESTING {
                    return Err(too_deep(end - 2));
                }
                operand_expected = opened;
                index = end;
                continue;
            }
            b'(' | b'[' | b'{' => {
                open.push(byte);
                chains.push(0);
                if open.len() > MAX_NESTING {
                    return Err(too_deep(index));
                }
                operand_expected = true;
            }
            b'}' if open.last() == Some(&b'$') => {
                open.pop();
                pop_chain(&mut chains);
                // Back in the template's text: the same depth as before its `${`.
                let (end, opened) = template_text(bytes, index + 1, &mut open, &mut chains);
                operand_expected = opened;
                index = end;
                continue;
            }
            b')' | b']' | b'}' => {
                open.pop();
                pop_chain(&mut chains);
                operators = 0;
                // After `)` or `]` comes an operator; after `}` (a block) a regex
                // may follow, but guessing division only risks counting too much.
                operand_expected = false;
            }
            b'0'..=b'9' => {
                while index < bytes.len() && (bytes[index].is_ascii_alphanumeric() || matches!(bytes[index], b'_' | b'.')) {
                    index += 1;
                }
                operand_expected = false;
                operators = 0;
                continue;
            }
            _ if byte.is_ascii_alphabetic() || matches!(byte, b'_' | b'$' | b'#') || byte >= 0x80 => {
                let start = index;
                index += 1;
                while index < bytes.len()
                    && (bytes[index].is_ascii_alphanumeric() || matches!(bytes[index], b'_' | b'$') || bytes[index] >= 0x80)
                {
                    index += 1;
                }
                // After these keywords an expression starts, so `/` begins a regex.
                operand_expected = matches!(
                    &bytes[start..index],
                    b"return"
                        | b"typeof"
                        | b"instanceof"
                        | b"in"
                        | b"of"
                        | b"new"
                        | b"delete"
                        | b"void"
                        | b"throw"
                        | b"case"
                        | b"do"
                        | b"else"
                        | b"yield"
                        | b"await"
                        | b"default"
                );
                if matches!(&bytes[start..index], b"typeof" | b"new" | b"delete" | b"void" | b"yield" | b"await") {
                    operators = operators.saturating_add(1);
                    if operators > MAX_NESTING {
                        return Err(too_many_operators(start));
                    }
                } else {
                    operators = 0;
                }
                continue;
            }
            _ if byte.is_ascii_whitespace() => {}
            // Separators nest nothing (`[,,,]`, `;;;`).
            b',' | b';' => {
                operand_expected = true;
                operators = 0;
                if let Some(chain) = chains.last_mut() {
                    *chain = 0;
                }
            }
            // Any other punctuator: an operand follows.
            _ => {
                let next = bytes.get(index + 1).copied();
                let previous = index.checked_sub(1).map(|at| bytes[at]);
                let right_associative = match byte {
                    b'?' => !matches!(next, Some(b'.' | b'?')) && previous != Some(b'?'),
                    b'=' => !matches!(next, Some(b'=')) && !matches!(previous, Some(b'=' | b'!' | b'<' | b'>')),
                    b'*' => next == Some(b'*'),
                    _ => false,
                };
                if right_associative && let Some(chain) = chains.last_mut() {
                    *chain = chain.saturating_add(1);
                    if *chain > MAX_NESTING {
                        return Err(too_many_operators(index));
                    }
                }
                operand_expected = true;
                operators = operators.saturating_add(1);
                if operators > MAX_NESTING {
                    return Err(too_many_operators(index));
                }
            }
        }
        index += 1;
    }
    Ok(())
}

/// Leaves a bracket's chain count; the top level's is never popped.
/// Skips template text from `from`; at a `${` the template stays open as one
/// more nesting level. Returns where scanning goes on and whether a `${` opened.
fn template_text(bytes: &[u8], from: usize, open: &mut Vec<u8>, chains: &mut Vec<usize>) -> (usize, bool) {
    let (end, opened) = skip_template(bytes, from);
    if opened {
        open.push(b'$');
        chains.push(0);
    }
    (end, opened)
}

fn pop_chain(chains: &mut Vec<usize>) {
    if chains.len() > 1 {
        chains.pop();
    }
}

fn memchr_or_end(bytes: &[u8], from: usize, needle: u8) -> usize {
    bytes[from..].iter().position(|&byte| byte == needle).map_or(bytes.len(), |at| from + at)
}

/// The index after a string literal's closing quote (or its line's end, if unterminated).
fn skip_string(bytes: &[u8], mut index: usize, quote: u8) -> usize {
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'\n' => return index,
            byte if byte == quote => return index + 1,
            _ => index += 1,
        }
    }
    bytes.len()
}

/// The index after a regular expression literal's closing `/` (or its line's end).
fn skip_regex(bytes: &[u8], mut index: usize) -> usize {
    let mut in_class = false;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'\n' => return index,
            b'[' => {
                in_class = true;
                index += 1;
            }
            b']' => {
                in_class = false;
                index += 1;
            }
            b'/' if !in_class => return index + 1,
            _ => index += 1,
        }
    }
    bytes.len()
}

/// Scans template text from `index`: the index after the closing backtick
/// (`false`), or after a `${` that opens a substitution (`true`).
fn skip_template(bytes: &[u8], mut index: usize) -> (usize, bool) {
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'`' => return (index + 1, false),
            b'$' if bytes.get(index + 1) == Some(&b'{') => return (index + 2, true),
            _ => index += 1,
        }
    }
    (bytes.len(), false)
}

fn prepare_here(source: &str) -> Result<Prepared, SourceError> {
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
        let exported = match decl {
            ModuleDecl::ExportDefaultExpr(export) => super::prefilter::Exported::Expr(&export.expr),
            ModuleDecl::ExportDefaultDecl(export) => match &export.decl {
                DefaultDecl::Fn(function) => super::prefilter::Exported::Function(&function.function),
                _ => super::prefilter::Exported::Other,
            },
            _ => super::prefilter::Exported::Other,
        };
        let prefilter = super::prefilter::derive(&module.body, exported);
        return Ok(Prepared { code, form: SourceForm::ExportDefault, shift: None, prefilter });
    }

    match statements.as_slice() {
        [Stmt::Expr(expression)] => {
            let lo = offset(expression.expr.span().lo);
            let hi = offset(expression.expr.span().hi);
            let prefix = "__fluo_define(";
            let (line, column) = line_column(source, lo);
            let code = format!("{}{}{}){}\n", &source[..lo], prefix, &source[lo..hi], &source[hi..]);
            let prefilter = super::prefilter::derive(&module.body, super::prefilter::Exported::Expr(&expression.expr));
            Ok(Prepared { code, form: SourceForm::BareExpression, shift: Some((line, column, prefix.len() as u32)), prefilter })
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
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
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

    #[test]
    fn deep_nesting_is_refused_with_its_line() {
        let parentheses = format!("// deep\nexport default trace.has(s =>\n{}s{});\n", "(".repeat(700), ")".repeat(700));
        let error = prepare(&parentheses).expect_err("700 parentheses");
        assert_eq!(error.line, 3, "{error:?}");
        assert!(error.message.contains("nests brackets more than 100"), "{error:?}");
        let brackets = format!("export default {}1{};", "[".repeat(1000), "]".repeat(1000));
        let error = prepare(&brackets).expect_err("1,000 brackets");
        assert_eq!((error.line, error.column), (1, 16 + MAX_NESTING as u32), "{error:?}");
        let unclosed = "[".repeat(1000);
        assert!(prepare(&unclosed).expect_err("unclosed").message.contains("nests brackets"));
        let substitutions = format!("export default {}1{};", "`${".repeat(200), "}`".repeat(200));
        assert!(prepare(&substitutions).expect_err("template substitutions").message.contains("nests brackets"));
        let within =
            format!("export default trace.has(s => {}s.name{} === 'a');", "(".repeat(MAX_NESTING - 1), ")".repeat(MAX_NESTING - 1));
        prepare(&within).expect("99 more parentheses inside the call are allowed");
    }

    #[test]
    fn brackets_in_strings_comments_templates_and_regexes_are_not_counted() {
        let noise = "([{".repeat(150);
        let source = format!(
            "// {noise}\n/* {noise} */\nconst a = '{noise}\\'{noise}';\nconst b = \"{noise}\";\nconst c = `{noise}${{a + `${{b}}{noise}`}}{noise}`;\n\
             const d = /\\([{noise}\\/]{{0,3}}/g;\nconst e = 4 / 2 / (1);\nexport default trace.has(s => (a + b + c).length > e && d.test(s.name));\n"
        );
        let prepared = prepare(&source).expect("brackets in literals and comments do not nest");
        assert_eq!(prepared.form, SourceForm::ExportDefault);
    }

    #[test]
    fn prefix_operator_runs_are_refused() {
        for run in ["!", "- ", "~", "typeof ", "void ", "+"] {
            let source = format!("export default {}x;", run.repeat(5000));
            let error = prepare(&source).expect_err(run);
            assert!(error.message.contains("chains more than"), "{run}: {error:?}");
        }
        prepare("export default trace.has(s => !!s.name && -(-1) === +1 && typeof s !== 'x');").expect("short runs are fine");
        for chain in ["a=>", "x ? 1 : ", "a = ", "2 ** "] {
            let source = format!("export default {}1;", chain.repeat(500));
            let error = prepare(&source).expect_err(chain);
            assert!(error.message.contains("chains more than"), "{chain}: {error:?}");
        }
        let statements = "a = b = 1;\n".repeat(200);
        prepare(&format!("let a, b;\n{statements}export default trace.has(s => a === b);")).expect("chains end at `;`");
        let separators = format!("const a = [{}1];\nexport default trace.has(s => a.length > 0);", ",".repeat(500));
        prepare(&separators).expect("elisions nest nothing");
    }

    /// Constructs that nest without brackets or operator runs, each as long as
    /// the 128 KiB source limit allows: the parser's stack must hold them all
    /// (a stack overflow here would abort the test process).
    #[test]
    fn prepare_survives_every_nesting_construct() {
        let limit = crate::rules::Limits::default().source_bytes;
        for unit in ["a=>", "a?a:", "a=", "a**", "a+", "a||", "a.b", "a()", "new a", "async a=>", "x=>y=>", "a?.b", "`${a}`+"] {
            let body = unit.repeat((limit - 32) / unit.len());
            let source = format!("export default {body}a;");
            let started = std::time::Instant::now();
            let _ = prepare(&source);
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "{unit}: {:?}", started.elapsed());
        }
    }

    mod proptest_source {
        use super::super::*;
        use proptest::prelude::*;

        /// JavaScript punctuation, quotes, comment and template starts: the
        /// characters the nesting scan and the parser care about.
        const ADVERSARIAL: &str = "[()\\[\\]{}`'\"/\\\\*!$ a=>?:.,;\n\r+-]{0,600}";

        /// Nesting of `(`, `[`, `{` and `${` outside literals, as a parser sees it,
        /// for sources built by [`nested`].
        fn nested(depth: usize, kinds: &[u8]) -> String {
            let mut head = String::from("export default ");
            let mut tail = String::from(";");
            for level in 0..depth {
                let (open, close) = match kinds[level % kinds.len()] % 4 {
                    0 => ("(", ")"),
                    1 => ("[", "]"),
                    2 => ("{a:", "}"),
                    _ => ("`${", "}`"),
                };
                head.push_str(open);
                tail.insert_str(0, close);
            }
            format!("{head}1{tail}")
        }

        proptest! {
            #![proptest_config(ProptestConfig::default())]

            #[test]
            fn proptest_prepare_never_panics(source in any::<String>()) {
                let _ = prepare(&source);
            }

            #[test]
            fn proptest_prepare_never_panics_on_punctuation(source in ADVERSARIAL) {
                let _ = prepare(&source);
            }

            #[test]
            fn proptest_depth_bound_holds(depth in (MAX_NESTING + 1)..3000usize, kinds in proptest::collection::vec(any::<u8>(), 1..8)) {
                let error = prepare(&nested(depth, &kinds)).expect_err("too deep");
                prop_assert!(error.message.contains("nests brackets"), "{:?}", error);
                prop_assert_eq!(error.line, 1);
            }

            #[test]
            fn proptest_nesting_within_the_bound_parses(depth in 0..MAX_NESTING, kinds in proptest::collection::vec(any::<u8>(), 1..8)) {
                let prepared = prepare(&nested(depth, &kinds));
                prop_assert!(prepared.is_ok(), "{:?}", prepared);
            }

            #[test]
            fn proptest_valid_sources_keep_working(
                text in any::<String>(),
                comment in "[^\n\r\u{2028}\u{2029}]{0,200}",
                block in any::<String>().prop_filter("no comment end", |text| !text.contains("*/")),
                depth in 0..40usize,
                bare in any::<bool>(),
            ) {
                let literal = serde_json::to_string(&text).expect("a JSON string is a JS string literal");
                let condition = format!("{}s.name === {literal}{}", "(".repeat(depth), ")".repeat(depth));
                let rule = format!("trace.has(s => {condition})");
                let source = if bare {
                    format!("// {comment}\n/* {block} */\n{rule}\n")
                } else {
                    format!("// {comment}\n/* {block} */\nconst t = `{{${{{literal}}}}}`;\nexport default {rule};\n")
                };
                let prepared = prepare(&source);
                prop_assert!(prepared.is_ok(), "{:?} for {:?}", prepared, source);
                let prepared = prepared.expect("checked");
                prop_assert_eq!(prepared.form, if bare { SourceForm::BareExpression } else { SourceForm::ExportDefault });
            }
        }
    }
}
