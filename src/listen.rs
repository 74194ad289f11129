//! The accept loops of FLUO's listeners, with the bounds a slow or hostile
//! client meets before any handler runs: a cap on open connections per
//! listener (a connection over it is closed as soon as it is accepted, so a
//! flood of idle sockets costs one accept each, not a file descriptor held),
//! and, on the HTTP/1.1 listeners (API, OTLP/HTTP), hyper's header-read
//! timeout. hyper starts that timer whenever it waits for a request head — on
//! a new connection and between keep-alive requests — so it bounds both a
//! half-sent header (slowloris) and an idle keep-alive connection; it does not
//! run while a response streams, so a long-lived SSE stream is not cut.
//!
//! axum::serve cannot set a header-read timeout, hence this loop (the shape of
//! axum::serve and hyper-util's examples). On shutdown it stops accepting,
//! asks every open connection to finish its request and close, and returns
//! once all are closed; the caller bounds that wait. It owns no routes.

use crate::pipeline::Counters;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bounds of one HTTP/1.1 listener (`--http-header-timeout`, `--max-connections`).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// A request head must arrive within this; also the idle keep-alive timeout.
    pub header_timeout: Duration,
    /// Open connections; more are closed at once.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits { header_timeout: Duration::from_secs(10), max_connections: 1024 }
    }
}

/// After a failed `accept` (e.g. EMFILE) the loop waits this long, so that it
/// does not spin while no descriptor is free.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Counts a connection closed for the cap; logs at most one line a minute per listener.
fn refuse(counters: &Counters, listener: &'static str, limit: usize, peer: SocketAddr, logged: &mut Option<Instant>) {
    counters.connection_refused(listener);
    let now = Instant::now();
    if logged.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(60)) {
        *logged = Some(now);
        tracing::warn!(listener, limit, peer = %peer, "connection limit reached: closing new connections at once");
    }
}

/// Serves `router` over HTTP/1.1 on `listener` until `shutdown` turns true.
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    limits: HttpLimits,
    name: &'static str,
    counters: Arc<Counters>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let max = limits.max_connections.clamp(1, u32::MAX as usize);
    let slots = Arc::new(Semaphore::new(max));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let mut logged = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(listener = name, error = %error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            _ = stopped(shutdown.clone()) => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refuse(&counters, name, max, peer, &mut logged);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = tower::ServiceExt::map_request(router.clone(), move |mut request: axum::extract::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            request
        });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(listener = name, peer = %peer, error = %error, "connection ended with an error");
                    }
                }
                _ = stopped(stop) => {
                    // Finish the request in flight, then close.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    // Every connection holds a permit until it closes.
    let _all = slots.acquire_many(max as u32).await;
    Ok(())
}

/// Returns once `shutdown` is true (the guard `wait_for` gives is dropped here,
/// so that no future holding it must be `Send`).
async fn stopped(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Accepted gRPC connections, at most `max_connections` open at once: a
/// connection over the cap is closed as soon as it is accepted.
pub fn limited_incoming(
    listener: TcpListener,
    max_connections: usize,
    name: &'static str,
    counters: Arc<Counters>,
) -> impl futures::Stream<Item = std::io::Result<Limited>> + Send + 'static {
    let max = max_connections.clamp(1, u32::MAX as usize);
    let slots = Arc::new(Semaphore::new(max));
    futures::stream::unfold((listener, slots, counters, None), move |(listener, slots, counters, mut logged)| async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let _ = stream.set_nodelay(true);
                        return Some((Ok(Limited { stream, _permit: permit }), (listener, slots, counters, logged)));
                    }
                    Err(_) => refuse(&counters, name, max, peer, &mut logged),
                },
                Err(error) => {
                    tracing::debug!(listener = name, error = %error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    })
}

/// A TCP connection that holds one of its listener's connection slots until dropped.
pub struct Limited {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl tonic::transport::server::Connected for Limited {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::Connected::connect_info(&self.stream)
    }
}

impl AsyncRead for Limited {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, bytes: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, so that the connection
/// caps, not the descriptor table, bound the listeners; returns (soft, hard)
/// as they are afterwards.
pub fn raise_open_files_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok((limit.rlim_cur as u64, limit.rlim_max as u64))
}
