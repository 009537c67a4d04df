//! One benchmark run: start the server, log the clients in, broadcast, collect, report.

use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;
use tokio::time::{sleep, sleep_until, Instant};

use crate::cli::{CommonArgs, FanoutArgs};
use crate::fleet::Fleet;
use crate::worker::Spec;
use crate::{procfs, stats, targets};

/// The one-line JSON result. Delays in ms; `k*` from kernel receive timestamps, the rest from
/// the tool's clock when it parsed the frame; all measured from the send of the broadcast.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub target: &'static str,
    pub conns: usize,
    pub broadcasts: usize,
    pub payload: usize,
    pub received: u64,
    pub expected: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub last_median_ms: Option<f64>,
    pub klast_median_ms: Option<f64>,
    pub kp50_ms: Option<f64>,
    pub server_rss_kb_idle: Option<u64>,
    pub server_kb_per_conn: Option<f64>,
    pub server_cpu_ms_per_broadcast: Option<f64>,
    pub server_cpu_us_per_delivery: Option<f64>,
    pub login_s: f64,
    // Details.
    /// Server CPU spent per client while connecting and logging in.
    pub server_login_cpu_us_per_conn: Option<f64>,
    pub kp99_ms: Option<f64>,
    pub kmax_ms: Option<f64>,
    pub last_max_ms: Option<f64>,
    pub klast_max_ms: Option<f64>,
    pub tool_lag_p50_ms: Option<f64>,
    pub tool_lag_p99_ms: Option<f64>,
    pub interval_ms: u64,
    pub conns_ok: usize,
    pub login_failed: usize,
    pub lost: u64,
    pub dup: u64,
    pub closed: u64,
    pub no_kts: u64,
    pub api_errors: usize,
    pub server_rss_kb_loaded: Option<u64>,
    pub server_cpu_ms: Option<f64>,
    pub collect_s: f64,
    pub workers: usize,
    /// CPU the load tool's workers used from the first broadcast to the last receipt.
    pub tool_cpu_ms: Option<f64>,
    /// Per broadcast: ms until the last client had it, by kernel timestamp (not in the JSON).
    #[serde(skip)]
    pub klast_each_ms: Vec<f64>,
    pub first_error: Option<String>,
}

/// Run `logins` (no broadcast arguments) or `fanout`.
pub async fn run(common: &CommonArgs, fanout: Option<&FanoutArgs>) -> Result<Report> {
    let conns = common.conns;
    let target = common.target;
    let (broadcasts, interval, payload) = match fanout {
        Some(f) => (f.broadcasts, Duration::from_millis(f.interval_ms), f.payload),
        None => (0, Duration::ZERO, 0),
    };
    let mut report = Report {
        target: target.name(),
        conns,
        broadcasts,
        payload,
        interval_ms: interval.as_millis() as u64,
        expected: (conns * broadcasts) as u64,
        ..Report::default()
    };

    eprintln!("herald-bench: starting {}", target.name());
    let mut running = targets::start(common).await?;
    let pid = running.pid;
    if pid.is_none() {
        eprintln!("herald-bench: no server PID (attached without --server-pid): no CPU or memory figures");
    }
    sleep(Duration::from_millis(500)).await;
    report.server_rss_kb_idle = pid.and_then(|p| procfs::rss_kb(p).ok());

    let template = Spec {
        worker: 0,
        target,
        server: running.ws_addr,
        path: running.ws_path.to_owned(),
        first: 0,
        count: conns,
        per_source: common.per_source,
        concurrency: common.concurrency,
        attempts: common.connect_attempts,
        app_id: common.app_id,
        secret: common.secret.clone(),
    };
    let login_cpu_before = pid.and_then(|p| procfs::cpu_ms(p).ok());
    let started = Instant::now();
    let mut fleet = Fleet::spawn(&template, common.per_worker).await?;
    report.workers = fleet.workers();
    eprintln!("herald-bench: connecting {conns} clients from {} worker(s)", report.workers);
    let login_budget = Duration::from_secs(60) + Duration::from_millis(20 * conns as u64);
    let ready = fleet.wait_ready(login_budget).await?;
    report.login_s = round3(started.elapsed().as_secs_f64());
    let login_cpu_after = pid.and_then(|p| procfs::cpu_ms(p).ok());
    if let (Some(before), Some(after)) = (login_cpu_before, login_cpu_after) {
        if ready.ok > 0 {
            report.server_login_cpu_us_per_conn = Some(round3((after - before) * 1000.0 / ready.ok as f64));
        }
    }
    report.conns_ok = ready.ok;
    report.login_failed = ready.failed;
    report.first_error = ready.first_error;
    eprintln!("herald-bench: {} logged in, {} failed, in {:.2} s", ready.ok, ready.failed, report.login_s);
    if ready.ok == 0 && conns > 0 {
        bail!("no client logged in: {}", report.first_error.as_deref().unwrap_or("?"));
    }
    sleep(Duration::from_secs_f64(common.settle_s.max(0.0))).await;
    report.server_rss_kb_loaded = pid.and_then(|p| procfs::rss_kb(p).ok());
    if let (Some(idle), Some(loaded)) = (report.server_rss_kb_idle, report.server_rss_kb_loaded) {
        if ready.ok > 0 {
            report.server_kb_per_conn = Some(round3((loaded as f64 - idle as f64) / ready.ok as f64));
        }
    }

    if broadcasts > 0 {
        let grace = Duration::from_secs(fanout.map_or(30, |f| f.grace_s));
        let window = interval * broadcasts as u32 + grace;
        fleet.collect(broadcasts, window).await?;
        eprintln!("herald-bench: {broadcasts} broadcasts of {payload} B every {} ms", interval.as_millis());
        let cpu_before = pid.and_then(|p| procfs::cpu_ms(p).ok());
        let tool_before = fleet.cpu_ms();
        let start = Instant::now();
        let mut corrections_us = vec![0; broadcasts];
        for (b, correction) in corrections_us.iter_mut().enumerate() {
            sleep_until(start + interval * b as u32).await;
            match running.sender.send(b, payload).await {
                Ok(sent) => {
                    *correction = (sent.send_ns - sent.embedded_ns) / 1000;
                    if let Some(e) = sent.error {
                        report.api_errors += 1;
                        report.first_error.get_or_insert(format!("broadcast {b}: {e}"));
                    }
                }
                Err(e) => {
                    report.api_errors += 1;
                    report.first_error.get_or_insert(format!("broadcast {b}: {e:#}"));
                }
            }
        }
        fleet.wait_done(window + Duration::from_secs(30)).await?;
        let cpu_after = pid.and_then(|p| procfs::cpu_ms(p).ok());
        if let (Some(before), Some(after)) = (tool_before, fleet.cpu_ms()) {
            report.tool_cpu_ms = Some(round3(after - before));
        }
        report.collect_s = round3(start.elapsed().as_secs_f64());
        let results = fleet.results(Duration::from_secs(120)).await?;

        report.received = results.iter().map(|r| r.received).sum();
        report.dup = results.iter().map(|r| r.dup).sum();
        report.no_kts = results.iter().map(|r| r.no_kts).sum();
        report.closed = results.iter().map(|r| r.closed).sum();
        report.lost = report.expected.saturating_sub(report.received);
        if let Some(reason) = results.iter().flat_map(|r| &r.close_reasons).next() {
            report.first_error.get_or_insert(format!("session closed: {reason}"));
        }
        let d = stats::delays(&results, &corrections_us);
        (report.p50_ms, report.p99_ms, report.max_ms) = (d.p50, d.p99, d.max);
        (report.kp50_ms, report.kp99_ms, report.kmax_ms) = (d.kp50, d.kp99, d.kmax);
        (report.last_median_ms, report.last_max_ms) = (d.last_median, d.last_max);
        (report.klast_median_ms, report.klast_max_ms) = (d.klast_median, d.klast_max);
        (report.tool_lag_p50_ms, report.tool_lag_p99_ms) = (d.lag_p50, d.lag_p99);
        report.klast_each_ms = d.klast_each;
        if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
            let cpu = after - before;
            report.server_cpu_ms = Some(round3(cpu));
            report.server_cpu_ms_per_broadcast = Some(round3(cpu / broadcasts as f64));
            if report.received > 0 {
                report.server_cpu_us_per_delivery = Some(round3(cpu * 1000.0 / report.received as f64));
            }
        }
    }

    fleet.quit().await;
    if let Some(server) = running.server.as_mut() {
        let _ = server.child.kill().await;
    }
    Ok(report)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

/// The human-readable summary (printed before the JSON line when --json is not given).
pub fn summary(r: &Report) -> String {
    let mut s = format!(
        "target {}: {} clients ({} logged in, {} failed) in {:.2} s from {} worker(s)\n",
        r.target, r.conns, r.conns_ok, r.login_failed, r.login_s, r.workers
    );
    if r.broadcasts > 0 {
        s += &format!(
            "{} broadcasts of {} B every {} ms: received {}/{} (lost {}, dup {}, api errors {}, closed {})\n",
            r.broadcasts, r.payload, r.interval_ms, r.received, r.expected, r.lost, r.dup, r.api_errors, r.closed
        );
        s += &format!(
            "delay by tool clock   : p50 {} ms, p99 {} ms, max {} ms; last client {} ms (median), {} ms (max)\n",
            opt(r.p50_ms),
            opt(r.p99_ms),
            opt(r.max_ms),
            opt(r.last_median_ms),
            opt(r.last_max_ms)
        );
        s += &format!(
            "delay by kernel stamp : p50 {} ms, p99 {} ms, max {} ms; last client {} ms (median), {} ms (max)\n",
            opt(r.kp50_ms),
            opt(r.kp99_ms),
            opt(r.kmax_ms),
            opt(r.klast_median_ms),
            opt(r.klast_max_ms)
        );
        s += &format!("tool's own lag        : p50 {} ms, p99 {} ms\n", opt(r.tool_lag_p50_ms), opt(r.tool_lag_p99_ms));
        let each: Vec<String> = r.klast_each_ms.iter().map(|v| format!("{v:.1}")).collect();
        s += &format!("last client, each     : {} ms (kernel stamps)\n", each.join(" "));
        s += &format!(
            "server CPU            : {} ms in all, {} ms per broadcast, {} µs per delivery (tool's workers: {} ms)\n",
            opt(r.server_cpu_ms),
            opt(r.server_cpu_ms_per_broadcast),
            opt(r.server_cpu_us_per_delivery),
            opt(r.tool_cpu_ms)
        );
    }
    s += &format!("server CPU at login   : {} µs per client\n", opt(r.server_login_cpu_us_per_conn));
    s += &format!(
        "server memory         : {} kB idle, {} kB loaded, {} kB per connection\n",
        r.server_rss_kb_idle.map_or("-".into(), |v| v.to_string()),
        r.server_rss_kb_loaded.map_or("-".into(), |v| v.to_string()),
        opt(r.server_kb_per_conn)
    );
    if let Some(e) = &r.first_error {
        s += &format!("first error           : {e}\n");
    }
    s
}
