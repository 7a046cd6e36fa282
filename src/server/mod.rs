//! `ivr serve`: wires the SIP transport, the endpoint core and the call tasks together.
//!
//! One task owns the [`Endpoint`]: it feeds it inbound messages, call commands and timer expiries,
//! and carries out its outputs. Each call runs in its own task (`call::run`). Shutdown is graceful:
//! the first signal stops new calls (503) and lets live calls finish; the second, or the grace
//! period running out, hangs up what is left.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::billing::Client;
use crate::call::memory::Memory;
use crate::call::{self, CallCommand, CallSettings, FlowTable};
use crate::clock::Clock;
use crate::config::{Config, ConfigSource, RtpLatch};
use crate::drain::{Drain, DrainStep};
use crate::hours::BusinessHours;
use crate::media::prompt::{PromptError, PromptStore};
use crate::media::{LatchMode, RtpRules};
use crate::notify::{DeliveryPolicy, Notifier, WebhookTargets};
use crate::sip::SipTransport;
use crate::sip::Timers;
use crate::sip::admission::{AdmissionConfig, Rate};
use crate::sip::auth::LockoutPolicy;
use crate::sip::transport::{TcpLimits, fd_budget};
use crate::sip::{CallEvent, CallRef, Endpoint, EndpointConfig, Output, StaffAuth};
use crate::store::{SqliteStore, Store};

pub mod control;
mod registrations;
pub mod reload;
mod serving;
mod settings;
mod signalling;

use reload::{LiveSettings, Reloadable, Reloader, load_reloadable};
use settings::{desk_settings, endpoint_config, fit_fd_budget, load_flows};
use signalling::run_signalling;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(crate::config::ConfigError),
    /// Every `PromptError` starts with the file or directory at fault; `origin` says which key
    /// of which file (or flag) named the directory.
    #[error("{source} (prompt directory: {origin})")]
    Prompts { source: PromptError, origin: String },
    #[error("call flow check failed ({origin}):\n{diags}")]
    Flow {
        diags: crate::flow::Diagnostics,
        origin: String,
    },
    #[error("{0}")]
    Hours(#[from] crate::hours::HoursError),
    #[error("clients: {0}")]
    Clients(#[from] crate::billing::BillingError),
    #[error("clients: {source} ({origin})")]
    ClientsCsv {
        source: crate::billing::BillingError,
        origin: String,
    },
    /// Every `NotifyError` already says "webhook".
    #[error(transparent)]
    Webhooks(#[from] crate::notify::NotifyError),
    #[error("incidents: {0}")]
    Incidents(String),
    #[error("desk: {0}")]
    Desk(crate::bridge::DeskError),
    #[error("cannot start the SIP thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "data directory {} is in use by another running ivr{} (it holds the lock {}): stop that one first, or give this one its own --data",
        dir.display(), holder.as_deref().map(|p| format!(" (pid {p})")).unwrap_or_default(), lock.display()
    )]
    DataDirInUse {
        dir: std::path::PathBuf,
        lock: std::path::PathBuf,
        holder: Option<String>,
    },
    #[error("cannot listen for SIP on {addr} (is another SIP server using the port?)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Starts everything and runs until `shutdown` fires twice or calls have drained. Reloading
/// is not possible without the config's source: see [`serve_with_reload`].
pub async fn serve(
    config: Config,
    shutdown: mpsc::Receiver<()>,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ServeError> {
    let (_never, reloads) = mpsc::channel(1);
    run(config, None, shutdown, reloads, ready).await
}

/// [`serve`] with hot reload: each message on `reloads` (SIGHUP) re-reads `source` and swaps
/// the set new calls start with (see [`reload`]).
pub async fn serve_with_reload(
    source: ConfigSource,
    shutdown: mpsc::Receiver<()>,
    reloads: mpsc::Receiver<()>,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ServeError> {
    let config = source.load().map_err(ServeError::Config)?;
    run(config, Some(source), shutdown, reloads, ready).await
}

async fn run(
    config: Config,
    source: Option<ConfigSource>,
    shutdown: mpsc::Receiver<()>,
    mut reloads: mpsc::Receiver<()>,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ServeError> {
    let parts = load_reloadable(&config)?;
    let (tcp_limits, max_calls) = fit_fd_budget(&config, &parts.desk);
    let clock = config
        .clock_at
        .map_or_else(Clock::system, Clock::starting_at);
    info!(hours = %parts.hours.describe(clock.now()), "business hours");
    // A data directory we cannot create is logged, not fatal: callers must still get an answer
    // (the store below reports itself unavailable and calls are served without memory).
    info!(dir = %config.data.dir.display(), from = %config.path_origin("data.dir"), "data directory");
    if let Err(e) = std::fs::create_dir_all(&config.data.dir) {
        tracing::error!(dir = %config.data.dir.display(), from = %config.path_origin("data.dir"), error = %e,
            "cannot create the data directory: voicemail and call records are unavailable");
    }
    let _data_lock = lock_data_dir(&config.data.dir)?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    // Off the runtime threads: the PostgreSQL client blocks on its own runtime (it panics on
    // ours), and start-up recovery reads and writes the store.
    let (memory, opened_store) = {
        let (config, clients) = (config.clone(), parts.clients.clone());
        let (tz, shutdown) = (parts.hours.time_zone().clone(), shutdown_rx.clone());
        tokio::task::spawn_blocking(move || open_memory(&config, clients, tz, clock, &shutdown))
            .await
            .map_err(|e| ServeError::Thread(std::io::Error::other(e.to_string())))??
    };
    // One registry for the process: reloads carry it into each new set of call settings.
    let metrics = crate::metrics::Metrics::new();
    let metrics_for_trunks = metrics.clone();
    watch_store(&metrics, &memory, clock);
    let listen = config.listen_addr();
    let public_ip: Option<IpAddr> = config.sip.public_address.parse().ok();
    let live_calls = crate::live::LiveCalls::with_clock(clock);
    let admin = AdminStart {
        live: live_calls.clone(),
        store: opened_store,
        notifier: memory.notifier.clone(),
        health: memory.health.clone(),
        metrics: metrics.clone(),
    };
    let process = ProcessWide {
        clock,
        metrics,
        live: live_calls,
    };
    let live = Arc::new(LiveSettings::new(Arc::new(call_settings(
        &config, parts, memory, process,
    ))));
    // reload.json (generation 0) goes before the pid file: `ivr reload` finding the pid always
    // finds this run's outcome to compare with.
    let reloader = Arc::new(Reloader::new(source, config.clone(), live.clone()));
    // The signalling thread publishes the registrar's bindings here for the staff page.
    let (registrations_tx, registrations) = tokio::sync::watch::channel(Arc::from(Vec::new()));
    // ...and the trunks' registration states, for /api/status.
    let (trunks_tx, trunks) = tokio::sync::watch::channel(Arc::from(Vec::new()));
    // ...and, for the other nodes, written through to the shared store.
    if let Some(store) = live.current().memory.store.clone() {
        let node = live.current().desk.node.clone();
        registrations::spawn_write_through(store, node, clock, registrations.clone());
    }
    let line = Arc::new(serving::LineView {
        live: live.clone(),
        registrations,
        trunks,
        reloader: reloader.clone(),
    });
    let _pid_file = match control::PidFile::write(&config.data.dir) {
        Ok(f) => Some(f),
        Err(e) => {
            warn!(dir = %config.data.dir.display(), error = %e, "cannot write the pid file: `ivr reload` will not find this ivr (SIGHUP still reloads)");
            None
        }
    };
    {
        let reloader = reloader.clone();
        tokio::spawn(async move {
            while reloads.recv().await.is_some() {
                reloader.reload().await;
            }
        });
    }
    let endpoint = Endpoint::new(endpoint_config(&config, listen, public_ip, max_calls));
    let trunk_plan = (
        config.trunks.clone(),
        config.sip.unknown_sources,
        metrics_for_trunks,
        trunks_tx,
        config.dns.settings().unwrap_or_default(),
    );
    info!(
        realm = %config.staff.realm,
        users = config.staff.users.len(),
        "staff registrar ready"
    );
    // Signalling runs on a thread of its own (a current-thread runtime holding the SIP sockets
    // and the endpoint), so a busy runtime full of call and media tasks never delays reading
    // the SIP socket: under load, late reads meant kernel drops of ACKs and BYEs, and their
    // retransmissions made the overload worse. Call tasks still run on the main runtime.
    let calls_rt = tokio::runtime::Handle::current();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel::<std::io::Result<SocketAddr>>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("ivr-sip".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = bound_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let (transport, inbound) =
                    match SipTransport::bind(listen, public_ip, tcp_limits).await {
                        Ok(x) => x,
                        Err(e) => {
                            let _ = bound_tx.send(Err(e));
                            return;
                        }
                    };
                let _ = bound_tx.send(Ok(transport.local_addr()));
                let (trunk_list, unknown, trunk_metrics, trunks_tx, dns) = trunk_plan;
                let trunks = crate::trunk::TrunkShell::new(
                    &trunk_list,
                    unknown,
                    transport.local_addr(),
                    public_ip,
                    trunk_metrics,
                    trunks_tx,
                    crate::dns::SipResolver::new(&dns),
                );
                run_signalling(
                    transport,
                    inbound,
                    endpoint,
                    shutdown,
                    live,
                    calls_rt,
                    registrations_tx,
                    trunks,
                )
                .await;
            });
            let _ = done_tx.send(());
        })
        .map_err(ServeError::Thread)?;
    let bound = bound_rx
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("SIP thread ended before binding")));
    let local = bound.map_err(|source| ServeError::Bind {
        addr: listen,
        source,
    })?;
    println!("ivr: SIP listening on {local} (UDP and TCP)");
    // After the SIP line: tests and scripts read that one first.
    let admin_task = start_admin(&config, admin, line, clock, local).await;
    if let Some(ready) = ready {
        let _ = ready.send(local);
    }
    let _ = done_rx.await;
    // Calls have drained; records the store refused (a full disk) get a last try.
    crate::call::call_writer::flush_owed(Duration::from_secs(5)).await;
    if let Some(task) = admin_task {
        task.abort();
    }
    // Calls have drained: the webhook worker makes its last round (call_ended events) and stops.
    let _ = shutdown_tx.send(true);
    let tasks = std::mem::take(&mut *background_tasks().lock().unwrap_or_else(|e| e.into_inner()));
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    info!("stopped");
    Ok(())
}

/// Gives the metrics the store's write timings and its backlog (read at scrape time).
fn watch_store(metrics: &crate::metrics::Metrics, memory: &Memory, clock: Clock) {
    let Some(store) = memory.store.clone() else {
        return;
    };
    store.time_writes(metrics.store_write_histogram());
    metrics.set_backlog_probe(move || match store.backlog(clock.now()) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the backlog");
            None
        }
    });
}

/// The data directory's lock file, held by the running `ivr serve`.
const LOCK_FILE: &str = "ivr.lock";

/// Locks the data directory for as long as the returned file is open. A second `ivr serve` on
/// the same directory would otherwise run start-up recovery and close the first one's live calls
/// as interrupted (with false `call_ended` events) before it even failed to bind. The lock is
/// advisory (flock), so the kernel drops it when the holder dies, however it dies: a crash never
/// leaves a stale lock. A lock file that cannot be opened (read-only directory) is logged and the
/// line still answers, as with the store.
fn lock_data_dir(dir: &std::path::Path) -> Result<Option<std::fs::File>, ServeError> {
    use std::io::{Read, Seek, Write};
    let lock = dir.join(LOCK_FILE);
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
    {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(lock = %lock.display(), error = %e,
                "cannot open the data directory's lock file: another ivr on it would go unnoticed");
            return Ok(None);
        }
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = Some(holder.trim().to_string()).filter(|h| !h.is_empty());
            return Err(ServeError::DataDirInUse {
                dir: dir.to_path_buf(),
                lock,
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            tracing::error!(lock = %lock.display(), error = %e,
                "cannot lock the data directory: another ivr on it would go unnoticed");
            return Ok(None);
        }
    }
    // Who holds it, for the next one's error message; only informative, so failures are ignored.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(Some(file))
}

/// Background tasks (webhook worker, SLA timers) awaited at shutdown.
fn background_tasks() -> &'static std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>> {
    static TASKS: std::sync::OnceLock<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
        std::sync::OnceLock::new();
    TASKS.get_or_init(|| std::sync::Mutex::new(Vec::new()))
}

/// Opens the store, starts webhook delivery and the callback-SLA timers, and recovers voicemails
/// a crash left unregistered. A store that cannot be opened (read-only or full data directory)
/// is logged loudly and the line still answers calls: callers must get a response.
fn open_memory(
    config: &Config,
    clients: Vec<Client>,
    tz: jiff::tz::TimeZone,
    clock: Clock,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> Result<(Memory, Option<Arc<dyn Store>>), ServeError> {
    let endpoint =
        |url: &str, secret: &str, headers| -> Result<Option<crate::notify::Endpoint>, ServeError> {
            if url.is_empty() {
                return Ok(None);
            }
            let secret = (!secret.is_empty()).then(|| secret.to_string());
            Ok(Some(
                crate::notify::Endpoint::new(url, secret)?.with_headers(headers)?,
            ))
        };
    let w = &config.webhooks;
    let targets = WebhookTargets {
        primary: endpoint(&w.url, &w.secret, &w.headers)?,
        escalation: endpoint(
            &w.escalation_url,
            &w.escalation_secret,
            &w.escalation_headers,
        )?,
        ca_file: w.ca_file().map(std::path::Path::to_path_buf),
    };
    let opened: Result<Arc<dyn Store>, crate::store::StoreError> = match config.store_backend() {
        crate::config::StoreBackend::Sqlite(file) => {
            SqliteStore::open_path(&file).map(|s| Arc::new(s) as Arc<dyn Store>)
        }
        // Connects and migrates; a server that is down fails here like an unopenable file.
        crate::config::StoreBackend::Postgres(url) => {
            crate::store::PgStore::connect(&url).map(|s| Arc::new(s) as Arc<dyn Store>)
        }
    };
    let store = match opened {
        Ok(s) => {
            info!(db = %s.location(), "store opened");
            Some(s)
        }
        Err(e) => {
            tracing::error!(error = %e, store = %config.store.url_for_log(), "STORE UNAVAILABLE: calls are answered but not remembered; fix the data directory or database and restart");
            None
        }
    };
    let notifier = match &store {
        Some(store) => {
            // Asked once: the mail waits for a transcript only when a worker is there to make it.
            let engine = crate::transcribe::engine(&config.transcription);
            let mailer = if config.email.enabled() {
                let wait = engine
                    .is_ok()
                    .then(|| std::time::Duration::from_secs(config.transcription.wait_s));
                Some(crate::notify::smtp::Mailer::new(&config.email, tz, wait)?)
            } else {
                None
            };
            // Twice the longest attempt: the webhook request or the mail's SMTP session.
            let lease =
                2 * DeliveryPolicy::default()
                    .request_timeout
                    .max(if config.email.enabled() {
                        config.email.timeout()
                    } else {
                        Duration::ZERO
                    });
            let n = Notifier::with_mailer(
                store.clone(),
                store.clone(),
                targets,
                mailer,
                DeliveryPolicy {
                    clock,
                    node: config.cluster.node.clone(),
                    lease,
                    // Events another node queued and then died holding wake nothing here: only
                    // a look at the store finds them, so look at least once a lease.
                    max_sleep: lease.min(DeliveryPolicy::default().max_sleep),
                    ..DeliveryPolicy::default()
                },
            );
            let stopped = || {
                let mut rx = shutdown.clone();
                async move {
                    let _ = rx.wait_for(|v| *v).await;
                }
            };
            let worker = n.spawn(stopped())?;
            let stop = stopped();
            let sla = crate::sla::spawn(
                crate::sla::SlaWheel::new(store.clone()),
                n.clone(),
                crate::sla::SlaPolicy {
                    clock,
                    ..crate::sla::SlaPolicy::default()
                },
                stop,
            );
            let transcripts = crate::transcribe::worker::start(
                config,
                engine,
                store.clone(),
                &n,
                clock,
                stopped(),
            );
            if let Ok(mut tasks) = background_tasks().lock() {
                tasks.push(worker);
                tasks.push(sla);
                tasks.extend(transcripts);
            }
            Some(n)
        }
        None => None,
    };
    let memory = memory_from(
        config,
        clients,
        store,
        notifier,
        crate::health::Health::new(clock),
        clock,
    );
    crate::call::recovery::recover_voicemails(&memory, &config.data.dir);
    crate::call::recovery::close_interrupted_calls(&memory);
    let opened = memory.store.clone();
    Ok((memory, opened))
}

/// The clients from `[[clients]]` and `billing.clients_csv`, checked.
fn load_clients(config: &Config) -> Result<Vec<Client>, ServeError> {
    let mut clients: Vec<Client> = config
        .clients
        .iter()
        .map(|c| Client {
            name: c.name.clone(),
            numbers: c.numbers.clone(),
            agreement: c.agreement,
            rate_multiplier: c.rate_multiplier,
        })
        .collect();
    if !config.billing.clients_csv.is_empty() {
        clients.extend(
            crate::billing::load_clients_csv(std::path::Path::new(&config.billing.clients_csv))
                .map_err(|source| ServeError::ClientsCsv {
                    source,
                    origin: config.path_origin("billing.clients_csv"),
                })?,
        );
    }
    Ok(crate::billing::validate(clients)?)
}

/// The memory settings from `config` around the handles opened at start.
fn memory_from(
    config: &Config,
    clients: Vec<Client>,
    store: Option<Arc<dyn Store>>,
    notifier: Option<Notifier>,
    health: crate::health::Health,
    clock: Clock,
) -> Memory {
    Memory {
        store,
        notifier,
        clients,
        repeat: crate::repeat::RepeatPolicy {
            window: Duration::from_secs(config.callers.repeat_window_min * 60),
            times: config.callers.repeat_times,
        },
        default_country: (!config.callers.default_country.is_empty())
            .then(|| config.callers.default_country.clone()),
        trusted_proxies: config.callers.trusted_proxies.clone(),
        after_hours_multiplier: config.billing.after_hours_multiplier,
        callback_sla: Duration::from_secs(config.sla.callback_minutes * 60),
        clock,
        health,
        node: config.cluster.node.clone(),
    }
}

/// The settings every new call reads, from `config` and what was loaded from it.
fn call_settings(
    config: &Config,
    parts: Reloadable,
    memory: Memory,
    process: ProcessWide,
) -> CallSettings {
    let ProcessWide {
        clock,
        metrics,
        live,
    } = process;
    CallSettings {
        prompts: Arc::new(parts.prompts),
        flows: parts.flows,
        hours: parts.hours,
        clock,
        data_dir: config.data.dir.clone(),
        hold_after_prompt: config.call.hold_after_prompt,
        memory,
        ring_time: Duration::from_millis(config.call.ring_ms),
        answer_delay: Duration::from_millis(config.call.answer_delay_ms),
        max_duration: Duration::from_secs(config.call.max_duration_s),
        shutdown_grace: Duration::from_secs(config.call.shutdown_grace_s),
        rtp_bind_ip: config.listen_addr().ip(),
        rtp_ports: config.rtp_ports(),
        rtp_rules: RtpRules {
            latch: match config.rtp_latch() {
                RtpLatch::Signalling => LatchMode::Signalling,
                RtpLatch::Sdp => LatchMode::Sdp,
            },
            timeout: Some(Duration::from_secs(config.rtp.timeout_s)).filter(|t| !t.is_zero()),
        },
        desk: parts.desk,
        metrics,
        live,
        incidents: config.incidents.clone(),
    }
}

/// What every set of call settings shares, whatever a reload changes: the clock, the metrics
/// registry and the live calls.
#[derive(Clone)]
pub(super) struct ProcessWide {
    pub clock: Clock,
    pub metrics: crate::metrics::Metrics,
    pub live: crate::live::LiveCalls,
}

/// What the admin server needs that `serve` hands on to the call tasks.
struct AdminStart {
    store: Option<Arc<dyn Store>>,
    notifier: Option<Notifier>,
    health: crate::health::Health,
    live: crate::live::LiveCalls,
    metrics: crate::metrics::Metrics,
}

/// Starts the admin HTTP server when `[admin] listen` is set and prints
/// `ivr: admin listening on ADDR`. A port it cannot bind is logged, not fatal: the line must
/// answer calls even when its admin page cannot start.
async fn start_admin(
    config: &Config,
    admin: AdminStart,
    line: Arc<dyn crate::http::Line>,
    clock: Clock,
    sip: SocketAddr,
) -> Option<tokio::task::JoinHandle<()>> {
    if config.admin.listen.is_empty() {
        info!("admin server off ([admin] listen is empty)");
        return None;
    }
    let listen: SocketAddr = config.admin.listen.parse().ok()?;
    let ctx = crate::http::AdminContext {
        store: admin.store,
        notifier: admin.notifier,
        health: admin.health,
        clock,
        data_dir: config.data.dir.clone(),
        sip,
        started: clock.now(),
        live: admin.live,
        metrics: admin.metrics,
        line,
        token: crate::http::auth::TokenCheck::new(
            &config.admin.token_hash,
            std::env::var("IVR_ADMIN_TOKEN").ok(),
        ),
        incidents: config.incidents.clone(),
        node: config.cluster.node.clone(),
    };
    match crate::http::start(listen, ctx).await {
        Ok((local, task)) => {
            println!("ivr: admin listening on {local}");
            info!(addr = %local, "admin server listening");
            Some(task)
        }
        Err(e) => {
            tracing::error!(addr = %listen, error = %e, from = %config.path_origin("admin.listen"),
                "cannot start the admin server; calls are still answered");
            None
        }
    }
}
