//! Herald: start `herald serve` (or attach), register the sender, broadcast through the signed
//! `SendMessageToAllUsers` API.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use herald_proto::signature::signed_query;
use serde_json::{json, Value};
use tokio::time::timeout;

use super::{free_ports, pg, Node, Running, Sender, Sent, ServerProc, TmpDir};
use crate::cli::CommonArgs;
use crate::tstamp::now_ns;
use crate::{payload, procfs};

/// Connections each node's PostgreSQL pool may open (herald-store's `MAX_CONNECTIONS`).
const STORE_POOL: usize = 16;
/// Connections of the PostgreSQL server left free for others by default (`--pg-conn-limit`).
const PG_HEADROOM: i64 = 20;
/// Largest Herald node id (`[cluster] node_id` is 1..=1023).
const MAX_NODE_ID: usize = 1023;

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

/// `[cluster]` of one node.
struct ClusterPart<'a> {
    node_id: usize,
    nats_url: &'a str,
    subject_prefix: &'a str,
}

/// Where one node listens: the API and gateway, and the admin listener (`/metrics`).
#[derive(Clone, Copy)]
struct Ports {
    public: u16,
    admin: u16,
}

fn config(ports: Ports, data_dir: &Path, store_url: &str, cluster: Option<&ClusterPart>, args: &CommonArgs) -> String {
    let cluster = cluster.map_or_else(String::new, |c| {
        format!(
            "\n[cluster]\nnode_id = {}\nnats_url = \"{}\"\nsubject_prefix = \"{}\"\n",
            c.node_id, c.nats_url, c.subject_prefix
        )
    });
    format!(
        r#"listen = "127.0.0.1:{public}"
data_dir = "{dir}"
# Per-connection logging would be part of the measured cost; nats-server logs none by default.
log = "warn"

[store]
url = "{store_url}"

# Each node's own port: `storm` and `soak` read the store-call counts from /metrics.
[admin]
listen = "127.0.0.1:{admin}"
{cluster}
[[apps]]
app_id = {app_id}
server_secret = "{secret}"

[apps.limits]
broadcast_per_second = 1000
broadcast_per_day = 1000000
message_max_bytes = 32768
"#,
        public = ports.public,
        admin = ports.admin,
        dir = data_dir.display(),
        app_id = args.app_id,
        secret = args.secret,
    )
}

/// The address of `nats://[user[:pass]@]host[:port]`, which must be on 127.0.0.0/8.
pub fn broker_addr(url: &str) -> Result<SocketAddrV4> {
    let rest = url.strip_prefix("nats://").with_context(|| format!("--nats-url must start with nats://, got {url}"))?;
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h).trim_end_matches('/');
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().with_context(|| format!("bad port in {url}"))?),
        None => (host_port, 4222),
    };
    let ip = if host == "localhost" {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse::<Ipv4Addr>().with_context(|| format!("--nats-url host must be an IPv4 address, got {host}"))?
    };
    if !ip.is_loopback() {
        bail!("--nats-url must be on 127.0.0.0/8, got {ip}");
    }
    Ok(SocketAddrV4::new(ip, port))
}

pub async fn start(args: &CommonArgs, tmp: TmpDir) -> Result<Running> {
    let (server, addr, admin_addr) = match args.attach {
        // Clients bind to 127.0.0.x source addresses, which only reach loopback anyway.
        Some(addr) if !matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback()) => {
            bail!("--attach must be an address in 127.0.0.0/8, got {addr}")
        }
        Some(addr) => (None, addr, None),
        None => {
            let bin = herald_bin(args)?;
            let free = free_ports(2)?;
            let ports = Ports { public: free[0], admin: free[1] };
            let conf = tmp.path.join("herald.toml");
            let store = format!("sqlite://{}", tmp.path.join("herald.db").display());
            std::fs::write(&conf, config(ports, &tmp.path, &store, None, args))?;
            let conf = conf.to_string_lossy().into_owned();
            let mut server =
                ServerProc::spawn(&bin, &["serve", "--config", &conf], tmp.path.join("herald.log"), args.node_threads)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], ports.public));
            server.wait_listening(addr, Duration::from_secs(30)).await?;
            (Some(server), addr, Some(SocketAddr::from(([127, 0, 0, 1], ports.admin))))
        }
    };
    let pid = server.as_ref().and_then(ServerProc::pid).or(args.server_pid);
    let mut api = Api::new(addr, args.app_id, args.secret.clone())?;
    api.register_sender().await.context("registering the sender")?;
    Ok(Running {
        nodes: vec![Node { server, pid, ws_addr: addr, admin_addr }],
        ws_path: "/ws",
        sender: Sender::Herald(api),
        broker_pid: None,
        db: None,
        _tmp: tmp,
    })
}

/// `args.nodes` Herald nodes in cluster mode: a fresh PostgreSQL database, the NATS at
/// `--nats-url` with a subject prefix of their own, one port and node id each.
pub async fn start_cluster(args: &CommonArgs, tmp: TmpDir) -> Result<Running> {
    if args.attach.is_some() {
        bail!("--attach works with --nodes 1 only");
    }
    if args.nodes > MAX_NODE_ID {
        bail!("at most {MAX_NODE_ID} Herald nodes (node ids are 1..={MAX_NODE_ID})");
    }
    let bin = herald_bin(args)?;
    let broker = broker_addr(&args.nats_url)?;
    timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(broker))
        .await
        .map_err(|_| anyhow!("NATS at {broker} did not answer within 5 s"))?
        .with_context(|| format!("NATS at {broker} (--nats-url) is not reachable"))?;
    let broker_pid = args.broker_pid.or_else(|| procfs::listener_pid(*broker.ip(), broker.port()));
    match broker_pid {
        Some(pid) => eprintln!("herald-bench: NATS at {broker} is PID {pid}; its CPU counts as Herald's"),
        None => eprintln!("herald-bench: warning: no PID for NATS at {broker}; its CPU is not counted (--broker-pid)"),
    }
    let want = (STORE_POOL * args.nodes) as u32;
    let conn_limit = match args.pg_conn_limit {
        Some(0) => None,
        Some(limit) => Some(limit),
        None => {
            let free =
                pg::free_connections(&args.pg_admin_url).await.context("asking PostgreSQL for free connections")?;
            let room = free - PG_HEADROOM;
            (room < i64::from(want)).then(|| room.max(2 * args.nodes as i64) as u32)
        }
    };
    let db = pg::Database::create(&args.pg_admin_url, conn_limit).await?;
    eprintln!(
        "herald-bench: database and role {} (connection limit {}, the nodes' pools may want {want}); subject prefix {0}",
        db.name,
        conn_limit.map_or("none".into(), |l| l.to_string()),
    );
    let free = free_ports(2 * args.nodes)?;
    let mut nodes: Vec<Node> = Vec::with_capacity(args.nodes);
    for (i, pair) in free.chunks(2).enumerate() {
        let ports = Ports { public: pair[0], admin: pair[1] };
        let node_id = i + 1;
        let dir = tmp.path.join(format!("node{node_id}"));
        std::fs::create_dir_all(&dir)?;
        let part = ClusterPart { node_id, nats_url: &args.nats_url, subject_prefix: &db.name };
        let conf = dir.join("herald.toml");
        std::fs::write(&conf, config(ports, &dir, &db.url, Some(&part), args))?;
        let conf = conf.to_string_lossy().into_owned();
        let server = ServerProc::spawn(&bin, &["serve", "--config", &conf], dir.join("herald.log"), args.node_threads)?;
        let pid = server.pid();
        let ws_addr = SocketAddr::from(([127, 0, 0, 1], ports.public));
        let admin_addr = Some(SocketAddr::from(([127, 0, 0, 1], ports.admin)));
        nodes.push(Node { server: Some(server), pid, ws_addr, admin_addr });
        if i == 0 {
            // Node 1 runs the migrations alone; the others find the schema in place.
            wait_node(&mut nodes[0]).await?;
        }
    }
    for node in nodes.iter_mut().skip(1) {
        wait_node(node).await?;
    }
    let mut api = Api::new(nodes[0].ws_addr, args.app_id, args.secret.clone())?;
    api.register_sender().await.context("registering the sender")?;
    Ok(Running { nodes, ws_path: "/ws", sender: Sender::Herald(api), broker_pid, db: Some(db), _tmp: tmp })
}

async fn wait_node(node: &mut Node) -> Result<()> {
    let addr = node.ws_addr;
    match node.server.as_mut() {
        Some(server) => server.wait_listening(addr, Duration::from_secs(60)).await,
        None => Ok(()),
    }
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
        format!("http://{}/?{}", self.addr, signed_query(action, self.app_id, &self.secret, &nonce, ts, &[]))
    }

    /// POST `body` to `action`; returns the time just before the request went out and the answer.
    pub async fn call(&mut self, action: &str, body: Vec<u8>) -> Result<(i64, Value)> {
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
        let accepted = answer["Code"].as_i64() == Some(0);
        let message_id = answer["RequestId"].as_str().and_then(|id| id.parse().ok()).filter(|_| accepted);
        let error = (!accepted).then(|| format!("{answer}"));
        Ok(Sent { embedded_ns, send_ns, error, message_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn broker_address() {
        assert_eq!(broker_addr("nats://127.0.0.1:4222").unwrap(), "127.0.0.1:4222".parse().unwrap());
        assert_eq!(broker_addr("nats://u:p@localhost").unwrap(), "127.0.0.1:4222".parse().unwrap());
        assert!(broker_addr("nats://10.0.0.1:4222").is_err());
        assert!(broker_addr("127.0.0.1:4222").is_err());
    }

    #[test]
    fn cluster_config() {
        let cli = crate::cli::Cli::parse_from(["herald-bench", "fanout"]);
        let crate::cli::Command::Fanout(f) = cli.command else { unreachable!() };
        let part = ClusterPart { node_id: 3, nats_url: "nats://127.0.0.1:4222", subject_prefix: "hb_1" };
        let ports = Ports { public: 4000, admin: 4001 };
        let c = config(ports, Path::new("/tmp/x"), "postgres://h/db", Some(&part), &f.common);
        assert!(c.contains("listen = \"127.0.0.1:4000\"\n"));
        assert!(c.contains("[admin]\nlisten = \"127.0.0.1:4001\"\n"));
        assert!(c.contains("[store]\nurl = \"postgres://h/db\"\n"));
        assert!(c.contains("[cluster]\nnode_id = 3\nnats_url = \"nats://127.0.0.1:4222\"\nsubject_prefix = \"hb_1\"\n"));
        assert!(c.find("[cluster]") < c.find("[[apps]]"));
        let single = config(ports, Path::new("/tmp/x"), "sqlite:///tmp/x/h.db", None, &f.common);
        assert!(!single.contains("[cluster]"));
    }
}
