//! The one owner of which rules run: it loads every tenant's active versions
//! at start, reloads a tenant after any change to its rules (a new version,
//! activation, enable/disable, delete), recompiles a version that was compiled
//! by another plugin build, and hands the set to [`Pipeline::set_rules`],
//! which gives trace rules to the evaluator and window rules to the windows.
//! Nothing else in the server sets rules (the benchmarks set them directly).

use super::Pipeline;
use crate::model::tenant::TenantId;
use crate::rules::{LoadedRule, RuleEngine};
use crate::signals::RuleRef;
use crate::store::{RuleVersion, Store, rule_id};
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A stored version made runnable: its compiled module, or a fresh compile of
/// its source when the module was made by another plugin build.
pub fn load(engine: &Arc<RuleEngine>, version: &RuleVersion, wasm: &[u8]) -> Result<Arc<LoadedRule>> {
    if version.plugin_hash == engine.plugin_hash() {
        // The rewrite is deterministic: redoing it recovers the column shift
        // of a bare-expression rule for error positions.
        engine.load_rule(wasm, version.meta.clone(), crate::rules::source::prepare(&version.source).ok())
    } else {
        tracing::info!(tenant = %version.tenant, rule = %version.rule, version = version.version, "recompiling rule for the current plugin");
        Ok(crate::rules::compile::compile(engine, &version.source).map(|(_, loaded)| loaded)?)
    }
}

fn reference(version: &RuleVersion) -> RuleRef {
    RuleRef {
        id: rule_id(&version.tenant, &version.rule),
        name: version.rule.clone(),
        version: version.version,
        labels: version.meta.labels.clone(),
    }
}

/// At start: every tenant's active, enabled versions. A version that does not
/// load is logged and left out; the others run.
pub fn load_all(store: &Store, engine: &Arc<RuleEngine>, pipeline: &Pipeline) -> Result<()> {
    let mut by_tenant: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for (version, wasm) in store.rules.active()? {
        match load(engine, &version, &wasm) {
            Ok(rule) => by_tenant.entry(version.tenant.clone()).or_default().push((reference(&version), rule)),
            Err(error) => {
                tracing::warn!(tenant = %version.tenant, rule = %version.rule, error = %format!("{error:#}"), "rule not loaded")
            }
        }
    }
    for (tenant, rules) in by_tenant {
        tracing::info!(tenant = %tenant, rules = rules.len(), "tenant rules loaded");
        pipeline.set_rules(&TenantId::trusted(&tenant), rules);
    }
    Ok(())
}

/// After a change to `tenant`'s rules: its active, enabled versions from the
/// store, reusing the modules already loaded for unchanged versions.
pub fn reload(store: &Store, engine: &Arc<RuleEngine>, pipeline: &Pipeline, tenant: &TenantId) -> Result<()> {
    let current = pipeline.evaluator.rules(tenant);
    let mut rules = Vec::new();
    for (version, wasm) in store.rules.active_of(tenant.as_str())? {
        let reference = reference(&version);
        let reused = current
            .iter()
            .flat_map(|set| &set.rules)
            .find(|(rule, _)| rule.id == reference.id && rule.version == reference.version)
            .map(|(_, loaded)| loaded.clone());
        let loaded = match reused {
            Some(loaded) => loaded,
            None => load(engine, &version, &wasm)?,
        };
        rules.push((reference, loaded));
    }
    pipeline.set_rules(tenant, rules);
    Ok(())
}
