//! `herald-bench floor`: what one small TCP write to each of N loopback sockets costs the writing
//! process on this machine, with nothing else in the way: no WebSocket, no registry, no runtime.
//!
//! This is the lower bound of any server that delivers a broadcast with one write per connection,
//! as Herald and nats-server both do. On loopback the kernel runs the receiving side's TCP
//! processing (and the wake-up of the reader) inside the sender's `send`, so the floor includes
//! it, exactly as `server_cpu_us_per_delivery` of `fanout` does.
//!
//! The sender is this process (one thread, non-blocking accepts and writes); the readers
//! are a child process (`floor-recv`), one thread, one task per socket, with `SO_TIMESTAMPNS` set
//! like the `fanout` clients, spread over source addresses 127.0.0.2, 127.0.0.3, ...

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::{client, tstamp};

/// How long the readers may take to connect, and to receive everything once told how much:
/// past it they give up (and so does the sender) rather than hang the run.
const READERS_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One `send(2)` per socket.
    Send,
    /// The same sends as io_uring submissions, up to `--batch` per `io_uring_enter`.
    Uring,
}

#[derive(Debug, Clone, Args)]
pub struct FloorArgs {
    /// Number of loopback TCP connections written to.
    #[arg(long, default_value_t = 10_000)]
    pub conns: usize,
    /// Rounds (one write to every connection each).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Time between rounds, so the readers go idle as between broadcasts.
    #[arg(long, default_value_t = 200)]
    pub interval_ms: u64,
    /// Bytes per write (a Herald broadcast frame of a 64-byte text is about 300).
    #[arg(long, default_value_t = 300)]
    pub bytes: usize,
    #[arg(long, value_enum, default_value = "send")]
    pub mode: Mode,
    /// io_uring submissions per `io_uring_enter` (mode uring).
    #[arg(long, default_value_t = 1024)]
    pub batch: u32,
    /// Readers per source address.
    #[arg(long, default_value_t = 10_000)]
    pub per_source: usize,
    /// Print only the JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct FloorRecvArgs {
    #[arg(long)]
    pub port: u16,
    #[arg(long)]
    pub conns: usize,
    #[arg(long)]
    pub per_source: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    target: &'static str,
    mode: Mode,
    conns: usize,
    rounds: usize,
    bytes: usize,
    /// Sender CPU (user + system, getrusage) per write: median and lowest over rounds.
    cpu_us_per_send: f64,
    cpu_us_per_send_min: f64,
    /// Wall time of a round divided by the connections (median).
    wall_us_per_send: f64,
    load_before: Option<[f64; 3]>,
}

pub fn main(args: &FloorArgs) -> Result<()> {
    ensure!(args.conns > 0 && args.rounds > 0 && args.bytes > 0, "--conns, --rounds and --bytes must be positive");
    ensure!(args.batch > 0 && args.per_source > 0, "--batch and --per-source must be positive");
    // Each side holds one descriptor per connection, plus a few.
    let limit = crate::procfs::nofile_limit() as usize;
    ensure!(
        args.conns + 64 <= limit,
        "--conns {} needs more descriptors than this process may open ({limit}; see ulimit -n)",
        args.conns
    );
    let load_before = crate::procfs::loadavg();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding the sender's listener")?;
    let port = listener.local_addr()?.port();
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut readers = Command::new(exe)
        .args(["floor-recv", "--port", &port.to_string(), "--conns", &args.conns.to_string()])
        .args(["--per-source", &args.per_source.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning the readers")?;
    let result = send_rounds(args, &listener, &mut readers);
    let _ = readers.kill();
    let _ = readers.wait();
    let (cpu, wall) = result?;
    let report = Report {
        target: "floor",
        mode: args.mode,
        conns: args.conns,
        rounds: args.rounds,
        bytes: args.bytes,
        cpu_us_per_send: median(&cpu),
        cpu_us_per_send_min: cpu.iter().copied().fold(f64::INFINITY, f64::min),
        wall_us_per_send: median(&wall),
        load_before,
    };
    if !args.json {
        println!(
            "floor ({:?}): {} conns x {} rounds of {} B: {:.2} us CPU per send (median; lowest {:.2}), {:.2} us wall",
            args.mode,
            args.conns,
            args.rounds,
            args.bytes,
            report.cpu_us_per_send,
            report.cpu_us_per_send_min,
            report.wall_us_per_send
        );
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Accepts every reader, then writes `rounds` times to all; CPU and wall per send of each round.
fn send_rounds(
    args: &FloorArgs,
    listener: &TcpListener,
    readers: &mut std::process::Child,
) -> Result<(Vec<f64>, Vec<f64>)> {
    // Non-blocking accepts, so readers that died or stalled end the run instead of hanging it.
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + READERS_TIMEOUT;
    let mut sockets = Vec::with_capacity(args.conns);
    while sockets.len() < args.conns {
        match listener.accept() {
            Ok((socket, _)) => {
                socket.set_nodelay(true)?;
                socket.set_nonblocking(true)?;
                sockets.push(socket);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(status) = readers.try_wait()? {
                    bail!("the readers exited ({status}) after {} of {} connections", sockets.len(), args.conns);
                }
                if Instant::now() > deadline {
                    bail!("only {} of {} readers connected within {READERS_TIMEOUT:?}", sockets.len(), args.conns);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e).context("accepting a reader"),
        }
    }
    // The readers say "ready" once every connect has returned: none is still in its handshake.
    let mut line = String::new();
    BufReader::new(readers.stdout.as_mut().context("readers' stdout")?).read_line(&mut line)?;
    ensure!(line.trim() == "ready", "the readers did not get ready: {line:?}");
    let fds: Vec<RawFd> = sockets.iter().map(|s| s.as_raw_fd()).collect();
    let frame = vec![b'x'; args.bytes];
    let mut ring = match args.mode {
        Mode::Uring => Some(io_uring::IoUring::new(args.batch.next_power_of_two()).context("io_uring_setup")?),
        Mode::Send => None,
    };
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        std::thread::sleep(Duration::from_millis(args.interval_ms));
        let (cpu0, t0) = (process_cpu_us(), Instant::now());
        match ring.as_mut() {
            None => send_all(&fds, &frame),
            Some(ring) => send_all_uring(ring, &fds, &frame, args.batch as usize),
        }
        .with_context(|| format!("round {round}"))?;
        let (elapsed, cpu1) = (t0.elapsed(), process_cpu_us());
        cpu.push((cpu1 - cpu0) / args.conns as f64);
        wall.push(elapsed.as_secs_f64() * 1e6 / args.conns as f64);
    }
    // Tell the readers how much to expect, then wait for them to have it all: nothing was lost.
    let stdin = readers.stdin.as_mut().context("readers' stdin")?;
    writeln!(stdin, "{}", args.rounds * args.bytes)?;
    line.clear();
    BufReader::new(readers.stdout.as_mut().context("readers' stdout")?).read_line(&mut line)?;
    ensure!(line.trim() == "done", "the readers did not receive everything: {line:?}");
    Ok((cpu, wall))
}

fn send_all(fds: &[RawFd], frame: &[u8]) -> Result<()> {
    for &fd in fds {
        // SAFETY: fd is an open socket we own; frame is a live buffer of frame.len() bytes.
        let n = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), libc::MSG_DONTWAIT) };
        if n != frame.len() as isize {
            bail!("send on fd {fd} wrote {n} of {} bytes: {}", frame.len(), std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn send_all_uring(ring: &mut io_uring::IoUring, fds: &[RawFd], frame: &[u8], batch: usize) -> Result<()> {
    for chunk in fds.chunks(batch) {
        for &fd in chunk {
            let sqe = io_uring::opcode::Send::new(io_uring::types::Fd(fd), frame.as_ptr(), frame.len() as u32)
                .flags(libc::MSG_DONTWAIT)
                .build();
            // SAFETY: frame outlives the submission: we wait for every completion below.
            unsafe { ring.submission().push(&sqe) }.context("submission queue full")?;
        }
        ring.submit_and_wait(chunk.len()).context("io_uring_enter")?;
        for cqe in ring.completion() {
            if cqe.result() != frame.len() as i32 {
                bail!("io_uring send wrote {} of {} bytes", cqe.result(), frame.len());
            }
        }
    }
    Ok(())
}

/// User + system CPU of this process, in microseconds.
fn process_cpu_us() -> f64 {
    // SAFETY: getrusage fills the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The readers' process: connects, says "ready", reads until told (on stdin) how many bytes each
/// socket gets, says "done" once every socket has them.
pub fn recv_main(args: &FloorRecvArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
        let (expect_tx, expect_rx) = tokio::sync::watch::channel(usize::MAX);
        let mut readers = tokio::task::JoinSet::new();
        for i in 0..args.conns {
            let socket = client::ws::bound_socket(client::source_addr(i, args.per_source))?;
            let stream = socket.connect(target).await.with_context(|| format!("connecting reader {i}"))?;
            tstamp::enable(stream.as_raw_fd())?;
            readers.spawn(read_until(stream, expect_rx.clone()));
        }
        println!("ready");
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await??;
        let expected: usize = line.trim().parse().with_context(|| format!("expected a byte count, got {line:?}"))?;
        let _ = expect_tx.send(expected);
        let all_read = async {
            while let Some(r) = readers.join_next().await {
                r??;
            }
            anyhow::Ok(())
        };
        tokio::time::timeout(READERS_TIMEOUT, all_read)
            .await
            .with_context(|| format!("not every reader received {expected} bytes within {READERS_TIMEOUT:?}"))??;
        println!("done");
        Ok(())
    })
}

/// Reads (discarding, timestamps and all) until the socket has delivered the expected bytes.
async fn read_until(stream: tokio::net::TcpStream, mut expected: tokio::sync::watch::Receiver<usize>) -> Result<()> {
    let mut buf = [0u8; 4096];
    let mut got = 0usize;
    loop {
        if got >= *expected.borrow() {
            return Ok(());
        }
        tokio::select! {
            ready = stream.readable() => {
                ready?;
                // try_io clears the readiness on WouldBlock, so readable() waits again.
                match stream.try_io(tokio::io::Interest::READABLE, || tstamp::recv(stream.as_raw_fd(), &mut buf)) {
                    Ok((0, _)) => bail!("the sender closed after {got} bytes"),
                    Ok((n, _)) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
            }
            changed = expected.changed() => changed?,
        }
    }
}
