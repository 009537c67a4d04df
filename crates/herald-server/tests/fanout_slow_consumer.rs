//! One client that never reads must not cost anybody else a message: it is closed as a slow
//! consumer once its outbox is full, while a thousand normal clients get every broadcast, in
//! order, and stay connected.
//!
//! The stalled client is a TCP socket with the smallest receive buffer the kernel allows; it
//! completes the upgrade and the login, then is never polled again. Broadcasts of 30 KB fill its
//! kernel buffers and then its outbox (`outbox_frames = 4`). The normal clients are paced: each
//! broadcast is sent only once every normal client has read the previous one, so only the
//! stalled client ever falls behind. No timing assertions: waits are bounded only so that a
//! broken server fails instead of hanging.

mod support;

use futures_util::stream::{FuturesUnordered, StreamExt};
use herald_proto::token04::Mode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;
use tokio_util::sync::CancellationToken;

const NORMAL: usize = 1_000;
/// Payload of each broadcast; the app allows 32 KB.
const PAYLOAD: usize = 30_000;
/// Broadcasts allowed for the stalled client to be closed: far more than its buffers hold.
const MAX_BROADCASTS: usize = 100;
/// Broadcasts sent after the stalled client is gone, to show the others are still served.
const AFTER: usize = 3;

/// The text of broadcast `i`: its number, then padding up to [`PAYLOAD`] bytes.
fn payload(i: usize) -> String {
    let head = format!("m{i:04}|");
    let mut s = String::with_capacity(PAYLOAD);
    s.push_str(&head);
    s.extend(std::iter::repeat_n('x', PAYLOAD - head.len()));
    s
}

/// What one normal client saw: the messageIDs in arrival order.
struct Seen {
    user: String,
    ids: Vec<u64>,
}

/// Reads broadcasts until told to stop. Each must be the next one in order with the full
/// payload; any other frame, a gap or a close is recorded in `errors`.
async fn read_broadcasts(
    mut c: WsClient,
    received: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
) -> (WsClient, Seen) {
    let mut ids = Vec::new();
    let fail = |e: String| errors.lock().unwrap().push(e);
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => break,
            msg = c.ws.next() => msg,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => {
                fail(format!("{}: expected a broadcast, got {other:?}", c.user_id));
                break;
            }
        };
        let f: serde_json::Value = match serde_json::from_str(text.as_str()) {
            Ok(f) => f,
            Err(e) => {
                fail(format!("{}: frame is not JSON: {e}", c.user_id));
                break;
            }
        };
        let m = &f["msg"];
        let expected = payload(ids.len());
        if f["t"] != "bcast" || m["message"].as_str() != Some(expected.as_str()) {
            let shown: String = text.as_str().chars().take(200).collect();
            fail(format!("{}: expected broadcast {} next, got {shown}…", c.user_id, ids.len()));
            break;
        }
        ids.push(message_id(m));
        received.fetch_add(1, Ordering::AcqRel);
    }
    let user = c.user_id.clone();
    (c, Seen { user, ids })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_client_is_closed_while_a_thousand_others_get_every_message_in_order() {
    let server = Server::builder().wall_clock().unthrottled().gateway("outbox_frames = 4").start().await;
    let addr = server.addr;

    // The stalled client first: upgrade and login done by hand on a tiny receive buffer.
    let stream = tiny_buffer_stream(addr).await;
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), MaybeTlsStream::Plain(stream))
        .await
        .expect("upgrade");
    let stalled =
        WsClient::log_in_on(ws, "stalled", &server.token_with("stalled", HOUR_S, Mode::Gcm), "stalled-dev", SDK_OK)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(server.online("stalled").await);

    // A thousand normal clients, logging in 100 at a time.
    let mut normal = Vec::with_capacity(NORMAL);
    let mut failures = Vec::new();
    for batch in (0..NORMAL).collect::<Vec<_>>().chunks(100) {
        let mut logins: FuturesUnordered<_> = batch
            .iter()
            .map(|i| {
                let user = format!("n{i:04}");
                let token = server.token_with(&user, HOUR_S, Mode::Gcm);
                async move { WsClient::try_login(addr, &user, &token, &format!("{user}-dev"), SDK_OK).await }
            })
            .collect();
        while let Some(r) = logins.next().await {
            match r {
                Ok(c) => normal.push(c),
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(failures.is_empty(), "{} logins failed, e.g. {:?}", failures.len(), &failures[..failures.len().min(5)]);
    server.wait_sessions(NORMAL + 1).await;

    let received = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = CancellationToken::new();
    let readers: Vec<_> = normal
        .into_iter()
        .map(|c| support::spawn(read_broadcasts(c, received.clone(), errors.clone(), stop.clone())))
        .collect();

    // Broadcast until the stalled client is gone, then a few more.
    let mut sent = 0;
    let mut after = None;
    while after.is_none_or(|closed_at| sent < closed_at + AFTER) {
        assert!(
            sent < MAX_BROADCASTS,
            "the stalled client was never closed: {sent} broadcasts of {PAYLOAD} bytes, outbox_frames = 4"
        );
        server.broadcast(text_body(&payload(sent), 0)).await;
        sent += 1;
        server.wait_broadcasts_done(sent as u64).await;
        // Pacing: every normal client has read this one before the next is sent.
        let (r, e) = (received.clone(), errors.clone());
        wait_for_with(
            &format!("broadcast {} read by all {NORMAL} normal clients", sent - 1),
            || r.load(Ordering::Acquire) == NORMAL * sent || !e.lock().unwrap().is_empty(),
            || format!("{} reads of {}", r.load(Ordering::Acquire), NORMAL * sent),
        )
        .await;
        let errs = errors.lock().unwrap().clone();
        assert!(
            errs.is_empty(),
            "{} normal clients failed after {sent} broadcasts, e.g. {:?}",
            errs.len(),
            &errs[..errs.len().min(5)]
        );
        if after.is_none() && !server.online("stalled").await {
            after = Some(sent);
        }
    }
    let closed_after = after.expect("loop ends only once it is closed");
    eprintln!("the stalled client was closed after {closed_after} broadcasts; {sent} sent in all");

    // The stalled client is gone from the hub; every normal one is still there.
    assert!(!server.online("stalled").await);
    server.wait_sessions(NORMAL).await;
    wait_for_with(
        "the stalled client's connection to end",
        || server.connections() == NORMAL,
        || format!("{} connections", server.connections()),
    )
    .await;

    stop.cancel();
    let mut seen = Vec::with_capacity(NORMAL);
    let mut still_open = Vec::with_capacity(NORMAL);
    for r in readers {
        let (c, s) = r.await.expect("reader task");
        seen.push(s);
        still_open.push(c);
    }
    let reference = seen[0].ids.clone();
    assert_eq!(reference.len(), sent, "{}: one id per broadcast", seen[0].user);
    assert!(reference.windows(2).all(|w| w[0] < w[1]), "messageIDs rise in send order: {reference:?}");
    for s in &seen {
        assert_eq!(s.ids, reference, "{} got a different sequence of messages", s.user);
    }
    let normal_users: Vec<String> = still_open.iter().map(|c| c.user_id.clone()).collect();
    assert_eq!(server.online_among(&normal_users).await.len(), NORMAL, "every normal client is still online");

    // What the stalled client got, now that it reads: broadcasts in order from the first, never
    // all of them, then the end of the connection (a 4002 close frame if the server could still
    // send one; the server abandons the backlog of a slow consumer, so it may just hang up).
    let mut stalled = stalled;
    let mut got = 0;
    let end = loop {
        let msg = tokio::time::timeout(PATIENCE, stalled.ws.next())
            .await
            .unwrap_or_else(|_| panic!("the stalled client's connection never ended ({got} broadcasts read)"));
        match msg {
            Some(Ok(Message::Text(t))) => {
                let f: serde_json::Value = serde_json::from_str(t.as_str()).expect("JSON frame");
                assert_eq!(f["t"], "bcast", "stalled client: unexpected frame");
                assert_eq!(
                    f["msg"]["message"].as_str(),
                    Some(payload(got).as_str()),
                    "stalled client: broadcast {got}"
                );
                assert_eq!(message_id(&f["msg"]), reference[got], "stalled client: broadcast {got}'s id");
                got += 1;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(close))) => {
                let code = close.as_ref().map(|c| u16::from(c.code));
                assert_eq!(code, Some(4002), "a slow consumer is closed with 4002: {close:?}");
                break format!("close frame {close:?}");
            }
            Some(Ok(other)) => panic!("stalled client: unexpected message {other:?}"),
            Some(Err(e)) => break format!("error {e}"),
            None => break "end of stream".to_string(),
        }
    };
    eprintln!("the stalled client read {got} broadcasts, then: {end}");
    assert!(got < closed_after, "the stalled client cannot have got every broadcast before it was closed");
    drop(still_open);
}

/// A client that is slow but keeps reading is not a socket that "stopped draining"
/// (`gateway.write_stall_timeout_ms`: "How long a socket may refuse to drain a non-empty outbox
/// before it is closed"), and its outbox never gets near `outbox_frames`/`outbox_bytes`: it must
/// get every broadcast, however long its backlog takes to drain.
///
/// 100 broadcasts of 30 KB (3 MB) are sent at once to a reader with a tiny receive buffer that
/// pauses 50 ms after each message, far less than the 1.5 s stall timeout. The kernel holds at
/// most about a megabyte of that, so the outbox stays non-empty for seconds while it drains all
/// along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_that_keeps_draining_is_not_closed_as_stalled() {
    const COUNT: usize = 100;
    let server = Server::builder()
        .wall_clock()
        .unthrottled()
        .gateway("outbox_frames = 10000\noutbox_bytes = 67108864\nwrite_stall_timeout_ms = 1500")
        .start()
        .await;
    let addr = server.addr;
    let stream = tiny_buffer_stream(addr).await;
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), MaybeTlsStream::Plain(stream))
        .await
        .expect("upgrade");
    let mut slow = WsClient::log_in_on(ws, "slow", &server.token_with("slow", HOUR_S, Mode::Gcm), "slow-dev", SDK_OK)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut fast = WsClient::user(&server, "fast").await;
    server.wait_sessions(2).await;

    let reader = support::spawn(async move {
        let mut got = Vec::new();
        while got.len() < COUNT {
            match slow.try_frame().await {
                Ok(f) if f["t"] == "bcast" => got.push(f["msg"]["message"].as_str().unwrap_or_default().to_string()),
                Ok(f) => panic!("slow reader: unexpected frame {f}"),
                Err(e) => return (slow, got, Some(e)),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        (slow, got, None)
    });
    let bodies: Vec<_> = (0..COUNT).map(|i| text_body(&payload(i), 0)).collect();
    futures_util::future::join_all(bodies.into_iter().map(|b| server.broadcast(b))).await;
    server.wait_broadcasts_done(COUNT as u64).await;
    let fast_got = fast.broadcasts().await;
    assert_eq!(fast_got.len(), COUNT, "the fast reader gets every broadcast");

    let (_slow, mut got, ended) = reader.await.expect("slow reader task");
    let cut_off_after = got.len();
    assert!(
        ended.is_none(),
        "the slow but steadily draining reader was cut off after {cut_off_after} of {COUNT} broadcasts \
         ({}); it was online until then: {}",
        ended.unwrap_or_default(),
        server.online("slow").await,
    );
    got.sort_unstable();
    let mut expected: Vec<String> = (0..COUNT).map(payload).collect();
    expected.sort_unstable();
    assert!(got == expected, "the slow reader gets every broadcast exactly once");
    assert!(server.online("slow").await, "the slow reader is still online");
}
