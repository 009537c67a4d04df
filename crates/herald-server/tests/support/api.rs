//! Signed server-API calls, and the checks every answer must pass: HTTP 200, JSON, a numeric
//! `Code`, a `Message` that says what is wrong whenever the code is not 0, and a decimal
//! `RequestId` that the same server never answers twice.

use super::{PATIENCE, SUCCESS};
use herald_proto::signature::api_signature;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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

/// The client side of one server's API: an HTTP client, fresh nonces, and the RequestIds
/// answered so far (kept across restarts of the server).
pub(crate) struct ApiClient {
    http: reqwest::Client,
    request_ids: Mutex<HashSet<u64>>,
    nonces: AtomicU64,
}

impl ApiClient {
    /// A client trusting the system's roots, plus `extra_root` (PEM) when given.
    pub fn new(extra_root: Option<&str>) -> ApiClient {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            // A fresh connection per request: a restart never meets a stale pooled one, and
            // shutdown never waits for idle keep-alive connections.
            .pool_max_idle_per_host(0);
        if let Some(pem) = extra_root {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("test root"));
        }
        ApiClient {
            http: builder.build().expect("http client"),
            request_ids: Mutex::new(HashSet::new()),
            // A random start: nodes of a cluster share one nonce table, and a restarted server
            // keeps its own, so nonces must never repeat across servers or processes.
            nonces: AtomicU64::new(u64::from(rand::random::<u32>()) << 32),
        }
    }

    /// A nonce never used before.
    pub fn nonce(&self) -> String {
        format!("{:016x}", self.nonces.fetch_add(1, Ordering::Relaxed))
    }

    /// `{base}/?{query}`: POST with `body`, or GET without one; the answer is checked.
    pub async fn send(&self, base: &str, query: &str, body: Option<Vec<u8>>) -> Value {
        let url = format!("{base}/?{query}");
        let request = match body {
            Some(b) => self.http.post(&url).header("content-type", "application/json").body(b),
            None => self.http.get(&url),
        };
        self.answer(&url, request).await
    }

    /// A request with any HTTP method, checked like every other.
    pub async fn send_method(&self, base: &str, method: reqwest::Method, query: &str) -> Value {
        let url = format!("{base}/?{query}");
        let request = self.http.request(method, &url);
        self.answer(&url, request).await
    }

    /// Sends and checks what every answer must be; returns its JSON.
    async fn answer(&self, url: &str, request: reqwest::RequestBuilder) -> Value {
        let response = tokio::time::timeout(PATIENCE, request.send())
            .await
            .unwrap_or_else(|_| panic!("no answer from {url} in time"))
            .unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
        assert_eq!(response.status(), reqwest::StatusCode::OK, "every API answer is HTTP 200");
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(content_type.starts_with("application/json"), "content type {content_type:?}");
        let bytes = tokio::time::timeout(PATIENCE, response.bytes())
            .await
            .unwrap_or_else(|_| panic!("no answer body from {url} in time"))
            .expect("answer body");
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
