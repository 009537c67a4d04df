//! The servers under test: start one (or attach to one), and send broadcasts through it.

pub mod herald;
pub mod nats;
pub mod pg;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};
use tokio::time::{sleep, Instant};

use crate::cli::{CommonArgs, Target};
use crate::procfs::{self, CpuSnap};

/// A started server, killed when dropped (and, through PR_SET_PDEATHSIG, if we die).
pub struct ServerProc {
    pub child: Child,
    pub log: PathBuf,
}

impl ServerProc {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Spawn `program args`, stdout and stderr to `log`. `threads` > 0 caps its runtime threads
    /// (TOKIO_WORKER_THREADS for Herald, GOMAXPROCS for nats-server; each ignores the other's).
    pub fn spawn(program: &Path, args: &[&str], log: PathBuf, threads: usize) -> Result<ServerProc> {
        let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
        if threads > 0 {
            cmd.env("TOKIO_WORKER_THREADS", threads.to_string()).env("GOMAXPROCS", threads.to_string());
        }
        procfs::die_with_parent(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("starting {}", program.display()))?;
        Ok(ServerProc { child, log })
    }

    /// Wait until `addr` accepts TCP connections; fail early if the server exits.
    pub async fn wait_listening(&mut self, addr: SocketAddr, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("server exited ({status}) before listening on {addr}; log:\n{}", self.log_tail());
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("server not listening on {addr} after {within:?}; log:\n{}", self.log_tail());
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A scratch directory for configs, databases and logs; removed when dropped unless kept.
pub struct TmpDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl TmpDir {
    pub fn new(keep: bool) -> Result<TmpDir> {
        let path = std::env::temp_dir().join(format!(
            "herald-bench-{}-{}",
            std::process::id(),
            crate::tstamp::now_ns() % 1_000_000_000
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TmpDir { path, keep })
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// `n` distinct free TCP ports on 127.0.0.1 (never NATS's 4222, where a system server may run).
/// All are held open until all are found, so the kernel cannot hand out one twice.
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n + 20 {
        if held.len() == n {
            break;
        }
        let listener = TcpListener::bind("127.0.0.1:0")?;
        if listener.local_addr()?.port() != 4222 {
            held.push(listener);
        }
    }
    if held.len() < n {
        bail!("not enough free ports");
    }
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// One broadcast as sent: the time written into its payload and the time the request was
/// handed to the socket (both CLOCK_REALTIME ns), and the server's refusal if any.
pub struct Sent {
    pub embedded_ns: i64,
    pub send_ns: i64,
    pub error: Option<String>,
    /// Herald: the accepted broadcast's message ID (the answer's `RequestId`).
    pub message_id: Option<u64>,
}

/// How broadcasts reach the server under test.
pub enum Sender {
    Herald(herald::Api),
    Nats(nats::Publisher),
}

impl Sender {
    pub async fn send(&mut self, index: usize, payload: usize) -> Result<Sent> {
        match self {
            Sender::Herald(api) => api.broadcast(index, payload).await,
            Sender::Nats(publisher) => publisher.publish(index, payload).await,
        }
    }
}

/// One server process (a Herald node or a nats-server).
pub struct Node {
    /// None when attached to a server we did not start.
    pub server: Option<ServerProc>,
    pub pid: Option<u32>,
    pub ws_addr: SocketAddr,
    /// Herald: the admin listener (`/metrics`), when the tool started the node and so knows it.
    pub admin_addr: Option<SocketAddr>,
}

/// The servers, ready for clients. Fields drop in order: the servers are killed before their
/// database is dropped and before their directory is removed.
pub struct Running {
    pub nodes: Vec<Node>,
    pub ws_path: &'static str,
    pub sender: Sender,
    /// Herald cluster: the NATS the nodes relay through; its CPU counts as Herald's.
    pub broker_pid: Option<u32>,
    /// Herald cluster: the run's database; its backends' CPU counts as Herald's.
    pub db: Option<pg::Database>,
    pub _tmp: TmpDir,
}

/// CPU times read at one moment (ms).
pub struct CpuReading {
    nodes: Vec<Option<f64>>,
    broker: Option<f64>,
    store: Option<CpuSnap>,
}

/// CPU used between two readings (ms); `None` where it could not be read.
#[derive(Debug, Clone, Default)]
pub struct CpuUse {
    pub nodes: Vec<Option<f64>>,
    pub broker: Option<f64>,
    pub store: Option<f64>,
    /// Database backends seen at the second reading.
    pub store_backends: Option<usize>,
}

impl CpuUse {
    /// Nodes + broker + store; None if any node could not be read.
    pub fn total(&self) -> Option<f64> {
        let nodes: Option<f64> = self.nodes.iter().copied().sum();
        Some(nodes? + self.broker.unwrap_or(0.0) + self.store.unwrap_or(0.0))
    }

    pub fn nodes_total(&self) -> Option<f64> {
        self.nodes.iter().copied().sum()
    }
}

impl Running {
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.nodes.iter().map(|n| n.pid).collect()
    }

    /// Read the CPU time of the nodes, the broker and the database backends.
    pub fn read_cpu(&self) -> CpuReading {
        let nodes = self.nodes.iter().map(|n| n.pid.and_then(|p| procfs::cpu_ms(p).ok())).collect();
        let broker = self.broker_pid.and_then(|p| procfs::cpu_ms(p).ok());
        let store = self.db.as_ref().map(|db| CpuSnap::read(db.backend_pids()));
        CpuReading { nodes, broker, store }
    }

    /// Kill every server this run started, and reap it.
    pub async fn stop(&mut self) {
        for node in &mut self.nodes {
            if let Some(server) = node.server.as_mut() {
                let _ = server.child.kill().await;
            }
        }
    }
}

impl CpuReading {
    pub fn since(&self, before: &CpuReading) -> CpuUse {
        let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        CpuUse {
            nodes: self.nodes.iter().zip(&before.nodes).map(|(a, b)| diff(*a, *b)).collect(),
            broker: diff(self.broker, before.broker),
            store: match (&self.store, &before.store) {
                (Some(a), Some(b)) => Some(a.since(b)),
                _ => None,
            },
            store_backends: self.store.as_ref().map(|s| s.0.len()),
        }
    }
}

pub async fn start(args: &CommonArgs) -> Result<Running> {
    let tmp = TmpDir::new(args.keep_tmp)?;
    match args.target {
        Target::Herald if args.nodes > 1 => herald::start_cluster(args, tmp).await,
        Target::Herald => herald::start(args, tmp).await,
        Target::Nats => nats::start(args, tmp).await,
    }
}
