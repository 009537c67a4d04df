//! Herald: start `herald serve` (or attach), register the sender, broadcast through the signed
//! `SendMessageToAllUsers` API.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use herald_proto::signature::api_signature;
use serde_json::{json, Value};

use super::{free_port, Running, Sender, Sent, ServerProc, TmpDir};
use crate::cli::CommonArgs;
use crate::payload;
use crate::tstamp::now_ns;

/// The user broadcasts are sent as.
pub const SENDER: &str = "bench-sender";
/// ZIM: "user already exists" in UserRegister's ErrorList / Code.
const USER_EXISTS: i64 = 660_700_002;

fn herald_bin(args: &CommonArgs) -> Result<PathBuf> {
    if let Some(bin) = &args.herald_bin {
        return Ok(bin.clone());
    }
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("herald");
    if !bin.exists() {
        bail!(
            "no herald binary at {} (build it with `cargo build --release -p herald-server`, or pass --herald-bin)",
            bin.display()
        );
    }
    Ok(bin)
}

fn config(port: u16, tmp: &TmpDir, args: &CommonArgs) -> String {
    format!(
        r#"listen = "127.0.0.1:{port}"
data_dir = "{dir}"
# Per-connection logging would be part of the measured cost; nats-server logs none by default.
log = "warn"

[store]
url = "sqlite://{db}"

[[apps]]
app_id = {app_id}
server_secret = "{secret}"

[apps.limits]
broadcast_per_second = 1000
broadcast_per_day = 1000000
message_max_bytes = 32768
"#,
        dir = tmp.path.display(),
        db = tmp.path.join("herald.db").display(),
        app_id = args.app_id,
        secret = args.secret,
    )
}

pub async fn start(args: &CommonArgs, tmp: TmpDir) -> Result<Running> {
    let (server, addr) = match args.attach {
        // Clients bind to 127.0.0.x source addresses, which only reach loopback anyway.
        Some(addr) if !matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback()) => {
            bail!("--attach must be an address in 127.0.0.0/8, got {addr}")
        }
        Some(addr) => (None, addr),
        None => {
            let bin = herald_bin(args)?;
            let port = free_port()?;
            let conf = tmp.path.join("herald.toml");
            std::fs::write(&conf, config(port, &tmp, args))?;
            let conf = conf.to_string_lossy().into_owned();
            let mut server = ServerProc::spawn(&bin, &["serve", "--config", &conf], tmp.path.join("herald.log"))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            server.wait_listening(addr, Duration::from_secs(30)).await?;
            (Some(server), addr)
        }
    };
    let pid = server.as_ref().and_then(ServerProc::pid).or(args.server_pid);
    let mut api = Api::new(addr, args.app_id, args.secret.clone())?;
    api.register_sender().await.context("registering the sender")?;
    Ok(Running { server, pid, ws_addr: addr, ws_path: "/ws", sender: Sender::Herald(api), _tmp: tmp })
}

/// A client of Herald's signed server API.
pub struct Api {
    http: reqwest::Client,
    addr: SocketAddr,
    app_id: u32,
    secret: String,
    nonce: u64,
}

impl Api {
    pub fn new(addr: SocketAddr, app_id: u32, secret: String) -> Result<Api> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(1).build()?;
        Ok(Api { http, addr, app_id, secret, nonce: now_ns() as u64 })
    }

    fn url(&mut self, action: &str) -> String {
        // SignatureNonce must not repeat within the window: a counter seeded from the clock.
        self.nonce = self.nonce.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let nonce = format!("{:016x}", self.nonce);
        let ts = now_ns() / 1_000_000_000;
        let sig = api_signature(self.app_id, &nonce, &self.secret, ts);
        format!(
            "http://{}/?Action={action}&AppId={}&SignatureNonce={nonce}&Timestamp={ts}&Signature={sig}&SignatureVersion=2.0",
            self.addr, self.app_id
        )
    }

    /// POST `body` to `action`; returns the time just before the request went out and the answer.
    async fn call(&mut self, action: &str, body: Vec<u8>) -> Result<(i64, Value)> {
        let url = self.url(action);
        let request = self.http.post(url).header("content-type", "application/json").body(body).build()?;
        let sent = now_ns();
        let response = self.http.execute(request).await.with_context(|| format!("POST {action}"))?;
        let status = response.status();
        let text = response.text().await?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| anyhow!("{action}: HTTP {status}, not JSON ({e}): {text:.200}"))?;
        Ok((sent, value))
    }

    /// Create the sender (an answer that it already exists is fine). Retries while the server
    /// is still coming up.
    pub async fn register_sender(&mut self) -> Result<()> {
        let body = serde_json::to_vec(&json!({"UserInfo": [{"UserId": SENDER}]}))?;
        let mut last = None;
        for _ in 0..20 {
            match self.call("UserRegister", body.clone()).await {
                Ok((_, v)) => {
                    let code = v["Code"].as_i64().unwrap_or(-1);
                    let exists = v["ErrorList"]
                        .as_array()
                        .is_some_and(|l| !l.is_empty() && l.iter().all(|e| e["SubCode"].as_i64() == Some(USER_EXISTS)));
                    if code == 0 || code == USER_EXISTS || exists {
                        return Ok(());
                    }
                    bail!("UserRegister answered {v}");
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(last.unwrap_or_else(|| anyhow!("UserRegister failed")))
    }

    pub async fn broadcast(&mut self, index: usize, size: usize) -> Result<Sent> {
        let embedded_ns = now_ns();
        let body = serde_json::to_vec(&json!({
            "FromUserId": SENDER,
            "MessageType": 1,
            "MessageBody": {"Message": payload::make(index, embedded_ns, size)},
            "PushType": 0,
        }))?;
        let (send_ns, answer) = self.call("SendMessageToAllUsers", body).await?;
        let error = match answer["Code"].as_i64() {
            Some(0) => None,
            _ => Some(format!("{answer}")),
        };
        Ok(Sent { embedded_ns, send_ns, error })
    }
}
