//! The shared test vectors (copied from the spec into tests/vectors.json), checked byte for byte.

use herald_proto::signature::{api_signature, callback_signature, verify_api_signature, verify_callback_signature};
use herald_proto::token04::{self, Claims, Iv, Mode, TokenError};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors.json")).unwrap()
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    let items = v[key].as_array().unwrap();
    assert!(!items.is_empty(), "no {key} vectors");
    items
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} is not a string"))
}

fn i(v: &Value, key: &str) -> i64 {
    v[key].as_i64().unwrap_or_else(|| panic!("{key} is not an integer"))
}

#[test]
fn server_api_signature() {
    for case in list(&vectors(), "server_api_signature") {
        let app_id = u32::try_from(i(case, "app_id")).unwrap();
        let (nonce, secret, ts) = (s(case, "signature_nonce"), s(case, "server_secret"), i(case, "timestamp"));
        let expected = s(case, "signature");
        assert_eq!(api_signature(app_id, nonce, secret, ts), expected);
        assert!(verify_api_signature(app_id, nonce, secret, ts, expected));
        assert!(verify_api_signature(app_id, nonce, secret, ts, &expected.to_uppercase()));
        assert!(!verify_api_signature(app_id, nonce, secret, ts + 1, expected));
    }
}

#[test]
fn callback_signature_vector() {
    for case in list(&vectors(), "callback_signature") {
        let (secret, ts, nonce) = (s(case, "callback_secret"), i(case, "timestamp"), s(case, "nonce"));
        assert_eq!(callback_signature(secret, ts, nonce), s(case, "signature"));
        assert!(verify_callback_signature(secret, ts, nonce, s(case, "signature")));
    }
}

struct TokenCase {
    claims: Claims,
    secret: String,
    iv: Iv,
    token: String,
    mode: Mode,
    plaintext: Option<String>,
}

fn token_cases() -> Vec<TokenCase> {
    list(&vectors(), "token04")
        .iter()
        .map(|case| {
            let ctime = i(case, "ctime");
            let claims = Claims {
                app_id: u32::try_from(i(case, "app_id")).unwrap(),
                user_id: s(case, "user_id").to_owned(),
                nonce: i(case, "nonce"),
                ctime,
                expire: ctime + i(case, "eff"),
                payload: s(case, "payload").to_owned(),
            };
            let mode: Mode = s(case, "mode").parse().unwrap();
            let iv = match mode {
                Mode::Cbc => Iv::Cbc(s(case, "iv").as_bytes().try_into().unwrap()),
                Mode::Gcm => Iv::Gcm(hex::decode(s(case, "gcm_nonce_hex")).unwrap().try_into().unwrap()),
            };
            TokenCase {
                claims,
                secret: s(case, "secret").to_owned(),
                iv,
                token: s(case, "token").to_owned(),
                mode,
                plaintext: case.get("plaintext").and_then(Value::as_str).map(str::to_owned),
            }
        })
        .collect()
}

#[test]
fn token04_vectors_encode_byte_for_byte() {
    let cases = token_cases();
    assert!(cases.iter().any(|c| c.mode == Mode::Cbc) && cases.iter().any(|c| c.mode == Mode::Gcm));
    for case in &cases {
        assert_eq!(token04::encode_with(&case.secret, &case.claims, &case.iv).unwrap(), case.token, "{}", case.mode);
        if let Some(plaintext) = &case.plaintext {
            // The Python generator's compact JSON, which is also what CBC encrypts.
            assert_eq!(&serde_json::to_string(&case.claims).unwrap(), plaintext);
        }
    }
}

#[test]
fn token04_vectors_decode_and_verify_with_an_injected_clock() {
    for case in token_cases() {
        let c = &case.claims;
        let decoded = token04::decode(&case.token, &case.secret).unwrap();
        assert_eq!(decoded.claims, case.claims);
        assert_eq!(decoded.mode, case.mode);
        assert_eq!(decoded.outer_expire, c.expire);

        // Valid from issue until one second before expiry; expired at and after `expire`.
        for now in [c.ctime, c.expire - 1] {
            assert_eq!(token04::verify(&case.token, &case.secret, c.app_id, &c.user_id, now).unwrap(), decoded);
        }
        for now in [c.expire, c.expire + 1_000_000] {
            assert_eq!(
                token04::verify(&case.token, &case.secret, c.app_id, &c.user_id, now),
                Err(TokenError::Expired { expire: c.expire, now })
            );
        }
        assert_eq!(
            token04::verify(&case.token, &case.secret, c.app_id + 1, &c.user_id, c.ctime),
            Err(TokenError::AppIdMismatch { expected: c.app_id + 1, found: c.app_id })
        );
        assert_eq!(
            token04::verify(&case.token, &case.secret, c.app_id, "user2", c.ctime),
            Err(TokenError::UserIdMismatch { expected: "user2".into(), found: c.user_id.clone() })
        );
    }
}
