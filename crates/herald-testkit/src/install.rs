//! Finding the services' binaries, and installing them when they are missing: with apt-get when
//! this process runs as root on a system that has it (as CI may), otherwise by saying exactly
//! what to run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// Debian's and Ubuntu's package names.
pub(crate) const POSTGRES_PACKAGE: &str = "postgresql";
pub(crate) const NATS_PACKAGE: &str = "nats-server";

/// One installation at a time: apt-get holds a lock, and two services may be wanted at once.
static INSTALLING: Mutex<()> = Mutex::new(());

/// `find()`, after installing `package` if it found nothing and this process may install it.
/// `what` names the service in messages ("PostgreSQL (initdb and postgres)").
pub(crate) fn ensure(what: &str, package: &str, find: fn() -> Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(found) = find() {
        return Ok(found);
    }
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = find() {
        return Ok(found);
    }
    let command = install_command();
    if crate::private::is_root() && on_path("apt-get").is_some() {
        crate::announce(&format!("{what} is not installed; installing it: apt-get install -y {package}"));
        // A fresh machine may have no package lists yet: update them once if the first try fails.
        let installed = apt_get(&["install", "-y", "--no-install-recommends", package])
            || (apt_get(&["update"]) && apt_get(&["install", "-y", "--no-install-recommends", package]));
        if let (true, Some(found)) = (installed, find()) {
            return Ok(found);
        }
        return Err(format!("installing {what} with apt-get failed (its output is above); install it with: {command}"));
    }
    Err(format!("{what} is not installed. Install it with: {command}"))
}

/// What a person should run to get both services' binaries on this system.
fn install_command() -> String {
    let packages = format!("{POSTGRES_PACKAGE} {NATS_PACKAGE}");
    if on_path("apt-get").is_some() {
        format!("sudo apt-get install -y {packages}")
    } else if on_path("brew").is_some() {
        "brew install postgresql nats-server".to_string()
    } else {
        format!(
            "your system's packages for PostgreSQL (initdb, postgres) and nats-server — or point \
             HERALD_TEST_POSTGRES_URL and HERALD_TEST_NATS_URL at running servers (Debian: {packages})"
        )
    }
}

fn apt_get(args: &[&str]) -> bool {
    Command::new("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=300", "-q"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        // Its output goes where the test process's goes (libtest captures only the print
        // macros), so that a failure explains itself.
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The directory holding `initdb` and `postgres`: the newest of Debian's
/// `/usr/lib/postgresql/<version>/bin`, else wherever `initdb` on the PATH really lives.
pub(crate) fn find_postgres_bin() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| has_both(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let initdb = std::fs::canonicalize(on_path("initdb")?).ok()?;
    let bin = initdb.parent()?.to_path_buf();
    has_both(&bin).then_some(bin)
}

pub(crate) fn find_nats_server() -> Option<PathBuf> {
    on_path("nats-server")
}

/// `name` in one of the PATH's directories (and the sbin ones, which a normal user's PATH may
/// lack; Debian puts nats-server there).
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
