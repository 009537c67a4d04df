//! One client of `storm` and `soak`: logs in, records every broadcast in the worker's ledger,
//! drops its connection when told to (RST, no close frame), and comes back the way the SDKs do —
//! full-jitter backoff, the next server on every attempt, `since` = the newest `messageID` it has.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use herald_proto::frame::{decode_server, encode_client, ClientFrame, Login, ServerFrame};
use herald_proto::token04::{self, Mode};
use herald_proto::ws::{Message, Opcode};
use tokio::sync::{Notify, Semaphore};
use tokio::time::{sleep, sleep_until, timeout, Instant};

use super::backoff::Backoff;
use super::ledger::Ledger;
use super::worker::Spec;
use crate::client::source_addr;
use crate::client::ws::WsConn;
use crate::payload;
use crate::tstamp::now_ns;

/// Token validity: long enough for any run.
const TOKEN_TTL_S: i64 = 24 * 3600;
/// Longest one first-login attempt may take (as `fanout`'s clients).
const FIRST_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

pub fn now_ms() -> i64 {
    now_ns() / 1_000_000
}

/// What the clients of one worker share.
pub struct Ctx {
    pub spec: Spec,
    pub ledger: RefCell<Ledger>,
    /// Per client: woken when a drop is asked for (the ledger says whether one was).
    pub wake: Vec<Notify>,
    /// First logins in flight.
    permits: Semaphore,
    /// Signalled when every client has tried its first login.
    pub all_tried: Notify,
    rng: Cell<u64>,
}

impl Ctx {
    pub fn new(spec: Spec) -> Ctx {
        let ledger = Ledger::new(spec.count, spec.first, spec.servers.len(), now_ms());
        Ctx {
            wake: (0..spec.count).map(|_| Notify::new()).collect(),
            permits: Semaphore::new(spec.concurrency.max(1)),
            all_tried: Notify::new(),
            rng: Cell::new(now_ns() as u64 ^ (spec.worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            ledger: RefCell::new(ledger),
            spec,
        }
    }

    /// xorshift64*: jitter and choices need to vary, not to be secret.
    pub fn random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Why a login did not happen.
enum Refusal {
    /// Transient (connect failed, upgrade refused, closed with 4000–4499 or without a code):
    /// try again after the backoff.
    Retry(anyhow::Error),
    /// Closed with 1000 or 4500–4999: the SDK stops and reports it.
    Terminal(String),
}

/// Why a logged-in connection ended.
enum End {
    /// The tool dropped it.
    Dropped,
    Lost(String),
    Terminal(String),
}

/// A logged-in connection.
struct Conn {
    ws: WsConn,
    heartbeat: Duration,
    next_id: u64,
}

/// The whole life of client `local` of this worker.
pub async fn run(local: usize, ctx: Rc<Ctx>) {
    let global = ctx.ledger.borrow().global(local);
    let servers = ctx.spec.servers.len().max(1);
    let mut node = global % servers;
    let Some(mut conn) = first_login(local, global, node, &ctx).await else {
        return;
    };
    let mut backoff = Backoff::new(ctx.spec.reconnect);
    loop {
        match conn.serve(local, &ctx).await {
            End::Dropped => ctx.ledger.borrow_mut().lost(local, now_ms()),
            End::Lost(reason) => {
                let mut ledger = ctx.ledger.borrow_mut();
                ledger.unplanned_loss(format!("client u{global}: {reason}"));
                ledger.lost(local, now_ms());
            }
            End::Terminal(reason) => return ctx.ledger.borrow_mut().gave_up(local, now_ms(), reason),
        }
        conn = loop {
            sleep(backoff.next_delay(ctx.random())).await;
            node = (node + 1) % servers;
            let since = ctx.ledger.borrow().newest(local);
            ctx.ledger.borrow_mut().attempt();
            let attempt = timeout(ctx.spec.reconnect.login_timeout(), login(&ctx, global, node, since)).await;
            match attempt {
                Ok(Ok((conn, recovered))) => {
                    backoff.reset();
                    ctx.ledger.borrow_mut().relogin(local, now_ms(), node, since.is_some(), recovered);
                    break conn;
                }
                Ok(Err(Refusal::Terminal(reason))) => {
                    return ctx.ledger.borrow_mut().gave_up(local, now_ms(), reason);
                }
                Ok(Err(Refusal::Retry(e))) => {
                    ctx.ledger.borrow_mut().attempt_failed(format!("client u{global} to node {}: {e:#}", node + 1))
                }
                Err(_) => ctx.ledger.borrow_mut().attempt_failed(format!(
                    "client u{global} to node {}: no login within {:?}",
                    node + 1,
                    ctx.spec.reconnect.login_timeout()
                )),
            }
        };
    }
}

/// The first login, as `fanout` does it: a bounded number in flight, a few tries.
async fn first_login(local: usize, global: usize, node: usize, ctx: &Ctx) -> Option<Conn> {
    let permit = ctx.permits.acquire().await.ok()?;
    let mut last_error = String::new();
    for attempt in 0..ctx.spec.attempts.max(1) {
        if attempt > 0 {
            sleep(Duration::from_millis(250 << attempt.min(4))).await;
        }
        match timeout(FIRST_ATTEMPT_TIMEOUT, login(ctx, global, node, None)).await {
            Ok(Ok((conn, _))) => {
                drop(permit);
                let mut ledger = ctx.ledger.borrow_mut();
                ledger.first_login(local, now_ms());
                if ledger.all_tried() {
                    ctx.all_tried.notify_one();
                }
                return Some(conn);
            }
            Ok(Err(Refusal::Retry(e))) => last_error = format!("client u{global}: {e:#}"),
            Ok(Err(Refusal::Terminal(e))) => last_error = format!("client u{global}: {e}"),
            Err(_) => last_error = format!("client u{global}: no login within {FIRST_ATTEMPT_TIMEOUT:?}"),
        }
    }
    let mut ledger = ctx.ledger.borrow_mut();
    ledger.first_login_failed(local, last_error);
    if ledger.all_tried() {
        ctx.all_tried.notify_one();
    }
    None
}

/// Connect to server `node` and log in as `u<global>`, with `since` when given. Returns the
/// connection and `login_ok.recovered`. Frames after `login_ok` (the replay) stay buffered.
async fn login(ctx: &Ctx, global: usize, node: usize, since: Option<u64>) -> Result<(Conn, Option<bool>), Refusal> {
    let spec = &ctx.spec;
    let server = *spec.servers.get(node).ok_or_else(|| Refusal::Terminal(format!("no server {node}")))?;
    let mut ws = WsConn::connect(source_addr(global, spec.per_source), server, &spec.path, ctx.random())
        .await
        .map_err(Refusal::Retry)?;
    let user_id = format!("u{global}");
    let token =
        token04::generate(spec.app_id, &user_id, &spec.secret, TOKEN_TTL_S, Mode::Cbc, now_ns() / 1_000_000_000)
            .map_err(|e| Refusal::Terminal(format!("Token04: {e}")))?;
    let frame = ClientFrame::Login(Login {
        id: 1,
        app_id: spec.app_id,
        user_id,
        token,
        sdk_version: "2.18.0".into(),
        platform: "bench".into(),
        device_id: format!("d{global}"),
        user_name: None,
        since: since.map(|id| id.to_string()),
    });
    let retry = |e: std::io::Error, what: &str| Refusal::Retry(anyhow!(e).context(what.to_owned()));
    ws.send(Opcode::Text, &encode_client(&frame)).await.map_err(|e| retry(e, "sending login"))?;
    let mut refused = None;
    loop {
        while let Some(message) = ws.next_message().map_err(Refusal::Retry)? {
            match message {
                Message::Text(text) => match decode_server(&text) {
                    Ok(ServerFrame::LoginOk { heartbeat_ms, recovered, .. }) => {
                        let heartbeat = Duration::from_millis(heartbeat_ms.clamp(1_000, 60_000));
                        return Ok((Conn { ws, heartbeat, next_id: 2 }, recovered));
                    }
                    Ok(ServerFrame::Error { code, message, .. }) => {
                        refused = Some(format!("login refused: {code} {message}"))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(Refusal::Retry(anyhow!("bad frame at login: {e}"))),
                },
                Message::Ping(p) => ws.send(Opcode::Pong, &p).await.map_err(|e| retry(e, "pong"))?,
                Message::Close(code, reason) => {
                    let why = format!("{} (closed {code:?} {reason})", refused.unwrap_or_default());
                    return Err(if code.is_some_and(terminal) {
                        Refusal::Terminal(why)
                    } else {
                        Refusal::Retry(anyhow!(why))
                    });
                }
                _ => {}
            }
        }
        if let Err(e) = ws.read_some().await {
            let what = refused.take().unwrap_or_else(|| "waiting for login_ok".to_owned());
            return Err(retry(e, &what));
        }
    }
}

/// Close codes after which the SDKs stay disconnected.
fn terminal(code: u16) -> bool {
    code == 1000 || (4500..5000).contains(&code)
}

impl Conn {
    /// Receive until the connection ends or the tool drops it.
    async fn serve(mut self, local: usize, ctx: &Ctx) -> End {
        let period = self.heartbeat;
        let phase = ctx.random() % (period.as_millis() as u64).max(1);
        let mut next_ping = Instant::now() + Duration::from_millis(phase);
        let ping_timer = sleep_until(next_ping);
        tokio::pin!(ping_timer);
        loop {
            // Whatever is buffered first: the replay may have come in one read with login_ok.
            match self.drain(local, ctx).await {
                Ok(None) => {}
                Ok(Some(end)) => return end,
                Err(e) => return End::Lost(format!("{e:#}")),
            }
            tokio::select! {
                biased;
                () = ctx.wake[local].notified() => {
                    if ctx.ledger.borrow_mut().take_drop(local) {
                        self.ws.abort();
                        return End::Dropped;
                    }
                }
                read = self.ws.read_some() => {
                    if let Err(e) = read {
                        return End::Lost(format!("read: {e}"));
                    }
                }
                () = &mut ping_timer => {
                    let frame = encode_client(&ClientFrame::Ping { id: self.next_id });
                    self.next_id += 1;
                    if let Err(e) = self.ws.send(Opcode::Text, &frame).await {
                        return End::Lost(format!("ping: {e}"));
                    }
                    next_ping += period;
                    ping_timer.as_mut().reset(next_ping);
                }
            }
        }
    }

    /// Handle every complete message in the buffer; `Some` when the server closed.
    async fn drain(&mut self, local: usize, ctx: &Ctx) -> Result<Option<End>> {
        let mut pongs = Vec::new();
        while let Some(message) = self.ws.next_message()? {
            match message {
                Message::Text(text) => {
                    if let Some((index, _)) = payload::find_in_bcast(&text) {
                        let id = payload::message_id_in_bcast(&text).unwrap_or(0);
                        ctx.ledger.borrow_mut().record(local, index, id, now_ms());
                    }
                }
                Message::Ping(p) => pongs.push(p),
                Message::Close(code, reason) => {
                    let why = format!("closed by server: {code:?} {reason}");
                    return Ok(Some(if code.is_some_and(terminal) { End::Terminal(why) } else { End::Lost(why) }));
                }
                _ => {}
            }
        }
        for p in pongs {
            self.ws.send(Opcode::Pong, &p).await.context("pong")?;
        }
        Ok(None)
    }
}
