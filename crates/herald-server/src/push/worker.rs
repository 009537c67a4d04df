//! The push worker: claims an app's oldest unfinished job, walks the push bindings a page at a
//! time from the job's persisted cursor, pushes to the devices of offline users, and records
//! the cursor and counts after every page.
//!
//! Durability: the job row is written with the broadcast, before the API answers. The cursor
//! moves only after a page's sends have all ended, so a crash (or `kill -9`) repeats at most the
//! page in flight — those devices may get the notification twice — and never skips a binding.
//! Memory holds one page, whatever the number of users. Jobs of one node run one after another;
//! within a job each provider has its own concurrency and rate caps.

use super::channel::{Attempt, Channel, RetryPolicy};
use super::notification::Notification;
use crate::broadcast::{Broadcast, Dispatch, Presence};
use crate::clock::Clock;
use crate::metrics::Metrics;
use herald_store::{PageDone, PushBinding, PushCounts, PushJob, PushProvider, Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One app's providers and paging.
pub struct AppChannels {
    pub app_id: u32,
    pub page_size: u32,
    pub retry: RetryPolicy,
    pub channels: HashMap<PushProvider, Channel>,
}

pub struct PushWorker {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    presence: Arc<dyn Presence>,
    clock: Arc<dyn Clock>,
    apps: Vec<AppChannels>,
    owner: String,
    lease_ms: i64,
    poll_interval: Duration,
    wake: Notify,
}

/// A broadcast with offline pushes (PushType 1 or 2) has its job row written already: start on it.
impl Dispatch for PushWorker {
    fn dispatch(&self, broadcast: &Arc<Broadcast>) {
        if broadcast.push_type().pushes_offline() {
            self.wake();
        }
    }
}

/// How one job run ended.
enum JobEnd {
    Finished,
    /// Shutdown: the page in flight is not recorded and will be repeated.
    Interrupted,
    /// Another node holds the job now.
    Lost,
}

/// What happened to one device.
enum Outcome {
    Sent,
    Removed,
    Failed,
    Online,
}

impl PushWorker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        presence: Arc<dyn Presence>,
        clock: Arc<dyn Clock>,
        apps: Vec<AppChannels>,
        owner: String,
        lease: Duration,
        poll_interval: Duration,
    ) -> Arc<PushWorker> {
        Arc::new(PushWorker {
            store,
            metrics,
            presence,
            clock,
            apps,
            owner,
            lease_ms: lease.as_millis() as i64,
            poll_interval,
            wake: Notify::new(),
        })
    }

    /// Asks the worker to look for jobs now. A wake while it is busy is kept, so a new job is
    /// never left waiting for the poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until `shutdown`. Looks for work at once (jobs left unfinished by a previous run),
    /// then whenever woken, and every poll interval.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let mut worked = false;
            let mut store_failed = false;
            for app in &self.apps {
                loop {
                    if shutdown.is_cancelled() {
                        return;
                    }
                    let claimed =
                        self.store.claim_push_job(app.app_id, &self.owner, self.clock.now_ms(), self.lease_ms).await;
                    let job = match claimed {
                        Ok(Some(job)) => job,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(app_id = app.app_id, error = %e, "push: cannot claim a job; retrying later");
                            store_failed = true;
                            break;
                        }
                    };
                    match self.run_job(app, job, &shutdown).await {
                        Ok(JobEnd::Finished | JobEnd::Lost) => worked = true,
                        Ok(JobEnd::Interrupted) => return,
                        Err(e) => {
                            tracing::warn!(app_id = app.app_id, error = %e, "push: store failed mid-job; resuming later");
                            store_failed = true;
                            break;
                        }
                    }
                }
            }
            // Look again at once after finishing jobs (more may have arrived); after a store
            // failure, or with nothing to do, wait for a wake-up or the poll interval.
            if worked && !store_failed {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    async fn run_job(
        &self,
        app: &AppChannels,
        job: PushJob,
        shutdown: &CancellationToken,
    ) -> Result<JobEnd, StoreError> {
        let (app_id, message_id) = (job.app_id, job.message_id);
        let Some(record) = self.store.get_broadcast(app_id, message_id).await? else {
            tracing::error!(app_id, message_id, "push: job without its broadcast record; closing it");
            self.store.finish_push_job(app_id, message_id, &self.owner, self.clock.now_ms()).await?;
            return Ok(JobEnd::Finished);
        };
        let note = Notification::from_broadcast(&record);
        let mut cursor = job.cursor.clone();
        let mut counts = job.counts;
        tracing::info!(app_id, message_id, push_type = %job.push_type, resumed = cursor.is_some(), "push job started");
        loop {
            let after = cursor.as_ref().map(|(u, d)| (u.as_str(), d.as_str()));
            let page = self.store.push_bindings_page(app_id, after, app.page_size).await?;
            let Some(last) = page.last() else { break };
            let last = (last.user_id.clone(), last.device_id.clone());
            let delta = tokio::select! {
                _ = shutdown.cancelled() => {
                    tracing::info!(app_id, message_id, "push job interrupted by shutdown; the current page repeats on restart");
                    return Ok(JobEnd::Interrupted);
                }
                delta = self.push_page(app, &page, &note) => delta,
            };
            let now = self.clock.now_ms();
            if !self
                .store
                .advance_push_job(
                    app_id,
                    message_id,
                    &self.owner,
                    PageDone { cursor: (&last.0, &last.1), delta },
                    now,
                    self.lease_ms,
                )
                .await?
            {
                tracing::warn!(app_id, message_id, "push job taken over by another node");
                return Ok(JobEnd::Lost);
            }
            counts.add(delta);
            tracing::debug!(app_id, message_id, page = page.len(), ?counts, "push page done");
            cursor = Some(last);
        }
        if !self.store.finish_push_job(app_id, message_id, &self.owner, self.clock.now_ms()).await? {
            return Ok(JobEnd::Lost);
        }
        tracing::info!(
            app_id,
            message_id,
            targeted = counts.targeted,
            sent = counts.sent,
            failed = counts.failed,
            removed = counts.removed,
            skipped_online = counts.skipped_online,
            "push job done"
        );
        Ok(JobEnd::Finished)
    }

    /// Pushes one page; every device's sends (retries included) end before this returns.
    async fn push_page(&self, app: &AppChannels, page: &[PushBinding], note: &Notification) -> PushCounts {
        let sends = page.iter().map(|binding| self.push_one(app, binding, note));
        let mut delta = PushCounts::default();
        for outcome in futures_util::future::join_all(sends).await {
            match outcome {
                Outcome::Online => delta.skipped_online += 1,
                Outcome::Sent => delta.sent += 1,
                Outcome::Removed => delta.removed += 1,
                Outcome::Failed => delta.failed += 1,
            }
            if !matches!(outcome, Outcome::Online) {
                delta.targeted += 1;
            }
        }
        delta
    }

    async fn push_one(&self, app: &AppChannels, binding: &PushBinding, note: &Notification) -> Outcome {
        // Checked when the device's turn comes, so a user who came online meanwhile is skipped.
        if self.presence.is_online(app.app_id, &binding.user_id).await {
            return Outcome::Online;
        }
        let outcome = self.send(app, binding, note).await;
        let result = match outcome {
            Outcome::Sent => "sent",
            Outcome::Removed => "removed",
            Outcome::Failed | Outcome::Online => "failed",
        };
        self.count_send(app.app_id, binding, result);
        outcome
    }

    fn count_send(&self, app_id: u32, binding: &PushBinding, result: &str) {
        self.metrics.push_sends.inc(&[&app_id.to_string(), binding.provider.as_str(), result]);
    }

    /// Sends to one offline device, with retries; what became of it.
    async fn send(&self, app: &AppChannels, binding: &PushBinding, note: &Notification) -> Outcome {
        let Some(channel) = app.channels.get(&binding.provider) else {
            tracing::debug!(app_id = app.app_id, provider = binding.provider.as_str(), user_id = %binding.user_id,
                "push: no provider configured for this binding");
            return Outcome::Failed;
        };
        let mut attempt = 1;
        loop {
            let reason = match channel.attempt(app.app_id, binding, note).await {
                Attempt::Sent => return Outcome::Sent,
                Attempt::Dead(reason) => return self.remove_dead(app.app_id, binding, &reason).await,
                Attempt::Failed(reason) => reason,
                Attempt::Retry { after, reason } if attempt < app.retry.max_attempts => {
                    let wait = app.retry.delay(attempt, after);
                    tracing::debug!(app_id = app.app_id, provider = channel.sender.name(), user_id = %binding.user_id,
                        attempt, ?wait, %reason, "push: retrying");
                    self.count_send(app.app_id, binding, "retried");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
                Attempt::Retry { reason, .. } => reason,
            };
            tracing::warn!(app_id = app.app_id, provider = channel.sender.name(), user_id = %binding.user_id,
                device_id = %binding.device_id, attempt, %reason, "push failed");
            return Outcome::Failed;
        }
    }

    async fn remove_dead(&self, app_id: u32, binding: &PushBinding, reason: &str) -> Outcome {
        match self.store.remove_push_binding(app_id, &binding.user_id, &binding.device_id, &binding.push_id).await {
            Ok(true) => {
                tracing::info!(app_id, user_id = %binding.user_id, device_id = %binding.device_id, %reason,
                    "push: dead token, binding removed");
                Outcome::Removed
            }
            // The device reported a fresh token meanwhile: keep it, count this send as failed.
            Ok(false) => Outcome::Failed,
            Err(e) => {
                tracing::warn!(app_id, error = %e, "push: cannot remove a dead binding");
                Outcome::Failed
            }
        }
    }
}
