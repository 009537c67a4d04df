//! The user actions (spec §4): UserRegister, QueryUserInfos, ModifyUserInfo and
//! QueryUserOnlineState, their happy paths, their per-user ErrorLists and their limits.

mod support;

use serde_json::{json, Value};
use support::*;

/// `{"UserInfo":[{"UserId":...},...]}` for `n` distinct users.
fn many_users(n: usize) -> String {
    let infos: Vec<Value> = (0..n).map(|i| json!({ "UserId": format!("user{i}") })).collect();
    json!({ "UserInfo": infos }).to_string()
}

/// The ErrorList as `(UserId, SubCode)` pairs, asserting every item also has a SubMessage.
fn errors(answer: &Value) -> Vec<(String, u64)> {
    let list = answer["ErrorList"].as_array().unwrap_or_else(|| panic!("no ErrorList array: {answer}"));
    list.iter()
        .map(|e| {
            let sub_message = e["SubMessage"].as_str().unwrap_or("");
            assert!(!sub_message.is_empty(), "ErrorList item without a SubMessage: {e}");
            (e["UserId"].as_str().unwrap().to_string(), e["SubCode"].as_u64().unwrap())
        })
        .collect()
}

async fn query_infos(server: &Server, ids: &[&str]) -> Value {
    server.call("QueryUserInfos", Some(&json!({ "UserIds": ids }).to_string())).await
}

#[tokio::test]
async fn registered_users_can_be_queried() {
    let server = Server::start().await;
    let body = json!({"UserInfo": [
        {"UserId": "alice", "UserName": "Alice", "UserAvatar": "https://example.com/a.png"},
        {"UserId": "bob"},
    ]});
    let answer = server.call("UserRegister", Some(&body.to_string())).await;
    assert_code(&answer, SUCCESS);
    assert_eq!(answer["ErrorList"], json!([]));

    let answer = query_infos(&server, &["alice", "bob"]).await;
    assert_code(&answer, SUCCESS);
    assert_eq!(
        answer["Result"],
        json!([
            {"UserId": "alice", "UserName": "Alice", "UserAvatar": "https://example.com/a.png", "Extra": ""},
            {"UserId": "bob", "UserName": "", "UserAvatar": "", "Extra": ""},
        ])
    );
    assert_eq!(answer["ErrorList"], json!([]));
}

#[tokio::test]
async fn register_partial_failure_keeps_code_0_and_lists_each_failed_user() {
    let server = Server::start().await;
    server.register(&["taken"]).await;
    let long_id = "x".repeat(33);
    let body = json!({"UserInfo": [
        {"UserId": "fresh"},
        {"UserId": "taken"},
        {"UserId": long_id},
        {"UserId": "bad/char"},
        {"UserId": "longname", "UserName": "n".repeat(257)},
        {"UserId": "longavatar", "UserAvatar": "a".repeat(501)},
        {"UserId": "edge", "UserName": "n".repeat(256), "UserAvatar": "a".repeat(500)},
    ]});
    let answer = server.call("UserRegister", Some(&body.to_string())).await;
    assert_code(&answer, SUCCESS);
    assert_eq!(
        errors(&answer),
        vec![
            ("taken".to_string(), USER_ALREADY_EXISTS),
            (long_id, USER_ID_TOO_LONG),
            ("bad/char".to_string(), PARAM_ERROR),
            ("longname".to_string(), USER_NAME_TOO_LONG),
            ("longavatar".to_string(), USER_AVATAR_TOO_LONG),
        ]
    );
    // Only the valid users were created.
    let answer = query_infos(&server, &["fresh", "edge", "longname", "longavatar"]).await;
    let found: Vec<&str> = answer["Result"].as_array().unwrap().iter().map(|u| u["UserId"].as_str().unwrap()).collect();
    assert_eq!(found, ["fresh", "edge"]);
}

#[tokio::test]
async fn register_where_every_user_fails_answers_a_non_zero_code_with_the_error_list() {
    let server = Server::start().await;
    server.register(&["a", "b"]).await;

    let answer = server.call("UserRegister", Some(r#"{"UserInfo":[{"UserId":"a"},{"UserId":"b"}]}"#)).await;
    assert_code(&answer, USER_ALREADY_EXISTS);
    assert_eq!(errors(&answer), [("a".to_string(), USER_ALREADY_EXISTS), ("b".to_string(), USER_ALREADY_EXISTS)]);

    // Different reasons: a non-zero code all the same, and each reason in the list.
    let body = json!({"UserInfo": [{"UserId": "a"}, {"UserId": "x".repeat(33)}]});
    let answer = server.call("UserRegister", Some(&body.to_string())).await;
    assert_ne!(code(&answer), SUCCESS, "{answer}");
    assert_eq!(errors(&answer), [("a".to_string(), USER_ALREADY_EXISTS), ("x".repeat(33), USER_ID_TOO_LONG)]);
}

#[tokio::test]
async fn register_takes_at_most_100_users_per_call() {
    let server = Server::start().await;
    let answer = server.call("UserRegister", Some(&many_users(101))).await;
    assert_code(&answer, TOO_MANY_USERS);
    // Nothing was registered by the refused call.
    assert_eq!(errors(&query_infos(&server, &["user0"]).await), [("user0".to_string(), USER_NOT_FOUND)]);
    let answer = server.call("UserRegister", Some(&many_users(100))).await;
    assert_code(&answer, SUCCESS);
    assert_eq!(answer["ErrorList"], json!([]));
}

#[tokio::test]
async fn register_refuses_a_wrong_shape_as_a_whole() {
    let server = Server::start().await;
    for body in [
        r#"{}"#,
        r#"{"UserInfo":[]}"#,
        r#"{"UserInfo":"alice"}"#,
        r#"{"UserInfo":{"UserId":"alice"}}"#,
        r#"{"UserInfo":["alice"]}"#,
        r#"{"UserInfo":[{"UserName":"no id"}]}"#,
        r#"{"UserInfo":[{"UserId":7}]}"#,
        r#"{"UserInfo":[{"UserId":"alice","UserName":7}]}"#,
        r#"{"UserInfo":[{"UserId":"ok"},{"UserId":"alice","UserAvatar":[]}]}"#,
    ] {
        assert_code_for(&server.call("UserRegister", Some(body)).await, PARAM_ERROR, body);
    }
    // A wrong shape anywhere fails the whole call: the valid first item was not registered.
    assert_eq!(errors(&query_infos(&server, &["ok"]).await), [("ok".to_string(), USER_NOT_FOUND)]);
}

#[tokio::test]
async fn query_user_infos_lists_unknown_users_in_the_error_list() {
    let server = Server::start().await;
    server.register(&["alice"]).await;
    let answer = query_infos(&server, &["ghost", "alice"]).await;
    assert_code(&answer, SUCCESS);
    assert_eq!(answer["Result"].as_array().unwrap().len(), 1);
    assert_eq!(answer["Result"][0]["UserId"], "alice");
    assert_eq!(answer["ErrorList"][0]["UserId"], "ghost");
    assert_eq!(answer["ErrorList"][0]["SubCode"], USER_NOT_FOUND);
    assert_eq!(answer["ErrorList"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn query_user_infos_limits() {
    let server = Server::start().await;
    let ids: Vec<String> = (0..101).map(|i| format!("user{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_code(&query_infos(&server, &ids).await, TOO_MANY_USERS);
    assert_code(&query_infos(&server, &ids[..100]).await, SUCCESS);
    // Query ids may be up to 64 bytes.
    assert_code(&query_infos(&server, &[&"q".repeat(64)]).await, SUCCESS);
    assert_code(&query_infos(&server, &[&"q".repeat(65)]).await, PARAM_ERROR);
    for body in [r#"{}"#, r#"{"UserIds":[]}"#, r#"{"UserIds":"alice"}"#, r#"{"UserIds":[1]}"#, r#"{"UserIds":[""]}"#] {
        assert_code_for(&server.call("QueryUserInfos", Some(body)).await, PARAM_ERROR, body);
    }
}

#[tokio::test]
async fn modify_user_info_changes_only_the_given_fields() {
    let server = Server::start().await;
    let body = json!({"UserInfo": [{"UserId": "alice", "UserName": "Alice", "UserAvatar": "https://a"}]});
    assert_code(&server.call("UserRegister", Some(&body.to_string())).await, SUCCESS);

    let body = json!({"UserInfo": [{"UserId": "alice", "Extra": "{\"level\":3}"}]});
    let answer = server.call("ModifyUserInfo", Some(&body.to_string())).await;
    assert_code(&answer, SUCCESS);
    assert_eq!(answer["ErrorList"], json!([]));
    let answer = query_infos(&server, &["alice"]).await;
    assert_eq!(
        answer["Result"],
        json!([{"UserId": "alice", "UserName": "Alice", "UserAvatar": "https://a", "Extra": "{\"level\":3}"}])
    );

    let body = json!({"UserInfo": [{"UserId": "alice", "UserName": "Alicia", "UserAvatar": ""}]});
    assert_code(&server.call("ModifyUserInfo", Some(&body.to_string())).await, SUCCESS);
    let answer = query_infos(&server, &["alice"]).await;
    assert_eq!(
        answer["Result"],
        json!([{"UserId": "alice", "UserName": "Alicia", "UserAvatar": "", "Extra": "{\"level\":3}"}])
    );
}

#[tokio::test]
async fn modify_user_info_partial_and_total_failure() {
    let server = Server::start().await;
    server.register(&["alice"]).await;
    let body = json!({"UserInfo": [
        {"UserId": "ghost", "UserName": "Boo"},
        {"UserId": "alice", "UserName": "Alice"},
        {"UserId": "alice", "UserName": "n".repeat(257)},
        {"UserId": "alice", "UserAvatar": "a".repeat(501)},
        {"UserId": "alice", "Extra": "e".repeat(2049)},
    ]});
    let answer = server.call("ModifyUserInfo", Some(&body.to_string())).await;
    assert_code(&answer, SUCCESS);
    assert_eq!(
        errors(&answer),
        [
            ("ghost".to_string(), USER_NOT_REGISTERED),
            ("alice".to_string(), USER_NAME_TOO_LONG),
            ("alice".to_string(), USER_AVATAR_TOO_LONG),
            ("alice".to_string(), PARAM_ERROR),
        ]
    );
    assert_eq!(query_infos(&server, &["alice"]).await["Result"][0]["UserName"], "Alice");

    let answer = server.call("ModifyUserInfo", Some(r#"{"UserInfo":[{"UserId":"ghost"},{"UserId":"spook"}]}"#)).await;
    assert_code(&answer, USER_NOT_REGISTERED);
    assert_eq!(
        errors(&answer),
        [("ghost".to_string(), USER_NOT_REGISTERED), ("spook".to_string(), USER_NOT_REGISTERED)]
    );
}

#[tokio::test]
async fn modify_user_info_limits_and_shape() {
    let server = Server::start().await;
    assert_code(&server.call("ModifyUserInfo", Some(&many_users(101))).await, TOO_MANY_USERS);
    for body in [r#"{}"#, r#"{"UserInfo":[]}"#, r#"{"UserInfo":[{"UserId":"a","Extra":{}}]}"#] {
        assert_code_for(&server.call("ModifyUserInfo", Some(body)).await, PARAM_ERROR, body);
    }
}

#[tokio::test]
async fn query_user_online_state_reports_registered_users_and_lists_unknown_ones() {
    let server = Server::start().await;
    server.register(&["alice", "bob smith"]).await;
    let answer = server
        .call_with_query(
            "QueryUserOnlineState",
            &[("UserId[]", "alice"), ("UserId[]", "nobody"), ("UserId[]", "bob smith")],
            None,
        )
        .await;
    assert_code(&answer, SUCCESS);
    assert_eq!(
        answer["Result"],
        json!([{"UserId": "alice", "Status": "Offline"}, {"UserId": "bob smith", "Status": "Offline"}])
    );
    assert_eq!(answer["ErrorList"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(answer["ErrorList"][0]["UserId"], "nobody");
    assert_eq!(answer["ErrorList"][0]["SubCode"], USER_NOT_ONLINE_OR_MISSING);
}

#[tokio::test]
async fn query_user_online_state_limits() {
    let server = Server::start().await;
    let ids: Vec<String> = (0..101).map(|i| format!("user{i}")).collect();
    let pairs: Vec<(&str, &str)> = ids.iter().map(|id| ("UserId[]", id.as_str())).collect();
    assert_code(&server.call_with_query("QueryUserOnlineState", &pairs, None).await, TOO_MANY_USERS);
    let answer = server.call_with_query("QueryUserOnlineState", &pairs[..100], None).await;
    assert_code(&answer, SUCCESS);
    assert_eq!(answer["ErrorList"].as_array().unwrap().len(), 100);
    // No user at all is a parameter error.
    assert_code(&server.call("QueryUserOnlineState", None).await, PARAM_ERROR);
}
