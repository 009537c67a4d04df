//! `herald-bench storm` and `soak` end to end: the real binary against real `herald serve`
//! processes (the cluster one against the tests' PostgreSQL and NATS, see herald-testkit). Their
//! timings are for the benchmark to print; these check only that every client comes back and
//! that nothing is lost or duplicated.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The `herald` binary, built in this test's profile: `cargo test -p herald-bench` does not
/// build another package's binaries, and one left over from earlier may be stale.
fn herald_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bench = PathBuf::from(env!("CARGO_BIN_EXE_herald-bench"));
        let profile_dir = bench.parent().expect("the binary's directory").to_path_buf();
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "-p", "herald-server", "--bin", "herald"]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let target_dir = profile_dir.parent().expect("the target directory");
        let status = build.env("CARGO_TARGET_DIR", target_dir).status().expect("runs cargo build");
        assert!(status.success(), "building herald failed");
        profile_dir.join("herald")
    })
}

/// Run `herald-bench <args> --json --herald-bin …` and parse its one JSON line.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_herald-bench"))
        .args(args)
        .arg("--json")
        .arg("--herald-bin")
        .arg(herald_bin())
        .output()
        .expect("runs herald-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "herald-bench {args:?} failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "--json prints only the JSON line: {stdout}");
    eprintln!("{}", lines[0]);
    serde_json::from_str(lines[0]).unwrap()
}

fn count(report: &Value, field: &str) -> u64 {
    report[field].as_u64().unwrap_or_else(|| panic!("no {field} in {report}"))
}

#[test]
fn a_storm_on_one_node_loses_and_repeats_nothing() {
    let r = bench(&["storm", "--conns", "50", "--interval-ms", "100", "--before-s", "1", "--after", "3"]);
    assert_eq!(r["mode"], "storm");
    assert_eq!((count(&r, "affected"), count(&r, "logins"), count(&r, "not_back")), (50, 50, 0), "{r}");
    for field in ["lost", "duplicated", "out_of_order", "unexpected", "id_mismatch", "recovered_false", "not_caught_up"]
    {
        assert_eq!(count(&r, field), 0, "{field} in {r}");
    }
    assert_eq!(count(&r, "recovered_true"), 50, "{r}");
    assert!(count(&r, "broadcasts_during") + count(&r, "broadcasts_before_drop") > 0, "{r}");
    // The node has seen every user log in before the drop, so the storm's logins skip
    // `ensure_user` (gateway.known_users_max); and nothing reads the store to recover.
    let ensure_user = r["store_ops_by_op"].get("ensure_user").and_then(|op| op["window"].as_f64()).unwrap_or(0.0);
    assert_eq!(ensure_user, 0.0, "{r}");
    assert!(r["store_ops_by_op"].get("recent_broadcasts").is_none(), "{r}");
}

#[test]
fn a_short_soak_loses_and_repeats_nothing() {
    let r = bench(&[
        "soak",
        "--conns",
        "50",
        "--duration-s",
        "10",
        "--interval-ms",
        "200",
        "--reconnect-pct",
        "10",
        "--bad-every-s",
        "4",
        "--bad-per-burst",
        "21",
        "--sample-s",
        "2",
        "--grace-s",
        "20",
    ]);
    assert_eq!(r["mode"], "soak");
    for field in [
        "steady_lost",
        "steady_duplicated",
        "steady_out_of_order",
        "churned_lost",
        "churned_duplicated",
        "churned_out_of_order",
        "recovered_false",
        "outages_not_back",
        "bad_surprises",
    ] {
        assert_eq!(count(&r, field), 0, "{field} in {r}");
    }
    assert!(count(&r, "steady_clients") >= 5, "every 10th client never drops: {r}");
    assert!(count(&r, "outages") > 0 && count(&r, "relogins") > 0, "{r}");
    assert!(count(&r, "bad_requests") >= 42, "two bursts of 21: {r}");
    assert!(r["samples"].as_array().is_some_and(|s| s.len() >= 5), "{r}");
}

#[test]
fn killing_a_cluster_node_loses_and_repeats_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (pg, nats) = runtime.block_on(async {
        (herald_testkit::postgres::admin_url().await.expect("a PostgreSQL"), herald_testkit::nats_url().await)
    });
    let r = bench(&[
        "storm",
        "--nodes",
        "2",
        "--conns",
        "40",
        "--kill-node",
        "2",
        "--interval-ms",
        "100",
        "--before-s",
        "1",
        "--after",
        "3",
        "--pg-admin-url",
        &pg,
        "--nats-url",
        &nats,
    ]);
    assert_eq!(r["kill_node"], 2);
    assert_eq!((count(&r, "affected"), count(&r, "logins"), count(&r, "not_back")), (20, 20, 0), "{r}");
    for field in ["lost", "duplicated", "out_of_order", "recovered_false", "steady_lost"] {
        assert_eq!(count(&r, field), 0, "{field} in {r}");
    }
    assert_eq!(count(&r, "steady_clients"), 20, "node 1's clients stay: {r}");
}
