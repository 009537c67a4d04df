//! The console page and the OpenAPI document, built into the binary: the admin listener fetches
//! nothing at run time and works offline.

pub const INDEX: &str = include_str!("../../console/index.html");
pub const APP_JS: &str = include_str!("../../console/app.js");
pub const STYLE: &str = include_str!("../../console/style.css");
/// `docs/openapi.yaml`, the server API's description, served at `/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../../docs/openapi.yaml");
