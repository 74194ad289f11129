//! Keeps docs/ true: every JavaScript example in docs/rules.md compiles with the
//! real compiler (a block holding several one-line `export default` rules is
//! compiled line by line), and docs/openapi.json is the served document.

use fluo::rules::{Limits, RuleEngine, compile::compile};

fn js_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```js") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn every_rules_md_example_compiles() {
    let markdown = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rules.md")).expect("docs/rules.md");
    let mut sources = Vec::new();
    for block in js_blocks(&markdown) {
        if block.matches("export default").count() > 1 {
            sources.extend(block.lines().filter(|line| line.starts_with("export default")).map(str::to_string));
        } else {
            sources.push(block);
        }
    }
    assert!(sources.len() >= 15, "found {} examples", sources.len());
    let engine = RuleEngine::new(Limits::default()).expect("engine");
    let failures: Vec<String> =
        sources.iter().filter_map(|source| compile(&engine, source).err().map(|error| format!("{source}\n  → {error}"))).collect();
    assert!(failures.is_empty(), "examples in docs/rules.md that do not compile:\n{}", failures.join("\n"));
}

/// docs/openapi.json is the document the server serves (`fluo openapi > docs/openapi.json` refreshes it).
#[test]
fn openapi_json_in_docs_is_the_served_document() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json")).expect("docs/openapi.json");
    let current = fluo::api::document().to_pretty_json().unwrap();
    assert!(committed.trim_end() == current.trim_end(), "docs/openapi.json is stale: run `fluo openapi > docs/openapi.json`");
}

/// Every rule template (rule-sdk/templates/, used by `fluo demo`) compiles.
#[test]
fn every_rule_template_compiles() {
    let engine = RuleEngine::new(Limits::default()).expect("engine");
    assert_eq!(fluo::rules::templates::TEMPLATES.len(), 6);
    for template in fluo::rules::templates::TEMPLATES {
        let (compiled, _) = compile(&engine, template.source).unwrap_or_else(|error| panic!("{}: {error}", template.id));
        assert!(compiled.meta.name.is_some(), "{} names itself", template.id);
    }
}
