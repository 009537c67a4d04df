//! The harness of the broadcast fan-out tests: a real server on port 0 with the wall clock
//! (`SystemClock`, so message timestamps can be compared with "now"), its sqlite file in a
//! temporary directory, a signing HTTP client for `SendMessageToAllUsers`, and a light raw
//! WebSocket client (tokio-tungstenite) cheap enough to open a thousand of.
//!
//! Timing rules: nothing here asserts how long anything takes. Every wait polls a condition and
//! is bounded by [`PATIENCE`] only so that a broken server fails a test instead of hanging it.
//!
//! Proving that a session did *not* get a broadcast uses the protocol's ordering instead of a
//! sleep: the hub counts a broadcast in `broadcasts_done()` only after its frame was written to
//! (or queued on) every session, and a `pong` is written to the same per-session outbox later,
//! so the text frames that arrive before the answer to a `ping` sent after that count moved are
//! everything the broadcast delivered to that session. See [`WsClient::until_pong`].

// Each test binary uses its own subset of the helpers.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use herald_proto::signature::signed_query;
use herald_proto::token04::{self, Mode};
use herald_server::clock::{system_now_ms, Clock, SystemClock};
use herald_server::config::Config;
use herald_server::hub::Hub;
use herald_server::Running;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub const APP_ID: u32 = 1234567890;
pub const SECRET: &str = "fa94dd0f974cf2e293728a526b028271";
/// The user every broadcast is sent from; registered when the server starts.
pub const SENDER: &str = "admin";
/// An SDK version that receives broadcasts.
pub const SDK_OK: &str = "2.18.0";

/// Upper bound of any wait for the server: only a broken server reaches it.
pub const PATIENCE: Duration = Duration::from_secs(30);

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

/// Unix time in seconds by the wall clock, as the server's `SystemClock` sees it.
pub fn now_s() -> i64 {
    SystemClock.now_s()
}

pub fn now_ms() -> i64 {
    system_now_ms()
}

/// A running server and what a test needs to talk to it.
pub struct FoServer {
    pub addr: SocketAddr,
    pub dir: TempDir,
    pub shutdown: CancellationToken,
    pub running: Running,
    http: reqwest::Client,
    nonces: AtomicU64,
}

impl FoServer {
    /// A server with default gateway settings and the fast broadcast limits.
    pub async fn start() -> FoServer {
        FoServer::start_with("", "").await
    }

    /// A server whose `[gateway]` table holds `gateway_toml` (e.g. `outbox_frames = 4`) and whose
    /// app's `[apps.limits]` table also holds `limits_toml` (e.g. `message_max_bytes = 32768`).
    /// The sender [`SENDER`] is registered before this returns.
    pub async fn start_with(gateway_toml: &str, limits_toml: &str) -> FoServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let d = dir.path().display();
        let text = format!(
            "listen = \"127.0.0.1:0\"\nadmin.listen = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\nlog = \"warn\"\n\
             [store]\nurl = \"sqlite://{d}/h.db\"\n\
             [gateway]\n{gateway_toml}\n\
             [[apps]]\napp_id = {APP_ID}\nserver_secret = \"{SECRET}\"\n\
             [apps.limits]\nbroadcast_per_second = 1000\nbroadcast_per_day = 100000\n{limits_toml}\n"
        );
        let config = Config::parse(&text, &|_| None).unwrap_or_else(|e| panic!("test config: {e}\n{text}"));
        let shutdown = CancellationToken::new();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let running = herald_server::start(config, clock, shutdown.clone()).await.expect("server starts");
        let http = reqwest::Client::builder().no_proxy().build().expect("http client");
        let server = FoServer {
            addr: running.local_addr,
            dir,
            shutdown,
            running,
            http,
            // Distinct per server and per process, so nonces never repeat within the window.
            nonces: AtomicU64::new(u64::from(std::process::id()) << 32),
        };
        let answer = server.call("UserRegister", json!({"UserInfo": [{"UserId": SENDER}]})).await;
        assert_eq!(answer["ErrorList"], json!([]), "registering the sender: {answer}");
        server
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.running.hub
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Whether `QueryUserOnlineState` says the user is online.
    pub async fn online(&self, user_id: &str) -> bool {
        let answer = self.call_get("QueryUserOnlineState", &[("UserId[]", user_id)]).await;
        assert_eq!(answer["ErrorList"], json!([]), "{answer}");
        match answer["Result"][0]["Status"].as_str() {
            Some("Online") => true,
            Some("Offline") => false,
            _ => panic!("QueryUserOnlineState: no Status for {user_id}: {answer}"),
        }
    }

    /// A one-hour token for `user_id`.
    pub fn token(&self, user_id: &str) -> String {
        token04::generate(APP_ID, user_id, SECRET, 3600, Mode::Gcm, now_s()).expect("token")
    }

    /// The users among `user_ids` that `QueryUserOnlineState` says are online (100 per call).
    pub async fn online_among(&self, user_ids: &[String]) -> Vec<String> {
        let mut online = Vec::new();
        for chunk in user_ids.chunks(100) {
            let query: Vec<(&str, &str)> = chunk.iter().map(|u| ("UserId[]", u.as_str())).collect();
            let answer = self.call_get("QueryUserOnlineState", &query).await;
            assert_eq!(answer["ErrorList"], json!([]), "{answer}");
            let result = answer["Result"].as_array().unwrap_or_else(|| panic!("no Result: {answer}"));
            assert_eq!(result.len(), chunk.len(), "one status per user: {answer}");
            for r in result {
                if r["Status"] == "Online" {
                    online.push(r["UserId"].as_str().expect("UserId").to_string());
                }
            }
        }
        online
    }

    /// A signed POST of `action` with `body`; asserts the answer's `Code` is 0.
    pub async fn call(&self, action: &str, body: Value) -> Value {
        self.request(action, &[], Some(body)).await
    }

    /// A signed GET of `action` with extra query parameters; asserts the answer's `Code` is 0.
    pub async fn call_get(&self, action: &str, extra_query: &[(&str, &str)]) -> Value {
        self.request(action, extra_query, None).await
    }

    async fn request(&self, action: &str, extra_query: &[(&str, &str)], body: Option<Value>) -> Value {
        let nonce = format!("{:016x}", self.nonces.fetch_add(1, Ordering::Relaxed));
        let ts = now_s();
        let query = signed_query(action, APP_ID, SECRET, &nonce, ts, extra_query);
        let url = format!("http://{}/?{query}", self.addr);
        let req = match body {
            Some(b) => self.http.post(&url).header("content-type", "application/json").body(b.to_string()),
            None => self.http.get(&url),
        };
        let res = tokio::time::timeout(PATIENCE, req.send())
            .await
            .unwrap_or_else(|_| panic!("{action}: no answer in time"))
            .unwrap_or_else(|e| panic!("{action}: {e}"));
        assert_eq!(res.status(), 200, "{action}: HTTP status");
        let answer: Value = res.json().await.unwrap_or_else(|e| panic!("{action}: answer is not JSON: {e}"));
        assert_eq!(answer["Code"], 0, "{action} failed: {answer}");
        answer
    }

    /// `SendMessageToAllUsers` with this body; asserts it was accepted.
    pub async fn broadcast(&self, body: Value) -> Value {
        self.call("SendMessageToAllUsers", body).await
    }

    /// A text broadcast (type 1, PushType 0) from [`SENDER`].
    pub async fn broadcast_text(&self, text: &str) {
        self.broadcast(text_body(text, 0)).await;
    }

    /// Waits until `broadcasts_done()` reaches `n`.
    pub async fn wait_broadcasts_done(&self, n: u64) {
        let hub = self.hub().clone();
        wait_for(&format!("{n} finished fan-outs"), || hub.broadcasts_done() >= n).await;
        assert_eq!(hub.broadcasts_done(), n, "more fan-outs finished than broadcasts were sent");
    }

    /// Waits until exactly `n` sessions are logged in.
    pub async fn wait_sessions(&self, n: usize) {
        let hub = self.hub().clone();
        let what = format!("{n} logged-in sessions");
        wait_for_with(&what, || hub.session_count() == n, || format!("{} sessions", hub.session_count())).await;
    }
}

impl Drop for FoServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A `SendMessageToAllUsers` body for a text message.
pub fn text_body(text: &str, push_type: u8) -> Value {
    json!({
        "FromUserId": SENDER,
        "MessageType": 1,
        "MessageBody": {"Message": text, "ExtendedData": "x"},
        "PushType": push_type,
    })
}

/// Polls `cond` until it holds; panics after [`PATIENCE`].
pub async fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    wait_for_with(what, cond, String::new).await
}

/// Like [`wait_for`], with a description of the state to show on failure.
pub async fn wait_for_with(what: &str, mut cond: impl FnMut() -> bool, state: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting for {what}; state: {}", state());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The raw protocol client.

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The `login` frame for a session of `user_id` on `device_id` claiming `sdk_version`.
pub fn login_frame(user_id: &str, token: &str, device_id: &str, sdk_version: &str) -> Value {
    json!({
        "t": "login", "id": 1, "app_id": APP_ID, "user_id": user_id, "token": token,
        "sdk_version": sdk_version, "platform": "linux", "device_id": device_id,
    })
}

/// A bare WebSocket session: sends what a test says and shows every frame that comes back.
pub struct WsClient {
    pub user_id: String,
    pub ws: WsStream,
    next_id: u64,
}

impl WsClient {
    /// Connects and logs in as `user_id` on `device_id` with `sdk_version`.
    pub async fn login(server: &FoServer, user_id: &str, device_id: &str, sdk_version: &str) -> WsClient {
        WsClient::try_login(server.addr, user_id, &server.token(user_id), device_id, sdk_version)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Connects and logs in with [`SDK_OK`] on a device named after the user.
    pub async fn user(server: &FoServer, user_id: &str) -> WsClient {
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
        let ws = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(format!("ws://{addr}/ws")))
            .await
            .map_err(|_| format!("{user_id}: no upgrade in time"))?
            .map_err(|e| format!("{user_id}: upgrade: {e}"))?
            .0;
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
        let ws = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(format!("ws://{addr}/ws")))
            .await
            .map_err(|_| format!("{user_id}: no upgrade in time"))?
            .map_err(|e| format!("{user_id}: upgrade: {e}"))?
            .0;
        WsClient::log_in_counting_early(ws, user_id, token, device_id, sdk_version).await
    }

    async fn log_in_counting_early(
        ws: WsStream,
        user_id: &str,
        token: &str,
        device_id: &str,
        sdk_version: &str,
    ) -> Result<(WsClient, usize), String> {
        let mut c = WsClient { user_id: user_id.to_string(), ws, next_id: 2 };
        c.ws.send(Message::text(login_frame(user_id, token, device_id, sdk_version).to_string()))
            .await
            .map_err(|e| format!("{user_id}: send login: {e}"))?;
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

    pub async fn send_json(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap_or_else(|e| panic!("{}: send: {e}", self.user_id));
    }

    /// The next text frame as JSON, or why there was none.
    pub async fn try_frame(&mut self) -> Result<Value, String> {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next()).await.map_err(|_| "no frame in time")?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str()).map_err(|e| format!("frame is not JSON ({e}): {t}"))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => return Err(format!("expected a text frame, got {other:?}")),
            }
        }
    }

    /// The next text frame as JSON; panics on a close, an error or silence.
    pub async fn frame(&mut self) -> Value {
        let user = self.user_id.clone();
        self.try_frame().await.unwrap_or_else(|e| panic!("{user}: {e}"))
    }

    /// Sends a `ping` and returns every text frame that arrived before its `pong`.
    pub async fn until_pong(&mut self) -> Vec<Value> {
        let id = self.next_id;
        self.next_id += 1;
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

    /// Logs out and waits for the server's close (1000).
    pub async fn logout(mut self) {
        let id = self.next_id;
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
}

/// A TCP connection to the server whose receive buffer is as small as the kernel allows: the
/// stalled reader of the slow-consumer test.
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
