//! A group's own endpoints beside its record: its occurrences, its
//! occurrence series, assignment, snooze and pinned samples. Every change is made through the
//! signal store (compare-and-swap, flushed before the answer) and published
//! to the tenant's live stream as `event: update`.

use super::extract::{ApiJson, ApiPath, ApiQuery, Authenticated, Read};
use super::signals::with_author_names;
use super::{ApiError, ApiState, ErrorBody, bad, blocking, parse_time};
use crate::auth::Scope;
use crate::events::EventKind;
use crate::model::time::now_ms;
use crate::signals::{MAX_SNOOZE_MS, Signal, Until};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OccurrenceQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// A page of a signal's occurrences, newest first.
#[derive(Serialize, ToSchema)]
pub struct OccurrencePage {
    items: Vec<crate::signals::Occurrence>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// A signal's occurrences, newest first: each violating trace, when, which
/// rule version, its witness span ids.
#[utoipa::path(get, path = "/api/v1/signals/{id}/occurrences", operation_id = "list_signal_occurrences", tag = "signals",
    params(("id" = String, Path, description = "Signal id"), OccurrenceQuery), responses(
    (status = 200, description = "A page of occurrences", body = OccurrencePage),
    (status = 400, description = "Bad limit or cursor", body = ErrorBody),
    (status = 404, description = "No such signal in this tenant", body = ErrorBody)
))]
pub async fn occurrences(
    State(state): State<ApiState>,
    Read(tenant): Read,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<OccurrenceQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad("limit must be 1 to 500"));
    }
    let page = blocking(move || {
        state.signals.get(&tenant, &id)?.ok_or_else(|| ApiError::not_found("signal"))?;
        let (items, next_cursor) = state.signals.occurrences(&tenant, &id, query.cursor.as_deref(), limit)?;
        Ok(OccurrencePage { items, next_cursor })
    })
    .await?;
    Ok(axum::Json(page).into_response())
}

/// A group a handler changed: live consoles hear of it (`event: update`), and
/// the answer names the history's authors.
fn announced(state: &ApiState, tenant: &crate::model::tenant::TenantId, signal: Signal) -> Result<Signal, ApiError> {
    state.events.publish(tenant, EventKind::Updated, signal.clone());
    with_author_names(state, tenant, signal)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// From (inclusive): RFC 3339 or milliseconds since the epoch; default 24 hours before `until`.
    since: Option<String>,
    /// To (exclusive): RFC 3339 or milliseconds since the epoch; default now.
    until: Option<String>,
    /// Bucket width, 1 to 1440 minutes; default 60; at most 500 buckets.
    #[param(minimum = 1, maximum = 1440)]
    bucket_minutes: Option<u32>,
}

/// A group's occurrences per bucket.
#[derive(Serialize, ToSchema)]
pub struct Series {
    start_unix_ms: u64,
    bucket_ms: u64,
    /// Occurrences per bucket, oldest first.
    counts: Vec<u64>,
}

/// Checks a series' range and width: `(start, width, buckets)`.
pub(super) fn buckets(since: Option<u64>, until: Option<u64>, minutes: Option<u32>) -> Result<(u64, u64, usize), ApiError> {
    let minutes = minutes.unwrap_or(60);
    if !(1..=1440).contains(&minutes) {
        return Err(bad("bucket_minutes must be 1 to 1440"));
    }
    let end = until.unwrap_or_else(now_ms);
    let start = since.unwrap_or(end.saturating_sub(24 * 3_600_000));
    if start >= end {
        return Err(bad("since must be before until"));
    }
    let width = u64::from(minutes) * 60_000;
    let count = (end - start).div_ceil(width);
    if count > 500 {
        return Err(bad("at most 500 buckets: widen bucket_minutes or narrow since..until"));
    }
    Ok((start, width, count as usize))
}

/// A group's occurrences per time bucket (a window rule's group: its
/// violating windows), for its chart.
#[utoipa::path(get, path = "/api/v1/signals/{id}/series", operation_id = "get_signal_series", tag = "signals",
    params(("id" = String, Path, description = "Signal id"), SeriesQuery), responses(
    (status = 200, description = "Occurrences per bucket", body = Series),
    (status = 400, description = "Bad range or width", body = ErrorBody),
    (status = 404, description = "No such signal in this tenant", body = ErrorBody)
))]
pub async fn series(
    State(state): State<ApiState>,
    Read(tenant): Read,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<SeriesQuery>,
) -> Result<Response, ApiError> {
    let since = query.since.as_deref().map(|text| parse_time("since", text)).transpose()?;
    let until = query.until.as_deref().map(|text| parse_time("until", text)).transpose()?;
    let (start, width, count) = buckets(since, until, query.bucket_minutes)?;
    let series = blocking(move || {
        state.signals.get(&tenant, &id)?.ok_or_else(|| ApiError::not_found("signal"))?;
        let counts = state.signals.group_series(&tenant, &id, start, width, count)?;
        Ok(Series { start_unix_ms: start, bucket_ms: width, counts })
    })
    .await?;
    Ok(axum::Json(series).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// A user of the tenant, or null to assign the signal to nobody.
    #[schema(max_length = 128)]
    user_id: Option<String>,
}

/// Assigns a signal to a user of the tenant, or to nobody (kept in its history).
#[utoipa::path(post, path = "/api/v1/signals/{id}/assign", operation_id = "assign_signal", tag = "signals", params(("id" = String, Path, description = "Signal id")),
    request_body = AssignRequest, responses(
    (status = 200, description = "The signal after the change", body = Signal),
    (status = 404, description = "No such signal in this tenant", body = ErrorBody),
    (status = 422, description = "No such user in this tenant (`unknown_user`)", body = ErrorBody)
))]
pub async fn assign(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<AssignRequest>,
) -> Result<Response, ApiError> {
    let tenant = principal.tenant_with(Scope::Write)?.clone();
    let author = principal.author();
    let signal = blocking(move || {
        if let Some(user) = &request.user_id
            && (user.len() > 128 || state.auth.users.email(tenant.as_str(), user)?.is_none())
        {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_user", "no such user in this tenant"));
        }
        let signal =
            state.signals.assign(&tenant, &id, request.user_id.as_deref(), &author)?.ok_or_else(|| ApiError::not_found("signal"))?;
        announced(&state, &tenant, signal)
    })
    .await?;
    Ok(axum::Json(signal).into_response())
}

/// Until when a group sleeps: at most one of `for_minutes` and `until`, and/or
/// `occurrences`; none of them mutes the group until the snooze is lifted.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnoozeRequest {
    /// For this long (1 minute to 366 days).
    #[schema(minimum = 1, maximum = 527040)]
    for_minutes: Option<u64>,
    /// Until this time: RFC 3339 or milliseconds since the epoch, in the next 366 days.
    until: Option<String>,
    /// Until this many further occurrences (1 to 1,000,000,000).
    #[schema(minimum = 1, maximum = 1000000000)]
    occurrences: Option<u64>,
}

/// Snoozes an open or acknowledged group: it leaves the inbox (`?snoozed=false`)
/// and sends no rate notification until the time passes or the occurrences
/// come; then it is back, with a history entry and an `event: update` (and
/// the webhook event `signal.snooze_ended` when occurrences ended it).
#[utoipa::path(post, path = "/api/v1/signals/{id}/snooze", operation_id = "snooze_signal", tag = "signals", params(("id" = String, Path, description = "Signal id")),
    request_body = SnoozeRequest, responses(
    (status = 200, description = "The signal after the change", body = Signal),
    (status = 400, description = "Both for_minutes and until, or a value out of range", body = ErrorBody),
    (status = 404, description = "No such signal in this tenant", body = ErrorBody),
    (status = 409, description = "The group is resolved or a false positive (`invalid_transition`)", body = ErrorBody)
))]
pub async fn snooze(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<SnoozeRequest>,
) -> Result<Response, ApiError> {
    let tenant = principal.tenant_with(Scope::Write)?.clone();
    let author = principal.author();
    let now = now_ms();
    let time_ms = match (request.for_minutes, request.until.as_deref()) {
        (Some(_), Some(_)) => return Err(bad("give for_minutes or until, not both")),
        (Some(minutes), None) => {
            if !(1..=MAX_SNOOZE_MS / 60_000).contains(&minutes) {
                return Err(bad("for_minutes must be 1 to 527040 (366 days)"));
            }
            Some(now + minutes * 60_000)
        }
        (None, Some(text)) => {
            let until = parse_time("until", text)?;
            if until <= now || until - now > MAX_SNOOZE_MS {
                return Err(bad("until must be in the next 366 days"));
            }
            Some(until)
        }
        (None, None) => None,
    };
    if request.occurrences.is_some_and(|count| !(1..=1_000_000_000).contains(&count)) {
        return Err(bad("occurrences must be 1 to 1000000000"));
    }
    let until = Until { time_ms, more_occurrences: request.occurrences };
    let signal = blocking(move || {
        let signal = state.signals.snooze(&tenant, &id, until, &author)?.ok_or_else(|| ApiError::not_found("signal"))?;
        announced(&state, &tenant, signal)
    })
    .await?;
    Ok(axum::Json(signal).into_response())
}

/// Lifts a group's snooze (a group that is not snoozed is returned as it is).
#[utoipa::path(delete, path = "/api/v1/signals/{id}/snooze", operation_id = "unsnooze_signal", tag = "signals", params(("id" = String, Path, description = "Signal id")),
    responses(
    (status = 200, description = "The signal after the change", body = Signal),
    (status = 404, description = "No such signal in this tenant", body = ErrorBody)
))]
pub async fn unsnooze(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let tenant = principal.tenant_with(Scope::Write)?.clone();
    let author = principal.author();
    let signal = blocking(move || {
        let signal = state.signals.unsnooze(&tenant, &id, &author)?.ok_or_else(|| ApiError::not_found("signal"))?;
        announced(&state, &tenant, signal)
    })
    .await?;
    Ok(axum::Json(signal).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// One of the group's `samples`.
    #[schema(pattern = "^[0-9a-fA-F]{32}$")]
    trace_id: String,
}

/// Pins one of the group's sample traces: its snapshot stays, whatever
/// sampling and retention do, until it is unpinned (at most 10 per group).
#[utoipa::path(post, path = "/api/v1/signals/{id}/pins", operation_id = "pin_signal_sample", tag = "signals", params(("id" = String, Path, description = "Signal id")),
    request_body = PinRequest, responses(
    (status = 200, description = "The signal after the change", body = Signal),
    (status = 404, description = "No such signal in this tenant", body = ErrorBody),
    (status = 409, description = "The group has 10 pinned traces already", body = ErrorBody),
    (status = 422, description = "The trace is not one of the group's samples (`not_a_sample`)", body = ErrorBody)
))]
pub async fn pin(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<PinRequest>,
) -> Result<Response, ApiError> {
    let tenant = principal.tenant_with(Scope::Write)?.clone();
    if request.trace_id.len() != 32 || hex::decode(&request.trace_id).is_err() {
        return Err(bad("trace_id must be 32 hex digits"));
    }
    let signal = blocking(move || {
        let signal = state.signals.pin(&tenant, &id, &request.trace_id)?.ok_or_else(|| ApiError::not_found("signal"))?;
        announced(&state, &tenant, signal)
    })
    .await?;
    Ok(axum::Json(signal).into_response())
}

/// Unpins a trace; its snapshot goes unless it is still a sample.
#[utoipa::path(delete, path = "/api/v1/signals/{id}/pins/{trace_id}", operation_id = "unpin_signal_sample", tag = "signals",
    params(("id" = String, Path, description = "Signal id"), ("trace_id" = String, Path, description = "A pinned trace id")), responses(
    (status = 200, description = "The signal after the change", body = Signal),
    (status = 404, description = "No such signal in this tenant", body = ErrorBody)
))]
pub async fn unpin(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    ApiPath((id, trace_id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = principal.tenant_with(Scope::Write)?.clone();
    let signal = blocking(move || {
        let signal = state.signals.unpin(&tenant, &id, &trace_id)?.ok_or_else(|| ApiError::not_found("signal"))?;
        announced(&state, &tenant, signal)
    })
    .await?;
    Ok(axum::Json(signal).into_response())
}
