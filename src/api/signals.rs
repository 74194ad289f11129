//! Signal endpoints: the filtered, paginated list and its counts, one signal,
//! its trace snapshot, the status workflow and the live stream (SSE).

use super::extract::{ApiJson, ApiPath, ApiQuery, Authenticated, Read};
use super::{ApiError, ApiState, ErrorBody, author_names, bad, blocking, parse_time, principal};
use crate::auth::Scope;
use crate::model::rule::Severity;
use crate::signals::{Counts, Filter, Signal, Status};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SignalQuery {
    /// A rule id or name.
    rule: Option<String>,
    /// The rule version that fired.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 4294967295.0)]
    version: Option<u32>,
    status: Option<Status>,
    severity: Option<Severity>,
    /// 32 hex digits.
    #[param(pattern = "^[0-9a-fA-F]{32}$")]
    trace_id: Option<String>,
    /// Last seen at or after: RFC 3339 or milliseconds since the epoch.
    since: Option<String>,
    /// First seen before: RFC 3339 or milliseconds since the epoch.
    until: Option<String>,
    /// Case-insensitive text in the message or the rule name.
    #[param(max_length = 256)]
    q: Option<String>,
    /// A user id: the signals assigned to that user; `none`: those assigned to nobody.
    #[param(max_length = 128)]
    assignee: Option<String>,
    /// `true`: snoozed groups only; `false`: those not snoozed (the inbox); absent: both.
    snoozed: Option<bool>,
    /// The list only: with `true`, each item's occurrences per hour over the
    /// last 24 hours come in `sparklines`.
    sparkline: Option<bool>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// `/signals/counts` only (the list refuses it): also count per bucket of
    /// this many minutes, from `since` (then required) to `until` (default:
    /// now), at most 500 buckets.
    #[param(minimum = 1, maximum = 1440)]
    bucket_minutes: Option<u32>,
}

impl SignalQuery {
    fn filter(self) -> Result<Filter, ApiError> {
        if let Some(trace_id) = &self.trace_id {
            if trace_id.len() != 32 || hex::decode(trace_id).is_err() {
                return Err(bad("trace_id must be 32 hex digits"));
            }
        }
        if self.q.as_ref().is_some_and(|text| text.len() > 256) {
            return Err(bad("q must be at most 256 bytes"));
        }
        if self.assignee.as_ref().is_some_and(|assignee| assignee.len() > 128) {
            return Err(bad("assignee must be at most 128 bytes"));
        }
        if self.version == Some(0) {
            return Err(bad("version must be at least 1"));
        }
        if self.limit.is_some_and(|limit| !(1..=500).contains(&limit)) {
            return Err(bad("limit must be 1 to 500"));
        }
        Ok(Filter {
            rule: self.rule,
            version: self.version,
            status: self.status,
            severity: self.severity,
            trace_id: self.trace_id,
            since_unix_ms: self.since.as_deref().map(|text| parse_time("since", text)).transpose()?,
            until_unix_ms: self.until.as_deref().map(|text| parse_time("until", text)).transpose()?,
            text: self.q.filter(|text| !text.is_empty()),
            assignee: self.assignee.map(|assignee| (assignee != "none").then_some(assignee)),
            snoozed: self.snoozed,
            cursor: self.cursor,
            limit: self.limit.unwrap_or(50),
        })
    }
}

/// A page of groups, last seen first.
#[derive(Serialize, ToSchema)]
pub struct SignalPage {
    items: Vec<Signal>,
    /// Pass as `cursor` for the next page; absent on the last page. A group
    /// seen again meanwhile moves to the top of the list.
    next_cursor: Option<String>,
    /// With `sparkline=true`: per item id, its occurrences in each of the
    /// last 24 hours (the current hour last).
    #[serde(skip_serializing_if = "Option::is_none")]
    sparklines: Option<std::collections::BTreeMap<String, Vec<u64>>>,
}

/// The tenant's groups, last seen first, filtered.
#[utoipa::path(get, path = "/api/v1/signals", operation_id = "list_signals", tag = "signals", params(SignalQuery), responses(
    (status = 200, description = "A page of signals", body = SignalPage)
))]
pub async fn list(State(state): State<ApiState>, Read(tenant): Read, ApiQuery(query): ApiQuery<SignalQuery>) -> Result<Response, ApiError> {
    if query.bucket_minutes.is_some() {
        return Err(bad("bucket_minutes applies to /api/v1/signals/counts only"));
    }
    if query.sparkline.is_some() && query.limit.is_some_and(|limit| limit > 100) {
        return Err(bad("sparkline=true allows at most limit=100"));
    }
    let sparkline = query.sparkline == Some(true);
    let filter = query.filter()?;
    let signals = state.signals.clone();
    let page = blocking(move || {
        let (items, next_cursor) = signals.list(&tenant, &filter)?;
        let sparklines = if sparkline {
            let hour = crate::signals::series::HOUR_MS;
            let start = (crate::model::time::now_ms() / hour - 23) * hour;
            let mut lines = std::collections::BTreeMap::new();
            for item in &items {
                lines.insert(item.id.clone(), signals.group_series(&tenant, &item.id, start, hour, 24)?);
            }
            Some(lines)
        } else {
            None
        };
        Ok(SignalPage { items, next_cursor, sparklines })
    })
    .await?;
    Ok(axum::Json(page).into_response())
}

/// Counts of the signals the same filters keep (cursor and limit ignored), by
/// severity, status and rule; with `bucket_minutes`, also per time bucket.
#[utoipa::path(get, path = "/api/v1/signals/counts", operation_id = "count_signals", tag = "signals", params(SignalQuery), responses(
    (status = 200, description = "Counts", body = Counts)
))]
pub async fn counts(
    State(state): State<ApiState>,
    Read(tenant): Read,
    ApiQuery(query): ApiQuery<SignalQuery>,
) -> Result<Response, ApiError> {
    if query.sparkline.is_some() {
        return Err(bad("sparkline applies to /api/v1/signals only"));
    }
    let bucket_minutes = query.bucket_minutes;
    let filter = query.filter()?;
    let buckets = match bucket_minutes {
        None => None,
        Some(minutes) => {
            if !(1..=1440).contains(&minutes) {
                return Err(bad("bucket_minutes must be 1 to 1440"));
            }
            let start = filter.since_unix_ms.ok_or_else(|| bad("bucket_minutes needs since"))?;
            let end = filter.until_unix_ms.unwrap_or_else(crate::model::time::now_ms);
            let width_ms = u64::from(minutes) * 60_000;
            let count = end.saturating_sub(start).div_ceil(width_ms);
            if count > 500 {
                return Err(bad("at most 500 buckets: widen bucket_minutes or narrow since..until"));
            }
            Some(crate::signals::Buckets { start_unix_ms: start, width_ms, count: count as usize })
        }
    };
    let signals = state.signals.clone();
    let counts = blocking(move || Ok(signals.counts(&tenant, &filter, buckets)?)).await?;
    Ok(axum::Json(counts).into_response())
}

/// One signal with its witnesses and status history.
#[utoipa::path(get, path = "/api/v1/signals/{id}", operation_id = "get_signal", tag = "signals", params(("id" = String, Path, description = "Signal id")), responses(
    (status = 200, description = "The signal", body = Signal),
    (status = 404, description = "No such signal in this tenant", body = ErrorBody)
))]
pub async fn get_one(State(state): State<ApiState>, Read(tenant): Read, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    let signal = blocking(move || match state.signals.get(&tenant, &id)? {
        Some(mut signal) => {
            signal.trace_url = state.auth.settings(&tenant)?.trace_link_template.map(|template| signal.trace_link(&template));
            with_author_names(&state, &tenant, signal)
        }
        None => Err(ApiError::not_found("signal")),
    })
    .await?;
    Ok(axum::Json(signal).into_response())
}

/// Fills in `author_name` in the status history (see [`author_names`]).
pub(super) fn with_author_names(state: &ApiState, tenant: &crate::model::tenant::TenantId, mut signal: Signal) -> Result<Signal, ApiError> {
    if signal.history.is_empty() {
        return Ok(signal);
    }
    let names = author_names(state, tenant)?;
    for change in &mut signal.history {
        change.author_name = names.get(&change.author).cloned();
    }
    Ok(signal)
}

pub(super) fn otlp_json(bytes: &[u8]) -> Result<Response, ApiError> {
    let request = <crate::model::otlp::ExportTraceServiceRequest as prost::Message>::decode(bytes).map_err(ApiError::internal)?;
    Ok(axum::Json(request).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TraceQuery {
    /// One of the group's `samples` or `pinned` traces (32 hex digits); default: the latest.
    #[param(pattern = "^[0-9a-fA-F]{32}$")]
    trace_id: Option<String>,
}

/// A sample trace of the group as it was when it violated the rule, as
/// OTLP/JSON: the latest, or with `trace_id` any of its `samples` (to compare
/// two occurrences). For a window rule's signal (which spans many traces): the
/// witness spans of the latest violating window, taken from the retained
/// traces (`--trace-retention`); 404 once none of them is retained (the signal
/// keeps its witnesses).
#[utoipa::path(get, path = "/api/v1/signals/{id}/trace", operation_id = "get_signal_trace", tag = "signals",
    params(("id" = String, Path, description = "Signal id"), TraceQuery), responses(
    (status = 200, description = "OTLP/JSON `ExportTraceServiceRequest`", body = Object),
    (status = 400, description = "trace_id is not 32 hex digits", body = ErrorBody),
    (status = 404, description = "No such signal in this tenant, a trace that is not one of its samples, or a window signal whose traces are no longer retained", body = ErrorBody)
))]
pub async fn trace(
    State(state): State<ApiState>,
    Read(tenant): Read,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<TraceQuery>,
) -> Result<Response, ApiError> {
    let mut wanted = None;
    if let Some(text) = &query.trace_id {
        let mut trace_id = [0u8; 16];
        hex::decode_to_slice(text, &mut trace_id).map_err(|_| bad("trace_id must be 32 hex digits"))?;
        wanted = Some((text.to_ascii_lowercase(), trace_id));
    }
    let snapshot = blocking(move || {
        let signal = state.signals.get(&tenant, &id)?.ok_or_else(|| ApiError::not_found("signal"))?;
        if let Some(window) = &signal.window {
            return window_spans(&state, &tenant, &signal, window);
        }
        let trace_id = match wanted {
            Some((text, trace_id)) if signal.samples.contains(&text) || signal.pinned.contains(&text) => trace_id,
            Some(_) => return Err(ApiError::not_found("sample")),
            None => {
                let mut trace_id = [0u8; 16];
                hex::decode_to_slice(&signal.trace_id, &mut trace_id).map_err(ApiError::internal)?;
                trace_id
            }
        };
        state.signals.snapshot(&tenant, &trace_id)?.ok_or_else(|| ApiError::not_found("signal"))
    })
    .await?;
    otlp_json(&snapshot)
}

/// A window signal's witness spans from the retained traces, as OTLP protobuf.
fn window_spans(
    state: &ApiState,
    tenant: &crate::model::tenant::TenantId,
    signal: &Signal,
    window: &crate::signals::WindowDetails,
) -> Result<Vec<u8>, ApiError> {
    let wanted: std::collections::HashSet<&str> = signal.span_ids.iter().map(String::as_str).collect();
    let mut spans = Vec::new();
    for trace_id in &window.trace_ids {
        let mut id = [0u8; 16];
        if hex::decode_to_slice(trace_id, &mut id).is_err() {
            continue;
        }
        let retained = state.recent.get(tenant, &id)?.unwrap_or_default();
        spans.extend(retained.into_iter().filter(|span| wanted.contains(hex::encode(span.span_id).as_str())));
    }
    if spans.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            "the window's traces are no longer retained; the signal's witnesses describe its spans",
        ));
    }
    spans.sort_by_key(|span| (span.start_unix_nano, span.span_id));
    Ok(prost::Message::encode_to_vec(&crate::model::otlp::to_otlp(&spans)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    status: Status,
    /// At most 4096 bytes.
    #[schema(max_length = 4096)]
    note: Option<String>,
}

/// Moves a signal through open → acknowledged → resolved / false_positive
/// (or back to open), keeping who, when and why in its history.
#[utoipa::path(post, path = "/api/v1/signals/{id}/status", operation_id = "set_signal_status", tag = "signals", params(("id" = String, Path, description = "Signal id")),
    request_body = StatusRequest, responses(
    (status = 200, description = "The signal after the change", body = Signal),
    (status = 404, description = "No such signal in this tenant", body = ErrorBody),
    (status = 409, description = "Not a transition the workflow allows", body = ErrorBody)
))]
pub async fn set_status(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<StatusRequest>,
) -> Result<Response, ApiError> {
    let tenant = principal.tenant_with(Scope::Write)?.clone();
    let note = request.note.unwrap_or_default();
    if note.len() > 4096 {
        return Err(bad("note must be at most 4096 bytes"));
    }
    let author = principal.author();
    let signal = blocking(move || match state.signals.set_status(&tenant, &id, request.status, &note, &author)? {
        Some(signal) => {
            // Live consoles of this tenant see the change.
            state.events.publish(&tenant, crate::events::EventKind::StatusChanged, signal.clone());
            with_author_names(&state, &tenant, signal)
        }
        None => Err(ApiError::not_found("signal")),
    })
    .await?;
    Ok(axum::Json(signal).into_response())
}

/// How often a live stream re-checks its credential (also before each event).
pub const STREAM_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The tenant's signals as Server-Sent Events: `event: signal` for each new
/// one once it is on disk, `event: status` for each status change made through
/// the API (the signal after the change); the data is the signal as JSON, the
/// event id its id. A client too slow to keep up gets `event: lagged` with how
/// many of its own tenant's events it missed, and should re-read the list.
/// The credential is checked again every 2 seconds and before each event: once
/// it is revoked, logged out, expired or its user deleted, the stream sends
/// `event: end` (data `credential_invalid`) and closes. At most
/// `--streams-per-credential` (default 8) streams per key or user at once
/// (429 `too_many_streams` beyond).
#[utoipa::path(get, path = "/api/v1/signals/stream", operation_id = "stream_signals", tag = "signals", responses(
    (status = 200, description = "An endless `text/event-stream`", body = String, content_type = "text/event-stream"),
    (status = 429, description = "This credential already holds its maximum of live streams (`--streams-per-credential`)", body = ErrorBody)
))]
pub async fn stream(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    use crate::events::{Event as HubEvent, EventKind};
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio::sync::broadcast::error::RecvError;
    struct Listening {
        events: tokio::sync::broadcast::Receiver<std::sync::Arc<HubEvent>>,
        shutdown: tokio::sync::watch::Receiver<bool>,
        recheck: tokio::time::Interval,
        tenant: crate::model::tenant::TenantId,
        state: ApiState,
        /// The request's own credential, checked again while streaming.
        headers: HeaderMap,
        ended: bool,
        _permit: crate::auth::StreamPermit,
    }
    impl Listening {
        /// Whether the credential still reads this tenant (revocation, logout,
        /// user deletion and expiry all end it).
        async fn still_valid(&self) -> bool {
            let (state, headers, tenant) = (self.state.clone(), self.headers.clone(), self.tenant.clone());
            blocking(move || Ok(principal(&state, &headers).ok().and_then(|p| p.tenant_with(Scope::Read).ok().cloned()) == Some(tenant)))
                .await
                .unwrap_or(false)
        }
    }
    let principal = principal(&state, &headers)?;
    let tenant = principal.tenant_with(Scope::Read)?.clone();
    let permit = state.auth.streams.try_acquire(&principal).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!("this credential already holds {} live streams", state.auth.streams.cap()),
        )
    })?;
    let mut recheck = tokio::time::interval(STREAM_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.reset();
    let mut kept = HeaderMap::new();
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        kept.insert(axum::http::header::AUTHORIZATION, value.clone());
    }
    let listening = Listening {
        events: state.events.subscribe(&tenant),
        shutdown: state.shutdown.clone(),
        recheck,
        tenant,
        state: state.clone(),
        headers: kept,
        ended: false,
        _permit: permit,
    };
    let end = || Event::default().event("end").data("credential_invalid");
    let stream = futures::stream::unfold(listening, move |mut listening| async move {
        if listening.ended {
            return None;
        }
        loop {
            let event = tokio::select! {
                _ = listening.shutdown.changed() => return None,
                _ = listening.recheck.tick() => {
                    if !listening.still_valid().await {
                        listening.ended = true;
                        return Some((Ok::<_, std::convert::Infallible>(end()), listening));
                    }
                    continue;
                }
                event = listening.events.recv() => event,
            };
            match event {
                Ok(event) => {
                    if !listening.still_valid().await {
                        listening.ended = true;
                        return Some((Ok(end()), listening));
                    }
                    let kind = match event.kind {
                        EventKind::Created => "signal",
                        EventKind::StatusChanged => "status",
                        EventKind::Regressed => "regression",
                        EventKind::SnoozeEnded | EventKind::Updated => "update",
                        // Never published to streams.
                        EventKind::Counted => continue,
                    };
                    let data = serde_json::to_string(&event.signal).unwrap_or_default();
                    let item = Event::default().event(kind).id(event.signal.id.clone()).data(data);
                    return Some((Ok(item), listening));
                }
                Err(RecvError::Lagged(missed)) => {
                    let item = Event::default().event("lagged").data(missed.to_string());
                    return Some((Ok(item), listening));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
