//! The servers under test: start one (or attach to one), and send broadcasts through it.

pub mod herald;
pub mod nats;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};
use tokio::time::{sleep, Instant};

use crate::cli::{CommonArgs, Target};
use crate::procfs;

/// A started server, killed when dropped (and, through PR_SET_PDEATHSIG, if we die).
pub struct ServerProc {
    pub child: Child,
    pub log: PathBuf,
}

impl ServerProc {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Spawn `program args`, stdout and stderr to `log`.
    pub fn spawn(program: &Path, args: &[&str], log: PathBuf) -> Result<ServerProc> {
        let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
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

/// A free TCP port on 127.0.0.1 (never NATS's 4222, where a system server may run).
pub fn free_port() -> Result<u16> {
    for _ in 0..20 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if port != 4222 {
            return Ok(port);
        }
    }
    bail!("no free port")
}

/// One broadcast as sent: the time written into its payload and the time the request was
/// handed to the socket (both CLOCK_REALTIME ns), and the server's refusal if any.
pub struct Sent {
    pub embedded_ns: i64,
    pub send_ns: i64,
    pub error: Option<String>,
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

/// A server ready for clients.
pub struct Running {
    /// None when attached to a server we did not start.
    pub server: Option<ServerProc>,
    pub pid: Option<u32>,
    pub ws_addr: SocketAddr,
    pub ws_path: &'static str,
    pub sender: Sender,
    /// Dropped last: the server may still write to its log and database.
    pub _tmp: TmpDir,
}

pub async fn start(args: &CommonArgs) -> Result<Running> {
    let tmp = TmpDir::new(args.keep_tmp)?;
    match args.target {
        Target::Herald => herald::start(args, tmp).await,
        Target::Nats => nats::start(args, tmp).await,
    }
}
