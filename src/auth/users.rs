//! Tenant users and their sessions: passwords hashed with argon2id, sign-in
//! that hands out a short-lived JWT (HS256 pinned; `exp`, `iat`, `sub`,
//! tenant, role and session id checked), renewal up to an absolute session
//! lifetime (the sign-in time travels in the `auth_time` claim), logout (the
//! session is revoked at once; the revocation is dropped once every token of
//! the session would have expired anyway), and a slow-down after repeated
//! failed sign-ins. Records live in [`crate::store::identity`]; it owns the
//! signing key file `jwt.key` (32 random bytes, mode 0600) in the data directory.
//!
//! Sign-in is open to anyone, so it is bounded before any hashing: field
//! lengths ([`MAX_EMAIL_BYTES`], [`MAX_PASSWORD_BYTES`], [`MAX_TENANT_BYTES`]),
//! at most `signin_concurrency` password checks at once (argon2id with the
//! default parameters takes 19 MiB each; beyond, [`LoginError::Busy`]), and a
//! failure record of bounded size ([`MAX_FAILURE_RECORDS`], forgotten after
//! [`FAILURE_MEMORY`]). Failures are counted per (tenant, email, client
//! network), so that one client's guessing slows down that client and not the
//! account's owner signing in from elsewhere.
//!
//! It knows nothing of scopes; [`crate::auth`] maps roles to them.

use super::{AuthError, IdentityLimits};
use crate::model::tenant::TenantId;

use crate::model::time::now_ms;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a session token is valid by default (`--session-ttl`); renew before it runs out.
pub const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a session can be renewed from its sign-in by default (`--session-max-lifetime`).
pub const SESSION_MAX_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Password checks at once by default (`--signin-concurrency`).
pub const SIGNIN_CONCURRENCY: usize = 4;
/// Users per tenant by default (`--max-users-per-tenant`).
pub const MAX_USERS_PER_TENANT: usize = 1000;
/// Failed sign-ins for one (tenant, email, client network) before answers slow down.
const FREE_FAILURES: u32 = 5;
/// The longest slow-down: 2^10 s, about 17 minutes.
const MAX_SLOW_DOWN: Duration = Duration::from_secs(1 << 10);
/// A failure record is forgotten this long after its last failure (longer than the longest slow-down).
pub const FAILURE_MEMORY: Duration = Duration::from_secs(3600);
/// At most this many failure records (32-byte digests, about 4 MiB); when full, expired
/// ones go first, then the oldest.
pub const MAX_FAILURE_RECORDS: usize = 65_536;
/// The longest email accepted at sign-in and creation (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// The longest password accepted at sign-in and creation.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest tenant id accepted at sign-in (ids are 18 characters).
pub const MAX_TENANT_BYTES: usize = 128;

pub use crate::model::tenant::Role;

use crate::store::identity::{IdentityStore, UserRecord};

/// A user as the API shows it: never the hash.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub created_at: String,
}

impl From<&UserRecord> for UserInfo {
    fn from(record: &UserRecord) -> UserInfo {
        UserInfo {
            id: record.id.clone(),
            email: record.email.clone(),
            role: record.role,
            created_at: crate::model::time::rfc3339(record.created_unix_ms),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    tenant: String,
    role: Role,
    sid: String,
    iat: u64,
    exp: u64,
    /// When the user signed in (seconds); renewals keep it (OpenID Connect's
    /// `auth_time`). Tokens from before it existed count from `iat`.
    #[serde(default)]
    auth_time: Option<u64>,
}

/// A verified session.
#[derive(Clone, Debug)]
pub struct Session {
    pub tenant: TenantId,
    pub user_id: String,
    pub role: Role,
    pub session_id: String,
    /// When the presented token expires (seconds since the epoch).
    pub expires_unix_s: u64,
    /// When the user signed in (seconds since the epoch).
    pub signed_in_unix_s: u64,
}

/// A signed-in session's token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Token {
    pub token: String,
    pub expires_at: String,
    pub user: UserInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid credentials")]
    Invalid,
    #[error("too many failed sign-ins; retry after {0:?}")]
    SlowDown(Duration),
    /// A field over its length limit; checked before anything else.
    #[error("{0}")]
    Malformed(&'static str),
    /// Every password-check slot is taken.
    #[error("too many sign-ins at once")]
    Busy,
    #[error("storage error: {0}")]
    Store(#[from] crate::store::StoreError),
}

pub struct Users {
    identity: Arc<dyn IdentityStore>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    failures: Mutex<Failures>,
    /// Password checks running now, at most `limits.signin_concurrency`.
    checks: AtomicUsize,
    /// Held while counting and adding a tenant's users, so the quota holds under concurrency.
    creating: Mutex<()>,
    /// Verified against when the user does not exist, so timing tells nothing.
    dummy_hash: String,
    limits: IdentityLimits,
}

/// Failed sign-ins by SHA-256 of (tenant, email, client network): fixed-size
/// keys whatever a client sends, at most [`MAX_FAILURE_RECORDS`] of them.
#[derive(Default)]
struct Failures {
    records: HashMap<[u8; 32], (u32, Instant)>,
}

impl Failures {
    /// How long the client must still wait, if it is being slowed down.
    fn wait(&self, key: &[u8; 32], now: Instant) -> Option<Duration> {
        let (count, last) = *self.records.get(key)?;
        if count < FREE_FAILURES {
            return None;
        }
        let wait = Duration::from_secs(1 << (count - FREE_FAILURES).min(10)).min(MAX_SLOW_DOWN);
        wait.checked_sub(now.saturating_duration_since(last)).filter(|left| !left.is_zero())
    }

    fn record(&mut self, key: [u8; 32], now: Instant) {
        if !self.records.contains_key(&key) && self.records.len() >= MAX_FAILURE_RECORDS {
            self.records.retain(|_, (_, last)| now.saturating_duration_since(*last) < FAILURE_MEMORY);
            if self.records.len() >= MAX_FAILURE_RECORDS {
                let oldest = self.records.iter().min_by_key(|(_, (_, last))| *last).map(|(key, _)| *key);
                if let Some(oldest) = oldest {
                    self.records.remove(&oldest);
                }
            }
        }
        let entry = self.records.entry(key).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= FAILURE_MEMORY {
            entry.0 = 0;
        }
        *entry = (entry.0.saturating_add(1), now);
    }
}

/// The network a sign-in comes from: the IPv4 address, or the /64 of an IPv6
/// one (a single client usually holds a whole /64). `None` when the transport
/// did not say: then every client shares one record per (tenant, email).
fn client_network(client: Option<IpAddr>) -> Option<IpAddr> {
    match client? {
        IpAddr::V4(v4) => Some(IpAddr::V4(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(IpAddr::V4(v4)),
            None => Some(IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into())),
        },
    }
}

fn failure_key(tenant: &str, email: &str, client: Option<IpAddr>) -> [u8; 32] {
    let mut digest = Sha256::new();
    for part in [tenant.as_bytes(), email.as_bytes()] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part);
    }
    match client_network(client) {
        Some(IpAddr::V4(v4)) => digest.update(v4.octets()),
        Some(IpAddr::V6(v6)) => digest.update(v6.octets()),
        None => {}
    }
    digest.finalize().into()
}

/// One password-check slot; freed on drop.
struct CheckSlot<'a>(&'a AtomicUsize);

impl Drop for CheckSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads the signing key from `key_file` (given in the configuration: it must
/// exist, hold at least 32 bytes and be readable by its owner only), or from
/// `<dir>/jwt.key`, which is created with mode 0600 at first start.
fn signing_key(dir: &Path, key_file: Option<&Path>) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(path) = key_file {
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(std::io::Error::other(format!("{} is readable by others (mode {:o}); chmod 600 it", path.display(), mode & 0o777)));
        }
        let key = std::fs::read(path)?;
        if key.len() < 32 {
            return Err(std::io::Error::other(format!("{} is shorter than 32 bytes", path.display())));
        }
        return Ok(key);
    }
    let path = dir.join("jwt.key");
    match std::fs::read(&path) {
        Ok(key) if key.len() >= 32 => Ok(key),
        Ok(_) => Err(std::io::Error::other(format!("{} is shorter than 32 bytes", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
            file.write_all(&key)?;
            file.sync_all()?;
            Ok(key)
        }
        Err(error) => Err(error),
    }
}

fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2id with default parameters").to_string()
}

impl Users {
    /// `limits`: session lifetimes, sign-in concurrency, the users quota.
    pub fn open(identity: Arc<dyn IdentityStore>, dir: &Path, key_file: Option<&Path>, limits: IdentityLimits) -> Result<Users, AuthError> {
        let key = signing_key(dir, key_file).map_err(|error| AuthError::Invalid(format!("JWT signing key: {error}")))?;
        Ok(Users {
            identity,
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            failures: Mutex::new(Failures::default()),
            checks: AtomicUsize::new(0),
            creating: Mutex::new(()),
            dummy_hash: hash_password("not a password anyone has"),
            limits,
        })
    }

    fn check_slot(&self) -> Option<CheckSlot<'_>> {
        let cap = self.limits.signin_concurrency.max(1);
        self.checks.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| (used < cap).then_some(used + 1)).ok()?;
        Some(CheckSlot(&self.checks))
    }

    pub fn create(&self, tenant: &TenantId, email: &str, password: &str, role: Role) -> Result<UserInfo, AuthError> {
        let email = email.to_ascii_lowercase();
        if email.len() > MAX_EMAIL_BYTES || !email.contains('@') || email.chars().any(char::is_whitespace) {
            return Err(AuthError::Invalid("email must be an address".into()));
        }
        if password.chars().count() < 12 || password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::Invalid("password must be 12 to 1024 characters".into()));
        }
        if self.identity.user(tenant.as_str(), &email)?.is_some() {
            return Err(AuthError::Conflict("a user with this email exists".into()));
        }
        let quota = self.limits.max_users_per_tenant;
        let _creating = self.creating.lock().unwrap_or_else(|poison| poison.into_inner());
        if self.identity.count_users(tenant, quota)? >= quota {
            return Err(AuthError::Conflict(format!("the tenant has {quota} users, its quota; delete one first")));
        }
        if self.identity.user(tenant.as_str(), &email)?.is_some() {
            return Err(AuthError::Conflict("a user with this email exists".into()));
        }
        let mut id = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
        let record = UserRecord {
            id: format!("u_{}", hex::encode(id)),
            tenant: tenant.as_str().into(),
            email: email.clone(),
            role,
            password_hash: hash_password(password),
            created_unix_ms: now_ms(),
        };
        self.identity.put_user(&record)?;
        Ok(UserInfo::from(&record))
    }

    pub fn list(&self, tenant: &TenantId) -> Result<Vec<UserInfo>, AuthError> {
        Ok(self.identity.users_of(tenant)?.iter().map(UserInfo::from).collect())
    }

    /// Deletes a user of `tenant`; their sessions stop working at once.
    pub fn delete(&self, tenant: &TenantId, user_id: &str) -> Result<bool, AuthError> {
        Ok(self.identity.remove_user(tenant, user_id)?)
    }

    fn exists(&self, tenant: &str, user_id: &str) -> Result<bool, AuthError> {
        Ok(self.identity.user_email(tenant, user_id)?.is_some())
    }

    /// The email of a user of the tenant, if the user exists.
    pub fn email(&self, tenant: &str, user_id: &str) -> Result<Option<String>, AuthError> {
        Ok(self.identity.user_email(tenant, user_id)?)
    }

    /// Checks a password. Fields over their length limits are refused before
    /// anything else; repeated failures for one (tenant, email) from one client
    /// network are answered with [`LoginError::SlowDown`] for a time that
    /// doubles with each one, without checking the password; beyond
    /// `signin_concurrency` checks at once, [`LoginError::Busy`]. `client` is
    /// the peer address, if the transport knows it.
    pub fn login(&self, tenant: &str, email: &str, password: &str, client: Option<IpAddr>) -> Result<Token, LoginError> {
        if tenant.len() > MAX_TENANT_BYTES {
            return Err(LoginError::Malformed("tenant must be at most 128 bytes"));
        }
        if email.len() > MAX_EMAIL_BYTES {
            return Err(LoginError::Malformed("email must be at most 254 bytes"));
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(LoginError::Malformed("password must be at most 1024 bytes"));
        }
        let email = email.to_ascii_lowercase();
        let attempt_key = failure_key(tenant, &email, client);
        // A tenant id, or else a tenant's name (ids never look like names: see `create_tenant`).
        let named = if super::looks_like_tenant_id(tenant) && self.identity.tenant_exists(tenant)? {
            None
        } else {
            self.identity.tenant_named(tenant)?
        };
        let tenant = named.as_deref().unwrap_or(tenant);
        if let Some(wait) = self.failures.lock().unwrap_or_else(|poison| poison.into_inner()).wait(&attempt_key, Instant::now()) {
            return Err(LoginError::SlowDown(wait));
        }
        let record = self.identity.user(tenant, &email)?;
        let hash = record.as_ref().map_or(self.dummy_hash.as_str(), |record| record.password_hash.as_str());
        let verified = {
            let _slot = self.check_slot().ok_or(LoginError::Busy)?;
            PasswordHash::new(hash).is_ok_and(|parsed| argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        };
        let (Some(record), true) = (record, verified) else {
            self.failures.lock().unwrap_or_else(|poison| poison.into_inner()).record(attempt_key, Instant::now());
            return Err(LoginError::Invalid);
        };
        self.failures.lock().unwrap_or_else(|poison| poison.into_inner()).records.remove(&attempt_key);
        let mut session = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut session);
        let now_s = now_ms() / 1000;
        Ok(self.token(&record.tenant, &record.id, record.role, &hex::encode(session), now_s, now_s, UserInfo::from(&record)))
    }

    /// The last second of a session that began at `signed_in_unix_s`.
    fn session_end(&self, signed_in_unix_s: u64) -> u64 {
        signed_in_unix_s.saturating_add(self.limits.session_max_lifetime.as_secs())
    }

    /// A token that lives `session_ttl`, but never past the session's absolute end.
    #[allow(clippy::too_many_arguments)]
    fn token(&self, tenant: &str, user_id: &str, role: Role, session_id: &str, now_s: u64, signed_in_s: u64, user: UserInfo) -> Token {
        let exp = now_s.saturating_add(self.limits.session_ttl.as_secs()).min(self.session_end(signed_in_s));
        let claims = Claims {
            sub: user_id.into(),
            tenant: tenant.into(),
            role,
            sid: session_id.into(),
            iat: now_s,
            exp,
            auth_time: Some(signed_in_s),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing does not fail");
        Token { token, expires_at: crate::model::time::rfc3339(exp.saturating_mul(1000)), user }
    }

    /// Verifies a session token: signature (HS256 only), expiry, the session's
    /// absolute lifetime, a known and unrevoked session, a user that still exists.
    pub fn verify(&self, token: &str) -> Result<Session, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|_| AuthError::Unknown)?.claims;
        let session = Session {
            tenant: TenantId::trusted(&claims.tenant),
            user_id: claims.sub,
            role: claims.role,
            session_id: claims.sid,
            expires_unix_s: claims.exp,
            signed_in_unix_s: claims.auth_time.unwrap_or(claims.iat),
        };
        if !self.still_valid(&session, now_ms())? {
            return Err(AuthError::Unknown);
        }
        Ok(session)
    }

    /// Whether a verified session still holds at `now_unix_ms`: its token has not
    /// expired, the session is within its absolute lifetime and not logged out,
    /// and the user exists. Long-lived responses (event streams) ask again.
    pub fn still_valid(&self, session: &Session, now_unix_ms: u64) -> Result<bool, AuthError> {
        let now_s = now_unix_ms / 1000;
        if now_s >= session.expires_unix_s || now_s >= self.session_end(session.signed_in_unix_s) {
            return Ok(false);
        }
        Ok(!self.identity.is_revoked(&session.session_id)? && self.exists(session.tenant.as_str(), &session.user_id)?)
    }

    /// A fresh token for the same session, valid until `--session-ttl` from now
    /// but not past `--session-max-lifetime` from the sign-in; refused after it.
    pub fn renew(&self, session: &Session) -> Result<Token, AuthError> {
        self.renew_at(session, now_ms())
    }

    fn renew_at(&self, session: &Session, now_unix_ms: u64) -> Result<Token, AuthError> {
        let now_s = now_unix_ms / 1000;
        if now_s >= self.session_end(session.signed_in_unix_s) {
            return Err(AuthError::Expired("the session reached its maximum lifetime; sign in again"));
        }
        let tenant = session.tenant.as_str();
        let email = self.email(tenant, &session.user_id)?.ok_or(AuthError::Unknown)?;
        let record = self.identity.user(tenant, &email)?.ok_or(AuthError::Unknown)?;
        Ok(self.token(tenant, &record.id, record.role, &session.session_id, now_s, session.signed_in_unix_s, UserInfo::from(&record)))
    }

    /// Revokes the session: its tokens stop working at once. The revocation is
    /// kept until every token of the session would have expired anyway.
    pub fn logout(&self, session: &Session) -> Result<(), AuthError> {
        let ttl_ms = u64::try_from(self.limits.session_ttl.as_millis()).unwrap_or(u64::MAX);
        let last_token_end = now_ms().saturating_add(ttl_ms).min(self.session_end(session.signed_in_unix_s).saturating_mul(1000));
        Ok(self.identity.revoke_session(&session.session_id, last_token_end)?)
    }

    /// Drops revocations whose session's tokens have all expired by `now_unix_ms`
    /// (their `exp` refuses them now); returns how many went.
    pub fn prune_revoked(&self, now_unix_ms: u64) -> Result<usize, AuthError> {
        Ok(self.identity.prune_revoked(now_unix_ms)?)
    }

    /// How many sessions are remembered as revoked.
    pub fn revoked_sessions(&self) -> usize {
        self.identity.revoked_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "correct horse battery";

    fn open(limits: IdentityLimits) -> (tempfile::TempDir, Users) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        let identity = Arc::new(crate::store::identity::SledIdentity::open(&db).unwrap());
        let users = Users::open(identity, dir.path(), None, limits).unwrap();
        (dir, users)
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn another_clients_failures_do_not_lock_the_owner_out() {
        let (_dir, users) = open(IdentityLimits::default());
        let tenant = TenantId::trusted("t_a");
        users.create(&tenant, "ed@example.com", PASSWORD, Role::Editor).unwrap();
        for _ in 0..FREE_FAILURES {
            assert!(matches!(users.login("t_a", "ed@example.com", "wrong password!!", ip("203.0.113.7")), Err(LoginError::Invalid)));
        }
        // The guessing client is slowed down, even when it guesses right: no oracle.
        assert!(matches!(users.login("t_a", "ed@example.com", PASSWORD, ip("203.0.113.7")), Err(LoginError::SlowDown(_))));
        // The owner, elsewhere, signs in; so does anyone from another /64.
        assert!(users.login("t_a", "ED@example.com", PASSWORD, ip("198.51.100.1")).is_ok());
        for _ in 0..FREE_FAILURES {
            let _ = users.login("t_a", "ed@example.com", "wrong password!!", ip("2001:db8:1:2::1"));
        }
        assert!(
            matches!(users.login("t_a", "ed@example.com", PASSWORD, ip("2001:db8:1:2::ffff")), Err(LoginError::SlowDown(_))),
            "same /64"
        );
        assert!(users.login("t_a", "ed@example.com", PASSWORD, ip("2001:db8:1:3::1")).is_ok(), "another /64");
        // Without a peer address every client shares one record, as before.
        for _ in 0..FREE_FAILURES {
            let _ = users.login("t_a", "ed@example.com", "wrong password!!", None);
        }
        assert!(matches!(users.login("t_a", "ed@example.com", PASSWORD, None), Err(LoginError::SlowDown(_))));
    }

    #[test]
    fn oversized_fields_are_refused_before_any_check_and_leave_no_record() {
        let (_dir, users) = open(IdentityLimits::default());
        let huge = "a".repeat(1 << 20);
        for (tenant, email, password) in [(huge.as_str(), "e@x", "p"), ("t_a", huge.as_str(), "p"), ("t_a", "e@x", huge.as_str())] {
            let started = Instant::now();
            assert!(matches!(users.login(tenant, email, password, ip("203.0.113.7")), Err(LoginError::Malformed(_))));
            assert!(started.elapsed() < Duration::from_millis(50), "no argon2 run: {:?}", started.elapsed());
        }
        assert!(users.failures.lock().unwrap().records.is_empty());
        let limit = "a".repeat(MAX_EMAIL_BYTES - 2) + "@x";
        assert!(matches!(users.login("t_a", &limit, "p", None), Err(LoginError::Invalid)), "at the limit: checked");
    }

    #[test]
    fn the_failure_record_is_bounded_and_forgets() {
        let mut failures = Failures::default();
        let start = Instant::now();
        for index in 0..(MAX_FAILURE_RECORDS + 100) as u64 {
            failures.record(failure_key("t_a", &index.to_string(), None), start + Duration::from_millis(index));
        }
        assert_eq!(failures.records.len(), MAX_FAILURE_RECORDS);
        assert!(!failures.records.contains_key(&failure_key("t_a", "0", None)), "the oldest went first");
        let key = failure_key("t_a", "victim", None);
        let now = start + Duration::from_secs(10);
        for _ in 0..FREE_FAILURES + 3 {
            failures.record(key, now);
        }
        assert_eq!(failures.wait(&key, now), Some(Duration::from_secs(8)));
        assert_eq!(failures.wait(&key, now + Duration::from_secs(8)), None, "the slow-down ends");
        failures.record(key, now + FAILURE_MEMORY);
        assert_eq!(failures.records[&key].0, 1, "counted afresh after FAILURE_MEMORY");
    }

    #[test]
    fn password_checks_beyond_the_cap_are_refused() {
        let (_dir, users) = open(IdentityLimits { signin_concurrency: 1, ..IdentityLimits::default() });
        let held = users.check_slot().unwrap();
        assert!(matches!(users.login("t_a", "ed@example.com", PASSWORD, None), Err(LoginError::Busy)));
        assert!(users.failures.lock().unwrap().records.is_empty(), "a refused check is not a failure");
        drop(held);
        assert!(matches!(users.login("t_a", "ed@example.com", PASSWORD, None), Err(LoginError::Invalid)));
    }

    #[test]
    fn sessions_end_at_their_absolute_lifetime_and_revocations_are_pruned() {
        let limits = IdentityLimits {
            session_ttl: Duration::from_secs(15 * 60),
            session_max_lifetime: Duration::from_secs(3600),
            ..IdentityLimits::default()
        };
        let (_dir, users) = open(limits);
        let tenant = TenantId::trusted("t_a");
        users.create(&tenant, "ed@example.com", PASSWORD, Role::Editor).unwrap();
        let token = users.login("t_a", "ed@example.com", PASSWORD, None).unwrap();
        let session = users.verify(&token.token).unwrap();
        let signed_in_ms = session.signed_in_unix_s * 1000;
        assert_eq!(session.expires_unix_s, session.signed_in_unix_s + 15 * 60);
        // Renewals carry the sign-in time; the last one ends at the lifetime, later ones are refused.
        let late = users.renew_at(&session, signed_in_ms + 50 * 60 * 1000).unwrap();
        let renewed = users.verify(&late.token).unwrap();
        assert_eq!(renewed.signed_in_unix_s, session.signed_in_unix_s);
        assert_eq!(renewed.expires_unix_s, session.signed_in_unix_s + 3600, "capped at the lifetime, not 15 minutes on");
        assert!(matches!(users.renew_at(&renewed, signed_in_ms + 3600 * 1000), Err(AuthError::Expired(_))));
        assert!(!users.still_valid(&renewed, signed_in_ms + 3600 * 1000).unwrap());
        assert!(users.still_valid(&renewed, signed_in_ms + 1000).unwrap());
        assert!(!users.still_valid(&session, signed_in_ms + 15 * 60 * 1000).unwrap(), "past the token's exp");

        users.logout(&session).unwrap();
        assert!(!users.still_valid(&session, signed_in_ms + 1000).unwrap(), "logged out");
        assert!(users.verify(&token.token).is_err());
        assert_eq!(users.prune_revoked(now_ms()).unwrap(), 0, "kept while a token of the session could be valid");
        assert_eq!(users.revoked_sessions(), 1);
        assert_eq!(users.prune_revoked(now_ms() + 15 * 60 * 1000 + 1000).unwrap(), 1, "dropped once every token expired");
        assert_eq!(users.revoked_sessions(), 0);
    }

    #[test]
    fn users_per_tenant_are_capped() {
        let (_dir, users) = open(IdentityLimits { max_users_per_tenant: 2, ..IdentityLimits::default() });
        let tenant = TenantId::trusted("t_a");
        users.create(&tenant, "a@example.com", PASSWORD, Role::Viewer).unwrap();
        let b = users.create(&tenant, "b@example.com", PASSWORD, Role::Viewer).unwrap();
        let refused = users.create(&tenant, "c@example.com", PASSWORD, Role::Viewer).unwrap_err();
        assert!(matches!(&refused, AuthError::Conflict(message) if message.contains("quota")), "{refused}");
        users.create(&TenantId::trusted("t_b"), "c@example.com", PASSWORD, Role::Viewer).unwrap();
        assert!(users.delete(&tenant, &b.id).unwrap());
        users.create(&tenant, "c@example.com", PASSWORD, Role::Viewer).unwrap();
    }
}
