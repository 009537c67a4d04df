//! User actions: `UserRegister`, `QueryUserInfos`, `ModifyUserInfo`, `QueryUserOnlineState`.
//!
//! A wrong shape fails the whole call (660000002); a problem with one user goes into
//! `ErrorList` with its `SubCode` and the rest proceed, as ZIM does.

use super::error::{error_list, ApiError, ItemProblem};
use super::json::{self, Object};
use super::response::Fields;
use super::{Api, Query};
use crate::config::AppConfig;
use herald_proto::user_id::check_user_id;
use herald_store::{RowOutcome, UserChange, UserRecord};
use serde_json::{json, Value};

/// Query APIs accept ids up to 64 bytes (ZIM's query docs); registration caps them at 32.
const QUERY_USER_ID_MAX_BYTES: usize = 64;

/// The users a call could not do, by user id.
type Problems = Vec<(String, ItemProblem)>;

/// Fails the whole call when every item failed, as ZIM's batch APIs do.
fn finish_batch(total: usize, problems: Problems, verb: &'static str) -> Result<Fields, ApiError> {
    if total > 0 && problems.len() == total {
        return Err(ApiError::BatchFailed { verb, problems });
    }
    Ok(vec![("ErrorList", error_list(&problems))])
}

fn user_items<'a>(obj: &'a Object, key: &str, app: &AppConfig) -> Result<Vec<&'a Object>, ApiError> {
    let items = json::req_array(obj, key, key)?;
    if items.is_empty() {
        return Err(ApiError::param(format!("{key} must list at least one user")));
    }
    if items.len() > app.limits.users_per_call {
        return Err(ApiError::TooManyUsers { count: items.len(), max: app.limits.users_per_call });
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_object().ok_or_else(|| ApiError::param(format!("{key}[{i}] must be an object, got {}", json::kind(v))))
        })
        .collect()
}

fn id_problem(user_id: &str) -> Option<ItemProblem> {
    check_user_id(user_id).err().map(ItemProblem::UserId)
}

fn length_problem(field: &'static str, value: Option<&str>, max: usize) -> Option<ItemProblem> {
    let len = value.map_or(0, str::len);
    (len > max).then_some(ItemProblem::TooLong { field, len, max })
}

/// `UserRegister`: create up to `users_per_call` users.
pub async fn register(api: &Api, app: &AppConfig, body: &[u8]) -> Result<Fields, ApiError> {
    let obj = json::parse_object(body)?;
    let items = user_items(&obj, "UserInfo", app)?;
    let now_ms = api.clock.now_ms();
    let mut errors = Vec::new();
    let mut fresh = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let user_id = json::req_str(item, "UserId", &format!("UserInfo[{i}].UserId"))?;
        let name = json::opt_str(item, "UserName", &format!("UserInfo[{i}].UserName"))?;
        let avatar = json::opt_str(item, "UserAvatar", &format!("UserInfo[{i}].UserAvatar"))?;
        let problem = id_problem(user_id)
            .or_else(|| length_problem("UserName", name, app.limits.user_name_max_bytes))
            .or_else(|| length_problem("UserAvatar", avatar, app.limits.user_avatar_max_bytes));
        match problem {
            Some(problem) => errors.push((i, (user_id.to_string(), problem))),
            None => fresh.push((
                i,
                UserRecord {
                    user_id: user_id.to_string(),
                    user_name: name.unwrap_or_default().to_string(),
                    user_avatar: avatar.unwrap_or_default().to_string(),
                    extra: String::new(),
                    created_at_ms: now_ms,
                },
            )),
        }
    }
    let records: Vec<UserRecord> = fresh.iter().map(|(_, r)| r.clone()).collect();
    let outcomes = api.store.register_users(app.app_id, &records).await?;
    for ((i, record), outcome) in fresh.into_iter().zip(outcomes) {
        if outcome == RowOutcome::AlreadyExists {
            let problem = ItemProblem::AlreadyExists(record.user_id.clone());
            errors.push((i, (record.user_id, problem)));
        }
    }
    errors.sort_by_key(|(i, _)| *i);
    finish_batch(items.len(), errors.into_iter().map(|(_, e)| e).collect(), "registered")
}

/// `QueryUserInfos`: the stored profile of up to `users_per_call` users.
pub async fn query_infos(api: &Api, app: &AppConfig, body: &[u8]) -> Result<Fields, ApiError> {
    let obj = json::parse_object(body)?;
    let ids = string_list(json::req_array(&obj, "UserIds", "UserIds")?, "UserIds", app)?;
    let found = api.store.get_users(app.app_id, &ids).await?;
    let mut result = Vec::new();
    let mut errors = Vec::new();
    for id in &ids {
        match found.iter().find(|u| &u.user_id == id) {
            Some(u) => result.push(
                json!({"UserId": u.user_id, "UserName": u.user_name, "UserAvatar": u.user_avatar, "Extra": u.extra}),
            ),
            None => errors.push((id.clone(), ItemProblem::NotFound(id.clone()))),
        }
    }
    Ok(vec![("Result", Value::Array(result)), ("ErrorList", error_list(&errors))])
}

fn string_list(items: &[Value], field: &str, app: &AppConfig) -> Result<Vec<String>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::param(format!("{field} must list at least one user")));
    }
    if items.len() > app.limits.users_per_call {
        return Err(ApiError::TooManyUsers { count: items.len(), max: app.limits.users_per_call });
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) if !s.is_empty() && s.len() <= QUERY_USER_ID_MAX_BYTES => Ok(s.clone()),
            Value::String(s) => Err(ApiError::param(format!(
                "{field}[{i}] is {} bytes; a user id must be 1..={QUERY_USER_ID_MAX_BYTES} bytes",
                s.len()
            ))),
            other => Err(ApiError::param(format!("{field}[{i}] must be a string, got {}", json::kind(other)))),
        })
        .collect()
}

/// `ModifyUserInfo`: change name, avatar or extra of up to `users_per_call` users.
pub async fn modify(api: &Api, app: &AppConfig, body: &[u8]) -> Result<Fields, ApiError> {
    let obj = json::parse_object(body)?;
    let items = user_items(&obj, "UserInfo", app)?;
    let mut errors = Vec::new();
    let mut changes = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = |name: &str| format!("UserInfo[{i}].{name}");
        let user_id = json::req_str(item, "UserId", &field("UserId"))?;
        let name = json::opt_str(item, "UserName", &field("UserName"))?;
        let avatar = json::opt_str(item, "UserAvatar", &field("UserAvatar"))?;
        let extra = json::opt_str(item, "Extra", &field("Extra"))?;
        let l = &app.limits;
        let problem = id_problem(user_id)
            .or_else(|| length_problem("UserName", name, l.user_name_max_bytes))
            .or_else(|| length_problem("UserAvatar", avatar, l.user_avatar_max_bytes))
            .or_else(|| length_problem("Extra", extra, l.user_extra_max_bytes));
        match problem {
            Some(problem) => errors.push((i, (user_id.to_string(), problem))),
            None => changes.push((
                i,
                UserChange {
                    user_id: user_id.to_string(),
                    user_name: name.map(str::to_string),
                    user_avatar: avatar.map(str::to_string),
                    extra: extra.map(str::to_string),
                },
            )),
        }
    }
    let list: Vec<UserChange> = changes.iter().map(|(_, c)| c.clone()).collect();
    let outcomes = api.store.modify_users(app.app_id, &list).await?;
    for ((i, change), outcome) in changes.into_iter().zip(outcomes) {
        if outcome == RowOutcome::NotFound {
            let problem = ItemProblem::NotRegistered(change.user_id.clone());
            errors.push((i, (change.user_id, problem)));
        }
    }
    errors.sort_by_key(|(i, _)| *i);
    finish_batch(items.len(), errors.into_iter().map(|(_, e)| e).collect(), "modified")
}

/// `QueryUserOnlineState` (GET, `UserId[]=a&UserId[]=b`): Online while any session of the
/// user is logged in with a live heartbeat.
pub async fn online_state(api: &Api, app: &AppConfig, query: &Query) -> Result<Fields, ApiError> {
    let ids: Vec<Value> =
        query.all("UserId[]").chain(query.all("UserId")).map(|s| Value::String(s.to_string())).collect();
    if ids.is_empty() {
        return Err(ApiError::param("UserId[] is required: pass UserId[]=a&UserId[]=b in the query"));
    }
    let ids = string_list(&ids, "UserId[]", app)?;
    let known = api.store.get_users(app.app_id, &ids).await?;
    let online = api.presence.online_among(app.app_id, &ids).await?;
    let mut result = Vec::new();
    let mut errors = Vec::new();
    for id in &ids {
        if known.iter().any(|u| &u.user_id == id) {
            let status = if online.contains(id) { "Online" } else { "Offline" };
            result.push(json!({"UserId": id, "Status": status}));
        } else {
            errors.push((id.clone(), ItemProblem::Missing(id.clone())));
        }
    }
    Ok(vec![("Result", Value::Array(result)), ("ErrorList", error_list(&errors))])
}
