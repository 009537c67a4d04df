//! The development app: with no `[[apps]]` configured, `herald serve` creates one app once,
//! prints its AppId and ServerSecret, and keeps them in `data_dir/dev-app.toml` so restarts and
//! scripts keep working with the same credentials.

use crate::config::{AppConfig, Secret};
use rand::Rng;
use serde::Deserialize;
use std::path::Path;

pub const FILE_NAME: &str = "dev-app.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    app_id: u32,
    server_secret: String,
}

pub fn load_or_create(data_dir: &Path) -> Result<AppConfig, String> {
    let path = data_dir.join(FILE_NAME);
    let (app_id, secret) = if path.exists() {
        warn_if_readable_by_others(&path);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        // toml's message would quote the line, the secret's included.
        let stored: Stored = toml::from_str(&text).map_err(|_| {
            format!("{} is damaged: it must hold app_id = N and server_secret = \"<32 characters>\"", path.display())
        })?;
        if stored.server_secret.len() != 32 || stored.app_id == 0 {
            return Err(format!(
                "{} is damaged: expected a non-zero app_id and a 32-character server_secret",
                path.display()
            ));
        }
        eprintln!("herald: development app {} (credentials in {})", stored.app_id, path.display());
        (stored.app_id, stored.server_secret)
    } else {
        let mut rng = rand::thread_rng();
        let app_id: u32 = rng.gen_range(1_000_000_000..=u32::MAX);
        let secret: String = (0..16).map(|_| format!("{:02x}", rng.gen::<u8>())).collect();
        create_private_dir(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let text = format!(
            "# Created by `herald serve` because no [[apps]] were configured. Keep it private.\napp_id = {app_id}\nserver_secret = \"{secret}\"\n"
        );
        write_private(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("herald: created a development app (kept in {}):", path.display());
        eprintln!("  AppId        = {app_id}");
        eprintln!("  ServerSecret = {secret}");
        (app_id, secret)
    };
    Ok(AppConfig {
        app_id,
        server_secret: Secret::new(secret),
        broadcast_enabled: true,
        limits: Default::default(),
        push: Default::default(),
    })
}

/// The data directory holds the development app's secret and the database: 0700 when Herald
/// creates it.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Warns when a file with secrets in it (the development app, the database) can be read by
/// users other than the server's own.
pub fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"),
                    "readable by other users; it holds secrets: chmod 600 it (and 700 its directory)");
            }
        }
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn created_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = super::load_or_create(dir.path()).unwrap();
        let again = super::load_or_create(dir.path()).unwrap();
        assert_eq!(first.app_id, again.app_id);
        assert_eq!(first.server_secret, again.server_secret);
        assert_eq!(first.server_secret.expose().len(), 32);
    }

    #[cfg(unix)]
    #[test]
    fn the_data_directory_and_the_app_file_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let data_dir = root.path().join("new").join("data");
        super::load_or_create(&data_dir).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data_dir), 0o700);
        assert_eq!(mode(&data_dir.join(super::FILE_NAME)), 0o600);
    }

    #[test]
    fn a_damaged_app_file_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(super::FILE_NAME), "server_secret = \"0123456789abcdef0123456789abcd").unwrap();
        let err = super::load_or_create(dir.path()).unwrap_err();
        assert!(err.contains("damaged") && !err.contains("0123456789"), "{err}");
    }
}
