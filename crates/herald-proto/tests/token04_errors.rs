//! Every way a Token04 can be refused, built by editing the spec's CBC and GCM vector tokens.

use aes_gcm::aead::{Aead, KeyInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use herald_proto::token04::{self, Mode, TokenError};

const SECRET: &str = "fa94dd0f974cf2e293728a526b028271";
const OTHER_SECRET: &str = "00000000000000000000000000000000";
const APP: u32 = 1234567890;
const NOW: i64 = 1700000000;
const CBC: &str = "04AAAAAGVT/xAAEDAxMjM0NTY3ODlhYmNkZWYAcK/oyydKytM1aQ+0EzyZaCrKfJWJQIVBzfCfER5aaXlYVWhM9hV86d0kI2fSypVBvev00tVGYB097qTYwSou2PNVur/20fg1KvNMbFlHdPty17aH1X6T+9xMEcBoa7g1gpH5nXTwww7336Ga5zGk9D4=";
const GCM: &str = "04AAAAAGVT/xAADAABAgMEBQYHCAkKCwB9lo4HRoGUdkuLbKI2K1efMONOIJKPVOKQRseifp3N7SQOyJZ7O08V02KwsfUy39h8YALo4ZkDpG+gR5p6fXtBSZW2eQjDKlCHM1ZfZNjbRpnNoQ02IlcuEzA36k47sDGeYgSyEeTrBBfv8RaAxV6zeDs1CuN1fGLNmOjCT18B";

fn buffer(token: &str) -> Vec<u8> {
    STANDARD.decode(&token[2..]).unwrap()
}

fn token(buf: &[u8]) -> String {
    format!("04{}", STANDARD.encode(buf))
}

fn verify(token: &str) -> Result<token04::Decoded, TokenError> {
    token04::verify(token, SECRET, APP, "user1", NOW)
}

/// A CBC token around an arbitrary plaintext, to reach the JSON checks.
fn cbc_token(plaintext: &[u8]) -> String {
    let iv = *b"0123456789abcdef";
    let ct = cbc::Encryptor::<aes::Aes256>::new(SECRET.as_bytes().into(), (&iv).into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let mut buf = 1700003600i64.to_be_bytes().to_vec();
    buf.extend_from_slice(&16u16.to_be_bytes());
    buf.extend_from_slice(&iv);
    buf.extend_from_slice(&(ct.len() as u16).to_be_bytes());
    buf.extend_from_slice(&ct);
    token(&buf)
}

#[test]
fn the_vectors_are_valid_to_start_with() {
    assert_eq!(verify(CBC).unwrap().mode, Mode::Cbc);
    assert_eq!(verify(GCM).unwrap().mode, Mode::Gcm);
    assert_eq!(buffer(CBC).len(), 140);
}

#[test]
fn version_mismatch() {
    for bad in ["", "0", "4AAAA", "03AAAAAGVT", "05AAAA", &CBC[1..], &format!(" {CBC}")] {
        assert_eq!(verify(bad).unwrap_err(), TokenError::VersionMismatch, "{bad:?}");
    }
    assert_eq!(verify("03x").unwrap_err().sdk_code(), 6000107);
}

#[test]
fn bad_base64() {
    for bad in ["04!!!!", "04AAAA*AAA", "04A", "04AAAAA", "04AAAA====", "04-_-_", &format!("{CBC}\n")] {
        assert_eq!(verify(bad).unwrap_err(), TokenError::BadBase64, "{bad:?}");
    }
}

#[test]
fn padding_may_be_stripped() {
    assert!(verify(CBC.trim_end_matches('=')).is_ok());
}

#[test]
fn truncated_at_every_length() {
    let cbc = buffer(CBC);
    for len in 0..cbc.len() {
        assert_eq!(verify(&token(&cbc[..len])).unwrap_err(), TokenError::Truncated, "cbc prefix {len}");
    }
    // A GCM buffer without its mode byte would parse as CBC with a 12-byte IV, so stop before it.
    let gcm = buffer(GCM);
    for len in 0..gcm.len() - 1 {
        assert_eq!(verify(&token(&gcm[..len])).unwrap_err(), TokenError::Truncated, "gcm prefix {len}");
    }
    assert_eq!(
        verify(&token(&gcm[..gcm.len() - 1])).unwrap_err(),
        TokenError::BadIvLength { mode: Mode::Cbc, expected: 16, found: 12 }
    );
    assert_eq!(verify(&token(&cbc[..50])).unwrap_err().sdk_code(), 6000103);
}

#[test]
fn trailing_bytes() {
    for (base, extra) in [(CBC, &[0x02][..]), (CBC, &[0, 0]), (CBC, &[1, 0]), (GCM, &[0]), (GCM, &[1])] {
        let mut buf = buffer(base);
        buf.extend_from_slice(extra);
        assert_eq!(verify(&token(&buf)).unwrap_err(), TokenError::TrailingBytes, "{extra:?}");
    }
    // A lone 0x00 after a CBC ciphertext is tolerated (spec §5.3).
    let mut buf = buffer(CBC);
    buf.push(0);
    assert_eq!(verify(&token(&buf)).unwrap().mode, Mode::Cbc);
}

#[test]
fn bad_secret_length() {
    for secret in ["", "short", &SECRET[..31], &format!("{SECRET}0")] {
        assert_eq!(token04::decode(CBC, secret).unwrap_err(), TokenError::BadSecretLength, "{secret:?}");
    }
}

#[test]
fn wrong_iv_length_for_the_mode() {
    // A CBC layout marked as GCM: the 16-byte IV cannot be a GCM nonce.
    let mut buf = buffer(CBC);
    buf.push(1);
    assert_eq!(verify(&token(&buf)).unwrap_err(), TokenError::BadIvLength { mode: Mode::Gcm, expected: 12, found: 16 });
}

#[test]
fn decrypt_failed() {
    for t in [CBC, GCM] {
        assert_eq!(token04::verify(t, OTHER_SECRET, APP, "user1", NOW).unwrap_err(), TokenError::DecryptFailed);
    }
    // GCM authenticates every byte of the ciphertext and tag.
    let gcm = buffer(GCM);
    for at in [24, 60, gcm.len() - 2] {
        let mut buf = gcm.clone();
        buf[at] ^= 1;
        assert_eq!(verify(&token(&buf)).unwrap_err(), TokenError::DecryptFailed, "byte {at}");
    }
    // The nonce is authenticated through the key stream.
    let mut buf = gcm.clone();
    buf[10] ^= 1;
    assert_eq!(verify(&token(&buf)).unwrap_err(), TokenError::DecryptFailed);
    // CBC: the last block decides the padding; a ciphertext that is not whole blocks cannot decrypt.
    let mut buf = buffer(CBC);
    let last = buf.len() - 1;
    buf[last] ^= 0x55;
    assert_eq!(verify(&token(&buf)).unwrap_err(), TokenError::DecryptFailed);
    let mut buf = buffer(CBC);
    buf.pop();
    buf[27] -= 1; // ctLen 112 -> 111
    assert_eq!(verify(&token(&buf)).unwrap_err(), TokenError::DecryptFailed);
    let mut buf = buffer(CBC)[..28].to_vec();
    buf[26..28].copy_from_slice(&[0, 0]);
    assert_eq!(verify(&token(&buf)).unwrap_err(), TokenError::DecryptFailed);
}

#[test]
fn bad_json() {
    for plaintext in [
        &b"not json"[..],
        b"{\"app_id\":1234567890}",
        b"[]",
        b"{\"app_id\":-1,\"user_id\":\"u\",\"nonce\":1,\"ctime\":1,\"expire\":2}",
    ] {
        let err = verify(&cbc_token(plaintext)).unwrap_err();
        assert!(matches!(err, TokenError::BadJson(_)), "{err:?}");
        assert_eq!(err.sdk_code(), 6000103);
        assert_eq!(err.to_string(), "token plaintext is not valid claims JSON", "no decrypted text in it");
    }
    // Same through GCM.
    let nonce = [7u8; 12];
    let ct = aes_gcm::Aes256Gcm::new(SECRET.as_bytes().into()).encrypt((&nonce).into(), &b"{}"[..]).unwrap();
    let mut buf = 0i64.to_be_bytes().to_vec();
    buf.extend_from_slice(&12u16.to_be_bytes());
    buf.extend_from_slice(&nonce);
    buf.extend_from_slice(&(ct.len() as u16).to_be_bytes());
    buf.extend_from_slice(&ct);
    buf.push(1);
    assert!(matches!(verify(&token(&buf)), Err(TokenError::BadJson(_))));
}

#[test]
fn claims_parse_in_any_key_order_without_payload_and_with_extra_keys() {
    // Go's key order, the web sample's missing payload, and a key from some future generator.
    let plaintext =
        br#"{"app_id":1234567890,"user_id":"user1","ctime":1700000000,"expire":1700003600,"nonce":-5,"extra":[1]}"#;
    let decoded = verify(&cbc_token(plaintext)).unwrap();
    assert_eq!(decoded.claims.nonce, -5);
    assert_eq!(decoded.claims.payload, "");
}

#[test]
fn expiry_is_judged_on_the_encrypted_claims_not_the_outer_header() {
    // The outer expire is plaintext anyone can edit; pushing it forward must not extend the token.
    let mut buf = buffer(CBC);
    buf[..8].copy_from_slice(&i64::MAX.to_be_bytes());
    let t = token(&buf);
    assert_eq!(token04::decode(&t, SECRET).unwrap().outer_expire, i64::MAX);
    assert_eq!(
        token04::verify(&t, SECRET, APP, "user1", 1700003600),
        Err(TokenError::Expired { expire: 1700003600, now: 1700003600 })
    );
}

#[test]
fn mismatches_and_expiry_have_their_sdk_codes() {
    let app = token04::verify(CBC, SECRET, 1, "user1", NOW).unwrap_err();
    assert_eq!((app.sdk_code(), app.to_string().as_str()), (6000101, "token was issued for another app, not app 1"));
    assert!(matches!(app, TokenError::AppIdMismatch { found: 1234567890, .. }), "the caller still learns it: {app:?}");
    let user = token04::verify(CBC, SECRET, APP, "bob", NOW).unwrap_err();
    assert_eq!(
        (user.sdk_code(), user.to_string().as_str()),
        (6000103, "token was issued for another user, not user \"bob\"")
    );
    let expired = token04::verify(GCM, SECRET, APP, "user1", 1700003600).unwrap_err();
    assert_eq!(
        (expired.sdk_code(), expired.to_string().as_str()),
        (6000106, "token expired at 1700003600 (Unix seconds); it is now 1700003600")
    );
}

#[test]
fn every_error_message_is_a_sentence() {
    let errors = [
        TokenError::VersionMismatch,
        TokenError::BadBase64,
        TokenError::Truncated,
        TokenError::TrailingBytes,
        TokenError::BadSecretLength,
        TokenError::BadIvLength { mode: Mode::Cbc, expected: 16, found: 3 },
        TokenError::DecryptFailed,
        TokenError::BadJson("missing field `user_id`".into()),
        TokenError::AppIdMismatch { expected: 1, found: 2 },
        TokenError::UserIdMismatch { expected: "a".into(), found: "b".into() },
        TokenError::Expired { expire: 1, now: 2 },
        TokenError::InvalidInput("ttl must be positive, got 0 s".into()),
    ];
    for err in errors {
        let msg = err.to_string();
        assert!(msg.len() > 20 && msg.starts_with(|c: char| c.is_lowercase()) && !msg.ends_with('.'), "{msg}");
    }
}

/// What a token decrypted to stays out of every message: a bit-flipped CBC token once came back
/// as "issued for app 12245…", echoing its decrypted bytes.
#[test]
fn refusals_never_echo_the_decrypted_claims() {
    for (err, secret) in [
        (TokenError::AppIdMismatch { expected: 1, found: 1_224_537_777 }, "1224537777"),
        (TokenError::UserIdMismatch { expected: "a".into(), found: "decrypted-user".into() }, "decrypted-user"),
        (TokenError::BadJson("invalid type: string \"zq-decrypted\", expected u32".into()), "zq-decrypted"),
    ] {
        let msg = err.to_string();
        assert!(!msg.contains(secret), "{msg}");
    }
}
