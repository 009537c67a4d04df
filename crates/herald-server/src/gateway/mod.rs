//! The client WebSocket gateway at `/ws`: the upgrade, and one task per connection.
//!
//! `session.rs` is the task that owns the socket (heartbeat, outbox draining, the close);
//! `requests.rs` is what each client request does (login, push-ID binding, token renewal,
//! logout); `refusal.rs` maps every refusal to its SDK error number and close code. The hub
//! holds each session's [`crate::hub::SessionHandle`]. The protocol is docs/protocol.md; its
//! types are `herald_proto::frame`.

mod known_users;
mod refusal;
mod requests;
mod session;

use crate::admission::Ticket;
use crate::broadcast::Presence;
use crate::clock::Clock;
use crate::config::{AppConfig, GatewayConfig};
use crate::hub::Hub;
use crate::ids::IdGenerator;
use crate::metrics::Metrics;
use bytes::Bytes;
use herald_store::Store;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The subprotocol name clients may ask for.
pub const SUBPROTOCOL: &str = "herald.v1";

pub struct Gateway {
    cfg: GatewayConfig,
    apps: HashMap<u32, Arc<AppConfig>>,
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    ids: Arc<IdGenerator>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Open WebSocket sessions, logged in or not.
    connections: AtomicUsize,
    /// Where sessions are recorded as they start and end (the hub alone, or the cluster's store).
    presence: Arc<dyn Presence>,
    metrics: Arc<Metrics>,
    /// Users seen registered: their logins skip `ensure_user`.
    known_users: known_users::KnownUsers,
}

impl Gateway {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: GatewayConfig,
        apps: &[AppConfig],
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        ids: Arc<IdGenerator>,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
        presence: Arc<dyn Presence>,
        metrics: Arc<Metrics>,
    ) -> Arc<Gateway> {
        let apps = apps.iter().map(|a| (a.app_id, Arc::new(a.clone()))).collect();
        let connections = AtomicUsize::new(0);
        let known_users = known_users::KnownUsers::new(cfg.known_users_max);
        Arc::new(Gateway {
            cfg,
            apps,
            store,
            hub,
            ids,
            clock,
            shutdown,
            tracker,
            connections,
            presence,
            metrics,
            known_users,
        })
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Answers the HTTP upgrade and starts the session task once hyper hands over the socket.
    /// The connection's `ticket` goes with it: it counts as pending (capped per address,
    /// sheddable) until it logs in.
    pub fn upgrade<B: Send + 'static>(
        self: &Arc<Self>,
        mut req: Request<B>,
        ticket: Arc<Ticket>,
    ) -> Response<Full<Bytes>> {
        let key = match check_upgrade(req.headers()) {
            Ok(key) => key,
            Err(why) => return plain(StatusCode::BAD_REQUEST, why),
        };
        let protocol = match negotiate(req.headers()) {
            Ok(p) => p,
            Err(why) => return plain(StatusCode::BAD_REQUEST, why),
        };
        if let Err(why) = ticket.upgrade() {
            return plain(StatusCode::TOO_MANY_REQUESTS, &why.to_string());
        }
        // Reserve the slot now: counting only once the upgrade completes would let a burst of
        // concurrent upgrades all pass the check.
        if self.connections.fetch_add(1, Ordering::AcqRel) >= self.cfg.max_connections {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            let why = format!(
                "connection limit reached: {} sessions (gateway.max_connections, or the descriptor limit)",
                self.cfg.max_connections
            );
            return plain(StatusCode::SERVICE_UNAVAILABLE, &why);
        }
        let accept = herald_proto::ws::accept_key(&key);
        let on_upgrade = hyper::upgrade::on(&mut req);
        let gw = self.clone();
        self.tracker.spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    gw.connections.fetch_sub(1, Ordering::AcqRel);
                    return tracing::debug!(error = %e, "websocket upgrade failed");
                }
            };
            // Each session's future on the heap at its own size: inline, this task would be as
            // large as the larger of the two (the TLS one), for every plain connection too.
            match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => {
                    let (reader, writer) = parts.io.into_inner().into_split();
                    let direct = session::Writer::Direct(writer);
                    Box::pin(session::run(gw.clone(), ticket, reader, direct, parts.read_buf)).await
                }
                Err(upgraded) => {
                    let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
                    let queued = session::Writer::Queued(Box::new(writer));
                    Box::pin(session::run(gw.clone(), ticket, reader, queued, Bytes::new())).await
                }
            }
            gw.connections.fetch_sub(1, Ordering::AcqRel);
        });
        let mut res = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .header(header::SEC_WEBSOCKET_ACCEPT, accept);
        if let Some(p) = protocol {
            res = res.header(header::SEC_WEBSOCKET_PROTOCOL, p);
        }
        res.body(Full::new(Bytes::new())).expect("static response parts are valid")
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(format!("{text}\n"))))
        .expect("static response parts are valid")
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Checks an RFC 6455 opening handshake; returns the client's key.
fn check_upgrade(h: &HeaderMap) -> Result<String, &'static str> {
    if !header_has_token(h, header::UPGRADE, "websocket") {
        return Err("expected a WebSocket upgrade (Upgrade: websocket)");
    }
    if !header_has_token(h, header::CONNECTION, "upgrade") {
        return Err("expected Connection: Upgrade");
    }
    if h.get(header::SEC_WEBSOCKET_VERSION).and_then(|v| v.to_str().ok()) != Some("13") {
        return Err("unsupported Sec-WebSocket-Version; use 13");
    }
    h.get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .ok_or("missing Sec-WebSocket-Key")
}

/// A client that names subprotocols must include ours; one that names none gets v1.
fn negotiate(h: &HeaderMap) -> Result<Option<&'static str>, &'static str> {
    if h.get(header::SEC_WEBSOCKET_PROTOCOL).is_none() {
        return Ok(None);
    }
    if header_has_token(h, header::SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL) {
        Ok(Some(SUBPROTOCOL))
    } else {
        Err("unsupported Sec-WebSocket-Protocol; this server speaks herald.v1")
    }
}
