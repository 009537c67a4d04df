//! Cluster mode, black box: three nodes in this process, one NATS (127.0.0.1:4222), one fresh
//! PostgreSQL database per test. Each test uses its own NATS subject prefix, so tests running at
//! the same time never hear each other.

use herald_proto::signature::signed_query;
use herald_proto::token04::{generate, Mode};
use herald_sdk::{Client, ClientConfig, Event, Events};
use herald_server::clock::{Clock, SystemClock};
use herald_server::config::Config;
use herald_server::Running;
use herald_store::postgres::testing::{test_database, TestDatabase};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod common;
mod push_support;

use herald_store::{PushBinding, PushProvider};
use push_support::Hook;

const APP: u32 = 1234567890;
const SECRET: &str = "fa94dd0f974cf2e293728a526b028271";
const NATS_URL: &str = "nats://127.0.0.1:4222";
/// Bounds every wait; never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(20);

struct Node {
    running: Running,
    shutdown: CancellationToken,
}

impl Node {
    fn addr(&self) -> SocketAddr {
        self.running.local_addr
    }
    fn ws(&self) -> String {
        format!("ws://{}/ws", self.addr())
    }
}

struct Cluster {
    nodes: Vec<Node>,
    _db: TestDatabase,
}

/// `extra` is appended last, so it may hold node tables (`[push]`) and the app's sub-tables
/// (`[apps.push]`) alike: TOML puts a later `[push]` back at the top level.
fn config(node_id: u16, db_url: &str, prefix: &str, per_second: u32, extra: &str) -> Config {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
admin.listen = "127.0.0.1:0"
log = "warn"
[store]
url = "{db_url}"
[cluster]
node_id = {node_id}
nats_url = "{NATS_URL}"
subject_prefix = "{prefix}"
[[apps]]
app_id = {APP}
server_secret = "{SECRET}"
[apps.limits]
broadcast_per_second = {per_second}
broadcast_per_day = 100000
{extra}
"#
    );
    Config::parse(&text, &|_| None).expect("cluster test config parses")
}

async fn start_node(node_id: u16, db_url: &str, prefix: &str, per_second: u32, extra: &str) -> Node {
    let shutdown = CancellationToken::new();
    let running = herald_server::start(
        config(node_id, db_url, prefix, per_second, extra),
        Arc::new(SystemClock),
        shutdown.clone(),
    )
    .await
    .unwrap_or_else(|e| {
        panic!("node {node_id} did not start: {e}\n(NATS must run at {NATS_URL}: nats-server -js -p 4222)")
    });
    Node { running, shutdown }
}

async fn cluster(nodes: u16, per_second: u32) -> Cluster {
    let (url, db) = test_database().await;
    let prefix = format!("herald-test-{}", rand::random::<u64>());
    let mut started = Vec::new();
    for node_id in 1..=nodes {
        started.push(start_node(node_id, &url, &prefix, per_second, "").await);
    }
    Cluster { nodes: started, _db: db }
}

async fn call(addr: SocketAddr, action: &str, body: Option<&str>, extra_query: &str) -> Value {
    let now = SystemClock.now_s();
    let nonce = format!("{:016x}", rand::random::<u64>());
    let query = signed_query(action, APP, SECRET, &nonce, now, &[]);
    let url = format!("http://{addr}/?{query}{extra_query}");
    let client = reqwest::Client::new();
    let req = match body {
        Some(b) => client.post(url).body(b.to_string()),
        None => client.get(url),
    };
    req.send().await.expect("API reachable").json().await.expect("API answers JSON")
}

async fn broadcast(addr: SocketAddr, text: &str) -> Value {
    let body =
        serde_json::json!({"FromUserId": "admin", "MessageType": 1, "MessageBody": {"Message": text}}).to_string();
    call(addr, "SendMessageToAllUsers", Some(&body), "").await
}

async fn login(urls: Vec<String>, user: &str) -> (Client, Events) {
    let token = generate(APP, user, SECRET, 3600, Mode::Gcm, SystemClock.now_s()).expect("token");
    let mut cfg = ClientConfig::new(urls, APP, user, token);
    cfg.reconnect.initial_delay = Duration::from_millis(50);
    cfg.reconnect.max_delay = Duration::from_millis(500);
    Client::login(cfg).await.unwrap_or_else(|e| panic!("{user} could not log in: {e}"))
}

/// The next broadcast text, skipping connection events.
async fn next_text(events: &mut Events) -> String {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match events.next().await {
                Some(Event::BroadcastMessageReceived(m)) => return m.message,
                Some(_) => continue,
                None => panic!("event stream ended"),
            }
        }
    })
    .await
    .expect("a broadcast arrives")
}

async fn status(addr: SocketAddr, user: &str) -> String {
    let v = call(addr, "QueryUserOnlineState", None, &format!("&UserId[]={user}")).await;
    assert_eq!(v["Code"], 0, "{v}");
    v["Result"][0]["Status"].as_str().unwrap_or("missing").to_string()
}

async fn register_admin(addr: SocketAddr) {
    let v = call(addr, "UserRegister", Some(r#"{"UserInfo":[{"UserId":"admin"}]}"#), "").await;
    assert_eq!(v["Code"], 0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_through_one_node_reaches_clients_on_every_node_once() {
    let c = cluster(3, 1000).await;
    register_admin(c.nodes[0].addr()).await;
    let mut clients = Vec::new();
    for (i, node) in c.nodes.iter().enumerate() {
        clients.push(login(vec![node.ws()], &format!("user{i}")).await);
    }
    for round in 0..3 {
        let via = &c.nodes[round % 3];
        let v = broadcast(via.addr(), &format!("round {round}")).await;
        assert_eq!(v["Code"], 0, "{v}");
        for (_, events) in clients.iter_mut() {
            assert_eq!(
                next_text(events).await,
                format!("round {round}"),
                "every node's client gets each broadcast, in order"
            );
        }
    }
    // The report adds up every node's share: one session on each of the three nodes.
    let v = broadcast(c.nodes[0].addr(), "counted").await;
    let query = serde_json::json!({"MessageId": v["RequestId"]}).to_string();
    for (_, events) in clients.iter_mut() {
        assert_eq!(next_text(events).await, "counted");
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let r = call(c.nodes[1].addr(), "QueryBroadcastReport", Some(&query), "").await;
        let delivered = r["OnlineDelivered"].as_u64().unwrap_or(0);
        assert!(delivered <= 3, "more deliveries counted than sessions: {r}");
        if delivered == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the nodes' shares never added up to 3: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Exactly once: nothing else is waiting in any client's stream.
    for (_, events) in clients.iter_mut() {
        let extra = tokio::time::timeout(Duration::from_millis(300), async {
            loop {
                if let Some(Event::BroadcastMessageReceived(m)) = events.next().await {
                    return m.message;
                }
            }
        })
        .await;
        assert!(extra.is_err(), "a client got a broadcast twice: {extra:?}");
    }
    for n in &c.nodes {
        n.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_the_same_through_every_node() {
    let c = cluster(3, 1000).await;
    let (alice, _events) = login(vec![c.nodes[1].ws()], "alice").await;
    for node in &c.nodes {
        assert_eq!(
            status(node.addr(), "alice").await,
            "Online",
            "alice is online on node 2, seen from {}",
            node.addr()
        );
    }
    alice.logout().await.expect("logout");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if status(c.nodes[2].addr(), "alice").await == "Offline" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "alice never went offline after logout");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in &c.nodes {
        n.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_across_nodes() {
    let c = cluster(3, 1).await;
    register_admin(c.nodes[0].addr()).await;
    // Three nodes at once: exactly one call fits in the 1/s window. (Should the second roll
    // past, the window would admit one more; the count below allows for that honestly.)
    let answers = futures_util::future::join_all(c.nodes.iter().map(|n| broadcast(n.addr(), "x"))).await;
    let accepted = answers.iter().filter(|v| v["Code"] == 0).count();
    let limited = answers.iter().filter(|v| v["Code"] == 660500003).count();
    assert_eq!(accepted + limited, 3, "{answers:?}");
    assert!(
        accepted == 1 || (accepted == 2 && limited == 1),
        "the cluster admitted {accepted} calls in one second: {answers:?}"
    );
    let again = broadcast(c.nodes[2].addr(), "y").await;
    assert_eq!(again["Code"], 660500003, "a call right after, on another node, is refused: {again}");
    for n in &c.nodes {
        n.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_fails_over_when_its_node_dies_and_keeps_receiving() {
    let mut c = cluster(3, 1000).await;
    register_admin(c.nodes[2].addr()).await;
    let (_client, mut events) = login(vec![c.nodes[0].ws(), c.nodes[1].ws()], "roamer").await;
    let v = broadcast(c.nodes[2].addr(), "before").await;
    assert_eq!(v["Code"], 0, "{v}");
    assert_eq!(next_text(&mut events).await, "before");

    // Node 1 goes away; the SDK moves to node 2 on its own.
    let dead = c.nodes.remove(0);
    dead.shutdown.cancel();
    dead.running.wait().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        // Wait until the roamer is back (its session on node 2 is recorded at login).
        if status(c.nodes[1].addr(), "roamer").await == "Online" && c.nodes[0].running.hub.session_count() == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the client never reconnected to node 2");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v = broadcast(c.nodes[1].addr(), "after").await;
    assert_eq!(v["Code"], 0, "{v}");
    assert_eq!(next_text(&mut events).await, "after", "the failed-over client receives later broadcasts");
    for n in &c.nodes {
        n.shutdown.cancel();
    }
}

/// Push jobs are claimed under a lease: node 1 dies in the middle of a job, node 2 takes it over
/// once the lease lapses and finishes it from the recorded cursor. Only the page node 1 had in
/// flight may be pushed twice; nobody is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_job_left_by_a_dead_node_is_finished_by_another() {
    let (url, _db) = test_database().await;
    let prefix = format!("herald-test-{}", rand::random::<u64>());
    let hook = Hook::start(SECRET).await;
    let push = format!(
        "[apps.push]\npage_size = 2\n[apps.push.webhook]\nurl = \"{}\"\n[push]\nlease_ms = 1500\npoll_interval_ms = 100\n",
        hook.url
    );
    let node1 = start_node(1, &url, &prefix, 1000, &push).await;
    register_admin(node1.addr()).await;
    let store = herald_store::open(&url).await.expect("the shared store");
    let users: Vec<String> = (1..=7).map(|i| format!("u{i}")).collect();
    for u in &users {
        let b = PushBinding {
            app_id: APP,
            user_id: u.clone(),
            device_id: "phone".into(),
            push_id: format!("tok-{u}"),
            provider: PushProvider::Webhook,
            updated_at_ms: SystemClock.now_ms(),
        };
        store.bind_push(&b).await.expect("bind");
    }

    // Page 1 (u1, u2) is answered; in page 2, u3 is answered and u4 hangs: node 1 is stuck.
    hook.hold_from(3);
    let body = serde_json::json!({"FromUserId": "admin", "MessageType": 1, "MessageBody": {"Message": "take over"}, "PushType": 2});
    let v = call(node1.addr(), "SendMessageToAllUsers", Some(&body.to_string()), "").await;
    assert_eq!(v["Code"], 0, "{v}");
    let id = v["RequestId"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while hook.arrived() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "node 1 never reached page 2");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Node 1 dies (its claim stays behind, unrenewed); node 2 joins, with a provider that answers.
    node1.shutdown.cancel();
    drop(node1);
    hook.hold_from(usize::MAX);
    let node2 = start_node(2, &url, &prefix, 1000, &push).await;
    let query = serde_json::json!({"MessageId": id}).to_string();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let done = loop {
        let r = call(node2.addr(), "QueryBroadcastReport", Some(&query), "").await;
        if r["OfflinePush"]["State"] == "done" {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "node 2 never finished the job: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["OfflinePush"]["Sent"], 7, "every device counted once: {done}");
    let got = hook.delivered_push_ids();
    for (i, user) in users.iter().enumerate() {
        let n = got.iter().filter(|p| **p == format!("tok-{user}")).count();
        if (2..4).contains(&i) {
            assert!((1..=2).contains(&n), "{user} was in node 1's page in flight: once or twice, got {n}");
        } else {
            assert_eq!(n, 1, "{user}: exactly once, got {got:?}");
        }
    }
    node2.shutdown.cancel();
}

/// Presence in a push job is the cluster's: a user online on node 2 is not pushed, whichever
/// node runs the job; an offline user is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_online_on_another_node_is_not_pushed() {
    let (url, _db) = test_database().await;
    let prefix = format!("herald-test-{}", rand::random::<u64>());
    let hook = Hook::start(SECRET).await;
    let push = format!("[apps.push]\npage_size = 10\n[apps.push.webhook]\nurl = \"{}\"\n", hook.url);
    let node1 = start_node(1, &url, &prefix, 1000, &push).await;
    let node2 = start_node(2, &url, &prefix, 1000, &push).await;
    register_admin(node1.addr()).await;
    let (alice, _alice_events) = login(vec![node2.ws()], "alice").await;
    alice.set_push_id("tok-alice", "webhook").await.expect("alice's push ID");
    let (bob, _bob_events) = login(vec![node2.ws()], "bob").await;
    bob.set_push_id("tok-bob", "webhook").await.expect("bob's push ID");
    drop(bob); // a dropped connection keeps the binding: bob is now offline with a push ID
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while status(node1.addr(), "bob").await != "Offline" {
        assert!(tokio::time::Instant::now() < deadline, "bob never went offline");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let body = serde_json::json!({"FromUserId": "admin", "MessageType": 1, "MessageBody": {"Message": "who is out?"}, "PushType": 2});
    let v = call(node1.addr(), "SendMessageToAllUsers", Some(&body.to_string()), "").await;
    assert_eq!(v["Code"], 0, "{v}");
    let query = serde_json::json!({"MessageId": v["RequestId"]}).to_string();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let done = loop {
        let r = call(node1.addr(), "QueryBroadcastReport", Some(&query), "").await;
        if r["OfflinePush"]["State"] == "done" {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "the job never finished: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(hook.delivered_push_ids(), ["tok-bob"], "only the offline user is pushed: {done}");
    assert_eq!(done["OfflinePush"]["SkippedOnline"], 1, "{done}");
    node1.shutdown.cancel();
    node2.shutdown.cancel();
}
