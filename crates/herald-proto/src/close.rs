//! WebSocket close codes of Herald's protocol (docs/protocol.md), whose range tells a client
//! whether to reconnect.
//!
//! 1000 and 4500–4999 are terminal: the client must change something (log in again, fix its
//! frames) and reconnecting as-is would fail the same way. Everything else, 4000–4499 included,
//! is transient: the server or the network failed, and the client reconnects with backoff.

/// Normal close, after `logout`.
pub const NORMAL: u16 = 1000;

// --- 4000–4499: transient, reconnect with backoff ---

/// The server is shutting down.
pub const SHUTDOWN: u16 = 4000;
/// Nothing arrived from the client within `timeout_ms`.
pub const HEARTBEAT_TIMEOUT: u16 = 4001;
/// The session's outbox was full or the socket stopped draining.
pub const SLOW_CONSUMER: u16 = 4002;
/// Internal server error.
pub const INTERNAL: u16 = 4003;
/// No `login` arrived within the login deadline.
pub const LOGIN_TIMEOUT: u16 = 4004;
/// The client sent more frames than its per-session rate allows.
pub const FLOOD: u16 = 4005;

// --- 4500–4999: terminal, stay disconnected and report ---

/// Malformed frame: bad JSON, a binary message or an unknown frame type.
pub const BAD_FRAME: u16 = 4500;
/// Login failed: invalid token or wrong AppID.
pub const LOGIN_FAILED: u16 = 4501;
/// The token expired.
pub const TOKEN_EXPIRED: u16 = 4502;
/// A frame before login, or a second login.
pub const NOT_LOGGED_IN: u16 = 4503;
/// The user already has the maximum number of sessions.
pub const TOO_MANY_SESSIONS: u16 = 4504;
/// A message larger than the configured cap.
pub const FRAME_TOO_LARGE: u16 = 4505;
/// Unsupported protocol version or SDK version string.
pub const UNSUPPORTED_VERSION: u16 = 4506;
/// A newer login from the same device (`device_id`) took this session's place. Terminal, so
/// two live clients that share a device id do not take turns forever.
pub const REPLACED: u16 = 4507;

/// Whether a client should stay disconnected after this close code instead of reconnecting.
pub fn is_terminal(code: u16) -> bool {
    code == NORMAL || (4500..=4999).contains(&code)
}

/// A short reason for the close frame, so a client's logs say why without a lookup table.
pub fn reason(code: u16) -> &'static str {
    match code {
        NORMAL => "logged out",
        SHUTDOWN => "server shutting down",
        HEARTBEAT_TIMEOUT => "heartbeat timeout",
        SLOW_CONSUMER => "slow consumer",
        INTERNAL => "internal error",
        LOGIN_TIMEOUT => "login timeout",
        FLOOD => "too many frames",
        BAD_FRAME => "malformed frame",
        LOGIN_FAILED => "login failed",
        TOKEN_EXPIRED => "token expired",
        REPLACED => "replaced by a newer login from this device",
        NOT_LOGGED_IN => "not logged in",
        TOO_MANY_SESSIONS => "too many sessions",
        FRAME_TOO_LARGE => "frame too large",
        UNSUPPORTED_VERSION => "unsupported version",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_decide_reconnection() {
        for code in [NORMAL, BAD_FRAME, LOGIN_FAILED, TOKEN_EXPIRED, NOT_LOGGED_IN, TOO_MANY_SESSIONS] {
            assert!(is_terminal(code), "{code}");
        }
        assert!(is_terminal(FRAME_TOO_LARGE) && is_terminal(UNSUPPORTED_VERSION) && is_terminal(4999));
        for code in [SHUTDOWN, HEARTBEAT_TIMEOUT, SLOW_CONSUMER, INTERNAL, LOGIN_TIMEOUT, FLOOD, 4499] {
            assert!(!is_terminal(code), "{code}");
        }
        // Abnormal closures from the network or a proxy are worth a retry.
        for code in [1001, 1006, 1011, 5000] {
            assert!(!is_terminal(code), "{code}");
        }
    }

    #[test]
    fn every_herald_code_has_a_reason_that_fits_a_close_frame() {
        for code in (4000..=4005).chain(4500..=4506).chain([NORMAL]) {
            let reason = reason(code);
            assert!(!reason.is_empty() && reason.len() <= crate::ws::MAX_CLOSE_REASON, "{code}");
        }
    }
}
