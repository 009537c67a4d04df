//! A session's life after login: heartbeats and the 4001 timeout on paused time, the push
//! binding that outlives a dropped connection and goes with logout, the 4000 close on shutdown,
//! and an SDK that reconnects to a restarted server and receives broadcasts again.

mod support;

use futures_util::SinkExt;
use herald_sdk::{Client, ConnectionEvent, ConnectionState};
use serde_json::json;
use std::time::Duration;
use support::*;
use tokio_tungstenite::tungstenite::Message;

/// With the clock paused, an idle runtime jumps straight to the next timer, including while
/// it waits for a socket. This task keeps a timer 1 ms ahead, so those jumps are 1 ms long and
/// only `tokio::time::advance` moves time by much. Abort it before resuming.
fn one_ms_ticker() -> tokio::task::JoinHandle<()> {
    support::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
}

#[tokio::test(flavor = "current_thread")]
async fn a_silent_session_is_closed_with_4001_and_its_user_goes_offline_keeping_the_push_id() {
    // Defaults: heartbeat every 30 s, closed after 90 s of silence.
    let server = Server::unthrottled().await;
    let (mut raw, ok) = WsClient::logged_in(&server, "alice").await;
    assert_eq!(ok["timeout_ms"], 90_000);
    let ack = raw.request(|id| json!({"t": "set_push_id", "id": id, "push_id": "fcm-1", "provider": "fcm"})).await;
    assert_eq!(ack["t"], "ack", "{ack}");

    tokio::time::pause();
    let ticker = one_ms_ticker();
    // Any frame is a heartbeat: a WebSocket ping at 89 s…
    tokio::time::advance(Duration::from_secs(89)).await;
    raw.ws.send(Message::Ping(b"hb".to_vec().into())).await.unwrap();
    raw.pong().await;
    // …keeps the session past the first 90 s, and a protocol ping at 178 s past the next.
    tokio::time::advance(Duration::from_secs(89)).await;
    assert_eq!(raw.ping().await["t"], "pong", "alive 89 s after the last heartbeat");
    assert!(server.is_online("alice").await);
    // 90 s of silence.
    tokio::time::advance(Duration::from_secs(91)).await;
    let closed = raw.closed().await;
    assert_eq!(closed.code, C_HEARTBEAT_TIMEOUT, "{closed:?}");
    assert!(closed.frames.is_empty(), "{closed:?}");
    assert!(!server.is_online("alice").await, "the session left the hub before its close frame");
    ticker.abort();
    tokio::time::resume();

    assert!(!server.online("alice").await, "QueryUserOnlineState: alice is offline");
    assert_eq!(server.push_bindings("alice").await, vec![("alice-raw".into(), "fcm-1".into(), "fcm".into())]);
}

#[tokio::test(flavor = "current_thread")]
async fn heartbeat_timeout_follows_the_configured_timeout() {
    let server = Server::unthrottled_with("heartbeat_interval_ms = 1000\nheartbeat_timeout_ms = 3000").await;
    let (mut raw, ok) = WsClient::logged_in(&server, "alice").await;
    assert_eq!((ok["heartbeat_ms"].as_u64(), ok["timeout_ms"].as_u64()), (Some(1000), Some(3000)));
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(3_001)).await;
    assert_eq!(raw.closed().await.code, C_HEARTBEAT_TIMEOUT);
    assert!(!server.is_online("alice").await);
    tokio::time::resume();
    assert!(!server.online("alice").await, "QueryUserOnlineState: alice is offline");
}

#[tokio::test(flavor = "current_thread")]
async fn a_socket_that_never_logs_in_is_closed_with_4004() {
    // Default login timeout: 10 s.
    let server = Server::unthrottled().await;
    let mut late = WsClient::connect(&server).await;
    let mut punctual = WsClient::connect(&server).await;
    tokio::time::pause();
    let ticker = one_ms_ticker();
    tokio::time::advance(Duration::from_secs(9)).await;
    punctual.send_login(APP_ID, "punctual", &server.token("punctual", HOUR_S)).await;
    assert_eq!(punctual.frame().await["t"], "login_ok", "a login within the deadline is accepted");
    tokio::time::advance(Duration::from_secs(2)).await;
    let closed = late.closed().await;
    assert_eq!(closed.code, C_LOGIN_TIMEOUT, "{closed:?}");
    assert_eq!(punctual.ping().await["t"], "pong", "a logged-in session has the heartbeat deadline instead");
    ticker.abort();
    tokio::time::resume();
}

#[tokio::test]
async fn the_push_binding_outlives_a_dropped_sdk_connection_and_goes_with_logout() {
    let server = Server::unthrottled().await;
    let config = sdk_config(&server, "carol");
    let device_id = config.device_id.clone();
    let (client, mut events) = Client::login(config).await.expect("login");
    client.set_push_id("apns-token-1", "apns").await.expect("push id");
    let binding = (device_id.clone(), "apns-token-1".to_string(), "apns".to_string());
    assert_eq!(server.push_bindings("carol").await, vec![binding.clone()]);

    // The app is killed: the connection goes without a logout.
    drop(client);
    state_change(&mut events, ConnectionState::Disconnected).await;
    server.wait_presence("carol", false).await;
    assert!(!server.online("carol").await, "QueryUserOnlineState: carol is offline");
    assert_eq!(server.push_bindings("carol").await, vec![binding], "offline with a push ID");

    // The same device logs in again and logs out: the binding goes.
    let mut same_device = sdk_config(&server, "carol");
    same_device.device_id = device_id;
    let (client, mut events) = Client::login(same_device).await.expect("login again");
    client.logout().await.expect("logout");
    let (event, _) = state_change(&mut events, ConnectionState::Disconnected).await;
    assert_eq!(event, ConnectionEvent::Success);
    assert_eq!(server.push_bindings("carol").await, vec![]);
    server.wait_presence("carol", false).await;
}

#[tokio::test]
async fn the_push_binding_outlives_a_reset_tcp_connection_and_goes_with_a_raw_logout() {
    let server = Server::unthrottled().await;
    let (mut raw, _) = WsClient::logged_in(&server, "dave").await;
    let ack = raw.request(|id| json!({"t": "set_push_id", "id": id, "push_id": "hook-1", "provider": "webhook"})).await;
    assert_eq!(ack["t"], "ack", "{ack}");
    // No close frame, just the TCP connection going away.
    drop(raw);
    server.wait_presence("dave", false).await;
    assert_eq!(server.push_bindings("dave").await, vec![("dave-raw".into(), "hook-1".into(), "webhook".into())]);

    let (mut raw, _) = WsClient::logged_in(&server, "dave").await;
    let ack = raw.request(|id| json!({"t": "logout", "id": id})).await;
    assert_eq!(ack, json!({"t": "ack", "id": ack["id"]}));
    assert_eq!(raw.closed().await.code, C_NORMAL);
    assert_eq!(server.push_bindings("dave").await, vec![]);
    assert!(!server.is_online("dave").await);
}

#[tokio::test]
async fn set_push_id_refusals_keep_the_session() {
    let server = Server::unthrottled().await;
    let (mut raw, _) = WsClient::logged_in(&server, "erin").await;
    for (case, push_id, provider) in [
        ("unknown provider", "x".to_string(), "carrier-pigeon"),
        ("too long", "p".repeat(513), "fcm"),
        ("empty", String::new(), "fcm"),
    ] {
        let answer =
            raw.request(|id| json!({"t": "set_push_id", "id": id, "push_id": push_id, "provider": provider})).await;
        assert_eq!((answer["t"].as_str(), answer["code"].as_u64()), (Some("error"), Some(E_FIELD_INVALID)), "{case}");
    }
    let answer =
        raw.request(|id| json!({"t": "set_push_id", "id": id, "push_id": "p".repeat(512), "provider": "fcm"})).await;
    assert_eq!(answer["t"], "ack", "512 bytes fit: {answer}");
    assert_eq!(server.push_bindings("erin").await.len(), 1);
}

#[tokio::test]
async fn shutdown_closes_sessions_with_4000_and_the_sdk_reconnects() {
    let mut server = Server::unthrottled().await;
    let (mut raw, _) = WsClient::logged_in(&server, "raw-user").await;
    let (client, mut events) = Client::login(sdk_config(&server, "sdk-user")).await.expect("login");
    state_change(&mut events, ConnectionState::Connected).await;

    let mut not_logged_in = WsClient::connect(&server).await;

    server.stop().await;
    let closed = raw.closed().await;
    assert_eq!(closed.code, C_SHUTDOWN, "{closed:?}");
    assert_eq!(not_logged_in.closed().await.code, C_SHUTDOWN, "sockets still logging in too");

    let (event, extended) = state_change(&mut events, ConnectionState::Reconnecting).await;
    assert_eq!(event, ConnectionEvent::LoginInterrupted);
    let extended: serde_json::Value = serde_json::from_str(&extended).expect("extended data is JSON");
    assert_eq!(extended["code"], 4000, "{extended}");
    assert_ne!(client.state(), ConnectionState::Disconnected, "a transient close is not the end");
    assert_ne!(client.state(), ConnectionState::Connected);
}

#[tokio::test]
async fn the_sdk_reconnects_to_a_restarted_server_on_the_same_port_and_gets_broadcasts() {
    let mut server = Server::unthrottled().await;
    let config = sdk_config(&server, "frank");
    let device_id = config.device_id.clone();
    let (client, mut events) = Client::login(config).await.expect("login");
    client.set_push_id("fcm-frank", "fcm").await.expect("push id");
    server.broadcast_text("before the restart").await;
    let before = broadcast_received(&mut events, "before the restart").await;
    assert_eq!(before.sender_user_id, "admin");
    assert!(before.is_broadcast_message && before.is_server_message);

    let first_port = server.addr.port();
    server.restart_on_same_port().await;
    assert_eq!(server.addr.port(), first_port);

    let (event, _) = state_change(&mut events, ConnectionState::Reconnecting).await;
    assert_eq!(event, ConnectionEvent::LoginInterrupted);
    let (event, _) = state_change(&mut events, ConnectionState::Connected).await;
    assert_eq!(event, ConnectionEvent::Success);
    server.wait_presence("frank", true).await;

    server.broadcast_text("after the restart").await;
    let after = broadcast_received(&mut events, "after the restart").await;
    assert_ne!(after.message_id, before.message_id);
    assert_eq!(client.state(), ConnectionState::Connected);
    // The push ID survived in the store and was reported again.
    assert_eq!(server.push_bindings("frank").await, vec![(device_id, "fcm-frank".into(), "fcm".into())]);
}
