//! Fast local stand-ins for the push providers, served from one thread of their own.
//!
//! - **webhook**: HTTP/1.1 with keep-alive (hyper). Every call is answered 200 with an empty body.
//! - **APNs**: HTTP/2 over TLS (a fresh self-signed certificate, ALPN `h2`), many streams on one
//!   connection, `POST /3/device/{token}` answered 200 with an `apns-id`.
//!
//! Per call the stand-in only reads the body, finds the device's index in its push ID (webhook
//! `"push_id":"p<i>"`, APNs the last 16 hex digits of the token) and marks it in a bitset, so
//! repeats and strangers are counted. One call in `check_every` (and the first) is checked in
//! full the way the provider would: the ZIM callback signature and fields (webhook), or the ES256
//! provider token, `apns-*` headers and `aps` payload (APNs). The thread's CPU time is read from
//! `/proc/self/task/TID/stat`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio_rustls::rustls;

use crate::tstamp::now_ns;

/// The APNs credentials the server is configured with.
pub const APNS_KEY_ID: &str = "BENCH12345";
pub const APNS_TEAM_ID: &str = "HERALDBNCH";
pub const APNS_TOPIC: &str = "com.example.herald-bench";

/// Streams one APNs connection may carry at once (Apple allows 1,000).
const APNS_STREAMS: u32 = 1000;

/// Which provider the stand-in plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Webhook,
    Apns,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Webhook => "webhook",
            Provider::Apns => "apns",
        }
    }

    /// The push ID bound to device `i`: the stand-in reads `i` back out of it.
    pub fn push_id(self, i: usize) -> String {
        match self {
            Provider::Webhook => format!("p{i}"),
            // APNs device tokens are 64 hex digits.
            Provider::Apns => format!("{i:064x}"),
        }
    }
}

/// What the stand-in saw. Counters are relaxed atomics: they are read after the run (or polled).
pub struct Stats {
    /// Calls answered.
    pub calls: AtomicU64,
    /// Calls for a device already seen.
    pub repeats: AtomicU64,
    /// Calls whose push ID is not one of the bench's devices.
    pub strangers: AtomicU64,
    /// Calls checked in full, and those that failed the check.
    pub checked: AtomicU64,
    pub bad: AtomicU64,
    /// CLOCK_REALTIME ns of the first and the latest call.
    pub first_ns: AtomicI64,
    pub last_ns: AtomicI64,
    /// Connections accepted (TLS handshakes done, for APNs).
    pub connections: AtomicU64,
    /// The serving thread's kernel id, for its CPU time.
    pub tid: AtomicI32,
    pub first_problem: Mutex<Option<String>>,
    seen: Vec<AtomicU64>,
}

impl Stats {
    fn new(devices: usize) -> Stats {
        Stats {
            calls: AtomicU64::new(0),
            repeats: AtomicU64::new(0),
            strangers: AtomicU64::new(0),
            checked: AtomicU64::new(0),
            bad: AtomicU64::new(0),
            first_ns: AtomicI64::new(0),
            last_ns: AtomicI64::new(0),
            connections: AtomicU64::new(0),
            tid: AtomicI32::new(0),
            first_problem: Mutex::new(None),
            seen: (0..devices.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts a call for device `index` (None: not recognised); true when it is the call to check.
    fn arrived(&self, index: Option<usize>, check_every: u64) -> bool {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let now = now_ns();
        if n == 0 {
            self.first_ns.store(now, Ordering::Relaxed);
        }
        self.last_ns.fetch_max(now, Ordering::Relaxed);
        match index.filter(|i| i / 64 < self.seen.len()) {
            Some(i) => {
                let bit = 1u64 << (i % 64);
                if self.seen[i / 64].fetch_or(bit, Ordering::Relaxed) & bit != 0 {
                    self.repeats.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.strangers.fetch_add(1, Ordering::Relaxed);
            }
        }
        // (not `is_multiple_of`: that needs Rust 1.87, the workspace says 1.85)
        n.checked_rem(check_every) == Some(0)
    }

    /// Distinct devices reached.
    pub fn distinct(&self) -> u64 {
        self.seen.iter().map(|w| u64::from(w.load(Ordering::Relaxed).count_ones())).sum()
    }

    fn checked(&self, result: std::result::Result<(), String>) {
        self.checked.fetch_add(1, Ordering::Relaxed);
        if let Err(problem) = result {
            self.bad.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_problem.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert(problem);
        }
    }

    /// CPU time of the serving thread (ms).
    pub fn cpu_ms(&self) -> Option<f64> {
        let tid = self.tid.load(Ordering::Relaxed);
        (tid > 0).then(|| thread_cpu_ms(tid)).flatten()
    }
}

/// A running stand-in.
pub struct StandIn {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
}

/// What the server's `[apps.push.apns]` needs to reach an APNs stand-in.
pub struct ApnsFiles {
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
}

/// How one call is checked in full.
enum Check {
    /// The ZIM callback secret and AppID.
    Webhook { secret: String, app_id: u32 },
    /// The public half of the `.p8` key.
    Apns { public_key: Vec<u8> },
}

/// Starts the webhook stand-in for `devices` devices.
pub fn webhook(devices: usize, check_every: u64, secret: &str, app_id: u32) -> Result<StandIn> {
    let check = Check::Webhook { secret: secret.to_string(), app_id };
    spawn(devices, check_every, check, None)
}

/// Starts the APNs stand-in and writes the `.p8` signing key and the certificate to `dir`.
pub fn apns(devices: usize, check_every: u64, dir: &Path) -> Result<(StandIn, ApnsFiles)> {
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| anyhow!("cannot generate an ES256 key"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow!("cannot read the ES256 key back"))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let key_file = dir.join(format!("AuthKey_{APNS_KEY_ID}.p8"));
    std::fs::write(&key_file, format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n"))?;

    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])?;
    let ca_file = dir.join("apns-stand-in-ca.pem");
    std::fs::write(&ca_file, certified.cert.pem())?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)?;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

    let check = Check::Apns { public_key: pair.public_key().as_ref().to_vec() };
    let stand_in = spawn(devices, check_every, check, Some(acceptor))?;
    Ok((stand_in, ApnsFiles { key_file, ca_file }))
}

/// Binds 127.0.0.1:0 and serves from a new thread with a single-threaded runtime.
fn spawn(devices: usize, check_every: u64, check: Check, tls: Option<tokio_rustls::TlsAcceptor>) -> Result<StandIn> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(Stats::new(devices));
    let state = Arc::new(State { stats: stats.clone(), check_every: check_every.max(1), check });
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    std::thread::Builder::new().name("push-stand-in".into()).spawn(move || {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        state.stats.tid.store(tid, Ordering::Relaxed);
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                let _ = ready_tx.send(Err(e.into()));
                return;
            }
        };
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            serve(listener, state, tls).await;
        });
    })?;
    ready_rx.recv().context("the stand-in thread died")??;
    Ok(StandIn { addr, stats })
}

struct State {
    stats: Arc<Stats>,
    check_every: u64,
    check: Check,
}

async fn serve(listener: tokio::net::TcpListener, state: Arc<State>, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        match &tls {
            None => {
                tokio::spawn(async move {
                    state.stats.connections.fetch_add(1, Ordering::Relaxed);
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.webhook(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                        state.stats.checked(Err("client did not negotiate h2".into()));
                        return;
                    }
                    state.stats.connections.fetch_add(1, Ordering::Relaxed);
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.apns(req).await) }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(APNS_STREAMS)
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        }
    }
}

impl State {
    async fn webhook(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let index = field(&body, b"\"push_id\":\"p").and_then(|digits| std::str::from_utf8(digits).ok()?.parse().ok());
        if self.stats.arrived(index, self.check_every) {
            self.stats.checked(self.check_webhook(&body));
        }
        Response::new(Full::new(Bytes::new()))
    }

    fn check_webhook(&self, body: &[u8]) -> std::result::Result<(), String> {
        let Check::Webhook { secret, app_id } = &self.check else { return Err("not a webhook".into()) };
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("webhook body is not JSON: {e}"))?;
        let timestamp = v["timestamp"].as_i64().ok_or_else(|| format!("no timestamp in {v}"))?;
        let nonce = v["nonce"].as_str().filter(|n| !n.is_empty()).ok_or_else(|| format!("no nonce in {v}"))?;
        let signature = v["signature"].as_str().unwrap_or_default();
        if !herald_proto::signature::verify_callback_signature(secret, timestamp, nonce, signature) {
            return Err(format!("bad callback signature in {v}"));
        }
        if (timestamp - now_ns() / 1_000_000_000).abs() > 60 {
            return Err(format!("timestamp {timestamp} is more than 60 s off"));
        }
        let push_id = v["push_id"].as_str().unwrap_or_default();
        let user = push_id.strip_prefix('p').map(|i| format!("u{i}"));
        let fields_ok = v["appid"] == app_id.to_string().as_str()
            && v["event"] == "offline_push"
            && user.is_some_and(|u| v["user_id"] == u.as_str())
            && v["device_id"] == "d"
            && v["from_user_id"] == super::SENDER
            && v["content"].as_str().is_some_and(|c| !c.is_empty())
            && v["message_id"].as_str().is_some_and(|m| m.parse::<u64>().is_ok());
        if !fields_ok {
            return Err(format!("unexpected webhook fields: {v}"));
        }
        Ok(())
    }

    async fn apns(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let index = req
            .uri()
            .path()
            .strip_prefix("/3/device/")
            .filter(|t| t.len() == 64)
            .and_then(|t| usize::from_str_radix(&t[48..], 16).ok());
        let check = self.stats.arrived(index, self.check_every);
        let (parts, body) = req.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        if check {
            self.stats.checked(self.check_apns(&parts, &body));
        }
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::OK;
        response
            .headers_mut()
            .insert("apns-id", http::HeaderValue::from_static("00000000-0000-0000-0000-000000000001"));
        response
    }

    fn check_apns(&self, parts: &http::request::Parts, body: &[u8]) -> std::result::Result<(), String> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let Check::Apns { public_key } = &self.check else { return Err("not APNs".into()) };
        if parts.version != http::Version::HTTP_2 {
            return Err(format!("HTTP version {:?}", parts.version));
        }
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let jwt = header("authorization").strip_prefix("bearer ").ok_or("no bearer provider token")?;
        let (signed, sig) = jwt.rsplit_once('.').ok_or("provider token is no JWT")?;
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap_or_default();
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, public_key);
        key.verify(signed.as_bytes(), &sig).map_err(|_| "ES256 signature does not verify with the .p8 key")?;
        let part = |i: usize| -> Value {
            let b64 = signed.split('.').nth(i).unwrap_or_default();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b64).unwrap_or_default()).unwrap_or(Value::Null)
        };
        let (jwt_header, claims) = (part(0), part(1));
        if jwt_header["alg"] != "ES256" || jwt_header["kid"] != APNS_KEY_ID || claims["iss"] != APNS_TEAM_ID {
            return Err(format!("provider token {jwt_header} {claims}"));
        }
        let headers_ok = header("apns-topic") == APNS_TOPIC
            && header("apns-push-type") == "alert"
            && header("apns-priority") == "10"
            && header("apns-expiration").parse::<i64>().is_ok()
            && !header("apns-collapse-id").is_empty();
        if !headers_ok {
            return Err(format!("apns headers {:?}", parts.headers));
        }
        let v: Value = serde_json::from_slice(body).map_err(|e| format!("APNs body is not JSON: {e}"))?;
        if v["aps"]["alert"]["body"].as_str().is_none_or(str::is_empty) || v["from_user_id"] != super::SENDER {
            return Err(format!("unexpected APNs payload {v}"));
        }
        Ok(())
    }
}

/// The bytes after `prefix` in `body` up to the next `"`.
fn field<'a>(body: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let start = body.windows(prefix.len()).position(|w| w == prefix)? + prefix.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    Some(&body[start..start + len])
}

/// User + system CPU time of one thread of this process, in milliseconds.
fn thread_cpu_ms(tid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 * 1000.0 / if hz > 0 { hz as f64 } else { 100.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_push_id_and_counts_repeats() {
        let body = br#"{"appid":"1","device_id":"d","push_id":"p1234","user_id":"u1234"}"#;
        assert_eq!(field(body, b"\"push_id\":\"p"), Some(&b"1234"[..]));
        assert_eq!(field(body, b"\"nope\":\""), None);
        let stats = Stats::new(100);
        assert!(stats.arrived(Some(7), 2));
        assert!(!stats.arrived(Some(7), 2));
        assert!(stats.arrived(Some(1000), 2));
        stats.arrived(None, 2);
        assert_eq!(stats.distinct(), 1);
        assert_eq!(stats.repeats.load(Ordering::Relaxed), 1);
        assert_eq!(stats.strangers.load(Ordering::Relaxed), 2);
        assert_eq!(Provider::Apns.push_id(255).len(), 64);
        assert!(Provider::Apns.push_id(255).ends_with("ff"));
    }

    #[test]
    fn webhook_check_verifies_the_signature_and_fields() {
        let state = State {
            stats: Arc::new(Stats::new(1)),
            check_every: 1,
            check: Check::Webhook { secret: "s3cret".into(), app_id: 7 },
        };
        let ts = now_ns() / 1_000_000_000;
        let body = |signature: &str| {
            serde_json::json!({"appid": "7", "event": "offline_push", "nonce": "n1", "timestamp": ts,
                "signature": signature, "user_id": "u3", "device_id": "d", "push_id": "p3",
                "message_id": "42", "from_user_id": super::super::SENDER, "message_type": 1,
                "title": "", "content": "hi", "payload": ""})
            .to_string()
        };
        let good = herald_proto::signature::callback_signature("s3cret", ts, "n1");
        assert_eq!(state.check_webhook(body(&good).as_bytes()), Ok(()));
        assert!(state.check_webhook(body("0000").as_bytes()).unwrap_err().contains("signature"));
        let wrong_user = body(&good).replace("\"u3\"", "\"u4\"");
        assert!(state.check_webhook(wrong_user.as_bytes()).is_err());
    }
}
