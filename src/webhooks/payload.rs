//! What each kind of channel receives for a group event: FLUO's own versioned
//! body (generic), a Slack incoming-webhook message, a PagerDuty Events API v2
//! event (one incident per group: its dedup key is the group id), or a list of
//! alerts for the Prometheus Alertmanager API v2 (one alert per group,
//! identified by its labels), or an OTLP log record (OTLP/HTTP JSON, with the
//! group's trace and span ids, so a tracing backend links it to the trace).
//! Every body carries the group's console link.

use crate::model::rule::Severity;
use crate::model::time::{now_ms, rfc3339};
use crate::signals::{Signal, Status};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The version of the generic body (`"version"` in it).
pub const GENERIC_VERSION: u32 = 1;

/// PagerDuty's limit on `payload.summary`.
const PAGERDUTY_SUMMARY_MAX: usize = 1024;

/// Slack's limit on a section block's text.
const SLACK_SECTION_MAX: usize = 3000;

/// What a channel is and so which body it gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// FLUO's own JSON body, signed with HMAC-SHA256.
    #[default]
    Generic,
    /// A Slack incoming webhook (`https://hooks.slack.com/services/…`).
    Slack,
    /// PagerDuty Events API v2 (`https://events.pagerduty.com/v2/enqueue`); needs a routing key.
    Pagerduty,
    /// A Prometheus Alertmanager (its base URL; FLUO posts to `/api/v2/alerts`).
    Alertmanager,
    /// An OTLP/HTTP logs endpoint (its base URL; FLUO posts JSON to `/v1/logs`):
    /// each event is a log record in the tenant's own telemetry.
    Otlp,
}

/// One event about one group, as every channel kind is told of it.
pub struct Event<'a> {
    /// `signal.created`, `signal.regressed`, `signal.status_changed`, `signal.resolved`,
    /// `signal.snooze_ended`, `signal.rate_exceeded`, `signal.reminder` or `signal.test`.
    pub kind: &'a str,
    pub signal: &'a Signal,
    /// The group in the console.
    pub link: &'a str,
    /// For `signal.rate_exceeded`: the threshold and what was observed.
    pub rate: Option<Value>,
    /// The group's trace in the tenant's own trace backend, when the tenant
    /// set a trace-link template.
    pub trace_url: Option<&'a str>,
}

impl Event<'_> {
    /// Whether the group is over: resolved or a false positive.
    fn closed(&self) -> bool {
        matches!(self.signal.status, Status::Resolved | Status::FalsePositive)
    }

    /// A one-line headline: what happened to which group.
    fn headline(&self) -> String {
        let signal = self.signal;
        let what = match self.kind {
            "signal.created" => "new",
            "signal.regressed" => "regressed",
            "signal.resolved" => "resolved",
            "signal.snooze_ended" => "snooze ended",
            "signal.rate_exceeded" => "rate exceeded",
            "signal.reminder" => "still open",
            "signal.test" => "test",
            _ => signal.status.as_str(),
        };
        format!("[{}] {} · {}: {}", severity(signal.severity), what, signal.rule_name, signal.message)
    }

    /// The services of the group's witness spans, sorted, without repeats.
    fn services(&self) -> Vec<&str> {
        let mut services: Vec<&str> = self.signal.witnesses.iter().filter_map(|witness| witness.service.as_deref()).collect();
        services.sort_unstable();
        services.dedup();
        services
    }
}

fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
        Severity::Info => "info",
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary, marking the cut.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Generic => "generic",
            ChannelKind::Slack => "slack",
            ChannelKind::Pagerduty => "pagerduty",
            ChannelKind::Alertmanager => "alertmanager",
            ChannelKind::Otlp => "otlp",
        }
    }
}

/// The body `kind` of channel gets for `event`.
pub fn body(kind: ChannelKind, event: &Event<'_>, routing_key: Option<&str>) -> Value {
    match kind {
        ChannelKind::Generic => generic(event),
        ChannelKind::Slack => slack(event),
        ChannelKind::Pagerduty => pagerduty(event, routing_key.unwrap_or_default()),
        ChannelKind::Alertmanager => alertmanager(event),
        ChannelKind::Otlp => otlp_log(event),
    }
}

/// An OTLP `ExportLogsServiceRequest` in OTLP/HTTP's JSON encoding: one log
/// record, severity from the group's, the headline as its body, the group's
/// trace id and first witness span id (hex, as the encoding says), and the
/// group's facts as `fluo.*` attributes.
fn otlp_log(event: &Event<'_>) -> Value {
    let signal = event.signal;
    let (number, text) = match signal.severity {
        Severity::Critical => (21, "FATAL"),
        Severity::High => (17, "ERROR"),
        Severity::Medium => (13, "WARN"),
        Severity::Low | Severity::Info => (9, "INFO"),
    };
    let text_attribute = |key: &str, value: &str| json!({"key": key, "value": {"stringValue": value}});
    let mut attributes = vec![
        text_attribute("fluo.event", event.kind),
        text_attribute("fluo.group.id", &signal.id),
        text_attribute("fluo.group.status", signal.status.as_str()),
        text_attribute("fluo.rule.id", &signal.rule_id),
        text_attribute("fluo.rule.name", &signal.rule_name),
        text_attribute("fluo.url", event.link),
        json!({"key": "fluo.group.occurrences", "value": {"intValue": signal.occurrences.to_string()}}),
    ];
    let services = event.services();
    if !services.is_empty() {
        attributes.push(text_attribute("fluo.services", &services.join(",")));
    }
    let now_ns = u128::from(now_ms()) * 1_000_000;
    let mut record = json!({
        "timeUnixNano": now_ns.to_string(),
        "observedTimeUnixNano": now_ns.to_string(),
        "severityNumber": number,
        "severityText": text,
        "body": {"stringValue": event.headline()},
        "attributes": attributes,
    });
    // Only well-formed ids: a backend drops a record whose ids are not 16 and 8 bytes.
    let hex = |text: &str, bytes: usize| text.len() == bytes * 2 && text.bytes().all(|byte| byte.is_ascii_hexdigit());
    if hex(&signal.trace_id, 16) && signal.trace_id.bytes().any(|byte| byte != b'0') {
        record["traceId"] = json!(signal.trace_id.to_ascii_lowercase());
        if let Some(span) = signal.span_ids.first().filter(|span| hex(span, 8)) {
            record["spanId"] = json!(span.to_ascii_lowercase());
        }
    }
    json!({"resourceLogs": [{
        "resource": {"attributes": [text_attribute("service.name", "fluo")]},
        "scopeLogs": [{"scope": {"name": "fluo", "version": env!("CARGO_PKG_VERSION")}, "logRecords": [record]}],
    }]})
}

fn generic(event: &Event<'_>) -> Value {
    let mut body = json!({"version": GENERIC_VERSION, "type": event.kind, "url": event.link, "signal": event.signal});
    if let Some(rate) = &event.rate {
        body["rate"] = rate.clone();
    }
    if let Some(trace_url) = event.trace_url {
        body["trace_url"] = json!(trace_url);
    }
    body
}

/// Slack's incoming-webhook message: `text` (the notification's fallback) and
/// Block Kit blocks; Slack's `<url|label>` link syntax; `&`, `<`, `>` escaped
/// as Slack asks.
fn slack(event: &Event<'_>) -> Value {
    fn escape(text: &str) -> String {
        text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    }
    let signal = event.signal;
    let headline = escape(&event.headline());
    let mut facts = vec![
        format!("*Status:* {}", signal.status.as_str()),
        format!("*Occurrences:* {}", signal.occurrences),
        format!("*Last seen:* {}", if signal.last_seen_at.is_empty() { &signal.created_at } else { &signal.last_seen_at }),
    ];
    let services = event.services();
    if !services.is_empty() {
        facts.push(format!("*Services:* {}", escape(&services.join(", "))));
    }
    if let Some(rate) = &event.rate {
        facts.push(format!("*Rate:* {} in {} min (threshold {})", rate["observed"], rate["minutes"], rate["count"]));
    }
    if let Some(trace_url) = event.trace_url {
        facts.push(format!("<{}|Open the trace>", escape(trace_url)));
    }
    let section = clip(&format!("*<{}|{}>*\n{}", event.link, headline, facts.join("  ·  ")), SLACK_SECTION_MAX);
    json!({
        "text": format!("{headline} <{}|Open in FLUO>", event.link),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(&format!("FLUO · rule {} · trace {}", escape(&signal.rule_name), signal.trace_id), SLACK_SECTION_MAX)}]}
        ]
    })
}

/// PagerDuty Events API v2: trigger while the group is open (created,
/// regressed, reopened, rate, reminder), acknowledge when it is acknowledged,
/// resolve when it is resolved or a false positive. One incident per group.
fn pagerduty(event: &Event<'_>, routing_key: &str) -> Value {
    let signal = event.signal;
    let action = match (event.kind, signal.status) {
        ("signal.test", _) => "trigger",
        (_, Status::Acknowledged) if event.kind == "signal.status_changed" => "acknowledge",
        _ if event.closed() => "resolve",
        _ => "trigger",
    };
    let dedup_key = if event.kind == "signal.test" { format!("fluo-test-{}", signal.id) } else { format!("fluo-{}", signal.id) };
    let mut body = json!({"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key});
    if action == "trigger" {
        let pd_severity = match signal.severity {
            Severity::Critical => "critical",
            Severity::High => "error",
            Severity::Medium => "warning",
            Severity::Low | Severity::Info => "info",
        };
        let services = event.services();
        let mut details = json!({
            "rule": signal.rule_name, "rule_id": signal.rule_id, "group": signal.id, "trace_id": signal.trace_id,
            "occurrences": signal.occurrences, "status": signal.status.as_str(), "event": event.kind,
        });
        if !signal.labels.is_empty() {
            details["labels"] = json!(signal.labels);
        }
        if let Some(rate) = &event.rate {
            details["rate"] = rate.clone();
        }
        body["payload"] = json!({
            "summary": clip(&event.headline(), PAGERDUTY_SUMMARY_MAX),
            "source": services.first().copied().unwrap_or("fluo"),
            "severity": pd_severity,
            "timestamp": if signal.last_seen_at.is_empty() { &signal.created_at } else { &signal.last_seen_at },
            "component": services.join(","),
            "group": signal.rule_name,
            "class": "behavioral-invariant",
            "custom_details": details,
        });
        body["links"] = json!([{"href": event.link, "text": "Open in FLUO"}]);
        if let Some(trace_url) = event.trace_url {
            body["links"].as_array_mut().expect("an array").push(json!({"href": trace_url, "text": "Open the trace"}));
        }
        body["client"] = json!("FLUO");
        body["client_url"] = json!(event.link);
    }
    body
}

/// Alertmanager API v2 (`POST /api/v2/alerts`): one alert per group, its
/// identity the labels (`alertname` the rule, `fluo_group` the group). A
/// firing alert ends by itself 3 hours after its latest send unless sent
/// again (channels to Alertmanager should set a repeat interval below that);
/// a closed group is sent with `endsAt` now, which resolves it.
fn alertmanager(event: &Event<'_>) -> Value {
    let signal = event.signal;
    let now = now_ms();
    let ends = if event.closed() { now } else { now + 3 * 3600 * 1000 };
    let mut labels = json!({
        "alertname": signal.rule_name,
        "severity": severity(signal.severity),
        "fluo_rule_id": signal.rule_id,
        "fluo_group": signal.id,
    });
    let services = event.services();
    if !services.is_empty() {
        labels["service"] = json!(services.join(","));
    }
    if event.kind == "signal.test" {
        labels["fluo_test"] = json!("true");
    }
    // The rule's own labels, for Alertmanager's routing; FLUO's names win.
    for (name, value) in &signal.labels {
        if labels.get(name).is_none() {
            labels[name] = json!(value);
        }
    }
    let mut annotations = json!({
        "summary": signal.message,
        "description": event.headline(),
        "fluo_status": signal.status.as_str(),
        "fluo_occurrences": signal.occurrences.to_string(),
        "fluo_trace_id": signal.trace_id,
        "fluo_url": event.link,
    });
    if let Some(trace_url) = event.trace_url {
        annotations["fluo_trace_url"] = json!(trace_url);
    }
    json!([{
        "labels": labels,
        "annotations": annotations,
        "startsAt": signal.created_at,
        "endsAt": rfc3339(ends),
        "generatorURL": event.link,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(status: &str) -> Signal {
        serde_json::from_value(json!({
            "id": "s_1", "rule_id": "r_1", "rule_name": "payments-fraud-check", "rule_version": 1, "severity": "critical",
            "message": "payment <charged> & no fraud check", "trace_id": "0af7651916cd43dd8448eb211c80319c", "span_ids": ["b7ad6b7169203331"],
            "status": status, "created_at": "2026-12-06T00:00:00.000Z", "created_unix_ms": 0, "updated_at": "", "occurrences": 3,
            "witnesses": [{"span_id": "b7ad6b7169203331", "parent_span_id": null, "name": "charge", "service": "payments", "kind": "client",
                "status": "unset", "start_time_unix_nano": 0, "end_time_unix_nano": 1, "attributes": {}}]
        }))
        .unwrap()
    }

    fn event<'a>(kind: &'a str, signal: &'a Signal) -> Event<'a> {
        Event { kind, signal, link: "https://fluo.example/signals/s_1", rate: None, trace_url: None }
    }

    #[test]
    fn pagerduty_follows_the_group_through_one_incident() {
        let open = group("open");
        let created = body(ChannelKind::Pagerduty, &event("signal.created", &open), Some("R0UT1NG"));
        assert_eq!(created["event_action"], "trigger");
        assert_eq!(created["routing_key"], "R0UT1NG");
        assert_eq!(created["payload"]["severity"], "critical");
        assert_eq!(created["payload"]["source"], "payments");
        let acknowledged = group("acknowledged");
        let acked = body(ChannelKind::Pagerduty, &event("signal.status_changed", &acknowledged), Some("R0UT1NG"));
        assert_eq!((acked["event_action"].as_str(), acked.get("payload")), (Some("acknowledge"), None));
        let resolved = group("resolved");
        let resolve = body(ChannelKind::Pagerduty, &event("signal.status_changed", &resolved), Some("R0UT1NG"));
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(created["dedup_key"], resolve["dedup_key"], "one incident per group");
        let reopened = body(ChannelKind::Pagerduty, &event("signal.status_changed", &open), Some("R0UT1NG"));
        assert_eq!(reopened["event_action"], "trigger");
    }

    #[test]
    fn slack_escapes_what_slack_reads_as_markup_and_links_the_group() {
        let open = group("open");
        let message = body(ChannelKind::Slack, &event("signal.created", &open), None);
        let text = message["text"].as_str().unwrap();
        assert!(text.contains("payment &lt;charged&gt; &amp; no fraud check"), "{text}");
        assert!(text.ends_with("<https://fluo.example/signals/s_1|Open in FLUO>"), "{text}");
    }

    #[test]
    fn alertmanager_resolves_a_closed_group_and_keeps_an_open_one_firing() {
        let open = group("open");
        let firing = body(ChannelKind::Alertmanager, &event("signal.created", &open), None);
        let ends = firing[0]["endsAt"].as_str().unwrap();
        assert!(ends > rfc3339(now_ms() + 3600 * 1000).as_str(), "{ends}");
        assert_eq!(firing[0]["labels"]["alertname"], "payments-fraud-check");
        assert_eq!(firing[0]["generatorURL"], "https://fluo.example/signals/s_1");
        let resolved = group("false_positive");
        let done = body(ChannelKind::Alertmanager, &event("signal.status_changed", &resolved), None);
        assert!(done[0]["endsAt"].as_str().unwrap() <= rfc3339(now_ms()).as_str());

        // The rule's labels route in Alertmanager; FLUO's own names win.
        let mut labelled = group("open");
        labelled.labels = [("team", "payments"), ("severity", "page-everyone")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        let alert = body(ChannelKind::Alertmanager, &event("signal.created", &labelled), None);
        assert_eq!((alert[0]["labels"]["team"].as_str(), alert[0]["labels"]["severity"].as_str()), (Some("payments"), Some("critical")));
        let page = body(ChannelKind::Pagerduty, &event("signal.created", &labelled), Some("R0UT1NG"));
        assert_eq!(page["payload"]["custom_details"]["labels"]["team"], "payments");
    }

    #[test]
    fn clip_cuts_at_a_character_boundary() {
        assert_eq!(clip("abc", 3), "abc");
        let cut = clip(&"é".repeat(600), PAGERDUTY_SUMMARY_MAX);
        assert!(cut.len() <= PAGERDUTY_SUMMARY_MAX && cut.ends_with('…'), "{}", cut.len());
    }
}
