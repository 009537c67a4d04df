//! The SDK's one error type.

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdkError {
    /// The server answered with an `error` frame; `code` is the ZIM SDK error number
    /// (see `herald_proto::code`, e.g. 6000106 token expired).
    #[error("server refused (code {code}): {message}")]
    Server { code: u32, message: String },
    /// The server closed the connection with a terminal code (see `herald_proto::close`) before
    /// answering.
    #[error("connection closed (code {code}): {reason}")]
    Closed { code: u16, reason: String },
    /// No answer within the login timeout.
    #[error("timed out")]
    Timeout,
    /// The TCP connection or WebSocket upgrade failed, or the connection dropped.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The server sent something this SDK does not understand where an answer was due.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The [`ClientConfig`](crate::ClientConfig) cannot work (empty URL list, bad URL, …).
    #[error("invalid config: {0}")]
    Config(String),
    /// The session has ended: logged out, closed for good, or reconnects given up.
    #[error("the session has ended")]
    LoggedOut,
}

impl SdkError {
    /// ZIM's `extendedData` for a state change this error caused: a JSON object as a string.
    pub(crate) fn extended_data(&self) -> String {
        let value = match self {
            SdkError::Server { code, message } => {
                serde_json::json!({ "code": code, "message": message })
            }
            SdkError::Closed { code, reason } => {
                serde_json::json!({ "code": code, "reason": reason })
            }
            other => serde_json::json!({ "reason": other.to_string() }),
        };
        value.to_string()
    }
}
