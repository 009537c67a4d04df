//! What the metrics describe as it is now, read at scrape time: connections, sessions, push
//! jobs, the NATS link, and the process itself (from /proc, on Linux).

use super::Admin;
use crate::metrics::Gauge;

pub async fn read(admin: &Admin) -> Vec<Gauge> {
    let mut gauges = vec![Gauge::single(
        "herald_connections",
        "Open client connections (HTTP and WebSocket), logged in or not",
        admin.admission.open() as f64,
    )];
    let by_app = admin.hub.sessions_by_app();
    let mut apps: Vec<u32> = admin.apps.keys().copied().collect();
    apps.sort_unstable();
    let sessions = apps.iter().map(|a| (a.to_string(), by_app.get(a).copied().unwrap_or(0) as f64)).collect();
    gauges.push(Gauge::labelled("herald_sessions", "Logged-in sessions on this node", "app_id", sessions));
    match admin.store.push_job_totals().await {
        Ok(t) => gauges.push(Gauge::labelled(
            "herald_push_jobs",
            "Push jobs in the store by state",
            "state",
            vec![
                ("pending".into(), t.pending as f64),
                ("running".into(), t.running as f64),
                ("done".into(), t.done as f64),
            ],
        )),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count push jobs"),
    }
    if let Some(relay) = &admin.relay {
        gauges.push(Gauge::single(
            "herald_cluster_nats_connected",
            "1 while the NATS connection is up",
            if relay.connected() { 1.0 } else { 0.0 },
        ));
    }
    gauges.extend(process());
    gauges
}

/// `process_*` as Prometheus' client libraries name them.
fn process() -> Vec<Gauge> {
    let mut gauges = Vec::new();
    if let Some(rss_kb) = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    }) {
        gauges.push(Gauge::single("process_resident_memory_bytes", "Resident memory in bytes", (rss_kb * 1024) as f64));
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauges.push(Gauge::single("process_open_fds", "Open file descriptors", fds.count() as f64));
    }
    // stat: utime and stime are fields 14 and 15, after the `(comm)` field, in USER_HZ ticks,
    // which the kernel fixes at 100 per second for everything it reports in /proc.
    if let Some(ticks) = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| {
        let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    }) {
        let mut cpu =
            Gauge::single("process_cpu_seconds_total", "User and system CPU time in seconds", ticks as f64 / 100.0);
        cpu.kind = "counter";
        gauges.push(cpu);
    }
    gauges
}
