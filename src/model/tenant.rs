//! The tenant id, the key of every tenant-owned record, and what a
//! credential of the tenant may do (scopes, user roles). Only [`crate::auth`]
//! (from a verified credential or the tenants tree) and the CLI (as the local
//! database's owner) make one; everything else receives it.

use serde::{Deserialize, Serialize};
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

/// What an API key may do.
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

/// A user's role, which stands for a set of scopes.
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
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Role::Admin => &[Scope::Ingest, Scope::Read, Scope::Write, Scope::Admin],
            Role::Editor => &[Scope::Read, Scope::Write],
            Role::Viewer => &[Scope::Read],
        }
    }
}
