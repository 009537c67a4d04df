//! The API layer's errors and the one place they become a ZIM `Code` and `Message`: handlers
//! say what went wrong ([`ApiError`], [`ItemProblem`]); only this file knows the numbers.

use crate::broadcast::AcceptError;
use herald_proto::code;
use herald_proto::user_id::UserIdError;
use herald_store::StoreError;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    // --- The request line and the common parameters (spec §2), each with its own code ---
    #[error("no such path {0:?}: the server API is at / and the client gateway at /ws")]
    NoSuchPath(String),
    #[error("method {0} is not supported; use GET or POST")]
    MethodNotAllowed(String),
    #[error("Action is missing")]
    ActionMissing,
    #[error("AppId is missing")]
    AppIdMissing,
    #[error("AppId {0:?} is not a non-zero 32-bit unsigned number")]
    AppIdFormat(String),
    #[error("SignatureNonce is missing")]
    NonceMissing,
    #[error("Timestamp is missing")]
    TimestampMissing,
    #[error("Timestamp {0:?} is not a Unix time in seconds")]
    TimestampFormat(String),
    #[error("Signature is missing")]
    SignatureMissing,
    #[error("SignatureVersion is missing")]
    SignatureVersionMissing,
    #[error("SignatureVersion {0:?} is not supported; use \"2.0\"")]
    SignatureVersionUnsupported(String),
    #[error("Timestamp {timestamp_s} is {skew_s} s away from the server's clock ({now_s}); at most {window_s} s are allowed")]
    TimestampSkew { timestamp_s: i64, now_s: i64, skew_s: u64, window_s: u64 },
    #[error("Signature does not match: expected lowercase hex md5(AppId + SignatureNonce + ServerSecret + Timestamp)")]
    SignatureMismatch,
    #[error(
        "SignatureNonce {0:?} was already used within the signature window; sign every request with a fresh nonce"
    )]
    NonceReused(String),
    #[error("unknown AppId {0}: no app with this id is configured")]
    UnknownApp(u32),
    #[error("unsupported Action {0:?}")]
    UnsupportedAction(String),

    // --- The body ---
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("cannot read request body: {0}")]
    BodyRead(String),
    #[error("request body did not arrive within {limit_ms} ms (api.request_timeout_ms)")]
    BodyTimedOut { limit_ms: u64 },
    /// A business parameter is wrong: a missing field, a wrong type, a value out of range.
    #[error("{0}")]
    Param(String),
    #[error("{count} users in one call; at most {max} are allowed")]
    TooManyUsers { count: usize, max: usize },
    /// `SendMessageToAllUsers` takes ZIM's "input parameter error" for any bad `FromUserId`,
    /// its length included (spec §1.7 step 3), unlike the user APIs (see [`ItemProblem`]).
    #[error("FromUserId: {0}")]
    FromUserId(UserIdError),
    #[error("MessageBody.{field} is {len} bytes; this app allows at most {max} (apps.limits.{key})")]
    MessageTooLarge { field: &'static str, len: usize, max: usize, key: &'static str },
    #[error("SendMessageToAllUsers is not enabled for this app (apps.broadcast_enabled)")]
    BroadcastDisabled,
    #[error(transparent)]
    Accept(AcceptError),
    /// Every item of a batch failed; the `ErrorList` says why, item by item.
    #[error("no user was {verb}; ErrorList says why for each")]
    BatchFailed { verb: &'static str, problems: Vec<(String, ItemProblem)> },
    #[error("database request failed")]
    Store(#[from] StoreError),
}

impl From<AcceptError> for ApiError {
    fn from(e: AcceptError) -> Self {
        match e {
            AcceptError::Store(e) => ApiError::Store(e),
            other => ApiError::Accept(other),
        }
    }
}

impl ApiError {
    pub fn param(message: impl Into<String>) -> Self {
        ApiError::Param(message.into())
    }

    /// The ZIM return code.
    pub fn code(&self) -> u32 {
        match self {
            ApiError::NoSuchPath(_) | ApiError::MethodNotAllowed(_) => code::INPUT_PARAMS,
            ApiError::ActionMissing => code::ACTION_EMPTY,
            ApiError::AppIdMissing | ApiError::AppIdFormat(_) => code::APP_ID_FORMAT,
            ApiError::NonceMissing => code::NONCE_EMPTY,
            ApiError::TimestampMissing => code::TIMESTAMP_EMPTY,
            ApiError::TimestampFormat(_) => code::TIMESTAMP_FORMAT,
            ApiError::SignatureMissing => code::SIGNATURE_EMPTY,
            ApiError::SignatureVersionMissing => code::SIGNATURE_VERSION_EMPTY,
            ApiError::SignatureVersionUnsupported(_) => code::SIGNATURE_VERSION_UNSUPPORTED,
            ApiError::TimestampSkew { .. } => code::SIGNATURE_EXPIRED,
            // ZIM has no code of its own for a replayed nonce; a replay is a signature that no
            // longer counts.
            ApiError::SignatureMismatch | ApiError::NonceReused(_) => code::SIGNATURE_INVALID,
            ApiError::UnknownApp(_) => code::SECRET_UNAVAILABLE,
            ApiError::UnsupportedAction(_) => code::ACTION_UNSUPPORTED,
            ApiError::BodyTooLarge { .. } | ApiError::BodyRead(_) | ApiError::BodyTimedOut { .. } => {
                code::BODY_READ_FAILED
            }
            ApiError::Param(_) | ApiError::FromUserId(_) => code::PARAM_ERROR,
            ApiError::TooManyUsers { .. } => code::TOO_MANY_USERS,
            ApiError::MessageTooLarge { .. } => code::MESSAGE_TOO_LARGE,
            ApiError::BroadcastDisabled => code::FEATURE_NOT_ENABLED,
            ApiError::Accept(AcceptError::SenderNotRegistered(_)) => code::SENDER_NOT_REGISTERED,
            ApiError::Accept(AcceptError::PerSecondExceeded(_) | AcceptError::PerDayExceeded(_)) => {
                code::BROADCAST_FREQUENCY
            }
            ApiError::Accept(AcceptError::Store(_)) | ApiError::Store(_) => code::DB_FAILED,
            // A batch whose items all failed alike answers with their code; mixed reasons
            // answer ZIM's generic business error.
            ApiError::BatchFailed { problems, .. } => {
                let mut codes = problems.iter().map(|(_, p)| p.sub_code());
                let first = codes.next().unwrap_or(code::BUSINESS_ERROR);
                if codes.all(|c| c == first) {
                    first
                } else {
                    code::BUSINESS_ERROR
                }
            }
        }
    }

    /// Extra response fields that go with the error (only `ErrorList` today).
    pub fn extra_fields(&self) -> Vec<(&'static str, Value)> {
        match self {
            ApiError::BatchFailed { problems, .. } => vec![("ErrorList", error_list(problems))],
            _ => Vec::new(),
        }
    }
}

/// Why one user of a batch call was not done; the others proceed (ZIM's `ErrorList`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemProblem {
    #[error("{0}")]
    UserId(UserIdError),
    #[error("{field} is {len} bytes; at most {max} are allowed")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("user {0:?} already exists")]
    AlreadyExists(String),
    /// `ModifyUserInfo` of an unknown user.
    #[error("user {0:?} is not registered")]
    NotRegistered(String),
    /// `QueryUserInfos` of an unknown user.
    #[error("user {0:?} is not registered")]
    NotFound(String),
    /// `QueryUserOnlineState` of an unknown user.
    #[error("user {0:?} does not exist")]
    Missing(String),
}

impl ItemProblem {
    /// The ZIM `SubCode`.
    pub fn sub_code(&self) -> u32 {
        match self {
            ItemProblem::UserId(UserIdError::TooLong { .. }) => code::USER_ID_TOO_LONG,
            ItemProblem::UserId(_) => code::PARAM_ERROR,
            ItemProblem::TooLong { field: "UserName", .. } => code::USER_NAME_TOO_LONG,
            ItemProblem::TooLong { field: "UserAvatar", .. } => code::USER_AVATAR_TOO_LONG,
            ItemProblem::TooLong { .. } => code::PARAM_ERROR,
            ItemProblem::AlreadyExists(_) => code::USER_ALREADY_EXISTS,
            ItemProblem::NotRegistered(_) => code::USER_NOT_REGISTERED,
            ItemProblem::NotFound(_) => code::USER_NOT_FOUND,
            ItemProblem::Missing(_) => code::USER_NOT_ONLINE_OR_MISSING,
        }
    }
}

/// ZIM's `ErrorList`: one `{UserId, SubCode, SubMessage}` per problem.
pub fn error_list(problems: &[(String, ItemProblem)]) -> Value {
    Value::Array(
        problems
            .iter()
            .map(|(user_id, p)| {
                serde_json::json!({"UserId": user_id, "SubCode": p.sub_code(), "SubMessage": p.to_string()})
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_id_maps_by_api() {
        let long = UserIdError::TooLong { len: 33 };
        assert_eq!(ItemProblem::UserId(long.clone()).sub_code(), code::USER_ID_TOO_LONG);
        assert_eq!(ItemProblem::UserId(UserIdError::Empty).sub_code(), code::PARAM_ERROR);
        assert_eq!(ApiError::FromUserId(long).code(), code::PARAM_ERROR, "spec §1.7 step 3");
    }

    #[test]
    fn a_failed_batch_answers_its_items_code_only_when_they_agree() {
        let same = |p: ItemProblem| ("u".to_string(), p);
        let alike = vec![same(ItemProblem::AlreadyExists("a".into())), same(ItemProblem::AlreadyExists("b".into()))];
        assert_eq!(ApiError::BatchFailed { verb: "registered", problems: alike }.code(), code::USER_ALREADY_EXISTS);
        let mixed = vec![same(ItemProblem::AlreadyExists("a".into())), same(ItemProblem::UserId(UserIdError::Empty))];
        assert_eq!(ApiError::BatchFailed { verb: "registered", problems: mixed }.code(), code::BUSINESS_ERROR);
    }
}
