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

/// A tenant's own settings (`GET`/`PUT /api/v1/settings`); absent fields take
/// the server's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// A URL with `{trace_id}` (and optionally `{span_id}`, `{start_unix_ms}`,
    /// `{end_unix_ms}`, `{start_unix_s}`, `{end_unix_s}`): where the tenant's
    /// own trace backend shows a trace ([`trace_link`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_link_template: Option<String>,
    /// How long the tenant's evaluated traces are kept, in minutes (within
    /// the operator's maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_retention_minutes: Option<u32>,
}

/// The placeholders a trace-link template may use.
pub const TRACE_LINK_PLACEHOLDERS: [&str; 6] = ["trace_id", "span_id", "start_unix_ms", "end_unix_ms", "start_unix_s", "end_unix_s"];

/// The longest trace-link template.
pub const MAX_TRACE_LINK_BYTES: usize = 2048;

/// What a link is made for: a trace, optionally one of its spans, and the
/// time the spans cover (Unix ms).
pub struct LinkTarget<'a> {
    pub trace_id: &'a str,
    pub span_id: Option<&'a str>,
    pub start_unix_ms: u64,
    pub end_unix_ms: u64,
}

/// `template` with its placeholders filled in. Ids are hex and times are
/// numbers, so nothing needs escaping; a missing span id is empty.
pub fn trace_link(template: &str, target: &LinkTarget<'_>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let value = match &after[..close] {
                "trace_id" => target.trace_id.to_string(),
                "span_id" => target.span_id.unwrap_or_default().to_string(),
                "start_unix_ms" => target.start_unix_ms.to_string(),
                "end_unix_ms" => target.end_unix_ms.to_string(),
                "start_unix_s" => (target.start_unix_ms / 1000).to_string(),
                "end_unix_s" => target.end_unix_ms.div_ceil(1000).to_string(),
                _ => return None,
            };
            Some((value, close))
        });
        match value {
            Some((value, close)) => {
                out.push_str(&value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Why a trace-link template is refused, if it is: at most 2048 bytes, an
/// http(s) URL with a host once filled in, `{trace_id}` in it, and no
/// `{name}` that is not a placeholder (a typo would otherwise stay in every link).
pub fn check_trace_link_template(template: &str) -> Result<(), String> {
    if template.len() > MAX_TRACE_LINK_BYTES {
        return Err(format!("trace_link_template must be at most {MAX_TRACE_LINK_BYTES} bytes"));
    }
    if !template.contains("{trace_id}") {
        return Err("trace_link_template must contain {trace_id}".into());
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        if let Some(close) = after.find('}') {
            let name = &after[..close];
            let looks_like_one = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if looks_like_one && !TRACE_LINK_PLACEHOLDERS.contains(&name) {
                return Err(format!("trace_link_template: unknown placeholder {{{name}}}; known: {}", TRACE_LINK_PLACEHOLDERS.join(", ")));
            }
        }
        rest = after;
    }
    let sample =
        LinkTarget { trace_id: "0af7651916cd43dd8448eb211c80319c", span_id: Some("b7ad6b7169203331"), start_unix_ms: 1, end_unix_ms: 2 };
    let filled = trace_link(template, &sample);
    match filled.parse::<http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some_and(|host| !host.is_empty()) => Ok(()),
        _ => Err("trace_link_template must be an http or https URL with a host".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_links_fill_their_placeholders_and_templates_are_checked() {
        let target = LinkTarget { trace_id: "ab", span_id: None, start_unix_ms: 1_500, end_unix_ms: 2_001 };
        let jaeger = "https://jaeger.example/trace/{trace_id}?uiFind={span_id}";
        assert_eq!(trace_link(jaeger, &target), "https://jaeger.example/trace/ab?uiFind=");
        let honeycomb =
            "https://ui.honeycomb.io/t/environments/prod/trace?trace_id={trace_id}&trace_start_ts={start_unix_s}&trace_end_ts={end_unix_s}";
        assert_eq!(
            trace_link(honeycomb, &target),
            "https://ui.honeycomb.io/t/environments/prod/trace?trace_id=ab&trace_start_ts=1&trace_end_ts=3"
        );
        // Grafana Explore's state is URL-encoded JSON; a raw brace that is not a placeholder stays.
        let grafana = "https://grafana.example/explore?left=%7B%22queries%22:[%7B%22query%22:%22{trace_id}%22%7D],%22range%22:%7B%22from%22:%22{start_unix_ms}%22%7D%7D";
        assert!(check_trace_link_template(grafana).is_ok());
        assert!(trace_link(grafana, &target).contains("%22ab%22") && trace_link(grafana, &target).contains("%221500%22"));
        assert_eq!(trace_link("https://x/{trace_id}/{", &target), "https://x/ab/{");

        assert!(check_trace_link_template(jaeger).is_ok());
        assert!(check_trace_link_template(honeycomb).is_ok());
        assert!(check_trace_link_template("https://tempo.example/trace").unwrap_err().contains("{trace_id}"));
        assert!(check_trace_link_template("https://x/{trace_id}/{traceid}").unwrap_err().contains("unknown placeholder {traceid}"));
        assert!(check_trace_link_template("javascript:alert(1)//{trace_id}").is_err());
        assert!(check_trace_link_template("ftp://x/{trace_id}").is_err());
        assert!(check_trace_link_template("/relative/{trace_id}").is_err());
        assert!(check_trace_link_template(&format!("https://x/{{trace_id}}/{}", "a".repeat(2048))).is_err());
    }
}
