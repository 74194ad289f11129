//! The web console's files (built from `web/` by Vite into `--web-dir`),
//! read once at start and served at `/` by the API listener: hashed assets
//! with a year's cache, every other path that is not a file gets
//! `index.html` (the console routes in the browser), text files gzip-compressed
//! once at start for clients that accept it, and every answer carries the
//! security headers (a CSP allowing only this origin, no framing).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Only this origin's scripts, styles, images and connections; no inline
/// script, no framing, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Files larger than this are not served (a built console is a few MiB).
const MAX_FILE: u64 = 16 << 20;

struct Asset {
    content_type: &'static str,
    bytes: axum::body::Bytes,
    /// The same bytes gzip-compressed, when that makes them smaller.
    gzipped: Option<axum::body::Bytes>,
}

fn gzip(bytes: &[u8]) -> Option<axum::body::Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    let compressed = encoder.finish().ok()?;
    (compressed.len() + 64 < bytes.len()).then(|| compressed.into())
}

/// The console's files, keyed by URL path (`/index.html`, `/assets/…`).
pub struct Console {
    dir: PathBuf,
    files: HashMap<String, Asset>,
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|extension| extension.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

impl Console {
    /// Reads every file under `dir`. A missing directory is not an error: the
    /// API works without the console, and `/` explains how to build it.
    pub fn load(dir: &Path) -> std::io::Result<Console> {
        let mut files = HashMap::new();
        if dir.is_dir() {
            let mut pending = vec![dir.to_path_buf()];
            while let Some(folder) = pending.pop() {
                for entry in std::fs::read_dir(&folder)? {
                    let entry = entry?;
                    let (path, kind) = (entry.path(), entry.file_type()?);
                    if kind.is_dir() {
                        pending.push(path);
                    } else if kind.is_file() && entry.metadata()?.len() <= MAX_FILE {
                        let relative = path.strip_prefix(dir).expect("under dir");
                        let url = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
                        let bytes = std::fs::read(&path)?;
                        let content_type = content_type(&path);
                        let compressible =
                            content_type.starts_with("text/") || content_type.contains("json") || content_type.contains("svg");
                        let gzipped = if compressible { gzip(&bytes) } else { None };
                        files.insert(url, Asset { content_type, bytes: bytes.into(), gzipped });
                    }
                }
            }
        }
        Ok(Console { dir: dir.to_path_buf(), files })
    }

    /// Whether the console was built (its `index.html` exists).
    pub fn is_built(&self) -> bool {
        self.files.contains_key("/index.html")
    }

    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// The answer for a GET of `path` (a path outside the API); gzip when
    /// `accepts_gzip` and it helps.
    pub fn serve(&self, path: &str, accepts_gzip: bool) -> Response {
        let last = path.rsplit('/').next().unwrap_or("");
        let (asset, cache) = match self.files.get(path) {
            Some(asset) if path.starts_with("/assets/") => (asset, "public, max-age=31536000, immutable"),
            Some(asset) => (asset, "no-cache"),
            // A path with an extension is a file that does not exist; any
            // other is a page of the console.
            None if last.contains('.') => return secured(not_found("no such file")),
            None => match self.files.get("/index.html") {
                Some(index) => (index, "no-cache"),
                None => return secured(self.not_built()),
            },
        };
        let gzipped = asset.gzipped.as_ref().filter(|_| accepts_gzip);
        let mut response = (StatusCode::OK, gzipped.unwrap_or(&asset.bytes).clone()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if gzipped.is_some() {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        secured(response)
    }

    fn not_built(&self) -> Response {
        let text = format!(
            "The FLUO console is not built: there is no index.html in {}.\n\
             Build it with `make build` (or `cd web && npm ci && npm run build`), or start fluo with --web-dir \
             pointing at a built console. The API is at /api/v1 (see /api/v1/openapi.json).\n",
            self.dir.display()
        );
        (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
    }
}

/// Whether `Accept-Encoding` allows gzip (not with `q=0`).
pub fn accepts_gzip(headers: &axum::http::HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|value| value.to_str().ok()).flat_map(|value| value.split(',')).any(
        |coding| {
            let mut parts = coding.split(';');
            let named = parts.next().is_some_and(|name| name.trim().eq_ignore_ascii_case("gzip"));
            named && !parts.any(|parameter| parameter.replace(' ', "") == "q=0")
        },
    )
}

fn not_found(message: &'static str) -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response()
}

fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    headers.insert("permissions-policy", HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console() -> (tempfile::TempDir, Console) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("index.html"), "<!doctype html><title>FLUO</title>").unwrap();
        std::fs::write(dir.path().join("assets/index-abc123.js"), "console.log(1)").unwrap();
        std::fs::write(dir.path().join("assets/big-def456.js"), "export const a = 1;\n".repeat(500)).unwrap();
        let console = Console::load(dir.path()).unwrap();
        (dir, console)
    }

    #[test]
    fn pages_get_index_files_get_themselves_and_every_answer_is_secured() {
        let (_dir, console) = console();
        assert!(console.is_built());
        let page = console.serve("/signals/abc", false);
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(page.headers()[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        let script = console.serve("/assets/index-abc123.js", true);
        assert_eq!(script.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert!(script.headers()[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
        assert_eq!(script.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(script.headers().get(header::CONTENT_ENCODING).is_none(), "a tiny file is sent as it is");
        let big = console.serve("/assets/big-def456.js", true);
        assert_eq!(big.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(console.serve("/assets/big-def456.js", false).headers().get(header::CONTENT_ENCODING).is_none(), "only when accepted");
        let missing = console.serve("/assets/other.js", false);
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.headers()[header::X_FRAME_OPTIONS], "DENY");
        // No way out of the directory: only files read at start are served.
        assert_eq!(console.serve("/../Cargo.toml", false).status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn gzip_only_when_the_client_accepts_it() {
        let headers = |value: &'static str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            headers
        };
        assert!(accepts_gzip(&headers("gzip, deflate, br")));
        assert!(accepts_gzip(&headers("br;q=1.0, GZIP;q=0.5")));
        assert!(!accepts_gzip(&headers("gzip;q=0, br")));
        assert!(!accepts_gzip(&headers("identity")));
        assert!(!accepts_gzip(&axum::http::HeaderMap::new()));
    }

    #[test]
    fn an_unbuilt_console_explains_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        let console = Console::load(&dir.path().join("missing")).unwrap();
        assert!(!console.is_built());
        let response = console.serve("/", true);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    }
}
