//! The SQLite store's connections: one writer and a few readers, each behind its own mutex and
//! used on the calling thread, and the [`Checkpointer`] that keeps WAL checkpoints off the
//! request path.
//!
//! Why inline: a statement here costs microseconds, and handing it to a connection's own thread
//! (as sqlx's driver does) costs more than that in wake-ups and context switches, several times
//! per transaction. Blocking a caller's thread is bounded by what can hold a connection: a
//! transaction of this process (microseconds), never another process's lock (busy_timeout is 0
//! and the store retries asynchronously, see `retry_busy` in the parent) and never a checkpoint
//! (the writer's auto-checkpoint is off; [`Checkpointer`] does it).

use super::checkpoint::Checkpointer;
use crate::{Result, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

/// Read connections beside the writer; WAL lets them run while it writes. Kept small: the
/// machine has two cores and most reads are point look-ups.
const READ_CONNECTIONS: usize = 4;

/// Each connection caches the statements it has prepared; the writer runs about twenty.
const STATEMENT_CACHE: usize = 64;

/// Once the WAL has been checkpointed whole, the writer starts it over and cuts the file back
/// to this size: it bounds the disk a burst (a login storm) leaves behind, while a steady load
/// reuses the file without growing and truncating it every second.
const WAL_SIZE_LIMIT_BYTES: i64 = 64 << 20;

/// How long a call keeps retrying while another process holds the database locked, before it
/// fails with SQLite's "database is locked" (what `busy_timeout` did, minus the blocking).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The first wait between those retries; it doubles up to [`MAX_BUSY_PAUSE`].
const FIRST_BUSY_PAUSE: Duration = Duration::from_millis(1);
const MAX_BUSY_PAUSE: Duration = Duration::from_millis(50);

/// One connection, or none once the store is closed.
struct Slot(Mutex<Option<Connection>>);

impl Slot {
    fn new(conn: Connection) -> Slot {
        Slot(Mutex::new(Some(conn)))
    }

    /// A panic inside a closure leaves the connection usable: an open transaction was rolled
    /// back when it dropped during the unwind. So a poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, Option<Connection>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_lock(&self) -> Option<MutexGuard<'_, Option<Connection>>> {
        match self.0.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

pub(super) struct Connections {
    /// Every write, and for an in-memory database everything. SQLite admits one writer at a
    /// time anyway; holding its mutex across a whole transaction is also what makes the
    /// check-then-insert steps atomic within the process.
    writer: Slot,
    /// Empty for an in-memory database, which lives only in its one connection.
    readers: Vec<Slot>,
    next_reader: AtomicUsize,
    /// Write calls so far: the checkpointer's measure of how much the WAL has grown.
    writes: Arc<AtomicU64>,
    checkpointer: Mutex<Option<Checkpointer>>,
}

impl Connections {
    /// The connections of a file database that exists and is migrated (in WAL mode).
    pub fn open_file(path: &Path) -> Result<Connections> {
        let writer = open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        // Set on every open: WAL is already in the file, the rest belongs to the connection.
        writer.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
        // With WAL, NORMAL only risks the last commits on power loss, never corruption; the
        // checkpoints sync what came before.
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
        let mut readers = Vec::with_capacity(READ_CONNECTIONS);
        for _ in 0..READ_CONNECTIONS {
            let reader = open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
            // Read-write so it can share the WAL index with the writer; a write through it
            // would be a bug, and this makes it an error.
            reader.pragma_update(None, "query_only", true)?;
            readers.push(Slot::new(reader));
        }
        let writes = Arc::new(AtomicU64::new(0));
        let checkpointer = Checkpointer::start(open(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?, writes.clone())?;
        Ok(Connections {
            writer: Slot::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            writes,
            checkpointer: Mutex::new(Some(checkpointer)),
        })
    }

    /// The one connection of a shared-cache in-memory database named `name` (a `file:` URI),
    /// which another connection has created and migrated: it lives while this one is open.
    pub fn open_memory(name: &str) -> Result<Connections> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_MEMORY
            | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
        Ok(Connections {
            writer: Slot::new(open(Path::new(name), flags)?),
            readers: Vec::new(),
            next_reader: AtomicUsize::new(0),
            writes: Arc::new(AtomicU64::new(0)),
            checkpointer: Mutex::new(None),
        })
    }

    /// Runs `f` on the writer, on this thread.
    pub fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        f(self.writer.lock().as_ref().ok_or(StoreError::Closed)?)
    }

    /// Runs `f` on a reader, on this thread: a free one if any, else it waits for one.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.readers.is_empty() {
            return f(self.writer.lock().as_ref().ok_or(StoreError::Closed)?);
        }
        let n = self.readers.len();
        let first = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let guard = (0..n)
            .find_map(|i| self.readers[(first + i) % n].try_lock())
            .unwrap_or_else(|| self.readers[first % n].lock());
        f(guard.as_ref().ok_or(StoreError::Closed)?)
    }

    /// Stops the checkpointer and closes every connection, waiting for those in use; the last
    /// close checkpoints the WAL into the database file.
    pub fn close(&self) {
        let checkpointer = self.checkpointer.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(checkpointer) = checkpointer {
            checkpointer.stop();
        }
        for slot in self.readers.iter().chain([&self.writer]) {
            drop(slot.lock().take());
        }
    }
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").field("readers", &self.readers.len()).finish_non_exhaustive()
    }
}

/// A write transaction. `BEGIN IMMEDIATE` takes SQLite's write lock first, which matters when
/// another process shares the file: a deferred transaction that reads before writing could
/// count a free slot another process is about to take. Its statements are cached, unlike
/// rusqlite's `Transaction`, which parses them again each time (a tenth of a small
/// transaction). Dropped uncommitted (an error, a refusal, a panic), it rolls back.
pub(super) struct WriteTx<'c> {
    conn: &'c Connection,
}

impl<'c> WriteTx<'c> {
    pub fn begin(conn: &'c Connection) -> Result<WriteTx<'c>> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(WriteTx { conn })
    }

    pub fn commit(self) -> Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        // After a commit the connection is back in autocommit: nothing to undo.
        if !self.conn.is_autocommit() {
            if let Err(e) = self.conn.prepare_cached("ROLLBACK").and_then(|mut rollback| rollback.execute([])) {
                tracing::error!(error = %e, "sqlite rollback failed");
            }
        }
    }
}

fn open(path: &Path, flags: OpenFlags) -> Result<Connection> {
    // NO_MUTEX: each connection is used by one thread at a time, under its Slot's mutex.
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // Never wait inside SQLite for another process's lock: that would block a runtime thread.
    // The store retries a busy call asynchronously instead (`retry_busy`).
    conn.busy_timeout(Duration::ZERO)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Runs `attempt` until it is not refused for another process's lock, waiting between tries
/// without blocking the thread, for at most [`BUSY_TIMEOUT`]; then the last error stands.
pub(super) async fn retry_busy<T, F: Future<Output = Result<T>>>(mut attempt: impl FnMut() -> F) -> Result<T> {
    let deadline = tokio::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = FIRST_BUSY_PAUSE;
    loop {
        match attempt().await {
            Err(StoreError::Sqlite(e))
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && tokio::time::Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BUSY_PAUSE);
            }
            result => return result,
        }
    }
}
