//! The ZIM-compatible server API: `GET|POST /?Action=...` with signed common parameters.
//!
//! `Api::handle` is the whole surface: it checks the common parameters and the signature,
//! dispatches to one handler per action, and turns every outcome, good or bad, into an HTTP 200
//! JSON answer in one place (`response::render`). Handlers live one file per topic.

mod auth;
mod broadcast;
mod error;
mod json;
mod report;
mod response;
mod users;

pub use auth::Query;
pub use broadcast::AcceptedBroadcast;
pub use error::ApiError;

use crate::clock::Clock;
use crate::config::{ApiConfig, AppConfig};
use crate::ids::IdGenerator;
use herald_proto::code;
use herald_store::{Store, StoreError};
use response::Fields;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Who is online on this node (or, in cluster mode, anywhere).
#[async_trait::async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Which of `user_ids` are online: on this node, or on any node of a cluster.
    async fn online_among(&self, app_id: u32, user_ids: &[String]) -> Result<HashSet<String>, StoreError>;

    /// One user. A presence lookup that fails counts as offline: for offline push, a rare
    /// duplicate notification is better than a lost one.
    async fn is_online(&self, app_id: u32, user_id: &str) -> bool {
        match self.online_among(app_id, &[user_id.to_string()]).await {
            Ok(online) => !online.is_empty(),
            Err(e) => {
                tracing::warn!(error = %e, app_id, "presence lookup failed; treating the user as offline");
                false
            }
        }
    }
}

/// Where an accepted broadcast goes. Implementations start the fan-out at once and return
/// without waiting for it.
pub trait Dispatch: Send + Sync + 'static {
    fn dispatch(&self, broadcast: Arc<AcceptedBroadcast>);
}

/// The request body as the HTTP layer could read it.
pub enum Body {
    Bytes(bytes::Bytes),
    TooLarge { limit: usize },
    Failed(String),
}

pub struct Api {
    apps: HashMap<u32, Arc<AppConfig>>,
    config: ApiConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<IdGenerator>,
    presence: Arc<dyn Presence>,
    dispatch: Arc<dyn Dispatch>,
}

/// Actions this server answers, in the order the README lists them. `QueryBroadcastReport` is
/// Herald's own (ZIM has no such action).
pub const ACTIONS: &[&str] = &[
    "UserRegister",
    "QueryUserInfos",
    "ModifyUserInfo",
    "QueryUserOnlineState",
    "SendMessageToAllUsers",
    "QueryBroadcastReport",
];

impl Api {
    pub fn new(
        apps: &[AppConfig],
        config: ApiConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<IdGenerator>,
        presence: Arc<dyn Presence>,
        dispatch: Arc<dyn Dispatch>,
    ) -> Api {
        let apps = apps.iter().map(|a| (a.app_id, Arc::new(a.clone()))).collect();
        Api { apps, config, store, clock, ids, presence, dispatch }
    }

    pub fn app(&self, app_id: u32) -> Option<&Arc<AppConfig>> {
        self.apps.get(&app_id)
    }

    /// An error answer for requests that never reach an action (wrong path or method).
    pub fn error_answer(&self, code: u32, message: &str) -> Vec<u8> {
        response::render(code, message, self.ids.next(), &[])
    }

    /// Answers one request. Never fails: every error is an answer with its code.
    pub async fn handle(&self, raw_query: Option<&str>, body: Body) -> Vec<u8> {
        let request_id = self.ids.next();
        let (code, message, fields) = match self.handle_inner(raw_query.unwrap_or(""), body, request_id).await {
            Ok(fields) => (code::SUCCESS, "success".to_string(), fields),
            Err(err) => {
                if let ApiError::Store(inner) = &err {
                    tracing::error!(request_id, error = %inner, "store failed while answering the API");
                } else {
                    tracing::debug!(request_id, code = err.code(), error = %err, "API request refused");
                }
                (err.code(), err.to_string(), err.extra_fields())
            }
        };
        response::render(code, &message, request_id, &fields)
    }

    async fn handle_inner(&self, raw_query: &str, body: Body, request_id: u64) -> Result<Fields, ApiError> {
        let query = Query::parse(raw_query)?;
        let common = auth::Common::from_query(&query)?;
        let app = self.apps.get(&common.app_id).ok_or_else(|| {
            ApiError::access(
                code::SECRET_UNAVAILABLE,
                format!("unknown AppId {}: no app with this id is configured", common.app_id),
            )
        })?;
        let now_ms = self.clock.now_ms();
        common.verify(app, now_ms.div_euclid(1000), self.config.signature_window_s)?;
        if !ACTIONS.contains(&common.action.as_str()) {
            return Err(ApiError::UnsupportedAction(common.action));
        }
        let window_ms = self.config.signature_window_s as i64 * 1000;
        // Remembered for twice the skew window plus one second: a timestamp up to `window` in
        // the future stays acceptable through the whole second `now_s + 2 * window`.
        if !self.store.remember_nonce(app.app_id, &common.nonce, now_ms, 2 * window_ms + 1000).await? {
            return Err(ApiError::access(
                code::SIGNATURE_INVALID,
                format!("SignatureNonce {:?} was already used within the signature window; sign every request with a fresh nonce", common.nonce),
            ));
        }
        let body = match body {
            Body::Bytes(b) => b,
            Body::TooLarge { limit } => return Err(ApiError::BodyTooLarge { limit }),
            Body::Failed(why) => return Err(ApiError::BodyRead(why)),
        };
        match common.action.as_str() {
            "UserRegister" => users::register(self, app, &body).await,
            "QueryUserInfos" => users::query_infos(self, app, &body).await,
            "ModifyUserInfo" => users::modify(self, app, &body).await,
            "QueryUserOnlineState" => users::online_state(self, app, &query).await,
            "SendMessageToAllUsers" => broadcast::send_to_all(self, app, &body, now_ms, request_id).await,
            "QueryBroadcastReport" => report::query(self, app, &body).await,
            other => Err(ApiError::UnsupportedAction(other.to_string())),
        }
    }
}
