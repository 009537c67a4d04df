//! The log, as an operator's file or shipper sees it: plain text with no colour codes when the
//! output is not a terminal, and one JSON object a line with `log_format = "json"`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const GUARD: Duration = Duration::from_secs(30);

fn serve(log_format: &str) -> (Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let config = format!(
        "listen = \"127.0.0.1:0\"\nadmin.listen = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\nlog = \"info\"\n{log_format}\n"
    );
    let path = dir.path().join("herald.toml");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald serve");
    (child, dir)
}

/// Lines of stdout up to and including the one that says the server is serving.
fn lines_until_serving(child: &mut Child) -> Vec<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.contains("herald is serving");
            seen.push(line);
            if done {
                let _ = tx.send(seen);
                return;
            }
        }
    });
    let lines = rx.recv_timeout(GUARD);
    let _ = child.kill();
    let _ = child.wait();
    lines.expect("herald serve never said it was serving")
}

#[test]
fn text_logs_carry_no_colour_codes_into_a_pipe() {
    let (mut child, _dir) = serve("");
    let lines = lines_until_serving(&mut child);
    assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "ANSI escapes in {lines:?}");
    assert!(lines.iter().any(|l| l.contains(" INFO ") && l.contains("addr=")), "{lines:?}");
}

#[test]
fn json_logs_are_one_object_a_line_with_the_same_fields() {
    let (mut child, _dir) = serve("log_format = \"json\"");
    let lines = lines_until_serving(&mut child);
    let objects: Vec<serde_json::Value> =
        lines.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let serving = objects.iter().find(|o| o["fields"]["message"].as_str().is_some_and(|m| m.contains("serving")));
    let serving = serving.unwrap_or_else(|| panic!("no serving line in {objects:?}"));
    assert_eq!(serving["level"], "INFO");
    assert!(serving["fields"]["addr"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{serving}");
    assert!(serving["timestamp"].is_string(), "{serving}");
}

#[test]
fn an_unknown_log_format_is_refused_with_its_key() {
    let (child, _dir) = serve("log_format = \"xml\"");
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("log_format") && err.contains("line"), "{err}");
}
