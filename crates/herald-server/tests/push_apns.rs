//! Offline push through APNs, against a local HTTP/2 + TLS stand-in that verifies the ES256
//! provider token with the `.p8` key's public half and checks the `apns-*` headers. The
//! provider code is the production code, pointed at the stand-in by `base_url` and `ca_file`.

mod support;

use herald_store::PushProvider;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apns_pushes_over_one_http2_connection_removes_dead_tokens_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (apns, files) = ApnsStandIn::start(dir.path()).await;
    let config = format!(
        "[push]\npoll_interval_ms = 100\n{}\
         [apps.push]\npage_size = 4\nmax_attempts = 4\nretry_base_ms = 20\nretry_max_ms = 3000\n\
         [apps.push.apns]\nkey_file = \"{}\"\nkey_id = \"{APNS_KEY_ID}\"\nteam_id = \"{APNS_TEAM_ID}\"\n\
         topic = \"{APNS_TOPIC}\"\nbase_url = \"{}\"\nca_file = \"{}\"\nconcurrency = 8\n",
        app_toml(APP_ID, SECRET, "", ""),
        files.key_file.display(),
        apns.base_url,
        files.ca_file.display()
    );
    let server = Server::start_with(&config).await;
    server.register(&[SENDER]).await;
    let store = server.store().await;
    let mut users: Vec<String> = (0..6).map(|i| format!("ok{i}")).collect();
    users.extend(["unregistered", "bad", "throttled", "broken"].map(String::from));
    let bindings: Vec<_> =
        users.iter().map(|u| binding(APP_ID, u, "iphone", &format!("apns-{u}"), PushProvider::Apns)).collect();
    bind_all(&store, &bindings).await;
    apns.script("apns-unregistered", &[(410, "Unregistered", None)]);
    apns.script("apns-bad", &[(400, "BadDeviceToken", None)]);
    apns.script("apns-throttled", &[(429, "TooManyRequests", Some(1))]);
    apns.script("apns-broken", &[(500, "InternalServerError", None), (503, "ServiceUnavailable", None)]);

    let push = json!({"Title": "T", "Content": "C", "Payload": "P", "EnableBadge": true, "BadgeIncrement": 3,
        "ThreadId": "th", "PushImageInfo": {"Apns": {"Image": "https://i/a.png"}}});
    let id = server.broadcast_push(2, json!({"Message": "m", "OfflinePush": push})).await;
    let r = server.wait_push_done(&id).await;
    assert_eq!(counts(&r), [10, 8, 0, 2, 0], "targeted, sent, failed, removed, skipped online: {r}");
    let mut want: Vec<String> = (0..6).map(|i| format!("apns-ok{i}")).collect();
    want.extend(["apns-broken", "apns-throttled"].map(String::from));
    want.sort();
    assert_eq!(apns.delivered_tokens(), want);
    assert_eq!(apns.attempts("apns-throttled"), 2, "429 retried");
    assert_eq!(apns.attempts("apns-broken"), 3, "500 and 503 retried");
    for gone in ["unregistered", "bad"] {
        assert!(store.push_bindings_of(APP_ID, gone).await.unwrap().is_empty(), "{gone}: binding removed");
    }
    assert_eq!(apns.connections(), 1, "every request multiplexed over one HTTP/2 connection");
    assert_eq!(apns.provider_tokens(), 1, "one provider token reused for every request");
    let (_, headers, body) = apns.delivered().into_iter().find(|(t, _, _)| t == "apns-ok0").unwrap();
    assert_eq!(headers["apns-collapse-id"], id);
    assert_eq!(
        body,
        json!({
            "aps": {"alert": {"title": "T", "body": "C"}, "badge": 3, "thread-id": "th", "mutable-content": 1},
            "payload": "P", "message_id": id, "from_user_id": SENDER, "image_url": "https://i/a.png",
        })
    );
    apns.assert_no_problems();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apns_replaces_a_provider_token_it_calls_expired() {
    let dir = tempfile::tempdir().unwrap();
    let (apns, files) = ApnsStandIn::start(dir.path()).await;
    let config = format!(
        "[push]\npoll_interval_ms = 100\n{}\
         [apps.push]\nretry_base_ms = 20\n\
         [apps.push.apns]\nkey_file = \"{}\"\nkey_id = \"{APNS_KEY_ID}\"\nteam_id = \"{APNS_TEAM_ID}\"\n\
         topic = \"{APNS_TOPIC}\"\nbase_url = \"{}\"\nca_file = \"{}\"\n",
        app_toml(APP_ID, SECRET, "", ""),
        files.key_file.display(),
        apns.base_url,
        files.ca_file.display()
    );
    let server = Server::start_with(&config).await;
    server.register(&[SENDER]).await;
    let store = server.store().await;
    bind_all(&store, &[binding(APP_ID, "u", "iphone", "apns-u", PushProvider::Apns)]).await;
    apns.script("apns-u", &[(403, "ExpiredProviderToken", None)]);
    let id = server.broadcast_push(2, json!({"Message": "m"})).await;
    let r = server.wait_push_done(&id).await;
    assert_eq!(counts(&r), [1, 1, 0, 0, 0], "{r}");
    assert_eq!(apns.attempts("apns-u"), 2);
    assert_eq!(apns.provider_tokens(), 2, "a new provider token after ExpiredProviderToken");
    apns.assert_no_problems();
}
