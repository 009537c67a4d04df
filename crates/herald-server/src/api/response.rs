//! Every answer of the server API: HTTP 200, JSON, `Code`, `Message`, `RequestId` first, then
//! the action's own fields.

use serde_json::Value;

/// The action's own fields of a successful answer, in the order they are written.
pub type Fields = Vec<(&'static str, Value)>;

pub fn render(code: u32, message: &str, request_id: u64, fields: &[(&'static str, Value)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"{\"Code\":");
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(b",\"Message\":");
    serde_json::to_writer(&mut out, message).expect("string serializes");
    out.extend_from_slice(b",\"RequestId\":\"");
    out.extend_from_slice(request_id.to_string().as_bytes());
    out.push(b'"');
    for (key, value) in fields {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        serde_json::to_writer(&mut out, value).expect("json value serializes");
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn common_fields_come_first() {
        let body = super::render(0, "success", 42, &[("ErrorList", serde_json::json!([]))]);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"Code":0,"Message":"success","RequestId":"42","ErrorList":[]}"#
        );
    }
}
