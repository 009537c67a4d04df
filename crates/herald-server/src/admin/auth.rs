//! Signing operators in: the admin token buys a session cookie (HttpOnly, SameSite=Strict) and
//! a CSRF token that every state-changing request must carry. Scripts may send the token itself
//! as `Authorization: Bearer …` instead, and then need no CSRF token (no browser sends it on its
//! own).

use crate::config::AdminConfig;
use http::{header, HeaderMap, Method, Request};
use rand::Rng;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a console session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Console sessions held at once; past it, the oldest is signed out.
pub const MAX_SESSIONS: usize = 1000;
pub const COOKIE: &str = "herald_admin";
pub const CSRF_HEADER: &str = "x-csrf-token";

struct Session {
    csrf: String,
    expires: Instant,
}

#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

/// Who is asking, once signed in.
#[derive(Debug, PartialEq, Eq)]
pub enum Caller {
    /// A browser session: state changes need its CSRF token.
    Session { id: String, csrf: String },
    /// The token itself in `Authorization: Bearer`.
    Bearer,
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..bytes).map(|_| format!("{:02x}", rng.gen::<u8>())).collect()
}

/// Compares without leaking, through timing, how much of a guess was right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Signs in with `token`: `Some((session id, csrf))`, or `None` when the token is wrong or
    /// the console is off — the caller answers both alike.
    pub fn sign_in(&self, config: &AdminConfig, token: &str) -> Option<(String, String)> {
        let expected = config.token.as_ref()?;
        if !same(expected.expose(), token) {
            return None;
        }
        let (id, csrf) = (random_hex(32), random_hex(32));
        let mut sessions = self.lock();
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone()) {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), Session { csrf: csrf.clone(), expires: now + SESSION_TTL });
        Some((id, csrf))
    }

    pub fn sign_out(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn bearer_ok<B>(&self, req: &Request<B>, config: &AdminConfig) -> bool {
        let Some(expected) = &config.token else { return false };
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| same(expected.expose(), t.trim()))
    }

    /// Who sent `req`, if anyone signed in did. `None` also while the console is off.
    pub fn caller<B>(&self, req: &Request<B>, config: &AdminConfig) -> Option<Caller> {
        config.token.as_ref()?;
        if self.bearer_ok(req, config) {
            return Some(Caller::Bearer);
        }
        let id = cookie(req.headers())?;
        let sessions = self.lock();
        let session = sessions.get(id).filter(|s| s.expires > Instant::now())?;
        Some(Caller::Session { id: id.to_string(), csrf: session.csrf.clone() })
    }

    /// A state-changing request from a browser session must carry its CSRF token.
    pub fn csrf_ok<B>(req: &Request<B>, caller: &Caller) -> bool {
        match caller {
            Caller::Bearer => true,
            Caller::Session { csrf, .. } => {
                req.method() == Method::GET
                    || req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).is_some_and(|sent| same(sent, csrf))
            }
        }
    }
}

/// The `Set-Cookie` value of a session (empty id and zero age clear it).
pub fn set_cookie(id: &str, max_age: Duration) -> String {
    format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}", max_age.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn config(token: Option<&str>) -> AdminConfig {
        AdminConfig { token: token.map(Secret::new), ..AdminConfig::default() }
    }

    fn request(method: Method, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri("/console/api/overview");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn a_session_needs_the_token_and_its_csrf_for_changes() {
        let sessions = Sessions::default();
        let cfg = config(Some("0123456789abcdef-token"));
        assert_eq!(sessions.sign_in(&cfg, "wrong"), None);
        assert_eq!(sessions.sign_in(&config(None), "anything"), None, "console off: refused alike");
        let (id, csrf) = sessions.sign_in(&cfg, "0123456789abcdef-token").unwrap();
        let cookie = format!("{COOKIE}={id}");
        let get = request(Method::GET, &[("cookie", &cookie)]);
        let caller = sessions.caller(&get, &cfg).expect("signed in");
        assert!(Sessions::csrf_ok(&get, &caller));
        let post = request(Method::POST, &[("cookie", &cookie)]);
        assert!(!Sessions::csrf_ok(&post, &caller), "no CSRF token");
        let post = request(Method::POST, &[("cookie", &cookie), (CSRF_HEADER, &csrf)]);
        assert!(Sessions::csrf_ok(&post, &caller));
        sessions.sign_out(&id);
        assert_eq!(sessions.caller(&get, &cfg), None, "signed out");
        assert_eq!(sessions.caller(&request(Method::GET, &[("cookie", "herald_admin=forged")]), &cfg), None);
        let bearer = request(Method::POST, &[("authorization", "Bearer 0123456789abcdef-token")]);
        assert_eq!(sessions.caller(&bearer, &cfg), Some(Caller::Bearer));
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let c = set_cookie("abc", SESSION_TTL);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.starts_with("herald_admin=abc;"), "{c}");
    }
}
