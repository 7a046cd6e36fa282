//! `POST /hooks/alertmanager`: Prometheus Alertmanager's webhook (payload version 4) sets and
//! resolves incidents, which the call flows can announce (`[incidents]`, issue 14).
//!
//! Not behind the admin login: Alertmanager sends `Authorization: Bearer SECRET` with
//! `[incidents] alertmanager_secret` (its receiver's `http_config.authorization.credentials`).
//! Each alert in the payload counts on its own status: a firing alert sets or refreshes the
//! incident keyed by its fingerprint, a resolved one resolves it. A firing alert's `endsAt` is
//! its expiry when it lies ahead; Alertmanager sends the zero time `0001-01-01T00:00:00Z` for
//! open-ended alerts, which then last `default_ttl_minutes` unless re-sent.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Shared;
use super::api::{ApiError, with_store};
use super::auth::constant_time_eq;
use crate::store::{IncidentSource, NewIncident};

/// The part of the webhook payload ivr reads; unknown fields are ignored (Alertmanager adds
/// `groupKey`, `receiver`, `externalURL` and more).
#[derive(Deserialize)]
struct Payload {
    version: String,
    alerts: Vec<Alert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Alert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    ends_at: Option<String>,
    fingerprint: String,
}

/// What one alert asks for.
#[derive(Debug, PartialEq)]
pub enum Change {
    Set(NewIncident),
    Resolve(String),
}

/// The changes `body` asks for at `now`, or why it is not a v4 webhook payload.
pub fn changes(
    body: &[u8],
    now: Timestamp,
    ttl: std::time::Duration,
) -> Result<Vec<Change>, String> {
    let payload: Payload = serde_json::from_slice(body)
        .map_err(|e| format!("not an Alertmanager webhook payload: {e}"))?;
    if payload.version != "4" {
        return Err(format!(
            "webhook payload version {:?}; ivr reads version \"4\"",
            payload.version
        ));
    }
    let fallback = now
        .checked_add(jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX);
    payload
        .alerts
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            if a.fingerprint.is_empty() {
                return Err(format!("alerts[{i}] has an empty fingerprint"));
            }
            match a.status.as_str() {
                "resolved" => Ok(Change::Resolve(a.fingerprint)),
                "firing" => {
                    let ends = match a.ends_at.as_deref() {
                        None | Some("") => None,
                        Some(s) => Some(s.parse::<Timestamp>().map_err(|e| {
                            format!("alerts[{i}].endsAt {s:?} is not an RFC 3339 time: {e}")
                        })?),
                    };
                    let summary = ["summary", "description"]
                        .iter()
                        .find_map(|k| a.annotations.get(*k))
                        .or_else(|| a.labels.get("alertname"))
                        .cloned()
                        .unwrap_or_default();
                    Ok(Change::Set(NewIncident {
                        source: IncidentSource::Alertmanager,
                        key: a.fingerprint,
                        labels: a.labels,
                        summary,
                        started_at: now,
                        // The zero time (or any time already past) means "no end given".
                        ends_at: ends.filter(|e| *e > now).unwrap_or(fallback),
                    }))
                }
                other => Err(format!(
                    "alerts[{i}].status {other:?}; expected \"firing\" or \"resolved\""
                )),
            }
        })
        .collect()
}

/// `Authorization: Bearer SECRET` matches; compared as SHA-256 digests so the time taken says
/// nothing about the secret, not even its length.
fn authorized(headers: &HeaderMap, secret: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
    else {
        return false;
    };
    let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    let want: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    constant_time_eq(&given, &want)
}

pub async fn hook(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let cfg = &app.ctx.incidents;
    if cfg.alertmanager_secret.is_empty() {
        return ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the Alertmanager hook is off: set [incidents] alertmanager_secret in the config \
             and send it as `Authorization: Bearer SECRET` (Alertmanager: \
             http_config.authorization.credentials)"
                .into(),
        )
        .into_response();
    }
    if !authorized(&headers, &cfg.alertmanager_secret) {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong `Authorization: Bearer` secret ([incidents] alertmanager_secret)"
                .into(),
        )
        .into_response();
    }
    let now = app.now();
    let changes = match changes(&body, now, cfg.default_ttl()) {
        Ok(c) => c,
        Err(e) => return ApiError(StatusCode::BAD_REQUEST, e).into_response(),
    };
    let applied = with_store(&app, move |store| {
        let (mut set, mut resolved) = (0u32, 0u32);
        for change in &changes {
            match change {
                Change::Set(inc) => {
                    store.set_incident(inc)?;
                    set += 1;
                }
                Change::Resolve(key) => {
                    if store.resolve_incident(IncidentSource::Alertmanager, key, now)? {
                        resolved += 1;
                    }
                }
            }
        }
        Ok((set, resolved))
    })
    .await;
    match applied {
        Ok((set, resolved)) => {
            tracing::info!(set, resolved, "alertmanager: incidents updated");
            Json(json!({ "set": set, "resolved": resolved })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

    fn now() -> Timestamp {
        "2026-03-02T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn zero_ends_at_uses_the_ttl_and_a_later_one_is_kept() {
        let body = br#"{"version":"4","status":"firing","alerts":[
            {"status":"firing","labels":{"service":"email","alertname":"MailDown"},
             "annotations":{"summary":"mail is down"},"startsAt":"2026-03-02T09:58:00Z",
             "endsAt":"0001-01-01T00:00:00Z","fingerprint":"a1"},
            {"status":"firing","labels":{"alertname":"X"},"annotations":{},
             "endsAt":"2026-03-02T10:05:00Z","fingerprint":"b2"}]}"#;
        let c = changes(body, now(), HOUR).expect("parses");
        let Change::Set(a) = &c[0] else {
            panic!("{c:?}")
        };
        assert_eq!(a.ends_at, "2026-03-02T11:00:00Z".parse().unwrap());
        assert_eq!(a.summary, "mail is down");
        let Change::Set(b) = &c[1] else {
            panic!("{c:?}")
        };
        assert_eq!(b.ends_at, "2026-03-02T10:05:00Z".parse().unwrap());
        assert_eq!(b.summary, "X");
    }

    #[test]
    fn bad_payloads_say_why() {
        for (body, want) in [
            (&b"{"[..], "not an Alertmanager webhook payload"),
            (br#"{"version":"3","alerts":[]}"#, "version \"3\""),
            (
                br#"{"version":"4","alerts":[{"status":"odd","fingerprint":"x"}]}"#,
                "alerts[0].status",
            ),
            (
                br#"{"version":"4","alerts":[{"status":"firing","fingerprint":"x","endsAt":"soon"}]}"#,
                "alerts[0].endsAt",
            ),
        ] {
            let err = changes(body, now(), HOUR).expect_err("refused");
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn bearer_secret_is_checked() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorized(&h, "s3cret"));
        assert!(!authorized(&h, "s3cret2"));
        h.insert(header::AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(!authorized(&h, "s3cret"));
    }
}
