//! The JSON frames of Herald's client protocol (docs/protocol.md), one per WebSocket text message.
//!
//! Every frame is an object whose first key `t` names its type. Unknown keys are ignored so that a
//! newer peer can add fields without breaking an older one; unknown `t` values are errors.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Frames a client sends. Requests carry an `id` that the answer echoes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ClientFrame {
    Login(Login),
    Ping { id: u64 },
    SetPushId { id: u64, push_id: String, provider: String },
    RenewToken { id: u64, token: String },
    Logout { id: u64 },
}

impl ClientFrame {
    /// The request id the answer must echo.
    pub fn id(&self) -> u64 {
        match self {
            ClientFrame::Login(login) => login.id,
            ClientFrame::Ping { id }
            | ClientFrame::SetPushId { id, .. }
            | ClientFrame::RenewToken { id, .. }
            | ClientFrame::Logout { id } => *id,
        }
    }
}

// Tokens are credentials: Debug output ends up in logs, so it shows only their length.
impl fmt::Debug for ClientFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientFrame::Login(login) => f.debug_tuple("Login").field(login).finish(),
            ClientFrame::Ping { id } => f.debug_struct("Ping").field("id", id).finish(),
            ClientFrame::SetPushId { id, push_id, provider } => f
                .debug_struct("SetPushId")
                .field("id", id)
                .field("push_id", push_id)
                .field("provider", provider)
                .finish(),
            ClientFrame::RenewToken { id, token } => {
                f.debug_struct("RenewToken").field("id", id).field("token", &Redacted(token)).finish()
            }
            ClientFrame::Logout { id } => f.debug_struct("Logout").field("id", id).finish(),
        }
    }
}

/// The first frame of every session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub id: u64,
    pub app_id: u32,
    pub user_id: String,
    /// A Token04 made by the app server for this app and user.
    pub token: String,
    /// The ZIM SDK version the client claims; gates features such as broadcast (>= 2.10.0).
    pub sdk_version: String,
    /// Free text (`android`, `ios`, `web`, …), reported in the `user_action` callback.
    pub platform: String,
    /// Stable per device so a reconnect replaces the device's old session and push binding.
    pub device_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Recovery: the `messageID` of the newest broadcast the client has. The server then sends
    /// what the app broadcast after it, if that is still in its recovery window, and says in
    /// `login_ok.recovered` whether it could. Sent on re-logins, not on a process's first login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("user_id", &self.user_id)
            .field("token", &Redacted(&self.token))
            .field("sdk_version", &self.sdk_version)
            .field("platform", &self.platform)
            .field("device_id", &self.device_id)
            .field("user_name", &self.user_name)
            .field("since", &self.since)
            .finish()
    }
}

struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes redacted>", self.0.len())
    }
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ServerFrame {
    LoginOk {
        id: u64,
        /// Decimal string, so JavaScript clients do not lose precision on a 64-bit id.
        session_id: String,
        heartbeat_ms: u64,
        timeout_ms: u64,
        /// The token's expiry, Unix seconds.
        token_expire: i64,
        /// Lets a client estimate its clock offset.
        server_time_ms: i64,
        /// Only when the login carried `since`: true when every broadcast after it is being
        /// sent (right after this frame, before any live one); false when the server cannot
        /// be sure (unknown `since`, or older than the recovery window), and nothing is replayed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    },
    Pong {
        id: u64,
    },
    Ack {
        id: u64,
        /// Set when answering `renew_token`: the new token's expiry, Unix seconds.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        token_expire: Option<i64>,
    },
    Error {
        /// The request this answers, or 0 when the error is not an answer.
        id: u64,
        /// A ZIM SDK error number (see [`crate::code`]).
        code: u32,
        message: String,
    },
    TokenWillExpire {
        /// Seconds left before the token expires.
        seconds: i64,
    },
    Bcast {
        msg: ZimMessage,
    },
}

/// A message as the ZIM SDK's `ZIMMessage` presents it, with the SDK's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZimMessage {
    /// Unique 64-bit id as a decimal string.
    #[serde(rename = "messageID")]
    pub message_id: String,
    #[serde(rename = "senderUserID")]
    pub sender_user_id: String,
    /// The server's accept time, Unix milliseconds.
    pub timestamp: i64,
    /// 1 text, 11 image, 12 file, 13 audio, 14 video, 200 custom.
    #[serde(rename = "type")]
    pub message_type: u32,
    /// The text, or for media types the API's `Message` JSON string as received.
    pub message: String,
    pub extended_data: String,
    /// `SubMsgType` for custom messages, otherwise 0.
    pub sub_type: u32,
    pub is_broadcast_message: bool,
    pub is_server_message: bool,
}

/// Encodes a server frame as JSON bytes with `t` first, ready for [`crate::ws::server_frame`].
pub fn encode_server(frame: &ServerFrame) -> Vec<u8> {
    serde_json::to_vec(frame).expect("server frames contain only strings, numbers and bools")
}

/// Decodes a client frame; any error here is a malformed frame (SDK code 6000001, close 4500).
///
/// Only an object is a frame: serde's tagged enums would also take the fields as a positional
/// array (`["ping",1]`), a second wire form that docs/protocol.md does not have.
pub fn decode_client(text: &[u8]) -> Result<ClientFrame, serde_json::Error> {
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(serde::de::Error::custom("a client frame must be a JSON object"));
    }
    serde_json::from_slice(text)
}

/// Encodes a client frame as JSON bytes with `t` first (for the SDK and the load tool).
pub fn encode_client(frame: &ClientFrame) -> Vec<u8> {
    serde_json::to_vec(frame).expect("client frames contain only strings and numbers")
}

/// Decodes a server frame (for the SDK and the load tool).
pub fn decode_server(text: &[u8]) -> Result<ServerFrame, serde_json::Error> {
    serde_json::from_slice(text)
}
