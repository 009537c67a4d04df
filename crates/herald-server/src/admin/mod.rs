//! The admin listener (docs/admin.md): Prometheus metrics, the console and its JSON API, and
//! the OpenAPI document, on an address of its own (loopback by default) so the public port
//! never serves any of it.
//!
//! `auth.rs` signs operators in (token, session cookie, CSRF); `console.rs` answers the
//! console's JSON API; `gauges.rs` reads what metrics describe at scrape time; `assets.rs` holds
//! the page and the OpenAPI document, built into the binary.

mod assets;
mod auth;
mod console;
mod gauges;

use crate::admission::Admission;
use crate::api::Api;
use crate::broadcast::Presence;
use crate::clock::Clock;
use crate::cluster::NatsRelay;
use crate::config::{AdminConfig, AppConfig};
use crate::hub::Hub;
use crate::metrics::Metrics;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Largest request body the console API reads (a broadcast body is at most ~70 KB).
const MAX_BODY_BYTES: usize = 256 * 1024;
/// A request's head and body must arrive within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the admin listener reads from or acts through.
pub struct Admin {
    pub config: AdminConfig,
    pub apps: HashMap<u32, Arc<AppConfig>>,
    pub api: Arc<Api>,
    pub hub: Arc<Hub>,
    pub presence: Arc<dyn Presence>,
    pub store: Arc<dyn herald_store::Store>,
    pub admission: Arc<Admission>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Set in cluster mode.
    pub relay: Option<Arc<NatsRelay>>,
    pub node_id: u16,
    sessions: auth::Sessions,
}

impl Admin {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: AdminConfig,
        apps: &[AppConfig],
        api: Arc<Api>,
        hub: Arc<Hub>,
        presence: Arc<dyn Presence>,
        store: Arc<dyn herald_store::Store>,
        admission: Arc<Admission>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        relay: Option<Arc<NatsRelay>>,
        node_id: u16,
    ) -> Arc<Admin> {
        let apps = apps.iter().map(|a| (a.app_id, Arc::new(a.clone()))).collect();
        let sessions = auth::Sessions::default();
        Arc::new(Admin { config, apps, api, hub, presence, store, admission, metrics, clock, relay, node_id, sessions })
    }

    /// Serves until `shutdown`, one task per connection on `tracker`.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken, tracker: TaskTracker) {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1.timer(TokioTimer::new()).header_read_timeout(REQUEST_TIMEOUT);
        loop {
            let (tcp, _) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(error = %e, "admin accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let admin = self.clone();
            let svc = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(admin.route(req).await) }
            });
            let conn = http1.serve_connection(TokioIo::new(tcp), svc);
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            });
        }
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        match (method.as_str(), path.as_str()) {
            ("GET", "/metrics") => {
                if self.config.metrics_require_token && !self.sessions.bearer_ok(&req, &self.config) {
                    return error(StatusCode::UNAUTHORIZED, "metrics need the admin token (Authorization: Bearer …)");
                }
                let text = self.metrics.render(&gauges::read(self).await);
                respond(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", text.into())
            }
            ("GET", "/openapi.yaml") => respond(StatusCode::OK, "application/yaml", assets::OPENAPI.into()),
            ("GET", "/console" | "/console/") => {
                let mut page = respond(StatusCode::OK, "text/html; charset=utf-8", assets::INDEX.into());
                // A page with a "send to everyone" button: its own files only, never in a frame.
                let csp = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
                page.headers_mut().insert("content-security-policy", header::HeaderValue::from_static(csp));
                page.headers_mut().insert("x-frame-options", header::HeaderValue::from_static("DENY"));
                page
            }
            ("GET", "/console/assets/app.js") => {
                respond(StatusCode::OK, "text/javascript; charset=utf-8", assets::APP_JS.into())
            }
            ("GET", "/console/assets/style.css") => {
                respond(StatusCode::OK, "text/css; charset=utf-8", assets::STYLE.into())
            }
            (_, p) if p.starts_with("/console/api/") => {
                let (parts, body) = req.into_parts();
                let read = tokio::time::timeout(REQUEST_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect());
                let body = match read.await {
                    Ok(Ok(b)) => b.to_bytes(),
                    Ok(Err(_)) => return error(StatusCode::BAD_REQUEST, "request body unreadable or over 256 KiB"),
                    Err(_) => return error(StatusCode::BAD_REQUEST, "request body did not arrive in time"),
                };
                console::handle(self, Request::from_parts(parts, ()), body).await
            }
            _ => error(StatusCode::NOT_FOUND, "no such path on the admin listener"),
        }
    }
}

fn respond(status: StatusCode, content_type: &str, body: Bytes) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff")
        .body(Full::new(body))
        .expect("static response parts are valid")
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(status, "application/json", Bytes::from(value.to_string()))
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}
