//! One task per call: negotiates the SDP, rings, answers, owns the call's RTP session and runs
//! the call flow chosen for the dialled number (`driver`).
//!
//! The task talks to the SIP endpoint only through messages: it receives [`CallEvent`]s and sends
//! [`CallCommand`]s, so the endpoint (one task for the whole process) never waits on a call.

pub mod call_writer;
mod dial;
mod driver;
mod file_name;
pub mod memory;
mod recording;
pub mod recovery;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::flow::{Facts, Flow};
use crate::hours::BusinessHours;
use crate::media::RtpIn;
use crate::media::g711::Codec;
use crate::media::prompt::PromptStore;
use crate::media::session::{MediaHandle, MediaSession, Remote, RtpRules};
use crate::media::socket;
use crate::metrics::DropReason;
use crate::sip::Binding;
use crate::sip::sdp::{self, AudioEncoding, Negotiated};
use crate::sip::{CallEvent, CallRef, EndReason, IncomingCall, OutboundCall};

/// What a call task asks of the endpoint.
#[derive(Debug)]
pub enum CallCommand {
    Ring,
    Accept(String),
    Reject {
        status: u16,
        warning: String,
    },
    AnswerReoffer(Result<String, (u16, String)>),
    Hangup,
    /// Ring a staff phone; the new leg (its reference and events) comes back on `reply`.
    Dial {
        spec: Box<OutboundCall>,
        reply: oneshot::Sender<Leg>,
    },
    /// The live registered contacts of a staff user.
    Contacts {
        user: String,
        reply: oneshot::Sender<Vec<Binding>>,
    },
}

/// A staff leg the endpoint dialled for a call: commands go out under `id` like the call's own.
#[derive(Debug)]
pub struct Leg {
    pub id: CallRef,
    pub events: mpsc::UnboundedReceiver<CallEvent>,
}

/// The desk bridge's settings, from `[desk]` and `[staff]`.
pub struct DeskSettings {
    pub groups: crate::bridge::DeskGroups,
    /// Staff user → password, to answer a staff phone's challenge.
    pub passwords: HashMap<String, String>,
    pub accept_timeout: Duration,
    pub ring_each: Duration,
    pub ringback: Arc<[i16]>,
    /// Let the caller hear a ringing phone's early media (183 with SDP) instead of the tone.
    pub early_media: bool,
    /// Where staff call-backs go out: the trunk's URI host part (the Request-URI's host) and
    /// the destination, resolved per call (RFC 3263) with failover between its targets.
    pub callback_trunk: Option<(String, crate::dns::SipDestination)>,
    /// Set when `callback_trunk` names a `[[trunks]]` entry: its credentials (answering the
    /// carrier's 401/407) and caller ID.
    pub callback_via: Option<CallbackVia>,
    pub callback_window: Duration,
    pub callback_caller_id: String,
    pub redirect_hosts: Vec<String>,
    /// `[desk] external_trunk`: how `tel:` members are dialled; `None` when not set.
    pub external: Option<ExternalTrunk>,
    /// Staff user → mobile (E.164), rung through `external` with them when they are on call.
    pub mobiles: HashMap<String, String>,
    /// Looks up desk members written as host names (`[dns]`).
    pub resolver: crate::dns::SipResolver,
    /// This node's name: its own rows in the shared registrations are not rung twice.
    pub node: String,
}

/// The `[[trunks]]` entry external desk numbers go out through (`[desk] external_trunk`).
#[derive(Clone, Debug)]
pub struct ExternalTrunk {
    pub trunk: String,
    /// The Request-URI host: the trunk's domain, else its registrar's host and port.
    pub host: String,
    /// The registrar (the carrier's proxy), an IP literal or a name looked up per leg.
    pub destination: crate::dns::SipDestination,
    /// Answer the carrier's 401/407; `None` for a trunk with an HA1 only.
    pub credentials: Option<crate::sip::Credentials>,
    /// The From user: the trunk's caller ID.
    pub caller_id: String,
    /// `[desk] number_allow`, checked again per call (the on-call mobile is not in a group).
    pub allow: Vec<String>,
}

/// A `[[trunks]]` entry call-backs go out through.
#[derive(Clone, Debug)]
pub struct CallbackVia {
    pub trunk: String,
    /// `None` for a trunk configured with an HA1 (the INVITE leg answers with a password).
    pub credentials: Option<crate::sip::Credentials>,
    /// The From user; empty: `callback_caller_id`.
    pub caller_id: String,
}

pub type CommandSender = mpsc::UnboundedSender<(CallRef, CallCommand)>;

/// The checked call flows, by dialled number.
pub struct FlowTable {
    pub default: Arc<Flow>,
    pub numbers: HashMap<String, Arc<Flow>>,
}

impl FlowTable {
    pub fn for_number(&self, dialled: &str) -> Arc<Flow> {
        self.numbers.get(dialled).unwrap_or(&self.default).clone()
    }
}

/// Per-process settings every call reads.
pub struct CallSettings {
    pub prompts: Arc<PromptStore>,
    pub flows: FlowTable,
    pub hours: BusinessHours,
    /// The calendar clock (`serve --now` moves it): hours, records, file names, events.
    pub clock: crate::clock::Clock,
    pub data_dir: PathBuf,
    /// When the flow ends, keep the line up until the caller hangs up instead of sending BYE.
    pub hold_after_prompt: bool,
    pub memory: memory::Memory,
    pub ring_time: Duration,
    pub answer_delay: Duration,
    pub max_duration: Duration,
    /// After a shutdown request, live calls may run on this long before they are hung up.
    pub shutdown_grace: Duration,
    pub rtp_bind_ip: IpAddr,
    pub rtp_ports: (u16, u16),
    /// Whose RTP a leg believes, and when its silence ends the call (`[rtp]`).
    pub rtp_rules: RtpRules,
    pub desk: DeskSettings,
    /// The process's metrics (`GET /metrics` renders them).
    pub metrics: crate::metrics::Metrics,
    /// Calls up now, for the admin page (registered at start, removed at end).
    pub live: crate::live::LiveCalls,
    /// `[incidents]`: which prompt announces which incident.
    pub incidents: crate::config::IncidentsConfig,
}

pub(crate) struct Call {
    id: CallRef,
    call_id: String,
    commands: CommandSender,
    events: mpsc::UnboundedReceiver<CallEvent>,
    /// Our SIP port (for the Contact of the legs we dial).
    sip_port: u16,
    /// Why we sent BYE, when the CDR should say more than "we hung up".
    hangup_cause: Option<String>,
    /// The call's entry in the live calls list (none for a staff call-back).
    live: Option<crate::live::LiveGuard>,
}

/// Why the call loop stopped waiting.
enum Wait {
    Ended(EndReason),
    Done,
}

impl Call {
    pub(crate) fn send(&self, cmd: CallCommand) {
        self.send_to(self.id, cmd);
    }

    /// Shows on the live calls list that the call entered flow node `node`.
    pub(crate) fn live_node(&self, node: &str) {
        if let Some(l) = &self.live {
            l.set_node(node);
        }
    }

    /// Shows on the live calls list what the call is doing now.
    pub(crate) fn live_state(&self, state: crate::live::LiveState) {
        if let Some(l) = &self.live {
            l.set_state(state);
        }
    }

    /// A command for another dialog of this call (a staff leg it dialled).
    pub(crate) fn send_to(&self, dialog: CallRef, cmd: CallCommand) {
        // The endpoint outlives every call; a closed channel means the process is exiting.
        let _ = self.commands.send((dialog, cmd));
    }

    /// `rtp.timeout_s` (`timeout`) ran out on this call's own leg (`media`): stop streaming at
    /// once (a BYE to a peer that is gone takes 64·T1 to time out), hang up, and give the CDR the
    /// reason.
    pub(crate) fn hang_up_silent(&mut self, media: &MediaHandle, timeout: Duration) {
        info!(call_id = %self.call_id, event = "rtp_timeout", timeout_s = timeout.as_secs(),
              "no RTP from the caller; hanging up");
        media.set_hold(true);
        self.hangup_cause = Some(format!("no RTP for {} s", timeout.as_secs()));
        self.send(CallCommand::Hangup);
        self.live_state(crate::live::LiveState::Ending);
    }

    /// What the CDR says about the end: our own reason for a BYE we sent, else the dialog's.
    fn end_reason(&self, reason: EndReason) -> String {
        match (&self.hangup_cause, reason) {
            (Some(cause), EndReason::LocalBye) => cause.clone(),
            _ => reason.to_string(),
        }
    }
}

/// Runs one call from INVITE to the end of the dialog.
pub async fn run(
    id: CallRef,
    incoming: IncomingCall,
    events: mpsc::UnboundedReceiver<CallEvent>,
    commands: CommandSender,
    settings: Arc<CallSettings>,
) {
    let _active = settings.metrics.call_started();
    let mut call = Call {
        id,
        call_id: incoming.call_id.clone(),
        commands,
        events,
        sip_port: incoming.local.port(),
        hangup_cause: None,
        live: None,
    };
    // A staff phone calling a customer back: not a caller of the line (no repeat detection).
    if let Some(staff) = incoming.staff_user.clone() {
        dial::callback::run(&mut call, &incoming, &settings, &staff).await;
        return;
    }
    // Business hours and the caller's history are decided once, when the call arrives.
    let dialled = incoming.dialled.clone().unwrap_or_else(|| {
        Some(crate::sip::uri_user(&incoming.request_uri))
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| incoming.to.user())
            .to_string()
    });
    let mut facts = facts_for(&settings, &incoming, &dialled);
    let mut rec = settings
        .memory
        .new_record(&incoming, &dialled, !facts.open || facts.holiday);
    // The incident read runs beside the start's write: a call does not wait for one after the
    // other.
    let ((), incidents) = tokio::join!(
        settings.memory.call_started(&mut rec),
        settings.memory.active_incidents()
    );
    facts.caller = rec.caller.as_str().to_string();
    facts.caller_repeat = rec.repeat;
    facts.caller_agreed_recently = rec.agreed_recently;
    facts.caller_known = rec.client.is_some();
    facts.client_agreement = rec.agreement();
    facts.incident_active = !incidents.is_empty();
    if let Some((key, prompt)) = incidents.iter().find_map(|i| {
        settings
            .incidents
            .prompt_for(&i.labels)
            .map(|p| (i.key.clone(), p.to_string()))
    }) {
        facts.incident_prompt = prompt.clone();
        rec.incident = Some((prompt, key));
    }
    // Dropped with `call`, after the call's record is written.
    call.live = Some(settings.live.register(crate::live::LiveCall::arriving(
        rec.call_id.clone(),
        rec.caller.as_str().to_string(),
        rec.called.clone(),
        rec.client.as_ref().map(|c| c.name.clone()),
        rec.repeat,
        rec.after_hours,
        rec.started_at,
    )));
    let summary = answer_and_run(&mut call, &incoming, &settings, facts, &mut rec).await;
    call.live_state(crate::live::LiveState::Ending);
    settings.memory.call_ended(&rec, &summary).await;
    let outcome = memory::outcome_of(&rec, &summary);
    settings.metrics.call_ended(outcome.as_str());
}

/// Negotiates, rings, answers and runs the flow; returns how the call went.
async fn answer_and_run(
    call: &mut Call,
    incoming: &IncomingCall,
    settings: &Arc<CallSettings>,
    facts: Facts,
    rec: &mut memory::CallRecord,
) -> memory::CallSummary {
    // For the log lines only: the caller wrote these, so control characters are shown escaped.
    let from = crate::text::escape_control(&incoming.from.uri.to_string()).into_owned();
    let to = crate::text::escape_control(&incoming.to.uri.to_string()).into_owned();
    let mut summary = memory::CallSummary::default();

    let offer = match negotiate(&incoming.offer) {
        Ok(x) => x,
        Err(why) => {
            warn!(call_id = %call.call_id, %from, %to, event = "rejected", reason = %why, "488 Not Acceptable Here");
            call.send(CallCommand::Reject {
                status: 488,
                warning: why.clone(),
            });
            drain_until_end(call).await;
            summary.rejected = true;
            summary.end_reason = format!("488 {why}");
            return summary;
        }
    };
    let (offer_sdp, neg) = offer;
    let (rtp_socket, rtp_port) = match socket::bind(settings.rtp_bind_ip, settings.rtp_ports).await
    {
        Ok(x) => x,
        Err(e) => {
            warn!(call_id = %call.call_id, error = %e, "no RTP port available; refusing call");
            call.send(CallCommand::Reject {
                status: 503,
                warning: "no media port available".into(),
            });
            drain_until_end(call).await;
            summary.rejected = true;
            summary.end_reason = "503 no media port available".into();
            return summary;
        }
    };
    let local_ip = incoming.local.ip();
    let session_id = u64::from(rand::random::<u32>());
    let mut sdp_version = 1u64;
    let answer = sdp::answer(
        &offer_sdp,
        &neg,
        local_ip,
        rtp_port,
        session_id,
        sdp_version,
    );
    let codec = codec_of(neg.encoding);
    info!(call_id = %call.call_id, %from, %to, event = "answering", codec = codec.name(),
          remote_rtp = %neg.remote_rtp, local_rtp = rtp_port, "answering call");
    // Ring before answering: callers expect ringback, and the early dialog gives a caller who
    // dialled by mistake the chance to CANCEL before the call is billed as answered.
    call.send(CallCommand::Ring);
    let ring_until = Instant::now() + settings.ring_time;
    loop {
        match next_event(call, ring_until).await {
            Some(CallEvent::Ended { reason }) => {
                info!(call_id = %call.call_id, %from, %to, event = "ended", %reason, "call ended while ringing");
                summary.end_reason = reason.to_string();
                return summary;
            }
            Some(_) => {}
            None => break,
        }
    }
    call.send(CallCommand::Accept(answer));
    let answered_at = settings.clock.now();
    rec.answered_at = Some(answered_at);
    rec.writer
        .fact(crate::store::CallFact::Answered(answered_at));
    summary.answered = true;
    let peer = incoming.source.ip();
    let mut media = start_media(rtp_socket, &neg, peer, settings, &call.call_id);
    let rtp_in = media.take_events();
    let telephone_event = neg.telephone_event;

    let started = Instant::now();
    let deadline = started + settings.max_duration;
    let mut ctx = MediaCtx {
        media: &media,
        offer_sdp,
        neg,
        local_ip,
        rtp_port,
        session_id,
        sdp_version: &mut sdp_version,
    };

    // Wait for the ACK, then a short pause: audio sent earlier is often clipped by the phone.
    let mut reason = loop {
        match next_event(call, deadline).await {
            Some(CallEvent::Confirmed { .. }) => break None,
            Some(CallEvent::Ended { reason }) => break Some(reason),
            Some(ev) => handle_mid_call(call, &mut ctx, ev),
            None => {
                call.send(CallCommand::Hangup);
                break None;
            }
        }
    };
    if reason.is_none()
        && let Wait::Ended(r) =
            wait_until(call, &mut ctx, Instant::now() + settings.answer_delay).await
    {
        reason = Some(r);
    }
    let reason = match reason {
        Some(r) => r,
        None => {
            let flow = settings.flows.for_number(&rec.called);
            info!(call_id = %call.call_id, %from, %to, event = "flow", flow = %flow.name,
                  open = facts.open, holiday = facts.holiday, repeat = facts.caller_repeat,
                  agreed_recently = facts.caller_agreed_recently, known = facts.caller_known,
                  incident = facts.incident_active, incident_prompt = %facts.incident_prompt, "starting call flow");
            let shell = driver::Shell {
                call,
                ctx: &mut ctx,
                settings,
                codec,
                telephone_event,
                record: rec,
                summary: &mut summary,
            };
            shell.run(flow, facts, rtp_in, deadline).await
        }
    };
    let report = media.stop_report().await;
    let stats = report.received;
    settings.metrics.rtp_session(
        stats.lost,
        (stats.packets > 0).then(|| Duration::from_secs_f64(stats.jitter_ms / 1000.0)),
    );
    settings
        .metrics
        .dropped(DropReason::RtpForeignSource, report.foreign_dropped);
    let reason = call.end_reason(reason);
    info!(call_id = %call.call_id, %from, %to, event = "ended", %reason,
          duration_ms = started.elapsed().as_millis() as u64, rtp_in = %stats, "call finished");
    summary.end_reason = reason;
    summary
}

/// What the flow may branch on, decided once at the start of the call.
fn facts_for(settings: &CallSettings, incoming: &IncomingCall, dialled: &str) -> Facts {
    let now = settings.clock.now();
    Facts {
        open: settings.hours.is_open(now),
        holiday: settings.hours.is_holiday(now),
        caller: incoming.from.user().to_string(),
        called: dialled.to_string(),
        ..Facts::default()
    }
}

pub(crate) struct MediaCtx<'a> {
    media: &'a MediaHandle,
    offer_sdp: sdp::SessionDescription,
    neg: Negotiated,
    local_ip: IpAddr,
    rtp_port: u16,
    session_id: u64,
    sdp_version: &'a mut u64,
}

/// Handles events until `until`, or returns early when the call ends.
async fn wait_until(call: &mut Call, ctx: &mut MediaCtx<'_>, until: Instant) -> Wait {
    loop {
        match next_event(call, until).await {
            Some(CallEvent::Ended { reason }) => return Wait::Ended(reason),
            Some(ev) => handle_mid_call(call, ctx, ev),
            None => return Wait::Done,
        }
    }
}

async fn next_event(call: &mut Call, until: Instant) -> Option<CallEvent> {
    tokio::select! {
        ev = call.events.recv() => Some(ev.unwrap_or(CallEvent::Ended { reason: EndReason::LocalBye })),
        _ = tokio::time::sleep_until(until) => None,
    }
}

/// Re-INVITE/UPDATE (hold, resume, new address) and INFO during the call.
pub(crate) fn handle_mid_call(call: &mut Call, ctx: &mut MediaCtx<'_>, ev: CallEvent) {
    match ev {
        CallEvent::ReOffer { offer } => {
            if offer.is_empty() {
                // Offerless re-INVITE: offer again what we have (same codec, same port).
                *ctx.sdp_version += 1;
                let sdp = sdp::answer(
                    &ctx.offer_sdp,
                    &ctx.neg,
                    ctx.local_ip,
                    ctx.rtp_port,
                    ctx.session_id,
                    *ctx.sdp_version,
                );
                call.send(CallCommand::AnswerReoffer(Ok(sdp)));
                return;
            }
            let origin = (ctx.local_ip, ctx.rtp_port, ctx.session_id);
            match reanswer(&offer, ctx.neg.encoding, origin, ctx.sdp_version, ctx.media) {
                Ok((sdp, offer_sdp, neg)) => {
                    let hold = !neg.direction.answer().we_send();
                    info!(call_id = %call.call_id, event = "reoffer", hold, remote_rtp = %neg.remote_rtp,
                          direction = %neg.direction, "media updated");
                    ctx.offer_sdp = offer_sdp;
                    ctx.neg = neg;
                    call.send(CallCommand::AnswerReoffer(Ok(sdp)));
                }
                Err(why) => {
                    warn!(call_id = %call.call_id, event = "reoffer_rejected", reason = %why, "488 to re-offer");
                    call.send(CallCommand::AnswerReoffer(Err((488, why))));
                }
            }
        }
        CallEvent::Info { content_type, body } => {
            info!(call_id = %call.call_id, event = "info", content_type = content_type.as_deref().unwrap_or(""),
                  body = %crate::text::Escaped(String::from_utf8_lossy(&body).trim()), "INFO received");
        }
        CallEvent::Confirmed { .. }
        | CallEvent::Incoming(_)
        | CallEvent::Progress { .. }
        | CallEvent::Answered { .. }
        | CallEvent::Ended { .. } => {}
    }
}

/// The next packet from a media session's receive queue. Once the session is gone the queue is
/// dropped: `None`, and afterwards never ready, so loops can keep selecting on it.
async fn recv_rtp(rx: &mut Option<mpsc::Receiver<RtpIn>>) -> Option<RtpIn> {
    match rx.as_mut() {
        Some(r) => {
            let pkt = r.recv().await;
            if pkt.is_none() {
                *rx = None;
            }
            pkt
        }
        None => std::future::pending().await,
    }
}

async fn drain_until_end(call: &mut Call) {
    while let Some(ev) = call.events.recv().await {
        if matches!(ev, CallEvent::Ended { .. }) {
            return;
        }
    }
}

/// The media session of a leg (the caller's or a staff phone's) once its terms are agreed: its
/// codec, telephone-event type, remote address and direction. `peer` is the IP the leg's SIP
/// came from or went to: its RTP is believed from there on any port (`rules`).
fn start_media(
    socket: tokio::net::UdpSocket,
    neg: &Negotiated,
    peer: IpAddr,
    settings: &CallSettings,
    call_id: &str,
) -> MediaHandle {
    let remote = Remote {
        sdp: neg.remote_rtp,
        signalling_ip: peer,
    };
    let media = MediaSession::start(
        socket,
        remote,
        settings.rtp_rules,
        codec_of(neg.encoding),
        call_id.to_string(),
    );
    media.count_into(settings.metrics.rtp_counters());
    media.set_telephone_event(neg.telephone_event);
    follow_direction(&media, neg.direction);
    media
}

/// The far end's SDP `direction` on a running session: we send unless it holds us, and its
/// silence counts towards `rtp.timeout_s` only while it says it sends and receives (on hold many
/// phones go quiet, and a `recvonly` peer sends nothing at all).
fn follow_direction(media: &MediaHandle, direction: sdp::Direction) {
    media.set_hold(!direction.answer().we_send());
    media.expect_inbound(direction == sdp::Direction::SendRecv);
}

/// Answers a re-offer (hold, resume, a new address) on a running media session, for the caller
/// and for staff legs alike: the session's codec `keep` stays (`sdp::renegotiate`), our SDP
/// keeps its `origin` (address, RTP port, o= session id) with the next `version`, and the
/// session follows the new address and direction. Returns the answer and the agreed terms; the
/// error text goes into a 488 Warning.
fn reanswer(
    body: &[u8],
    keep: sdp::AudioEncoding,
    (local_ip, rtp_port, session_id): (IpAddr, u16, u64),
    version: &mut u64,
    media: &MediaHandle,
) -> Result<(String, sdp::SessionDescription, Negotiated), String> {
    let offer = sdp::parse(body).map_err(|e| format!("bad SDP: {e}"))?;
    let neg = sdp::renegotiate(&offer, keep).map_err(|e| e.to_string())?;
    *version += 1;
    let answer = sdp::answer(&offer, &neg, local_ip, rtp_port, session_id, *version);
    media.set_remote(neg.remote_rtp);
    follow_direction(media, neg.direction);
    Ok((answer, offer, neg))
}

/// Parses and negotiates an SDP offer; the error text goes into a 488 Warning.
fn negotiate(body: &[u8]) -> Result<(sdp::SessionDescription, Negotiated), String> {
    if body.is_empty() {
        return Err("INVITE without an SDP offer (late offer) is not supported".into());
    }
    let offer = sdp::parse(body).map_err(|e| format!("bad SDP: {e}"))?;
    let neg = sdp::negotiate(&offer).map_err(|e| e.to_string())?;
    Ok((offer, neg))
}

fn codec_of(e: AudioEncoding) -> Codec {
    match e {
        AudioEncoding::Pcmu => Codec::Pcmu,
        AudioEncoding::Pcma => Codec::Pcma,
    }
}
