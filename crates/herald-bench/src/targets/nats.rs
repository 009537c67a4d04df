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

use super::{free_ports, Node, Running, Sender, Sent, ServerProc, TmpDir};
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

/// Ports of one nats-server of the run.
#[derive(Debug, Clone, Copy)]
struct Ports {
    client: u16,
    ws: u16,
    /// Route listener and monitoring (`/routez`); used only with more than one server.
    route: u16,
    monitor: u16,
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

/// Server `i` of a cluster: [`config`] plus a name, a monitoring port and routes to all the
/// others.
fn cluster_config(i: usize, all: &[Ports]) -> String {
    let me = all[i];
    let routes: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .map(|(_, p)| format!("    \"nats-route://127.0.0.1:{}\"", p.route))
        .collect();
    format!(
        r#"server_name: "bench-{n}"
{base}http: "127.0.0.1:{monitor}"
cluster {{
  name: "herald-bench"
  listen: "127.0.0.1:{route}"
  no_advertise: true
  routes: [
{routes}
  ]
}}
"#,
        n = i + 1,
        base = config(me.client, me.ws),
        monitor = me.monitor,
        route = me.route,
        routes = routes.join("\n"),
    )
}

pub async fn start(args: &CommonArgs, tmp: TmpDir) -> Result<Running> {
    if args.attach.is_some() {
        bail!("--attach works with --target herald only");
    }
    let bin = find_bin(args)?;
    let n = args.nodes.max(1);
    let flat = free_ports(4 * n)?;
    let ports: Vec<Ports> =
        flat.chunks(4).map(|p| Ports { client: p[0], ws: p[1], route: p[2], monitor: p[3] }).collect();
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let text = if n == 1 { config(ports[i].client, ports[i].ws) } else { cluster_config(i, &ports) };
        let conf = tmp.path.join(format!("nats-{}.conf", i + 1));
        std::fs::write(&conf, text)?;
        let conf_arg = conf.to_string_lossy().into_owned();
        let server = ServerProc::spawn(
            &bin,
            &["-c", &conf_arg],
            tmp.path.join(format!("nats-{}.log", i + 1)),
            args.node_threads,
        )?;
        let pid = server.pid();
        nodes.push(Node {
            server: Some(server),
            pid,
            ws_addr: SocketAddr::from(([127, 0, 0, 1], ports[i].ws)),
            admin_addr: None,
        });
    }
    for (node, p) in nodes.iter_mut().zip(&ports) {
        let server = node.server.as_mut().context("server")?;
        server.wait_listening(SocketAddr::from(([127, 0, 0, 1], p.client)), Duration::from_secs(30)).await?;
        server.wait_listening(node.ws_addr, Duration::from_secs(30)).await?;
    }
    if n > 1 {
        let monitors: Vec<u16> = ports.iter().map(|p| p.monitor).collect();
        wait_routes(&monitors, Duration::from_secs(30)).await?;
        eprintln!("herald-bench: {n} nats-servers routed to each other");
    }
    let publisher = Publisher::connect(SocketAddr::from(([127, 0, 0, 1], ports[0].client)))
        .await
        .context("publisher connection")?;
    Ok(Running { nodes, ws_path: "/", sender: Sender::Nats(publisher), broker_pid: None, db: None, _tmp: tmp })
}

/// Wait until every server's `/routez` counts a route to each of the others.
async fn wait_routes(monitors: &[u16], within: Duration) -> Result<()> {
    let want = monitors.len() as u64 - 1;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).no_proxy().build()?;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut seen = Vec::with_capacity(monitors.len());
        for m in monitors {
            let url = format!("http://127.0.0.1:{m}/routez");
            let routes = match http.get(&url).send().await {
                Ok(r) => r.json::<serde_json::Value>().await.ok().and_then(|v| v["num_routes"].as_u64()),
                Err(_) => None,
            };
            seen.push(routes.unwrap_or(0));
        }
        if seen.iter().all(|&r| r >= want) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("nats-servers not routed after {within:?}: routes per server {seen:?}, want {want}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
        Ok(Sent { embedded_ns, send_ns, error: None, message_id: None })
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

    #[test]
    fn cluster_config_routes_to_the_others() {
        let p = |b: u16| super::Ports { client: b, ws: b + 1, route: b + 2, monitor: b + 3 };
        let all = [p(40000), p(40010), p(40020)];
        let c = super::cluster_config(1, &all);
        assert!(c.starts_with("server_name: \"bench-2\"\nlisten: \"127.0.0.1:40010\""));
        assert!(c.contains("http: \"127.0.0.1:40013\""));
        assert!(c.contains("listen: \"127.0.0.1:40012\""));
        assert!(c.contains("\"nats-route://127.0.0.1:40002\""));
        assert!(c.contains("\"nats-route://127.0.0.1:40022\""));
        assert!(!c.contains("nats-route://127.0.0.1:40012"));
    }
}
