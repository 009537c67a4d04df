//! Herald: a self-hosted in-app chat server whose server API is ZEGOCLOUD ZIM's.
//!
//! # Layout
//!
//! - [`server`]: `start(config, clock, shutdown)`, the listener serving `/` and `/ws`.
//! - [`api`]: the signed ZIM actions; one error enum mapped to ZIM codes in one place.
//! - [`gateway`]: the WebSocket gateway, one task per connection (docs/protocol.md).
//! - [`hub`]: this node's sessions, sharded, and the encode-once fan-out.
//! - [`cluster`]: nodes joined through NATS, relaying encoded broadcasts to each other.
//! - [`push`]: offline push (PushType 1 and 2): durable jobs, FCM, APNs and webhook providers.
//! - [`config`]: the typed TOML configuration; [`devapp`]: the zero-config development app.
//! - [`cli`]: the operator commands of the `herald` binary (token, call, send-all, listen).
//! - [`clock`], [`ids`]: injectable time and unique 64-bit ids.

pub mod api;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod devapp;
pub mod gateway;
pub mod hub;
pub mod ids;
pub mod push;
pub mod server;

pub use server::{start, Running, StartError};
