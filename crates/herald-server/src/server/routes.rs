//! What each path of the public listener does: `/` the server API, `/ws` the gateway,
//! `/healthz` a liveness answer; anything else a JSON error.

use crate::admission::Ticket;
use crate::api::{Api, ApiError, Body};
use crate::gateway::Gateway;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub(super) struct Routes {
    pub api: Arc<Api>,
    pub gateway: Arc<Gateway>,
    pub max_body: usize,
    /// `api.request_timeout_ms`: how long a body may take to arrive.
    pub request_timeout: Duration,
}

impl Routes {
    pub async fn serve(&self, req: Request<Incoming>, ticket: &Arc<Ticket>) -> Response<Full<Bytes>> {
        match req.uri().path() {
            "/ws" => self.gateway.upgrade(req, ticket.clone()),
            "/healthz" => text(StatusCode::OK, "ok"),
            "/" => self.api(req, ticket).await,
            other => json(StatusCode::NOT_FOUND, self.api.error_answer(&ApiError::NoSuchPath(other.to_string()))),
        }
    }

    /// The signature is checked before the body is read, and a body must arrive within
    /// `api.request_timeout_ms`: neither a client that cannot sign nor one that trickles can
    /// make the server hold buffers or connections for long.
    async fn api(&self, req: Request<Incoming>, ticket: &Ticket) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::POST {
            let err = ApiError::MethodNotAllowed(req.method().to_string());
            return json(StatusCode::OK, self.api.error_answer(&err));
        }
        let started = std::time::Instant::now();
        let authorized = match self.api.authorize(req.uri().query(), started).await {
            Ok(authorized) => authorized,
            // The body is left unread; hyper closes the connection rather than reuse it.
            Err(answer) => return json(StatusCode::OK, answer),
        };
        ticket.authenticated();
        let limit_ms = self.request_timeout.as_millis() as u64;
        let read = tokio::time::timeout(self.request_timeout, Limited::new(req.into_body(), self.max_body).collect());
        let body = match read.await {
            Ok(Ok(collected)) => Body::Bytes(collected.to_bytes()),
            Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                Body::TooLarge { limit: self.max_body }
            }
            Ok(Err(e)) => Body::Failed(e.to_string()),
            Err(_) => Body::TimedOut { limit_ms },
        };
        let timed_out = matches!(body, Body::TimedOut { .. });
        let mut response = json(StatusCode::OK, self.api.answer(authorized, body).await);
        if timed_out {
            response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        }
        response
    }
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("static response parts are valid")
}
