//! Gateway login (docs/protocol.md, "A session, in order"): success with both token modes, every
//! refusal with its error frame and close code, the user registration a login performs, the
//! per-user session cap and a second login on one socket.

mod support;

use herald_proto::token04::{self, Mode};
use herald_sdk::{Client, ConnectionEvent, ConnectionState, Event, SdkError};
use serde_json::json;
use support::*;

/// Connects, sends `login` and returns how the server ended the connection.
async fn refused_login(server: &Server, login: serde_json::Value) -> Closed {
    let mut raw = WsClient::connect(server).await;
    raw.send_json(login).await;
    raw.closed().await
}

fn login(app_id: u32, user_id: &str, token: &str) -> serde_json::Value {
    json!({
        "t": "login", "id": 7, "app_id": app_id, "user_id": user_id, "token": token,
        "sdk_version": "2.18.0", "platform": "linux", "device_id": format!("{user_id}-dev"),
    })
}

#[tokio::test]
async fn raw_login_ok_carries_the_session_parameters() {
    let server = Server::unthrottled_with("heartbeat_interval_ms = 25000\nheartbeat_timeout_ms = 70000").await;
    let mut open = Vec::new();
    for (user, mode) in [("cbc-user", Mode::Cbc), ("gcm-user", Mode::Gcm)] {
        let mut raw = WsClient::connect(&server).await;
        let mut frame = login(APP_ID, user, &server.token_with(user, 1234, mode));
        frame["user_name"] = json!("Display Name");
        raw.send_json(frame).await;
        let ok = raw.frame().await;
        assert_eq!(ok["t"], "login_ok", "{mode}: {ok}");
        assert_eq!(ok["id"], 7, "{ok}");
        let session_id = ok["session_id"].as_str().unwrap_or_else(|| panic!("session_id is a string: {ok}"));
        assert!(session_id.parse::<u64>().is_ok_and(|id| id > 0), "decimal session id: {ok}");
        assert_eq!(ok["heartbeat_ms"], 25000, "{ok}");
        assert_eq!(ok["timeout_ms"], 70000, "{ok}");
        assert_eq!(ok["token_expire"], server.now_s() + 1234, "{ok}");
        assert_eq!(ok["server_time_ms"], T0_MS, "the injected clock's time: {ok}");
        assert!(server.is_online(user).await, "{mode}: online after login_ok");
        assert_eq!(raw.ping().await["t"], "pong");
        open.push(raw);
    }
    assert_eq!(server.session_count(), 2);
}

#[tokio::test]
async fn sdk_logs_in_with_cbc_and_gcm_tokens() {
    let server = Server::unthrottled().await;
    for (user, mode) in [("sdk-cbc", Mode::Cbc), ("sdk-gcm", Mode::Gcm)] {
        let mut config = sdk_config(&server, user);
        config.token = server.token_with(user, HOUR_S, mode);
        let (client, mut events) = Client::login(config).await.unwrap_or_else(|e| panic!("{mode} login refused: {e}"));
        assert_eq!(
            next_event(&mut events).await,
            Event::ConnectionStateChanged {
                state: ConnectionState::Connecting,
                event: ConnectionEvent::ActiveLogin,
                extended_data: String::new()
            }
        );
        assert_eq!(
            next_event(&mut events).await,
            Event::ConnectionStateChanged {
                state: ConnectionState::Connected,
                event: ConnectionEvent::Success,
                extended_data: String::new()
            }
        );
        assert_eq!(client.state(), ConnectionState::Connected);
        assert!(client.session_id().is_some_and(|s| s.parse::<u64>().is_ok()), "{mode}");
        assert!(server.is_online(user).await, "{mode}");
        assert!(server.online(user).await, "QueryUserOnlineState: {user} is online");

        client.logout().await.unwrap_or_else(|e| panic!("{mode} logout: {e}"));
        let (event, _) = state_change(&mut events, ConnectionState::Disconnected).await;
        assert_eq!(event, ConnectionEvent::Success);
        server.wait_presence(user, false).await;
        assert!(!server.online(user).await, "QueryUserOnlineState: {user} is offline");
    }
}

#[tokio::test]
async fn login_registers_the_user() {
    let server = Server::unthrottled().await;
    let store = server.store().await;
    assert!(!store.user_exists(APP_ID, "newcomer").await.unwrap());
    let before = server.call_ok("QueryUserInfos", json!({"UserIds": ["newcomer"]})).await;
    assert_eq!(before["Result"], json!([]), "{before}");

    let mut config = sdk_config(&server, "newcomer");
    config.user_name = Some("New Comer".into());
    let (client, _events) = Client::login(config).await.expect("login");

    assert!(store.user_exists(APP_ID, "newcomer").await.unwrap(), "the first login creates the user");
    let after = server.call_ok("QueryUserInfos", json!({"UserIds": ["newcomer"]})).await;
    assert_eq!(after["Result"][0]["UserId"], "newcomer", "{after}");
    assert_eq!(after["Result"][0]["UserName"], "New Comer", "{after}");
    assert_eq!(after["ErrorList"], json!([]), "{after}");
    drop(client);
}

#[tokio::test]
async fn unknown_app_is_refused_with_6000101_and_4501() {
    let server = Server::unthrottled().await;
    let token = token04::generate(UNKNOWN_APP_ID, "alice", SECRET, HOUR_S, Mode::Cbc, server.now_s()).unwrap();
    refused_login(&server, login(UNKNOWN_APP_ID, "alice", &token)).await.assert(C_LOGIN_FAILED, E_APP);
}

#[tokio::test]
async fn token_for_another_app_is_refused_with_6000101() {
    let server = Server::unthrottled().await;
    // Same secret, so the token decrypts; its AppID is not the one the client logs in to.
    let token = token04::generate(999, "alice", SECRET, HOUR_S, Mode::Cbc, server.now_s()).unwrap();
    refused_login(&server, login(APP_ID, "alice", &token)).await.assert(C_LOGIN_FAILED, E_APP);
}

#[tokio::test]
async fn token_for_another_user_is_refused_with_6000103_and_4501() {
    let server = Server::unthrottled().await;
    let bobs = server.token("bob", HOUR_S);
    refused_login(&server, login(APP_ID, "alice", &bobs)).await.assert(C_LOGIN_FAILED, E_TOKEN_INVALID);
    assert!(!server.is_online("alice").await && !server.is_online("bob").await);
}

#[tokio::test]
async fn garbage_tokens_are_refused_with_6000103_and_4501() {
    let server = Server::unthrottled().await;
    let other_secret =
        token04::generate(APP_ID, "alice", "0123456789abcdef0123456789abcdef", HOUR_S, Mode::Gcm, server.now_s());
    let valid = server.token("alice", HOUR_S);
    for (case, token) in [
        ("not base64", "04!!!!not-base64!!!!".to_string()),
        ("truncated", valid[..valid.len() / 2].to_string()),
        ("wrong secret", other_secret.unwrap()),
        ("just the prefix", "04".to_string()),
    ] {
        let closed = refused_login(&server, login(APP_ID, "alice", &token)).await;
        assert_eq!(closed.code, C_LOGIN_FAILED, "{case}: {closed:?}");
        assert_eq!(closed.error_code(), E_TOKEN_INVALID, "{case}: {closed:?}");
    }
}

#[tokio::test]
async fn expired_token_is_refused_with_6000106_and_4502() {
    let server = Server::unthrottled().await;
    let token = server.token("alice", 10);
    // One second before the expiry the token still works…
    server.advance_ms(9_000);
    let (mut raw, ok) = WsClient::connect(&server).await.with_login(login(APP_ID, "alice", &token)).await;
    assert_eq!(ok["t"], "login_ok", "{ok}");
    raw.send_json(json!({"t": "logout", "id": 99})).await;
    assert_eq!(raw.closed().await.code, C_NORMAL);
    // …and at the expiry it does not.
    server.advance_ms(1_000);
    refused_login(&server, login(APP_ID, "alice", &token)).await.assert(C_TOKEN_EXPIRED, E_TOKEN_EXPIRED);
}

#[tokio::test]
async fn token_without_the_04_prefix_is_refused_with_6000107() {
    let server = Server::unthrottled().await;
    let valid = server.token("alice", HOUR_S);
    for token in [format!("03{}", &valid[2..]), valid[2..].to_string(), String::new()] {
        let closed = refused_login(&server, login(APP_ID, "alice", &token)).await;
        assert_eq!(closed.error_code(), E_TOKEN_VERSION, "{token:?}: {closed:?}");
        assert_eq!(closed.code, C_LOGIN_FAILED, "{token:?}: {closed:?}");
    }
}

#[tokio::test]
async fn bad_sdk_version_is_refused_with_4506() {
    let server = Server::unthrottled().await;
    for version in ["banana", "", "2", "2.x.0", "v2.18.0"] {
        let mut frame = login(APP_ID, "alice", &server.token("alice", HOUR_S));
        frame["sdk_version"] = json!(version);
        let closed = refused_login(&server, frame).await;
        assert_eq!(closed.code, C_BAD_VERSION, "{version:?}: {closed:?}");
        assert_eq!(closed.error_code(), E_FIELD_INVALID, "{version:?}: {closed:?}");
    }
    assert!(!server.is_online("alice").await);
}

#[tokio::test]
async fn over_long_device_id_is_refused_with_6000004() {
    let server = Server::unthrottled().await;
    let mut frame = login(APP_ID, "alice", &server.token("alice", HOUR_S));
    frame["device_id"] = json!("d".repeat(65));
    let closed = refused_login(&server, frame).await;
    assert_eq!(closed.error_code(), E_FIELD_INVALID, "{closed:?}");
    assert!((4500..5000).contains(&closed.code), "a terminal close: {closed:?}");
    // 64 bytes are fine.
    let mut frame = login(APP_ID, "alice", &server.token("alice", HOUR_S));
    frame["device_id"] = json!("d".repeat(64));
    let (_raw, ok) = WsClient::connect(&server).await.with_login(frame).await;
    assert_eq!(ok["t"], "login_ok", "{ok}");
}

#[tokio::test]
async fn sdk_reports_each_refusal_as_a_server_error() {
    let server = Server::unthrottled().await;
    let expired = server.token("alice", 5);
    let mut expired_config = sdk_config(&server, "alice");
    expired_config.token = expired;

    let mut unknown_app = sdk_config(&server, "alice");
    unknown_app.app_id = UNKNOWN_APP_ID;
    let mut wrong_user = sdk_config(&server, "alice");
    wrong_user.token = server.token("bob", HOUR_S);
    let mut bad_version = sdk_config(&server, "alice");
    bad_version.sdk_version = "banana".into();
    server.advance_ms(5_000);

    for (case, config, code) in [
        ("expired", expired_config, E_TOKEN_EXPIRED),
        ("unknown app", unknown_app, E_APP),
        ("wrong user", wrong_user, E_TOKEN_INVALID),
        ("bad sdk version", bad_version, E_FIELD_INVALID),
    ] {
        match Client::login(config).await {
            Err(SdkError::Server { code: got, .. }) => assert_eq!(u64::from(got), code, "{case}"),
            Err(other) => panic!("{case}: expected a server refusal, got {other:?}"),
            Ok(_) => panic!("{case}: login succeeded"),
        }
    }
    assert!(!server.is_online("alice").await);
}

#[tokio::test]
async fn a_second_login_on_the_same_socket_is_refused_with_4503() {
    let server = Server::unthrottled().await;
    let (mut raw, _) = WsClient::logged_in(&server, "alice").await;
    raw.send_login(APP_ID, "alice", &server.token("alice", HOUR_S)).await;
    raw.closed().await.assert(C_NOT_LOGGED_IN, E_NOT_LOGGED_IN);
    // The refused socket's first session is gone with it.
    server.wait_presence("alice", false).await;
    assert_eq!(server.session_count(), 0);
}

#[tokio::test]
async fn sessions_past_max_sessions_per_user_are_refused_with_4504() {
    let server = Server::unthrottled_with("max_sessions_per_user = 2").await;
    let mut first = WsClient::connect(&server).await;
    first.send_json(login(APP_ID, "alice", &server.token("alice", HOUR_S))).await;
    assert_eq!(first.frame().await["t"], "login_ok");
    let mut frame = login(APP_ID, "alice", &server.token("alice", HOUR_S));
    frame["device_id"] = json!("second-device");
    let (mut second, ok) = WsClient::connect(&server).await.with_login(frame).await;
    assert_eq!(ok["t"], "login_ok", "{ok}");

    let mut frame = login(APP_ID, "alice", &server.token("alice", HOUR_S));
    frame["device_id"] = json!("third-device");
    refused_login(&server, frame.clone()).await.assert(C_TOO_MANY_SESSIONS, E_TOO_MANY_SESSIONS);

    // The SDK reports the same refusal.
    match Client::login(sdk_config(&server, "alice")).await {
        Err(SdkError::Server { code, .. }) => assert_eq!(u64::from(code), E_TOO_MANY_SESSIONS),
        other => panic!("expected 6000003, got {other:?}"),
    }
    // Other users are not affected, and the two sessions still work.
    let (_bob, _) = WsClient::logged_in(&server, "bob").await;
    assert_eq!(first.ping().await["t"], "pong");
    assert_eq!(second.ping().await["t"], "pong");

    // Once one session leaves, a new one fits again.
    second.send_json(json!({"t": "logout", "id": 50})).await;
    assert_eq!(second.closed().await.code, C_NORMAL);
    // The session left the hub before its close frame was written, so there is room at once.
    let (_third, ok) = WsClient::connect(&server).await.with_login(frame).await;
    assert_eq!(ok["t"], "login_ok", "a login fits once a session has left: {ok}");
    assert!(server.is_online("alice").await);
}

/// `herald_proto::frame::Login::device_id` is documented as "stable per device so a reconnect
/// replaces the device's old session and push binding". A device whose old connection is still
/// open on the server (half-open after a network switch, until its heartbeat times out) must be
/// able to log in again, even when that session is the user's only allowed one.
#[tokio::test]
async fn a_reconnect_from_the_same_device_replaces_its_old_session() {
    let server = Server::unthrottled_with("max_sessions_per_user = 1").await;
    let (mut old, _) = WsClient::logged_in(&server, "alice").await;
    let mut new = WsClient::connect(&server).await;
    let relogin = new.login_frame(APP_ID, "alice", &server.token("alice", HOUR_S));
    assert_eq!(relogin["device_id"], "alice-raw", "the same device as the first session");
    let (mut new, ok) = new.with_login(relogin).await;
    assert_eq!(ok["t"], "login_ok", "the same device logging in again is refused: {ok}");
    let closed = old.closed().await;
    assert!(closed.code >= 4000, "the replaced session is closed: {closed:?}");
    assert_eq!(server.session_count(), 1);
    assert_eq!(new.ping().await["t"], "pong");
}

#[tokio::test]
async fn device_and_push_id_caps_follow_the_configuration() {
    let server = Server::unthrottled_with("device_id_max_bytes = 8\npush_id_max_bytes = 10\n").await;
    let mut frame = login(APP_ID, "alice", &server.token("alice", HOUR_S));
    frame["device_id"] = json!("d".repeat(9));
    let closed = refused_login(&server, frame).await;
    assert_eq!(closed.error_code(), E_FIELD_INVALID, "a 9-byte device_id over a cap of 8: {closed:?}");

    let mut frame = login(APP_ID, "alice", &server.token("alice", HOUR_S));
    frame["device_id"] = json!("d".repeat(8));
    let (mut raw, ok) = WsClient::connect(&server).await.with_login(frame).await;
    assert_eq!(ok["t"], "login_ok", "{ok}");
    let refused =
        raw.request(|id| json!({"t": "set_push_id", "id": id, "push_id": "p".repeat(11), "provider": "fcm"})).await;
    assert_eq!((refused["t"].as_str(), refused["code"].as_u64()), (Some("error"), Some(E_FIELD_INVALID)), "{refused}");
    let accepted =
        raw.request(|id| json!({"t": "set_push_id", "id": id, "push_id": "p".repeat(10), "provider": "fcm"})).await;
    assert_eq!(accepted["t"], "ack", "a 10-byte push ID fits a cap of 10: {accepted}");
}
