//! Stand-ins for the push providers, and what the offline-push tests share. Each stand-in is a
//! real HTTP server on 127.0.0.1:0 that checks the auth it would see in production, answers
//! from a script, and records what arrived.

use bytes::Bytes;
use herald_proto::signature::callback_signature;
use herald_store::{PushBinding, PushProvider, Store};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// A report's offline-push counts: targeted, sent, failed, removed bindings, skipped online.
pub fn counts(report: &Value) -> [u64; 5] {
    let p = &report["OfflinePush"];
    ["Targeted", "Sent", "Failed", "RemovedBindings", "SkippedOnline"].map(|k| p[k].as_u64().unwrap())
}

/// A scripted answer: HTTP status and an optional `Retry-After` in seconds.
pub type Scripted = (u16, Option<u64>);

/// Serves HTTP/1.1 on `listener` until the test ends, each request answered by `answer`.
fn serve_http1<S, Fut>(listener: TcpListener, state: Arc<S>, answer: fn(Arc<S>, Request<Incoming>) -> Fut)
where
    S: Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    super::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let s = state.clone();
            super::spawn(async move {
                let svc = service_fn(move |req| {
                    let answered = answer(s.clone(), req);
                    async move { Ok::<_, std::convert::Infallible>(answered.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
}

/// The webhook stand-in: verifies the ZIM callback signature of every call, answers each
/// push ID's scripted statuses first (then 200), and records the calls answered 200.
pub struct Hook {
    pub url: String,
    state: Arc<HookState>,
}

struct HookState {
    secret: String,
    /// Bodies answered 200, in arrival order.
    delivered: Mutex<Vec<Value>>,
    /// Calls per push ID, whatever the answer.
    attempts: Mutex<HashMap<String, u32>>,
    /// Statuses (and an optional Retry-After) to answer per push ID before answering 200.
    script: Mutex<HashMap<String, VecDeque<Scripted>>>,
    /// Calls that arrived, held ones included.
    arrived: AtomicUsize,
    /// Calls arriving at or after this index never get an answer (a hung provider).
    hold_from: AtomicUsize,
    problems: Mutex<Vec<String>>,
}

impl Hook {
    pub async fn start(secret: &str) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/offline-push", listener.local_addr().unwrap());
        let state = Arc::new(HookState {
            secret: secret.to_string(),
            delivered: Mutex::default(),
            attempts: Mutex::default(),
            script: Mutex::default(),
            arrived: AtomicUsize::new(0),
            hold_from: AtomicUsize::new(usize::MAX),
            problems: Mutex::default(),
        });
        serve_http1(listener, state.clone(), |s, req| async move { s.answer(req).await });
        Hook { url, state }
    }

    /// `push_id`'s next calls answer these statuses, in order, before 200.
    pub fn script(&self, push_id: &str, answers: &[Scripted]) {
        self.state.script.lock().unwrap().insert(push_id.to_string(), answers.iter().copied().collect());
    }

    /// Calls from the `index`-th on (counting from 0) hang without an answer.
    pub fn hold_from(&self, index: usize) {
        self.state.hold_from.store(index, Ordering::SeqCst);
    }

    pub fn arrived(&self) -> usize {
        self.state.arrived.load(Ordering::SeqCst)
    }

    pub fn delivered(&self) -> Vec<Value> {
        self.state.delivered.lock().unwrap().clone()
    }

    /// Push IDs answered 200, sorted, with repeats.
    pub fn delivered_push_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> =
            self.delivered().iter().map(|b| b["push_id"].as_str().unwrap_or_default().to_string()).collect();
        ids.sort();
        ids
    }

    pub fn attempts(&self, push_id: &str) -> u32 {
        self.state.attempts.lock().unwrap().get(push_id).copied().unwrap_or(0)
    }

    /// Panics if any call was malformed or badly signed.
    pub fn assert_no_problems(&self) {
        let problems = self.state.problems.lock().unwrap();
        assert!(problems.is_empty(), "webhook stand-in saw bad calls: {problems:?}");
    }
}

impl HookState {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let index = self.arrived.fetch_add(1, Ordering::SeqCst);
        let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                self.problems.lock().unwrap().push(format!("body is not JSON: {e}"));
                return status(400, None);
            }
        };
        let timestamp = body["timestamp"].as_i64().unwrap_or_default();
        let nonce = body["nonce"].as_str().unwrap_or_default();
        let want = callback_signature(&self.secret, timestamp, nonce);
        if body["signature"].as_str() != Some(want.as_str()) || nonce.is_empty() {
            self.problems.lock().unwrap().push(format!("bad signature on {body}"));
            return status(401, None);
        }
        let push_id = body["push_id"].as_str().unwrap_or_default().to_string();
        *self.attempts.lock().unwrap().entry(push_id.clone()).or_default() += 1;
        if index >= self.hold_from.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let scripted = self.script.lock().unwrap().get_mut(&push_id).and_then(VecDeque::pop_front);
        match scripted {
            Some((code, retry_after)) => status(code, retry_after),
            None => {
                self.delivered.lock().unwrap().push(body);
                status(200, None)
            }
        }
    }
}

fn status(code: u16, retry_after: Option<u64>) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(StatusCode::from_u16(code).unwrap());
    if let Some(s) = retry_after {
        builder = builder.header("retry-after", s.to_string());
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}

pub fn binding(app_id: u32, user_id: &str, device_id: &str, push_id: &str, provider: PushProvider) -> PushBinding {
    PushBinding {
        app_id,
        user_id: user_id.into(),
        device_id: device_id.into(),
        push_id: push_id.into(),
        provider,
        updated_at_ms: 1,
    }
}

/// Binds offline devices straight in the store (as if each user had logged in, reported the
/// push ID and dropped off).
pub async fn bind_all(store: &Arc<dyn Store>, bindings: &[PushBinding]) {
    for b in bindings {
        store.bind_push(b).await.expect("bind_push");
    }
}

// ---------------------------------------------------------------------------------------------
// FCM HTTP v1 and Google's OAuth2 token endpoint.

/// The RSA key of the test service account (PKCS#8, made once with openssl; test-only).
pub const FCM_TEST_KEY: &str = include_str!("fcm-test-key.pem");
pub const FCM_CLIENT_EMAIL: &str = "herald-push@herald-test.iam.gserviceaccount.com";
pub const FCM_KEY_ID: &str = "test-key-1";
pub const FCM_PROJECT: &str = "herald-test";

/// A scripted FCM answer.
#[derive(Debug, Clone)]
pub struct FcmAnswer {
    pub status: u16,
    pub error: Option<Value>,
    pub retry_after: Option<u64>,
}

impl FcmAnswer {
    pub fn unregistered() -> FcmAnswer {
        FcmAnswer {
            status: 404,
            error: Some(serde_json::json!({"code": 404, "message": "Requested entity was not found.",
                "status": "NOT_FOUND", "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": "UNREGISTERED"}]})),
            retry_after: None,
        }
    }
    pub fn invalid_token() -> FcmAnswer {
        FcmAnswer {
            status: 400,
            error: Some(serde_json::json!({"code": 400,
                "message": "The registration token is not a valid FCM registration token",
                "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": "INVALID_ARGUMENT"}]})),
            retry_after: None,
        }
    }
    pub fn throttled(retry_after_s: u64) -> FcmAnswer {
        FcmAnswer {
            status: 429,
            error: Some(serde_json::json!({"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "QUOTA_EXCEEDED"}]})),
            retry_after: Some(retry_after_s),
        }
    }
    pub fn unavailable() -> FcmAnswer {
        FcmAnswer {
            status: 503,
            error: Some(serde_json::json!({"code": 503, "message": "The service is currently unavailable.",
                "status": "UNAVAILABLE"})),
            retry_after: None,
        }
    }
}

/// Google's two endpoints in one server: `/token` checks the RS256 assertion against the
/// service account's public key and issues bearer tokens; `/v1/projects/{id}/messages:send`
/// checks the bearer token and answers from the script.
pub struct FcmStandIn {
    pub base_url: String,
    pub token_url: String,
    state: Arc<FcmState>,
}

struct FcmState {
    token_url: String,
    public_key: Vec<u8>,
    expires_in: u64,
    tokens: Mutex<Vec<(String, std::time::Instant)>>,
    token_requests: AtomicUsize,
    delivered: Mutex<Vec<Value>>,
    attempts: Mutex<HashMap<String, u32>>,
    script: Mutex<HashMap<String, VecDeque<FcmAnswer>>>,
    problems: Mutex<Vec<String>>,
}

impl FcmStandIn {
    /// `expires_in`: lifetime of the bearer tokens it issues, in seconds.
    pub async fn start(expires_in: u64) -> FcmStandIn {
        use ring::signature::KeyPair;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let token_url = format!("{base_url}/token");
        let der = rustls_pemfile::private_key(&mut FCM_TEST_KEY.as_bytes()).unwrap().unwrap();
        let pair = ring::signature::RsaKeyPair::from_pkcs8(der.secret_der()).unwrap();
        let state = Arc::new(FcmState {
            token_url: token_url.clone(),
            public_key: pair.public_key().as_ref().to_vec(),
            expires_in,
            tokens: Mutex::default(),
            token_requests: AtomicUsize::new(0),
            delivered: Mutex::default(),
            attempts: Mutex::default(),
            script: Mutex::default(),
            problems: Mutex::default(),
        });
        serve_http1(listener, state.clone(), |s, req| async move { s.answer(req).await });
        FcmStandIn { base_url, token_url, state }
    }

    /// A service-account file for this stand-in, written into `dir`.
    pub fn service_account_file(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("service-account.json");
        let account = serde_json::json!({
            "type": "service_account",
            "project_id": FCM_PROJECT,
            "private_key_id": FCM_KEY_ID,
            "private_key": FCM_TEST_KEY,
            "client_email": FCM_CLIENT_EMAIL,
            "token_uri": self.token_url,
        });
        std::fs::write(&path, account.to_string()).unwrap();
        path
    }

    pub fn script(&self, token: &str, answers: &[FcmAnswer]) {
        self.state.script.lock().unwrap().insert(token.to_string(), answers.iter().cloned().collect());
    }
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }
    pub fn delivered(&self) -> Vec<Value> {
        self.state.delivered.lock().unwrap().clone()
    }
    pub fn delivered_tokens(&self) -> Vec<String> {
        let mut t: Vec<String> =
            self.delivered().iter().map(|m| m["message"]["token"].as_str().unwrap_or_default().to_string()).collect();
        t.sort();
        t
    }
    pub fn attempts(&self, token: &str) -> u32 {
        self.state.attempts.lock().unwrap().get(token).copied().unwrap_or(0)
    }
    pub fn assert_no_problems(&self) {
        let problems = self.state.problems.lock().unwrap();
        assert!(problems.is_empty(), "FCM stand-in saw bad calls: {problems:?}");
    }
}

fn json_response(code: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

impl FcmState {
    fn problem(&self, p: String) -> Response<Full<Bytes>> {
        self.problems.lock().unwrap().push(p.clone());
        json_response(401, &serde_json::json!({"error": {"code": 401, "message": p, "status": "UNAUTHENTICATED"}}))
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        if path == "/token" {
            return self.token(&bytes);
        }
        if path != format!("/v1/projects/{FCM_PROJECT}/messages:send") {
            return self.problem(format!("unexpected path {path}"));
        }
        let Some(bearer) = auth.strip_prefix("Bearer ") else { return self.problem("no bearer token".into()) };
        let valid = self.tokens.lock().unwrap().iter().any(|(t, exp)| t == bearer && std::time::Instant::now() < *exp);
        if !valid {
            return self.problem(format!("unknown or expired bearer token {bearer}"));
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let token = body["message"]["token"].as_str().unwrap_or_default().to_string();
        if token.is_empty() {
            return self.problem(format!("message without a token: {body}"));
        }
        *self.attempts.lock().unwrap().entry(token.clone()).or_default() += 1;
        let scripted = self.script.lock().unwrap().get_mut(&token).and_then(VecDeque::pop_front);
        match scripted {
            Some(a) => {
                let mut r = json_response(a.status, &serde_json::json!({"error": a.error}));
                if let Some(s) = a.retry_after {
                    r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
                }
                r
            }
            None => {
                self.delivered.lock().unwrap().push(body);
                json_response(200, &serde_json::json!({"name": format!("projects/{FCM_PROJECT}/messages/1")}))
            }
        }
    }

    /// The OAuth2 JWT-bearer grant (RFC 7523), checked the way Google checks it.
    fn token(&self, form: &[u8]) -> Response<Full<Bytes>> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        self.token_requests.fetch_add(1, Ordering::SeqCst);
        let form: HashMap<String, String> = form_urlencoded::parse(form).into_owned().collect();
        if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return self.problem(format!("bad grant_type in {form:?}"));
        }
        let assertion = form.get("assertion").cloned().unwrap_or_default();
        let Some((signed, sig)) = assertion.rsplit_once('.') else { return self.problem("assertion is no JWT".into()) };
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap_or_default();
        let key =
            ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &self.public_key);
        if key.verify(signed.as_bytes(), &sig).is_err() {
            return self.problem("assertion signature does not verify with the service account's key".into());
        }
        let part = |i: usize| -> Value {
            let b64 = signed.split('.').nth(i).unwrap_or_default();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b64).unwrap_or_default()).unwrap_or(Value::Null)
        };
        let (header, claims) = (part(0), part(1));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let iat = claims["iat"].as_i64().unwrap_or_default();
        let exp = claims["exp"].as_i64().unwrap_or_default();
        let checks = [
            (header["alg"] == "RS256", "alg RS256"),
            (header["kid"] == FCM_KEY_ID, "kid"),
            (claims["iss"] == FCM_CLIENT_EMAIL, "iss"),
            (claims["aud"] == self.token_url.as_str(), "aud"),
            (claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging", "scope"),
            ((iat - now).abs() < 300 && exp > now && exp - iat <= 3600, "iat/exp"),
        ];
        if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
            return self.problem(format!("assertion {what} wrong: {header} {claims}"));
        }
        let n = self.token_requests.load(Ordering::SeqCst);
        let token = format!("ya29.test-{n}");
        let expires = std::time::Instant::now() + Duration::from_secs(self.expires_in);
        self.tokens.lock().unwrap().push((token.clone(), expires));
        json_response(
            200,
            &serde_json::json!({"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// APNs over HTTP/2 with TLS.

pub const APNS_KEY_ID: &str = "ABC123DEFG";
pub const APNS_TEAM_ID: &str = "DEF123GHIJ";
pub const APNS_TOPIC: &str = "com.example.herald";

/// A request APNs answered 200: device token, `apns-*` headers, body.
pub type ApnsDelivery = (String, HashMap<String, String>, Value);

/// A scripted APNs answer: status, `reason`, `Retry-After` seconds.
pub type ApnsAnswer = (u16, &'static str, Option<u64>);

/// APNs' HTTP/2 endpoint: TLS with a fresh self-signed certificate (ALPN h2 only), the ES256
/// provider token verified with the `.p8` key's public half on every request, the `apns-*`
/// headers checked, answers from the script.
pub struct ApnsStandIn {
    pub base_url: String,
    state: Arc<ApnsState>,
}

/// What the provider is configured with to reach an [`ApnsStandIn`].
pub struct ApnsFiles {
    pub key_file: std::path::PathBuf,
    pub ca_file: std::path::PathBuf,
}

struct ApnsState {
    public_key: Vec<u8>,
    connections: AtomicUsize,
    provider_tokens: Mutex<std::collections::HashSet<String>>,
    delivered: Mutex<Vec<ApnsDelivery>>,
    attempts: Mutex<HashMap<String, u32>>,
    script: Mutex<HashMap<String, VecDeque<ApnsAnswer>>>,
    problems: Mutex<Vec<String>>,
}

impl ApnsStandIn {
    /// Starts the stand-in and writes the `.p8` signing key and the CA certificate to `dir`.
    pub async fn start(dir: &std::path::Path) -> (ApnsStandIn, ApnsFiles) {
        use base64::Engine;
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        use tokio_rustls::rustls;

        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
        let key_file = dir.join(format!("AuthKey_{APNS_KEY_ID}.p8"));
        std::fs::write(&key_file, format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")).unwrap();

        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let ca_file = dir.join("apns-stand-in-ca.pem");
        std::fs::write(&ca_file, certified.cert.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("https://{}", listener.local_addr().unwrap());
        let state = Arc::new(ApnsState {
            public_key: pair.public_key().as_ref().to_vec(),
            connections: AtomicUsize::new(0),
            provider_tokens: Mutex::default(),
            delivered: Mutex::default(),
            attempts: Mutex::default(),
            script: Mutex::default(),
            problems: Mutex::default(),
        });
        let s = state.clone();
        super::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (s, acceptor) = (s.clone(), acceptor.clone());
                super::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                        s.problems.lock().unwrap().push("client did not negotiate h2".into());
                        return;
                    }
                    s.connections.fetch_add(1, Ordering::SeqCst);
                    let svc = service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, std::convert::Infallible>(s.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        (ApnsStandIn { base_url, state }, ApnsFiles { key_file, ca_file })
    }

    pub fn script(&self, token: &str, answers: &[ApnsAnswer]) {
        self.state.script.lock().unwrap().insert(token.to_string(), answers.iter().copied().collect());
    }
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
    pub fn provider_tokens(&self) -> usize {
        self.state.provider_tokens.lock().unwrap().len()
    }
    /// (device token, apns-* headers, body) of each request answered 200.
    pub fn delivered(&self) -> Vec<ApnsDelivery> {
        self.state.delivered.lock().unwrap().clone()
    }
    pub fn delivered_tokens(&self) -> Vec<String> {
        let mut t: Vec<String> = self.delivered().into_iter().map(|(t, _, _)| t).collect();
        t.sort();
        t
    }
    pub fn attempts(&self, token: &str) -> u32 {
        self.state.attempts.lock().unwrap().get(token).copied().unwrap_or(0)
    }
    pub fn assert_no_problems(&self) {
        let problems = self.state.problems.lock().unwrap();
        assert!(problems.is_empty(), "APNs stand-in saw bad calls: {problems:?}");
    }
}

impl ApnsState {
    fn refuse(&self, status: u16, reason: &str, problem: String) -> Response<Full<Bytes>> {
        self.problems.lock().unwrap().push(problem);
        json_response(status, &json!({ "reason": reason }))
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        if req.version() != http::Version::HTTP_2 {
            return self.refuse(400, "BadRequest", format!("HTTP version {:?}", req.version()));
        }
        let path = req.uri().path().to_string();
        let Some(token) = path.strip_prefix("/3/device/").map(str::to_string) else {
            return self.refuse(404, "BadPath", format!("unexpected path {path}"));
        };
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut apns_headers = HashMap::new();
        for name in ["apns-topic", "apns-push-type", "apns-priority", "apns-expiration", "apns-collapse-id"] {
            if let Some(v) = header(name) {
                apns_headers.insert(name.to_string(), v);
            }
        }
        let auth = header("authorization").unwrap_or_default();
        let Some(jwt) = auth.strip_prefix("bearer ").map(str::to_string) else {
            return self.refuse(403, "MissingProviderToken", "no bearer provider token".into());
        };
        let Some((signed, sig)) = jwt.rsplit_once('.') else {
            return self.refuse(403, "InvalidProviderToken", "provider token is no JWT".into());
        };
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap_or_default();
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &self.public_key);
        if key.verify(signed.as_bytes(), &sig).is_err() {
            return self.refuse(403, "InvalidProviderToken", "ES256 signature does not verify with the .p8 key".into());
        }
        let part = |i: usize| -> Value {
            let b64 = signed.split('.').nth(i).unwrap_or_default();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b64).unwrap_or_default()).unwrap_or(Value::Null)
        };
        let (jwt_header, claims) = (part(0), part(1));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let iat = claims["iat"].as_i64().unwrap_or_default();
        if jwt_header["alg"] != "ES256" || jwt_header["kid"] != APNS_KEY_ID || claims["iss"] != APNS_TEAM_ID {
            return self.refuse(403, "InvalidProviderToken", format!("provider token {jwt_header} {claims}"));
        }
        if now - iat > 3600 || iat - now > 60 {
            return self.refuse(403, "ExpiredProviderToken", format!("provider token iat {iat}, now {now}"));
        }
        self.provider_tokens.lock().unwrap().insert(jwt.clone());
        let topic_ok = apns_headers.get("apns-topic").map(String::as_str) == Some(APNS_TOPIC);
        let type_ok = apns_headers.get("apns-push-type").map(String::as_str) == Some("alert");
        let prio_ok = apns_headers.get("apns-priority").map(String::as_str) == Some("10");
        let exp_ok = apns_headers.get("apns-expiration").is_some_and(|e| e.parse::<i64>().is_ok());
        let collapse_ok = apns_headers.get("apns-collapse-id").is_some_and(|c| !c.is_empty() && c.len() <= 64);
        if !(topic_ok && type_ok && prio_ok && exp_ok && collapse_ok) {
            return self.refuse(400, "BadHeaders", format!("apns headers {apns_headers:?}"));
        }
        let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
            return self.refuse(400, "PayloadEmpty", "body is not JSON".into());
        };
        if !body["aps"].is_object() {
            return self.refuse(400, "BadPayload", format!("no aps in {body}"));
        }
        *self.attempts.lock().unwrap().entry(token.clone()).or_default() += 1;
        let scripted = self.script.lock().unwrap().get_mut(&token).and_then(VecDeque::pop_front);
        match scripted {
            Some((status, reason, retry_after)) => {
                let mut r = json_response(status, &json!({ "reason": reason }));
                if let Some(s) = retry_after {
                    r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
                }
                r
            }
            None => {
                self.delivered.lock().unwrap().push((token, apns_headers, body));
                Response::builder()
                    .status(200)
                    .header("apns-id", "00000000-0000-0000-0000-000000000001")
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            }
        }
    }
}
