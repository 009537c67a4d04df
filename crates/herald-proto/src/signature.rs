//! Request signatures: the server-API `Signature` (spec §2.3) and the callback `signature` (spec §7.6).

use md5::{Digest, Md5};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The server-API signature: lowercase hex of
/// `md5(str(app_id) + signature_nonce + server_secret + str(timestamp_s))`.
///
/// The body and the `Action` are not signed; that is ZIM's design, kept for compatibility.
pub fn api_signature(app_id: u32, signature_nonce: &str, server_secret: &str, timestamp_s: i64) -> String {
    hex::encode(api_digest(app_id, signature_nonce, server_secret, timestamp_s))
}

/// The query string of a signed server-API request: `Action`, the five common parameters (the
/// signature made with `server_secret`), then the `extra` pairs, all percent-encoded. The
/// caller picks the nonce: it must not repeat within the server's signature window.
pub fn signed_query(
    action: &str,
    app_id: u32,
    server_secret: &str,
    signature_nonce: &str,
    timestamp_s: i64,
    extra: &[(&str, &str)],
) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("Action", action)
        .append_pair("AppId", &app_id.to_string())
        .append_pair("SignatureNonce", signature_nonce)
        .append_pair("Timestamp", &timestamp_s.to_string())
        .append_pair("Signature", &api_signature(app_id, signature_nonce, server_secret, timestamp_s))
        .append_pair("SignatureVersion", "2.0");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    q.finish()
}

/// Checks a request's `Signature` against the expected one.
///
/// Hex case is ignored (ZIM clients send lowercase, but uppercase carries the same digest), and the
/// digests are compared in constant time so response timing does not leak how many bytes matched.
pub fn verify_api_signature(
    app_id: u32,
    signature_nonce: &str,
    server_secret: &str,
    timestamp_s: i64,
    given: &str,
) -> bool {
    let expected = api_digest(app_id, signature_nonce, server_secret, timestamp_s);
    // Decoding instead of lowercasing the string avoids an allocation and rejects non-hex input early;
    // the length is public (always 32 hex chars), so returning early on it leaks nothing.
    let mut given_bytes = [0u8; 16];
    if hex::decode_to_slice(given, &mut given_bytes).is_err() {
        return false;
    }
    expected.as_slice().ct_eq(&given_bytes).into()
}

fn api_digest(app_id: u32, signature_nonce: &str, server_secret: &str, timestamp_s: i64) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(app_id.to_string());
    md5.update(signature_nonce);
    md5.update(server_secret);
    md5.update(timestamp_s.to_string());
    md5.finalize().into()
}

/// The callback signature Herald puts on requests to the app server: lowercase hex of
/// `sha1(concat(sort([callback_secret, str(timestamp_s), nonce])))`.
///
/// The three parts are sorted as byte strings, which is what ZEGO's samples do with their language's
/// default string sort.
pub fn callback_signature(callback_secret: &str, timestamp_s: i64, nonce: &str) -> String {
    let timestamp = timestamp_s.to_string();
    let mut parts = [callback_secret, timestamp.as_str(), nonce];
    parts.sort_unstable();
    let mut sha1 = Sha1::new();
    for part in parts {
        sha1.update(part);
    }
    hex::encode(sha1.finalize())
}

/// Checks a callback signature in constant time, ignoring hex case. Useful to app-server test doubles.
pub fn verify_callback_signature(callback_secret: &str, timestamp_s: i64, nonce: &str, given: &str) -> bool {
    let expected = callback_signature(callback_secret, timestamp_s, nonce);
    let given = given.to_ascii_lowercase();
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The vectors file is tested in tests/vectors.rs; these cover the comparison rules.
    const SECRET: &str = "9193cc662a4c0ec135ec71fb57194b38";

    #[test]
    fn verify_accepts_either_case_and_rejects_everything_else() {
        let sig = api_signature(12345, "4fd24687296dd9f3", SECRET, 1615186943);
        assert_eq!(sig.len(), 32);
        assert!(sig.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(verify_api_signature(12345, "4fd24687296dd9f3", SECRET, 1615186943, &sig));
        assert!(verify_api_signature(12345, "4fd24687296dd9f3", SECRET, 1615186943, &sig.to_uppercase()));
        // Any input that changes the digest, and malformed digests, fail.
        assert!(!verify_api_signature(12346, "4fd24687296dd9f3", SECRET, 1615186943, &sig));
        assert!(!verify_api_signature(12345, "4fd24687296dd9f4", SECRET, 1615186943, &sig));
        assert!(!verify_api_signature(12345, "4fd24687296dd9f3", SECRET, 1615186944, &sig));
        assert!(!verify_api_signature(12345, "4fd24687296dd9f3", SECRET, 1615186943, &sig[..30]));
        assert!(!verify_api_signature(12345, "4fd24687296dd9f3", SECRET, 1615186943, ""));
        let not_hex = format!("{}zz", &sig[..30]);
        assert!(!verify_api_signature(12345, "4fd24687296dd9f3", SECRET, 1615186943, &not_hex));
    }

    #[test]
    fn callback_sort_is_independent_of_argument_roles() {
        // Sorting makes the digest depend only on the multiset of parts.
        let a = callback_signature("b", 1, "a");
        let b = callback_signature("a", 1, "b");
        assert_eq!(a, b);
        assert!(verify_callback_signature("b", 1, "a", &a.to_uppercase()));
        assert!(!verify_callback_signature("b", 2, "a", &a));
    }
}
