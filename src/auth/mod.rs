//! Tenants, API keys and the operator key: who a bearer credential is and what
//! it may do; users and sessions are its [`users`] part. Records live in
//! [`crate::store::identity`].
//!
//! A key secret is shown once, at creation, and stored only as its SHA-256:
//! secrets are 160 random bits, so a fast hash is as strong as a slow one here
//! (argon2id is for user passwords, issue 4). Lookups go through an in-memory
//! map filled at start and on every write, so authenticating an OTLP request
//! costs one hash and one map read; revoking a key removes it from both, so
//! the next request fails. Last-used times are kept in memory and written back
//! at most once a minute per key. A request's [`TenantId`] comes only from here.
//!
//! A tenant holds at most `max_keys_per_tenant` keys (revoking frees a slot).
//! Long-lived responses (event streams) re-check their credential with
//! [`Auth::still_valid`] and hold a [`StreamPermit`] from [`Auth::streams`],
//! at most `streams_per_credential` per key or user.

pub mod users;

use crate::model::tenant::TenantId;
use crate::model::time::now_ms;
use crate::store::Store;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// API keys per tenant by default (`--max-keys-per-tenant`).
pub const MAX_KEYS_PER_TENANT: usize = 100;
/// Open event streams per key or user by default (`--streams-per-credential`).
pub const STREAMS_PER_CREDENTIAL: usize = 8;

/// The identity limits `fluo serve` is configured with (flags in [`crate::config`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityLimits {
    /// How long a session token lives (`--session-ttl`).
    pub session_ttl: Duration,
    /// How long after sign-in a session can still be renewed (`--session-max-lifetime`).
    pub session_max_lifetime: Duration,
    /// Password checks at once; sign-ins beyond are refused (`--signin-concurrency`).
    pub signin_concurrency: usize,
    /// Keys a tenant may hold (`--max-keys-per-tenant`).
    pub max_keys_per_tenant: usize,
    /// Users a tenant may have (`--max-users-per-tenant`).
    pub max_users_per_tenant: usize,
    /// Open event streams per key or user (`--streams-per-credential`).
    pub streams_per_credential: usize,
}

impl Default for IdentityLimits {
    fn default() -> IdentityLimits {
        IdentityLimits {
            session_ttl: crate::auth::users::TOKEN_TTL,
            session_max_lifetime: crate::auth::users::SESSION_MAX_LIFETIME,
            signin_concurrency: crate::auth::users::SIGNIN_CONCURRENCY,
            max_keys_per_tenant: MAX_KEYS_PER_TENANT,
            max_users_per_tenant: crate::auth::users::MAX_USERS_PER_TENANT,
            streams_per_credential: STREAMS_PER_CREDENTIAL,
        }
    }
}

pub use crate::model::tenant::Scope;

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
    User(crate::auth::users::Session),
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

    /// What per-credential limits count by: the key id, the user id (every
    /// session of a user together), or `operator`.
    pub fn credential_id(&self) -> &str {
        match self {
            Principal::Key { key_id, .. } => key_id,
            Principal::Operator => "operator",
            Principal::User(session) => &session.user_id,
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
    Conflict(String),
    /// A credential that was valid and is no longer (a session past its lifetime).
    #[error("{0}")]
    Expired(&'static str),
    #[error("storage error: {0}")]
    Store(#[from] crate::store::StoreError),
}

pub use crate::store::identity::Tenant;
use crate::store::identity::{IdentityStore, KeyRecord};

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
                tenant: TenantId::trusted(&record.tenant),
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
    pub users: crate::auth::users::Users,
    identity: Arc<dyn IdentityStore>,
    cache: RwLock<HashMap<[u8; 32], CachedKey>>,
    operator_hash: [u8; 32],
    /// Held while counting and adding a tenant's keys, so the quota holds under concurrency.
    creating: Mutex<()>,
    max_keys_per_tenant: usize,
    /// Open event streams per credential.
    pub streams: StreamPermits,
}

/// Counts open long-lived responses per credential and refuses more than the cap.
pub struct StreamPermits {
    cap: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open stream of a credential; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamPermit {
    credential: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl StreamPermits {
    pub fn new(cap: usize) -> StreamPermits {
        StreamPermits { cap, open: Arc::default() }
    }

    /// A slot for one more stream of `principal`'s credential, or `None` at the cap.
    pub fn try_acquire(&self, principal: &Principal) -> Option<StreamPermit> {
        let credential = principal.credential_id();
        let mut open = self.open.lock().unwrap_or_else(|poison| poison.into_inner());
        let count = open.entry(credential.to_string()).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(StreamPermit { credential: credential.to_string(), open: self.open.clone() })
    }

    /// Streams open now for `principal`'s credential.
    pub fn open(&self, principal: &Principal) -> usize {
        self.open.lock().unwrap_or_else(|poison| poison.into_inner()).get(principal.credential_id()).copied().unwrap_or(0)
    }

    pub fn cap(&self) -> usize {
        self.cap
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = open.get_mut(&self.credential) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.credential);
            }
        }
    }
}

impl Auth {
    /// Opens the trees and settles the operator key: `configured` (from
    /// `FLUO_OPERATOR_KEY`) replaces the stored one; without it, the stored one is
    /// kept, or one is generated and returned so that the caller prints it once.
    /// `limits`: sessions, sign-in, quotas and streams.
    pub fn open(
        store: Arc<Store>,
        configured: Option<&str>,
        jwt_key_file: Option<&std::path::Path>,
        limits: IdentityLimits,
    ) -> Result<(Auth, Option<String>), AuthError> {
        let identity = store.identity.clone();
        let mut generated = None;
        let operator_hash = match (configured, identity.operator_hash()?) {
            (Some(key), _) => {
                if key.len() < 16 {
                    return Err(AuthError::Invalid("FLUO_OPERATOR_KEY must be at least 16 characters".into()));
                }
                let hash = hash(key);
                identity.set_operator_hash(&hash)?;
                hash
            }
            (None, Some(stored)) => stored,
            (None, None) => {
                let key = secret("fluo_op_");
                let hash = hash(&key);
                identity.set_operator_hash(&hash)?;
                generated = Some(key);
                hash
            }
        };
        let cache = identity.all_keys()?.into_iter().map(|(hash, record)| (hash, CachedKey::new(&record))).collect();
        let streams = StreamPermits::new(limits.streams_per_credential);
        let max_keys_per_tenant = limits.max_keys_per_tenant;
        let users = crate::auth::users::Users::open(identity.clone(), &store.dir, jwt_key_file, limits)?;
        let auth =
            Auth { users, identity, cache: RwLock::new(cache), operator_hash, creating: Mutex::new(()), max_keys_per_tenant, streams };
        Ok((auth, generated))
    }

    /// Whether a credential verified earlier still holds at `now_unix_ms`: a
    /// key not revoked or expired; a session not expired, past its lifetime or
    /// logged out, of a user that exists. A storage error counts as no.
    pub fn still_valid(&self, principal: &Principal, now_unix_ms: u64) -> bool {
        match principal {
            Principal::Operator => true,
            Principal::User(session) => self.users.still_valid(session, now_unix_ms).unwrap_or(false),
            Principal::Key { tenant, key_id, .. } => {
                let Ok(Some(hash)) = self.identity.key_hash(tenant, key_id) else { return false };
                let cache = self.cache.read().unwrap_or_else(|poison| poison.into_inner());
                cache.get(&hash).is_some_and(|cached| cached.expires_unix_ms.is_none_or(|expires| expires > now_unix_ms))
            }
        }
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
            self.identity.touch_key(&hash, now);
        }
        Ok(principal)
    }

    /// The tenant's keys, without secrets, oldest first.
    pub fn list_keys(&self, tenant: &TenantId) -> Result<Vec<KeyInfo>, AuthError> {
        let cache = self.cache.read().unwrap_or_else(|poison| poison.into_inner());
        let mut keys = Vec::new();
        for (hash, record) in self.identity.keys_of(tenant)? {
            let live = cache.get(&hash).map(|cached| cached.last_used.load(std::sync::atomic::Ordering::Relaxed));
            let last_used = live.filter(|at| *at > 0).or(record.last_used_unix_ms);
            keys.push(KeyInfo {
                id: record.id,
                name: record.name,
                scopes: record.scopes,
                created_at: crate::model::time::rfc3339(record.created_unix_ms),
                expires_at: record.expires_unix_ms.map(crate::model::time::rfc3339),
                last_used_at: last_used.map(crate::model::time::rfc3339),
            });
        }
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(keys)
    }

    /// Revokes a key of `tenant`; `false` if the tenant has no such key. The
    /// next request with it fails.
    pub fn revoke_key(&self, tenant: &TenantId, key_id: &str) -> Result<bool, AuthError> {
        let Some(hash) = self.identity.remove_key(tenant, key_id)? else { return Ok(false) };
        self.cache.write().unwrap_or_else(|poison| poison.into_inner()).remove(&hash);
        Ok(true)
    }

    /// Creates a tenant and its first key (scope `admin`). Names are unique
    /// (trimmed, case-insensitive) and may not look like a tenant id, since
    /// users sign in with either.
    pub fn create_tenant(&self, name: &str) -> Result<(Tenant, NewKey), AuthError> {
        if name.trim().is_empty() || name.len() > 128 {
            return Err(AuthError::Invalid("tenant name must be 1 to 128 characters".into()));
        }
        if looks_like_tenant_id(name.trim()) {
            return Err(AuthError::Invalid("tenant name may not look like a tenant id (t_ and 16 hex digits)".into()));
        }
        let tenant = Tenant {
            id: format!("t_{}", hex::encode(random::<8>())),
            name: name.trim().into(),
            created_unix_ms: now_ms(),
            settings: Default::default(),
        };
        if !self.identity.put_tenant(&tenant)? {
            return Err(AuthError::Conflict(format!("a tenant named {:?} exists; names are unique", tenant.name)));
        }
        let key = self.insert_key(&TenantId::trusted(&tenant.id), "admin", vec![Scope::Admin], None)?;
        Ok((tenant, key))
    }

    /// Every tenant, in id order (for the operator).
    pub fn tenants(&self) -> Result<Vec<Tenant>, AuthError> {
        Ok(self.identity.tenants()?)
    }

    /// A tenant's settings (the defaults for a tenant that has none).
    pub fn settings(&self, tenant: &TenantId) -> Result<crate::model::tenant::TenantSettings, AuthError> {
        Ok(self.identity.tenant(tenant.as_str())?.map(|tenant| tenant.settings).unwrap_or_default())
    }

    /// Replaces a tenant's settings (checked by the caller), durably.
    pub fn set_settings(&self, tenant: &TenantId, settings: &crate::model::tenant::TenantSettings) -> Result<(), AuthError> {
        if !self.identity.set_tenant_settings(tenant.as_str(), settings)? {
            return Err(AuthError::Unknown);
        }
        Ok(())
    }

    /// A new key; `expires_unix_ms` must be in the future and at most
    /// [`crate::model::time::MAX_UNIX_MS`]; the tenant must be under its key quota.
    pub fn create_key(&self, tenant: &TenantId, name: &str, scopes: &[String], expires_unix_ms: Option<u64>) -> Result<NewKey, AuthError> {
        if expires_unix_ms.is_some_and(|expires| expires <= now_ms()) {
            return Err(AuthError::Invalid("expires_at must be in the future".into()));
        }
        if expires_unix_ms.is_some_and(|expires| expires > crate::model::time::MAX_UNIX_MS) {
            return Err(AuthError::Invalid("expires_at must be before the year 10000".into()));
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
        let quota = self.max_keys_per_tenant;
        let _creating = self.creating.lock().unwrap_or_else(|poison| poison.into_inner());
        if self.identity.count_keys(tenant, quota)? >= quota {
            return Err(AuthError::Conflict(format!("the tenant has {quota} API keys, its quota; revoke one first")));
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
        // Acknowledged writes are on disk before the response.
        self.identity.put_key(&hash, &record)?;
        self.cache.write().unwrap_or_else(|poison| poison.into_inner()).insert(hash, CachedKey::new(&record));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path, operator: Option<&str>) -> (Auth, Option<String>) {
        // sled's flusher thread lets go of a dropped database's lock a moment later.
        for _ in 0..100 {
            if let Ok(store) = Store::open(dir) {
                return Auth::open(Arc::new(store), operator, None, IdentityLimits::default()).unwrap();
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
        let ingest = auth.create_key(&TenantId::trusted(&tenant.id), "collector", &["ingest".into()], None).unwrap();
        let principal = auth.authenticate(Some(&format!("Bearer {}", ingest.key))).unwrap();
        assert_eq!(principal.tenant_with(Scope::Ingest).unwrap().as_str(), tenant.id);
        assert!(principal.tenant_with(Scope::Read).is_err());
        assert!(auth.create_key(&TenantId::trusted(&tenant.id), "x", &["root".into()], None).is_err());
        assert!(auth.create_key(&TenantId::trusted(&tenant.id), "x", &["read".into()], Some(1)).is_err(), "expiry in the past");
        drop(auth);
        let (auth, generated) = open(dir.path(), None);
        assert!(generated.is_none(), "the operator key is generated once");
        let principal = auth.authenticate(Some(&format!("Bearer {}", admin.key))).unwrap();
        assert_eq!(principal.tenant_with(Scope::Write).unwrap().as_str(), tenant.id, "admin implies write");
        assert!(matches!(auth.authenticate(Some("Bearer fluo_nope")), Err(AuthError::Unknown)));
        assert!(matches!(auth.authenticate(Some("Basic abc")), Err(AuthError::Missing)));
        assert!(matches!(auth.authenticate(None), Err(AuthError::Missing)));
        // Listing shows no secret; revocation is immediate and tenant-scoped.
        let acme = TenantId::trusted(&tenant.id);
        let listed = auth.list_keys(&acme).unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().any(|key| key.id == ingest.id && key.last_used_at.is_some()));
        assert!(!serde_json::to_string(&listed).unwrap().contains(&ingest.key));
        assert!(!auth.revoke_key(&TenantId::trusted("t_other"), &ingest.id).unwrap(), "another tenant cannot revoke it");
        assert!(auth.revoke_key(&acme, &ingest.id).unwrap());
        assert!(matches!(auth.authenticate(Some(&format!("Bearer {}", ingest.key))), Err(AuthError::Unknown)));
        assert_eq!(auth.list_keys(&acme).unwrap().len(), 1);
    }

    #[test]
    fn far_future_expiry_is_refused_and_keys_per_tenant_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let limits = IdentityLimits { max_keys_per_tenant: 3, ..IdentityLimits::default() };
        let (auth, _) = Auth::open(store, None, None, limits).unwrap();
        let (tenant, _) = auth.create_tenant("acme").unwrap();
        let acme = TenantId::trusted(&tenant.id);
        let refused = auth.create_key(&acme, "far", &["read".into()], Some(crate::model::time::MAX_UNIX_MS + 1)).unwrap_err();
        assert!(matches!(refused, AuthError::Invalid(_)), "{refused}");
        let last = auth.create_key(&acme, "last", &["read".into()], Some(crate::model::time::MAX_UNIX_MS)).unwrap();
        assert!(auth.list_keys(&acme).unwrap().iter().any(|key| key.expires_at.as_deref() == Some("9999-12-31T23:59:59.999Z")));
        auth.create_key(&acme, "third", &["read".into()], None).unwrap();
        let over = auth.create_key(&acme, "fourth", &["read".into()], None).unwrap_err();
        assert!(matches!(&over, AuthError::Conflict(message) if message.contains("quota")), "{over}");
        let (other, _) = auth.create_tenant("globex").unwrap();
        auth.create_key(&TenantId::trusted(&other.id), "theirs", &["read".into()], None).unwrap();
        assert!(auth.revoke_key(&acme, &last.id).unwrap());
        auth.create_key(&acme, "fourth", &["read".into()], None).unwrap();
    }

    #[test]
    fn credentials_are_rechecked_and_streams_capped_per_credential() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _) = open(dir.path(), None);
        let (tenant, _) = auth.create_tenant("acme").unwrap();
        let acme = TenantId::trusted(&tenant.id);
        let reader = auth.create_key(&acme, "reader", &["read".into()], None).unwrap();
        let principal = auth.authenticate(Some(&format!("Bearer {}", reader.key))).unwrap();
        let now = now_ms();
        assert!(auth.still_valid(&principal, now));
        let expiring = auth.create_key(&acme, "soon", &["read".into()], Some(now + 60_000)).unwrap();
        let expiring = auth.authenticate(Some(&format!("Bearer {}", expiring.key))).unwrap();
        assert!(auth.still_valid(&expiring, now));
        assert!(!auth.still_valid(&expiring, now + 60_000), "expired");

        let first = auth.streams.try_acquire(&principal).unwrap();
        let mut held: Vec<StreamPermit> = (1..STREAMS_PER_CREDENTIAL).map(|_| auth.streams.try_acquire(&principal).unwrap()).collect();
        assert_eq!(auth.streams.open(&principal), STREAMS_PER_CREDENTIAL);
        assert!(auth.streams.try_acquire(&principal).is_none(), "at the cap");
        assert!(auth.streams.try_acquire(&expiring).is_some(), "another credential has its own count");
        drop(first);
        held.push(auth.streams.try_acquire(&principal).expect("a dropped permit frees its slot"));
        drop(held);
        assert_eq!(auth.streams.open(&principal), 0);

        assert!(auth.revoke_key(&acme, &reader.id).unwrap());
        assert!(!auth.still_valid(&principal, now), "revoked");
        assert!(auth.still_valid(&Principal::Operator, now));

        // Sessions: every session of a user counts together; logout and deletion end them.
        let user = auth.users.create(&acme, "ed@example.com", "correct horse battery", crate::auth::users::Role::Viewer).unwrap();
        let one = auth.users.login(&tenant.id, "ed@example.com", "correct horse battery", None).unwrap();
        let two = auth.users.login(&tenant.id, "ed@example.com", "correct horse battery", None).unwrap();
        let one = auth.authenticate(Some(&format!("Bearer {}", one.token))).unwrap();
        let two = auth.authenticate(Some(&format!("Bearer {}", two.token))).unwrap();
        assert_eq!(one.credential_id(), two.credential_id());
        let _streams: Vec<StreamPermit> = (0..STREAMS_PER_CREDENTIAL).map(|_| auth.streams.try_acquire(&one).unwrap()).collect();
        assert!(auth.streams.try_acquire(&two).is_none(), "a second session of the same user shares the cap");
        assert!(auth.still_valid(&one, now_ms()) && auth.still_valid(&two, now_ms()));
        let Principal::User(session) = &one else { panic!("a session") };
        auth.users.logout(session).unwrap();
        assert!(!auth.still_valid(&one, now_ms()), "logged out");
        assert!(auth.still_valid(&two, now_ms()));
        assert!(auth.users.delete(&acme, &user.id).unwrap());
        assert!(!auth.still_valid(&two, now_ms()), "user deleted");
    }
}

/// Whether `text` has the shape of a tenant id: `t_` and 16 lower-case hex digits.
pub fn looks_like_tenant_id(text: &str) -> bool {
    text.len() == 18 && text.starts_with("t_") && text[2..].bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}
