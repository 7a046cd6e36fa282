//! Rings the desk on a live call and bridges the caller to whoever accepts: the async shell
//! around the sans-IO [`Dialer`] and the media relay.
//!
//! While staff phones ring the caller hears a locally generated ringback tone (the caller's call
//! is already answered, so ringback is audio, not a 180). A phone that answers gets its own media
//! session: it hears the whisper (who is calling, then "press 1 to accept"), and its digits
//! (RFC 4733, INFO or in-band) go to the dialer. The winner's session and the caller's are then
//! cross-connected (`relay_to`), which transcodes, keeps each side's RTP stream continuous and
//! passes RFC 4733 events through; SIP INFO digits are turned into RFC 4733 for the other side.
//! BYE on either side ends both. Every leg is dropped (CANCEL or BYE) when the dial ends, and
//! when the caller hangs up.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use super::memory::{CallRecord, CallSummary};
use super::{Call, CallCommand, CallSettings, Leg, MediaCtx, codec_of, handle_mid_call, recv_rtp};
use crate::bridge::{DialAction, DialPlan, Dialer, LegEvent, LegId};
use crate::flow::{DialOutcome, Strategy};
use crate::media::dtmf::DtmfReceiver;
use crate::media::session::MediaHandle;
use crate::media::{RtpIn, socket};
use crate::sip::sdp;
use crate::sip::{CallEvent, CallRef, Credentials, EndReason, OutboundCall};

mod bridged;
pub(super) mod callback;
mod remote;
mod targets;

use crate::sip::Transport;
use crate::sip::route_source_ip as route_ip;
use bridged::{answer_leg_reoffer, bridge};
use targets::{resolve, sip_user, whisper_prompts};

/// The `dial` node's request.
pub(super) struct DialRequest {
    pub targets: Vec<String>,
    pub strategy: Strategy,
    pub timeout: Duration,
    pub ring_each: Option<Duration>,
    /// The "press 1 to accept" prompt; `whisper_accept` when the node names none.
    pub whisper: Option<String>,
    /// The ticket number the caller typed, if any (said in the whisper).
    pub ticket: Option<String>,
}

/// How a dial ended for the call.
/// `ivr_desk_rings_total{outcome}` for a ring the caller ended by hanging up.
const CALLER_GONE: &str = "caller_hung_up";

pub(super) enum DialResult {
    /// The flow goes on: `Answered` after a bridged call the staff side ended.
    Outcome(DialOutcome),
    /// The caller hung up (while ringing or while bridged).
    CallerGone(EndReason),
}

/// One phone to ring.
struct Contact {
    member: String,
    uri: String,
    destination: SocketAddr,
    /// The host name's other targets in RFC 3263 order: a leg to `destination` that times out
    /// or gets a 503 is placed again to the next (§4.3).
    alternates: Vec<SocketAddr>,
    transport: Transport,
    credentials: Option<Credentials>,
    /// The From user instead of the caller's number: a trunk's caller ID (a carrier refuses or
    /// rewrites a caller ID that is not the account's).
    from_user: Option<String>,
    /// Route headers for the INVITE: a registration's Path (RFC 3327), so the phone is reached
    /// through the proxy it registered through.
    route: Vec<String>,
}

enum Internal {
    Leg(LegId, CallEvent),
    Rtp(LegId, RtpIn),
    WhisperDone(LegId),
}

/// A staff phone being rung, whispered to or bridged.
struct LiveLeg {
    id: CallRef,
    /// Its contact: `members[at.0][at.1]`.
    at: (usize, usize),
    /// How many of the contact's `alternates` were tried.
    failovers: usize,
    member: String,
    /// The IP we send its SIP to: its RTP is believed from there on any port.
    peer: IpAddr,
    /// The RTP socket offered in the INVITE, until the answer starts the media session.
    socket: Option<UdpSocket>,
    local_ip: IpAddr,
    rtp_port: u16,
    media: Option<MediaHandle>,
    /// The codec its media session runs, kept through re-offers; set with `media`.
    encoding: Option<sdp::AudioEncoding>,
    dtmf: Option<DtmfReceiver>,
    /// Our SDP's o= session id and version towards this phone (RFC 3264 §8: same id, the
    /// version grows with each new description).
    session_id: u64,
    sdp_version: u64,
}

/// Everything of the call the dial needs.
pub(super) struct DialCall<'c, 'm> {
    pub call: &'c mut Call,
    pub ctx: &'c mut MediaCtx<'m>,
    pub settings: &'c CallSettings,
    pub record: &'c CallRecord,
    pub summary: &'c mut CallSummary,
    pub rtp_in: &'c mut Option<mpsc::Receiver<RtpIn>>,
    pub deadline: Instant,
}

impl DialCall<'_, '_> {
    pub async fn ring_desk(self, req: DialRequest) -> DialResult {
        let DialCall {
            call,
            ctx,
            settings,
            record,
            summary,
            rtp_in,
            deadline,
        } = self;
        let call_id = call.call_id.clone();
        let members = resolve(call, settings, &req.targets).await;
        let plan = DialPlan {
            strategy: req.strategy,
            timeout: req.timeout,
            ring_each: req.ring_each.unwrap_or(settings.desk.ring_each),
            accept_timeout: settings.desk.accept_timeout,
            contacts: members.iter().map(Vec::len).collect(),
        };
        info!(call_id = %call_id, event = "dial", targets = ?req.targets, strategy = ?req.strategy,
              phones = plan.contacts.iter().sum::<usize>(), "ringing the desk");
        let whisper = whisper_prompts(settings, record, &req);
        let (itx, mut irx) = mpsc::unbounded_channel::<Internal>();
        let (mut dialer, first) = Dialer::start(plan, Instant::now().into_std());
        let mut legs: HashMap<LegId, LiveLeg> = HashMap::new();
        let mut d = Dialing {
            call_id: call_id.clone(),
            settings,
            record,
            members,
            whisper,
            itx,
            caller_codec: ctx.neg.encoding,
            local_ip: ctx.local_ip,
            caller_relay: ctx.media.relay_input(),
            early: None,
            ringback_wanted: None,
            targets: req.targets.clone(),
            ringing: Vec::new(),
            ringing_changed: true,
        };
        let mut ringback = Some(ctx.media.play(settings.desk.ringback.clone()));
        let mut actions: std::collections::VecDeque<DialAction> = first.into();
        let winner = loop {
            let mut bridged = None;
            while let Some(a) = actions.pop_front() {
                match a {
                    DialAction::Bridge(leg) => bridged = Some(leg),
                    DialAction::Finish(outcome) => {
                        ctx.media.stop_playback();
                        info!(call_id = %call_id, event = "dial_done", outcome = outcome.as_str(), "nobody accepted");
                        settings.metrics.desk_ring(outcome.as_str());
                        return DialResult::Outcome(outcome);
                    }
                    other => {
                        let more = d.execute(call, &mut legs, other).await;
                        actions.extend(more.into_iter().flat_map(|(leg, ev)| {
                            dialer.on_leg(Instant::now().into_std(), leg, ev)
                        }));
                    }
                }
            }
            if let Some(leg) = bridged {
                break leg;
            }
            d.show_ringing(call);
            // Early media from a ringing phone replaces the tone, and the tone comes back
            // when that phone answers or drops out.
            match d.ringback_wanted.take() {
                Some(false) if ringback.is_some() => {
                    ctx.media.stop_playback();
                    ringback = None;
                }
                Some(true) if ringback.is_none() => {
                    ringback = Some(ctx.media.play(settings.desk.ringback.clone()));
                }
                _ => {}
            }
            let timer = legs
                .values()
                .filter_map(|l| l.dtmf.as_ref()?.poll_at())
                .chain(dialer.poll_timeout())
                .chain(ctx.media.rtp_deadline())
                .min()
                .map(Instant::from_std)
                .unwrap_or(deadline)
                .min(deadline);
            let ringing = ringback.is_some();
            tokio::select! {
                _ = async { if let Some(r) = ringback.as_mut() { r.await; } }, if ringing => {
                    // One cadence cycle ended: the next one.
                    ringback = Some(ctx.media.play(settings.desk.ringback.clone()));
                }
                ev = call.events.recv() => match ev {
                    Some(CallEvent::Ended { reason }) => {
                        info!(call_id = %call_id, event = "dial_abandoned", %reason, "caller hung up while the desk was rung");
                        for a in dialer.abort() {
                            d.execute(call, &mut legs, a).await;
                        }
                        settings.metrics.desk_ring(CALLER_GONE);
                        return DialResult::CallerGone(reason);
                    }
                    None => {
                        for a in dialer.abort() {
                            d.execute(call, &mut legs, a).await;
                        }
                        settings.metrics.desk_ring(CALLER_GONE);
                        return DialResult::CallerGone(EndReason::LocalBye);
                    }
                    // Digits from the caller while it rings are not commands.
                    Some(CallEvent::Info { .. }) => {}
                    Some(other) => handle_mid_call(call, ctx, other),
                },
                // The caller's RTP is drained and dropped while the desk rings, so the flow does
                // not find seconds of stale audio queued when the dial ends.
                _ = recv_rtp(rtp_in) => {}
                Some(msg) = irx.recv() => {
                    let now = Instant::now().into_std();
                    for (leg, ev) in d.on_internal(call, &mut legs, msg).await {
                        actions.extend(dialer.on_leg(now, leg, ev));
                    }
                }
                _ = tokio::time::sleep_until(timer) => {
                    let now = Instant::now().into_std();
                    if let Some(timeout) = ctx.media.rtp_silence(now) {
                        // The caller is gone (or was never there): nobody to connect staff to.
                        for a in dialer.abort() {
                            d.execute(call, &mut legs, a).await;
                        }
                        call.hang_up_silent(ctx.media, timeout);
                        settings.metrics.desk_ring(CALLER_GONE);
                        return DialResult::CallerGone(EndReason::LocalBye);
                    }
                    for (leg, l) in legs.iter_mut() {
                        if let Some(digit) = l.dtmf.as_mut().and_then(|r| r.poll(now)) {
                            actions.extend(dialer.on_leg(now, *leg, LegEvent::Digit(digit.digit)));
                        }
                    }
                    actions.extend(dialer.handle_timeout(now));
                    if Instant::now() >= deadline {
                        actions.extend(dialer.abort());
                        actions.push_back(DialAction::Finish(DialOutcome::NoAnswer));
                    }
                }
            }
        };
        let Some(mut leg) = legs.remove(&winner) else {
            settings.metrics.desk_ring(DialOutcome::Failed.as_str());
            return DialResult::Outcome(DialOutcome::Failed);
        };
        settings.metrics.desk_ring(DialOutcome::Answered.as_str());
        // The others are being dropped; their sessions end with their handles.
        drop(legs);
        ctx.media.stop_playback();
        call.live_state(crate::live::LiveState::Bridged {
            with: leg.member.clone(),
        });
        record
            .writer
            .fact(crate::store::CallFact::AnsweredBy(leg.member.clone()));
        bridge(
            call, ctx, &mut leg, &mut irx, winner, rtp_in, deadline, summary,
        )
        .await
    }
}

/// The per-dial state the actions need.
struct Dialing<'a> {
    call_id: String,
    settings: &'a CallSettings,
    record: &'a CallRecord,
    members: Vec<Vec<Contact>>,
    whisper: Vec<Arc<[i16]>>,
    itx: mpsc::UnboundedSender<Internal>,
    caller_codec: sdp::AudioEncoding,
    local_ip: IpAddr,
    /// Into the caller's media session (early media).
    caller_relay: crate::media::RelaySender,
    /// The leg whose early media the caller hears.
    early: Option<LegId>,
    /// The ringback tone should stop (`false`) or resume (`true`).
    ringback_wanted: Option<bool>,
    /// The dial node's targets, for the live calls list.
    targets: Vec<String>,
    /// The phones ringing (or whispered to) now, as the live calls list names them.
    ringing: Vec<(LegId, String)>,
    /// `ringing` changed since the live calls list was told.
    ringing_changed: bool,
}

impl Dialing<'_> {
    /// Carries out a dialer action; returns leg events it produced at once (a failed start).
    async fn execute(
        &mut self,
        call: &mut Call,
        legs: &mut HashMap<LegId, LiveLeg>,
        action: DialAction,
    ) -> Vec<(LegId, LegEvent)> {
        match action {
            DialAction::Start {
                leg,
                member,
                contact,
            } => {
                let started = match self.members.get(member).and_then(|m| m.get(contact)) {
                    Some(c) => {
                        self.start_leg(call, leg, c, (member, contact), c.destination)
                            .await
                    }
                    None => None,
                };
                match started {
                    Some(live) => {
                        let name = match self.members.get(member).and_then(|m| m.get(contact)) {
                            Some(c) if c.member != c.uri => format!("{} ({})", c.member, c.uri),
                            _ => live.member.clone(),
                        };
                        self.ringing.push((leg, name));
                        self.ringing_changed = true;
                        legs.insert(leg, live);
                        Vec::new()
                    }
                    None => vec![(leg, LegEvent::Ended(EndReason::NoResponse))],
                }
            }
            DialAction::Drop(leg) => {
                if let Some(l) = legs.get_mut(&leg) {
                    info!(call_id = %self.call_id, member = %l.member, event = "dial_leg_drop", "dropping staff phone");
                    call.send_to(l.id, CallCommand::Hangup);
                    // Dropping the handle ends the leg's media session.
                    l.media = None;
                    l.socket = None;
                    self.end_early_media(leg);
                }
                self.not_ringing(leg);
                Vec::new()
            }
            DialAction::Whisper(leg) => {
                if let Some(l) = legs.get(&leg)
                    && let Some(m) = l.media.as_ref()
                {
                    info!(call_id = %self.call_id, member = %l.member, event = "whisper", "staff answered; whispering");
                    let mut last = None;
                    for p in &self.whisper {
                        last = Some(m.play(p.clone()));
                    }
                    let itx = self.itx.clone();
                    tokio::spawn(async move {
                        if let Some(p) = last {
                            p.await;
                        }
                        let _ = itx.send(Internal::WhisperDone(leg));
                    });
                }
                Vec::new()
            }
            DialAction::Bridge(_) | DialAction::Finish(_) => Vec::new(),
        }
    }

    /// Binds the leg's RTP port, sends the INVITE to `destination` (the contact's, or one of
    /// its alternates), and forwards the leg's events.
    async fn start_leg(
        &self,
        call: &mut Call,
        leg: LegId,
        c: &Contact,
        at: (usize, usize),
        destination: SocketAddr,
    ) -> Option<LiveLeg> {
        let settings = self.settings;
        let local_ip = route_ip(destination).unwrap_or(self.local_ip);
        let (socket, rtp_port) = match socket::bind(settings.rtp_bind_ip, settings.rtp_ports).await
        {
            Ok(x) => x,
            Err(e) => {
                warn!(call_id = %self.call_id, error = %e, "no RTP port for a staff leg; skipping that phone");
                return None;
            }
        };
        let session_id = u64::from(rand::random::<u32>());
        let offer = sdp::offer(self.caller_codec, local_ip, rtp_port, session_id, 1);
        let client = self.record.client.as_ref().map(|c| c.name.clone());
        let display = match (&client, self.record.repeat) {
            (Some(name), true) => format!("{name} (repeat caller)"),
            (Some(name), false) => name.clone(),
            (None, true) => format!("{} (repeat caller)", self.record.caller.as_str()),
            (None, false) => self.record.caller.as_str().to_string(),
        };
        let spec = OutboundCall {
            request_uri: c.uri.clone(),
            destination,
            transport: c.transport,
            local: SocketAddr::new(local_ip, call.sip_port),
            display_name: display,
            from_user: c
                .from_user
                .clone()
                .unwrap_or_else(|| sip_user(self.record.caller.as_str())),
            sdp: offer,
            credentials: c.credentials.clone(),
            redirect_hosts: settings.desk.redirect_hosts.clone(),
            extra_headers: c
                .route
                .iter()
                .map(|r| ("Route".to_string(), r.clone()))
                .chain([("X-IVR-Call-ID".into(), self.call_id.clone())])
                .collect(),
        };
        let (reply, rx) = oneshot::channel();
        call.send(CallCommand::Dial {
            spec: Box::new(spec),
            reply,
        });
        let Leg { id, mut events } = rx.await.ok()?;
        info!(call_id = %self.call_id, member = %c.member, uri = %c.uri, leg = id, event = "dial_leg", "ringing staff phone");
        let itx = self.itx.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if itx.send(Internal::Leg(leg, ev)).is_err() {
                    break;
                }
            }
        });
        Some(LiveLeg {
            id,
            at,
            failovers: 0,
            member: c.member.clone(),
            peer: destination.ip(),
            socket: Some(socket),
            local_ip,
            rtp_port,
            media: None,
            encoding: None,
            dtmf: None,
            session_id,
            sdp_version: 1,
        })
    }

    /// Turns what a leg reports into dialer events.
    async fn on_internal(
        &mut self,
        call: &mut Call,
        legs: &mut HashMap<LegId, LiveLeg>,
        msg: Internal,
    ) -> Vec<(LegId, LegEvent)> {
        let now = Instant::now().into_std();
        match msg {
            Internal::WhisperDone(leg) => vec![(leg, LegEvent::WhisperDone)],
            Internal::Rtp(leg, pkt) => legs
                .get_mut(&leg)
                .and_then(|l| l.dtmf.as_mut()?.on_rtp(&pkt, now))
                .map(|d| vec![(leg, LegEvent::Digit(d.digit))])
                .unwrap_or_default(),
            Internal::Leg(leg, ev) => {
                let Some(l) = legs.get_mut(&leg) else {
                    return Vec::new();
                };
                match ev {
                    CallEvent::Progress { status, body } => {
                        if self.settings.desk.early_media
                            && self.early.is_none()
                            && !body.is_empty()
                            && l.media.is_none()
                        {
                            match self.answered(l, leg, &body) {
                                Ok(()) => {
                                    info!(call_id = %self.call_id, member = %l.member, status, event = "early_media", "caller hears the staff phone's early media");
                                    if let Some(m) = l.media.as_ref() {
                                        m.relay_to(Some(self.caller_relay.clone()));
                                    }
                                    self.early = Some(leg);
                                    self.ringback_wanted = Some(false);
                                }
                                Err(why) => {
                                    warn!(call_id = %self.call_id, member = %l.member, reason = %why, "early media SDP unusable; keeping the tone");
                                }
                            }
                        }
                        vec![(leg, LegEvent::Ringing)]
                    }
                    CallEvent::Answered { body } if l.media.is_some() => {
                        // Early media ran on this leg: the whisper is private, the tone resumes.
                        if let Some(m) = l.media.as_ref() {
                            m.relay_to(None);
                            if let Ok((_, neg)) = super::negotiate(&body) {
                                m.set_remote(neg.remote_rtp);
                                super::follow_direction(m, neg.direction);
                            }
                        }
                        self.end_early_media(leg);
                        vec![(leg, LegEvent::Answered)]
                    }
                    CallEvent::Answered { body } => match self.answered(l, leg, &body) {
                        Ok(()) => vec![(leg, LegEvent::Answered)],
                        Err(why) => {
                            warn!(call_id = %self.call_id, member = %l.member, reason = %why, "staff phone's SDP answer unusable; dropping it");
                            call.send_to(l.id, CallCommand::Hangup);
                            vec![(leg, LegEvent::Ended(EndReason::Declined(488)))]
                        }
                    },
                    CallEvent::Info { content_type, body } => l
                        .dtmf
                        .as_mut()
                        .and_then(|r| r.on_info(content_type.as_deref(), &body, now))
                        .map(|d| vec![(leg, LegEvent::Digit(d.digit))])
                        .unwrap_or_default(),
                    CallEvent::ReOffer { offer } => {
                        let media = l.media.take();
                        answer_leg_reoffer(call, l, media.as_ref(), &offer);
                        l.media = media;
                        Vec::new()
                    }
                    CallEvent::Ended { reason } if l.media.is_none() => {
                        let next = self.failover_target(l, &reason);
                        let (at, failovers) = (l.at, l.failovers + 1);
                        l.socket = None;
                        if let Some((c, to)) = next {
                            info!(call_id = %self.call_id, member = %c.member, %reason, next = %to,
                                event = "dial_failover", "desk target failed; trying the next");
                            if let Some(mut live) = self.start_leg(call, leg, c, at, to).await {
                                live.failovers = failovers;
                                legs.insert(leg, live);
                                return Vec::new();
                            }
                        }
                        self.end_early_media(leg);
                        self.not_ringing(leg);
                        vec![(leg, LegEvent::Ended(reason))]
                    }
                    CallEvent::Ended { reason } => {
                        l.media = None;
                        l.socket = None;
                        self.end_early_media(leg);
                        self.not_ringing(leg);
                        vec![(leg, LegEvent::Ended(reason))]
                    }
                    CallEvent::Incoming(_) | CallEvent::Confirmed { .. } => Vec::new(),
                }
            }
        }
    }

    /// The contact and next target for a leg that ended unanswered with a failure that calls
    /// for another target (timeout, 503), if its host name gave one more.
    fn failover_target(&self, l: &LiveLeg, reason: &EndReason) -> Option<(&Contact, SocketAddr)> {
        crate::dns::Failure::of_leg_end(reason).filter(|f| f.fails_over())?;
        let c = self.members.get(l.at.0)?.get(l.at.1)?;
        Some((c, *c.alternates.get(l.failovers)?))
    }

    fn not_ringing(&mut self, leg: LegId) {
        let before = self.ringing.len();
        self.ringing.retain(|(l, _)| *l != leg);
        self.ringing_changed |= self.ringing.len() != before;
    }

    /// Tells the live calls list which phones ring, when that changed (this runs on every turn
    /// of the dial loop, caller RTP included, so it must cost nothing otherwise).
    fn show_ringing(&mut self, call: &Call) {
        if std::mem::take(&mut self.ringing_changed) {
            call.live_state(crate::live::LiveState::RingingDesk {
                targets: self.targets.clone(),
                phones: self.ringing.iter().map(|(_, n)| n.clone()).collect(),
            });
        }
    }

    fn end_early_media(&mut self, leg: LegId) {
        if self.early == Some(leg) {
            self.early = None;
            self.ringback_wanted = Some(true);
        }
    }

    /// The leg answered (or sent early media): start its media session on the socket we offered.
    fn answered(&mut self, l: &mut LiveLeg, leg: LegId, body: &[u8]) -> Result<(), String> {
        let (_, neg) = super::negotiate(body)?;
        let socket = l.socket.take().ok_or("no RTP socket")?;
        let codec = codec_of(neg.encoding);
        let mut media = super::start_media(socket, &neg, l.peer, self.settings, &self.call_id);
        if let Some(mut rx) = media.take_events() {
            let itx = self.itx.clone();
            tokio::spawn(async move {
                while let Some(pkt) = rx.recv().await {
                    if itx.send(Internal::Rtp(leg, pkt)).is_err() {
                        break;
                    }
                }
            });
        }
        info!(call_id = %self.call_id, member = %l.member, codec = codec.name(), remote_rtp = %neg.remote_rtp,
              telephone_event = ?neg.telephone_event, "staff leg media started");
        l.dtmf = Some(DtmfReceiver::new(codec, neg.telephone_event));
        l.encoding = Some(neg.encoding);
        l.media = Some(media);
        Ok(())
    }
}
