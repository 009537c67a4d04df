//! What a broadcast looks like when it arrives: media messages (types 11–14, whose `Message` is a
//! JSON object string) and custom messages (200 with a `SubMsgType`) come through intact, with
//! every ZIMMessage field of docs/protocol.md, on a raw socket and through the SDK.

mod support;

use herald_proto::token04::Mode;
use herald_sdk::{Client, ClientConfig, ZimMessage};
use serde_json::{json, Value};
use std::collections::HashSet;
use support::*;

/// A broadcast to send and what its ZIMMessage must say.
struct Case {
    message_type: u32,
    sub_type: Option<u32>,
    message: String,
    extended_data: String,
}

fn cases() -> Vec<Case> {
    // Media bodies as an app would send them. The spacing, key order, escapes and non-ASCII text
    // are deliberate: the server must pass the string on as received, never re-serialise it.
    let media = |kind: &str, extra: &str| {
        format!(
            "{{\"Uid\":\"u1\",\"Origin\":{{\"Url\":\"https://x/y.{kind}\",\"Width\":10,\"Height\":20}},\
             \"FileName\":\"y.{kind}\"{extra}}}"
        )
    };
    vec![
        Case {
            message_type: 11,
            sub_type: None,
            message: media("png", ""),
            extended_data: "image extended data".into(),
        },
        Case {
            message_type: 12,
            sub_type: None,
            message: media(
                "pdf",
                ", \"FileSize\": 1048576,\n \"Note\":\"r\u{e9}sum\u{e9} \\\"quoted\\\" \\/ \\u00e9\"",
            ),
            extended_data: String::new(),
        },
        Case {
            message_type: 13,
            sub_type: None,
            message: media("m4a", ",\"Duration\":12.50,\"Zero\":0.0,\"Big\":1e3"),
            extended_data: "{\"k\":\"v\"}".into(),
        },
        Case {
            message_type: 14,
            sub_type: None,
            message: media("mp4", ",\"Cover\":{\"Url\":\"https://x/c.jpg\"},\"Empty\":{},\"List\":[1, 2 ,3]"),
            extended_data: "\u{1f600} emoji".into(),
        },
        Case {
            message_type: 200,
            sub_type: Some(7),
            message: "custom payload: {not json} \u{4f60}\u{597d} \\ \" \t tab".into(),
            extended_data: "custom-ext".into(),
        },
        Case { message_type: 1, sub_type: None, message: "plain text".into(), extended_data: String::new() },
    ]
}

fn body(c: &Case) -> Value {
    let mut b = json!({
        "FromUserId": SENDER,
        "MessageType": c.message_type,
        "MessageBody": {"Message": c.message, "ExtendedData": c.extended_data},
        "PushType": 0,
    });
    if let Some(s) = c.sub_type {
        b["SubMsgType"] = json!(s);
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_and_custom_messages_arrive_intact_with_every_zim_message_field() {
    let server = Server::builder().wall_clock().unthrottled().start().await;
    let mut raw = WsClient::user(&server, "viewer").await;
    let sdk_config =
        ClientConfig::new([server.url()], APP_ID, "sdk-viewer", server.token_with("sdk-viewer", HOUR_S, Mode::Gcm));
    let (_sdk, mut sdk_events) = Client::login(sdk_config).await.expect("the SDK logs in");
    server.wait_sessions(2).await;

    let cases = cases();
    let mut ids = HashSet::new();
    let mut raw_messages = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let before_ms = server.now_ms();
        server.broadcast(body(c)).await;
        let after_ms = server.now_ms();
        server.wait_broadcasts_done(i as u64 + 1).await;
        let got = raw.broadcasts().await;
        assert_eq!(got.len(), 1, "type {}: exactly one broadcast: {got:?}", c.message_type);
        let m = &got[0];
        let what = format!("type {} message {m}", c.message_type);

        let keys: HashSet<&str> = m.as_object().expect("msg is an object").keys().map(String::as_str).collect();
        assert_eq!(keys, ZIM_MESSAGE_KEYS.into_iter().collect::<HashSet<_>>(), "{what}");
        assert!(ids.insert(message_id(m)), "messageID repeated: {what}");
        assert_eq!(m["senderUserID"], SENDER, "{what}");
        let ts = m["timestamp"].as_i64().unwrap_or_else(|| panic!("timestamp is not an integer: {what}"));
        // The server's accept time, in milliseconds, by the same wall clock as this test's.
        assert!(
            (before_ms - 1_000..=after_ms + 1_000).contains(&ts),
            "timestamp {ts} is not the accept time (sent between {before_ms} and {after_ms} ms): {what}"
        );
        assert_eq!(m["type"], c.message_type, "{what}");
        assert_eq!(m["message"].as_str(), Some(c.message.as_str()), "message must be byte-identical: {what}");
        assert_eq!(m["extendedData"].as_str(), Some(c.extended_data.as_str()), "{what}");
        assert_eq!(m["subType"], c.sub_type.unwrap_or(0), "{what}");
        assert_eq!(m["isBroadcastMessage"], true, "{what}");
        assert_eq!(m["isServerMessage"], true, "{what}");
        if (11..=14).contains(&c.message_type) {
            // Still the JSON object the app sent, and still parseable as such.
            let parsed: Value = serde_json::from_str(m["message"].as_str().unwrap()).expect("media message is JSON");
            assert_eq!(parsed["Origin"]["Width"], 10, "{what}");
            assert_eq!(parsed["Uid"], "u1", "{what}");
        }
        raw_messages.push(m.clone());
    }

    // The SDK presents the same messages, field for field.
    for (c, raw_m) in cases.iter().zip(&raw_messages) {
        let m: ZimMessage = next_broadcast(&mut sdk_events).await;
        assert_eq!(m.message_id, raw_m["messageID"].as_str().unwrap(), "same broadcast, same id");
        assert_eq!(m.sender_user_id, SENDER);
        assert_eq!(m.timestamp, raw_m["timestamp"].as_i64().unwrap());
        assert_eq!(m.message_type, c.message_type);
        assert_eq!(m.message, c.message, "the SDK's message is byte-identical");
        assert_eq!(m.extended_data, c.extended_data);
        assert_eq!(m.sub_type, c.sub_type.unwrap_or(0));
        assert!(m.is_broadcast_message && m.is_server_message, "{m:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_ids_are_unique_across_many_broadcasts() {
    let server = Server::builder().wall_clock().unthrottled().start().await;
    let mut c = WsClient::user(&server, "counter").await;
    server.wait_sessions(1).await;
    const N: u64 = 50;
    // Sent concurrently: ids must still be unique.
    let texts: Vec<String> = (0..N).map(|i| format!("n{i}")).collect();
    futures_util::future::join_all(texts.iter().map(|t| server.broadcast_text(t))).await;
    server.wait_broadcasts_done(N).await;
    let got = c.broadcasts().await;
    assert_eq!(got.len() as u64, N, "{got:?}");
    let ids: HashSet<u64> = got.iter().map(message_id).collect();
    assert_eq!(ids.len() as u64, N, "duplicate messageIDs");
    let texts: HashSet<&str> = got.iter().map(|m| m["message"].as_str().unwrap()).collect();
    assert_eq!(texts.len() as u64, N, "every broadcast arrives once");
}
