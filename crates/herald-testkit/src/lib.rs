//! The PostgreSQL and the NATS that Herald's tests run against: found where they usually are, or
//! started for the test process alone, so `cargo test --workspace` passes on a machine that has
//! neither running.
//!
//! Layout: [`postgres`] hands out a fresh database per test ([`test_database`]); [`nats`] gives
//! the URL of a NATS ([`nats_url`]); `private.rs` starts either one in a temporary directory on a
//! free port and stops it once the test process has gone; `install.rs` finds their binaries,
//! installing them with apt-get where it may, or says what to run.
//!
//! For each service, in this order:
//!
//! 1. the URL in its environment variable (`HERALD_TEST_POSTGRES_URL`, `HERALD_TEST_NATS_URL`);
//! 2. the standard one, when it answers: PostgreSQL at 127.0.0.1:5432 (user `postgres`, trust
//!    auth, database `test`), NATS at 127.0.0.1:4222 — as on CI;
//! 3. a private one, started once per test process, shared by its tests, announced with one line
//!    on stderr.
//!
//! This crate is test scaffolding (`publish = false`), a dev-dependency of herald-store and
//! herald-server. It does not depend on herald-store, so no test binary links two copies of the
//! store's types.

mod install;
pub mod nats;
pub mod postgres;
mod private;

pub use nats::nats_url;
pub use postgres::{test_database, TestDatabase};

/// Writes a line to the process's stderr directly: libtest captures `eprintln!` from test
/// threads and shows it only when a test fails, and these lines are meant to be seen.
fn announce(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "herald-testkit: {line}");
}
