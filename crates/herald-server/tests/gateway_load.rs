//! Many clients at once: 2,000 concurrent logins complete without errors, all 2,000 sessions
//! are online at the same time, and one broadcast reaches each of them.
//!
//! No timing assertions: this guards correctness under concurrency, not speed.

mod support;

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::SinkExt;
use serde_json::{json, Value};
use support::*;
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 2_000;

/// Connects and logs in; any failure is returned, not panicked, so that they can be counted.
async fn log_in(
    addr: std::net::SocketAddr,
    user_id: String,
    token: String,
) -> Result<(String, WsStream, String), String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .map_err(|e| format!("{user_id}: upgrade: {e}"))?;
    let login = json!({
        "t": "login", "id": 1, "app_id": APP_ID, "user_id": user_id, "token": token,
        "sdk_version": "2.18.0", "platform": "linux", "device_id": "load",
    });
    ws.send(Message::text(login.to_string())).await.map_err(|e| format!("{user_id}: send: {e}"))?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) => {
            let frame: Value = serde_json::from_str(t.as_str()).map_err(|e| format!("{user_id}: {e}"))?;
            if let (Some("login_ok"), Some(session_id)) = (frame["t"].as_str(), frame["session_id"].as_str()) {
                Ok((user_id, ws, session_id.to_string()))
            } else {
                Err(format!("{user_id}: {frame}"))
            }
        }
        other => Err(format!("{user_id}: {other:?}")),
    }
}

/// The next text frame of one connection, as JSON.
async fn next_text(user_id: &str, ws: &mut WsStream) -> Result<Value, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).map_err(|e| e.to_string()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => return Err(format!("{user_id}: {other:?}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_concurrent_logins_complete_and_all_get_a_broadcast() {
    let server = Server::unthrottled().await;
    let addr = server.addr;

    // One loop drives every client: all connects and logins are in flight at once.
    let mut logins: FuturesUnordered<_> = (0..CLIENTS)
        .map(|i| format!("load-{i:04}"))
        .map(|u| log_in(addr, u.clone(), server.token(&u, HOUR_S)))
        .collect();
    let mut sessions = Vec::with_capacity(CLIENTS);
    let mut errors = Vec::new();
    let all = tokio::time::timeout(PATIENCE * 6, async {
        while let Some(result) = logins.next().await {
            match result {
                Ok(session) => sessions.push(session),
                Err(e) => errors.push(e),
            }
        }
    })
    .await;
    assert!(all.is_ok(), "logins did not finish; {} done, {} failed", sessions.len(), errors.len());
    assert!(errors.is_empty(), "{} logins failed, e.g. {:?}", errors.len(), &errors[..errors.len().min(5)]);
    assert_eq!(sessions.len(), CLIENTS);
    let ids: std::collections::HashSet<&str> = sessions.iter().map(|(_, _, id)| id.as_str()).collect();
    assert_eq!(ids.len(), CLIENTS, "every session has its own id");

    assert_eq!(server.session_count(), CLIENTS);
    assert_eq!(server.connections(), CLIENTS);
    for (u, _, _) in &sessions {
        assert!(server.is_online(u).await, "{u}");
    }
    // Every login registered its user.
    let store = server.store().await;
    for u in ["load-0000", "load-0999", "load-1999"] {
        assert!(store.user_exists(APP_ID, u).await.unwrap(), "{u}");
    }

    // One broadcast, 2,000 deliveries.
    server.broadcast_text("hello, everyone").await;
    let mut reads: FuturesUnordered<_> =
        sessions.iter_mut().map(|(u, ws, _)| async move { next_text(u, ws).await.map(|f| (u.clone(), f)) }).collect();
    let mut delivered = 0;
    let mut wrong = Vec::new();
    let all = tokio::time::timeout(PATIENCE * 3, async {
        while let Some(result) = reads.next().await {
            match result {
                Ok((_, f)) if f["t"] == "bcast" && f["msg"]["message"] == "hello, everyone" => delivered += 1,
                Ok((u, f)) => wrong.push(format!("{u}: {f}")),
                Err(e) => wrong.push(e),
            }
        }
    })
    .await;
    drop(reads);
    assert!(all.is_ok(), "broadcast reads did not finish; {delivered} delivered");
    assert!(wrong.is_empty(), "{} sessions got something else, e.g. {:?}", wrong.len(), &wrong[..wrong.len().min(5)]);
    assert_eq!(delivered, CLIENTS);

    // Everyone leaves; the hub empties.
    drop(sessions);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.session_count() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "{} sessions never left", server.session_count());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!server.is_online("load-0000").await);
}
