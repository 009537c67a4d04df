//! Offline push through FCM HTTP v1, against a local stand-in of Google's token endpoint and
//! FCM that verifies the RS256 service-account assertion with the account's public key and
//! checks the bearer token on every send. The provider code is the production code, pointed
//! at the stand-in by `base_url` and the service account's `token_uri`.

mod support;

use herald_store::PushProvider;
use serde_json::json;
use std::time::Duration;
use support::*;

fn config(fcm: &FcmStandIn, account: &std::path::Path) -> String {
    format!(
        "[push]\npoll_interval_ms = 100\n{}\
         [apps.push]\npage_size = 3\nmax_attempts = 4\nretry_base_ms = 20\nretry_max_ms = 3000\n\
         [apps.push.fcm]\nservice_account_file = \"{}\"\nbase_url = \"{}\"\nconcurrency = 4\n",
        app_toml(APP_ID, SECRET, "", ""),
        account.display(),
        fcm.base_url
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcm_pushes_with_a_cached_oauth2_token_removes_dead_tokens_and_retries() {
    let fcm = FcmStandIn::start(3600).await;
    let keys = tempfile::tempdir().unwrap();
    let account = fcm.service_account_file(keys.path());
    let server = Server::start_with(&config(&fcm, &account)).await;
    server.register(&[SENDER]).await;
    let store = server.store().await;
    let users = ["ok", "unregistered", "invalid", "throttled", "unavailable"];
    let bindings: Vec<_> =
        users.iter().map(|u| binding(APP_ID, u, "phone", &format!("fcm-{u}"), PushProvider::Fcm)).collect();
    bind_all(&store, &bindings).await;
    fcm.script("fcm-unregistered", &[FcmAnswer::unregistered()]);
    fcm.script("fcm-invalid", &[FcmAnswer::invalid_token()]);
    fcm.script("fcm-throttled", &[FcmAnswer::throttled(1)]);
    fcm.script("fcm-unavailable", &[FcmAnswer::unavailable(), FcmAnswer::unavailable()]);

    let push = json!({"Title": "T", "Content": "C", "Payload": "P", "EnableBadge": true, "BadgeIncrement": 2,
        "ThreadId": "th", "PushImageInfo": {"Android": {"FCM": {"Image": "https://i/f.png"}}}});
    let id = server.broadcast_push(2, json!({"Message": "m", "OfflinePush": push})).await;
    let r = server.wait_push_done(&id).await;
    assert_eq!(counts(&r), [5, 3, 0, 2, 0], "targeted, sent, failed, removed, skipped online: {r}");
    assert_eq!(fcm.delivered_tokens(), ["fcm-ok", "fcm-throttled", "fcm-unavailable"]);
    assert_eq!(fcm.attempts("fcm-throttled"), 2, "429 retried after Retry-After");
    assert_eq!(fcm.attempts("fcm-unavailable"), 3, "503 retried twice");
    assert_eq!(fcm.token_requests(), 1, "one OAuth2 exchange, cached for the whole job");
    for gone in ["unregistered", "invalid"] {
        assert!(store.push_bindings_of(APP_ID, gone).await.unwrap().is_empty(), "{gone}: binding removed");
    }
    assert_eq!(store.push_bindings_of(APP_ID, "ok").await.unwrap().len(), 1);
    let sent = fcm.delivered().into_iter().find(|m| m["message"]["token"] == "fcm-ok").unwrap();
    assert_eq!(
        sent["message"],
        json!({
            "token": "fcm-ok",
            "notification": {"title": "T", "body": "C", "image": "https://i/f.png"},
            "data": {"payload": "P", "message_id": id, "from_user_id": SENDER},
            "android": {"notification": {"notification_count": 2}},
            "apns": {"payload": {"aps": {"thread-id": "th", "badge": 2}}},
        })
    );
    fcm.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcm_refreshes_the_bearer_token_before_it_expires() {
    // Tokens live 2 s; the provider refreshes after three quarters of that.
    let fcm = FcmStandIn::start(2).await;
    let keys = tempfile::tempdir().unwrap();
    let account = fcm.service_account_file(keys.path());
    let server = Server::start_with(&config(&fcm, &account)).await;
    server.register(&[SENDER]).await;
    let store = server.store().await;
    bind_all(&store, &[binding(APP_ID, "u", "phone", "fcm-u", PushProvider::Fcm)]).await;

    let first = server.broadcast_push(2, json!({"Message": "one"})).await;
    server.wait_push_done(&first).await;
    assert_eq!(fcm.token_requests(), 1);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    server.advance_ms(SECOND_MS);
    let second = server.broadcast_push(2, json!({"Message": "two"})).await;
    let r = server.wait_push_done(&second).await;
    assert_eq!(counts(&r)[1], 1, "sent with a fresh token: {r}");
    assert_eq!(fcm.token_requests(), 2, "the token was refreshed before it expired");
    fcm.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcm_fetches_a_new_bearer_token_after_a_401() {
    let fcm = FcmStandIn::start(3600).await;
    let keys = tempfile::tempdir().unwrap();
    let account = fcm.service_account_file(keys.path());
    let server = Server::start_with(&config(&fcm, &account)).await;
    server.register(&[SENDER]).await;
    let store = server.store().await;
    bind_all(&store, &[binding(APP_ID, "u", "phone", "fcm-u", PushProvider::Fcm)]).await;
    let unauthenticated = FcmAnswer {
        status: 401,
        error: Some(json!({"code": 401, "message": "Request had invalid authentication credentials.",
            "status": "UNAUTHENTICATED"})),
        retry_after: None,
    };
    fcm.script("fcm-u", &[unauthenticated]);
    let id = server.broadcast_push(2, json!({"Message": "m"})).await;
    let r = server.wait_push_done(&id).await;
    assert_eq!(counts(&r), [1, 1, 0, 0, 0], "{r}");
    assert_eq!(fcm.token_requests(), 2, "the refused bearer token was replaced");
    fcm.assert_no_problems();
}
