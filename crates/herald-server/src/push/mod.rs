//! Offline push (PushType 1 and 2): durable jobs walked page by page and sent through each
//! app's providers.
//!
//! # Layout
//!
//! Its configuration (`[push]`, `[apps.push]`) is `crate::config::push`.
//!
//! - [`worker`]: claims jobs, pages through bindings from the persisted cursor, skips online
//!   users, records progress after each page.
//! - [`channel`]: the one-attempt `PushSender` trait, caps, retry policy, HTTP clients.
//! - [`notification`]: `MessageBody.OfflinePush` → what a notification says.
//! - [`webhook`], [`fcm`], [`apns`]: the providers; [`jwt`]: their RS256/ES256 credentials.

pub mod apns;
pub mod channel;
pub mod fcm;
pub mod jwt;
pub mod notification;
pub mod webhook;
pub mod worker;

use crate::broadcast::Presence;
use crate::clock::Clock;
use crate::config::{Config, PushSettings};
use crate::metrics::Metrics;
use channel::{Channel, RetryPolicy};
use herald_store::{PushProvider, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
pub use worker::PushWorker;

/// Builds the worker for every configured app (apps without providers get none: their jobs
/// still run, and every binding counts as failed, so the report shows the gap).
pub fn build_worker(
    config: &Config,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    presence: Arc<dyn Presence>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<PushWorker>, String> {
    let mut apps = Vec::with_capacity(config.apps.len());
    for app in &config.apps {
        let push = &app.push;
        let mut channels = HashMap::new();
        if let Some(w) = &push.webhook {
            let sender = webhook::Webhook::new(w, app.server_secret.expose(), clock.clone())
                .map_err(|e| format!("apps app_id={} push.webhook: {e}", app.app_id))?;
            channels.insert(PushProvider::Webhook, Channel::new(Box::new(sender), &w.channel()));
        }
        if let Some(f) = &push.fcm {
            let sender = fcm::Fcm::new(f).map_err(|e| format!("apps app_id={} push.fcm: {e}", app.app_id))?;
            channels.insert(PushProvider::Fcm, Channel::new(Box::new(sender), &f.channel()));
        }
        if let Some(a) = &push.apns {
            let sender = apns::Apns::new(a).map_err(|e| format!("apps app_id={} push.apns: {e}", app.app_id))?;
            channels.insert(PushProvider::Apns, Channel::new(Box::new(sender), &a.channel()));
        }
        apps.push(worker::AppChannels {
            app_id: app.app_id,
            page_size: push.page_size,
            retry: RetryPolicy {
                max_attempts: push.max_attempts,
                base: Duration::from_millis(push.retry_base_ms),
                max: Duration::from_millis(push.retry_max_ms),
            },
            channels,
        });
    }
    Ok(PushWorker::new(
        store,
        metrics,
        presence,
        clock,
        apps,
        job_owner(config),
        Duration::from_millis(config.push.lease_ms),
        Duration::from_millis(config.push.poll_interval_ms),
    ))
}

/// Who claims jobs. Nodes of a cluster must differ, or each would take the others' claims for
/// its own: unless `push.node_id` is set explicitly, a cluster node claims as `node-{node_id}`.
fn job_owner(config: &Config) -> String {
    match &config.cluster {
        Some(c) if config.push.node_id == PushSettings::default().node_id => format!("node-{}", c.node_id),
        _ => config.push.node_id.clone(),
    }
}
