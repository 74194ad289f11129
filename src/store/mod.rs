//! The sled database: rule versions and their compiled modules, per tenant.
//! Keys are tenant-prefixed and big-endian so that range scans stay within
//! one tenant and in version order. Every acknowledged write is flushed.
//!
//! Tenants and keys live in `auth`, signals in `signals`, recently evaluated
//! traces in [`traces`]; they share this database. Must not know about wasm.

use crate::rules::RuleMeta;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub mod traces;

/// A rule's stable id: derived from its tenant and name, so it needs no
/// index of its own (renaming a rule is not supported).
pub fn rule_id(tenant: &str, rule: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{tenant}\0{rule}").as_bytes());
    format!("r_{}", hex::encode(&digest[..8]))
}

pub struct Store {
    pub(crate) db: sled::Db,
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
        // Keys sort by (tenant, rule, version): the last key of each run is the latest.
        let mut latest: Vec<(sled::IVec, RuleVersion)> = Vec::new();
        for entry in self.versions.iter() {
            let (key, value) = entry?;
            let record: RuleVersion = serde_json::from_slice(&value)?;
            match latest.last_mut() {
                Some((last_key, last)) if last.tenant == record.tenant && last.rule == record.rule => {
                    *last_key = key;
                    *last = record;
                }
                _ => latest.push((key, record)),
            }
        }
        latest
            .into_iter()
            .map(|(key, record)| {
                let wasm = self.modules.get(&key)?.map(|bytes| bytes.to_vec()).unwrap_or_default();
                Ok((record, wasm))
            })
            .collect()
    }
}
