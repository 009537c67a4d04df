//! Who a broadcast reaches: every session of every online user, the sender's own sessions
//! included; never a session whose SDK predates broadcasts (< 2.10.0); never an online session
//! when `PushType` is 2 (offline push only), always when it is 1.
//!
//! "Did not get it" is proved without sleeping: once `broadcasts_done()` counts the broadcast,
//! the frames before the answer to a new `ping` are all that session got (see support/ws.rs).

mod support;

use herald_proto::token04::Mode;
use herald_sdk::{Client, ClientConfig};
use serde_json::{json, Value};
use std::collections::HashSet;
use support::*;

/// Asserts `got` holds exactly one broadcast, the text message `text` from the sender; returns it.
#[track_caller]
fn one_text(who: &str, got: &[Value], text: &str) -> Value {
    assert_eq!(got.len(), 1, "{who} must get the broadcast exactly once: {got:?}");
    let m = &got[0];
    assert_eq!(m["message"], text, "{who}: {m}");
    assert_eq!(m["senderUserID"], SENDER, "{who}: {m}");
    assert_eq!(m["type"], 1, "{who}: {m}");
    assert_eq!(m["isBroadcastMessage"], true, "{who}: {m}");
    m.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_of_every_user_gets_it_once_the_senders_two_devices_included() {
    let server = Server::builder().wall_clock().unthrottled().start().await;
    let mut alice = WsClient::user(&server, "alice").await;
    let mut bob = WsClient::user(&server, "bob").await;
    // Carol on two devices as well, with two different (accepted) SDK versions.
    let mut carol_phone = WsClient::login(&server, "carol", "carol-phone", "2.10.0").await;
    let mut carol_web = WsClient::login(&server, "carol", "carol-web", "3.0.1").await;
    // The sender is an ordinary user too: logged in on two devices, both get its broadcast.
    let mut admin_phone = WsClient::login(&server, SENDER, "admin-phone", SDK_OK).await;
    let mut admin_desk = WsClient::login(&server, SENDER, "admin-desk", SDK_OK).await;
    // And one real SDK client.
    let sdk_config = ClientConfig::new([server.url()], APP_ID, "dave", server.token_with("dave", HOUR_S, Mode::Gcm));
    let (_dave, mut dave_events) = Client::login(sdk_config).await.expect("the SDK logs in");
    server.wait_sessions(7).await;

    server.broadcast_text("to everyone").await;
    server.wait_broadcasts_done(1).await;

    let mut ids = HashSet::new();
    for (who, c) in [
        ("alice", &mut alice),
        ("bob", &mut bob),
        ("carol on her phone", &mut carol_phone),
        ("carol on the web", &mut carol_web),
        ("the sender on its phone", &mut admin_phone),
        ("the sender on its desktop", &mut admin_desk),
    ] {
        let m = one_text(who, &c.broadcasts().await, "to everyone");
        ids.insert(message_id(&m));
    }
    assert_eq!(ids.len(), 1, "every session gets the same message (one messageID): {ids:?}");
    let dave_got = next_broadcast(&mut dave_events).await;
    assert_eq!(dave_got.message, "to everyone");
    assert_eq!(dave_got.sender_user_id, SENDER);
    assert!(ids.contains(&dave_got.message_id.parse::<u64>().expect("decimal id")), "{dave_got:?}");

    // A second broadcast reaches all of them again, with a new id.
    server.broadcast_text("again").await;
    server.wait_broadcasts_done(2).await;
    for c in [&mut alice, &mut bob, &mut carol_phone, &mut carol_web, &mut admin_phone, &mut admin_desk] {
        let who = c.user_id.clone();
        let m = one_text(&who, &c.broadcasts().await, "again");
        assert!(!ids.contains(&message_id(&m)), "a new broadcast has a new messageID: {m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_older_than_sdk_2_10_gets_nothing_and_2_10_gets_it() {
    let server = Server::builder().wall_clock().unthrottled().start().await;
    let mut old = WsClient::login(&server, "old", "old-dev", "2.9.0").await;
    let mut new = WsClient::login(&server, "new", "new-dev", "2.10.0").await;
    // One user with an old and a new device: only the new device gets it.
    let mut mixed_old = WsClient::login(&server, "mixed", "mixed-old", "2.9.9").await;
    let mut mixed_new = WsClient::login(&server, "mixed", "mixed-new", "2.10").await;
    server.wait_sessions(4).await;
    // The old sessions are logged in and online: they are skipped for their version only.
    assert!(server.online("old").await);

    for (i, text) in ["first", "second"].into_iter().enumerate() {
        server.broadcast_text(text).await;
        server.wait_broadcasts_done(i as u64 + 1).await;
        assert_eq!(old.broadcasts().await, Vec::<Value>::new(), "SDK 2.9.0 must not get {text:?}");
        assert_eq!(mixed_old.broadcasts().await, Vec::<Value>::new(), "SDK 2.9.9 must not get {text:?}");
        one_text("SDK 2.10.0", &new.broadcasts().await, text);
        one_text("SDK 2.10", &mixed_new.broadcasts().await, text);
    }
    // The old sessions were never closed for it: they still answer and are still online.
    assert!(server.online("old").await);
    assert_eq!(server.session_count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_type_2_skips_online_sessions_and_push_type_1_reaches_them() {
    let server = Server::builder().wall_clock().unthrottled().start().await;
    let mut a = WsClient::user(&server, "a").await;
    let mut b = WsClient::login(&server, "b", "b-1", SDK_OK).await;
    let mut b2 = WsClient::login(&server, "b", "b-2", SDK_OK).await;
    server.wait_sessions(3).await;

    // PushType 2: offline push only. Accepted, fanned out to no online session.
    server.broadcast(text_body("offline only", 2)).await;
    server.wait_broadcasts_done(1).await;
    for c in [&mut a, &mut b, &mut b2] {
        assert_eq!(c.broadcasts().await, Vec::<Value>::new(), "{}: PushType 2 reached an online session", c.user_id);
    }

    // PushType 1: online and offline push. Online sessions get it.
    server.broadcast(text_body("online and offline", 1)).await;
    server.wait_broadcasts_done(2).await;
    for c in [&mut a, &mut b, &mut b2] {
        let who = c.user_id.clone();
        one_text(&who, &c.broadcasts().await, "online and offline");
    }

    // PushType 0 (online only) and an absent PushType reach them as well.
    server.broadcast(text_body("online only", 0)).await;
    server.wait_broadcasts_done(3).await;
    let no_push_type = json!({"FromUserId": SENDER, "MessageType": 1, "MessageBody": {"Message": "default"}});
    server.broadcast(no_push_type).await;
    server.wait_broadcasts_done(4).await;
    for c in [&mut a, &mut b, &mut b2] {
        let got = c.broadcasts().await;
        let mut texts: Vec<&str> = got.iter().map(|m| m["message"].as_str().expect("text")).collect();
        texts.sort_unstable();
        assert_eq!(texts, ["default", "online only"], "{}: {got:?}", c.user_id);
    }
}
