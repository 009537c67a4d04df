//! The built `herald` binary and its configuration: a bad file makes `herald serve` exit
//! non-zero with a message naming the bad key; a good one serves until SIGTERM.
//!
//! Every wait on the child is bounded so a server that wrongly starts cannot hang the suite;
//! the bound is a guard, not a timing assertion.

mod support;

use serde_json::Value;
use std::path::Path;
use support::{app_toml, herald, run_guarded, HeraldProcess, APP_ID, SECRET};

/// The harmless part of every config: nothing is written outside `dir`, no fixed port.
fn base_config(dir: &Path) -> String {
    let d = dir.display();
    format!("listen = \"127.0.0.1:0\"\nadmin.listen = \"127.0.0.1:0\"\ndata_dir = \"{d}\"\n[store]\nurl = \"sqlite://{d}/herald.db\"\n")
}

fn app(limits: &str) -> String {
    app_toml(APP_ID, SECRET, "", limits)
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

#[test]
fn a_good_config_serves_signed_calls_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.toml");
    std::fs::write(&path, format!("log = \"info\"\n{}{}", base_config(dir.path()), app(""))).unwrap();
    let server = HeraldProcess::serve(&path);

    // `herald call` signs with the wall clock, as the server under test checks it.
    let body = r#"{"UserInfo":[{"UserId":"cli-user"}]}"#;
    let app_id = APP_ID.to_string();
    let url = format!("http://{}", server.addr);
    let args = ["call", "--url", &url, "--app-id", &app_id, "--secret", SECRET, "UserRegister", body];
    let output = run_guarded(herald(&args));
    let answer: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("herald call printed no JSON ({e}): {output:?}"));
    assert_eq!(answer["Code"], 0, "{answer}");
    assert_eq!(answer["ErrorList"], serde_json::json!([]), "{answer}");

    assert!(server.terminate().success(), "herald serve should exit 0 after SIGTERM");
}
