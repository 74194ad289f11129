//! The one wasmtime engine all sandboxes share: its configuration (fuel, epoch
//! interruption, stack cap), the epoch ticker that turns deadlines into
//! interrupts, the pre-initialized plugin compiled once, and rule modules
//! compiled once into [`LoadedRule`]s.
//!
//! It must not hold per-tenant state: that lives in each [`super::Sandbox`].

use super::abi::NAMESPACE;
use super::plugin::Plugin;
use super::sandbox::SandboxState;
use super::{Limits, source::Prepared};
use crate::model::rule::RuleMeta;
use anyhow::{Context, Result, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, ExternType, InstancePre, Linker, Module};

/// Epoch granularity: a deadline is enforced to within one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

pub struct RuleEngine {
    pub(crate) engine: Engine,
    pub(crate) plugin: Plugin,
    pub(crate) plugin_pre: InstancePre<SandboxState>,
    pub(crate) limits: Limits,
    /// Stops ticking when the engine is dropped.
    _ticker: Ticker,
}

/// A rule module compiled for this engine, with what is known of its source.
pub struct LoadedRule {
    pub(crate) module: Module,
    /// Where each import of the module comes from, in import order.
    pub(crate) imports: Vec<PluginExport>,
    pub meta: RuleMeta,
    pub(crate) prepared: Option<Prepared>,
}

impl LoadedRule {
    /// Whether the rule's prefilter lets `trace` through (rules without a source always run).
    pub fn may_fire(&self, trace: &crate::model::trace::Trace) -> bool {
        self.prepared.as_ref().is_none_or(|prepared| prepared.prefilter.may_fire(trace))
    }
}

impl std::fmt::Debug for LoadedRule {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LoadedRule").field("meta", &self.meta).field("imports", &self.imports).finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PluginExport {
    Invoke,
    Memory,
    Realloc,
}

impl RuleEngine {
    /// Pre-initializes the embedded plugin and compiles it (about a second).
    pub fn new(limits: Limits) -> Result<Arc<RuleEngine>> {
        Self::with_plugin(limits, Plugin::initialize()?)
    }

    pub fn with_plugin(limits: Limits, plugin: Plugin) -> Result<Arc<RuleEngine>> {
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(limits.wasm_stack_bytes)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
        let plugin_module = Module::new(&engine, &plugin.wasm).map_err(anyhow::Error::from).context("compiling the plugin")?;
        let mut linker: Linker<SandboxState> = Linker::new(&engine);
        // Rules get the WASI the plugin needs and nothing more: no preopened
        // directories, no environment, no arguments, no sockets; clocks and
        // randomness are deterministic (see sandbox.rs).
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut SandboxState| &mut state.wasi).map_err(anyhow::Error::from)?;
        let plugin_pre = linker.instantiate_pre(&plugin_module).map_err(anyhow::Error::from).context("linking the plugin")?;
        let ticker = Ticker::start(engine.clone());
        Ok(Arc::new(RuleEngine { engine, plugin, plugin_pre, limits, _ticker: ticker }))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn plugin_hash(&self) -> &str {
        &self.plugin.hash
    }

    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Compiles a rule module for this engine and checks that it imports
    /// exactly what a Javy dynamic module of this plugin may import.
    pub(crate) fn load_module(&self, wasm: &[u8]) -> Result<(Module, Vec<PluginExport>)> {
        let module = Module::new(&self.engine, wasm).map_err(anyhow::Error::from).context("compiling the rule module")?;
        let mut imports = Vec::new();
        for import in module.imports() {
            if import.module() != NAMESPACE {
                bail!("rule module imports {}::{}; only {NAMESPACE} is allowed", import.module(), import.name());
            }
            let export = match (import.name(), import.ty()) {
                ("invoke", ExternType::Func(_)) => PluginExport::Invoke,
                ("memory", ExternType::Memory(_)) => PluginExport::Memory,
                ("cabi_realloc", ExternType::Func(_)) => PluginExport::Realloc,
                (name, _) => bail!("rule module imports unexpected {NAMESPACE}::{name}"),
            };
            imports.push(export);
        }
        let exports: Vec<_> = module.exports().map(|export| export.name().to_string()).collect();
        if !exports.iter().any(|name| name == "_start") {
            bail!("rule module has no _start export");
        }
        if let Some(other) = exports.iter().find(|name| name.as_str() != "_start") {
            bail!("rule module exports unexpected {other}");
        }
        Ok((module, imports))
    }

    /// Loads a stored, already validated rule module.
    pub fn load_rule(&self, wasm: &[u8], meta: RuleMeta, prepared: Option<Prepared>) -> Result<Arc<LoadedRule>> {
        let (module, imports) = self.load_module(wasm)?;
        Ok(Arc::new(LoadedRule { module, imports, meta, prepared }))
    }
}

/// Increments the engine's epoch every [`EPOCH_TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(engine: Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("fluo-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn the epoch ticker");
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
