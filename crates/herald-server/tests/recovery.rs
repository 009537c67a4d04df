//! Missed-broadcast recovery (docs/protocol.md, "Recovery"): a client that logs in again with
//! `since` gets every broadcast it missed, once, in order, before any live one — also when a
//! broadcast races its login, after a restart, and on another node of a cluster.

mod support;

use herald_sdk::{Client, ConnectionState, Event};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// A login frame for `user_id`, asking for what came after `since`.
fn login_since(server: &Server, user_id: &str, since: Option<&str>, sdk_version: &str) -> Value {
    let mut login = json!({
        "t": "login", "id": 1, "app_id": APP_ID, "user_id": user_id,
        "token": server.token(user_id, HOUR_S), "sdk_version": sdk_version,
        "platform": "test", "device_id": format!("{user_id}-dev"),
    });
    if let Some(since) = since {
        login["since"] = json!(since);
    }
    login
}

/// Logs in (on a fresh connection) with `since`; returns the client and `login_ok`.
async fn relogin(server: &Server, user_id: &str, since: Option<&str>) -> (WsClient, Value) {
    let (mut client, ok) =
        WsClient::connect(server).await.with_login(login_since(server, user_id, since, SDK_OK)).await;
    assert_eq!(ok["t"], "login_ok", "{ok}");
    client.user_id = user_id.to_string();
    (client, ok)
}

fn ids(msgs: &[Value]) -> Vec<String> {
    msgs.iter().map(|m| m["messageID"].as_str().expect("messageID").to_string()).collect()
}

#[tokio::test]
async fn missed_broadcasts_arrive_once_in_order_before_a_live_one() {
    let server = Server::unthrottled().await;
    let (mut alice, first) = relogin(&server, "alice", None).await;
    assert!(first.get("recovered").is_none(), "no since, no recovered: {first}");
    server.broadcast_and_fan_out("before").await;
    let seen = alice.broadcasts().await;
    let since = ids(&seen)[0].clone();
    drop(alice); // the network blinks

    let mut missed = Vec::new();
    for text in ["one", "two", "three"] {
        missed.push(server.broadcast_text(text).await);
    }
    server.wait_broadcasts_done(4).await;

    let (mut alice, ok) = relogin(&server, "alice", Some(&since)).await;
    assert_eq!(ok["recovered"], true, "{ok}");
    let replayed = alice.broadcasts().await;
    assert_eq!(ids(&replayed), missed, "every missed broadcast, once, in acceptance order");
    let texts: Vec<&str> = replayed.iter().map(|m| m["message"].as_str().unwrap()).collect();
    assert_eq!(texts, ["one", "two", "three"]);
    assert!(replayed.iter().all(|m| m["isBroadcastMessage"] == true && m["senderUserID"] == SENDER));

    let live = server.broadcast_text("live").await;
    server.wait_broadcasts_done(5).await;
    assert_eq!(ids(&alice.broadcasts().await), [live], "then the live one, alone");

    // The report counts the replays apart from the live deliveries (written once a second).
    let report = loop {
        let r = server.report(&missed[0]).await;
        if r["RecoveredDelivered"] == 1 {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(report["OnlineDelivered"], 0, "alice was away when it went out live: {report}");
}

/// The hard part: broadcasts accepted while a client logs in with `since` reach it exactly once
/// — replayed or live, never both, never neither — and in order. Raced many times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_racing_a_recovering_login_arrive_exactly_once() {
    let server = Arc::new(Server::unthrottled().await);
    let (mut alice, _) = relogin(&server, "alice", None).await;
    let mut accepted: Vec<String> = vec![server.broadcast_text("start").await];
    server.wait_broadcasts_done(1).await;
    let mut since = ids(&alice.broadcasts().await)[0].clone();
    for round in 0..25 {
        drop(alice);
        let before = server.broadcasts_done();
        // Broadcasts go out while alice logs in again.
        let sender = {
            let server = server.clone();
            support::spawn(async move {
                let mut sent = Vec::new();
                for i in 0..6 {
                    sent.push(server.broadcast_text(&format!("r{round} b{i}")).await);
                }
                sent
            })
        };
        let (client, ok) = relogin(&server, "alice", Some(&since)).await;
        alice = client;
        assert_eq!(ok["recovered"], true, "round {round}: {ok}");
        let sent = sender.await.unwrap();
        server.wait_broadcasts_done(before + sent.len() as u64).await;
        let got = ids(&alice.broadcasts().await);
        assert_eq!(got, sent, "round {round}: each broadcast since {since} once, in order");
        accepted.extend(sent);
        since = accepted.last().unwrap().clone();
    }
}

#[tokio::test]
async fn an_unknown_or_too_old_since_is_not_recovered_and_replays_nothing() {
    let server =
        Server::builder().unthrottled().gateway("recovery_window_s = 300\nrecovery_max_messages = 2").start().await;
    let (mut alice, _) = relogin(&server, "alice", None).await;
    server.broadcast_and_fan_out("zero").await;
    let since = ids(&alice.broadcasts().await)[0].clone();
    drop(alice);

    // Unknown: nothing the server ever sent.
    let (mut bob, ok) = relogin(&server, "bob", Some("12345")).await;
    assert_eq!(ok["recovered"], false, "{ok}");
    assert_eq!(bob.broadcasts().await, Vec::<Value>::new(), "nothing replayed");

    // Too old by count: two newer broadcasts push it out of a window of two.
    server.broadcast_and_fan_out("one").await;
    server.broadcast_and_fan_out("two").await;
    let (mut alice, ok) = relogin(&server, "alice", Some(&since)).await;
    assert_eq!(ok["recovered"], false, "{ok}");
    assert_eq!(alice.broadcasts().await, Vec::<Value>::new());
    drop(alice);

    // Too old by time: past recovery_window_s.
    let (mut carol, _) = relogin(&server, "carol", None).await;
    server.broadcast_and_fan_out("three").await;
    let since = ids(&carol.broadcasts().await)[0].clone();
    drop(carol);
    server.broadcast_and_fan_out("four").await;
    server.advance_ms(301 * SECOND_MS);
    let (mut carol, ok) = relogin(&server, "carol", Some(&since)).await;
    assert_eq!(ok["recovered"], false, "{ok}");
    assert_eq!(carol.broadcasts().await, Vec::<Value>::new());
    drop(bob);
}

#[tokio::test]
async fn recovery_off_replays_nothing_and_says_so() {
    let server = Server::builder().unthrottled().gateway("recovery_window_s = 0").start().await;
    let (mut alice, _) = relogin(&server, "alice", None).await;
    server.broadcast_and_fan_out("zero").await;
    let since = ids(&alice.broadcasts().await)[0].clone();
    drop(alice);
    server.broadcast_and_fan_out("missed").await;
    let (mut alice, ok) = relogin(&server, "alice", Some(&since)).await;
    assert_eq!(ok["recovered"], false, "{ok}");
    assert_eq!(alice.broadcasts().await, Vec::<Value>::new());
    // Live delivery is as it always was.
    server.broadcast_and_fan_out("live").await;
    assert_eq!(alice.broadcasts().await.len(), 1);
}

#[tokio::test]
async fn old_sdk_versions_get_nothing_replayed() {
    let server = Server::unthrottled().await;
    let (mut alice, _) = relogin(&server, "alice", None).await;
    server.broadcast_and_fan_out("zero").await;
    let since = ids(&alice.broadcasts().await)[0].clone();
    server.broadcast_and_fan_out("missed by the old one").await;
    let login = login_since(&server, "old", Some(&since), "2.9.0");
    let (mut old, ok) = WsClient::connect(&server).await.with_login(login).await;
    assert_eq!(ok["t"], "login_ok", "{ok}");
    assert!(ok.get("recovered").is_none(), "an SDK that gets no broadcasts gets no recovery: {ok}");
    assert_eq!(old.broadcasts().await, Vec::<Value>::new());
    drop(alice);
}

#[tokio::test]
async fn a_since_that_is_not_a_message_id_is_refused() {
    let server = Server::start().await;
    for bad in ["abc", "-1", "", "18446744073709551616"] {
        let login = login_since(&server, "alice", Some(bad), SDK_OK);
        let (mut c, answer) = WsClient::connect(&server).await.with_login(login).await;
        assert_eq!(
            (answer["t"].as_str(), answer["code"].as_u64()),
            (Some("error"), Some(E_FIELD_INVALID)),
            "{bad:?}: {answer}"
        );
        assert!(answer["message"].as_str().unwrap().contains("since"), "{answer}");
        assert_eq!(c.closed().await.code, C_LOGIN_FAILED, "{bad:?}");
    }
}

/// The window is loaded from the store when the server starts: a client that comes back to a
/// restarted server recovers what it missed before and after the restart.
#[tokio::test]
async fn recovery_survives_a_restart() {
    let mut server = Server::unthrottled().await;
    let (mut alice, _) = relogin(&server, "alice", None).await;
    server.broadcast_and_fan_out("zero").await;
    let since = ids(&alice.broadcasts().await)[0].clone();
    drop(alice);
    let before = server.broadcast_text("before the restart").await;
    let offline_only = server.broadcast_push(2, json!({"Message": "push only"})).await;
    server.wait_broadcasts_done(3).await;
    server.restart().await;
    let after = server.broadcast_text("after the restart").await;
    server.wait_broadcasts_done(1).await;

    let (mut alice, ok) = relogin(&server, "alice", Some(&since)).await;
    assert_eq!(ok["recovered"], true, "{ok}");
    let got = ids(&alice.broadcasts().await);
    assert_eq!(got, [before, after], "PushType 2 never reaches sessions, so it is not replayed ({offline_only})");
}

/// The Rust SDK asks with `since` on its own when it reconnects, reports `recovered`, and
/// delivers each missed broadcast once.
#[tokio::test]
async fn the_sdk_recovers_across_a_server_restart() {
    let mut server = Server::unthrottled().await;
    let mut config = sdk_config(&server, "frank");
    // Slow to come back, so the broadcasts below go out while it is away.
    config.reconnect.initial_delay = Duration::from_millis(1500);
    config.reconnect.max_delay = Duration::from_millis(1500);
    let (_client, mut events) = Client::login(config).await.expect("login");
    server.broadcast_text("before").await;
    broadcast_received(&mut events, "before").await;
    server.restart_on_same_port().await;
    let missed = [server.broadcast_text("missed 1").await, server.broadcast_text("missed 2").await];
    let (_, extended) = state_change(&mut events, ConnectionState::Connected).await;
    assert_eq!(extended, r#"{"recovered":true}"#);
    let got = [next_broadcast(&mut events).await.message_id, next_broadcast(&mut events).await.message_id];
    assert_eq!(got, missed);
    let live = server.broadcast_text("live").await;
    let next = event_where(&mut events, "a broadcast", |e| matches!(e, Event::BroadcastMessageReceived(_))).await;
    assert!(matches!(next, Event::BroadcastMessageReceived(m) if m.message_id == live), "nothing twice");
}

/// A client whose node dies logs in to another node with its `since` and recovers there: every
/// node keeps the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_recovers_on_another_node_after_its_node_dies() {
    let limits = "broadcast_per_second = 1000\nbroadcast_per_day = 100000";
    let cluster = Cluster::new(Server::builder().config(&app_toml(APP_ID, SECRET, "", limits))).await;
    let mut nodes = cluster.nodes(3).await;
    let (mut alice, _) = relogin(&nodes[0], "alice", None).await;
    nodes[1].broadcast_text("zero").await;
    let first = loop {
        let got = alice.broadcasts().await;
        if !got.is_empty() {
            break got;
        }
        // Each look is a ping: a few a second stays under the flood limit.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let since = ids(&first)[0].clone();
    nodes[0].stop().await; // alice's node goes away with her session
    let missed = [nodes[1].broadcast_text("one").await, nodes[2].broadcast_text("two").await];
    // Both reached node 3 (relayed or accepted there) before alice comes back.
    nodes[2].wait_broadcasts_done(3).await;

    let (mut alice, ok) = relogin(&nodes[2], "alice", Some(&since)).await;
    assert_eq!(ok["recovered"], true, "{ok}");
    assert_eq!(ids(&alice.broadcasts().await), missed);
}
