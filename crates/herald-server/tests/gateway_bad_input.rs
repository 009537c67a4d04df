//! What the gateway does with clients that break the protocol: each case ends with the close
//! code docs/protocol.md gives it and, where the protocol says so, an `error` frame first.

mod support;

use futures_util::SinkExt;
use serde_json::json;
use support::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn garbage_text_is_closed_with_4500_after_error_6000001() {
    let server = Server::unthrottled().await;
    for garbage in ["not json at all", "{\"t\":", "[]", "42", "{}"] {
        // Before login…
        let mut raw = WsClient::connect(&server).await;
        raw.send_text(garbage).await;
        raw.closed().await.assert(C_BAD_FRAME, E_BAD_FRAME);
        // …and after.
        let (mut raw, _) = WsClient::logged_in(&server, "alice").await;
        raw.send_text(garbage).await;
        let closed = raw.closed().await;
        closed.assert(C_BAD_FRAME, E_BAD_FRAME);
        assert_eq!(closed.frames[0]["id"], 0, "an error that answers no request has id 0: {closed:?}");
    }
    server.wait_presence("alice", false).await;
}

#[tokio::test]
async fn unknown_frame_types_and_wrong_field_types_are_malformed() {
    let server = Server::unthrottled().await;
    for frame in [
        json!({"t": "dance", "id": 1}),
        json!({"t": "ping", "id": "one"}),
        json!({"t": "ping"}),
        json!({"t": "set_push_id", "id": 2, "push_id": 5, "provider": "fcm"}),
        json!({"id": 3}),
    ] {
        let (mut raw, _) = WsClient::logged_in(&server, "alice").await;
        raw.send_json(frame.clone()).await;
        let closed = raw.closed().await;
        assert_eq!(closed.code, C_BAD_FRAME, "{frame}: {closed:?}");
        assert_eq!(closed.error_code(), E_BAD_FRAME, "{frame}: {closed:?}");
    }
}

#[tokio::test]
async fn a_binary_message_is_closed_with_4500() {
    let server = Server::unthrottled().await;
    let (mut raw, _) = WsClient::logged_in(&server, "alice").await;
    raw.send_binary(br#"{"t":"ping","id":1}"#.to_vec()).await;
    raw.closed().await.assert(C_BAD_FRAME, E_BAD_FRAME);

    let mut raw = WsClient::connect(&server).await;
    raw.send_binary(vec![0, 1, 2, 3]).await;
    assert_eq!(raw.closed().await.code, C_BAD_FRAME, "before login too");
}

#[tokio::test]
async fn a_text_message_that_is_not_utf8_is_closed_with_4500() {
    let server = Server::unthrottled().await;
    let (mut raw, _) = WsClient::logged_in(&server, "alice").await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    raw.ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(raw.closed().await.code, C_BAD_FRAME);
}

/// A ping frame padded with an ignored key to exactly `len` bytes of JSON.
fn padded_ping(id: u64, len: usize) -> String {
    let bare = json!({"t": "ping", "id": id, "pad": ""}).to_string();
    let text = json!({"t": "ping", "id": id, "pad": "x".repeat(len - bare.len())}).to_string();
    assert_eq!(text.len(), len);
    text
}

#[tokio::test]
async fn messages_above_max_client_frame_bytes_are_closed_with_4505() {
    let server = Server::unthrottled_with("max_client_frame_bytes = 1024").await;
    let (mut raw, _) = WsClient::logged_in(&server, "alice").await;
    // At the cap: accepted.
    raw.send_text(padded_ping(5, 1024)).await;
    assert_eq!(raw.frame().await, json!({"t": "pong", "id": 5}));
    // One byte over: closed.
    raw.send_text(padded_ping(6, 1025)).await;
    let closed = raw.closed().await;
    assert_eq!(closed.code, C_TOO_LARGE, "{closed:?}");
    assert!(closed.frames.is_empty(), "{closed:?}");
    server.wait_presence("alice", false).await;

    // Before login as well, whatever the content.
    let mut raw = WsClient::connect(&server).await;
    raw.send_text("x".repeat(64 * 1024)).await;
    assert_eq!(raw.closed().await.code, C_TOO_LARGE);
}

#[tokio::test]
async fn fragmented_messages_are_reassembled_up_to_the_cap() {
    let server = Server::unthrottled_with("max_client_frame_bytes = 1024").await;
    // A fragmented login works.
    let mut raw = WsClient::connect(&server).await;
    let login = raw.login_frame(APP_ID, "alice", &server.token("alice", HOUR_S)).to_string();
    raw.send_fragmented(&login, 50).await;
    assert_eq!(raw.frame().await["t"], "login_ok");
    raw.send_fragmented(&padded_ping(9, 1024), 300).await;
    assert_eq!(raw.frame().await, json!({"t": "pong", "id": 9}));
    // Fragments that are each small but add up past the cap do not.
    raw.send_fragmented(&padded_ping(10, 1100), 300).await;
    assert_eq!(raw.closed().await.code, C_TOO_LARGE);
}

#[tokio::test]
async fn frames_before_login_are_closed_with_4503() {
    let server = Server::unthrottled().await;
    for frame in [
        json!({"t": "ping", "id": 1}),
        json!({"t": "set_push_id", "id": 2, "push_id": "p", "provider": "fcm"}),
        json!({"t": "renew_token", "id": 3, "token": server.token("alice", HOUR_S)}),
        json!({"t": "logout", "id": 4}),
    ] {
        let mut raw = WsClient::connect(&server).await;
        raw.send_json(frame.clone()).await;
        let closed = raw.closed().await;
        assert_eq!(closed.code, C_NOT_LOGGED_IN, "{frame}: {closed:?}");
        assert_eq!(closed.error_code(), E_NOT_LOGGED_IN, "{frame}: {closed:?}");
        assert_eq!(closed.frames[0]["id"], frame["id"], "the error answers the request: {closed:?}");
    }
    assert_eq!(server.push_bindings("alice").await, vec![]);
}

#[tokio::test]
async fn a_flood_above_client_frames_per_second_is_closed_with_4005() {
    // 5 frames per second, bursts of 10.
    let server = Server::unthrottled_with("client_frames_per_second = 5").await;
    let (mut raw, _) = WsClient::logged_in(&server, "alice").await;
    for id in 100..140 {
        raw.ws.feed(Message::text(json!({"t": "ping", "id": id}).to_string())).await.unwrap();
    }
    raw.ws.flush().await.unwrap();
    let closed = raw.closed().await;
    assert_eq!(closed.code, C_FLOOD, "{closed:?}");
    let pongs = closed.frames.iter().filter(|f| f["t"] == "pong").count();
    assert!(pongs < 40, "the flood was cut short, not served: {pongs} pongs");
    assert!(closed.frames.iter().all(|f| f["t"] == "pong"), "{closed:?}");
    server.wait_presence("alice", false).await;
}

#[tokio::test]
async fn a_burst_within_the_allowance_is_served() {
    let server = Server::unthrottled_with("client_frames_per_second = 5").await;
    let (mut raw, _) = WsClient::logged_in(&server, "alice").await;
    // The login took one of the 10; eight more fit.
    for id in 0..8 {
        raw.ws.feed(Message::text(json!({"t": "ping", "id": id}).to_string())).await.unwrap();
    }
    raw.ws.flush().await.unwrap();
    for id in 0..8 {
        assert_eq!(raw.frame().await, json!({"t": "pong", "id": id}));
    }
}
