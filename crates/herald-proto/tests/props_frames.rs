//! Property tests of the client frame parser (the JSON inside every client text message): any
//! bytes are an answer, never a panic; every frame round-trips; and a JSON object is accepted
//! exactly when a small model of docs/protocol.md says so, whatever its key order and extra keys.

use herald_proto::frame::{self, ClientFrame, Login, ServerFrame, ZimMessage};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Any JSON value: every type, nested a few levels, keys and strings from all of Unicode.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    prop::option::of(any::<String>())
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    let login = (
        any::<u64>(),
        any::<u32>(),
        (any::<String>(), any::<String>(), any::<String>(), any::<String>(), any::<String>()),
        opt_string(),
        opt_string(),
    )
        .prop_map(|(id, app_id, (user_id, token, sdk_version, platform, device_id), user_name, since)| {
            ClientFrame::Login(Login { id, app_id, user_id, token, sdk_version, platform, device_id, user_name, since })
        });
    prop_oneof![
        login,
        any::<u64>().prop_map(|id| ClientFrame::Ping { id }),
        (any::<u64>(), any::<String>(), any::<String>()).prop_map(|(id, push_id, provider)| ClientFrame::SetPushId {
            id,
            push_id,
            provider
        }),
        (any::<u64>(), any::<String>()).prop_map(|(id, token)| ClientFrame::RenewToken { id, token }),
        any::<u64>().prop_map(|id| ClientFrame::Logout { id }),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let zim = (
        (any::<u64>(), any::<String>(), any::<i64>(), any::<u32>()),
        (any::<String>(), any::<String>(), any::<u32>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(|((id, sender, timestamp, message_type), (message, extended_data, sub_type, bcast, server))| {
            ZimMessage {
                message_id: id.to_string(),
                sender_user_id: sender,
                timestamp,
                message_type,
                message,
                extended_data,
                sub_type,
                is_broadcast_message: bcast,
                is_server_message: server,
            }
        });
    prop_oneof![
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<i64>(),
            any::<i64>(),
            prop::option::of(any::<bool>())
        )
            .prop_map(|(id, session, heartbeat_ms, timeout_ms, token_expire, server_time_ms, recovered)| {
                ServerFrame::LoginOk {
                    id,
                    session_id: session.to_string(),
                    heartbeat_ms,
                    timeout_ms,
                    token_expire,
                    server_time_ms,
                    recovered,
                }
            }),
        any::<u64>().prop_map(|id| ServerFrame::Pong { id }),
        (any::<u64>(), prop::option::of(any::<i64>()))
            .prop_map(|(id, token_expire)| ServerFrame::Ack { id, token_expire }),
        (any::<u64>(), any::<u32>(), any::<String>()).prop_map(|(id, code, message)| ServerFrame::Error {
            id,
            code,
            message
        }),
        any::<i64>().prop_map(|seconds| ServerFrame::TokenWillExpire { seconds }),
        zim.prop_map(|msg| ServerFrame::Bcast { msg }),
    ]
}

// ---------------------------------------------------------------------------------------------
// The model

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    U64,
    U32,
    Str,
    OptStr,
}

const TYPES: &[&str] = &["login", "ping", "set_push_id", "renew_token", "logout"];

/// The fields of each frame type, as docs/protocol.md lists them.
fn fields(t: &str) -> &'static [(&'static str, Kind)] {
    match t {
        "login" => &[
            ("id", Kind::U64),
            ("app_id", Kind::U32),
            ("user_id", Kind::Str),
            ("token", Kind::Str),
            ("sdk_version", Kind::Str),
            ("platform", Kind::Str),
            ("device_id", Kind::Str),
            ("user_name", Kind::OptStr),
            ("since", Kind::OptStr),
        ],
        "ping" | "logout" => &[("id", Kind::U64)],
        "set_push_id" => &[("id", Kind::U64), ("push_id", Kind::Str), ("provider", Kind::Str)],
        "renew_token" => &[("id", Kind::U64), ("token", Kind::Str)],
        _ => &[],
    }
}

/// Every key some frame type knows, and `t`.
const KNOWN_KEYS: &[&str] = &[
    "t",
    "id",
    "app_id",
    "user_id",
    "token",
    "sdk_version",
    "platform",
    "device_id",
    "user_name",
    "since",
    "push_id",
    "provider",
];

/// What `decode_client` must make of an object written with these entries in this order.
///
/// The rules: `t` must be a string naming a frame type; each field of that type must have its
/// type (`id` an unsigned 64-bit integer, `app_id` a 32-bit one, strings strings; the optional ones
/// may be absent or null); keys the type does not know are ignored, however often they repeat;
/// `t` or a known field given twice is refused.
fn model(entries: &[(String, Value)]) -> Option<ClientFrame> {
    let count = |key: &str| entries.iter().filter(|(k, _)| k == key).count();
    let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    if count("t") != 1 {
        return None;
    }
    let t = get("t")?.as_str()?;
    if !TYPES.contains(&t) {
        return None;
    }
    let mut u64s = std::collections::HashMap::new();
    let mut strs = std::collections::HashMap::new();
    let mut opts = std::collections::HashMap::new();
    for (name, kind) in fields(t) {
        if count(name) > 1 {
            return None;
        }
        let value = get(name);
        match kind {
            Kind::U64 => {
                u64s.insert(*name, value?.as_u64()?);
            }
            Kind::U32 => {
                u64s.insert(*name, value?.as_u64().filter(|n| *n <= u64::from(u32::MAX))?);
            }
            Kind::Str => {
                strs.insert(*name, value?.as_str()?.to_owned());
            }
            Kind::OptStr => {
                let v = match value {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => return None,
                };
                opts.insert(*name, v);
            }
        }
    }
    let mut s = |k: &str| strs.remove(k).expect("checked");
    let id = u64s["id"];
    Some(match t {
        "login" => ClientFrame::Login(Login {
            id,
            app_id: u64s["app_id"] as u32,
            user_id: s("user_id"),
            token: s("token"),
            sdk_version: s("sdk_version"),
            platform: s("platform"),
            device_id: s("device_id"),
            user_name: opts["user_name"].clone(),
            since: opts["since"].clone(),
        }),
        "ping" => ClientFrame::Ping { id },
        "set_push_id" => ClientFrame::SetPushId { id, push_id: s("push_id"), provider: s("provider") },
        "renew_token" => ClientFrame::RenewToken { id, token: s("token") },
        "logout" => ClientFrame::Logout { id },
        _ => unreachable!(),
    })
}

/// A value for a known field: mostly of the right type (so whole frames get accepted), sometimes
/// anything at all, including the near misses (`1.0`, `-1`, `2^32`, numbers as strings).
fn field_value(kind: Kind) -> BoxedStrategy<Value> {
    let right = match kind {
        Kind::U64 => any::<u64>().prop_map(Value::from).boxed(),
        Kind::U32 => any::<u32>().prop_map(Value::from).boxed(),
        Kind::Str | Kind::OptStr => any::<String>().prop_map(Value::String).boxed(),
    };
    let near_miss = prop_oneof![
        Just(Value::from(1.0)),
        Just(Value::from(-1)),
        Just(Value::from(u64::from(u32::MAX) + 1)),
        Just(Value::from("1")),
        Just(Value::Null),
    ];
    prop_oneof![24 => right, 1 => near_miss, 1 => json_value()].boxed()
}

/// An object's entries: maybe a `t`, values for some of the known keys, extra keys, a few keys
/// repeated, all in a random order.
fn entries() -> impl Strategy<Value = Vec<(String, Value)>> {
    let t = prop_oneof![
        8 => prop::sample::select(TYPES).prop_map(Value::from),
        1 => prop::sample::select(vec!["Ping", "pong", "login ", ""]).prop_map(Value::from),
        1 => json_value(),
    ];
    let known: Vec<BoxedStrategy<Option<(String, Value)>>> = KNOWN_KEYS[1..]
        .iter()
        .map(|name| {
            let kind = TYPES.iter().flat_map(|t| fields(t)).find(|(n, _)| n == name).expect("a field").1;
            prop::option::weighted(0.97, field_value(kind)).prop_map(move |v| v.map(|v| (name.to_string(), v))).boxed()
        })
        .collect();
    let extra_key = any::<String>().prop_filter("not a known key", |k| !KNOWN_KEYS.contains(&k.as_str()));
    (
        prop::option::weighted(0.95, t),
        known,
        prop::collection::vec((extra_key, json_value()), 0..4),
        prop::collection::vec(any::<prop::sample::Index>(), 0..2),
    )
        .prop_flat_map(|(t, known, extra, repeats)| {
            let mut entries: Vec<(String, Value)> = t.map(|t| ("t".to_string(), t)).into_iter().collect();
            entries.extend(known.into_iter().flatten());
            entries.extend(extra);
            if !entries.is_empty() {
                for r in repeats {
                    let again = entries[r.index(entries.len())].clone();
                    entries.push(again);
                }
            }
            Just(entries).prop_shuffle()
        })
}

/// The object as text, entries in the given order (a `serde_json::Map` would merge repeats).
fn object_text(entries: &[(String, Value)]) -> String {
    let body: Vec<String> = entries.iter().map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v)).collect();
    format!("{{{}}}", body.join(","))
}

/// The frame as serde's sequence form: the tag, then the fields in declaration order.
fn positional(frame: &ClientFrame) -> Value {
    match frame {
        ClientFrame::Login(l) => json!([
            "login",
            l.id,
            l.app_id,
            l.user_id,
            l.token,
            l.sdk_version,
            l.platform,
            l.device_id,
            l.user_name,
            l.since
        ]),
        ClientFrame::Ping { id } => json!(["ping", id]),
        ClientFrame::SetPushId { id, push_id, provider } => json!(["set_push_id", id, push_id, provider]),
        ClientFrame::RenewToken { id, token } => json!(["renew_token", id, token]),
        ClientFrame::Logout { id } => json!(["logout", id]),
    }
}

// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes give an answer: a frame or an error, never a panic. The server-frame parser (the
    /// SDK's) likewise.
    #[test]
    fn any_bytes_are_an_answer(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = frame::decode_client(&bytes);
        let _ = frame::decode_server(&bytes);
    }

    /// Any JSON value at all (the shape the gateway sees most from a confused client); only an
    /// object can be a client frame.
    #[test]
    fn any_json_is_an_answer(value in json_value()) {
        let text = value.to_string();
        let decoded = frame::decode_client(text.as_bytes());
        if !value.is_object() {
            prop_assert!(decoded.is_err(), "{text} decoded to {decoded:?}");
        }
        let _ = frame::decode_server(text.as_bytes());
    }

    /// A frame's values as a positional array (`["ping",1]`), which serde's tagged enums would
    /// take, are refused: docs/protocol.md frames are objects.
    #[test]
    fn positional_arrays_are_refused(frame in client_frame(), space in "[ \t\r\n]{0,3}") {
        let text = format!("{space}{}", positional(&frame));
        let decoded = frame::decode_client(text.as_bytes());
        prop_assert!(decoded.is_err(), "{text} decoded to {decoded:?}");
        // The same frame as an object, after the same whitespace, still decodes.
        let object_text = format!("{space}{}", String::from_utf8(frame::encode_client(&frame)).unwrap());
        prop_assert_eq!(frame::decode_client(object_text.as_bytes()).unwrap(), frame);
    }

    /// Nesting far past serde_json's limit of 128 is refused, not a stack overflow; a 64 KiB client
    /// message could nest 32,000 deep.
    #[test]
    fn deep_nesting_is_refused(depth in 129usize..40_000, object in any::<bool>(), inside_a_frame in any::<bool>()) {
        let (open, close) = if object { (r#"{"a":"#, "}") } else { ("[", "]") };
        let nested = format!("{}0{}", open.repeat(depth), close.repeat(depth));
        let text = if inside_a_frame { format!(r#"{{"t":"ping","id":{nested}}}"#) } else { nested };
        prop_assert!(frame::decode_client(text.as_bytes()).is_err());
        prop_assert!(frame::decode_server(text.as_bytes()).is_err());
    }

    /// Every client frame survives encode then decode, and its encoding starts with `t`.
    #[test]
    fn client_frames_round_trip(frame in client_frame()) {
        let bytes = frame::encode_client(&frame);
        prop_assert!(bytes.starts_with(br#"{"t":""#), "t is not first");
        prop_assert_eq!(frame::decode_client(&bytes).unwrap(), frame);
    }

    /// Server frames too (the SDK parses these from the network).
    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        let bytes = frame::encode_server(&frame);
        prop_assert!(bytes.starts_with(br#"{"t":""#), "t is not first");
        prop_assert_eq!(frame::decode_server(&bytes).unwrap(), frame);
    }

    /// A JSON object is accepted exactly when the model says so, as exactly the model's frame,
    /// whatever the order of its keys and whatever unknown keys come with it.
    #[test]
    fn objects_are_accepted_exactly_as_the_model_says(entries in entries()) {
        let text = object_text(&entries);
        let decoded = frame::decode_client(text.as_bytes()).ok();
        prop_assert_eq!(decoded, model(&entries), "{}", text);
    }

    /// Unknown keys never change the outcome: a valid frame stays the same frame with any extra
    /// keys anywhere, and an invalid one stays invalid.
    #[test]
    fn extra_keys_never_change_the_outcome(
        entries in entries(),
        extra in prop::collection::vec(
            (any::<String>().prop_filter("unknown", |k| !KNOWN_KEYS.contains(&k.as_str())), json_value(), any::<prop::sample::Index>()),
            1..4,
        ),
    ) {
        let before = frame::decode_client(object_text(&entries).as_bytes()).ok();
        let mut more = entries.clone();
        for (key, value, at) in extra {
            more.insert(at.index(more.len() + 1), (key, value));
        }
        let after = frame::decode_client(object_text(&more).as_bytes()).ok();
        prop_assert_eq!(before, after);
    }
}
