//! The sled database: rule versions and their compiled modules, per tenant.
//! Keys are tenant-prefixed and big-endian so that range scans stay within
//! one tenant and in version order. Every acknowledged write is flushed.
//!
//! Issue 3 adds tenants, keys and signals; this is the part `fluo serve` and
//! `fluo rules push` need for the rule engine.

use crate::rules::{RuleEngine, RuleMeta};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

pub struct Store {
    db: sled::Db,
    versions: sled::Tree,
    modules: sled::Tree,
}

/// One immutable rule version.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RuleVersion {
    pub tenant: String,
    pub rule: String,
    pub version: u32,
    pub source: String,
    pub meta: RuleMeta,
    pub plugin_hash: String,
    pub created_unix_ms: u64,
}

fn key(tenant: &str, rule: &str, version: Option<u32>) -> Vec<u8> {
    let mut key = Vec::with_capacity(tenant.len() + rule.len() + 12);
    for part in [tenant, rule] {
        key.extend_from_slice(&(part.len() as u32).to_be_bytes());
        key.extend_from_slice(part.as_bytes());
    }
    if let Some(version) = version {
        key.extend_from_slice(&version.to_be_bytes());
    }
    key
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).with_context(|| format!("create data directory {}", dir.display()))?;
        let db = sled::open(dir.join("db")).with_context(|| format!("open sled database in {}", dir.display()))?;
        let versions = db.open_tree("rule_versions")?;
        let modules = db.open_tree("rule_modules")?;
        Ok(Store { db, versions, modules })
    }

    /// Stores a new version of `rule` for `tenant` and returns its number.
    pub fn push_version(&self, tenant: &str, rule: &str, source: &str, meta: RuleMeta, plugin_hash: &str, wasm: &[u8]) -> Result<u32> {
        if tenant.is_empty() || rule.is_empty() {
            bail!("tenant and rule names must not be empty");
        }
        let latest = self.versions.scan_prefix(key(tenant, rule, None)).keys().next_back().transpose()?;
        let version = match latest {
            Some(last) => u32::from_be_bytes(last[last.len() - 4..].try_into()?).saturating_add(1),
            None => 1,
        };
        let record = RuleVersion {
            tenant: tenant.into(),
            rule: rule.into(),
            version,
            source: source.into(),
            meta,
            plugin_hash: plugin_hash.into(),
            created_unix_ms: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        };
        let key = key(tenant, rule, Some(version));
        self.modules.insert(&key, wasm)?;
        self.versions.insert(&key, serde_json::to_vec(&record)?)?;
        self.db.flush()?;
        Ok(version)
    }

    /// The latest version of every rule, with its module.
    pub fn latest_versions(&self) -> Result<Vec<(RuleVersion, Vec<u8>)>> {
        let mut latest: Vec<(RuleVersion, Vec<u8>)> = Vec::new();
        for entry in self.versions.iter() {
            let (key, value) = entry?;
            let record: RuleVersion = serde_json::from_slice(&value)?;
            let wasm = self.modules.get(&key)?.map(|bytes| bytes.to_vec()).unwrap_or_default();
            match latest.last_mut() {
                Some((last, last_wasm)) if last.tenant == record.tenant && last.rule == record.rule => {
                    *last = record;
                    *last_wasm = wasm;
                }
                _ => latest.push((record, wasm)),
            }
        }
        Ok(latest)
    }
}

/// `fluo serve` for now: opens the database, builds the engine, loads every
/// tenant's latest rule versions into per-tenant sandboxes (recompiling from
/// source those generated against another plugin build) and waits for a
/// shutdown signal. OTLP ingestion and the API arrive with issue 3.
pub fn serve(config: crate::config::Config) -> Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt().with_ansi(std::io::stdout().is_terminal()).with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())).init();
    let store = Store::open(&config.data_dir)?;
    let engine = RuleEngine::new(config.limits.clone())?;
    tracing::info!(plugin = %engine.plugin_hash(), data_dir = %config.data_dir.display(), "rule engine ready");
    let mut by_tenant: std::collections::BTreeMap<String, Vec<Arc<crate::rules::LoadedRule>>> = Default::default();
    for (version, wasm) in store.latest_versions()? {
        let loaded = if version.plugin_hash == engine.plugin_hash() {
            engine.load_rule(&wasm, version.meta.clone(), None)
        } else {
            tracing::info!(tenant = %version.tenant, rule = %version.rule, version = version.version, "recompiling rule for the current plugin");
            crate::rules::compile::compile(&engine, &version.source).map(|(_, loaded)| loaded).map_err(anyhow::Error::from)
        };
        match loaded {
            Ok(rule) => by_tenant.entry(version.tenant.clone()).or_default().push(rule),
            Err(error) => tracing::warn!(tenant = %version.tenant, rule = %version.rule, error = %format!("{error:#}"), "rule not loaded"),
        }
    }
    let sandboxes: Vec<_> = by_tenant.into_iter().map(|(tenant, rules)| (tenant, crate::rules::Sandbox::new(engine.clone(), rules))).collect();
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
