//! RFC 6455 framing at the byte level, with a hand-written client: what tungstenite would never
//! send (unmasked frames, reserved bits, unknown opcodes, stray continuations) closes with 4500,
//! control frames may sit between fragments, and a `login` that arrives in the same TCP write as
//! the upgrade request is not lost.

mod support;

use serde_json::{json, Value};
use std::net::SocketAddr;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn upgrade_request(addr: SocketAddr) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// One client frame: `first` is the first byte's flags (FIN 0x80, RSV 0x70) without the opcode.
fn frame(first: u8, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A complete, masked client frame.
fn fin(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(0x80, opcode, payload, true)
}

struct Wire {
    tcp: TcpStream,
}

impl Wire {
    /// Connects and writes the upgrade request followed by `then` in one write; reads the 101.
    async fn open_with(addr: SocketAddr, then: &[u8]) -> Wire {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut bytes = upgrade_request(addr).into_bytes();
        bytes.extend_from_slice(then);
        tcp.write_all(&bytes).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            let n = tokio::time::timeout(PATIENCE, tcp.read(&mut byte)).await.expect("101 in time").unwrap();
            assert_eq!(n, 1, "the connection ended during the upgrade: {:?}", String::from_utf8_lossy(&head));
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.to_ascii_lowercase().contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
        Wire { tcp }
    }

    async fn open(addr: SocketAddr) -> Wire {
        Wire::open_with(addr, &[]).await
    }

    async fn logged_in(server: &Server, user_id: &str) -> Wire {
        let mut wire = Wire::open(server.addr).await;
        wire.send(&fin(TEXT, login(server, user_id).as_bytes())).await;
        assert_eq!(wire.json().await["t"], "login_ok");
        wire
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    async fn read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0; n];
        match tokio::time::timeout(PATIENCE, self.tcp.read_exact(&mut buf)).await.expect("server answered in time") {
            Ok(_) => Some(buf),
            Err(_) => None,
        }
    }

    /// The next server frame as (opcode, payload), checking it is final and unmasked.
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        let head = self.read_exact(2).await?;
        assert_eq!(head[0] & 0xF0, 0x80, "server frames are final, without reserved bits");
        assert_eq!(head[1] & 0x80, 0, "server frames are unmasked");
        let len = match head[1] & 0x7F {
            126 => u16::from_be_bytes(self.read_exact(2).await?.try_into().unwrap()) as usize,
            127 => u64::from_be_bytes(self.read_exact(8).await?.try_into().unwrap()) as usize,
            n => n as usize,
        };
        let payload = self.read_exact(len).await?;
        Some((head[0] & 0x0F, payload))
    }

    async fn json(&mut self) -> Value {
        let (opcode, payload) = self.next().await.expect("a frame");
        assert_eq!(opcode, TEXT, "{:?}", String::from_utf8_lossy(&payload));
        serde_json::from_slice(&payload).unwrap()
    }

    /// Reads to the close frame and returns its code.
    async fn close_code(&mut self) -> u16 {
        loop {
            match self.next().await {
                Some((CLOSE, payload)) => return u16::from_be_bytes([payload[0], payload[1]]),
                Some(_) => {}
                None => panic!("the connection ended without a close frame"),
            }
        }
    }
}

fn login(server: &Server, user_id: &str) -> String {
    json!({
        "t": "login", "id": 1, "app_id": APP_ID, "user_id": user_id, "token": server.token(user_id, HOUR_S),
        "sdk_version": "2.18.0", "platform": "linux", "device_id": "wire",
    })
    .to_string()
}

#[tokio::test]
async fn a_login_in_the_same_write_as_the_upgrade_request_is_served() {
    let server = Server::unthrottled().await;
    let ping = json!({"t": "ping", "id": 2}).to_string();
    let mut pipelined = fin(TEXT, login(&server, "alice").as_bytes());
    pipelined.extend(fin(TEXT, ping.as_bytes()));
    let mut wire = Wire::open_with(server.addr, &pipelined).await;
    assert_eq!(wire.json().await["t"], "login_ok");
    assert_eq!(wire.json().await, json!({"t": "pong", "id": 2}));
}

#[tokio::test]
async fn websocket_pings_are_answered_with_their_payload() {
    let server = Server::unthrottled().await;
    let mut wire = Wire::logged_in(&server, "alice").await;
    wire.send(&fin(PING, b"are you there")).await;
    assert_eq!(wire.next().await, Some((PONG, b"are you there".to_vec())));
}

#[tokio::test]
async fn control_frames_between_fragments_are_served_and_the_message_completes() {
    let server = Server::unthrottled().await;
    let mut wire = Wire::logged_in(&server, "alice").await;
    let text = json!({"t": "ping", "id": 77}).to_string();
    let (a, b) = text.as_bytes().split_at(6);
    let mut bytes = frame(0x00, TEXT, a, true);
    bytes.extend(fin(PING, b"mid"));
    bytes.extend(frame(0x80, CONTINUATION, b, true));
    wire.send(&bytes).await;
    assert_eq!(wire.next().await, Some((PONG, b"mid".to_vec())));
    assert_eq!(wire.json().await, json!({"t": "pong", "id": 77}));
}

#[tokio::test]
async fn framing_violations_are_closed_with_4500() {
    let server = Server::unthrottled().await;
    let ping = json!({"t": "ping", "id": 1}).to_string();
    let mut interleaved = frame(0x00, TEXT, b"{\"t\":", true);
    interleaved.extend(fin(TEXT, ping.as_bytes()));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked frame", frame(0x80, TEXT, ping.as_bytes(), false)),
        ("reserved bit set", frame(0x80 | 0x40, TEXT, ping.as_bytes(), true)),
        ("reserved opcode", fin(0x3, ping.as_bytes())),
        ("continuation without a message", fin(CONTINUATION, ping.as_bytes())),
        ("new message inside a fragmented one", interleaved),
        ("fragmented ping", frame(0x00, PING, b"x", true)),
        ("ping longer than 125 bytes", fin(PING, &[b'x'; 126])),
        ("close with a one-byte payload", fin(CLOSE, &[3])),
        ("close with a reserved code", fin(CLOSE, &1005u16.to_be_bytes())),
    ];
    for (case, bytes) in cases {
        let mut wire = Wire::logged_in(&server, "alice").await;
        wire.send(&bytes).await;
        assert_eq!(wire.close_code().await, C_BAD_FRAME, "{case}");
    }
    server.wait_presence("alice", false).await;
}

#[tokio::test]
async fn a_client_close_is_answered_with_1000_and_keeps_the_push_binding() {
    let server = Server::unthrottled().await;
    let mut wire = Wire::logged_in(&server, "alice").await;
    let push = json!({"t": "set_push_id", "id": 2, "push_id": "p1", "provider": "fcm"}).to_string();
    wire.send(&fin(TEXT, push.as_bytes())).await;
    assert_eq!(wire.json().await["t"], "ack");
    let mut close = 1001u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"going away");
    wire.send(&fin(CLOSE, &close)).await;
    assert_eq!(wire.close_code().await, C_NORMAL);
    server.wait_presence("alice", false).await;
    assert_eq!(server.push_bindings("alice").await.len(), 1, "a close is not a logout");
}
