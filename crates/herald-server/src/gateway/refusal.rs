//! Why the gateway refuses a client frame, and the one place each reason becomes an SDK error
//! number (the `error` frame's `code`, docs/protocol.md) and, when it ends the session, a
//! WebSocket close code.

use herald_proto::token04::TokenError;
use herald_proto::user_id::UserIdError;
use herald_proto::{close, code};

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    // --- A login that fails: the session ends ---
    #[error("unknown AppID {0}")]
    UnknownApp(u32),
    #[error("{0}")]
    Token(TokenError),
    #[error("user_id: {0}")]
    UserId(UserIdError),
    #[error("sdk_version: {0}")]
    SdkVersion(String),
    #[error("device_id must be 1..={max} bytes (gateway.device_id_max_bytes), got {len}")]
    DeviceId { len: usize, max: usize },
    #[error("user_name is {len} bytes; at most {max} (apps.limits.user_name_max_bytes)")]
    UserName { len: usize, max: usize },
    #[error("since {0:?} is not a messageID (a decimal 64-bit number in a string)")]
    Since(String),
    #[error("user already has {max} sessions (gateway.max_sessions_per_user)")]
    TooManySessions { max: usize },
    #[error("server storage failed; try again")]
    LoginStoreFailed,

    // --- Frames the protocol does not allow: the session ends ---
    #[error("malformed frame: {0}")]
    BadFrame(String),
    #[error("binary messages are not part of protocol v1; send JSON text frames")]
    Binary,
    #[error("log in first")]
    NotLoggedIn,
    #[error("already logged in")]
    AlreadyLoggedIn,

    // --- Requests of a logged-in session: answered with an error, the session goes on ---
    #[error("unknown push provider {0:?}; use fcm, apns or webhook")]
    PushProvider(String),
    #[error("push_id must be 1..={max} bytes (gateway.push_id_max_bytes)")]
    PushId { max: usize },
    #[error("{0}")]
    RenewToken(TokenError),
    #[error("the new token is valid for {valid_s} s; at least {min_s} s are needed")]
    TokenTooShort { valid_s: i64, min_s: i64 },
    #[error("could not {0}; try again")]
    StoreFailed(&'static str),

    // --- The session's own end ---
    #[error("the session's token expired at {expire} (Unix seconds); renew_token before it does")]
    SessionTokenExpired { expire: i64 },
}

impl Refusal {
    /// The SDK error number of the `error` frame.
    pub fn sdk_code(&self) -> u32 {
        match self {
            Refusal::UnknownApp(_) => code::SDK_TOKEN_INVALID_OR_APP,
            Refusal::Token(e) | Refusal::RenewToken(e) => e.sdk_code(),
            Refusal::SessionTokenExpired { .. } => code::SDK_TOKEN_EXPIRED,
            Refusal::UserId(_)
            | Refusal::SdkVersion(_)
            | Refusal::DeviceId { .. }
            | Refusal::UserName { .. }
            | Refusal::Since(_)
            | Refusal::PushProvider(_)
            | Refusal::PushId { .. } => code::SDK_FIELD_INVALID,
            Refusal::TooManySessions { .. } => code::SDK_TOO_MANY_SESSIONS,
            Refusal::LoginStoreFailed | Refusal::StoreFailed(_) => code::DB_FAILED,
            Refusal::BadFrame(_) | Refusal::Binary => code::SDK_BAD_FRAME,
            Refusal::NotLoggedIn | Refusal::AlreadyLoggedIn => code::SDK_NOT_LOGGED_IN,
            Refusal::TokenTooShort { .. } => code::SDK_TOKEN_TOO_SHORT,
        }
    }

    /// The close code when this refusal ends the session; `None` when the session goes on.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Refusal::Token(TokenError::Expired { .. }) | Refusal::SessionTokenExpired { .. } => {
                Some(close::TOKEN_EXPIRED)
            }
            Refusal::UnknownApp(_)
            | Refusal::Token(_)
            | Refusal::UserId(_)
            | Refusal::DeviceId { .. }
            | Refusal::UserName { .. }
            | Refusal::Since(_) => Some(close::LOGIN_FAILED),
            Refusal::SdkVersion(_) => Some(close::UNSUPPORTED_VERSION),
            Refusal::TooManySessions { .. } => Some(close::TOO_MANY_SESSIONS),
            Refusal::LoginStoreFailed => Some(close::INTERNAL),
            Refusal::BadFrame(_) | Refusal::Binary => Some(close::BAD_FRAME),
            Refusal::NotLoggedIn | Refusal::AlreadyLoggedIn => Some(close::NOT_LOGGED_IN),
            Refusal::PushProvider(_)
            | Refusal::PushId { .. }
            | Refusal::RenewToken(_)
            | Refusal::TokenTooShort { .. }
            | Refusal::StoreFailed(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_refusals_end_the_session_and_requests_do_not() {
        let expired = || TokenError::Expired { expire: 1, now: 2 };
        assert_eq!(Refusal::Token(expired()).close_code(), Some(close::TOKEN_EXPIRED));
        assert_eq!(Refusal::Token(TokenError::DecryptFailed).close_code(), Some(close::LOGIN_FAILED));
        assert_eq!(Refusal::SdkVersion("x".into()).close_code(), Some(close::UNSUPPORTED_VERSION));
        assert_eq!(Refusal::SdkVersion("x".into()).sdk_code(), code::SDK_FIELD_INVALID);
        assert_eq!(Refusal::RenewToken(expired()).close_code(), None);
        assert_eq!(Refusal::RenewToken(expired()).sdk_code(), code::SDK_TOKEN_EXPIRED);
        assert_eq!(Refusal::StoreFailed("store the push ID").close_code(), None);
        assert_eq!(Refusal::LoginStoreFailed.close_code(), Some(close::INTERNAL));
    }
}
