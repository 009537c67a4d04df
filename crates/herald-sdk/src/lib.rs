//! Rust client SDK for Herald, a self-hosted server compatible with ZEGOCLOUD ZIM: log in with a
//! Token04, keep the session alive, report a push ID, and receive `SendMessageToAllUsers`
//! broadcasts as ZIM-shaped events.
//!
//! ```no_run
//! # async fn demo() -> Result<(), herald_sdk::SdkError> {
//! use herald_sdk::{Client, ClientConfig, Event};
//!
//! let config = ClientConfig::new(["ws://127.0.0.1:8080/ws"], 1234567, "alice", "04AAAA…");
//! let (client, mut events) = Client::login(config).await?;
//! client.set_push_id("fcm-registration-token", "fcm").await?;
//! while let Some(event) = events.next().await {
//!     if let Event::BroadcastMessageReceived(msg) = event {
//!         println!("{}: {}", msg.sender_user_id, msg.message);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! The app holds a [`Client`] (a cheap handle, in `client.rs`) and an [`Events`] stream
//! (`events.rs`). One background task per login (`session.rs`) owns the WebSocket: it pings,
//! answers requests, turns server frames into events, drops repeated message IDs (`dedup.rs`) and
//! reconnects with jittered exponential backoff (`backoff.rs`), walking the URL list. A single
//! connection attempt — upgrade, `login`, verdict — is `conn.rs`. Settings are `config.rs`,
//! failures `error.rs`. The frames themselves come from `herald_proto::frame`; the wire protocol
//! is `docs/protocol.md`.

mod backoff;
mod client;
mod config;
mod conn;
mod dedup;
mod error;
mod events;
mod session;

pub use client::Client;
pub use config::{ClientConfig, ReconnectPolicy, DEFAULT_SDK_VERSION};
pub use error::SdkError;
pub use events::{ConnectionEvent, ConnectionState, Event, Events};
pub use herald_proto::frame::ZimMessage;
