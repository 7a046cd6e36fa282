//! The admin web server inside `ivr serve` (axum, on the same tokio runtime): the health checks,
//! the JSON API under `/api` and the server-rendered admin pages, all on top of the same
//! [`crate::services`] the CLI uses.
//!
//! Layout: [`auth`] decides who may do what (sans-IO), [`guard`] applies it to requests,
//! [`ready`] runs the readiness checks, [`api`] and [`pages`] are the two faces of the same
//! operations, [`html`] renders. [`metrics`] serves `/metrics`; `/api/reload` and the reload
//! page, [`staff`] and [`flows`] ask the server's [`Line`] (flows drawn as SVG by [`flow_svg`]).

mod alertmanager;
mod api;
pub mod auth;
mod flow_svg;
mod flows;
mod guard;
mod html;
mod live_events;
mod metrics;
mod pages;
mod ready;
mod reload_page;
mod staff;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use jiff::Timestamp;

use crate::clock::Clock;
use crate::health::Health;
use crate::hours::BusinessHours;
use crate::notify::Notifier;
use crate::services::reload::ReloadOutcome;
use crate::store::Store;

use auth::{LoginThrottle, Sessions, TokenCheck, TokenVerifier};

/// The build version shown on every page and in `/api/status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long a login lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most live-call event streams open at once: each is a task and a socket held open, so a
/// leaked or hostile client cannot pile them up; the next gets 503 and the page falls back to
/// reloading itself.
const MAX_EVENT_STREAMS: usize = 32;
/// Most sessions kept at once; the oldest is dropped beyond it.
const MAX_SESSIONS: usize = 1000;

/// What the admin server reads from the running line.
pub struct AdminContext {
    /// `None` when the store could not be opened (the pages then say so).
    pub store: Option<Arc<dyn Store>>,
    pub notifier: Option<Notifier>,
    pub health: Health,
    pub clock: Clock,
    pub data_dir: PathBuf,
    pub sip: SocketAddr,
    pub started: Timestamp,
    pub live: crate::live::LiveCalls,
    pub metrics: crate::metrics::Metrics,
    /// What the line serves now, and its reload (`POST /api/reload`, the reload page).
    pub line: Arc<dyn Line>,
    pub token: TokenCheck,
    /// `[incidents]` as at start (the Alertmanager hook's secret and TTL).
    pub incidents: crate::config::IncidentsConfig,
    /// `[cluster] node`: which node of a cluster answers (shown in /api/status).
    pub node: String,
}

/// The line as it serves now, as the server implements it: a hot reload swaps the settings new
/// calls start with, so what the pages show of them (the hours banner, the prompts check) is
/// asked for each time, never copied at start.
pub trait Line: Send + Sync {
    /// Re-reads config, flows and prompts; `ok` in the outcome says the new set is serving (a
    /// failed reload keeps the old one).
    fn reload(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ReloadOutcome> + Send + '_>>;
    /// The last reload's outcome (generation 0: the set loaded at start).
    fn last_reload(&self) -> ReloadOutcome;
    /// The business hours new calls are judged by.
    fn hours(&self) -> BusinessHours;
    /// Prompts in the serving set.
    fn prompts_loaded(&self) -> usize;
    /// The desk groups and flows of the set new calls start with (`/staff`, `/flows`).
    fn desk_and_flows(&self) -> (crate::bridge::DeskGroups, Vec<ServedFlow>);
    /// The staff phones' bindings, as the SIP thread last published them.
    fn registrations(&self) -> Arc<[crate::sip::Registration]>;
    /// The carrier trunks' registration states, as the SIP thread last published them.
    fn trunks(&self) -> crate::trunk::TrunkStatuses {
        Arc::from(Vec::new())
    }
}

/// A loaded flow and the dialled numbers it answers (`default` for the rest).
pub struct ServedFlow {
    pub numbers: Vec<String>,
    pub flow: Arc<crate::flow::Flow>,
}

/// The shared state of every request.
pub(crate) struct App {
    ctx: AdminContext,
    verifier: Mutex<TokenVerifier>,
    sessions: Mutex<Sessions>,
    throttle: Mutex<LoginThrottle>,
    /// The listener is on loopback: the unauthenticated readiness body may name paths and
    /// errors. Elsewhere it says only which checks pass.
    loopback: bool,
    /// Permits for open live-call event streams (each holds one for its life).
    event_streams: Arc<tokio::sync::Semaphore>,
}

impl App {
    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, LoginThrottle> {
        self.throttle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Timestamp {
        self.ctx.clock.now()
    }
}

type Shared = Arc<App>;

/// Binds `listen` and serves until the returned task is aborted (the server does so once calls
/// have drained). Returns the bound address (port 0 picks a free one).
pub async fn start(
    listen: SocketAddr,
    mut ctx: AdminContext,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    if !ctx.token.configured() {
        tracing::warn!(
            "admin: no token configured ([admin] token_hash or IVR_ADMIN_TOKEN): the admin page and API refuse every request"
        );
    }
    // The verifier owns the token; the context keeps nothing of it.
    let token = std::mem::replace(&mut ctx.token, TokenCheck::Unconfigured);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    let app = Arc::new(App {
        loopback: local.ip().is_loopback(),
        event_streams: Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_STREAMS)),
        verifier: Mutex::new(TokenVerifier::new(token)),
        ctx,
        sessions: Mutex::new(Sessions::new(SESSION_TTL, MAX_SESSIONS)),
        throttle: Mutex::new(LoginThrottle::new(
            5,
            Duration::from_secs(60),
            Duration::from_secs(300),
        )),
    });
    let service = router(app).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "admin server stopped");
        }
    });
    Ok((local, task))
}

fn router(app: Shared) -> Router {
    Router::new()
        .route("/hooks/alertmanager", post(alertmanager::hook))
        .route("/health/live", get(ready::live))
        .route("/health/ready", get(ready::ready))
        .route("/metrics", get(metrics::metrics))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/", get(pages::voicemails))
        .route("/calls", get(pages::calls))
        .route("/cdrs", get(pages::cdrs))
        .route("/outbox", get(pages::outbox))
        .route("/voicemails/{id}/ack", post(pages::ack))
        .route("/outbox/{id}/retry", post(pages::retry))
        .route("/api/status", get(api::status))
        .route("/api/calls", get(api::calls))
        .route("/api/calls/events", get(live_events::events))
        .route("/static/live.js", get(live_events::script))
        .route("/api/voicemails", get(api::voicemails))
        .route("/api/voicemails/{id}/audio", get(api::audio))
        .route("/api/voicemails/{id}/ack", post(api::ack))
        .route("/api/cdrs", get(api::cdrs))
        .route("/api/cdrs.csv", get(api::cdrs_csv))
        .route("/api/outbox", get(api::outbox))
        .route("/api/outbox/{id}/retry", post(api::retry))
        .route("/api/reload", post(api::reload).get(reload_page::last))
        .route("/reload", get(reload_page::page).post(reload_page::reload))
        .route("/staff", get(staff::page))
        .route("/api/staff", get(staff::api))
        .route("/flows", get(flows::page))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

/// On every response: no framing (the Acknowledge button cannot be clickjacked), no scripts but
/// our own (`/static/live.js`) and no remote resources, no MIME sniffing, nothing cached by shared caches or kept as a referrer.
async fn security_headers(mut resp: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The business-hours banner text, e.g. `closed (after hours) — ...; opens Monday 09:00`.
fn banner(app: &App) -> String {
    app.ctx.line.hours().describe(app.now())
}
