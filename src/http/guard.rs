//! Applies [`super::auth`] to requests: who is asking (bearer token or session cookie), the
//! per-address throttle, and the CSRF check on POSTs made with a cookie.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::csrf_ok;
use super::{App, Shared};

/// The session cookie's name.
pub const COOKIE: &str = "ivr_session";

/// An authenticated requester.
#[derive(Clone, Debug)]
pub struct Who {
    /// The name given at login; `None` for a bearer token (the API's `by` field names them).
    pub user: Option<String>,
    /// The session id and its CSRF token when the request came with a cookie.
    pub session: Option<(String, String)>,
}

/// Why a request is refused.
pub enum Refusal {
    /// No token is configured at all.
    Unconfigured,
    /// No credentials, or wrong ones.
    Unauthorized,
    /// Too many failures from this address.
    Throttled(std::time::Duration),
    /// A cookie-authenticated POST without the session's CSRF token.
    Csrf,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unconfigured => (
                StatusCode::SERVICE_UNAVAILABLE,
                "no admin token is configured, so the admin page and API are off: set [admin] token_hash \
                 (make one with `ivr admin hash-token`) or the IVR_ADMIN_TOKEN environment variable, and restart\n",
            )
                .into_response(),
            Refusal::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                "admin token required: send `Authorization: Bearer <token>` or log in at /login\n",
            )
                .into_response(),
            Refusal::Throttled(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())],
                "too many failed logins from this address; try again later\n",
            )
                .into_response(),
            Refusal::Csrf => (
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: reload the page and try again\n",
            )
                .into_response(),
        }
    }
}

/// A handler argument: the requester, authenticated by bearer token or session cookie; anyone
/// else is refused (401, 429 or 503) before the handler runs.
pub struct Caller(pub Who);

impl FromRequestParts<Shared> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Caller, Response> {
        let peer = peer_of(parts, app).await?;
        authenticate(app, &parts.headers, peer)
            .await
            .map(Caller)
            .map_err(IntoResponse::into_response)
    }
}

/// The address a request came from (the server is started with connect info).
pub async fn peer_of(parts: &mut Parts, app: &Shared) -> Result<SocketAddr, Response> {
    ConnectInfo::<SocketAddr>::from_request_parts(parts, app)
        .await
        .map(|ConnectInfo(peer)| peer)
        .map_err(IntoResponse::into_response)
}

/// Who sent `headers` from `peer`.
pub async fn authenticate(
    app: &Shared,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Who, Refusal> {
    if !app
        .verifier
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .configured()
    {
        return Err(Refusal::Unconfigured);
    }
    let ip = peer.ip();
    let now = app.now();
    app.throttle().check(ip, now).map_err(Refusal::Throttled)?;
    if let Some(token) = bearer(headers) {
        return if verify_token(app, token.to_string()).await {
            app.throttle().succeeded(ip);
            Ok(Who {
                user: None,
                session: None,
            })
        } else {
            app.throttle().failed(ip, now);
            Err(Refusal::Unauthorized)
        };
    }
    if let Some(id) = cookie(headers, COOKIE)
        && let Some(s) = app.sessions().get(id, now)
    {
        return Ok(Who {
            user: Some(s.user),
            session: Some((id.to_string(), s.csrf)),
        });
    }
    Err(Refusal::Unauthorized)
}

/// Checks the token off the runtime's threads (argon2 takes tens of milliseconds).
pub async fn verify_token(app: &Shared, token: String) -> bool {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        app.verifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .verify(&token)
    })
    .await
    .unwrap_or(false)
}

/// A POST made with a session cookie must carry the session's CSRF token; bearer requests
/// cannot be forged by another site (a browser never adds the header by itself).
pub fn check_csrf(app: &App, who: &Who, given: Option<&str>) -> Result<(), Refusal> {
    match &who.session {
        None => Ok(()),
        Some((id, _)) => match app.sessions().get(id, app.now()) {
            Some(s) if csrf_ok(&s, given) => Ok(()),
            _ => Err(Refusal::Csrf),
        },
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The value of cookie `name`.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The address failed logins are counted against.
pub fn source(peer: SocketAddr) -> IpAddr {
    peer.ip()
}
