//! A minimal RFC 6455 WebSocket codec without I/O: the handshake key, frame encoding and a decoder.
//!
//! Herald writes one pre-encoded broadcast frame to many sockets, so encoding is a pure function
//! returning [`Bytes`]; the decoder works on a caller-owned [`BytesMut`](bytes::BytesMut) so the
//! connection task decides how and when to read. No extensions are negotiated, so RSV bits must
//! be zero.

mod decoder;

pub use decoder::{Decoder, Role};

use base64::Engine;
use bytes::Bytes;
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 appends to `Sec-WebSocket-Key`.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Control frame payloads are at most 125 bytes (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// A close reason fits after the 2-byte code in a control payload.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Frame opcodes (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// `None` for the reserved opcodes 0x3–0x7 and 0xB–0xF.
    pub fn from_u8(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A complete message as the application sees it: fragments joined, masks removed.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// Payload already checked to be UTF-8.
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// Close code (absent when the payload was empty) and reason.
    Close(Option<u16>, String),
}

/// A protocol violation; the connection should be closed (1002, 1007 or 1009 as fits).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WsError {
    #[error("message exceeds the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("client frame is not masked")]
    UnmaskedClientFrame,
    #[error("server frame is masked")]
    MaskedServerFrame,
    #[error("frame sets reserved bits but no extension was negotiated")]
    ReservedBits,
    #[error("frame uses reserved opcode {0:#x}")]
    BadOpcode(u8),
    #[error("control frame is fragmented")]
    FragmentedControl,
    #[error("control frame payload is longer than 125 bytes")]
    ControlTooLong,
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    #[error("new data frame before the fragmented message finished")]
    InterleavedDataFrame,
    #[error("text message or close reason is not valid UTF-8")]
    InvalidUtf8,
    #[error("close frame payload is malformed or carries an invalid code")]
    BadClosePayload,
}

impl WsError {
    /// The close code RFC 6455 §7.4.1 suggests for answering this error.
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::TooLarge { .. } => 1009,
            WsError::InvalidUtf8 => 1007,
            _ => 1002,
        }
    }
}

/// `Sec-WebSocket-Accept` for a request's `Sec-WebSocket-Key`: `base64(sha1(key + GUID))`.
pub fn accept_key(sec_websocket_key: &str) -> String {
    let mut sha1 = Sha1::new();
    // Header values may carry optional whitespace around them (RFC 9110 §5.5); it is not part of the key.
    sha1.update(sec_websocket_key.trim());
    sha1.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// Appends one final (FIN=1) frame to `out`, masked with `mask` when given (the client role).
pub fn encode_frame(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.reserve(14 + payload.len());
    out.push(0x80 | opcode.as_u8());
    match payload.len() {
        len @ 0..=125 => out.push(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        None => out.extend_from_slice(payload),
        Some(key) => {
            out.extend_from_slice(&key);
            let start = out.len();
            out.extend_from_slice(payload);
            apply_mask(&mut out[start..], key);
        }
    }
}

/// An unmasked final frame, as a server sends it; encode once, clone the `Bytes` to every socket.
pub fn server_frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(10 + payload.len());
    encode_frame(opcode, payload, None, &mut out);
    Bytes::from(out)
}

/// A server close frame; `reason` is cut to 123 bytes on a char boundary so the frame stays valid.
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    server_frame(Opcode::Close, &close_payload(code, reason))
}

/// The payload of a close frame: the code big-endian, then the (truncated) UTF-8 reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let reason = truncate_on_char_boundary(reason, MAX_CLOSE_REASON);
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    payload
}

fn truncate_on_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// XORs `data` with the 4-byte masking key; masking and unmasking are the same operation.
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    // Whole words first: the payloads are broadcast-sized, and this keeps the loop vectorisable.
    let word = u32::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let masked = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key) {
        *byte ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(accept_key(" dGhlIHNhbXBsZSBub25jZQ== "), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn headers_use_the_shortest_length_form() {
        assert_eq!(&server_frame(Opcode::Text, b"Hello")[..], b"\x81\x05Hello");
        let f = server_frame(Opcode::Binary, &[0; 126]);
        assert_eq!(&f[..4], &[0x82, 126, 0, 126]);
        let f = server_frame(Opcode::Binary, &[0; 65536]);
        assert_eq!(&f[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(f.len(), 10 + 65536);
    }

    #[test]
    fn masked_frame_matches_rfc_example() {
        // RFC 6455 §5.7: a masked "Hello".
        let mut out = Vec::new();
        encode_frame(Opcode::Text, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d]), &mut out);
        assert_eq!(out, b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
    }

    #[test]
    fn close_reason_is_truncated_on_a_char_boundary() {
        let long = "é".repeat(100); // 200 bytes, 2 per char
        let frame = close_frame(4001, &long);
        let payload = &frame[2..];
        assert_eq!(frame[1] as usize, payload.len());
        assert_eq!(&payload[..2], &4001u16.to_be_bytes());
        assert_eq!(payload.len() - 2, 122); // 123 would split a char
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
        assert_eq!(&close_frame(1000, "")[..], &[0x88, 2, 0x03, 0xe8]);
    }

    #[test]
    fn mask_is_an_involution_for_every_tail_length() {
        for len in 0..9 {
            let original: Vec<u8> = (0..len as u8).collect();
            let mut data = original.clone();
            apply_mask(&mut data, [1, 2, 3, 4]);
            for (i, (m, o)) in data.iter().zip(&original).enumerate() {
                assert_eq!(*m, o ^ [1, 2, 3, 4][i % 4]);
            }
            apply_mask(&mut data, [1, 2, 3, 4]);
            assert_eq!(data, original);
        }
    }
}
