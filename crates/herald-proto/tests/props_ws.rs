//! Property tests of the WebSocket decoder, the parser every client socket feeds: whatever bytes
//! arrive, split however into reads, it never panics and never hands out or reserves more than its
//! cap allows, and a valid client stream decodes to exactly the messages that were sent.
//!
//! The guarantee on memory, as `Decoder::decode` gives it: the decoder itself keeps at most
//! `max_message_bytes` of a fragmented message, returns no data message larger than that, and
//! refuses an over-cap message with `TooLarge` as soon as the header that crosses the cap is
//! complete (before its mask key or payload). It reserves room in the caller's buffer only for a
//! frame that passed that check (header + at most the cap); the caller's reads are its own.

use bytes::{Bytes, BytesMut};
use herald_proto::ws::{self, Decoder, Message, Opcode, Role, WsError, MAX_CLOSE_REASON, MAX_CONTROL_PAYLOAD};
use proptest::prelude::*;
use proptest::sample::Index;

/// The longest frame header: 2 bytes, a 64-bit length and a mask key.
const MAX_HEADER: usize = 14;

/// What a reader saw while feeding a stream to a decoder chunk by chunk.
#[derive(Debug, Default)]
struct Fed {
    messages: Vec<Message>,
    error: Option<WsError>,
    /// Stream offsets `[start, end)` of the read after which `decode` failed.
    error_chunk: Option<(usize, usize)>,
    /// The most bytes the reader's buffer held at once.
    high_water: usize,
    /// The largest capacity the buffer had after a `decode` call.
    max_capacity: usize,
    /// Bytes left in the buffer at the end (after a clean run).
    left_over: usize,
}

/// Cut points (any number, anywhere) turned into the reads a socket might deliver.
fn chunks<'a>(stream: &'a [u8], cuts: &[Index]) -> Vec<(usize, &'a [u8])> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
    points.extend([0, stream.len()]);
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| (w[0], &stream[w[0]..w[1]])).collect()
}

/// Feeds `stream` the way the gateway's reader does: append a read, then decode until the
/// decoder needs more bytes or fails.
fn feed(decoder: &mut Decoder, stream: &[u8], cuts: &[Index]) -> Fed {
    let mut fed = Fed::default();
    let mut buf = BytesMut::new();
    for (start, chunk) in chunks(stream, cuts) {
        buf.extend_from_slice(chunk);
        fed.high_water = fed.high_water.max(buf.len());
        loop {
            let result = decoder.decode(&mut buf);
            fed.max_capacity = fed.max_capacity.max(buf.capacity());
            match result {
                Ok(Some(message)) => fed.messages.push(message),
                Ok(None) => break,
                Err(e) => {
                    fed.error = Some(e);
                    fed.error_chunk = Some((start, start + chunk.len()));
                    return fed;
                }
            }
        }
    }
    fed.left_over = buf.len();
    fed
}

/// Checks what holds for any input: the sizes of what came out, and the buffer's growth.
fn assert_within_caps(fed: &Fed, cap: usize) -> Result<(), TestCaseError> {
    for message in &fed.messages {
        match message {
            Message::Text(b) => {
                prop_assert!(b.len() <= cap, "text of {} bytes past the {cap}-byte cap", b.len());
                prop_assert!(std::str::from_utf8(b).is_ok(), "text message is not UTF-8");
            }
            Message::Binary(b) => prop_assert!(b.len() <= cap, "binary of {} bytes past the {cap}-byte cap", b.len()),
            Message::Ping(b) | Message::Pong(b) => prop_assert!(b.len() <= MAX_CONTROL_PAYLOAD),
            Message::Close(_, reason) => prop_assert!(reason.len() <= MAX_CLOSE_REASON),
        }
    }
    // Growth of a `BytesMut` at most doubles what is asked of it; anything beyond this bound means
    // the decoder reserved room for a frame it should have refused.
    let bound = 4 * (fed.high_water + MAX_HEADER + cap) + 64;
    prop_assert!(
        fed.max_capacity <= bound,
        "buffer grew to {} bytes; reads held at most {} and the cap is {cap}",
        fed.max_capacity,
        fed.high_water
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Arbitrary input

/// The length a raw frame announces: mostly its payload's, sometimes anything at all.
#[derive(Debug, Clone)]
enum Announced {
    Actual,
    /// Any value, written in the shortest form that holds it.
    Value(u64),
    /// The payload's length in the 64-bit form, which RFC 6455 says not to use for short ones.
    Long,
}

/// A frame whose every header field is chosen freely: mostly plausible, sometimes nonsense.
#[derive(Debug, Clone)]
struct RawFrame {
    first_byte: u8,
    masked: bool,
    announced: Announced,
    mask: [u8; 4],
    payload: Vec<u8>,
}

impl RawFrame {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.first_byte);
        let mask_bit = if self.masked { 0x80 } else { 0 };
        match self.announced {
            Announced::Actual => push_length(out, mask_bit, self.payload.len() as u64),
            Announced::Value(n) => push_length(out, mask_bit, n),
            Announced::Long => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(self.payload.len() as u64).to_be_bytes());
            }
        }
        if self.masked {
            out.extend_from_slice(&self.mask);
        }
        out.extend_from_slice(&self.payload);
    }
}

/// The second header byte and the extended length, in the shortest form.
fn push_length(out: &mut Vec<u8>, mask_bit: u8, len: u64) {
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
}

fn raw_frame() -> impl Strategy<Value = RawFrame> {
    let opcodes = vec![0x0u8, 0x1, 0x2, 0x8, 0x9, 0xA];
    let first_byte = prop_oneof![
        4 => (any::<bool>(), prop::sample::select(opcodes)).prop_map(|(fin, op)| if fin { 0x80 | op } else { op }),
        1 => any::<u8>(),
    ];
    let announced = prop_oneof![
        6 => Just(Announced::Actual),
        1 => Just(Announced::Long),
        1 => (0u64..=0xFFFF).prop_map(Announced::Value),
        1 => (0x1_0000u64..=1 << 24).prop_map(Announced::Value),
        1 => any::<u64>().prop_map(Announced::Value),
    ];
    (first_byte, prop::bool::weighted(0.8), announced, any::<[u8; 4]>(), prop::collection::vec(any::<u8>(), 0..300))
        .prop_map(|(first_byte, masked, announced, mask, payload)| RawFrame {
            first_byte,
            masked,
            announced,
            mask,
            payload,
        })
}

/// A stream of raw frames, then a few bytes overwritten anywhere.
fn frame_soup() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(raw_frame(), 0..8), prop::collection::vec((any::<Index>(), any::<u8>()), 0..4)).prop_map(
        |(frames, edits)| {
            let mut out = Vec::new();
            for frame in &frames {
                frame.encode(&mut out);
            }
            if !out.is_empty() {
                for (at, byte) in edits {
                    let i = at.index(out.len());
                    out[i] = byte;
                }
            }
            out
        },
    )
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Server), Just(Role::Client)]
}

// ---------------------------------------------------------------------------------------------
// Valid client streams

/// One message as a client sends it.
#[derive(Debug, Clone)]
enum Sent {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A code RFC 6455 lets a peer send, and a reason (cut to fit, on a char boundary).
    Close(u16, String),
    /// A close frame with an empty payload.
    CloseEmpty,
}

impl Sent {
    fn is_data(&self) -> bool {
        matches!(self, Sent::Text(_) | Sent::Binary(_))
    }

    fn opcode_and_payload(&self) -> (Opcode, Vec<u8>) {
        match self {
            Sent::Text(s) => (Opcode::Text, s.as_bytes().to_vec()),
            Sent::Binary(b) => (Opcode::Binary, b.clone()),
            Sent::Ping(b) => (Opcode::Ping, b.clone()),
            Sent::Pong(b) => (Opcode::Pong, b.clone()),
            Sent::Close(code, reason) => (Opcode::Close, ws::close_payload(*code, reason)),
            Sent::CloseEmpty => (Opcode::Close, Vec::new()),
        }
    }

    /// The message the decoder must hand back for it.
    fn expected(&self) -> Message {
        match self {
            Sent::Text(s) => Message::Text(Bytes::copy_from_slice(s.as_bytes())),
            Sent::Binary(b) => Message::Binary(Bytes::copy_from_slice(b)),
            Sent::Ping(b) => Message::Ping(Bytes::copy_from_slice(b)),
            Sent::Pong(b) => Message::Pong(Bytes::copy_from_slice(b)),
            Sent::Close(code, reason) => {
                let payload = ws::close_payload(*code, reason);
                let kept = std::str::from_utf8(&payload[2..]).expect("cut on a char boundary").to_owned();
                assert!(reason.starts_with(&kept) && kept.len() <= MAX_CLOSE_REASON);
                Message::Close(Some(*code), kept)
            }
            Sent::CloseEmpty => Message::Close(None, String::new()),
        }
    }

    fn data_len(&self) -> usize {
        match self {
            Sent::Text(s) => s.len(),
            Sent::Binary(b) => b.len(),
            _ => 0,
        }
    }
}

fn text(max_chars: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..max_chars).prop_map(String::from_iter)
}

fn close_code() -> impl Strategy<Value = u16> {
    prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999]
}

fn control() -> impl Strategy<Value = Sent> {
    let payload = || prop::collection::vec(any::<u8>(), 0..=MAX_CONTROL_PAYLOAD);
    prop_oneof![
        payload().prop_map(Sent::Ping),
        payload().prop_map(Sent::Pong),
        (close_code(), text(60)).prop_map(|(code, reason)| Sent::Close(code, reason)),
        Just(Sent::CloseEmpty),
    ]
}

fn data(max_bytes: usize) -> impl Strategy<Value = Sent> {
    prop_oneof![
        text(max_bytes / 4).prop_map(Sent::Text),
        prop::collection::vec(any::<u8>(), 0..max_bytes).prop_map(Sent::Binary),
    ]
}

/// A message with where to cut it into fragments and which control frames go between them.
#[derive(Debug, Clone)]
struct Planned {
    sent: Sent,
    cuts: Vec<Index>,
    between: Vec<(Index, Sent)>,
}

fn planned(max_data_bytes: usize) -> impl Strategy<Value = Planned> {
    prop_oneof![
        3 => (
            data(max_data_bytes),
            prop::collection::vec(any::<Index>(), 0..5),
            prop::collection::vec((any::<Index>(), control()), 0..3)
        )
            .prop_map(|(sent, cuts, between)| Planned { sent, cuts, between }),
        1 => control().prop_map(|sent| Planned { sent, cuts: Vec::new(), between: Vec::new() }),
    ]
}

/// A final or non-final masked frame; `encode_frame` writes FIN, so a fragment clears it.
fn client_frame(opcode: Opcode, payload: &[u8], fin: bool, mask: [u8; 4], out: &mut Vec<u8>) {
    let start = out.len();
    ws::encode_frame(opcode, payload, Some(mask), out);
    if !fin {
        out[start] &= 0x7F;
    }
}

/// Encodes the plan as a client would, fragmenting data messages and putting control frames
/// between fragments; returns the stream, the messages the decoder must return in order, and for
/// every frame the offset where its header's length field ends.
fn encode_plan(plan: &[Planned], masks: &[[u8; 4]]) -> (Vec<u8>, Vec<Message>, Vec<(usize, usize)>) {
    let mut out = Vec::new();
    let mut expected = Vec::new();
    let mut frames = Vec::new();
    let mut masks = masks.iter().cycle();
    let mut push_frame = |out: &mut Vec<u8>, opcode: Opcode, payload: &[u8], fin: bool| {
        let start = out.len();
        client_frame(opcode, payload, fin, *masks.next().expect("non-empty masks"), out);
        let length_field = match payload.len() {
            0..=125 => 2,
            126..=0xFFFF => 4,
            _ => 10,
        };
        frames.push((start + length_field, payload.len()));
    };
    for Planned { sent, cuts, between } in plan {
        let (opcode, payload) = sent.opcode_and_payload();
        if !sent.is_data() {
            push_frame(&mut out, opcode, &payload, true);
            expected.push(sent.expected());
            continue;
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
        points.extend([0, payload.len()]);
        points.sort_unstable();
        // Duplicate points are kept on purpose: they make empty fragments, which are legal.
        let fragments: Vec<&[u8]> = points.windows(2).map(|w| &payload[w[0]..w[1]]).collect();
        let mut between: Vec<(usize, &Sent)> =
            between.iter().map(|(i, c)| (i.index(fragments.len().max(1)), c)).collect();
        between.sort_by_key(|(i, _)| *i);
        for (n, fragment) in fragments.iter().enumerate() {
            let last = n + 1 == fragments.len();
            push_frame(&mut out, if n == 0 { opcode } else { Opcode::Continuation }, fragment, last);
            if !last {
                for (_, control) in between.iter().filter(|(i, _)| *i == n) {
                    let (op, p) = control.opcode_and_payload();
                    push_frame(&mut out, op, &p, true);
                    expected.push(control.expected());
                }
            }
        }
        expected.push(sent.expected());
    }
    (out, expected, frames)
}

// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes, any reads, either role, any cap: no panic, nothing over the cap, bounded growth.
    #[test]
    fn arbitrary_bytes_never_panic_or_exceed_the_cap(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in prop::collection::vec(any::<Index>(), 0..16),
        cap in 0usize..2048,
        role in role(),
    ) {
        let fed = feed(&mut Decoder::new(cap, role), &bytes, &cuts);
        assert_within_caps(&fed, cap)?;
    }

    /// Frame-shaped input (plausible headers, lying lengths, a few overwritten bytes) gets past the
    /// first byte's checks far more often than noise does.
    #[test]
    fn frame_soup_never_panics_or_exceeds_the_cap(
        stream in frame_soup(),
        cuts in prop::collection::vec(any::<Index>(), 0..16),
        cap in 0usize..2048,
        role in role(),
    ) {
        let fed = feed(&mut Decoder::new(cap, role), &stream, &cuts);
        assert_within_caps(&fed, cap)?;
    }

    /// Valid masked messages, fragmented anywhere with control frames between the fragments, come
    /// out exactly as sent however the stream is split; a cap equal to the largest message is enough.
    #[test]
    fn valid_client_streams_decode_to_what_was_sent(
        plan in prop::collection::vec(planned(600), 0..8),
        masks in prop::collection::vec(any::<[u8; 4]>(), 1..8),
        cuts in prop::collection::vec(any::<Index>(), 0..24),
        slack in 0usize..3,
    ) {
        let cap = plan.iter().map(|p| p.sent.data_len()).max().unwrap_or(0) + slack;
        let (stream, expected, _) = encode_plan(&plan, &masks);
        let fed = feed(&mut Decoder::new(cap, Role::Server), &stream, &cuts);
        prop_assert_eq!(fed.error, None);
        prop_assert_eq!(fed.messages, expected);
        prop_assert_eq!(fed.left_over, 0);
    }

    /// A message one byte or more over the cap is refused with `TooLarge` by the very read that
    /// completes the length field of the fragment that crosses the cap: its payload is never needed,
    /// and everything sent before it still comes out.
    #[test]
    fn an_over_cap_message_is_refused_at_the_crossing_header(
        before in prop::collection::vec(planned(300), 0..4),
        cap in 0usize..600,
        over_by in 1usize..200,
        binary in any::<bool>(),
        fill in any::<u8>(),
        frag_cuts in prop::collection::vec(any::<Index>(), 0..5),
        masks in prop::collection::vec(any::<[u8; 4]>(), 1..8),
        cuts in prop::collection::vec(any::<Index>(), 0..24),
    ) {
        let before: Vec<Planned> = before.into_iter().filter(|p| p.sent.data_len() <= cap).collect();
        let big = vec![if binary { fill } else { b'a' + fill % 26 }; cap + over_by];
        let sent = if binary { Sent::Binary(big) } else { Sent::Text(String::from_utf8(big).unwrap()) };
        let mut plan = before.clone();
        plan.push(Planned { sent, cuts: frag_cuts, between: Vec::new() });
        let (stream, expected, frames) = encode_plan(&plan, &masks);
        // Frames of the big message start after those of `before`; find the one crossing the cap.
        let (_, before_messages, before_frames) = encode_plan(&before, &masks);
        let mut total = 0;
        let crossing = frames[before_frames.len()..]
            .iter()
            .find(|(_, len)| {
                total += len;
                total > cap
            })
            .expect("the message is over the cap");
        let length_field_end = crossing.0;

        let fed = feed(&mut Decoder::new(cap, Role::Server), &stream, &cuts);
        prop_assert_eq!(&fed.error, &Some(WsError::TooLarge { limit: cap }));
        let (start, end) = fed.error_chunk.unwrap();
        prop_assert!(
            start < length_field_end && length_field_end <= end,
            "refused after the read [{start}, {end}); the crossing header's length ends at {length_field_end}"
        );
        prop_assert_eq!(&fed.messages[..], &before_messages[..]);
        prop_assert_eq!(expected.len(), before_messages.len() + 1);
        assert_within_caps(&fed, cap)?;
    }

    /// What the server encodes, the SDK's decoder (client role) reads back unchanged.
    #[test]
    fn server_frames_round_trip_in_the_client_role(
        payload in prop::collection::vec(any::<u8>(), 0..400),
        text in text(200),
        opcode in prop::sample::select(vec![Opcode::Text, Opcode::Binary, Opcode::Ping, Opcode::Pong]),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let (bytes, want) = match opcode {
            Opcode::Text => (text.as_bytes().to_vec(), Message::Text(Bytes::copy_from_slice(text.as_bytes()))),
            Opcode::Binary => (payload.clone(), Message::Binary(Bytes::copy_from_slice(&payload))),
            Opcode::Ping | Opcode::Pong => {
                let p = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
                let b = Bytes::copy_from_slice(p);
                (p.to_vec(), if opcode == Opcode::Ping { Message::Ping(b) } else { Message::Pong(b) })
            }
            _ => unreachable!(),
        };
        let frame = ws::server_frame(opcode, &bytes);
        let fed = feed(&mut Decoder::new(bytes.len(), Role::Client), &frame, &cuts);
        prop_assert_eq!(fed.error, None);
        prop_assert_eq!(fed.messages, vec![want]);
        prop_assert_eq!(fed.left_over, 0);
    }

    /// Long frames use the 16- and 64-bit length forms; those round trip too.
    #[test]
    fn long_server_frames_round_trip(len in prop_oneof![65_500usize..65_540, 125usize..130, 0usize..3], seed in any::<u8>()) {
        let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let frame = ws::server_frame(Opcode::Binary, &payload);
        let fed = feed(&mut Decoder::new(len, Role::Client), &frame, &[]);
        prop_assert_eq!(fed.error, None);
        prop_assert_eq!(fed.messages, vec![Message::Binary(Bytes::from(payload))]);
        // One byte less of cap and the same frame is refused.
        if len > 0 {
            let fed = feed(&mut Decoder::new(len - 1, Role::Client), &frame, &[]);
            prop_assert_eq!(fed.error, Some(WsError::TooLarge { limit: len - 1 }));
        }
    }

    /// A server close frame decodes to its code and its reason cut to 123 bytes on a char boundary,
    /// for the codes a peer may send; any other code is refused.
    #[test]
    fn close_frames_round_trip_for_valid_codes(code in any::<u16>(), reason in text(100)) {
        let frame = ws::close_frame(code, &reason);
        let fed = feed(&mut Decoder::new(0, Role::Client), &frame, &[]);
        let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        if valid {
            prop_assert_eq!(fed.error, None);
            let [Message::Close(Some(got), kept)] = &fed.messages[..] else {
                return Err(TestCaseError::fail(format!("not one close: {:?}", fed.messages)));
            };
            prop_assert_eq!(*got, code);
            prop_assert!(reason.starts_with(kept.as_str()) && kept.len() <= MAX_CLOSE_REASON);
            // Only what did not fit was cut: the next char would not have fit.
            if kept.len() < reason.len() {
                let next = reason[kept.len()..].chars().next().unwrap();
                prop_assert!(kept.len() + next.len_utf8() > MAX_CLOSE_REASON);
            }
        } else {
            prop_assert_eq!(fed.error, Some(WsError::BadClosePayload));
        }
    }

    /// Masking is the client's duty and the server's taboo: the wrong one is refused either way.
    #[test]
    fn the_wrong_masking_is_refused(payload in prop::collection::vec(any::<u8>(), 0..200), mask in any::<[u8; 4]>()) {
        let mut masked = Vec::new();
        ws::encode_frame(Opcode::Binary, &payload, Some(mask), &mut masked);
        let fed = feed(&mut Decoder::new(1 << 16, Role::Client), &masked, &[]);
        prop_assert_eq!(fed.error, Some(WsError::MaskedServerFrame));
        let fed = feed(&mut Decoder::new(1 << 16, Role::Server), &ws::server_frame(Opcode::Binary, &payload), &[]);
        prop_assert_eq!(fed.error, Some(WsError::UnmaskedClientFrame));
    }
}
