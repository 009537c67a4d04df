//! Operator and script commands of the `herald` binary, beside `serve`: make and inspect
//! Token04s, call any signed action, broadcast in one line, and listen as a client.
//! Each returns its output as text (or an error), so `main.rs` stays a thin dispatcher.

pub mod call;
pub mod listen;
pub mod token;
