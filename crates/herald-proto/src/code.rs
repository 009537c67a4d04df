//! ZIM return codes: the `Code` of every server-API response and the SDK error numbers in `error` frames.
//!
//! The numbers are ZEGOCLOUD's (spec §2.5, §1.6, §4 and §5.1), so existing app servers and clients
//! that switch on them keep working against Herald. Names are Herald's own.

// --- Global codes shared by every server API action (spec §2.5) ---

/// The request succeeded.
pub const SUCCESS: u32 = 0;
/// Request failed; ZIM's generic "server busy".
pub const SERVER_BUSY: u32 = 1;
/// An input parameter is wrong.
pub const INPUT_PARAMS: u32 = 2;
/// Authentication failed.
pub const AUTH_FAILED: u32 = 3;
/// The per-second request count for this action was exceeded.
pub const QPS_EXCEEDED: u32 = 7;
/// The database request failed.
pub const DB_FAILED: u32 = 105001;

// --- Gateway codes: the common query parameters and the signature (spec §2.2, §2.3) ---

/// `AppId` is missing or not a uint32.
pub const APP_ID_FORMAT: u32 = 100000001;
/// `Timestamp` is missing.
pub const TIMESTAMP_EMPTY: u32 = 100000002;
/// `Timestamp` is not an integer.
pub const TIMESTAMP_FORMAT: u32 = 100000003;
/// `Timestamp` is further than the allowed clock skew from the server's clock.
pub const SIGNATURE_EXPIRED: u32 = 100000004;
/// `Signature` does not match.
pub const SIGNATURE_INVALID: u32 = 100000005;
/// `Action` is missing.
pub const ACTION_EMPTY: u32 = 100000006;
/// `Action` names an API this server does not implement.
pub const ACTION_UNSUPPORTED: u32 = 100000007;
/// `SignatureNonce` is missing.
pub const NONCE_EMPTY: u32 = 100000008;
/// `Signature` is missing.
pub const SIGNATURE_EMPTY: u32 = 100000009;
/// The server could not load the app's ServerSecret (unknown app or store failure).
pub const SECRET_UNAVAILABLE: u32 = 100000010;
/// The HTTP body could not be read.
pub const BODY_READ_FAILED: u32 = 100000012;
/// `SignatureVersion` is missing.
pub const SIGNATURE_VERSION_EMPTY: u32 = 100000013;
/// `SignatureVersion` is not `2.0`.
pub const SIGNATURE_VERSION_UNSUPPORTED: u32 = 100000014;
/// Internal gateway error.
pub const GATEWAY_INTERNAL: u32 = 100000015;
/// The app exists but is not enabled for this service.
pub const APP_NOT_ENABLED: u32 = 100000017;

// --- Business codes of the ZIM actions (spec §1.6, §2.5, §4) ---

/// Generic business error.
pub const BUSINESS_ERROR: u32 = 660000001;
/// A business parameter is wrong (bad body, missing field, bad value).
pub const PARAM_ERROR: u32 = 660000002;
/// Too many user IDs in one request.
pub const TOO_MANY_USERS: u32 = 660000011;
/// A UserID is longer than 32 bytes.
pub const USER_ID_TOO_LONG: u32 = 660000012;
/// The feature is not part of the app's plan (or not enabled in Herald's config).
pub const FEATURE_NOT_ENABLED: u32 = 660000028;
/// The user ID does not exist, logged out, or was registered but never logged in.
pub const USER_NOT_ONLINE_OR_MISSING: u32 = 660200001;
/// The message body is over the size limit.
pub const MESSAGE_TOO_LARGE: u32 = 660400001;
/// The sender / operator is not registered (or never logged in).
pub const SENDER_NOT_REGISTERED: u32 = 660500002;
/// `SendMessageToAllUsers` was called more often than its frequency limit allows.
pub const BROADCAST_FREQUENCY: u32 = 660500003;
/// `UserRegister` was called more often than 20/s.
pub const USER_REGISTER_FREQUENCY: u32 = 660700001;
/// `UserRegister`: the user already exists.
pub const USER_ALREADY_EXISTS: u32 = 660700002;
/// `UserName` is longer than 256 bytes.
pub const USER_NAME_TOO_LONG: u32 = 660700006;
/// `UserAvatar` is longer than 500 bytes.
pub const USER_AVATAR_TOO_LONG: u32 = 660700007;
/// Reading user info failed.
pub const USER_INFO_QUERY_FAILED: u32 = 660700008;
/// `ModifyUserInfo`: the user is not registered.
pub const USER_NOT_REGISTERED: u32 = 660700012;
/// Modifying user info failed.
pub const USER_INFO_MODIFY_FAILED: u32 = 660700013;
/// `QueryUserInfos`: the user is not registered.
pub const USER_NOT_FOUND: u32 = 660700015;

// --- SDK error numbers sent in WebSocket `error` frames (spec §5.1, docs/protocol.md) ---

/// Login failed: invalid token or the token's AppID does not match.
pub const SDK_TOKEN_INVALID_OR_APP: u32 = 6000101;
/// The token is invalid (bad base64, truncated, wrong secret, user mismatch).
pub const SDK_TOKEN_INVALID: u32 = 6000103;
/// The token has expired.
pub const SDK_TOKEN_EXPIRED: u32 = 6000106;
/// The token does not start with the `04` version prefix.
pub const SDK_TOKEN_VERSION: u32 = 6000107;
/// The token's remaining validity is shorter than 30 s.
pub const SDK_TOKEN_TOO_SHORT: u32 = 6000108;
/// Herald: malformed frame (not JSON, unknown `t`, wrong field types).
pub const SDK_BAD_FRAME: u32 = 6000001;
/// Herald: a frame arrived before login, or login was sent twice.
pub const SDK_NOT_LOGGED_IN: u32 = 6000002;
/// Herald: the user already has the maximum number of sessions.
pub const SDK_TOO_MANY_SESSIONS: u32 = 6000003;
/// Herald: a field is too long, or a push provider is unknown.
pub const SDK_FIELD_INVALID: u32 = 6000004;
