//! A service started for this test process alone: its own temporary directory, a free port on
//! 127.0.0.1, and a supervising shell that stops the service and removes the directory once the
//! process has gone.
//!
//! The supervisor is needed because test binaries exit without running destructors or static
//! drops, so nothing inside the process can stop what it started. It runs in a process group of
//! its own, so a Ctrl-C at the terminal reaches the tests, not it; it looks for the test process
//! once a second and cleans up within about a second of its end.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Upper bound of a start (initdb, then the server accepting connections): a hang guard only.
const START_GUARD: Duration = Duration::from_secs(90);
/// Starts whose port was taken between choosing it and binding it are tried again.
const START_TRIES: u32 = 3;

/// What the supervising shell runs; the service's own lines go between these two.
/// Positional parameters: directory, test process id, port, then the service's own.
const PROLOGUE: &str = r#"
dir=$1; parent=$2; port=$3; shift 3
mkdir -m 700 "$dir" || exit 1
cd "$dir" || exit 1
exec >>"$dir/log" 2>&1
"#;

/// `stop` is substituted: the signal that makes the service shut down at once.
const EPILOGUE: &str = r#"
child=$!
alive() { [ -d "/proc/$parent" ] || ps -p "$parent" >/dev/null 2>&1; }
while alive && kill -0 "$child" 2>/dev/null; do sleep 1; done
if kill -0 "$child" 2>/dev/null; then
  kill -STOP_SIGNAL "$child"
  wait "$child"
  cd / && rm -rf "$dir"
fi
# A service that ended on its own leaves its directory, log included, to be looked at.
"#;

/// How to run one kind of service.
pub(crate) struct Spec {
    /// `postgres`, `nats`: in messages and the directory's name.
    pub name: &'static str,
    /// Shell lines that prepare the directory and start the server in the background (`&`),
    /// its output going to the log. `$dir` and `$port` are set; `$1`… are [`Spec::args`].
    pub body: &'static str,
    pub args: Vec<String>,
    /// The signal (without `SIG`) that stops the server without delay.
    pub stop_signal: &'static str,
    /// Run as this user (as root: PostgreSQL refuses to run as root).
    pub user: Option<String>,
}

/// A service that answered on `port`.
#[derive(Debug, Clone)]
pub(crate) struct Private {
    pub port: u16,
    pub dir: PathBuf,
}

/// Starts the service and waits until `ready(port)` says it answers.
pub(crate) async fn start<F, Fut>(spec: &Spec, ready: F) -> Result<Private, String>
where
    F: Fn(u16) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match start_once(spec, &ready).await {
            Ok(private) => return Ok(private),
            Err(Failed { port_taken: true, .. }) if tries < START_TRIES => continue,
            Err(Failed { message, .. }) => return Err(message),
        }
    }
}

struct Failed {
    port_taken: bool,
    message: String,
}

async fn start_once<F, Fut>(spec: &Spec, ready: &F) -> Result<Private, Failed>
where
    F: Fn(u16) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let fail = |message: String| Failed { port_taken: false, message };
    let port = free_port().map_err(|e| fail(format!("no free port on 127.0.0.1: {e}")))?;
    let dir = std::env::temp_dir().join(format!("herald-test-{}-{}-{port}", spec.name, std::process::id()));
    let script = format!("{PROLOGUE}{}{}", spec.body, EPILOGUE.replace("STOP_SIGNAL", spec.stop_signal));
    let mut command = match &spec.user {
        Some(user) => as_user(user).map_err(fail)?,
        None => Command::new("sh"),
    };
    command
        .arg("-c")
        .arg(script)
        .arg("herald-testkit")
        .arg(&dir)
        .arg(std::process::id().to_string())
        .arg(port.to_string())
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Out of the terminal's process group: Ctrl-C stops the tests, and the supervisor cleans up.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut supervisor =
        command.spawn().map_err(|e| fail(format!("cannot start the {} supervisor: {e}", spec.name)))?;

    let deadline = tokio::time::Instant::now() + START_GUARD;
    loop {
        if let Ok(Some(status)) = supervisor.try_wait() {
            let log = log_tail(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(Failed {
                port_taken: log.contains("already in use"),
                message: format!(
                    "the private {} on port {port} ended before it answered ({status}); its log:\n{log}",
                    spec.name
                ),
            });
        }
        if ready(port).await {
            return Ok(Private { port, dir });
        }
        if tokio::time::Instant::now() > deadline {
            return Err(fail(format!(
                "the private {} on port {port} did not answer within {START_GUARD:?}; its log ({}):\n{}",
                spec.name,
                dir.join("log").display(),
                log_tail(&dir)
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `sh` as `user`, through util-linux's runuser.
fn as_user(user: &str) -> Result<Command, String> {
    let runuser = crate::install::on_path("runuser").ok_or_else(|| {
        format!(
            "as root, the private service must run as the user {user:?}, which needs runuser (util-linux); \
             run the tests as another user, or install util-linux"
        )
    })?;
    let mut c = Command::new(runuser);
    c.args(["-u", user, "--", "sh"]);
    Ok(c)
}

/// A port nothing listens on right now. Another process may take it before the service binds
/// it; the start is then tried again.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last lines of the service's log.
fn log_tail(dir: &Path) -> String {
    match std::fs::read_to_string(dir.join("log")) {
        Ok(log) => {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        }
        Err(e) => format!("(no log: {e})"),
    }
}

/// Whether this process runs as root: its effective uid, the second field of the `Uid:` line
/// of /proc/self/status (`id -u` where there is no /proc).
pub(crate) fn is_root() -> bool {
    let from_proc = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
        let ids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
        Some(ids.split_whitespace().nth(1)? == "0")
    });
    from_proc.unwrap_or_else(|| {
        Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    })
}

/// Whether a user of this name exists.
pub(crate) fn user_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd").is_ok_and(|passwd| passwd.lines().any(|l| l.split(':').next() == Some(name)))
}
