//! The soak's bursts of bad requests: a mix of what a server facing the internet gets — unsigned
//! and ill-signed API calls, malformed and oversized bodies, garbage on the WebSocket and on the
//! bare port, logins with bad tokens. Each kind has the answer the docs promise; anything else
//! is counted (and the first one kept) as a surprise.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use herald_proto::frame::{decode_server, encode_client, ClientFrame, Login, ServerFrame};
use herald_proto::signature::signed_query;
use herald_proto::token04::{self, Mode};
use herald_proto::ws::{Message, Opcode};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::client::ws::WsConn;
use crate::tstamp::now_ns;

/// Bad requests in flight at once.
const IN_FLIGHT: usize = 16;
/// How long one may take to be answered or closed.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// No `Signature`: 100000009.
    Unsigned,
    /// Signed with another secret: 100000005.
    BadSignature,
    /// Signed, body cut in the middle: 660000002.
    MalformedJson,
    /// Signed, body past `api.max_body_bytes`: 100000012.
    Oversized,
    /// A WebSocket that sends a binary message, a text that is not JSON, or bytes that are not a
    /// frame: the server closes it.
    WsGarbage,
    /// A login with a token made with another secret: error 6000103, close 4501.
    BadToken,
    /// Bytes that are not HTTP on the public port: the server closes it.
    HttpGarbage,
}

const KINDS: [Kind; 7] = [
    Kind::Unsigned,
    Kind::BadSignature,
    Kind::MalformedJson,
    Kind::Oversized,
    Kind::WsGarbage,
    Kind::BadToken,
    Kind::HttpGarbage,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Unsigned => "unsigned",
            Kind::BadSignature => "bad_signature",
            Kind::MalformedJson => "malformed_json",
            Kind::Oversized => "oversized",
            Kind::WsGarbage => "ws_garbage",
            Kind::BadToken => "bad_token",
            Kind::HttpGarbage => "http_garbage",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct KindStats {
    pub sent: u64,
    pub as_expected: u64,
    pub surprises: u64,
    pub first_surprise: Option<String>,
}

/// Per kind of bad request.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct BadStats(pub BTreeMap<&'static str, KindStats>);

impl BadStats {
    pub fn add(&mut self, other: &BadStats) {
        for (kind, s) in &other.0 {
            let t = self.0.entry(kind).or_default();
            t.sent += s.sent;
            t.as_expected += s.as_expected;
            t.surprises += s.surprises;
            if t.first_surprise.is_none() {
                t.first_surprise.clone_from(&s.first_surprise);
            }
        }
    }

    pub fn sent(&self) -> u64 {
        self.0.values().map(|s| s.sent).sum()
    }

    pub fn surprises(&self) -> u64 {
        self.0.values().map(|s| s.surprises).sum()
    }
}

/// Where the bad requests go.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub app_id: u32,
    pub secret: String,
    pub max_body_bytes: usize,
}

/// `count` bad requests, the kinds in turn, [`IN_FLIGHT`] at a time.
pub async fn burst(target: Target, count: usize, seed: u64) -> BadStats {
    let target = Arc::new(target);
    let http = match reqwest::Client::builder().timeout(ANSWER_WITHIN).build() {
        Ok(http) => http,
        Err(e) => {
            let mut stats = BadStats::default();
            stats.0.insert("client", KindStats { first_surprise: Some(e.to_string()), ..KindStats::default() });
            return stats;
        }
    };
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = JoinSet::new();
    for i in 0..count {
        let kind = KINDS[i % KINDS.len()];
        let (target, http, permits) = (target.clone(), http.clone(), permits.clone());
        let nonce = seed.wrapping_add(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        tasks.spawn(async move {
            let _permit = permits.acquire().await;
            let outcome = match timeout(ANSWER_WITHIN, one(kind, &target, &http, nonce, i)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(anyhow!("nothing within {ANSWER_WITHIN:?}")),
            };
            (kind, outcome)
        });
    }
    let mut stats = BadStats::default();
    while let Some(joined) = tasks.join_next().await {
        let Ok((kind, outcome)) = joined else { continue };
        let s = stats.0.entry(kind.name()).or_default();
        s.sent += 1;
        match outcome {
            Ok(()) => s.as_expected += 1,
            Err(e) => {
                s.surprises += 1;
                s.first_surprise.get_or_insert(format!("{e:#}"));
            }
        }
    }
    stats
}

/// One bad request; Ok when the server answered as documented.
async fn one(kind: Kind, t: &Target, http: &reqwest::Client, nonce: u64, i: usize) -> Result<()> {
    let now_s = now_ns() / 1_000_000_000;
    let nonce = format!("bad{nonce:016x}");
    let action = "SendMessageToAllUsers";
    let signed = |secret: &str| signed_query(action, t.app_id, secret, &nonce, now_s, &[]);
    let good_body = br#"{"FromUserId":"bench-sender","MessageType":1,"MessageBody":{"Message":"never sent"}}"#;
    match kind {
        Kind::Unsigned => {
            let query = format!(
                "Action={action}&AppId={}&SignatureNonce={nonce}&Timestamp={now_s}&SignatureVersion=2.0",
                t.app_id
            );
            expect_code(http, t.addr, &query, good_body.to_vec(), 100_000_009).await
        }
        Kind::BadSignature => {
            let wrong: String = t.secret.chars().rev().collect();
            expect_code(http, t.addr, &signed(&wrong), good_body.to_vec(), 100_000_005).await
        }
        Kind::MalformedJson => {
            let body = br#"{"FromUserId":"bench-sender","MessageType":1,"MessageBody":{"Mess"#.to_vec();
            expect_code(http, t.addr, &signed(&t.secret), body, 660_000_002).await
        }
        Kind::Oversized => {
            let mut body = br#"{"FromUserId":"bench-sender","MessageType":1,"MessageBody":{"Message":""#.to_vec();
            body.resize(t.max_body_bytes + 4096, b'x');
            body.extend_from_slice(br#""}}"#);
            expect_code(http, t.addr, &signed(&t.secret), body, 100_000_012).await
        }
        Kind::WsGarbage => {
            let mut ws = WsConn::connect(Ipv4Addr::LOCALHOST, t.addr, "/ws", nonce.len() as u64 ^ i as u64).await?;
            match i % 3 {
                0 => ws.send(Opcode::Binary, b"\x00\x01garbage").await?,
                1 => ws.send(Opcode::Text, b"}{ not json").await?,
                // An unmasked frame with a reserved opcode and a length that runs past the data.
                _ => ws.send_raw(b"\x8b\x7e\xff\xffgarbage").await?,
            }
            wait_close(&mut ws).await.map(|_| ())
        }
        Kind::BadToken => {
            let mut ws = WsConn::connect(Ipv4Addr::LOCALHOST, t.addr, "/ws", i as u64).await?;
            let user_id = format!("bad{}", i % 1000);
            let wrong: String = t.secret.chars().rev().collect();
            let token =
                token04::generate(t.app_id, &user_id, &wrong, 3600, Mode::Cbc, now_s).map_err(|e| anyhow!("{e}"))?;
            let login = ClientFrame::Login(Login {
                id: 1,
                app_id: t.app_id,
                user_id,
                token,
                sdk_version: "2.18.0".into(),
                platform: "bench".into(),
                device_id: "bad".into(),
                user_name: None,
                since: None,
            });
            ws.send(Opcode::Text, &encode_client(&login)).await?;
            let (error, close) = wait_close(&mut ws).await?;
            if error == Some(6_000_103) && close == Some(4501) {
                Ok(())
            } else {
                Err(anyhow!("bad token: error {error:?}, close {close:?}"))
            }
        }
        Kind::HttpGarbage => {
            let mut stream = tokio::net::TcpStream::connect(t.addr).await?;
            stream.write_all(b"\x16\x03\x01\x02\x00 NOT HTTP AT ALL\r\n\r\n").await?;
            let mut buf = [0u8; 4096];
            // The server answers 400 (or nothing) and closes: read until EOF.
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

async fn expect_code(http: &reqwest::Client, addr: SocketAddr, query: &str, body: Vec<u8>, code: i64) -> Result<()> {
    let answer = http
        .post(format!("http://{addr}/?{query}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?
        .text()
        .await?;
    let value: serde_json::Value =
        serde_json::from_str(&answer).map_err(|e| anyhow!("not JSON ({e}): {answer:.200}"))?;
    match value["Code"].as_i64() {
        Some(c) if c == code => Ok(()),
        _ => Err(anyhow!("expected Code {code}, got {answer:.200}")),
    }
}

/// Read until the server closes; returns the `error` frame's code and the close code, if any.
async fn wait_close(ws: &mut WsConn) -> Result<(Option<u32>, Option<u16>)> {
    let mut error = None;
    loop {
        while let Some(message) = ws.next_message()? {
            match message {
                Message::Text(text) => {
                    if let Ok(ServerFrame::Error { code, .. }) = decode_server(&text) {
                        error = Some(code);
                    }
                }
                Message::Close(code, _) => return Ok((error, code)),
                _ => {}
            }
        }
        if ws.read_some().await.is_err() {
            return Ok((error, None));
        }
    }
}
