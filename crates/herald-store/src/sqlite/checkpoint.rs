//! The thread that copies the WAL back into the database file, so that no commit on a request's
//! path ever does (the writer's `wal_autocheckpoint` is 0).
//!
//! Why by volume and not every second: once a checkpoint has copied the whole WAL, the next
//! commit starts the WAL over and fsyncs its new header, on the request's thread (SQLite does
//! that even with `synchronous = NORMAL`: frames after a restart must not reach the disk before
//! the header). A checkpoint every second put that fsync on a broadcast every second; one
//! every [`CHECKPOINT_AFTER_WRITES`] writes puts it where SQLite's own auto-checkpoint did
//! (every 1000 pages), and a quiet store is still folded within [`CHECKPOINT_AT_MOST_EVERY`].

use crate::{Result, StoreError};
use rusqlite::Connection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Write calls (one to a few WAL pages each) after which the WAL is checkpointed: a few MB.
const CHECKPOINT_AFTER_WRITES: u64 = 1000;
/// A store with any write since the last checkpoint is checkpointed at least this often.
const CHECKPOINT_AT_MOST_EVERY: Duration = Duration::from_secs(30);
/// How often the thread looks at the count: it bounds how far past the mark the WAL grows
/// under a write storm (tens of MB at 18 000 logins a second).
const POLL: Duration = Duration::from_millis(200);

pub(super) struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts the thread on its own connection; `writes` is the writer's count of write calls.
    /// It ends when [`Checkpointer::stop`]ped or dropped.
    pub fn start(conn: Connection, writes: Arc<AtomicU64>) -> Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("herald-sqlite-checkpoint".into())
            .spawn(move || {
                let (mut done_at_writes, mut done_at) = (writes.load(Ordering::Relaxed), Instant::now());
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(POLL) {
                    let now_writes = writes.load(Ordering::Relaxed);
                    let due = now_writes - done_at_writes >= CHECKPOINT_AFTER_WRITES
                        || (now_writes != done_at_writes && done_at.elapsed() >= CHECKPOINT_AT_MOST_EVERY);
                    if !due {
                        continue;
                    }
                    // PASSIVE copies what no reader still needs and never waits for the writer;
                    // what a reader on an old snapshot holds back is copied next time.
                    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(0)) {
                        Ok(_) => (done_at_writes, done_at) = (now_writes, Instant::now()),
                        Err(e) => tracing::warn!(error = %e, "sqlite checkpoint failed"),
                    }
                }
            })
            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        Ok(Checkpointer { stop, thread })
    }

    /// Stops the thread and waits for it (a checkpoint under way finishes first).
    pub fn stop(self) {
        // A send error means the thread has ended already.
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
