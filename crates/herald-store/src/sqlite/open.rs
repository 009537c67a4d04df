//! How a `sqlite:` URL becomes the store's connections: the file made private, the migrations
//! run through sqlx as they always were (a database keeps its `_sqlx_migrations`), then the
//! store's own connections opened on the same database.

use super::connections::Connections;
use crate::Result;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection as _};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long the migrations wait for another process's lock.
const MIGRATION_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Names the in-memory databases of this process apart.
static MEMORY_DATABASES: AtomicU64 = AtomicU64::new(0);

/// Opens `sqlite://PATH` (creating the file and its parent directory when missing) or an
/// in-memory database, migrated.
pub(super) async fn connections(url: &str) -> Result<Connections> {
    let options = SqliteConnectOptions::from_str(url)?.foreign_keys(true).busy_timeout(MIGRATION_BUSY_TIMEOUT);

    if is_in_memory(url) {
        // Every in-memory connection is a database of its own, except connections to one
        // shared-cache name: the migrations' connection and ours meet there, and the database
        // then lives as long as ours.
        let name = format!("file:herald-memory-{}", MEMORY_DATABASES.fetch_add(1, Ordering::Relaxed));
        let options = options.filename(&name).in_memory(true).shared_cache(true);
        let mut migrating = options.connect().await?;
        migrate(&mut migrating).await?;
        let conns = Connections::open_memory(&name)?;
        migrating.close().await?;
        return Ok(conns);
    }

    let options =
        options.create_if_missing(true).journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Normal);
    create_private(options.get_filename()).map_err(sqlx::Error::Io)?;
    let mut migrating = options.connect().await?;
    migrate(&mut migrating).await?;
    migrating.close().await?;
    Connections::open_file(options.get_filename())
}

/// The database holds every user and push token: its directory is made 0700 and the file 0600
/// when Herald creates them, and SQLite gives its `-wal` and `-shm` files the database's mode.
/// Existing files keep their modes (the server warns at start when others can read them).
fn create_private(db: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        dir.mode(0o700);
        dir.create(parent)?;
    }
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    file.mode(0o600);
    match file.open(db) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

async fn migrate(conn: &mut SqliteConnection) -> Result<()> {
    sqlx::migrate!("./migrations/sqlite").run(conn).await?;
    Ok(())
}

/// sqlx accepts several spellings of an in-memory database; each open of one makes a new
/// database, named by [`MEMORY_DATABASES`].
fn is_in_memory(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_spellings() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://:memory:"));
        assert!(is_in_memory("sqlite://?mode=memory"));
        assert!(!is_in_memory("sqlite://data/herald.db"));
        assert!(!is_in_memory("sqlite:herald.db?mode=rwc"));
    }
}
