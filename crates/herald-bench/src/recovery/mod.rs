//! Recovery under churn (docs/protocol.md, "Recovery"): `storm` drops every client at once (or
//! kills a node) while broadcasts continue, `soak` keeps a trickle of clients reconnecting for
//! minutes under bursts of bad requests. Both check per client that every broadcast the API
//! accepted arrived exactly once, in order, across reconnects with `since`.
//!
//! Layout: `backoff.rs` the SDKs' reconnect policy; `ledger.rs` what each client received and the
//! verdict over it (no I/O); `client.rs` one reconnecting client and `worker.rs` the process that
//! holds a share of them; `fleet.rs` the parent's side of the workers and the broadcaster;
//! `cost.rs` and `scrape.rs` CPU and `/metrics`; `bad.rs` the soak's bad requests; `storm.rs`
//! and `soak.rs` the two runs.

pub mod backoff;
mod bad;
mod client;
mod cost;
mod fleet;
mod ledger;
mod scrape;
pub mod soak;
pub mod storm;
pub mod worker;

use std::future::Future;

use std::time::Duration;

use anyhow::{bail, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

use self::backoff::ReconnectArgs;
use self::fleet::{Fleet, Ready};
use self::worker::Spec;
use crate::cli::{CommonArgs, Target};
use crate::procfs;
use crate::targets::{self, herald::Api, Running};

/// What `storm` and `soak` both start from: the nodes, the signed API, and the clients logged in.
struct LoggedIn {
    running: Running,
    http: reqwest::Client,
    api: Api,
    fleet: Fleet,
    first: FirstLogins,
}

struct FirstLogins {
    workers: usize,
    login_s: f64,
    ready: Ready,
}

/// Starts the nodes and the worker processes and waits for every client's first login; fails
/// when none logged in. Every `steady_every`-th client never drops (0: none).
async fn start_and_log_in(common: &CommonArgs, reconnect: ReconnectArgs, steady_every: usize) -> Result<LoggedIn> {
    eprintln!("herald-bench: starting {} Herald node(s)", common.nodes);
    let running = targets::start(common).await?;
    let http = reqwest::Client::new();
    let api = Api::new(running.nodes[0].ws_addr, common.app_id, common.secret.clone())?;
    let template = Spec {
        worker: 0,
        servers: running.nodes.iter().map(|n| n.ws_addr).collect(),
        path: running.ws_path.to_owned(),
        first: 0,
        count: common.conns,
        per_source: common.per_source,
        concurrency: crate::run::login_concurrency(common),
        attempts: common.connect_attempts,
        app_id: common.app_id,
        secret: common.secret.clone(),
        reconnect,
        steady_every,
    };
    let started = Instant::now();
    let mut fleet = Fleet::spawn(&template, common.per_worker).await?;
    let workers = fleet.workers();
    eprintln!("herald-bench: connecting {} clients from {workers} worker(s)", common.conns);
    let ready = fleet.wait_ready(Duration::from_secs(60) + Duration::from_millis(20 * common.conns as u64)).await?;
    let login_s = round3(started.elapsed().as_secs_f64());
    eprintln!("herald-bench: {} logged in, {} failed, in {login_s:.2} s", ready.ok, ready.failed);
    if ready.ok == 0 {
        bail!("no client logged in: {}", ready.first_error.as_deref().unwrap_or("?"));
    }
    Ok(LoggedIn { running, http, api, fleet, first: FirstLogins { workers, login_s, ready } })
}

/// Run a parent on one current-thread runtime (children are spawned from this thread, which
/// `PR_SET_PDEATHSIG` needs). Ctrl-C and SIGTERM drop the run, which kills everything it started.
fn parent<R>(run: impl Future<Output = Result<R>>) -> Result<R> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = run => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
            _ = term.recv() => bail!("terminated"),
        }
    })
}

/// What both modes need of the common options.
fn check(common: &CommonArgs) -> Result<()> {
    if common.target != Target::Herald {
        bail!("recovery is Herald's protocol: --target herald only");
    }
    if common.attach.is_some() {
        bail!("storm and soak start their own servers (they need each node's admin port): no --attach");
    }
    if common.nodes == 0 || common.conns == 0 {
        bail!("--nodes and --conns must be at least 1");
    }
    let fd_limit = procfs::nofile_limit();
    let per_node = common.conns.div_ceil(common.nodes) as u64;
    if per_node + 1000 > fd_limit {
        bail!(
            "{per_node} clients per server process, but a process may hold {fd_limit} descriptors: use --nodes {} or more",
            (common.conns as u64).div_ceil(fd_limit.saturating_sub(1000).max(1))
        );
    }
    Ok(())
}

/// Nearest-rank percentile of unsorted values.
fn percentile(values: &[i64], p: f64) -> Option<i64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
    v.get(rank - 1).copied()
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn secs(ms: Option<i64>) -> Option<f64> {
    ms.map(|ms| round3(ms as f64 / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(secs(Some(1234)), Some(1.234));
    }
}
