//! The SDK against a scripted fake server: login verdicts, heartbeat, reconnects, failover,
//! deduplication and request replay. Black-box tests against the real server live with it.

mod fake;

use std::time::Duration;

use fake::{dead_url, ClockHold, FakeServer, PATIENCE};
use herald_proto::frame::{ClientFrame, ServerFrame};
use herald_sdk::{Client, ClientConfig, ConnectionEvent, ConnectionState, Event, Events, ReconnectPolicy, SdkError};
use tokio::time::advance;

use ConnectionEvent::*;
use ConnectionState::*;

fn config<S: AsRef<str>>(urls: &[S]) -> ClientConfig {
    let mut config = ClientConfig::new(urls.iter().map(|u| u.as_ref().to_owned()), 1_234_567, "alice", "token-1");
    // Fast reconnects so tests on real time stay quick.
    config.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..ReconnectPolicy::default()
    };
    config
}

async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(PATIENCE, events.next()).await.expect("no event in time").expect("events ended")
}

async fn expect_state(events: &mut Events, state: ConnectionState, event: ConnectionEvent) -> String {
    match next(events).await {
        Event::ConnectionStateChanged { state: s, event: e, extended_data } if s == state && e == event => {
            extended_data
        }
        other => panic!("expected {state:?}/{event:?}, got {other:?}"),
    }
}

async fn expect_broadcast(events: &mut Events, message_id: &str) {
    match next(events).await {
        Event::BroadcastMessageReceived(msg) => assert_eq!(msg.message_id, message_id),
        other => panic!("expected broadcast {message_id}, got {other:?}"),
    }
}

async fn expect_end(events: &mut Events) {
    let end = tokio::time::timeout(PATIENCE, events.next()).await.expect("events did not end");
    assert_eq!(end, None);
}

/// Logs in against `server` alone with the test config.
async fn logged_in_at(server: &mut FakeServer) -> (Client, Events, fake::FakeConn) {
    let config = config(&[&server.url]);
    logged_in(server, config).await
}

/// Logs in against `server` and consumes the two login events.
async fn logged_in(server: &mut FakeServer, config: ClientConfig) -> (Client, Events, fake::FakeConn) {
    let login = tokio::spawn(Client::login(config));
    let mut conn = server.accept().await;
    conn.accept_login().await;
    let (client, mut events) = login.await.unwrap().unwrap();
    expect_state(&mut events, Connecting, ActiveLogin).await;
    expect_state(&mut events, Connected, Success).await;
    (client, events, conn)
}

#[tokio::test]
async fn login_sends_the_config_and_reports_connected() {
    let mut server = FakeServer::start().await;
    let mut config = config(&[&server.url]);
    config.user_name = Some("Alice".to_owned());
    let login = tokio::spawn(Client::login(config));
    let mut conn = server.accept().await;
    let sent = conn.accept_login().await;
    let (client, mut events) = login.await.unwrap().unwrap();

    assert_eq!(sent.app_id, 1_234_567);
    assert_eq!(sent.user_id, "alice");
    assert_eq!(sent.token, "token-1");
    assert_eq!(sent.sdk_version, "2.18.0");
    assert!(sent.device_id.starts_with("rust-") && sent.device_id.len() == 21, "{}", sent.device_id);
    let another = self::config(&[&server.url]);
    assert_ne!(another.device_id, sent.device_id, "two instances never share a default device id");
    assert_eq!(sent.user_name.as_deref(), Some("Alice"));
    assert_eq!(client.state(), Connected);
    assert_eq!(client.session_id().as_deref(), Some("42"));
    expect_state(&mut events, Connecting, ActiveLogin).await;
    expect_state(&mut events, Connected, Success).await;
}

#[tokio::test]
async fn a_refused_login_returns_the_server_code() {
    let mut server = FakeServer::start().await;
    let login = tokio::spawn(Client::login(config(&[&server.url])));
    server.accept().await.refuse_login(herald_proto::code::SDK_TOKEN_EXPIRED, 4502).await;
    let error = login.await.unwrap().unwrap_err();
    assert!(matches!(error, SdkError::Server { code: 6_000_106, .. }), "{error:?}");
}

#[tokio::test]
async fn a_terminal_close_during_login_is_returned() {
    let mut server = FakeServer::start().await;
    let login = tokio::spawn(Client::login(config(&[&server.url])));
    let mut conn = server.accept().await;
    conn.recv().await;
    conn.close(4506).await;
    let error = login.await.unwrap().unwrap_err();
    assert!(matches!(error, SdkError::Closed { code: 4506, .. }), "{error:?}");
}

#[tokio::test]
async fn a_silent_server_times_the_login_out() {
    let mut server = FakeServer::start().await;
    let mut config = config(&[&server.url]);
    config.login_timeout = Duration::from_millis(200);
    let login = tokio::spawn(Client::login(config));
    let _conn = server.accept().await;
    assert_eq!(login.await.unwrap().unwrap_err(), SdkError::Timeout);
}

#[tokio::test]
async fn the_first_login_skips_a_dead_url() {
    let mut server = FakeServer::start().await;
    let config = config(&[dead_url().await, server.url.clone()]);
    let (client, _events, _conn) = logged_in(&mut server, config).await;
    assert_eq!(client.state(), Connected);
}

#[tokio::test]
async fn invalid_configs_fail_before_connecting() {
    let none: [&str; 0] = [];
    assert!(matches!(Client::login(config(&none)).await, Err(SdkError::Config(_))));
    assert!(matches!(Client::login(config(&["not a url"])).await, Err(SdkError::Config(_))));
}

#[tokio::test(start_paused = true)]
async fn pings_every_heartbeat_and_reconnects_when_the_server_goes_silent() {
    // Time moves only when the test says so; the sockets run in real time meanwhile.
    let _hold = ClockHold::new();
    let mut server = FakeServer::start().await;
    let login = tokio::spawn(Client::login(config(&[&server.url])));
    let mut conn = server.accept().await;
    conn.accept_login_with(30_000, 100_000).await;
    let (client, mut events) = login.await.unwrap().unwrap();
    expect_state(&mut events, Connecting, ActiveLogin).await;
    expect_state(&mut events, Connected, Success).await;

    // Request ids: 1 was the login, so the n-th ping is n + 1 and an extra ping would show.
    for n in 1..=3 {
        advance(Duration::from_secs(29)).await;
        assert!(conn.nothing_pending().await, "ping {n} came early");
        advance(Duration::from_secs(1)).await;
        let ClientFrame::Ping { id } = conn.recv().await else { panic!("expected ping") };
        assert_eq!(id, n + 1);
        conn.send(ServerFrame::Pong { id }).await;
        // A frame behind the pong: once its event is out, the client has seen the pong.
        conn.send(ServerFrame::TokenWillExpire { seconds: 1 }).await;
        assert_eq!(next(&mut events).await, Event::TokenWillExpire { seconds: 1 });
    }

    // Unanswered from here: the client keeps pinging, then gives up 100 s after the last pong.
    for n in 4..=6 {
        advance(Duration::from_secs(30)).await;
        let ClientFrame::Ping { id } = conn.recv().await else { panic!("expected ping") };
        assert_eq!(id, n + 1);
    }
    advance(Duration::from_secs(9)).await;
    assert!(conn.nothing_pending().await, "gave up early");
    assert_eq!(client.state(), Connected);
    advance(Duration::from_secs(1)).await;
    assert_eq!(conn.closed_by_client().await, Some(1000));
    let extended = expect_state(&mut events, Reconnecting, LoginInterrupted).await;
    assert!(extended.contains("silent"), "{extended}");

    advance(Duration::from_millis(50)).await; // the longest first backoff in this config
    server.accept().await.accept_login().await;
    expect_state(&mut events, Connected, Success).await;
}

#[tokio::test]
async fn a_broadcast_replayed_after_a_reconnect_reaches_the_app_once() {
    let mut server = FakeServer::start().await;
    let (client, mut events, mut conn) = logged_in_at(&mut server).await;
    conn.bcast("7391827364519283712").await;
    conn.close(4000).await;

    let mut conn = server.accept().await;
    conn.accept_login().await;
    conn.bcast("7391827364519283712").await;
    conn.bcast("7391827364519283713").await;

    match next(&mut events).await {
        Event::BroadcastMessageReceived(msg) => {
            assert_eq!(msg, fake::message("7391827364519283712"))
        }
        other => panic!("expected a broadcast, got {other:?}"),
    }
    let interrupted = expect_state(&mut events, Reconnecting, LoginInterrupted).await;
    assert!(interrupted.contains("4000"), "{interrupted}");
    expect_state(&mut events, Connected, Success).await;
    expect_broadcast(&mut events, "7391827364519283713").await;
    assert_eq!(client.state(), Connected);
}

#[tokio::test]
async fn relogins_ask_for_what_came_after_the_newest_broadcast_and_report_recovery() {
    let mut server = FakeServer::start().await;
    let login = tokio::spawn(Client::login(config(&[&server.url])));
    let mut conn = server.accept().await;
    assert_eq!(conn.accept_login().await.since, None, "a process's first login asks for nothing");
    let (_client, mut events) = login.await.unwrap().unwrap();
    expect_state(&mut events, Connecting, ActiveLogin).await;
    assert_eq!(expect_state(&mut events, Connected, Success).await, "", "no recovery asked, none reported");
    conn.bcast("11").await;
    conn.bcast("12").await;
    expect_broadcast(&mut events, "11").await;
    expect_broadcast(&mut events, "12").await;
    conn.close(4000).await;

    let mut conn = server.accept().await;
    assert_eq!(conn.accept_login().await.since.as_deref(), Some("12"), "the newest delivered broadcast");
    expect_state(&mut events, Reconnecting, LoginInterrupted).await;
    assert_eq!(expect_state(&mut events, Connected, Success).await, r#"{"recovered":true}"#);
    // A duplicate does not move the mark back; the next re-login asks after 13.
    conn.bcast("13").await;
    conn.bcast("12").await;
    expect_broadcast(&mut events, "13").await;
    conn.close(4000).await;
    let mut conn = server.accept().await;
    assert_eq!(conn.accept_login().await.since.as_deref(), Some("13"));
}

#[tokio::test]
async fn a_restored_since_goes_with_the_first_login() {
    let mut server = FakeServer::start().await;
    let mut config = config(&[&server.url]);
    config.since = Some("7391827364519283712".into());
    let login = tokio::spawn(Client::login(config));
    let mut conn = server.accept().await;
    assert_eq!(conn.accept_login().await.since.as_deref(), Some("7391827364519283712"));
    let (_client, mut events) = login.await.unwrap().unwrap();
    expect_state(&mut events, Connecting, ActiveLogin).await;
    assert_eq!(expect_state(&mut events, Connected, Success).await, r#"{"recovered":true}"#);
}

#[tokio::test]
async fn reconnects_move_to_the_next_url() {
    let mut a = FakeServer::start().await;
    let mut b = FakeServer::start().await;
    let config = config(&[&a.url, &b.url]);
    let (_client, mut events, conn) = logged_in(&mut a, config).await;

    conn.close(4000).await;
    let mut conn = b.accept().await;
    conn.accept_login().await;
    expect_state(&mut events, Reconnecting, LoginInterrupted).await;
    expect_state(&mut events, Connected, Success).await;

    // And around again to the first.
    conn.close(4003).await;
    a.accept().await.accept_login().await;
    expect_state(&mut events, Reconnecting, LoginInterrupted).await;
    expect_state(&mut events, Connected, Success).await;
}

#[tokio::test]
async fn a_terminal_close_stops_the_session() {
    for (code, event) in [(4502, TokenExpired), (4501, TokenExpired), (4504, KickedOut), (1000, KickedOut)] {
        let mut server = FakeServer::start().await;
        let (client, mut events, conn) = logged_in_at(&mut server).await;
        conn.close(code).await;

        let extended = expect_state(&mut events, Disconnected, event).await;
        assert!(extended.contains(&code.to_string()), "{extended}");
        expect_end(&mut events).await;
        assert_eq!(client.state(), Disconnected);
        assert_eq!(client.session_id(), None);
        assert_eq!(client.set_push_id("p", "fcm").await, Err(SdkError::LoggedOut));
        assert!(!server.connects_within(Duration::from_millis(200)).await, "reconnected after {code}");
    }
}

#[tokio::test]
async fn a_refused_relogin_stops_the_session() {
    let mut server = FakeServer::start().await;
    let (_client, mut events, conn) = logged_in_at(&mut server).await;
    conn.close(4000).await;
    server.accept().await.refuse_login(herald_proto::code::SDK_TOKEN_EXPIRED, 4502).await;

    expect_state(&mut events, Reconnecting, LoginInterrupted).await;
    let extended = expect_state(&mut events, Disconnected, TokenExpired).await;
    assert!(extended.contains("6000106"), "{extended}");
    expect_end(&mut events).await;
}

#[tokio::test]
async fn reconnects_give_up_after_max_attempts() {
    let mut server = FakeServer::start().await;
    let mut config = config(&[&server.url]);
    config.reconnect.max_attempts = Some(2);
    let (_client, mut events, conn) = logged_in(&mut server, config).await;
    server.stop();
    conn.close(4000).await;

    expect_state(&mut events, Reconnecting, LoginInterrupted).await;
    expect_state(&mut events, Disconnected, LoginTimeout).await;
    expect_end(&mut events).await;
}

#[tokio::test]
async fn the_push_id_is_reported_again_after_a_reconnect() {
    let mut server = FakeServer::start().await;
    let (client, _events, mut conn) = logged_in_at(&mut server).await;

    let set = tokio::spawn({
        let client = client.clone();
        async move { client.set_push_id("fcm-token", "fcm").await }
    });
    let ClientFrame::SetPushId { id, push_id, provider } = conn.recv().await else { panic!("expected set_push_id") };
    assert_eq!((push_id.as_str(), provider.as_str()), ("fcm-token", "fcm"));
    conn.ack(id).await;
    set.await.unwrap().unwrap();

    conn.close(4003).await;
    let mut conn = server.accept().await;
    conn.accept_login().await;
    let ClientFrame::SetPushId { id, push_id, provider } = conn.recv().await else { panic!("expected set_push_id") };
    assert_eq!((push_id.as_str(), provider.as_str()), ("fcm-token", "fcm"));
    conn.ack(id).await;
}

#[tokio::test]
async fn a_request_cut_off_by_a_reconnect_is_answered_after_it() {
    let mut server = FakeServer::start().await;
    let (client, _events, mut conn) = logged_in_at(&mut server).await;

    let set = tokio::spawn({
        let client = client.clone();
        async move { client.set_push_id("apns-token", "apns").await }
    });
    assert!(matches!(conn.recv().await, ClientFrame::SetPushId { .. }));
    conn.close(4000).await; // no ack on this connection

    let mut conn = server.accept().await;
    conn.accept_login().await;
    let ClientFrame::SetPushId { id, .. } = conn.recv().await else { panic!("expected set_push_id") };
    conn.ack(id).await;
    set.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_refused_push_id_is_returned_and_forgotten() {
    let mut server = FakeServer::start().await;
    let (client, _events, mut conn) = logged_in_at(&mut server).await;

    let set = tokio::spawn({
        let client = client.clone();
        async move { client.set_push_id("x", "carrier-pigeon").await }
    });
    let ClientFrame::SetPushId { id, .. } = conn.recv().await else { panic!("expected set_push_id") };
    let code = herald_proto::code::SDK_FIELD_INVALID;
    conn.send(ServerFrame::Error { id, code, message: "unknown provider".to_owned() }).await;
    assert!(matches!(set.await.unwrap(), Err(SdkError::Server { code: 6_000_004, .. })));

    conn.close(4000).await;
    let mut conn = server.accept().await;
    conn.accept_login().await;
    // Anything the client re-sent after the login would come before this renewal.
    let renew = tokio::spawn(async move { client.renew_token("token-2").await });
    let ClientFrame::RenewToken { id, .. } = conn.recv().await else { panic!("push id was re-sent") };
    conn.send(ServerFrame::Ack { id, token_expire: Some(2_100_000_000) }).await;
    assert_eq!(renew.await.unwrap(), Ok(2_100_000_000));
}

#[tokio::test]
async fn renew_token_returns_the_expiry_and_later_logins_use_the_new_token() {
    let mut server = FakeServer::start().await;
    let (client, _events, mut conn) = logged_in_at(&mut server).await;

    let renew = tokio::spawn({
        let client = client.clone();
        async move { client.renew_token("token-2").await }
    });
    let ClientFrame::RenewToken { id, token } = conn.recv().await else { panic!("expected renew_token") };
    assert_eq!(token, "token-2");
    conn.send(ServerFrame::Ack { id, token_expire: Some(2_100_000_000) }).await;
    assert_eq!(renew.await.unwrap(), Ok(2_100_000_000));

    conn.close(4000).await;
    let login = server.accept().await.accept_login().await;
    assert_eq!(login.token, "token-2");
}

#[tokio::test]
async fn a_refused_renewal_keeps_the_old_token() {
    let mut server = FakeServer::start().await;
    let (client, _events, mut conn) = logged_in_at(&mut server).await;

    let renew = tokio::spawn({
        let client = client.clone();
        async move { client.renew_token("short-lived").await }
    });
    let ClientFrame::RenewToken { id, .. } = conn.recv().await else { panic!("expected renew_token") };
    let code = herald_proto::code::SDK_TOKEN_TOO_SHORT;
    conn.send(ServerFrame::Error { id, code, message: "too short".to_owned() }).await;
    assert!(matches!(renew.await.unwrap(), Err(SdkError::Server { code: 6_000_108, .. })));

    conn.close(4000).await;
    let login = server.accept().await.accept_login().await;
    assert_eq!(login.token, "token-1");
}

#[tokio::test]
async fn token_will_expire_is_forwarded() {
    let mut server = FakeServer::start().await;
    let (_client, mut events, mut conn) = logged_in_at(&mut server).await;
    conn.send(ServerFrame::TokenWillExpire { seconds: 30 }).await;
    assert_eq!(next(&mut events).await, Event::TokenWillExpire { seconds: 30 });
}

#[tokio::test]
async fn logout_waits_for_the_ack_and_ends_the_events() {
    let mut server = FakeServer::start().await;
    let (client, mut events, mut conn) = logged_in_at(&mut server).await;
    let other = client.clone();

    let logout = tokio::spawn(client.logout());
    let ClientFrame::Logout { id } = conn.recv().await else { panic!("expected logout") };
    conn.ack(id).await;
    conn.close(1000).await;
    logout.await.unwrap().unwrap();

    expect_state(&mut events, Disconnected, Success).await;
    expect_end(&mut events).await;
    assert_eq!(other.state(), Disconnected);
    assert_eq!(other.renew_token("t").await, Err(SdkError::LoggedOut));
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let mut server = FakeServer::start().await;
    let (client, mut events, conn) = logged_in_at(&mut server).await;
    drop(client);
    assert_eq!(conn.closed_by_client().await, Some(1000));
    expect_state(&mut events, Disconnected, Success).await;
    expect_end(&mut events).await;
}
