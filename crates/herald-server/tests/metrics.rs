//! The admin listener's metrics move as they should (names in docs/admin.md are the contract):
//! after logins, a broadcast, a refused broadcast, a push job and a slow-consumer close.

mod support;

use herald_store::PushProvider;
use serde_json::json;
use std::collections::HashMap;
use support::*;

/// `/metrics`, parsed: `name{labels}` → value.
async fn scrape(server: &Server) -> HashMap<String, f64> {
    let text = reqwest::get(format!("{}/metrics", server.admin_url())).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_string(), v.parse::<f64>().expect("a number"))))
        .collect()
}

fn value(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

const APP: &str = "app_id=\"1234567890\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_logins_broadcasts_push_and_closes() {
    let hook = Hook::start(SECRET).await;
    let tail = format!(
        "[push]\npoll_interval_ms = 100\n{}[apps.push.webhook]\nurl = \"{}\"\n",
        app_toml(APP_ID, SECRET, "", UNTHROTTLED_LIMITS),
        hook.url
    );
    let server = Server::builder().wall_clock().gateway("outbox_frames = 2").config(&tail).start().await;
    let before = scrape(&server).await;
    for name in ["process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total", "herald_connections"]
    {
        assert!(before.contains_key(name), "{name} is exported");
    }

    // Logins: two good, one refused.
    let mut alice = WsClient::user(&server, "alice").await;
    let _bob = WsClient::user(&server, "bob").await;
    let mut bad = WsClient::connect(&server).await;
    bad.send_login(APP_ID, "mallory", "04notatoken").await;
    let _ = bad.closed().await;
    let m = scrape(&server).await;
    assert_eq!(value(&m, &format!("herald_logins_total{{{APP},result=\"ok\"}}")), 2.0);
    assert_eq!(value(&m, &format!("herald_logins_total{{{APP},result=\"6000103\"}}")), 1.0);
    assert_eq!(value(&m, &format!("herald_sessions{{{APP}}}")), 2.0);
    assert!(value(&m, "herald_connections") >= 2.0);

    // A broadcast, and a refused one.
    server.broadcast_text("hello").await;
    server.wait_broadcasts_done(1).await;
    assert_eq!(alice.broadcasts().await.len(), 1);
    let refused = server
        .call(
            "SendMessageToAllUsers",
            Some(&json!({"FromUserId": SENDER, "MessageType": 2, "MessageBody": {"Message": "x"}}).to_string()),
        )
        .await;
    assert_eq!(code(&refused), PARAM_ERROR);
    let m = scrape(&server).await;
    assert_eq!(value(&m, &format!("herald_broadcasts_total{{{APP},result=\"accepted\"}}")), 1.0);
    assert_eq!(value(&m, &format!("herald_broadcasts_total{{{APP},result=\"660000002\"}}")), 1.0);
    assert_eq!(value(&m, &format!("herald_broadcast_deliveries_total{{{APP}}}")), 2.0, "alice and bob, once each");
    assert_eq!(value(&m, "herald_fanout_duration_seconds_count"), 1.0);
    assert_eq!(value(&m, "herald_api_requests_total{action=\"SendMessageToAllUsers\",code=\"0\"}"), 1.0);
    assert_eq!(value(&m, "herald_api_requests_total{action=\"SendMessageToAllUsers\",code=\"660000002\"}"), 1.0);
    assert_eq!(value(&m, "herald_api_request_duration_seconds_count{action=\"SendMessageToAllUsers\"}"), 2.0);
    assert!(value(&m, "herald_store_operation_duration_seconds_count{op=\"accept_broadcast\"}") >= 1.0);

    // A push job: one offline device, one webhook send.
    bind_all(&server.store().await, &[binding(APP_ID, "carol", "phone", "tok-carol", PushProvider::Webhook)]).await;
    let id = server.broadcast_push(2, json!({"Message": "to carol's phone"})).await;
    server.wait_push_done(&id).await;
    let m = scrape(&server).await;
    assert_eq!(value(&m, &format!("herald_push_sends_total{{{APP},provider=\"webhook\",result=\"sent\"}}")), 1.0);
    assert_eq!(value(&m, "herald_push_jobs{state=\"done\"}"), 1.0);
    assert_eq!(value(&m, "herald_push_jobs{state=\"running\"}"), 0.0);

    // A slow consumer's close is counted by its code.
    let stream = tiny_buffer_stream(server.addr).await;
    let (ws, _) = tokio_tungstenite::client_async(
        format!("ws://{}/ws", server.addr),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .expect("upgrade");
    let token = server.token_with("slow", HOUR_S, herald_proto::token04::Mode::Gcm);
    let _slow = WsClient::log_in_on(ws, "slow", &token, "slow-dev", SDK_OK).await.unwrap_or_else(|e| panic!("{e}"));
    let big = "x".repeat(30_000);
    let mut sent = server.broadcasts_done();
    while server.online("slow").await {
        assert!(sent < 200, "never closed as a slow consumer");
        server.broadcast(json!({"FromUserId": SENDER, "MessageType": 1, "MessageBody": {"Message": big}})).await;
        sent += 1;
        server.wait_broadcasts_done(sent).await;
    }
    let m = scrape(&server).await;
    assert_eq!(value(&m, "herald_session_closes_total{code=\"4002\"}"), 1.0);
    assert_eq!(value(&m, "herald_session_closes_total{code=\"4501\"}"), 1.0, "the refused login");
    drop(alice);
}

#[tokio::test]
async fn metrics_can_require_the_admin_token() {
    let server =
        Server::builder().admin("token = \"0123456789abcdef-token\"\nmetrics_require_token = true").start().await;
    let url = format!("{}/metrics", server.admin_url());
    let http = reqwest::Client::new();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let ok = http.get(&url).bearer_auth("0123456789abcdef-token").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("herald_connections"));
    // The OpenAPI document is served as built in.
    let doc = http.get(format!("{}/openapi.yaml", server.admin_url())).send().await.unwrap().text().await.unwrap();
    assert!(doc.starts_with("openapi: 3.1"), "{}", &doc[..doc.len().min(80)]);
}

/// Users are never deleted, so once a node has seen one registered its next logins skip
/// `ensure_user` (`gateway.known_users_max`); with 0, every login asks the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_of_a_known_user_skip_the_store_unless_turned_off() {
    for (gateway, expected_calls) in [("", 1.0), ("known_users_max = 0", 3.0)] {
        let server = Server::builder().gateway(gateway).start().await;
        let mut clients = Vec::new();
        for device in ["phone", "tablet", "laptop"] {
            clients.push(WsClient::login(&server, "alice", device, SDK_OK).await);
        }
        let m = scrape(&server).await;
        assert_eq!(value(&m, &format!("herald_logins_total{{{APP},result=\"ok\"}}")), 3.0);
        assert_eq!(
            value(&m, "herald_store_operation_duration_seconds_count{op=\"ensure_user\"}"),
            expected_calls,
            "with [gateway] {gateway:?}"
        );
        assert!(server.store().await.user_exists(APP_ID, "alice").await.unwrap(), "the first login registered alice");
    }
}
