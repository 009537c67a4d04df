//! `herald-bench floor` end to end: the real binary, real loopback sockets, a reader process.
//! What it measures is for the benchmark to print; these only check that a run completes, every
//! byte arrives, and bad arguments are refused with a message.

use std::process::Command;

fn floor(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_herald-bench")).arg("floor").args(args).output().expect("runs herald-bench")
}

#[test]
fn a_run_delivers_every_byte_and_reports_one_json_line() {
    let out = floor(&["--conns", "40", "--rounds", "3", "--interval-ms", "5", "--bytes", "100", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "floor failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "--json prints only the JSON line: {stdout}");
    let report: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(report["target"], "floor");
    assert_eq!(report["mode"], "send");
    assert_eq!(
        (report["conns"].as_u64(), report["rounds"].as_u64(), report["bytes"].as_u64()),
        (Some(40), Some(3), Some(100))
    );
    for field in ["cpu_us_per_send", "cpu_us_per_send_min", "wall_us_per_send"] {
        assert!(report[field].as_f64().is_some_and(|v| v >= 0.0), "{field} in {report}");
    }
}

#[test]
fn bad_arguments_are_refused_with_a_message() {
    for (args, says) in [
        (&["--conns", "0"][..], "must be positive"),
        (&["--per-source", "0"][..], "--per-source must be positive"),
        (&["--conns", "1000000"][..], "needs more descriptors"),
    ] {
        let out = floor(args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
