//! `/flows`: each loaded flow drawn as a graph (laid out by [`crate::flow::layout`], painted by
//! [`super::flow_svg`]), as serving now: a reload shows at the next page load.

use std::fmt::Write as _;

use axum::extract::State;
use axum::response::Response;

use super::Shared;
use super::flow_svg;
use super::html::esc;
use super::pages::{Viewer, render};
use crate::flow::layout::layout;

pub async fn page(State(app): State<Shared>, Viewer { csrf, .. }: Viewer) -> Response {
    let (_, flows) = app.ctx.line.desk_and_flows();
    let mut body = String::new();
    if flows.is_empty() {
        body.push_str("<p>No flow is loaded.</p>");
    }
    for served in &flows {
        let flow = &served.flow;
        let _ = write!(
            body,
            "<section class=\"flow\"><h2>{}</h2><p><code>{}</code> · answers {} · {} nodes, starts at <code>{}</code></p>\
             <div style=\"overflow-x:auto\">{}</div></section>",
            esc(&flow.name),
            esc(&flow.file.display().to_string()),
            esc(&served.numbers.join(", ")),
            flow.nodes.len(),
            esc(&flow.start.name),
            flow_svg::render(&layout(flow), &flow.name),
        );
    }
    render(&app, "Flows", &csrf, &body)
}
