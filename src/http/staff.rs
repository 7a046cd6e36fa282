//! `/staff` and `/api/staff`: the registered staff phones, the desk groups and who is ringable
//! now ([`crate::bridge::roster`] decides; this file only renders).

use std::fmt::Write as _;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use super::guard::Caller;
use super::html::{esc, page_refreshing};
use super::pages::Viewer;
use super::{Shared, VERSION, banner};
use crate::bridge::roster::{Roster, roster};

/// How often the staff page reloads itself (registrations come and go).
const REFRESH_S: u32 = 10;

/// The roster now.
fn current(app: &Shared) -> Roster {
    let line = &app.ctx.line;
    let (groups, flows) = line.desk_and_flows();
    let flows: Vec<_> = flows.into_iter().map(|f| f.flow).collect();
    roster(
        &groups,
        &flows,
        &line.registrations(),
        Instant::now(),
        app.now(),
    )
}

pub async fn api(State(app): State<Shared>, _: Caller) -> Response {
    Json(current(&app)).into_response()
}

pub async fn page(State(app): State<Shared>, Viewer { csrf, .. }: Viewer) -> Response {
    let body = render_roster(&current(&app));
    Html(page_refreshing(
        "Staff",
        &banner(&app),
        VERSION,
        Some(&csrf),
        &body,
        Some(REFRESH_S),
    ))
    .into_response()
}

fn render_roster(r: &Roster) -> String {
    let mut out = format!("<h2>Registered phones ({})</h2>", r.phones.len());
    if r.phones.is_empty() {
        out.push_str("<p>No staff phone is registered.</p>");
    } else {
        out.push_str(
            "<table id=\"phones\"><tr><th>User</th><th>Contact</th><th>From</th><th>Expires in</th></tr>",
        );
        for p in &r.phones {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{} ({})</td><td>{} s</td></tr>",
                esc(&p.user),
                esc(&p.contact),
                esc(&p.source),
                p.transport,
                p.expires_in_s
            );
        }
        out.push_str("</table>");
    }
    let _ = write!(out, "<h2>Desk groups ({})</h2>", r.groups.len());
    if r.groups.is_empty() {
        out.push_str("<p>No desk group is configured (<code>[[desk.groups]]</code>).</p>");
    }
    for g in &r.groups {
        let ringable = g.members.iter().filter(|m| m.ringable).count();
        let _ = write!(
            out,
            "<h3 id=\"group-{name}\">{name}: {ringable} of {} ringable now</h3>",
            g.members.len(),
            name = esc(&g.name)
        );
        if g.dialled_by.is_empty() {
            out.push_str("<p>No flow rings this group.</p>");
        } else {
            let uses: Vec<String> = g
                .dialled_by
                .iter()
                .map(|u| {
                    format!(
                        "{} › {}: {}, {} s",
                        esc(&u.flow),
                        esc(&u.node),
                        u.strategy,
                        u.timeout_s
                    )
                })
                .collect();
            let _ = write!(
                out,
                "<p>Rung by {} (members in the order below).</p>",
                uses.join("; ")
            );
        }
        out.push_str(
            "<table><tr><th>#</th><th>Member</th><th>Ringable</th><th>Why</th><th>Phones</th></tr>",
        );
        for (i, m) in g.members.iter().enumerate() {
            let _ = write!(
                out,
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                i + 1,
                esc(&m.member),
                if m.ringable { "yes" } else { "no" },
                esc(&m.why),
                esc(&m.contacts.join(", ")),
                class = if m.ringable { "acked" } else { "overdue" },
            );
        }
        out.push_str("</table>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::roster::{Group, MemberState, Phone};

    #[test]
    fn roster_text_is_escaped() {
        let r = Roster {
            phones: vec![Phone {
                user: "<b>eve".into(),
                contact: "sip:x@1.2.3.4;a=\"<i>\"".into(),
                source: "1.2.3.4:5".into(),
                transport: "UDP",
                expires_in_s: 3,
            }],
            groups: vec![Group {
                name: "desk".into(),
                members: vec![MemberState {
                    member: "<script>".into(),
                    kind: "user",
                    ringable: false,
                    why: "no".into(),
                    contacts: vec![],
                    on_call: None,
                }],
                dialled_by: vec![],
            }],
        };
        let html = render_roster(&r);
        assert!(!html.contains("<b>") && !html.contains("<i>") && !html.contains("<script>"));
        assert!(html.contains("&lt;b&gt;eve") && html.contains("&lt;script&gt;"));
        assert!(html.contains("0 of 1 ringable now"));
    }
}
