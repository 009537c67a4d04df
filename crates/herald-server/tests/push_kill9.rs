//! The crash case for real: the `herald` binary is killed with SIGKILL in the middle of a push
//! job (one page recorded, the next in flight), started again on the same store, and must push
//! to every remaining device — repeating at most the page that was in flight.

mod support;

use herald_store::{PushProvider, SqliteStore, Store, UserRecord};
use serde_json::json;
use std::time::Duration;
use support::{app_toml, binding, HeraldProcess, Hook, APP_ID, PATIENCE, SECRET, SENDER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_job_then_restart_pushes_the_rest() {
    let hook = Hook::start(SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let store_url = format!("sqlite://{d}/herald.db");
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin.listen = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\nlog = \"info\"\n[store]\nurl = \"{store_url}\"\n\
             [push]\npoll_interval_ms = 100\n{}\
             [apps.push]\npage_size = 2\nretry_base_ms = 20\n[apps.push.webhook]\nurl = \"{}\"\n",
            app_toml(APP_ID, SECRET, "", ""),
            hook.url
        ),
    )
    .unwrap();
    let users: Vec<String> = (1..=7).map(|i| format!("u{i}")).collect();
    {
        let store = SqliteStore::open(&store_url).await.unwrap();
        let sender = UserRecord { user_id: SENDER.into(), user_name: SENDER.into(), ..UserRecord::default() };
        store.register_users(APP_ID, &[sender]).await.unwrap();
        for u in &users {
            store.bind_push(&binding(APP_ID, u, "phone", &format!("tok-{u}"), PushProvider::Webhook)).await.unwrap();
        }
        store.close().await;
    }

    // Page 1 (u1, u2) is answered; in page 2 one call is answered and the other hangs.
    hook.hold_from(3);
    let first = HeraldProcess::serve(&config);
    let body = json!({"FromUserId": SENDER, "MessageType": 1, "MessageBody": {"Message": "survive"}, "PushType": 2});
    let id = first.call("SendMessageToAllUsers", &body).await["RequestId"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while hook.arrived() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "page 2 never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill9();

    hook.hold_from(usize::MAX);
    let second = HeraldProcess::serve(&config);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let report = loop {
        let r = second.call("QueryBroadcastReport", &json!({ "MessageId": id })).await;
        if r["OfflinePush"]["State"] == "done" {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "the job never finished after the restart: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let p = &report["OfflinePush"];
    assert_eq!((p["Targeted"].as_u64(), p["Sent"].as_u64()), (Some(7), Some(7)), "{report}");
    let got = hook.delivered_push_ids();
    for (i, user) in users.iter().enumerate() {
        let n = got.iter().filter(|p| **p == format!("tok-{user}")).count();
        if (2..4).contains(&i) {
            assert!((1..=2).contains(&n), "{user} was in the page in flight: once or twice, got {n}");
        } else {
            assert_eq!(n, 1, "{user}: exactly once, got {got:?}");
        }
    }
    hook.assert_no_problems();
}
