//! The live calls, as JSON (`GET /api/calls`), as a stream of snapshots (`GET
//! /api/calls/events`, server-sent events: one at once, one after every change, keep-alive
//! comments between), and as the admin page's table, which `live.js` (served by the binary at
//! `/static/live.js`, no CDN) keeps current from that stream. Without scripts the page falls
//! back to reloading itself.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::Shared;
use super::guard::authenticate;
use super::html::esc;
use crate::live::{LiveCall, LiveState};

/// The page's script: subscribes to the event stream and re-renders the table body.
const LIVE_JS: &str = include_str!("live.js");

/// The columns of the live calls table, the same in the server's rendering and the script's.
const COLUMNS: [&str; 7] = [
    "Caller", "Client", "Dialled", "Repeat", "Node", "State", "Duration",
];

/// One call for the API and the event stream.
pub fn call_json(c: &LiveCall, now: Timestamp) -> Value {
    let info = match &c.state {
        LiveState::RingingDesk { targets, phones } => {
            json!({ "targets": targets, "phones": phones })
        }
        LiveState::Bridged { with } => json!({ "with": with }),
        _ => json!({}),
    };
    json!({
        "call_id": c.call_id,
        "caller": c.caller,
        "called": c.called,
        "client": c.client,
        "repeat": c.repeat,
        "after_hours": c.after_hours,
        "started_at": c.started_at.to_string(),
        "duration_s": seconds_between(c.started_at, now),
        "node": c.node,
        "state": c.state.name(),
        "state_detail": c.state.detail(),
        "state_text": c.state.describe(),
        "state_info": info,
        "state_since": c.state_since.to_string(),
        "state_s": seconds_between(c.state_since, now),
    })
}

fn seconds_between(from: Timestamp, to: Timestamp) -> i64 {
    to.duration_since(from).as_secs().max(0)
}

/// Every live call, oldest first.
pub fn calls_json(app: &Shared) -> Value {
    let now = app.now();
    Value::Array(
        app.ctx
            .live
            .snapshot()
            .iter()
            .map(|c| call_json(c, now))
            .collect(),
    )
}

/// The shortest time between two snapshots on one stream.
const MIN_EVENT_GAP: std::time::Duration = std::time::Duration::from_millis(250);

/// `GET /api/calls/events`: the snapshot `{generation, now, calls}` as a `calls` event at once
/// and after each change (changes close together may come as one event: each carries the whole
/// list, so none is lost). Authenticated like `/api/calls`; a browser's EventSource sends the
/// session cookie, and a stream opened with one ends at the first change after that session
/// is gone (logged out, expired). At most one event per [`MIN_EVENT_GAP`].
pub async fn events(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let session = match authenticate(&app, &headers, peer).await {
        Ok(who) => who.session.map(|(id, _)| id),
        Err(r) => return r.into_response(),
    };
    let Ok(permit) = app.event_streams.clone().try_acquire_owned() else {
        tracing::warn!(from = %peer, "too many live-call event streams open; refused");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live-call event streams are open",
        )
            .into_response();
    };
    let changes = app.ctx.live.subscribe();
    let stream =
        futures_util::stream::unfold((app, changes, true), move |(app, mut changes, first)| {
            let session = session.clone();
            // Held as long as the stream: dropped with it when the client goes away.
            let _permit = &permit;
            async move {
                // The sender lives as long as the registry: an error means the server is going away.
                if !first {
                    // At most a few snapshots a second: at hundreds of calls a second every
                    // start and end is a change, and a page needs no more. A change during the
                    // pause stays marked, so the next snapshot has it.
                    tokio::time::sleep(MIN_EVENT_GAP).await;
                    changes.changed().await.ok()?;
                }
                if let Some(id) = &session {
                    app.sessions().get(id, app.now())?;
                }
                // Marked seen before the snapshot is read: a change after this wakes us again.
                let generation = *changes.borrow_and_update();
                let data = json!({
                    "generation": generation,
                    "now": app.now().to_string(),
                    "calls": calls_json(&app),
                });
                let event = Event::default().event("calls").data(data.to_string());
                Some((Ok::<_, Infallible>(event), (app, changes, false)))
            }
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /static/live.js`: no data in it, so no login needed to fetch it.
pub async fn script() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        LIVE_JS,
    )
        .into_response()
}

/// The live calls section of a page: heading, table (`#live`, one row per call) and the script
/// that keeps it current.
pub fn live_section(calls: &[LiveCall], now: Timestamp) -> String {
    let mut out = format!(
        "<h2 id=\"live-heading\">Live calls ({})</h2><table id=\"live\"><thead><tr>",
        calls.len()
    );
    for c in COLUMNS {
        let _ = write!(out, "<th>{c}</th>");
    }
    out.push_str("</tr></thead><tbody>");
    if calls.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"{}\">No calls right now.</td></tr>",
            COLUMNS.len()
        );
    }
    for c in calls {
        let secs = seconds_between(c.started_at, now);
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}:{:02}</td></tr>",
            esc(&c.caller),
            esc(c.client.as_deref().unwrap_or("-")),
            esc(&c.called),
            if c.repeat { "repeat" } else { "" },
            esc(c.node.as_deref().unwrap_or("-")),
            c.state.name(),
            esc(&c.state.describe()),
            secs / 60,
            secs % 60
        );
    }
    out.push_str("</tbody></table><script src=\"/static/live.js\" defer></script>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(state: LiveState) -> LiveCall {
        let mut c = LiveCall::arriving(
            "c1".into(),
            "<b>+1555</b>".into(),
            "100".into(),
            Some("Acme & Co".into()),
            true,
            false,
            Timestamp::from_second(1000).expect("ts"),
        );
        c.node = Some("menu".into());
        c.state = state;
        c
    }

    #[test]
    fn the_table_escapes_caller_data_and_shows_node_state_and_duration() {
        let now = Timestamp::from_second(1075).expect("ts");
        let html = live_section(
            &[call(LiveState::Bridged {
                with: "alice".into(),
            })],
            now,
        );
        assert!(html.contains("<td>&lt;b&gt;+1555&lt;/b&gt;</td>"), "{html}");
        assert!(html.contains("<td>Acme &amp; Co</td>"), "{html}");
        assert!(html.contains("<td>menu</td>"), "{html}");
        assert!(
            html.contains("<td class=\"bridged\">bridged with alice</td>"),
            "{html}"
        );
        assert!(html.contains("<td>1:15</td>"), "{html}");
        assert!(html.contains("Live calls (1)"), "{html}");
        let empty = live_section(&[], now);
        assert!(
            empty.contains("<table id=\"live\">") && empty.contains("No calls right now."),
            "{empty}"
        );
    }

    #[test]
    fn the_json_names_the_state_and_who_it_involves() {
        let now = Timestamp::from_second(1010).expect("ts");
        let j = call_json(
            &call(LiveState::RingingDesk {
                targets: vec!["desk".into()],
                phones: vec!["alice (sip:a@h)".into()],
            }),
            now,
        );
        assert_eq!(j["state"], "ringing_desk");
        assert_eq!(j["node"], "menu");
        assert_eq!(j["state_info"]["phones"][0], "alice (sip:a@h)");
        assert_eq!(j["state_detail"], "alice (sip:a@h)");
        assert_eq!(j["duration_s"], 10);
    }
}
