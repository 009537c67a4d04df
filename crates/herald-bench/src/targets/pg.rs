//! The PostgreSQL database of a Herald cluster run, through `psql`: a role and a database of the
//! run's own (the role's CONNECTION LIMIT caps what the nodes may take from a shared server),
//! the backends' CPU counted as Herald's, both dropped when the run ends.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::time::timeout;

use crate::tstamp::now_ns;

/// Longest one `psql` call may take.
const PSQL_TIMEOUT: Duration = Duration::from_secs(30);

/// A role and a database (same name) created for this run; both dropped (the database `WITH
/// (FORCE)`, closing the nodes' connections) when this value is dropped.
pub struct Database {
    pub name: String,
    /// URL of the database as the run's role, for the nodes' `[store] url`.
    pub url: String,
    /// The role's CONNECTION LIMIT, None for none.
    pub conn_limit: Option<u32>,
    admin_url: String,
    db_created: bool,
}

fn psql_args<'a>(admin_url: &'a str, sql: &'a str) -> [&'a str; 10] {
    ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", admin_url, "-c", sql]
}

async fn psql(admin_url: &str, sql: &str) -> Result<String> {
    let mut cmd = tokio::process::Command::new("psql");
    cmd.args(psql_args(admin_url, sql))
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = timeout(PSQL_TIMEOUT, cmd.output())
        .await
        .with_context(|| format!("psql took over {PSQL_TIMEOUT:?}: {sql}"))?
        .context("running psql (apt-get install -y postgresql-client)")?;
    if !out.status.success() {
        bail!("psql {sql:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn psql_blocking(admin_url: &str, sql: &str) -> bool {
    std::process::Command::new("psql")
        .args(psql_args(admin_url, sql))
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGOPTIONS", "-c statement_timeout=30000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `url` as `user:password` on database `db`; host, port and query string are kept.
pub fn with_login(url: &str, user: &str, password: &str, db: &str) -> Result<String> {
    let (scheme, rest) = url.split_once("://").with_context(|| format!("not a URL: {url}"))?;
    if scheme != "postgres" && scheme != "postgresql" {
        bail!("not a postgres:// URL: {url}");
    }
    let (main, query) = match rest.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (rest, None),
    };
    let authority = main.split_once('/').map_or(main, |(authority, _)| authority);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let mut out = format!("{scheme}://{user}:{password}@{host}/{db}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

/// Client connections the server at `admin_url` can still accept (`max_connections` minus the
/// client backends).
pub async fn free_connections(admin_url: &str) -> Result<i64> {
    let sql = "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity \
               WHERE backend_type = 'client backend'";
    let out = psql(admin_url, sql).await?;
    out.trim().parse().with_context(|| format!("odd answer {out:?}"))
}

impl Database {
    /// `CREATE ROLE herald_bench_<pid>_<random> ... CONNECTION LIMIT` and a database of that
    /// name it owns, through `admin_url`.
    pub async fn create(admin_url: &str, conn_limit: Option<u32>) -> Result<Database> {
        let seed = now_ns() as u64 ^ u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let name = format!("herald_bench_{}_{:08x}", std::process::id(), seed as u32);
        let password = format!("{:016x}", seed.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(17));
        let url = with_login(admin_url, &name, &password, &name)?;
        let limit = conn_limit.map_or(-1, i64::from);
        psql(admin_url, &format!("CREATE ROLE {name} LOGIN PASSWORD '{password}' CONNECTION LIMIT {limit}"))
            .await
            .context("creating the run's role")?;
        // From here on, dropping `db` cleans up.
        let mut db = Database { name, url, conn_limit, admin_url: admin_url.to_owned(), db_created: false };
        psql(admin_url, &format!("CREATE DATABASE {0} OWNER {0}", db.name))
            .await
            .context("creating the run's database")?;
        db.db_created = true;
        Ok(db)
    }

    /// PIDs of the server processes (backends) connected to this database, found by their
    /// process titles (`postgres: [cluster: ]user database host(port) state`) rather than a
    /// query, which would need a connection the nodes may have taken.
    pub fn backend_pids(&self) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                    return false;
                };
                let title = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                title.starts_with("postgres:") && title.split_whitespace().any(|t| t == self.name)
            })
            .collect()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if self.db_created
            && !psql_blocking(&self.admin_url, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
        {
            eprintln!("herald-bench: could not drop database {0}; drop it by hand (and role {0})", self.name);
            return;
        }
        if !psql_blocking(&self.admin_url, &format!("DROP ROLE IF EXISTS {}", self.name)) {
            eprintln!("herald-bench: could not drop role {}; drop it by hand", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_login;

    #[test]
    fn replaces_login_and_database() {
        let f = |u| with_login(u, "r", "pw", "db1").unwrap();
        assert_eq!(f("postgres://postgres@127.0.0.1:5432/test"), "postgres://r:pw@127.0.0.1:5432/db1");
        assert_eq!(f("postgresql://u:p@h/test?sslmode=disable"), "postgresql://r:pw@h/db1?sslmode=disable");
        assert_eq!(f("postgres://h:5432"), "postgres://r:pw@h:5432/db1");
        assert!(with_login("mysql://h/x", "r", "pw", "db1").is_err());
    }
}
