//! The parent's side of the worker processes: split the clients, spawn `herald-bench worker`
//! processes, and drive them through the line protocol of [`crate::worker`].

use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::collect::WorkerResult;
use crate::procfs;
use crate::worker::{self, Cmd, Event, Spec};

struct Proc {
    child: Child,
    /// None once closed (at quit: EOF ends the worker's blocking stdin read).
    stdin: Option<ChildStdin>,
}

#[derive(Default)]
struct State {
    progress: Vec<(usize, usize)>,
    ready: Vec<Option<Ready>>,
    done: Vec<Option<(u64, u64)>>,
    results: Vec<Option<WorkerResult>>,
}

pub struct Fleet {
    procs: Vec<Proc>,
    events: mpsc::UnboundedReceiver<(usize, Option<Event>)>,
    state: State,
    conns: usize,
}

/// Totals once every worker has tried all its clients (also one worker's share).
#[derive(Clone)]
pub struct Ready {
    pub ok: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    /// Logged-in clients per server (node) index.
    pub node_ok: Vec<usize>,
}

/// Clients per worker when `conns` are spread over `workers` processes, the first ones taking
/// one more when it does not divide.
pub(crate) fn worker_shares(conns: usize, workers: usize) -> Vec<usize> {
    (0..workers).map(|w| conns / workers + usize::from(w < conns % workers)).collect()
}

/// Starts `herald-bench <subcommand>` as worker `w`, hands it `spec` as one JSON line on stdin,
/// and forwards every JSON event it prints as `(w, Some(event))`, then `(w, None)` at its end.
/// Used by `fanout`'s workers and by `storm`/`soak`'s.
pub(crate) async fn spawn_worker<S: Serialize, E: DeserializeOwned + Send + 'static>(
    subcommand: &'static str,
    w: usize,
    spec: &S,
    tx: mpsc::UnboundedSender<(usize, Option<E>)>,
) -> Result<(Child, ChildStdin)> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut cmd = Command::new(&exe);
    cmd.arg(subcommand).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    procfs::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().with_context(|| format!("spawning worker {}", exe.display()))?;
    let mut stdin = child.stdin.take().context("worker stdin")?;
    let stdout = child.stdout.take().context("worker stdout")?;
    let mut line = serde_json::to_vec(spec)?;
    line.push(b'\n');
    stdin.write_all(&line).await?;
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<E>(&line) {
                Ok(ev) => {
                    let _ = tx.send((w, Some(ev)));
                }
                Err(e) => eprintln!("{subcommand} {w}: bad event ({e}): {line:.200}"),
            }
        }
        let _ = tx.send((w, None));
    });
    Ok((child, stdin))
}

impl Fleet {
    /// Spawn enough workers for `template.count` clients, at most `per_worker` each.
    pub async fn spawn(template: &Spec, per_worker: usize) -> Result<Fleet> {
        let conns = template.count;
        let n = conns.div_ceil(per_worker.max(1)).max(1);
        let (tx, events) = mpsc::unbounded_channel();
        let mut procs = Vec::with_capacity(n);
        let mut first = template.first;
        for (w, count) in worker_shares(conns, n).into_iter().enumerate() {
            let spec = Spec { worker: w, first, count, ..template.clone() };
            worker::validate(&spec)?;
            first += count;
            let (child, stdin) = spawn_worker("worker", w, &spec, tx.clone()).await?;
            procs.push(Proc { child, stdin: Some(stdin) });
        }
        let state = State {
            progress: vec![(0, 0); n],
            ready: (0..n).map(|_| None).collect(),
            done: vec![None; n],
            results: (0..n).map(|_| None).collect(),
        };
        Ok(Fleet { procs, events, state, conns })
    }

    pub fn workers(&self) -> usize {
        self.procs.len()
    }

    /// CPU time the workers have used so far, in ms (the load tool's own cost).
    pub fn cpu_ms(&self) -> Option<f64> {
        self.procs.iter().map(|p| p.child.id().and_then(|pid| procfs::cpu_ms(pid).ok())).sum()
    }

    /// Handle worker events until `until` holds, failing at `deadline` or if a worker exits.
    async fn pump(&mut self, what: &str, deadline: Instant, show: bool, until: impl Fn(&State) -> bool) -> Result<()> {
        let started = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_secs(3));
        ticker.tick().await;
        while !until(&self.state) {
            tokio::select! {
                ev = self.events.recv() => {
                    let (w, ev) = ev.ok_or_else(|| anyhow!("all workers gone"))?;
                    let s = &mut self.state;
                    match ev {
                        None => bail!("worker {w} exited while {what}"),
                        Some(Event::Progress { ok, failed }) => s.progress[w] = (ok, failed),
                        Some(Event::Ready { ok, failed, first_error, node_ok }) => {
                            s.progress[w] = (ok, failed);
                            s.ready[w] = Some(Ready { ok, failed, first_error, node_ok });
                        }
                        Some(Event::Done { received, expected }) => s.done[w] = Some((received, expected)),
                        Some(Event::Result(r)) => s.results[w] = Some(r),
                    }
                }
                _ = ticker.tick() => if show {
                    let elapsed = started.elapsed().as_secs_f64();
                    if self.state.ready.iter().all(Option::is_some) {
                        let done = self.state.done.iter().flatten().count();
                        eprintln!("  {what}: {done}/{} workers done, {elapsed:.0} s", self.procs.len());
                    } else {
                        let (ok, failed) = self.state.progress.iter().fold((0, 0), |a, p| (a.0 + p.0, a.1 + p.1));
                        eprintln!("  {what}: {ok}/{} logged in, {failed} failed, {elapsed:.0} s", self.conns);
                    }
                },
                _ = sleep_until(deadline) => bail!("timed out while {what}"),
            }
        }
        Ok(())
    }

    /// Wait until every client has logged in or given up.
    pub async fn wait_ready(&mut self, within: Duration) -> Result<Ready> {
        self.pump("connecting", Instant::now() + within, true, |s| s.ready.iter().all(Option::is_some)).await?;
        let mut ready = Ready { ok: 0, failed: 0, first_error: None, node_ok: Vec::new() };
        for Ready { ok, failed, first_error: err, node_ok } in self.state.ready.iter().flatten() {
            ready.ok += ok;
            ready.failed += failed;
            if ready.node_ok.len() < node_ok.len() {
                ready.node_ok.resize(node_ok.len(), 0);
            }
            for (total, n) in ready.node_ok.iter_mut().zip(node_ok) {
                *total += n;
            }
            if ready.first_error.is_none() {
                ready.first_error.clone_from(err);
            }
        }
        Ok(ready)
    }

    async fn send_all(&mut self, cmd: &Cmd) -> Result<()> {
        let mut line = serde_json::to_vec(cmd)?;
        line.push(b'\n');
        for stdin in self.procs.iter_mut().filter_map(|p| p.stdin.as_mut()) {
            stdin.write_all(&line).await?;
            stdin.flush().await?;
        }
        Ok(())
    }

    /// Tell the workers to report once they have `broadcasts` per client or at the deadline.
    pub async fn collect(&mut self, broadcasts: usize, deadline: Duration) -> Result<()> {
        let deadline_unix_ms = worker::deadline_unix_ms(deadline);
        self.send_all(&Cmd::Collect { broadcasts, deadline_unix_ms }).await
    }

    /// Wait for every worker's `done`: all receipts are in (or its deadline passed).
    pub async fn wait_done(&mut self, within: Duration) -> Result<(u64, u64)> {
        self.pump("collecting", Instant::now() + within, true, |s| s.done.iter().all(Option::is_some)).await?;
        Ok(self.state.done.iter().flatten().fold((0, 0), |a, d| (a.0 + d.0, a.1 + d.1)))
    }

    /// The receipts of every worker (after [`Fleet::wait_done`]).
    pub async fn results(&mut self, within: Duration) -> Result<Vec<WorkerResult>> {
        self.pump("reading results", Instant::now() + within, false, |s| s.results.iter().all(Option::is_some)).await?;
        Ok(self.state.results.iter_mut().filter_map(Option::take).collect())
    }

    /// Ask the workers to exit (closing their connections) and close their stdin; kill those
    /// still running after 10 s in all.
    pub async fn quit(mut self) {
        let _ = self.send_all(&Cmd::Quit).await;
        for p in &mut self.procs {
            p.stdin = None;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for p in &mut self.procs {
            if tokio::time::timeout_at(deadline, p.child.wait()).await.is_err() {
                let _ = p.child.kill().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::worker_shares;

    #[test]
    fn shares_cover_every_client_and_differ_by_at_most_one() {
        assert_eq!(worker_shares(10, 3), vec![4, 3, 3]);
        assert_eq!(worker_shares(100_000, 7).iter().sum::<usize>(), 100_000);
        assert_eq!(worker_shares(2, 4), vec![1, 1, 0, 0]);
    }
}
