//! Offline push through the webhook provider, end to end: PushType 1 and 2 reach exactly the
//! offline users with a binding, online users are not pushed, dead tokens are removed, failures
//! and throttling are retried, and a job interrupted by a shutdown finishes after a restart.
//! `QueryBroadcastReport` is checked along the way.

mod support;

use herald_proto::token04::{self, Mode};
use herald_sdk::{Client, ClientConfig, Event};
use herald_store::PushProvider;
use serde_json::{json, Value};
use std::time::Duration;
use support::*;

/// Config for the default app with the webhook stand-in as its provider.
fn config(hook: &Hook, page_size: u32) -> String {
    format!(
        "[push]\npoll_interval_ms = 100\n{}\
         [apps.push]\npage_size = {page_size}\nmax_attempts = 4\nretry_base_ms = 20\nretry_max_ms = 3000\n\
         [apps.push.webhook]\nurl = \"{}\"\nconcurrency = 4\n",
        app_toml(APP_ID, SECRET, "", ""),
        hook.url
    )
}

async fn online_user(server: &Server, user_id: &str, push_id: &str) -> (Client, herald_sdk::Events) {
    let token = token04::generate(APP_ID, user_id, SECRET, 3600, Mode::Cbc, server.now_s()).unwrap();
    let config = ClientConfig::new([format!("ws://{}/ws", server.addr)], APP_ID, user_id, token);
    let (client, events) = Client::login(config).await.expect("SDK login");
    client.set_push_id(push_id, "webhook").await.expect("push ID accepted");
    (client, events)
}

async fn broadcast_with_id_received(events: &mut herald_sdk::Events, message_id: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.next()).await.expect("no broadcast in time");
        match event {
            Some(Event::BroadcastMessageReceived(m)) if m.message_id == message_id => return,
            Some(_) => continue,
            None => panic!("session ended before the broadcast arrived"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_types_reach_exactly_the_offline_users_with_a_binding() {
    let hook = Hook::start(SECRET).await;
    let server = Server::start_with(&config(&hook, 2)).await;
    server.register(&[SENDER, "erin"]).await;
    let store = server.store().await;
    bind_all(
        &store,
        &[
            binding(APP_ID, "alice", "phone", "tok-alice", PushProvider::Webhook),
            binding(APP_ID, "bob", "phone", "tok-bob", PushProvider::Webhook),
            binding(APP_ID, "bob", "tablet", "tok-bob-2", PushProvider::Webhook),
            // This app has no FCM provider: targeted, and reported as failed.
            binding(APP_ID, "carol", "phone", "fcm-carol", PushProvider::Fcm),
            // Another app's user is never this app's target.
            binding(OTHER_APP_ID, "zed", "phone", "tok-zed", PushProvider::Webhook),
        ],
    )
    .await;
    let (_dave, mut dave_events) = online_user(&server, "dave", "tok-dave").await;

    let none = server.broadcast_push(0, json!({"Message": "online only"})).await;
    assert_eq!(server.report(&none).await["OfflinePush"], json!({"State": "none"}), "PushType 0 has no job");
    broadcast_with_id_received(&mut dave_events, &none).await;

    server.advance_ms(SECOND_MS);
    let push = json!({"Title": "Sale", "Content": "50% off", "Payload": "{\"deep\":\"link\"}"});
    let only_offline = server.broadcast_push(2, json!({"Message": "m2", "OfflinePush": push})).await;
    let r = server.wait_push_done(&only_offline).await;
    assert_eq!(counts(&r), [4, 3, 1, 0, 1], "targeted, sent, failed, removed, skipped online: {r}");
    assert_eq!(hook.delivered_push_ids(), ["tok-alice", "tok-bob", "tok-bob-2"]);
    for body in hook.delivered() {
        assert_eq!(body["appid"], APP_ID.to_string());
        assert_eq!(body["event"], "offline_push");
        assert_eq!(body["message_id"], only_offline.as_str());
        assert_eq!(body["from_user_id"], SENDER);
        assert_eq!(
            (&body["title"], &body["content"], &body["payload"]),
            (&push["Title"], &push["Content"], &push["Payload"])
        );
        assert_eq!(body["timestamp"], server.now_s());
    }

    server.advance_ms(SECOND_MS);
    let both = server.broadcast_push(1, json!({"Message": "plain text"})).await;
    broadcast_with_id_received(&mut dave_events, &both).await;
    let r = server.wait_push_done(&both).await;
    assert_eq!(counts(&r), [4, 3, 1, 0, 1], "PushType 1: the same offline devices, dave online only: {r}");
    let second: Vec<Value> = hook.delivered().into_iter().filter(|b| b["message_id"] == both.as_str()).collect();
    let mut ids: Vec<&str> = second.iter().map(|b| b["push_id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["tok-alice", "tok-bob", "tok-bob-2"], "PushType 1 pushes the offline devices, not dave");
    for body in second {
        assert_eq!((body["title"].as_str(), body["content"].as_str()), (Some(""), Some("plain text")), "text fallback");
    }
    assert_eq!(hook.delivered().len(), 6, "nothing else was pushed (PushType 0 pushes nobody)");
    assert_eq!(r["PushType"], 1);
    assert_eq!(r["MessageId"], both.as_str());
    hook.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_tokens_are_removed_and_failures_are_retried() {
    let hook = Hook::start(SECRET).await;
    let server = Server::start_with(&config(&hook, 10)).await;
    server.register(&[SENDER]).await;
    let store = server.store().await;
    let users = ["ok", "gone", "flaky", "throttled", "refused", "hopeless"];
    let bindings: Vec<_> =
        users.iter().map(|u| binding(APP_ID, u, "phone", &format!("tok-{u}"), PushProvider::Webhook)).collect();
    bind_all(&store, &bindings).await;
    hook.script("tok-gone", &[(410, None)]);
    hook.script("tok-flaky", &[(500, None), (503, None)]);
    hook.script("tok-throttled", &[(429, Some(1))]);
    hook.script("tok-refused", &[(400, None)]);
    hook.script("tok-hopeless", &[(500, None); 10]);

    let id = server.broadcast_push(2, json!({"Message": "hi", "OfflinePush": {"Title": "t", "Content": "c"}})).await;
    let r = server.wait_push_done(&id).await;
    assert_eq!(counts(&r), [6, 3, 2, 1, 0], "targeted, sent, failed, removed, skipped online: {r}");
    assert_eq!(hook.delivered_push_ids(), ["tok-flaky", "tok-ok", "tok-throttled"]);
    assert_eq!(hook.attempts("tok-flaky"), 3, "failed twice, then succeeded");
    assert_eq!(hook.attempts("tok-throttled"), 2, "429 retried after its Retry-After");
    assert_eq!(hook.attempts("tok-refused"), 1, "a 400 is not retried");
    assert_eq!(hook.attempts("tok-hopeless"), 4, "max_attempts tries, then failed");
    assert_eq!(hook.attempts("tok-gone"), 1);
    assert!(store.push_bindings_of(APP_ID, "gone").await.unwrap().is_empty(), "410 removed the binding");
    for kept in ["ok", "flaky", "throttled", "refused", "hopeless"] {
        assert_eq!(store.push_bindings_of(APP_ID, kept).await.unwrap().len(), 1, "{kept} keeps its binding");
    }
    hook.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_interrupted_by_shutdown_resumes_after_restart_and_skips_nobody() {
    let hook = Hook::start(SECRET).await;
    let mut server = Server::start_with(&config(&hook, 2)).await;
    server.register(&[SENDER]).await;
    let users: Vec<String> = (1..=7).map(|i| format!("u{i}")).collect();
    {
        let store = server.store().await;
        let bindings: Vec<_> =
            users.iter().map(|u| binding(APP_ID, u, "phone", &format!("tok-{u}"), PushProvider::Webhook)).collect();
        bind_all(&store, &bindings).await;
    }
    // Page 1 (u1, u2) is answered; in page 2 one call is answered and the other hangs.
    hook.hold_from(3);
    let id = server.broadcast_push(2, json!({"Message": "resume me"})).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while hook.arrived() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "page 2 never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mid = server.report(&id).await;
    assert_eq!(mid["OfflinePush"]["State"], "running", "{mid}");
    assert_eq!(counts(&mid)[..2], [2, 2], "page 1 is recorded, page 2 is not: {mid}");

    server.stop().await;
    hook.hold_from(usize::MAX);
    server.restart().await;
    let r = server.wait_push_done(&id).await;
    assert_eq!(counts(&r), [7, 7, 0, 0, 0], "every device counted once: {r}");
    let got = hook.delivered_push_ids();
    for (i, user) in users.iter().enumerate() {
        let n = got.iter().filter(|p| **p == format!("tok-{user}")).count();
        if (2..4).contains(&i) {
            assert!((1..=2).contains(&n), "{user} was in the interrupted page: once or twice, got {n}");
        } else {
            assert_eq!(n, 1, "{user}: exactly once (outside the interrupted page), got {got:?}");
        }
    }
    hook.assert_no_problems();
}

#[tokio::test]
async fn report_refuses_unknown_and_malformed_ids() {
    let server = Server::start().await;
    for (body, case) in [
        (json!({}), "missing"),
        (json!({"MessageId": "12x"}), "not decimal"),
        (json!({"MessageId": true}), "wrong type"),
        (json!({"MessageId": "42"}), "unknown"),
    ] {
        let answer = server.call("QueryBroadcastReport", Some(&body.to_string())).await;
        assert_code_for(&answer, PARAM_ERROR, case);
    }
}

/// Offline as the spec defines it, through the real SDK: a user whose connection dropped after
/// reporting a push ID is pushed; a user who logged out is not (logout removes the binding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_user_is_pushed_and_a_logged_out_user_is_not() {
    let hook = Hook::start(SECRET).await;
    let server = Server::start_with(&config(&hook, 10)).await;
    server.register(&[SENDER]).await;
    let (frank, frank_events) = online_user(&server, "frank", "tok-frank").await;
    let (gina, _gina_events) = online_user(&server, "gina", "tok-gina").await;
    drop((frank, frank_events));
    gina.logout().await.expect("logout");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let q = [("UserId[]", "frank"), ("UserId[]", "gina")];
        let answer = server.call_with_query("QueryUserOnlineState", &q, None).await;
        if answer["Result"].as_array().unwrap().iter().all(|r| r["Status"] == "Offline") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never offline: {answer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = server.broadcast_push(2, json!({"Message": "where are you"})).await;
    let r = server.wait_push_done(&id).await;
    assert_eq!(counts(&r), [1, 1, 0, 0, 0], "{r}");
    assert_eq!(hook.delivered_push_ids(), ["tok-frank"]);
    hook.assert_no_problems();
}
