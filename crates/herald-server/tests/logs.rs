//! The log, as an operator's file or shipper sees it: plain text with no colour codes when the
//! output is not a terminal, and one JSON object a line with `log_format = "json"`.

mod support;

use std::path::PathBuf;
use support::{herald, run_guarded, HeraldProcess};

/// A config file in `dir` for a development server with these extra top-level keys.
fn config(dir: &tempfile::TempDir, log_format: &str) -> PathBuf {
    let d = dir.path().display();
    let config = format!(
        "listen = \"127.0.0.1:0\"\nadmin.listen = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\nlog = \"info\"\n{log_format}\n"
    );
    let path = dir.path().join("herald.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// `herald serve` on that config, with stdout a pipe. NO_COLOR is left unset, so that the
/// colour decision is the server's own.
fn serve(dir: &tempfile::TempDir, log_format: &str) -> HeraldProcess {
    let mut command = herald(&["serve", "--config", config(dir, log_format).to_str().unwrap()]);
    command.env_remove("NO_COLOR");
    HeraldProcess::spawn(command)
}

#[test]
fn text_logs_carry_no_colour_codes_into_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let lines = serve(&dir, "").lines_until_serving();
    assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "ANSI escapes in {lines:?}");
    assert!(lines.iter().any(|l| l.contains(" INFO ") && l.contains("addr=")), "{lines:?}");
}

#[test]
fn json_logs_are_one_object_a_line_with_the_same_fields() {
    let dir = tempfile::tempdir().unwrap();
    let lines = serve(&dir, "log_format = \"json\"").lines_until_serving();
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
    let dir = tempfile::tempdir().unwrap();
    let output = run_guarded(herald(&["serve", "--config", config(&dir, "log_format = \"xml\"").to_str().unwrap()]));
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("log_format") && err.contains("line"), "{err}");
}
