//! The one harness of the server's black-box tests; every file in `tests/` says `mod support;`.
//!
//! Layout:
//!
//! - `server.rs`: [`Server`], a real server on 127.0.0.1:0 in this process — SQLite in a
//!   temporary directory or a PostgreSQL test database, one node or a cluster node, plain or
//!   TLS — with the signed API client of `api.rs`, restarts, and a second handle on its store.
//!   It is the one file that names server internals (`Running`'s fields, the hub, `Presence`).
//! - `api.rs`: signed API calls, and the checks every answer must pass.
//! - `cluster.rs`: [`Cluster`], nodes sharing one PostgreSQL database and one NATS (found or
//!   started by herald-testkit).
//! - `ws.rs`: [`WsClient`], a bare WebSocket client that sends exactly what a test says and
//!   shows every frame and close code.
//! - `sdk.rs`: the real Rust SDK against a test server.
//! - `push.rs`: stand-ins for the push providers (webhook, FCM with its OAuth2 endpoint, APNs
//!   over HTTP/2), and offline-push helpers.
//! - `process.rs`: the built `herald` binary as a child process.
//! - `codes.rs`: the numbers the API and the protocol promise, spelled out.
//!
//! Timing rules: nothing here asserts how long anything takes. Every wait polls a condition and
//! is bounded by [`PATIENCE`] only so that a broken server fails a test instead of hanging it.

// Each test binary uses its own subset of the harness (and of these re-exports).
#![allow(dead_code, unused_imports)]

mod api;
mod cluster;
mod codes;
mod process;
mod push;
mod sdk;
mod server;
mod ws;

pub use api::{assert_code, assert_code_for, code, signed_params, Params};
pub use cluster::Cluster;
pub use codes::*;
pub use process::{herald, run_guarded, HeraldProcess, GUARD};
pub use push::*;
pub use sdk::*;
pub use server::{app_toml, default_app, Server, ServerBuilder, UNTHROTTLED_LIMITS};
pub use ws::*;

use std::time::Duration;

/// The app every test server serves unless a test configures its own.
pub const APP_ID: u32 = 1234567890;
pub const SECRET: &str = "fa94dd0f974cf2e293728a526b028271";
/// A second app, for tests about per-app behaviour.
pub const OTHER_APP_ID: u32 = 987654321;
pub const OTHER_SECRET: &str = "0123456789abcdef0123456789abcdef";
/// An AppID no test server serves.
pub const UNKNOWN_APP_ID: u32 = 42;

/// The user the harness's broadcasts are sent from; registered on the first one.
pub const SENDER: &str = "admin";
/// An SDK version that receives broadcasts.
pub const SDK_OK: &str = "2.18.0";

/// Where a server's ManualClock starts: 2023-11-14T22:13:20Z, on a whole second.
pub const T0_MS: i64 = 1_700_000_000_000;
pub const SECOND_MS: i64 = 1_000;
pub const DAY_MS: i64 = 24 * 60 * 60 * 1_000;
/// A token validity that never runs out during a test.
pub const HOUR_S: i64 = 3600;

/// Upper bound of any wait for the server: only a broken server reaches it.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Runs a test's own task. The server's code must spawn on its TaskTracker (clippy.toml bans a
/// bare `tokio::spawn` there); a test's tasks end with the test's runtime, which is all a test
/// needs.
#[allow(clippy::disallowed_methods)]
pub fn spawn<F>(task: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(task)
}

/// Polls `cond` until it holds; panics after [`PATIENCE`].
pub async fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    wait_for_with(what, cond, String::new).await
}

/// Like [`wait_for`], with a description of the state to show on failure.
pub async fn wait_for_with(what: &str, mut cond: impl FnMut() -> bool, state: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting for {what}; state: {}", state());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
