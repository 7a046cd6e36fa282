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
use crate::config::{Config, RtpLatch};
use crate::drain::{Drain, DrainStep};
use crate::hours::BusinessHours;
use crate::media::prompt::{PromptError, PromptStore};
use crate::media::{LatchMode, RtpRules};
use crate::notify::{DeliveryPolicy, Notifier, SharedStore, WebhookTargets};
use crate::sip::SipTransport;
use crate::sip::Timers;
use crate::sip::admission::{AdmissionConfig, Rate};
use crate::sip::auth::LockoutPolicy;
use crate::sip::transport::{TcpLimits, fd_budget};
use crate::sip::{CallEvent, CallRef, Endpoint, EndpointConfig, Output, StaffAuth};
use crate::store::{SqliteStore, Store};
use ipnet::IpNet;

#[derive(Debug, Error)]
pub enum ServeError {
    /// Every `PromptError` starts with the file or directory at fault.
    #[error(transparent)]
    Prompts(#[from] PromptError),
    #[error("call flow check failed:\n{0}")]
    Flow(crate::flow::Diagnostics),
    #[error("{0}")]
    Hours(#[from] crate::hours::HoursError),
    #[error("clients: {0}")]
    Clients(#[from] crate::billing::BillingError),
    /// Every `NotifyError` already says "webhook".
    #[error(transparent)]
    Webhooks(#[from] crate::notify::NotifyError),
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

/// Starts everything and runs until `shutdown` fires twice or calls have drained.
pub async fn serve(
    config: Config,
    shutdown: mpsc::Receiver<()>,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ServeError> {
    let prompts = PromptStore::load_dir(&config.prompts.dir)?;
    info!(dir = %config.prompts.dir.display(), count = prompts.len(), "prompts loaded");
    let flows = load_flows(&config)?;
    let desk = desk_settings(&config, &flows)?;
    let (tcp_limits, max_calls) = fit_fd_budget(&config, &desk);
    let hours = BusinessHours::from_config(&config.hours)?;
    let clock_offset = match config.clock_at {
        Some(at) => at.duration_since(jiff::Timestamp::now()),
        None => jiff::SignedDuration::ZERO,
    };
    let now = jiff::Timestamp::now()
        .checked_add(clock_offset)
        .unwrap_or_else(|_| jiff::Timestamp::now());
    info!(hours = %hours.describe(now), "business hours");
    // A data directory we cannot create is logged, not fatal: callers must still get an answer
    // (the store below reports itself unavailable and calls are served without memory).
    if let Err(e) = std::fs::create_dir_all(&config.data.dir) {
        tracing::error!(dir = %config.data.dir.display(), error = %e,
            "cannot create the data directory: voicemail and call records are unavailable");
    }
    let _data_lock = lock_data_dir(&config.data.dir)?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let memory = open_memory(&config, &shutdown_rx)?;
    let listen = config.listen_addr();
    let public_ip: Option<IpAddr> = config.sip.public_address.parse().ok();
    let settings = Arc::new(CallSettings {
        prompts: Arc::new(prompts),
        flows,
        hours,
        clock_offset,
        data_dir: config.data.dir.clone(),
        hold_after_prompt: config.call.hold_after_prompt,
        memory,
        ring_time: Duration::from_millis(config.call.ring_ms),
        answer_delay: Duration::from_millis(config.call.answer_delay_ms),
        max_duration: Duration::from_secs(config.call.max_duration_s),
        shutdown_grace: Duration::from_secs(config.call.shutdown_grace_s),
        rtp_bind_ip: listen.ip(),
        rtp_ports: config.rtp_ports(),
        rtp_rules: RtpRules {
            latch: match config.rtp_latch() {
                RtpLatch::Signalling => LatchMode::Signalling,
                RtpLatch::Sdp => LatchMode::Sdp,
            },
            timeout: Some(Duration::from_secs(config.rtp.timeout_s)).filter(|t| !t.is_zero()),
        },
        desk,
    });
    let endpoint = Endpoint::new(endpoint_config(&config, listen, public_ip, max_calls));
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
                run_signalling(transport, inbound, endpoint, shutdown, settings, calls_rt).await;
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
    if let Some(ready) = ready {
        let _ = ready.send(local);
    }
    let _ = done_rx.await;
    // Calls have drained: the webhook worker makes its last round (call_ended events) and stops.
    let _ = shutdown_tx.send(true);
    let tasks = std::mem::take(&mut *background_tasks().lock().unwrap_or_else(|e| e.into_inner()));
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    info!("stopped");
    Ok(())
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

/// The signalling loop: feeds the endpoint inbound messages, call commands and timer expiries,
/// carries out its outputs, and starts a call task (on `calls_rt`) for each new call. Returns when
/// shutdown has drained every call.
async fn run_signalling(
    transport: SipTransport,
    mut inbound: mpsc::Receiver<crate::sip::transport::Inbound>,
    mut endpoint: Endpoint,
    mut shutdown: mpsc::Receiver<()>,
    settings: Arc<CallSettings>,
    calls_rt: tokio::runtime::Handle,
) {
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<(CallRef, CallCommand)>();
    let mut calls: HashMap<CallRef, mpsc::UnboundedSender<CallEvent>> = HashMap::new();
    let mut drain: Option<Drain> = None;
    let far_future = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut drain_wake = far_future;
    // Idle TCP connections are closed unless a call or a registration uses them; the transport
    // learns which ones from here.
    let mut tcp_in_use = tokio::time::interval(transport.tcp_in_use_interval());
    tcp_in_use.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        dispatch(
            &mut endpoint,
            &transport,
            &mut calls,
            &cmd_tx,
            &settings,
            &calls_rt,
        )
        .await;
        if let Some(d) = drain.as_mut() {
            let now = Instant::now().into_std();
            match d.step(now, endpoint.live_calls(), endpoint.requests_in_flight()) {
                DrainStep::WaitUntil(at) => drain_wake = Instant::from_std(at),
                DrainStep::HangUpAll => {
                    warn!(
                        live = endpoint.live_calls(),
                        event = "shutdown_hangup",
                        "shutdown: hanging up the calls still live"
                    );
                    hang_up_all(&mut endpoint, &calls);
                    continue;
                }
                DrainStep::Exit => {
                    info!(
                        event = "shutdown_done",
                        "shutdown: no calls left, requests answered; exiting"
                    );
                    break;
                }
            }
        }
        let timer = endpoint
            .poll_timeout()
            .map(Instant::from_std)
            .unwrap_or(far_future);
        tokio::select! {
            msg = inbound.recv() => {
                let Some(msg) = msg else { break };
                endpoint.handle_message(Instant::now().into_std(), &msg.bytes, msg.source, msg.transport, msg.local);
            }
            Some((call, cmd)) = cmd_rx.recv() => {
                let now = Instant::now().into_std();
                match cmd {
                    CallCommand::Ring => endpoint.ring(now, call),
                    CallCommand::Accept(sdp) => endpoint.accept(now, call, sdp),
                    CallCommand::Reject { status, warning } => endpoint.reject(now, call, status, Some(&warning)),
                    CallCommand::AnswerReoffer(answer) => endpoint.answer_reoffer(now, call, answer),
                    CallCommand::Hangup => endpoint.hangup(now, call),
                    CallCommand::Dial { spec, reply } => {
                        let id = endpoint.invite(now, *spec);
                        let (tx, rx) = mpsc::unbounded_channel();
                        calls.insert(id, tx);
                        if reply.send(call::Leg { id, events: rx }).is_err() {
                            // The call ended while asking: drop the leg at once.
                            endpoint.hangup(now, id);
                        }
                    }
                    CallCommand::Contacts { user, reply } => {
                        let _ = reply.send(endpoint.contacts(now, &user));
                    }
                }
            }
            _ = tokio::time::sleep_until(timer) => {
                endpoint.handle_timeout(Instant::now().into_std());
            }
            // The shutdown's own deadlines: a quiet line must not wait for traffic to notice them.
            _ = tokio::time::sleep_until(drain_wake) => {}
            _ = tcp_in_use.tick() => {
                transport.set_tcp_in_use(endpoint.tcp_connections_in_use(Instant::now().into_std()));
            }
            sig = shutdown.recv() => {
                let now = Instant::now().into_std();
                let live = endpoint.live_calls();
                match drain.as_mut() {
                    Some(d) => {
                        warn!(live, "second shutdown request: hanging up all calls");
                        d.hurry(now);
                    }
                    None => {
                        let grace = settings.shutdown_grace;
                        info!(live, grace_s = grace.as_secs(), event = "shutdown",
                            "shutting down: refusing new calls; live calls may finish for up to {} s, then are hung up",
                            grace.as_secs());
                        endpoint.drain();
                        let mut d = Drain::new(now, grace);
                        if sig.is_none() {
                            d.hurry(now);
                        }
                        drain = Some(d);
                    }
                }
            }
        }
    }
}

/// Sends what the endpoint produced and hands its events to the call tasks (starting a task for
/// each new call).
async fn dispatch(
    endpoint: &mut Endpoint,
    transport: &SipTransport,
    calls: &mut HashMap<CallRef, mpsc::UnboundedSender<CallEvent>>,
    cmd_tx: &mpsc::UnboundedSender<(CallRef, CallCommand)>,
    settings: &Arc<CallSettings>,
    calls_rt: &tokio::runtime::Handle,
) {
    while let Some(out) = endpoint.poll_output() {
        match out {
            Output::Transmit {
                transport: t,
                to,
                bytes,
            } => transport.send(t, to, bytes).await,
            Output::Event(call, CallEvent::Incoming(incoming)) => {
                let (tx, rx) = mpsc::unbounded_channel();
                calls.insert(call, tx);
                calls_rt.spawn(call::run(
                    call,
                    *incoming,
                    rx,
                    cmd_tx.clone(),
                    settings.clone(),
                ));
            }
            Output::Event(call, event) => {
                let ended = matches!(event, CallEvent::Ended { .. });
                if let Some(tx) = calls.get(&call) {
                    let _ = tx.send(event);
                }
                if ended {
                    calls.remove(&call);
                }
            }
        }
    }
}

/// Raises the open-files limit and fits `max_calls` and the TCP caps under it (see
/// `sip::transport::fd_budget`); returns the TCP limits and the call limit to run with.
fn fit_fd_budget(config: &Config, desk: &call::DeskSettings) -> (TcpLimits, usize) {
    // A call holds its RTP socket, a recording, a route lookup while it dials, and one RTP
    // socket per staff leg: every member of the largest group rings at once, and a staff
    // call-back holds two.
    let largest_group = desk
        .groups
        .names()
        .map(|n| desk.groups.get(n).map_or(0, <[_]>::len))
        .max()
        .unwrap_or(0);
    let want = fd_budget::Demand {
        max_calls: config.sip.max_calls,
        fds_per_call: 3 + largest_group.max(2),
        tcp_max_connections: config.sip.tcp_max_connections,
        tcp_max_per_source: config.sip.tcp_max_per_source,
    };
    let plan = fd_budget::fit(want);
    let limits = TcpLimits {
        idle_timeout: Duration::from_secs(config.sip.tcp_idle_timeout_s),
        message_timeout: Duration::from_secs(config.sip.tcp_message_timeout_s),
        max_connections: plan.tcp_max_connections,
        max_per_source: plan.tcp_max_per_source,
    };
    (limits, plan.max_calls)
}

fn desk_settings(config: &Config, flows: &FlowTable) -> Result<call::DeskSettings, ServeError> {
    let groups = config.desk_groups().map_err(ServeError::Desk)?;
    for flow in std::iter::once(&flows.default).chain(flows.numbers.values()) {
        groups
            .check_flow(flow, &flow.file.display().to_string())
            .map_err(ServeError::Desk)?;
    }
    for name in groups.names() {
        let members: Vec<&str> = groups
            .get(name)
            .unwrap_or_default()
            .iter()
            .map(|m| m.label())
            .collect();
        if members.is_empty() {
            warn!(
                group = name,
                "desk group has no members: calls that ring it go to the flow's no-answer branch (voicemail); add members under [[desk.groups]]"
            );
        } else {
            info!(group = name, members = ?members, "desk group");
        }
    }
    let tone: crate::media::tones::RingbackTone = config
        .desk
        .ringback
        .parse()
        .unwrap_or(crate::media::tones::RingbackTone::Us);
    Ok(call::DeskSettings {
        groups,
        passwords: config
            .staff
            .users
            .iter()
            .map(|u| (u.name.clone(), u.password.clone()))
            .collect(),
        accept_timeout: Duration::from_secs(config.desk.accept_timeout_s),
        ring_each: Duration::from_secs(config.desk.ring_each_s),
        ringback: crate::media::tones::ringback(tone).into(),
        early_media: config.desk.early_media,
        callback_trunk: crate::sip::uri_socket_addr(&config.desk.callback_trunk).map(|a| {
            let host = crate::sip::uri_host_port(&config.desk.callback_trunk)
                .map(|(h, p)| match p {
                    Some(p) => format!("{h}:{p}"),
                    None => h,
                })
                .unwrap_or_else(|| a.to_string());
            (host, a)
        }),
        callback_window: Duration::from_secs(config.desk.callback_window_h * 3600),
        callback_caller_id: config.desk.callback_caller_id.clone(),
        redirect_hosts: config.desk.redirect_hosts.clone(),
    })
}

/// Wall-clock Unix seconds (the endpoint's nonce clock is anchored on it at start).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> Result<Memory, ServeError> {
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
        clients.extend(crate::billing::load_clients_csv(std::path::Path::new(
            &config.billing.clients_csv,
        ))?);
    }
    let clients = crate::billing::validate(clients)?;
    let endpoint =
        |url: &str, secret: &str| -> Result<Option<crate::notify::Endpoint>, ServeError> {
            if url.is_empty() {
                return Ok(None);
            }
            let secret = (!secret.is_empty()).then(|| secret.to_string());
            Ok(Some(crate::notify::Endpoint::new(url, secret)?))
        };
    let targets = WebhookTargets {
        primary: endpoint(&config.webhooks.url, &config.webhooks.secret)?,
        escalation: endpoint(
            &config.webhooks.escalation_url,
            &config.webhooks.escalation_secret,
        )?,
    };
    let store: Option<Arc<dyn Store>> = match SqliteStore::open(&config.data.dir) {
        Ok(s) => {
            info!(db = %s.path().display(), "store opened");
            Some(Arc::new(s))
        }
        Err(e) => {
            tracing::error!(error = %e, "STORE UNAVAILABLE: calls are answered but not remembered; fix the data directory and restart");
            None
        }
    };
    let callback_sla = Duration::from_secs(config.sla.callback_minutes * 60);
    let notifier = match &store {
        Some(store) => {
            let n = Notifier::new(
                Arc::new(SharedStore(store.clone())),
                targets,
                DeliveryPolicy::default(),
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
                crate::sla::SlaWheel::new(Arc::new(SharedStore(store.clone()))),
                n.clone(),
                crate::sla::SlaPolicy::default(),
                stop,
            );
            if let Ok(mut tasks) = background_tasks().lock() {
                tasks.push(worker);
                tasks.push(sla);
            }
            Some(n)
        }
        None => None,
    };
    let memory = Memory {
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
        callback_sla,
    };
    crate::call::recovery::recover_voicemails(&memory, &config.data.dir);
    crate::call::recovery::close_interrupted_calls(&memory);
    Ok(memory)
}

/// Checks every configured flow against the prompt directory, like `ivr check`.
fn load_flows(config: &Config) -> Result<FlowTable, ServeError> {
    let load = |path: &std::path::Path| {
        crate::flow::check(path, &config.prompts.dir)
            .map(Arc::new)
            .map_err(ServeError::Flow)
    };
    let default = load(&config.flows.default)?;
    info!(flow = %config.flows.default.display(), name = %default.name, "default call flow loaded");
    let mut numbers = HashMap::new();
    for (number, path) in &config.flows.numbers {
        let flow = load(path)?;
        info!(%number, flow = %path.display(), "call flow loaded");
        numbers.insert(number.clone(), flow);
    }
    Ok(FlowTable { default, numbers })
}

fn hang_up_all(
    endpoint: &mut Endpoint,
    calls: &HashMap<CallRef, mpsc::UnboundedSender<CallEvent>>,
) {
    let now = Instant::now().into_std();
    for call in calls.keys() {
        endpoint.hangup(now, *call);
    }
}

/// The SIP core's settings, from the config.
fn endpoint_config(
    config: &Config,
    listen: SocketAddr,
    public_ip: Option<IpAddr>,
    max_calls: usize,
) -> EndpointConfig {
    let l = &config.sip.limits;
    let rate = |per_s: f64, burst: u32| Rate {
        per_s,
        burst: f64::from(burst),
    };
    // Trusted proxies carry many callers each: never limit them per source.
    let mut exempt = config.limits_exempt();
    exempt.extend(
        config
            .callers
            .trusted_proxies
            .iter()
            .map(|ip| IpNet::from(*ip)),
    );
    let mut domains: Vec<String> = config
        .sip
        .domains
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    domains.extend(public_ip.map(|ip| ip.to_string()));
    if !listen.ip().is_unspecified() {
        domains.push(listen.ip().to_string());
    }
    EndpointConfig {
        timers: Timers {
            t1: Duration::from_millis(config.sip.t1_ms),
            ..Timers::default()
        },
        max_calls,
        max_pending_setups: config.sip.max_pending_setups,
        staff: StaffAuth {
            realm: config.staff.realm.clone(),
            users: config
                .staff
                .users
                .iter()
                .map(|u| (u.name.clone(), u.password.clone()))
                .collect(),
            min_expires: config.staff.min_expires,
            max_expires: config.staff.max_expires,
            algorithms: config.staff.digest_algorithms(),
            lockout: LockoutPolicy {
                failures: config.staff.auth_failures_before_block,
                window: Duration::from_secs(config.staff.auth_failure_window_s),
                block: Duration::from_secs(config.staff.auth_block_s),
                block_max: Duration::from_secs(config.staff.auth_block_max_s),
            },
        },
        wall_clock: Some((Instant::now().into_std(), unix_now())),
        admission: AdmissionConfig {
            calls: rate(l.calls_per_s, l.calls_burst),
            registers: rate(l.registers_per_s, l.registers_burst),
            requests: rate(l.requests_per_s, l.requests_burst),
            max_half_open: l.max_half_open,
            silent_after: l.silent_after,
            exempt,
            max_sources: l.max_sources,
        },
        domains,
        follow_routes_to: config.follow_routes_to(),
    }
}
