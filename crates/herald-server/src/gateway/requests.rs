//! What each client request does: `login` turns a socket into a [`LoggedIn`] session; the
//! others act for a session that is logged in, which their signatures require.

use super::refusal::Refusal;
use super::Gateway;
use crate::hub::SessionHandle;
use herald_proto::frame::{self, Login, ServerFrame};
use herald_proto::token04;
use herald_proto::version::{SdkVersion, BROADCAST_MIN};
use herald_proto::ws::{self, Opcode};
use herald_store::{PushBinding, PushProvider};
use std::sync::Arc;

/// The SDK is told this long before its token expires (ZIM: 30 s); a renewed token must be
/// valid at least this long.
pub const TOKEN_WARNING_S: i64 = 30;

/// A session past `login_ok`.
pub struct LoggedIn {
    pub app_id: u32,
    pub user_id: String,
    pub device_id: String,
    pub session_id: u64,
    pub token_expire_s: i64,
    /// `token_will_expire` went out for this token; a renewal clears it.
    pub token_warning_sent: bool,
}

/// Checks a login, registers an unknown user (as ZIM does), claims the device's slot in the hub,
/// records presence, and answers `login_ok` through the hub so no broadcast can overtake it.
pub async fn login(gw: &Gateway, handle: &Arc<SessionHandle>, login: Login) -> Result<LoggedIn, Refusal> {
    let app = gw.apps.get(&login.app_id).cloned().ok_or(Refusal::UnknownApp(login.app_id))?;
    let now_s = gw.clock.now_s();
    let token = token04::verify(&login.token, app.server_secret.expose(), app.app_id, &login.user_id, now_s)
        .map_err(Refusal::Token)?;
    herald_proto::user_id::check_user_id(&login.user_id).map_err(Refusal::UserId)?;
    let version: SdkVersion = login.sdk_version.parse().map_err(|e| Refusal::SdkVersion(format!("{e}")))?;
    let since = match &login.since {
        None => None,
        Some(id) => Some(id.parse::<u64>().map_err(|_| Refusal::Since(id.clone()))?),
    };
    let max = gw.cfg.device_id_max_bytes;
    if login.device_id.is_empty() || login.device_id.len() > max {
        return Err(Refusal::DeviceId { len: login.device_id.len(), max });
    }
    let user_name = login.user_name.unwrap_or_default();
    let max = app.limits.user_name_max_bytes;
    if user_name.len() > max {
        return Err(Refusal::UserName { len: user_name.len(), max });
    }
    if !gw.known_users.contains(app.app_id, &login.user_id) {
        if let Err(e) = gw.store.ensure_user(app.app_id, &login.user_id, &user_name, gw.clock.now_ms()).await {
            tracing::warn!(error = %e, "store failed at login");
            return Err(Refusal::LoginStoreFailed);
        }
        gw.known_users.insert(app.app_id, &login.user_id);
    }
    let session_id = gw.ids.next();
    let max = gw.cfg.max_sessions_per_user;
    gw.hub
        .reserve(app.app_id, &login.user_id, &login.device_id, session_id, handle, max)
        .map_err(|_| Refusal::TooManySessions { max })?;
    if let Err(e) = gw.presence.session_started(app.app_id, &login.user_id, session_id).await {
        tracing::warn!(error = %e, "could not record the session for presence");
        gw.hub.leave(app.app_id, &login.user_id, session_id);
        return Err(Refusal::LoginStoreFailed);
    }
    let expire = token.claims.expire;
    let greeting = |recovered| {
        let login_ok = ServerFrame::LoginOk {
            id: login.id,
            session_id: session_id.to_string(),
            heartbeat_ms: gw.cfg.heartbeat_interval_ms,
            timeout_ms: gw.cfg.heartbeat_timeout_ms,
            token_expire: expire,
            server_time_ms: gw.clock.now_ms(),
            recovered,
        };
        ws::server_frame(Opcode::Text, &frame::encode_server(&login_ok))
    };
    gw.hub.activate(app.app_id, session_id, handle.clone(), version >= BROADCAST_MIN, since, greeting);
    tracing::debug!(session_id, app_id = app.app_id, platform = %login.platform, "session logged in");
    Ok(LoggedIn {
        app_id: app.app_id,
        user_id: login.user_id,
        device_id: login.device_id,
        session_id,
        token_expire_s: expire,
        token_warning_sent: false,
    })
}

/// Binds the push ID to this user and device (and takes it from any other binding).
pub async fn set_push_id(gw: &Gateway, user: &LoggedIn, push_id: String, provider: &str) -> Result<(), Refusal> {
    let provider = PushProvider::parse(provider).ok_or_else(|| Refusal::PushProvider(provider.to_string()))?;
    let max = gw.cfg.push_id_max_bytes;
    if push_id.is_empty() || push_id.len() > max {
        return Err(Refusal::PushId { max });
    }
    let binding = PushBinding {
        app_id: user.app_id,
        user_id: user.user_id.clone(),
        device_id: user.device_id.clone(),
        push_id,
        provider,
        updated_at_ms: gw.clock.now_ms(),
    };
    gw.store.bind_push(&binding).await.map_err(|e| {
        tracing::warn!(error = %e, "could not store a push binding");
        Refusal::StoreFailed("store the push ID")
    })
}

/// Replaces the session's token; returns the new expiry (Unix s).
pub fn renew_token(gw: &Gateway, user: &mut LoggedIn, token: &str) -> Result<i64, Refusal> {
    let app = gw.apps.get(&user.app_id).ok_or(Refusal::UnknownApp(user.app_id))?;
    let now_s = gw.clock.now_s();
    let t = token04::verify(token, app.server_secret.expose(), user.app_id, &user.user_id, now_s)
        .map_err(Refusal::RenewToken)?;
    let valid_s = t.claims.expire - now_s;
    if valid_s < TOKEN_WARNING_S {
        return Err(Refusal::TokenTooShort { valid_s, min_s: TOKEN_WARNING_S });
    }
    user.token_expire_s = t.claims.expire;
    user.token_warning_sent = false;
    Ok(t.claims.expire)
}

/// Removes this device's push binding: a user who logs out is neither online nor offline.
pub async fn logout(gw: &Gateway, user: &LoggedIn) -> Result<(), Refusal> {
    gw.store.unbind_push(user.app_id, &user.user_id, &user.device_id).await.map(drop).map_err(|e| {
        tracing::warn!(error = %e, "could not remove the push binding at logout");
        Refusal::StoreFailed("remove the push binding")
    })
}
