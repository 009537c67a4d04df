//! The console's JSON API (docs/admin.md, "Console JSON API").

use super::auth::{self, Caller, Sessions};
use super::{error, json, Admin};
use crate::api::Body;
use crate::broadcast::report_fields;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Map, Value};
use std::time::Duration;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Broadcasts a list may ask for at once.
const MAX_LIST: u32 = 200;

pub async fn handle(admin: &Admin, req: Request<()>, body: Bytes) -> Response<Full<Bytes>> {
    let path = req.uri().path().trim_start_matches("/console/api/").to_string();
    let segments: Vec<&str> = path.split('/').collect();
    let method = req.method().clone();
    // Open to anyone who reaches the listener: whether the console is on, and signing in.
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["status"]) => return json(StatusCode::OK, &json!({ "enabled": admin.config.token.is_some() })),
        ("POST", ["session"]) => return sign_in(admin, &body).await,
        _ => {}
    }
    let Some(caller) = admin.sessions.caller(&req, &admin.config) else {
        return error(StatusCode::UNAUTHORIZED, "not signed in");
    };
    if !Sessions::csrf_ok(&req, &caller) {
        return error(StatusCode::FORBIDDEN, "missing or wrong X-CSRF-Token");
    }
    let result = match (method.as_str(), segments.as_slice()) {
        ("DELETE", ["session"]) => return sign_out(admin, &caller),
        ("GET", ["overview"]) => overview(admin).await,
        ("GET", ["apps", app, "broadcasts"]) => broadcasts(admin, app, req.uri().query()).await,
        ("GET", ["apps", app, "broadcasts", id]) => broadcast(admin, app, id).await,
        ("POST", ["apps", app, "broadcasts"]) => send(admin, app, body).await,
        ("GET", ["apps", app, "users", user_id]) => user(admin, app, user_id).await,
        _ if method == Method::GET || method == Method::POST || method == Method::DELETE => {
            Err((StatusCode::NOT_FOUND, format!("no such console API path: {method} /console/api/{path}")))
        }
        _ => Err((StatusCode::METHOD_NOT_ALLOWED, format!("method {method} is not used by the console API"))),
    };
    match result {
        Ok(value) => json(StatusCode::OK, &value),
        Err((status, message)) => error(status, &message),
    }
}

type Answer = Result<Value, (StatusCode, String)>;

fn store_failed(e: herald_store::StoreError) -> (StatusCode, String) {
    tracing::error!(error = %e, "admin console: store failed");
    (StatusCode::INTERNAL_SERVER_ERROR, "the store failed; see the server log".to_string())
}

async fn sign_in(admin: &Admin, body: &[u8]) -> Response<Full<Bytes>> {
    let token = serde_json::from_slice::<Value>(body).ok().and_then(|v| v["token"].as_str().map(str::to_string));
    match token.and_then(|t| admin.sessions.sign_in(&admin.config, &t)) {
        Some((id, csrf)) => {
            let mut response = json(StatusCode::OK, &json!({ "csrf": csrf }));
            let cookie = auth::set_cookie(&id, auth::SESSION_TTL);
            response.headers_mut().insert(header::SET_COOKIE, cookie.parse().expect("cookie is ASCII"));
            response
        }
        None => {
            // A guesser waits; the answer is the same whether the console is on or off.
            tokio::time::sleep(Duration::from_millis(200)).await;
            error(StatusCode::UNAUTHORIZED, "sign-in refused")
        }
    }
}

fn sign_out(admin: &Admin, caller: &Caller) -> Response<Full<Bytes>> {
    if let Caller::Session { id, .. } = caller {
        admin.sessions.sign_out(id);
    }
    let mut response = Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid");
    let cookie = auth::set_cookie("", Duration::ZERO);
    response.headers_mut().insert(header::SET_COOKIE, cookie.parse().expect("cookie is ASCII"));
    response
}

fn app_of<'a>(admin: &'a Admin, app: &str) -> Result<&'a crate::config::AppConfig, (StatusCode, String)> {
    app.parse::<u32>()
        .ok()
        .and_then(|id| admin.apps.get(&id))
        .map(|a| &**a)
        .ok_or((StatusCode::NOT_FOUND, format!("no app {app:?} is configured")))
}

async fn overview(admin: &Admin) -> Answer {
    let now_ms = admin.clock.now_ms();
    let cluster = admin.relay.is_some();
    let (sessions_here, users_here) = (admin.hub.sessions_by_app(), admin.hub.users_by_app());
    let mut apps: Vec<_> = admin.apps.values().collect();
    apps.sort_by_key(|a| a.app_id);
    let mut out = Vec::with_capacity(apps.len());
    for app in apps {
        let id = app.app_id;
        let (sessions, users) = if cluster {
            admin.store.online_counts(id, now_ms).await.map_err(store_failed)?
        } else {
            (sessions_here.get(&id).copied().unwrap_or(0) as u64, users_here.get(&id).copied().unwrap_or(0) as u64)
        };
        let today = admin.store.count_broadcast_calls(id, now_ms - DAY_MS).await.map_err(store_failed)?;
        let jobs = admin.store.open_push_jobs(id).await.map_err(store_failed)?;
        // What a job walks: its progress is (targeted + skipped_online) / this.
        let bindings =
            if jobs.is_empty() { 0 } else { admin.store.count_push_bindings(id).await.map_err(store_failed)? };
        let jobs: Vec<Value> = jobs
            .iter()
            .map(|j| {
                json!({"message_id": j.message_id.to_string(), "state": j.state.as_str(),
                       "targeted": j.counts.targeted, "sent": j.counts.sent, "failed": j.counts.failed,
                       "removed": j.counts.removed, "skipped_online": j.counts.skipped_online})
            })
            .collect();
        out.push(json!({"app_id": id, "sessions": sessions, "users": users, "broadcasts_today": today,
                        "push_bindings": bindings,
                        "per_day_cap": app.limits.broadcast_per_day, "per_second_cap": app.limits.broadcast_per_second,
                        "push_jobs": jobs}));
    }
    let nodes: Vec<Value> = if cluster {
        let nodes = admin.store.cluster_nodes().await.map_err(store_failed)?;
        nodes
            .iter()
            .map(|n| {
                json!({"node_id": n.node_id, "sessions": n.sessions, "alive": n.lease_until_ms > now_ms,
                            "lease_until_ms": n.lease_until_ms})
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(json!({"node_id": admin.node_id, "cluster": cluster, "server_time_ms": now_ms, "apps": out, "nodes": nodes}))
}

/// A report as `QueryBroadcastReport` gives it, plus the message.
async fn report(admin: &Admin, record: &herald_store::BroadcastRecord) -> Answer {
    let job = admin.store.get_push_job(record.app_id, record.message_id).await.map_err(store_failed)?;
    let mut fields: Map<String, Value> =
        report_fields(record, job.as_ref()).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let body = serde_json::from_str::<Value>(&record.body_json).unwrap_or(Value::Null);
    fields.insert("MessageBody".into(), body);
    Ok(Value::Object(fields))
}

async fn broadcasts(admin: &Admin, app: &str, query: Option<&str>) -> Answer {
    let app = app_of(admin, app)?;
    let limit = match query.and_then(|q| q.split('&').find_map(|p| p.strip_prefix("limit="))) {
        None => 50,
        Some(n) => n
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIST).contains(n))
            .ok_or((StatusCode::BAD_REQUEST, format!("limit must be 1..={MAX_LIST}, got {n:?}")))?,
    };
    let records = admin.store.list_broadcasts(app.app_id, limit).await.map_err(store_failed)?;
    let mut list = Vec::with_capacity(records.len());
    for r in &records {
        list.push(report(admin, r).await?);
    }
    Ok(json!({ "broadcasts": list }))
}

async fn broadcast(admin: &Admin, app: &str, id: &str) -> Answer {
    let app = app_of(admin, app)?;
    let id: u64 = id.parse().map_err(|_| (StatusCode::BAD_REQUEST, format!("{id:?} is not a message id")))?;
    match admin.store.get_broadcast(app.app_id, id).await.map_err(store_failed)? {
        Some(record) => report(admin, &record).await,
        None => Err((StatusCode::NOT_FOUND, format!("no broadcast {id} in app {}", app.app_id))),
    }
}

/// Goes through the server API itself, signed with the app's secret: the same checks, rate
/// limits and records as a call from the app's backend, and its answer as it is.
async fn send(admin: &Admin, app: &str, body: Bytes) -> Answer {
    let app = app_of(admin, app)?;
    let nonce = format!("admin-{:016x}", rand::random::<u64>());
    let now_s = admin.clock.now_s();
    let query = herald_proto::signature::signed_query(
        "SendMessageToAllUsers",
        app.app_id,
        app.server_secret.expose(),
        &nonce,
        now_s,
        &[],
    );
    tracing::info!(app_id = app.app_id, "admin console: broadcast sent by an operator");
    let answer = admin.api.handle(Some(&query), Body::Bytes(body)).await;
    serde_json::from_slice(&answer).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("bad API answer: {e}")))
}

async fn user(admin: &Admin, app: &str, user: &str) -> Answer {
    let app = app_of(admin, app)?;
    let user_id =
        percent_decode(user).ok_or((StatusCode::BAD_REQUEST, format!("{user:?} is not a valid path segment")))?;
    let found = admin.store.get_users(app.app_id, std::slice::from_ref(&user_id)).await.map_err(store_failed)?;
    let profile = found
        .first()
        .map(|u| json!({"UserId": u.user_id, "UserName": u.user_name, "UserAvatar": u.user_avatar, "Extra": u.extra}));
    let online = admin.presence.is_online(app.app_id, &user_id).await;
    Ok(json!({"user": profile, "online": online, "sessions_here": admin.hub.sessions_of(app.app_id, &user_id)}))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
