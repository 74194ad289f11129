//! The composition root of `fluo serve`: opens the store, builds the rule
//! engine, loads every tenant's rules into its sandbox and runs until a
//! shutdown signal. It wires; it decides nothing of its own.
//!
//! For now (issue 2) that is all `serve` does: OTLP ingestion, assembly,
//! signals and the API arrive with issue 3.

use crate::config::Config;
use crate::rules::{LoadedRule, RuleEngine, Sandbox};
use crate::store::Store;
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Loads every tenant's latest rule versions into per-tenant sandboxes
/// (recompiling from source those generated against another plugin build) and
/// waits for SIGTERM or Ctrl-C.
pub fn serve(config: Config) -> Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let store = Store::open(&config.data_dir)?;
    let engine = RuleEngine::new(config.limits.clone())?;
    tracing::info!(plugin = %engine.plugin_hash(), data_dir = %config.data_dir.display(), "rule engine ready");
    let mut by_tenant: BTreeMap<String, Vec<Arc<LoadedRule>>> = BTreeMap::new();
    for (version, wasm) in store.latest_versions()? {
        let loaded = if version.plugin_hash == engine.plugin_hash() {
            // The rewrite is deterministic: redoing it recovers the column shift
            // of a bare-expression rule for error positions.
            engine.load_rule(&wasm, version.meta.clone(), crate::rules::source::prepare(&version.source).ok())
        } else {
            tracing::info!(tenant = %version.tenant, rule = %version.rule, version = version.version, "recompiling rule for the current plugin");
            crate::rules::compile::compile(&engine, &version.source).map(|(_, loaded)| loaded).map_err(anyhow::Error::from)
        };
        match loaded {
            Ok(rule) => by_tenant.entry(version.tenant.clone()).or_default().push(rule),
            Err(error) => tracing::warn!(tenant = %version.tenant, rule = %version.rule, error = %format!("{error:#}"), "rule not loaded"),
        }
    }
    let sandboxes: Vec<_> = by_tenant.into_iter().map(|(tenant, rules)| (tenant, Sandbox::new(engine.clone(), rules))).collect();
    for (tenant, sandbox) in &sandboxes {
        tracing::info!(tenant = %tenant, rules = sandbox.rules().len(), "tenant rules loaded");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tracing::info!("fluo is running; OTLP ingestion arrives with the next release (issue 3). Ctrl-C or SIGTERM stops it");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        anyhow::Ok(())
    })?;
    store.db.flush()?;
    tracing::info!("stopped");
    Ok(())
}
