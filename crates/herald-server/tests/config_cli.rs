//! The built `herald` binary and its configuration: a bad file makes `herald serve` exit
//! non-zero with a message naming the bad key; a good one serves until SIGTERM.
//!
//! Every wait on the child is bounded so a server that wrongly starts cannot hang the suite;
//! the bound is a guard, not a timing assertion.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const HERALD: &str = env!("CARGO_BIN_EXE_herald");
const GUARD: Duration = Duration::from_secs(60);
const APP_ID: u32 = 1234567890;
const SECRET: &str = "fa94dd0f974cf2e293728a526b028271";

/// `herald` with none of the environment overrides leaking in from the caller.
fn herald(args: &[&str]) -> Command {
    let mut cmd = Command::new(HERALD);
    cmd.args(args).env("NO_COLOR", "1").env("RUST_BACKTRACE", "0");
    for var in [
        "HERALD_CONFIG",
        "HERALD_LISTEN",
        "HERALD_DATA_DIR",
        "HERALD_LOG",
        "HERALD_STORE_URL",
        "HERALD_TLS_CERT",
        "HERALD_TLS_KEY",
        "HERALD_SECRET",
        // `herald call` must reach the local server directly.
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// The harmless part of every config: nothing is written outside `dir`, no fixed port.
fn base_config(dir: &Path) -> String {
    let d = dir.display();
    format!("listen = \"127.0.0.1:0\"\nadmin.listen = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\n[store]\nurl = \"sqlite://{d}/herald.db\"\n")
}

fn app(limits: &str) -> String {
    format!("[[apps]]\napp_id = {APP_ID}\nserver_secret = \"{SECRET}\"\n[apps.limits]\n{limits}\n")
}

fn kill(child_id: u32, signal: &str) {
    let _ = Command::new("kill").arg(signal).arg(child_id.to_string()).status();
}

/// Runs to completion, killing the child (by its own pid) if it is still running after the guard.
fn run_guarded(mut cmd: Command) -> Output {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn herald");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(GUARD) {
        Ok(output) => output.expect("herald ran"),
        Err(_) => {
            kill(pid, "-KILL");
            panic!("herald did not exit: it accepted a config it should have refused");
        }
    }
}

/// `herald serve --config <file with text>`: must exit non-zero naming `key` on stderr.
fn assert_refused(text: &str, key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let output = run_guarded(herald(&["serve", "--config", path.to_str().unwrap()]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "config was accepted:\n{text}");
    assert!(stderr.contains(key), "the error does not name {key:?}:\n{stderr}\nconfig:\n{text}");
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_config(dir.path());
    assert_refused(&format!("listn = \"127.0.0.1:0\"\n{base}"), "listn");
    assert_refused(&format!("{base}[api]\nmax_body_size = 10\n"), "max_body_size");
    assert_refused(&format!("{base}[gateway]\nheartbeat_ms = 10\n"), "heartbeat_ms");
    assert_refused(&format!("{base}{}", app("broadcast_per_hour = 3")), "broadcast_per_hour");
    assert_refused(
        &format!("{base}[[apps]]\napp_id = 1\nserver_secret = \"{SECRET}\"\napp_name = \"x\"\n"),
        "app_name",
    );
}

#[test]
fn invalid_values_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_config(dir.path());
    assert_refused(&format!("{base}[api]\nmax_body_bytes = 0\n"), "api.max_body_bytes");
    assert_refused(&format!("{base}[api]\nsignature_window_s = 0\n"), "api.signature_window_s");
    assert_refused(&format!("{base}{}", app("message_max_bytes = 40000")), "apps[0].limits.message_max_bytes");
    assert_refused(
        &format!("{base}{}", app("broadcast_message_types = [1, 2]")),
        "apps[0].limits.broadcast_message_types",
    );
    assert_refused(&format!("{base}{}", app("broadcast_per_day = 0")), "apps[0].limits.broadcast_per_day");
    assert_refused(&format!("{base}[[apps]]\napp_id = 7\nserver_secret = \"short\"\n"), "apps[0].server_secret");
    assert_refused(&format!("{base}{}{}", app(""), app("")), "apps[1].app_id");
    assert_refused(&format!("{base}[api]\nmax_body_bytes = \"big\"\n"), "max_body_bytes");
    assert_refused("listen = \"nowhere\"\n", "listen");
}

#[test]
fn a_file_that_is_not_toml_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "listen = \n[apps\n").unwrap();
    let output = run_guarded(herald(&["serve", "--config", path.to_str().unwrap()]));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid config"), "{output:?}");
}

#[test]
fn a_missing_config_file_is_refused_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let output = run_guarded(herald(&["serve", "--config", path.to_str().unwrap()]));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
}

#[test]
fn a_bad_environment_override_is_refused_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.toml");
    std::fs::write(&path, format!("{}{}", base_config(dir.path()), app(""))).unwrap();
    let mut cmd = herald(&["serve", "--config", path.to_str().unwrap()]);
    cmd.env("HERALD_LISTEN", "not-an-address");
    let output = run_guarded(cmd);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("HERALD_LISTEN"), "{output:?}");
}

/// Removes ANSI colour sequences, in case the log is coloured despite NO_COLOR.
fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads the child's stdout until the "serving" log line and returns the address it names.
fn serving_address(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let line = strip_ansi(&line);
            if let Some(rest) = line.split("addr=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    match rx.recv_timeout(GUARD) {
        Ok(addr) => addr,
        Err(_) => {
            kill(child.id(), "-KILL");
            panic!("herald serve never logged the address it serves on");
        }
    }
}

#[test]
fn a_good_config_serves_signed_calls_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.toml");
    std::fs::write(&path, format!("log = \"info\"\n{}{}", base_config(dir.path()), app(""))).unwrap();
    let mut child = herald(&["serve", "--config", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn herald serve");
    let addr = serving_address(&mut child);

    // `herald call` signs with the wall clock, as the server under test checks it.
    let body = r#"{"UserInfo":[{"UserId":"cli-user"}]}"#;
    let app_id = APP_ID.to_string();
    let url = format!("http://{addr}");
    let args = ["call", "--url", &url, "--app-id", &app_id, "--secret", SECRET, "UserRegister", body];
    let output = run_guarded(herald(&args));
    let answer: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("herald call printed no JSON ({e}): {output:?}"));
    assert_eq!(answer["Code"], 0, "{answer}");
    assert_eq!(answer["ErrorList"], serde_json::json!([]), "{answer}");

    kill(child.id(), "-TERM");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx.recv_timeout(GUARD).unwrap_or_else(|_| {
        kill(pid, "-KILL");
        panic!("herald serve did not stop on SIGTERM");
    });
    assert!(status.expect("wait").success(), "herald serve should exit 0 after SIGTERM");
}
