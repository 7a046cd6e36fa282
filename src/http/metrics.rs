//! `GET /metrics`: the process's Prometheus registry in the text format.
//!
//! Like the health checks it needs no token on a loopback listener (a local Prometheus or node
//! agent scrapes it); on any other address it takes the admin token, since the counters tell an
//! outsider how busy the line is and which sources it refuses.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::guard::authenticate;
use crate::metrics::Metrics;

pub async fn metrics(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !app.loopback
        && let Err(r) = authenticate(&app, &headers, peer).await
    {
        return r.into_response();
    }
    let registry = app.ctx.metrics.clone();
    // Rendering reads the store's backlog (a blocking SQLite query).
    let text = tokio::task::spawn_blocking(move || registry.render())
        .await
        .unwrap_or_default();
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(Metrics::CONTENT_TYPE),
    );
    response
}
