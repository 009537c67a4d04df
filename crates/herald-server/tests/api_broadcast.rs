//! SendMessageToAllUsers (spec §1, §3): every validation code, the size limits, the sender
//! check, the 1/s and 100/24 h rate windows (on a ManualClock, across a restart too) and the
//! per-app switch. Between accepted calls the clock moves on by a second, never by sleeping.

mod support;

use serde_json::{json, Value};
use support::*;

const SEND: &str = "SendMessageToAllUsers";
const SENDER: &str = "announcer";

async fn server() -> Server {
    server_with(&default_app()).await
}

async fn server_with(tail: &str) -> Server {
    let server = Server::start_with(tail).await;
    server.register(&[SENDER]).await;
    server
}

async fn send(server: &Server, body: &Value) -> Value {
    server.call(SEND, Some(&body.to_string())).await
}

fn text(message: &str) -> Value {
    json!({"FromUserId": SENDER, "MessageType": 1, "MessageBody": {"Message": message}})
}

/// `base` with `key` set to `value` (or removed when `value` is `None`) at the JSON pointer
/// `at` ("" for the top level, "/MessageBody" for the body).
fn with(base: &Value, at: &str, key: &str, value: Option<Value>) -> Value {
    let mut v = base.clone();
    let obj = v.pointer_mut(at).and_then(Value::as_object_mut).expect("an object at the pointer");
    match value {
        Some(value) => obj.insert(key.to_string(), value),
        None => obj.remove(key),
    };
    v
}

/// A valid broadcast of a media type (spec §3.6): `Message` is the media JSON as a string.
fn media(message_type: u32) -> Value {
    let file =
        |name: &str| json!({"Uid": name, "Url": format!("https://e.com/{name}"), "FileName": name, "Size": 1024});
    let thumbnail = json!({"Url": "https://e.com/t.png", "Width": 64, "Height": 48});
    let mut inner = match message_type {
        11 => json!({"Uid": "img", "Origin": {"Url": "https://e.com/o.png", "Width": 640, "Height": 480},
                     "Thumbnail": thumbnail.clone(), "FileName": "o.png"}),
        12 => file("f.pdf"),
        13 => file("a.m4a"),
        14 => file("v.mp4"),
        other => panic!("{other} is not a media type"),
    };
    if message_type >= 13 {
        inner["MediaDuration"] = json!(9);
    }
    if message_type == 14 {
        inner["Thumbnail"] = thumbnail;
    }
    json!({"FromUserId": SENDER, "MessageType": message_type, "MessageBody": {"Message": inner.to_string()}})
}

/// Sends each `(case, body)` and asserts it answers `expected`. Refusals use no rate slot, so
/// the clock does not need to move between them.
async fn assert_each(server: &Server, expected: u64, cases: &[(&str, Value)]) {
    for (case, body) in cases {
        assert_code_for(&send(server, body).await, expected, case);
    }
}

#[tokio::test]
async fn every_broadcastable_type_is_accepted_with_only_the_common_fields() {
    let server = server().await;
    let custom = json!({"FromUserId": SENDER, "MessageType": 200, "SubMsgType": 7, "MessageBody": {"Message": "c"}});
    let bodies = [
        ("text 1", text("hello world")),
        ("image 11", media(11)),
        ("file 12", media(12)),
        ("audio 13", media(13)),
        ("video 14", media(14)),
        ("custom 200", custom),
    ];
    for (case, body) in bodies {
        let answer = send(&server, &body).await;
        assert_code_for(&answer, SUCCESS, case);
        // Spec §1.5: the three common fields only, no ErrorList.
        let keys: Vec<&str> = answer.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["Code", "Message", "RequestId"], "{case}: {answer}");
        server.advance_ms(SECOND_MS);
    }
}

#[tokio::test]
async fn documented_optional_fields_are_accepted() {
    let server = server().await;
    let full = json!({
        "FromUserId": SENDER, "MessageType": 1, "SubMsgType": 0, "PushType": 1,
        "MessageBody": {"Message": "hello world", "ExtendedData": "s", "HasReceipt": 1,
            "OfflinePush": {"Enable": 1, "Title": "T", "Content": "C", "Payload": "p", "PushStrategyId": "s1",
                "ThreadId": "t", "EnableBadge": true, "BadgeIncrement": 1,
                "PushImageInfo": {"Apns": {"Image": "https://e.com/i.png"}}}},
    });
    let customs = [0, 200]
        .map(|s| json!({"FromUserId": SENDER, "MessageType": 200, "SubMsgType": s, "MessageBody": {"Message": "c"}}));
    let push_types = [0, 1, 2].map(|p| with(&text("hi"), "", "PushType", Some(json!(p))));
    let id32 = "x".repeat(32);
    server.register(&[&id32]).await;
    let longest_sender = with(&text("hi"), "", "FromUserId", Some(json!(id32)));
    let cases = [vec![full, longest_sender], customs.to_vec(), push_types.to_vec()].concat();
    for body in cases {
        assert_code_for(&send(&server, &body).await, SUCCESS, &body.to_string());
        server.advance_ms(SECOND_MS);
    }
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let server = server().await;
    let body = json!({"FromUserId": SENDER, "MessageType": 1, "Priority": 3, "Whatever": {"a": [1, 2]},
        "MessageBody": {"Message": "hi", "Unknown": null, "OfflinePush": {"Vendor": "x"}}});
    assert_code(&send(&server, &body).await, SUCCESS);
}

#[tokio::test]
async fn from_user_id_must_be_a_valid_user_id() {
    let server = server().await;
    let base = text("hi");
    let set = |v: Option<Value>| with(&base, "", "FromUserId", v);
    assert_each(
        &server,
        PARAM_ERROR,
        &[
            ("missing", set(None)),
            ("null", set(Some(Value::Null))),
            ("a number", set(Some(json!(42)))),
            ("an array", set(Some(json!([SENDER])))),
            ("empty", set(Some(json!("")))),
            ("33 bytes", set(Some(json!("x".repeat(33))))),
            ("17 two-byte characters", set(Some(json!("é".repeat(17))))),
            ("a slash", set(Some(json!("bad/char")))),
            ("a non-ASCII letter", set(Some(json!("josé")))),
            ("a newline", set(Some(json!("a\nb")))),
        ],
    )
    .await;
}

#[tokio::test]
async fn message_type_must_be_a_broadcastable_integer() {
    let server = server().await;
    let set = |v: Option<Value>| with(&text("hi"), "", "MessageType", v);
    assert_each(
        &server,
        PARAM_ERROR,
        &[
            ("missing", set(None)),
            ("command 2", set(Some(json!(2)))),
            ("multi-item 10", set(Some(json!(10)))),
            ("barrage 20", set(Some(json!(20)))),
            ("unknown 0", set(Some(json!(0)))),
            ("revoke 31", set(Some(json!(31)))),
            ("negative", set(Some(json!(-1)))),
            ("beyond u32", set(Some(json!(4_294_967_297u64)))),
            ("the string \"1\"", set(Some(json!("1")))),
            ("1.5", set(Some(json!(1.5)))),
            ("1.0", set(Some(json!(1.0)))),
            ("a boolean", set(Some(json!(true)))),
        ],
    )
    .await;
}

#[tokio::test]
async fn sub_msg_type_is_required_for_custom_messages_and_stays_in_0_to_200() {
    let server = server().await;
    let custom = json!({"FromUserId": SENDER, "MessageType": 200, "MessageBody": {"Message": "c"}});
    let set = |v: Option<Value>| with(&custom, "", "SubMsgType", v);
    assert_each(
        &server,
        PARAM_ERROR,
        &[
            ("missing for 200", set(None)),
            ("null for 200", set(Some(Value::Null))),
            ("201", set(Some(json!(201)))),
            ("-1", set(Some(json!(-1)))),
            ("the string \"5\"", set(Some(json!("5")))),
            ("2.5", set(Some(json!(2.5)))),
        ],
    )
    .await;
}

#[tokio::test]
async fn push_type_must_be_0_1_or_2() {
    let server = server().await;
    let set = |v: Value| with(&text("hi"), "", "PushType", Some(v));
    assert_each(
        &server,
        PARAM_ERROR,
        &[
            ("3", set(json!(3))),
            ("-1", set(json!(-1))),
            ("the string \"1\"", set(json!("1"))),
            ("1.5", set(json!(1.5))),
        ],
    )
    .await;
}

#[tokio::test]
async fn message_body_and_message_are_required() {
    let server = server().await;
    let base = text("hi");
    let body = |v: Option<Value>| with(&base, "", "MessageBody", v);
    let field = |key: &str, v: Option<Value>| with(&base, "/MessageBody", key, v);
    let push = |v: Value| with(&base, "/MessageBody", "OfflinePush", Some(v));
    assert_each(
        &server,
        PARAM_ERROR,
        &[
            ("MessageBody missing", body(None)),
            ("MessageBody null", body(Some(Value::Null))),
            ("MessageBody a string", body(Some(json!("{\"Message\":\"hi\"}")))),
            ("MessageBody an array", body(Some(json!([{"Message": "hi"}])))),
            ("Message missing", field("Message", None)),
            ("Message empty", field("Message", Some(json!("")))),
            ("Message a number", field("Message", Some(json!(1)))),
            ("Message an object", field("Message", Some(json!({"text": "hi"})))),
            ("ExtendedData a number", field("ExtendedData", Some(json!(1)))),
            ("OfflinePush a string", push(json!("push"))),
            ("OfflinePush.Title a number", push(json!({"Title": 1}))),
            ("OfflinePush.Payload an object", push(json!({"Payload": {}}))),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_media_message_must_be_a_json_object_string() {
    let server = server().await;
    let image = |message: &str| json!({"FromUserId": SENDER, "MessageType": 11, "MessageBody": {"Message": message}});
    assert_each(
        &server,
        PARAM_ERROR,
        &[
            ("plain text", image("hello")),
            ("a JSON array", image("[{\"Uid\":\"1\"}]")),
            ("a JSON string", image("\"{}\"")),
            ("a JSON number", image("12")),
            ("broken JSON that starts like an object", image("{broken")),
            ("a truncated object", image("{\"Uid\":\"1\"")),
            ("an object followed by garbage", image("{\"Uid\":\"1\"} trailing")),
        ],
    )
    .await;
    for media_type in [12, 13, 14] {
        let body = with(&image("hello"), "", "MessageType", Some(json!(media_type)));
        assert_code_for(&send(&server, &body).await, PARAM_ERROR, &format!("type {media_type}"));
    }
}

#[tokio::test]
async fn message_and_extended_data_sizes_are_capped_in_bytes() {
    let server = server().await;
    let ext = |n: usize| with(&text("hi"), "/MessageBody", "ExtendedData", Some(json!("e".repeat(n))));
    assert_each(
        &server,
        MESSAGE_TOO_LARGE,
        &[
            ("Message 2049 bytes", text(&"m".repeat(2049))),
            // 683 characters, 2049 bytes: the cap counts bytes.
            ("Message 683 three-byte characters", text(&"€".repeat(683))),
            ("ExtendedData 1025 bytes", ext(1025)),
        ],
    )
    .await;
    for (case, body) in [("Message 2048 bytes", text(&"m".repeat(2048))), ("ExtendedData 1024 bytes", ext(1024))] {
        assert_code_for(&send(&server, &body).await, SUCCESS, case);
        server.advance_ms(SECOND_MS);
    }
}

#[tokio::test]
async fn a_raised_per_app_message_cap_is_honoured() {
    let server = server_with(&app_toml(APP_ID, SECRET, "", "message_max_bytes = 32768")).await;
    assert_code(&send(&server, &text(&"m".repeat(30 * 1024))).await, SUCCESS);
    server.advance_ms(SECOND_MS);
    assert_code(&send(&server, &text(&"m".repeat(32768))).await, SUCCESS);
    server.advance_ms(SECOND_MS);
    assert_code(&send(&server, &text(&"m".repeat(32769))).await, MESSAGE_TOO_LARGE);
}

#[tokio::test]
async fn an_unknown_sender_answers_660500002_after_the_body_checks() {
    let server = server().await;
    let ghost = |body: Value| with(&body, "", "FromUserId", Some(json!("ghost")));
    assert_code(&send(&server, &ghost(text("hi"))).await, SENDER_NOT_REGISTERED);
    // Validation order (spec §1.7): shape, then size, then the sender.
    assert_code(&send(&server, &ghost(with(&text("hi"), "", "PushType", Some(json!(3))))).await, PARAM_ERROR);
    assert_code(&send(&server, &ghost(text(&"m".repeat(2049)))).await, MESSAGE_TOO_LARGE);
    // Registering the sender is all it takes.
    server.register(&["ghost"]).await;
    assert_code(&send(&server, &ghost(text("hi"))).await, SUCCESS);
}

#[tokio::test]
async fn refused_calls_do_not_use_up_the_rate_limit() {
    let server = server().await;
    let ghost = with(&text("hi"), "", "FromUserId", Some(json!("ghost")));
    for body in [text(""), text(&"m".repeat(4000)), ghost] {
        assert_ne!(code(&send(&server, &body).await), SUCCESS);
    }
    assert_code(&send(&server, &text("first real call")).await, SUCCESS);
}

#[tokio::test]
async fn at_most_one_call_per_second() {
    let server = server().await;
    assert_code(&send(&server, &text("1")).await, SUCCESS);
    assert_code(&send(&server, &text("2")).await, BROADCAST_FREQUENCY);
    server.advance_ms(500);
    assert_code(&send(&server, &text("3")).await, BROADCAST_FREQUENCY);
    server.advance_ms(500);
    assert_code(&send(&server, &text("4")).await, SUCCESS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_in_one_second_are_accepted_exactly_once() {
    let server = server().await;
    let bodies: Vec<Value> = (0..8).map(|i| text(&format!("racer {i}"))).collect();
    let answers = futures_util::future::join_all(bodies.iter().map(|b| send(&server, b))).await;
    let codes: Vec<u64> = answers.iter().map(code).collect();
    assert_eq!(codes.iter().filter(|c| **c == SUCCESS).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == BROADCAST_FREQUENCY).count(), 7, "{codes:?}");
}

/// Call #1 at T0, calls #2..=#100 an hour later, one second apart.
async fn use_up_the_day(server: &Server) {
    assert_code_for(&send(server, &text("call 1")).await, SUCCESS, "call 1");
    server.set_ms(T0_MS + 3_600 * SECOND_MS);
    for i in 2..=100 {
        server.advance_ms(SECOND_MS);
        assert_code_for(&send(server, &text(&format!("call {i}"))).await, SUCCESS, &format!("call {i}"));
    }
}

#[tokio::test]
async fn at_most_100_calls_in_a_rolling_24_hours() {
    let server = server().await;
    use_up_the_day(&server).await;
    server.advance_ms(SECOND_MS);
    assert_code_for(&send(&server, &text("call 101")).await, BROADCAST_FREQUENCY, "call 101");
    // Not a calendar day: still refused until 24 h after call #1...
    server.set_ms(T0_MS + DAY_MS - 1);
    assert_code_for(&send(&server, &text("just before")).await, BROADCAST_FREQUENCY, "24 h - 1 ms after call 1");
    // ...then exactly one slot, call #1's, is free again.
    server.set_ms(T0_MS + DAY_MS + SECOND_MS);
    assert_code_for(&send(&server, &text("after")).await, SUCCESS, "24 h + 1 s after call 1");
    server.advance_ms(SECOND_MS);
    assert_code_for(
        &send(&server, &text("one more")).await,
        BROADCAST_FREQUENCY,
        "calls 2..=100 are still in the window",
    );
}

#[tokio::test]
async fn the_24_hour_window_survives_a_restart() {
    let mut server = server().await;
    use_up_the_day(&server).await;
    server.restart().await;
    server.advance_ms(SECOND_MS);
    assert_code_for(&send(&server, &text("call 101")).await, BROADCAST_FREQUENCY, "call 101 after the restart");
    server.set_ms(T0_MS + DAY_MS + SECOND_MS);
    assert_code_for(&send(&server, &text("after")).await, SUCCESS, "24 h + 1 s after call 1");
}

#[tokio::test]
async fn rate_limits_are_per_app() {
    let tail = format!("{}{}", default_app(), app_toml(OTHER_APP_ID, OTHER_SECRET, "", "broadcast_per_day = 1"));
    let server = server_with(&tail).await;
    let register = json!({"UserInfo": [{"UserId": SENDER}]}).to_string();
    assert_code(&server.call_as(OTHER_APP_ID, OTHER_SECRET, "UserRegister", Some(&register)).await, SUCCESS);
    let body = text("hi").to_string();
    assert_code(&server.call_as(OTHER_APP_ID, OTHER_SECRET, SEND, Some(&body)).await, SUCCESS);
    // The other app's window is its own: same instant, still allowed here.
    assert_code(&send(&server, &text("hi")).await, SUCCESS);
    // And its configured daily cap of 1 holds a second later.
    server.advance_ms(SECOND_MS);
    assert_code(&server.call_as(OTHER_APP_ID, OTHER_SECRET, SEND, Some(&body)).await, BROADCAST_FREQUENCY);
}

#[tokio::test]
async fn a_disabled_app_answers_660000028() {
    let disabled = app_toml(OTHER_APP_ID, OTHER_SECRET, "broadcast_enabled = false", "");
    let server = server_with(&format!("{}{disabled}", default_app())).await;
    let register = json!({"UserInfo": [{"UserId": SENDER}]}).to_string();
    assert_code(&server.call_as(OTHER_APP_ID, OTHER_SECRET, "UserRegister", Some(&register)).await, SUCCESS);
    for body in [text("hi").to_string(), "{}".to_string()] {
        let answer = server.call_as(OTHER_APP_ID, OTHER_SECRET, SEND, Some(&body)).await;
        assert_code_for(&answer, FEATURE_NOT_ENABLED, &body);
    }
    // The enabled app next to it is unaffected.
    assert_code(&send(&server, &text("hi")).await, SUCCESS);
}
