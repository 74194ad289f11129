//! Tenants, API keys, users and revoked sessions: the [`IdentityStore`]
//! interface `auth` uses, and [`SledIdentity`], its embedded implementation
//! (trees `tenants`, `tenant_names`, `api_keys`, `api_key_ids`, `meta`, `users`,
//! `user_ids`, `revoked_sessions`). Records hold no secret: a key is stored by the SHA-256
//! of its secret, a user by an argon2id hash. Every write that returns is
//! durable, except a key's last-used time (best effort, see [`IdentityStore::touch_key`]).

use super::Result;
use super::key::Key;
use crate::model::tenant::{Role, Scope, TenantId, TenantSettings};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_unix_ms: u64,
    /// Absent in records written before settings existed: the defaults.
    #[serde(default)]
    pub settings: TenantSettings,
}

/// An API key, stored under the SHA-256 of its secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeyRecord {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_unix_ms: u64,
    #[serde(default)]
    pub expires_unix_ms: Option<u64>,
    #[serde(default)]
    pub last_used_unix_ms: Option<u64>,
}

/// A user of a tenant, found by (tenant, email) at sign-in and by (tenant, id) after.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UserRecord {
    pub id: String,
    pub tenant: String,
    /// Lower-case.
    pub email: String,
    pub role: Role,
    pub password_hash: String,
    pub created_unix_ms: u64,
}

/// A key's secret hash.
pub type KeyHash = [u8; 32];

/// Where identities live.
pub trait IdentityStore: Send + Sync {
    /// The operator key's hash, if one was stored.
    fn operator_hash(&self) -> Result<Option<KeyHash>>;
    fn set_operator_hash(&self, hash: &KeyHash) -> Result<()>;

    /// Stores a new tenant unless its name (trimmed, case-insensitive) is
    /// taken: `false` then, and nothing is written.
    fn put_tenant(&self, tenant: &Tenant) -> Result<bool>;
    /// Every tenant, in id order.
    fn tenants(&self) -> Result<Vec<Tenant>>;
    /// The id of the tenant with this name (trimmed, case-insensitive).
    fn tenant_named(&self, name: &str) -> Result<Option<String>>;
    fn tenant_exists(&self, id: &str) -> Result<bool>;
    fn tenant(&self, id: &str) -> Result<Option<Tenant>>;
    /// Replaces a tenant's settings; `false` if there is no such tenant.
    fn set_tenant_settings(&self, id: &str, settings: &TenantSettings) -> Result<bool>;

    /// Every key of every tenant (to fill the in-memory lookup at start).
    fn all_keys(&self) -> Result<Vec<(KeyHash, KeyRecord)>>;
    /// The keys of `tenant`, in id order.
    fn keys_of(&self, tenant: &TenantId) -> Result<Vec<(KeyHash, KeyRecord)>>;
    /// The secret hash of a key of `tenant`.
    fn key_hash(&self, tenant: &TenantId, key_id: &str) -> Result<Option<KeyHash>>;
    /// How many keys `tenant` has, counting no further than `up_to`.
    fn count_keys(&self, tenant: &TenantId, up_to: usize) -> Result<usize>;
    fn put_key(&self, hash: &KeyHash, key: &KeyRecord) -> Result<()>;
    /// Records a key's last use; best effort and not flushed (a lost time is
    /// not worth an fsync per request).
    fn touch_key(&self, hash: &KeyHash, at_unix_ms: u64);
    /// Removes a key of `tenant`; its hash if it existed.
    fn remove_key(&self, tenant: &TenantId, key_id: &str) -> Result<Option<KeyHash>>;

    fn user(&self, tenant: &str, email: &str) -> Result<Option<UserRecord>>;
    /// The email of a user of `tenant`, by id.
    fn user_email(&self, tenant: &str, user_id: &str) -> Result<Option<String>>;
    /// The users of `tenant`, in email order.
    fn users_of(&self, tenant: &TenantId) -> Result<Vec<UserRecord>>;
    fn count_users(&self, tenant: &TenantId, up_to: usize) -> Result<usize>;
    fn put_user(&self, user: &UserRecord) -> Result<()>;
    /// Removes a user of `tenant`; whether it existed.
    fn remove_user(&self, tenant: &TenantId, user_id: &str) -> Result<bool>;

    /// Remembers a session as logged out until `until_unix_ms`.
    fn revoke_session(&self, session_id: &str, until_unix_ms: u64) -> Result<()>;
    fn is_revoked(&self, session_id: &str) -> Result<bool>;
    /// Forgets revocations that end at or before `now_unix_ms`; how many.
    fn prune_revoked(&self, now_unix_ms: u64) -> Result<usize>;
    fn revoked_count(&self) -> usize;
}

const OPERATOR_HASH: &[u8] = b"operator_key_sha256";

/// [`IdentityStore`] on sled.
pub struct SledIdentity {
    db: sled::Db,
    tenants: sled::Tree,
    /// Lower-case trimmed name → tenant id (names are unique).
    tenant_names: sled::Tree,
    keys: sled::Tree,
    /// (tenant, key id) → secret hash, for listing and revocation.
    key_ids: sled::Tree,
    meta: sled::Tree,
    /// (tenant, email) → user.
    users: sled::Tree,
    /// (tenant, user id) → email.
    user_ids: sled::Tree,
    /// Session id → until when (big-endian ms).
    revoked: sled::Tree,
}

/// How a tenant name is compared: trimmed, lower-case.
fn name_key(name: &str) -> Vec<u8> {
    name.trim().to_lowercase().into_bytes()
}

fn in_tenant(tenant: &str, part: &str) -> Key {
    Key::tenant(tenant).raw(part.as_bytes())
}

fn key_hash(bytes: &[u8]) -> Option<KeyHash> {
    bytes.try_into().ok()
}

impl SledIdentity {
    /// Opens the trees; keys written before the id index existed get their entry.
    pub fn open(db: &sled::Db) -> Result<SledIdentity> {
        let store = SledIdentity {
            tenants: db.open_tree("tenants")?,
            tenant_names: db.open_tree("tenant_names")?,
            keys: db.open_tree("api_keys")?,
            key_ids: db.open_tree("api_key_ids")?,
            meta: db.open_tree("meta")?,
            users: db.open_tree("users")?,
            user_ids: db.open_tree("user_ids")?,
            revoked: db.open_tree("revoked_sessions")?,
            db: db.clone(),
        };
        // Tenants made before names were unique: the oldest keeps its name in
        // the index; later namesakes are reached by id only.
        if store.tenant_names.is_empty() {
            let mut tenants = store.tenants()?;
            tenants.sort_by_key(|tenant| tenant.created_unix_ms);
            for tenant in tenants {
                let taken =
                    store.tenant_names.compare_and_swap(name_key(&tenant.name), None as Option<&[u8]>, Some(tenant.id.as_bytes()))?;
                if taken.is_err() {
                    tracing::warn!(tenant = %tenant.id, name = %tenant.name, "tenant name used twice; sign in to this one by its id");
                }
            }
            store.tenant_names.flush()?;
        }
        for (hash, record) in store.all_keys()? {
            let id_key = in_tenant(&record.tenant, &record.id);
            if store.key_ids.get(&id_key)?.is_none() {
                store.key_ids.insert(id_key, &hash)?;
            }
        }
        Ok(store)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Key records with their hashes; unreadable records are skipped (logged).
    fn records(&self, hashes: impl Iterator<Item = sled::Result<sled::IVec>>) -> Result<Vec<(KeyHash, KeyRecord)>> {
        let mut found = Vec::new();
        for hash in hashes {
            let hash = hash?;
            let Some(hash) = key_hash(&hash) else { continue };
            let Some(value) = self.keys.get(hash)? else { continue };
            match serde_json::from_slice(&value) {
                Ok(record) => found.push((hash, record)),
                Err(error) => tracing::warn!(%error, "skipping an unreadable API key record"),
            }
        }
        Ok(found)
    }
}

impl IdentityStore for SledIdentity {
    fn operator_hash(&self) -> Result<Option<KeyHash>> {
        match self.meta.get(OPERATOR_HASH)? {
            Some(stored) => key_hash(&stored).map(Some).ok_or(super::StoreError::Invalid("stored operator key hash is corrupt")),
            None => Ok(None),
        }
    }

    fn set_operator_hash(&self, hash: &KeyHash) -> Result<()> {
        self.meta.insert(OPERATOR_HASH, hash)?;
        self.flush()
    }

    fn put_tenant(&self, tenant: &Tenant) -> Result<bool> {
        if self.tenant_names.compare_and_swap(name_key(&tenant.name), None as Option<&[u8]>, Some(tenant.id.as_bytes()))?.is_err() {
            return Ok(false);
        }
        self.tenants.insert(tenant.id.as_bytes(), serde_json::to_vec(tenant)?)?;
        self.flush()?;
        Ok(true)
    }

    fn tenants(&self) -> Result<Vec<Tenant>> {
        let mut tenants = Vec::new();
        for entry in self.tenants.iter().values() {
            tenants.push(serde_json::from_slice(&entry?)?);
        }
        Ok(tenants)
    }

    fn tenant_named(&self, name: &str) -> Result<Option<String>> {
        Ok(self.tenant_names.get(name_key(name))?.map(|id| String::from_utf8_lossy(&id).into_owned()))
    }

    fn tenant_exists(&self, id: &str) -> Result<bool> {
        Ok(self.tenants.contains_key(id.as_bytes())?)
    }

    fn tenant(&self, id: &str) -> Result<Option<Tenant>> {
        Ok(self.tenants.get(id.as_bytes())?.map(|bytes| serde_json::from_slice(&bytes)).transpose()?)
    }

    fn set_tenant_settings(&self, id: &str, settings: &TenantSettings) -> Result<bool> {
        // Read, change, compare-and-swap: a concurrent change is not lost.
        loop {
            let Some(current) = self.tenants.get(id.as_bytes())? else { return Ok(false) };
            let mut tenant: Tenant = serde_json::from_slice(&current)?;
            tenant.settings = settings.clone();
            let swapped = self.tenants.compare_and_swap(id.as_bytes(), Some(&current), Some(serde_json::to_vec(&tenant)?))?;
            if swapped.is_ok() {
                self.flush()?;
                return Ok(true);
            }
        }
    }

    fn all_keys(&self) -> Result<Vec<(KeyHash, KeyRecord)>> {
        self.records(self.keys.iter().keys())
    }

    fn keys_of(&self, tenant: &TenantId) -> Result<Vec<(KeyHash, KeyRecord)>> {
        self.records(self.key_ids.scan_prefix(Key::tenant(tenant)).values())
    }

    fn key_hash(&self, tenant: &TenantId, key_id: &str) -> Result<Option<KeyHash>> {
        Ok(self.key_ids.get(in_tenant(tenant.as_str(), key_id))?.and_then(|hash| key_hash(&hash)))
    }

    fn count_keys(&self, tenant: &TenantId, up_to: usize) -> Result<usize> {
        Ok(self.key_ids.scan_prefix(Key::tenant(tenant)).take(up_to).count())
    }

    fn put_key(&self, hash: &KeyHash, key: &KeyRecord) -> Result<()> {
        self.keys.insert(hash, serde_json::to_vec(key)?)?;
        self.key_ids.insert(in_tenant(&key.tenant, &key.id), hash)?;
        self.flush()
    }

    fn touch_key(&self, hash: &KeyHash, at_unix_ms: u64) {
        let _ = self.keys.fetch_and_update(hash, |value| {
            let mut record: KeyRecord = serde_json::from_slice(value?).ok()?;
            record.last_used_unix_ms = Some(at_unix_ms);
            serde_json::to_vec(&record).ok()
        });
    }

    fn remove_key(&self, tenant: &TenantId, key_id: &str) -> Result<Option<KeyHash>> {
        let Some(hash) = self.key_ids.remove(in_tenant(tenant.as_str(), key_id))? else { return Ok(None) };
        self.keys.remove(&hash)?;
        self.flush()?;
        Ok(key_hash(&hash))
    }

    fn user(&self, tenant: &str, email: &str) -> Result<Option<UserRecord>> {
        Ok(self.users.get(in_tenant(tenant, email))?.map(|value| serde_json::from_slice(&value)).transpose()?)
    }

    fn user_email(&self, tenant: &str, user_id: &str) -> Result<Option<String>> {
        Ok(self.user_ids.get(in_tenant(tenant, user_id))?.map(|email| String::from_utf8_lossy(&email).into_owned()))
    }

    fn users_of(&self, tenant: &TenantId) -> Result<Vec<UserRecord>> {
        let mut users = Vec::new();
        for entry in self.users.scan_prefix(Key::tenant(tenant)).values() {
            match serde_json::from_slice(&entry?) {
                Ok(record) => users.push(record),
                Err(error) => tracing::warn!(%error, "skipping an unreadable user record"),
            }
        }
        Ok(users)
    }

    fn count_users(&self, tenant: &TenantId, up_to: usize) -> Result<usize> {
        Ok(self.user_ids.scan_prefix(Key::tenant(tenant)).take(up_to).count())
    }

    fn put_user(&self, user: &UserRecord) -> Result<()> {
        self.users.insert(in_tenant(&user.tenant, &user.email), serde_json::to_vec(user)?)?;
        self.user_ids.insert(in_tenant(&user.tenant, &user.id), user.email.as_bytes())?;
        self.flush()
    }

    fn remove_user(&self, tenant: &TenantId, user_id: &str) -> Result<bool> {
        let Some(email) = self.user_ids.remove(in_tenant(tenant.as_str(), user_id))? else { return Ok(false) };
        self.users.remove(Key::tenant(tenant).raw(&email))?;
        self.flush()?;
        Ok(true)
    }

    fn revoke_session(&self, session_id: &str, until_unix_ms: u64) -> Result<()> {
        self.revoked.insert(session_id.as_bytes(), &until_unix_ms.to_be_bytes())?;
        self.flush()
    }

    fn is_revoked(&self, session_id: &str) -> Result<bool> {
        Ok(self.revoked.contains_key(session_id.as_bytes())?)
    }

    fn prune_revoked(&self, now_unix_ms: u64) -> Result<usize> {
        let mut removed = 0;
        for entry in self.revoked.iter() {
            let (session_id, value) = entry?;
            let until = <[u8; 8]>::try_from(value.as_ref()).map(u64::from_be_bytes).unwrap_or(0);
            if until <= now_unix_ms {
                self.revoked.remove(session_id)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn revoked_count(&self) -> usize {
        self.revoked.len()
    }
}

/// What every [`IdentityStore`] must do, written once against the interface.
#[cfg(test)]
pub(crate) mod contract {
    use super::*;

    fn key(tenant: &str, id: &str) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            tenant: tenant.into(),
            name: id.into(),
            scopes: vec![Scope::Read],
            created_unix_ms: 1,
            expires_unix_ms: None,
            last_used_unix_ms: None,
        }
    }

    fn user(tenant: &str, id: &str, email: &str) -> UserRecord {
        UserRecord {
            id: id.into(),
            tenant: tenant.into(),
            email: email.into(),
            role: Role::Viewer,
            password_hash: "$argon2id$…".into(),
            created_unix_ms: 1,
        }
    }

    pub fn check(store: &dyn IdentityStore) {
        let (a, ab) = (TenantId::trusted("a"), TenantId::trusted("ab"));
        assert_eq!(store.operator_hash().unwrap(), None);
        store.set_operator_hash(&[7; 32]).unwrap();
        assert_eq!(store.operator_hash().unwrap(), Some([7; 32]));
        assert!(store.put_tenant(&Tenant { id: "a".into(), name: "A".into(), created_unix_ms: 1, settings: Default::default() }).unwrap());
        // Names are unique, trimmed and case-insensitive; the loser writes nothing.
        assert!(
            !store.put_tenant(&Tenant { id: "x".into(), name: " a ".into(), created_unix_ms: 2, settings: Default::default() }).unwrap()
        );
        assert!(!store.tenant_exists("x").unwrap());
        assert!(
            store.put_tenant(&Tenant { id: "ab".into(), name: "AB".into(), created_unix_ms: 3, settings: Default::default() }).unwrap()
        );
        assert_eq!(store.tenants().unwrap().iter().map(|tenant| tenant.id.as_str()).collect::<Vec<_>>(), ["a", "ab"]);
        assert_eq!(store.tenant_named("ab ").unwrap().as_deref(), Some("ab"));
        assert_eq!(store.tenant_named("b").unwrap(), None);

        // Keys: by hash for everyone, by (tenant, id) within a tenant; "a" is a prefix of "ab".
        store.put_key(&[1; 32], &key("a", "k_1")).unwrap();
        store.put_key(&[2; 32], &key("a", "k_2")).unwrap();
        store.put_key(&[3; 32], &key("ab", "k_1")).unwrap();
        assert_eq!(store.all_keys().unwrap().len(), 3);
        assert_eq!(store.keys_of(&a).unwrap().iter().map(|(h, k)| (h[0], k.id.as_str())).collect::<Vec<_>>(), [(1, "k_1"), (2, "k_2")]);
        assert_eq!(store.key_hash(&ab, "k_1").unwrap(), Some([3; 32]));
        assert_eq!(store.key_hash(&ab, "k_2").unwrap(), None, "another tenant's key id finds nothing");
        assert_eq!(store.count_keys(&a, 100).unwrap(), 2);
        assert_eq!(store.count_keys(&a, 1).unwrap(), 1, "counting stops at up_to");
        store.touch_key(&[1; 32], 99);
        assert_eq!(store.keys_of(&a).unwrap()[0].1.last_used_unix_ms, Some(99));
        assert_eq!(store.remove_key(&ab, "k_2").unwrap(), None);
        assert_eq!(store.remove_key(&a, "k_1").unwrap(), Some([1; 32]));
        assert_eq!(store.key_hash(&a, "k_1").unwrap(), None);
        assert_eq!(store.all_keys().unwrap().len(), 2);

        // Users: by email at sign-in, by id after.
        store.put_user(&user("a", "u_1", "x@example.com")).unwrap();
        store.put_user(&user("ab", "u_2", "x@example.com")).unwrap();
        assert_eq!(store.user("a", "x@example.com").unwrap().map(|u| u.id), Some("u_1".into()));
        assert_eq!(store.user_email("a", "u_1").unwrap().as_deref(), Some("x@example.com"));
        assert_eq!(store.user_email("a", "u_2").unwrap(), None, "another tenant's user id finds nothing");
        assert_eq!(store.users_of(&a).unwrap().len(), 1);
        assert_eq!(store.count_users(&ab, 10).unwrap(), 1);
        assert!(!store.remove_user(&a, "u_2").unwrap());
        assert!(store.remove_user(&a, "u_1").unwrap());
        assert_eq!(store.user("a", "x@example.com").unwrap(), None);
        assert_eq!(store.users_of(&ab).unwrap().len(), 1, "the other tenant's user stays");

        // Revocations last until their time.
        store.revoke_session("s1", 10).unwrap();
        store.revoke_session("s2", 20).unwrap();
        assert!(store.is_revoked("s1").unwrap() && !store.is_revoked("s3").unwrap());
        assert_eq!(store.prune_revoked(10).unwrap(), 1);
        assert_eq!((store.is_revoked("s1").unwrap(), store.revoked_count()), (false, 1));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sled_identities_keep_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        super::contract::check(&super::SledIdentity::open(&db).unwrap());
    }
}
