//! What a client needs to know before it logs in: where, who, and how hard to retry.

use std::fmt;
use std::time::Duration;

use crate::SdkError;

/// Everything [`Client::login`](crate::Client::login) needs.
///
/// Build one with [`ClientConfig::new`] and change the public fields that matter to you; the rest
/// keep the defaults documented on each field.
#[derive(Clone)]
pub struct ClientConfig {
    /// WebSocket URLs of Herald nodes (`ws://host:port/ws` or `wss://…`), tried in order. The
    /// first login walks the list until one node answers; every reconnect moves on to the next
    /// URL, so a dead node is left behind without the app doing anything.
    pub urls: Vec<String>,
    /// The ZIM AppID the token was made for.
    pub app_id: u32,
    /// The user to log in as; must match the token.
    pub user_id: String,
    /// Token04 from the app's backend. [`Client::renew_token`](crate::Client::renew_token)
    /// replaces it, and reconnects log in with the newest one.
    pub token: String,
    /// Reported to the server, which refuses SDK versions it does not serve (close 4506).
    /// Default `"2.18.0"`: broadcasts need a ZIM SDK of 2.10.0 or later.
    pub sdk_version: String,
    /// Free text such as `android`, `ios`, `linux`. Default: the OS this crate was built for.
    pub platform: String,
    /// Stable per device (≤ 64 bytes): the server keys this device's push binding on it, and a
    /// newer login from the same device replaces the older session (close 4507). Default: a
    /// random `rust-<16 hex digits>` per `ClientConfig`, so two machines of one user never
    /// replace each other; an app that wants its push binding to survive restarts stores its
    /// own id and sets it here.
    pub device_id: String,
    /// Optional display name sent with `login`.
    pub user_name: Option<String>,
    /// Recovery across restarts of the app: the `messageID` of the newest broadcast the app
    /// already has (restored from its own storage). The first login then asks the server for
    /// what was broadcast after it. Re-logins always ask with the newest delivered one, whatever
    /// this says. Default `None`: the first login of a process asks for nothing.
    pub since: Option<String>,
    /// How reconnects are spaced and when they give up.
    pub reconnect: ReconnectPolicy,
    /// The time one login may take, TCP connect and WebSocket upgrade included. Default 10 s.
    pub login_timeout: Duration,
    /// How many recent message IDs are remembered to drop a broadcast delivered twice (for
    /// example replayed after a reconnect). Default 4096.
    pub dedup_capacity: usize,
    /// Capacity of the [`Events`](crate::Events) channel. When it is full the connection task
    /// waits for the app instead of buffering without bound. Default 1024.
    pub event_capacity: usize,
    /// Extra PEM certificates to trust for `wss://` besides the public web roots (Mozilla's,
    /// bundled): a private CA or a self-signed server. Empty by default.
    pub extra_root_certificates_pem: Vec<String>,
}

impl ClientConfig {
    /// A config with the defaults documented on each field.
    pub fn new(
        urls: impl IntoIterator<Item = impl Into<String>>,
        app_id: u32,
        user_id: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        let user_id = user_id.into();
        Self {
            urls: urls.into_iter().map(Into::into).collect(),
            app_id,
            device_id: format!("rust-{:016x}", rand::random::<u64>()),
            user_id,
            token: token.into(),
            sdk_version: DEFAULT_SDK_VERSION.to_owned(),
            platform: std::env::consts::OS.to_owned(),
            user_name: None,
            since: None,
            reconnect: ReconnectPolicy::default(),
            login_timeout: Duration::from_secs(10),
            dedup_capacity: 4096,
            event_capacity: 1024,
            extra_root_certificates_pem: Vec::new(),
        }
    }

    /// Checks what the server would refuse anyway, so the mistake shows up before a round trip.
    pub fn validate(&self) -> Result<(), SdkError> {
        let bad = |what: &str| Err(SdkError::Config(what.to_owned()));
        if self.urls.is_empty() {
            return bad("urls is empty");
        }
        for url in &self.urls {
            crate::conn::check_url(url)?;
        }
        if self.user_id.is_empty() {
            return bad("user_id is empty");
        }
        if self.device_id.is_empty() || self.device_id.len() > 64 {
            return bad("device_id must be 1 to 64 bytes");
        }
        if self.event_capacity == 0 {
            return bad("event_capacity must be at least 1");
        }
        if self.reconnect.factor < 1.0 || !self.reconnect.factor.is_finite() {
            return bad("reconnect.factor must be a finite number ≥ 1");
        }
        Ok(())
    }
}

/// The SDK version a config reports unless told otherwise.
pub const DEFAULT_SDK_VERSION: &str = "2.18.0";

/// The token is a credential: `Debug` shows only its length.
impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("urls", &self.urls)
            .field("app_id", &self.app_id)
            .field("user_id", &self.user_id)
            .field("token", &format_args!("<{} bytes>", self.token.len()))
            .field("sdk_version", &self.sdk_version)
            .field("platform", &self.platform)
            .field("device_id", &self.device_id)
            .field("user_name", &self.user_name)
            .field("reconnect", &self.reconnect)
            .field("login_timeout", &self.login_timeout)
            .field("dedup_capacity", &self.dedup_capacity)
            .field("event_capacity", &self.event_capacity)
            .field("extra_root_certificates_pem", &self.extra_root_certificates_pem.len())
            .finish()
    }
}

/// Exponential backoff with full jitter between reconnect attempts.
///
/// Attempt `n` (from 0) waits a random time in `[0, min(max_delay, initial_delay · factor^n)]`.
/// Full jitter spreads the reconnects of many clients dropped at once (a node restart) instead of
/// bringing them back in waves.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconnectPolicy {
    /// Upper bound of the first wait. Default 500 ms.
    pub initial_delay: Duration,
    /// Upper bound of any wait. Default 30 s.
    pub max_delay: Duration,
    /// Growth of the bound per failed attempt. Default 2.
    pub factor: f64,
    /// Failed attempts in a row after which the client gives up and reports
    /// `Disconnected`/`LoginTimeout`. `None` (the default) retries forever, as ZIM does.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            factor: 2.0,
            max_attempts: None,
        }
    }
}
