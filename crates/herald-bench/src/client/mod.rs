//! One benchmark client: connect, log in (Herald) or subscribe (NATS), then record every
//! broadcast it receives with the kernel's and the tool's receive time.

pub mod nats;
pub mod ws;

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use herald_proto::frame::{decode_server, encode_client, ClientFrame, Login, ServerFrame};
use herald_proto::token04::{self, Mode};
use herald_proto::ws::{Message, Opcode};
use tokio::time::{sleep_until, Instant};

use crate::cli::Target;
use crate::collect::Collector;
use crate::payload;
use crate::tstamp::now_ns;
use crate::worker::Spec;
use ws::WsConn;

/// The NATS subject every client subscribes to.
pub const SUBJECT: &str = "bench";
/// Token validity: long enough for any run.
const TOKEN_TTL_S: i64 = 24 * 3600;

pub struct Session {
    ws: WsConn,
    kind: Kind,
}

enum Kind {
    Herald { heartbeat: Duration, next_id: u64 },
    Nats { parser: nats::Parser },
}

/// Source address of global client `index`: 127.0.0.2 for the first `per_source`, then .3, ...
pub fn source_addr(index: usize, per_source: usize) -> Ipv4Addr {
    let base = u32::from(Ipv4Addr::new(127, 0, 0, 2));
    Ipv4Addr::from(base + (index / per_source.max(1)) as u32)
}

/// Which of `nodes` servers global client `index` connects to: round-robin.
pub fn node_of(index: usize, nodes: usize) -> usize {
    index % nodes.max(1)
}

/// Connect and log in global client `index`.
pub async fn establish(spec: &Spec, index: usize) -> Result<Session> {
    let src = source_addr(index, spec.per_source);
    let seed = now_ns() as u64 ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let server = *spec.servers.get(node_of(index, spec.servers.len())).context("no server in the spec")?;
    let ws = WsConn::connect(src, server, &spec.path, seed).await?;
    match spec.target {
        Target::Herald => herald_login(ws, spec, index).await,
        Target::Nats => nats_subscribe(ws).await,
    }
}

async fn herald_login(mut ws: WsConn, spec: &Spec, index: usize) -> Result<Session> {
    let user_id = format!("u{index}");
    let token =
        token04::generate(spec.app_id, &user_id, &spec.secret, TOKEN_TTL_S, Mode::Cbc, now_ns() / 1_000_000_000)
            .map_err(|e| anyhow!("Token04: {e}"))?;
    let login = ClientFrame::Login(Login {
        id: 1,
        app_id: spec.app_id,
        user_id,
        token,
        sdk_version: "2.18.0".into(),
        platform: "bench".into(),
        device_id: format!("d{index}"),
        user_name: None,
        since: None,
    });
    ws.send(Opcode::Text, &encode_client(&login)).await?;
    loop {
        while let Some(message) = ws.next_message()? {
            match message {
                Message::Text(text) => match decode_server(&text) {
                    Ok(ServerFrame::LoginOk { heartbeat_ms, .. }) => {
                        let heartbeat = Duration::from_millis(heartbeat_ms.clamp(1_000, 60_000));
                        return Ok(Session { ws, kind: Kind::Herald { heartbeat, next_id: 2 } });
                    }
                    Ok(ServerFrame::Error { code, message, .. }) => {
                        bail!("login refused: {code} {message}")
                    }
                    Ok(_) => {}
                    Err(e) => bail!("bad frame at login: {e}"),
                },
                Message::Ping(p) => ws.send(Opcode::Pong, &p).await?,
                Message::Close(code, reason) => bail!("closed at login: {code:?} {reason}"),
                _ => {}
            }
        }
        ws.read_some().await.context("waiting for login_ok")?;
    }
}

async fn nats_subscribe(mut ws: WsConn) -> Result<Session> {
    let mut parser = nats::Parser::default();
    let mut sent = false;
    loop {
        while let Some(message) = ws.next_message()? {
            match message {
                Message::Text(data) | Message::Binary(data) => parser.push(&data)?,
                Message::Ping(p) => ws.send(Opcode::Pong, &p).await?,
                Message::Close(code, reason) => bail!("closed at subscribe: {code:?} {reason}"),
                Message::Pong(_) => {}
            }
        }
        while let Some(op) = parser.next_op()? {
            match op {
                nats::Op::Info if !sent => {
                    let hello = format!(
                        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"protocol\":1}}\r\nSUB {SUBJECT} 1\r\nPING\r\n"
                    );
                    ws.send(Opcode::Binary, hello.as_bytes()).await?;
                    sent = true;
                }
                nats::Op::Pong if sent => return Ok(Session { ws, kind: Kind::Nats { parser } }),
                nats::Op::Ping => ws.send(Opcode::Binary, b"PONG\r\n").await?,
                nats::Op::Err(e) => bail!("nats: {e}"),
                _ => {}
            }
        }
        ws.read_some().await.context("waiting for INFO/PONG")?;
    }
}

impl Session {
    /// Receive until the connection ends; every broadcast goes to the collector as client
    /// `local` (its index within this worker). Returns why the session ended.
    pub async fn run(mut self, local: usize, collector: &Rc<RefCell<Collector>>) -> String {
        match self.receive(local, collector).await {
            Ok(reason) => reason,
            Err(e) => format!("{e:#}"),
        }
    }

    async fn receive(&mut self, local: usize, collector: &Rc<RefCell<Collector>>) -> Result<String> {
        // Herald wants a frame every heartbeat; spread the first ping over one period so all
        // clients do not ping at once.
        let heartbeat = match self.kind {
            Kind::Herald { heartbeat, .. } => Some(heartbeat),
            Kind::Nats { .. } => None,
        };
        let period = heartbeat.unwrap_or(Duration::from_secs(3600));
        let phase = self.ws.next_random() % (period.as_millis() as u64).max(1);
        let mut next_ping = Instant::now() + Duration::from_millis(phase);
        // One timer entry for the session's life, reset after each ping: a fresh sleep per
        // loop turn would insert and remove a timer-wheel entry for every message received.
        let ping_timer = sleep_until(next_ping);
        tokio::pin!(ping_timer);
        loop {
            tokio::select! {
                read = self.ws.read_some() => {
                    let kernel = read.context("read")?;
                    if let Some(reason) = self.drain(local, kernel, collector).await? {
                        return Ok(reason);
                    }
                }
                _ = &mut ping_timer, if heartbeat.is_some() => {
                    self.ping().await?;
                    next_ping += period;
                    ping_timer.as_mut().reset(next_ping);
                }
            }
        }
    }

    async fn ping(&mut self) -> Result<()> {
        if let Kind::Herald { next_id, .. } = &mut self.kind {
            let frame = encode_client(&ClientFrame::Ping { id: *next_id });
            *next_id += 1;
            self.ws.send(Opcode::Text, &frame).await?;
        }
        Ok(())
    }

    /// Handle every complete message in the buffer. `Some(reason)` when the server closed.
    async fn drain(
        &mut self,
        local: usize,
        kernel: Option<i64>,
        collector: &Rc<RefCell<Collector>>,
    ) -> Result<Option<String>> {
        let mut pongs = Vec::new();
        let mut nats_pong = false;
        let mut closed = None;
        while let Some(message) = self.ws.next_message()? {
            match (message, &mut self.kind) {
                (Message::Text(text), Kind::Herald { .. }) => {
                    let tool = now_ns();
                    if let Some((index, sent)) = payload::find_in_bcast(&text) {
                        collector.borrow_mut().record(local, index, sent, tool, kernel);
                    } else if let Ok(ServerFrame::Error { code, message, .. }) = decode_server(&text) {
                        closed = Some(format!("error frame {code}: {message}"));
                    }
                }
                (Message::Text(data) | Message::Binary(data), Kind::Nats { parser }) => {
                    parser.push(&data)?;
                    while let Some(op) = parser.next_op()? {
                        match op {
                            nats::Op::Msg(body) => {
                                let tool = now_ns();
                                if let Some((index, sent)) = payload::parse(&body) {
                                    collector.borrow_mut().record(local, index, sent, tool, kernel);
                                }
                            }
                            nats::Op::Ping => nats_pong = true,
                            nats::Op::Err(e) => closed = Some(format!("nats: {e}")),
                            _ => {}
                        }
                    }
                }
                (Message::Ping(p), _) => pongs.push(p),
                (Message::Close(code, reason), _) => {
                    return Ok(Some(format!("closed by server: {code:?} {reason}")));
                }
                _ => {}
            }
        }
        for p in pongs {
            self.ws.send(Opcode::Pong, &p).await?;
        }
        if nats_pong {
            self.ws.send(Opcode::Binary, b"PONG\r\n").await?;
        }
        Ok(closed)
    }
}
