//! The numbers the API (README) and the protocol (docs/protocol.md) promise, spelled out here
//! rather than taken from herald-proto, so that a renumbering there cannot hide behind a shared
//! constant.

// API return codes.
pub const SUCCESS: u64 = 0;
pub const APP_ID_FORMAT: u64 = 100000001;
pub const TIMESTAMP_EMPTY: u64 = 100000002;
pub const TIMESTAMP_FORMAT: u64 = 100000003;
pub const SIGNATURE_EXPIRED: u64 = 100000004;
pub const SIGNATURE_INVALID: u64 = 100000005;
pub const ACTION_EMPTY: u64 = 100000006;
pub const ACTION_UNSUPPORTED: u64 = 100000007;
pub const NONCE_EMPTY: u64 = 100000008;
pub const SIGNATURE_EMPTY: u64 = 100000009;
pub const SECRET_UNAVAILABLE: u64 = 100000010;
pub const BODY_READ_FAILED: u64 = 100000012;
pub const SIGNATURE_VERSION_EMPTY: u64 = 100000013;
pub const SIGNATURE_VERSION_UNSUPPORTED: u64 = 100000014;
pub const BUSINESS_ERROR: u64 = 660000001;
pub const PARAM_ERROR: u64 = 660000002;
pub const TOO_MANY_USERS: u64 = 660000011;
pub const USER_ID_TOO_LONG: u64 = 660000012;
pub const FEATURE_NOT_ENABLED: u64 = 660000028;
pub const USER_NOT_ONLINE_OR_MISSING: u64 = 660200001;
pub const MESSAGE_TOO_LARGE: u64 = 660400001;
pub const SENDER_NOT_REGISTERED: u64 = 660500002;
pub const BROADCAST_FREQUENCY: u64 = 660500003;
pub const USER_ALREADY_EXISTS: u64 = 660700002;
pub const USER_NAME_TOO_LONG: u64 = 660700006;
pub const USER_AVATAR_TOO_LONG: u64 = 660700007;
pub const USER_NOT_REGISTERED: u64 = 660700012;
pub const USER_NOT_FOUND: u64 = 660700015;

// Gateway `error` frame codes.
pub const E_BAD_FRAME: u64 = 6000001;
pub const E_NOT_LOGGED_IN: u64 = 6000002;
pub const E_TOO_MANY_SESSIONS: u64 = 6000003;
pub const E_FIELD_INVALID: u64 = 6000004;
pub const E_APP: u64 = 6000101;
pub const E_TOKEN_INVALID: u64 = 6000103;
pub const E_TOKEN_EXPIRED: u64 = 6000106;
pub const E_TOKEN_VERSION: u64 = 6000107;
pub const E_TOKEN_TOO_SHORT: u64 = 6000108;

// WebSocket close codes.
pub const C_NORMAL: u16 = 1000;
pub const C_SHUTDOWN: u16 = 4000;
pub const C_HEARTBEAT_TIMEOUT: u16 = 4001;
pub const C_SLOW_CONSUMER: u16 = 4002;
pub const C_LOGIN_TIMEOUT: u16 = 4004;
pub const C_FLOOD: u16 = 4005;
pub const C_BAD_FRAME: u16 = 4500;
pub const C_LOGIN_FAILED: u16 = 4501;
pub const C_TOKEN_EXPIRED: u16 = 4502;
pub const C_NOT_LOGGED_IN: u16 = 4503;
pub const C_TOO_MANY_SESSIONS: u16 = 4504;
pub const C_TOO_LARGE: u16 = 4505;
pub const C_BAD_VERSION: u16 = 4506;
