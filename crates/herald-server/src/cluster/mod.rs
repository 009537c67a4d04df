//! Cluster mode: several nodes, one NATS, one shared PostgreSQL store.
//!
//! A node that accepts a broadcast encodes its WebSocket frame once, fans it out to its own
//! sessions, and publishes the same bytes on `{subject_prefix}.bcast`; every other node hands
//! them to its hub unchanged. Each session lives on exactly one node, so each gets the frame
//! exactly once. Rate-limit windows, users, push bindings and push jobs live in the shared store,
//! so they hold across nodes; a node that dies takes only its own sessions with it.

mod presence;

pub use presence::{join, keep_lease, ClusterPresence};

use crate::config::ClusterConfig;
use crate::hub::{Hub, Relay};
use crate::metrics::Metrics;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot connect to NATS at {url}: {reason} (start it with: nats-server -js -p 4222)")]
    Connect { url: String, reason: String },
    #[error("cannot subscribe to {subject}: {reason}")]
    Subscribe { subject: String, reason: String },
}

/// Relayed broadcast: a 16-byte header, then the WebSocket frame exactly as the origin encoded it.
const MAGIC: u8 = b'H';
const VERSION: u8 = 1;
const HEADER_LEN: usize = 16;

struct Relayed {
    origin: u16,
    app_id: u32,
    message_id: u64,
    frame: Bytes,
}

fn encode(origin: u16, app_id: u32, message_id: u64, frame: &Bytes) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + frame.len());
    b.put_u8(MAGIC);
    b.put_u8(VERSION);
    b.put_u16(origin);
    b.put_u32(app_id);
    b.put_u64(message_id);
    b.extend_from_slice(frame);
    b.freeze()
}

fn decode(mut payload: Bytes) -> Option<Relayed> {
    if payload.len() <= HEADER_LEN || payload[0] != MAGIC || payload[1] != VERSION {
        return None;
    }
    payload.advance(2);
    let origin = payload.get_u16();
    let app_id = payload.get_u32();
    let message_id = payload.get_u64();
    Some(Relayed { origin, app_id, message_id, frame: payload })
}

/// This node's link to the others.
pub struct NatsRelay {
    client: async_nats::Client,
    node_id: u16,
    subject: String,
    /// Publishes run here, so shutdown waits for the ones in flight.
    tasks: TaskTracker,
    metrics: Arc<Metrics>,
}

impl NatsRelay {
    /// Connects and subscribes before the node serves anyone, so no broadcast accepted by
    /// another node after this returns is missed. Returns the relay and the subscription to
    /// hand to [`NatsRelay::run`].
    pub async fn connect(
        cfg: &ClusterConfig,
        tasks: TaskTracker,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<NatsRelay>, async_nats::Subscriber), ClusterError> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("herald-node-{}", cfg.node_id))
            .connect(cfg.nats_url.as_str())
            .await
            .map_err(|e| ClusterError::Connect { url: cfg.nats_url.clone(), reason: e.to_string() })?;
        let subject = format!("{}.bcast", cfg.subject_prefix);
        let sub = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| ClusterError::Subscribe { subject: subject.clone(), reason: e.to_string() })?;
        Ok((Arc::new(NatsRelay { client, node_id: cfg.node_id, subject, tasks, metrics }), sub))
    }

    /// Delivers what other nodes relay to this node's hub until `shutdown`.
    pub async fn run(self: Arc<Self>, mut sub: async_nats::Subscriber, hub: Arc<Hub>, shutdown: CancellationToken) {
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = sub.next() => match next {
                    Some(m) => m,
                    None => {
                        tracing::error!(subject = %self.subject, "NATS subscription ended; this node no longer receives other nodes' broadcasts");
                        break;
                    }
                },
            };
            match decode(msg.payload) {
                Some(r) if r.origin == self.node_id => {} // ours: delivered locally already
                Some(r) => {
                    self.metrics.relayed.inc(&["in"]);
                    hub.deliver_relayed(r.app_id, r.message_id, r.frame)
                }
                None => tracing::warn!(subject = %self.subject, "ignored a malformed relayed broadcast"),
            }
        }
        let _ = sub.unsubscribe().await;
    }
}

impl NatsRelay {
    /// Whether the NATS connection is up now (`herald_cluster_nats_connected`).
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

impl Relay for NatsRelay {
    fn relay(&self, app_id: u32, message_id: u64, frame: &Bytes) {
        self.metrics.relayed.inc(&["out"]);
        let payload = encode(self.node_id, app_id, message_id, frame);
        let client = self.client.clone();
        let subject = self.subject.clone();
        self.tasks.spawn(async move {
            // async-nats buffers while reconnecting; an error here means the client is gone.
            if let Err(e) = client.publish(subject, payload).await {
                tracing::error!(error = %e, message_id, "could not relay a broadcast to the other nodes");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_frames_round_trip_unchanged() {
        let frame = Bytes::from_static(b"\x81\x05hello");
        let r = decode(encode(7, 1234567890, u64::MAX - 3, &frame)).unwrap();
        assert_eq!((r.origin, r.app_id, r.message_id), (7, 1234567890, u64::MAX - 3));
        assert_eq!(r.frame, frame);
        assert!(decode(Bytes::from_static(b"junk")).is_none());
        assert!(decode(encode(1, 1, 1, &Bytes::new())).is_none(), "an empty frame is malformed");
    }
}
