//! The JSON API under `/api`: bearer token or session cookie (POSTs with a cookie also need
//! the session's CSRF token in `X-CSRF-Token` or a `csrf` field).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tower::ServiceExt;

use super::guard::{Caller, check_csrf};
use super::{Shared, VERSION, banner};
use crate::services::cdrs::CdrFilter;
use crate::services::voicemails::{CallbackStatus, Listed};
use crate::services::{cdrs, outbox, voicemails};
use crate::store::{AckOutcome, OutboxRow, Outcome, Store, StoreError, cdr_json};

/// An error answered as `{"error": ...}` with a status.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

/// Runs blocking store work off the runtime; no store means 503.
pub async fn with_store<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let Some(store) = app.ctx.store.clone() else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is unavailable (it could not be opened at start; see the log)".into(),
        ));
    };
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

pub async fn status(State(app): State<Shared>, _: Caller) -> Response {
    let now = app.now();
    Json(json!({
        "version": VERSION,
        "node": &app.ctx.node,
        "now": now.to_string(),
        "uptime_s": now.duration_since(app.ctx.started).as_secs().max(0),
        "open": app.ctx.line.hours().is_open(now),
        "hours": banner(&app),
        "sip": app.ctx.sip.to_string(),
        "reload": app.ctx.line.last_reload(),
        "trunks": &*app.ctx.line.trunks(),
    }))
    .into_response()
}

/// Calls up now: caller, client, repeat flag, how long, the flow node and what the call is doing.
pub async fn calls(State(app): State<Shared>, _: Caller) -> Response {
    Json(super::live_events::calls_json(&app)).into_response()
}

pub fn voicemail_json(l: &Listed) -> serde_json::Value {
    let vm = &l.voicemail;
    let mut status = json!({ "state": l.status.name(), "text": l.status.describe() });
    match &l.status {
        CallbackStatus::Acked { by, at } => {
            status["by"] = json!(by);
            status["at"] = json!(at.to_string());
        }
        CallbackStatus::Escalated { at } => status["at"] = json!(at.to_string()),
        CallbackStatus::Overdue { since } => status["since"] = json!(since.to_string()),
        CallbackStatus::Waiting { due } => status["due"] = json!(due.to_string()),
    }
    json!({
        "id": vm.id,
        "call_id": vm.call_id,
        "caller": vm.caller,
        "client": vm.client,
        "ticket": vm.ticket,
        "duration_ms": vm.duration_ms,
        "created_at": vm.created_at.to_string(),
        "sla_due_at": vm.sla_due_at.to_string(),
        "status": status,
        "audio_url": format!("/api/voicemails/{}/audio", vm.id),
        "transcript_state": voicemails::TranscriptState::of(vm).name(),
        "transcript": vm.transcript,
        "transcript_engine": vm.transcript_engine,
        "transcript_error": vm.transcript_error,
        "transcribed_at": vm.transcribed_at.map(|t| t.to_string()),
    })
}

pub async fn voicemails(State(app): State<Shared>, _: Caller) -> Response {
    let now = app.now();
    match with_store(&app, move |s| voicemails::list(s, now)).await {
        Ok(list) => Json(list.iter().map(voicemail_json).collect::<Vec<_>>()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The WAV of a voicemail: this node's file (Range requests and Content-Length by
/// `tower_http`'s `ServeFile`), or else the store's copy (PostgreSQL: recorded on another
/// node), whole.
pub async fn audio(
    State(app): State<Shared>,
    _: Caller,
    Path(id): Path<i64>,
    req: Request,
) -> Response {
    let data_dir = app.ctx.data_dir.clone();
    let path = match with_store(&app, move |s| voicemails::audio(s, id, &data_dir)).await {
        Ok(Some(voicemails::Audio::File(p))) => p,
        Ok(Some(voicemails::Audio::Bytes(wav))) => return wav_headers(wav.into_response()),
        Ok(Some(voicemails::Audio::Missing(path))) => return missing(id, &path),
        Ok(None) => {
            return ApiError(StatusCode::NOT_FOUND, format!("no voicemail {id}")).into_response();
        }
        Err(e) => return e.into_response(),
    };
    let serve = tower_http::services::ServeFile::new(&path);
    match serve.oneshot(req).await {
        Ok(resp) if resp.status() == StatusCode::NOT_FOUND => missing(id, &path),
        Ok(resp) => wav_headers(resp.into_response()),
        Err(e) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn missing(id: i64, path: &std::path::Path) -> Response {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("voicemail {id}: its file {} is missing", path.display()),
    )
    .into_response()
}

/// Whatever the file is called, it is a WAV; never let a browser sniff it as HTML.
fn wav_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    resp
}

/// Fields of a POST: JSON object or form, whichever the body is.
pub fn post_fields(headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        serde_json::from_slice::<HashMap<String, serde_json::Value>>(body)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
            .collect()
    } else {
        serde_urlencoded::from_bytes(body).unwrap_or_default()
    }
}

fn csrf_given<'a>(headers: &'a HeaderMap, fields: &'a HashMap<String, String>) -> Option<&'a str> {
    headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .or(fields.get("csrf").map(String::as_str))
}

/// A handler argument for a state-changing request: who sent it (token or session) and its form
/// fields, once the session's CSRF token (header `X-CSRF-Token` or field `csrf`) has been
/// checked; otherwise refused before the handler runs.
pub struct ApiPost {
    pub who: super::guard::Who,
    pub fields: HashMap<String, String>,
}

impl axum::extract::FromRequest<Shared> for ApiPost {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, app: &Shared) -> Result<ApiPost, Response> {
        let (mut parts, body) = req.into_parts();
        let Caller(who) = Caller::from_request_parts(&mut parts, app).await?;
        let body =
            Bytes::from_request(axum::extract::Request::from_parts(parts.clone(), body), app)
                .await
                .map_err(IntoResponse::into_response)?;
        let fields = post_fields(&parts.headers, &body);
        check_csrf(app, &who, csrf_given(&parts.headers, &fields))
            .map_err(IntoResponse::into_response)?;
        Ok(ApiPost { who, fields })
    }
}

pub async fn ack(
    State(app): State<Shared>,
    Path(id): Path<i64>,
    ApiPost { who, fields }: ApiPost,
) -> Response {
    let by = who
        .user
        .clone()
        .or_else(|| fields.get("by").cloned())
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "admin API".to_string());
    let at = app.now();
    let by2 = by.clone();
    match with_store(&app, move |s| voicemails::ack(s, id, &by2, at)).await {
        Ok(AckOutcome::Acked) => {
            Json(json!({ "id": id, "outcome": "acked", "by": by, "at": at.to_string() }))
                .into_response()
        }
        Ok(AckOutcome::AlreadyAcked { by, at }) => {
            Json(json!({ "id": id, "outcome": "already_acked", "by": by, "at": at.to_string() }))
                .into_response()
        }
        Ok(AckOutcome::NotFound) => {
            ApiError(StatusCode::NOT_FOUND, format!("no voicemail {id}")).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `?from=&to=&client=&outcome=`; empty values mean no filter.
#[derive(Debug, Default, Deserialize)]
pub struct CdrQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub client: Option<String>,
    pub outcome: Option<String>,
}

impl CdrQuery {
    pub fn filter(&self) -> Result<CdrFilter, ApiError> {
        let time = |name: &str, v: &Option<String>| -> Result<Option<jiff::Timestamp>, ApiError> {
            match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => parse_time(v).map(Some).ok_or_else(|| {
                    ApiError(
                        StatusCode::BAD_REQUEST,
                        format!("{name}={v:?}: expected RFC 3339 (2026-11-27T22:30:00-05:00) or a date (2026-11-27, UTC)"),
                    )
                }),
            }
        };
        let outcome = match self.outcome.as_deref().filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => Some(Outcome::parse(v).ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("outcome={v:?}: expected bridged, voicemail, abandoned, closed_hours or rejected"),
                )
            })?),
        };
        Ok(CdrFilter {
            from: time("from", &self.from)?,
            to: time("to", &self.to)?,
            client: self.client.clone().filter(|c| !c.is_empty()),
            outcome,
        })
    }
}

/// RFC 3339, or a bare date (midnight UTC), or a `datetime-local` value (taken as UTC).
fn parse_time(v: &str) -> Option<jiff::Timestamp> {
    v.parse::<jiff::Timestamp>()
        .ok()
        .or_else(|| {
            v.parse::<jiff::civil::DateTime>()
                .ok()
                .and_then(|d| d.in_tz("UTC").ok())
                .map(|z| z.timestamp())
        })
        .or_else(|| {
            v.parse::<jiff::civil::Date>()
                .ok()
                .and_then(|d| d.in_tz("UTC").ok())
                .map(|z| z.timestamp())
        })
}

pub async fn cdrs(State(app): State<Shared>, Query(q): Query<CdrQuery>, _: Caller) -> Response {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match with_store(&app, move |s| cdrs::find(s, &filter)).await {
        Ok(list) => Json(list.iter().map(cdr_json).collect::<Vec<_>>()).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn cdrs_csv(State(app): State<Shared>, Query(q): Query<CdrQuery>, _: Caller) -> Response {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let csv = with_store(&app, move |s| {
        let list = cdrs::find(s, &filter)?;
        let mut out = Vec::new();
        cdrs::write_csv(&mut out, &list).map_err(|e| StoreError::Database {
            doing: "writing CSV".into(),
            reason: e.to_string(),
        })?;
        Ok(out)
    })
    .await;
    match csv {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"cdrs.csv\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

pub fn outbox_json(r: &OutboxRow) -> serde_json::Value {
    json!({
        "id": r.id,
        "event_type": r.event.kind.as_str(),
        "call_id": r.event.call_id,
        "target": r.event.target.as_str(),
        "created_at": r.event.occurred_at.to_string(),
        "attempts": r.attempts,
        "next_attempt_at": r.next_attempt_at.to_string(),
        "last_error": r.last_error,
        "state": if r.attempts == 0 { "pending" } else { "failed" },
    })
}

pub async fn outbox(State(app): State<Shared>, _: Caller) -> Response {
    match with_store(&app, |s| outbox::undelivered(s)).await {
        Ok(rows) => Json(rows.iter().map(outbox_json).collect::<Vec<_>>()).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn retry(State(app): State<Shared>, Path(id): Path<i64>, _: ApiPost) -> Response {
    let now = app.now();
    let notifier = app.ctx.notifier.clone();
    match with_store(&app, move |s| {
        outbox::retry_now(s, notifier.as_ref(), id, now)
    })
    .await
    {
        Ok(true) => Json(json!({ "id": id, "retry_at": now.to_string() })).into_response(),
        Ok(false) => ApiError(
            StatusCode::NOT_FOUND,
            format!("no undelivered outbox event {id}"),
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Hot reload (config, flows, prompts): 200 with the outcome when the new set serves, 422 with
/// it (the error names file:line) when the old set was kept.
pub async fn reload(State(app): State<Shared>, ApiPost { who, .. }: ApiPost) -> Response {
    tracing::info!(
        by = who.user.as_deref().unwrap_or("bearer token"),
        event = "reload_requested",
        "reload requested over the admin API"
    );
    let outcome = app.ctx.line.reload().await;
    let status = if outcome.ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, Json(outcome)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdr_filter_reads_dates_and_refuses_nonsense() {
        let q = CdrQuery {
            from: Some("2026-11-27".into()),
            to: Some("2026-11-28T00:00:00-05:00".into()),
            client: Some(String::new()),
            outcome: Some("voicemail".into()),
        };
        let f = q.filter().ok().expect("valid");
        assert_eq!(f.from, Some("2026-11-27T00:00:00Z".parse().unwrap()));
        assert_eq!(f.to, Some("2026-11-28T05:00:00Z".parse().unwrap()));
        assert_eq!(f.client, None, "empty means any");
        assert_eq!(f.outcome, Some(Outcome::Voicemail));
        let bad = CdrQuery {
            outcome: Some("won".into()),
            ..CdrQuery::default()
        };
        assert!(bad.filter().is_err());
        let bad = CdrQuery {
            from: Some("yesterday".into()),
            ..CdrQuery::default()
        };
        assert!(bad.filter().is_err());
    }
}
