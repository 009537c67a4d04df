//! The PostgreSQL of the tests, and a fresh database for each test.
//!
//! Each [`TestDatabase`] is a database `herald_test_<random>` created through an admin connection
//! and dropped (`WITH (FORCE)`, best effort) with the guard. The admin connection goes to, in
//! this order: the URL in [`ADMIN_URL_ENV`]; [`STANDARD_ADMIN_URL`] when a server answers there
//! and lets the test user in; a private server started for this process (see the crate docs).
//!
//! ```no_run
//! # async fn f() {
//! let (url, _db) = herald_testkit::test_database().await; // panics, saying why, if none is available
//! // `url` is `postgres://…/herald_test_…`: open a store or configure a server with it.
//! # }
//! ```

use crate::install::{self, POSTGRES_PACKAGE};
use crate::private::{self, Spec};
use sqlx::{Connection, PgConnection};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;

/// Overrides the search: the admin URL of a PostgreSQL to create test databases on.
pub const ADMIN_URL_ENV: &str = "HERALD_TEST_POSTGRES_URL";
/// The standard local server (trust auth, database `test`), used when it answers, as on CI.
pub const STANDARD_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const STANDARD_ADDR: &str = "127.0.0.1:5432";

/// How long to wait for an admin connection before calling PostgreSQL unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin URL, found once per process; an error is kept too, so every test reports it
/// without trying again.
static ADMIN_URL: OnceCell<Result<String, String>> = OnceCell::const_new();

/// A fresh database, dropped (best effort) with this guard. Keep it alive for as long as any
/// store uses [`TestDatabase::url`].
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates the database. The error says what failed.
    pub async fn create() -> Result<Self, String> {
        let admin_url = admin_url().await?;
        let name = format!("herald_test_{}", random_suffix());
        let url = with_database(&admin_url, &name);
        let mut admin = admin_connection(&admin_url).await?;
        // Concurrent CREATE DATABASEs can trip over each other copying template1
        // ("source database is being accessed by other users"); that passes quickly.
        let mut tries = 0;
        loop {
            tries += 1;
            match sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await {
                Ok(_) => break,
                Err(sqlx::Error::Database(e)) if tries < 10 && e.code().as_deref() == Some("55006") => {
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                Err(e) => return Err(format!("CREATE DATABASE {name} via {admin_url} failed: {e}")),
            }
        }
        let _ = admin.close().await;
        Ok(Self { admin_url, name, url })
    }

    /// `postgres://.../herald_test_<random>`, for a store or a server's `store.url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Drops the database from a thread of its own (a `Drop` cannot await, and may run inside a
/// runtime); `WITH (FORCE)` ends connections that stores still hold.
impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropper = std::thread::spawn(move || -> Result<(), String> {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = admin_connection(&admin_url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = admin.close().await;
                Ok(())
            })
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

/// A fresh database: its URL and the guard that drops it. Panics (so a test fails, never
/// skips) when no PostgreSQL can be had, saying why and what to do.
pub async fn test_database() -> (String, TestDatabase) {
    match TestDatabase::create().await {
        Ok(db) => (db.url.clone(), db),
        Err(e) => panic!("no PostgreSQL for the tests: {e}"),
    }
}

/// The admin URL of the PostgreSQL this process's tests use (see the module docs).
pub async fn admin_url() -> Result<String, String> {
    ADMIN_URL.get_or_init(find_or_start).await.clone()
}

async fn find_or_start() -> Result<String, String> {
    if let Ok(url) = std::env::var(ADMIN_URL_ENV) {
        return Ok(url);
    }
    let why_not_standard = match standard().await {
        Ok(url) => return Ok(url),
        Err(why) => why,
    };
    let private = start_private().await.map_err(|e| format!("{why_not_standard}, and {e}"))?;
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", private.port);
    crate::announce(&format!(
        "{why_not_standard}; started a private PostgreSQL for this test process at {url} \
         (data in {}, removed when the process ends; set {ADMIN_URL_ENV} to use another)",
        private.dir.display()
    ));
    Ok(url)
}

/// The standard server's admin URL if it answers and lets the test user in, else why not.
async fn standard() -> Result<String, String> {
    let connect = tokio::net::TcpStream::connect(STANDARD_ADDR);
    if !matches!(tokio::time::timeout(CONNECT_TIMEOUT, connect).await, Ok(Ok(_))) {
        return Err(format!("no PostgreSQL answers at {STANDARD_ADDR}"));
    }
    let connection = admin_connection(STANDARD_ADMIN_URL)
        .await
        .map_err(|e| format!("the PostgreSQL at {STANDARD_ADDR} refused the test login ({e})"))?;
    let _ = connection.close().await;
    Ok(STANDARD_ADMIN_URL.to_string())
}

async fn start_private() -> Result<private::Private, String> {
    let bin = install::ensure("PostgreSQL (initdb and postgres)", POSTGRES_PACKAGE, install::find_postgres_bin)?;
    // PostgreSQL refuses to run as root; the `postgres` user that its packages create will do.
    let user = private::is_root().then(|| if private::user_exists("postgres") { "postgres" } else { "nobody" });
    let spec = Spec {
        name: "postgres",
        // Durability is worth nothing to a database that lives as long as one test process.
        body: r#"
"$1/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync || exit 1
"$1/postgres" -D "$dir/data" -h 127.0.0.1 -p "$port" -k "$dir" -c max_connections=200 \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off &
"#,
        args: vec![bin.display().to_string()],
        // Immediate shutdown: nothing in it needs to survive.
        stop_signal: "QUIT",
        user: user.map(str::to_string),
    };
    private::start(&spec, |port| async move {
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        // Until it is ready, PostgreSQL refuses logins ("the database system is starting up").
        match tokio::time::timeout(Duration::from_secs(2), PgConnection::connect(&url)).await {
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
                true
            }
            _ => false,
        }
    })
    .await
    .map_err(|e| format!("starting a private PostgreSQL failed: {e}"))
}

async fn admin_connection(admin_url: &str) -> Result<PgConnection, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(admin_url)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(format!("cannot connect to {admin_url}: {e}")),
        Err(_) => Err(format!("no answer from {admin_url} within {CONNECT_TIMEOUT:?}")),
    }
}

/// `admin_url` with its database (the path) replaced by `name`, query string kept.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..host_end])
}

/// 16 hex digits, unique per call: std's randomly keyed hasher over pid, time and a counter.
fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_swapped_in_url() {
        let swap = |url| with_database(url, "fresh");
        assert_eq!(swap("postgres://postgres@127.0.0.1:5432/test"), "postgres://postgres@127.0.0.1:5432/fresh");
        assert_eq!(swap("postgresql://u:p@h/test?sslmode=disable"), "postgresql://u:p@h/fresh?sslmode=disable");
        assert_eq!(swap("postgres://h:5432"), "postgres://h:5432/fresh");
    }

    #[test]
    fn suffixes_differ() {
        assert_ne!(random_suffix(), random_suffix());
    }
}
