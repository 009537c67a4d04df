//! Herald's wire contract with ZIM clients and app servers. No I/O: everything here is pure
//! encoding, decoding and checking, so the server, the SDK and the load tool share one definition.
//!
//! # Layout
//!
//! - [`code`]: ZIM return codes for API responses and SDK error numbers for `error` frames.
//! - [`signature`]: the server-API request signature and the callback signature.
//! - [`token04`]: the SDK login token (generate, decode, verify; CBC and GCM modes).
//! - [`ws`]: a minimal RFC 6455 codec; frames are encoded once and shared as `Bytes`.
//! - [`frame`]: the JSON frames of docs/protocol.md carried inside WebSocket text messages.
//! - [`message`]: `MessageType` and `PushType`, the numbers a broadcast carries, as enums.
//! - [`close`]: Herald's WebSocket close codes and which of them end reconnection.
//! - [`version`]: SDK version strings, for feature gates like broadcast's 2.10.0 minimum.
//! - [`user_id`]: the UserID length and charset rules.

pub mod close;
pub mod code;
pub mod frame;
pub mod message;
pub mod signature;
pub mod token04;
pub mod user_id;
pub mod version;
pub mod ws;
