//! `fluo rules apply DIR`: rules as code. Makes a tenant's rules on a running
//! server match a directory (`NAME.js`, one rule each, named by its file)
//! through the API, with the key in `FLUO_API_KEY`. Every file is compiled by
//! the server before anything changes; `--dry-run` prints the plan only.
//!
//! Exit codes: 0 applied, or nothing to change; 1 `--dry-run` found changes
//! to make; 2 a rule is invalid (does not compile, or its source declares
//! another name than its file's); 3 the directory, a file or the key is
//! missing; 4 the API refused a request or could not be reached.

use super::suite::{rule_files, rule_name};
use clap::Args;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ApplyArgs {
    /// The directory of rules: each `NAME.js` is the rule NAME.
    pub dir: PathBuf,
    /// The FLUO API.
    #[arg(long, env = "FLUO_API", default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Print the plan (create, update, unchanged, delete) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete the tenant's rules that have no file in the directory.
    #[arg(long)]
    pub prune: bool,
    /// Store new versions as drafts: they do not run until activated.
    #[arg(long)]
    pub draft: bool,
    /// The message stored with each new version (at most 1024 bytes).
    #[arg(long)]
    pub message: Option<String>,
    /// Extra CA certificates (PEM) to trust for an https API.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

/// What the key may not be given as: an argument shows in `ps`.
const KEY_VARIABLE: &str = "FLUO_API_KEY";

/// Largest API answer read (a rule list with sources stays far below).
const MAX_ANSWER_BYTES: usize = 32 << 20;

/// A failure and the exit code it calls for.
struct Stop(u8, String);

/// One step of the plan.
#[derive(Debug, PartialEq)]
enum Step {
    Create {
        name: String,
        source: String,
    },
    Update {
        name: String,
        id: String,
        source: String,
        from: u32,
    },
    Unchanged {
        name: String,
    },
    Delete {
        name: String,
        id: String,
    },
    /// On the server, not in the directory, and `--prune` not given.
    Keep {
        name: String,
    },
}

pub fn run(args: ApplyArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start: {error}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(apply(args)) {
        Ok(code) => ExitCode::from(code),
        Err(Stop(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

struct Api {
    client: crate::webhooks::tls::Client,
    base: String,
    key: String,
}

impl Api {
    /// Calls the API; `Ok` with the status and the JSON answer (null if none).
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value), Stop> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json")
            .body(body.map(|body| body.to_string()).unwrap_or_default())
            .map_err(|error| Stop(3, format!("{}: {error}", self.base)))?;
        let response = self.client.request(request).await.map_err(|error| Stop(4, format!("{method} {}{path}: {error:?}", self.base)))?;
        let status = response.status().as_u16();
        let bytes = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|error| Stop(4, format!("{method} {path}: reading the answer: {error}")))?
            .to_bytes();
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// Like [`Api::call`], but any status other than `expected` stops the run.
    async fn expect(&self, method: &str, path: &str, body: Option<Value>, expected: u16) -> Result<Value, Stop> {
        let (status, answer) = self.call(method, path, body).await?;
        if status != expected {
            let reason = answer["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| answer.to_string());
            return Err(Stop(4, format!("{method} {path} answered {status}: {reason}")));
        }
        Ok(answer)
    }
}

async fn apply(args: ApplyArgs) -> Result<u8, Stop> {
    let key = std::env::var(KEY_VARIABLE)
        .ok()
        .filter(|key| !key.is_empty())
        .ok_or_else(|| Stop(3, format!("set {KEY_VARIABLE} to an API key with the write scope (a read key cannot change rules)")))?;
    let mut files = Vec::new();
    for path in rule_files(&args.dir).map_err(|error| Stop(3, format!("{}: {error}", args.dir.display())))? {
        let source = std::fs::read_to_string(&path).map_err(|error| Stop(3, format!("{}: {error}", path.display())))?;
        files.push((rule_name(&path), path, source));
    }
    let client = crate::webhooks::tls::client(true, args.ca_file.as_deref()).map_err(|error| Stop(3, error))?;
    let api = Api { client, base: args.api.trim_end_matches('/').to_string(), key };

    // Every file is checked by the server before anything changes.
    let mut invalid = 0;
    for (name, path, source) in &files {
        let report = api.expect("POST", "/api/v1/rules/compile", Some(json!({ "source": source })), 200).await?;
        if report["compiles"] != true {
            let error = &report["error"];
            let place = match (error["line"].as_u64(), error["column"].as_u64()) {
                (Some(line), Some(column)) => format!(":{line}:{column}"),
                _ => String::new(),
            };
            eprintln!("{}{place}: does not compile: {}", path.display(), error["message"].as_str().unwrap_or("?"));
            invalid += 1;
        } else if let Some(declared) =
            report["rule"]["name"].as_str().filter(|declared| declared != name && report["rule"]["form"] != "check")
        {
            eprintln!("{}: the source declares name \"{declared}\"; a rule has one name: rename the file or the name", path.display());
            invalid += 1;
        }
    }
    if invalid > 0 {
        return Err(Stop(2, format!("{invalid} rule(s) invalid; nothing was changed")));
    }

    let listed = api.expect("GET", "/api/v1/rules", None, 200).await?;
    let mut server: Vec<(String, String)> = listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|rule| Some((rule["name"].as_str()?.to_string(), rule["id"].as_str()?.to_string())))
        .collect();
    server.sort();
    let mut plan = Vec::new();
    for (name, _, source) in files {
        match server.iter().find(|(existing, _)| *existing == name) {
            None => plan.push(Step::Create { name, source }),
            Some((_, id)) => {
                let rule = api.expect("GET", &format!("/api/v1/rules/{id}"), None, 200).await?;
                // A draft counts as the latest source when drafts are applied.
                let current = if args.draft && rule["draft"].is_object() { &rule["draft"] } else { &rule["active"] };
                if current["source"].as_str() == Some(source.as_str()) {
                    plan.push(Step::Unchanged { name });
                } else {
                    let from = rule["latest_version"].as_u64().unwrap_or(0) as u32;
                    plan.push(Step::Update { name, id: id.clone(), source, from });
                }
            }
        }
    }
    for (name, id) in server {
        if !plan.iter().any(|step| step.name() == name) {
            plan.push(if args.prune { Step::Delete { name, id } } else { Step::Keep { name } });
        }
    }
    let changes = plan.iter().filter(|step| step.changes()).count();
    for step in &plan {
        println!("{}", step.describe(args.draft));
    }
    if args.dry_run {
        println!("{changes} change(s) to make{}", if changes > 0 { "; run without --dry-run to apply" } else { "" });
        return Ok(if changes > 0 { 1 } else { 0 });
    }
    let message = args.message.clone();
    for step in &plan {
        match step {
            Step::Create { name, source } => {
                let body = json!({ "name": name, "source": source, "message": message, "draft": args.draft });
                api.expect("POST", "/api/v1/rules", Some(body), 201).await?;
            }
            Step::Update { id, source, .. } => {
                let body = json!({ "source": source, "message": message, "draft": args.draft });
                api.expect("PUT", &format!("/api/v1/rules/{id}"), Some(body), 201).await?;
            }
            Step::Delete { id, .. } => {
                api.expect("DELETE", &format!("/api/v1/rules/{id}"), None, 204).await?;
            }
            Step::Unchanged { .. } | Step::Keep { .. } => {}
        }
    }
    println!("applied {changes} change(s)");
    Ok(0)
}

impl Step {
    fn name(&self) -> &str {
        match self {
            Step::Create { name, .. }
            | Step::Update { name, .. }
            | Step::Unchanged { name }
            | Step::Delete { name, .. }
            | Step::Keep { name } => name,
        }
    }

    fn changes(&self) -> bool {
        matches!(self, Step::Create { .. } | Step::Update { .. } | Step::Delete { .. })
    }

    fn describe(&self, draft: bool) -> String {
        let what = if draft { "draft" } else { "version" };
        match self {
            Step::Create { name, .. } => format!("create     {name}  (new rule, {what} 1)"),
            Step::Update { name, from, .. } => format!("update     {name}  (new {what} {})", from + 1),
            Step::Unchanged { name } => format!("unchanged  {name}"),
            Step::Delete { name, .. } => format!("delete     {name}  (not in the directory; --prune)"),
            Step::Keep { name } => format!("keep       {name}  (not in the directory; --prune would delete it)"),
        }
    }
}
