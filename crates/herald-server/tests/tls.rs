//! HTTPS and WSS: with `[tls]` configured, the server API and the gateway speak TLS (rustls),
//! and sessions on TLS use the queued write path (the fan-out cannot write into a TLS stream
//! directly), which this test drives end to end.

mod support;

use futures_util::{SinkExt, StreamExt};
use herald_proto::frame::{decode_server, ServerFrame};
use herald_proto::token04::Mode;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::{next_broadcast, Server, APP_ID, HOUR_S, PATIENCE};
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;

/// A server with `[tls]` and a fresh self-signed certificate, on the wall clock.
async fn start() -> Server {
    Server::builder().wall_clock().tls().start().await
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
    let v = s.call("UserRegister", Some(r#"{"UserInfo":[{"UserId":"admin"}]}"#)).await;
    assert_eq!(v["Code"], 0, "the API answers over HTTPS: {v}");

    // A WSS client trusting only the test certificate.
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls_pemfile::certs(&mut s.cert_pem().as_bytes()).next().unwrap().unwrap();
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
    let (mut ws, _) = tokio_tungstenite::client_async(s.url(), stream).await.expect("WebSocket over TLS");

    let token = s.token("alice", HOUR_S);
    let login = json!({"t":"login","id":1,"app_id":APP_ID,"user_id":"alice","token":token,"sdk_version":"2.18.0","platform":"test","device_id":"d1"});
    ws.send(Message::text(login.to_string())).await.unwrap();
    assert!(matches!(next(&mut ws).await, ServerFrame::LoginOk { id: 1, .. }), "login over WSS");

    let body = json!({"FromUserId":"admin","MessageType":1,"MessageBody":{"Message":"over tls","ExtendedData":"e"}});
    let v = s.call("SendMessageToAllUsers", Some(&body.to_string())).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_logs_in_over_wss_trusting_an_extra_root() {
    let s = start().await;
    let v = s.call("UserRegister", Some(r#"{"UserInfo":[{"UserId":"admin"}]}"#)).await;
    assert_eq!(v["Code"], 0, "{v}");
    let token = s.token_with("bob", HOUR_S, Mode::Gcm);
    let url = s.url();

    // Without the test root the certificate is refused: the first login fails.
    let mut untrusting = herald_sdk::ClientConfig::new([url.clone()], APP_ID, "bob", token.clone());
    untrusting.login_timeout = Duration::from_secs(5);
    untrusting.reconnect.max_attempts = Some(0);
    assert!(herald_sdk::Client::login(untrusting).await.is_err(), "an unknown certificate must not be trusted");

    let mut config = herald_sdk::ClientConfig::new([url], APP_ID, "bob", token);
    config.extra_root_certificates_pem = vec![s.cert_pem().to_string()];
    let (_client, mut events) = herald_sdk::Client::login(config).await.expect("SDK login over wss");
    let body = json!({"FromUserId":"admin","MessageType":1,"MessageBody":{"Message":"sdk over tls"}});
    assert_eq!(s.call("SendMessageToAllUsers", Some(&body.to_string())).await["Code"], 0);
    let got = next_broadcast(&mut events).await;
    assert_eq!(got.message, "sdk over tls", "the broadcast arrives over wss");
}
