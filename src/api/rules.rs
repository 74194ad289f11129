//! Rule endpoints: create, update (a new immutable version each time), list,
//! get, versions, diff, activate any version (rollback), enable/disable,
//! delete. After every change the tenant's active rule set is rebuilt from the
//! store, reusing already loaded modules, and handed to the evaluator. Trying
//! rules out without storing them is in [`super::trying`].
//!
//! Every handler that reads or writes the store, diffs or compiles does it on
//! the blocking pool within a deadline ([`super::blocking`]); compiles take a
//! per-tenant fair slot ([`super::slots`]); a tenant's rules and a rule's
//! versions are capped ([`RuleQuotas`], 409 `quota_exceeded`).

use super::extract::{ApiJson, ApiPath, Authenticated, Read, Write};
use super::{ApiError, ApiState, COMPILE_DEADLINE, ErrorBody, Items, author_names, bad, blocking, blocking_within, compile_slot};
use crate::auth::Scope;
use crate::model::tenant::TenantId;
use crate::store::{RuleState, RuleVersion, rule_id};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The example source in the document (a complete rule).
pub(super) fn example_rule() -> &'static str {
    r#"export default rule({ name: "charge-needs-fraud-check", severity: "high", when: trace.has(s => s.name === "payment.charge_card"), expect: trace.has(s => s.name === "payment.fraud_check"), message: "payment charged without a fraud check" });"#
}

fn not_found() -> ApiError {
    ApiError::not_found("rule")
}

/// How much a tenant may store: rules, and versions per rule (versions are
/// immutable and kept until their rule is deleted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleQuotas {
    pub rules_per_tenant: usize,
    pub versions_per_rule: u32,
}

impl Default for RuleQuotas {
    fn default() -> RuleQuotas {
        RuleQuotas { rules_per_tenant: 500, versions_per_rule: 1000 }
    }
}

/// 409 `quota_exceeded` if storing a version of `name` would pass a quota.
fn check_quota(state: &ApiState, tenant: &TenantId, name: &str) -> Result<(), ApiError> {
    let quotas = state.rule_quotas;
    let rules = state.store.rules.list(tenant.as_str())?;
    let exceeded = |message: String| ApiError::new(StatusCode::CONFLICT, "quota_exceeded", message);
    match rules.iter().find(|rule| rule.name == name) {
        Some(rule) if rule.latest_version >= quotas.versions_per_rule => Err(exceeded(format!(
            "the rule has {} versions, the most a rule may have; delete it (or ask the operator to raise --max-versions-per-rule)",
            rule.latest_version
        ))),
        None if rules.len() >= quotas.rules_per_tenant => Err(exceeded(format!(
            "the tenant has {} rules, the most it may have; delete one (or ask the operator to raise --max-rules-per-tenant)",
            rules.len()
        ))),
        _ => Ok(()),
    }
}

/// A rule's state, and what its active version declares.
#[derive(Serialize, ToSchema)]
pub struct RuleInfo {
    id: String,
    name: String,
    /// The version that runs; 0 while the rule has only drafts.
    active_version: u32,
    latest_version: u32,
    /// Whether a draft is stored: a version saved with `draft: true` and not
    /// activated since (a rollback to an older version is not a draft).
    has_draft: bool,
    enabled: bool,
    created_at: String,
    updated_at: String,
    /// The active version's declared severity (the latest's, while there is none).
    severity: String,
    /// `pattern`, `check`, `rule` or `window`.
    form: String,
    /// The active version with its source (only on `GET /rules/{id}`, when there is one).
    #[serde(skip_serializing_if = "Option::is_none")]
    active: Option<VersionInfo>,
    /// The draft with its source (only on `GET /rules/{id}`, when there is one).
    #[serde(skip_serializing_if = "Option::is_none")]
    draft: Option<VersionInfo>,
    /// Calls, failures, fuel and signals since the server started (list and get only).
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<crate::pipeline::RuleCounters>,
    /// Occurrences of this rule's violations in the last 24 hours, from the
    /// occurrence series (list and get only).
    #[serde(skip_serializing_if = "Option::is_none")]
    occurrences_24h: Option<u64>,
}

impl RuleInfo {
    /// `shown` is the active version, or the latest while there is none.
    fn of(state: &RuleState, shown: &RuleVersion) -> RuleInfo {
        RuleInfo {
            id: state.id.clone(),
            name: state.name.clone(),
            active_version: state.active_version,
            latest_version: state.latest_version,
            has_draft: state.draft_version.is_some(),
            enabled: state.enabled,
            created_at: crate::model::time::rfc3339(state.created_unix_ms),
            updated_at: crate::model::time::rfc3339(state.updated_unix_ms),
            severity: shown.meta.severity.clone(),
            form: shown.meta.form.clone(),
            active: None,
            draft: None,
            stats: None,
            occurrences_24h: None,
        }
    }

    /// Adds the figures a rule list shows: counters since start and signals in the last 24 hours.
    fn with_stats(mut self, state: &ApiState, tenant: &TenantId, last_day: &std::collections::BTreeMap<String, u64>) -> RuleInfo {
        self.stats = Some(state.pipeline.counters.rule_counters(tenant, &self.id));
        self.occurrences_24h = Some(last_day.get(&self.id).copied().unwrap_or(0));
        self
    }
}

/// The version a rule's summary describes: the active one, or the latest
/// while the rule has only drafts.
fn shown_version(state: &ApiState, tenant: &TenantId, rule: &RuleState) -> Result<RuleVersion, ApiError> {
    Ok(find_version(state, tenant, rule, rule.shown_version())?.0)
}

/// The tenant's occurrences per rule over the last 24 hours (from counters, not a scan).
fn last_day(state: &ApiState, tenant: &TenantId) -> Result<std::collections::BTreeMap<String, u64>, ApiError> {
    let now = crate::model::time::now_ms();
    Ok(state.signals.rule_totals(tenant, now.saturating_sub(24 * 3600 * 1000), now + 1)?)
}

/// One immutable version.
#[derive(Serialize, ToSchema)]
pub struct VersionInfo {
    version: u32,
    message: Option<String>,
    /// The key or user that stored it.
    author: Option<String>,
    /// The author's current email (user) or `key <name>` (API key), if it still exists.
    author_name: Option<String>,
    created_at: String,
    /// The rule plugin it was compiled against.
    plugin_hash: String,
    form: String,
    severity: String,
    description: Option<String>,
    /// Only when one version is asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
}

impl VersionInfo {
    fn of(version: &RuleVersion, with_source: bool, names: &std::collections::HashMap<String, String>) -> VersionInfo {
        VersionInfo {
            version: version.version,
            message: version.message.clone(),
            author: version.author.clone(),
            author_name: version.author.as_ref().and_then(|author| names.get(author).cloned()),
            created_at: crate::model::time::rfc3339(version.created_unix_ms),
            plugin_hash: version.plugin_hash.clone(),
            form: version.meta.form.clone(),
            severity: version.meta.severity.clone(),
            description: version.meta.description.clone(),
            source: with_source.then(|| version.source.clone()),
        }
    }
}

/// Hands `tenant`'s changed rule set to the evaluator ([`crate::pipeline::active`]).
fn reload(state: &ApiState, tenant: &TenantId) -> Result<(), ApiError> {
    crate::pipeline::active::reload(&state.store, &state.engine, &state.pipeline, tenant).map_err(ApiError::internal)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// 1 to 128 printable characters; unique in the tenant. A source that
    /// declares `name:` must declare this one.
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\x00-\x1f\x7f-\x9f]*\S[^\x00-\x1f\x7f-\x9f]*$")]
    name: String,
    /// JavaScript, at most 128 KiB (see docs/rules.md).
    #[schema(max_length = 131072, example = example_rule)]
    source: String,
    /// Why this version (at most 1024 bytes).
    #[schema(max_length = 1024)]
    message: Option<String>,
    /// Store the version as a draft: it does not run until it is activated
    /// (`POST /rules/{id}/activate`); a new rule's draft leaves the rule
    /// without an active version. Default false: the version runs at once.
    #[serde(default)]
    draft: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    #[schema(max_length = 131072, example = example_rule)]
    source: String,
    #[schema(max_length = 1024)]
    message: Option<String>,
    /// As in `NewRule`: store without activating.
    #[serde(default)]
    draft: bool,
}

/// The version just stored.
#[derive(Serialize, ToSchema)]
pub struct RuleCreated {
    id: String,
    name: String,
    version: u32,
    /// Whether the version was made active (false for a draft).
    active: bool,
}

/// Compiles (in the tenant's compile slot), stores (flushed) and activates a
/// version. The quota is checked before compiling and again before storing:
/// the tenant's slot is held throughout, so its stores run one at a time.
async fn store_version(
    state: &ApiState,
    tenant: &TenantId,
    author: String,
    name: String,
    source: String,
    message: Option<String>,
    activate: bool,
) -> Result<Response, ApiError> {
    if message.as_ref().is_some_and(|message| message.len() > 1024) {
        return Err(bad("message must be at most 1024 bytes"));
    }
    let slot = compile_slot(state, tenant).await?;
    let (quota_state, quota_tenant, quota_name) = (state.clone(), tenant.clone(), name.clone());
    let slot = blocking(move || check_quota(&quota_state, &quota_tenant, &quota_name).map(|()| slot)).await?;
    let engine = state.engine.clone();
    // The slot moves into the work so that it is held until the work ends,
    // even when the client was already answered 503.
    let (compiled, source, slot) = blocking_within(COMPILE_DEADLINE, move || {
        Ok((crate::rules::compile::compile(&engine, &source).map(|(compiled, _)| compiled), source, slot))
    })
    .await?;
    let compiled = compiled.map_err(|error| ApiError::compile(&error))?;
    if let Some(declared) = compiled.meta.declared_name().filter(|declared| *declared != name) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name_mismatch",
            format!(
                "the source declares name {declared:?} but the rule is {name:?}: a rule has one name (change `name:` in the source, or save it as {declared:?})"
            ),
        ));
    }
    let (state_for_store, tenant_for_store, rule_name) = (state.clone(), tenant.clone(), name.clone());
    let version = blocking(move || {
        let _slot = slot;
        check_quota(&state_for_store, &tenant_for_store, &rule_name)?;
        let version = state_for_store.store.rules.push(
            tenant_for_store.as_str(),
            &rule_name,
            &source,
            compiled.meta.clone(),
            &compiled.plugin_hash,
            &compiled.wasm,
            message,
            Some(author),
            activate,
        )?;
        if activate {
            reload(&state_for_store, &tenant_for_store)?;
        }
        Ok(version)
    })
    .await?;
    let id = rule_id(tenant.as_str(), &name);
    Ok((StatusCode::CREATED, axum::Json(RuleCreated { id, name, version, active: activate })).into_response())
}

/// Creates a rule, or a new version of the rule with that name; it becomes
/// active at once, unless it is stored as a draft.
#[utoipa::path(post, path = "/api/v1/rules", operation_id = "create_rule", tag = "rules", request_body = NewRule, responses(
    (status = 201, description = "Stored (and active, unless a draft)", body = RuleCreated),
    (status = 409, description = "A quota is reached: rules per tenant, or versions of this rule (`quota_exceeded`)", body = ErrorBody),
    (status = 422, description = "The source does not compile (with line and column when known), or it declares another name than the rule's (`name_mismatch`)", body = ErrorBody),
    (status = 503, description = "Every compiler stayed busy, or compiling took too long (`busy`, with `Retry-After`)", body = ErrorBody)
))]
pub async fn create(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    ApiJson(request): ApiJson<NewRule>,
) -> Result<Response, ApiError> {
    let tenant = principal.tenant_with(Scope::Write)?.clone();
    if request.name.len() > 128 {
        return Err(bad("rule name must be 1 to 128 printable characters"));
    }
    let name = request.name.trim().to_string();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(bad("rule name must be 1 to 128 printable characters"));
    }
    store_version(&state, &tenant, principal.author(), name, request.source, request.message, !request.draft).await
}

/// A new immutable version of an existing rule; it becomes active, unless it
/// is stored as a draft.
#[utoipa::path(put, path = "/api/v1/rules/{id}", operation_id = "update_rule", tag = "rules", params(("id" = String, Path, description = "Rule id")),
    request_body = NewVersion, responses(
    (status = 201, description = "Stored (and active, unless a draft)", body = RuleCreated),
    (status = 404, description = "No such rule in this tenant", body = ErrorBody),
    (status = 409, description = "The rule has as many versions as it may have (`quota_exceeded`)", body = ErrorBody),
    (status = 422, description = "The source does not compile, or it declares another name than the rule's (`name_mismatch`)", body = ErrorBody),
    (status = 503, description = "Every compiler stayed busy, or compiling took too long (`busy`, with `Retry-After`)", body = ErrorBody)
))]
pub async fn update(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<NewVersion>,
) -> Result<Response, ApiError> {
    let tenant = principal.tenant_with(Scope::Write)?.clone();
    let (find_state, find_tenant) = (state.clone(), tenant.clone());
    let rule = blocking(move || find(&find_state, &find_tenant, &id)).await?;
    store_version(&state, &tenant, principal.author(), rule.name, request.source, request.message, !request.draft).await
}

/// The tenant's rules with their state.
#[utoipa::path(get, path = "/api/v1/rules", operation_id = "list_rules", tag = "rules", responses((status = 200, description = "Rules", body = Items<RuleInfo>)))]
pub async fn list(State(state): State<ApiState>, Read(tenant): Read) -> Result<Response, ApiError> {
    let items = blocking(move || {
        let last_day = last_day(&state, &tenant)?;
        let store = &state.store;
        let mut items = Vec::new();
        for rule in store.rules.list(tenant.as_str())? {
            if let Some((shown, _)) = store.rules.version(tenant.as_str(), &rule.name, rule.shown_version())? {
                items.push(RuleInfo::of(&rule, &shown).with_stats(&state, &tenant, &last_day));
            }
        }
        Ok(items)
    })
    .await?;
    Ok(axum::Json(Items { items }).into_response())
}

/// Finds a rule of the tenant by id, or 404.
pub(super) fn find(state: &ApiState, tenant: &TenantId, id: &str) -> Result<RuleState, ApiError> {
    state.store.rules.by_id(tenant.as_str(), id)?.ok_or_else(not_found)
}

/// One version of a rule, or 404.
/// A version named in a request body that the rule does not have: the
/// request is understood but cannot be applied (the rule itself exists).
pub(super) fn unknown_version(number: u32) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_version", format!("the rule has no version {number}"))
}

pub(super) fn find_version(state: &ApiState, tenant: &TenantId, rule: &RuleState, number: u32) -> Result<(RuleVersion, Vec<u8>), ApiError> {
    state.store.rules.version(tenant.as_str(), &rule.name, number)?.ok_or_else(|| ApiError::not_found("version"))
}

/// A rule with its active version's source.
#[utoipa::path(get, path = "/api/v1/rules/{id}", operation_id = "get_rule", tag = "rules", params(("id" = String, Path, description = "Rule id")), responses(
    (status = 200, description = "The rule", body = RuleInfo),
    (status = 404, description = "No such rule in this tenant", body = ErrorBody)
))]
pub async fn get_one(State(state): State<ApiState>, Read(tenant): Read, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    let info = blocking(move || {
        let rule = find(&state, &tenant, &id)?;
        let names = author_names(&state, &tenant)?;
        let mut info = RuleInfo::of(&rule, &shown_version(&state, &tenant, &rule)?);
        if rule.active_version > 0 {
            info.active = Some(VersionInfo::of(&find_version(&state, &tenant, &rule, rule.active_version)?.0, true, &names));
        }
        if let Some(draft) = rule.draft_version {
            info.draft = Some(VersionInfo::of(&find_version(&state, &tenant, &rule, draft)?.0, true, &names));
        }
        Ok(info.with_stats(&state, &tenant, &last_day(&state, &tenant)?))
    })
    .await?;
    Ok(axum::Json(info).into_response())
}

/// Every version of a rule, oldest first, without sources.
#[utoipa::path(get, path = "/api/v1/rules/{id}/versions", operation_id = "list_rule_versions", tag = "rules", params(("id" = String, Path, description = "Rule id")), responses(
    (status = 200, description = "Versions", body = Items<VersionInfo>),
    (status = 404, description = "No such rule in this tenant", body = ErrorBody)
))]
pub async fn versions(State(state): State<ApiState>, Read(tenant): Read, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    let items = blocking(move || {
        let rule = find(&state, &tenant, &id)?;
        let versions = state.store.rules.versions(tenant.as_str(), &rule.name)?;
        let names = author_names(&state, &tenant)?;
        Ok(versions.iter().map(|version| VersionInfo::of(version, false, &names)).collect::<Vec<VersionInfo>>())
    })
    .await?;
    Ok(axum::Json(Items { items }).into_response())
}

/// One version with its source.
#[utoipa::path(get, path = "/api/v1/rules/{id}/versions/{version}", operation_id = "get_rule_version", tag = "rules", params(
    ("id" = String, Path, description = "Rule id"), ("version" = i64, Path, description = "Version number", minimum = 1, maximum = 4294967295.0)
), responses(
    (status = 200, description = "The version", body = VersionInfo),
    (status = 404, description = "No such rule or version in this tenant", body = ErrorBody)
))]
pub async fn version(
    State(state): State<ApiState>,
    Read(tenant): Read,
    ApiPath((id, number)): ApiPath<(String, u32)>,
) -> Result<Response, ApiError> {
    let info = blocking(move || {
        let rule = find(&state, &tenant, &id)?;
        let (version, _) = find_version(&state, &tenant, &rule, number)?;
        Ok(VersionInfo::of(&version, true, &author_names(&state, &tenant)?))
    })
    .await?;
    Ok(axum::Json(info).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    #[param(value_type = i64, minimum = 1, maximum = 4294967295.0)]
    from: u32,
    #[param(value_type = i64, minimum = 1, maximum = 4294967295.0)]
    to: u32,
}

/// A unified diff of two versions' sources.
#[derive(Serialize, ToSchema)]
pub struct Diff {
    from: u32,
    to: u32,
    /// Unified diff, headed `v{from}` / `v{to}`; empty when the sources are equal.
    diff: String,
}

/// A unified diff of two versions' sources.
#[utoipa::path(get, path = "/api/v1/rules/{id}/diff", operation_id = "diff_rule_versions", tag = "rules", params(("id" = String, Path, description = "Rule id"), DiffQuery), responses(
    (status = 200, description = "The diff", body = Diff),
    (status = 404, description = "No such rule or version in this tenant", body = ErrorBody)
))]
pub async fn diff(
    State(state): State<ApiState>,
    Read(tenant): Read,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (Path(id), Query(DiffQuery { from, to })) = (id?, query?);
    let diff = blocking(move || {
        let rule = find(&state, &tenant, &id)?;
        let (old, _) = find_version(&state, &tenant, &rule, from)?;
        let (new, _) = find_version(&state, &tenant, &rule, to)?;
        Ok(unified_diff(&old.source, &new.source, from, to))
    })
    .await?;
    Ok(axum::Json(Diff { from, to, diff }).into_response())
}

/// How long the diff algorithm may search for the smallest diff; past it,
/// `similar` finishes with a larger (still correct) diff. Two unrelated
/// 128 KiB sources took seconds of CPU without it.
pub const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);

fn unified_diff(old: &str, new: &str, from: u32, to: u32) -> String {
    similar::TextDiff::configure()
        .algorithm(similar::Algorithm::Myers)
        .deadline(std::time::Instant::now() + DIFF_DEADLINE)
        .diff_lines(old, new)
        .unified_diff()
        .header(&format!("v{from}"), &format!("v{to}"))
        .to_string()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Activate {
    #[schema(value_type = i64, minimum = 1, maximum = 4294967295.0)]
    version: u32,
}

/// Makes any stored version the active one (rollback or roll forward).
#[utoipa::path(post, path = "/api/v1/rules/{id}/activate", operation_id = "activate_rule_version", tag = "rules", params(("id" = String, Path, description = "Rule id")),
    request_body = Activate, responses(
    (status = 200, description = "The rule after the change", body = RuleInfo),
    (status = 404, description = "No such rule in this tenant", body = ErrorBody),
    (status = 422, description = "The rule has no such version", body = ErrorBody)
))]
pub async fn activate(
    State(state): State<ApiState>,
    Write(tenant): Write,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<Activate>,
) -> Result<Response, ApiError> {
    let info = blocking(move || {
        let rule = find(&state, &tenant, &id)?;
        let rule =
            state.store.rules.activate(tenant.as_str(), &rule.name, request.version)?.ok_or_else(|| unknown_version(request.version))?;
        reload(&state, &tenant)?;
        Ok(RuleInfo::of(&rule, &shown_version(&state, &tenant, &rule)?))
    })
    .await?;
    Ok(axum::Json(info).into_response())
}

async fn set_enabled(state: ApiState, Write(tenant): Write, ApiPath(id): ApiPath<String>, enabled: bool) -> Result<Response, ApiError> {
    let info = blocking(move || {
        let rule = find(&state, &tenant, &id)?;
        let rule = state.store.rules.set_enabled(tenant.as_str(), &rule.name, enabled)?.ok_or_else(not_found)?;
        reload(&state, &tenant)?;
        Ok(RuleInfo::of(&rule, &shown_version(&state, &tenant, &rule)?))
    })
    .await?;
    Ok(axum::Json(info).into_response())
}

/// Turns a rule on: its active version checks new traces.
#[utoipa::path(post, path = "/api/v1/rules/{id}/enable", operation_id = "enable_rule", tag = "rules", params(("id" = String, Path, description = "Rule id")), responses(
    (status = 200, description = "The rule after the change", body = RuleInfo),
    (status = 404, description = "No such rule in this tenant", body = ErrorBody)
))]
pub async fn enable(State(state): State<ApiState>, caller: Write, id: ApiPath<String>) -> Result<Response, ApiError> {
    set_enabled(state, caller, id, true).await
}

/// Turns a rule off, keeping its versions and signals.
#[utoipa::path(post, path = "/api/v1/rules/{id}/disable", operation_id = "disable_rule", tag = "rules", params(("id" = String, Path, description = "Rule id")), responses(
    (status = 200, description = "The rule after the change", body = RuleInfo),
    (status = 404, description = "No such rule in this tenant", body = ErrorBody)
))]
pub async fn disable(State(state): State<ApiState>, caller: Write, id: ApiPath<String>) -> Result<Response, ApiError> {
    set_enabled(state, caller, id, false).await
}

/// Deletes a rule and its versions; its signals keep its name and version.
#[utoipa::path(delete, path = "/api/v1/rules/{id}", operation_id = "delete_rule", tag = "rules", params(("id" = String, Path, description = "Rule id")), responses(
    (status = 204, description = "Deleted"),
    (status = 404, description = "No such rule in this tenant", body = ErrorBody)
))]
pub async fn delete(State(state): State<ApiState>, Write(tenant): Write, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    blocking(move || {
        let rule = find(&state, &tenant, &id)?;
        state.store.rules.delete(tenant.as_str(), &rule.name)?;
        reload(&state, &tenant)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
