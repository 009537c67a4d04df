//! The harness of the gateway's black-box tests: a real server on port 0 with its sqlite file in
//! a temporary directory and a [`ManualClock`] for token times, a raw WebSocket client that sees
//! every frame and close code, and helpers for the real SDK.
//!
//! Timing rules: nothing here asserts how long anything takes. Waits are bounded by
//! [`PATIENCE`] only so that a broken server fails a test instead of hanging it.

// Each test binary uses its own subset of the helpers.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use herald_proto::signature::signed_query;
use herald_proto::token04::{self, Mode};
use herald_sdk::{ClientConfig, ConnectionState, Event, Events, ReconnectPolicy};
use herald_server::broadcast::Presence;
use herald_server::clock::{Clock, ManualClock};
use herald_server::config::Config;
use herald_server::Running;
use herald_store::Store;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub const APP_ID: u32 = 1234567890;
pub const SECRET: &str = "fa94dd0f974cf2e293728a526b028271";
/// An AppID no test server serves.
pub const UNKNOWN_APP_ID: u32 = 42;
/// The ManualClock's start: 2023-11-14T22:13:20Z.
pub const T0_MS: i64 = 1_700_000_000_000;
/// A token validity that never runs out during a test.
pub const HOUR_S: i64 = 3600;

/// Upper bound of any wait for the server: only a broken server reaches it.
pub const PATIENCE: Duration = Duration::from_secs(20);

// The numbers the protocol promises (docs/protocol.md), spelled out so that a renumbering in
// herald-proto cannot hide behind a shared constant.
pub const E_BAD_FRAME: u64 = 6000001;
pub const E_NOT_LOGGED_IN: u64 = 6000002;
pub const E_TOO_MANY_SESSIONS: u64 = 6000003;
pub const E_FIELD_INVALID: u64 = 6000004;
pub const E_APP: u64 = 6000101;
pub const E_TOKEN_INVALID: u64 = 6000103;
pub const E_TOKEN_EXPIRED: u64 = 6000106;
pub const E_TOKEN_VERSION: u64 = 6000107;
pub const E_TOKEN_TOO_SHORT: u64 = 6000108;

pub const C_NORMAL: u16 = 1000;
pub const C_SHUTDOWN: u16 = 4000;
pub const C_HEARTBEAT_TIMEOUT: u16 = 4001;
pub const C_LOGIN_TIMEOUT: u16 = 4004;
pub const C_FLOOD: u16 = 4005;
pub const C_BAD_FRAME: u16 = 4500;
pub const C_LOGIN_FAILED: u16 = 4501;
pub const C_TOKEN_EXPIRED: u16 = 4502;
pub const C_NOT_LOGGED_IN: u16 = 4503;
pub const C_TOO_MANY_SESSIONS: u16 = 4504;
pub const C_TOO_LARGE: u16 = 4505;
pub const C_BAD_VERSION: u16 = 4506;

/// A running server and everything a test needs to talk to it.
pub struct GwServer {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
    pub shutdown: CancellationToken,
    running: Option<Running>,
    gateway_toml: String,
    http: reqwest::Client,
    nonces: AtomicU64,
    store: OnceCell<Arc<dyn Store>>,
    sender_registered: OnceCell<()>,
}

impl GwServer {
    /// A server with default gateway settings.
    pub async fn start() -> GwServer {
        GwServer::start_with("").await
    }

    /// A server whose `[gateway]` table holds `gateway_toml` (e.g. `login_timeout_ms = 500`).
    pub async fn start_with(gateway_toml: &str) -> GwServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let clock = Arc::new(ManualClock::new(T0_MS));
        let shutdown = CancellationToken::new();
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let running = launch(&config_text(&dir, listen, gateway_toml), &clock, &shutdown)
            .await
            .unwrap_or_else(|e| panic!("server starts: {e}"));
        let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().expect("http client");
        GwServer {
            addr: running.local_addr,
            clock,
            dir,
            shutdown,
            running: Some(running),
            gateway_toml: gateway_toml.to_string(),
            http,
            nonces: AtomicU64::new(1),
            store: OnceCell::new(),
            sender_registered: OnceCell::new(),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn store_url(&self) -> String {
        format!("sqlite://{}/h.db", self.dir.path().display())
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("the server is running")
    }

    pub fn now_s(&self) -> i64 {
        self.clock.now_s()
    }

    /// A CBC token for `user_id`, valid for `ttl_s` from the server's clock.
    pub fn token(&self, user_id: &str, ttl_s: i64) -> String {
        self.token_with(user_id, ttl_s, Mode::Cbc)
    }

    pub fn token_with(&self, user_id: &str, ttl_s: i64, mode: Mode) -> String {
        token04::generate(APP_ID, user_id, SECRET, ttl_s, mode, self.now_s()).expect("token")
    }

    /// Cancels the server and waits until it has shut down (sessions closed, listener gone).
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            tokio::time::timeout(PATIENCE, running.wait()).await.expect("the server shuts down");
        }
    }

    /// Stops this server and starts a new one on the same port, sqlite file and clock.
    pub async fn restart_on_same_port(&mut self) {
        self.stop().await;
        self.shutdown = CancellationToken::new();
        let text = config_text(&self.dir, self.addr, &self.gateway_toml);
        let mut tries = 0;
        let running = loop {
            match launch(&text, &self.clock, &self.shutdown).await {
                Ok(running) => break running,
                // The old listener's port may take a moment to be free again.
                Err(e) if tries < 100 => {
                    tries += 1;
                    eprintln!("restart on {}: {e}; retrying", self.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot restart on {}: {e}", self.addr),
            }
        };
        assert_eq!(running.local_addr, self.addr, "the new server listens on the old port");
        self.running = Some(running);
    }

    /// Broadcasts and waits until the fan-out has finished (every session written or queued).
    pub async fn broadcast_and_fan_out(&self, text: &str) {
        let done = self.running().hub.broadcasts_done();
        self.broadcast(text).await;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.running().hub.broadcasts_done() == done {
            assert!(tokio::time::Instant::now() < deadline, "the fan-out never finished");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Presence as the server's `Presence` reports it (what QueryUserOnlineState answers from).
    pub async fn is_online(&self, user_id: &str) -> bool {
        Presence::is_online(&*self.running().hub, APP_ID, user_id).await
    }

    /// Waits until `user_id`'s presence is `online`; panics after [`PATIENCE`].
    pub async fn wait_presence(&self, user_id: &str, online: bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.is_online(user_id).await != online {
            assert!(tokio::time::Instant::now() < deadline, "{user_id} never became online={online}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A second handle on the server's sqlite file.
    pub async fn store(&self) -> Arc<dyn Store> {
        self.store
            .get_or_init(|| async { herald_store::open(&self.store_url()).await.expect("open the store") })
            .await
            .clone()
    }

    /// Push bindings of `user_id`, as (device_id, push_id, provider).
    pub async fn push_bindings(&self, user_id: &str) -> Vec<(String, String, String)> {
        let bindings = self.store().await.push_bindings_of(APP_ID, user_id).await.expect("push bindings");
        bindings.into_iter().map(|b| (b.device_id, b.push_id, b.provider.as_str().to_string())).collect()
    }

    /// A signed server-API call at the server clock's time; GET without a body.
    pub async fn call(&self, action: &str, extra_query: &[(&str, &str)], body: Option<Value>) -> Value {
        let nonce = format!("{:016x}", self.nonces.fetch_add(1, Ordering::Relaxed));
        let ts = self.now_s();
        let query = signed_query(action, APP_ID, SECRET, &nonce, ts, extra_query);
        let url = format!("http://{}/?{query}", self.addr);
        let req = match body {
            Some(b) => self.http.post(&url).header("content-type", "application/json").body(b.to_string()),
            None => self.http.get(&url),
        };
        let res = req.send().await.unwrap_or_else(|e| panic!("{action}: {e}"));
        let answer: Value = res.json().await.unwrap_or_else(|e| panic!("{action}: answer is not JSON: {e}"));
        assert_eq!(answer["Code"], 0, "{action} failed: {answer}");
        answer
    }

    /// `Online` or `Offline` from QueryUserOnlineState.
    pub async fn online_state(&self, user_id: &str) -> String {
        let answer = self.call("QueryUserOnlineState", &[("UserId[]", user_id)], None).await;
        assert_eq!(answer["ErrorList"], json!([]), "{answer}");
        answer["Result"][0]["Status"].as_str().unwrap_or_else(|| panic!("no Status: {answer}")).to_string()
    }

    /// Broadcasts a text message from `admin` (registered on first use).
    pub async fn broadcast(&self, text: &str) {
        self.sender_registered
            .get_or_init(|| async {
                // Answers Code 0 even when the user exists already (from a previous server).
                self.call("UserRegister", &[], Some(json!({"UserInfo": [{"UserId": "admin"}]}))).await;
            })
            .await;
        let body = json!({"FromUserId": "admin", "MessageType": 1, "MessageBody": {"Message": text}});
        self.call("SendMessageToAllUsers", &[], Some(body)).await;
    }
}

impl Drop for GwServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn config_text(dir: &TempDir, listen: SocketAddr, gateway_toml: &str) -> String {
    let d = dir.path().display();
    format!(
        "listen = \"{listen}\"\nadmin.listen = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\nlog = \"warn\"\n\
         [store]\nurl = \"sqlite://{d}/h.db\"\n\
         [gateway]\n{gateway_toml}\n\
         [[apps]]\napp_id = {APP_ID}\nserver_secret = \"{SECRET}\"\n\
         [apps.limits]\nbroadcast_per_second = 1000\nbroadcast_per_day = 100000\nmessage_max_bytes = 32768\n"
    )
}

async fn launch(
    text: &str,
    clock: &Arc<ManualClock>,
    shutdown: &CancellationToken,
) -> Result<Running, herald_server::StartError> {
    let config = Config::parse(text, &|_| None).unwrap_or_else(|e| panic!("test config: {e}\n{text}"));
    let clock: Arc<dyn Clock> = clock.clone();
    herald_server::start(config, clock, shutdown.clone()).await
}

// ---------------------------------------------------------------------------------------------
// The raw protocol client.

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

/// A bare WebSocket client: sends exactly what a test says and reports exactly what came back.
pub struct Raw {
    pub ws: WsStream,
    next_id: u64,
}

impl Raw {
    pub async fn connect(server: &GwServer) -> Raw {
        Raw::connect_addr(server.addr).await
    }

    pub async fn connect_addr(addr: SocketAddr) -> Raw {
        let url = format!("ws://{addr}/ws");
        let (ws, response) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(&url))
            .await
            .expect("upgrade in time")
            .unwrap_or_else(|e| panic!("upgrade at {url}: {e}"));
        assert_eq!(response.status(), 101);
        Raw { ws, next_id: 1 }
    }

    /// Wraps a connection a test upgraded itself.
    pub fn from_ws(ws: WsStream) -> Raw {
        Raw { ws, next_id: 1 }
    }

    /// A fresh request id.
    pub fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::text(text.into())).await.expect("send text");
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

    /// The `login` frame for `user_id`, with the SDK's default version and a device id.
    pub fn login_frame(&mut self, app_id: u32, user_id: &str, token: &str) -> Value {
        json!({
            "t": "login", "id": self.id(), "app_id": app_id, "user_id": user_id, "token": token,
            "sdk_version": "2.18.0", "platform": "linux", "device_id": format!("{user_id}-raw"),
        })
    }

    pub async fn send_login(&mut self, app_id: u32, user_id: &str, token: &str) {
        let frame = self.login_frame(app_id, user_id, token);
        self.send_json(frame).await;
    }

    /// Sends `login` (any JSON) and returns the first frame the server answers with.
    pub async fn with_login(mut self, login: Value) -> (Raw, Value) {
        self.send_json(login).await;
        let answer = self.frame().await;
        (self, answer)
    }

    /// Connects and logs in as `user_id` with a one-hour token; returns the `login_ok` frame too.
    pub async fn logged_in(server: &GwServer, user_id: &str) -> (Raw, Value) {
        let mut raw = Raw::connect(server).await;
        raw.send_login(APP_ID, user_id, &server.token(user_id, HOUR_S)).await;
        let ok = raw.frame().await;
        assert_eq!(ok["t"], "login_ok", "login as {user_id}: {ok}");
        (raw, ok)
    }

    /// The next text frame as JSON; panics on a close, an error or silence.
    pub async fn frame(&mut self) -> Value {
        let text = self.text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}"))
    }

    /// The next text frame as sent; panics on a close, an error or silence.
    pub async fn text(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next()).await.expect("a frame in time");
            match msg {
                Some(Ok(Message::Text(t))) => return t.as_str().to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Waits for a WebSocket pong frame, skipping nothing else.
    pub async fn pong(&mut self) {
        let msg = tokio::time::timeout(PATIENCE, self.ws.next()).await.expect("a pong in time");
        match msg {
            Some(Ok(Message::Pong(_))) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
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

// ---------------------------------------------------------------------------------------------
// The real SDK.

/// An SDK config for `user_id` with a one-hour token and quick reconnects.
pub fn sdk_config(server: &GwServer, user_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new([server.url()], APP_ID, user_id, server.token(user_id, HOUR_S));
    config.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        factor: 2.0,
        max_attempts: None,
    };
    config.login_timeout = Duration::from_secs(5);
    config
}

/// The next SDK event; panics on silence or the end of the stream.
pub async fn next_event(events: &mut Events) -> Event {
    tokio::time::timeout(PATIENCE, events.next()).await.expect("an SDK event in time").expect("the stream goes on")
}

/// Skips events until `want` matches one, which is returned.
pub async fn event_where(events: &mut Events, what: &str, want: impl Fn(&Event) -> bool) -> Event {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(e) = events.next().await {
            if want(&e) {
                return Some(e);
            }
            seen.push(e);
        }
        None
    })
    .await;
    match found {
        Ok(Some(e)) => e,
        Ok(None) => panic!("the event stream ended before {what}; saw {seen:?}"),
        Err(_) => panic!("no {what} in time; saw {seen:?}"),
    }
}

/// Waits for a `ConnectionStateChanged` to `state`; returns its `extended_data`.
pub async fn state_change(events: &mut Events, state: ConnectionState) -> (herald_sdk::ConnectionEvent, String) {
    match event_where(
        events,
        &format!("state {state:?}"),
        |e| matches!(e, Event::ConnectionStateChanged { state: s, .. } if *s == state),
    )
    .await
    {
        Event::ConnectionStateChanged { event, extended_data, .. } => (event, extended_data),
        _ => unreachable!(),
    }
}

/// Waits for the broadcast whose text is `text`.
pub async fn broadcast_received(events: &mut Events, text: &str) -> herald_sdk::ZimMessage {
    match event_where(
        events,
        &format!("broadcast {text:?}"),
        |e| matches!(e, Event::BroadcastMessageReceived(m) if m.message == text),
    )
    .await
    {
        Event::BroadcastMessageReceived(m) => m,
        _ => unreachable!(),
    }
}
