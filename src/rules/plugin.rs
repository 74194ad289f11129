//! The FLUO Javy plugin as the host holds it: the raw build from `rule-sdk/`
//! (embedded by build.rs) pre-initialized with wizer, so that the SDK prelude is
//! already evaluated in the snapshot every sandbox starts from.
//!
//! A rule module generated against one plugin snapshot only works with that
//! exact snapshot (it carries QuickJS bytecode for it), so the snapshot's hash
//! is recorded with each compiled rule.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wizer::Wizer;

/// The plugin as compiled by build.rs, before pre-initialization.
pub const RAW_PLUGIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fluo_plugin.wasm"));

#[derive(Clone)]
pub struct Plugin {
    /// The pre-initialized module (what rules are generated against and run with).
    pub wasm: Vec<u8>,
    /// SHA-256 of `wasm`, hex.
    pub hash: String,
}

impl Plugin {
    /// Pre-initializes the embedded plugin (with compiling it, ≈2.5 s of `fluo` start-up, measured).
    pub fn initialize() -> Result<Plugin> {
        Self::initialize_from(RAW_PLUGIN)
    }

    pub fn initialize_from(raw: &[u8]) -> Result<Plugin> {
        let engine = wasmtime::Engine::default();
        let stderr = MemoryOutputPipe::new(64 * 1024);
        let mut builder = WasiCtxBuilder::new();
        // Same determinism as the sandboxes: the snapshot must not capture a
        // clock reading or a random seed from the machine that built it.
        deterministic_wasi_ctx::add_determinism_to_wasi_ctx_builder(&mut builder);
        builder.stdout(MemoryOutputPipe::new(64 * 1024)).stderr(stderr.clone());
        let mut store = wasmtime::Store::new(&engine, builder.build_p1());
        let wasm = futures::executor::block_on(
            Wizer::new()
                .init_func("initialize-runtime")
                // javy-codegen checks that the export is still there.
                .keep_init_func(true)
                .run(&mut store, raw, async |store, module| {
                    let mut linker = wasmtime::Linker::new(store.engine());
                    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |cx| cx)?;
                    linker.define_unknown_imports_as_traps(module)?;
                    linker.instantiate_async(store, module).await
                }),
        )
        .map_err(anyhow::Error::from)
        .with_context(|| format!("pre-initializing the FLUO plugin ({})", String::from_utf8_lossy(&stderr.contents()).trim()))?;
        let hash = hex::encode(Sha256::digest(&wasm));
        Ok(Plugin { wasm, hash })
    }
}
