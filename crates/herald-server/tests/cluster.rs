//! Cluster mode, black box: three nodes in this process, one NATS, one fresh PostgreSQL database
//! per test (herald-testkit finds both, or starts them for this process). Each test uses its own
//! NATS subject prefix, so tests running at the same time never hear each other.

mod support;

use herald_proto::token04::Mode;
use herald_sdk::{Client, ClientConfig, Event, Events};
use herald_store::{PushBinding, PushProvider};
use serde_json::{json, Value};
use std::time::Duration;
use support::{
    app_toml, next_broadcast, Cluster, Hook, Server, ServerBuilder, APP_ID, BROADCAST_FREQUENCY, HOUR_S, PATIENCE,
    SECRET, SENDER,
};

/// Nodes whose app allows `per_second` broadcasts (and plenty a day).
fn nodes_allowing(per_second: u32) -> ServerBuilder {
    let limits = format!("broadcast_per_second = {per_second}\nbroadcast_per_day = 100000");
    Server::builder().config(&app_toml(APP_ID, SECRET, "", &limits))
}

/// Logs `user` in with the SDK, trying `urls` in order, with quick reconnects.
async fn login(urls: Vec<String>, node: &Server, user: &str) -> (Client, Events) {
    let token = node.token_with(user, HOUR_S, Mode::Gcm);
    let mut cfg = ClientConfig::new(urls, APP_ID, user, token);
    cfg.reconnect.initial_delay = Duration::from_millis(50);
    cfg.reconnect.max_delay = Duration::from_millis(500);
    Client::login(cfg).await.unwrap_or_else(|e| panic!("{user} could not log in: {e}"))
}

/// The next broadcast's text, skipping connection events.
async fn next_text(events: &mut Events) -> String {
    next_broadcast(events).await.message
}

/// `SendMessageToAllUsers` of a text from the sender, whatever the answer.
async fn send_text(node: &Server, text: &str) -> Value {
    let body = json!({"FromUserId": SENDER, "MessageType": 1, "MessageBody": {"Message": text}});
    node.call("SendMessageToAllUsers", Some(&body.to_string())).await
}

async fn register_sender(node: &Server) {
    let v = node.call("UserRegister", Some(&json!({"UserInfo": [{"UserId": SENDER}]}).to_string())).await;
    assert_eq!(v["Code"], 0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_through_one_node_reaches_clients_on_every_node_once() {
    let cluster = Cluster::new(nodes_allowing(1000)).await;
    let nodes = cluster.nodes(3).await;
    register_sender(&nodes[0]).await;
    let mut clients = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        clients.push(login(vec![node.url()], node, &format!("user{i}")).await);
    }
    for round in 0..3 {
        let via = &nodes[round % 3];
        let v = send_text(via, &format!("round {round}")).await;
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
    let v = send_text(&nodes[0], "counted").await;
    assert_eq!(v["Code"], 0, "{v}");
    let id = v["RequestId"].as_str().unwrap();
    for (_, events) in clients.iter_mut() {
        assert_eq!(next_text(events).await, "counted");
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let r = nodes[1].report(id).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_the_same_through_every_node() {
    let cluster = Cluster::new(nodes_allowing(1000)).await;
    let nodes = cluster.nodes(3).await;
    let (alice, _events) = login(vec![nodes[1].url()], &nodes[1], "alice").await;
    for node in &nodes {
        assert!(node.online("alice").await, "alice is online on node 2, seen from {}", node.addr);
    }
    alice.logout().await.expect("logout");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while nodes[2].online("alice").await {
        assert!(tokio::time::Instant::now() < deadline, "alice never went offline after logout");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_across_nodes() {
    let cluster = Cluster::new(nodes_allowing(1)).await;
    let nodes = cluster.nodes(3).await;
    register_sender(&nodes[0]).await;
    // Three nodes at once: exactly one call fits in the 1/s window. (Should the second roll
    // past, the window would admit one more; the count below allows for that honestly.)
    let answers = futures_util::future::join_all(nodes.iter().map(|n| send_text(n, "x"))).await;
    let accepted = answers.iter().filter(|v| v["Code"] == 0).count();
    let limited = answers.iter().filter(|v| v["Code"] == BROADCAST_FREQUENCY).count();
    assert_eq!(accepted + limited, 3, "{answers:?}");
    assert!(
        accepted == 1 || (accepted == 2 && limited == 1),
        "the cluster admitted {accepted} calls in one second: {answers:?}"
    );
    let again = send_text(&nodes[2], "y").await;
    assert_eq!(again["Code"], BROADCAST_FREQUENCY, "a call right after, on another node, is refused: {again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_fails_over_when_its_node_dies_and_keeps_receiving() {
    let cluster = Cluster::new(nodes_allowing(1000)).await;
    let mut nodes = cluster.nodes(3).await;
    register_sender(&nodes[2]).await;
    let (_client, mut events) = login(vec![nodes[0].url(), nodes[1].url()], &nodes[0], "roamer").await;
    let v = send_text(&nodes[2], "before").await;
    assert_eq!(v["Code"], 0, "{v}");
    assert_eq!(next_text(&mut events).await, "before");

    // Node 1 goes away; the SDK moves to node 2 on its own.
    let mut dead = nodes.remove(0);
    dead.stop().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        // Wait until the roamer is back (its session on node 2 is recorded at login).
        if nodes[1].online("roamer").await && nodes[0].session_count() == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the client never reconnected to node 2");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v = send_text(&nodes[1], "after").await;
    assert_eq!(v["Code"], 0, "{v}");
    assert_eq!(next_text(&mut events).await, "after", "the failed-over client receives later broadcasts");
}

/// Push jobs are claimed under a lease: node 1 dies in the middle of a job, node 2 takes it over
/// once the lease lapses and finishes it from the recorded cursor. Only the page node 1 had in
/// flight may be pushed twice; nobody is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_job_left_by_a_dead_node_is_finished_by_another() {
    let hook = Hook::start(SECRET).await;
    let push = format!(
        "{}[apps.push]\npage_size = 2\n[apps.push.webhook]\nurl = \"{}\"\n[push]\nlease_ms = 1500\npoll_interval_ms = 100\n",
        app_toml(APP_ID, SECRET, "", "broadcast_per_second = 1000\nbroadcast_per_day = 100000"),
        hook.url
    );
    let cluster = Cluster::new(Server::builder().config(&push)).await;
    let node1 = cluster.node(1).await;
    register_sender(&node1).await;
    let store = herald_store::open(cluster.store_url()).await.expect("the shared store");
    let users: Vec<String> = (1..=7).map(|i| format!("u{i}")).collect();
    for u in &users {
        let b = PushBinding {
            app_id: APP_ID,
            user_id: u.clone(),
            device_id: "phone".into(),
            push_id: format!("tok-{u}"),
            provider: PushProvider::Webhook,
            updated_at_ms: node1.now_ms(),
        };
        store.bind_push(&b).await.expect("bind");
    }

    // Page 1 (u1, u2) is answered; in page 2, u3 is answered and u4 hangs: node 1 is stuck.
    hook.hold_from(3);
    let id = node1.broadcast_push(2, json!({"Message": "take over"})).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while hook.arrived() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "node 1 never reached page 2");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Node 1 dies (its claim stays behind, unrenewed); node 2 joins, with a provider that answers.
    drop(node1);
    hook.hold_from(usize::MAX);
    let node2 = cluster.node(2).await;
    let done = node2.wait_push_done(&id).await;
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
}

/// Presence in a push job is the cluster's: a user online on node 2 is not pushed, whichever
/// node runs the job; an offline user is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_online_on_another_node_is_not_pushed() {
    let hook = Hook::start(SECRET).await;
    let push = format!(
        "{}[apps.push]\npage_size = 10\n[apps.push.webhook]\nurl = \"{}\"\n",
        app_toml(APP_ID, SECRET, "", "broadcast_per_second = 1000\nbroadcast_per_day = 100000"),
        hook.url
    );
    let cluster = Cluster::new(Server::builder().config(&push)).await;
    let node1 = cluster.node(1).await;
    let node2 = cluster.node(2).await;
    register_sender(&node1).await;
    let (alice, _alice_events) = login(vec![node2.url()], &node2, "alice").await;
    alice.set_push_id("tok-alice", "webhook").await.expect("alice's push ID");
    let (bob, _bob_events) = login(vec![node2.url()], &node2, "bob").await;
    bob.set_push_id("tok-bob", "webhook").await.expect("bob's push ID");
    drop(bob); // a dropped connection keeps the binding: bob is now offline with a push ID
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while node1.online("bob").await {
        assert!(tokio::time::Instant::now() < deadline, "bob never went offline");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let id = node1.broadcast_push(2, json!({"Message": "who is out?"})).await;
    let done = node1.wait_push_done(&id).await;
    assert_eq!(hook.delivered_push_ids(), ["tok-bob"], "only the offline user is pushed: {done}");
    assert_eq!(done["OfflinePush"]["SkippedOnline"], 1, "{done}");
}
