//! A tiny WebSocket client over a raw tokio `TcpStream`: bind to a source address, connect, the
//! RFC 6455 upgrade by hand, masked frames out, frames in through `herald_proto::ws::Decoder`,
//! and every read through `recvmsg` so it carries the kernel's receive timestamp.

use std::cell::RefCell;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use anyhow::{bail, Context, Result};
use base64::Engine;
use bytes::{Buf, BytesMut};
use herald_proto::ws::{accept_key, encode_frame, Decoder, Message, Opcode, Role};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};

use crate::tstamp;

/// Largest message a client accepts; broadcasts are at most 32 KB of text.
const MAX_MESSAGE: usize = 1 << 20;
/// Largest upgrade answer we wait for.
const MAX_HEADER: usize = 16 * 1024;
/// `IP_BIND_ADDRESS_NO_PORT`: let connect() pick the port, so ports are per 4-tuple.
const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;

thread_local! {
    /// One read buffer per (single-threaded) worker: sockets read into it, then only the bytes
    /// received are copied to the connection, so an idle client holds no big buffer.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

pub struct WsConn {
    stream: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
    out: Vec<u8>,
    rng: u64,
}

impl WsConn {
    /// Connect from `src` to `dst` and upgrade `GET path` to a WebSocket.
    pub async fn connect(src: Ipv4Addr, dst: SocketAddr, path: &str, seed: u64) -> Result<WsConn> {
        let socket = bound_socket(src)?;
        let stream = socket.connect(dst).await.with_context(|| format!("connect {src} -> {dst}"))?;
        stream.set_nodelay(true)?;
        tstamp::enable(stream.as_raw_fd()).context("SO_TIMESTAMPNS")?;
        let mut conn = WsConn {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::new(MAX_MESSAGE, Role::Client),
            out: Vec::new(),
            rng: seed | 1,
        };
        conn.handshake(dst, path).await?;
        Ok(conn)
    }

    async fn handshake(&mut self, dst: SocketAddr, path: &str) -> Result<()> {
        let mut raw = [0u8; 16];
        for chunk in raw.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_random().to_le_bytes());
        }
        let key = base64::engine::general_purpose::STANDARD.encode(raw);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {dst}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        self.stream.write_all(request.as_bytes()).await?;
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if self.buf.len() > MAX_HEADER {
                bail!("upgrade answer longer than {MAX_HEADER} bytes");
            }
            self.read_some().await.context("reading the upgrade answer")?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        // Bytes after the header (a server may speak first, as NATS does) stay in the buffer.
        self.buf.advance(end);
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default();
        if status.split_whitespace().nth(1) != Some("101") {
            bail!("upgrade refused: {status}");
        }
        let accept = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-accept"))
            .map(|(_, value)| value.trim().to_owned());
        if accept.as_deref() != Some(accept_key(&key).as_str()) {
            bail!("bad Sec-WebSocket-Accept: {accept:?}");
        }
        Ok(())
    }

    /// Wait for data and append it to the buffer. Returns the kernel timestamp of the last
    /// segment read (None if the kernel gave none). Cancel-safe: nothing is read until the
    /// socket is ready, and then the read completes without awaiting.
    pub async fn read_some(&mut self) -> io::Result<Option<i64>> {
        loop {
            self.stream.readable().await?;
            let fd = self.stream.as_raw_fd();
            let mut short_read = None;
            let got = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let capacity = scratch.len();
                self.stream.try_io(Interest::READABLE, || {
                    let (n, stamp) = tstamp::recv(fd, &mut scratch)?;
                    self.buf.extend_from_slice(&scratch[..n]);
                    if n > 0 && n < capacity {
                        // A short read drained the socket. Report WouldBlock so tokio clears the
                        // readiness now (it does so only if no new edge came in meanwhile):
                        // that saves the next recvmsg, which would only return EAGAIN — one
                        // syscall less per broadcast per client. The data is in the buffer.
                        short_read = Some(stamp);
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    Ok((n, stamp))
                })
            });
            match got {
                Ok((0, _)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok((_, stamp)) => return Ok(stamp),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match short_read {
                    Some(stamp) => return Ok(stamp),
                    None => continue,
                },
                Err(e) => return Err(e),
            }
        }
    }

    /// The next complete message in the buffer, if any.
    pub fn next_message(&mut self) -> Result<Option<Message>> {
        Ok(self.decoder.decode(&mut self.buf)?)
    }

    /// Send one masked, final frame.
    pub async fn send(&mut self, opcode: Opcode, payload: &[u8]) -> io::Result<()> {
        let mask = (self.next_random() as u32).to_ne_bytes();
        self.out.clear();
        encode_frame(opcode, payload, Some(mask), &mut self.out);
        self.stream.write_all(&self.out).await?;
        if self.out.capacity() > 4096 {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Write bytes as they are, framed or not (the soak's garbage).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Drop the connection without a close frame or FIN: with `SO_LINGER` 0, close(2) sends RST,
    /// so the server sees what it sees when a client's network vanishes.
    pub fn abort(self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(std::time::Duration::ZERO));
    }

    /// xorshift64*: masks and keys need to vary, not to be secret.
    pub fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A TCP socket bound to `src`, its port left for connect() to pick per destination.
pub fn bound_socket(src: Ipv4Addr) -> Result<TcpSocket> {
    let socket = TcpSocket::new_v4().context("socket")?;
    set_bind_no_port(socket.as_raw_fd());
    socket.bind(SocketAddr::new(src.into(), 0)).with_context(|| format!("bind {src}"))?;
    Ok(socket)
}

fn set_bind_no_port(fd: std::os::fd::RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt with a pointer to a live c_int; failure only means ports are picked at
    // bind time, which still works for ~28k clients per source address.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
