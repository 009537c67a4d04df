//! The API layer's one error enum and the one place it becomes a ZIM `Code` and `Message`.

use herald_proto::code;
use herald_store::StoreError;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A missing or malformed common parameter, a bad signature, an unknown app: the
    /// 1000000xx family, each with its own code.
    #[error("{message}")]
    Access { code: u32, message: String },
    #[error("unsupported Action {0:?}")]
    UnsupportedAction(String),
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("cannot read request body: {0}")]
    BodyRead(String),
    #[error("{0}")]
    Param(String),
    #[error("{count} users in one call; at most {max} are allowed")]
    TooManyUsers { count: usize, max: usize },
    #[error("{0}")]
    MessageTooLarge(String),
    #[error("FromUserId {0:?} is not registered: register it with UserRegister or log it in once")]
    SenderNotRegistered(String),
    #[error("{0}")]
    BroadcastRateLimited(String),
    #[error("SendMessageToAllUsers is not enabled for this app (apps.broadcast_enabled)")]
    BroadcastDisabled,
    /// Every item of a batch failed; the `ErrorList` says why, item by item.
    #[error("{message}")]
    BatchFailed { code: u32, message: String, error_list: Value },
    #[error("database request failed")]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn access(code: u32, message: impl Into<String>) -> Self {
        ApiError::Access { code, message: message.into() }
    }

    pub fn param(message: impl Into<String>) -> Self {
        ApiError::Param(message.into())
    }

    /// The ZIM return code.
    pub fn code(&self) -> u32 {
        match self {
            ApiError::Access { code, .. } => *code,
            ApiError::UnsupportedAction(_) => code::ACTION_UNSUPPORTED,
            ApiError::BodyTooLarge { .. } | ApiError::BodyRead(_) => code::BODY_READ_FAILED,
            ApiError::Param(_) => code::PARAM_ERROR,
            ApiError::TooManyUsers { .. } => code::TOO_MANY_USERS,
            ApiError::MessageTooLarge(_) => code::MESSAGE_TOO_LARGE,
            ApiError::SenderNotRegistered(_) => code::SENDER_NOT_REGISTERED,
            ApiError::BroadcastRateLimited(_) => code::BROADCAST_FREQUENCY,
            ApiError::BroadcastDisabled => code::FEATURE_NOT_ENABLED,
            ApiError::BatchFailed { code, .. } => *code,
            ApiError::Store(_) => code::DB_FAILED,
        }
    }

    /// Extra response fields that go with the error (only `ErrorList` today).
    pub fn extra_fields(&self) -> Vec<(&'static str, Value)> {
        match self {
            ApiError::BatchFailed { error_list, .. } => vec![("ErrorList", error_list.clone())],
            _ => Vec::new(),
        }
    }
}
