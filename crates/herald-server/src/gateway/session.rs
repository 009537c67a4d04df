//! One task per connection: it owns the socket's read side, performs the protocol (what each
//! request does is `requests.rs`), and drains the outbox when the kernel could not take a frame at
//! once. It ends by leaving the hub and closing with a code from docs/protocol.md.

use super::refusal::Refusal;
use super::requests::{self, LoggedIn, TOKEN_WARNING_S};
use super::Gateway;
use crate::admission::Ticket;
use crate::hub::{OutboxLimits, SessionHandle};
use bytes::{Bytes, BytesMut};
use herald_proto::close;
use herald_proto::frame::{self, ClientFrame, ServerFrame};
use herald_proto::ws::{self, Decoder, Message, Opcode, Role, WsError};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::{sleep_until, timeout, Instant};

/// How long the closing handshake may take to write once the session is over.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a closed session keeps reading (and discarding) the client's input so its close
/// frame is not lost to a reset.
const CLOSE_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// How frames reach the socket.
pub enum Writer {
    /// Plain TCP: the fan-out writes directly; the session flushes only what the kernel refused.
    Direct(OwnedWriteHalf),
    /// Any other stream (TLS): the session task writes everything from the outbox.
    Queued(Box<dyn AsyncWrite + Unpin + Send>),
}

/// Why a session ends: the close code (0 when the peer is gone and there is nobody to tell) and
/// a detail for the log. The close frame's reason is `close::reason(code)`.
#[derive(Debug, Clone, Copy)]
struct Ending {
    code: u16,
    detail: &'static str,
}

impl Ending {
    fn new(code: u16, detail: &'static str) -> Ending {
        Ending { code, detail }
    }
}

struct Session {
    gw: Arc<Gateway>,
    /// The connection's place with the listener: pending until login, then authenticated.
    ticket: Arc<Ticket>,
    handle: Arc<SessionHandle>,
    /// `None` until `login_ok`.
    user: Option<LoggedIn>,
    /// Token bucket for client frames: tokens left and when they were last topped up.
    flood_tokens: f64,
    flood_at: Instant,
}

pub async fn run<R: AsyncRead + Unpin>(
    gw: Arc<Gateway>,
    ticket: Arc<Ticket>,
    mut reader: R,
    writer: Writer,
    leftover: Bytes,
) {
    let limits = OutboxLimits { frames: gw.cfg.outbox_frames, bytes: gw.cfg.outbox_bytes };
    let (direct, mut queued) = match writer {
        Writer::Direct(w) => (Some(w), None),
        Writer::Queued(w) => (None, Some(w)),
    };
    let handle = Arc::new(SessionHandle::new(direct, limits));
    let burst = f64::from(gw.cfg.client_frames_per_second) * 2.0;
    let mut s = Session { gw, ticket, handle, user: None, flood_tokens: burst, flood_at: Instant::now() };
    let ending = s.drive(&mut reader, &mut queued, leftover).await;
    // Boxed: the closing handshake's state exists only while closing, not for the session's life.
    Box::pin(s.finish(ending, queued, &mut reader)).await;
}

impl Session {
    async fn drive<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        queued: &mut Option<Box<dyn AsyncWrite + Unpin + Send>>,
        leftover: Bytes,
    ) -> Ending {
        let cfg = &self.gw.cfg;
        let mut buf = BytesMut::from(&leftover[..]);
        // `leftover` may be a view into hyper's 8 KB request buffer: copying what is left and
        // dropping it keeps that buffer from living as long as the session.
        drop(leftover);
        let mut decoder = Decoder::new(cfg.max_client_frame_bytes, Role::Server);
        let heartbeat_timeout = Duration::from_millis(cfg.heartbeat_timeout_ms);
        let stall_timeout = Duration::from_millis(cfg.write_stall_timeout_ms);
        let mut deadline = Instant::now() + Duration::from_millis(cfg.login_timeout_ms);
        let mut stalled_since: Option<Instant> = None;
        let shutdown = self.gw.shutdown.clone();
        loop {
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(msg)) => {
                        if let Some(end) = self.on_message(msg).await {
                            return end;
                        }
                        // Any frame from a logged-in client is a heartbeat.
                        if self.user.is_some() {
                            deadline = Instant::now() + heartbeat_timeout;
                        }
                    }
                    Ok(None) => break,
                    Err(WsError::TooLarge { .. }) => {
                        return Ending::new(close::FRAME_TOO_LARGE, "frame larger than the server accepts")
                    }
                    Err(_) => return Ending::new(close::BAD_FRAME, "malformed WebSocket frame"),
                }
            }
            if let Some((code, detail)) = self.handle.close_requested() {
                return Ending::new(code, detail);
            }
            // Drain what the fan-out or this task queued.
            let backlog = match queued {
                Some(w) => {
                    while let Some(frame) = self.handle.pop_queued() {
                        match timeout(stall_timeout, w.write_all(&frame)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => return Ending::new(close::INTERNAL, "write failed"),
                            Err(_) => {
                                return Ending::new(close::SLOW_CONSUMER, "slow consumer: socket stopped draining")
                            }
                        }
                    }
                    if w.flush().await.is_err() {
                        return Ending::new(close::INTERNAL, "write failed");
                    }
                    false
                }
                None => match self.handle.flush_direct() {
                    Ok(flushed) => {
                        // "Stopped draining" means no progress at all: a reader that takes a
                        // little at a time restarts the stall clock.
                        if flushed.progressed {
                            stalled_since = None;
                        }
                        !flushed.done
                    }
                    Err(_) => return Ending::new(close::INTERNAL, "write failed"),
                },
            };
            let stall_deadline = match (backlog, stalled_since) {
                (false, _) => {
                    stalled_since = None;
                    None
                }
                (true, None) => {
                    let now = Instant::now();
                    stalled_since = Some(now);
                    Some(now + stall_timeout)
                }
                (true, Some(since)) => Some(since + stall_timeout),
            };
            let warn_at = self.token_warning_at();
            let expire_at = self.token_expiry_at();
            // One timer for all four deadlines: every future in the select below is part of
            // this task's state for the session's whole life, and a timer is ~100 bytes.
            let next = [stall_deadline, Some(deadline), warn_at, expire_at].into_iter().flatten().min();
            let next = next.unwrap_or(deadline);
            let direct = self.handle.clone();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ending::new(close::SHUTDOWN, "server shutting down"),
                // Out of descriptors, sockets that have not logged in go first.
                _ = self.ticket.shed(), if self.user.is_none() => return Ending::new(0, "shed before login"),
                _ = self.handle.woken() => {}
                read = reader.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return Ending::new(0, "peer went away"),
                    Ok(_) => {}
                },
                _ = async { direct.direct().expect("backlog implies a direct socket").writable().await }, if backlog => {}
                _ = sleep_until(next) => {
                    let now = Instant::now();
                    if stall_deadline.is_some_and(|d| d <= now) {
                        return Ending::new(close::SLOW_CONSUMER, "slow consumer: socket stopped draining");
                    }
                    if deadline <= now {
                        return if self.user.is_some() {
                            Ending::new(close::HEARTBEAT_TIMEOUT, "heartbeat timeout")
                        } else {
                            Ending::new(close::LOGIN_TIMEOUT, "no login within the deadline")
                        };
                    }
                    if warn_at.is_some_and(|w| w <= now) {
                        self.warn_token();
                    }
                    if expire_at.is_some_and(|e| e <= now) {
                        if let Some(end) = self.end_if_token_expired() {
                            return end;
                        }
                    }
                }
            }
        }
    }

    /// When the `token_will_expire` event is due, if it has not been sent.
    fn token_warning_at(&self) -> Option<Instant> {
        let user = self.user.as_ref()?;
        if user.token_warning_sent {
            return None;
        }
        let due_s = user.token_expire_s - TOKEN_WARNING_S - self.gw.clock.now_s();
        Some(Instant::now() + Duration::from_secs(due_s.max(0) as u64))
    }

    /// When the session's token runs out, if the clock says so then.
    fn token_expiry_at(&self) -> Option<Instant> {
        let user = self.user.as_ref()?;
        let left_s = user.token_expire_s - self.gw.clock.now_s();
        Some(Instant::now() + Duration::from_secs(left_s.max(0) as u64))
    }

    /// A token that ran out without `renew_token` ends its session (ZIM's TokenExpired): a
    /// short-lived token means a short session. The client is told why first (6000106), then
    /// closed with 4502, after which SDKs do not reconnect with the same token.
    fn end_if_token_expired(&mut self) -> Option<Ending> {
        let expire = self.user.as_ref()?.token_expire_s;
        let now = self.gw.clock.now_s();
        (expire <= now).then(|| self.refuse(0, Refusal::SessionTokenExpired { expire }))?
    }

    fn warn_token(&mut self) {
        let now = self.gw.clock.now_s();
        if let Some(user) = self.user.as_mut() {
            let seconds = (user.token_expire_s - now).max(0);
            user.token_warning_sent = true;
            self.send(&ServerFrame::TokenWillExpire { seconds });
        }
    }

    fn send(&self, f: &ServerFrame) {
        self.handle.send(&ws::server_frame(Opcode::Text, &frame::encode_server(f)));
    }

    /// Answers request `id` with an `error` frame; ends the session when the refusal does.
    fn refuse(&self, id: u64, refusal: Refusal) -> Option<Ending> {
        self.send(&ServerFrame::Error { id, code: refusal.sdk_code(), message: refusal.to_string() });
        refusal.close_code().map(|code| Ending::new(code, "request refused"))
    }

    fn take_flood_token(&mut self) -> bool {
        let rate = f64::from(self.gw.cfg.client_frames_per_second);
        let now = Instant::now();
        let refill = now.duration_since(self.flood_at).as_secs_f64() * rate;
        self.flood_tokens = (self.flood_tokens + refill).min(rate * 2.0);
        self.flood_at = now;
        if self.flood_tokens >= 1.0 {
            self.flood_tokens -= 1.0;
            true
        } else {
            false
        }
    }

    async fn on_message(&mut self, msg: Message) -> Option<Ending> {
        if !self.take_flood_token() {
            return Some(Ending::new(close::FLOOD, "too many frames"));
        }
        match msg {
            Message::Text(text) => match frame::decode_client(&text) {
                Ok(f) => self.on_frame(f).await,
                // A frame that cannot be parsed has no id to answer to: 0.
                Err(e) => self.refuse(0, Refusal::BadFrame(e.to_string())),
            },
            Message::Binary(_) => self.refuse(0, Refusal::Binary),
            Message::Ping(payload) => {
                self.handle.send(&ws::server_frame(Opcode::Pong, &payload));
                None
            }
            Message::Pong(_) => None,
            Message::Close(..) => Some(Ending::new(close::NORMAL, "client closed")),
        }
    }

    async fn on_frame(&mut self, f: ClientFrame) -> Option<Ending> {
        let id = f.id();
        let gw = &*self.gw;
        let answer = match (f, &mut self.user) {
            (ClientFrame::Login(login), None) => {
                // Only configured apps become label values: a client cannot grow the registry.
                let app = if gw.apps.contains_key(&login.app_id) { login.app_id.to_string() } else { "unknown".into() };
                // Boxed, as it runs once: its state need not be part of the session's for life.
                match Box::pin(requests::login(gw, &self.handle, login)).await {
                    Ok(user) => {
                        // `login_ok` went out through the hub.
                        gw.metrics.logins.inc(&[&app, "ok"]);
                        self.ticket.authenticated();
                        self.user = Some(user);
                        return None;
                    }
                    Err(refusal) => {
                        gw.metrics.logins.inc(&[&app, &refusal.sdk_code().to_string()]);
                        Err(refusal)
                    }
                }
            }
            (ClientFrame::Login(_), Some(_)) => Err(Refusal::AlreadyLoggedIn),
            (_, None) => Err(Refusal::NotLoggedIn),
            (ClientFrame::Ping { id }, Some(_)) => Ok(ServerFrame::Pong { id }),
            (ClientFrame::SetPushId { id, push_id, provider }, Some(user)) => {
                Box::pin(requests::set_push_id(gw, user, push_id, &provider))
                    .await
                    .map(|()| ServerFrame::Ack { id, token_expire: None })
            }
            (ClientFrame::RenewToken { id, token }, Some(user)) => requests::renew_token(gw, user, &token)
                .map(|expire| ServerFrame::Ack { id, token_expire: Some(expire) }),
            (ClientFrame::Logout { id }, Some(user)) => match Box::pin(requests::logout(gw, user)).await {
                Ok(()) => {
                    self.send(&ServerFrame::Ack { id, token_expire: None });
                    return Some(Ending::new(close::NORMAL, "logged out"));
                }
                Err(refusal) => Err(refusal),
            },
        };
        match answer {
            Ok(frame) => {
                self.send(&frame);
                None
            }
            Err(refusal) => self.refuse(id, refusal),
        }
    }

    /// Leaves the hub and presence, and performs the closing handshake, best effort and bounded
    /// in time: frames the client is owed, the close frame, the end of our side, then a short
    /// drain of the client's side so the close frame is read rather than reset away.
    async fn finish<R: AsyncRead + Unpin>(
        self,
        Ending { code, detail }: Ending,
        queued: Option<Box<dyn AsyncWrite + Unpin + Send>>,
        reader: &mut R,
    ) {
        if let Some(user) = &self.user {
            self.gw.hub.leave(user.app_id, &user.user_id, user.session_id);
            if let Err(e) = self.gw.presence.session_ended(user.session_id).await {
                tracing::warn!(error = %e, "could not clear the session from presence");
            }
            tracing::debug!(session_id = user.session_id, code, detail, "session closed");
        }
        self.gw.metrics.session_closes.inc(&[&code.to_string()]);
        if code == 0 {
            return; // the peer is gone; nothing to say
        }
        if code == close::SLOW_CONSUMER {
            // What the reader never took is dropped rather than waited for, all but a frame
            // already partly written: cutting that would garble the stream before the close.
            self.handle.abandon_backlog();
        }
        let close = ws::close_frame(code, close::reason(code));
        let said = match queued {
            Some(mut w) => timeout(CLOSE_WRITE_TIMEOUT, async {
                while let Some(frame) = self.handle.pop_queued() {
                    w.write_all(&frame).await?;
                }
                w.write_all(&close).await?;
                w.shutdown().await
            })
            .await
            .is_ok_and(|r| r.is_ok()),
            None => timeout(CLOSE_WRITE_TIMEOUT, async {
                let socket = self.handle.direct().expect("direct transport");
                while !self.handle.flush_direct()?.done {
                    socket.writable().await?;
                }
                let mut sent = 0;
                while sent < close.len() {
                    socket.writable().await?;
                    match socket.try_write(&close[sent..]) {
                        Ok(n) => sent += n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                socket2::SockRef::from(socket.as_ref()).shutdown(std::net::Shutdown::Write)
            })
            .await
            .is_ok_and(|r| r.is_ok()),
        };
        if said {
            // A socket closed with unread input is reset, and a reset can destroy what the
            // client has not read yet — the close frame above all (a flooding client has plenty
            // in flight). So its input is read and thrown away until it closes too, briefly.
            // On the heap, and only now: a buffer in this future's state would sit in every
            // session's task for its whole life (4 KB each, doubling memory per connection).
            let mut sink = vec![0u8; 4096];
            let _ =
                timeout(CLOSE_DRAIN_TIMEOUT, async { while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {} })
                    .await;
        }
    }
}
