//! Tenants, API keys and the operator key: who a bearer credential is and what
//! it may do. Owns the sled trees `tenants`, `api_keys` and `meta`.
//!
//! A key secret is shown once, at creation, and stored only as its SHA-256:
//! secrets are 160 random bits, so a fast hash is as strong as a slow one here
//! (argon2id is for user passwords, issue 4). Lookups go through an in-memory
//! map filled at start and on every write, so authenticating an OTLP request
//! costs one hash and one map read; revoking a key removes it from both, so
//! the next request fails. Last-used times are kept in memory and written back
//! at most once a minute per key. [`TenantId`] values come only from here.

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    Key {
        tenant: TenantId,
        key_id: String,
        scopes: Vec<Scope>,
    },
    /// A signed-in user (session token).
    User(crate::users::Session),
}

impl Principal {
    /// Who acted, as recorded in histories and versions: key id, user id or `operator`.
    pub fn author(&self) -> String {
        match self {
            Principal::Key { key_id, .. } => key_id.clone(),
            Principal::Operator => "operator".into(),
            Principal::User(session) => session.user_id.clone(),
        }
    }

    /// The tenant, if the credential has `scope` in it (`admin` implies every scope).
    pub fn tenant_with(&self, scope: Scope) -> Result<&TenantId, AuthError> {
        match self {
            Principal::Operator => Err(AuthError::Forbidden("the operator key manages tenants; use a tenant key")),
            Principal::User(session) => {
                if session.role.scopes().contains(&scope) {
                    Ok(&session.tenant)
                } else {
                    Err(AuthError::Forbidden("the user's role does not allow this"))
                }
            }
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
    #[error("{0}")]
    Conflict(&'static str),
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
    #[serde(default)]
    expires_unix_ms: Option<u64>,
    #[serde(default)]
    last_used_unix_ms: Option<u64>,
}

/// A key as listed: never its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

struct CachedKey {
    principal: Principal,
    expires_unix_ms: Option<u64>,
    last_used: std::sync::atomic::AtomicU64,
    persisted: std::sync::atomic::AtomicU64,
}

impl CachedKey {
    fn new(record: &KeyRecord) -> CachedKey {
        let last = record.last_used_unix_ms.unwrap_or(0);
        CachedKey {
            principal: Principal::Key {
                tenant: TenantId(record.tenant.as_str().into()),
                key_id: record.id.clone(),
                scopes: record.scopes.clone(),
            },
            expires_unix_ms: record.expires_unix_ms,
            last_used: last.into(),
            persisted: last.into(),
        }
    }
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
    pub users: crate::users::Users,
    store: Arc<Store>,
    tenants: sled::Tree,
    keys: sled::Tree,
    /// (tenant, key id) → secret hash, for listing and revocation.
    key_ids: sled::Tree,
    cache: RwLock<HashMap<[u8; 32], CachedKey>>,
    operator_hash: [u8; 32],
}

const OPERATOR_HASH: &[u8] = b"operator_key_sha256";

impl Auth {
    /// Opens the trees and settles the operator key: `configured` (from
    /// `FLUO_OPERATOR_KEY`) replaces the stored one; without it, the stored one is
    /// kept, or one is generated and returned so that the caller prints it once.
    /// Session tokens live `session_ttl`.
    pub fn open(
        store: Arc<Store>,
        configured: Option<&str>,
        jwt_key_file: Option<&std::path::Path>,
        session_ttl: std::time::Duration,
    ) -> Result<(Auth, Option<String>), AuthError> {
        let tenants = store.db.open_tree("tenants")?;
        let keys = store.db.open_tree("api_keys")?;
        let key_ids = store.db.open_tree("api_key_ids")?;
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
            (None, Some(stored)) => {
                stored.as_ref().try_into().map_err(|_| AuthError::Invalid("stored operator key hash is corrupt".into()))?
            }
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
            // Keys written before the id index existed get their entry.
            let mut id_key = id_prefix(&TenantId(record.tenant.as_str().into()));
            id_key.extend_from_slice(record.id.as_bytes());
            if key_ids.get(&id_key)?.is_none() {
                key_ids.insert(id_key, &hash)?;
            }
            cache.insert(hash, CachedKey::new(&record));
        }
        let users = crate::users::Users::open(&store.db, &store.dir, jwt_key_file, session_ttl)?;
        Ok((Auth { users, store, tenants, keys, key_ids, cache: RwLock::new(cache), operator_hash }, generated))
    }

    /// Verifies an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let token = header.and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))).map(str::trim);
        let Some(token) = token.filter(|token| !token.is_empty()) else { return Err(AuthError::Missing) };
        if token.bytes().filter(|byte| *byte == b'.').count() == 2 {
            return self.users.verify(token).map(Principal::User);
        }
        let hash = hash(token);
        if hash == self.operator_hash {
            return Ok(Principal::Operator);
        }
        let now = now_ms();
        let cache = self.cache.read().unwrap_or_else(|poison| poison.into_inner());
        let cached = cache.get(&hash).ok_or(AuthError::Unknown)?;
        if cached.expires_unix_ms.is_some_and(|expires| expires <= now) {
            return Err(AuthError::Unknown);
        }
        cached.last_used.store(now, std::sync::atomic::Ordering::Relaxed);
        let persisted = cached.persisted.load(std::sync::atomic::Ordering::Relaxed);
        let principal = cached.principal.clone();
        if now.saturating_sub(persisted) >= 60_000 {
            cached.persisted.store(now, std::sync::atomic::Ordering::Relaxed);
            drop(cache);
            // Best effort, not flushed: a lost last-used time is not worth an fsync per request.
            let _ = self.keys.fetch_and_update(hash, |value| {
                let mut record: KeyRecord = serde_json::from_slice(value?).ok()?;
                record.last_used_unix_ms = Some(now);
                serde_json::to_vec(&record).ok()
            });
        }
        Ok(principal)
    }

    /// The tenant's keys, without secrets, oldest first.
    pub fn list_keys(&self, tenant: &TenantId) -> Result<Vec<KeyInfo>, AuthError> {
        let cache = self.cache.read().unwrap_or_else(|poison| poison.into_inner());
        let mut keys = Vec::new();
        for entry in self.key_ids.scan_prefix(id_prefix(tenant)) {
            let (_, hash) = entry?;
            let Some(value) = self.keys.get(&hash)? else { continue };
            let Ok(record) = serde_json::from_slice::<KeyRecord>(&value) else { continue };
            let live = <[u8; 32]>::try_from(hash.as_ref())
                .ok()
                .and_then(|hash| cache.get(&hash))
                .map(|cached| cached.last_used.load(std::sync::atomic::Ordering::Relaxed));
            let last_used = live.filter(|at| *at > 0).or(record.last_used_unix_ms);
            keys.push(KeyInfo {
                id: record.id,
                name: record.name,
                scopes: record.scopes,
                created_at: crate::signals::rfc3339(record.created_unix_ms),
                expires_at: record.expires_unix_ms.map(crate::signals::rfc3339),
                last_used_at: last_used.map(crate::signals::rfc3339),
            });
        }
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(keys)
    }

    /// Revokes a key of `tenant`; `false` if the tenant has no such key. The
    /// next request with it fails.
    pub fn revoke_key(&self, tenant: &TenantId, key_id: &str) -> Result<bool, AuthError> {
        let mut id_key = id_prefix(tenant);
        id_key.extend_from_slice(key_id.as_bytes());
        let Some(hash) = self.key_ids.remove(&id_key)? else { return Ok(false) };
        self.keys.remove(&hash)?;
        if let Ok(hash) = <[u8; 32]>::try_from(hash.as_ref()) {
            self.cache.write().unwrap_or_else(|poison| poison.into_inner()).remove(&hash);
        }
        self.store.db.flush()?;
        Ok(true)
    }

    /// Creates a tenant and its first key (scope `admin`).
    pub fn create_tenant(&self, name: &str) -> Result<(Tenant, NewKey), AuthError> {
        if name.trim().is_empty() || name.len() > 128 {
            return Err(AuthError::Invalid("tenant name must be 1 to 128 characters".into()));
        }
        let tenant = Tenant { id: format!("t_{}", hex::encode(random::<8>())), name: name.trim().into(), created_unix_ms: now_ms() };
        self.tenants.insert(tenant.id.as_bytes(), serde_json::to_vec(&tenant).expect("tenant serializes"))?;
        let key = self.insert_key(&TenantId(tenant.id.as_str().into()), "admin", vec![Scope::Admin], None)?;
        Ok((tenant, key))
    }

    /// A new key; `expires_unix_ms` must be in the future.
    pub fn create_key(&self, tenant: &TenantId, name: &str, scopes: &[String], expires_unix_ms: Option<u64>) -> Result<NewKey, AuthError> {
        if expires_unix_ms.is_some_and(|expires| expires <= now_ms()) {
            return Err(AuthError::Invalid("expires_at must be in the future".into()));
        }
        if name.trim().is_empty() || name.len() > 128 {
            return Err(AuthError::Invalid("key name must be 1 to 128 characters".into()));
        }
        if scopes.is_empty() {
            return Err(AuthError::Invalid("scopes must name at least one of ingest, read, write, admin".into()));
        }
        let mut parsed = Vec::new();
        for scope in scopes {
            let scope = Scope::parse(scope)
                .ok_or_else(|| AuthError::Invalid(format!("unknown scope {scope:?}: use ingest, read, write or admin")))?;
            if !parsed.contains(&scope) {
                parsed.push(scope);
            }
        }
        self.insert_key(tenant, name, parsed, expires_unix_ms)
    }

    fn insert_key(&self, tenant: &TenantId, name: &str, scopes: Vec<Scope>, expires_unix_ms: Option<u64>) -> Result<NewKey, AuthError> {
        let key = secret("fluo_");
        let hash = hash(&key);
        let record = KeyRecord {
            id: format!("k_{}", hex::encode(random::<8>())),
            tenant: tenant.as_str().into(),
            name: name.into(),
            scopes,
            created_unix_ms: now_ms(),
            expires_unix_ms,
            last_used_unix_ms: None,
        };
        self.keys.insert(hash, serde_json::to_vec(&record).expect("key record serializes"))?;
        let mut id_key = id_prefix(tenant);
        id_key.extend_from_slice(record.id.as_bytes());
        self.key_ids.insert(id_key, &hash)?;
        // Acknowledged writes are on disk before the response.
        self.store.db.flush()?;
        self.cache.write().unwrap_or_else(|poison| poison.into_inner()).insert(hash, CachedKey::new(&record));
        Ok(NewKey { id: record.id, name: record.name, key, scopes: record.scopes })
    }
}

fn id_prefix(tenant: &TenantId) -> Vec<u8> {
    let mut key = (tenant.as_str().len() as u32).to_be_bytes().to_vec();
    key.extend_from_slice(tenant.as_str().as_bytes());
    key
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
                return Auth::open(Arc::new(store), operator, None, crate::users::TOKEN_TTL).unwrap();
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
        let ingest = auth.create_key(&TenantId(tenant.id.as_str().into()), "collector", &["ingest".into()], None).unwrap();
        let principal = auth.authenticate(Some(&format!("Bearer {}", ingest.key))).unwrap();
        assert_eq!(principal.tenant_with(Scope::Ingest).unwrap().as_str(), tenant.id);
        assert!(principal.tenant_with(Scope::Read).is_err());
        assert!(auth.create_key(&TenantId(tenant.id.as_str().into()), "x", &["root".into()], None).is_err());
        assert!(auth.create_key(&TenantId(tenant.id.as_str().into()), "x", &["read".into()], Some(1)).is_err(), "expiry in the past");
        drop(auth);
        let (auth, generated) = open(dir.path(), None);
        assert!(generated.is_none(), "the operator key is generated once");
        let principal = auth.authenticate(Some(&format!("Bearer {}", admin.key))).unwrap();
        assert_eq!(principal.tenant_with(Scope::Write).unwrap().as_str(), tenant.id, "admin implies write");
        assert!(matches!(auth.authenticate(Some("Bearer fluo_nope")), Err(AuthError::Unknown)));
        assert!(matches!(auth.authenticate(Some("Basic abc")), Err(AuthError::Missing)));
        assert!(matches!(auth.authenticate(None), Err(AuthError::Missing)));
        // Listing shows no secret; revocation is immediate and tenant-scoped.
        let acme = TenantId(tenant.id.as_str().into());
        let listed = auth.list_keys(&acme).unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().any(|key| key.id == ingest.id && key.last_used_at.is_some()));
        assert!(!serde_json::to_string(&listed).unwrap().contains(&ingest.key));
        assert!(!auth.revoke_key(&TenantId::trusted("t_other"), &ingest.id).unwrap(), "another tenant cannot revoke it");
        assert!(auth.revoke_key(&acme, &ingest.id).unwrap());
        assert!(matches!(auth.authenticate(Some(&format!("Bearer {}", ingest.key))), Err(AuthError::Unknown)));
        assert_eq!(auth.list_keys(&acme).unwrap().len(), 1);
    }
}
