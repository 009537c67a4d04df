//! Incremental frame decoder: turns bytes from a socket into complete [`Message`]s.

use bytes::{Buf, BytesMut};

use super::{apply_mask, Message, Opcode, WsError, MAX_CONTROL_PAYLOAD};

/// Which end of the connection the decoder serves; RFC 6455 requires clients to mask and servers not to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Decodes frames from a client, which must be masked.
    Server,
    /// Decodes frames from a server, which must not be masked.
    Client,
}

/// Reassembles fragmented messages and enforces the protocol rules and the size cap.
///
/// After an error the connection is broken by definition; the decoder's state is then unspecified
/// and the caller should close the socket rather than decode further.
#[derive(Debug)]
pub struct Decoder {
    max_message_bytes: usize,
    role: Role,
    /// The data message being reassembled from fragments, if any.
    partial: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    text: bool,
    data: BytesMut,
}

/// The fixed part of a frame, parsed before its payload has arrived.
struct Header {
    fin: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    header_len: usize,
    payload_len: u64,
}

impl Decoder {
    /// `max_message_bytes` caps a whole data message (all fragments together).
    pub fn new(max_message_bytes: usize, role: Role) -> Self {
        Decoder { max_message_bytes, role, partial: None }
    }

    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Parses at most one complete message from the front of `buf`, consuming what it used;
    /// `Ok(None)` means more bytes are needed.
    ///
    /// Fragments are consumed and buffered internally. Control frames may arrive between fragments
    /// and are returned at once. A frame's announced length is checked against the cap as soon as
    /// its header is complete, so an oversized message is refused before its payload is buffered.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WsError> {
        loop {
            let Some(header) = self.parse_header(buf)? else {
                return Ok(None);
            };
            // The header check above bounds payload_len by max_message_bytes or 125, so it fits usize.
            let payload_len = header.payload_len as usize;
            if buf.len() - header.header_len < payload_len {
                buf.reserve(header.header_len + payload_len - buf.len());
                return Ok(None);
            }
            buf.advance(header.header_len);
            let mut payload = buf.split_to(payload_len);
            if let Some(key) = header.mask {
                apply_mask(&mut payload, key);
            }
            if let Some(message) = self.accept(header, payload)? {
                return Ok(Some(message));
            }
        }
    }

    /// Reads and validates a frame header without consuming it; `None` if it is not all there yet.
    fn parse_header(&self, buf: &[u8]) -> Result<Option<Header>, WsError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        if b0 & 0x70 != 0 {
            return Err(WsError::ReservedBits);
        }
        let opcode = Opcode::from_u8(b0 & 0x0F).ok_or(WsError::BadOpcode(b0 & 0x0F))?;
        let masked = b1 & 0x80 != 0;
        match (self.role, masked) {
            (Role::Server, false) => return Err(WsError::UnmaskedClientFrame),
            (Role::Client, true) => return Err(WsError::MaskedServerFrame),
            _ => {}
        }
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            if !fin {
                return Err(WsError::FragmentedControl);
            }
            if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(WsError::ControlTooLong);
            }
        } else {
            match (opcode, &self.partial) {
                (Opcode::Continuation, None) => return Err(WsError::UnexpectedContinuation),
                (Opcode::Text | Opcode::Binary, Some(_)) => return Err(WsError::InterleavedDataFrame),
                _ => {}
            }
        }

        let (payload_len, mut header_len) = match len7 {
            126 => match buf.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 10),
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        if !opcode.is_control() {
            let buffered = self.partial.as_ref().map_or(0, |p| p.data.len()) as u64;
            // Also refuses lengths with the top bit set, which RFC 6455 forbids.
            if buffered.saturating_add(payload_len) > self.max_message_bytes as u64 || payload_len > i64::MAX as u64 {
                return Err(WsError::TooLarge { limit: self.max_message_bytes });
            }
        }
        let mask = if masked {
            let Some(key) = buf.get(header_len..header_len + 4) else {
                return Ok(None);
            };
            header_len += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        Ok(Some(Header { fin, opcode, mask, header_len, payload_len }))
    }

    /// Takes one unmasked frame; returns the message it completes, if any.
    fn accept(&mut self, header: Header, payload: BytesMut) -> Result<Option<Message>, WsError> {
        let message = match header.opcode {
            Opcode::Ping => Message::Ping(payload.freeze()),
            Opcode::Pong => Message::Pong(payload.freeze()),
            Opcode::Close => parse_close(&payload)?,
            Opcode::Text | Opcode::Binary if header.fin => data_message(header.opcode == Opcode::Text, payload)?,
            Opcode::Text | Opcode::Binary => {
                // Copy into a fresh buffer so the read buffer's allocation is not pinned by a slice.
                let data = BytesMut::from(&payload[..]);
                self.partial = Some(Partial { text: header.opcode == Opcode::Text, data });
                return Ok(None);
            }
            Opcode::Continuation => {
                let partial = self.partial.as_mut().expect("checked in parse_header");
                partial.data.extend_from_slice(&payload);
                if !header.fin {
                    return Ok(None);
                }
                let Partial { text, data } = self.partial.take().expect("checked above");
                data_message(text, data)?
            }
        };
        Ok(Some(message))
    }
}

fn data_message(text: bool, payload: BytesMut) -> Result<Message, WsError> {
    if !text {
        return Ok(Message::Binary(payload.freeze()));
    }
    std::str::from_utf8(&payload).map_err(|_| WsError::InvalidUtf8)?;
    Ok(Message::Text(payload.freeze()))
}

fn parse_close(payload: &[u8]) -> Result<Message, WsError> {
    let (code, reason) = match payload {
        [] => return Ok(Message::Close(None, String::new())),
        [_] => return Err(WsError::BadClosePayload),
        [hi, lo, reason @ ..] => (u16::from_be_bytes([*hi, *lo]), reason),
    };
    if !is_valid_close_code(code) {
        return Err(WsError::BadClosePayload);
    }
    let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
    Ok(Message::Close(Some(code), reason.to_owned()))
}

/// Codes a peer may put on the wire (RFC 6455 §7.4 and the IANA registry): 1004–1006 and 1015
/// are reserved for local use, and 1016–2999 are unassigned.
fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}
