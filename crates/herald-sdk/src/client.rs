//! The app's handle: log in, then ask the connection task for what ZIM's client API offers.

use tokio::sync::{mpsc, oneshot, watch};

use crate::conn;
use crate::session::{Command, Session, Status};
use crate::{ClientConfig, ConnectionState, Events, SdkError};

/// Requests waiting for the connection task; callers wait for room beyond this.
const COMMAND_CAPACITY: usize = 64;

/// A logged-in Herald client: a cheap, cloneable handle to the task that owns the WebSocket.
///
/// The session lives as long as some handle does. Dropping the last one closes the connection
/// without `logout`, as if the app were killed: the server keeps this device's push binding, so
/// the user counts as offline with a push ID. Call [`Client::logout`] to remove the binding.
#[derive(Clone, Debug)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
}

impl Client {
    /// Connects, logs in, and starts the connection task.
    ///
    /// URLs are tried in order until one accepts the login; a connection failure, timeout or
    /// transient close moves on to the next URL, while a refusal (an `error` frame such as
    /// 6000106 token expired, or a terminal close) is returned at once. Once logged in, the task
    /// pings every `heartbeat_ms` advertised by the server and reconnects on its own (see
    /// [`ConnectionEvent`](crate::ConnectionEvent) for what it reports and when it stops).
    ///
    /// The first events are `Connecting`/`ActiveLogin` then `Connected`/`Success`.
    pub async fn login(config: ClientConfig) -> Result<(Client, Events), SdkError> {
        config.validate()?;
        let mut id = 1;
        let mut last_error = SdkError::Connect("no url tried".to_owned());
        for (url_index, url) in config.urls.iter().enumerate() {
            match conn::login(url, &config, id, config.since.as_deref()).await {
                Ok((ws, accepted)) => {
                    tracing::info!(%url, session_id = %accepted.session_id, "logged in");
                    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_CAPACITY);
                    let (events_tx, events_rx) = mpsc::channel(config.event_capacity);
                    let (status_tx, status_rx) = watch::channel(Status {
                        state: ConnectionState::Connected,
                        session_id: Some(accepted.session_id.clone()),
                    });
                    let session = Session::new(config, commands_rx, events_tx, status_tx, url_index, id + 1);
                    tokio::spawn(session.run(ws, accepted));
                    let client = Client { commands: commands_tx, status: status_rx };
                    return Ok((client, Events(events_rx)));
                }
                Err(failure) => {
                    tracing::warn!(%url, error = %failure.error, "login failed");
                    let refused = matches!(failure.error, SdkError::Server { .. });
                    if refused || failure.terminal.is_some() {
                        return Err(failure.error);
                    }
                    last_error = failure.error;
                    id += 1;
                }
            }
        }
        Err(last_error)
    }

    /// Reports this device's push ID (`provider`: `fcm`, `apns` or `webhook`) and waits for the
    /// server's ack. The SDK remembers it and reports it again after every reconnect, so offline
    /// pushes keep reaching the device. A push ID the server refuses is forgotten.
    ///
    /// Called while reconnecting, it waits for the next login.
    pub async fn set_push_id(&self, push_id: &str, provider: &str) -> Result<(), SdkError> {
        self.call(|reply| Command::SetPushId { push_id: push_id.to_owned(), provider: provider.to_owned(), reply })
            .await
    }

    /// Replaces the session's token (ZIM `renewToken`) and returns the new expiry, Unix seconds.
    /// Reconnects log in with the newest accepted token.
    ///
    /// Called while reconnecting, the token is used for the next login and its expiry returned
    /// from there.
    pub async fn renew_token(&self, token: &str) -> Result<i64, SdkError> {
        self.call(|reply| Command::RenewToken { token: token.to_owned(), reply }).await
    }

    /// Logs out: the server removes this device's push binding and closes the connection. The
    /// events stream then reports `Disconnected`/`Success` and ends; other clones of this handle
    /// get [`SdkError::LoggedOut`] from then on.
    ///
    /// Called while reconnecting, it waits for the next login to log out from there; wrap it in
    /// `tokio::time::timeout` to give up sooner (the session then ends without the server-side
    /// logout once no handle is left).
    pub async fn logout(self) -> Result<(), SdkError> {
        self.call(|reply| Command::Logout { reply }).await
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.status.borrow().state
    }

    /// The server's id for the current connection (a decimal string), while connected.
    pub fn session_id(&self) -> Option<String> {
        self.status.borrow().session_id.clone()
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, SdkError>>) -> Command,
    ) -> Result<T, SdkError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| SdkError::LoggedOut)?;
        answer.await.unwrap_or(Err(SdkError::LoggedOut))
    }
}
