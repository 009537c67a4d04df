//! Command line of `herald-bench`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(
    name = "herald-bench",
    version,
    about = "Load tool for Herald: broadcast fan-out latency (kernel receive timestamps), server CPU and memory per connection, side by side with nats-server."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect N WebSocket clients, send K broadcasts, measure the delay to every client.
    Fanout(FanoutArgs),
    /// Only connect and log in N clients: time to log in and server memory per connection.
    Logins(CommonArgs),
    /// Reconnect storm: every client drops at once (or a node is killed) while broadcasts go on;
    /// they come back with backoff and `since`, and must have every broadcast exactly once.
    Storm(crate::recovery::storm::StormArgs),
    /// Soak: clients for minutes, some reconnecting every second, bursts of bad requests; the
    /// server's RSS and descriptors over time, and every broadcast exactly once.
    Soak(crate::recovery::soak::SoakArgs),
    /// Offline push: N users with push bindings, one PushType 2 broadcast, pushes to a local stand-in.
    Push(crate::push::PushArgs),
    /// The floor: CPU per plain TCP send to each of N loopback sockets, without any server.
    Floor(crate::floor::FloorArgs),
    /// Internal: the readers of `floor`.
    #[command(hide = true)]
    FloorRecv(crate::floor::FloorRecvArgs),
    /// Internal: a client worker process driven over stdin/stdout by `fanout`/`logins`.
    #[command(hide = true)]
    Worker,
    /// Internal: a worker process of reconnecting clients driven by `storm`/`soak`.
    #[command(hide = true)]
    RecoveryWorker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Herald,
    Nats,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Herald => "herald",
            Target::Nats => "nats",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Which server to measure.
    #[arg(long, value_enum, default_value = "herald")]
    pub target: Target,
    /// Number of WebSocket clients.
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// Server processes. Herald: N > 1 starts N nodes in cluster mode (a fresh PostgreSQL
    /// database, the NATS at --nats-url); nats: N nats-servers joined by routes. Clients are
    /// spread round-robin over them; broadcasts go in through the first.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Runtime threads per server process, handed to Herald as TOKIO_WORKER_THREADS and to
    /// nats-server as GOMAXPROCS; 0 = each server's default (one per core). With several nodes
    /// on a small machine, fewer threads per node means less switching between them.
    #[arg(long, default_value_t = 0)]
    pub node_threads: usize,
    /// NATS that Herald's cluster nodes relay through (must be on 127.0.0.0/8). Its CPU counts
    /// as Herald's.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// PID of the NATS at --nats-url (default: the process listening on its port).
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// PostgreSQL database in which a Herald cluster run creates (and at the end drops) its own
    /// database `herald_bench_<pid>_<random>`, through `psql`.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub pg_admin_url: String,
    /// Most connections the Herald nodes together may hold to PostgreSQL (the run connects as a
    /// role of its own with this CONNECTION LIMIT); 0 = no limit. Default: 16 per node (the
    /// nodes' pool size) if that leaves 20 of the server's max_connections free for others,
    /// else what does.
    #[arg(long)]
    pub pg_conn_limit: Option<u32>,
    /// Print only the one-line JSON result on stdout.
    #[arg(long)]
    pub json: bool,

    /// Herald binary to start (default: `herald` next to this executable).
    #[arg(long)]
    pub herald_bin: Option<PathBuf>,
    /// nats-server binary (default: /usr/sbin/nats-server, else from PATH, else apt-get installs it).
    #[arg(long)]
    pub nats_bin: Option<PathBuf>,
    /// Use an already running Herald at HOST:PORT instead of starting one (needs --app-id/--secret).
    #[arg(long)]
    pub attach: Option<SocketAddr>,
    /// PID of the attached server, to measure its CPU and memory (optional with --attach).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// AppID used for tokens and API calls.
    #[arg(long, default_value_t = 1_234_567_890)]
    pub app_id: u32,
    /// ServerSecret of the app (32 characters).
    #[arg(long, default_value = "fa94dd0f974cf2e293728a526b028271")]
    pub secret: String,

    /// Connection attempts (connect + upgrade + login) in flight at once, per worker process.
    /// Default 256 for every target (a Herald cluster batches its logins' PostgreSQL writes, so
    /// more in flight makes bigger batches, not more connections).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Attempts per client before it counts as failed.
    #[arg(long, default_value_t = 4)]
    pub connect_attempts: u32,
    /// Clients per source address (127.0.0.2, 127.0.0.3, ...).
    #[arg(long, default_value_t = 10_000)]
    pub per_source: usize,
    /// Clients per worker process (each process may hold at most `ulimit -n` descriptors). Each
    /// worker is one thread, so fewer workers leave the server more of a small machine's cores.
    #[arg(long, default_value_t = 16_000)]
    pub per_worker: usize,
    /// Seconds to wait after the last login before reading the server's memory.
    #[arg(long, default_value_t = 1.0)]
    pub settle_s: f64,
    /// Keep the temporary directory (server config, database, logs).
    #[arg(long)]
    pub keep_tmp: bool,
}

#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Number of broadcasts.
    #[arg(long, default_value_t = 20)]
    pub broadcasts: usize,
    /// Time between two broadcasts.
    #[arg(long, default_value_t = 200)]
    pub interval_ms: u64,
    /// Size of each broadcast's message text in bytes. The text starts with `b=<index>;t=<send ns>;`
    /// (about 27 bytes), padded with `x`; a smaller size gives just that header.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Seconds to wait for stragglers after the last broadcast.
    #[arg(long, default_value_t = 30)]
    pub grace_s: u64,
}
