//! [`Server`]: a real server in this process on 127.0.0.1:0, and what a test needs to drive it.
//!
//! Its configuration is the harness's own part (listen address, data directory, store, TLS,
//! cluster) followed by the test's: a `[gateway]` table and the apps, by default one app with
//! the server's default limits ([`default_app`]). The clock is a [`ManualClock`] at [`T0_MS`]
//! unless a test asks for the wall clock.
//!
//! This is the one file of the harness that names server internals: `Running`'s fields, the
//! hub's counters and the `Presence` trait. When they move, only this file follows.

use super::api::{code, signed_params, ApiClient, Params};
use super::{assert_code, wait_for_with, APP_ID, PATIENCE, SECRET, SENDER, SUCCESS, T0_MS, USER_ALREADY_EXISTS};
use herald_proto::token04::{self, Mode};
use herald_server::broadcast::Presence;
use herald_server::clock::{Clock, ManualClock, SystemClock};
use herald_server::config::Config;
use herald_server::Running;
use herald_store::Store;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// `[apps.limits]` of [`ServerBuilder::unthrottled`]: broadcasts as fast as a test sends them,
/// and messages up to the largest size allowed.
pub const UNTHROTTLED_LIMITS: &str =
    "broadcast_per_second = 1000\nbroadcast_per_day = 100000\nmessage_max_bytes = 32768\n";

/// One `[[apps]]` table. `keys` go into the app table (e.g. `broadcast_enabled = false`),
/// `limits` into its `[apps.limits]` table (e.g. `message_max_bytes = 32768`).
pub fn app_toml(app_id: u32, secret: &str, keys: &str, limits: &str) -> String {
    format!("[[apps]]\napp_id = {app_id}\nserver_secret = \"{secret}\"\n{keys}\n[apps.limits]\n{limits}\n")
}

/// The default app with default limits.
pub fn default_app() -> String {
    app_toml(APP_ID, SECRET, "", "")
}

/// How a [`Server`] is configured; [`ServerBuilder::start`] starts it.
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    wall_clock: bool,
    clock_at: Option<i64>,
    gateway: String,
    limits: String,
    config: Option<String>,
    tls: bool,
    store_url: Option<String>,
    cluster: Option<String>,
    admin: String,
}

impl ServerBuilder {
    /// The wall clock (`SystemClock`) instead of a ManualClock at [`T0_MS`]: for message
    /// timestamps compared with "now", and for the nodes of a cluster.
    pub fn wall_clock(mut self) -> Self {
        self.wall_clock = true;
        self
    }

    /// The ManualClock starts at `now_ms` instead of [`T0_MS`].
    pub fn clock_at(mut self, now_ms: i64) -> Self {
        self.clock_at = Some(now_ms);
        self
    }

    /// Lines of the `[gateway]` table (e.g. `outbox_frames = 4`).
    pub fn gateway(mut self, toml: &str) -> Self {
        self.gateway = toml.to_string();
        self
    }

    /// The default app's limits become [`UNTHROTTLED_LIMITS`].
    pub fn unthrottled(mut self) -> Self {
        self.limits = UNTHROTTLED_LIMITS.to_string();
        self
    }

    /// Everything after the harness's part and the `[gateway]` table, in place of the default
    /// app: `[api]`, `[[apps]]`, `[push]`, `[apps.push]`… tables.
    pub fn config(mut self, tail: &str) -> Self {
        self.config = Some(tail.to_string());
        self
    }

    /// Lines of the `[admin]` table besides its `listen` (e.g. `token = "…"`).
    pub fn admin(mut self, toml: &str) -> Self {
        self.admin = toml.to_string();
        self
    }

    /// HTTPS and WSS with a fresh self-signed certificate for 127.0.0.1; the harness's API
    /// client trusts it ([`Server::cert_pem`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// The store at `url` (a PostgreSQL test database, say) instead of SQLite in the server's
    /// temporary directory.
    pub fn store_url(mut self, url: &str) -> Self {
        self.store_url = Some(url.to_string());
        self
    }

    /// A node of a cluster: the `[cluster]` table's lines.
    pub(super) fn cluster(mut self, table: String) -> Self {
        self.cluster = Some(table);
        self
    }

    pub async fn start(self) -> Server {
        let dir = tempfile::tempdir().expect("temporary directory");
        let d = dir.path().display();
        let store_url = self.store_url.clone().unwrap_or_else(|| format!("sqlite://{d}/herald.db"));
        // The admin listener on a port of its own too: tests run side by side.
        let mut head = format!(
            "data_dir = \"{d}\"\nlog = \"warn\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{}\n[store]\nurl = \"{store_url}\"\n",
            self.admin
        );
        let cert_pem = self.tls.then(|| {
            let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            std::fs::write(&cert, certified.cert.pem()).unwrap();
            std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
            head += &format!("[tls]\ncert = \"{}\"\nkey = \"{}\"\n", cert.display(), key.display());
            certified.cert.pem()
        });
        if let Some(cluster) = &self.cluster {
            head += &format!("[cluster]\n{cluster}\n");
        }
        let apps = self.config.clone().unwrap_or_else(|| app_toml(APP_ID, SECRET, "", &self.limits));
        let config_text = format!("{head}[gateway]\n{}\n{apps}", self.gateway);
        let clock = match self.wall_clock {
            true => TestClock::Wall,
            false => TestClock::Manual(Arc::new(ManualClock::new(self.clock_at.unwrap_or(T0_MS)))),
        };
        let shutdown = CancellationToken::new();
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let running =
            launch(&config_text, listen, &clock, &shutdown).await.unwrap_or_else(|e| panic!("server starts: {e}"));
        Server {
            addr: running.local_addr,
            api: ApiClient::new(cert_pem.as_deref()),
            dir,
            clock,
            shutdown,
            running: Some(running),
            config_text,
            store_url,
            cert_pem,
            store: OnceCell::new(),
            sender_registered: OnceCell::new(),
        }
    }
}

/// The server's clock, as the test sees it.
#[derive(Clone)]
enum TestClock {
    Manual(Arc<ManualClock>),
    Wall,
}

impl TestClock {
    fn for_server(&self) -> Arc<dyn Clock> {
        match self {
            TestClock::Manual(clock) => clock.clone(),
            TestClock::Wall => Arc::new(SystemClock),
        }
    }

    fn manual(&self) -> &ManualClock {
        match self {
            TestClock::Manual(clock) => clock,
            TestClock::Wall => panic!("this server runs on the wall clock; a test cannot move it"),
        }
    }
}

/// A running server and everything a test needs to talk to it.
pub struct Server {
    pub addr: SocketAddr,
    /// The server's `data_dir`, its SQLite file, and a place for a test's own files.
    pub dir: TempDir,
    clock: TestClock,
    shutdown: CancellationToken,
    running: Option<Running>,
    /// Without the `listen` line, which a restart chooses.
    config_text: String,
    store_url: String,
    cert_pem: Option<String>,
    api: ApiClient,
    store: OnceCell<Arc<dyn Store>>,
    sender_registered: OnceCell<()>,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// A server with the default app and the server's default limits, on a ManualClock.
    pub async fn start() -> Server {
        Server::builder().start().await
    }

    /// A server whose configuration ends with `tail` (`[api]`, `[[apps]]`, `[push]`… tables)
    /// instead of the default app.
    pub async fn start_with(tail: &str) -> Server {
        Server::builder().config(tail).start().await
    }

    /// A server with [`UNTHROTTLED_LIMITS`], on a ManualClock: for tests that broadcast a lot.
    pub async fn unthrottled() -> Server {
        Server::builder().unthrottled().start().await
    }

    /// [`Server::unthrottled`] with these lines in its `[gateway]` table.
    pub async fn unthrottled_with(gateway_toml: &str) -> Server {
        Server::builder().unthrottled().gateway(gateway_toml).start().await
    }

    // ---- Addresses, clock, tokens ----

    /// `ws://…/ws`, or `wss://…/ws` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.cert_pem.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}/ws", self.addr)
    }

    /// `http://host:port` of the admin listener (metrics, console, OpenAPI).
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.running.as_ref().expect("the server is running").admin_addr)
    }

    /// `http://host:port`, or `https://…` with TLS.
    pub fn base_url(&self) -> String {
        let scheme = if self.cert_pem.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The TLS certificate (PEM) of a [`ServerBuilder::tls`] server.
    pub fn cert_pem(&self) -> &str {
        self.cert_pem.as_deref().expect("a TLS server")
    }

    pub fn store_url(&self) -> &str {
        &self.store_url
    }

    pub fn now_s(&self) -> i64 {
        self.clock.for_server().now_s()
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.for_server().now_ms()
    }

    /// Moves the ManualClock on.
    pub fn advance_ms(&self, ms: i64) {
        self.clock.manual().advance_ms(ms);
    }

    /// Sets the ManualClock.
    pub fn set_ms(&self, now_ms: i64) {
        self.clock.manual().set_ms(now_ms);
    }

    /// A CBC token for `user_id`, valid for `ttl_s` from the server's clock.
    pub fn token(&self, user_id: &str, ttl_s: i64) -> String {
        self.token_with(user_id, ttl_s, Mode::Cbc)
    }

    pub fn token_with(&self, user_id: &str, ttl_s: i64, mode: Mode) -> String {
        token04::generate(APP_ID, user_id, SECRET, ttl_s, mode, self.now_s()).expect("token")
    }

    // ---- Lifecycle ----

    /// Cancels the server and waits until it has shut down (sessions closed, listener gone).
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            tokio::time::timeout(PATIENCE, running.wait()).await.expect("the server shuts down");
        }
    }

    /// Stops the server and starts it again on a new port, with the same store and clock.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.shutdown = CancellationToken::new();
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let running = launch(&self.config_text, listen, &self.clock, &self.shutdown)
            .await
            .unwrap_or_else(|e| panic!("server restarts: {e}"));
        self.addr = running.local_addr;
        self.running = Some(running);
    }

    /// Stops the server and starts a new one on the same port, store and clock.
    pub async fn restart_on_same_port(&mut self) {
        self.stop().await;
        self.shutdown = CancellationToken::new();
        let mut tries = 0;
        let running = loop {
            match launch(&self.config_text, self.addr, &self.clock, &self.shutdown).await {
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

    // ---- What the server holds (its internals, read-only) ----

    fn running(&self) -> &Running {
        self.running.as_ref().expect("the server is running")
    }

    /// Logged-in sessions in the hub.
    pub fn session_count(&self) -> usize {
        self.running().hub.session_count()
    }

    /// Open gateway connections, logged in or not.
    pub fn connections(&self) -> usize {
        self.running().gateway.connections()
    }

    /// Broadcasts whose fan-out has finished: their frame written to (or queued on) every
    /// session of this node.
    pub fn broadcasts_done(&self) -> u64 {
        self.running().hub.broadcasts_done()
    }

    /// Presence as the server's `Presence` reports it (what QueryUserOnlineState answers from).
    pub async fn is_online(&self, user_id: &str) -> bool {
        Presence::is_online(&*self.running().hub, APP_ID, user_id).await
    }

    /// Waits until `user_id`'s presence is `online`.
    pub async fn wait_presence(&self, user_id: &str, online: bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.is_online(user_id).await != online {
            assert!(tokio::time::Instant::now() < deadline, "{user_id} never became online={online}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until exactly `n` sessions are logged in.
    pub async fn wait_sessions(&self, n: usize) {
        let what = format!("{n} logged-in sessions");
        wait_for_with(&what, || self.session_count() == n, || format!("{} sessions", self.session_count())).await;
    }

    /// Waits until `broadcasts_done()` reaches `n`, and asserts it did not pass it.
    pub async fn wait_broadcasts_done(&self, n: u64) {
        wait_for_with(&format!("{n} finished fan-outs"), || self.broadcasts_done() >= n, String::new).await;
        assert_eq!(self.broadcasts_done(), n, "more fan-outs finished than broadcasts were sent");
    }

    /// A second handle on the server's store.
    pub async fn store(&self) -> Arc<dyn Store> {
        self.store
            .get_or_init(|| async { herald_store::open(&self.store_url).await.expect("open the store") })
            .await
            .clone()
    }

    /// Push bindings of `user_id`, as (device_id, push_id, provider).
    pub async fn push_bindings(&self, user_id: &str) -> Vec<(String, String, String)> {
        let bindings = self.store().await.push_bindings_of(APP_ID, user_id).await.expect("push bindings");
        bindings.into_iter().map(|b| (b.device_id, b.push_id, b.provider.as_str().to_string())).collect()
    }

    // ---- The signed API, at the server clock's time ----

    /// A nonce never used before on this server.
    pub fn nonce(&self) -> String {
        self.api.nonce()
    }

    /// Parameters for the default app, signed with a fresh nonce.
    pub fn signed(&self, action: &str) -> Params {
        self.signed_for(APP_ID, SECRET, action)
    }

    pub fn signed_for(&self, app_id: u32, secret: &str, action: &str) -> Params {
        signed_params(action, app_id, secret, &self.nonce(), self.now_s())
    }

    /// A signed call as the default app: POST with `body`, or GET without one.
    pub async fn call(&self, action: &str, body: Option<&str>) -> Value {
        self.raw(&self.signed(action).query(), body.map(|b| b.as_bytes().to_vec())).await
    }

    /// A signed call with extra query parameters (repeated names allowed).
    pub async fn call_with_query(&self, action: &str, extra: &[(&str, &str)], body: Option<&str>) -> Value {
        let params = extra.iter().fold(self.signed(action), |p, (n, v)| p.add(n, v));
        self.raw(&params.query(), body.map(|b| b.as_bytes().to_vec())).await
    }

    /// A signed call as another app.
    pub async fn call_as(&self, app_id: u32, secret: &str, action: &str, body: Option<&str>) -> Value {
        self.raw(&self.signed_for(app_id, secret, action).query(), body.map(|b| b.as_bytes().to_vec())).await
    }

    /// A signed POST that must succeed (`Code` 0).
    pub async fn call_ok(&self, action: &str, body: Value) -> Value {
        let answer = self.call(action, Some(&body.to_string())).await;
        assert_eq!(answer["Code"], 0, "{action} failed: {answer}");
        answer
    }

    /// A signed GET with extra query parameters that must succeed (`Code` 0).
    pub async fn query_ok(&self, action: &str, extra: &[(&str, &str)]) -> Value {
        let answer = self.call_with_query(action, extra, None).await;
        assert_eq!(answer["Code"], 0, "{action} failed: {answer}");
        answer
    }

    /// A hand-built request to `/?{query}`: POST with `body`, or GET without one.
    pub async fn raw(&self, query: &str, body: Option<Vec<u8>>) -> Value {
        self.api.send(&self.base_url(), query, body).await
    }

    /// A request with any HTTP method.
    pub async fn raw_method(&self, method: reqwest::Method, query: &str) -> Value {
        self.api.send_method(&self.base_url(), method, query).await
    }

    /// Registers users (`UserRegister`) and asserts every one of them was created.
    pub async fn register(&self, user_ids: &[&str]) {
        let infos: Vec<Value> = user_ids.iter().map(|id| json!({ "UserId": id })).collect();
        let answer = self.call("UserRegister", Some(&json!({ "UserInfo": infos }).to_string())).await;
        assert_code(&answer, SUCCESS);
        assert_eq!(answer["ErrorList"], json!([]), "{answer}");
    }

    /// Whether `QueryUserOnlineState` says the user is online.
    pub async fn online(&self, user_id: &str) -> bool {
        let answer = self.query_ok("QueryUserOnlineState", &[("UserId[]", user_id)]).await;
        assert_eq!(answer["ErrorList"], json!([]), "{answer}");
        match answer["Result"][0]["Status"].as_str() {
            Some("Online") => true,
            Some("Offline") => false,
            _ => panic!("QueryUserOnlineState: no Status for {user_id}: {answer}"),
        }
    }

    /// The users among `user_ids` that `QueryUserOnlineState` says are online (100 per call).
    pub async fn online_among(&self, user_ids: &[String]) -> Vec<String> {
        let mut online = Vec::new();
        for chunk in user_ids.chunks(100) {
            let query: Vec<(&str, &str)> = chunk.iter().map(|u| ("UserId[]", u.as_str())).collect();
            let answer = self.query_ok("QueryUserOnlineState", &query).await;
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

    // ---- Broadcasts ----

    /// `SendMessageToAllUsers` with this body, which must be accepted; [`SENDER`] is
    /// registered first, once. Returns the message ID (the answer's RequestId).
    pub async fn broadcast(&self, body: Value) -> String {
        self.sender_registered
            .get_or_init(|| async {
                let answer =
                    self.call("UserRegister", Some(&json!({"UserInfo": [{"UserId": SENDER}]}).to_string())).await;
                // A test may have registered the sender itself (or logged in as it).
                let exists = answer["ErrorList"][0]["SubCode"] == USER_ALREADY_EXISTS;
                assert!(code(&answer) == SUCCESS || exists, "registering the sender: {answer}");
            })
            .await;
        let answer = self.call_ok("SendMessageToAllUsers", body).await;
        answer["RequestId"].as_str().expect("checked by the harness").to_string()
    }

    /// A text broadcast from [`SENDER`], nothing else set.
    pub async fn broadcast_text(&self, text: &str) -> String {
        self.broadcast(json!({"FromUserId": SENDER, "MessageType": 1, "MessageBody": {"Message": text}})).await
    }

    /// [`Server::broadcast_text`], then waits until its fan-out has finished.
    pub async fn broadcast_and_fan_out(&self, text: &str) {
        let done = self.broadcasts_done();
        self.broadcast_text(text).await;
        wait_for_with("the fan-out", || self.broadcasts_done() > done, String::new).await;
    }

    /// An offline-push broadcast: a text message from [`SENDER`] with this `MessageBody` and
    /// `PushType`. Returns its message ID.
    pub async fn broadcast_push(&self, push_type: u8, message_body: Value) -> String {
        let body = json!({"FromUserId": SENDER, "MessageType": 1, "MessageBody": message_body, "PushType": push_type});
        self.broadcast(body).await
    }

    /// `QueryBroadcastReport` of a broadcast, which must answer `Code` 0.
    pub async fn report(&self, message_id: &str) -> Value {
        self.call_ok("QueryBroadcastReport", json!({"MessageId": message_id})).await
    }

    /// Polls the report until the broadcast's push job is done; returns the report.
    pub async fn wait_push_done(&self, message_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let r = self.report(message_id).await;
            if r["OfflinePush"]["State"] == "done" {
                return r;
            }
            assert!(tokio::time::Instant::now() < deadline, "push job never finished: {r}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn launch(
    config_text: &str,
    listen: SocketAddr,
    clock: &TestClock,
    shutdown: &CancellationToken,
) -> Result<Running, herald_server::StartError> {
    let text = format!("listen = \"{listen}\"\n{config_text}");
    let config = Config::parse(&text, &|_| None).unwrap_or_else(|e| panic!("test config: {e}\n{text}"));
    herald_server::start(config, clock.for_server(), shutdown.clone()).await
}
