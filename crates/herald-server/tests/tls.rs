//! HTTPS and WSS: with `[tls]` configured, the server API and the gateway speak TLS (rustls),
//! and sessions on TLS use the queued write path (the fan-out cannot write into a TLS stream
//! directly), which this test drives end to end.

use futures_util::{SinkExt, StreamExt};
use herald_proto::frame::{decode_server, ServerFrame};
use herald_proto::signature::signed_query;
use herald_proto::token04::{generate, Mode};
use herald_server::clock::{Clock, SystemClock};
use herald_server::config::Config;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const APP: u32 = 1234567890;
const SECRET: &str = "fa94dd0f974cf2e293728a526b028271";
const PATIENCE: Duration = Duration::from_secs(10);

struct TlsServer {
    addr: SocketAddr,
    cert_pem: String,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn start() -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let text = format!(
        r#"
listen = "127.0.0.1:0"
admin.listen = "127.0.0.1:0"
[tls]
cert = "{}"
key = "{}"
[store]
url = "sqlite://{}/h.db"
[[apps]]
app_id = {APP}
server_secret = "{SECRET}"
"#,
        cert.display(),
        key.display(),
        dir.path().display()
    );
    let config = Config::parse(&text, &|_| None).unwrap();
    let shutdown = CancellationToken::new();
    let running =
        herald_server::start(config, Arc::new(SystemClock), shutdown.clone()).await.expect("TLS server starts");
    TlsServer { addr: running.local_addr, cert_pem: certified.cert.pem(), shutdown, _dir: dir }
}

async fn call(s: &TlsServer, action: &str, body: &str) -> Value {
    let now = SystemClock.now_s();
    let nonce = format!("{:016x}", rand::random::<u64>());
    let url = format!("https://{}/?{}", s.addr, signed_query(action, APP, SECRET, &nonce, now, &[]));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(s.cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    client.post(url).body(body.to_string()).send().await.expect("HTTPS reachable").json().await.expect("JSON answer")
}

/// The next Herald frame, bounded in time.
async fn next<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> ServerFrame
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(PATIENCE, ws.next()).await.expect("a frame arrives") {
        Some(Ok(Message::Text(t))) => decode_server(t.as_bytes()).expect("a Herald frame"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_api_and_wss_gateway_deliver_a_broadcast() {
    let s = start().await;
    let v = call(&s, "UserRegister", r#"{"UserInfo":[{"UserId":"admin"}]}"#).await;
    assert_eq!(v["Code"], 0, "the API answers over HTTPS: {v}");

    // A WSS client trusting only the test certificate.
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls_pemfile::certs(&mut s.cert_pem.as_bytes()).next().unwrap().unwrap();
    roots.add(der).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let server_name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = connector.connect(server_name, tcp).await.expect("TLS handshake");
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("wss://{}/ws", s.addr), stream).await.expect("WebSocket over TLS");

    let token = generate(APP, "alice", SECRET, 3600, Mode::Cbc, SystemClock.now_s()).unwrap();
    let login = json!({"t":"login","id":1,"app_id":APP,"user_id":"alice","token":token,"sdk_version":"2.18.0","platform":"test","device_id":"d1"});
    ws.send(Message::text(login.to_string())).await.unwrap();
    assert!(matches!(next(&mut ws).await, ServerFrame::LoginOk { id: 1, .. }), "login over WSS");

    let body = json!({"FromUserId":"admin","MessageType":1,"MessageBody":{"Message":"over tls","ExtendedData":"e"}});
    let v = call(&s, "SendMessageToAllUsers", &body.to_string()).await;
    assert_eq!(v["Code"], 0, "{v}");
    match next(&mut ws).await {
        ServerFrame::Bcast { msg } => {
            assert_eq!(msg.message, "over tls");
            assert_eq!(msg.extended_data, "e");
            assert_eq!(msg.sender_user_id, "admin");
        }
        other => panic!("expected the broadcast, got {other:?}"),
    }

    ws.send(Message::text(r#"{"t":"ping","id":2}"#)).await.unwrap();
    assert_eq!(next(&mut ws).await, ServerFrame::Pong { id: 2 });
    ws.send(Message::text(r#"{"t":"logout","id":3}"#)).await.unwrap();
    assert_eq!(next(&mut ws).await, ServerFrame::Ack { id: 3, token_expire: None });
    match tokio::time::timeout(PATIENCE, ws.next()).await.expect("close arrives") {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected close 1000 after logout, got {other:?}"),
    }
    s.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_logs_in_over_wss_trusting_an_extra_root() {
    let s = start().await;
    let v = call(&s, "UserRegister", r#"{"UserInfo":[{"UserId":"admin"}]}"#).await;
    assert_eq!(v["Code"], 0, "{v}");
    let token = generate(APP, "bob", SECRET, 3600, Mode::Gcm, SystemClock.now_s()).unwrap();
    let url = format!("wss://{}/ws", s.addr);

    // Without the test root the certificate is refused: the first login fails.
    let mut untrusting = herald_sdk::ClientConfig::new([url.clone()], APP, "bob", token.clone());
    untrusting.login_timeout = Duration::from_secs(5);
    untrusting.reconnect.max_attempts = Some(0);
    assert!(herald_sdk::Client::login(untrusting).await.is_err(), "an unknown certificate must not be trusted");

    let mut config = herald_sdk::ClientConfig::new([url], APP, "bob", token);
    config.extra_root_certificates_pem = vec![s.cert_pem.clone()];
    let (_client, mut events) = herald_sdk::Client::login(config).await.expect("SDK login over wss");
    let body = json!({"FromUserId":"admin","MessageType":1,"MessageBody":{"Message":"sdk over tls"}});
    assert_eq!(call(&s, "SendMessageToAllUsers", &body.to_string()).await["Code"], 0);
    let got = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(herald_sdk::Event::BroadcastMessageReceived(m)) = events.next().await {
                return m.message;
            }
        }
    })
    .await
    .expect("the broadcast arrives over wss");
    assert_eq!(got, "sdk over tls");
    s.shutdown.cancel();
}
