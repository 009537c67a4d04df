//! `herald-bench storm`: N clients lose their connections at one moment while broadcasts go on —
//! every socket reset at once, or (`--kill-node`) one node killed with `kill -9` — and come back
//! with the SDKs' backoff and `since`. Reports how long until all were logged in again and had
//! every broadcast, what that cost the servers per login (CPU, store calls), and what was lost,
//! duplicated or out of order (issue 12).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use tokio::time::Instant;

use super::backoff::ReconnectArgs;
use super::client::now_ms;
use super::cost::{self, Cost};
use super::ledger::{Tally, Verdict};
use super::worker::Cmd;
use super::{check, parent, percentile, round3, secs, start_and_log_in, LoggedIn};
use crate::cli::CommonArgs;
use crate::procfs;
use crate::targets;

#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub reconnect: ReconnectArgs,
    /// Time between two broadcasts, before, during and after the storm.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Size of each broadcast's text in bytes (`b=<index>;t=<send ns>;` padded with `x`).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Seconds of broadcasting before the drop (also the window the background cost is read in).
    #[arg(long, default_value_t = 10.0)]
    pub before_s: f64,
    /// Broadcasts after every client is back and caught up.
    #[arg(long, default_value_t = 5)]
    pub after: usize,
    /// Longest the clients get to come back and catch up (the server's recovery window is 300 s).
    #[arg(long, default_value_t = 300)]
    pub recover_timeout_s: u64,
    /// Seconds for the last broadcasts to arrive once the sender stopped.
    #[arg(long, default_value_t = 30)]
    pub grace_s: u64,
    /// Instead of dropping every client, kill -9 node K (1-based; without a value the last one):
    /// its clients come back on the others. Cluster only; node 1 takes the broadcasts.
    #[arg(long, num_args = 0..=1, default_missing_value = "0")]
    pub kill_node: Option<usize>,
}

/// Store calls of one method in the storm window.
#[derive(Debug, Clone, Serialize)]
pub struct OpCount {
    pub window: f64,
    /// Expected in a window this long at the rate before the drop (broadcasts, leases).
    pub background: f64,
    pub per_login: f64,
    /// `(window − background) / logins`.
    pub net_per_login: f64,
    /// Mean time one call took in the window, in ms.
    pub mean_ms: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct StormNode {
    pub node: usize,
    pub pid: Option<u32>,
    pub ws_port: u16,
    pub admin_port: Option<u16>,
    pub killed: bool,
    /// Clients logged in here before the drop / coming back here after it.
    pub clients_before: usize,
    pub relogins_here: usize,
    pub cpu_ms: Option<f64>,
    pub store_ops: Option<f64>,
    pub logins_ok: Option<f64>,
}

/// The one-line JSON result.
#[derive(Debug, Default, Serialize)]
pub struct StormReport {
    pub mode: &'static str,
    pub conns: usize,
    pub nodes: usize,
    pub node_threads: usize,
    pub interval_ms: u64,
    pub payload: usize,
    pub kill_node: Option<usize>,
    /// From the drop (or kill) until the last affected client was logged in again / had every
    /// broadcast answered before its login. None when some never did.
    pub relogin_s: Option<f64>,
    pub recovered_s: Option<f64>,
    /// Server CPU (nodes; in a cluster also NATS and the PostgreSQL backends) from the drop until
    /// all had recovered, per recovering login.
    pub server_cpu_us_per_login: Option<f64>,
    /// Store calls (all nodes) in the same window, per recovering login.
    pub store_ops_per_login: Option<f64>,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub recovered_false: u64,
    // Details.
    pub clients_ok: usize,
    pub login_failed: usize,
    pub workers: usize,
    pub login_s: f64,
    /// Clients whose connection broke at the drop (or kill), and their first logins after it.
    pub affected: usize,
    pub logins: usize,
    pub not_back: usize,
    pub not_caught_up: usize,
    pub gave_up: usize,
    pub relogin_p50_s: Option<f64>,
    pub relogin_p99_s: Option<f64>,
    pub recovered_p50_s: Option<f64>,
    pub recovered_p99_s: Option<f64>,
    /// From the drop until the last socket was reset (or the last client saw its node die).
    pub drop_s: f64,
    pub reconnect_attempts: u64,
    pub reconnect_failures: u64,
    /// Connections that ended without the tool asking (server closes; with --kill-node, the
    /// killed node's clients).
    pub unplanned_losses: u64,
    pub reconnect_errors: Vec<String>,
    pub recovered_true: u64,
    pub recovered_missing: u64,
    pub no_since: u64,
    pub unexpected: u64,
    pub id_mismatch: u64,
    pub clients_with_loss: usize,
    /// Clients that never lost their connection (with --kill-node: the other nodes' clients).
    pub steady_clients: usize,
    pub steady_lost: u64,
    pub steady_duplicated: u64,
    pub broadcasts_sent: usize,
    pub broadcasts_accepted: usize,
    pub broadcasts_before_drop: usize,
    pub broadcasts_during: usize,
    pub api_errors: usize,
    /// Slowest `SendMessageToAllUsers` call: before the drop, and from the drop until all had
    /// recovered.
    pub api_max_ms_before: f64,
    pub api_max_ms_during: f64,
    pub api_max_ms: f64,
    pub first_error: Option<String>,
    /// The measured window: from the drop until the tool saw every client caught up.
    pub window_s: f64,
    pub server_cpu_ms: f64,
    pub nodes_cpu_ms: f64,
    pub broker_cpu_ms: Option<f64>,
    pub store_cpu_ms: Option<f64>,
    /// Server CPU a window this long costs at the rate before the drop (broadcasts, heartbeats).
    pub background_cpu_ms: f64,
    pub server_cpu_us_per_login_net: Option<f64>,
    pub store_ops: f64,
    pub store_ops_net_per_login: Option<f64>,
    pub store_ops_by_op: BTreeMap<String, OpCount>,
    /// Logins the nodes counted in the window (`herald_logins_total`), accepted and refused.
    pub server_logins_ok: f64,
    pub server_logins_refused: f64,
    /// The load tool's CPU in the window (workers and this process), every CPU's busy time
    /// (/proc/stat), and what is left: other processes and interrupts. Near 0 on a quiet machine.
    pub tool_cpu_ms: Option<f64>,
    pub machine_cpu_ms: Option<f64>,
    pub other_cpu_ms: Option<f64>,
    pub load_start: Option<[f64; 3]>,
    pub load_drop: Option<[f64; 3]>,
    pub load_end: Option<[f64; 3]>,
    pub per_node: Vec<StormNode>,
    pub examples: Vec<String>,
}

/// Entry point of `herald-bench storm`.
pub fn main(args: &StormArgs) -> Result<()> {
    let report = parent(run(args))?;
    if !args.common.json {
        print!("{}", summary(&report));
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn run(args: &StormArgs) -> Result<StormReport> {
    let common = &args.common;
    check(common)?;
    let interval = Duration::from_millis(args.interval_ms.max(1));
    let kill = match args.kill_node {
        None => None,
        Some(_) if common.nodes < 2 => bail!("--kill-node needs a cluster (--nodes 2 or more)"),
        Some(0) => Some(common.nodes - 1),
        Some(1) => bail!("node 1 takes the broadcasts: kill another (--kill-node 2..={})", common.nodes),
        Some(k) if k > common.nodes => bail!("--kill-node {k}, but there are {} nodes", common.nodes),
        Some(k) => Some(k - 1),
    };
    if kill.is_some() {
        let per_node = common.conns.div_ceil(common.nodes) as u64;
        if 2 * per_node + 1000 > procfs::nofile_limit() {
            eprintln!(
                "herald-bench: warning: the killed node's clients all move to the next node (as the SDK walks its URLs), \
                 which then needs {} descriptors of {}",
                2 * per_node,
                procfs::nofile_limit()
            );
        }
    }
    let mut report = StormReport {
        mode: "storm",
        conns: common.conns,
        nodes: common.nodes,
        node_threads: common.node_threads,
        interval_ms: args.interval_ms,
        payload: args.payload,
        kill_node: kill.map(|k| k + 1),
        load_start: procfs::loadavg(),
        ..StormReport::default()
    };

    let LoggedIn { mut running, http, api, mut fleet, first } = start_and_log_in(common, args.reconnect, 0).await?;
    report.workers = first.workers;
    report.login_s = first.login_s;
    (report.clients_ok, report.login_failed) = (first.ready.ok, first.ready.failed);
    report.first_error.clone_from(&first.ready.first_error);
    let ready = first.ready;

    // Broadcasting, then the drop halfway between two broadcasts.
    let mut alive = vec![true; common.nodes];
    let quiet = cost::read(&running, &http, &alive).await;
    let broadcasting = Instant::now();
    fleet.start_broadcasts(api, interval, args.payload);
    eprintln!("herald-bench: broadcasting every {} ms; the drop in {} s", args.interval_ms, args.before_s);
    let ticks = (Duration::from_secs_f64(args.before_s.max(0.0)).as_secs_f64() / interval.as_secs_f64()).ceil();
    let drop_at = broadcasting + interval.mul_f64(ticks + 0.5);
    fleet.pump("before the drop", drop_at, |_| false).await?;
    if fleet.accepted.is_empty() {
        bail!("no broadcast accepted before the drop: {}", fleet.first_api_error.as_deref().unwrap_or("?"));
    }
    report.broadcasts_before_drop = fleet.accepted.len();
    report.api_max_ms_before = round3(fleet.api_max_ms);
    fleet.api_max_ms = 0.0;
    report.load_drop = procfs::loadavg();
    let before = cost::read(&running, &http, &alive).await;
    let tool_before = fleet.cpu_ms();
    let t0 = now_ms();
    let dropped = Instant::now();
    let want = match kill {
        Some(k) => {
            fleet.send(&Cmd::Mark { at_ms: t0 }).await?;
            if let Some(server) = running.nodes[k].server.as_mut() {
                server.child.start_kill().context("killing the node")?;
            }
            alive[k] = false;
            eprintln!("herald-bench: killed node {} ({} clients)", k + 1, ready.node_ok.get(k).copied().unwrap_or(0));
            ready.node_ok.get(k).copied().unwrap_or(0)
        }
        None => {
            fleet.send(&Cmd::Drop { at_ms: t0 }).await?;
            eprintln!("herald-bench: dropped all {} connections", ready.ok);
            ready.ok
        }
    };
    fleet.clear_status();
    let deadline = dropped + Duration::from_secs(args.recover_timeout_s);
    let all_back = fleet
        .pump("recovering", deadline, |f| {
            f.status().is_some_and(|s| s.affected >= want && s.caught_up + s.gave_up >= s.affected)
        })
        .await?;
    let after = cost::read(&running, &http, &alive).await;
    let window = after.since(&before);
    report.tool_cpu_ms = match (tool_before, fleet.cpu_ms(), window.parent_cpu_ms) {
        (Some(a), Some(b), Some(me)) => Some(round3(b - a + me)),
        _ => None,
    };
    report.machine_cpu_ms = window.machine_cpu_ms.map(round3);
    report.other_cpu_ms = match (report.machine_cpu_ms, report.tool_cpu_ms) {
        (Some(m), Some(t)) => Some(round3(m - t - window.total_ms())),
        _ => None,
    };
    report.broadcasts_during = fleet.accepted.len() - report.broadcasts_before_drop;
    report.api_max_ms_during = round3(fleet.api_max_ms);
    if all_back {
        eprintln!("herald-bench: every client back and caught up after {:.2} s", dropped.elapsed().as_secs_f64());
    } else {
        eprintln!("herald-bench: not every client recovered within {} s", args.recover_timeout_s);
    }

    // A few broadcasts more, then everything must have arrived.
    let until = fleet.accepted.len() + args.after;
    let after_deadline = Instant::now() + interval * (args.after as u32 * 3 + 10);
    fleet.pump("after the storm", after_deadline, |f| f.accepted.len() >= until).await?;
    fleet.stop_broadcasts().await?;
    fleet.clear_status();
    let total = fleet.accepted.len();
    let settled = fleet
        .pump("settling", Instant::now() + Duration::from_secs(args.grace_s), |f| {
            f.status().is_some_and(|s| s.accepted >= total && s.has_all + s.gave_up >= ready.ok)
        })
        .await?;
    if !settled {
        eprintln!("herald-bench: not every broadcast arrived within {} s after the last", args.grace_s);
    }
    let verdicts = fleet.verdicts(Duration::from_secs(120)).await?;
    report.broadcasts_sent = fleet.sent;
    report.broadcasts_accepted = fleet.accepted.len();
    report.api_errors = fleet.api_errors;
    report.api_max_ms = round3(fleet.api_max_ms.max(report.api_max_ms_before).max(report.api_max_ms_during));
    if report.first_error.is_none() {
        report.first_error.clone_from(&fleet.first_api_error);
    }
    fleet.quit().await;
    running.stop().await;
    report.load_end = procfs::loadavg();

    fill(&mut report, &verdicts, &ready.node_ok, &running, &alive, &before.since(&quiet), &window);
    Ok(report)
}

/// The report's figures from the workers' verdicts and the two cost windows.
fn fill(
    r: &mut StormReport,
    verdicts: &[Verdict],
    node_ok: &[usize],
    running: &targets::Running,
    alive: &[bool],
    background: &Cost,
    window: &Cost,
) {
    let (mut steady, mut churned) = (Tally::default(), Tally::default());
    let (mut relogin_ms, mut caught_ms) = (Vec::new(), Vec::new());
    let mut relogins_by_node = vec![0; r.nodes];
    let mut drop_ms = 0;
    for v in verdicts {
        steady.add(&v.steady);
        churned.add(&v.churned);
        relogin_ms.extend_from_slice(&v.mark_relogin_ms);
        caught_ms.extend_from_slice(&v.mark_caught_up_ms);
        r.not_back += v.not_back;
        r.not_caught_up += v.not_caught_up;
        r.gave_up += v.gave_up;
        r.recovered_true += v.recovered_true;
        r.recovered_false += v.recovered_false;
        r.recovered_missing += v.recovered_missing;
        r.no_since += v.no_since;
        r.reconnect_attempts += v.attempts;
        r.reconnect_failures += v.failures;
        r.unplanned_losses += v.unplanned;
        r.id_mismatch += v.id_mismatch;
        drop_ms = drop_ms.max(v.mark_lost_max_ms);
        for (total, n) in relogins_by_node.iter_mut().zip(&v.relogins_by_node) {
            *total += n;
        }
        for e in &v.errors {
            if r.reconnect_errors.len() < 5 {
                r.reconnect_errors.push(e.clone());
            }
        }
        for e in &v.examples {
            if r.examples.len() < 10 {
                r.examples.push(e.clone());
            }
        }
    }
    r.drop_s = round3(drop_ms as f64 / 1000.0);
    r.logins = relogin_ms.len();
    r.affected = relogin_ms.len() + r.not_back;
    r.lost = steady.lost + churned.lost;
    r.duplicated = steady.duplicated + churned.duplicated;
    r.out_of_order = steady.out_of_order + churned.out_of_order;
    r.unexpected = steady.unexpected + churned.unexpected;
    r.clients_with_loss = steady.clients_with_loss + churned.clients_with_loss;
    (r.steady_clients, r.steady_lost, r.steady_duplicated) = (steady.clients, steady.lost, steady.duplicated);
    let max = |v: &[i64]| v.iter().max().copied();
    r.relogin_s = secs(max(&relogin_ms).filter(|_| r.not_back == 0));
    r.recovered_s = secs(max(&caught_ms).filter(|_| r.not_caught_up == 0));
    (r.relogin_p50_s, r.relogin_p99_s) = (secs(percentile(&relogin_ms, 0.5)), secs(percentile(&relogin_ms, 0.99)));
    (r.recovered_p50_s, r.recovered_p99_s) = (secs(percentile(&caught_ms, 0.5)), secs(percentile(&caught_ms, 0.99)));

    r.window_s = round3(window.secs);
    r.server_cpu_ms = round3(window.total_ms());
    r.nodes_cpu_ms = round3(window.nodes_ms());
    r.broker_cpu_ms = window.broker_cpu_ms.map(round3);
    r.store_cpu_ms = window.store_cpu_ms.map(round3);
    // The rate before the drop, of the nodes still alive (a killed node's share is gone).
    let bg_nodes: f64 = background.nodes_cpu_ms.iter().zip(alive).filter(|(_, a)| **a).filter_map(|(c, _)| *c).sum();
    let bg_total = bg_nodes + background.broker_cpu_ms.unwrap_or(0.0) + background.store_cpu_ms.unwrap_or(0.0);
    let scale = if background.secs > 0.0 { window.secs / background.secs } else { 0.0 };
    r.background_cpu_ms = round3(bg_total * scale);
    let logins = r.logins as f64;
    let per_login = |v: f64| (r.logins > 0).then(|| round3(v / logins));
    r.server_cpu_us_per_login = per_login(r.server_cpu_ms * 1000.0);
    r.server_cpu_us_per_login_net = per_login((r.server_cpu_ms - r.background_cpu_ms) * 1000.0);

    let mut bg_counters = super::scrape::Counters::default();
    for (c, _) in background.node_counters.iter().zip(alive).filter(|(_, a)| **a) {
        if let Some(c) = c {
            bg_counters.add(c);
        }
    }
    let bg_ops = Cost { counters: bg_counters, ..background.clone() }.store_ops_in(window.secs);
    let ops: std::collections::BTreeSet<&String> = window.counters.store_ops.keys().chain(bg_ops.keys()).collect();
    for op in ops {
        let n = window.counters.store_ops.get(op).copied().unwrap_or(0.0);
        let bg = bg_ops.get(op).copied().unwrap_or(0.0);
        let seconds = window.counters.store_seconds.get(op).copied().unwrap_or(0.0);
        let count = OpCount {
            window: n,
            background: round3(bg),
            per_login: per_login(n).unwrap_or(0.0),
            net_per_login: per_login(n - bg).unwrap_or(0.0),
            mean_ms: (n > 0.0).then(|| round3(seconds * 1000.0 / n)),
        };
        r.store_ops_by_op.insert(op.clone(), count);
    }
    r.store_ops = window.counters.store_total();
    let bg_total_ops: f64 = bg_ops.values().sum();
    r.store_ops_per_login = per_login(r.store_ops);
    r.store_ops_net_per_login = per_login(r.store_ops - bg_total_ops);
    r.server_logins_ok = window.counters.logins_ok;
    r.server_logins_refused = window.counters.logins_refused;

    r.per_node = running
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| StormNode {
            node: i + 1,
            pid: n.pid,
            ws_port: n.ws_addr.port(),
            admin_port: n.admin_addr.map(|a| a.port()),
            killed: !alive[i],
            clients_before: node_ok.get(i).copied().unwrap_or(0),
            relogins_here: relogins_by_node[i],
            cpu_ms: window.nodes_cpu_ms[i].map(round3),
            store_ops: window.node_counters[i].as_ref().map(|c| c.store_total()),
            logins_ok: window.node_counters[i].as_ref().map(|c| c.logins_ok),
        })
        .collect();
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

/// The human-readable summary (before the JSON line unless --json).
pub fn summary(r: &StormReport) -> String {
    let what = match r.kill_node {
        Some(k) => format!("node {k} killed"),
        None => "every connection reset".to_owned(),
    };
    let mut s = format!(
        "storm: {} clients on {} node(s), {what}, a broadcast every {} ms ({} logged in at first in {:.2} s, {} failed)\n",
        r.conns, r.nodes, r.interval_ms, r.clients_ok, r.login_s, r.login_failed
    );
    s += &format!(
        "back                  : {} of {} affected clients logged in again; last after {} s (p50 {}, p99 {}); {} never\n",
        r.logins,
        r.affected,
        opt(r.relogin_s),
        opt(r.relogin_p50_s),
        opt(r.relogin_p99_s),
        r.not_back
    );
    s += &format!(
        "recovered             : last client had every broadcast after {} s (p50 {}, p99 {}); {} never\n",
        opt(r.recovered_s),
        opt(r.recovered_p50_s),
        opt(r.recovered_p99_s),
        r.not_caught_up
    );
    s += &format!(
        "delivery              : lost {}, duplicated {}, out of order {}, unexpected {}, messageID mismatches {}; recovered true {}, false {}, missing {}, logins without since {}\n",
        r.lost, r.duplicated, r.out_of_order, r.unexpected, r.id_mismatch, r.recovered_true, r.recovered_false, r.recovered_missing, r.no_since
    );
    s += &format!(
        "reconnects            : {} attempts, {} failed; drop took {:.3} s; {} connections lost otherwise; gave up {}\n",
        r.reconnect_attempts, r.reconnect_failures, r.drop_s, r.unplanned_losses, r.gave_up
    );
    s += &format!(
        "broadcasts            : {} accepted of {} ({} before the drop, {} during recovery), {} API errors; slowest API call {:.1} ms before the drop, {:.1} ms during recovery\n",
        r.broadcasts_accepted,
        r.broadcasts_sent,
        r.broadcasts_before_drop,
        r.broadcasts_during,
        r.api_errors,
        r.api_max_ms_before,
        r.api_max_ms_during
    );
    s += &format!(
        "server CPU            : {:.0} ms in the {:.2} s window = {} µs per login (background {:.0} ms; net {} µs per login); nodes {:.0} ms, NATS {}, PostgreSQL {}; tool {} ms, others {} ms\n",
        r.server_cpu_ms,
        r.window_s,
        opt(r.server_cpu_us_per_login),
        r.background_cpu_ms,
        opt(r.server_cpu_us_per_login_net),
        r.nodes_cpu_ms,
        opt(r.broker_cpu_ms),
        opt(r.store_cpu_ms),
        opt(r.tool_cpu_ms),
        opt(r.other_cpu_ms)
    );
    s += &format!(
        "store calls           : {} in the window = {} per login (net of background {}); server logins ok {}, refused {}\n",
        r.store_ops,
        opt(r.store_ops_per_login),
        opt(r.store_ops_net_per_login),
        r.server_logins_ok,
        r.server_logins_refused
    );
    for (op, c) in &r.store_ops_by_op {
        s += &format!(
            "  {op:<32}: {:>9} (background {:>9.1}) = {:.3} per login, net {:.3}; {} ms each\n",
            c.window,
            c.background,
            c.per_login,
            c.net_per_login,
            opt(c.mean_ms)
        );
    }
    for n in &r.per_node {
        s += &format!(
            "node {:>2}{}: {} clients before, {} came back here, CPU {} ms, {} store calls, {} logins\n",
            n.node,
            if n.killed { " (killed)" } else { "" },
            n.clients_before,
            n.relogins_here,
            opt(n.cpu_ms),
            opt(n.store_ops),
            opt(n.logins_ok)
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
