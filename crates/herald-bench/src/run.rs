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
    /// Server processes: Herald nodes (cluster mode when > 1) or nats-servers.
    pub nodes: usize,
    /// `--node-threads`: runtime threads per server process (0 = its default, one per core).
    pub node_threads: usize,
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
    /// Everything below counts in `server_cpu_ms`: the nodes, and for a Herald cluster the NATS
    /// it relays through (`broker`) and the PostgreSQL backends of its database (`store`).
    pub server_cpu_ms: Option<f64>,
    pub nodes_cpu_ms: Option<f64>,
    pub broker_cpu_ms: Option<f64>,
    pub store_cpu_ms: Option<f64>,
    /// The same parts while the clients connected and logged in.
    pub login_nodes_cpu_ms: Option<f64>,
    pub login_broker_cpu_ms: Option<f64>,
    pub login_store_cpu_ms: Option<f64>,
    /// Herald cluster: the nodes' PostgreSQL connections at the end, and the cap on them.
    pub store_backends: Option<usize>,
    pub store_conn_limit: Option<u32>,
    pub collect_s: f64,
    pub workers: usize,
    /// CPU the load tool's workers used from the first broadcast to the last receipt.
    pub tool_cpu_ms: Option<f64>,
    /// Load averages (1, 5, 15 min) when the tool started (before any of its processes ran),
    /// just before the first broadcast and at the end.
    pub load_start: Option<[f64; 3]>,
    pub load_broadcast: Option<[f64; 3]>,
    pub load_end: Option<[f64; 3]>,
    /// Per broadcast: ms until the last client had it, by kernel timestamp (growing when
    /// broadcasts queue behind each other).
    pub klast_each_ms: Vec<f64>,
    pub first_error: Option<String>,
    pub per_node: Vec<NodeReport>,
}

/// One server process's share of the run.
#[derive(Debug, Default, Serialize)]
pub struct NodeReport {
    /// 1-based; broadcasts go in through node 1.
    pub node: usize,
    pub pid: Option<u32>,
    pub ws_port: u16,
    pub conns_ok: usize,
    pub received: u64,
    /// Last client of this node, by kernel timestamps: median over broadcasts, and max.
    pub klast_median_ms: Option<f64>,
    pub klast_max_ms: Option<f64>,
    pub kp50_ms: Option<f64>,
    pub cpu_ms: Option<f64>,
    /// This node's CPU per delivery to its own clients, in µs.
    pub cpu_us_per_delivery: Option<f64>,
    pub login_cpu_ms: Option<f64>,
    pub rss_kb_idle: Option<u64>,
    pub rss_kb_loaded: Option<u64>,
    pub kb_per_conn: Option<f64>,
}

/// Sum of the values, None if any is None (or there are none).
fn sum<T: std::iter::Sum<T>>(values: impl IntoIterator<Item = Option<T>>) -> Option<T> {
    let mut seen = false;
    let total = values.into_iter().inspect(|_| seen = true).sum::<Option<T>>();
    total.filter(|_| seen)
}

/// Connection attempts in flight per worker: `--concurrency`, else 256 for every target. A
/// Herald cluster used to get 8 per node, which hid its login throughput: 100,000 logins over six
/// nodes took 53.8 s that way and 13.2 s at 256 (nats-server: 26.6 s), since the nodes batch
/// their PostgreSQL writes and more logins in flight make bigger batches.
pub fn login_concurrency(common: &CommonArgs) -> usize {
    common.concurrency.unwrap_or(256).max(1)
}

/// Run `logins` (no broadcast arguments) or `fanout`.
pub async fn run(common: &CommonArgs, fanout: Option<&FanoutArgs>) -> Result<Report> {
    let conns = common.conns;
    let target = common.target;
    let nodes = common.nodes;
    let (broadcasts, interval, payload) = match fanout {
        Some(f) => (f.broadcasts, Duration::from_millis(f.interval_ms), f.payload),
        None => (0, Duration::ZERO, 0),
    };
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if nodes > 1 && common.attach.is_some() {
        bail!("--attach works with --nodes 1 only");
    }
    // Every client is a descriptor in one server process; leave room for the rest.
    let fd_limit = procfs::nofile_limit();
    let per_node = conns.div_ceil(nodes) as u64;
    if common.attach.is_none() && per_node + 1000 > fd_limit {
        bail!(
            "{per_node} clients per server process, but a process may hold {fd_limit} descriptors: \
             use --nodes {} or more",
            (conns as u64).div_ceil(fd_limit.saturating_sub(1000).max(1))
        );
    }
    let mut report = Report {
        target: target.name(),
        conns,
        nodes,
        node_threads: common.node_threads,
        broadcasts,
        payload,
        interval_ms: interval.as_millis() as u64,
        expected: (conns * broadcasts) as u64,
        load_start: procfs::loadavg(),
        ..Report::default()
    };

    eprintln!("herald-bench: starting {} × {}", nodes, target.name());
    let mut running = targets::start(common).await?;
    let pids = running.pids();
    report.store_conn_limit = running.db.as_ref().and_then(|db| db.conn_limit);
    if pids.iter().any(Option::is_none) {
        eprintln!("herald-bench: no server PID (attached without --server-pid): no CPU or memory figures");
    }
    let rss = |pids: &[Option<u32>]| -> Vec<Option<u64>> {
        pids.iter().map(|p| p.and_then(|p| procfs::rss_kb(p).ok())).collect()
    };
    sleep(Duration::from_millis(500)).await;
    let rss_idle = rss(&pids);
    report.server_rss_kb_idle = sum(rss_idle.iter().copied());

    let template = Spec {
        worker: 0,
        target,
        servers: running.nodes.iter().map(|n| n.ws_addr).collect(),
        path: running.ws_path.to_owned(),
        first: 0,
        count: conns,
        per_source: common.per_source,
        concurrency: login_concurrency(common),
        attempts: common.connect_attempts,
        app_id: common.app_id,
        secret: common.secret.clone(),
    };
    let login_cpu_before = running.read_cpu();
    let started = Instant::now();
    let mut fleet = Fleet::spawn(&template, common.per_worker).await?;
    report.workers = fleet.workers();
    eprintln!("herald-bench: connecting {conns} clients from {} worker(s) to {nodes} server(s)", report.workers);
    let login_budget = Duration::from_secs(60) + Duration::from_millis(20 * conns as u64);
    let ready = fleet.wait_ready(login_budget).await?;
    report.login_s = round3(started.elapsed().as_secs_f64());
    let login_cpu = running.read_cpu().since(&login_cpu_before);
    if let Some(total) = login_cpu.total() {
        if ready.ok > 0 {
            report.server_login_cpu_us_per_conn = Some(round3(total * 1000.0 / ready.ok as f64));
        }
    }
    report.login_nodes_cpu_ms = login_cpu.nodes_total().map(round3);
    report.login_broker_cpu_ms = login_cpu.broker.map(round3);
    report.login_store_cpu_ms = login_cpu.store.map(round3);
    report.conns_ok = ready.ok;
    report.login_failed = ready.failed;
    report.first_error = ready.first_error;
    eprintln!("herald-bench: {} logged in, {} failed, in {:.2} s", ready.ok, ready.failed, report.login_s);
    if ready.ok == 0 && conns > 0 {
        bail!("no client logged in: {}", report.first_error.as_deref().unwrap_or("?"));
    }
    sleep(Duration::from_secs_f64(common.settle_s.max(0.0))).await;
    let rss_loaded = rss(&pids);
    report.server_rss_kb_loaded = sum(rss_loaded.iter().copied());
    if let (Some(idle), Some(loaded)) = (report.server_rss_kb_idle, report.server_rss_kb_loaded) {
        if ready.ok > 0 {
            report.server_kb_per_conn = Some(round3((loaded as f64 - idle as f64) / ready.ok as f64));
        }
    }
    report.per_node = running
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let conns_ok = ready.node_ok.get(i).copied().unwrap_or(if nodes == 1 { ready.ok } else { 0 });
            let kb_per_conn = match (rss_idle[i], rss_loaded[i]) {
                (Some(idle), Some(loaded)) if conns_ok > 0 => {
                    Some(round3((loaded as f64 - idle as f64) / conns_ok as f64))
                }
                _ => None,
            };
            NodeReport {
                node: i + 1,
                pid: n.pid,
                ws_port: n.ws_addr.port(),
                conns_ok,
                login_cpu_ms: login_cpu.nodes.get(i).copied().flatten().map(round3),
                rss_kb_idle: rss_idle[i],
                rss_kb_loaded: rss_loaded[i],
                kb_per_conn,
                ..NodeReport::default()
            }
        })
        .collect();

    if broadcasts > 0 {
        let grace = Duration::from_secs(fanout.map_or(30, |f| f.grace_s));
        let window = interval * broadcasts as u32 + grace;
        fleet.collect(broadcasts, window).await?;
        eprintln!("herald-bench: {broadcasts} broadcasts of {payload} B every {} ms", interval.as_millis());
        report.load_broadcast = procfs::loadavg();
        let cpu_before = running.read_cpu();
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
        let cpu = running.read_cpu().since(&cpu_before);
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
        let d = stats::delays(&results, &corrections_us, None);
        (report.p50_ms, report.p99_ms, report.max_ms) = (d.p50, d.p99, d.max);
        (report.kp50_ms, report.kp99_ms, report.kmax_ms) = (d.kp50, d.kp99, d.kmax);
        (report.last_median_ms, report.last_max_ms) = (d.last_median, d.last_max);
        (report.klast_median_ms, report.klast_max_ms) = (d.klast_median, d.klast_max);
        (report.tool_lag_p50_ms, report.tool_lag_p99_ms) = (d.lag_p50, d.lag_p99);
        report.klast_each_ms = d.klast_each;
        let received_by_node = stats::received_by_node(&results, nodes);
        for (i, node) in report.per_node.iter_mut().enumerate() {
            node.received = received_by_node[i];
            if nodes > 1 {
                let d = stats::delays(&results, &corrections_us, Some(i as u16));
                (node.klast_median_ms, node.klast_max_ms, node.kp50_ms) = (d.klast_median, d.klast_max, d.kp50);
            } else {
                (node.klast_median_ms, node.klast_max_ms, node.kp50_ms) =
                    (report.klast_median_ms, report.klast_max_ms, report.kp50_ms);
            }
            node.cpu_ms = cpu.nodes.get(i).copied().flatten().map(round3);
            if let Some(ms) = node.cpu_ms.filter(|_| node.received > 0) {
                node.cpu_us_per_delivery = Some(round3(ms * 1000.0 / node.received as f64));
            }
        }
        report.nodes_cpu_ms = cpu.nodes_total().map(round3);
        report.broker_cpu_ms = cpu.broker.map(round3);
        report.store_cpu_ms = cpu.store.map(round3);
        report.store_backends = cpu.store_backends;
        if let Some(total) = cpu.total() {
            report.server_cpu_ms = Some(round3(total));
            report.server_cpu_ms_per_broadcast = Some(round3(total / broadcasts as f64));
            if report.received > 0 {
                report.server_cpu_us_per_delivery = Some(round3(total * 1000.0 / report.received as f64));
            }
        }
    }

    fleet.quit().await;
    running.stop().await;
    report.load_end = procfs::loadavg();
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
        "target {} ({} node(s)): {} clients ({} logged in, {} failed) in {:.2} s from {} worker(s)\n",
        r.target, r.nodes, r.conns, r.conns_ok, r.login_failed, r.login_s, r.workers
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
    if r.broker_cpu_ms.is_some() || r.store_cpu_ms.is_some() {
        s += &format!(
            "server CPU, parts     : nodes {} ms, NATS broker {} ms, PostgreSQL backends {} ms ({} backends, limit {})\n",
            opt(r.nodes_cpu_ms),
            opt(r.broker_cpu_ms),
            opt(r.store_cpu_ms),
            r.store_backends.map_or("-".into(), |v| v.to_string()),
            r.store_conn_limit.map_or("none".into(), |v| v.to_string())
        );
    }
    s += &format!("server CPU at login   : {} µs per client\n", opt(r.server_login_cpu_us_per_conn));
    s += &format!(
        "server memory         : {} kB idle, {} kB loaded, {} kB per connection\n",
        r.server_rss_kb_idle.map_or("-".into(), |v| v.to_string()),
        r.server_rss_kb_loaded.map_or("-".into(), |v| v.to_string()),
        opt(r.server_kb_per_conn)
    );
    if r.per_node.len() > 1 {
        for n in &r.per_node {
            s += &format!(
                "node {:>3} (pid {}, :{}): {} clients, {} received, last client {} ms (median), {} ms (max), CPU {} ms ({} µs per delivery), {} kB per connection\n",
                n.node,
                n.pid.map_or("-".into(), |p| p.to_string()),
                n.ws_port,
                n.conns_ok,
                n.received,
                opt(n.klast_median_ms),
                opt(n.klast_max_ms),
                opt(n.cpu_ms),
                opt(n.cpu_us_per_delivery),
                opt(n.kb_per_conn)
            );
        }
    }
    if let Some(l) = r.load_start {
        s += &format!("load average at start : {:.2} {:.2} {:.2}\n", l[0], l[1], l[2]);
    }
    if let Some(e) = &r.first_error {
        s += &format!("first error           : {e}\n");
    }
    s
}
