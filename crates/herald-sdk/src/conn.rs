//! One connection attempt: WebSocket upgrade, `login`, and the server's verdict.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_proto::close;
use herald_proto::code;
use herald_proto::frame::{decode_server, encode_client, ClientFrame, Login, ServerFrame};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{ClientConfig, ConnectionEvent, SdkError};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// TLS for `wss://`: the bundled public web roots plus the app's extra PEM roots, with ring as
/// the crypto provider (no process-wide default needed).
fn tls_config(extra_pem: &[String]) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for pem in extra_pem {
        for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("extra_root_certificates_pem: {e}"))?;
            roots.add(cert).map_err(|e| format!("extra_root_certificates_pem: {e}"))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

/// The subprotocol Herald speaks; the server echoes it.
const SUBPROTOCOL: &str = "herald.v1";

/// What `login_ok` told us about the session.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) session_id: String,
    pub(crate) heartbeat: Duration,
    /// How long the server may stay silent before the connection counts as dead.
    pub(crate) silence_limit: Duration,
    pub(crate) token_expire: i64,
    /// `login_ok.recovered`: present when the login asked for recovery (`since`).
    pub(crate) recovered: Option<bool>,
}

impl Accepted {
    fn new(session_id: String, heartbeat_ms: u64, timeout_ms: u64, token_expire: i64, recovered: Option<bool>) -> Self {
        // Guard against a zero or nonsensical advertisement rather than spinning on pings.
        let heartbeat = Duration::from_millis(heartbeat_ms).max(Duration::from_millis(100));
        let silence_limit = Duration::from_millis(timeout_ms).max(2 * heartbeat);
        Self { session_id, heartbeat, silence_limit, token_expire, recovered }
    }

    /// The `extended_data` of the `Connected` event: `{"recovered":true|false}` after a login
    /// that asked for recovery, empty otherwise.
    pub(crate) fn extended_data(&self) -> String {
        self.recovered.map(|r| serde_json::json!({ "recovered": r }).to_string()).unwrap_or_default()
    }
}

/// A failed login attempt.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: SdkError,
    /// `Some` when trying again as-is would fail the same way: the event to report.
    pub(crate) terminal: Option<ConnectionEvent>,
}

impl Failure {
    fn transient(error: SdkError) -> Self {
        Self { error, terminal: None }
    }
}

/// Parses a URL the way a connection attempt will, so `ClientConfig::validate` can refuse it.
pub(crate) fn check_url(url: &str) -> Result<(), SdkError> {
    url.into_client_request().map(drop).map_err(|e| SdkError::Config(format!("bad url {url:?}: {e}")))
}

/// Connects to `url`, sends `login` as request `id` (asking for what was broadcast after
/// `since`, when given) and waits for the verdict, all within `config.login_timeout`.
pub(crate) async fn login(
    url: &str,
    config: &ClientConfig,
    id: u64,
    since: Option<&str>,
) -> Result<(Ws, Accepted), Failure> {
    // An `error` frame comes before the close that says whether it is final; keep it so a
    // timeout or a dropped socket after it still reports the server's reason.
    let mut refusal: Option<SdkError> = None;
    let attempt = tokio::time::timeout(config.login_timeout, attempt(url, config, id, since, &mut refusal)).await;
    match attempt {
        Ok(result) => result,
        Err(_elapsed) => Err(match refusal {
            Some(error) => refused(error),
            None => Failure::transient(SdkError::Timeout),
        }),
    }
}

async fn attempt(
    url: &str,
    config: &ClientConfig,
    id: u64,
    since: Option<&str>,
    refusal: &mut Option<SdkError>,
) -> Result<(Ws, Accepted), Failure> {
    let mut request = url.into_client_request().map_err(|e| Failure {
        error: SdkError::Config(format!("bad url {url:?}: {e}")),
        terminal: Some(ConnectionEvent::KickedOut),
    })?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(SUBPROTOCOL));
    let connector = if url.starts_with("wss:") {
        let tls = tls_config(&config.extra_root_certificates_pem)
            .map_err(|e| Failure { error: SdkError::Config(e), terminal: Some(ConnectionEvent::KickedOut) })?;
        Some(tokio_tungstenite::Connector::Rustls(tls))
    } else {
        None
    };
    let (mut ws, _response) = tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector)
        .await
        .map_err(|e| Failure::transient(SdkError::Connect(format!("{url}: {e}"))))?;

    let frame = ClientFrame::Login(Login {
        id,
        app_id: config.app_id,
        user_id: config.user_id.clone(),
        token: config.token.clone(),
        sdk_version: config.sdk_version.clone(),
        platform: config.platform.clone(),
        device_id: config.device_id.clone(),
        user_name: config.user_name.clone(),
        since: since.map(str::to_owned),
    });
    send(&mut ws, &frame).await.map_err(|e| Failure::transient(SdkError::Connect(e.to_string())))?;

    loop {
        let message = match ws.next().await {
            Some(Ok(message)) => message,
            Some(Err(e)) => return Err(lost(refusal.take(), e.to_string())),
            None => return Err(lost(refusal.take(), "connection closed".to_owned())),
        };
        match message {
            Message::Text(text) => match decode_server(text.as_bytes()) {
                Ok(ServerFrame::LoginOk {
                    id: answered,
                    session_id,
                    heartbeat_ms,
                    timeout_ms,
                    token_expire,
                    recovered,
                    ..
                }) if answered == id => {
                    let accepted = Accepted::new(session_id, heartbeat_ms, timeout_ms, token_expire, recovered);
                    return Ok((ws, accepted));
                }
                Ok(ServerFrame::Error { code, message, .. }) => {
                    *refusal = Some(SdkError::Server { code, message });
                }
                Ok(other) => tracing::debug!(?other, "frame before login_ok ignored"),
                Err(e) => tracing::warn!(error = %e, "undecodable frame before login_ok ignored"),
            },
            Message::Close(frame) => {
                let (code, reason) = close_parts(frame.as_ref());
                let error = refusal.take().unwrap_or(SdkError::Closed { code, reason });
                return Err(Failure { terminal: terminal_event(code, &error), error });
            }
            _ => {}
        }
    }
}

/// The socket ended without a close frame: a refusal stays a refusal, anything else is the network.
fn lost(refusal: Option<SdkError>, detail: String) -> Failure {
    match refusal {
        Some(error) => refused(error),
        None => Failure::transient(SdkError::Connect(detail)),
    }
}

/// An `error` answer to `login` with no close code to say more: the error code decides.
fn refused(error: SdkError) -> Failure {
    let event = match &error {
        SdkError::Server { code, .. } => token_event(*code),
        _ => ConnectionEvent::KickedOut,
    };
    Failure { error, terminal: Some(event) }
}

fn token_event(code: u32) -> ConnectionEvent {
    match code {
        code::SDK_TOKEN_INVALID_OR_APP
        | code::SDK_TOKEN_INVALID
        | code::SDK_TOKEN_EXPIRED
        | code::SDK_TOKEN_VERSION
        | code::SDK_TOKEN_TOO_SHORT => ConnectionEvent::TokenExpired,
        _ => ConnectionEvent::KickedOut,
    }
}

/// The close code's verdict: `None` to reconnect, or the event to report when it is final.
///
/// Token problems become `TokenExpired`, since the app's remedy is the same: fetch a new token
/// and log in again. When an `error` frame preceded the close, its code says which problem it
/// was (4501 also ends logins with a bad field, 6000004, which is not a token problem); without
/// one, 4501 and 4502 mean the token. Any other terminal close means the server will not take
/// this client back as it is: `KickedOut`.
pub(crate) fn terminal_event(code: u16, error: &SdkError) -> Option<ConnectionEvent> {
    if !close::is_terminal(code) {
        return None;
    }
    Some(match (code, error) {
        (_, SdkError::Server { code, .. }) => token_event(*code),
        (close::LOGIN_FAILED | close::TOKEN_EXPIRED, _) => ConnectionEvent::TokenExpired,
        _ => ConnectionEvent::KickedOut,
    })
}

/// Code and reason of a received close frame; a close without a frame is 1005 ("no status").
pub(crate) fn close_parts(frame: Option<&CloseFrame>) -> (u16, String) {
    match frame {
        Some(frame) => (u16::from(frame.code), frame.reason.to_string()),
        None => (u16::from(CloseCode::Status), String::new()),
    }
}

/// Sends one client frame as a text message.
pub(crate) async fn send(ws: &mut Ws, frame: &ClientFrame) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let json = String::from_utf8(encode_client(frame)).expect("serde_json writes UTF-8");
    ws.send(Message::text(json)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_code_before_a_close_decides_the_event() {
        let closed = SdkError::Closed { code: close::LOGIN_FAILED, reason: String::new() };
        let field = SdkError::Server { code: code::SDK_FIELD_INVALID, message: "device_id".into() };
        let token = SdkError::Server { code: code::SDK_TOKEN_INVALID, message: "bad".into() };
        assert_eq!(terminal_event(close::LOGIN_FAILED, &closed), Some(ConnectionEvent::TokenExpired));
        assert_eq!(terminal_event(close::LOGIN_FAILED, &field), Some(ConnectionEvent::KickedOut));
        assert_eq!(terminal_event(close::LOGIN_FAILED, &token), Some(ConnectionEvent::TokenExpired));
        assert_eq!(terminal_event(close::TOKEN_EXPIRED, &closed), Some(ConnectionEvent::TokenExpired));
        assert_eq!(terminal_event(close::SLOW_CONSUMER, &closed), None);
        assert_eq!(terminal_event(close::REPLACED, &closed), Some(ConnectionEvent::KickedOut));
    }
}
