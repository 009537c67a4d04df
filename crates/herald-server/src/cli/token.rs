//! `herald token new` and `herald token inspect`.

use herald_proto::token04::{self, Mode};

pub fn new_token(
    app_id: u32,
    user_id: &str,
    secret: &str,
    ttl_s: i64,
    mode: Mode,
    now_s: i64,
) -> Result<String, String> {
    token04::generate(app_id, user_id, secret, ttl_s, mode, now_s).map_err(|e| e.to_string())
}

/// The token's contents as one JSON object, or precisely why it cannot be read.
pub fn inspect(secret: &str, token: &str, now_s: i64) -> Result<String, String> {
    let decoded = token04::decode(token.trim(), secret).map_err(|e| e.to_string())?;
    let c = &decoded.claims;
    let out = serde_json::json!({
        "app_id": c.app_id,
        "user_id": c.user_id,
        "nonce": c.nonce,
        "ctime": c.ctime,
        "expire": c.expire,
        "payload": c.payload,
        "mode": decoded.mode.to_string(),
        "expired": c.expire <= now_s,
        "seconds_left": c.expire - now_s,
    });
    Ok(out.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "fa94dd0f974cf2e293728a526b028271";

    #[test]
    fn new_then_inspect_round_trips_both_modes() {
        for mode in [Mode::Cbc, Mode::Gcm] {
            let t = new_token(7, "alice", SECRET, 3600, mode, 1_700_000_000).unwrap();
            let v: serde_json::Value = serde_json::from_str(&inspect(SECRET, &t, 1_700_000_100).unwrap()).unwrap();
            assert_eq!(v["app_id"], 7);
            assert_eq!(v["user_id"], "alice");
            assert_eq!(v["expire"], 1_700_003_600);
            assert_eq!(v["mode"], mode.to_string());
            assert_eq!(v["expired"], false);
        }
    }

    #[test]
    fn inspect_says_why_it_cannot() {
        let t = new_token(7, "alice", SECRET, 3600, Mode::Cbc, 1_700_000_000).unwrap();
        assert!(inspect(SECRET, &t[2..], 0).unwrap_err().contains("04"));
        assert!(inspect(SECRET, "04!!!", 0).unwrap_err().contains("Base64"));
        let wrong = "00000000000000000000000000000000";
        assert!(!inspect(wrong, &t, 0).unwrap_err().is_empty());
        assert!(new_token(7, "alice", "short", 10, Mode::Cbc, 0).is_err());
    }
}
