//! The open internet (issue 13): a request that trickles is cut off, a body is never read for a
//! request that cannot sign, a session ends with its token, kicked clients read why, one
//! address cannot hold every slot, and a server out of descriptors keeps serving.

mod support;

use herald_sdk::{Client, ConnectionEvent, ConnectionState};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::process::Command;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one HTTP/1.1 answer: the status line, and the body as JSON when it has one.
async fn read_answer(stream: &mut TcpStream) -> (String, Option<Value>) {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= head_end + 4 + length {
                    break;
                }
            }
        }
    });
    read.await.expect("an answer in time");
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok());
    (status, body)
}

/// Whether the server closed the connection (reads EOF or a reset), within the patience.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(PATIENCE, stream.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

/// A signed POST whose head announces a 250 KiB body; the body is not sent.
fn head_of_a_big_post(server: &Server, signed: bool) -> String {
    let query =
        if signed { server.signed("UserRegister").query() } else { "Action=UserRegister&AppId=1234567890".to_string() };
    format!("POST /?{query} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 256000\r\n\r\n")
}

/// Defect 1: a client that trickles its body is cut off at `api.request_timeout_ms` with
/// 100000012, and the connection is closed. Before, it kept the connection and the buffered
/// bytes for as long as it liked.
#[tokio::test]
async fn a_trickled_body_is_cut_off_at_the_request_deadline() {
    let server = Server::start_with(&format!("[api]\nrequest_timeout_ms = 300\n{}", default_app())).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(head_of_a_big_post(&server, true).as_bytes()).await.unwrap();
    stream.write_all(b"{\"UserInfo\":[").await.unwrap();
    let (status, body) = read_answer(&mut stream).await;
    assert!(status.contains("200"), "{status}");
    let body = body.expect("a JSON answer");
    assert_eq!(code(&body), BODY_READ_FAILED, "{body}");
    assert!(body["Message"].as_str().unwrap().contains("api.request_timeout_ms"), "{body}");
    assert!(closed_by_server(&mut stream).await, "the connection is closed after a late body");
}

/// A request that cannot sign gets its answer at once, without the server reading (or waiting
/// for) its body.
#[tokio::test]
async fn an_unsigned_request_is_answered_before_its_body_is_read() {
    let server = Server::start_with(&format!("[api]\nrequest_timeout_ms = 60000\n{}", default_app())).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(head_of_a_big_post(&server, false).as_bytes()).await.unwrap();
    // The deadline is a minute; the answer comes long before any of the body does.
    let (status, body) = read_answer(&mut stream).await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(code(&body.expect("JSON")), NONCE_EMPTY);
}

/// Defect 2: a session whose token runs out without `renew_token` is told (6000106) and closed
/// with 4502. Before, it kept getting broadcasts and pongs.
#[tokio::test(flavor = "current_thread")]
async fn a_session_ends_when_its_token_runs_out() {
    let server = Server::start().await;
    let mut raw = WsClient::connect(&server).await;
    raw.send_login(APP_ID, "alice", &server.token("alice", 40)).await;
    assert_eq!(raw.frame().await["t"], "login_ok");
    tokio::time::pause();
    server.advance_ms(41 * SECOND_MS);
    tokio::time::advance(Duration::from_secs(41)).await;
    tokio::time::resume();
    let closed = raw.closed().await;
    closed.assert(C_TOKEN_EXPIRED, E_TOKEN_EXPIRED);
}

/// The SDK reports the end of its token as ZIM's TokenExpired and does not reconnect with it.
#[tokio::test]
async fn the_sdk_reports_a_token_that_ran_out_and_stays_away() {
    let server = Server::builder().wall_clock().start().await;
    let mut config = sdk_config(&server, "alice");
    config.token = server.token("alice", 2);
    let (_client, mut events) = Client::login(config).await.expect("login with a 2 s token");
    let (event, extended) = state_change(&mut events, ConnectionState::Disconnected).await;
    assert_eq!(event, ConnectionEvent::TokenExpired, "{extended}");
    assert!(extended.contains("6000106") || extended.contains("4502"), "{extended}");
    assert_eq!(next_event_or_end(&mut events).await, None, "no reconnect with the dead token");
}

async fn next_event_or_end(events: &mut herald_sdk::Events) -> Option<herald_sdk::Event> {
    tokio::time::timeout(PATIENCE, events.next()).await.expect("the events end")
}

/// Defect 3: a client closed for flooding reads its close frame (4005) after the pongs it is
/// owed. Before, the socket was closed with its input unread, which reset the connection and
/// destroyed the close frame on its way.
#[tokio::test]
async fn a_flooding_client_reads_why_it_was_closed() {
    let server = Server::start().await;
    let (mut raw, _) = WsClient::logged_in(&server, "flood").await;
    // Far past the burst (2 × 20 frames), in one go, without reading.
    for _ in 0..300 {
        let id = raw.id();
        raw.send_json(json!({"t": "ping", "id": id})).await;
    }
    let closed = raw.closed().await;
    assert_eq!(closed.code, C_FLOOD, "pongs, then the close frame: {:?}", closed.frames.len());
    assert!(closed.frames.iter().all(|f| f["t"] == "pong"), "{:?}", closed.frames);
}

/// A slow consumer learns its close code (4002) when its socket takes bytes again: the backlog
/// it never read is dropped, the close frame is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_reads_its_close_code_once_it_reads_again() {
    let server = Server::builder().wall_clock().unthrottled().gateway("outbox_frames = 2").start().await;
    let addr = server.addr;
    let stream = tiny_buffer_stream(addr).await;
    let (ws, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .expect("upgrade");
    let token = server.token_with("slow", HOUR_S, herald_proto::token04::Mode::Gcm);
    let mut slow = WsClient::log_in_on(ws, "slow", &token, "slow-dev", SDK_OK).await.unwrap_or_else(|e| panic!("{e}"));
    let big = "x".repeat(30_000);
    let mut sent = 0;
    while server.online("slow").await {
        assert!(sent < 200, "never closed as a slow consumer");
        server.broadcast(json!({"FromUserId": SENDER, "MessageType": 1, "MessageBody": {"Message": big}})).await;
        sent += 1;
        server.wait_broadcasts_done(sent).await;
    }
    // Reading again: whatever frames got through, then the close frame with the code.
    let closed = slow.closed().await;
    assert_eq!(closed.code, C_SLOW_CONSUMER, "after {} broadcast frames", closed.frames.len());
}

/// Per-address caps on connections that have not authenticated: a fourth HTTP connection from
/// one address is closed at once while another address is served; a WebSocket past the
/// pending cap is refused with 429 until one of the pending ones logs in.
#[tokio::test]
async fn one_address_cannot_hold_every_unauthenticated_slot() {
    let tail = format!("[api]\nmax_connections_per_ip = 3\n{}", default_app());
    let server = Server::builder().gateway("max_pending_per_ip = 2").config(&tail).start().await;
    let idle: Vec<TcpStream> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(TcpStream::connect(server.addr).await.unwrap());
        }
        v
    };
    let mut fourth = TcpStream::connect(server.addr).await.unwrap();
    assert!(closed_by_server(&mut fourth).await, "a fourth unauthenticated connection from 127.0.0.1 is closed");
    // Another address is not held back by 127.0.0.1's connections.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = other.connect(server.addr).await.unwrap();
    other.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    assert!(read_answer(&mut other).await.0.contains("200"));
    drop(idle);

    // WebSockets: two may wait unauthenticated; the third upgrade is refused until one logs in.
    let a = WsClient::connect(&server).await;
    let _b = WsClient::connect(&server).await;
    let url = format!("ws://{}/ws", server.addr);
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("a third pending WebSocket from one address: {other:?}"),
    }
    let (a, ok) = a
        .with_login(json!({
            "t": "login", "id": 1, "app_id": APP_ID, "user_id": "alice", "token": server.token("alice", HOUR_S),
            "sdk_version": SDK_OK, "platform": "test", "device_id": "a",
        }))
        .await;
    assert_eq!(ok["t"], "login_ok", "{ok}");
    let _c = WsClient::connect(&server).await; // a logged-in session frees its pending slot
    drop(a);
}

/// Near its descriptor limit, the server keeps serving /healthz and WebSocket logins: it sheds
/// connections that never authenticated instead of spinning on accept, and says so once in a
/// while rather than on every failed accept.
#[test]
fn out_of_descriptors_the_server_sheds_the_unauthenticated_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin.listen = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\nlog = \"info\"\n{}",
            default_app()
        ),
    )
    .unwrap();
    let mut shell = Command::new("sh");
    shell.args([
        "-c",
        &format!("ulimit -n 64 && exec {} serve --config {}", env!("CARGO_BIN_EXE_herald"), config.display()),
    ]);
    shell.env("NO_COLOR", "1");
    let process = HeraldProcess::serve_command(shell);
    let addr = process.addr.clone();

    // Idle connections that never send a byte: well past what 64 descriptors allow.
    let idle: Vec<StdTcpStream> = (0..120).filter_map(|_| StdTcpStream::connect(&addr).ok()).collect();
    assert!(idle.len() > 60, "the kernel queues connections past the limit");

    // Still served: a health check, and a WebSocket login.
    let healthz = (0..50).find_map(|_| {
        let mut s = StdTcpStream::connect(&addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        answer.contains("200 OK").then_some(answer)
    });
    assert!(healthz.is_some(), "/healthz answered while the process was out of descriptors");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let logged_in = rt.block_on(async {
        let token = herald_proto::token04::generate(
            APP_ID,
            "alice",
            SECRET,
            HOUR_S,
            herald_proto::token04::Mode::Gcm,
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64,
        )
        .unwrap();
        for _ in 0..20 {
            if let Ok(c) = WsClient::try_login(addr.parse().unwrap(), "alice", &token, "alice-dev", SDK_OK).await {
                return Some(c);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    });
    assert!(logged_in.is_some(), "a WebSocket login got through");
    let warnings: Vec<String> =
        process.lines_so_far().into_iter().filter(|l| l.contains("out of file descriptors")).collect();
    assert!(!warnings.is_empty(), "it says what it does");
    assert!(warnings.len() <= 3, "one warning every 10 s, not one per accept: {}", warnings.len());
    drop(idle);
}

/// Files: a database others can read gets a warning at start.
#[test]
fn a_database_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("herald.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin.listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nlog = \"info\"\n[store]\nurl = \"sqlite://{}\"\n{}",
            dir.path().display(),
            db.display(),
            default_app()
        ),
    )
    .unwrap();
    let mut process = HeraldProcess::spawn(herald(&["serve", "--config", config.to_str().unwrap()]));
    let lines = process.lines_until_serving();
    assert!(lines.iter().any(|l| l.contains("readable by other users") && l.contains("herald.db")), "{lines:?}");
}
