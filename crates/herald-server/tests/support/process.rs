//! The built `herald` binary as a child process: for what only a real process shows (exit codes,
//! SIGTERM, SIGKILL). Every wait on a child is bounded by [`GUARD`] so that a child that wrongly
//! keeps running cannot hang the suite; the bound is a guard, not a timing assertion.

use super::api::ApiClient;
use super::{signed_params, APP_ID, SECRET};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const HERALD: &str = env!("CARGO_BIN_EXE_herald");
pub const GUARD: Duration = Duration::from_secs(60);

/// `herald ARGS` with none of the environment overrides leaking in from the caller.
pub fn herald(args: &[&str]) -> Command {
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

/// Sends `signal` (`-TERM`, `-KILL`) to a process by its own pid.
fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(signal).arg(pid.to_string()).status();
}

/// Runs to completion, killing the child (by its own pid) if it is still running after the guard.
pub fn run_guarded(mut cmd: Command) -> Output {
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

/// A `herald serve` child, killed (by its own pid) when dropped. A thread drains its stdout (so
/// it never blocks on a full pipe) and hands the lines over.
pub struct HeraldProcess {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    /// The address it logged that it serves on (once [`HeraldProcess::serve`] has seen it).
    pub addr: String,
    api: ApiClient,
}

impl HeraldProcess {
    /// `herald serve --config CONFIG`; returns once it has logged its address (the config's
    /// `log` must let `info` through).
    pub fn serve(config: &Path) -> HeraldProcess {
        HeraldProcess::serve_command(herald(&["serve", "--config", config.to_str().unwrap()]))
    }

    /// Like [`HeraldProcess::serve`], for a `herald serve` started some other way (under a
    /// shell that lowers its limits, say).
    pub fn serve_command(command: Command) -> HeraldProcess {
        let mut process = HeraldProcess::spawn(command);
        let lines = process.lines_until_serving();
        let serving = strip_ansi(lines.last().expect("the serving line"));
        let addr = serving.split("addr=").nth(1).and_then(|rest| rest.split_whitespace().next());
        process.addr = addr.unwrap_or_else(|| panic!("no addr= in the serving line: {serving}")).to_string();
        process
    }

    /// Starts `command` (a `herald serve`, see [`herald`]) with its stdout captured.
    pub fn spawn(mut command: Command) -> HeraldProcess {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn herald serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        HeraldProcess { child: Some(child), lines, addr: String::new(), api: ApiClient::new(None) }
    }

    /// Lines of stdout, as written, up to and including the one saying it is serving.
    pub fn lines_until_serving(&mut self) -> Vec<String> {
        let deadline = std::time::Instant::now() + GUARD;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let serving = line.contains("herald is serving");
                    seen.push(line);
                    if serving {
                        return seen;
                    }
                }
                Err(_) => panic!("herald serve never said it was serving; its log so far: {seen:?}"),
            }
        }
    }

    /// The log lines written since the last look, without waiting.
    pub fn lines_so_far(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// SIGTERM, then waits (guarded) for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id();
        kill(pid, "-TERM");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = rx.recv_timeout(GUARD).unwrap_or_else(|_| {
            kill(pid, "-KILL");
            panic!("herald serve did not stop on SIGTERM");
        });
        status.expect("wait")
    }

    /// A signed POST as the default app, signed by the wall clock; the answer is checked like
    /// every other and must have `Code` 0.
    pub async fn call(&self, action: &str, body: &Value) -> Value {
        let now_s = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let query = signed_params(action, APP_ID, SECRET, &self.api.nonce(), now_s).query();
        let answer = self.api.send(&format!("http://{}", self.addr), &query, Some(body.to_string().into_bytes())).await;
        assert_eq!(answer["Code"], 0, "{action}: {answer}");
        answer
    }
}

impl Drop for HeraldProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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
