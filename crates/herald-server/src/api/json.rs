//! Reading request bodies field by field, so each wrong field gets a message naming it.

use super::error::ApiError;
use serde_json::{Map, Value};

pub type Object = Map<String, Value>;

/// Parses a body that must be one JSON object. serde_json refuses nesting deeper than 128
/// levels, so a hostile body cannot exhaust the stack.
pub fn parse_object(body: &[u8]) -> Result<Object, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::param("request body is empty; this action expects a JSON object (POST)"));
    }
    let text =
        std::str::from_utf8(body).map_err(|e| ApiError::param(format!("request body is not valid UTF-8 ({e})")))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::param(format!("request body must be a JSON object, got {}", kind(&other)))),
        Err(e) => Err(ApiError::param(format!("request body is not valid JSON: {e}"))),
    }
}

/// The JSON type name of a value, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(field: &str, want: &str, got: &Value) -> ApiError {
    ApiError::param(format!("{field} must be {want}, got {}", kind(got)))
}

pub fn opt_str<'a>(obj: &'a Object, key: &str, field: &str) -> Result<Option<&'a str>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(field, "a string", other)),
    }
}

pub fn req_str<'a>(obj: &'a Object, key: &str, field: &str) -> Result<&'a str, ApiError> {
    opt_str(obj, key, field)?.ok_or_else(|| ApiError::param(format!("{field} is required")))
}

/// An integer field; `1.0` and `"1"` are refused, as ZIM's typed API would.
pub fn opt_int(obj: &Object, key: &str, field: &str) -> Result<Option<i64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| ApiError::param(format!("{field} must be an integer, got {n}")))
        }
        Some(other) => Err(wrong_type(field, "an integer", other)),
    }
}

pub fn req_int(obj: &Object, key: &str, field: &str) -> Result<i64, ApiError> {
    opt_int(obj, key, field)?.ok_or_else(|| ApiError::param(format!("{field} is required")))
}

pub fn opt_object<'a>(obj: &'a Object, key: &str, field: &str) -> Result<Option<&'a Object>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(wrong_type(field, "an object", other)),
    }
}

pub fn req_array<'a>(obj: &'a Object, key: &str, field: &str) -> Result<&'a Vec<Value>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(ApiError::param(format!("{field} is required"))),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(wrong_type(field, "an array", other)),
    }
}
