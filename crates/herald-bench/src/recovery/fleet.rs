//! The parent's side of `storm` and `soak`: the recovery-worker processes, and the broadcaster
//! that keeps sending through the API and tells the workers what was accepted.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

use super::client::now_ms;
use super::ledger::{Accepted, Status, Verdict};
use super::worker::{self, Cmd, Event, Spec};
use crate::fleet::{spawn_worker, worker_shares};
use crate::procfs;
use crate::targets::herald::Api;

struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// First logins, summed over the workers.
#[derive(Debug, Clone, Default)]
pub struct Ready {
    pub ok: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub node_ok: Vec<usize>,
}

/// One broadcast as the sender saw it.
struct Outcome {
    index: u32,
    /// The accepted broadcast, or the error.
    result: Result<Accepted, String>,
    latency_ms: f64,
}

/// Sends a broadcast every interval until stopped; missed ticks are delayed, not bunched.
struct Broadcaster {
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What woke [`Fleet::pump`].
enum Step {
    Event(Option<(usize, Option<Event>)>),
    Outcome(Option<Outcome>),
    Show,
}

pub struct Fleet {
    procs: Vec<Proc>,
    events: mpsc::UnboundedReceiver<(usize, Option<Event>)>,
    conns: usize,
    progress: Vec<(usize, usize)>,
    ready: Vec<Option<Ready>>,
    status: Vec<Option<Status>>,
    verdicts: Vec<Option<Verdict>>,
    broadcaster: Option<Broadcaster>,
    /// Broadcasts sent, accepted (in order), refused or failed.
    pub sent: usize,
    pub accepted: Vec<Accepted>,
    pub api_errors: usize,
    pub first_api_error: Option<String>,
    pub api_max_ms: f64,
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
            let (child, stdin) = spawn_worker("recovery-worker", w, &spec, tx.clone()).await?;
            procs.push(Proc { child, stdin: Some(stdin) });
        }
        Ok(Fleet {
            procs,
            events,
            conns,
            progress: vec![(0, 0); n],
            ready: vec![None; n],
            status: vec![None; n],
            verdicts: vec![None; n],
            broadcaster: None,
            sent: 0,
            accepted: Vec::new(),
            api_errors: 0,
            first_api_error: None,
            api_max_ms: 0.0,
        })
    }

    pub fn workers(&self) -> usize {
        self.procs.len()
    }

    /// CPU time the workers have used so far, in ms.
    pub fn cpu_ms(&self) -> Option<f64> {
        self.procs.iter().map(|p| p.child.id().and_then(|pid| procfs::cpu_ms(pid).ok())).sum()
    }

    /// The workers' latest status, summed; None until every worker sent one.
    pub fn status(&self) -> Option<Status> {
        let mut total = Status { accepted: usize::MAX, ..Status::default() };
        for s in &self.status {
            let s = s.as_ref()?;
            total.accepted = total.accepted.min(s.accepted);
            total.online += s.online;
            total.offline += s.offline;
            total.gave_up += s.gave_up;
            total.affected += s.affected;
            total.back += s.back;
            total.caught_up += s.caught_up;
            total.has_all += s.has_all;
            total.relogins += s.relogins;
            total.attempts += s.attempts;
            total.failures += s.failures;
        }
        Some(total)
    }

    /// Forget the statuses (so a condition waits for ones sent after a command).
    pub fn clear_status(&mut self) {
        self.status.iter_mut().for_each(|s| *s = None);
    }

    pub async fn send(&mut self, cmd: &Cmd) -> Result<()> {
        let mut line = serde_json::to_vec(cmd)?;
        line.push(b'\n');
        for stdin in self.procs.iter_mut().filter_map(|p| p.stdin.as_mut()) {
            stdin.write_all(&line).await?;
            stdin.flush().await?;
        }
        Ok(())
    }

    /// Handle worker events and broadcast outcomes until `until` holds (true) or `deadline`
    /// passes (false). Fails if a worker exits.
    pub async fn pump(&mut self, what: &str, deadline: Instant, until: impl Fn(&Fleet) -> bool) -> Result<bool> {
        let started = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_secs(3));
        ticker.tick().await;
        while !until(self) {
            let step = {
                let (events, broadcaster) = (&mut self.events, &mut self.broadcaster);
                let outcome = async {
                    match broadcaster.as_mut() {
                        Some(b) => b.outcomes.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    ev = events.recv() => Step::Event(ev),
                    outcome = outcome => Step::Outcome(outcome),
                    _ = ticker.tick() => Step::Show,
                    () = sleep_until(deadline) => return Ok(false),
                }
            };
            match step {
                Step::Event(ev) => {
                    let (w, ev) = ev.ok_or_else(|| anyhow!("all workers gone"))?;
                    match ev {
                        None => bail!("worker {w} exited while {what}"),
                        Some(Event::Progress { ok, failed }) => self.progress[w] = (ok, failed),
                        Some(Event::Ready { ok, failed, first_error, node_ok }) => {
                            self.progress[w] = (ok, failed);
                            self.ready[w] = Some(Ready { ok, failed, first_error, node_ok });
                        }
                        Some(Event::Status(s)) => self.status[w] = Some(s),
                        Some(Event::Verdict(v)) => self.verdicts[w] = Some(*v),
                    }
                }
                Step::Outcome(Some(outcome)) => self.on_outcome(outcome).await?,
                Step::Outcome(None) => self.broadcaster = None,
                Step::Show => self.show(what, started),
            }
        }
        Ok(true)
    }

    fn show(&self, what: &str, started: Instant) {
        let elapsed = started.elapsed().as_secs_f64();
        if self.ready.iter().any(Option::is_none) {
            let (ok, failed) = self.progress.iter().fold((0, 0), |a, p| (a.0 + p.0, a.1 + p.1));
            eprintln!("  {what}: {ok}/{} logged in, {failed} failed, {elapsed:.0} s", self.conns);
        } else if let Some(s) = self.status() {
            eprintln!(
                "  {what}: {} online, {} offline, {} gave up; affected {}, back {}, caught up {}; {} relogins, {} failed attempts; {} broadcasts accepted; {elapsed:.0} s",
                s.online, s.offline, s.gave_up, s.affected, s.back, s.caught_up, s.relogins, s.failures, self.accepted.len()
            );
        }
    }

    async fn on_outcome(&mut self, outcome: Outcome) -> Result<()> {
        self.sent += 1;
        self.api_max_ms = self.api_max_ms.max(outcome.latency_ms);
        match outcome.result {
            Ok(accepted) => {
                self.accepted.push(accepted);
                self.send(&Cmd::Accepted(accepted)).await?;
            }
            Err(e) => {
                self.api_errors += 1;
                self.first_api_error.get_or_insert(format!("broadcast {}: {e}", outcome.index));
            }
        }
        Ok(())
    }

    /// Wait until every worker has tried every first login.
    pub async fn wait_ready(&mut self, within: Duration) -> Result<Ready> {
        if !self.pump("connecting", Instant::now() + within, |f| f.ready.iter().all(Option::is_some)).await? {
            bail!("timed out while connecting");
        }
        let mut total = Ready::default();
        for r in self.ready.iter().flatten() {
            total.ok += r.ok;
            total.failed += r.failed;
            if total.node_ok.len() < r.node_ok.len() {
                total.node_ok.resize(r.node_ok.len(), 0);
            }
            for (t, n) in total.node_ok.iter_mut().zip(&r.node_ok) {
                *t += n;
            }
            if total.first_error.is_none() {
                total.first_error.clone_from(&r.first_error);
            }
        }
        Ok(total)
    }

    /// Start broadcasting through `api`: broadcast `i` (from 0) every `interval`.
    pub fn start_broadcasts(&mut self, mut api: Api, interval: Duration, payload: usize) {
        let (tx, outcomes) = mpsc::unbounded_channel();
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            for index in 0u32.. {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => return,
                }
                let started = Instant::now();
                let result = match api.broadcast(index as usize, payload).await {
                    Ok(sent) => match (sent.message_id, sent.error) {
                        (Some(message_id), None) => Ok(Accepted { index, message_id, at_ms: now_ms() }),
                        (_, error) => Err(error.unwrap_or_else(|| "accepted without a RequestId".into())),
                    },
                    Err(e) => Err(format!("{e:#}")),
                };
                let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                if tx.send(Outcome { index, result, latency_ms }).is_err() {
                    return;
                }
            }
        });
        self.broadcaster = Some(Broadcaster { outcomes, stop, task });
    }

    /// Stop broadcasting; every outcome is handled (and forwarded) before this returns.
    pub async fn stop_broadcasts(&mut self) -> Result<()> {
        let Some(mut b) = self.broadcaster.take() else { return Ok(()) };
        let _ = b.stop.send(true);
        let _ = b.task.await;
        while let Ok(outcome) = b.outcomes.try_recv() {
            self.on_outcome(outcome).await?;
        }
        Ok(())
    }

    /// Ask every worker for its verdict.
    pub async fn verdicts(&mut self, within: Duration) -> Result<Vec<Verdict>> {
        self.send(&Cmd::Verdict).await?;
        if !self.pump("reading verdicts", Instant::now() + within, |f| f.verdicts.iter().all(Option::is_some)).await? {
            bail!("timed out while reading verdicts");
        }
        Ok(self.verdicts.iter_mut().filter_map(Option::take).collect())
    }

    /// Ask the workers to exit and close their stdin; kill those still running after 10 s.
    pub async fn quit(mut self) {
        let _ = self.stop_broadcasts().await;
        let _ = self.send(&Cmd::Quit).await;
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
