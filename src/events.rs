//! The one event hub: every new signal (once it is on disk) and every status
//! change, the API's and FLUO's own, is published here, and subscribers get the events of one tenant only.
//! Live streams hold a per-tenant broadcast channel, so a slow stream's
//! `lagged` count is its own tenant's volume and never another's; webhook
//! delivery registers a sink that receives each tenant's new signals into that
//! tenant's own queue. Publishing never blocks and never fails. This module
//! owns no storage and decides nothing about who may listen (the API does).

use crate::model::tenant::TenantId;
use crate::signals::Signal;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::broadcast;

/// Events buffered per tenant channel; a stream further behind gets `lagged`.
pub const CHANNEL_CAPACITY: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A new signal, published once it is flushed.
    Created,
    /// A status change, made through the API or by FLUO (a signal cleared by
    /// spans that arrived later); the signal after the change.
    StatusChanged,
    /// A resolved group fired again and was reopened; the group after the change.
    Regressed,
    /// An occurrence ended the group's snooze; the group after the change.
    SnoozeEnded,
    /// Assigned or snoozed: live consoles refresh; no notification.
    Updated,
    /// A further occurrence of a group: for sinks only (rate thresholds),
    /// never sent to live streams (a flood would make them lag).
    Counted,
}

#[derive(Debug)]
pub struct Event {
    pub kind: EventKind,
    pub signal: Signal,
}

type Sink = Box<dyn Fn(&TenantId, &Arc<Event>) + Send + Sync>;
type Stager = Box<dyn Fn(&TenantId, EventKind, &Signal) + Send + Sync>;

/// Per-tenant channels plus sinks that see every tenant's events, each
/// called with the tenant it belongs to.
#[derive(Default)]
pub struct EventHub {
    channels: Mutex<HashMap<TenantId, broadcast::Sender<Arc<Event>>>>,
    sinks: RwLock<Vec<Sink>>,
    stagers: RwLock<Vec<Stager>>,
}

impl EventHub {
    pub fn new() -> Arc<EventHub> {
        Arc::new(EventHub::default())
    }

    /// The tenant's events from now on.
    pub fn subscribe(&self, tenant: &TenantId) -> broadcast::Receiver<Arc<Event>> {
        let mut channels = self.channels.lock().unwrap_or_else(|poison| poison.into_inner());
        // Forget channels nobody listens to any more (cheap: one entry per tenant).
        channels.retain(|_, sender| sender.receiver_count() > 0);
        channels.entry(tenant.clone()).or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0).subscribe()
    }

    /// Called with every published event of every tenant (webhook delivery
    /// keeps a queue per tenant). A sink must not block.
    pub fn add_sink(&self, sink: impl Fn(&TenantId, &Arc<Event>) + Send + Sync + 'static) {
        self.sinks.write().unwrap_or_else(|poison| poison.into_inner()).push(Box::new(sink));
    }

    /// Called with an event before the flush that makes its signal durable;
    /// the same event is published after the flush. What a stager writes
    /// (the webhook outbox) reaches the disk with the signal.
    pub fn add_stager(&self, stager: impl Fn(&TenantId, EventKind, &Signal) + Send + Sync + 'static) {
        self.stagers.write().unwrap_or_else(|poison| poison.into_inner()).push(Box::new(stager));
    }

    /// Announces an event that the next flush of the store makes durable
    /// (see [`EventHub::add_stager`]); [`EventHub::publish`] follows it.
    pub fn stage(&self, tenant: &TenantId, kind: EventKind, signal: &Signal) {
        for stager in self.stagers.read().unwrap_or_else(|poison| poison.into_inner()).iter() {
            stager(tenant, kind, signal);
        }
    }

    pub fn publish(&self, tenant: &TenantId, kind: EventKind, signal: Signal) {
        let event = Arc::new(Event { kind, signal });
        for sink in self.sinks.read().unwrap_or_else(|poison| poison.into_inner()).iter() {
            sink(tenant, &event);
        }
        if kind == EventKind::Counted {
            return;
        }
        let mut channels = self.channels.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(sender) = channels.get(tenant) {
            if sender.send(event).is_err() {
                // No receiver left: the stream ended.
                channels.remove(tenant);
            }
        }
    }

    /// Tenants with a channel (for tests: channels do not accumulate).
    pub fn channels(&self) -> usize {
        self.channels.lock().unwrap_or_else(|poison| poison.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(id: &str) -> Signal {
        serde_json::from_value(serde_json::json!({
            "id": id, "rule_id": "r", "rule_name": "r", "rule_version": 1, "severity": "high", "message": "m",
            "trace_id": "00", "span_ids": [], "status": "open", "created_at": "", "created_unix_ms": 0, "updated_at": "",
            "witnesses": []
        }))
        .unwrap()
    }

    #[test]
    fn a_tenant_sees_only_its_own_events_and_lag() {
        let hub = EventHub::new();
        let (quiet, noisy) = (TenantId::trusted("quiet"), TenantId::trusted("noisy"));
        let mut quiet_rx = hub.subscribe(&quiet);
        let mut noisy_rx = hub.subscribe(&noisy);
        for n in 0..(CHANNEL_CAPACITY * 3) {
            hub.publish(&noisy, EventKind::Created, signal(&format!("s_{n}")));
        }
        hub.publish(&quiet, EventKind::StatusChanged, signal("s_quiet"));
        let event = quiet_rx.try_recv().expect("the quiet tenant's own event");
        assert_eq!((event.kind, event.signal.id.as_str()), (EventKind::StatusChanged, "s_quiet"));
        assert!(matches!(quiet_rx.try_recv(), Err(broadcast::error::TryRecvError::Empty)), "no lag, no foreign event");
        assert!(matches!(noisy_rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(_))), "the noisy tenant lags alone");
    }

    #[test]
    fn sinks_see_the_tenant_and_channels_go_with_their_last_listener() {
        let hub = EventHub::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        hub.add_sink(move |tenant, event| into.lock().unwrap().push((tenant.to_string(), event.signal.id.clone())));
        let receiver = hub.subscribe(&TenantId::trusted("a"));
        hub.publish(&TenantId::trusted("b"), EventKind::Created, signal("s_1"));
        assert_eq!(*seen.lock().unwrap(), vec![("b".to_string(), "s_1".to_string())]);
        assert_eq!(hub.channels(), 1);
        drop(receiver);
        hub.publish(&TenantId::trusted("a"), EventKind::Created, signal("s_2"));
        assert_eq!(hub.channels(), 0);
    }
}
