//! Rule versions and their compiled modules: the [`RuleStore`] interface the
//! rest of FLUO uses, and [`SledRules`], its embedded implementation (trees
//! `rule_versions`, `rule_modules`, `rule_states`). Versions are immutable;
//! activation and enabling move a rule's state. Every write that returns is
//! durable. A second implementation (PostgreSQL, for a cluster) passes the same
//! [`contract`] tests.

use super::key::Key;
use super::{Result, StoreError};
use crate::model::rule::RuleMeta;
use crate::model::time::now_ms;
use serde::{Deserialize, Serialize};

/// A rule's stable id: derived from its tenant and name, so it needs no
/// index of its own (renaming a rule is not supported).
pub fn rule_id(tenant: &str, rule: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{tenant}\0{rule}").as_bytes());
    format!("r_{}", hex::encode(&digest[..8]))
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
    /// The latest version stored as a draft and not activated since (a
    /// rollback to an older version leaves no draft behind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_version: Option<u32>,
}

impl RuleState {
    /// The version a summary of the rule describes: the active one, or the
    /// latest while the rule has only drafts.
    pub fn shown_version(&self) -> u32 {
        if self.active_version == 0 { self.latest_version } else { self.active_version }
    }
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
    /// The key (or user) that stored it.
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

/// Where rule versions live. Every method is per tenant; a write has reached
/// durable storage when it returns.
pub trait RuleStore: Send + Sync {
    /// Every rule of `tenant`, by name. Rules stored before states existed
    /// appear with their latest version active and enabled; a rule that has
    /// only drafts has `active_version` 0.
    fn list(&self, tenant: &str) -> Result<Vec<RuleState>>;
    fn by_id(&self, tenant: &str, id: &str) -> Result<Option<RuleState>>;
    /// The versions of a rule, oldest first, without their modules.
    fn versions(&self, tenant: &str, rule: &str) -> Result<Vec<RuleVersion>>;
    /// One version with its compiled module.
    fn version(&self, tenant: &str, rule: &str, version: u32) -> Result<Option<(RuleVersion, Vec<u8>)>>;
    /// Activates an existing version (rollback or roll forward); `None` if the
    /// rule or the version does not exist.
    fn activate(&self, tenant: &str, rule: &str, version: u32) -> Result<Option<RuleState>>;
    fn set_enabled(&self, tenant: &str, rule: &str, enabled: bool) -> Result<Option<RuleState>>;
    /// Deletes a rule with all its versions (signals keep its name and version).
    fn delete(&self, tenant: &str, rule: &str) -> Result<bool>;
    /// The active version of every enabled rule of every tenant, with its module.
    fn active(&self) -> Result<Vec<(RuleVersion, Vec<u8>)>>;
    /// The active version of every enabled rule of `tenant`, with its module.
    fn active_of(&self, tenant: &str) -> Result<Vec<(RuleVersion, Vec<u8>)>>;
    /// Stores a new version of `rule` for `tenant` and returns its number.
    /// With `activate` it becomes the active one; otherwise it is a draft and
    /// the active version stays (none, for a new rule).
    #[allow(clippy::too_many_arguments)]
    fn push(
        &self,
        tenant: &str,
        rule: &str,
        source: &str,
        meta: RuleMeta,
        plugin_hash: &str,
        wasm: &[u8],
        message: Option<String>,
        author: Option<String>,
        activate: bool,
    ) -> Result<u32>;
}

/// [`RuleStore`] on sled.
pub struct SledRules {
    db: sled::Db,
    versions: sled::Tree,
    modules: sled::Tree,
    /// (tenant, rule name) → [`RuleState`]: which version is active, enabled.
    states: sled::Tree,
}

impl SledRules {
    pub fn open(db: &sled::Db) -> Result<SledRules> {
        Ok(SledRules {
            versions: db.open_tree("rule_versions")?,
            modules: db.open_tree("rule_modules")?,
            states: db.open_tree("rule_states")?,
            db: db.clone(),
        })
    }

    fn put_state(&self, tenant: &str, state: &RuleState) -> Result<()> {
        self.states.insert(key(tenant, &state.name, None), serde_json::to_vec(state)?)?;
        self.db.flush()?;
        Ok(())
    }
}

impl RuleStore for SledRules {
    fn list(&self, tenant: &str) -> Result<Vec<RuleState>> {
        let mut states: Vec<RuleState> = Vec::new();
        // Per state: made up for a rule stored before states existed.
        let mut legacy: Vec<bool> = Vec::new();
        for entry in self.versions.scan_prefix(Key::tenant(tenant)) {
            let (_, value) = entry?;
            let record: RuleVersion = serde_json::from_slice(&value)?;
            match states.last_mut() {
                Some(last) if last.name == record.rule => last.latest_version = record.version,
                _ => {
                    let stored = self.states.get(key(tenant, &record.rule, None))?;
                    legacy.push(stored.is_none());
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
                            draft_version: None,
                        },
                    };
                    states.push(RuleState { latest_version: record.version, ..state });
                }
            }
        }
        for (state, legacy) in states.iter_mut().zip(legacy) {
            if legacy {
                state.active_version = state.latest_version;
            }
        }
        Ok(states)
    }

    fn by_id(&self, tenant: &str, id: &str) -> Result<Option<RuleState>> {
        Ok(self.list(tenant)?.into_iter().find(|state| state.id == id))
    }

    fn versions(&self, tenant: &str, rule: &str) -> Result<Vec<RuleVersion>> {
        self.versions.scan_prefix(key(tenant, rule, None)).values().map(|value| Ok(serde_json::from_slice(&value?)?)).collect()
    }

    fn version(&self, tenant: &str, rule: &str, version: u32) -> Result<Option<(RuleVersion, Vec<u8>)>> {
        let key = key(tenant, rule, Some(version));
        let Some(value) = self.versions.get(&key)? else { return Ok(None) };
        let wasm = self.modules.get(&key)?.map(|bytes| bytes.to_vec()).unwrap_or_default();
        Ok(Some((serde_json::from_slice(&value)?, wasm)))
    }

    fn activate(&self, tenant: &str, rule: &str, version: u32) -> Result<Option<RuleState>> {
        let Some(mut state) = self.list(tenant)?.into_iter().find(|state| state.name == rule) else { return Ok(None) };
        if self.versions.get(key(tenant, rule, Some(version)))?.is_none() {
            return Ok(None);
        }
        state.active_version = version;
        state.updated_unix_ms = now_ms();
        // Activating the draft, or a newer version, leaves none.
        state.draft_version = state.draft_version.filter(|draft| *draft > version);
        self.put_state(tenant, &state)?;
        Ok(Some(state))
    }

    fn set_enabled(&self, tenant: &str, rule: &str, enabled: bool) -> Result<Option<RuleState>> {
        let Some(mut state) = self.list(tenant)?.into_iter().find(|state| state.name == rule) else { return Ok(None) };
        state.enabled = enabled;
        state.updated_unix_ms = now_ms();
        self.put_state(tenant, &state)?;
        Ok(Some(state))
    }

    fn delete(&self, tenant: &str, rule: &str) -> Result<bool> {
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

    fn active(&self) -> Result<Vec<(RuleVersion, Vec<u8>)>> {
        let mut tenants: Vec<String> = Vec::new();
        for entry in self.versions.iter().values() {
            let record: RuleVersion = serde_json::from_slice(&entry?)?;
            if tenants.last() != Some(&record.tenant) {
                tenants.push(record.tenant);
            }
        }
        let mut active = Vec::new();
        for tenant in tenants {
            active.extend(self.active_of(&tenant)?);
        }
        Ok(active)
    }

    fn active_of(&self, tenant: &str) -> Result<Vec<(RuleVersion, Vec<u8>)>> {
        let mut active = Vec::new();
        for state in self.list(tenant)?.into_iter().filter(|state| state.enabled) {
            if let Some(found) = self.version(tenant, &state.name, state.active_version)? {
                active.push(found);
            }
        }
        Ok(active)
    }

    fn push(
        &self,
        tenant: &str,
        rule: &str,
        source: &str,
        meta: RuleMeta,
        plugin_hash: &str,
        wasm: &[u8],
        message: Option<String>,
        author: Option<String>,
        activate: bool,
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
            created_unix_ms: now_ms(),
            message,
            author,
        };
        let version_key = key(tenant, rule, Some(version));
        self.modules.insert(&version_key, wasm)?;
        self.versions.insert(&version_key, serde_json::to_vec(&record)?)?;
        let previous: Option<RuleState> =
            self.states.get(key(tenant, rule, None))?.map(|bytes| serde_json::from_slice(&bytes)).transpose()?;
        // Without a state, a rule's latest version was active (see `list`).
        let active_before = previous.as_ref().map_or(version - 1, |state| state.active_version);
        let state = RuleState {
            id: rule_id(tenant, rule),
            name: rule.into(),
            active_version: if activate { version } else { active_before },
            latest_version: version,
            enabled: previous.as_ref().is_none_or(|state| state.enabled),
            created_unix_ms: previous.as_ref().map_or(record.created_unix_ms, |state| state.created_unix_ms),
            updated_unix_ms: record.created_unix_ms,
            draft_version: if activate { None } else { Some(version) },
        };
        self.put_state(tenant, &state)?;
        Ok(version)
    }
}

/// What every [`RuleStore`] must do, written once against the interface: the
/// sled implementation runs it below, and a second implementation runs it too.
#[cfg(test)]
pub(crate) mod contract {
    use super::*;

    fn meta(name: &str) -> RuleMeta {
        RuleMeta {
            form: "rule".into(),
            name: Some(name.into()),
            severity: "high".into(),
            description: None,
            window: None,
            labels: Default::default(),
        }
    }

    fn push(store: &dyn RuleStore, tenant: &str, rule: &str, wasm: &[u8]) -> Result<u32> {
        store.push(tenant, rule, "export default 1", meta(rule), "plugin", wasm, None, Some("test".into()), true)
    }

    fn draft(store: &dyn RuleStore, tenant: &str, rule: &str, wasm: &[u8]) -> Result<u32> {
        store.push(tenant, rule, "export default 2", meta(rule), "plugin", wasm, None, Some("test".into()), false)
    }

    pub fn check(store: &dyn RuleStore) {
        assert!(matches!(push(store, "", "r", b"m"), Err(StoreError::Invalid(_))), "an empty tenant is refused");
        assert!(matches!(push(store, "t", "", b"m"), Err(StoreError::Invalid(_))), "an empty rule name is refused");

        assert_eq!(push(store, "t", "checkout", b"one").unwrap(), 1);
        assert_eq!(push(store, "t", "checkout", b"two").unwrap(), 2);
        let listed = store.list("t").unwrap();
        assert_eq!(listed.len(), 1);
        let state = &listed[0];
        assert_eq!(
            (state.id.as_str(), state.active_version, state.latest_version, state.enabled),
            (rule_id("t", "checkout").as_str(), 2, 2, true)
        );
        assert_eq!(store.by_id("t", &state.id).unwrap().as_ref(), Some(state));
        assert_eq!(store.versions("t", "checkout").unwrap().iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2], "oldest first");
        let (first, module) = store.version("t", "checkout", 1).unwrap().expect("version 1");
        assert_eq!(
            (first.source.as_str(), first.author.as_deref(), module.as_slice()),
            ("export default 1", Some("test"), b"one".as_slice())
        );
        assert!(store.version("t", "checkout", 3).unwrap().is_none());

        // Rollback moves the pointer; an unknown version or rule moves nothing.
        assert_eq!(store.activate("t", "checkout", 1).unwrap().map(|s| s.active_version), Some(1));
        assert!(store.activate("t", "checkout", 9).unwrap().is_none());
        assert!(store.activate("t", "nothing", 1).unwrap().is_none());
        let active = store.active_of("t").unwrap();
        assert_eq!(active.iter().map(|(v, m)| (v.version, m.clone())).collect::<Vec<_>>(), [(1, b"one".to_vec())]);

        // Disabled rules are not active; a new version keeps the rule disabled.
        assert_eq!(store.set_enabled("t", "checkout", false).unwrap().map(|s| s.enabled), Some(false));
        assert!(store.active_of("t").unwrap().is_empty());
        assert!(store.active().unwrap().iter().all(|(v, _)| v.tenant != "t"));
        assert_eq!(push(store, "t", "checkout", b"three").unwrap(), 3);
        let state = store.by_id("t", &rule_id("t", "checkout")).unwrap().unwrap();
        assert_eq!((state.active_version, state.enabled), (3, false));
        assert!(store.set_enabled("t", "nothing", true).unwrap().is_none());
        store.set_enabled("t", "checkout", true).unwrap();

        // Tenants are apart, also when one name is a prefix of another.
        assert_eq!(push(store, "tt", "checkout", b"other").unwrap(), 1);
        assert!(store.by_id("u", &state.id).unwrap().is_none());
        assert!(store.list("u").unwrap().is_empty());
        assert_eq!(store.list("t").unwrap().len(), 1);
        assert_eq!(store.versions("t", "checkout").unwrap().len(), 3);
        let everywhere: Vec<(String, u32)> = store.active().unwrap().into_iter().map(|(v, _)| (v.tenant, v.version)).collect();
        assert!(everywhere.contains(&("t".into(), 3)) && everywhere.contains(&("tt".into(), 1)), "{everywhere:?}");

        assert!(store.delete("t", "checkout").unwrap());
        assert!(!store.delete("t", "checkout").unwrap());
        assert!(store.list("t").unwrap().is_empty());
        assert_eq!(store.list("tt").unwrap().len(), 1, "deleting one tenant's rule leaves the other's");
        assert_eq!(push(store, "t", "checkout", b"again").unwrap(), 1, "a deleted rule starts again at version 1");

        // A draft is stored but not active: a new rule's draft leaves it
        // without an active version; an existing rule's keeps the active one.
        assert_eq!(draft(store, "d", "new", b"draft").unwrap(), 1);
        let state = store.list("d").unwrap().remove(0);
        assert_eq!((state.active_version, state.latest_version, state.draft_version), (0, 1, Some(1)));
        assert!(store.active_of("d").unwrap().is_empty(), "a draft does not run");
        assert_eq!(store.activate("d", "new", 1).unwrap().map(|s| s.active_version), Some(1));
        assert_eq!(draft(store, "d", "new", b"second").unwrap(), 2);
        let state = store.list("d").unwrap().remove(0);
        assert_eq!((state.active_version, state.latest_version, state.draft_version), (1, 2, Some(2)));
        assert_eq!(store.active_of("d").unwrap().iter().map(|(v, m)| (v.version, m.clone())).collect::<Vec<_>>(), [(1, b"draft".to_vec())]);
        // A version pushed live replaces the draft; a rollback makes none.
        assert_eq!(push(store, "d", "new", b"live").unwrap(), 3);
        assert_eq!(store.list("d").unwrap()[0].draft_version, None);
        assert_eq!(store.activate("d", "new", 1).unwrap().map(|s| (s.active_version, s.draft_version)), Some((1, None)));
        assert_eq!(draft(store, "d", "new", b"fourth").unwrap(), 4);
        assert_eq!(store.activate("d", "new", 3).unwrap().map(|s| s.draft_version), Some(Some(4)), "an older version keeps the draft");
        assert_eq!(store.activate("d", "new", 4).unwrap().map(|s| s.draft_version), Some(None));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sled_rules_keep_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        super::contract::check(&super::SledRules::open(&db).unwrap());
    }
}
