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
mod legs;
mod reach;
mod remote;
mod targets;

use crate::sip::Transport;
use crate::sip::route_source_ip as route_ip;
use bridged::{answer_leg_reoffer, bridge};
use legs::Dialing;
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
