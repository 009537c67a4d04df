//! `herald listen`: the binary logs in with the Rust SDK and prints each broadcast as one JSON
//! line; `--device-id` names the device its push binding is kept under.

mod support;

use serde_json::Value;
use std::process::Stdio;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_prints_each_broadcast_and_binds_its_device() {
    let server = Server::builder().unthrottled().start().await;
    let token = server.token("lena", HOUR_S);
    let url = server.url();
    let app_id = APP_ID.to_string();
    let args = [
        "listen",
        "--url",
        &url,
        "--app-id",
        &app_id,
        "--user-id",
        "lena",
        "--token",
        &token,
        "--device-id",
        "lena-laptop",
        "--push-id",
        "fcm-lena",
        "--push-provider",
        "fcm",
        "--count",
        "2",
        "--timeout",
        "30",
    ];
    let child = tokio::process::Command::from(herald(&args))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn herald listen");
    server.wait_presence("lena", true).await;
    // The push ID is bound (under the given device) before the first broadcast is printed.
    wait_for_push_binding(&server).await;
    let sent = [server.broadcast_text("first").await, server.broadcast_text("second").await];
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output()).await.expect("listen exits").unwrap();
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let ids: Vec<&str> = lines.iter().map(|m| m["messageID"].as_str().unwrap()).collect();
    assert_eq!(ids, [sent[0].as_str(), sent[1].as_str()]);
    assert_eq!(lines[0]["message"], "first");
    assert_eq!(lines[0]["isBroadcastMessage"], true);
}

async fn wait_for_push_binding(server: &Server) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let bindings = server.push_bindings("lena").await;
        if !bindings.is_empty() {
            assert_eq!(bindings, [("lena-laptop".to_string(), "fcm-lena".to_string(), "fcm".to_string())]);
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the push ID was never bound");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
