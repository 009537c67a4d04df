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
use crate::metrics::Metrics;
use herald_proto::code;
use herald_store::Store;
use response::Fields;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

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
    metrics: Arc<Metrics>,
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
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        apps: &[AppConfig],
        config: ApiConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<IdGenerator>,
        presence: Arc<dyn Presence>,
        broadcaster: Arc<Broadcaster>,
        metrics: Arc<Metrics>,
    ) -> Api {
        let apps = apps.iter().map(|a| (a.app_id, Arc::new(a.clone()))).collect();
        Api { apps, config, store, clock, ids, presence, broadcaster, metrics }
    }

    pub fn app(&self, app_id: u32) -> Option<&Arc<AppConfig>> {
        self.apps.get(&app_id)
    }

    /// An error answer for requests that never reach an action (wrong path or method).
    pub fn error_answer(&self, err: &ApiError) -> Vec<u8> {
        self.metrics.api_requests.inc(&[UNKNOWN_ACTION, &err.code().to_string()]);
        response::render(err.code(), &err.to_string(), self.ids.next(), &err.extra_fields())
    }

    /// Answers one request. Never fails: every error is an answer with its code.
    pub async fn handle(&self, raw_query: Option<&str>, body: Body) -> Vec<u8> {
        match self.authorize(raw_query, Instant::now()).await {
            Ok(request) => self.answer(request, body).await,
            Err(answer) => answer,
        }
    }

    /// The checks that need no body: common parameters, app, signature, action, nonce. The
    /// listener reads a body only for a request that passed them, so a client that cannot sign
    /// cannot make the server buffer bodies. `Err` is the finished error answer. `started` is
    /// when the request arrived, for its duration metric.
    pub async fn authorize(&self, raw_query: Option<&str>, started: Instant) -> Result<Authorized, Vec<u8>> {
        let request_id = self.ids.next();
        let raw_query = raw_query.unwrap_or("");
        match self.authorize_inner(raw_query).await {
            Ok((query, action, app)) => Ok(Authorized { request_id, query, action, app, started }),
            Err(err) => Err(self.render(request_id, action_label(raw_query), started, Err(err))),
        }
    }

    async fn authorize_inner(&self, raw_query: &str) -> Result<(Query, &'static str, Arc<AppConfig>), ApiError> {
        let query = Query::parse(raw_query)?;
        let common = auth::Common::from_query(&query)?;
        let app = self.apps.get(&common.app_id).ok_or(ApiError::UnknownApp(common.app_id))?;
        let now_ms = self.clock.now_ms();
        common.verify(app, now_ms.div_euclid(1000), self.config.signature_window_s)?;
        let Some(action) = ACTIONS.iter().copied().find(|a| *a == common.action) else {
            return Err(ApiError::UnsupportedAction(common.action));
        };
        let window_ms = self.config.signature_window_s as i64 * 1000;
        // Remembered for twice the skew window plus one second: a timestamp up to `window` in
        // the future stays acceptable through the whole second `now_s + 2 * window`.
        if !self.store.remember_nonce(app.app_id, &common.nonce, now_ms, 2 * window_ms + 1000).await? {
            return Err(ApiError::NonceReused(common.nonce));
        }
        Ok((query, action, app.clone()))
    }

    /// Runs an authorized request's action with its body.
    pub async fn answer(&self, request: Authorized, body: Body) -> Vec<u8> {
        let (request_id, action, started, app_id) =
            (request.request_id, request.action, request.started, request.app.app_id);
        let result = self.act(request, body).await;
        if action == "SendMessageToAllUsers" {
            let outcome = match &result {
                Ok(_) => "accepted".to_string(),
                Err(e) => e.code().to_string(),
            };
            self.metrics.broadcasts.inc(&[&app_id.to_string(), &outcome]);
        }
        self.render(request_id, action, started, result)
    }

    async fn act(&self, request: Authorized, body: Body) -> Result<Fields, ApiError> {
        let Authorized { request_id, query, action, app, .. } = request;
        let body = match body {
            Body::Bytes(b) => b,
            Body::TooLarge { limit } => return Err(ApiError::BodyTooLarge { limit }),
            Body::TimedOut { limit_ms } => return Err(ApiError::BodyTimedOut { limit_ms }),
            Body::Failed(why) => return Err(ApiError::BodyRead(why)),
        };
        let now_ms = self.clock.now_ms();
        match action {
            "UserRegister" => users::register(self, &app, &body).await,
            "QueryUserInfos" => users::query_infos(self, &app, &body).await,
            "ModifyUserInfo" => users::modify(self, &app, &body).await,
            "QueryUserOnlineState" => users::online_state(self, &app, &query).await,
            "SendMessageToAllUsers" => broadcast::send_to_all(self, &app, &body, now_ms, request_id).await,
            "QueryBroadcastReport" => report::query(self, &app, &body).await,
            other => Err(ApiError::UnsupportedAction(other.to_string())),
        }
    }

    fn render(&self, request_id: u64, action: &str, started: Instant, result: Result<Fields, ApiError>) -> Vec<u8> {
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
        self.metrics.api_requests.inc(&[action, &code.to_string()]);
        if let Some(h) = self.metrics.api_duration.with(action) {
            h.observe(started.elapsed());
        }
        response::render(code, &message, request_id, &fields)
    }
}

/// The `action` label of a request: a routed action's name, or `unknown`.
fn action_label(raw_query: &str) -> &'static str {
    Query::parse(raw_query)
        .ok()
        .and_then(|q| q.get("Action").and_then(|a| ACTIONS.iter().copied().find(|known| *known == a)))
        .unwrap_or(UNKNOWN_ACTION)
}

/// The `action` label of requests that name no action the server routes.
pub const UNKNOWN_ACTION: &str = "unknown";

/// Every `action` label value.
pub fn action_labels() -> Vec<&'static str> {
    ACTIONS.iter().copied().chain([UNKNOWN_ACTION]).collect()
}

/// A request that passed every check needing no body ([`Api::authorize`]).
pub struct Authorized {
    request_id: u64,
    query: Query,
    action: &'static str,
    app: Arc<AppConfig>,
    started: Instant,
}
