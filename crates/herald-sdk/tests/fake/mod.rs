//! A scripted stand-in for a Herald node, just enough to drive the SDK in tests: each accepted
//! connection is handed to the test, which plays the server's side frame by frame.

#![allow(dead_code)] // each test file uses its own part of it

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_proto::frame::{decode_client, encode_server, ClientFrame, Login, ServerFrame, ZimMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How long a test waits for something that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(5);

pub struct FakeServer {
    pub url: String,
    connections: mpsc::UnboundedReceiver<FakeConn>,
    acceptor: JoinHandle<()>,
}

impl FakeServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let (tx, connections) = mpsc::unbounded_channel();
        let acceptor = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                // Echo the subprotocol as Herald does; the SDK insists on it.
                #[allow(clippy::result_large_err)] // the signature is tungstenite's
                let echo = |request: &Request, mut response: Response| {
                    if let Some(protocol) = request.headers().get("Sec-WebSocket-Protocol") {
                        assert_eq!(protocol, "herald.v1");
                        response.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("herald.v1"));
                    }
                    Ok(response)
                };
                if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, echo).await {
                    let _ = tx.send(FakeConn(ws));
                }
            }
        });
        Self { url, connections, acceptor }
    }

    /// The next connection from a client.
    pub async fn accept(&mut self) -> FakeConn {
        tokio::time::timeout(PATIENCE, self.connections.recv())
            .await
            .expect("no connection in time")
            .expect("acceptor ended")
    }

    /// Whether a client connects within `wait`.
    pub async fn connects_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.connections.recv()).await.is_ok()
    }

    /// Stops listening: later connection attempts are refused.
    pub fn stop(&self) {
        self.acceptor.abort();
    }
}

/// Stops paused time from auto-advancing while held, so a test on paused time moves the clock
/// only with `tokio::time::advance` and socket I/O takes the real time it needs (documented
/// tokio behaviour: a running `spawn_blocking` task inhibits auto-advance).
pub struct ClockHold(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

impl ClockHold {
    pub fn new() -> Self {
        let (release, held) = std::sync::mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let _ = held.recv();
        });
        Self(release)
    }
}

/// A URL where nothing listens.
pub async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("ws://{}/ws", listener.local_addr().unwrap())
}

pub struct FakeConn(WebSocketStream<TcpStream>);

impl FakeConn {
    /// The next frame from the client, skipping control messages.
    pub async fn recv(&mut self) -> ClientFrame {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.0.next())
                .await
                .expect("no frame in time")
                .expect("client closed")
                .expect("socket error");
            match message {
                Message::Text(text) => return decode_client(text.as_bytes()).expect("valid client frame"),
                Message::Close(frame) => panic!("client closed: {frame:?}"),
                _ => {}
            }
        }
    }

    /// The next frame, with no deadline of our own (for tests on paused time).
    pub async fn recv_patiently(&mut self) -> ClientFrame {
        loop {
            match self.0.next().await.expect("client closed").expect("socket error") {
                Message::Text(text) => return decode_client(text.as_bytes()).expect("valid client frame"),
                Message::Close(frame) => panic!("client closed: {frame:?}"),
                _ => {}
            }
        }
    }

    pub async fn send(&mut self, frame: ServerFrame) {
        let text = String::from_utf8(encode_server(&frame)).unwrap();
        self.0.send(Message::text(text)).await.unwrap();
    }

    /// Expects `login` and accepts it with a 30 s heartbeat and a 90 s timeout.
    pub async fn accept_login(&mut self) -> Login {
        self.accept_login_with(30_000, 90_000).await
    }

    pub async fn accept_login_with(&mut self, heartbeat_ms: u64, timeout_ms: u64) -> Login {
        let ClientFrame::Login(login) = self.recv().await else { panic!("expected login") };
        self.send(ServerFrame::LoginOk {
            id: login.id,
            session_id: "42".to_owned(),
            heartbeat_ms,
            timeout_ms,
            token_expire: 2_000_000_000,
            server_time_ms: 1_764_316_800_000,
            recovered: login.since.as_ref().map(|_| true),
        })
        .await;
        login
    }

    /// Expects `login` and refuses it the way Herald does: `error`, then a close.
    pub async fn refuse_login(mut self, code: u32, close_code: u16) {
        let ClientFrame::Login(login) = self.recv().await else { panic!("expected login") };
        self.send(ServerFrame::Error { id: login.id, code, message: "refused".to_owned() }).await;
        self.close(close_code).await;
    }

    pub async fn bcast(&mut self, message_id: &str) {
        self.send(ServerFrame::Bcast { msg: message(message_id) }).await;
    }

    pub async fn ack(&mut self, id: u64) {
        self.send(ServerFrame::Ack { id, token_expire: None }).await;
    }

    /// Closes with `code`, waits for the client's side of the handshake, then drops the TCP
    /// connection as a server does.
    pub async fn close(mut self, code: u16) {
        let frame = CloseFrame { code: CloseCode::from(code), reason: "test".into() };
        let _ = self.0.close(Some(frame)).await;
        let _ = tokio::time::timeout(PATIENCE, async { while let Some(Ok(_)) = self.0.next().await {} }).await;
    }

    /// True if nothing from the client is waiting to be read right now (after letting the
    /// runtime poll its sockets a few times).
    pub async fn nothing_pending(&mut self) -> bool {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        futures_util::FutureExt::now_or_never(self.0.next()).is_none()
    }

    /// Waits until the client goes away, returning its close code if it sent one, then drops
    /// the connection.
    pub async fn closed_by_client(mut self) -> Option<u16> {
        loop {
            match self.0.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    }
}

pub fn message(message_id: &str) -> ZimMessage {
    ZimMessage {
        message_id: message_id.to_owned(),
        sender_user_id: "admin".to_owned(),
        timestamp: 1_764_316_800_123,
        message_type: 1,
        message: format!("hello {message_id}"),
        extended_data: String::new(),
        sub_type: 0,
        is_broadcast_message: true,
        is_server_message: true,
    }
}
