//! The WebSocket codec: round trips at every length class, fragmentation, and each protocol error.

use bytes::{Bytes, BytesMut};
use herald_proto::ws::{self, Decoder, Message, Opcode, Role, WsError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MASK: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];
const CAP: usize = 1 << 20;

/// A frame with full control over the header bits, for the cases `encode_frame` never produces.
fn raw(first_byte: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::new();
    ws::encode_frame(Opcode::Binary, payload, mask, &mut out);
    out[0] = first_byte;
    out
}

fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> Result<Vec<Message>, WsError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(msg) = decoder.decode(&mut buf)? {
        out.push(msg);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(out)
}

fn expected(opcode: Opcode, payload: &[u8]) -> Message {
    let payload = Bytes::copy_from_slice(payload);
    match opcode {
        Opcode::Text => Message::Text(payload),
        Opcode::Binary => Message::Binary(payload),
        Opcode::Ping => Message::Ping(payload),
        Opcode::Pong => Message::Pong(payload),
        other => panic!("no message for {other:?}"),
    }
}

#[test]
fn round_trips_every_length_class_both_directions() {
    for len in [0, 1, 125, 126, 127, 65535, 65536, 70000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        // Client -> server: masked.
        let mut frame = Vec::new();
        ws::encode_frame(Opcode::Binary, &payload, Some(MASK), &mut frame);
        let msgs = decode_all(&mut Decoder::new(CAP, Role::Server), &frame).unwrap();
        assert_eq!(msgs, [expected(Opcode::Binary, &payload)], "masked {len}");
        // Server -> client: unmasked.
        let frame = ws::server_frame(Opcode::Binary, &payload);
        let msgs = decode_all(&mut Decoder::new(CAP, Role::Client), &frame).unwrap();
        assert_eq!(msgs, [expected(Opcode::Binary, &payload)], "unmasked {len}");
    }
}

#[test]
fn needs_more_bytes_until_the_frame_is_complete() {
    let mut frame = Vec::new();
    ws::encode_frame(Opcode::Text, &[b'x'; 300], Some(MASK), &mut frame);
    let mut decoder = Decoder::new(CAP, Role::Server);
    let mut buf = BytesMut::new();
    for (i, byte) in frame.iter().enumerate() {
        buf.extend_from_slice(&[*byte]);
        let got = decoder.decode(&mut buf).unwrap();
        if i + 1 < frame.len() {
            assert_eq!(got, None, "after {} bytes", i + 1);
            assert_eq!(buf.len(), i + 1, "nothing consumed before the frame is whole");
        } else {
            assert_eq!(got, Some(expected(Opcode::Text, &[b'x'; 300])));
        }
    }
    assert!(buf.is_empty());
}

#[test]
fn returns_one_message_per_call() {
    let mut bytes = ws::server_frame(Opcode::Text, b"one").to_vec();
    bytes.extend_from_slice(&ws::server_frame(Opcode::Ping, b"p"));
    bytes.extend_from_slice(&ws::server_frame(Opcode::Text, b"two")[..3]);
    let mut buf = BytesMut::from(&bytes[..]);
    let mut decoder = Decoder::new(CAP, Role::Client);
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(expected(Opcode::Text, b"one")));
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(expected(Opcode::Ping, b"p")));
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert_eq!(buf.len(), 3);
}

#[test]
fn fragmented_text_with_an_interleaved_ping() {
    // "héllo" split inside the two-byte 'é': only the whole message must be UTF-8.
    let text = "héllo".as_bytes();
    let mut bytes = raw(0x01, &text[..2], Some(MASK)); // Text, FIN=0
    bytes.extend(raw(0x89, b"are you there", Some(MASK))); // Ping, FIN=1
    bytes.extend(raw(0x00, &text[2..4], Some(MASK))); // Continuation, FIN=0
    bytes.extend(raw(0x80, &text[4..], Some(MASK))); // Continuation, FIN=1
    let msgs = decode_all(&mut Decoder::new(CAP, Role::Server), &bytes).unwrap();
    assert_eq!(msgs, [expected(Opcode::Ping, b"are you there"), expected(Opcode::Text, text)]);
}

#[test]
fn too_large_is_detected_from_the_header_alone() {
    let mut decoder = Decoder::new(1000, Role::Server);
    // 64-bit length header plus mask key, no payload at all.
    let header = &raw(0x82, &[0; 70000], Some(MASK))[..14];
    let mut buf = BytesMut::from(header);
    assert_eq!(decoder.decode(&mut buf), Err(WsError::TooLarge { limit: 1000 }));
    // Even before the mask key has arrived.
    let mut buf = BytesMut::from(&header[..10]);
    assert_eq!(Decoder::new(1000, Role::Server).decode(&mut buf), Err(WsError::TooLarge { limit: 1000 }));
    // A length with the top bit set is never acceptable.
    let mut bad = vec![0x82, 0xFF];
    bad.extend_from_slice(&u64::MAX.to_be_bytes());
    let mut buf = BytesMut::from(&bad[..]);
    assert_eq!(Decoder::new(usize::MAX, Role::Server).decode(&mut buf), Err(WsError::TooLarge { limit: usize::MAX }));
    // Exactly at the cap is fine.
    let frame = raw(0x82, &[0; 1000], Some(MASK));
    assert_eq!(decode_all(&mut Decoder::new(1000, Role::Server), &frame).unwrap().len(), 1);
}

#[test]
fn too_large_counts_all_fragments() {
    let mut decoder = Decoder::new(100, Role::Server);
    let mut buf = BytesMut::from(&raw(0x01, &[b'a'; 60], Some(MASK))[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
    // The continuation's header announces 41 more bytes: 101 in total.
    let next = raw(0x80, &[b'a'; 41], Some(MASK));
    let mut buf = BytesMut::from(&next[..6]);
    assert_eq!(decoder.decode(&mut buf), Err(WsError::TooLarge { limit: 100 }));
}

#[test]
fn invalid_utf8_text() {
    let mut decoder = Decoder::new(CAP, Role::Server);
    assert_eq!(decode_all(&mut decoder, &raw(0x81, b"ok \xff", Some(MASK))), Err(WsError::InvalidUtf8));
    let mut bytes = raw(0x01, b"ab", Some(MASK));
    bytes.extend(raw(0x80, b"\xc3", Some(MASK))); // ends mid-character
    assert_eq!(decode_all(&mut Decoder::new(CAP, Role::Server), &bytes), Err(WsError::InvalidUtf8));
    // Binary messages are not checked.
    assert!(decode_all(&mut Decoder::new(CAP, Role::Server), &raw(0x82, b"\xff", Some(MASK))).is_ok());
}

#[test]
fn close_payload_parsing() {
    let close = |payload: &[u8]| decode_all(&mut Decoder::new(CAP, Role::Client), &raw(0x88, payload, None));
    assert_eq!(close(b""), Ok(vec![Message::Close(None, String::new())]));
    assert_eq!(close(b"\x03\xe8"), Ok(vec![Message::Close(Some(1000), String::new())]));
    assert_eq!(close(b"\x11\xa1bye"), Ok(vec![Message::Close(Some(4513), "bye".into())]));
    assert_eq!(close(b"\x03"), Err(WsError::BadClosePayload));
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
        assert_eq!(close(&code.to_be_bytes()), Err(WsError::BadClosePayload), "{code}");
    }
    for code in [1001u16, 1003, 1007, 1011, 1014, 3000, 4000, 4999] {
        assert_eq!(close(&code.to_be_bytes()), Ok(vec![Message::Close(Some(code), String::new())]), "{code}");
    }
    assert_eq!(close(b"\x03\xe8\xff"), Err(WsError::InvalidUtf8));
    // What close_frame writes decodes back, truncated reason included.
    let reason = "ü".repeat(80);
    let msgs = decode_all(&mut Decoder::new(CAP, Role::Client), &ws::close_frame(4001, &reason)).unwrap();
    assert_eq!(msgs, [Message::Close(Some(4001), "ü".repeat(61))]);
}

#[test]
fn protocol_violations() {
    let server = || Decoder::new(CAP, Role::Server);
    let cases: Vec<(Vec<u8>, WsError)> = vec![
        (raw(0x81, b"hi", None), WsError::UnmaskedClientFrame),
        (raw(0xC1, b"hi", Some(MASK)), WsError::ReservedBits),
        (raw(0xA1, b"hi", Some(MASK)), WsError::ReservedBits),
        (raw(0x91, b"hi", Some(MASK)), WsError::ReservedBits),
        (raw(0x83, b"hi", Some(MASK)), WsError::BadOpcode(0x3)),
        (raw(0x8B, b"hi", Some(MASK)), WsError::BadOpcode(0xB)),
        (raw(0x09, b"hi", Some(MASK)), WsError::FragmentedControl),
        (raw(0x89, &[0; 126], Some(MASK)), WsError::ControlTooLong),
        (raw(0x80, b"hi", Some(MASK)), WsError::UnexpectedContinuation),
        ([raw(0x01, b"a", Some(MASK)), raw(0x81, b"b", Some(MASK))].concat(), WsError::InterleavedDataFrame),
        ([raw(0x02, b"a", Some(MASK)), raw(0x01, b"b", Some(MASK))].concat(), WsError::InterleavedDataFrame),
    ];
    for (bytes, err) in cases {
        assert_eq!(decode_all(&mut server(), &bytes), Err(err.clone()), "{err}");
    }
    let masked = raw(0x81, b"hi", Some(MASK));
    assert_eq!(decode_all(&mut Decoder::new(CAP, Role::Client), &masked), Err(WsError::MaskedServerFrame));
    assert_eq!(WsError::TooLarge { limit: 1 }.close_code(), 1009);
    assert_eq!(WsError::InvalidUtf8.close_code(), 1007);
    assert_eq!(WsError::ReservedBits.close_code(), 1002);
}

/// Random messages, randomly fragmented (with control frames between fragments) and fed in random
/// chunks, come out whole and in order.
#[test]
fn randomized_round_trip() {
    let mut rng = StdRng::seed_from_u64(0x4845_5241_4c44);
    for round in 0..200 {
        let role = if rng.gen() { Role::Server } else { Role::Client };
        let mut wire = Vec::new();
        let mut sent = Vec::new();
        for _ in 0..rng.gen_range(1..8) {
            let len = match rng.gen_range(0..10) {
                0..=5 => rng.gen_range(0..130),
                6..=8 => rng.gen_range(126..70_000),
                _ => rng.gen_range(65_536..200_000),
            };
            let text = rng.gen();
            let payload: Vec<u8> = if text {
                (0..len).map(|_| rng.gen_range(b' '..=b'~')).collect()
            } else {
                (0..len).map(|_| rng.gen()).collect()
            };
            let masked = role == Role::Server;
            let mask = |rng: &mut StdRng| masked.then(|| rng.gen::<[u8; 4]>());
            // Split into 1..=4 fragments at random points; a ping may follow any non-final fragment.
            let mut cuts: Vec<usize> = (0..rng.gen_range(0..4)).map(|_| rng.gen_range(0..=len)).collect();
            cuts.sort_unstable();
            cuts.push(len);
            let mut start = 0;
            for (i, &end) in cuts.iter().enumerate() {
                let fin = i + 1 == cuts.len();
                let opcode: u8 = if i > 0 {
                    0
                } else if text {
                    1
                } else {
                    2
                };
                wire.extend(raw(if fin { 0x80 } else { 0 } | opcode, &payload[start..end], mask(&mut rng)));
                start = end;
                if !fin && rng.gen_ratio(1, 3) {
                    let ping: Vec<u8> = (0..rng.gen_range(0..=125)).map(|_| rng.gen()).collect();
                    wire.extend(raw(0x89, &ping, mask(&mut rng)));
                    sent.push(expected(Opcode::Ping, &ping));
                }
            }
            sent.push(expected(if text { Opcode::Text } else { Opcode::Binary }, &payload));
        }

        let mut decoder = Decoder::new(CAP, role);
        let mut buf = BytesMut::new();
        let mut received = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let n = rng.gen_range(1..=rest.len().min(100_000));
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Some(msg) = decoder.decode(&mut buf).unwrap() {
                received.push(msg);
            }
        }
        assert!(buf.is_empty(), "round {round}");
        assert_eq!(received, sent, "round {round}");
    }
}
