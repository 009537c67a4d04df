//! The accept loop: one task per connection, each holding its [`Ticket`]; per-address caps at
//! accept; and what happens when the process runs out of file descriptors.
//!
//! Out of descriptors (EMFILE/ENFILE), the loop sheds the oldest connections that have not
//! authenticated (an unsigned HTTP request in progress, a WebSocket not yet logged in) to make
//! room, backs off (10 ms doubling to 1 s) instead of spinning, and warns at most once every
//! 10 s with what it did meanwhile. Logged-in sessions are never shed.

use super::routes::Routes;
use crate::admission::Admission;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for requests and sessions to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Unauthenticated connections shed per accept that failed for want of descriptors.
const SHED_BATCH: usize = 16;
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The accept loop's warnings come at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

pub(super) struct Listener {
    pub listener: TcpListener,
    pub tls: Option<TlsAcceptor>,
    pub routes: Routes,
    pub admission: Arc<Admission>,
    /// Connections past which the loop stops accepting as if out of descriptors, so the last
    /// few stay free for the store and NATS (see `descriptors`). None: only the kernel's EMFILE.
    pub max_open: Option<u64>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

/// A warning that says how often it would have been logged.
struct RateLimitedWarning {
    last: Option<tokio::time::Instant>,
    suppressed: u64,
}

impl RateLimitedWarning {
    fn new() -> Self {
        RateLimitedWarning { last: None, suppressed: 0 }
    }

    /// Some(count of suppressed repeats) when it is time to log again.
    fn due(&mut self) -> Option<u64> {
        let now = tokio::time::Instant::now();
        if self.last.is_some_and(|at| now - at < WARN_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

impl Listener {
    pub async fn run(self) {
        let Listener { listener, tls, routes, admission, max_open, shutdown, tracker } = self;
        let timeout = routes.request_timeout;
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1.timer(TokioTimer::new()).header_read_timeout(timeout);
        let mut auto = Builder::new(TokioExecutor::new());
        auto.http1().timer(TokioTimer::new()).header_read_timeout(timeout);
        let mut backoff = BACKOFF_MIN;
        let mut exhausted = RateLimitedWarning::new();
        let mut refused = RateLimitedWarning::new();
        let mut shed_total = 0;
        loop {
            let at_cap = max_open.is_some_and(|max| admission.open() >= max);
            let accepted = if at_cap {
                Err(std::io::Error::other("open connections at the descriptor limit less the store's reserve"))
            } else {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    accepted = listener.accept() => accepted,
                }
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) if at_cap || out_of_descriptors(&e) => {
                    shed_total += admission.shed(SHED_BATCH);
                    if let Some(suppressed) = exhausted.due() {
                        tracing::warn!(error = %e, shed_unauthenticated = shed_total, repeats = suppressed,
                            unauthenticated_left = admission.unauthenticated(),
                            "out of file descriptors: shedding connections that have not authenticated");
                        shed_total = 0;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
                Err(e) => {
                    // A connection reset before it was accepted, and the like: the next one is fine.
                    tracing::debug!(error = %e, "accept failed");
                    continue;
                }
            };
            backoff = BACKOFF_MIN;
            let ticket = match admission.admit(peer.ip()) {
                Ok(ticket) => ticket,
                Err(why) => {
                    if let Some(suppressed) = refused.due() {
                        tracing::warn!(%peer, repeats = suppressed, "connection refused: {why}");
                    }
                    continue; // dropping the socket closes it
                }
            };
            let _ = tcp.set_nodelay(true);
            let svc_ticket = ticket.clone();
            let svc_routes = routes.clone();
            let svc = service_fn(move |req| {
                let (routes, ticket) = (svc_routes.clone(), svc_ticket.clone());
                async move { Ok::<_, Infallible>(routes.serve(req, &ticket).await) }
            });
            let shutdown = shutdown.clone();
            match &tls {
                None => {
                    // Plain TCP speaks HTTP/1.1 only: hyper then hands the upgraded socket back as
                    // the bare `TcpStream` (the auto builder would wrap it for protocol sniffing),
                    // which lets the fan-out write to it directly.
                    let conn = http1.serve_connection(TokioIo::new(tcp), svc).with_upgrades();
                    tracker.spawn(async move {
                        tokio::pin!(conn);
                        tokio::select! {
                            res = conn.as_mut() => if let Err(e) = res {
                                tracing::debug!(%peer, error = %e, "http connection ended with an error");
                            },
                            _ = shutdown.cancelled() => {
                                conn.as_mut().graceful_shutdown();
                                let _ = conn.await;
                            }
                            _ = ticket.shed() => tracing::debug!(%peer, "unauthenticated connection shed"),
                        }
                    });
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let auto = auto.clone();
                    tracker.spawn(async move {
                        let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                        let stream = tokio::select! {
                            done = handshake => match done {
                                Ok(Ok(s)) => s,
                                _ => return tracing::debug!(%peer, "TLS handshake failed or timed out"),
                            },
                            _ = ticket.shed() => return,
                        };
                        let conn = auto.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = shutdown.cancelled() => {
                                conn.as_mut().graceful_shutdown();
                                let _ = conn.await;
                            }
                            _ = ticket.shed() => {}
                        }
                    });
                }
            }
        }
        drop(listener);
        tracker.close();
        tracing::info!("shutting down: closing sessions and finishing requests");
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await;
    }
}
