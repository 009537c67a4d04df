//! Property tests of the config loader, which reads a file an operator may have got wrong in any
//! way: any text is a config or an error, never a panic; and an error never shows a secret.
//!
//! The secrets are the apps' `server_secret`, a webhook's `secret` and `admin.token`. Configs are
//! made from a valid template (secrets random, in several places and string styles), then broken:
//! a char deleted or inserted, a line duplicated or swapped, a key renamed, a value's type changed,
//! the text cut short. "Never shows a secret" is checked as "contains no 8-char piece of one", so
//! a secret cut short or edited by the breakage is caught too.

use herald_server::config::Config;
use proptest::prelude::*;
use proptest::sample::Index;

/// Secrets from letters, digits and the punctuation that means something in TOML (`=`, `#`, `[`,
/// `]`, `{`, `}`, `,`, `.`), so an error that cuts a line at the wrong place shows.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9=#\\[\\]{},.:;!@$%^&*()+_ -]{32}"
}

/// How a secret is written.
#[derive(Debug, Clone, Copy)]
enum Style {
    Basic,
    Literal,
    /// `"""` then a line break: the secret sits alone on the next line.
    MultiLine,
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![Just(Style::Basic), Just(Style::Literal), Just(Style::MultiLine)]
}

fn quoted(s: &str, style: Style) -> String {
    match style {
        Style::Basic => format!("\"{s}\""),
        Style::Literal => format!("'{s}'"),
        Style::MultiLine => format!("\"\"\"\n{s}\"\"\""),
    }
}

/// A valid config: two apps (the first with a webhook secret), an admin token, and some other
/// tables around them in an order of the generator's choosing.
#[derive(Debug, Clone)]
struct Template {
    secrets: Vec<String>,
    text: String,
}

fn template() -> impl Strategy<Value = Template> {
    (
        prop::collection::vec(secret(), 4),
        prop::collection::vec(style(), 4),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec!["", "  # the secret", "   "]),
    )
        .prop_map(|(secrets, styles, admin_first, inline_first_app, comments, trailer)| {
            let [s0, s1, s2, s3] = [0, 1, 2, 3].map(|i| quoted(&secrets[i], styles[i]));
            let admin = format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = {s3}{trailer}\n");
            let head = "listen = \"127.0.0.1:0\"\nlog = \"warn\"\n[api]\nmax_body_bytes = 1024\n[gateway]\nlogin_timeout_ms = 5000\n";
            let comment = if comments { "# an app\n" } else { "" };
            let first_app = if inline_first_app {
                // The limits as an inline table instead of a table of their own.
                format!(
                    "{comment}[[apps]]\napp_id = 7\nserver_secret = {s0}{trailer}\nlimits = {{ broadcast_per_second = 2 }}\n"
                )
            } else {
                format!("{comment}[[apps]]\napp_id = 7\nserver_secret = {s0}{trailer}\n[apps.limits]\nbroadcast_per_day = 50\n")
            };
            let webhook = format!(
                "[apps.push.webhook]\nurl = \"http://127.0.0.1:1/hook\"\nsecret = {s1}{trailer}\nconcurrency = 2\n"
            );
            let second_app = format!("[[apps]]\nserver_secret = {s2}{trailer}\napp_id = 8\n");
            let mut text = head.to_string();
            if admin_first {
                text.push_str(&admin);
            }
            text.push_str(&first_app);
            text.push_str(&webhook);
            text.push_str(&second_app);
            if !admin_first {
                text.push_str(&admin);
            }
            Template { secrets, text }
        })
}

/// One way to break a config.
#[derive(Debug, Clone)]
enum Breakage {
    DeleteChar(Index),
    InsertChar(Index, char),
    DuplicateLine(Index, Index),
    SwapLines(Index, Index),
    /// A typo in a `key = value` line's key, or another key of the config in its place.
    RenameKey(Index, KeyChange),
    /// A `key = value` line's value replaced by one of another type (maybe carrying the old value).
    ChangeType(Index, NewValue),
    CutShort(Index),
}

#[derive(Debug, Clone)]
enum KeyChange {
    Delete(Index),
    Insert(Index, char),
    Swap(Index),
    Other(&'static str),
}

#[derive(Debug, Clone)]
enum NewValue {
    Int,
    Float,
    Bool,
    Date,
    EmptyArray,
    /// `[old]`, `{ x = old }`, and the old value with its quotes dropped or added.
    ArrayOfOld,
    TableOfOld,
    Unquoted,
    QuotedWhole,
}

const KEYS: &[&str] = &[
    "app_id",
    "server_secret",
    "secret",
    "token",
    "url",
    "listen",
    "log",
    "max_body_bytes",
    "broadcast_per_day",
    "concurrency",
    "data_dir",
];

fn breakage() -> impl Strategy<Value = Breakage> {
    let key_change = prop_oneof![
        any::<Index>().prop_map(KeyChange::Delete),
        (any::<Index>(), prop::char::range('a', 'z')).prop_map(|(i, c)| KeyChange::Insert(i, c)),
        any::<Index>().prop_map(KeyChange::Swap),
        prop::sample::select(KEYS).prop_map(KeyChange::Other),
    ];
    let new_value = prop_oneof![
        Just(NewValue::Int),
        Just(NewValue::Float),
        Just(NewValue::Bool),
        Just(NewValue::Date),
        Just(NewValue::EmptyArray),
        Just(NewValue::ArrayOfOld),
        Just(NewValue::TableOfOld),
        Just(NewValue::Unquoted),
        Just(NewValue::QuotedWhole),
    ];
    prop_oneof![
        2 => any::<Index>().prop_map(Breakage::DeleteChar),
        1 => (any::<Index>(), prop_oneof![Just('"'), Just('\''), Just('='), Just('['), Just('\n'), any::<char>()])
            .prop_map(|(i, c)| Breakage::InsertChar(i, c)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Breakage::DuplicateLine(a, b)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Breakage::SwapLines(a, b)),
        2 => (any::<Index>(), key_change).prop_map(|(i, k)| Breakage::RenameKey(i, k)),
        2 => (any::<Index>(), new_value).prop_map(|(i, v)| Breakage::ChangeType(i, v)),
        1 => any::<Index>().prop_map(Breakage::CutShort),
    ]
}

/// Byte offsets of the char boundaries of `s`, its end included.
fn boundaries(s: &str) -> Vec<usize> {
    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect()
}

fn apply(text: &str, breakage: &Breakage) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let assignment_lines: Vec<usize> =
        (0..lines.len()).filter(|&i| lines[i].contains('=') && !lines[i].trim_start().starts_with('[')).collect();
    let join = |lines: &[String]| lines.join("\n") + "\n";
    let nothing_to_break = match breakage {
        Breakage::RenameKey(..) | Breakage::ChangeType(..) => assignment_lines.is_empty(),
        _ => lines.is_empty(),
    };
    if nothing_to_break {
        return text.to_string();
    }
    match breakage {
        Breakage::DeleteChar(at) => {
            let b = boundaries(text);
            let i = b[at.index(b.len() - 1)];
            let mut s = text.to_string();
            s.remove(i);
            s
        }
        Breakage::InsertChar(at, c) => {
            let b = boundaries(text);
            let mut s = text.to_string();
            s.insert(b[at.index(b.len())], *c);
            s
        }
        Breakage::DuplicateLine(from, to) => {
            let line = lines[from.index(lines.len())].clone();
            lines.insert(to.index(lines.len() + 1), line);
            join(&lines)
        }
        Breakage::SwapLines(a, b) => {
            let (a, b) = (a.index(lines.len()), b.index(lines.len()));
            lines.swap(a, b);
            join(&lines)
        }
        Breakage::RenameKey(at, change) => {
            let n = assignment_lines[at.index(assignment_lines.len())];
            let (key, rest) = lines[n].split_once('=').expect("an assignment");
            let key = key.trim();
            let mut chars: Vec<char> = key.chars().collect();
            let new_key = match change {
                KeyChange::Delete(i) if chars.len() > 1 => {
                    chars.remove(i.index(chars.len()));
                    chars.into_iter().collect()
                }
                KeyChange::Insert(i, c) => {
                    chars.insert(i.index(chars.len() + 1), *c);
                    chars.into_iter().collect()
                }
                KeyChange::Swap(i) if chars.len() > 1 => {
                    let i = i.index(chars.len() - 1);
                    chars.swap(i, i + 1);
                    chars.into_iter().collect()
                }
                KeyChange::Other(k) => k.to_string(),
                _ => format!("{key}x"),
            };
            lines[n] = format!("{new_key} ={rest}");
            join(&lines)
        }
        Breakage::ChangeType(at, value) => {
            let n = assignment_lines[at.index(assignment_lines.len())];
            let (key, old) = lines[n].split_once('=').expect("an assignment");
            let old = old.trim();
            let unquoted = old.trim_matches(|c| c == '"' || c == '\'');
            let new = match value {
                NewValue::Int => "42".to_string(),
                NewValue::Float => "1.5".to_string(),
                NewValue::Bool => "true".to_string(),
                NewValue::Date => "1979-05-27T07:32:00Z".to_string(),
                NewValue::EmptyArray => "[]".to_string(),
                NewValue::ArrayOfOld => format!("[{old}]"),
                NewValue::TableOfOld => format!("{{ x = {old} }}"),
                NewValue::Unquoted => unquoted.to_string(),
                NewValue::QuotedWhole => format!("\"{unquoted}\""),
            };
            lines[n] = format!("{key}= {new}");
            join(&lines)
        }
        Breakage::CutShort(at) => {
            let b = boundaries(text);
            text[..b[at.index(b.len())]].to_string()
        }
    }
}

/// Fails if `shown` holds any 8-char piece of any secret.
fn assert_no_secret(shown: &str, secrets: &[String], text: &str) -> Result<(), TestCaseError> {
    for secret in secrets {
        let chars: Vec<char> = secret.chars().collect();
        for piece in chars.windows(8) {
            let piece: String = piece.iter().collect();
            prop_assert!(
                !shown.contains(&piece),
                "a piece of secret {secret:?} ({piece:?}) is in {shown:?}\nconfig:\n{text}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The generator makes valid configs, whose `Debug` shows no secret.
    #[test]
    fn templates_parse_and_debug_hides_secrets(t in template()) {
        let config = Config::parse(&t.text, &|_| None).map_err(|e| TestCaseError::fail(format!("{e}\n{}", t.text)))?;
        prop_assert_eq!(config.apps.len(), 2);
        assert_no_secret(&format!("{config:?}"), &t.secrets, &t.text)?;
    }

    /// A broken config is refused (or, when the breakage was harmless, accepted), and no error
    /// message shows any piece of any secret.
    #[test]
    fn errors_never_show_a_secret(t in template(), breakages in prop::collection::vec(breakage(), 1..4)) {
        let mut text = t.text.clone();
        for b in &breakages {
            text = apply(&text, b);
        }
        match Config::parse(&text, &|_| None) {
            Ok(config) => assert_no_secret(&format!("{config:?}"), &t.secrets, &text)?,
            Err(e) => {
                assert_no_secret(&e.to_string(), &t.secrets, &text)?;
                assert_no_secret(&format!("{e:?}"), &t.secrets, &text)?;
            }
        }
    }

    /// Any text at all: a config or an error, never a panic.
    #[test]
    fn any_text_is_an_answer(text in any::<String>()) {
        let _ = Config::parse(&text, &|_| None);
    }

    /// Lines that look like TOML, in any order and any number: a config or an error, never a panic.
    #[test]
    fn toml_like_lines_are_an_answer(lines in prop::collection::vec(prop_oneof![
        Just("[[apps]]".to_string()),
        Just("[apps.limits]".to_string()),
        Just("[apps.push.webhook]".to_string()),
        Just("[admin]".to_string()),
        Just("[gateway]".to_string()),
        Just("[cluster]".to_string()),
        (prop::sample::select(KEYS), "\\PC{0,12}").prop_map(|(k, v)| format!("{k} = {v}")),
        (prop::sample::select(KEYS), "[ -~]{0,40}").prop_map(|(k, v)| format!("{k} = \"{v}\"")),
        (prop::sample::select(KEYS), any::<i64>()).prop_map(|(k, v)| format!("{k} = {v}")),
        "\\PC{0,30}",
    ], 0..16)) {
        let _ = Config::parse(&lines.join("\n"), &|_| None);
    }
}

/// The smallest configs the property above found that show a secret: `parse_error` names the
/// "key" of the error's line as everything before its first `=` (or the whole line when it starts
/// with `[`), but the line may be no `key = value` line at all: a key whose `=` was forgotten,
/// a line inside a multi-line string or array, the closing line of one. Then what it names is
/// part of the secret.
#[test]
fn the_key_of_an_error_line_is_never_a_secret() {
    let secret = "s3cr3t=s3cr3t5s3cr3t5s3cr3t5abcd";
    let multi = "s3cr3t5s3cr3t5s3cr3t5s3cr3t5abcd";
    let token = "dGhpcyBpcyBhIHNlY3JldCB0b2tlbg==";
    for text in [
        // The `=` after the key forgotten, and the secret holds a `=`.
        format!("[[apps]]\napp_id = 7\nserver_secret \"{secret}\"\n"),
        // The same with a Base64 admin token: all of it but the padding is shown.
        format!("[admin]\ntoken \"{token}\"\n"),
        // The closing line of a multi-line string, joined to the next line.
        format!("[[apps]]\napp_id = 7\nserver_secret = \"\"\"\n{multi}\"\"\"broadcast_enabled = true\n"),
        // A line of a multi-line string that starts with `[` is taken for a table header.
        format!("[[apps]]\napp_id = 7\nserver_secret = \"\"\"\n[{}\"\"\" x\n", &multi[1..]),
    ] {
        let err = Config::parse(&text, &|_| None).unwrap_err().to_string();
        assert!(!err.contains("s3cr3t") && !err.contains("dGhpcyBp"), "{text:?} shows a secret: {err}");
    }
}
