//! [`WsClient`]: a bare WebSocket client (tokio-tungstenite) that sends exactly what a test says
//! and reports exactly what came back, cheap enough to open a thousand of.
//!
//! Proving that a session did *not* get a broadcast uses the protocol's ordering instead of a
//! sleep: the hub counts a broadcast in `broadcasts_done()` only after its frame was written to
//! (or queued on) every session, and a `pong` is written to the same per-session outbox later,
//! so the text frames that arrive before the answer to a `ping` sent after that count moved are
//! everything the broadcast delivered to that session. See [`WsClient::until_pong`].

use super::{Server, APP_ID, HOUR_S, PATIENCE, SDK_OK};
use futures_util::{SinkExt, StreamExt};
use herald_proto::token04::Mode;
use serde_json::{json, Value};
use std::net::SocketAddr;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The keys of a ZIMMessage in a `bcast` frame (docs/protocol.md), and nothing else.
pub const ZIM_MESSAGE_KEYS: [&str; 9] = [
    "messageID",
    "senderUserID",
    "timestamp",
    "type",
    "message",
    "extendedData",
    "subType",
    "isBroadcastMessage",
    "isServerMessage",
];

/// How a connection ended, and the text frames that came before the close.
#[derive(Debug)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
    pub frames: Vec<Value>,
}

impl Closed {
    /// The `error` frame that came before the close, asserting there was exactly one.
    #[track_caller]
    pub fn error_code(&self) -> u64 {
        let errors: Vec<&Value> = self.frames.iter().filter(|f| f["t"] == "error").collect();
        assert_eq!(errors.len(), 1, "expected one error frame before close {}: {:?}", self.code, self.frames);
        let e = errors[0];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "an error frame says why: {e}");
        e["code"].as_u64().unwrap_or_else(|| panic!("error frame without a numeric code: {e}"))
    }

    /// Asserts the close code and the code of the one error frame before it.
    #[track_caller]
    pub fn assert(&self, close: u16, error: u64) {
        assert_eq!(self.code, close, "close code (reason {:?}, frames {:?})", self.reason, self.frames);
        assert_eq!(self.error_code(), error, "error frame code; frames {:?}", self.frames);
    }
}

/// One WebSocket session, logged in or not.
pub struct WsClient {
    pub ws: WsStream,
    /// The user it logged in as through the harness ("" otherwise); names it in messages.
    pub user_id: String,
    next_id: u64,
}

impl WsClient {
    // ---- Connecting ----

    /// Upgrades at the server's `/ws` (asserting 101), without logging in.
    pub async fn connect(server: &Server) -> WsClient {
        WsClient::connect_addr(server.addr).await
    }

    pub async fn connect_addr(addr: SocketAddr) -> WsClient {
        let url = format!("ws://{addr}/ws");
        let (ws, response) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(&url))
            .await
            .expect("upgrade in time")
            .unwrap_or_else(|e| panic!("upgrade at {url}: {e}"));
        assert_eq!(response.status(), 101);
        WsClient::from_ws(ws)
    }

    /// Wraps a connection a test upgraded itself.
    pub fn from_ws(ws: WsStream) -> WsClient {
        WsClient { ws, user_id: String::new(), next_id: 1 }
    }

    /// Connects and logs in as `user_id` with a one-hour CBC token, on device `{user_id}-raw`;
    /// returns the `login_ok` frame too.
    pub async fn logged_in(server: &Server, user_id: &str) -> (WsClient, Value) {
        let mut raw = WsClient::connect(server).await;
        raw.send_login(APP_ID, user_id, &server.token(user_id, HOUR_S)).await;
        let ok = raw.frame().await;
        assert_eq!(ok["t"], "login_ok", "login as {user_id}: {ok}");
        raw.user_id = user_id.to_string();
        (raw, ok)
    }

    /// Connects and logs in as `user_id` on `device_id` claiming `sdk_version`, with a one-hour
    /// GCM token; the first frame must be the `login_ok`.
    pub async fn login(server: &Server, user_id: &str, device_id: &str, sdk_version: &str) -> WsClient {
        let token = server.token_with(user_id, HOUR_S, Mode::Gcm);
        WsClient::try_login(server.addr, user_id, &token, device_id, sdk_version)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Connects and logs in with [`SDK_OK`] on a device named `{user_id}-dev`.
    pub async fn user(server: &Server, user_id: &str) -> WsClient {
        WsClient::login(server, user_id, &format!("{user_id}-dev"), SDK_OK).await
    }

    /// Connects and logs in; failures are returned so that callers can count them.
    pub async fn try_login(
        addr: SocketAddr,
        user_id: &str,
        token: &str,
        device_id: &str,
        sdk_version: &str,
    ) -> Result<WsClient, String> {
        let ws = upgrade(addr, user_id).await?;
        WsClient::log_in_on(ws, user_id, token, device_id, sdk_version).await
    }

    /// Logs in on an upgraded WebSocket; the first frame must be the `login_ok`.
    pub async fn log_in_on(
        ws: WsStream,
        user_id: &str,
        token: &str,
        device_id: &str,
        sdk_version: &str,
    ) -> Result<WsClient, String> {
        match WsClient::log_in_counting_early(ws, user_id, token, device_id, sdk_version).await? {
            (c, 0) => Ok(c),
            (_, n) => Err(format!("{user_id}: {n} broadcast(s) arrived before login_ok")),
        }
    }

    /// Connects and logs in, tolerating broadcasts that arrive before the `login_ok` (a login
    /// racing with a fan-out; see the churn test); returns how many did.
    pub async fn try_login_counting_early(
        addr: SocketAddr,
        user_id: &str,
        token: &str,
        device_id: &str,
        sdk_version: &str,
    ) -> Result<(WsClient, usize), String> {
        let ws = upgrade(addr, user_id).await?;
        WsClient::log_in_counting_early(ws, user_id, token, device_id, sdk_version).await
    }

    async fn log_in_counting_early(
        ws: WsStream,
        user_id: &str,
        token: &str,
        device_id: &str,
        sdk_version: &str,
    ) -> Result<(WsClient, usize), String> {
        let mut c = WsClient { ws, user_id: user_id.to_string(), next_id: 2 };
        let login = json!({
            "t": "login", "id": 1, "app_id": APP_ID, "user_id": user_id, "token": token,
            "sdk_version": sdk_version, "platform": "linux", "device_id": device_id,
        });
        c.ws.send(Message::text(login.to_string())).await.map_err(|e| format!("{user_id}: send login: {e}"))?;
        let mut early = 0;
        loop {
            let answer = c.try_frame().await.map_err(|e| format!("{user_id}: login: {e}"))?;
            if answer["t"] == "bcast" {
                early += 1;
                continue;
            }
            if answer["t"] != "login_ok" || answer["id"] != 1 {
                return Err(format!("{user_id}: login refused: {answer}"));
            }
            return Ok((c, early));
        }
    }

    // ---- Sending ----

    /// A fresh request id.
    pub fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        let user = &self.user_id;
        self.ws.send(Message::text(text.into())).await.unwrap_or_else(|e| panic!("{user}: send: {e}"));
    }

    pub async fn send_json(&mut self, v: Value) {
        self.send_text(v.to_string()).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.expect("send binary");
    }

    /// Sends one text message split into WebSocket fragments of `chunk` bytes.
    pub async fn send_fragmented(&mut self, text: &str, chunk: usize) {
        let parts: Vec<&[u8]> = text.as_bytes().chunks(chunk).collect();
        let last = parts.len() - 1;
        for (i, part) in parts.into_iter().enumerate() {
            let opcode = if i == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
            let frame = Frame::message(part.to_vec(), opcode, i == last);
            self.ws.feed(Message::Frame(frame)).await.expect("send fragment");
        }
        self.ws.flush().await.expect("flush fragments");
    }

    /// The `login` frame for `user_id`, with [`SDK_OK`] and the device `{user_id}-raw`.
    pub fn login_frame(&mut self, app_id: u32, user_id: &str, token: &str) -> Value {
        json!({
            "t": "login", "id": self.id(), "app_id": app_id, "user_id": user_id, "token": token,
            "sdk_version": SDK_OK, "platform": "linux", "device_id": format!("{user_id}-raw"),
        })
    }

    pub async fn send_login(&mut self, app_id: u32, user_id: &str, token: &str) {
        let frame = self.login_frame(app_id, user_id, token);
        self.send_json(frame).await;
    }

    /// Sends `login` (any JSON) and returns the first frame the server answers with.
    pub async fn with_login(mut self, login: Value) -> (WsClient, Value) {
        self.send_json(login).await;
        let answer = self.frame().await;
        (self, answer)
    }

    /// Sends a request built by `make(id)` and returns the answer (the next text frame, which
    /// must echo the id).
    pub async fn request(&mut self, make: impl FnOnce(u64) -> Value) -> Value {
        let id = self.id();
        self.send_json(make(id)).await;
        let answer = self.frame().await;
        assert_eq!(answer["id"], id, "the answer echoes the request id: {answer}");
        answer
    }

    pub async fn ping(&mut self) -> Value {
        self.request(|id| json!({"t": "ping", "id": id})).await
    }

    /// Logs out and waits for the server's close (1000).
    pub async fn logout(mut self) {
        let id = self.id();
        self.send_json(json!({"t": "logout", "id": id})).await;
        loop {
            match tokio::time::timeout(PATIENCE, self.ws.next()).await.expect("logout answered in time") {
                Some(Ok(Message::Close(Some(c)))) => {
                    assert_eq!(u16::from(c.code), 1000, "{}: close after logout: {c:?}", self.user_id);
                    return;
                }
                Some(Ok(_)) => {}
                other => panic!("{}: expected the close after logout, got {other:?}", self.user_id),
            }
        }
    }

    // ---- Receiving ----

    /// The next text frame as sent, or why there was none.
    pub async fn try_text(&mut self) -> Result<String, String> {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next()).await.map_err(|_| "no frame in time")?;
            match msg {
                Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_string()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => return Err(format!("expected a text frame, got {other:?}")),
            }
        }
    }

    /// The next text frame as JSON, or why there was none.
    pub async fn try_frame(&mut self) -> Result<Value, String> {
        let text = self.try_text().await?;
        serde_json::from_str(&text).map_err(|e| format!("frame is not JSON ({e}): {text}"))
    }

    /// The next text frame as sent; panics on a close, an error or silence.
    pub async fn text(&mut self) -> String {
        let user = self.user_id.clone();
        self.try_text().await.unwrap_or_else(|e| panic!("{user}: {e}"))
    }

    /// The next text frame as JSON; panics on a close, an error or silence.
    pub async fn frame(&mut self) -> Value {
        let user = self.user_id.clone();
        self.try_frame().await.unwrap_or_else(|e| panic!("{user}: {e}"))
    }

    /// Waits for a WebSocket pong frame, skipping nothing else.
    pub async fn pong(&mut self) {
        let msg = tokio::time::timeout(PATIENCE, self.ws.next()).await.expect("a pong in time");
        match msg {
            Some(Ok(Message::Pong(_))) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    }

    /// Sends a `ping` and returns every text frame that arrived before its `pong`.
    pub async fn until_pong(&mut self) -> Vec<Value> {
        let id = self.id();
        self.send_json(json!({"t": "ping", "id": id})).await;
        let mut before = Vec::new();
        loop {
            let f = self.frame().await;
            if f["t"] == "pong" {
                assert_eq!(f["id"], id, "{}: pong for another ping: {f}", self.user_id);
                return before;
            }
            before.push(f);
        }
    }

    /// The broadcasts (their ZIMMessages) this session got since the last call, up to now: to
    /// be called once `broadcasts_done()` counts every broadcast of interest. Any other frame
    /// fails the test.
    pub async fn broadcasts(&mut self) -> Vec<Value> {
        let frames = self.until_pong().await;
        frames
            .into_iter()
            .map(|f| {
                assert_eq!(f["t"], "bcast", "{}: unexpected frame {f}", self.user_id);
                f["msg"].clone()
            })
            .collect()
    }

    /// Reads until the server's close frame; panics if the connection ends without one.
    pub async fn closed(&mut self) -> Closed {
        let mut frames = Vec::new();
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next()).await.unwrap_or_else(|_| {
                panic!("no close frame in time; frames so far: {frames:?}");
            });
            match msg {
                Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str(t.as_str()).expect("JSON frame")),
                Some(Ok(Message::Close(Some(c)))) => {
                    return Closed { code: u16::from(c.code), reason: c.reason.to_string(), frames }
                }
                Some(Ok(Message::Close(None))) => panic!("close frame without a code; frames {frames:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("connection failed before a close frame ({e}); frames {frames:?}"),
                None => panic!("connection ended without a close frame; frames {frames:?}"),
            }
        }
    }
}

async fn upgrade(addr: SocketAddr, user_id: &str) -> Result<WsStream, String> {
    Ok(tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(format!("ws://{addr}/ws")))
        .await
        .map_err(|_| format!("{user_id}: no upgrade in time"))?
        .map_err(|e| format!("{user_id}: upgrade: {e}"))?
        .0)
}

/// A TCP connection to the server whose receive buffer is as small as the kernel allows: the
/// stalled reader of the slow-consumer tests.
///
/// The segment size is clamped too. On loopback the MSS is 64 KB, and the kernel sizes the
/// server's send buffer from its congestion window in segments, so the server side alone would
/// absorb megabytes for a reader that never reads; with small segments it holds a few dozen KB
/// and the outbox has to take the rest.
pub async fn tiny_buffer_stream(addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    // Before connect, so that the handshake already advertises the small window and segments.
    socket.set_recv_buffer_size(1024).expect("SO_RCVBUF");
    socket.set_mss(536).expect("TCP_MAXSEG");
    socket.set_nonblocking(true).expect("non-blocking");
    TcpSocket::from_std_stream(socket.into()).connect(addr).await.expect("connect")
}

/// The text of a ZIMMessage's `messageID`, checked to be a decimal u64.
#[track_caller]
pub fn message_id(msg: &Value) -> u64 {
    let id = msg["messageID"].as_str().unwrap_or_else(|| panic!("messageID is not a string: {msg}"));
    assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()), "messageID is not decimal: {msg}");
    id.parse().unwrap_or_else(|_| panic!("messageID is not a 64-bit number: {msg}"))
}

/// A `SendMessageToAllUsers` body: a text message from the sender with `ExtendedData` and a
/// `PushType`.
pub fn text_body(text: &str, push_type: u8) -> Value {
    json!({
        "FromUserId": super::SENDER,
        "MessageType": 1,
        "MessageBody": {"Message": text, "ExtendedData": "x"},
        "PushType": push_type,
    })
}
