//! `herald call` and `herald send-all`: signed server-API requests from the command line.

use rand::Rng;

/// The query string of a signed request with a fresh random nonce: the common parameters plus
/// `extra` pairs.
pub fn signed_query(action: &str, app_id: u32, secret: &str, now_s: i64, extra: &[(String, String)]) -> String {
    let nonce: String = (0..8).map(|_| format!("{:02x}", rand::thread_rng().gen::<u8>())).collect();
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    herald_proto::signature::signed_query(action, app_id, secret, &nonce, now_s, &extra)
}

/// Sends one signed request: POST with `body` when given, otherwise GET. Returns the answer.
pub async fn call(
    url: &str,
    app_id: u32,
    secret: &str,
    action: &str,
    body: Option<&str>,
    extra: &[(String, String)],
    now_s: i64,
) -> Result<String, String> {
    if let Some(b) = body {
        serde_json::from_str::<serde_json::Value>(b).map_err(|e| format!("the JSON body is not valid JSON: {e}"))?;
    }
    let base = url.trim_end_matches('/');
    let full = format!("{base}/?{}", signed_query(action, app_id, secret, now_s, extra));
    let client = reqwest::Client::new();
    let req = match body {
        Some(b) => client.post(&full).header("content-type", "application/json").body(b.to_string()),
        None => client.get(&full),
    };
    let res = req.send().await.map_err(|e| format!("request to {base} failed: {e}"))?;
    let status = res.status();
    let text = res.text().await.map_err(|e| format!("cannot read the answer: {e}"))?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {text}"));
    }
    Ok(text)
}

/// The `SendMessageToAllUsers` body for a text broadcast.
pub fn send_all_body(from: &str, text: &str, push_type: u8) -> String {
    serde_json::json!({
        "FromUserId": from,
        "MessageType": 1,
        "MessageBody": {"Message": text},
        "PushType": push_type,
    })
    .to_string()
}
