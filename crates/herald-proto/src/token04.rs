//! Token04, the SDK login token: generation, decoding and verification (spec §5).
//!
//! A token is `"04"` + standard Base64 of `expire:i64 | ivLen:u16 | iv | ctLen:u16 | ct [| mode]`,
//! big-endian, where `ct` is the JSON [`Claims`] encrypted with AES-256 keyed by the 32 bytes of the
//! ServerSecret string. Mode CBC (PKCS#7, 16-byte ASCII IV) is what every official generator makes;
//! mode GCM (12-byte nonce, tag appended, trailing `0x01`) is the newer Node generator's.

use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::code;

/// The version prefix every Token04 starts with.
pub const VERSION_PREFIX: &str = "04";
/// Length of the ServerSecret, which is used as-is as an AES-256 key.
pub const SECRET_LEN: usize = 32;
const CBC_IV_LEN: usize = 16;
const GCM_NONCE_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;
const GCM_MODE_BYTE: u8 = 0x01;
/// Alphabet of the Go and Node generators' CBC IVs; keeping IVs printable matches their tokens.
const IV_ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Encoding writes the padding like every official generator; decoding also accepts a token whose
/// padding was stripped (e.g. by a URL or config round trip), since the padding carries no data.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The cipher mode a token was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// AES-256-CBC with PKCS#7 padding: the official generators' mode.
    Cbc,
    /// AES-256-GCM: authenticated, the newer Node generator's "recommended" mode.
    Gcm,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Cbc => "cbc",
            Mode::Gcm => "gcm",
        })
    }
}

/// The error of parsing a [`Mode`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown token mode {0:?}: expected \"cbc\" or \"gcm\"")]
pub struct ParseModeError(pub String);

impl FromStr for Mode {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("cbc") {
            Ok(Mode::Cbc)
        } else if s.eq_ignore_ascii_case("gcm") {
            Ok(Mode::Gcm)
        } else {
            Err(ParseModeError(s.to_owned()))
        }
    }
}

/// The token's plaintext.
///
/// Field order is the Python/Node generators' (`app_id,user_id,nonce,ctime,expire,payload`), and
/// serde_json's compact output equals Python's `separators=(',', ':'), ensure_ascii=False`, so a
/// token made here is byte-identical to the official Python one. Parsing ignores key order, missing
/// `payload` (the web sample omits it) and unknown keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub app_id: u32,
    pub user_id: String,
    /// Random per token; generators draw a non-negative 31-bit value, Node's can be negative.
    pub nonce: i64,
    /// Creation time, Unix seconds.
    pub ctime: i64,
    /// Expiry, Unix seconds (`ctime + ttl`).
    pub expire: i64,
    /// Free text; RTC privilege tokens put JSON here. ZIM ignores it.
    #[serde(default)]
    pub payload: String,
}

/// The per-token IV (CBC) or nonce (GCM); its variant selects the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Iv {
    Cbc([u8; 16]),
    Gcm([u8; 12]),
}

impl Iv {
    pub fn mode(&self) -> Mode {
        match self {
            Iv::Cbc(_) => Mode::Cbc,
            Iv::Gcm(_) => Mode::Gcm,
        }
    }

    /// A fresh random IV: `[0-9a-z]` ASCII for CBC like the Go and Node generators, random bytes for GCM.
    pub fn random(mode: Mode) -> Iv {
        let mut rng = rand::thread_rng();
        match mode {
            Mode::Cbc => Iv::Cbc(std::array::from_fn(|_| IV_ALPHABET[rng.gen_range(0..IV_ALPHABET.len())])),
            Mode::Gcm => Iv::Gcm(rng.gen()),
        }
    }
}

/// A successfully decrypted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub claims: Claims,
    pub mode: Mode,
    /// The unencrypted `expire` in front of the ciphertext. Verification trusts `claims.expire`
    /// instead, because only that one is covered by the secret; this is kept for inspection.
    pub outer_expire: i64,
}

/// Why a token was refused. The messages are full sentences shown verbatim by `herald token inspect`.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    #[error("token does not start with the version prefix \"04\"")]
    VersionMismatch,
    #[error("token body after \"04\" is not valid standard Base64")]
    BadBase64,
    #[error("token buffer ends before the fields its header announces")]
    Truncated,
    #[error("token has unexpected bytes after the ciphertext")]
    TrailingBytes,
    #[error("server secret must be exactly 32 bytes, since it is used as-is as the AES-256 key")]
    BadSecretLength,
    #[error("token IV has {found} bytes but {mode} mode needs {expected}")]
    BadIvLength { mode: Mode, expected: usize, found: usize },
    #[error("token could not be decrypted: wrong server secret or corrupted ciphertext")]
    DecryptFailed,
    // The three below never show what the token decrypted to: a forged or bit-flipped token
    // decrypts to whatever it decrypts to, and an error message is no place to echo it. The
    // fields stay for code that decodes tokens it trusts (`herald token inspect`).
    #[error("token plaintext is not valid claims JSON")]
    BadJson(String),
    #[error("token was issued for another app, not app {expected}")]
    AppIdMismatch { expected: u32, found: u32 },
    #[error("token was issued for another user, not user {expected:?}")]
    UserIdMismatch { expected: String, found: String },
    #[error("token expired at {expire} (Unix seconds); it is now {now}")]
    Expired { expire: i64, now: i64 },
    #[error("cannot generate token: {0}")]
    InvalidInput(String),
}

impl TokenError {
    /// The ZIM SDK error number a client sees for this failure (docs/protocol.md).
    pub fn sdk_code(&self) -> u32 {
        match self {
            TokenError::VersionMismatch => code::SDK_TOKEN_VERSION,
            TokenError::Expired { .. } => code::SDK_TOKEN_EXPIRED,
            TokenError::AppIdMismatch { .. } => code::SDK_TOKEN_INVALID_OR_APP,
            _ => code::SDK_TOKEN_INVALID,
        }
    }
}

/// Encodes `claims` with a caller-chosen IV; the outer `expire` is `claims.expire`.
///
/// Deterministic, so tests can reproduce the official generators' tokens byte for byte.
pub fn encode_with(server_secret: &str, claims: &Claims, iv: &Iv) -> Result<String, TokenError> {
    let key = secret_key(server_secret)?;
    let plaintext = serde_json::to_vec(claims).map_err(|e| TokenError::InvalidInput(e.to_string()))?;
    let (iv_bytes, ciphertext): (&[u8], Vec<u8>) = match iv {
        Iv::Cbc(iv) => {
            let enc = cbc::Encryptor::<aes::Aes256>::new(key.into(), iv.into());
            (iv, enc.encrypt_padded_vec_mut::<Pkcs7>(&plaintext))
        }
        Iv::Gcm(nonce) => {
            let cipher = Aes256Gcm::new(key.into());
            let ct = cipher
                .encrypt(nonce.into(), plaintext.as_slice())
                .map_err(|_| TokenError::InvalidInput("plaintext too long for AES-GCM".into()))?;
            (nonce, ct)
        }
    };
    let ct_len = u16::try_from(ciphertext.len()).map_err(|_| {
        TokenError::InvalidInput(format!(
            "claims too long: ciphertext of {} bytes exceeds the 65535-byte field",
            ciphertext.len()
        ))
    })?;

    let mut buf = Vec::with_capacity(8 + 2 + iv_bytes.len() + 2 + ciphertext.len() + 1);
    buf.extend_from_slice(&claims.expire.to_be_bytes());
    buf.extend_from_slice(&(iv_bytes.len() as u16).to_be_bytes());
    buf.extend_from_slice(iv_bytes);
    buf.extend_from_slice(&ct_len.to_be_bytes());
    buf.extend_from_slice(&ciphertext);
    if iv.mode() == Mode::Gcm {
        buf.push(GCM_MODE_BYTE);
    }
    Ok(format!("{VERSION_PREFIX}{}", BASE64.encode(buf)))
}

/// Generates a token valid for `ttl_seconds` from `now_unix_s`, with a random nonce and IV.
///
/// Input checks follow the official generators: non-zero app, non-empty user, 32-byte secret and
/// a positive validity.
pub fn generate(
    app_id: u32,
    user_id: &str,
    server_secret: &str,
    ttl_seconds: i64,
    mode: Mode,
    now_unix_s: i64,
) -> Result<String, TokenError> {
    if app_id == 0 {
        return Err(TokenError::InvalidInput("app_id must not be 0".into()));
    }
    if user_id.is_empty() {
        return Err(TokenError::InvalidInput("user_id must not be empty".into()));
    }
    secret_key(server_secret)?;
    if ttl_seconds <= 0 {
        return Err(TokenError::InvalidInput(format!("ttl must be positive, got {ttl_seconds} s")));
    }
    let expire = now_unix_s
        .checked_add(ttl_seconds)
        .ok_or_else(|| TokenError::InvalidInput(format!("now {now_unix_s} + ttl {ttl_seconds} overflows")))?;
    let claims = Claims {
        app_id,
        user_id: user_id.to_owned(),
        // 31 bits like Go and Python, so the value fits the int32 other parsers may expect.
        nonce: i64::from(rand::thread_rng().gen_range(0..=i32::MAX)),
        ctime: now_unix_s,
        expire,
        payload: String::new(),
    };
    encode_with(server_secret, &claims, &Iv::random(mode))
}

/// Parses and decrypts a token without checking app, user or time; see [`verify`] for that.
pub fn decode(token: &str, server_secret: &str) -> Result<Decoded, TokenError> {
    let body = token.strip_prefix(VERSION_PREFIX).ok_or(TokenError::VersionMismatch)?;
    let buf = BASE64.decode(body).map_err(|_| TokenError::BadBase64)?;
    let layout = Layout::parse(&buf)?;
    let key = secret_key(server_secret)?;

    let plaintext = match layout.mode {
        Mode::Cbc => {
            let iv: &[u8; CBC_IV_LEN] = layout.iv.try_into().map_err(|_| layout.iv_len_error())?;
            if layout.ciphertext.is_empty() || layout.ciphertext.len() % 16 != 0 {
                return Err(TokenError::DecryptFailed);
            }
            let dec = cbc::Decryptor::<aes::Aes256>::new(key.into(), iv.into());
            let plaintext =
                dec.decrypt_padded_vec_mut::<Pkcs7>(layout.ciphertext).map_err(|_| TokenError::DecryptFailed)?;
            // CBC has no MAC: a wrong key passes the padding check about one time in 256. The output
            // is then random bytes, which are almost never UTF-8; calling that a decryption failure
            // keeps the message right instead of blaming the JSON.
            if std::str::from_utf8(&plaintext).is_err() {
                return Err(TokenError::DecryptFailed);
            }
            plaintext
        }
        Mode::Gcm => {
            let nonce: &[u8; GCM_NONCE_LEN] = layout.iv.try_into().map_err(|_| layout.iv_len_error())?;
            if layout.ciphertext.len() < GCM_TAG_LEN {
                return Err(TokenError::DecryptFailed);
            }
            Aes256Gcm::new(key.into())
                .decrypt(nonce.into(), layout.ciphertext)
                .map_err(|_| TokenError::DecryptFailed)?
        }
    };
    let claims: Claims = serde_json::from_slice(&plaintext).map_err(|e| TokenError::BadJson(e.to_string()))?;
    Ok(Decoded { claims, mode: layout.mode, outer_expire: layout.expire })
}

/// Decodes a token and checks it was issued for `app_id` and `user_id` and has not expired at
/// `now_unix_s` (a token is valid while `now < expire`).
pub fn verify(
    token: &str,
    server_secret: &str,
    app_id: u32,
    user_id: &str,
    now_unix_s: i64,
) -> Result<Decoded, TokenError> {
    let decoded = decode(token, server_secret)?;
    let claims = &decoded.claims;
    if claims.app_id != app_id {
        return Err(TokenError::AppIdMismatch { expected: app_id, found: claims.app_id });
    }
    if claims.user_id != user_id {
        return Err(TokenError::UserIdMismatch { expected: user_id.to_owned(), found: claims.user_id.clone() });
    }
    if claims.expire <= now_unix_s {
        return Err(TokenError::Expired { expire: claims.expire, now: now_unix_s });
    }
    Ok(decoded)
}

fn secret_key(server_secret: &str) -> Result<&[u8; SECRET_LEN], TokenError> {
    server_secret.as_bytes().try_into().map_err(|_| TokenError::BadSecretLength)
}

/// The binary fields of a token, borrowed from the decoded buffer.
struct Layout<'a> {
    expire: i64,
    iv: &'a [u8],
    ciphertext: &'a [u8],
    mode: Mode,
}

impl<'a> Layout<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, TokenError> {
        let mut rest = buf;
        let expire = i64::from_be_bytes(take_array(&mut rest)?);
        let iv_len = usize::from(u16::from_be_bytes(take_array(&mut rest)?));
        let iv = take(&mut rest, iv_len)?;
        let ct_len = usize::from(u16::from_be_bytes(take_array(&mut rest)?));
        let ciphertext = take(&mut rest, ct_len)?;
        // Spec §5.3: nothing or a lone 0x00 after the ciphertext means CBC, a lone 0x01 means GCM.
        let mode = match rest {
            [] | [0x00] => Mode::Cbc,
            [GCM_MODE_BYTE] => Mode::Gcm,
            _ => return Err(TokenError::TrailingBytes),
        };
        Ok(Layout { expire, iv, ciphertext, mode })
    }

    fn iv_len_error(&self) -> TokenError {
        let expected = match self.mode {
            Mode::Cbc => CBC_IV_LEN,
            Mode::Gcm => GCM_NONCE_LEN,
        };
        TokenError::BadIvLength { mode: self.mode, expected, found: self.iv.len() }
    }
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], TokenError> {
    if rest.len() < n {
        return Err(TokenError::Truncated);
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_array<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], TokenError> {
    Ok(take(rest, N)?.try_into().expect("take returned N bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "fa94dd0f974cf2e293728a526b028271";

    #[test]
    fn generate_round_trips_in_both_modes() {
        for mode in [Mode::Cbc, Mode::Gcm] {
            let token = generate(7, "alice", SECRET, 3600, mode, 1_000).unwrap();
            let d = verify(&token, SECRET, 7, "alice", 1_000).unwrap();
            assert_eq!(d.mode, mode);
            assert_eq!((d.claims.ctime, d.claims.expire, d.outer_expire), (1_000, 4_600, 4_600));
            assert!((0..=i64::from(i32::MAX)).contains(&d.claims.nonce));
            assert_eq!(verify(&token, SECRET, 7, "alice", 4_600).unwrap_err().sdk_code(), code::SDK_TOKEN_EXPIRED);
        }
    }

    #[test]
    fn random_cbc_iv_is_lowercase_alphanumeric() {
        for _ in 0..50 {
            let Iv::Cbc(iv) = Iv::random(Mode::Cbc) else { panic!("wrong mode") };
            assert!(iv.iter().all(|b| IV_ALPHABET.contains(b)));
        }
    }

    #[test]
    fn generate_checks_inputs() {
        let invalid = |r: Result<String, TokenError>| matches!(r, Err(TokenError::InvalidInput(_)));
        assert!(invalid(generate(0, "u", SECRET, 60, Mode::Cbc, 0)));
        assert!(invalid(generate(1, "", SECRET, 60, Mode::Cbc, 0)));
        assert!(invalid(generate(1, "u", SECRET, 0, Mode::Cbc, 0)));
        assert!(invalid(generate(1, "u", SECRET, -5, Mode::Gcm, 0)));
        assert!(invalid(generate(1, "u", SECRET, 60, Mode::Gcm, i64::MAX)));
        assert_eq!(generate(1, "u", "short", 60, Mode::Cbc, 0), Err(TokenError::BadSecretLength));
    }

    #[test]
    fn mode_parses_and_displays() {
        assert_eq!("cbc".parse::<Mode>(), Ok(Mode::Cbc));
        assert_eq!("GCM".parse::<Mode>(), Ok(Mode::Gcm));
        assert_eq!(Mode::Gcm.to_string(), "gcm");
        let err = "ecb".parse::<Mode>().unwrap_err();
        assert_eq!(err.to_string(), "unknown token mode \"ecb\": expected \"cbc\" or \"gcm\"");
    }

    #[test]
    fn sdk_codes() {
        assert_eq!(TokenError::VersionMismatch.sdk_code(), 6000107);
        assert_eq!(TokenError::Expired { expire: 1, now: 2 }.sdk_code(), 6000106);
        assert_eq!(TokenError::AppIdMismatch { expected: 1, found: 2 }.sdk_code(), 6000101);
        assert_eq!(TokenError::DecryptFailed.sdk_code(), 6000103);
        assert_eq!(TokenError::UserIdMismatch { expected: "a".into(), found: "b".into() }.sdk_code(), 6000103);
        assert_eq!(TokenError::Truncated.sdk_code(), 6000103);
    }
}
