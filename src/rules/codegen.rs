//! JavaScript → QuickJS bytecode → a dynamically linked rule module, without
//! compiling the plugin for each rule.
//!
//! javy-codegen compiles the whole plugin (megabytes of wasm) with a fresh
//! wasmtime engine on every call to run its `compile-src` export: about 0.8 s
//! per rule, measured. Here the bytecode comes from the same `compile-src`
//! export of the engine's own plugin, compiled once at start and instantiated
//! in a sandbox store (fuel, deadline and memory cap apply to compiling an
//! untrusted source too; javy-codegen's engine had none). The module around
//! the bytecode is the one Javy's dynamic linking generates: imports of the
//! plugin's `cabi_realloc`, `invoke` and `memory` (namespace
//! [`super::abi::NAMESPACE`]), the bytecode as a passive data segment, and a
//! `_start` that copies it into the plugin's memory and evaluates it. The
//! tests check both against javy-codegen's output for the same sources.

use super::abi::NAMESPACE;
use super::engine::RuleEngine;
use super::sandbox::{classify, sandbox_store};
use super::{Limits, Outcome};
use wasm_encoder::{
    CodeSection, DataCountSection, DataSection, EntityType, ExportKind, ExportSection, Function, FunctionSection, ImportSection,
    MemoryType, Module, TypeSection, ValType,
};

/// Bytecode larger than this is refused (a 64 KiB source compiles to far less).
const MAX_BYTECODE: usize = 16 << 20;

/// Why a source did not compile to bytecode.
#[derive(Debug)]
pub enum BytecodeError {
    /// QuickJS refused the source: its message, with the position in `function.mjs`.
    Source(String),
    /// The compile exceeded its budget (fuel, deadline, memory) or the sandbox failed.
    Sandbox(Outcome),
}

/// Compiling a source gets this many times a rule call's fuel and deadline.
const COMPILE_BUDGET: u64 = 10;

/// QuickJS bytecode of `js` (an ES module), compiled by the engine's plugin.
pub fn bytecode(engine: &RuleEngine, js: &[u8]) -> Result<Vec<u8>, BytecodeError> {
    let limits = Limits {
        fuel_per_call: engine.limits.fuel_per_call.saturating_mul(COMPILE_BUDGET),
        deadline: engine.limits.deadline.saturating_mul(COMPILE_BUDGET as u32),
        ..engine.limits.clone()
    };
    let (mut store, _stderr) = sandbox_store(engine, &limits);
    let failed = |error: wasmtime::Error, store: &wasmtime::Store<_>| BytecodeError::Sandbox(classify(error, store));
    let plugin = engine.plugin_pre.instantiate(&mut store).map_err(|error| failed(error, &store))?;
    let host = |what: &str| BytecodeError::Sandbox(Outcome::Trap { message: format!("plugin has no {what}") });
    let memory = plugin.get_memory(&mut store, "memory").ok_or_else(|| host("memory"))?;
    let realloc = plugin.get_typed_func::<(u32, u32, u32, u32), u32>(&mut store, "cabi_realloc").map_err(|_| host("cabi_realloc"))?;
    let compile = plugin.get_typed_func::<(u32, u32), u32>(&mut store, "compile-src").map_err(|_| host("compile-src"))?;
    let len = u32::try_from(js.len()).map_err(|_| BytecodeError::Source("source too large".into()))?;
    let ret = (|| {
        let pointer = realloc.call(&mut store, (0, 0, 1, len))?;
        memory.write(&mut store, pointer as usize, js)?;
        compile.call(&mut store, (pointer, len))
    })()
    .map_err(|error| failed(error, &store))?;
    // The result: discriminant (0: ok), pointer, length — of the bytecode or of the error text.
    let mut area = [0u8; 12];
    memory.read(&store, ret as usize, &mut area).map_err(|_| host("readable result"))?;
    let word = |at: usize| u32::from_le_bytes(area[at..at + 4].try_into().expect("4 bytes")) as usize;
    let (ok, pointer, len) = (word(0) == 0, word(4), word(8));
    if len > MAX_BYTECODE {
        return Err(BytecodeError::Sandbox(Outcome::Trap { message: format!("compile result of {len} bytes") }));
    }
    let mut bytes = vec![0; len];
    memory.read(&store, pointer, &mut bytes).map_err(|_| host("readable result"))?;
    if ok { Ok(bytes) } else { Err(BytecodeError::Source(String::from_utf8_lossy(&bytes).into_owned())) }
}

/// The dynamically linked module that evaluates `bytecode` in the plugin's runtime.
pub fn module(bytecode: &[u8]) -> Vec<u8> {
    let len = i32::try_from(bytecode.len()).expect("bytecode is bounded far below 2 GiB");
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32; 4], [ValType::I32]); // cabi_realloc(ptr, size, align, new size) -> ptr
    types.ty().function([ValType::I32; 5], []); // invoke(bytecode ptr, len, fn-name option, name ptr, name len)
    types.ty().function([], []); // _start
    let mut imports = ImportSection::new();
    imports.import(NAMESPACE, "cabi_realloc", EntityType::Function(0));
    imports.import(NAMESPACE, "invoke", EntityType::Function(1));
    imports.import(NAMESPACE, "memory", MemoryType { minimum: 0, maximum: None, memory64: false, shared: false, page_size_log2: None });
    let mut functions = FunctionSection::new();
    functions.function(2);
    let mut exports = ExportSection::new();
    exports.export("_start", ExportKind::Func, 2);
    let mut start = Function::new([(1, ValType::I32)]);
    start
        .instructions()
        // Room for the bytecode in the plugin's memory.
        .i32_const(0)
        .i32_const(0)
        .i32_const(1)
        .i32_const(len)
        .call(0)
        .local_tee(0)
        // Copy it there from the data segment.
        .i32_const(0)
        .i32_const(len)
        .memory_init(0, 0)
        // Evaluate the module's top level (no function name).
        .local_get(0)
        .i32_const(len)
        .i32_const(0)
        .i32_const(0)
        .i32_const(0)
        .call(1)
        .end();
    let mut code = CodeSection::new();
    code.function(&start);
    let mut data = DataSection::new();
    data.passive(bytecode.iter().copied());
    let mut module = Module::new();
    module
        .section(&types)
        .section(&imports)
        .section(&functions)
        .section(&exports)
        .section(&DataCountSection { count: 1 })
        .section(&code)
        .section(&data);
    module.finish()
}

#[cfg(test)]
mod tests;
