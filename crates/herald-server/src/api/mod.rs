//! The ZIM-compatible server API: `GET|POST /?Action=...` with signed common parameters.
//!
//! `Api::handle` is the whole surface: it checks the common parameters and the signature,
//! dispatches to one handler per action, and turns every outcome, good or bad, into an HTTP 200
//! JSON answer in one place (`response::render`; the codes come from `error.rs`). Handlers live
//! one file per topic; they parse and answer, and leave the broadcast itself to
//! [`crate::broadcast`].

mod auth;
mod broadcast;
mod error;
mod json;
mod report;
mod response;
mod users;

pub use auth::Query;
pub use error::ApiError;

use crate::broadcast::{Broadcaster, Presence};
use crate::clock::Clock;
use crate::config::{ApiConfig, AppConfig};
use crate::ids::IdGenerator;
use herald_proto::code;
use herald_store::Store;
use response::Fields;
use std::collections::HashMap;
use std::sync::Arc;

/// The request body as the HTTP layer could read it.
pub enum Body {
    Bytes(bytes::Bytes),
    TooLarge {
        limit: usize,
    },
    /// Not all there within `api.request_timeout_ms`.
    TimedOut {
        limit_ms: u64,
    },
    Failed(String),
}

pub struct Api {
    apps: HashMap<u32, Arc<AppConfig>>,
    config: ApiConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<IdGenerator>,
    presence: Arc<dyn Presence>,
    broadcaster: Arc<Broadcaster>,
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
        broadcaster: Arc<Broadcaster>,
    ) -> Api {
        let apps = apps.iter().map(|a| (a.app_id, Arc::new(a.clone()))).collect();
        Api { apps, config, store, clock, ids, presence, broadcaster }
    }

    pub fn app(&self, app_id: u32) -> Option<&Arc<AppConfig>> {
        self.apps.get(&app_id)
    }

    /// An error answer for requests that never reach an action (wrong path or method).
    pub fn error_answer(&self, err: &ApiError) -> Vec<u8> {
        response::render(err.code(), &err.to_string(), self.ids.next(), &err.extra_fields())
    }

    /// Answers one request. Never fails: every error is an answer with its code.
    pub async fn handle(&self, raw_query: Option<&str>, body: Body) -> Vec<u8> {
        match self.authorize(raw_query).await {
            Ok(request) => self.answer(request, body).await,
            Err(answer) => answer,
        }
    }

    /// The checks that need no body: common parameters, app, signature, action, nonce. The
    /// listener reads a body only for a request that passed them, so a client that cannot sign
    /// cannot make the server buffer bodies. `Err` is the finished error answer.
    pub async fn authorize(&self, raw_query: Option<&str>) -> Result<Authorized, Vec<u8>> {
        let request_id = self.ids.next();
        self.authorize_inner(raw_query.unwrap_or(""))
            .await
            .map_err(|err| self.render(request_id, Err(err)))
            .map(|(query, action, app)| Authorized { request_id, query, action, app })
    }

    async fn authorize_inner(&self, raw_query: &str) -> Result<(Query, String, Arc<AppConfig>), ApiError> {
        let query = Query::parse(raw_query)?;
        let common = auth::Common::from_query(&query)?;
        let app = self.apps.get(&common.app_id).ok_or(ApiError::UnknownApp(common.app_id))?;
        let now_ms = self.clock.now_ms();
        common.verify(app, now_ms.div_euclid(1000), self.config.signature_window_s)?;
        if !ACTIONS.contains(&common.action.as_str()) {
            return Err(ApiError::UnsupportedAction(common.action));
        }
        let window_ms = self.config.signature_window_s as i64 * 1000;
        // Remembered for twice the skew window plus one second: a timestamp up to `window` in
        // the future stays acceptable through the whole second `now_s + 2 * window`.
        if !self.store.remember_nonce(app.app_id, &common.nonce, now_ms, 2 * window_ms + 1000).await? {
            return Err(ApiError::NonceReused(common.nonce));
        }
        Ok((query, common.action, app.clone()))
    }

    /// Runs an authorized request's action with its body.
    pub async fn answer(&self, request: Authorized, body: Body) -> Vec<u8> {
        let request_id = request.request_id;
        let result = self.act(request, body).await;
        self.render(request_id, result)
    }

    async fn act(&self, request: Authorized, body: Body) -> Result<Fields, ApiError> {
        let Authorized { request_id, query, action, app } = request;
        let body = match body {
            Body::Bytes(b) => b,
            Body::TooLarge { limit } => return Err(ApiError::BodyTooLarge { limit }),
            Body::TimedOut { limit_ms } => return Err(ApiError::BodyTimedOut { limit_ms }),
            Body::Failed(why) => return Err(ApiError::BodyRead(why)),
        };
        let now_ms = self.clock.now_ms();
        match action.as_str() {
            "UserRegister" => users::register(self, &app, &body).await,
            "QueryUserInfos" => users::query_infos(self, &app, &body).await,
            "ModifyUserInfo" => users::modify(self, &app, &body).await,
            "QueryUserOnlineState" => users::online_state(self, &app, &query).await,
            "SendMessageToAllUsers" => broadcast::send_to_all(self, &app, &body, now_ms, request_id).await,
            "QueryBroadcastReport" => report::query(self, &app, &body).await,
            other => Err(ApiError::UnsupportedAction(other.to_string())),
        }
    }

    fn render(&self, request_id: u64, result: Result<Fields, ApiError>) -> Vec<u8> {
        let (code, message, fields) = match result {
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
}

/// A request that passed every check needing no body ([`Api::authorize`]).
pub struct Authorized {
    request_id: u64,
    query: Query,
    action: String,
    app: Arc<AppConfig>,
}
