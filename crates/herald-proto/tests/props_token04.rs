//! Property tests of Token04, the login credential every client presents: any string is refused or
//! decoded, never a panic; generate and verify agree for any app, user, ttl and clock; a valid
//! token changed anywhere the secret covers is refused; and a refusal never shows what a token
//! decrypted to.
//!
//! On CBC: it has no MAC, so a changed ciphertext decrypts to something. A flip in the IV changes
//! one bit of the first plaintext block (`{"app_id":…`), which the JSON, app and user checks always
//! catch; a flip in the ciphertext turns a whole 16-byte block into noise, which would have to be
//! valid UTF-8 and valid JSON in place to pass (well under one chance in a billion per case).

use aes_gcm::aead::{Aead, KeyInit};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use herald_proto::token04::{self, Claims, Iv, Mode, TokenError};
use proptest::prelude::*;
use proptest::sample::Index;

/// How `token04::decode` reads Base64: padding optional.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The SDK error numbers a token refusal may carry (docs/protocol.md).
const SDK_CODES: &[u32] = &[6000101, 6000103, 6000106, 6000107];

const NOW: i64 = 1_700_000_000;

fn secret() -> impl Strategy<Value = String> {
    "[ -~]{32}"
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Cbc), Just(Mode::Gcm)]
}

/// Claims of a token valid at `NOW`, for an app and user from the whole range.
fn claims() -> impl Strategy<Value = Claims> {
    (1u32.., user_id(), any::<i64>(), 1i64..1 << 40, "\\PC{0,20}").prop_map(|(app_id, user_id, nonce, ttl, payload)| {
        Claims { app_id, user_id, nonce, ctime: NOW, expire: NOW + ttl, payload }
    })
}

/// Any non-empty string: Token04 itself puts no rule on user ids (the gateway checks them).
fn user_id() -> impl Strategy<Value = String> {
    "\\PC{1,40}"
}

fn buffer(token: &str) -> Vec<u8> {
    LENIENT.decode(&token[2..]).expect("a token made here is Base64")
}

fn token(buf: &[u8]) -> String {
    format!("04{}", STANDARD.encode(buf))
}

/// A CBC token around any plaintext, encrypted with the right secret: what a forger who could
/// choose the plaintext would send, and what a corrupted ciphertext decrypts to.
fn cbc_token(secret: &str, plaintext: &[u8], iv: [u8; 16]) -> String {
    let ct = cbc::Encryptor::<aes::Aes256>::new(secret.as_bytes().into(), (&iv).into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let mut buf = (NOW + 3600).to_be_bytes().to_vec();
    buf.extend_from_slice(&16u16.to_be_bytes());
    buf.extend_from_slice(&iv);
    buf.extend_from_slice(&(ct.len() as u16).to_be_bytes());
    buf.extend_from_slice(&ct);
    token(&buf)
}

/// A GCM token around any plaintext (authenticated, so only a holder of the secret makes one).
fn gcm_token(secret: &str, plaintext: &[u8], nonce: [u8; 12]) -> String {
    let ct = aes_gcm::Aes256Gcm::new(secret.as_bytes().into()).encrypt((&nonce).into(), plaintext).unwrap();
    let mut buf = (NOW + 3600).to_be_bytes().to_vec();
    buf.extend_from_slice(&12u16.to_be_bytes());
    buf.extend_from_slice(&nonce);
    buf.extend_from_slice(&(ct.len() as u16).to_be_bytes());
    buf.extend_from_slice(&ct);
    buf.push(0x01);
    token(&buf)
}

/// Whether a changed buffer still means the original token: only the outer `expire` (bytes 0..8,
/// not covered by the secret) differs, or a CBC token gained the lone `0x00` that also means CBC.
fn same_token(original: &[u8], changed: &[u8], mode: Mode) -> bool {
    if changed.len() < 8 {
        return false;
    }
    let (a, b) = (&original[8..], &changed[8..]);
    a == b || (mode == Mode::Cbc && b.len() == a.len() + 1 && b.starts_with(a) && b[a.len()] == 0x00)
}

/// Every refusal carries one of the documented SDK codes and a sentence.
fn assert_refusal(err: &TokenError) -> Result<(), TestCaseError> {
    prop_assert!(SDK_CODES.contains(&err.sdk_code()), "{err:?} has code {}", err.sdk_code());
    prop_assert!(!err.to_string().is_empty());
    Ok(())
}

/// A token's binary layout with every length free, so decoding gets past Base64 into the layout
/// checks and the ciphers.
fn layout_bytes() -> impl Strategy<Value = Vec<u8>> {
    let iv_len = prop_oneof![Just(12usize), Just(16), 0usize..40];
    let ct_len = prop_oneof![0usize..80, (1usize..8).prop_map(|n| n * 16)];
    let tail = prop_oneof![Just(vec![]), Just(vec![0x00]), Just(vec![0x01]), prop::collection::vec(any::<u8>(), 0..4)];
    (any::<i64>(), iv_len, ct_len, -2i32..=2, -2i32..=2, tail, any::<u64>()).prop_map(
        |(expire, iv_len, ct_len, iv_off, ct_off, tail, seed)| {
            let noise = |n: usize, salt: u64| -> Vec<u8> {
                (0..n)
                    .map(|i| (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64 ^ salt) >> 29) as u8)
                    .collect()
            };
            let mut buf = expire.to_be_bytes().to_vec();
            buf.extend_from_slice(&((iv_len as i32 + iv_off).clamp(0, 0xFFFF) as u16).to_be_bytes());
            buf.extend(noise(iv_len, 1));
            buf.extend_from_slice(&((ct_len as i32 + ct_off).clamp(0, 0xFFFF) as u16).to_be_bytes());
            buf.extend(noise(ct_len, 2));
            buf.extend(tail);
            buf
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any string with any secret string: an answer, never a panic; a refusal has its code.
    #[test]
    fn any_string_is_refused_or_decoded(token in any::<String>(), secret in any::<String>(), prefixed in any::<bool>()) {
        let token = if prefixed { format!("04{token}") } else { token };
        let _ = token04::decode(&token, &secret);
        if let Err(e) = token04::verify(&token, &secret, 1, "u", NOW) {
            assert_refusal(&e)?;
        }
    }

    /// Any bytes behind "04" in Base64 reach the layout checks; with the right secret length
    /// they reach the ciphers. Nobody without the secret gets a token through.
    #[test]
    fn any_buffer_is_refused(
        buf in prop_oneof![prop::collection::vec(any::<u8>(), 0..200), layout_bytes()],
        secret in secret(),
        user in user_id(),
    ) {
        let t = token(&buf);
        let err = token04::verify(&t, &secret, 1234567890, &user, NOW).expect_err("a random buffer verified");
        assert_refusal(&err)?;
        // Stripped padding is read the same way.
        let stripped = t.trim_end_matches('=');
        prop_assert_eq!(token04::verify(stripped, &secret, 1234567890, &user, NOW).unwrap_err(), err);
    }

    /// Generate then verify agrees for any app id, any user id, any ttl and any clock; the token is
    /// valid until `now + ttl` and not at it, and only for its app, its user and its secret.
    #[test]
    fn generate_then_verify_round_trips(
        app_id in 1u32..,
        user in user_id(),
        ttl in prop_oneof![1i64..100_000, 1i64..=i64::MAX],
        now in prop_oneof![Just(NOW), any::<i64>()],
        mode in mode(),
        secret in secret(),
        other_secret in secret(),
        other_user in user_id(),
    ) {
        let Some(expire) = now.checked_add(ttl) else {
            let refused = token04::generate(app_id, &user, &secret, ttl, mode, now);
            prop_assert!(matches!(refused, Err(TokenError::InvalidInput(_))), "{refused:?}");
            return Ok(());
        };
        let t = token04::generate(app_id, &user, &secret, ttl, mode, now).unwrap();
        let d = token04::verify(&t, &secret, app_id, &user, now).unwrap();
        prop_assert_eq!(d.mode, mode);
        prop_assert_eq!((d.claims.app_id, &d.claims.user_id), (app_id, &user));
        prop_assert_eq!((d.claims.ctime, d.claims.expire, d.outer_expire), (now, expire, expire));
        prop_assert!(token04::verify(&t, &secret, app_id, &user, expire - 1).is_ok());
        let expired = token04::verify(&t, &secret, app_id, &user, expire).unwrap_err();
        prop_assert_eq!(expired, TokenError::Expired { expire, now: expire });
        let other_app = app_id.wrapping_add(1).max(1);
        let wrong_app = token04::verify(&t, &secret, other_app, &user, now);
        prop_assert!(matches!(wrong_app, Err(TokenError::AppIdMismatch { .. })), "{:?}", wrong_app);
        if other_user != user {
            let wrong_user = token04::verify(&t, &secret, app_id, &other_user, now);
            prop_assert!(matches!(wrong_user, Err(TokenError::UserIdMismatch { .. })), "{:?}", wrong_user);
        }
        if other_secret != secret {
            let err = token04::verify(&t, &other_secret, app_id, &user, now).expect_err("another secret verified");
            assert_refusal(&err)?;
        }
    }

    /// Generate refuses exactly the inputs the official generators refuse.
    #[test]
    fn generate_checks_its_inputs(
        app_id in prop_oneof![Just(0u32), any::<u32>()],
        user in prop_oneof![Just(String::new()), user_id()],
        secret in prop_oneof![secret(), "\\PC{0,40}"],
        ttl in prop_oneof![Just(0i64), any::<i64>()],
        mode in mode(),
    ) {
        let result = token04::generate(app_id, &user, &secret, ttl, mode, NOW);
        let ok = app_id != 0 && !user.is_empty() && secret.len() == 32 && ttl > 0 && NOW.checked_add(ttl).is_some();
        prop_assert_eq!(result.is_ok(), ok, "{:?}", result);
        if secret.len() != 32 && app_id != 0 && !user.is_empty() {
            prop_assert_eq!(result.unwrap_err(), TokenError::BadSecretLength);
        }
    }

    /// Flip any one bit of a valid token's buffer: refused, unless the bit is in the outer
    /// `expire`, which the secret does not cover and verification does not trust (the claims'
    /// `expire` decides).
    #[test]
    fn a_bit_flip_is_refused_unless_in_the_outer_expire(
        claims in claims(),
        mode in mode(),
        iv_seed in any::<[u8; 16]>(),
        secret in secret(),
        bit in any::<Index>(),
    ) {
        let iv = match mode {
            Mode::Cbc => Iv::Cbc(iv_seed),
            Mode::Gcm => Iv::Gcm(iv_seed[..12].try_into().unwrap()),
        };
        let original = token04::encode_with(&secret, &claims, &iv).unwrap();
        let mut buf = buffer(&original);
        let bit = bit.index(buf.len() * 8);
        buf[bit / 8] ^= 1 << (bit % 8);
        let result = token04::verify(&token(&buf), &secret, claims.app_id, &claims.user_id, NOW);
        if bit < 64 {
            let d = result.unwrap();
            prop_assert_eq!(&d.claims, &claims);
            // Byte 0 is the most significant of the big-endian i64.
            prop_assert_eq!(d.outer_expire, claims.expire ^ (1i64 << (8 * (7 - bit / 8) + bit % 8)));
        } else {
            let err = result.expect_err("a flipped token verified");
            assert_refusal(&err)?;
            if mode == Mode::Gcm {
                // Authenticated: whatever the flip, nothing is decrypted.
                prop_assert!(
                    !matches!(err, TokenError::BadJson(_) | TokenError::AppIdMismatch { .. } | TokenError::UserIdMismatch { .. }),
                    "GCM decrypted a flipped token: {:?}", err
                );
            }
        }
    }

    /// Edit the token text (flip a bit of a char, delete, insert or append a char, cut it short):
    /// accepted exactly when the bytes it decodes to are still the same token.
    #[test]
    fn an_edited_token_is_refused_unless_it_is_the_same_token(
        claims in claims(),
        mode in mode(),
        iv_seed in any::<[u8; 16]>(),
        secret in secret(),
        at in any::<Index>(),
        edit in 0u8..5,
        bit in 0u8..7,
        ch in prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=".to_vec()),
    ) {
        let iv = match mode {
            Mode::Cbc => Iv::Cbc(iv_seed),
            Mode::Gcm => Iv::Gcm(iv_seed[..12].try_into().unwrap()),
        };
        let original = token04::encode_with(&secret, &claims, &iv).unwrap();
        let mut text = original.clone().into_bytes();
        let i = at.index(text.len());
        match edit {
            0 => text[i] ^= 1 << bit,
            1 => {
                text.remove(i);
            }
            2 => text.insert(i, ch),
            3 => text.push(ch),
            _ => text.truncate(i),
        }
        let edited = String::from_utf8(text).expect("ASCII stays ASCII");
        let result = token04::verify(&edited, &secret, claims.app_id, &claims.user_id, NOW);
        let same = edited.strip_prefix("04")
            .and_then(|body| LENIENT.decode(body).ok())
            .is_some_and(|changed| same_token(&buffer(&original), &changed, mode));
        match result {
            Ok(d) => {
                prop_assert!(same, "{edited:?} verified but is not the same token as {original:?}");
                prop_assert_eq!(d.claims, claims);
            }
            Err(e) => {
                prop_assert!(!same, "{edited:?} is the same token as {original:?} but was refused: {e}");
                assert_refusal(&e)?;
            }
        }
    }

    /// Every proper prefix of a valid token's buffer is refused.
    #[test]
    fn a_truncated_buffer_is_refused(claims in claims(), mode in mode(), secret in secret(), at in any::<Index>()) {
        let t = token04::generate(claims.app_id, &claims.user_id, &secret, 3600, mode, NOW).unwrap();
        let buf = buffer(&t);
        let cut = &buf[..at.index(buf.len())];
        let err = token04::verify(&token(cut), &secret, claims.app_id, &claims.user_id, NOW).expect_err("a prefix verified");
        assert_refusal(&err)?;
    }

    /// A token that decrypts under the right secret to claims for another app or user, or to
    /// anything else at all, is refused with a message that names neither the app id nor the user
    /// id it decrypted to (only the expected ones): an error text is no place to echo a forgery.
    #[test]
    fn refusals_never_echo_the_decrypted_app_or_user(
        found_app in 1_000_000_000u32..,
        found_user in "[A-Z]{12}",
        expected_app in 1_000_000_000u32..,
        expected_user in "[a-z0-9]{1,16}",
        same_app in prop::bool::weighted(0.3),
        plaintext_kind in 0u8..4,
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 1..4),
        noise in prop::collection::vec(any::<u8>(), 0..40),
        iv_seed in any::<[u8; 16]>(),
        secret in secret(),
    ) {
        let found_app = if same_app { expected_app } else { found_app };
        let claims = Claims {
            app_id: found_app,
            user_id: found_user.clone(),
            nonce: 1,
            ctime: NOW,
            expire: NOW + 3600,
            payload: String::new(),
        };
        let json = serde_json::to_vec(&claims).unwrap();
        let nonce: [u8; 12] = iv_seed[..12].try_into().unwrap();
        let t = match plaintext_kind {
            // Well-formed claims for someone else, in either mode.
            0 => cbc_token(&secret, &json, iv_seed),
            1 => gcm_token(&secret, &json, nonce),
            // The claims with a few bytes overwritten: often not JSON any more, still naming them.
            2 => {
                let mut p = json.clone();
                for (at, byte) in &edits {
                    let i = at.index(p.len());
                    p[i] = *byte;
                }
                cbc_token(&secret, &p, iv_seed)
            }
            // Noise around the names.
            _ => {
                let mut p = noise.clone();
                p.extend_from_slice(found_user.as_bytes());
                p.extend_from_slice(found_app.to_string().as_bytes());
                p.extend_from_slice(&noise);
                cbc_token(&secret, &p, iv_seed)
            }
        };
        let err = token04::verify(&t, &secret, expected_app, &expected_user, NOW).expect_err("another user's token verified");
        assert_refusal(&err)?;
        let shown = err.to_string();
        prop_assert!(!shown.contains(&found_user), "the decrypted user id is in {shown:?}");
        if found_app != expected_app {
            prop_assert!(!shown.contains(&found_app.to_string()), "the decrypted app id is in {shown:?}");
        }
    }
}
