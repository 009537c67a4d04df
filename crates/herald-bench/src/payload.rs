//! The broadcast text: `b=<index>;t=<send time, ns>;` padded with `x` to the requested size, so
//! every receipt names its broadcast and carries the time it was sent.

/// Build the text of broadcast `index` sent at `send_ns` (CLOCK_REALTIME), `size` bytes long
/// (longer if `size` is too small to hold the header).
pub fn make(index: usize, send_ns: i64, size: usize) -> String {
    let mut s = format!("b={index};t={send_ns};");
    while s.len() < size {
        s.push('x');
    }
    s
}

/// Parse the start of a payload made by [`make`]: `(index, send_ns)`.
pub fn parse(bytes: &[u8]) -> Option<(u32, i64)> {
    let rest = bytes.strip_prefix(b"b=")?;
    let (index, rest) = number(rest)?;
    let rest = rest.strip_prefix(b";t=")?;
    let (send_ns, rest) = number(rest)?;
    rest.first().filter(|&&c| c == b';')?;
    Some((u32::try_from(index).ok()?, i64::try_from(send_ns).ok()?))
}

fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let value = std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()?;
    Some((value, &bytes[digits..]))
}

/// Find the payload inside a Herald `bcast` frame (`..."message":"b=...`) without a JSON parse.
pub fn find_in_bcast(frame: &[u8]) -> Option<(u32, i64)> {
    const KEY: &[u8] = b"\"message\":\"";
    let at = frame.windows(KEY.len()).position(|w| w == KEY)?;
    parse(&frame[at + KEY.len()..])
}

/// The `messageID` of a Herald `bcast` frame (`..."messageID":"739...",...`), without a JSON parse.
pub fn message_id_in_bcast(frame: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"messageID\":\"";
    let at = frame.windows(KEY.len()).position(|w| w == KEY)?;
    let (id, rest) = number(&frame[at + KEY.len()..])?;
    rest.first().filter(|&&c| c == b'"')?;
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = make(17, 1_764_316_800_123_456_789, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(parse(p.as_bytes()), Some((17, 1_764_316_800_123_456_789)));
        let short = make(3, 42, 1);
        assert_eq!(short, "b=3;t=42;");
        assert_eq!(parse(b"b=3;t=42"), None);
        assert_eq!(parse(b"b=;t=42;"), None);
    }

    #[test]
    fn finds_in_frame() {
        let frame = br#"{"t":"bcast","msg":{"messageID":"1","senderUserID":"bench-sender","timestamp":1,"type":1,"message":"b=2;t=99;xxxx","extendedData":""}}"#;
        assert_eq!(find_in_bcast(frame), Some((2, 99)));
        assert_eq!(message_id_in_bcast(frame), Some(1));
        assert_eq!(message_id_in_bcast(br#"{"messageID":"7391827364519283712"}"#), Some(7_391_827_364_519_283_712));
        assert_eq!(message_id_in_bcast(br#"{"messageID":"12x"}"#), None);
        assert_eq!(find_in_bcast(br#"{"t":"pong","id":3}"#), None);
    }
}
