//! The JSON frames of docs/protocol.md: exact encodings, round trips and leniency to extra keys.

use herald_proto::frame::{self, ClientFrame, Login, ServerFrame, ZimMessage};

fn login() -> Login {
    Login {
        id: 1,
        app_id: 1234567890,
        user_id: "alice".into(),
        token: "04AAAA".into(),
        sdk_version: "2.18.0".into(),
        platform: "android".into(),
        device_id: "dev-1".into(),
        user_name: None,
        since: None,
    }
}

fn zim_message() -> ZimMessage {
    ZimMessage {
        message_id: "7391827364519283712".into(),
        sender_user_id: "admin".into(),
        timestamp: 1764316800123,
        message_type: 1,
        message: "hello".into(),
        extended_data: String::new(),
        sub_type: 0,
        is_broadcast_message: true,
        is_server_message: true,
    }
}

#[test]
fn bcast_encodes_exactly_as_documented() {
    let bytes = frame::encode_server(&ServerFrame::Bcast { msg: zim_message() });
    assert!(bytes.starts_with(br#"{"t":"bcast""#));
    // The example in docs/protocol.md, without its line break.
    let documented = r#"{"t":"bcast","msg":{"messageID":"7391827364519283712","senderUserID":"admin","timestamp":1764316800123,"type":1,"message":"hello","extendedData":"","subType":0,"isBroadcastMessage":true,"isServerMessage":true}}"#;
    assert_eq!(std::str::from_utf8(&bytes).unwrap(), documented);
}

#[test]
fn server_frames_put_t_first_and_round_trip() {
    let frames = [
        (
            ServerFrame::LoginOk {
                id: 1,
                session_id: "18446744073709551615".into(),
                heartbeat_ms: 30_000,
                timeout_ms: 90_000,
                token_expire: 1_700_003_600,
                server_time_ms: 1_700_000_000_123,
                recovered: None,
            },
            r#"{"t":"login_ok","id":1,"session_id":"18446744073709551615","heartbeat_ms":30000,"timeout_ms":90000,"token_expire":1700003600,"server_time_ms":1700000000123}"#,
        ),
        (
            ServerFrame::LoginOk {
                id: 2,
                session_id: "5".into(),
                heartbeat_ms: 30_000,
                timeout_ms: 90_000,
                token_expire: 1_700_003_600,
                server_time_ms: 1_700_000_000_123,
                recovered: Some(false),
            },
            r#"{"t":"login_ok","id":2,"session_id":"5","heartbeat_ms":30000,"timeout_ms":90000,"token_expire":1700003600,"server_time_ms":1700000000123,"recovered":false}"#,
        ),
        (ServerFrame::Pong { id: 7 }, r#"{"t":"pong","id":7}"#),
        (ServerFrame::Ack { id: 8, token_expire: None }, r#"{"t":"ack","id":8}"#),
        (ServerFrame::Ack { id: 9, token_expire: Some(5) }, r#"{"t":"ack","id":9,"token_expire":5}"#),
        (
            ServerFrame::Error { id: 0, code: 6000106, message: "token expired".into() },
            r#"{"t":"error","id":0,"code":6000106,"message":"token expired"}"#,
        ),
        (ServerFrame::TokenWillExpire { seconds: 30 }, r#"{"t":"token_will_expire","seconds":30}"#),
    ];
    for (frame, json) in frames {
        let bytes = frame::encode_server(&frame);
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), json);
        assert_eq!(frame::decode_server(&bytes).unwrap(), frame);
    }
    let bcast = ServerFrame::Bcast { msg: zim_message() };
    assert_eq!(frame::decode_server(&frame::encode_server(&bcast)).unwrap(), bcast);
}

#[test]
fn client_frames_decode_from_documented_json() {
    let cases = [
        (
            r#"{"t":"login","id":1,"app_id":1234567890,"user_id":"alice","token":"04AAAA","sdk_version":"2.18.0","platform":"android","device_id":"dev-1"}"#,
            ClientFrame::Login(login()),
        ),
        (
            r#"{"t":"login","id":1,"app_id":1234567890,"user_id":"alice","token":"04AAAA","sdk_version":"2.18.0","platform":"android","device_id":"dev-1","user_name":"Alice"}"#,
            ClientFrame::Login(Login { user_name: Some("Alice".into()), ..login() }),
        ),
        (
            r#"{"t":"login","id":1,"app_id":1234567890,"user_id":"alice","token":"04AAAA","sdk_version":"2.18.0","platform":"android","device_id":"dev-1","since":"7391827364519283712"}"#,
            ClientFrame::Login(Login { since: Some("7391827364519283712".into()), ..login() }),
        ),
        (r#"{"t":"ping","id":2}"#, ClientFrame::Ping { id: 2 }),
        (
            r#"{"t":"set_push_id","id":3,"push_id":"fcm-token","provider":"fcm"}"#,
            ClientFrame::SetPushId { id: 3, push_id: "fcm-token".into(), provider: "fcm".into() },
        ),
        (r#"{"t":"renew_token","id":4,"token":"04BBBB"}"#, ClientFrame::RenewToken { id: 4, token: "04BBBB".into() }),
        (r#"{"t":"logout","id":5}"#, ClientFrame::Logout { id: 5 }),
    ];
    for (json, expected) in cases {
        let decoded = frame::decode_client(json.as_bytes()).unwrap();
        assert_eq!(decoded, expected);
        assert_eq!(frame::encode_client(&decoded), json.as_bytes(), "encode_client round trip");
    }
    assert_eq!(frame::decode_client(br#"{"t":"logout","id":5}"#).unwrap().id(), 5);
}

#[test]
fn unknown_keys_and_any_key_order_are_accepted() {
    let json = br#"{"id":2,"future":{"nested":[1,2]},"t":"ping","extra":"x"}"#;
    assert_eq!(frame::decode_client(json).unwrap(), ClientFrame::Ping { id: 2 });
    let json = br#"{"t":"pong","id":2,"new_field":true}"#;
    assert_eq!(frame::decode_server(json).unwrap(), ServerFrame::Pong { id: 2 });
}

#[test]
fn malformed_client_frames_are_errors() {
    for bad in [
        &b""[..],
        b"not json",
        b"[]",
        br#"{"id":1}"#,
        br#"{"t":"pong","id":1}"#,
        br#"{"t":"Ping","id":1}"#,
        br#"{"t":"ping"}"#,
        br#"{"t":"ping","id":-1}"#,
        br#"{"t":"ping","id":"1"}"#,
        br#"{"t":"renew_token","id":1}"#,
        br#"{"t":"login","id":1,"app_id":4294967296,"user_id":"a","token":"t","sdk_version":"2.10","platform":"web","device_id":"d"}"#,
        br#"{"t":"ping","id":1} trailing"#,
    ] {
        assert!(frame::decode_client(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn debug_output_redacts_tokens() {
    let login = format!("{:?}", ClientFrame::Login(login()));
    assert!(!login.contains("04AAAA") && login.contains("<6 bytes redacted>") && login.contains("alice"), "{login}");
    let renew = format!("{:?}", ClientFrame::RenewToken { id: 1, token: "04SECRET".into() });
    assert!(!renew.contains("04SECRET"), "{renew}");
}
