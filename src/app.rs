//! The composition root of `fluo serve`: raises the open-files limit, opens
//! the store, builds the rule engine and the pipeline, loads every tenant's
//! rules, starts the OTLP/gRPC, OTLP/HTTP and API listeners (through
//! [`crate::listen`]: connection caps, header-read timeout) and runs until
//! SIGTERM or Ctrl-C. On shutdown it stops accepting, closes and evaluates
//! every buffered trace, and flushes. [`serve_on`] runs the same server on
//! listeners and a shutdown the caller gives (tests bind port 0 in-process).
//! It wires; it decides nothing of its own.

use crate::api::{ApiState, router};
use crate::auth::Auth;
use crate::config::Config;
use crate::ingest::Ingest;
use crate::pipeline::evaluator::Evaluator;
use crate::pipeline::{Counters, Pipeline, sweeper};
use crate::rules::RuleEngine;
use crate::signals::{Announcement, Signals};
use crate::store::Store;
use crate::store::traces::RecentTraces;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;

/// Everything `serve` builds before it listens; tests and benchmarks build it too.
pub struct Services {
    pub store: Arc<Store>,
    pub auth: Arc<Auth>,
    pub signals: Arc<Signals>,
    pub recent: Arc<RecentTraces>,
    pub engine: Arc<RuleEngine>,
    pub pipeline: Arc<Pipeline>,
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    pub rule_quotas: crate::api::RuleQuotas,
    /// New signals and status changes, per tenant: streams and webhooks listen.
    pub events: Arc<crate::events::EventHub>,
    /// Caps on every span OTLP ingest accepts.
    pub span_limits: crate::model::otlp::SpanLimits,
}

impl Services {
    /// Opens the database and loads every tenant's active, enabled rule versions
    /// (recompiling those generated against another plugin build). Returns a
    /// freshly generated operator key, if one was made.
    pub fn open(config: &Config, on_signal: Option<Box<dyn Fn(Duration) + Send + Sync>>) -> Result<(Services, Option<String>)> {
        let store = Arc::new(Store::open(&config.data_dir)?);
        let (auth, generated) =
            Auth::open(store.clone(), config.operator_key.as_deref(), config.jwt_key_file.as_deref(), config.identity.clone())
                .context("open tenants and keys")?;
        let signals = Arc::new(Signals::open(store.clone()).context("open signals")?);
        let recent = Arc::new(
            RecentTraces::open(&config.data_dir.join("traces"), config.trace_retention.clone()).context("open the recent-trace store")?,
        );
        recent.migrate_from_sled(&store.db).context("move recent traces out of the database")?;
        let engine = RuleEngine::new(config.limits.clone())?;
        tracing::info!(plugin = %engine.plugin_hash(), data_dir = %config.data_dir.display(), "rule engine ready");
        let counters = Arc::new(Counters::default());
        let events = crate::events::EventHub::new();
        let evaluator = Evaluator::start(
            config.eval_workers,
            config.eval_lanes_per_tenant,
            engine.clone(),
            signals.clone(),
            recent.clone(),
            counters.clone(),
            on_signal,
            events.clone(),
            config.assembly.clone(),
        );
        let windows = Arc::new(crate::pipeline::windows::Windows::new(
            engine.clone(),
            signals.clone(),
            counters.clone(),
            events.clone(),
            config.windows.clone(),
        ));
        let log: Arc<dyn crate::pipeline::spanlog::SpanLog> = match config.ingest_durability {
            crate::pipeline::segments::Durability::Off => Arc::new(crate::pipeline::spanlog::InProcess::default()),
            durability => Arc::new(
                crate::pipeline::segments::Segments::open(&config.data_dir.join("spanlog"), durability, config.span_log_segment_bytes)
                    .context("open the span log")?,
            ),
        };
        let pipeline = Arc::new(Pipeline::new(config.assembly.clone(), config.admission.clone(), evaluator, windows, log, counters));
        crate::pipeline::active::load_all(&store, &engine, &pipeline)?;
        pipeline.recover(std::time::Instant::now(), &config.span_limits).context("recover from the span log")?;
        let webhooks = Arc::new(crate::webhooks::Webhooks::open(&store.db, config.webhooks.clone()).context("open webhooks")?);
        // Each tenant's settings reach the parts that apply them.
        for tenant in auth.tenants().context("read tenants")? {
            let id = crate::model::tenant::TenantId::trusted(&tenant.id);
            if let Some(minutes) = tenant.settings.trace_retention_minutes {
                recent.set_tenant_retention(&id, Some(Duration::from_secs(u64::from(minutes) * 60)));
            }
            webhooks.set_trace_link(&id, tenant.settings.trace_link_template.as_deref());
        }
        // Each tenant's new signals go into that tenant's delivery queue.
        // Webhooks hear of lifecycle events and crossed rate thresholds, never of single occurrences.
        fn webhook_event(kind: crate::events::EventKind, signal: &crate::signals::Signal) -> Option<&'static str> {
            use crate::events::EventKind;
            match kind {
                EventKind::Created => Some("signal.created"),
                EventKind::Regressed => Some("signal.regressed"),
                EventKind::StatusChanged => Some(status_event(signal)),
                EventKind::SnoozeEnded => Some("signal.snooze_ended"),
                EventKind::Counted | EventKind::Updated => None,
            }
        }
        let for_stage = webhooks.clone();
        events.add_stager(move |tenant, kind, signal| {
            if let Some(kind) = webhook_event(kind, signal) {
                for_stage.stage(tenant, signal, kind);
            }
        });
        let (for_sink, announcing) = (webhooks.clone(), signals.clone());
        events.add_sink(move |tenant, event| {
            use crate::events::EventKind;
            if let Some(kind) = webhook_event(event.kind, &event.signal) {
                for_sink.dispatch(tenant, &event.signal, kind);
            }
            let announced = match event.kind {
                EventKind::Created => Some(Announcement::Created),
                EventKind::Regressed => Some(Announcement::Regressed),
                EventKind::SnoozeEnded => Some(Announcement::SnoozeEnded),
                EventKind::StatusChanged => Some(Announcement::Cleared),
                EventKind::Counted | EventKind::Updated => None,
            };
            if let Some(what) = announced
                && let Err(error) = announcing.announced(tenant, &event.signal.id, what)
            {
                tracing::warn!(tenant = %tenant, %error, "group announcement not recorded");
            }
            // Every occurrence counts towards rate thresholds.
            if matches!(event.kind, EventKind::Created | EventKind::Regressed | EventKind::SnoozeEnded | EventKind::Counted) {
                for_sink.occurred(tenant, &event.signal);
            }
        });
        // Lifecycle events a crash left unannounced (on disk before their notification was) are announced now.
        let unannounced = signals.unannounced().context("read unannounced groups")?;
        if !unannounced.is_empty() {
            tracing::info!(groups = unannounced.len(), "group events announced again after a crash");
        }
        for (tenant, signal, pending) in unannounced {
            for what in pending {
                let event = match what {
                    Announcement::Created => "signal.created",
                    Announcement::Regressed => "signal.regressed",
                    Announcement::SnoozeEnded => "signal.snooze_ended",
                    Announcement::Cleared => status_event(&signal),
                };
                webhooks.dispatch(&tenant, &signal, event);
                signals.announced(&tenant, &signal.id, what).context("record a group announcement")?;
            }
        }
        let rule_quotas = config.rule_quotas;
        let span_limits = config.span_limits;
        Ok((
            Services { store, auth: Arc::new(auth), signals, recent, engine, pipeline, webhooks, rule_quotas, events, span_limits },
            generated,
        ))
    }

    pub fn ingest(&self) -> Ingest {
        Ingest::new(self.auth.clone(), self.pipeline.clone(), self.span_limits)
    }

    pub fn api_state(
        &self,
        shutdown: tokio::sync::watch::Receiver<bool>,
        otlp_ports: (u16, u16),
        console: Arc<crate::web::Console>,
    ) -> ApiState {
        ApiState {
            auth: self.auth.clone(),
            store: self.store.clone(),
            signals: self.signals.clone(),
            engine: self.engine.clone(),
            pipeline: self.pipeline.clone(),
            recent: self.recent.clone(),
            webhooks: self.webhooks.clone(),
            shutdown,
            compile_slots: Arc::new(crate::api::slots::TenantSlots::new(
                crate::api::slots::COMPILE_SLOTS,
                crate::api::slots::COMPILE_SLOTS_PER_TENANT,
            )),
            backtest_slots: Arc::new(crate::api::slots::TenantSlots::new(
                crate::api::slots::BACKTEST_SLOTS,
                crate::api::slots::BACKTEST_SLOTS_PER_TENANT,
            )),
            rule_quotas: self.rule_quotas,
            otlp_ports,
            events: self.events.clone(),
            console,
        }
    }
}

pub fn serve(config: Config) -> Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    // The connection caps, not the descriptor table, should bound the listeners.
    match crate::listen::raise_open_files_limit() {
        Ok((soft, hard)) => tracing::info!(soft, hard, "open files limit"),
        Err(error) => tracing::warn!(error = %error, "open files limit not raised"),
    }
    let (services, generated) = Services::open(&config, None)?;
    if let Some(key) = generated {
        eprintln!("operator key (shown once; set FLUO_OPERATOR_KEY to choose your own): {key}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("fluo-io").build()?;
    runtime.block_on(run(&config, &services))?;
    services.stop()?;
    tracing::info!("stopped");
    Ok(())
}

/// The three listeners of a server, bound by the caller: `fluo serve` binds
/// the configured addresses; a test binds port 0 on loopback.
pub struct Listeners {
    pub grpc: tokio::net::TcpListener,
    pub http: tokio::net::TcpListener,
    pub api: tokio::net::TcpListener,
}

impl Listeners {
    pub async fn bind(config: &Config) -> Result<Listeners> {
        let bind = |addr, what: &'static str| async move {
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("bind {what} on {addr}"))
        };
        Ok(Listeners {
            grpc: bind(config.grpc_addr, "OTLP/gRPC").await?,
            http: bind(config.http_addr, "OTLP/HTTP").await?,
            api: bind(config.api_addr, "API").await?,
        })
    }
}

impl Services {
    /// After the listeners are closed: closes every live trace and evaluates
    /// it, stops the evaluator and flushes the database.
    pub fn stop(&self) -> Result<()> {
        self.pipeline.finish();
        self.pipeline.stop();
        self.store.flush()?;
        // Every trace is evaluated and flushed: a restart replays only what window buffers may need.
        self.pipeline.checkpoint(crate::model::time::now_ms()).context("checkpoint the span log")?;
        Ok(())
    }
}

async fn run(config: &Config, services: &Services) -> Result<()> {
    // Before anything announces itself: a SIGTERM right after the `listening`
    // line must stop the server gracefully, not kill it.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let listeners = Listeners::bind(config).await?;
    let signalled = async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    };
    serve_on(config, services, listeners, signalled).await
}

/// Serves `services` on `listeners` until `stop_when` completes (or a listener
/// fails), then stops accepting and gives open requests 10 s. The caller
/// then calls [`Services::stop`]. Tests run a whole server in-process this way.
pub async fn serve_on(
    config: &Config,
    services: &Services,
    listeners: Listeners,
    stop_when: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let Listeners { grpc, http, api } = listeners;
    let console =
        Arc::new(crate::web::Console::load(&config.web_dir).with_context(|| format!("read the console in {}", config.web_dir.display()))?);
    if console.is_built() {
        tracing::info!(dir = %config.web_dir.display(), files = console.files(), "web console served at /");
    } else {
        tracing::warn!(dir = %config.web_dir.display(), "web console not built (no index.html): `make build` builds it; the API works without it");
    }
    let otlp_ports = (grpc.local_addr()?.port(), http.local_addr()?.port());
    tracing::info!(grpc = %grpc.local_addr()?, http = %http.local_addr()?, api = %api.local_addr()?, "listening");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = |mut receiver: tokio::sync::watch::Receiver<bool>| async move {
        let _ = receiver.changed().await;
    };
    let mut tasks = tokio::task::JoinSet::new();
    let ingest = services.ingest();
    let counters = services.pipeline.counters.clone();
    let limits = config.listeners;
    let incoming = crate::listen::limited_incoming(grpc, limits.max_connections, "grpc", counters.clone());
    let grpc_server = crate::ingest::grpc::serve(incoming, ingest.clone(), shutdown(stopped.clone()));
    tasks.spawn(async move { grpc_server.await.map_err(anyhow::Error::from) });
    let http_server =
        crate::listen::serve_http(http, crate::ingest::http::router(ingest), limits, "otlp_http", counters.clone(), stopped.clone());
    tasks.spawn(async move { http_server.await.map_err(anyhow::Error::from) });
    // serve_http gives each request its peer address (ConnectInfo): sign-in
    // throttles failures per client network.
    let api_router = router(services.api_state(stopped.clone(), otlp_ports, console));
    let api_server = crate::listen::serve_http(api, api_router, limits, "api", counters, stopped.clone());
    tasks.spawn(async move { api_server.await.map_err(anyhow::Error::from) });
    tokio::spawn(sweeper(services.pipeline.clone(), config.assembly.idle.min(Duration::from_millis(250)), stopped.clone()));
    tokio::spawn(checkpoints(services.pipeline.clone(), stopped.clone()));
    tokio::spawn(prune(services.recent.clone(), config.trace_retention.age, stopped.clone()));
    tokio::spawn(expire_signals(services.signals.clone(), config.signal_retention, config.signal_sweep_every, stopped.clone()));
    tokio::spawn(crate::webhooks::deliver(services.webhooks.clone(), stopped.clone()));
    tokio::spawn(crate::webhooks::remind(services.webhooks.clone(), services.signals.clone(), stopped.clone()));
    tokio::spawn(prune_revoked_sessions(services.auth.clone(), stopped.clone()));

    tokio::select! {
        _ = stop_when => {}
        Some(result) = tasks.join_next() => {
            result.context("listener task")??;
            anyhow::bail!("a listener stopped unexpectedly");
        }
    }
    tracing::info!("shutting down: no new requests; evaluating buffered traces");
    let _ = stop.send(true);
    let drain = async {
        while let Some(result) = tasks.join_next().await {
            if let Err(error) = result.map_err(anyhow::Error::from).and_then(|result| result) {
                tracing::warn!(error = %format!("{error:#}"), "listener stopped with an error");
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), drain).await.is_err() {
        tracing::warn!("requests still open after 10s; stopping anyway");
    }
    Ok(())
}

/// Runs `job` on a blocking thread every `every` until `stop` changes; the job
/// logs its own outcome (a panic is logged here as `what` failed).
async fn periodically(
    what: &'static str,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    job: impl Fn() + Clone + Send + 'static,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if let Err(error) = tokio::task::spawn_blocking(job.clone()).await {
            tracing::error!(%error, "{what} failed");
        }
    }
}

/// The notification of a status change: `signal.resolved` when the group is
/// now resolved (by someone, or cleared by FLUO), else `signal.status_changed`.
fn status_event(signal: &crate::signals::Signal) -> &'static str {
    if signal.status == crate::signals::Status::Resolved { "signal.resolved" } else { "signal.status_changed" }
}

/// Once a second: moves the span log's checkpoint, so that its old segments go
/// and a restart replays only what is still needed.
async fn checkpoints(pipeline: Arc<Pipeline>, stop: tokio::sync::watch::Receiver<bool>) {
    periodically("span log checkpoint", Duration::from_secs(1), stop, move || {
        if let Err(error) = pipeline.checkpoint(crate::model::time::now_ms()) {
            tracing::warn!(%error, "span log checkpoint not written");
        }
    })
    .await
}

/// Deletes the recent-trace segments that every tenant's retention has passed
/// (the longest retention counts: a tenant may keep its traces longer).
async fn prune(recent: Arc<RecentTraces>, retention: Duration, stop: tokio::sync::watch::Receiver<bool>) {
    periodically("recent trace pruning", Duration::from_secs(30).min(retention), stop, move || {
        let cutoff = crate::model::time::now_ms().saturating_sub(recent.longest_retention().as_millis() as u64);
        match recent.prune(cutoff) {
            Ok(removed) if removed > 0 => tracing::debug!(removed, "recent traces pruned"),
            Err(error) => tracing::warn!(error = %error, "recent traces not pruned"),
            _ => {}
        }
    })
    .await
}

/// Applies signal retention (age and per-tenant bytes) every `every`.
async fn expire_signals(
    signals: Arc<Signals>,
    retention: crate::signals::Retention,
    every: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    periodically("signal retention", every, stop, move || match signals.sweep(retention, crate::model::time::now_ms()) {
        Ok(swept) if swept.occurrences > 0 => {
            tracing::info!(occurrences = swept.occurrences, snapshots = swept.snapshots, "signal retention removed old occurrences")
        }
        Err(error) => tracing::warn!(error = %error, "signal retention did not run"),
        _ => {}
    })
    .await
}

/// Forgets revoked sessions once their tokens would have expired anyway.
async fn prune_revoked_sessions(auth: Arc<Auth>, stop: tokio::sync::watch::Receiver<bool>) {
    periodically("revoked session pruning", Duration::from_secs(60), stop, move || {
        match auth.users.prune_revoked(crate::model::time::now_ms()) {
            Ok(removed) if removed > 0 => tracing::debug!(removed, "revoked sessions pruned"),
            Err(error) => tracing::warn!(error = %error, "revoked sessions not pruned"),
            _ => {}
        }
    })
    .await
}
