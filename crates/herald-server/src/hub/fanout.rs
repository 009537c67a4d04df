//! The fan-out: a fixed set of worker tasks, each owning every `count`-th shard, each taking
//! broadcasts from its own queue in the order they were accepted. A session lives in one shard,
//! so it sees broadcasts in acceptance order, and two fan-outs never race for the same sockets.
//!
//! A worker holds one shard's lock while it writes the frame to that shard's sockets (writes
//! never block: a socket that cannot take a frame gets it queued in its own bounded outbox), then
//! yields, so logins and API calls on the same thread wait for at most one shard.
//!
//! Overload policy: the worker queues are not capped by count. What enters them is already bounded
//! by each app's broadcast rate limits, and an accepted broadcast must never be dropped; each
//! entry is one shared frame (a refcount), not a copy per session.

use super::{lock, Hub, Sent, SHARDS};
use crate::broadcast::{Broadcast, Dispatch};
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Counts of one fan-out on this node.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FanoutReport {
    pub written: u64,
    pub queued: u64,
    pub dropped: u64,
    pub skipped_old_sdk: u64,
}

impl FanoutReport {
    pub fn delivered(&self) -> u64 {
        self.written + self.queued
    }
    fn add(&mut self, o: FanoutReport) {
        self.written += o.written;
        self.queued += o.queued;
        self.dropped += o.dropped;
        self.skipped_old_sdk += o.skipped_old_sdk;
    }
}

type Done = Box<dyn FnOnce(FanoutReport) + Send>;

/// One broadcast on its way through every worker.
pub(super) struct Job {
    app_id: u32,
    /// The hub's fan-out sequence number: jobs reach the workers in this order.
    seq: u64,
    frame: Bytes,
    /// Workers that have not finished this job yet; the last one runs `done`.
    remaining: AtomicUsize,
    report: Mutex<FanoutReport>,
    done: Mutex<Option<Done>>,
}

impl Job {
    fn finish_part(&self, part: FanoutReport) {
        lock(&self.report).add(part);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let report = *lock(&self.report);
            if let Some(done) = lock(&self.done).take() {
                done(report);
            }
        }
    }
}

pub(super) type WorkerQueue = mpsc::UnboundedSender<Arc<Job>>;

/// Starts `count` workers on the hub's task tracker; they stop at `shutdown` (sessions are being
/// closed then) or when the hub is dropped.
pub(super) fn start_workers(hub: &Arc<Hub>, count: usize, shutdown: &CancellationToken) -> Vec<WorkerQueue> {
    (0..count)
        .map(|index| {
            let (tx, rx) = mpsc::unbounded_channel();
            let shutdown = shutdown.clone();
            let worker = worker(Arc::downgrade(hub), index, count, rx);
            hub.tasks.spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = worker => {}
                }
            });
            tx
        })
        .collect()
}

/// Most broadcasts one pass over the shards may carry: enough to absorb a burst, few enough that
/// the first of them is not held back long by the others.
const MAX_BATCH: usize = 16;

/// Broadcasts of one app within a batch, their frames back to back in acceptance order.
struct Group {
    app_id: u32,
    bytes: Bytes,
    /// Indexes of the batch's jobs this group carries.
    jobs: Vec<usize>,
}

/// Groups a batch by app. Frames of one app are concatenated (one allocation per batch, none per
/// session), so a session gets every broadcast queued since the last pass in one write.
fn group_by_app(batch: &[Arc<Job>]) -> Vec<Group> {
    let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
    for (i, job) in batch.iter().enumerate() {
        match groups.iter_mut().find(|(app, _)| *app == job.app_id) {
            Some((_, jobs)) => jobs.push(i),
            None => groups.push((job.app_id, vec![i])),
        }
    }
    groups
        .into_iter()
        .map(|(app_id, jobs)| {
            let bytes = if let [only] = jobs[..] {
                batch[only].frame.clone()
            } else {
                let mut all = bytes::BytesMut::with_capacity(jobs.iter().map(|&i| batch[i].frame.len()).sum());
                for &i in &jobs {
                    all.extend_from_slice(&batch[i].frame);
                }
                all.freeze()
            };
            Group { app_id, bytes, jobs }
        })
        .collect()
}

/// One worker: takes what is queued (up to `MAX_BATCH` broadcasts) and walks its shards once.
/// When broadcasts arrive faster than a pass takes, they share the next pass, so each socket gets
/// one write for all of them instead of one each: the cost per delivery falls under load rather
/// than the queue growing.
async fn worker(hub: Weak<Hub>, index: usize, count: usize, mut jobs: mpsc::UnboundedReceiver<Arc<Job>>) {
    let mut batch: Vec<Arc<Job>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let groups = group_by_app(&batch);
        let upto_seq = batch.last().map_or(0, |job| job.seq);
        let mut reports = vec![FanoutReport::default(); batch.len()];
        for shard in (index..SHARDS).step_by(count) {
            let Some(hub) = hub.upgrade() else { return };
            hub.write_shard(shard, &groups, upto_seq, &mut reports);
            drop(hub);
            tokio::task::yield_now().await;
        }
        for (job, report) in batch.drain(..).zip(reports) {
            job.finish_part(report);
        }
    }
}

impl Hub {
    /// Writes each group's frames (one or several back-to-back WebSocket frames) to every
    /// session of its app in one shard, and marks the shard written up to `upto_seq`, all under
    /// one hold of the shard's lock (see `recovery.rs` for why the mark goes with the writes).
    fn write_shard(&self, shard: usize, groups: &[Group], upto_seq: u64, reports: &mut [FanoutReport]) {
        let mut shard = lock(&self.sessions[shard]);
        for group in groups {
            let mut r = FanoutReport::default();
            if let Some(members) = shard.by_app.get(&group.app_id) {
                for m in members.values() {
                    if !m.receives_broadcasts {
                        r.skipped_old_sdk += 1;
                        continue;
                    }
                    match m.conn.send(&group.bytes) {
                        Sent::Written => r.written += 1,
                        Sent::Queued => r.queued += 1,
                        Sent::Dropped => r.dropped += 1,
                    }
                }
            }
            for &i in &group.jobs {
                reports[i].add(r);
            }
        }
        shard.written_seq = upto_seq;
    }

    /// Numbers `frame`, keeps it in the recovery window and queues it for every session of
    /// `app_id` on this node, behind every broadcast submitted before it; `done` runs once with
    /// the counts when every shard has it.
    pub fn submit(&self, app_id: u32, message_id: u64, frame: Bytes, done: impl FnOnce(FanoutReport) + Send + 'static) {
        let workers = self.workers.get().expect("workers start with the hub");
        let mut last_seq = lock(&self.last_seq);
        *last_seq += 1;
        let seq = *last_seq;
        // Kept before any worker can write it: a shard marked written up to `seq` must be able
        // to replay it.
        self.recovery.record(app_id, seq, message_id, self.clock.now_ms(), &frame);
        let job = Arc::new(Job {
            app_id,
            seq,
            frame,
            remaining: AtomicUsize::new(workers.len()),
            report: Mutex::new(FanoutReport::default()),
            done: Mutex::new(Some(Box::new(done))),
        });
        for queue in workers {
            if queue.send(job.clone()).is_err() {
                // Only when the runtime is shutting down; account for the worker anyway.
                job.finish_part(FanoutReport::default());
            }
        }
    }

    /// Fans out a frame another node accepted and encoded, unless this node already has it (it
    /// loaded it from the store at start, before the relay reached it).
    pub fn deliver_relayed(self: &Arc<Self>, app_id: u32, message_id: u64, frame: Bytes) {
        if self.recovery.contains(app_id, message_id) {
            return tracing::debug!(app_id, message_id, "relayed broadcast already known here; skipped");
        }
        let hub = Arc::downgrade(self);
        let started = std::time::Instant::now();
        self.submit(app_id, message_id, frame, move |report| {
            finished(&hub, app_id, message_id, report, started, "relayed")
        });
    }
}

/// The origin of a broadcast for offline push only (PushType 2): nothing is written online.
const OFFLINE_ONLY: &str = "offline-only";

/// Ends one fan-out on this node: logs it, counts it, and adds this node's deliveries to the
/// broadcast's record (in a cluster each node adds its own share).
fn finished(
    hub: &Weak<Hub>,
    app_id: u32,
    message_id: u64,
    report: FanoutReport,
    started: std::time::Instant,
    origin: &'static str,
) {
    tracing::info!(
        app_id,
        message_id,
        origin,
        delivered = report.delivered(),
        dropped = report.dropped,
        skipped_old_sdk = report.skipped_old_sdk,
        elapsed_us = started.elapsed().as_micros() as u64,
        "broadcast fan-out done"
    );
    let Some(hub) = hub.upgrade() else { return };
    hub.broadcasts_done.fetch_add(1, Ordering::Release);
    if origin != OFFLINE_ONLY {
        hub.metrics.fanout_duration.observe(started.elapsed());
    }
    // Once per broadcast per node, never per socket.
    hub.metrics.deliveries.add(&[&app_id.to_string()], report.delivered());
    if report.delivered() == 0 {
        return;
    }
    let store = hub.store.clone();
    hub.tasks.spawn(async move {
        if let Err(e) = store.add_broadcast_online_delivered(app_id, message_id, report.delivered()).await {
            tracing::warn!(error = %e, message_id, "could not record the fan-out count");
        }
    });
}

/// The online fan-out of an accepted broadcast: encoded once, relayed to the other nodes (in a
/// cluster) and queued to this node's workers before the API answers. A broadcast for offline
/// push only (PushType 2) is counted as a fan-out that reached no session.
impl Dispatch for Arc<Hub> {
    fn dispatch(&self, b: &Arc<Broadcast>) {
        let started = std::time::Instant::now();
        let hub = Arc::downgrade(self);
        let (app_id, message_id) = (b.app_id(), b.message_id());
        if !b.push_type().reaches_online_sessions() {
            return finished(&hub, app_id, message_id, FanoutReport::default(), started, OFFLINE_ONLY);
        }
        let frame = b.encode_frame();
        if let Some(relay) = self.relay.get() {
            relay.relay(app_id, message_id, &frame);
        }
        self.submit(app_id, message_id, frame, move |report| {
            finished(&hub, app_id, message_id, report, started, "local")
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(app_id: u32, frame: &'static [u8]) -> Arc<Job> {
        Arc::new(Job {
            app_id,
            seq: 0,
            frame: Bytes::from_static(frame),
            remaining: AtomicUsize::new(1),
            report: Mutex::new(FanoutReport::default()),
            done: Mutex::new(None),
        })
    }

    #[test]
    fn a_batch_groups_by_app_keeping_acceptance_order() {
        let batch = vec![job(1, b"a1"), job(2, b"b1"), job(1, b"a2"), job(1, b"a3")];
        let groups = group_by_app(&batch);
        assert_eq!(groups.len(), 2);
        assert_eq!((groups[0].app_id, &groups[0].bytes[..], &groups[0].jobs[..]), (1, &b"a1a2a3"[..], &[0, 2, 3][..]));
        assert_eq!((groups[1].app_id, &groups[1].bytes[..], &groups[1].jobs[..]), (2, &b"b1"[..], &[1][..]));
        // A lone frame is shared, not copied.
        assert_eq!(groups[1].bytes.as_ptr(), batch[1].frame.as_ptr());
    }
}
