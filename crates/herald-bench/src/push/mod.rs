//! `herald-bench push`: N offline users with push bindings, one `SendMessageToAllUsers` with
//! `PushType` 2, every push delivered to a local provider stand-in. Measures pushes per second
//! (from the API call to the last push at the stand-in) and the server's peak RSS.
//!
//! 1. Creates the store in a temp dir (`herald_store::open`), registers the sender and binds
//!    device `d` of users `u0..u{N-1}` to push IDs the stand-in recognises (`bind_push`).
//! 2. Starts the stand-in (see [`standin`]) and `herald serve` with `[apps.push]` pointing at it.
//! 3. Reads the server's RSS and CPU, sends the broadcast, waits until `QueryBroadcastReport`
//!    says `done`, then reads them again and prints one JSON line.

mod standin;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use herald_store::{PushBinding, PushProvider, UserRecord};
use serde::Serialize;
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

use crate::procfs;
use crate::targets::herald::Api;
use crate::targets::{free_ports, ServerProc, TmpDir};
use crate::tstamp::now_ns;
pub use standin::Provider;

/// The user the broadcast is sent as.
pub const SENDER: &str = "bench-sender";

#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Offline users, each with one device bound to a push ID.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// The provider the server pushes through (to a local stand-in).
    #[arg(long, value_enum, default_value = "webhook")]
    pub provider: Provider,
    /// `[apps.push] page_size`: bindings read, pushed and checkpointed at a time (the server's
    /// default).
    #[arg(long, default_value_t = 500)]
    pub page_size: u32,
    /// `[apps.push.<provider>] concurrency`: requests in flight at once (the server's default).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The stand-in checks one call in this many in full (signature, fields), and the first.
    #[arg(long, default_value_t = 1000)]
    pub check_every: u64,
    /// Give up waiting for the push job after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
    /// Print only the one-line JSON result on stdout.
    #[arg(long)]
    pub json: bool,
    /// Herald binary to start (default: `herald` next to this executable).
    #[arg(long)]
    pub herald_bin: Option<PathBuf>,
    /// AppID of the generated config.
    #[arg(long, default_value_t = 1_234_567_890)]
    pub app_id: u32,
    /// ServerSecret of the app (32 characters); also the webhook's callback secret.
    #[arg(long, default_value = "fa94dd0f974cf2e293728a526b028271")]
    pub secret: String,
    /// Keep the temporary directory (server config, database, log, stand-in key and certificate).
    #[arg(long)]
    pub keep_tmp: bool,
}

/// The JSON line.
#[derive(Debug, Serialize)]
pub struct Report {
    pub provider: Provider,
    pub users: usize,
    pub page_size: u32,
    pub concurrency: usize,
    /// Calls that reached the stand-in, distinct devices among them, repeats, unknown push IDs.
    pub pushes: u64,
    pub distinct: u64,
    pub repeats: u64,
    pub strangers: u64,
    /// Calls the stand-in checked in full, and those that failed.
    pub checked: u64,
    pub bad: u64,
    pub first_problem: Option<String>,
    /// Connections the server opened to the stand-in.
    pub standin_connections: u64,
    /// From just before the API call to the last push at the stand-in.
    pub push_s: f64,
    /// `pushes / push_s`.
    pub pushes_per_s: f64,
    /// From the first push at the stand-in to the last: the rate once the job runs.
    pub steady_pushes_per_s: f64,
    /// From just before the API call to its answer, and to the first push.
    pub api_ms: f64,
    pub first_push_ms: f64,
    /// `QueryBroadcastReport` at the end.
    pub state: String,
    pub targeted: u64,
    pub sent: u64,
    pub failed: u64,
    pub removed: u64,
    pub skipped_online: u64,
    /// `FinishedAt − AcceptedAt` of the report (server clock).
    pub job_ms: Option<i64>,
    /// Server memory: VmRSS just before the broadcast and at the end; VmHWM (peak RSS over the
    /// server's life) just before and at the end.
    pub server_rss_kb_before: u64,
    pub server_rss_kb_after: u64,
    pub server_hwm_kb_before: u64,
    pub server_hwm_kb: u64,
    /// Server CPU from just before the API call until the job was seen done, and per push.
    pub server_cpu_ms: f64,
    pub server_cpu_us_per_push: f64,
    /// The stand-in thread's CPU in the same window, and per push.
    pub standin_cpu_ms: Option<f64>,
    pub standin_cpu_us_per_push: Option<f64>,
    /// This whole process's CPU in that window (stand-in + polling).
    pub bench_cpu_ms: f64,
    /// Busy time of all CPUs in that window (/proc/stat), and what is left of it after the
    /// server and this process: other processes, plus interrupt and softirq time that the kernel
    /// does not charge to a process (part of the loopback traffic). Near 0 on an idle machine.
    pub machine_cpu_ms: f64,
    pub other_cpu_ms: f64,
    /// CPUs online.
    pub cpus: usize,
    /// Time to write the bindings into the store.
    pub seed_s: f64,
    /// Load averages (1, 5, 15 min) when the tool started, just before the broadcast, at the end.
    pub load_start: Option<[f64; 3]>,
    pub load_broadcast: Option<[f64; 3]>,
    pub load_end: Option<[f64; 3]>,
}

/// Entry point: a current-thread runtime (the server is spawned from this thread, which
/// PR_SET_PDEATHSIG needs); Ctrl-C and SIGTERM end the run and kill the server.
pub fn main(args: &PushArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let report = tokio::select! {
            r = run(args) => r?,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
            _ = term.recv() => bail!("terminated"),
        };
        if !args.json {
            print!("{}", summary(&report));
        }
        println!("{}", serde_json::to_string(&report)?);
        Ok(())
    })
}

async fn run(args: &PushArgs) -> Result<Report> {
    if args.users == 0 {
        bail!("--users must be at least 1");
    }
    let load_start = procfs::loadavg();
    if let Some([one, ..]) = load_start {
        if one > 0.5 {
            eprintln!("herald-bench: warning: load average {one:.2}; the numbers share the cores with that");
        }
    }
    let bin = herald_bin(args)?;
    let tmp = TmpDir::new(args.keep_tmp)?;

    let t = Instant::now();
    seed(&tmp.path, args).await.context("writing the bindings")?;
    let seed_s = t.elapsed().as_secs_f64();
    eprintln!("herald-bench: {} bindings written in {seed_s:.1} s", args.users);

    let (stand_in, provider_table) = match args.provider {
        Provider::Webhook => {
            let s = standin::webhook(args.users, args.check_every, &args.secret, args.app_id)?;
            let table = format!(
                "[apps.push.webhook]\nurl = \"http://{}/offline-push\"\nconcurrency = {}\n",
                s.addr, args.concurrency
            );
            (s, table)
        }
        Provider::Apns => {
            let (s, files) = standin::apns(args.users, args.check_every, &tmp.path)?;
            let table = format!(
                "[apps.push.apns]\nkey_file = \"{}\"\nkey_id = \"{}\"\nteam_id = \"{}\"\ntopic = \"{}\"\n\
                 base_url = \"https://{}\"\nca_file = \"{}\"\nconcurrency = {}\n",
                files.key_file.display(),
                standin::APNS_KEY_ID,
                standin::APNS_TEAM_ID,
                standin::APNS_TOPIC,
                s.addr,
                files.ca_file.display(),
                args.concurrency
            );
            (s, table)
        }
    };

    let port = free_ports(1)?[0];
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let conf = tmp.path.join("herald.toml");
    std::fs::write(&conf, config(port, &tmp.path, args, &provider_table))?;
    let conf = conf.to_string_lossy().into_owned();
    let mut server = ServerProc::spawn(&bin, &["serve", "--config", &conf], tmp.path.join("herald.log"), 0)?;
    server.wait_listening(addr, Duration::from_secs(30)).await?;
    let pid = server.pid().ok_or_else(|| anyhow!("the server has no PID"))?;
    let mut api = Api::new(addr, args.app_id, args.secret.clone())?;
    // One signed call before measuring, so the connection is up and the first-call costs are paid.
    api.call("QueryUserInfos", serde_json::to_vec(&json!({"UserIds": [SENDER]}))?).await.context("first API call")?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let rss_before = status_kb(pid, "VmRSS:")?;
    let hwm_before = status_kb(pid, "VmHWM:")?;
    let load_broadcast = procfs::loadavg();
    let server_cpu0 = procfs::cpu_ms(pid)?;
    let standin_cpu0 = stand_in.stats.cpu_ms();
    let bench_cpu0 = procfs::cpu_ms(std::process::id())?;
    let machine0 = procfs::machine_busy_ms()?;

    let body = json!({
        "FromUserId": SENDER,
        "MessageType": 1,
        "MessageBody": {"Message": "herald-bench offline push", "OfflinePush": {"Title": "herald-bench"}},
        "PushType": 2,
    });
    let (send_ns, answer) = api.call("SendMessageToAllUsers", serde_json::to_vec(&body)?).await?;
    let api_ms = (now_ns() - send_ns) as f64 / 1e6;
    if answer["Code"].as_i64() != Some(0) {
        bail!("SendMessageToAllUsers answered {answer}");
    }
    let message_id = answer["RequestId"].as_str().ok_or_else(|| anyhow!("no RequestId in {answer}"))?.to_string();
    eprintln!("herald-bench: broadcast {message_id} accepted in {api_ms:.1} ms; pushing to {} devices", args.users);

    // Poll the stand-in's count often (cheap) and the report when the count is complete or
    // every second (it is an API call, which costs the server a little).
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let mut last_report = Instant::now();
    let mut last_progress = Instant::now();
    let report = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let calls = stand_in.stats.calls.load(Ordering::Relaxed);
        if calls >= args.users as u64 || last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            let (_, r) =
                api.call("QueryBroadcastReport", serde_json::to_vec(&json!({"MessageId": message_id}))?).await?;
            if r["OfflinePush"]["State"] == "done" {
                break r;
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(5) && !args.json {
            last_progress = Instant::now();
            eprintln!("herald-bench: {calls} pushes so far");
        }
        if Instant::now() > deadline {
            bail!("the push job did not finish within {} s ({calls} pushes arrived)", args.timeout_s);
        }
    };
    let server_cpu_ms = procfs::cpu_ms(pid)? - server_cpu0;
    let standin_cpu_ms = match (stand_in.stats.cpu_ms(), standin_cpu0) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    let bench_cpu_ms = procfs::cpu_ms(std::process::id())? - bench_cpu0;
    let machine_cpu_ms = procfs::machine_busy_ms()? - machine0;
    let rss_after = status_kb(pid, "VmRSS:")?;
    let hwm = status_kb(pid, "VmHWM:")?;
    let _ = server.child.kill().await;

    let s = &stand_in.stats;
    let first_problem = s.first_problem.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let pushes = s.calls.load(Ordering::Relaxed);
    let (first_ns, last_ns) = (s.first_ns.load(Ordering::Relaxed), s.last_ns.load(Ordering::Relaxed));
    let push_s = (last_ns - send_ns).max(1) as f64 / 1e9;
    let steady_s = (last_ns - first_ns).max(1) as f64 / 1e9;
    let push = &report["OfflinePush"];
    let count = |k: &str| push[k].as_u64().unwrap_or(0);
    let per_push = |ms: f64| if pushes > 0 { ms * 1000.0 / pushes as f64 } else { 0.0 };
    Ok(Report {
        provider: args.provider,
        users: args.users,
        page_size: args.page_size,
        concurrency: args.concurrency,
        pushes,
        distinct: s.distinct(),
        repeats: s.repeats.load(Ordering::Relaxed),
        strangers: s.strangers.load(Ordering::Relaxed),
        checked: s.checked.load(Ordering::Relaxed),
        bad: s.bad.load(Ordering::Relaxed),
        first_problem,
        standin_connections: s.connections.load(Ordering::Relaxed),
        push_s,
        pushes_per_s: pushes as f64 / push_s,
        steady_pushes_per_s: pushes.saturating_sub(1) as f64 / steady_s,
        api_ms,
        first_push_ms: if pushes > 0 { (first_ns - send_ns) as f64 / 1e6 } else { 0.0 },
        state: push["State"].as_str().unwrap_or_default().to_string(),
        targeted: count("Targeted"),
        sent: count("Sent"),
        failed: count("Failed"),
        removed: count("RemovedBindings"),
        skipped_online: count("SkippedOnline"),
        job_ms: push["FinishedAt"].as_i64().zip(report["AcceptedAt"].as_i64()).map(|(f, a)| f - a),
        server_rss_kb_before: rss_before,
        server_rss_kb_after: rss_after,
        server_hwm_kb_before: hwm_before,
        server_hwm_kb: hwm,
        server_cpu_ms,
        server_cpu_us_per_push: per_push(server_cpu_ms),
        standin_cpu_ms,
        standin_cpu_us_per_push: standin_cpu_ms.map(per_push),
        bench_cpu_ms,
        machine_cpu_ms,
        other_cpu_ms: machine_cpu_ms - server_cpu_ms - bench_cpu_ms,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        seed_s,
        load_start,
        load_broadcast,
        load_end: procfs::loadavg(),
    })
}

/// The store the server will open, written through `herald-store`'s [`Store`] API just as the
/// server writes it: the migrations and the sender, then one `bind_push` per user (each its own
/// write transaction), and the first binding read back through `push_bindings_page` to check
/// it is what the worker will see.
///
/// One bind at a time: SQLite has one writer, and binds in flight together only queued on it
/// (16 at once measured slower than one). What seeding costs is N binds; the crate's README
/// gives the times measured.
async fn seed(dir: &Path, args: &PushArgs) -> Result<()> {
    let url = format!("sqlite://{}", dir.join("herald.db").display());
    let store = herald_store::open(&url).await?;
    let now_ms = now_ns() / 1_000_000;
    let sender = UserRecord { user_id: SENDER.into(), created_at_ms: now_ms, ..UserRecord::default() };
    store.register_users(args.app_id, &[sender]).await?;
    let kind = match args.provider {
        Provider::Webhook => PushProvider::Webhook,
        Provider::Apns => PushProvider::Apns,
    };
    let binding = |i: usize| PushBinding {
        app_id: args.app_id,
        user_id: format!("u{i}"),
        device_id: "d".into(),
        push_id: args.provider.push_id(i),
        provider: kind,
        updated_at_ms: now_ms,
    };
    let started = Instant::now();
    let mut reported = Instant::now();
    for i in 0..args.users {
        store.bind_push(&binding(i)).await?;
        if reported.elapsed() >= Duration::from_secs(10) && !args.json {
            reported = Instant::now();
            eprintln!("herald-bench: {i} bindings written in {:.0} s", started.elapsed().as_secs_f64());
        }
    }

    let first = store.push_bindings_page(args.app_id, None, 1).await?;
    if first.first() != Some(&binding(0)) {
        bail!("the store reads back {first:?} as the first binding, not {:?}", binding(0));
    }
    Ok(())
}

fn herald_bin(args: &PushArgs) -> Result<PathBuf> {
    if let Some(bin) = &args.herald_bin {
        return Ok(bin.clone());
    }
    let bin = std::env::current_exe()?.with_file_name("herald");
    if !bin.exists() {
        bail!(
            "no herald binary at {} (build it with `cargo build --release -p herald-server`, or pass --herald-bin)",
            bin.display()
        );
    }
    Ok(bin)
}

fn config(port: u16, dir: &Path, args: &PushArgs, provider_table: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:{port}"
data_dir = "{dir}"
log = "warn"

[store]
url = "sqlite://{dir}/herald.db"

[[apps]]
app_id = {app_id}
server_secret = "{secret}"

[apps.push]
page_size = {page_size}

{provider_table}"#,
        dir = dir.display(),
        app_id = args.app_id,
        secret = args.secret,
        page_size = args.page_size,
    )
}

/// A `kB` line of /proc/PID/status (`VmRSS:`, `VmHWM:`).
fn status_kb(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))
}

pub fn summary(r: &Report) -> String {
    let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    format!(
        "push via {} to {} offline users (page_size {}, concurrency {})\n\
         \x20 stand-in: {} pushes ({} distinct, {} repeats, {} unknown), {} checked, {} bad{}\n\
         \x20 report:   {} targeted {} sent {} failed {} removed {} skipped online {}\n\
         \x20 time:     API answer {:.1} ms, first push {:.1} ms, last push {:.3} s\n\
         \x20 rate:     {:.0} pushes/s (steady {:.0}/s)\n\
         \x20 server:   RSS {} kB before, {} kB after; peak (VmHWM) {} kB before, {} kB at the end\n\
         \x20 CPU:      server {:.0} ms ({:.1} us/push), stand-in {} ms ({} us/push); all {} CPUs {:.0} ms, other {:.0} ms\n\
         \x20 load:     {} at start, {} at the broadcast, {} at the end\n",
        r.provider.name(),
        r.users,
        r.page_size,
        r.concurrency,
        r.pushes,
        r.distinct,
        r.repeats,
        r.strangers,
        r.checked,
        r.bad,
        r.first_problem.as_deref().map_or(String::new(), |p| format!(" (first: {p})")),
        r.state,
        r.targeted,
        r.sent,
        r.failed,
        r.removed,
        r.skipped_online,
        r.api_ms,
        r.first_push_ms,
        r.push_s,
        r.pushes_per_s,
        r.steady_pushes_per_s,
        r.server_rss_kb_before,
        r.server_rss_kb_after,
        r.server_hwm_kb_before,
        r.server_hwm_kb,
        r.server_cpu_ms,
        r.server_cpu_us_per_push,
        opt(r.standin_cpu_ms),
        opt(r.standin_cpu_us_per_push),
        r.cpus,
        r.machine_cpu_ms,
        r.other_cpu_ms,
        load(r.load_start),
        load(r.load_broadcast),
        load(r.load_end),
    )
}

fn load(l: Option<[f64; 3]>) -> String {
    l.map_or("-".into(), |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn config_points_the_provider_at_the_stand_in() {
        let cli = crate::cli::Cli::parse_from(["herald-bench", "push", "--users", "5", "--page-size", "250"]);
        let crate::cli::Command::Push(args) = cli.command else { unreachable!() };
        let c = config(4000, Path::new("/tmp/x"), &args, "[apps.push.webhook]\nurl = \"http://127.0.0.1:9/\"\n");
        assert!(c.contains("url = \"sqlite:///tmp/x/herald.db\""));
        assert!(c.contains("[apps.push]\npage_size = 250\n"));
        assert!(c.find("[apps.push]") < c.find("[apps.push.webhook]"));
        assert!(status_kb(std::process::id(), "VmHWM:").unwrap() > 0);
        assert!(procfs::machine_busy_ms().unwrap() > 0.0);
    }
}
