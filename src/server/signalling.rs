//! The signalling loop on its own thread: feeds the endpoint, dispatches its outputs to the
//! sockets and the call tasks, and runs the shutdown sequence (`drain`).

use super::*;
use crate::metrics::{Direction, DropReason, Metrics};

/// The signalling loop: feeds the endpoint inbound messages, call commands and timer expiries,
/// carries out its outputs, and starts a call task (on `calls_rt`) for each new call. Returns when
/// shutdown has drained every call.
// The loop's parts are handed over one by one at start (the thread owns them all).
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_signalling(
    transport: SipTransport,
    mut inbound: mpsc::Receiver<crate::sip::transport::Inbound>,
    mut endpoint: Endpoint,
    mut shutdown: mpsc::Receiver<()>,
    settings: Arc<reload::LiveSettings>,
    calls_rt: tokio::runtime::Handle,
    registrations: tokio::sync::watch::Sender<serving::Registrations>,
    mut trunks: crate::trunk::TrunkShell,
) {
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<(CallRef, CallCommand)>();
    let mut calls: HashMap<CallRef, mpsc::UnboundedSender<CallEvent>> = HashMap::new();
    // One registry for the process: every reloaded set carries the same one.
    let metrics = settings.current().metrics.clone();
    let mut drain: Option<Drain> = None;
    let far_future = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut drain_wake = far_future;
    // Idle TCP connections are closed unless a call or a registration uses them; the transport
    // learns which ones from here.
    let mut tcp_in_use = tokio::time::interval(transport.tcp_in_use_interval());
    tcp_in_use.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lookups = trunks
        .take_lookups()
        .expect("the trunks' lookups are taken once, here");
    trunks.start(Instant::now().into_std(), &mut endpoint);

    loop {
        trunks.poll(Instant::now().into_std(), &mut endpoint);
        dispatch(
            &mut endpoint,
            &transport,
            &mut calls,
            &cmd_tx,
            &settings,
            &metrics,
            &calls_rt,
            &trunks,
        )
        .await;
        count_endpoint(&mut endpoint, &metrics);
        if let Some(bindings) = endpoint.take_registrations(Instant::now().into_std()) {
            registrations.send_replace(bindings.into());
        }
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
            .into_iter()
            .chain(trunks.next_wake())
            .min()
            .map(Instant::from_std)
            .unwrap_or(far_future);
        tokio::select! {
            msg = inbound.recv() => {
                let Some(msg) = msg else { break };
                metrics.sip_message(Direction::In, &msg.bytes);
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
                    CallCommand::Dial { mut spec, reply } => {
                        for route in trunks.route_for(spec.destination) {
                            spec.extra_headers.push(("Route".into(), route));
                        }
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
            Some(done) = lookups.recv() => {
                trunks.lookup_done(Instant::now().into_std(), done, &mut endpoint);
            }
            // The shutdown's own deadlines: a quiet line must not wait for traffic to notice them.
            _ = tokio::time::sleep_until(drain_wake) => {}
            _ = tcp_in_use.tick() => {
                transport.set_tcp_in_use(endpoint.tcp_connections_in_use(Instant::now().into_std()));
                // The TCP refusals are copied here, not per message: they share the TCP lock.
                let tcp = transport.take_tcp_refusals();
                metrics.dropped(DropReason::TcpConnectionLimit, tcp.total);
                metrics.dropped(DropReason::TcpPerSourceLimit, tcp.per_source);
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
                        let grace = settings.current().shutdown_grace;
                        info!(live, grace_s = grace.as_secs(), event = "shutdown",
                            "shutting down: refusing new calls; live calls may finish for up to {} s, then are hung up",
                            grace.as_secs());
                        endpoint.drain();
                        // Unregister from the carriers; the drain waits for the answers.
                        trunks.shutdown(now, &mut endpoint);
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
#[allow(clippy::too_many_arguments)]
pub(super) async fn dispatch(
    endpoint: &mut Endpoint,
    transport: &SipTransport,
    calls: &mut HashMap<CallRef, mpsc::UnboundedSender<CallEvent>>,
    cmd_tx: &mpsc::UnboundedSender<(CallRef, CallCommand)>,
    live: &reload::LiveSettings,
    metrics: &Metrics,
    calls_rt: &tokio::runtime::Handle,
    trunks: &crate::trunk::TrunkShell,
) {
    while let Some(out) = endpoint.poll_output() {
        match out {
            Output::Transmit {
                transport: t,
                to,
                bytes,
            } => {
                metrics.sip_message(Direction::Out, &bytes);
                transport.send(t, to, bytes).await
            }
            Output::Event(call, CallEvent::Incoming(mut incoming)) => {
                if !trunks.admit(&mut incoming) {
                    let now = Instant::now().into_std();
                    endpoint.reject(
                        now,
                        call,
                        403,
                        Some("calls are taken only from the line's trunks"),
                    );
                    continue;
                }
                let (tx, rx) = mpsc::unbounded_channel();
                calls.insert(call, tx);
                calls_rt.spawn(call::run(
                    call,
                    *incoming,
                    rx,
                    cmd_tx.clone(),
                    // The call keeps this set to its end, whatever a reload installs meanwhile.
                    live.current(),
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

/// Copies what the endpoint counted into the metrics.
fn count_endpoint(endpoint: &mut Endpoint, metrics: &Metrics) {
    metrics.set_sip_transactions(endpoint.transactions());
    let refused = endpoint.take_refused();
    metrics.dropped(DropReason::SipRateLimit, refused.rate);
    metrics.dropped(DropReason::SipHalfOpenLimit, refused.half_open);
    metrics.dropped(DropReason::SipOverload, refused.overload);
}

pub(super) fn hang_up_all(
    endpoint: &mut Endpoint,
    calls: &HashMap<CallRef, mpsc::UnboundedSender<CallEvent>>,
) {
    let now = Instant::now().into_std();
    for call in calls.keys() {
        endpoint.hangup(now, *call);
    }
}
