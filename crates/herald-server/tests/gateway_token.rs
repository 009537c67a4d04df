//! Tokens on a live session: `renew_token` (ack with the new expiry, refusals that keep the
//! session) and `token_will_expire` when fewer than 30 s are left.

mod support;

use herald_sdk::{Client, Event, SdkError};
use serde_json::json;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn renew_token_acks_with_the_new_expiry() {
    let server = Server::unthrottled().await;
    let (mut raw, ok) = WsClient::logged_in(&server, "alice").await;
    assert_eq!(ok["token_expire"], server.now_s() + HOUR_S);

    server.advance_ms(60_000);
    let fresh = server.token("alice", 2 * HOUR_S);
    let ack = raw.request(|id| json!({"t": "renew_token", "id": id, "token": fresh})).await;
    assert_eq!(ack["t"], "ack", "{ack}");
    assert_eq!(ack["token_expire"], server.now_s() + 2 * HOUR_S, "{ack}");
    assert_eq!(raw.ping().await["t"], "pong");
}

#[tokio::test]
async fn renew_token_refusals_keep_the_session() {
    let server = Server::unthrottled().await;
    let (mut raw, _) = WsClient::logged_in(&server, "alice").await;
    let expired = server.token("alice", 1);
    server.advance_ms(1_000);
    for (case, token, code) in [
        ("another user's token", server.token("mallory", HOUR_S), E_TOKEN_INVALID),
        ("garbage", "04garbage".to_string(), E_TOKEN_INVALID),
        ("no 04 prefix", "garbage".to_string(), E_TOKEN_VERSION),
        ("expired", expired, E_TOKEN_EXPIRED),
        ("valid for less than 30 s", server.token("alice", 29), E_TOKEN_TOO_SHORT),
    ] {
        let answer = raw.request(|id| json!({"t": "renew_token", "id": id, "token": token})).await;
        assert_eq!(answer["t"], "error", "{case}: {answer}");
        assert_eq!(answer["code"], code, "{case}: {answer}");
        assert_eq!(raw.ping().await["t"], "pong", "{case}: the session goes on");
    }
    assert!(server.is_online("alice").await);
    assert!(!server.is_online("mallory").await);
    // Exactly 30 s is enough.
    let answer = raw.request(|id| json!({"t": "renew_token", "id": id, "token": server.token("alice", 30)})).await;
    assert_eq!(answer["t"], "ack", "{answer}");
}

#[tokio::test]
async fn sdk_renew_token_returns_the_expiry_and_refuses_another_users_token() {
    let server = Server::unthrottled().await;
    let (client, _events) = Client::login(sdk_config(&server, "alice")).await.expect("login");
    let expire = client.renew_token(&server.token("alice", 7200)).await.expect("renewal");
    assert_eq!(expire, server.now_s() + 7200);
    match client.renew_token(&server.token("bob", 7200)).await {
        Err(SdkError::Server { code, .. }) => assert_eq!(u64::from(code), E_TOKEN_INVALID),
        other => panic!("expected 6000103, got {other:?}"),
    }
    // Still logged in, and as alice.
    client.set_push_id("still-here", "fcm").await.expect("the session goes on");
    assert!(server.is_online("alice").await);
}

#[tokio::test]
async fn a_token_with_less_than_30_s_left_is_warned_about_at_login() {
    let server = Server::unthrottled().await;
    let mut raw = WsClient::connect(&server).await;
    raw.send_login(APP_ID, "alice", &server.token("alice", 20)).await;
    assert_eq!(raw.frame().await["t"], "login_ok");
    let warning = raw.frame().await;
    assert_eq!(warning, json!({"t": "token_will_expire", "seconds": 20}));
}

/// The SDK pings every 100 ms; moving the server's clock past `expire - 30 s` makes the next
/// frame the session handles send the warning.
#[tokio::test]
async fn sdk_gets_token_will_expire_when_the_server_clock_passes_expire_minus_30_s() {
    let server = Server::unthrottled_with("heartbeat_interval_ms = 100\nheartbeat_timeout_ms = 60000").await;
    let mut config = sdk_config(&server, "alice");
    config.token = server.token("alice", 40);
    let (client, mut events) = Client::login(config).await.expect("login");
    server.advance_ms(11_000);
    let warning = event_where(&mut events, "TokenWillExpire", |e| matches!(e, Event::TokenWillExpire { .. })).await;
    assert_eq!(warning, Event::TokenWillExpire { seconds: 29 });
    // The app reacts as ZIM apps do: renew.
    let expire = client.renew_token(&server.token("alice", HOUR_S)).await.expect("renewal");
    assert_eq!(expire, server.now_s() + HOUR_S);
}

/// The same with paused time and a silent client: the server's own timer sends the warning.
#[tokio::test(flavor = "current_thread")]
async fn token_will_expire_fires_on_paused_time() {
    let server = Server::unthrottled().await;
    let mut raw = WsClient::connect(&server).await;
    raw.send_login(APP_ID, "alice", &server.token("alice", 40)).await;
    assert_eq!(raw.frame().await["t"], "login_ok");

    tokio::time::pause();
    server.advance_ms(11_000);
    tokio::time::advance(Duration::from_secs(11)).await;
    let warning = raw.frame().await;
    assert_eq!(warning, json!({"t": "token_will_expire", "seconds": 29}));
    tokio::time::resume();

    // A renewal re-arms the warning for the new token; this one has 35 s left, so the next
    // warning is due in 5 s.
    let renewed = raw.request(|id| json!({"t": "renew_token", "id": id, "token": server.token("alice", 35)})).await;
    assert_eq!(renewed["t"], "ack", "{renewed}");
    tokio::time::pause();
    server.advance_ms(6_000);
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(raw.frame().await, json!({"t": "token_will_expire", "seconds": 29}));
    tokio::time::resume();
}
