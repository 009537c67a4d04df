//! What the SDK tells the app: ZIM's event names, states and reasons.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use herald_proto::frame::ZimMessage;
use tokio::sync::mpsc;

/// One event, as ZIM's event handler would get it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// ZIM `broadcastMessageReceived`: a `SendMessageToAllUsers` message. Each `messageID` is
    /// delivered once, even when the server sends it again after a reconnect.
    BroadcastMessageReceived(ZimMessage),
    /// ZIM `connectionStateChanged`.
    ConnectionStateChanged {
        state: ConnectionState,
        event: ConnectionEvent,
        /// A JSON object as a string, as in ZIM. Empty for plain transitions; for a close it is
        /// `{"code":4502,"reason":"…"}` with the WebSocket close code and reason, or the
        /// server's error `code`/`message` when a re-login was refused. `Connected` after a
        /// login that asked for missed broadcasts (every re-login) says `{"recovered":true}`
        /// when the server is sending all of them, `{"recovered":false}` when it cannot be sure
        /// (too long away: fetch what matters from your own backend).
        extended_data: String,
    },
    /// ZIM `tokenWillExpire`: the token expires in `seconds`; call
    /// [`Client::renew_token`](crate::Client::renew_token) with a fresh one.
    TokenWillExpire { seconds: i64 },
}

/// ZIM's `ZIMConnectionState`; the numbers are ZIM's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnectionState {
    Disconnected = 0,
    Connecting = 1,
    Connected = 2,
    Reconnecting = 3,
}

/// ZIM's `ZIMConnectionEvent`: why the state changed; the numbers are ZIM's.
///
/// How Herald's WebSocket close codes map to these (see `docs/protocol.md`):
///
/// | cause | state | event |
/// |---|---|---|
/// | `login` called | `Connecting` | `ActiveLogin` |
/// | login or re-login answered | `Connected` | `Success` |
/// | `logout` done | `Disconnected` | `Success` |
/// | network error, silent server, or a transient close (4000–4499, 1001, 1006, …) | `Reconnecting` | `LoginInterrupted` |
/// | reconnect attempts exhausted (`ReconnectPolicy::max_attempts`) | `Disconnected` | `LoginTimeout` |
/// | 4501 bad token / AppID, 4502 token expired (the session's token ran out, or a refused re-login with a token error) | `Disconnected` | `TokenExpired` |
/// | 4501 after a field error (6000004: `user_id`, `device_id`, `user_name`, `since`), 4504 too many sessions, 4507 replaced, 1000 without `logout`, any other terminal close (4500–4999) | `Disconnected` | `KickedOut` |
///
/// `Unregistered` is ZIM's event for a deleted user; Herald has no close code for it yet, so the
/// SDK never emits it, but it keeps the number so the numbering matches ZIM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnectionEvent {
    Success = 0,
    ActiveLogin = 1,
    LoginTimeout = 2,
    LoginInterrupted = 3,
    KickedOut = 4,
    TokenExpired = 5,
    Unregistered = 6,
}

/// The app's end of the event channel.
///
/// The channel is bounded ([`ClientConfig::event_capacity`](crate::ClientConfig)). When it is
/// full the connection task waits for the app to read instead of buffering without limit; it
/// then stops reading the socket and sending pings, so a server whose outbox for this session
/// fills closes it as a slow consumer (4002) or on heartbeat timeout (4001) and the client
/// reconnects. Read events promptly.
///
/// The stream ends after the final `Disconnected` event (logout, terminal close, reconnects
/// given up, or every [`Client`](crate::Client) dropped). Dropping `Events` is allowed: the
/// session goes on and events are discarded.
#[derive(Debug)]
pub struct Events(pub(crate) mpsc::Receiver<Event>);

impl Events {
    /// The next event, or `None` once the session has ended.
    pub async fn next(&mut self) -> Option<Event> {
        self.0.recv().await
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.0.poll_recv(cx)
    }
}
