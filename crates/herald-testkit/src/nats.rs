//! The NATS of the cluster tests: the URL in [`URL_ENV`], else [`STANDARD_URL`] when a NATS
//! answers there, else a private `nats-server -js` started for this process (see the crate docs).
//! Tests sharing one NATS keep apart by subject prefix.

use crate::install::{self, NATS_PACKAGE};
use crate::private::{self, Spec};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::OnceCell;

/// Overrides the search: the URL of a NATS server for the tests.
pub const URL_ENV: &str = "HERALD_TEST_NATS_URL";
/// The standard local server, used when it answers, as on CI.
pub const STANDARD_URL: &str = "nats://127.0.0.1:4222";
const STANDARD_ADDR: &str = "127.0.0.1:4222";

static URL: OnceCell<Result<String, String>> = OnceCell::const_new();

/// The URL of the NATS this process's tests use. Panics (so a test fails, never skips) when none
/// can be had, saying why and what to do.
pub async fn nats_url() -> String {
    match URL.get_or_init(find_or_start).await {
        Ok(url) => url.clone(),
        Err(e) => panic!("no NATS for the tests: {e}"),
    }
}

async fn find_or_start() -> Result<String, String> {
    if let Ok(url) = std::env::var(URL_ENV) {
        return Ok(url);
    }
    if answers(STANDARD_ADDR).await {
        return Ok(STANDARD_URL.to_string());
    }
    let why_not_standard = format!("no NATS answers at {STANDARD_ADDR}");
    let nats_server = install::ensure("nats-server", NATS_PACKAGE, install::find_nats_server)
        .map_err(|e| format!("{why_not_standard}, and {e}"))?;
    let spec = Spec {
        name: "nats",
        body: r#"
"$1" -js -a 127.0.0.1 -p "$port" -sd "$dir/jetstream" &
"#,
        args: vec![nats_server.display().to_string()],
        stop_signal: "TERM",
        user: None,
    };
    let private = private::start(&spec, |port| async move { answers(&format!("127.0.0.1:{port}")).await })
        .await
        .map_err(|e| format!("{why_not_standard}, and starting a private nats-server failed: {e}"))?;
    let url = format!("nats://127.0.0.1:{}", private.port);
    crate::announce(&format!(
        "{why_not_standard}; started a private nats-server for this test process at {url} \
         (in {}, stopped when the process ends; set {URL_ENV} to use another)",
        private.dir.display()
    ));
    Ok(url)
}

/// Whether a NATS server answers at `addr`: it greets every connection with an `INFO` line.
async fn answers(addr: &str) -> bool {
    let greeting = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut head = [0u8; 5];
        tcp.read_exact(&mut head).await.ok()?;
        Some(head == *b"INFO ")
    };
    matches!(tokio::time::timeout(Duration::from_secs(5), greeting).await, Ok(Some(true)))
}
