//! One task per connection: it owns the socket's read side, performs the protocol (login,
//! heartbeat, push ID, token renewal, logout) and drains the outbox when the kernel could not take
//! a frame at once. It ends by leaving the hub and closing with a code from docs/protocol.md.

use super::conn::{Conn, OutboxLimits};
use super::Gateway;
use bytes::{Bytes, BytesMut};
use herald_proto::frame::{self, ClientFrame, Login, ServerFrame};
use herald_proto::version::{SdkVersion, BROADCAST_MIN};
use herald_proto::ws::{self, Decoder, Message, Opcode, Role, WsError};
use herald_proto::{close, code, token04};
use herald_store::{PushBinding, PushProvider};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::{sleep_until, timeout, Instant};

/// The SDK is told this long before its token expires (ZIM: 30 s).
const TOKEN_WARNING_S: i64 = 30;
/// How long the closing handshake may take to write once the session is over.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How frames reach the socket.
pub enum Writer {
    /// Plain TCP: the fan-out writes directly; the session flushes only what the kernel refused.
    Direct(OwnedWriteHalf),
    /// Any other stream (TLS): the session task writes everything from the outbox.
    Queued(Box<dyn AsyncWrite + Unpin + Send>),
}

/// Why a session ends: the close code and a reason for the close frame.
type Ending = (u16, &'static str);

struct LoggedIn {
    app_id: u32,
    user_id: String,
    device_id: String,
    session_id: u64,
    token_expire_s: i64,
    /// `token_will_expire` went out for this token; a renewal clears it.
    token_warning_sent: bool,
}

struct Session {
    gw: Arc<Gateway>,
    conn: Arc<Conn>,
    user: Option<LoggedIn>,
    /// Token bucket for client frames: tokens left and when they were last topped up.
    flood_tokens: f64,
    flood_at: Instant,
}

pub async fn run<R: AsyncRead + Unpin>(gw: Arc<Gateway>, mut reader: R, writer: Writer, leftover: Bytes) {
    let limits = OutboxLimits { frames: gw.cfg.outbox_frames, bytes: gw.cfg.outbox_bytes };
    let (direct, mut queued) = match writer {
        Writer::Direct(w) => (Some(w), None),
        Writer::Queued(w) => (None, Some(w)),
    };
    let conn = Arc::new(Conn::new(direct, limits));
    let burst = f64::from(gw.cfg.client_frames_per_second) * 2.0;
    let mut s = Session { gw, conn, user: None, flood_tokens: burst, flood_at: Instant::now() };
    let ending = s.drive(&mut reader, &mut queued, leftover).await;
    s.finish(ending, queued).await;
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
                        return (close::FRAME_TOO_LARGE, "frame larger than the server accepts")
                    }
                    Err(_) => return (close::BAD_FRAME, "malformed WebSocket frame"),
                }
            }
            if let Some(end) = self.conn.close_requested() {
                return end;
            }
            // Drain what the fan-out or this task queued.
            let backlog = match queued {
                Some(w) => {
                    while let Some(frame) = self.conn.pop_queued() {
                        match timeout(stall_timeout, w.write_all(&frame)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => return (close::INTERNAL, "write failed"),
                            Err(_) => return (close::SLOW_CONSUMER, "slow consumer: socket stopped draining"),
                        }
                    }
                    if w.flush().await.is_err() {
                        return (close::INTERNAL, "write failed");
                    }
                    false
                }
                None => match self.conn.flush_direct() {
                    Ok(flushed) => {
                        // "Stopped draining" means no progress at all: a reader that takes a
                        // little at a time restarts the stall clock.
                        if flushed.progressed {
                            stalled_since = None;
                        }
                        !flushed.done
                    }
                    Err(_) => return (close::INTERNAL, "write failed"),
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
            let direct = self.conn.clone();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return (close::SHUTDOWN, "server shutting down"),
                _ = self.conn.woken() => {}
                read = reader.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return (0, "peer went away"),
                    Ok(_) => {}
                },
                _ = async { direct.direct().expect("backlog implies a direct socket").writable().await }, if backlog => {}
                _ = sleep_until(stall_deadline.unwrap_or(deadline)), if stall_deadline.is_some() => {
                    return (close::SLOW_CONSUMER, "slow consumer: socket stopped draining");
                }
                _ = sleep_until(deadline) => {
                    return if self.user.is_some() {
                        (close::HEARTBEAT_TIMEOUT, "heartbeat timeout")
                    } else {
                        (close::LOGIN_TIMEOUT, "no login within the deadline")
                    };
                }
                _ = sleep_until(warn_at.unwrap_or(deadline)), if warn_at.is_some() => self.warn_token(),
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

    fn warn_token(&mut self) {
        let now = self.gw.clock.now_s();
        if let Some(user) = self.user.as_mut() {
            let seconds = (user.token_expire_s - now).max(0);
            user.token_warning_sent = true;
            self.send(&ServerFrame::TokenWillExpire { seconds });
        }
    }

    fn send(&self, f: &ServerFrame) {
        self.conn.send(&ws::server_frame(Opcode::Text, &frame::encode_server(f)));
    }

    fn error(&self, id: u64, code: u32, message: impl Into<String>) {
        self.send(&ServerFrame::Error { id, code, message: message.into() });
    }

    /// Refuses a request with an `error` frame and ends the session with `close_code`.
    fn fail(&self, id: u64, code: u32, message: impl Into<String>, ending: Ending) -> Option<Ending> {
        self.error(id, code, message);
        Some(ending)
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
            return Some((close::FLOOD, "too many frames"));
        }
        match msg {
            Message::Text(text) => match frame::decode_client(&text) {
                Ok(f) => self.on_frame(f).await,
                Err(e) => self.fail(
                    0,
                    code::SDK_BAD_FRAME,
                    format!("malformed frame: {e}"),
                    (close::BAD_FRAME, "malformed frame"),
                ),
            },
            Message::Binary(_) => self.fail(
                0,
                code::SDK_BAD_FRAME,
                "binary messages are not part of protocol v1; send JSON text frames",
                (close::BAD_FRAME, "binary message"),
            ),
            Message::Ping(payload) => {
                self.conn.send(&ws::server_frame(Opcode::Pong, &payload));
                None
            }
            Message::Pong(_) => None,
            Message::Close(..) => Some((close::NORMAL, "")),
        }
    }

    async fn on_frame(&mut self, f: ClientFrame) -> Option<Ending> {
        let id = f.id();
        let not_logged_in = (close::NOT_LOGGED_IN, "frame before login");
        match f {
            ClientFrame::Login(login) if self.user.is_none() => self.login(login).await,
            ClientFrame::Login(_) => {
                self.fail(id, code::SDK_NOT_LOGGED_IN, "already logged in", (close::NOT_LOGGED_IN, "second login"))
            }
            _ if self.user.is_none() => self.fail(id, code::SDK_NOT_LOGGED_IN, "log in first", not_logged_in),
            ClientFrame::Ping { id } => {
                self.send(&ServerFrame::Pong { id });
                None
            }
            ClientFrame::SetPushId { id, push_id, provider } => {
                self.set_push_id(id, push_id, &provider).await;
                None
            }
            ClientFrame::RenewToken { id, token } => {
                self.renew_token(id, &token);
                None
            }
            ClientFrame::Logout { id } => {
                let user = self.user.as_ref().expect("checked above");
                if let Err(e) = self.gw.store.unbind_push(user.app_id, &user.user_id, &user.device_id).await {
                    tracing::warn!(error = %e, "could not remove the push binding at logout");
                    self.error(id, code::DB_FAILED, "could not remove the push binding; try again");
                    return None;
                }
                self.send(&ServerFrame::Ack { id, token_expire: None });
                Some((close::NORMAL, "logged out"))
            }
        }
    }

    async fn login(&mut self, login: Login) -> Option<Ending> {
        let id = login.id;
        let failed = (close::LOGIN_FAILED, "login failed");
        let Some(app) = self.gw.apps.get(&login.app_id).cloned() else {
            return self.fail(id, code::SDK_TOKEN_INVALID_OR_APP, format!("unknown AppID {}", login.app_id), failed);
        };
        let now_s = self.gw.clock.now_s();
        let token = match token04::verify(&login.token, app.server_secret.expose(), app.app_id, &login.user_id, now_s) {
            Ok(t) => t,
            Err(e) => {
                let ending = if matches!(e, token04::TokenError::Expired { .. }) {
                    (close::TOKEN_EXPIRED, "token expired")
                } else {
                    failed
                };
                return self.fail(id, e.sdk_code(), e.to_string(), ending);
            }
        };
        if let Err(e) = herald_proto::user_id::check_user_id(&login.user_id) {
            return self.fail(id, code::SDK_FIELD_INVALID, format!("user_id: {e}"), failed);
        }
        let version: SdkVersion = match login.sdk_version.parse() {
            Ok(v) => v,
            Err(e) => {
                return self.fail(
                    id,
                    code::SDK_FIELD_INVALID,
                    format!("sdk_version: {e}"),
                    (close::UNSUPPORTED_VERSION, "bad sdk_version"),
                )
            }
        };
        let device_max = self.gw.cfg.device_id_max_bytes;
        if login.device_id.is_empty() || login.device_id.len() > device_max {
            let msg = format!(
                "device_id must be 1..={device_max} bytes (gateway.device_id_max_bytes), got {}",
                login.device_id.len()
            );
            return self.fail(id, code::SDK_FIELD_INVALID, msg, failed);
        }
        let user_name = login.user_name.unwrap_or_default();
        let name_max = app.limits.user_name_max_bytes;
        if user_name.len() > name_max {
            let msg =
                format!("user_name is {} bytes; at most {name_max} (apps.limits.user_name_max_bytes)", user_name.len());
            return self.fail(id, code::SDK_FIELD_INVALID, msg, failed);
        }
        // A first login registers the user, as in ZIM.
        if let Err(e) = self.gw.store.ensure_user(app.app_id, &login.user_id, &user_name, self.gw.clock.now_ms()).await
        {
            tracing::warn!(error = %e, "store failed at login");
            return self.fail(
                id,
                code::DB_FAILED,
                "server storage failed; try again",
                (close::INTERNAL, "store failed"),
            );
        }
        let session_id = self.gw.ids.next();
        let max = self.gw.cfg.max_sessions_per_user;
        if let Err(e) = self.gw.hub.reserve(app.app_id, &login.user_id, &login.device_id, session_id, &self.conn, max) {
            return self.fail(
                id,
                code::SDK_TOO_MANY_SESSIONS,
                e.to_string(),
                (close::TOO_MANY_SESSIONS, "too many sessions"),
            );
        }
        if let Some(node) = self.gw.cluster_node {
            let now_ms = self.gw.clock.now_ms();
            if let Err(e) =
                self.gw.store.presence_session_started(app.app_id, &login.user_id, session_id, node, now_ms).await
            {
                tracing::warn!(error = %e, "could not record the session for cluster presence");
                self.gw.hub.leave(app.app_id, &login.user_id, session_id);
                return self.fail(
                    id,
                    code::DB_FAILED,
                    "server storage failed; try again",
                    (close::INTERNAL, "store failed"),
                );
            }
        }
        let expire = token.claims.expire;
        let login_ok = ServerFrame::LoginOk {
            id,
            session_id: session_id.to_string(),
            heartbeat_ms: self.gw.cfg.heartbeat_interval_ms,
            timeout_ms: self.gw.cfg.heartbeat_timeout_ms,
            token_expire: expire,
            server_time_ms: self.gw.clock.now_ms(),
        };
        let greeting = ws::server_frame(Opcode::Text, &frame::encode_server(&login_ok));
        self.gw.hub.activate(app.app_id, session_id, self.conn.clone(), version >= BROADCAST_MIN, &greeting);
        self.user = Some(LoggedIn {
            app_id: app.app_id,
            user_id: login.user_id,
            device_id: login.device_id,
            session_id,
            token_expire_s: expire,
            token_warning_sent: false,
        });
        tracing::debug!(session_id, app_id = app.app_id, platform = %login.platform, "session logged in");
        None
    }

    async fn set_push_id(&self, id: u64, push_id: String, provider: &str) {
        let Some(provider) = PushProvider::parse(provider) else {
            return self.error(
                id,
                code::SDK_FIELD_INVALID,
                format!("unknown push provider {provider:?}; use fcm, apns or webhook"),
            );
        };
        let max = self.gw.cfg.push_id_max_bytes;
        if push_id.is_empty() || push_id.len() > max {
            return self.error(
                id,
                code::SDK_FIELD_INVALID,
                format!("push_id must be 1..={max} bytes (gateway.push_id_max_bytes)"),
            );
        }
        let user = self.user.as_ref().expect("only called logged in");
        let binding = PushBinding {
            app_id: user.app_id,
            user_id: user.user_id.clone(),
            device_id: user.device_id.clone(),
            push_id,
            provider,
            updated_at_ms: self.gw.clock.now_ms(),
        };
        match self.gw.store.bind_push(&binding).await {
            Ok(()) => self.send(&ServerFrame::Ack { id, token_expire: None }),
            Err(e) => {
                tracing::warn!(error = %e, "could not store a push binding");
                self.error(id, code::DB_FAILED, "could not store the push ID; try again")
            }
        }
    }

    fn renew_token(&mut self, id: u64, token: &str) {
        let user = self.user.as_ref().expect("only called logged in");
        let Some(app) = self.gw.apps.get(&user.app_id) else { return };
        let now_s = self.gw.clock.now_s();
        match token04::verify(token, app.server_secret.expose(), user.app_id, &user.user_id, now_s) {
            Ok(t) if t.claims.expire - now_s < TOKEN_WARNING_S => self.error(
                id,
                code::SDK_TOKEN_TOO_SHORT,
                format!(
                    "the new token is valid for {} s; at least {TOKEN_WARNING_S} s are needed",
                    t.claims.expire - now_s
                ),
            ),
            Ok(t) => {
                let expire = t.claims.expire;
                if let Some(user) = self.user.as_mut() {
                    user.token_expire_s = expire;
                    user.token_warning_sent = false;
                }
                self.send(&ServerFrame::Ack { id, token_expire: Some(expire) });
            }
            Err(e) => self.error(id, e.sdk_code(), e.to_string()),
        }
    }

    /// Leaves the hub and performs the closing handshake, best effort and bounded in time.
    async fn finish(self, (code, reason): Ending, queued: Option<Box<dyn AsyncWrite + Unpin + Send>>) {
        if let Some(user) = &self.user {
            self.gw.hub.leave(user.app_id, &user.user_id, user.session_id);
            if self.gw.cluster_node.is_some() {
                if let Err(e) = self.gw.store.presence_session_ended(user.session_id).await {
                    tracing::warn!(error = %e, "could not clear the session from cluster presence");
                }
            }
            tracing::debug!(session_id = user.session_id, code, reason, "session closed");
        }
        if code == 0 {
            return; // the peer is gone; nothing to say
        }
        let close = ws::close_frame(code, reason);
        match queued {
            Some(mut w) => {
                let _ = timeout(CLOSE_WRITE_TIMEOUT, async {
                    while let Some(frame) = self.conn.pop_queued() {
                        w.write_all(&frame).await?;
                    }
                    w.write_all(&close).await?;
                    w.shutdown().await
                })
                .await;
            }
            None => {
                // Frames the client is owed (an error frame, a logout ack) go first; a slow
                // consumer's backlog is abandoned rather than waited for.
                let _ = timeout(CLOSE_WRITE_TIMEOUT, async {
                    let socket = self.conn.direct().expect("direct transport");
                    if code != close::SLOW_CONSUMER {
                        while !self.conn.flush_direct()?.done {
                            socket.writable().await?;
                        }
                    }
                    if !self.conn.has_backlog() {
                        let mut sent = 0;
                        while sent < close.len() {
                            socket.writable().await?;
                            match socket.try_write(&close[sent..]) {
                                Ok(n) => sent += n,
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    Ok::<(), std::io::Error>(())
                })
                .await;
            }
        }
    }
}
