//! Common parameters and request signing (spec §2): every check answers its own code, and a
//! used SignatureNonce is refused. The signature vector itself is tested in herald-proto.

mod support;

use herald_proto::signature::api_signature;
use support::*;

/// A GET action that succeeds for any registered user; the probe for "was this accepted".
const PROBE: &str = "QueryUserOnlineState";

async fn probe(server: &Server, params: Params) -> serde_json::Value {
    server.raw(&params.add("UserId[]", "probe").query(), None).await
}

async fn server_with_probe_user() -> Server {
    let server = Server::start().await;
    server.register(&["probe"]).await;
    server
}

#[tokio::test]
async fn a_correctly_signed_request_succeeds() {
    let server = server_with_probe_user().await;
    let answer = probe(&server, server.signed(PROBE)).await;
    assert_code(&answer, SUCCESS);
    assert_eq!(answer["Message"], "success");
}

#[tokio::test]
async fn missing_action_answers_100000006() {
    let server = server_with_probe_user().await;
    assert_code(&probe(&server, server.signed(PROBE).without("Action")).await, ACTION_EMPTY);
    assert_code(&probe(&server, server.signed(PROBE).set("Action", "")).await, ACTION_EMPTY);
    // Nothing at all: the first missing parameter is the Action.
    assert_code(&server.raw("", None).await, ACTION_EMPTY);
}

#[tokio::test]
async fn missing_or_malformed_app_id_answers_100000001() {
    let server = server_with_probe_user().await;
    assert_code(&probe(&server, server.signed(PROBE).without("AppId")).await, APP_ID_FORMAT);
    for bad in ["", "abc", "0", "-1", "4294967296", "12.5", "0x10"] {
        let answer = probe(&server, server.signed(PROBE).set("AppId", bad)).await;
        assert_code_for(&answer, APP_ID_FORMAT, &format!("AppId={bad:?}"));
    }
}

#[tokio::test]
async fn missing_nonce_answers_100000008() {
    let server = server_with_probe_user().await;
    assert_code(&probe(&server, server.signed(PROBE).without("SignatureNonce")).await, NONCE_EMPTY);
    assert_code(&probe(&server, server.signed(PROBE).set("SignatureNonce", "")).await, NONCE_EMPTY);
}

#[tokio::test]
async fn missing_timestamp_answers_100000002() {
    let server = server_with_probe_user().await;
    assert_code(&probe(&server, server.signed(PROBE).without("Timestamp")).await, TIMESTAMP_EMPTY);
    assert_code(&probe(&server, server.signed(PROBE).set("Timestamp", "")).await, TIMESTAMP_EMPTY);
}

#[tokio::test]
async fn malformed_timestamp_answers_100000003() {
    let server = server_with_probe_user().await;
    for bad in ["abc", "1.5", "1e9", "17000000000000000000000", "now"] {
        let answer = probe(&server, server.signed(PROBE).set("Timestamp", bad)).await;
        assert_code_for(&answer, TIMESTAMP_FORMAT, &format!("Timestamp={bad:?}"));
    }
}

#[tokio::test]
async fn missing_signature_answers_100000009() {
    let server = server_with_probe_user().await;
    assert_code(&probe(&server, server.signed(PROBE).without("Signature")).await, SIGNATURE_EMPTY);
    assert_code(&probe(&server, server.signed(PROBE).set("Signature", "")).await, SIGNATURE_EMPTY);
}

#[tokio::test]
async fn missing_signature_version_answers_100000013() {
    let server = server_with_probe_user().await;
    let answer = probe(&server, server.signed(PROBE).without("SignatureVersion")).await;
    assert_code(&answer, SIGNATURE_VERSION_EMPTY);
    let answer = probe(&server, server.signed(PROBE).set("SignatureVersion", "")).await;
    assert_code(&answer, SIGNATURE_VERSION_EMPTY);
}

#[tokio::test]
async fn unsupported_signature_version_answers_100000014() {
    let server = server_with_probe_user().await;
    for bad in ["1.0", "2", "3.0", "2.0 "] {
        let answer = probe(&server, server.signed(PROBE).set("SignatureVersion", bad)).await;
        assert_code_for(&answer, SIGNATURE_VERSION_UNSUPPORTED, &format!("SignatureVersion={bad:?}"));
    }
}

#[tokio::test]
async fn unknown_app_answers_100000010() {
    let server = server_with_probe_user().await;
    // Correctly signed with a secret of its own, but no such app is configured.
    let answer = probe(&server, server.signed_for(42, SECRET, PROBE)).await;
    assert_code(&answer, SECRET_UNAVAILABLE);
}

#[tokio::test]
async fn timestamp_more_than_600_s_away_answers_100000004_in_both_directions() {
    let server = server_with_probe_user().await;
    let now = server.now_s();
    for (offset, expected) in [(-601, SIGNATURE_EXPIRED), (601, SIGNATURE_EXPIRED), (-600, SUCCESS), (600, SUCCESS)] {
        let params = signed_params(PROBE, APP_ID, SECRET, &server.nonce(), now + offset);
        assert_code_for(&probe(&server, params).await, expected, &format!("Timestamp now{offset:+}"));
    }
}

#[tokio::test]
async fn extreme_timestamps_answer_100000004() {
    let server = server_with_probe_user().await;
    for timestamp in [i64::MIN, i64::MIN + 1, -1_000_000_000_000_000_000, -1, 0, i64::MAX] {
        let params = signed_params(PROBE, APP_ID, SECRET, &server.nonce(), timestamp);
        assert_code_for(&probe(&server, params).await, SIGNATURE_EXPIRED, &format!("Timestamp={timestamp}"));
    }
}

#[tokio::test]
async fn the_window_follows_the_servers_clock_not_the_wall_clock() {
    let server = server_with_probe_user().await;
    // Signed "now", then the server's clock moves on by 11 minutes before it arrives.
    let params = server.signed(PROBE);
    server.advance_ms(660 * SECOND_MS);
    assert_code(&probe(&server, params).await, SIGNATURE_EXPIRED);
    assert_code(&probe(&server, server.signed(PROBE)).await, SUCCESS);
}

#[tokio::test]
async fn a_wrong_signature_answers_100000005() {
    let server = server_with_probe_user().await;
    let now = server.now_s();
    let nonce = server.nonce();
    let cases = [
        ("another secret", api_signature(APP_ID, &nonce, OTHER_SECRET, now)),
        ("another nonce", api_signature(APP_ID, "not-the-nonce", SECRET, now)),
        ("another timestamp", api_signature(APP_ID, &nonce, SECRET, now - 1)),
        ("another app id", api_signature(APP_ID + 1, &nonce, SECRET, now)),
        ("not hex", "zz".repeat(16)),
        ("truncated", api_signature(APP_ID, &nonce, SECRET, now)[..31].to_string()),
    ];
    for (case, signature) in cases {
        let params = signed_params(PROBE, APP_ID, SECRET, &nonce, now).set("Signature", &signature);
        assert_code_for(&probe(&server, params).await, SIGNATURE_INVALID, case);
    }
}

#[tokio::test]
async fn uppercase_hex_signature_carries_the_same_digest() {
    let server = server_with_probe_user().await;
    let nonce = server.nonce();
    let upper = api_signature(APP_ID, &nonce, SECRET, server.now_s()).to_ascii_uppercase();
    let params = signed_params(PROBE, APP_ID, SECRET, &nonce, server.now_s()).set("Signature", &upper);
    assert_code(&probe(&server, params).await, SUCCESS);
}

#[tokio::test]
async fn a_replayed_nonce_answers_100000005() {
    let server = server_with_probe_user().await;
    let nonce = server.nonce();
    let params = signed_params(PROBE, APP_ID, SECRET, &nonce, server.now_s());
    assert_code(&probe(&server, params.clone()).await, SUCCESS);
    assert_code(&probe(&server, params).await, SIGNATURE_INVALID);
    // Still refused when re-signed with another timestamp, and for another action.
    server.advance_ms(5 * SECOND_MS);
    let resigned = signed_params(PROBE, APP_ID, SECRET, &nonce, server.now_s());
    assert_code(&probe(&server, resigned).await, SIGNATURE_INVALID);
    let other_action = signed_params("QueryUserInfos", APP_ID, SECRET, &nonce, server.now_s());
    let answer = server.raw(&other_action.query(), Some(br#"{"UserIds":["probe"]}"#.to_vec())).await;
    assert_code(&answer, SIGNATURE_INVALID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_replays_are_accepted_exactly_once() {
    let server = server_with_probe_user().await;
    let params = server.signed(PROBE);
    let answers = futures_util::future::join_all((0..8).map(|_| probe(&server, params.clone()))).await;
    let codes: Vec<u64> = answers.iter().map(support::code).collect();
    assert_eq!(codes.iter().filter(|c| **c == SUCCESS).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == SIGNATURE_INVALID).count(), 7, "{codes:?}");
}

#[tokio::test]
async fn a_replay_is_refused_for_as_long_as_its_timestamp_is_acceptable() {
    let server = server_with_probe_user().await;
    // Signed 10 minutes in the future: acceptable from now until 20 minutes from now.
    let nonce = server.nonce();
    let params = signed_params(PROBE, APP_ID, SECRET, &nonce, server.now_s() + 600);
    assert_code(&probe(&server, params.clone()).await, SUCCESS);
    server.advance_ms(1_200 * SECOND_MS);
    assert_code(&probe(&server, params.clone()).await, SIGNATURE_INVALID);
    server.advance_ms(SECOND_MS);
    assert_code(&probe(&server, params).await, SIGNATURE_EXPIRED);
}

#[tokio::test]
async fn a_replay_is_refused_after_a_restart() {
    let mut server = server_with_probe_user().await;
    let params = server.signed(PROBE);
    assert_code(&probe(&server, params.clone()).await, SUCCESS);
    server.restart().await;
    assert_code(&probe(&server, params).await, SIGNATURE_INVALID);
}

#[tokio::test]
async fn a_refused_request_does_not_use_up_its_nonce() {
    let server = server_with_probe_user().await;
    let nonce = server.nonce();
    let now = server.now_s();
    let wrong = signed_params(PROBE, APP_ID, SECRET, &nonce, now).set("Signature", &"0".repeat(32));
    assert_code(&probe(&server, wrong).await, SIGNATURE_INVALID);
    assert_code(&probe(&server, signed_params(PROBE, APP_ID, SECRET, &nonce, now)).await, SUCCESS);
}

#[tokio::test]
async fn nonces_are_remembered_per_app() {
    let tail = format!("{}{}", default_app(), app_toml(OTHER_APP_ID, OTHER_SECRET, "", ""));
    let server = Server::start_with(&tail).await;
    let body = r#"{"UserInfo":[{"UserId":"probe"}]}"#;
    let nonce = server.nonce();
    let now = server.now_s();
    for (app_id, secret) in [(APP_ID, SECRET), (OTHER_APP_ID, OTHER_SECRET)] {
        let params = signed_params("UserRegister", app_id, secret, &nonce, now);
        assert_code_for(&server.raw(&params.query(), Some(body.into())).await, SUCCESS, &app_id.to_string());
    }
}

#[tokio::test]
async fn unknown_query_parameters_are_ignored() {
    let server = server_with_probe_user().await;
    let params = server.signed(PROBE).add("IsTest", "true").add("Whatever", "1");
    assert_code(&probe(&server, params).await, SUCCESS);
}

#[tokio::test]
async fn methods_other_than_get_and_post_answer_an_error_in_the_common_shape() {
    let server = server_with_probe_user().await;
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::PATCH] {
        let query = server.signed(PROBE).add("UserId[]", "probe").query();
        let answer = server.raw_method(method.clone(), &query).await;
        assert_ne!(support::code(&answer), SUCCESS, "{method}: {answer}");
    }
}
