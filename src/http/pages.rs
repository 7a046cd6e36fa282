//! The admin pages: server-rendered HTML over the same services as the API. Forms POST with
//! the session's CSRF token and redirect back (post/redirect/get).

use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::api::{CdrQuery, post_fields, with_store};
use super::guard::{
    COOKIE, Refusal, Who, authenticate, check_csrf, cookie, peer_of, source, verify_token,
};
use super::html::{esc, local_time, page, page_refreshing, post_button};
use super::{SESSION_TTL, Shared, VERSION, banner};
use crate::services::voicemails::CallbackStatus;
use crate::services::{cdrs, outbox, voicemails};

/// A handler argument for a page: who is looking (session or bearer token) and the session's
/// CSRF token for the page's forms; anyone else is sent to log in.
pub(super) struct Viewer {
    pub who: Who,
    /// Empty for a bearer-only client (pages need a session for their forms; such a client uses
    /// the API).
    pub csrf: String,
}

impl FromRequestParts<Shared> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Viewer, Response> {
        let peer = peer_of(parts, app).await?;
        match authenticate(app, &parts.headers, peer).await {
            Ok(who) => {
                let csrf = who
                    .session
                    .as_ref()
                    .map(|(_, c)| c.clone())
                    .unwrap_or_default();
                Ok(Viewer { who, csrf })
            }
            Err(Refusal::Unauthorized) => Err(Redirect::to("/login").into_response()),
            Err(r) => Err(r.into_response()),
        }
    }
}

/// A handler argument for a page's form: its sender (as [`Viewer`]), once the form's `csrf`
/// field has matched the session's; otherwise refused before the handler runs.
pub(super) struct FormPost {
    pub who: Who,
}

impl FromRequest<Shared> for FormPost {
    type Rejection = Response;

    async fn from_request(req: Request, app: &Shared) -> Result<FormPost, Response> {
        let (mut parts, body) = req.into_parts();
        let Viewer { who, .. } = Viewer::from_request_parts(&mut parts, app).await?;
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), app)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields = post_fields(&parts.headers, &body);
        check_csrf(app, &who, fields.get("csrf").map(String::as_str))
            .map_err(IntoResponse::into_response)?;
        Ok(FormPost { who })
    }
}

pub(super) fn render(app: &Shared, title: &str, csrf: &str, body: &str) -> Response {
    Html(page(title, &banner(app), VERSION, Some(csrf), body)).into_response()
}

pub async fn login_form(State(app): State<Shared>) -> Response {
    login_page(&app, "", StatusCode::OK)
}

fn login_page(app: &Shared, error: &str, status: StatusCode) -> Response {
    let configured = app
        .verifier
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .configured();
    let mut body = String::new();
    if !configured {
        body.push_str("<p class=\"err\">No admin token is configured: set <code>[admin] token_hash</code> (make one with <code>ivr admin hash-token</code>) or the <code>IVR_ADMIN_TOKEN</code> environment variable, and restart.</p>");
    }
    if !error.is_empty() {
        let _ = write!(body, "<p class=\"err\">{}</p>", esc(error));
    }
    body.push_str(
        "<form method=\"post\" action=\"/login\"><p><label>Your name (recorded on acknowledgements)<br>\
         <input name=\"name\" autocomplete=\"username\" required></label></p>\
         <p><label>Admin token<br><input name=\"token\" type=\"password\" autocomplete=\"current-password\" required></label></p>\
         <p><button>Log in</button></p></form>",
    );
    (
        status,
        Html(page("Log in", &banner(app), VERSION, None, &body)),
    )
        .into_response()
}

pub async fn login(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = post_fields(&headers, &body);
    let ip = source(peer);
    let now = app.now();
    if let Err(wait) = app.throttle().check(ip, now) {
        return Refusal::Throttled(wait).into_response();
    }
    let token = fields.get("token").cloned().unwrap_or_default();
    let name = fields
        .get("name")
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "admin".to_string());
    if token.is_empty() || !verify_token(&app, token).await {
        app.throttle().failed(ip, now);
        return login_page(&app, "Wrong token.", StatusCode::UNAUTHORIZED);
    }
    app.throttle().succeeded(ip);
    let id = app.sessions().create(&name, now);
    tracing::info!(user = %crate::text::Escaped(&name), from = %ip, event = "admin_login", "admin logged in");
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    let mut resp = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

pub async fn logout(State(app): State<Shared>, headers: HeaderMap, _: FormPost) -> Response {
    if let Some(id) = cookie(&headers, COOKIE) {
        app.sessions().remove(id);
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("ivr_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

pub async fn voicemails(State(app): State<Shared>, Viewer { csrf, .. }: Viewer) -> Response {
    let now = app.now();
    let list = match with_store(&app, move |s| voicemails::list(s, now)).await {
        Ok(l) => l,
        Err(e) => {
            return render(
                &app,
                "Voicemails",
                &csrf,
                &format!("<p class=\"err\">{}</p>", esc(&e.1)),
            );
        }
    };
    let hours = app.ctx.line.hours();
    let mut body = live_calls(&app, now);
    body.push_str("<h2>Voicemails</h2>");
    // The voicemail list is not reloaded by itself: a reload would stop a message playing.
    if list.is_empty() {
        body.push_str("<p>No voicemails.</p>");
    } else {
        body.push_str("<table><tr><th>ID</th><th>Received</th><th>Caller</th><th>Client</th><th>Ticket</th><th>Length</th><th>Callback</th><th>Transcript</th><th>Listen</th><th></th></tr>");
        for l in list.iter().rev() {
            let vm = &l.voicemail;
            let callback = match &l.status {
                CallbackStatus::Waiting { due } => {
                    let left = due.duration_since(now);
                    format!(
                        "waiting: {} min left (due {})",
                        left.as_secs().max(0) / 60,
                        local_time(&hours, *due)
                    )
                }
                other => other.describe(),
            };
            // The caller's words (as an engine heard them): escaped like every caller text.
            let transcript = voicemails::TranscriptState::of(vm);
            let ack = match l.status {
                CallbackStatus::Acked { .. } => String::new(),
                _ => post_button(&format!("/voicemails/{}/ack", vm.id), &csrf, "Acknowledge"),
            };
            let _ = write!(
                body,
                "<tr id=\"vm-{id}\"><td>{id}</td><td>{received}</td><td>{caller}</td><td>{client}</td><td>{ticket}</td><td>{secs:.1} s</td>\
                 <td class=\"{state}\">{callback}</td><td class=\"transcript {tstate}\">{transcript}</td>\
                 <td><audio controls preload=\"none\" src=\"/api/voicemails/{id}/audio\"></audio></td><td>{ack}</td></tr>",
                id = vm.id,
                received = esc(&local_time(&hours, vm.created_at)),
                caller = esc(&vm.caller),
                client = esc(vm.client.as_deref().unwrap_or("-")),
                ticket = esc(vm.ticket.as_deref().unwrap_or("-")),
                secs = vm.duration_ms as f64 / 1000.0,
                state = l.status.name(),
                callback = esc(&callback),
                tstate = transcript.name(),
                transcript = esc(&transcript.describe()),
            );
        }
        body.push_str("</table>");
    }
    render(&app, "Voicemails", &csrf, &body)
}

/// Live calls alone, kept current by the page's script (reloaded every few seconds without).
pub async fn calls(State(app): State<Shared>, Viewer { csrf, .. }: Viewer) -> Response {
    let body = live_calls(&app, app.now());
    Html(page_refreshing(
        "Live calls",
        &banner(&app),
        VERSION,
        Some(&csrf),
        &body,
        Some(LIVE_REFRESH_S),
    ))
    .into_response()
}

/// How often the live calls page reloads itself when scripts are off.
const LIVE_REFRESH_S: u32 = 3;

/// The live calls table.
fn live_calls(app: &Shared, now: jiff::Timestamp) -> String {
    super::live_events::live_section(&app.ctx.live.snapshot(), now)
}

pub async fn ack(
    State(app): State<Shared>,
    Path(id): Path<i64>,
    FormPost { who }: FormPost,
) -> Response {
    let by = who.user.unwrap_or_else(|| "admin page".into());
    let at = app.now();
    match with_store(&app, move |s| voicemails::ack(s, id, &by, at)).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn cdrs(
    State(app): State<Shared>,
    Query(q): Query<CdrQuery>,
    Viewer { csrf, .. }: Viewer,
) -> Response {
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let mut body = format!(
        "<form method=\"get\" action=\"/cdrs\">From <input name=\"from\" value=\"{}\" placeholder=\"2026-11-01\"> \
         To <input name=\"to\" value=\"{}\" placeholder=\"2026-12-01\"> Client <input name=\"client\" value=\"{}\"> \
         Outcome <select name=\"outcome\">",
        v(&q.from),
        v(&q.to),
        v(&q.client)
    );
    for o in std::iter::once("").chain(crate::store::Outcome::ALL.iter().map(|o| o.as_str())) {
        let sel = if q.outcome.as_deref().unwrap_or("") == o {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<option value=\"{o}\"{sel}>{}</option>",
            if o.is_empty() { "any" } else { o }
        );
    }
    body.push_str("</select> <button>Filter</button></form>");
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => {
            let _ = write!(body, "<p class=\"err\">{}</p>", esc(&e.1));
            return render(&app, "Calls", &csrf, &body);
        }
    };
    let query = serde_urlencoded::to_string([
        ("from", q.from.clone().unwrap_or_default()),
        ("to", q.to.clone().unwrap_or_default()),
        ("client", q.client.clone().unwrap_or_default()),
        ("outcome", q.outcome.clone().unwrap_or_default()),
    ])
    .unwrap_or_default();
    let _ = write!(
        body,
        "<p><a href=\"/api/cdrs.csv?{}\">Download CSV</a></p>",
        esc(&query)
    );
    match with_store(&app, move |s| cdrs::find(s, &filter)).await {
        Err(e) => {
            let _ = write!(body, "<p class=\"err\">{}</p>", esc(&e.1));
        }
        Ok(list) => {
            body.push_str("<table><tr><th>Started</th><th>Caller</th><th>Client</th><th>Outcome</th><th>Talk s</th><th>Digits</th><th>Ticket</th><th>Repeat</th><th>Answered by</th><th>End</th></tr>");
            for c in list.iter().rev() {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&c.started_at.to_string()),
                    esc(&c.caller),
                    esc(c.client.as_deref().unwrap_or("-")),
                    c.outcome.map_or("live", |o| o.as_str()),
                    c.talk_seconds,
                    esc(&c.digits),
                    esc(c.ticket.as_deref().unwrap_or("-")),
                    if c.repeat { "yes" } else { "" },
                    esc(c.answered_by.as_deref().unwrap_or("")),
                    esc(&c.end_reason),
                );
            }
            body.push_str("</table>");
        }
    }
    render(&app, "Calls", &csrf, &body)
}

pub async fn outbox(State(app): State<Shared>, Viewer { csrf, .. }: Viewer) -> Response {
    let mut body = String::new();
    match with_store(&app, |s| outbox::undelivered(s)).await {
        Err(e) => {
            let _ = write!(body, "<p class=\"err\">{}</p>", esc(&e.1));
        }
        Ok(rows) if rows.is_empty() => body.push_str("<p>Every webhook event is delivered.</p>"),
        Ok(rows) => {
            body.push_str("<table><tr><th>ID</th><th>Event</th><th>Call</th><th>Target</th><th>Queued</th><th>Attempts</th><th>Next attempt</th><th>Last error</th><th></th></tr>");
            for r in &rows {
                let _ = write!(
                    body,
                    "<tr id=\"outbox-{id}\"><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"err\">{}</td><td>{}</td></tr>",
                    esc(r.event.kind.as_str()),
                    esc(r.event.call_id.as_deref().unwrap_or("-")),
                    esc(r.event.target.as_str()),
                    esc(&r.event.occurred_at.to_string()),
                    r.attempts,
                    esc(&r.next_attempt_at.to_string()),
                    esc(r.last_error.as_deref().unwrap_or("")),
                    post_button(&format!("/outbox/{}/retry", r.id), &csrf, "Retry now"),
                    id = r.id,
                );
            }
            body.push_str("</table>");
        }
    }
    render(&app, "Webhook outbox", &csrf, &body)
}

pub async fn retry(State(app): State<Shared>, Path(id): Path<i64>, _: FormPost) -> Response {
    let now = app.now();
    let notifier = app.ctx.notifier.clone();
    match with_store(&app, move |s| {
        outbox::retry_now(s, notifier.as_ref(), id, now)
    })
    .await
    {
        Ok(_) => Redirect::to("/outbox").into_response(),
        Err(e) => e.into_response(),
    }
}
