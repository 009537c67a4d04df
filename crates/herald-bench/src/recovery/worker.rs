//! The `recovery-worker` process: holds a share of the clients of `storm`/`soak` on one
//! single-threaded runtime, and talks to the parent in JSON lines — a [`Spec`], then [`Cmd`]s on
//! stdin; [`Event`]s on stdout. Progress and diagnostics go to stderr.
//!
//! ```text
//! parent -> {"worker":0,"servers":[...],...}                   (Spec)
//! worker <- {"ev":"progress","ok":4000,"failed":0}              (every 2 s during first logins)
//! worker <- {"ev":"ready","ok":9000,"failed":0,...}             (every client tried)
//! worker <- {"ev":"status","online":9000,...}                   (every 500 ms from then on)
//! parent -> {"cmd":"accepted","index":3,"message_id":...,"at_ms":...}   (each accepted broadcast)
//! parent -> {"cmd":"drop","at_ms":...}                          (storm: every client drops now)
//! parent -> {"cmd":"mark","at_ms":...}                          (storm --kill-node: a node died now)
//! parent -> {"cmd":"churn","per_second":0.01}                   (soak: drop 1 % of the clients a second)
//! parent -> {"cmd":"verdict"}                                   (the run is over)
//! worker <- {"ev":"verdict",...}
//! parent -> {"cmd":"quit"}                                      (or EOF)
//! ```

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::LocalSet;

use super::backoff::ReconnectArgs;
use super::client::{self, now_ms, Ctx};
use super::ledger::{Accepted, Status, Verdict};
use crate::worker::emit;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub worker: usize,
    /// The servers; global client `i` logs in first to `servers[i % servers.len()]`, and moves on
    /// to the next one at every reconnect attempt.
    pub servers: Vec<SocketAddr>,
    pub path: String,
    pub first: usize,
    pub count: usize,
    pub per_source: usize,
    /// First logins in flight.
    pub concurrency: usize,
    /// Tries of a first login.
    pub attempts: u32,
    pub app_id: u32,
    pub secret: String,
    pub reconnect: ReconnectArgs,
    /// Soak: global clients `i` with `i % steady_every == 0` are never dropped (0: none).
    pub steady_every: usize,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Cmd {
    Accepted(Accepted),
    Drop { at_ms: i64 },
    Mark { at_ms: i64 },
    Churn { per_second: f64 },
    Verdict,
    Quit,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum Event {
    Progress { ok: usize, failed: usize },
    Ready { ok: usize, failed: usize, first_error: Option<String>, node_ok: Vec<usize> },
    Status(Status),
    Verdict(Box<Verdict>),
}

/// Entry point of `herald-bench recovery-worker`.
pub fn run() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = LocalSet::new().block_on(&runtime, work());
    // Do not wait for the blocking thread that reads stdin.
    runtime.shutdown_background();
    result
}

async fn work() -> Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let line = stdin.next_line().await?.context("no spec on stdin")?;
    let spec: Spec = serde_json::from_str(&line).context("bad spec")?;
    validate(&spec)?;
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
    tokio::task::spawn_local(async move {
        while let Ok(Some(line)) = stdin.next_line().await {
            match serde_json::from_str::<Cmd>(&line) {
                Ok(cmd) => {
                    if cmd_tx.send(cmd).is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("recovery-worker: bad command {line:?}: {e}"),
            }
        }
        let _ = cmd_tx.send(Cmd::Quit);
    });

    let ctx = Rc::new(Ctx::new(spec));
    for local in 0..ctx.spec.count {
        tokio::task::spawn_local(client::run(local, ctx.clone()));
    }
    if ctx.spec.count > 0 {
        let mut ticker = tokio::time::interval(Duration::from_secs(2));
        ticker.tick().await;
        loop {
            tokio::select! {
                () = ctx.all_tried.notified() => break,
                _ = ticker.tick() => {
                    let l = ctx.ledger.borrow();
                    emit(&Event::Progress { ok: l.ok, failed: l.failed })?;
                }
                cmd = cmd_rx.recv() => if matches!(cmd, None | Some(Cmd::Quit)) { return Ok(()) },
            }
        }
    }
    {
        let l = ctx.ledger.borrow();
        let nodes = ctx.spec.servers.len();
        let mut node_ok = vec![0; nodes];
        for c in (0..l.len()).filter(|&c| l.is_online(c)) {
            node_ok[l.global(c) % nodes] += 1;
        }
        emit(&Event::Ready { ok: l.ok, failed: l.failed, first_error: l.first_error.clone(), node_ok })?;
    }

    let mut status = tokio::time::interval(Duration::from_millis(500));
    let mut churn = tokio::time::interval(Duration::from_secs(1));
    let mut churn_per_second = 0.0;
    loop {
        tokio::select! {
            cmd = cmd_rx.recv() => match cmd {
                None | Some(Cmd::Quit) => return Ok(()),
                Some(Cmd::Accepted(a)) => ctx.ledger.borrow_mut().accept(a),
                Some(Cmd::Drop { at_ms }) => {
                    let mut ledger = ctx.ledger.borrow_mut();
                    ledger.mark(at_ms);
                    for c in 0..ledger.len() {
                        if ledger.request_drop(c) {
                            ctx.wake[c].notify_one();
                        }
                    }
                }
                Some(Cmd::Mark { at_ms }) => ctx.ledger.borrow_mut().mark(at_ms),
                Some(Cmd::Churn { per_second }) => {
                    churn_per_second = per_second;
                    churn.reset();
                }
                Some(Cmd::Verdict) => {
                    let verdict = ctx.ledger.borrow().verdict();
                    emit(&Event::Verdict(Box::new(verdict)))?;
                }
            },
            _ = status.tick() => {
                let s = ctx.ledger.borrow_mut().status(now_ms());
                emit(&Event::Status(s))?;
            }
            _ = churn.tick(), if churn_per_second > 0.0 => drop_some(&ctx, churn_per_second),
        }
    }
}

/// Soak: drop `per_second` of this worker's clients (rounded at random, so fractions add up),
/// picked at random among the online ones outside the steady group.
fn drop_some(ctx: &Ctx, per_second: f64) {
    let mut ledger = ctx.ledger.borrow_mut();
    let want = per_second * ledger.len() as f64;
    let fraction = want.fract();
    let mut n = want.trunc() as usize;
    if (ctx.random() % 1_000_000) as f64 / 1_000_000.0 < fraction {
        n += 1;
    }
    let mut candidates = ledger.droppable(ctx.spec.steady_every);
    let n = n.min(candidates.len());
    // A partial Fisher–Yates shuffle: the first n are the pick.
    for i in 0..n {
        let j = i + (ctx.random() % (candidates.len() - i) as u64) as usize;
        candidates.swap(i, j);
        if ledger.request_drop(candidates[i]) {
            ctx.wake[candidates[i]].notify_one();
        }
    }
}

/// Checks a spec before the parent sends it (shared so both sides agree).
pub fn validate(spec: &Spec) -> Result<()> {
    if spec.per_source == 0 || spec.concurrency == 0 {
        bail!("per_source and concurrency must be positive");
    }
    if spec.servers.is_empty() {
        bail!("no servers");
    }
    if let Some(bad) = spec.servers.iter().find(|s| !s.ip().is_loopback()) {
        bail!("server {bad} is not on loopback");
    }
    let last_source = crate::client::source_addr(spec.first + spec.count.saturating_sub(1), spec.per_source);
    if last_source.octets()[0] != 127 {
        bail!("too many source addresses: client {} would use {last_source}", spec.first + spec.count);
    }
    Ok(())
}
