//! A broadcast racing with logins and logouts loses nobody who was online throughout: 200 stable
//! clients get all 20 broadcasts, exactly once each, while 200 other users log in and out (or
//! just drop their connection) in a loop on other tasks. Afterwards the hub holds exactly the
//! stable sessions: no session leaked by the churn.

mod support;

use futures_util::stream::{FuturesUnordered, StreamExt};
use herald_proto::token04::Mode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::*;
use tokio_util::sync::CancellationToken;

const STABLE: usize = 200;
const CHURNING: usize = 200;
const BROADCASTS: usize = 20;

/// Counters shared by the churning tasks.
#[derive(Default)]
struct Churn {
    rounds: AtomicUsize,
    /// Logins that got a `bcast` before their `login_ok` (see the note in the test).
    early_broadcasts: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

/// Logs `user` in and out until `stop`: odd rounds end with `logout`, even rounds by dropping
/// the connection. Counts finished rounds; records failures.
async fn churn(addr: std::net::SocketAddr, user: String, token: String, stats: Arc<Churn>, stop: CancellationToken) {
    let mut round = 0usize;
    while !stop.is_cancelled() {
        match WsClient::try_login_counting_early(addr, &user, &token, &format!("{user}-dev"), SDK_OK).await {
            Ok((c, early)) => {
                if early > 0 {
                    stats.early_broadcasts.fetch_add(1, Ordering::Relaxed);
                }
                if round % 2 == 1 {
                    c.logout().await;
                }
            }
            Err(e) => {
                stats.errors.lock().unwrap().push(e);
                return;
            }
        }
        round += 1;
        stats.rounds.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broadcast_racing_with_logins_and_logouts_loses_nobody_online_throughout() {
    let server = Server::builder().wall_clock().unthrottled().start().await;
    let addr = server.addr;

    let mut stable: Vec<WsClient> = Vec::with_capacity(STABLE);
    let mut logins: FuturesUnordered<_> = (0..STABLE)
        .map(|i| {
            let user = format!("stable-{i:03}");
            let token = server.token_with(&user, HOUR_S, Mode::Gcm);
            async move { WsClient::try_login(addr, &user, &token, &format!("{user}-dev"), SDK_OK).await }
        })
        .collect();
    while let Some(r) = logins.next().await {
        stable.push(r.unwrap_or_else(|e| panic!("{e}")));
    }
    drop(logins);
    server.wait_sessions(STABLE).await;

    // The churn: 200 users logging in and out on their own tasks.
    let stats = Arc::new(Churn::default());
    let stop = CancellationToken::new();
    let churners: Vec<_> = (0..CHURNING)
        .map(|i| {
            let user = format!("churn-{i:03}");
            let token = server.token_with(&user, HOUR_S, Mode::Gcm);
            support::spawn(churn(addr, user, token, stats.clone(), stop.clone()))
        })
        .collect();
    // Broadcast only once the churn is in full swing.
    let s = stats.clone();
    wait_for("the churn to get going", || s.rounds.load(Ordering::Relaxed) >= CHURNING).await;
    let rounds_before = stats.rounds.load(Ordering::Relaxed);

    let texts: Vec<String> = (0..BROADCASTS).map(|i| format!("b{i:02}")).collect();
    for t in &texts {
        server.broadcast_text(t).await;
    }
    server.wait_broadcasts_done(BROADCASTS as u64).await;
    let rounds_during = stats.rounds.load(Ordering::Relaxed) - rounds_before;

    stop.cancel();
    for c in churners {
        c.await.expect("churn task");
    }
    let errs = stats.errors.lock().unwrap().clone();
    assert!(errs.is_empty(), "{} churn logins failed, e.g. {:?}", errs.len(), &errs[..errs.len().min(5)]);
    eprintln!("{rounds_during} login/logout rounds finished while the {BROADCASTS} broadcasts were sent");
    assert!(rounds_during > 0, "the churn ran while broadcasting");
    // `login_ok` is written under the shard lock before the session becomes visible to the
    // fan-out, so no churning login may see a broadcast ahead of its login answer.
    let early = stats.early_broadcasts.load(Ordering::Relaxed);
    assert_eq!(early, 0, "{early} login(s) got a broadcast before their login_ok");

    // Every stable client got every broadcast, exactly once.
    let mut ids_by_text: HashMap<String, u64> = HashMap::new();
    for c in &mut stable {
        let got = c.broadcasts().await;
        let mut texts_got: Vec<&str> = got.iter().map(|m| m["message"].as_str().expect("text")).collect();
        texts_got.sort_unstable();
        assert_eq!(texts_got, texts, "{} did not get every broadcast exactly once", c.user_id);
        for m in &got {
            let id = message_id(m);
            let known = *ids_by_text.entry(m["message"].as_str().unwrap().to_string()).or_insert(id);
            assert_eq!(known, id, "{}: one broadcast, one messageID", c.user_id);
        }
    }
    assert_eq!(ids_by_text.len(), BROADCASTS);

    // The churn left nothing behind: only the stable sessions remain, all online.
    server.wait_sessions(STABLE).await;
    let churn_users: Vec<String> = (0..CHURNING).map(|i| format!("churn-{i:03}")).collect();
    // A session leaves the hub just before its user's presence is updated: poll, bounded.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let still = server.online_among(&churn_users).await;
        if still.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "churned users still online: {still:?}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let stable_users: Vec<String> = stable.iter().map(|c| c.user_id.clone()).collect();
    assert_eq!(server.online_among(&stable_users).await.len(), STABLE, "every stable user is online");
}
