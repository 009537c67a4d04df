//! The task that owns the socket: heartbeat, requests, events, and reconnects.
//!
//! [`Client`](crate::Client) handles talk to it over a bounded command channel; it answers each
//! request on a oneshot. Requests that cannot be answered on the current connection (it dropped
//! with the request in flight, or it was down when the request came) wait for the next login and
//! are sent again then, so a reconnect is invisible to a caller that is willing to wait.

use std::collections::HashMap;
use std::mem;

use futures_util::StreamExt;
use herald_proto::frame::{decode_server, ClientFrame, ServerFrame};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{interval_at, sleep_until, timeout, Duration, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::backoff::Backoff;
use crate::conn::{self, Accepted, Ws};
use crate::dedup::Dedup;
use crate::{ClientConfig, ConnectionEvent, ConnectionState, Event, SdkError};

pub(crate) type Reply<T> = oneshot::Sender<Result<T, SdkError>>;

/// What a [`Client`](crate::Client) asks of the task.
#[derive(Debug)]
pub(crate) enum Command {
    SetPushId { push_id: String, provider: String, reply: Reply<()> },
    RenewToken { token: String, reply: Reply<i64> },
    Logout { reply: Reply<()> },
}

/// What handles can read without asking the task.
#[derive(Clone, Debug)]
pub(crate) struct Status {
    pub(crate) state: ConnectionState,
    pub(crate) session_id: Option<String>,
}

/// A request sent on the current connection, by id.
#[derive(Debug)]
enum Pending {
    Ping,
    /// The push ID and provider sent, and who waits for the answer.
    PushId {
        sent: (String, String),
        replies: Vec<Reply<()>>,
    },
    Renew {
        token: String,
        reply: Reply<i64>,
    },
    Logout(Vec<Reply<()>>),
}

/// Requests waiting for the next login.
#[derive(Debug, Default)]
struct Waiting {
    push_id: Vec<Reply<()>>,
    /// Answered with the expiry from the next `login_ok`, which used the newest token.
    renew: Vec<Reply<i64>>,
    logout: Vec<Reply<()>>,
}

/// Why a connection, or the whole session, ended.
#[derive(Debug)]
enum Ended {
    /// Worth reconnecting; the string is the state change's `extended_data`.
    Interrupted(String),
    /// The server will not take this client back as it is.
    Terminal {
        event: ConnectionEvent,
        error: SdkError,
    },
    /// Reconnect attempts ran out.
    GaveUp(SdkError),
    LoggedOut(Vec<Reply<()>>),
    /// Every `Client` was dropped.
    Dropped,
}

pub(crate) struct Session {
    config: ClientConfig,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
    status: watch::Sender<Status>,
    dedup: Dedup,
    backoff: Backoff,
    /// Index into `config.urls` of the node we are (or were last) connected to.
    url_index: usize,
    next_id: u64,
    /// The last push ID the app set, sent again after every login.
    push_id: Option<(String, String)>,
    /// The `messageID` of the newest broadcast delivered to the app (or the one it restored):
    /// every re-login asks the server for what came after it.
    newest: Option<String>,
    pending: HashMap<u64, Pending>,
    waiting: Waiting,
}

impl Session {
    pub(crate) fn new(
        config: ClientConfig,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
        status: watch::Sender<Status>,
        url_index: usize,
        next_id: u64,
    ) -> Self {
        Self {
            newest: config.since.clone(),
            dedup: Dedup::new(config.dedup_capacity),
            backoff: Backoff::new(config.reconnect.clone()),
            config,
            commands,
            events,
            status,
            url_index,
            next_id,
            push_id: None,
            pending: HashMap::new(),
            waiting: Waiting::default(),
        }
    }

    /// Runs the session from its first accepted login until it ends for good.
    pub(crate) async fn run(mut self, ws: Ws, accepted: Accepted) {
        self.emit_state(ConnectionState::Connecting, ConnectionEvent::ActiveLogin, String::new()).await;
        self.emit_state(ConnectionState::Connected, ConnectionEvent::Success, accepted.extended_data()).await;
        let mut connection = Some((ws, accepted));
        loop {
            let (ws, accepted) = match connection.take() {
                Some(connection) => connection,
                None => match self.reconnect().await {
                    Ok(connection) => connection,
                    Err(end) => return self.finish(end).await,
                },
            };
            match self.serve(ws, accepted).await {
                Ended::Interrupted(extended_data) => {
                    self.requeue_pending();
                    self.set_status(ConnectionState::Reconnecting, None);
                    self.emit_state(ConnectionState::Reconnecting, ConnectionEvent::LoginInterrupted, extended_data)
                        .await;
                }
                end => return self.finish(end).await,
            }
        }
    }

    /// Logs in again, at the next URL each time, waiting out the backoff between attempts.
    async fn reconnect(&mut self) -> Result<(Ws, Accepted), Ended> {
        let mut last_error = SdkError::Connect("connection lost".to_owned());
        loop {
            let Some(delay) = self.backoff.next_delay() else {
                return Err(Ended::GaveUp(last_error));
            };
            let deadline = Instant::now() + delay;
            loop {
                tokio::select! {
                    () = sleep_until(deadline) => break,
                    command = self.commands.recv() => match command {
                        Some(command) => self.defer(command),
                        None => return Err(Ended::Dropped),
                    },
                }
            }
            self.url_index = (self.url_index + 1) % self.config.urls.len();
            let url = self.config.urls[self.url_index].clone();
            let id = self.next_id();
            match conn::login(&url, &self.config, id, self.newest.as_deref()).await {
                Ok((ws, accepted)) => {
                    tracing::info!(%url, session_id = %accepted.session_id, recovered = ?accepted.recovered, "reconnected");
                    self.backoff.reset();
                    self.set_status(ConnectionState::Connected, Some(accepted.session_id.clone()));
                    self.emit_state(ConnectionState::Connected, ConnectionEvent::Success, accepted.extended_data())
                        .await;
                    return Ok((ws, accepted));
                }
                Err(failure) => {
                    tracing::warn!(%url, error = %failure.error, "reconnect failed");
                    if let Some(event) = failure.terminal {
                        return Err(Ended::Terminal { event, error: failure.error });
                    }
                    last_error = failure.error;
                }
            }
        }
    }

    /// Serves one logged-in connection until it ends.
    async fn serve(&mut self, mut ws: Ws, accepted: Accepted) -> Ended {
        if let Err(end) = self.after_login(&mut ws, &accepted).await {
            return end;
        }
        let start = Instant::now();
        let mut ping = interval_at(start + accepted.heartbeat, accepted.heartbeat);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = start;
        loop {
            let step = tokio::select! {
                message = ws.next() => {
                    last_heard = Instant::now();
                    self.on_message(&mut ws, message).await
                }
                command = self.commands.recv() => self.on_command(&mut ws, command).await,
                _ = ping.tick() => {
                    let id = self.next_id();
                    self.request(&mut ws, id, ClientFrame::Ping { id }, Pending::Ping).await
                }
                () = sleep_until(last_heard + accepted.silence_limit) => {
                    Err(Ended::Interrupted(r#"{"reason":"server silent past timeout_ms"}"#.to_owned()))
                }
            };
            if let Err(end) = step {
                if !matches!(end, Ended::LoggedOut(_)) {
                    close(&mut ws, CloseCode::Normal, "").await;
                }
                return end;
            }
        }
    }

    /// Restores what the app set on the previous connection and answers requests that waited.
    async fn after_login(&mut self, ws: &mut Ws, accepted: &Accepted) -> Result<(), Ended> {
        for reply in mem::take(&mut self.waiting.renew) {
            let _ = reply.send(Ok(accepted.token_expire));
        }
        let replies = mem::take(&mut self.waiting.push_id);
        match self.push_id.clone() {
            Some(sent) => {
                let id = self.next_id();
                let frame = ClientFrame::SetPushId { id, push_id: sent.0.clone(), provider: sent.1.clone() };
                self.request(ws, id, frame, Pending::PushId { sent, replies }).await?;
            }
            // Only when the server refused the same push ID on a request sent after these.
            None => replies.into_iter().for_each(|r| drop(r.send(Err(SdkError::Protocol("push ID refused".into()))))),
        }
        let logout = mem::take(&mut self.waiting.logout);
        if !logout.is_empty() {
            let id = self.next_id();
            self.request(ws, id, ClientFrame::Logout { id }, Pending::Logout(logout)).await?;
        }
        Ok(())
    }

    async fn on_message(
        &mut self,
        ws: &mut Ws,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), Ended> {
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(e)) => return Err(interrupted(&e.to_string())),
            None => return Err(interrupted("connection closed")),
        };
        match message {
            Message::Text(text) => match decode_server(text.as_bytes()) {
                Ok(frame) => self.on_frame(ws, frame).await,
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable server frame ignored");
                    Ok(())
                }
            },
            Message::Close(frame) => {
                let (code, reason) = conn::close_parts(frame.as_ref());
                Err(self.on_close(code, reason))
            }
            _ => Ok(()),
        }
    }

    async fn on_frame(&mut self, ws: &mut Ws, frame: ServerFrame) -> Result<(), Ended> {
        match frame {
            ServerFrame::Bcast { msg } => {
                if self.dedup.first_seen(&msg.message_id) {
                    self.newest = Some(msg.message_id.clone());
                    self.emit(Event::BroadcastMessageReceived(msg)).await;
                } else {
                    tracing::debug!(message_id = %msg.message_id, "duplicate broadcast dropped");
                }
            }
            ServerFrame::TokenWillExpire { seconds } => self.emit(Event::TokenWillExpire { seconds }).await,
            ServerFrame::Pong { id } => {
                self.pending.remove(&id);
            }
            ServerFrame::Ack { id, token_expire } => match self.pending.remove(&id) {
                Some(Pending::PushId { replies, .. }) => replies.into_iter().for_each(|r| drop(r.send(Ok(())))),
                Some(Pending::Renew { token, reply }) => {
                    let answer = match token_expire {
                        Some(expire) => {
                            self.config.token = token;
                            Ok(expire)
                        }
                        None => Err(SdkError::Protocol("renew_token ack without token_expire".to_owned())),
                    };
                    let _ = reply.send(answer);
                }
                Some(Pending::Logout(replies)) => {
                    // The server closes with 1000 next; finish the closing handshake politely.
                    close(ws, CloseCode::Normal, "logout").await;
                    return Err(Ended::LoggedOut(replies));
                }
                Some(Pending::Ping) | None => {}
            },
            ServerFrame::Error { id, code, message } => {
                let error = SdkError::Server { code, message };
                match self.pending.remove(&id) {
                    Some(Pending::PushId { sent, replies }) => {
                        // Refused once, refused after every reconnect: forget it.
                        if self.push_id.as_ref() == Some(&sent) {
                            self.push_id = None;
                        }
                        replies.into_iter().for_each(|r| drop(r.send(Err(error.clone()))));
                    }
                    Some(Pending::Renew { reply, .. }) => drop(reply.send(Err(error))),
                    Some(Pending::Logout(replies)) => {
                        replies.into_iter().for_each(|r| drop(r.send(Err(error.clone()))));
                    }
                    Some(Pending::Ping) | None => tracing::warn!(id, %error, "server error"),
                }
            }
            ServerFrame::LoginOk { .. } => tracing::warn!("unexpected login_ok ignored"),
        }
        Ok(())
    }

    fn on_close(&mut self, code: u16, reason: String) -> Ended {
        let logging_out = self.pending.values().any(|p| matches!(p, Pending::Logout(_)));
        if code == herald_proto::close::NORMAL && logging_out {
            // The ack was lost but the server did log us out.
            let replies = self.pending.drain().flat_map(|(_, p)| match p {
                Pending::Logout(replies) => replies,
                _ => Vec::new(),
            });
            return Ended::LoggedOut(replies.collect());
        }
        let error = SdkError::Closed { code, reason };
        match conn::terminal_event(code, &error) {
            Some(event) => Ended::Terminal { event, error },
            None => Ended::Interrupted(error.extended_data()),
        }
    }

    async fn on_command(&mut self, ws: &mut Ws, command: Option<Command>) -> Result<(), Ended> {
        let Some(command) = command else {
            return Err(Ended::Dropped);
        };
        let id = self.next_id();
        match command {
            Command::SetPushId { push_id, provider, reply } => {
                let sent = (push_id.clone(), provider.clone());
                self.push_id = Some(sent.clone());
                let frame = ClientFrame::SetPushId { id, push_id, provider };
                self.request(ws, id, frame, Pending::PushId { sent, replies: vec![reply] }).await
            }
            Command::RenewToken { token, reply } => {
                let frame = ClientFrame::RenewToken { id, token: token.clone() };
                self.request(ws, id, frame, Pending::Renew { token, reply }).await
            }
            Command::Logout { reply } => {
                self.request(ws, id, ClientFrame::Logout { id }, Pending::Logout(vec![reply])).await
            }
        }
    }

    /// Records the request before sending it, so a failed send leaves it to be retried.
    async fn request(&mut self, ws: &mut Ws, id: u64, frame: ClientFrame, pending: Pending) -> Result<(), Ended> {
        self.pending.insert(id, pending);
        conn::send(ws, &frame).await.map_err(|e| interrupted(&e.to_string()))
    }

    /// Takes a request that arrived while no connection was up.
    fn defer(&mut self, command: Command) {
        match command {
            Command::SetPushId { push_id, provider, reply } => {
                self.push_id = Some((push_id, provider));
                self.waiting.push_id.push(reply);
            }
            Command::RenewToken { token, reply } => {
                self.config.token = token;
                self.waiting.renew.push(reply);
            }
            Command::Logout { reply } => self.waiting.logout.push(reply),
        }
    }

    /// Moves requests that were in flight on a lost connection to wait for the next login.
    fn requeue_pending(&mut self) {
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Ping => {}
                // The push ID itself is sent again after the login anyway.
                Pending::PushId { replies, .. } => self.waiting.push_id.extend(replies),
                // The server may or may not have taken the new token; log in with it either way.
                Pending::Renew { token, reply } => {
                    self.config.token = token;
                    self.waiting.renew.push(reply);
                }
                Pending::Logout(replies) => self.waiting.logout.extend(replies),
            }
        }
    }

    /// Ends the session: answers every request, then reports the final state.
    async fn finish(mut self, end: Ended) {
        let (event, error, extended_data) = match end {
            Ended::Terminal { event, error } => {
                let extended = error.extended_data();
                (event, error, extended)
            }
            Ended::GaveUp(error) => {
                let extended = error.extended_data();
                (ConnectionEvent::LoginTimeout, error, extended)
            }
            Ended::LoggedOut(replies) => {
                replies.into_iter().for_each(|r| drop(r.send(Ok(()))));
                (ConnectionEvent::Success, SdkError::LoggedOut, String::new())
            }
            Ended::Dropped | Ended::Interrupted(_) => (ConnectionEvent::Success, SdkError::LoggedOut, String::new()),
        };
        tracing::info!(?event, %error, "session ended");
        self.requeue_pending();
        let waiting = mem::take(&mut self.waiting);
        waiting.push_id.into_iter().chain(waiting.logout).for_each(|r| drop(r.send(Err(error.clone()))));
        waiting.renew.into_iter().for_each(|r| drop(r.send(Err(error.clone()))));
        // Requests still queued in the channel get the same answer.
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::SetPushId { reply, .. } | Command::Logout { reply } => drop(reply.send(Err(error.clone()))),
                Command::RenewToken { reply, .. } => drop(reply.send(Err(error.clone()))),
            }
        }
        self.set_status(ConnectionState::Disconnected, None);
        self.emit_state(ConnectionState::Disconnected, event, extended_data).await;
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn set_status(&self, state: ConnectionState, session_id: Option<String>) {
        self.status.send_replace(Status { state, session_id });
    }

    async fn emit_state(&self, state: ConnectionState, event: ConnectionEvent, extended_data: String) {
        self.emit(Event::ConnectionStateChanged { state, event, extended_data }).await;
    }

    /// Waits for room in the event channel: back-pressure instead of an unbounded buffer. An app
    /// that dropped its `Events` loses events, not the session.
    async fn emit(&self, event: Event) {
        let _ = self.events.send(event).await;
    }
}

fn interrupted(detail: &str) -> Ended {
    Ended::Interrupted(serde_json::json!({ "reason": detail }).to_string())
}

/// Sends a close frame and waits briefly for the server's, without caring how it goes: the
/// connection is being abandoned either way.
async fn close(ws: &mut Ws, code: CloseCode, reason: &str) {
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = timeout(Duration::from_secs(1), async {
        let _ = ws.close(Some(frame)).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
