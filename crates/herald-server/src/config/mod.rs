//! The server's configuration: one TOML file, typed, validated once at start.
//!
//! Unknown keys are refused (a typo must not silently fall back to a default), every limit has
//! a named default, and secrets print masked. A few environment variables override the file;
//! they are listed in [`ENV_OVERRIDES`] and in the README.
//!
//! The tables of the parts live beside this file (`push.rs`, `cluster.rs`); nothing here imports
//! the parts it configures, so every part can depend on its configuration and never the reverse.

mod cluster;
mod push;

pub use cluster::{ClusterConfig, MAX_NODE_ID};
use herald_proto::message::{MessageType, BROADCASTABLE};
pub use push::{ApnsConfig, AppPushConfig, ChannelConfig, FcmConfig, PushSettings, WebhookConfig};
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A server secret: 32 characters, used as the AES-256 key of Token04 and the md5 salt of API
/// signatures. Its `Debug` and `Display` never show it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the server API (`/`) and the WebSocket gateway (`/ws`).
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Where the embedded store and the development app live.
    #[serde(default = "defaults::data_dir")]
    pub data_dir: PathBuf,
    /// `tracing` filter, e.g. `info` or `herald_server=debug`.
    #[serde(default = "defaults::log")]
    pub log: String,
    /// `text` (colours only when the output is a terminal) or `json`: one JSON object a line,
    /// with the same fields, for log shippers.
    #[serde(default)]
    pub log_format: LogFormat,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// Cluster mode (`[cluster]`): absent means a single node.
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
    /// The offline-push worker (`[push]`); providers are per app (`[apps.push]`).
    #[serde(default)]
    pub push: PushSettings,
    /// The operators' listener (`[admin]`): metrics, console, OpenAPI (docs/admin.md).
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub apps: Vec<AppConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://...`; empty means
    /// `sqlite://{data_dir}/herald.db`.
    #[serde(default)]
    pub url: String,
    /// PostgreSQL connections this node may hold. Nodes of a cluster each hold their own pool,
    /// so together they must stay under the server's `max_connections` (100 by default).
    #[serde(default = "defaults::store_max_connections")]
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Largest request body read, in bytes; larger bodies answer 100000012.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Allowed clock skew of `Timestamp`, in seconds, and how long a used `SignatureNonce` is
    /// remembered (ZIM documents ±10 min).
    #[serde(default = "defaults::signature_window_s")]
    pub signature_window_s: u64,
    /// A request's headers must arrive within this, and then its body within this (100000012
    /// after it, and the connection is closed): a client that trickles holds nothing for long.
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// HTTP connections one client address may hold open before it has made a signed request;
    /// more are closed at once. 0: no cap. Behind a load balancer every client shares its
    /// address: raise this, or set 0.
    #[serde(default = "defaults::max_connections_per_ip")]
    pub max_connections_per_ip: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Interval the server asks clients to ping at, advertised at login.
    #[serde(default = "defaults::heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// Silence after which a session is closed (4001) and its user may go offline.
    #[serde(default = "defaults::heartbeat_timeout_ms")]
    pub heartbeat_timeout_ms: u64,
    /// Time a new socket has to send `login` (4004 after it).
    #[serde(default = "defaults::login_timeout_ms")]
    pub login_timeout_ms: u64,
    /// Sessions (devices) one user may hold at once; a login past it is refused (4504).
    #[serde(default = "defaults::max_sessions_per_user")]
    pub max_sessions_per_user: usize,
    /// Largest client message accepted, in bytes (4505 above it).
    #[serde(default = "defaults::max_client_frame_bytes")]
    pub max_client_frame_bytes: usize,
    /// Frames a session may have queued but unwritten before it is closed as a slow
    /// consumer (4002).
    #[serde(default = "defaults::outbox_frames")]
    pub outbox_frames: usize,
    /// Bytes a session may have queued but unwritten before it is closed as a slow consumer.
    #[serde(default = "defaults::outbox_bytes")]
    pub outbox_bytes: usize,
    /// How long a socket may refuse to drain a non-empty outbox before it is closed (4002).
    #[serde(default = "defaults::write_stall_timeout_ms")]
    pub write_stall_timeout_ms: u64,
    /// Client frames per second a session may send (burst: twice that) before 4005.
    #[serde(default = "defaults::client_frames_per_second")]
    pub client_frames_per_second: u32,
    /// Longest `device_id` a client may send at login (6000004 past it).
    #[serde(default = "defaults::device_id_max_bytes")]
    pub device_id_max_bytes: usize,
    /// Longest push ID a client may report (6000004 past it).
    #[serde(default = "defaults::push_id_max_bytes")]
    pub push_id_max_bytes: usize,
    /// WebSocket sessions the server holds at once; upgrades past it answer HTTP 503.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// WebSocket connections one client address may hold before they log in; upgrades past it
    /// answer HTTP 429. 0: no cap. Behind a load balancer every client shares its address:
    /// raise this, or set 0.
    #[serde(default = "defaults::max_pending_per_ip")]
    pub max_pending_per_ip: usize,
    /// How long a broadcast stays replayable to a client that logs in again with `since`
    /// (docs/protocol.md, "Recovery"); 0 turns recovery off.
    #[serde(default = "defaults::recovery_window_s")]
    pub recovery_window_s: u64,
    /// Broadcasts per app kept for recovery, the newest; with the window, this bounds the
    /// memory recovery takes (about this many encoded messages per app).
    #[serde(default = "defaults::recovery_max_messages")]
    pub recovery_max_messages: usize,
    /// Users this node remembers as registered, so their logins skip the store (users are never
    /// deleted); when full it starts over. 0: every login asks the store.
    #[serde(default = "defaults::known_users_max")]
    pub known_users_max: usize,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[admin]`: a second listener for operators, apart from the public one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Loopback by default: the console and metrics are not for the internet.
    #[serde(default = "defaults::admin_listen")]
    pub listen: SocketAddr,
    /// Signs operators in to the console and its JSON API (at least 16 characters). Unset: the
    /// console is off (metrics and the OpenAPI document are still served).
    #[serde(default)]
    pub token: Option<Secret>,
    /// Whether `/metrics` needs the token too (`Authorization: Bearer …`).
    #[serde(default)]
    pub metrics_require_token: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub app_id: u32,
    pub server_secret: Secret,
    /// Whether `SendMessageToAllUsers` is allowed for this app (660000028 when not).
    #[serde(default = "defaults::yes")]
    pub broadcast_enabled: bool,
    #[serde(default)]
    pub limits: AppLimits,
    /// Offline push (PushType 1 and 2): providers, paging, retries.
    #[serde(default)]
    pub push: AppPushConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppLimits {
    /// Broadcasts per rolling second.
    #[serde(default = "defaults::broadcast_per_second")]
    pub broadcast_per_second: u32,
    /// Broadcasts per rolling 24 h.
    #[serde(default = "defaults::broadcast_per_day")]
    pub broadcast_per_day: u32,
    /// `MessageBody.Message` cap in bytes (ZIM: 2 KB default, at most 32 KB).
    #[serde(default = "defaults::message_max_bytes")]
    pub message_max_bytes: usize,
    /// `MessageBody.ExtendedData` cap in bytes.
    #[serde(default = "defaults::extended_data_max_bytes")]
    pub extended_data_max_bytes: usize,
    /// `MessageType`s a broadcast may carry.
    #[serde(default = "defaults::broadcast_types")]
    pub broadcast_message_types: Vec<u32>,
    /// Users per `UserRegister`/`QueryUserInfos`/`ModifyUserInfo`/`QueryUserOnlineState` call.
    #[serde(default = "defaults::users_per_call")]
    pub users_per_call: usize,
    #[serde(default = "defaults::user_name_max_bytes")]
    pub user_name_max_bytes: usize,
    #[serde(default = "defaults::user_avatar_max_bytes")]
    pub user_avatar_max_bytes: usize,
    #[serde(default = "defaults::user_extra_max_bytes")]
    pub user_extra_max_bytes: usize,
}

/// "1, 11, 12, 13, 14, 200": the types ZIM lets a broadcast carry, for messages.
pub fn broadcastable_list() -> String {
    BROADCASTABLE.iter().map(|t| t.code().to_string()).collect::<Vec<_>>().join(", ")
}

/// The hard ceiling ZIM documents for a message body.
pub const MESSAGE_MAX_BYTES_CEILING: usize = 32 * 1024;

mod defaults {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    pub fn admin_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9090))
    }
    pub fn data_dir() -> PathBuf {
        PathBuf::from("herald-data")
    }
    pub fn log() -> String {
        "info".into()
    }
    pub fn store_max_connections() -> u32 {
        herald_store::postgres::MAX_CONNECTIONS
    }
    pub fn max_body_bytes() -> usize {
        256 * 1024
    }
    pub fn signature_window_s() -> u64 {
        600
    }
    pub fn request_timeout_ms() -> u64 {
        10_000
    }
    // Per-address caps, high enough that a load balancer in front (every client behind one
    // address) does not trip them in a reconnect storm of a full node; low enough that one
    // address cannot hold every descriptor of a node (20,000 here).
    pub fn max_connections_per_ip() -> usize {
        10_000
    }
    pub fn max_pending_per_ip() -> usize {
        10_000
    }
    pub fn heartbeat_interval_ms() -> u64 {
        30_000
    }
    pub fn heartbeat_timeout_ms() -> u64 {
        90_000
    }
    pub fn login_timeout_ms() -> u64 {
        10_000
    }
    pub fn max_sessions_per_user() -> usize {
        10
    }
    pub fn max_client_frame_bytes() -> usize {
        64 * 1024
    }
    pub fn outbox_frames() -> usize {
        256
    }
    pub fn outbox_bytes() -> usize {
        1024 * 1024
    }
    pub fn write_stall_timeout_ms() -> u64 {
        10_000
    }
    pub fn client_frames_per_second() -> u32 {
        20
    }
    pub fn device_id_max_bytes() -> usize {
        64
    }
    pub fn push_id_max_bytes() -> usize {
        512
    }
    pub fn max_connections() -> usize {
        100_000
    }
    pub fn known_users_max() -> usize {
        200_000
    }
    pub fn recovery_window_s() -> u64 {
        300
    }
    pub fn recovery_max_messages() -> usize {
        1000
    }
    pub fn yes() -> bool {
        true
    }
    pub fn broadcast_per_second() -> u32 {
        1
    }
    pub fn broadcast_per_day() -> u32 {
        100
    }
    pub fn message_max_bytes() -> usize {
        2048
    }
    pub fn extended_data_max_bytes() -> usize {
        1024
    }
    pub fn broadcast_types() -> Vec<u32> {
        super::BROADCASTABLE.iter().map(|t| t.code()).collect()
    }
    pub fn users_per_call() -> usize {
        100
    }
    pub fn user_name_max_bytes() -> usize {
        256
    }
    pub fn user_avatar_max_bytes() -> usize {
        500
    }
    pub fn user_extra_max_bytes() -> usize {
        2048
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}
impl Default for AdminConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}
impl Default for ApiConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}
impl Default for GatewayConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}
impl Default for AppLimits {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}
impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

/// Why a configuration was refused; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("invalid config: {key}: {problem}")]
    Invalid { key: String, problem: String },
}

/// A TOML or type error, told by line and key. toml's own rendering quotes the offending line,
/// and serde's names the offending value; either can be a `server_secret` or a webhook
/// `secret`, which must not reach a terminal or a log. So the line is never quoted, and values
/// are cut out of the message.
fn parse_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = without_values(e.message().trim());
    let Some(at) = e.span().map(|span| span.start) else { return ConfigError::Parse(message) };
    let line_no = text[..at.min(text.len())].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    // The key of a `key = value` line (never its value), or a `[table]` header — but only when
    // it looks like one: the failing line may be inside a multi-line string or lack its `=`,
    // and then whatever stands before an `=` is part of a value.
    let key = match line.split_once('=') {
        Some((key, _)) => key.trim(),
        None => line.trim_start_matches('[').trim_end_matches(']'),
    };
    let key = if looks_like_key(key) { key } else { "" };
    let place = if key.is_empty() { format!("line {line_no}") } else { format!("line {line_no} ({key})") };
    ConfigError::Parse(format!("{place}: {message}"))
}

/// A bare TOML key or dotted path (`apps.push.webhook`, `server_secret`), as Herald's keys are.
fn looks_like_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('.').all(|part| {
            let part = part.trim();
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// `invalid type: string "…", expected u32` loses its `"…"`; the kinds and the expectation
/// stay, and so does everything that names keys (`unknown field`, `duplicate key`).
fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let kind = rest.split([' ', ',']).next().unwrap_or("");
            let expected = rest.find(", expected").map_or("", |i| &rest[i..]);
            return format!("{prefix}{kind}{expected}");
        }
    }
    message.lines().next().unwrap_or("").to_string()
}

pub(crate) fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), problem: problem.into() }
}

/// Environment variables that override the file, and the key each one sets.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("HERALD_LISTEN", "listen"),
    ("HERALD_ADMIN_LISTEN", "admin.listen"),
    ("HERALD_DATA_DIR", "data_dir"),
    ("HERALD_LOG", "log"),
    ("HERALD_STORE_URL", "store.url"),
    ("HERALD_TLS_CERT", "tls.cert"),
    ("HERALD_TLS_KEY", "tls.key"),
];

impl Config {
    /// Parses TOML text, applies `env` overrides, and validates.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| parse_error(text, &e))?;
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads `path` (or starts from defaults when `None`) with the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => {
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.to_path_buf(), source })?
            }
            None => String::new(),
        };
        Config::parse(&text, &|k| std::env::var(k).ok())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for (var, key) in ENV_OVERRIDES {
            let Some(value) = env(var) else { continue };
            match *key {
                "listen" => {
                    self.listen =
                        value.parse().map_err(|e| invalid(format!("{var} (listen)"), format!("{value:?}: {e}")))?
                }
                "admin.listen" => {
                    self.admin.listen = value
                        .parse()
                        .map_err(|e| invalid(format!("{var} (admin.listen)"), format!("{value:?}: {e}")))?
                }
                "data_dir" => self.data_dir = PathBuf::from(value),
                "log" => self.log = value,
                "store.url" => self.store.url = value,
                "tls.cert" | "tls.key" => {
                    let tls = self.tls.get_or_insert_with(|| TlsConfig { cert: PathBuf::new(), key: PathBuf::new() });
                    if *key == "tls.cert" {
                        tls.cert = PathBuf::from(value);
                    } else {
                        tls.key = PathBuf::from(value);
                    }
                }
                _ => unreachable!("every override names a handled key"),
            }
        }
        Ok(())
    }

    /// Checks every value a type cannot express; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(tls) = &self.tls {
            if tls.cert.as_os_str().is_empty() || tls.key.as_os_str().is_empty() {
                return Err(invalid("tls", "both tls.cert and tls.key must be set"));
            }
        }
        let g = &self.gateway;
        if g.heartbeat_interval_ms == 0 {
            return Err(invalid("gateway.heartbeat_interval_ms", "must be > 0"));
        }
        if g.heartbeat_timeout_ms <= g.heartbeat_interval_ms {
            return Err(invalid("gateway.heartbeat_timeout_ms", "must be greater than gateway.heartbeat_interval_ms"));
        }
        for (key, v) in [
            ("gateway.login_timeout_ms", g.login_timeout_ms as usize),
            ("gateway.max_sessions_per_user", g.max_sessions_per_user),
            ("gateway.max_client_frame_bytes", g.max_client_frame_bytes),
            ("gateway.outbox_frames", g.outbox_frames),
            ("gateway.outbox_bytes", g.outbox_bytes),
            ("gateway.write_stall_timeout_ms", g.write_stall_timeout_ms as usize),
            ("gateway.client_frames_per_second", g.client_frames_per_second as usize),
            ("gateway.max_connections", g.max_connections),
            ("gateway.device_id_max_bytes", g.device_id_max_bytes),
            ("gateway.push_id_max_bytes", g.push_id_max_bytes),
            ("gateway.recovery_max_messages", g.recovery_max_messages),
            ("api.max_body_bytes", self.api.max_body_bytes),
            ("store.max_connections", self.store.max_connections as usize),
            ("api.signature_window_s", self.api.signature_window_s as usize),
            ("api.request_timeout_ms", self.api.request_timeout_ms as usize),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be > 0"));
            }
        }
        if let Some(c) = &self.cluster {
            c.validate(&self.store_url())?;
        }
        self.push.validate()?;
        if let Some(token) = &self.admin.token {
            if token.expose().chars().count() < 16 {
                return Err(invalid("admin.token", "must be at least 16 characters (it guards the console)"));
            }
        }
        if self.admin.metrics_require_token && self.admin.token.is_none() {
            return Err(invalid("admin.metrics_require_token", "needs admin.token to be set"));
        }
        let mut seen = HashSet::new();
        for (i, app) in self.apps.iter().enumerate() {
            app.push.validate(&format!("apps[{i}].push"))?;
            let key = |k: &str| format!("apps[{i}].{k}");
            if app.app_id == 0 {
                return Err(invalid(key("app_id"), "must be a non-zero 32-bit number"));
            }
            if !seen.insert(app.app_id) {
                return Err(invalid(key("app_id"), format!("{} appears twice", app.app_id)));
            }
            let secret = app.server_secret.expose();
            if secret.len() != 32 || !secret.is_ascii() {
                return Err(invalid(
                    key("server_secret"),
                    format!("must be 32 ASCII characters, got {}", secret.chars().count()),
                ));
            }
            let l = &app.limits;
            if l.broadcast_per_second == 0 {
                return Err(invalid(key("limits.broadcast_per_second"), "must be > 0"));
            }
            if l.broadcast_per_day == 0 {
                return Err(invalid(key("limits.broadcast_per_day"), "must be > 0"));
            }
            if l.message_max_bytes == 0 || l.message_max_bytes > MESSAGE_MAX_BYTES_CEILING {
                return Err(invalid(
                    key("limits.message_max_bytes"),
                    format!("must be 1..={MESSAGE_MAX_BYTES_CEILING}"),
                ));
            }
            if l.extended_data_max_bytes == 0 || l.extended_data_max_bytes > MESSAGE_MAX_BYTES_CEILING {
                return Err(invalid(
                    key("limits.extended_data_max_bytes"),
                    format!("must be 1..={MESSAGE_MAX_BYTES_CEILING}"),
                ));
            }
            for &t in &l.broadcast_message_types {
                if !MessageType::from_code(i64::from(t)).is_ok_and(MessageType::is_broadcastable) {
                    return Err(invalid(
                        key("limits.broadcast_message_types"),
                        format!("{t} cannot be broadcast; allowed: {}", broadcastable_list()),
                    ));
                }
            }
            for (k, v) in [
                ("limits.users_per_call", l.users_per_call),
                ("limits.user_name_max_bytes", l.user_name_max_bytes),
                ("limits.user_avatar_max_bytes", l.user_avatar_max_bytes),
                ("limits.user_extra_max_bytes", l.user_extra_max_bytes),
            ] {
                if v == 0 {
                    return Err(invalid(key(k), "must be > 0"));
                }
            }
        }
        Ok(())
    }

    /// This node's id in a cluster (0 for a single node): it goes into every id the node makes.
    pub fn node_id(&self) -> u16 {
        self.cluster.as_ref().map_or(0, |c| c.node_id)
    }

    pub fn store_url(&self) -> String {
        if self.store.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("herald.db").display())
        } else {
            self.store.url.clone()
        }
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.gateway.heartbeat_interval_ms)
    }

    pub fn recovery_window(&self) -> Duration {
        Duration::from_secs(self.gateway.recovery_window_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, &|_| None)
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../../../herald.example.toml");
        let c = parse(text).unwrap();
        assert_eq!(c.apps.len(), 1);
        assert_eq!(c.apps[0].app_id, 1234567890);
        assert_eq!(c.apps[0].limits.broadcast_per_day, 100);
        assert_eq!(c.listen.port(), 8080);
    }

    #[test]
    fn empty_config_has_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.gateway.heartbeat_interval_ms, 30_000);
        assert_eq!(c.gateway.heartbeat_timeout_ms, 90_000);
        assert_eq!(c.api.signature_window_s, 600);
        assert_eq!(c.store.max_connections, 16);
        assert!(c.store_url().ends_with("herald-data/herald.db"));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = parse("listn = \"127.0.0.1:1\"").unwrap_err().to_string();
        assert!(err.contains("listn"), "{err}");
        let err = parse("[[apps]]\napp_id = 1\nserver_secret = \"fa94dd0f974cf2e293728a526b028271\"\n[apps.limits]\nbroadcast_per_hour = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("broadcast_per_hour"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let app = |extra: &str| {
            format!(
                "[[apps]]\napp_id = 7\nserver_secret = \"fa94dd0f974cf2e293728a526b028271\"\n[apps.limits]\n{extra}\n"
            )
        };
        for (text, key) in [
            (app("message_max_bytes = 40000"), "apps[0].limits.message_max_bytes"),
            (app("broadcast_per_second = 0"), "apps[0].limits.broadcast_per_second"),
            (app("broadcast_message_types = [2]"), "apps[0].limits.broadcast_message_types"),
            ("[[apps]]\napp_id = 7\nserver_secret = \"short\"\n".to_string(), "apps[0].server_secret"),
            (
                "[[apps]]\napp_id = 0\nserver_secret = \"fa94dd0f974cf2e293728a526b028271\"\n".to_string(),
                "apps[0].app_id",
            ),
            ("[gateway]\nheartbeat_timeout_ms = 1000\n".to_string(), "gateway.heartbeat_timeout_ms"),
            ("listen = \"nowhere\"".to_string(), "listen"),
            ("[store]\nmax_connections = 0\n".to_string(), "store.max_connections"),
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }

    #[test]
    fn env_overrides_the_file() {
        let env = |k: &str| match k {
            "HERALD_LISTEN" => Some("127.0.0.1:9999".to_string()),
            "HERALD_STORE_URL" => Some("sqlite::memory:".to_string()),
            _ => None,
        };
        let c = Config::parse("listen = \"127.0.0.1:1\"", &env).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.store_url(), "sqlite::memory:");
        let bad = |k: &str| (k == "HERALD_LISTEN").then(|| "x".to_string());
        assert!(Config::parse("", &bad).unwrap_err().to_string().contains("HERALD_LISTEN"));
    }

    #[test]
    fn secrets_never_print() {
        let c = parse("[[apps]]\napp_id = 7\nserver_secret = \"fa94dd0f974cf2e293728a526b028271\"\n").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("fa94dd0f"), "{shown}");
        assert!(shown.contains("Secret(****)"));
    }
    /// Every way a config file can go wrong on a secret's line names the line and the key and
    /// never prints the secret.
    #[test]
    fn config_errors_never_print_a_secret() {
        let secret = "s3cr3t5s3cr3t5s3cr3t5s3cr3t5abcd";
        let app = "[[apps]]\napp_id = 7\n";
        for (text, line, key) in [
            // A syntax error on the secret's line (the closing quote is missing).
            (format!("{app}server_secret = \"{secret}\n"), 3, "server_secret"),
            // A misspelt key.
            (format!("{app}server_secert = \"{secret}\"\n"), 3, "server_secert"),
            // The key twice.
            (format!("{app}server_secret = \"{secret}\"\nserver_secret = \"{secret}\"\n"), 4, "server_secret"),
            // A secret of the wrong type, and a secret where a number belongs.
            (
                format!("{app}server_secret = \"{secret}\"\n[apps.push.webhook]\nurl = \"http://x\"\nsecret = [\"{secret}\"]\n"),
                6,
                "secret",
            ),
            (format!("[[apps]]\napp_id = \"{secret}\"\nserver_secret = \"{secret}\"\n"), 2, "app_id"),
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(!err.contains("s3cr3t5"), "{text:?} printed the secret: {err}");
            assert!(err.contains(&format!("line {line}")), "{text:?}: no line {line} in {err}");
            assert!(err.contains(key), "{text:?}: no key {key:?} in {err}");
        }
        let err = parse(&format!("{app}server_secert = \"{secret}\"\n")).unwrap_err().to_string();
        assert!(err.contains("server_secert"), "the unknown key is named: {err}");
    }
}
