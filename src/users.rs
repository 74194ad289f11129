//! Tenant users and their sessions: passwords hashed with argon2id, sign-in
//! that hands out a short-lived JWT (HS256 pinned; `exp`, `iat`, `sub`,
//! tenant, role and session id checked), renewal, logout (the session is
//! revoked at once), and a slow-down after repeated failed sign-ins. Owns the
//! sled trees `users`, `user_ids` and `revoked_sessions`, and the signing key
//! file `jwt.key` (32 random bytes, mode 0600) in the data directory.
//!
//! It knows nothing of scopes; [`crate::auth`] maps roles to them.

use crate::auth::{AuthError, TenantId, now_ms};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a session token is valid by default (`--session-ttl`); renew before it runs out.
pub const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Failed sign-ins for one (tenant, email) before answers slow down.
const FREE_FAILURES: u32 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Editor,
    Viewer,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "editor" => Some(Role::Editor),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// What the role may do: `admin` everything, `editor` read and write, `viewer` read.
    pub fn scopes(self) -> &'static [crate::auth::Scope] {
        use crate::auth::Scope;
        match self {
            Role::Admin => &[Scope::Ingest, Scope::Read, Scope::Write, Scope::Admin],
            Role::Editor => &[Scope::Read, Scope::Write],
            Role::Viewer => &[Scope::Read],
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct UserRecord {
    id: String,
    tenant: String,
    email: String,
    role: Role,
    password_hash: String,
    created_unix_ms: u64,
}

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
            created_at: crate::signals::rfc3339(record.created_unix_ms),
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
}

/// A verified session.
#[derive(Clone, Debug)]
pub struct Session {
    pub tenant: TenantId,
    pub user_id: String,
    pub role: Role,
    pub session_id: String,
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
    #[error("storage error: {0}")]
    Store(#[from] sled::Error),
}

pub struct Users {
    users: sled::Tree,
    user_ids: sled::Tree,
    revoked: sled::Tree,
    db: sled::Db,
    encoding: EncodingKey,
    decoding: DecodingKey,
    failures: Mutex<HashMap<(String, String), (u32, Instant)>>,
    /// Verified against when the user does not exist, so timing tells nothing.
    dummy_hash: String,
    /// How long a session token lives.
    ttl: Duration,
}

fn user_key(tenant: &str, email: &str) -> Vec<u8> {
    let mut key = (tenant.len() as u32).to_be_bytes().to_vec();
    key.extend_from_slice(tenant.as_bytes());
    key.extend_from_slice(email.as_bytes());
    key
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
    /// `ttl`: how long a session token lives (renewal gives a new one).
    pub fn open(db: &sled::Db, dir: &Path, key_file: Option<&Path>, ttl: Duration) -> Result<Users, AuthError> {
        let key = signing_key(dir, key_file).map_err(|error| AuthError::Invalid(format!("JWT signing key: {error}")))?;
        Ok(Users {
            users: db.open_tree("users")?,
            user_ids: db.open_tree("user_ids")?,
            revoked: db.open_tree("revoked_sessions")?,
            db: db.clone(),
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            failures: Mutex::new(HashMap::new()),
            dummy_hash: hash_password("not a password anyone has"),
            ttl,
        })
    }

    pub fn create(&self, tenant: &TenantId, email: &str, password: &str, role: Role) -> Result<UserInfo, AuthError> {
        let email = email.to_ascii_lowercase();
        if email.len() > 254 || !email.contains('@') || email.chars().any(char::is_whitespace) {
            return Err(AuthError::Invalid("email must be an address".into()));
        }
        if password.chars().count() < 12 || password.len() > 1024 {
            return Err(AuthError::Invalid("password must be 12 to 1024 characters".into()));
        }
        let key = user_key(tenant.as_str(), &email);
        if self.users.get(&key)?.is_some() {
            return Err(AuthError::Conflict("a user with this email exists"));
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
        self.users.insert(&key, serde_json::to_vec(&record).expect("user serializes"))?;
        self.user_ids.insert(user_key(tenant.as_str(), &record.id), email.as_bytes())?;
        self.db.flush()?;
        Ok(UserInfo::from(&record))
    }

    pub fn list(&self, tenant: &TenantId) -> Result<Vec<UserInfo>, AuthError> {
        let mut prefix = (tenant.as_str().len() as u32).to_be_bytes().to_vec();
        prefix.extend_from_slice(tenant.as_str().as_bytes());
        let mut users = Vec::new();
        for entry in self.users.scan_prefix(&prefix) {
            let (_, value) = entry?;
            if let Ok(record) = serde_json::from_slice::<UserRecord>(&value) {
                users.push(UserInfo::from(&record));
            }
        }
        Ok(users)
    }

    /// Deletes a user of `tenant`; their sessions stop working at once.
    pub fn delete(&self, tenant: &TenantId, user_id: &str) -> Result<bool, AuthError> {
        let Some(email) = self.user_ids.remove(user_key(tenant.as_str(), user_id))? else { return Ok(false) };
        self.users.remove(user_key(tenant.as_str(), &String::from_utf8_lossy(&email)))?;
        self.db.flush()?;
        Ok(true)
    }

    fn exists(&self, tenant: &str, user_id: &str) -> Result<bool, AuthError> {
        Ok(self.user_ids.contains_key(user_key(tenant, user_id))?)
    }

    /// The email of a user of the tenant, if the user exists.
    pub fn email(&self, tenant: &str, user_id: &str) -> Result<Option<String>, AuthError> {
        Ok(self.user_ids.get(user_key(tenant, user_id))?.map(|email| String::from_utf8_lossy(&email).into_owned()))
    }

    /// Checks a password; repeated failures for one (tenant, email) are answered
    /// with [`LoginError::SlowDown`] for a time that doubles with each one.
    pub fn login(&self, tenant: &str, email: &str, password: &str) -> Result<Token, LoginError> {
        let email = email.to_ascii_lowercase();
        let attempt_key = (tenant.to_string(), email.clone());
        if let Some((count, last)) = self.failures.lock().unwrap_or_else(|poison| poison.into_inner()).get(&attempt_key).copied() {
            if count >= FREE_FAILURES {
                let wait = Duration::from_secs(1 << (count - FREE_FAILURES).min(10));
                let waited = last.elapsed();
                if waited < wait {
                    return Err(LoginError::SlowDown(wait - waited));
                }
            }
        }
        let record = self.users.get(user_key(tenant, &email))?.and_then(|value| serde_json::from_slice::<UserRecord>(&value).ok());
        let hash = record.as_ref().map_or(self.dummy_hash.as_str(), |record| record.password_hash.as_str());
        let verified =
            PasswordHash::new(hash).is_ok_and(|parsed| argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok());
        let (Some(record), true) = (record, verified) else {
            let mut failures = self.failures.lock().unwrap_or_else(|poison| poison.into_inner());
            let entry = failures.entry(attempt_key).or_insert((0, Instant::now()));
            *entry = (entry.0.saturating_add(1), Instant::now());
            return Err(LoginError::Invalid);
        };
        self.failures.lock().unwrap_or_else(|poison| poison.into_inner()).remove(&attempt_key);
        let mut session = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut session);
        Ok(self.token(&record.tenant, &record.id, record.role, &hex::encode(session), UserInfo::from(&record)))
    }

    fn token(&self, tenant: &str, user_id: &str, role: Role, session_id: &str, user: UserInfo) -> Token {
        let now = now_ms() / 1000;
        let exp = now + self.ttl.as_secs();
        let claims = Claims { sub: user_id.into(), tenant: tenant.into(), role, sid: session_id.into(), iat: now, exp };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing does not fail");
        Token { token, expires_at: crate::signals::rfc3339(exp * 1000), user }
    }

    /// Verifies a session token: signature (HS256 only), expiry, a known and
    /// unrevoked session, a user that still exists.
    pub fn verify(&self, token: &str) -> Result<Session, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|_| AuthError::Unknown)?.claims;
        if self.revoked.contains_key(claims.sid.as_bytes())? || !self.exists(&claims.tenant, &claims.sub)? {
            return Err(AuthError::Unknown);
        }
        Ok(Session { tenant: TenantId::trusted(&claims.tenant), user_id: claims.sub, role: claims.role, session_id: claims.sid })
    }

    /// A fresh token for the same session.
    pub fn renew(&self, session: &Session) -> Result<Token, AuthError> {
        let tenant = session.tenant.as_str();
        let email = self.email(tenant, &session.user_id)?.ok_or(AuthError::Unknown)?;
        let record: UserRecord =
            self.users.get(user_key(tenant, &email))?.and_then(|value| serde_json::from_slice(&value).ok()).ok_or(AuthError::Unknown)?;
        Ok(self.token(tenant, &record.id, record.role, &session.session_id, UserInfo::from(&record)))
    }

    /// Revokes the session: its tokens stop working at once.
    pub fn logout(&self, session: &Session) -> Result<(), AuthError> {
        let expires = (now_ms() + self.ttl.as_millis() as u64).to_be_bytes();
        self.revoked.insert(session.session_id.as_bytes(), &expires)?;
        self.db.flush()?;
        Ok(())
    }
}
