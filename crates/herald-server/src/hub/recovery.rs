//! The recovery window: each app's recent broadcast frames, kept so that a client logging in
//! again with `since` gets what it missed, once and in order (docs/protocol.md, "Recovery").
//!
//! Entries carry the hub's fan-out sequence number. A shard remembers the last sequence its
//! worker wrote to it, and a session is activated under that shard's lock, so the broadcasts it
//! gets replayed (sequence at most the shard's mark) and the ones it gets live (after the mark)
//! never overlap and leave no gap.
//!
//! Memory: at most `recovery_max_messages` frames per app, none older than
//! `recovery_window_s`; a frame is the encoded `bcast` message (about 250 bytes plus the message
//! and its extended data).

use bytes::{Bytes, BytesMut};
use herald_store::{Store, StoreError};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

struct Entry {
    seq: u64,
    message_id: u64,
    at_ms: i64,
    frame: Bytes,
}

/// What a session that asked for recovery gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Replay {
    /// Every broadcast after `since` is in the window: these frames (back to back, possibly
    /// none) follow `login_ok`.
    Recovered { frames: Bytes, message_ids: Vec<u64> },
    /// The client may have missed some: `since` is unknown or too old, recovery is off, or the
    /// missed frames are more than the session's outbox holds.
    NotRecovered,
}

pub struct RecoveryWindow {
    /// 0: recovery is off.
    window_ms: i64,
    max_messages: usize,
    apps: Mutex<HashMap<u32, VecDeque<Entry>>>,
}

impl RecoveryWindow {
    pub fn new(window: Duration, max_messages: usize) -> RecoveryWindow {
        RecoveryWindow { window_ms: window.as_millis() as i64, max_messages, apps: Mutex::default() }
    }

    pub fn enabled(&self) -> bool {
        self.window_ms > 0 && self.max_messages > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, VecDeque<Entry>>> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a broadcast about to be fanned out as `seq`; drops what fell out of the window.
    pub fn record(&self, app_id: u32, seq: u64, message_id: u64, now_ms: i64, frame: &Bytes) {
        if !self.enabled() {
            return;
        }
        let mut apps = self.lock();
        let entries = apps.entry(app_id).or_default();
        entries.push_back(Entry { seq, message_id, at_ms: now_ms, frame: frame.clone() });
        while entries.len() > self.max_messages || entries.front().is_some_and(|e| e.at_ms < now_ms - self.window_ms) {
            entries.pop_front();
        }
    }

    /// Whether the window holds this broadcast already (one relayed after a start that loaded it).
    pub fn contains(&self, app_id: u32, message_id: u64) -> bool {
        self.lock().get(&app_id).is_some_and(|e| e.iter().rev().any(|e| e.message_id == message_id))
    }

    /// What a session that had `since` missed, among the broadcasts already written to its
    /// shard (sequence at most `written_seq`); the later ones reach it live. `max_bytes` is what
    /// the session's outbox holds: a replay that does not fit is not attempted, since a partial
    /// one would leave a gap.
    pub fn replay(&self, app_id: u32, since: u64, written_seq: u64, now_ms: i64, max_bytes: usize) -> Replay {
        if !self.enabled() {
            return Replay::NotRecovered;
        }
        let apps = self.lock();
        let Some(entries) = apps.get(&app_id) else { return Replay::NotRecovered };
        let Some(start) = entries.iter().rposition(|e| e.message_id == since) else { return Replay::NotRecovered };
        if entries[start].at_ms < now_ms - self.window_ms {
            return Replay::NotRecovered;
        }
        let missed: Vec<&Entry> = entries.range(start + 1..).take_while(|e| e.seq <= written_seq).collect();
        let size: usize = missed.iter().map(|e| e.frame.len()).sum();
        if size > max_bytes {
            tracing::info!(
                app_id,
                since,
                missed = missed.len(),
                size,
                max_bytes,
                "recovery: the missed broadcasts exceed the session's outbox (gateway.outbox_bytes); not replayed"
            );
            return Replay::NotRecovered;
        }
        let mut frames = BytesMut::with_capacity(size);
        for e in &missed {
            frames.extend_from_slice(&e.frame);
        }
        Replay::Recovered { frames: frames.freeze(), message_ids: missed.iter().map(|e| e.message_id).collect() }
    }
}

/// Replayed deliveries per broadcast, added to the store in one write per broadcast a second,
/// so a reconnect storm does not turn into a write per session.
#[derive(Default)]
pub struct RecoveredCounts(Mutex<HashMap<(u32, u64), u64>>);

impl RecoveredCounts {
    pub fn add(&self, app_id: u32, message_ids: &[u64]) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for &id in message_ids {
            *counts.entry((app_id, id)).or_default() += 1;
        }
    }

    /// Writes what was counted since the last flush; what fails to write is kept for the next.
    pub async fn flush(&self, store: &dyn Store) {
        let taken = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        for ((app_id, message_id), n) in taken {
            if let Err(e) = store.add_broadcast_recovered(app_id, message_id, n).await {
                tracing::warn!(error = %e, message_id, "could not record recovered deliveries; retrying");
                *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry((app_id, message_id)).or_default() += n;
            }
        }
    }
}

/// Loads the window of `app_id` from the store (a starting node): the broadcasts that went
/// online within the window, oldest first, numbered from `first_seq`. Returns how many.
pub async fn load(
    window: &RecoveryWindow,
    store: &dyn Store,
    app_id: u32,
    now_ms: i64,
    first_seq: u64,
) -> Result<u64, StoreError> {
    if !window.enabled() {
        return Ok(0);
    }
    let limit = u32::try_from(window.max_messages).unwrap_or(u32::MAX);
    let records = store.recent_broadcasts(app_id, now_ms - window.window_ms, limit).await?;
    let mut seq = first_seq;
    for record in records {
        let broadcast = crate::broadcast::Broadcast::from_record(record)?;
        let at_ms = broadcast.record.accepted_at_ms;
        window.record(app_id, seq, broadcast.message_id(), at_ms, &broadcast.encode_frame());
        seq += 1;
    }
    Ok(seq - first_seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> RecoveryWindow {
        let w = RecoveryWindow::new(Duration::from_secs(300), 3);
        for (seq, id) in [(1, 100), (2, 200), (3, 300)] {
            w.record(7, seq, id, 1_000 * seq as i64, &Bytes::from(format!("<{id}>")));
        }
        w
    }

    fn frames(r: Replay) -> (String, Vec<u64>) {
        match r {
            Replay::Recovered { frames, message_ids } => (String::from_utf8(frames.to_vec()).unwrap(), message_ids),
            Replay::NotRecovered => panic!("not recovered"),
        }
    }

    #[test]
    fn replays_what_came_after_since_up_to_what_the_shard_was_written() {
        let w = window();
        assert_eq!(frames(w.replay(7, 100, 3, 4_000, 1 << 20)), ("<200><300>".into(), vec![200, 300]));
        // 300 is still on its way to this shard: it will arrive live, so it is not replayed.
        assert_eq!(frames(w.replay(7, 100, 2, 4_000, 1 << 20)), ("<200>".into(), vec![200]));
        assert_eq!(frames(w.replay(7, 300, 3, 4_000, 1 << 20)), (String::new(), vec![]));
    }

    #[test]
    fn unknown_old_or_too_large_is_not_recovered() {
        let w = window();
        assert_eq!(w.replay(7, 42, 3, 4_000, 1 << 20), Replay::NotRecovered, "unknown since");
        assert_eq!(w.replay(8, 100, 3, 4_000, 1 << 20), Replay::NotRecovered, "another app");
        assert_eq!(w.replay(7, 100, 3, 4_000, 5), Replay::NotRecovered, "more than the outbox holds");
        assert_eq!(w.replay(7, 100, 3, 302_000, 1 << 20), Replay::NotRecovered, "since left the window");
        w.record(7, 4, 400, 4_000, &Bytes::from_static(b"<400>"));
        assert_eq!(w.replay(7, 100, 4, 4_000, 1 << 20), Replay::NotRecovered, "since pushed out by the cap");
        assert_eq!(frames(w.replay(7, 200, 4, 4_000, 1 << 20)).1, vec![300, 400]);
        let off = RecoveryWindow::new(Duration::ZERO, 1000);
        off.record(7, 1, 100, 0, &Bytes::from_static(b"x"));
        assert_eq!(off.replay(7, 100, 1, 0, 1 << 20), Replay::NotRecovered, "recovery off");
        assert!(w.contains(7, 400) && !w.contains(7, 100) && !off.contains(7, 100));
    }
}
