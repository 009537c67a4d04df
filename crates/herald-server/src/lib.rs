//! Herald: a self-hosted in-app chat server whose server API is ZEGOCLOUD ZIM's.
//!
//! # Layout
//!
//! Transports take requests in, the domain decides, engines do the work:
//!
//! - transports: [`api`] (the signed ZIM actions over HTTP; its errors become ZIM codes in
//!   `api/error.rs`) and [`gateway`] (the WebSocket gateway, one task per connection,
//!   docs/protocol.md; its refusals become SDK codes and close codes in `gateway/refusal.rs`).
//! - the domain: [`broadcast`]: what an accepted broadcast is, `Broadcaster::accept` (the durable
//!   steps), and the `Dispatch` and `Presence` contracts the engines fulfil.
//! - engines: [`hub`] (this node's sessions, sharded, and the encode-once fan-out), [`push`]
//!   (durable offline-push jobs and the FCM, APNs and webhook senders), [`cluster`] (nodes joined
//!   through NATS; presence in the shared store).
//! - [`server`]: `start(config, clock, shutdown)` wires the parts once (single-node or cluster
//!   presence is chosen there) and serves `/`, `/ws` and `/healthz`.
//! - [`config`]: the typed TOML configuration, the tables of every part included;
//!   [`devapp`]: the zero-config development app; [`clock`], [`ids`]: injectable time and unique
//!   64-bit ids; [`cli`]: the operator commands of the `herald` binary.
//!
//! # What may import what
//!
//! - `config` and `clock` import no other module of this crate; `ids` imports `clock`, `devapp`
//!   imports `config`.
//! - `broadcast` imports only `config` (besides the proto and store crates).
//! - Engines (`hub`, `push`, `cluster`) import `broadcast` (to implement its traits), `config`
//!   and `clock`; `cluster` also imports `hub`, to hand relayed frames to it. No engine imports a
//!   transport.
//! - Transports (`api`, `gateway`) import `broadcast`, `config`, `clock` and `ids`; `gateway`
//!   also imports `hub`, which holds each session's `SessionHandle`. Neither imports the other.
//! - Only `server` (the wiring) sees every part.

pub mod admin;
pub mod admission;
pub mod api;
pub mod broadcast;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod devapp;
pub mod gateway;
pub mod hub;
pub mod ids;
pub mod metrics;
pub mod push;
pub mod server;
pub mod timed_store;

pub use server::{start, Running, StartError};
