//! The tenant id, the key of every tenant-owned record. Only [`crate::auth`]
//! (from a verified credential or the tenants tree) and the CLI (as the local
//! database's owner) make one; everything else receives it.

use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// A tenant's id, obtained only from a verified credential or the tenants tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TenantId(Arc<str>);

impl TenantId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An id that was verified: by [`crate::auth`] from a credential or the
    /// tenants tree, or by the CLI, which works on a local database as its owner.
    pub fn trusted(id: &str) -> TenantId {
        TenantId(id.into())
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
