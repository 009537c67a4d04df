//! How many WebSocket sessions the process's descriptor limit leaves room for.
//!
//! Why: every session is a socket, and the store's pool, NATS, API callers and push connections
//! need descriptors too. Left to run into the limit, a node under a reconnect storm fails to
//! open its database connections ("Too many open files"): logins and broadcasts fail and the
//! node's cluster lease lapses. Capping sessions below the limit instead answers the surplus
//! upgrades 503, so clients back off and go to another node, and the store keeps working.

/// Descriptors kept back from sessions for everything else the process opens; under a small
/// limit (a test's `ulimit -n 64`), a quarter of it instead.
pub const RESERVED: usize = 1000;

fn reserve(limit: usize) -> usize {
    RESERVED.min(limit / 4)
}

/// The soft limit on open files, from `/proc/self/limits` (None elsewhere, or when unlimited).
pub fn open_files_limit() -> Option<usize> {
    parse_limits(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

fn parse_limits(text: &str) -> Option<usize> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// The session cap to enforce: the configured one, or less when the descriptor limit cannot
/// hold it (at least 1, so a tiny limit still serves someone).
pub fn session_cap(configured: usize, limit: Option<usize>) -> usize {
    match limit {
        Some(limit) => configured.min(limit.saturating_sub(reserve(limit)).max(1)),
        None => configured,
    }
}

/// Connections of any kind (sessions, API callers, pending upgrades) past which the listener
/// stops accepting and sheds unauthenticated ones, as it would at EMFILE: half the reserve stays
/// free for the store's pool, NATS, push connections and files.
pub fn connection_cap(limit: Option<usize>) -> Option<u64> {
    limit.map(|limit| limit.saturating_sub(reserve(limit) / 2).max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
        Max processes             96000                96000                processes \n\
        Max open files            20000                20000                files     \n\
        Max locked memory         8388608              8388608              bytes     \n";

    #[test]
    fn reads_the_soft_limit_on_open_files() {
        assert_eq!(parse_limits(LIMITS), Some(20_000));
        assert_eq!(parse_limits(&LIMITS.replace("20000                20000", "unlimited unlimited")), None);
        assert_eq!(parse_limits("nothing here"), None);
    }

    #[test]
    fn sessions_stay_below_the_limit_by_the_reserve() {
        assert_eq!(session_cap(100_000, Some(20_000)), 19_000);
        assert_eq!(session_cap(5_000, Some(20_000)), 5_000, "a lower setting stands");
        assert_eq!(session_cap(100_000, None), 100_000);
        assert_eq!(session_cap(100_000, Some(64)), 48, "a small limit keeps a quarter back");
        assert_eq!(session_cap(100_000, Some(1)), 1);
        assert_eq!(connection_cap(Some(20_000)), Some(19_500), "pending upgrades and API callers fit between");
        assert_eq!(connection_cap(None), None);
    }
}
