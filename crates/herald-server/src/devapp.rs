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
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let stored: Stored = toml::from_str(&text).map_err(|e| format!("{} is damaged: {e}", path.display()))?;
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
        std::fs::create_dir_all(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
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
}
