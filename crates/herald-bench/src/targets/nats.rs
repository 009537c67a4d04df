//! nats-server with its WebSocket listener: clients subscribe over WebSocket, the tool publishes
//! over a plain TCP client connection.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::timeout;

use super::{free_port, Running, Sender, Sent, ServerProc, TmpDir};
use crate::cli::CommonArgs;
use crate::client::SUBJECT;
use crate::payload;
use crate::tstamp::now_ns;

const DEFAULT_BIN: &str = "/usr/sbin/nats-server";

fn find_bin(args: &CommonArgs) -> Result<PathBuf> {
    if let Some(bin) = &args.nats_bin {
        return Ok(bin.clone());
    }
    let search = || {
        std::iter::once(PathBuf::from(DEFAULT_BIN))
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join("nats-server")))
            .find(|p| p.is_file())
    };
    if let Some(bin) = search() {
        return Ok(bin);
    }
    eprintln!("nats-server not found: apt-get install -y nats-server");
    let status = std::process::Command::new("apt-get")
        .args(["install", "-y", "nats-server"])
        .status()
        .context("running apt-get")?;
    match search() {
        Some(bin) => Ok(bin),
        None => bail!("nats-server still missing after apt-get ({status})"),
    }
}

fn config(client_port: u16, ws_port: u16) -> String {
    format!(
        r#"listen: "127.0.0.1:{client_port}"
websocket {{
  listen: "127.0.0.1:{ws_port}"
  no_tls: true
}}
"#
    )
}

pub async fn start(args: &CommonArgs, tmp: TmpDir) -> Result<Running> {
    if args.attach.is_some() {
        bail!("--attach works with --target herald only");
    }
    let bin = find_bin(args)?;
    let client_port = free_port()?;
    let mut ws_port = free_port()?;
    while ws_port == client_port {
        ws_port = free_port()?;
    }
    let conf = tmp.path.join("nats.conf");
    std::fs::write(&conf, config(client_port, ws_port))?;
    let conf_arg = conf.to_string_lossy().into_owned();
    let mut server = ServerProc::spawn(&bin, &["-c", &conf_arg], tmp.path.join("nats.log"))?;
    let client_addr = SocketAddr::from(([127, 0, 0, 1], client_port));
    let ws_addr = SocketAddr::from(([127, 0, 0, 1], ws_port));
    server.wait_listening(client_addr, Duration::from_secs(30)).await?;
    server.wait_listening(ws_addr, Duration::from_secs(30)).await?;
    let publisher = Publisher::connect(client_addr).await.context("publisher connection")?;
    let pid = server.pid();
    Ok(Running { server: Some(server), pid, ws_addr, ws_path: "/", sender: Sender::Nats(publisher), _tmp: tmp })
}

/// A plain NATS client connection that publishes to [`SUBJECT`].
pub struct Publisher {
    writer: Arc<Mutex<OwnedWriteHalf>>,
}

impl Publisher {
    pub async fn connect(addr: SocketAddr) -> Result<Publisher> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let wait = Duration::from_secs(10);
        let info = timeout(wait, lines.next_line()).await.context("no INFO")??.unwrap_or_default();
        if !info.starts_with("INFO") {
            bail!("expected INFO, got {info:.200}");
        }
        write.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\nPING\r\n").await?;
        loop {
            let line = timeout(wait, lines.next_line()).await.context("no PONG")??.unwrap_or_default();
            match line.as_str() {
                "PONG" => break,
                l if l.starts_with("-ERR") => bail!("nats: {l}"),
                "" => bail!("connection closed before PONG"),
                _ => {}
            }
        }
        let writer = Arc::new(Mutex::new(write));
        // Answer the server's keepalive PINGs for as long as the connection lives.
        let keepalive = writer.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "PING" {
                    let _ = keepalive.lock().await.write_all(b"PONG\r\n").await;
                } else if line.starts_with("-ERR") {
                    eprintln!("nats publisher: {line}");
                }
            }
        });
        Ok(Publisher { writer })
    }

    pub async fn publish(&mut self, index: usize, size: usize) -> Result<Sent> {
        let embedded_ns = now_ns();
        let body = payload::make(index, embedded_ns, size);
        let frame = format!("PUB {SUBJECT} {}\r\n{body}\r\n", body.len());
        let mut writer = self.writer.lock().await;
        let send_ns = now_ns();
        writer.write_all(frame.as_bytes()).await?;
        Ok(Sent { embedded_ns, send_ns, error: None })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_enables_websocket_without_tls() {
        let c = super::config(40001, 40002);
        assert!(c.contains("listen: \"127.0.0.1:40001\""));
        assert!(c.contains("websocket {\n  listen: \"127.0.0.1:40002\"\n  no_tls: true\n}"));
    }
}
