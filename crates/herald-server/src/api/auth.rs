//! Common query parameters and request signing (spec §2): every check has its own code and a
//! message that says what was wrong.

use super::error::ApiError;
use crate::config::AppConfig;
use herald_proto::signature;

/// Query parameters in arrival order; names may repeat (`UserId[]=a&UserId[]=b`).
#[derive(Debug, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Decodes `application/x-www-form-urlencoded` text, refusing bytes that are not UTF-8.
    pub fn parse(raw: &str) -> Result<Query, ApiError> {
        let mut pairs = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode_component(name)?, decode_component(value)?));
        }
        Ok(Query(pairs))
    }

    /// The first value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn decode_component(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => return Err(ApiError::param(format!("query has a malformed percent escape in {s:?}"))),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::param(format!("query parameter {s:?} is not valid UTF-8")))
}

/// The common parameters of a request, checked for presence and format.
#[derive(Debug)]
pub struct Common {
    pub action: String,
    pub app_id: u32,
    pub nonce: String,
    pub timestamp_s: i64,
    pub signature: String,
}

impl Common {
    pub fn from_query(q: &Query) -> Result<Common, ApiError> {
        let present = |name: &str| q.get(name).filter(|v| !v.is_empty());
        let action = present("Action").ok_or(ApiError::ActionMissing)?;
        let app_id = present("AppId").ok_or(ApiError::AppIdMissing)?;
        let app_id: u32 =
            app_id.parse().ok().filter(|id| *id != 0).ok_or_else(|| ApiError::AppIdFormat(app_id.to_string()))?;
        let nonce = present("SignatureNonce").ok_or(ApiError::NonceMissing)?;
        let timestamp = present("Timestamp").ok_or(ApiError::TimestampMissing)?;
        let timestamp_s: i64 = timestamp.parse().map_err(|_| ApiError::TimestampFormat(timestamp.to_string()))?;
        let signature = present("Signature").ok_or(ApiError::SignatureMissing)?;
        let version = present("SignatureVersion").ok_or(ApiError::SignatureVersionMissing)?;
        if version != "2.0" {
            return Err(ApiError::SignatureVersionUnsupported(version.to_string()));
        }
        Ok(Common {
            action: action.to_string(),
            app_id,
            nonce: nonce.to_string(),
            timestamp_s,
            signature: signature.to_string(),
        })
    }

    /// Checks the timestamp window and the md5 signature against the app's secret.
    pub fn verify(&self, app: &AppConfig, now_s: i64, window_s: u64) -> Result<(), ApiError> {
        let skew_s = now_s.abs_diff(self.timestamp_s);
        if skew_s > window_s {
            return Err(ApiError::TimestampSkew { timestamp_s: self.timestamp_s, now_s, skew_s, window_s });
        }
        let secret = app.server_secret.expose();
        if !signature::verify_api_signature(self.app_id, &self.nonce, secret, self.timestamp_s, &self.signature) {
            return Err(ApiError::SignatureMismatch);
        }
        Ok(())
    }
}
