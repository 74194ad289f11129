//! The codegen against javy-codegen, the reference it replaces: the same
//! bytecode, the same imports and exports, the same compile errors; and the
//! compile's own budget.

use super::*;
use crate::rules::source;
use std::borrow::Cow;
use std::sync::Arc;

fn engine() -> Arc<RuleEngine> {
    RuleEngine::new(Limits::default()).unwrap()
}

/// javy-codegen's dynamically linked module for `js`, or its error text.
fn javy(engine: &RuleEngine, js: &str) -> Result<Vec<u8>, String> {
    let plugin = javy_codegen::Plugin::new(Cow::Owned(engine.plugin().wasm.clone())).unwrap();
    let mut generator = javy_codegen::Generator::new(plugin);
    generator.linking(javy_codegen::LinkingKind::Dynamic).source_embedding(javy_codegen::SourceEmbedding::Omitted);
    futures::executor::block_on(generator.generate(&javy_codegen::JS::from_string(js.to_string()))).map_err(|error| format!("{error:#}"))
}

/// A module's imports and exports (module, name, kind) and its passive data segments.
fn shape(wasm: &[u8]) -> (Vec<String>, Vec<String>, Vec<Vec<u8>>) {
    let (mut imports, mut exports, mut data) = (Vec::new(), Vec::new(), Vec::new());
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.unwrap() {
            wasmparser::Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.unwrap();
                    imports.push(format!("{}::{} {:?}", import.module, import.name, std::mem::discriminant(&import.ty)));
                }
            }
            wasmparser::Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.unwrap();
                    exports.push(format!("{} {:?}", export.name, export.kind));
                }
            }
            wasmparser::Payload::DataSection(reader) => {
                for segment in reader {
                    let segment = segment.unwrap();
                    assert!(matches!(segment.kind, wasmparser::DataKind::Passive));
                    data.push(segment.data.to_vec());
                }
            }
            _ => {}
        }
    }
    (imports, exports, data)
}

const SOURCES: &[&str] = &[
    r#"export default rule({
  name: "charge-needs-fraud-check",
  severity: "high",
  when: trace.has(s => s.name === "payment.charge_card"),
  expect: trace.has(s => s.name === "payment.fraud_check"),
  message: "payment charged without a fraud check",
});"#,
    r#"trace.has(s => s.attributes["http.status_code"] >= 500n && s.name.startsWith("ü"))"#,
    r#"export default window({ name: "w", select: s => s.kind === "server", length: "1m", every: "10s", check: w => w.concurrency().max > 50 });"#,
    r#"// comments, templates, classes
class A { #x = 1; get x() { return this.#x; } }
export default rule({ name: `t${1}`, when: trace.has(s => new A().x === 1), expect: trace.has(s => s.name !== "x") });"#,
];

#[test]
fn the_same_bytecode_imports_and_exports_as_javy_codegen() {
    let engine = engine();
    for source_text in SOURCES {
        let prepared = source::prepare(source_text).unwrap();
        let ours = module(&bytecode(&engine, prepared.code.as_bytes()).unwrap());
        let theirs = javy(&engine, &prepared.code).unwrap();
        let (ours_shape, theirs_shape) = (shape(&ours), shape(&theirs));
        assert_eq!(ours_shape.0, theirs_shape.0, "imports");
        assert_eq!(ours_shape.1, theirs_shape.1, "exports");
        assert_eq!(ours_shape.2, theirs_shape.2, "the bytecode (the one data segment)");
        assert!(engine.load_module(&ours).is_ok(), "the module passes the engine's validation");
    }
}

#[test]
fn a_syntax_error_reads_as_javy_codegens_does() {
    let engine = engine();
    let js = "export default rule({\n  when: trace.has(s => s.name === ),\n});";
    let Err(BytecodeError::Source(ours)) = bytecode(&engine, js.as_bytes()) else { panic!("no syntax error") };
    let theirs = javy(&engine, js).unwrap_err();
    assert!(ours.contains("function.mjs:2:"), "{ours}");
    assert!(theirs.ends_with(ours.trim_end()) || theirs.contains(ours.trim_end()), "ours: {ours}\ntheirs: {theirs}");
}

#[test]
fn compiling_has_a_budget() {
    let engine = RuleEngine::new(Limits { fuel_per_call: 1_000, ..Limits::default() }).unwrap();
    match bytecode(&engine, SOURCES[0].as_bytes()) {
        Err(BytecodeError::Sandbox(Outcome::OutOfFuel)) => {}
        other => panic!("expected out of fuel, got {:?}", other.map(|bytes| bytes.len())),
    }
}
