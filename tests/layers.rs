//! The dependency rule of the crate, checked on the source tree: every
//! top-level module of `src/` has a layer, a module imports only from its own
//! layer or the layers below, and modules of one layer import each other
//! without a cycle. docs/ARCHITECTURE.md ("Layers") explains the layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Layers from the bottom up; a new top-level module must be placed here.
const LAYERS: &[(&str, &[&str])] = &[
    ("model", &["model"]),
    ("store", &["store"]),
    ("domain", &["rules", "auth", "signals", "events", "webhooks"]),
    ("pipeline", &["pipeline"]),
    ("edge", &["ingest", "api", "listen", "web"]),
    ("app", &["app", "cli", "config", "demo"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

/// The source without comments, string and char literals (so that a doc link
/// or a message naming `crate::x` is not an import).
fn code_only(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &source[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |end| end + 2);
        } else if rest.starts_with("r#\"") {
            i += rest[3..].find("\"#").map_or(rest.len(), |end| end + 5);
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() && rest.as_bytes()[j] != b'"' {
                j += if rest.as_bytes()[j] == b'\\' { 2 } else { 1 };
            }
            i += (j + 1).min(rest.len());
        } else if rest.starts_with("'") && rest.len() > 3 && (rest.as_bytes()[2] == b'\'' || rest.as_bytes()[1] == b'\\') {
            // A char literal ('x' or '\n'), not a lifetime.
            i += rest[1..].find('\'').map_or(1, |end| end + 2);
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Top-level modules named after `crate::`, including inside `use crate::{a, b::c}`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && c == ',') {
                    push_first_segment(&item, &mut found);
                    item.clear();
                    if depth == 0 {
                        break;
                    }
                } else if depth == 1 {
                    item.push(c);
                }
            }
        } else {
            push_first_segment(after, &mut found);
        }
        rest = after;
    }
    found
}

fn push_first_segment(path: &str, found: &mut BTreeSet<String>) {
    let name: String = path.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    if !name.is_empty() && name != "self" && name != "super" {
        found.insert(name);
    }
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            out.push(path);
        }
    }
}

/// module → (imported module → the files that import it)
fn graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests may reach anything; the rule is for the code that ships.
        let shipped = text.split("#[cfg(test)]").next().unwrap();
        let entry = graph.entry(module.clone()).or_default();
        for imported in imports(&code_only(shipped)) {
            if imported != module {
                entry.entry(imported).or_default().insert(relative.display().to_string());
            }
        }
    }
    graph
}

#[test]
fn the_parser_sees_grouped_and_plain_imports_and_ignores_comments() {
    let code = code_only(
        "use crate::{a::X, b, c::{d, e}};\n// crate::hidden\nlet s = \"crate::quoted\";\nfn f<'a>(x: &'a str) { crate::f::g(); }\n/* crate::block */",
    );
    let found: Vec<String> = imports(&code).into_iter().collect();
    assert_eq!(found, ["a", "b", "c", "f"]);
}

#[test]
fn every_module_has_a_layer_and_imports_only_downward() {
    let graph = graph();
    let mut problems = Vec::new();
    for (module, imported) in &graph {
        let Some(own) = layer_of(module) else {
            problems.push(format!("`{module}` has no layer in tests/layers.rs"));
            continue;
        };
        for (target, files) in imported {
            let Some(theirs) = layer_of(target) else { continue };
            if theirs > own {
                problems.push(format!(
                    "`{module}` ({}) imports `{target}` ({}), a higher layer, in {}",
                    LAYERS[own].0,
                    LAYERS[theirs].0,
                    files.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let graph = graph();
    let edges: BTreeMap<&str, Vec<&str>> =
        graph.iter().map(|(module, imported)| (module.as_str(), imported.keys().map(String::as_str).collect())).collect();
    // Depth-first search; a back edge is a cycle.
    fn visit<'a>(
        module: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|on_path| *on_path == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module);
            cycles.push(cycle.join(" → "));
            return;
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for next in edges.get(module).into_iter().flatten() {
            visit(next, edges, path, done, cycles);
        }
        path.pop();
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for module in edges.keys() {
        visit(module, &edges, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}
