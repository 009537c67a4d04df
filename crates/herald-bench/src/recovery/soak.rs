//! `herald-bench soak`: N clients for a bounded time, a share of them dropping (RST) and coming
//! back with `since` every second, a broadcast every interval, a burst of bad requests every
//! minute. Samples the server's RSS and open descriptors, and checks that the clients online
//! throughout got every broadcast exactly once — and the reconnecting ones too (issue 13).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::backoff::ReconnectArgs;
use super::bad::{self, BadStats};
use super::cost;
use super::fleet::Fleet;
use super::ledger::{Tally, Verdict};
use super::worker::Cmd;
use super::{check, parent, percentile, round3, start_and_log_in, LoggedIn};
use crate::cli::CommonArgs;
use crate::procfs;
use crate::targets::Running;
use crate::tstamp::now_ns;

/// `api.max_body_bytes` of the generated config (the server's default): the oversized bodies
/// are a little larger.
const MAX_BODY_BYTES: usize = 262_144;

#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub reconnect: ReconnectArgs,
    /// How long the soak runs; then the churn stops and the tool waits for the last broadcasts.
    #[arg(long, default_value_t = 600)]
    pub duration_s: u64,
    /// Time between two broadcasts.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Size of each broadcast's text in bytes.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Percent of all clients that drop their connection every second and come back with
    /// `since` (picked at random among the online ones outside the steady group).
    #[arg(long, default_value_t = 1.0)]
    pub reconnect_pct: f64,
    /// Every Nth client never drops: the "online throughout" group (0: none).
    #[arg(long, default_value_t = 10)]
    pub steady_every: usize,
    /// A burst of bad requests every this many seconds, the first after half of it (0: none).
    #[arg(long, default_value_t = 60)]
    pub bad_every_s: u64,
    /// Bad requests per burst, the kinds in turn.
    #[arg(long, default_value_t = 300)]
    pub bad_per_burst: usize,
    /// Seconds between two readings of the server's RSS and open descriptors.
    #[arg(long, default_value_t = 10)]
    pub sample_s: u64,
    /// The end's RSS is compared with the reading at this second (at most half the run).
    #[arg(long, default_value_t = 120)]
    pub rss_ref_s: u64,
    /// Seconds for reconnecting clients to come back and the last broadcasts to arrive once the
    /// soak ends.
    #[arg(long, default_value_t = 60)]
    pub grace_s: u64,
}

/// One reading of the servers (summed over the nodes).
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t_s: f64,
    pub rss_kb: Option<u64>,
    pub fds: Option<u64>,
    /// Server CPU since the soak started.
    pub cpu_ms: Option<f64>,
    /// Clients logged in, and logins after a drop so far (the workers' last status).
    pub online: Option<usize>,
    pub relogins: Option<u64>,
}

/// The one-line JSON result.
#[derive(Debug, Default, Serialize)]
pub struct SoakReport {
    pub mode: &'static str,
    pub conns: usize,
    pub nodes: usize,
    pub duration_s: u64,
    pub interval_ms: u64,
    pub payload: usize,
    pub reconnect_pct: f64,
    pub steady_every: usize,
    /// Clients online throughout (never dropped): what they missed, got twice or out of order.
    pub steady_clients: usize,
    pub steady_lost: u64,
    pub steady_duplicated: u64,
    pub steady_out_of_order: u64,
    /// Server RSS (all nodes) at `rss_ref_t_s` and at the end of the soak, and the growth.
    pub rss_kb_ref: Option<u64>,
    pub rss_ref_t_s: f64,
    pub rss_kb_end: Option<u64>,
    pub rss_growth_pct: Option<f64>,
    pub rss_within_10pct: Option<bool>,
    pub fds_start: Option<u64>,
    pub fds_end: Option<u64>,
    // The reconnecting clients.
    pub churned_clients: usize,
    pub churned_lost: u64,
    pub churned_duplicated: u64,
    pub churned_out_of_order: u64,
    pub unexpected: u64,
    pub id_mismatch: u64,
    pub outages: usize,
    pub relogins: u64,
    pub recovered_true: u64,
    pub recovered_false: u64,
    pub recovered_missing: u64,
    pub no_since: u64,
    pub reconnect_attempts: u64,
    pub reconnect_failures: u64,
    /// Connections that ended without the tool asking (server closes; with --kill-node, the
    /// killed node's clients).
    pub unplanned_losses: u64,
    pub gave_up: usize,
    pub outages_not_back: usize,
    pub outages_not_caught_up: usize,
    /// From losing the connection to having every broadcast answered before the next login.
    pub outage_p50_ms: Option<i64>,
    pub outage_p99_ms: Option<i64>,
    pub outage_max_ms: Option<i64>,
    pub clients_ok: usize,
    pub login_failed: usize,
    pub login_s: f64,
    pub workers: usize,
    pub broadcasts_sent: usize,
    pub broadcasts_accepted: usize,
    pub api_errors: usize,
    pub api_max_ms: f64,
    pub first_error: Option<String>,
    pub bad_bursts: usize,
    pub bad_requests: u64,
    /// Bad requests not answered as documented.
    pub bad_surprises: u64,
    pub bad: BadStats,
    /// Over the whole soak (start to the end of the grace): server CPU, store calls by method,
    /// logins the nodes counted.
    pub server_cpu_ms: f64,
    pub store_ops_by_op: BTreeMap<String, f64>,
    pub server_logins_ok: f64,
    pub server_logins_refused: f64,
    /// The load tool's CPU over the soak (workers and this process), every CPU's busy time, and
    /// what is left: other processes and interrupts.
    pub tool_cpu_ms: Option<f64>,
    pub machine_cpu_ms: Option<f64>,
    pub other_cpu_ms: Option<f64>,
    pub load_start: Option<[f64; 3]>,
    pub load_end: Option<[f64; 3]>,
    pub samples: Vec<Sample>,
    pub reconnect_errors: Vec<String>,
    pub examples: Vec<String>,
}

/// Entry point of `herald-bench soak`.
pub fn main(args: &SoakArgs) -> Result<()> {
    let report = parent(run(args))?;
    if !args.common.json {
        print!("{}", summary(&report));
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn sample(running: &Running, fleet: &Fleet, t0: Instant, cpu0: &[Option<f64>]) -> Sample {
    let sum = |f: &dyn Fn(u32) -> Option<u64>| running.nodes.iter().map(|n| n.pid.and_then(f)).sum::<Option<u64>>();
    let cpu: Option<f64> =
        running.nodes.iter().zip(cpu0).map(|(n, c0)| Some(procfs::cpu_ms(n.pid?).ok()? - (*c0)?)).sum();
    let status = fleet.status();
    Sample {
        t_s: round3(t0.elapsed().as_secs_f64()),
        rss_kb: sum(&|pid| procfs::rss_kb(pid).ok()),
        fds: sum(&|pid| procfs::open_fds(pid).ok()),
        cpu_ms: cpu.map(round3),
        online: status.as_ref().map(|s| s.online),
        relogins: status.map(|s| s.relogins),
    }
}

async fn run(args: &SoakArgs) -> Result<SoakReport> {
    let common = &args.common;
    check(common)?;
    if !(0.0..=100.0).contains(&args.reconnect_pct) {
        bail!("--reconnect-pct must be 0..=100");
    }
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let mut report = SoakReport {
        mode: "soak",
        conns: common.conns,
        nodes: common.nodes,
        duration_s: args.duration_s,
        interval_ms: args.interval_ms,
        payload: args.payload,
        reconnect_pct: args.reconnect_pct,
        steady_every: args.steady_every,
        load_start: procfs::loadavg(),
        ..SoakReport::default()
    };

    let LoggedIn { mut running, http, api, mut fleet, first } =
        start_and_log_in(common, args.reconnect, args.steady_every).await?;
    report.workers = first.workers;
    report.login_s = first.login_s;
    (report.clients_ok, report.login_failed) = (first.ready.ok, first.ready.failed);
    report.first_error.clone_from(&first.ready.first_error);
    let ready = first.ready;

    let alive = vec![true; common.nodes];
    let start_reading = cost::read(&running, &http, &alive).await;
    let cpu0: Vec<Option<f64>> = running.nodes.iter().map(|n| n.pid.and_then(|p| procfs::cpu_ms(p).ok())).collect();
    let tool_before = fleet.cpu_ms();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(args.duration_s);
    let sample_every = Duration::from_secs(args.sample_s.max(1));
    report.samples.push(sample(&running, &fleet, t0, &cpu0));
    fleet.start_broadcasts(api, interval, args.payload);
    fleet.send(&Cmd::Churn { per_second: args.reconnect_pct / 100.0 }).await?;
    eprintln!(
        "herald-bench: soaking for {} s: a broadcast every {} ms, {} % of the clients reconnecting a second, bad requests every {} s",
        args.duration_s, args.interval_ms, args.reconnect_pct, args.bad_every_s
    );
    let target = bad::Target {
        addr: running.nodes[0].ws_addr,
        app_id: common.app_id,
        secret: common.secret.clone(),
        max_body_bytes: MAX_BODY_BYTES,
    };
    let mut bursts: Vec<JoinHandle<BadStats>> = Vec::new();
    let mut next_sample = t0 + sample_every;
    let bad_every = Duration::from_secs(args.bad_every_s);
    let mut next_bad = (args.bad_every_s > 0).then(|| t0 + bad_every / 2);
    loop {
        let next = [Some(end), Some(next_sample), next_bad].into_iter().flatten().min().unwrap_or(end);
        fleet.pump("soaking", next, |_| false).await?;
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= next_sample {
            let s = sample(&running, &fleet, t0, &cpu0);
            eprintln!(
                "  t={:.0} s: RSS {} kB, {} descriptors, {} online",
                s.t_s,
                s.rss_kb.map_or("-".into(), |v| v.to_string()),
                s.fds.map_or("-".into(), |v| v.to_string()),
                s.online.map_or("-".into(), |v| v.to_string())
            );
            report.samples.push(s);
            next_sample += sample_every;
        }
        if next_bad.is_some_and(|at| now >= at) {
            let seed = now_ns() as u64;
            bursts.push(tokio::spawn(bad::burst(target.clone(), args.bad_per_burst, seed)));
            next_bad = next_bad.map(|at| at + bad_every);
        }
    }
    report.samples.push(sample(&running, &fleet, t0, &cpu0));
    fleet.send(&Cmd::Churn { per_second: 0.0 }).await?;
    fleet.stop_broadcasts().await?;
    report.bad_bursts = bursts.len();
    for burst in bursts {
        if let Ok(stats) = burst.await {
            report.bad.add(&stats);
        }
    }
    fleet.clear_status();
    let total = fleet.accepted.len();
    eprintln!("herald-bench: soak over; waiting for every client to be back with all {total} broadcasts");
    let settled = fleet
        .pump("settling", Instant::now() + Duration::from_secs(args.grace_s), |f| {
            f.status().is_some_and(|s| s.accepted >= total && s.has_all + s.gave_up >= ready.ok)
        })
        .await?;
    if !settled {
        eprintln!("herald-bench: not every client had every broadcast {} s after the soak", args.grace_s);
    }
    let whole = cost::read(&running, &http, &alive).await.since(&start_reading);
    report.tool_cpu_ms = match (tool_before, fleet.cpu_ms(), whole.parent_cpu_ms) {
        (Some(a), Some(b), Some(me)) => Some(round3(b - a + me)),
        _ => None,
    };
    report.machine_cpu_ms = whole.machine_cpu_ms.map(round3);
    report.other_cpu_ms = match (report.machine_cpu_ms, report.tool_cpu_ms) {
        (Some(m), Some(t)) => Some(round3(m - t - whole.total_ms())),
        _ => None,
    };
    let verdicts = fleet.verdicts(Duration::from_secs(120)).await?;
    report.broadcasts_sent = fleet.sent;
    report.broadcasts_accepted = fleet.accepted.len();
    report.api_errors = fleet.api_errors;
    report.api_max_ms = round3(fleet.api_max_ms);
    if report.first_error.is_none() {
        report.first_error.clone_from(&fleet.first_api_error);
    }
    fleet.quit().await;
    running.stop().await;
    report.load_end = procfs::loadavg();

    report.server_cpu_ms = round3(whole.total_ms());
    report.store_ops_by_op = whole.counters.store_ops.clone();
    report.server_logins_ok = whole.counters.logins_ok;
    report.server_logins_refused = whole.counters.logins_refused;
    report.bad_requests = report.bad.sent();
    report.bad_surprises = report.bad.surprises();
    fill(&mut report, &verdicts, args);
    Ok(report)
}

fn fill(r: &mut SoakReport, verdicts: &[Verdict], args: &SoakArgs) {
    let (mut steady, mut churned) = (Tally::default(), Tally::default());
    let mut outage_ms: Vec<i64> = Vec::new();
    for v in verdicts {
        steady.add(&v.steady);
        churned.add(&v.churned);
        outage_ms.extend(v.outage_ms.iter().map(|&ms| i64::from(ms)));
        r.outages += v.outages;
        r.relogins += v.relogins;
        r.recovered_true += v.recovered_true;
        r.recovered_false += v.recovered_false;
        r.recovered_missing += v.recovered_missing;
        r.no_since += v.no_since;
        r.reconnect_attempts += v.attempts;
        r.reconnect_failures += v.failures;
        r.unplanned_losses += v.unplanned;
        r.gave_up += v.gave_up;
        r.outages_not_back += v.outages_not_back;
        r.outages_not_caught_up += v.outages_not_caught_up;
        r.id_mismatch += v.id_mismatch;
        r.reconnect_errors.extend(v.errors.iter().take(5 - r.reconnect_errors.len().min(5)).cloned());
        r.examples.extend(v.examples.iter().take(10 - r.examples.len().min(10)).cloned());
    }
    (r.steady_clients, r.steady_lost, r.steady_duplicated, r.steady_out_of_order) =
        (steady.clients, steady.lost, steady.duplicated, steady.out_of_order);
    (r.churned_clients, r.churned_lost, r.churned_duplicated, r.churned_out_of_order) =
        (churned.clients, churned.lost, churned.duplicated, churned.out_of_order);
    r.unexpected = steady.unexpected + churned.unexpected;
    r.outage_p50_ms = percentile(&outage_ms, 0.5);
    r.outage_p99_ms = percentile(&outage_ms, 0.99);
    r.outage_max_ms = outage_ms.iter().max().copied();

    // RSS: the reading nearest the reference second (at most half the run) against the end.
    let ref_s = (args.rss_ref_s as f64).min(args.duration_s as f64 / 2.0);
    let reference = r.samples.iter().min_by(|a, b| (a.t_s - ref_s).abs().total_cmp(&(b.t_s - ref_s).abs()));
    let last = r.samples.last();
    r.rss_ref_t_s = reference.map_or(0.0, |s| s.t_s);
    r.rss_kb_ref = reference.and_then(|s| s.rss_kb);
    r.rss_kb_end = last.and_then(|s| s.rss_kb);
    if let (Some(a), Some(b)) = (r.rss_kb_ref, r.rss_kb_end) {
        let growth = (b as f64 - a as f64) * 100.0 / a.max(1) as f64;
        r.rss_growth_pct = Some(round3(growth));
        r.rss_within_10pct = Some(growth.abs() <= 10.0);
    }
    r.fds_start = r.samples.first().and_then(|s| s.fds);
    r.fds_end = last.and_then(|s| s.fds);
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The human-readable summary (before the JSON line unless --json).
pub fn summary(r: &SoakReport) -> String {
    let mut s = format!(
        "soak: {} clients on {} node(s) for {} s, a broadcast every {} ms, {} % reconnecting a second ({} logged in at first, {} failed)\n",
        r.conns, r.nodes, r.duration_s, r.interval_ms, r.reconnect_pct, r.clients_ok, r.login_failed
    );
    s += &format!(
        "online throughout     : {} clients: lost {}, duplicated {}, out of order {}\n",
        r.steady_clients, r.steady_lost, r.steady_duplicated, r.steady_out_of_order
    );
    s += &format!(
        "reconnecting          : {} clients, {} outages, {} relogins: lost {}, duplicated {}, out of order {}; recovered false {}, missing {}; {} not back, {} not caught up; outage p50 {} ms, p99 {} ms, max {} ms\n",
        r.churned_clients,
        r.outages,
        r.relogins,
        r.churned_lost,
        r.churned_duplicated,
        r.churned_out_of_order,
        r.recovered_false,
        r.recovered_missing,
        r.outages_not_back,
        r.outages_not_caught_up,
        opt(r.outage_p50_ms),
        opt(r.outage_p99_ms),
        opt(r.outage_max_ms)
    );
    s += &format!(
        "server RSS            : {} kB at {:.0} s, {} kB at the end ({} %); descriptors {} at the start, {} at the end\n",
        opt(r.rss_kb_ref),
        r.rss_ref_t_s,
        opt(r.rss_kb_end),
        opt(r.rss_growth_pct),
        opt(r.fds_start),
        opt(r.fds_end)
    );
    s += &format!(
        "broadcasts            : {} accepted of {}, {} API errors, slowest API call {:.1} ms\n",
        r.broadcasts_accepted, r.broadcasts_sent, r.api_errors, r.api_max_ms
    );
    s += &format!(
        "CPU                   : server {:.0} ms, tool {} ms, others {} ms (of {} ms busy)\n",
        r.server_cpu_ms,
        opt(r.tool_cpu_ms),
        opt(r.other_cpu_ms),
        opt(r.machine_cpu_ms)
    );
    s += &format!(
        "bad requests          : {} in {} bursts, {} not answered as documented\n",
        r.bad_requests, r.bad_bursts, r.bad_surprises
    );
    for (kind, k) in &r.bad.0 {
        s += &format!(
            "  {kind:<16}: {} sent, {} as documented{}\n",
            k.sent,
            k.as_expected,
            k.first_surprise.as_ref().map_or(String::new(), |e| format!("; first other: {e}"))
        );
    }
    for sample in &r.samples {
        s += &format!(
            "  t={:>6.1} s: RSS {:>8} kB, {:>6} descriptors, CPU {:>9} ms, {} online\n",
            sample.t_s,
            opt(sample.rss_kb),
            opt(sample.fds),
            opt(sample.cpu_ms),
            opt(sample.online)
        );
    }
    if let Some(l) = r.load_start {
        s += &format!("load average at start : {:.2} {:.2} {:.2}\n", l[0], l[1], l[2]);
    }
    for e in r.reconnect_errors.iter().chain(&r.examples) {
        s += &format!("  {e}\n");
    }
    if let Some(e) = &r.first_error {
        s += &format!("first error           : {e}\n");
    }
    s
}
