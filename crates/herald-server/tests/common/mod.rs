//! The harness of the black-box API tests: a real server on port 0, its sqlite file in a
//! temporary directory, a [`ManualClock`] so time-dependent tests never sleep, and a signing
//! HTTP client that checks the common answer shape (HTTP 200, JSON, `Code`, `Message`,
//! `RequestId`) on every single call.

// Each test binary uses its own subset of the helpers.
#![allow(dead_code)]

use herald_proto::signature::api_signature;
use herald_server::clock::{Clock, ManualClock};
use herald_server::config::Config;
use herald_server::Running;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// The app every test server serves unless a test configures its own.
pub const APP_ID: u32 = 1234567890;
pub const SECRET: &str = "fa94dd0f974cf2e293728a526b028271";
/// A second app, for tests about per-app behaviour.
pub const OTHER_APP_ID: u32 = 987654321;
pub const OTHER_SECRET: &str = "0123456789abcdef0123456789abcdef";

/// The ManualClock's start: 2023-11-14T22:13:20Z, on a whole second.
pub const T0_MS: i64 = 1_700_000_000_000;
pub const SECOND_MS: i64 = 1_000;
pub const DAY_MS: i64 = 24 * 60 * 60 * 1_000;

// Return codes the tests expect, spelled out so a renumbering in the server cannot hide.
pub const SUCCESS: u64 = 0;
pub const APP_ID_FORMAT: u64 = 100000001;
pub const TIMESTAMP_EMPTY: u64 = 100000002;
pub const TIMESTAMP_FORMAT: u64 = 100000003;
pub const SIGNATURE_EXPIRED: u64 = 100000004;
pub const SIGNATURE_INVALID: u64 = 100000005;
pub const ACTION_EMPTY: u64 = 100000006;
pub const ACTION_UNSUPPORTED: u64 = 100000007;
pub const NONCE_EMPTY: u64 = 100000008;
pub const SIGNATURE_EMPTY: u64 = 100000009;
pub const SECRET_UNAVAILABLE: u64 = 100000010;
pub const BODY_READ_FAILED: u64 = 100000012;
pub const SIGNATURE_VERSION_EMPTY: u64 = 100000013;
pub const SIGNATURE_VERSION_UNSUPPORTED: u64 = 100000014;
pub const BUSINESS_ERROR: u64 = 660000001;
pub const PARAM_ERROR: u64 = 660000002;
pub const TOO_MANY_USERS: u64 = 660000011;
pub const USER_ID_TOO_LONG: u64 = 660000012;
pub const FEATURE_NOT_ENABLED: u64 = 660000028;
pub const USER_NOT_ONLINE_OR_MISSING: u64 = 660200001;
pub const MESSAGE_TOO_LARGE: u64 = 660400001;
pub const SENDER_NOT_REGISTERED: u64 = 660500002;
pub const BROADCAST_FREQUENCY: u64 = 660500003;
pub const USER_ALREADY_EXISTS: u64 = 660700002;
pub const USER_NAME_TOO_LONG: u64 = 660700006;
pub const USER_AVATAR_TOO_LONG: u64 = 660700007;
pub const USER_NOT_REGISTERED: u64 = 660700012;
pub const USER_NOT_FOUND: u64 = 660700015;

/// One `[[apps]]` table. `keys` go into the app table (e.g. `broadcast_enabled = false`),
/// `limits` into its `[apps.limits]` table (e.g. `message_max_bytes = 32768`).
pub fn app_toml(app_id: u32, secret: &str, keys: &str, limits: &str) -> String {
    format!("[[apps]]\napp_id = {app_id}\nserver_secret = \"{secret}\"\n{keys}\n[apps.limits]\n{limits}\n")
}

/// The default app with default limits.
pub fn default_app() -> String {
    app_toml(APP_ID, SECRET, "", "")
}

/// Common query parameters, in order, that a test may remove or replace before sending.
#[derive(Debug, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Replaces the value of `name`, or appends it.
    pub fn set(mut self, name: &str, value: &str) -> Self {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(pair) => pair.1 = value.to_string(),
            None => self.0.push((name.to_string(), value.to_string())),
        }
        self
    }

    /// Appends `name=value` even if `name` is already there (`UserId[]=a&UserId[]=b`).
    pub fn add(mut self, name: &str, value: &str) -> Self {
        self.0.push((name.to_string(), value.to_string()));
        self
    }

    pub fn without(mut self, name: &str) -> Self {
        self.0.retain(|(n, _)| n != name);
        self
    }

    /// The `application/x-www-form-urlencoded` query string.
    pub fn query(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (n, v) in &self.0 {
            s.append_pair(n, v);
        }
        s.finish()
    }
}

/// Signed common parameters for any app, nonce and timestamp.
pub fn signed_params(action: &str, app_id: u32, secret: &str, nonce: &str, timestamp_s: i64) -> Params {
    Params(vec![
        ("Action".into(), action.into()),
        ("AppId".into(), app_id.to_string()),
        ("SignatureNonce".into(), nonce.into()),
        ("Timestamp".into(), timestamp_s.to_string()),
        ("Signature".into(), api_signature(app_id, nonce, secret, timestamp_s)),
        ("SignatureVersion".into(), "2.0".into()),
    ])
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub shutdown: CancellationToken,
    pub dir: TempDir,
    config_text: String,
    running: Option<Running>,
    http: reqwest::Client,
    request_ids: Mutex<HashSet<u64>>,
    nonces: AtomicU64,
}

impl TestServer {
    /// A server with the default app and default limits.
    pub async fn start() -> TestServer {
        TestServer::start_with(&default_app()).await
    }

    /// A server whose configuration is the harness's own (listen on port 0, sqlite in a
    /// temporary directory) followed by `tail`: `[api]`, `[[apps]]`… tables.
    pub async fn start_with(tail: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let d = dir.path().display();
        let config_text = format!(
            "listen = \"127.0.0.1:0\"\nadmin.listen = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\nlog = \"warn\"\n\
             [store]\nurl = \"sqlite://{d}/herald.db\"\n\
             {tail}"
        );
        let clock = Arc::new(ManualClock::new(T0_MS));
        let shutdown = CancellationToken::new();
        let running = launch(&config_text, &clock, &shutdown).await;
        let http = reqwest::Client::builder()
            .no_proxy()
            // A fresh connection per request: a restart never meets a stale pooled one, and
            // shutdown never waits for idle keep-alive connections.
            .pool_max_idle_per_host(0)
            .build()
            .expect("http client");
        TestServer {
            addr: running.local_addr,
            clock,
            shutdown,
            dir,
            config_text,
            running: Some(running),
            http,
            request_ids: Mutex::new(HashSet::new()),
            nonces: AtomicU64::new(1),
        }
    }

    /// Stops the server and starts it again on the same sqlite file, keeping the clock.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.shutdown = CancellationToken::new();
        let running = launch(&self.config_text, &self.clock, &self.shutdown).await;
        self.addr = running.local_addr;
        self.running = Some(running);
    }

    /// Cancels the server and waits until it has shut down.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.wait().await;
        }
    }

    pub fn now_s(&self) -> i64 {
        self.clock.now_s()
    }

    pub fn advance_ms(&self, ms: i64) {
        self.clock.advance_ms(ms);
    }

    /// A nonce never used before on this server.
    pub fn nonce(&self) -> String {
        format!("{:016x}", self.nonces.fetch_add(1, Ordering::Relaxed))
    }

    /// Parameters for the default app, signed with a fresh nonce at the clock's time.
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

    /// A hand-built request to `/?{query}`: POST with `body`, or GET without one. The answer
    /// is checked for the common shape.
    pub async fn raw(&self, query: &str, body: Option<Vec<u8>>) -> Value {
        let url = format!("http://{}/?{query}", self.addr);
        let request = match body {
            Some(b) => self.http.post(&url).header("content-type", "application/json").body(b),
            None => self.http.get(&url),
        };
        let response = request.send().await.unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
        self.answer(response).await
    }

    /// A request with any HTTP method, checked for the common shape.
    pub async fn raw_method(&self, method: reqwest::Method, query: &str) -> Value {
        let url = format!("http://{}/?{query}", self.addr);
        let response = self.http.request(method, &url).send().await.unwrap();
        self.answer(response).await
    }

    /// Checks what every answer must be and returns its JSON.
    async fn answer(&self, response: reqwest::Response) -> Value {
        assert_eq!(response.status(), reqwest::StatusCode::OK, "every API answer is HTTP 200");
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(content_type.starts_with("application/json"), "content type {content_type:?}");
        let bytes = response.bytes().await.expect("answer body");
        let answer: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {:?}", String::from_utf8_lossy(&bytes)));
        let obj = answer.as_object().unwrap_or_else(|| panic!("answer is not a JSON object: {answer}"));
        let code = obj.get("Code").and_then(Value::as_u64).unwrap_or_else(|| panic!("no numeric Code: {answer}"));
        let message =
            obj.get("Message").and_then(Value::as_str).unwrap_or_else(|| panic!("no string Message: {answer}"));
        if code != SUCCESS {
            assert!(!message.is_empty(), "an error answer must say what is wrong: {answer}");
        }
        let request_id =
            obj.get("RequestId").and_then(Value::as_str).unwrap_or_else(|| panic!("no string RequestId: {answer}"));
        assert!(
            !request_id.is_empty() && request_id.bytes().all(|b| b.is_ascii_digit()),
            "RequestId must be a decimal string: {answer}"
        );
        let id: u64 = request_id.parse().unwrap_or_else(|_| panic!("RequestId is not a u64: {answer}"));
        assert!(self.request_ids.lock().unwrap().insert(id), "RequestId {id} was answered twice: {answer}");
        answer
    }

    /// Registers users (`UserRegister`) and asserts every one of them was created.
    pub async fn register(&self, user_ids: &[&str]) {
        let infos: Vec<Value> = user_ids.iter().map(|id| json!({ "UserId": id })).collect();
        let answer = self.call("UserRegister", Some(&json!({ "UserInfo": infos }).to_string())).await;
        assert_code(&answer, SUCCESS);
        assert_eq!(answer["ErrorList"], json!([]), "{answer}");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn launch(config_text: &str, clock: &Arc<ManualClock>, shutdown: &CancellationToken) -> Running {
    let config = Config::parse(config_text, &|_| None).unwrap_or_else(|e| panic!("test config: {e}\n{config_text}"));
    let clock: Arc<dyn Clock> = clock.clone();
    herald_server::start(config, clock, shutdown.clone()).await.expect("server starts")
}

/// The answer's `Code`.
pub fn code(answer: &Value) -> u64 {
    answer["Code"].as_u64().expect("checked by the harness")
}

/// Asserts the answer's `Code`, showing the whole answer when it differs.
#[track_caller]
pub fn assert_code(answer: &Value, expected: u64) {
    assert_eq!(code(answer), expected, "unexpected answer: {answer}");
}

/// Asserts the answer's `Code` with a note saying which case it was.
#[track_caller]
pub fn assert_code_for(answer: &Value, expected: u64, case: &str) {
    assert_eq!(code(answer), expected, "{case}: unexpected answer: {answer}");
}
