//! Hostile and malformed requests: unknown actions, broken or mistyped JSON, non-UTF-8, bodies
//! over the configured cap, pathological nesting. Each gets its code in the common answer
//! shape (checked by the harness), and the server keeps serving afterwards.

mod support;

use support::*;

/// A body that registers `user` and nothing else.
fn register_body(user: &str) -> String {
    format!(r#"{{"UserInfo":[{{"UserId":"{user}"}}]}}"#)
}

async fn post(server: &Server, action: &str, body: impl Into<Vec<u8>>) -> serde_json::Value {
    server.raw(&server.signed(action).query(), Some(body.into())).await
}

/// The server still answers a normal call.
async fn assert_still_serving(server: &Server) {
    let answer = server.call("QueryUserInfos", Some(r#"{"UserIds":["anyone"]}"#)).await;
    assert_code(&answer, SUCCESS);
}

#[tokio::test]
async fn an_unknown_action_answers_100000007() {
    let server = Server::start().await;
    for action in ["SendPeerMessage", "DeleteEverything", "sendmessagetoallusers", "UserRegister "] {
        assert_code_for(&server.call(action, Some("{}")).await, ACTION_UNSUPPORTED, action);
    }
}

#[tokio::test]
async fn an_unknown_action_is_only_named_after_the_signature_is_checked() {
    let server = Server::start().await;
    let params = server.signed("SendPeerMessage").set("Signature", &"0".repeat(32));
    assert_code(&server.raw(&params.query(), None).await, SIGNATURE_INVALID);
}

#[tokio::test]
async fn malformed_json_answers_660000002() {
    let server = Server::start().await;
    for body in [
        "",
        "   \n",
        "not json",
        r#"{"UserInfo":["#,
        r#"{"UserInfo":[{"UserId":"a"}]"#,
        r#"{"UserInfo":[{"UserId":"a"}]} trailing"#,
        r#"{"UserInfo":[{"UserId":"a",}]}"#,
        r#"{'UserInfo':[]}"#,
        r#"{"UserInfo":[{"UserId":"a\x"}]}"#,
    ] {
        assert_code_for(&post(&server, "UserRegister", body).await, PARAM_ERROR, body);
    }
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_body_that_is_not_an_object_answers_660000002() {
    let server = Server::start().await;
    for action in ["UserRegister", "QueryUserInfos", "ModifyUserInfo", "SendMessageToAllUsers"] {
        for body in ["[]", "null", "42", "\"text\"", "true"] {
            assert_code_for(&post(&server, action, body).await, PARAM_ERROR, &format!("{action} {body}"));
        }
    }
}

#[tokio::test]
async fn wrong_json_types_answer_660000002() {
    let server = Server::start().await;
    server.register(&["alice"]).await;
    for (action, body) in [
        ("UserRegister", r#"{"UserInfo":{"UserId":"a"}}"#),
        ("UserRegister", r#"{"UserInfo":[{"UserId":["a"]}]}"#),
        ("QueryUserInfos", r#"{"UserIds":"alice"}"#),
        ("QueryUserInfos", r#"{"UserIds":[{"UserId":"alice"}]}"#),
        ("ModifyUserInfo", r#"{"UserInfo":[{"UserId":"alice","UserName":false}]}"#),
        ("SendMessageToAllUsers", r#"{"FromUserId":"alice","MessageType":"1","MessageBody":{"Message":"hi"}}"#),
        ("SendMessageToAllUsers", r#"{"FromUserId":"alice","MessageType":1,"MessageBody":"hi"}"#),
    ] {
        assert_code_for(&post(&server, action, body).await, PARAM_ERROR, body);
    }
}

#[tokio::test]
async fn a_non_utf8_body_answers_660000002() {
    let server = Server::start().await;
    let mut latin1 = br#"{"UserInfo":[{"UserId":"jos"#.to_vec();
    latin1.extend_from_slice(b"\xe9\"}]}");
    for body in [latin1, b"\xff\xfe{}".to_vec(), vec![0x80; 64]] {
        assert_code(&post(&server, "UserRegister", body).await, PARAM_ERROR);
    }
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_query_that_is_not_utf8_or_badly_escaped_is_refused() {
    let server = Server::start().await;
    let good = server.signed("QueryUserOnlineState").query();
    for bad in [format!("{good}&UserId[]=%FF"), format!("{good}&UserId[]=%zz"), format!("{good}&UserId[]=%")] {
        let answer = server.raw(&bad, None).await;
        assert_ne!(code(&answer), SUCCESS, "{bad}: {answer}");
    }
}

#[tokio::test]
async fn a_body_over_the_configured_cap_answers_100000012() {
    let server = Server::start_with(&format!("[api]\nmax_body_bytes = 4096\n{}", default_app())).await;
    // Exactly at the cap: read and served (whitespace pads the JSON to 4096 bytes).
    let body = register_body("fits");
    let at_cap = format!("{body}{}", " ".repeat(4096 - body.len()));
    assert_code(&post(&server, "UserRegister", at_cap).await, SUCCESS);
    // One byte over, and far over.
    let over = format!("{body}{}", " ".repeat(4097 - body.len()));
    assert_code(&post(&server, "UserRegister", over).await, BODY_READ_FAILED);
    assert_code(&post(&server, "UserRegister", vec![b' '; 64 * 1024]).await, BODY_READ_FAILED);
    // The refused user was not registered.
    let answer = server.call("QueryUserInfos", Some(r#"{"UserIds":["fits","over"]}"#)).await;
    assert_eq!(answer["Result"].as_array().unwrap().len(), 1, "{answer}");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn the_default_body_cap_is_256_kib() {
    let server = Server::start().await;
    let body = register_body("big");
    let at_cap = format!("{body}{}", " ".repeat(256 * 1024 - body.len()));
    assert_code(&post(&server, "UserRegister", at_cap).await, SUCCESS);
    assert_code(&post(&server, "UserRegister", vec![b' '; 256 * 1024 + 1]).await, BODY_READ_FAILED);
}

#[tokio::test]
async fn deep_nesting_answers_660000002_without_crashing() {
    let server = Server::start().await;
    let arrays = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let objects = |n: usize| format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
    let cases = [
        ("10,000 nested arrays", arrays(10_000)),
        ("100,000 nested arrays", arrays(100_000)),
        ("10,000 unclosed arrays", "[".repeat(10_000)),
        ("10,000 nested objects", objects(10_000)),
        ("10,000 nested arrays inside UserInfo", format!(r#"{{"UserInfo":{}}}"#, arrays(10_000))),
        (
            "10,000 nested arrays inside an item",
            format!(r#"{{"UserInfo":[{{"UserId":"a","UserName":{}}}]}}"#, arrays(10_000)),
        ),
    ];
    for (case, body) in &cases {
        assert_code_for(&post(&server, "UserRegister", body.as_str()).await, PARAM_ERROR, case);
    }
    for (case, body) in &cases {
        assert_code_for(&post(&server, "SendMessageToAllUsers", body.as_str()).await, PARAM_ERROR, case);
    }
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn unknown_json_fields_are_ignored() {
    let server = Server::start().await;
    let body = r#"{"UserInfo":[{"UserId":"alice","Nickname":"A","Age":3}],"Comment":{"x":[1,2,3]},"Extra":null}"#;
    let answer = post(&server, "UserRegister", body).await;
    assert_code(&answer, SUCCESS);
    assert_eq!(answer["ErrorList"], serde_json::json!([]));
    let answer = post(&server, "QueryUserInfos", r#"{"UserIds":["alice"],"Verbose":true}"#).await;
    assert_code(&answer, SUCCESS);
    assert_eq!(answer["Result"][0]["UserId"], "alice");
    let answer = post(&server, "ModifyUserInfo", r#"{"UserInfo":[{"UserId":"alice","Mood":"ok"}],"DryRun":1}"#).await;
    assert_code(&answer, SUCCESS);
}

#[tokio::test]
async fn a_post_action_without_a_body_answers_660000002() {
    let server = Server::start().await;
    let answer = server.call("UserRegister", None).await;
    assert_code(&answer, PARAM_ERROR);
}
