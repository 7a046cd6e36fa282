//! The reload page: what the last reload did (or the start, generation 0) — the flows it added,
//! removed and changed, the error that kept the old set (with file:line), the keys that wait for
//! a restart — and a button that reloads now, as SIGHUP and `ivr reload` do.

use std::fmt::Write as _;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};

use super::Shared;
use super::guard::Caller;
use super::html::{esc, post_button};
use super::pages::{FormPost, Viewer, render};
use crate::services::reload::ReloadOutcome;

/// `GET /api/reload`: the last outcome as JSON.
pub async fn last(State(app): State<Shared>, _: Caller) -> Response {
    Json(app.ctx.line.last_reload()).into_response()
}

/// `GET /reload`.
pub async fn page(State(app): State<Shared>, Viewer { csrf, .. }: Viewer) -> Response {
    let mut body = outcome_html(&app.ctx.line.last_reload());
    let _ = write!(
        body,
        "<p>Reloading re-reads the config file, the flows and the prompts and checks them as at start; \
         new calls use the new set, calls in progress finish on the old one. {}</p>",
        post_button("/reload", &csrf, "Reload now")
    );
    render(&app, "Reload", &csrf, &body)
}

/// `POST /reload` (the form's CSRF token): reloads, then shows the outcome (post/redirect/get).
pub async fn reload(State(app): State<Shared>, FormPost { who }: FormPost) -> Response {
    tracing::info!(
        by = who.user.as_deref().unwrap_or("admin page"),
        event = "reload_requested",
        "reload requested on the admin page"
    );
    app.ctx.line.reload().await;
    Redirect::to("/reload").into_response()
}

/// One outcome as HTML; every name and message escaped (flow errors quote the admin's TOML).
fn outcome_html(o: &ReloadOutcome) -> String {
    let mut out = String::new();
    let what = if o.generation == 0 {
        "Loaded at start".to_string()
    } else {
        format!("Reload #{}", o.generation)
    };
    if o.ok {
        let _ = write!(
            out,
            "<h2 id=\"reload-state\" class=\"acked\">{} at {}: serving, {} prompts</h2>",
            esc(&what),
            esc(&o.at),
            o.prompts
        );
    } else {
        let _ = write!(
            out,
            "<h2 id=\"reload-state\" class=\"err\">{} at {} failed: the previous set is still serving</h2><pre id=\"reload-error\">{}</pre>",
            esc(&what),
            esc(&o.at),
            esc(o.error.as_deref().unwrap_or(""))
        );
    }
    let list = |names: &[String]| {
        if names.is_empty() {
            "-".to_string()
        } else {
            esc(&names.join(", "))
        }
    };
    if o.ok {
        let _ = write!(
            out,
            "<table><tr><th>Flows added</th><td>{}</td></tr><tr><th>Flows removed</th><td>{}</td></tr>\
             <tr><th>Flows changed</th><td>{}</td></tr></table>",
            list(&o.flows_added),
            list(&o.flows_removed),
            list(&o.flows_changed)
        );
    }
    if !o.restart_needed.is_empty() {
        let _ = write!(
            out,
            "<p id=\"restart-needed\" class=\"overdue\">Changed but only taken after a restart (the running line keeps the old value): {}</p>",
            esc(&o.restart_needed.join(", "))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_reload_shows_its_escaped_error_and_a_restart_list_is_named() {
        let failed = ReloadOutcome {
            generation: 3,
            ok: false,
            error: Some("callflows/x.toml:4:1: unknown node <b>".into()),
            ..ReloadOutcome::default()
        };
        let html = outcome_html(&failed);
        assert!(html.contains("Reload #3"), "{html}");
        assert!(html.contains("failed: the previous set is still serving"));
        assert!(html.contains("callflows/x.toml:4:1: unknown node &lt;b&gt;"));
        assert!(!html.contains("<b>"));
        let ok = ReloadOutcome {
            generation: 4,
            ok: true,
            flows_changed: vec!["default".into()],
            restart_needed: vec!["sip".into(), "rtp.ports".into()],
            ..ReloadOutcome::default()
        };
        let html = outcome_html(&ok);
        assert!(html.contains("Flows changed</th><td>default"), "{html}");
        assert!(html.contains("after a restart") && html.contains("sip, rtp.ports"));
    }
}
