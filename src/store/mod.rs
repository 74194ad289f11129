//! The sled database: rule versions and their compiled modules, per tenant.
//! Keys are tenant-prefixed and big-endian so that range scans stay within
//! one tenant and in version order. Every acknowledged write is flushed.
//!
//! Tenants and keys live in `auth`, signals in `signals`, recently evaluated
//! traces in [`traces`]; they share this database. Must not know about wasm.
//!
//! The data directory holds session signing keys, webhook secrets and every
//! tenant's data: it is created with mode 0700, and an existing one that
//! others can read or enter is tightened to 0700 (logged), so the files sled
//! creates inside with the process umask stay out of other users' reach.

use crate::model::rule::RuleMeta;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub mod key;
pub mod traces;

/// The one error type of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("corrupt key: {0}")]
    Key(#[from] std::array::TryFromSliceError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(&'static str),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Wraps an I/O error with what was being done.
fn io(what: impl FnOnce() -> String) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Io { what: what(), source }
}

use key::Key;

/// A rule's stable id: derived from its tenant and name, so it needs no
/// index of its own (renaming a rule is not supported).
pub fn rule_id(tenant: &str, rule: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{tenant}\0{rule}").as_bytes());
    format!("r_{}", hex::encode(&digest[..8]))
}

pub struct Store {
    pub(crate) db: sled::Db,
    /// The data directory (the database and key files live in it).
    pub dir: std::path::PathBuf,
    versions: sled::Tree,
    modules: sled::Tree,
    /// (tenant, rule name) → [`RuleState`]: which version is active, enabled.
    states: sled::Tree,
}

/// A rule's current state; its versions are immutable.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RuleState {
    pub id: String,
    pub name: String,
    pub active_version: u32,
    pub latest_version: u32,
    pub enabled: bool,
    pub created_unix_ms: u64,
    pub updated_unix_ms: u64,
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
    /// Why this version was made (optional, from the author).
    #[serde(default)]
    pub message: Option<String>,
    /// The key (or user) that stored it; `cli` for `fluo rules push`.
    #[serde(default)]
    pub author: Option<String>,
}

fn key(tenant: &str, rule: &str, version: Option<u32>) -> Key {
    let key = Key::tenant(tenant).text(rule);
    match version {
        Some(version) => key.u32(version),
        None => key,
    }
}

/// Creates `dir` (and missing parents) with mode 0700, or tightens an existing
/// `dir` to 0700 if group or others have any access to it.
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(|| format!("create data directory {}", dir.display())))?;
    let mode = std::fs::metadata(dir).map_err(io(|| format!("read data directory {}", dir.display())))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(|| format!("data directory {} has mode {mode:o}; making it 0700 failed", dir.display())))?;
        tracing::warn!(dir = %dir.display(), was = %format!("{mode:o}"), "data directory was open to other users; mode set to 0700");
    }
    Ok(())
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store> {
        private_dir(dir)?;
        let db = sled::open(dir.join("db")).map_err(|error| match error {
            sled::Error::Io(source) => StoreError::Io { what: format!("open sled database in {}", dir.display()), source },
            other => StoreError::Sled(other),
        })?;
        let versions = db.open_tree("rule_versions")?;
        let modules = db.open_tree("rule_modules")?;
        let states = db.open_tree("rule_states")?;
        Ok(Store { db, dir: dir.to_path_buf(), versions, modules, states })
    }

    fn now_ms() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    /// Every rule of `tenant`, by name. Rules stored before states existed
    /// appear with their latest version active and enabled.
    pub fn rules(&self, tenant: &str) -> Result<Vec<RuleState>> {
        let mut states: Vec<RuleState> = Vec::new();
        for entry in self.versions.scan_prefix(Key::tenant(tenant)) {
            let (_, value) = entry?;
            let record: RuleVersion = serde_json::from_slice(&value)?;
            match states.last_mut() {
                Some(last) if last.name == record.rule => last.latest_version = record.version,
                _ => {
                    let stored = self.states.get(key(tenant, &record.rule, None))?;
                    let state = match stored {
                        Some(bytes) => serde_json::from_slice(&bytes)?,
                        None => RuleState {
                            id: rule_id(tenant, &record.rule),
                            name: record.rule.clone(),
                            active_version: 0,
                            latest_version: record.version,
                            enabled: true,
                            created_unix_ms: record.created_unix_ms,
                            updated_unix_ms: record.created_unix_ms,
                        },
                    };
                    states.push(RuleState { latest_version: record.version, ..state });
                }
            }
        }
        for state in &mut states {
            if state.active_version == 0 {
                state.active_version = state.latest_version;
            }
        }
        Ok(states)
    }

    pub fn rule_by_id(&self, tenant: &str, id: &str) -> Result<Option<RuleState>> {
        Ok(self.rules(tenant)?.into_iter().find(|state| state.id == id))
    }

    /// The versions of a rule, oldest first, without their modules.
    pub fn versions(&self, tenant: &str, rule: &str) -> Result<Vec<RuleVersion>> {
        self.versions.scan_prefix(key(tenant, rule, None)).values().map(|value| Ok(serde_json::from_slice(&value?)?)).collect()
    }

    pub fn version(&self, tenant: &str, rule: &str, version: u32) -> Result<Option<(RuleVersion, Vec<u8>)>> {
        let key = key(tenant, rule, Some(version));
        let Some(value) = self.versions.get(&key)? else { return Ok(None) };
        let wasm = self.modules.get(&key)?.map(|bytes| bytes.to_vec()).unwrap_or_default();
        Ok(Some((serde_json::from_slice(&value)?, wasm)))
    }

    fn put_state(&self, tenant: &str, state: &RuleState) -> Result<()> {
        self.states.insert(key(tenant, &state.name, None), serde_json::to_vec(state)?)?;
        self.db.flush()?;
        Ok(())
    }

    /// Activates an existing version (rollback or roll forward).
    pub fn activate(&self, tenant: &str, rule: &str, version: u32) -> Result<Option<RuleState>> {
        let Some(mut state) = self.rules(tenant)?.into_iter().find(|state| state.name == rule) else { return Ok(None) };
        if self.versions.get(key(tenant, rule, Some(version)))?.is_none() {
            return Ok(None);
        }
        state.active_version = version;
        state.updated_unix_ms = Self::now_ms();
        self.put_state(tenant, &state)?;
        Ok(Some(state))
    }

    pub fn set_enabled(&self, tenant: &str, rule: &str, enabled: bool) -> Result<Option<RuleState>> {
        let Some(mut state) = self.rules(tenant)?.into_iter().find(|state| state.name == rule) else { return Ok(None) };
        state.enabled = enabled;
        state.updated_unix_ms = Self::now_ms();
        self.put_state(tenant, &state)?;
        Ok(Some(state))
    }

    /// Deletes a rule with all its versions (signals keep its name and version).
    pub fn delete_rule(&self, tenant: &str, rule: &str) -> Result<bool> {
        let prefix = key(tenant, rule, None);
        let keys: Vec<sled::IVec> = self.versions.scan_prefix(&prefix).keys().collect::<Result<_, _>>()?;
        for version_key in &keys {
            self.versions.remove(version_key)?;
            self.modules.remove(version_key)?;
        }
        self.states.remove(&prefix)?;
        self.db.flush()?;
        Ok(!keys.is_empty())
    }

    /// The active version of every enabled rule of every tenant, with its module.
    pub fn active_versions(&self) -> Result<Vec<(RuleVersion, Vec<u8>)>> {
        let mut tenants: Vec<String> = Vec::new();
        for entry in self.versions.iter().values() {
            let record: RuleVersion = serde_json::from_slice(&entry?)?;
            if tenants.last() != Some(&record.tenant) {
                tenants.push(record.tenant);
            }
        }
        let mut active = Vec::new();
        for tenant in tenants {
            active.extend(self.active_versions_of(&tenant)?);
        }
        Ok(active)
    }

    pub fn active_versions_of(&self, tenant: &str) -> Result<Vec<(RuleVersion, Vec<u8>)>> {
        let mut active = Vec::new();
        for state in self.rules(tenant)?.into_iter().filter(|state| state.enabled) {
            if let Some(found) = self.version(tenant, &state.name, state.active_version)? {
                active.push(found);
            }
        }
        Ok(active)
    }

    /// Stores a new version of `rule` for `tenant`, makes it the active one
    /// and returns its number.
    #[allow(clippy::too_many_arguments)]
    pub fn push_version(
        &self,
        tenant: &str,
        rule: &str,
        source: &str,
        meta: RuleMeta,
        plugin_hash: &str,
        wasm: &[u8],
        message: Option<String>,
        author: Option<String>,
    ) -> Result<u32> {
        if tenant.is_empty() || rule.is_empty() {
            return Err(StoreError::Invalid("tenant and rule names must not be empty"));
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
            created_unix_ms: Self::now_ms(),
            message,
            author,
        };
        let version_key = key(tenant, rule, Some(version));
        self.modules.insert(&version_key, wasm)?;
        self.versions.insert(&version_key, serde_json::to_vec(&record)?)?;
        let previous: Option<RuleState> =
            self.states.get(key(tenant, rule, None))?.map(|bytes| serde_json::from_slice(&bytes)).transpose()?;
        let state = RuleState {
            id: rule_id(tenant, rule),
            name: rule.into(),
            active_version: version,
            latest_version: version,
            enabled: previous.as_ref().is_none_or(|state| state.enabled),
            created_unix_ms: previous.as_ref().map_or(record.created_unix_ms, |state| state.created_unix_ms),
            updated_unix_ms: record.created_unix_ms,
        };
        self.put_state(tenant, &state)?;
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_data_directory_is_private() {
        let parent = tempfile::tempdir().unwrap();
        let fresh = parent.path().join("new/data");
        drop(Store::open(&fresh).unwrap());
        assert_eq!(mode(&fresh), 0o700, "created 0700");
        let loose = parent.path().join("loose");
        std::fs::create_dir(&loose).unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(Store::open(&loose).unwrap());
        assert_eq!(mode(&loose), 0o700, "an existing loose one is tightened");
    }
}
