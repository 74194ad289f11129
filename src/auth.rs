//! Tenants, API keys and the operator key: who a bearer credential is and what
//! it may do. Owns the sled trees `tenants`, `api_keys` and `meta`.
//!
//! A key secret is shown once, at creation, and stored only as its SHA-256:
//! secrets are 160 random bits, so a fast hash is as strong as a slow one here
//! (argon2id is for user passwords, issue 4). Lookups go through an in-memory
//! map filled at start and on every write, so authenticating an OTLP request
//! costs one hash and one map read. [`TenantId`] values come only from here.

use crate::store::Store;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

/// A tenant's id, obtained only from a verified credential or the tenants tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TenantId(Arc<str>);

impl TenantId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For the CLI, which works on a local database as its owner.
    pub fn trusted(id: &str) -> TenantId {
        TenantId(id.into())
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Ingest,
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "ingest" => Some(Scope::Ingest),
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// What a verified credential stands for.
#[derive(Clone, Debug)]
pub enum Principal {
    Operator,
    Key { tenant: TenantId, key_id: String, scopes: Vec<Scope> },
}

impl Principal {
    /// The tenant, if the credential has `scope` in it (`admin` implies every scope).
    pub fn tenant_with(&self, scope: Scope) -> Result<&TenantId, AuthError> {
        match self {
            Principal::Operator => Err(AuthError::Forbidden("the operator key manages tenants; use a tenant key")),
            Principal::Key { tenant, scopes, .. } => {
                if scopes.contains(&scope) || scopes.contains(&Scope::Admin) {
                    Ok(tenant)
                } else {
                    Err(AuthError::Forbidden("the key lacks the scope this needs"))
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or malformed credentials: send `Authorization: Bearer <key>`")]
    Missing,
    #[error("unknown or revoked key")]
    Unknown,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("storage error: {0}")]
    Store(#[from] sled::Error),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_unix_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct KeyRecord {
    id: String,
    tenant: String,
    name: String,
    scopes: Vec<Scope>,
    created_unix_ms: u64,
}

/// A key as returned once at creation.
#[derive(Debug, Serialize)]
pub struct NewKey {
    pub id: String,
    pub name: String,
    pub key: String,
    pub scopes: Vec<Scope>,
}

pub struct Auth {
    store: Arc<Store>,
    tenants: sled::Tree,
    keys: sled::Tree,
    cache: RwLock<HashMap<[u8; 32], Principal>>,
    operator_hash: [u8; 32],
}

const OPERATOR_HASH: &[u8] = b"operator_key_sha256";

impl Auth {
    /// Opens the trees and settles the operator key: `configured` (from
    /// `FLUO_OPERATOR_KEY`) replaces the stored one; without it, the stored one is
    /// kept, or one is generated and returned so that the caller prints it once.
    pub fn open(store: Arc<Store>, configured: Option<&str>) -> Result<(Auth, Option<String>), AuthError> {
        let tenants = store.db.open_tree("tenants")?;
        let keys = store.db.open_tree("api_keys")?;
        let meta = store.db.open_tree("meta")?;
        let mut generated = None;
        let operator_hash = match (configured, meta.get(OPERATOR_HASH)?) {
            (Some(key), _) => {
                if key.len() < 16 {
                    return Err(AuthError::Invalid("FLUO_OPERATOR_KEY must be at least 16 characters".into()));
                }
                let hash = hash(key);
                meta.insert(OPERATOR_HASH, &hash)?;
                hash
            }
            (None, Some(stored)) => stored.as_ref().try_into().map_err(|_| AuthError::Invalid("stored operator key hash is corrupt".into()))?,
            (None, None) => {
                let key = secret("fluo_op_");
                let hash = hash(&key);
                meta.insert(OPERATOR_HASH, &hash)?;
                generated = Some(key);
                hash
            }
        };
        store.db.flush()?;
        let mut cache = HashMap::new();
        for entry in keys.iter() {
            let (hash, value) = entry?;
            let Ok(record) = serde_json::from_slice::<KeyRecord>(&value) else { continue };
            let Ok(hash) = <[u8; 32]>::try_from(hash.as_ref()) else { continue };
            cache.insert(hash, Principal::Key { tenant: TenantId(record.tenant.into()), key_id: record.id, scopes: record.scopes });
        }
        Ok((Auth { store, tenants, keys, cache: RwLock::new(cache), operator_hash }, generated))
    }

    /// Verifies an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let token = header.and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))).map(str::trim);
        let Some(token) = token.filter(|token| !token.is_empty()) else { return Err(AuthError::Missing) };
        let hash = hash(token);
        if hash == self.operator_hash {
            return Ok(Principal::Operator);
        }
        self.cache.read().unwrap_or_else(|poison| poison.into_inner()).get(&hash).cloned().ok_or(AuthError::Unknown)
    }

    /// Creates a tenant and its first key (scope `admin`).
    pub fn create_tenant(&self, name: &str) -> Result<(Tenant, NewKey), AuthError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err(AuthError::Invalid("tenant name must be 1 to 128 characters".into()));
        }
        let tenant = Tenant { id: format!("t_{}", hex::encode(random::<8>())), name: name.into(), created_unix_ms: now_ms() };
        self.tenants.insert(tenant.id.as_bytes(), serde_json::to_vec(&tenant).expect("tenant serializes"))?;
        let key = self.insert_key(&TenantId(tenant.id.as_str().into()), "admin", vec![Scope::Admin])?;
        Ok((tenant, key))
    }

    pub fn create_key(&self, tenant: &TenantId, name: &str, scopes: &[String]) -> Result<NewKey, AuthError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err(AuthError::Invalid("key name must be 1 to 128 characters".into()));
        }
        if scopes.is_empty() {
            return Err(AuthError::Invalid("scopes must name at least one of ingest, read, write, admin".into()));
        }
        let mut parsed = Vec::new();
        for scope in scopes {
            let scope = Scope::parse(scope).ok_or_else(|| AuthError::Invalid(format!("unknown scope {scope:?}: use ingest, read, write or admin")))?;
            if !parsed.contains(&scope) {
                parsed.push(scope);
            }
        }
        self.insert_key(tenant, name, parsed)
    }

    pub fn tenant(&self, id: &str) -> Result<Option<Tenant>, AuthError> {
        Ok(self.tenants.get(id.as_bytes())?.and_then(|value| serde_json::from_slice(&value).ok()))
    }

    /// Every tenant id (for loading rules at start).
    pub fn tenant_ids(&self) -> Vec<TenantId> {
        self.tenants.iter().keys().filter_map(|key| key.ok()).map(|key| TenantId(String::from_utf8_lossy(&key).into())).collect()
    }

    fn insert_key(&self, tenant: &TenantId, name: &str, scopes: Vec<Scope>) -> Result<NewKey, AuthError> {
        let key = secret("fluo_");
        let hash = hash(&key);
        let record = KeyRecord { id: format!("k_{}", hex::encode(random::<8>())), tenant: tenant.as_str().into(), name: name.into(), scopes, created_unix_ms: now_ms() };
        self.keys.insert(hash, serde_json::to_vec(&record).expect("key record serializes"))?;
        // Acknowledged writes are on disk before the response.
        self.store.db.flush()?;
        self.cache
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(hash, Principal::Key { tenant: tenant.clone(), key_id: record.id.clone(), scopes: record.scopes.clone() });
        Ok(NewKey { id: record.id, name: record.name, key, scopes: record.scopes })
    }
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// 160 random bits, hex, behind a recognizable prefix (secret scanners).
fn secret(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(random::<20>()))
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path, operator: Option<&str>) -> (Auth, Option<String>) {
        // sled's flusher thread lets go of a dropped database's lock a moment later.
        for _ in 0..100 {
            if let Ok(store) = Store::open(dir) {
                return Auth::open(Arc::new(store), operator).unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("database still locked");
    }

    #[test]
    fn keys_authenticate_with_their_scopes_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, generated) = open(dir.path(), None);
        let operator = generated.expect("first start generates an operator key");
        assert!(matches!(auth.authenticate(Some(&format!("Bearer {operator}"))), Ok(Principal::Operator)));
        let (tenant, admin) = auth.create_tenant("acme").unwrap();
        let ingest = auth.create_key(&TenantId(tenant.id.as_str().into()), "collector", &["ingest".into()]).unwrap();
        let principal = auth.authenticate(Some(&format!("Bearer {}", ingest.key))).unwrap();
        assert_eq!(principal.tenant_with(Scope::Ingest).unwrap().as_str(), tenant.id);
        assert!(principal.tenant_with(Scope::Read).is_err());
        assert!(auth.create_key(&TenantId(tenant.id.as_str().into()), "x", &["root".into()]).is_err());
        drop(auth);
        let (auth, generated) = open(dir.path(), None);
        assert!(generated.is_none(), "the operator key is generated once");
        let principal = auth.authenticate(Some(&format!("Bearer {}", admin.key))).unwrap();
        assert_eq!(principal.tenant_with(Scope::Write).unwrap().as_str(), tenant.id, "admin implies write");
        assert!(matches!(auth.authenticate(Some("Bearer fluo_nope")), Err(AuthError::Unknown)));
        assert!(matches!(auth.authenticate(Some("Basic abc")), Err(AuthError::Missing)));
        assert!(matches!(auth.authenticate(None), Err(AuthError::Missing)));
    }
}
