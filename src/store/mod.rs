//! The storage layer: one error type ([`StoreError`]), one key encoding
//! ([`key`]) and one interface per kind of record, each with its embedded sled
//! implementation: [`rules::RuleStore`] (rule versions and their modules) and
//! [`identity::IdentityStore`] (tenants, keys, users, revoked sessions).
//! Keys are tenant-prefixed and big-endian so that range scans stay within
//! one tenant and in order. Every acknowledged write is flushed.
//!
//! Signals and webhooks still open their own trees of the same database.
//! Recently evaluated traces ([`traces`]) are kept outside sled, in segment
//! files of checksummed frames ([`frames`], shared with the span log).
//! Must not know about wasm.
//!
//! The data directory holds session signing keys, webhook secrets and every
//! tenant's data: it is created with mode 0700, and an existing one that
//! others can read or enter is tightened to 0700 (logged), so the files sled
//! creates inside with the process umask stay out of other users' reach.

use std::path::Path;
use std::sync::Arc;

pub mod frames;
pub mod identity;
pub mod key;
pub mod rules;
pub mod traces;

pub use rules::{RuleState, RuleStore, RuleVersion, SledRules, rule_id};

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

/// The storage of one FLUO: one interface per kind of record, so that another
/// implementation can sit beside sled. Signals and webhooks still open their
/// own sled trees through `db` (see ARCHITECTURE.md).
pub struct Store {
    pub rules: Arc<dyn RuleStore>,
    pub identity: Arc<dyn identity::IdentityStore>,
    pub(crate) db: sled::Db,
    /// The data directory (the database and key files live in it).
    pub dir: std::path::PathBuf,
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
    /// Opens (or creates) the embedded sled database in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        private_dir(dir)?;
        let db = sled::open(dir.join("db")).map_err(|error| match error {
            sled::Error::Io(source) => StoreError::Io { what: format!("open sled database in {}", dir.display()), source },
            other => StoreError::Sled(other),
        })?;
        Ok(Store {
            rules: Arc::new(SledRules::open(&db)?),
            identity: Arc::new(identity::SledIdentity::open(&db)?),
            db,
            dir: dir.to_path_buf(),
        })
    }

    /// Makes every write so far durable (one fsync).
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
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
