//! The `worker` process: holds a share of the clients on one single-threaded runtime and talks
//! to the parent in JSON lines — the parent writes a [`Spec`] then [`Cmd`]s on stdin, the worker
//! answers with [`Event`]s on stdout. Progress and diagnostics go to stderr.
//!
//! ```text
//! parent -> {"worker":0,"target":"nats",...}          (Spec)
//! worker <- {"ev":"progress","ok":4000,"failed":0}     (every 2 s while connecting)
//! worker <- {"ev":"ready","ok":9000,"failed":0,...}    (every client tried)
//! parent -> {"cmd":"collect","broadcasts":20,"deadline_unix_ms":...}
//! worker <- {"ev":"done","received":180000,"expected":180000}
//! worker <- {"ev":"result",...}                        (the receipts)
//! parent -> {"cmd":"quit"}                             (or EOF: the worker exits)
//! ```

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::LocalSet;
use tokio::time::{sleep, timeout};

use crate::cli::Target;
use crate::client;
use crate::collect::{Collector, WorkerResult};
use crate::tstamp::now_ns;

/// Longest one connect + upgrade + login attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub worker: usize,
    pub target: Target,
    /// The server processes; global client `i` connects to `servers[i % servers.len()]`.
    pub servers: Vec<SocketAddr>,
    pub path: String,
    /// Global index of this worker's first client (names it `u<index>`, picks its source address).
    pub first: usize,
    pub count: usize,
    pub per_source: usize,
    pub concurrency: usize,
    pub attempts: u32,
    pub app_id: u32,
    pub secret: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Cmd {
    Collect { broadcasts: usize, deadline_unix_ms: i64 },
    Quit,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    Progress {
        ok: usize,
        failed: usize,
    },
    Ready {
        ok: usize,
        failed: usize,
        first_error: Option<String>,
        /// Logged-in clients per server (node) index.
        #[serde(default)]
        node_ok: Vec<usize>,
    },
    Done {
        received: u64,
        expected: u64,
    },
    Result(WorkerResult),
}

/// Writes one event as a JSON line on stdout, where the parent's `spawn_worker` reads it.
pub(crate) fn emit<E: Serialize>(event: &E) -> Result<()> {
    let mut line = serde_json::to_vec(event)?;
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&line)?;
    out.flush()?;
    Ok(())
}

/// Entry point of `herald-bench worker`.
pub fn run() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = LocalSet::new().block_on(&runtime, work());
    // Do not wait for the blocking thread that reads stdin: it may sit in read(2) forever.
    runtime.shutdown_background();
    result
}

async fn work() -> Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let line = stdin.next_line().await?.context("no spec on stdin")?;
    let spec: Rc<Spec> = Rc::new(serde_json::from_str(&line).context("bad spec")?);
    let collector = Rc::new(RefCell::new(Collector::new(spec.count, spec.first, spec.servers.len())));

    // Commands arrive while clients run; EOF means the parent is gone.
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
    tokio::task::spawn_local(async move {
        while let Ok(Some(line)) = stdin.next_line().await {
            match serde_json::from_str::<Cmd>(&line) {
                Ok(cmd) => {
                    if cmd_tx.send(cmd).is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("worker: bad command {line:?}: {e}"),
            }
        }
        let _ = cmd_tx.send(Cmd::Quit);
    });

    let ready = collector.borrow().ready.clone();
    let permits = Rc::new(Semaphore::new(spec.concurrency.max(1)));
    for local in 0..spec.count {
        let (spec, collector, permits) = (spec.clone(), collector.clone(), permits.clone());
        tokio::task::spawn_local(async move { client_task(local, &spec, &collector, &permits).await });
    }
    if spec.count > 0 {
        let mut ticker = tokio::time::interval(Duration::from_secs(2));
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ready.notified() => break,
                _ = ticker.tick() => {
                    let c = collector.borrow();
                    emit(&Event::Progress { ok: c.ok, failed: c.failed })?;
                }
                cmd = cmd_rx.recv() => if matches!(cmd, None | Some(Cmd::Quit)) { return Ok(()) },
            }
        }
    }
    {
        let c = collector.borrow();
        emit(&Event::Ready {
            ok: c.ok,
            failed: c.failed,
            first_error: c.first_error.clone(),
            node_ok: c.node_ok.clone(),
        })?;
    }

    loop {
        match cmd_rx.recv().await {
            None | Some(Cmd::Quit) => return Ok(()),
            Some(Cmd::Collect { broadcasts, deadline_unix_ms }) => {
                let done = collector.borrow().done.clone();
                collector.borrow_mut().collect(broadcasts);
                let left_ms = (deadline_unix_ms - now_ns() / 1_000_000).max(0) as u64;
                let _ = timeout(Duration::from_millis(left_ms), done.notified()).await;
                let mut c = collector.borrow_mut();
                emit(&Event::Done { received: c.received(), expected: c.expected() })?;
                emit(&Event::Result(c.take_result()))?;
            }
        }
    }
}

async fn client_task(local: usize, spec: &Spec, collector: &Rc<RefCell<Collector>>, permits: &Semaphore) {
    let index = spec.first + local;
    let Ok(permit) = permits.acquire().await else {
        return;
    };
    let mut last_error = String::new();
    let mut session = None;
    for attempt in 0..spec.attempts.max(1) {
        if attempt > 0 {
            sleep(Duration::from_millis(250 << attempt.min(4))).await;
        }
        match timeout(ATTEMPT_TIMEOUT, client::establish(spec, index)).await {
            Ok(Ok(s)) => {
                session = Some(s);
                break;
            }
            Ok(Err(e)) => last_error = format!("client u{index}: {e:#}"),
            Err(_) => last_error = format!("client u{index}: no login within {ATTEMPT_TIMEOUT:?}"),
        }
    }
    drop(permit);
    let Some(session) = session else {
        collector.borrow_mut().login_failed(last_error);
        return;
    };
    collector.borrow_mut().logged_in(local);
    let reason = session.run(local, collector).await;
    collector.borrow_mut().closed(local, reason);
}

/// Checks a spec before the parent sends it (shared so both sides agree).
pub fn validate(spec: &Spec) -> Result<()> {
    if spec.per_source == 0 || spec.concurrency == 0 {
        bail!("per_source and concurrency must be positive");
    }
    if spec.servers.is_empty() || spec.servers.len() > usize::from(u16::MAX) {
        bail!("need 1..=65535 servers, got {}", spec.servers.len());
    }
    if let Some(bad) = spec.servers.iter().find(|s| !s.ip().is_loopback()) {
        bail!("server {bad} is not on loopback");
    }
    let last_source = client::source_addr(spec.first + spec.count.saturating_sub(1), spec.per_source);
    if last_source.octets()[0] != 127 {
        bail!("too many source addresses: client {} would use {last_source}", spec.first + spec.count);
    }
    Ok(())
}

/// Time helper for the parent: a deadline `after` from now as Unix ms.
pub fn deadline_unix_ms(after: Duration) -> i64 {
    now_ns() / 1_000_000 + after.as_millis() as i64
}
