//! `herald listen`: log in as a client with the Rust SDK and print each broadcast as one JSON
//! line (the ZIMMessage fields), for scripts and smoke tests.

use herald_sdk::{Client, ClientConfig, Event};
use std::io::Write;
use std::time::Duration;

pub struct ListenArgs {
    pub url: String,
    pub app_id: u32,
    pub user_id: String,
    pub token: String,
    pub sdk_version: String,
    /// `None`: the SDK's random per-run default.
    pub device_id: Option<String>,
    pub push: Option<(String, String)>,
    pub count: Option<u64>,
    pub timeout: Option<Duration>,
}

/// Runs until `count` broadcasts were printed (Ok) or the timeout or a terminal disconnect
/// comes first (Err with a one-line reason).
pub async fn listen(args: ListenArgs, out: &mut (dyn Write + Send)) -> Result<(), String> {
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let work = async {
        let mut config = ClientConfig::new(vec![args.url.clone()], args.app_id, &args.user_id, &args.token);
        config.sdk_version = args.sdk_version.clone();
        config.platform = "cli".into();
        if let Some(device_id) = &args.device_id {
            config.device_id = device_id.clone();
        }
        let (client, mut events) = Client::login(config).await.map_err(|e| format!("login failed: {e}"))?;
        if let Some((push_id, provider)) = &args.push {
            client.set_push_id(push_id, provider).await.map_err(|e| format!("set_push_id failed: {e}"))?;
        }
        let mut printed = 0u64;
        if args.count == Some(0) {
            return Ok(());
        }
        while let Some(event) = events.next().await {
            match event {
                Event::BroadcastMessageReceived(msg) => {
                    let line = serde_json::to_string(&msg).map_err(|e| e.to_string())?;
                    writeln!(out, "{line}")
                        .and_then(|_| out.flush())
                        .map_err(|e| format!("cannot write output: {e}"))?;
                    printed += 1;
                    if Some(printed) == args.count {
                        return Ok(());
                    }
                }
                Event::ConnectionStateChanged { state, event, .. } => {
                    eprintln!("herald listen: connection {state:?} ({event:?})");
                }
                Event::TokenWillExpire { seconds } => eprintln!("herald listen: token expires in {seconds} s"),
            }
        }
        Err("disconnected for good (see the connection events above)".to_string())
    };
    match deadline {
        Some(d) => tokio::time::timeout_at(d, work)
            .await
            .unwrap_or_else(|_| Err("timed out before enough broadcasts arrived".into())),
        None => work.await,
    }
}
