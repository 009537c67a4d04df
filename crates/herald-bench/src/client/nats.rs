//! The client side of the NATS text protocol, parsed as a byte stream: over WebSocket a `MSG`
//! line and its payload may be split across frames, or several may share one.

use anyhow::{bail, Result};
use bytes::{Buf, Bytes, BytesMut};

/// Largest pending protocol data before we call the stream broken.
const MAX_PENDING: usize = 4 << 20;

#[derive(Debug, PartialEq, Eq)]
pub enum Op {
    Info,
    Ping,
    Pong,
    Ok,
    Err(String),
    Msg(Bytes),
}

#[derive(Default)]
pub struct Parser {
    buf: BytesMut,
}

impl Parser {
    pub fn push(&mut self, data: &[u8]) -> Result<()> {
        if self.buf.len() + data.len() > MAX_PENDING {
            bail!("more than {MAX_PENDING} bytes of unparsed NATS protocol");
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next complete operation, if the buffer holds one.
    pub fn next_op(&mut self) -> Result<Option<Op>> {
        let Some(eol) = self.buf.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = &self.buf[..eol];
        let verb_end = line.iter().position(|&c| c == b' ' || c == b'\t').unwrap_or(line.len());
        let verb = line[..verb_end].to_ascii_uppercase();
        let op = match &verb[..] {
            b"MSG" => {
                // MSG <subject> <sid> [reply-to] <#bytes>
                let text = std::str::from_utf8(line)?;
                let Some(len) = text.split_whitespace().last().and_then(|n| n.parse::<usize>().ok()) else {
                    bail!("bad MSG line: {text}");
                };
                let start = eol + 2;
                if self.buf.len() < start + len + 2 {
                    return Ok(None); // payload not complete yet
                }
                if &self.buf[start + len..start + len + 2] != b"\r\n" {
                    bail!("MSG payload not followed by CRLF");
                }
                self.buf.advance(start);
                let payload = self.buf.split_to(len).freeze();
                self.buf.advance(2);
                return Ok(Some(Op::Msg(payload)));
            }
            b"INFO" => Op::Info,
            b"PING" => Op::Ping,
            b"PONG" => Op::Pong,
            b"+OK" => Op::Ok,
            b"-ERR" => Op::Err(String::from_utf8_lossy(line).into_owned()),
            _ => bail!("unexpected NATS line: {}", String::from_utf8_lossy(line)),
        };
        self.buf.advance(eol + 2);
        Ok(Some(op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_messages() {
        let mut p = Parser::default();
        p.push(b"INFO {\"a\":1}\r\nPO").unwrap();
        assert_eq!(p.next_op().unwrap(), Some(Op::Info));
        assert_eq!(p.next_op().unwrap(), None);
        p.push(b"NG\r\nMSG bench 1 5\r\nhel").unwrap();
        assert_eq!(p.next_op().unwrap(), Some(Op::Pong));
        assert_eq!(p.next_op().unwrap(), None);
        p.push(b"lo\r\nMSG bench 1 r 2\r\nhi\r\nPING\r\n").unwrap();
        assert_eq!(p.next_op().unwrap(), Some(Op::Msg(Bytes::from_static(b"hello"))));
        assert_eq!(p.next_op().unwrap(), Some(Op::Msg(Bytes::from_static(b"hi"))));
        assert_eq!(p.next_op().unwrap(), Some(Op::Ping));
        assert_eq!(p.next_op().unwrap(), None);
    }

    #[test]
    fn rejects_garbage() {
        let mut p = Parser::default();
        p.push(b"HELLO\r\n").unwrap();
        assert!(p.next_op().is_err());
    }
}
