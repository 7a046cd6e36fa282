//! The bridged call: the caller and the staff phone that pressed 1, connected until one of
//! them hangs up, or goes silent for `rtp.timeout_s` (which ends the bridge as a hang-up on that
//! side would). Media is cross-relayed by the two sessions; this loop handles signalling.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::info;

use super::super::memory::CallSummary;
use super::super::recv_rtp;
use super::super::{Call, CallCommand, MediaCtx, handle_mid_call};
use super::{DialResult, Internal, LiveLeg};
use crate::bridge::LegId;
use crate::flow::DialOutcome;
use crate::media::RtpIn;
use crate::media::dtmf::parse_info;
use crate::media::session::MediaHandle;
use crate::sip::{CallEvent, EndReason};

/// The caller and the accepting staff phone, connected until one of them hangs up.
#[allow(clippy::too_many_arguments)]
pub(super) async fn bridge(
    call: &mut Call,
    ctx: &mut MediaCtx<'_>,
    leg: &mut LiveLeg,
    irx: &mut mpsc::UnboundedReceiver<Internal>,
    winner: LegId,
    rtp_in: &mut Option<mpsc::Receiver<RtpIn>>,
    deadline: Instant,
    summary: &mut CallSummary,
) -> DialResult {
    let call_id = call.call_id.clone();
    let Some(staff) = leg.media.take() else {
        return DialResult::Outcome(DialOutcome::Failed);
    };
    staff.stop_playback();
    ctx.media.relay_to(Some(staff.relay_input()));
    staff.relay_to(Some(ctx.media.relay_input()));
    let accepted = Instant::now();
    summary.bridged = true;
    summary.answered_by = Some(leg.member.clone());
    info!(call_id = %call_id, member = %leg.member, event = "bridged", "caller connected to staff");
    let result = loop {
        let timer = [ctx.media.rtp_deadline(), staff.rtp_deadline()]
            .into_iter()
            .flatten()
            .map(Instant::from_std)
            .min()
            .unwrap_or(deadline)
            .min(deadline);
        tokio::select! {
            ev = call.events.recv() => match ev {
                Some(CallEvent::Ended { reason }) => {
                    info!(call_id = %call_id, member = %leg.member, event = "bridge_end", by = "caller", %reason, "caller hung up; hanging up staff");
                    call.send_to(leg.id, CallCommand::Hangup);
                    break DialResult::CallerGone(reason);
                }
                None => {
                    call.send_to(leg.id, CallCommand::Hangup);
                    break DialResult::CallerGone(EndReason::LocalBye);
                }
                Some(CallEvent::Info { content_type, body }) => {
                    // INFO digits become RFC 4733 (or tones) towards staff.
                    if let Some(d) = parse_info(content_type.as_deref(), &body) {
                        info!(call_id = %call_id, event = "dtmf_relay", digit = %d.digit, from = "caller", "INFO digit relayed");
                        staff.send_dtmf(d.digit, Duration::from_millis(u64::from(d.duration_ms.clamp(40, 2000))));
                    }
                }
                Some(other) => handle_mid_call(call, ctx, other),
            },
            Some(msg) = irx.recv() => match msg {
                Internal::Leg(l, CallEvent::Ended { reason }) if l == winner => {
                    info!(call_id = %call_id, member = %leg.member, event = "bridge_end", by = "staff", %reason, "staff hung up");
                    break DialResult::Outcome(DialOutcome::Answered);
                }
                Internal::Leg(l, CallEvent::Info { content_type, body }) if l == winner => {
                    if let Some(d) = parse_info(content_type.as_deref(), &body) {
                        info!(call_id = %call_id, event = "dtmf_relay", digit = %d.digit, from = "staff", "INFO digit relayed");
                        ctx.media.send_dtmf(d.digit, Duration::from_millis(u64::from(d.duration_ms.clamp(40, 2000))));
                    }
                }
                Internal::Leg(l, CallEvent::ReOffer { offer }) if l == winner => {
                    answer_leg_reoffer(call, leg, Some(&staff), &offer);
                }
                _ => {}
            },
            _ = recv_rtp(rtp_in) => {}
            _ = tokio::time::sleep_until(timer) => {
                let now = Instant::now();
                if let Some(timeout) = ctx.media.rtp_silence(now.into_std()) {
                    info!(call_id = %call_id, member = %leg.member, event = "bridge_end", by = "caller", reason = "rtp_timeout", "caller silent; hanging up both");
                    call.send_to(leg.id, CallCommand::Hangup);
                    call.hang_up_silent(ctx.media, timeout);
                    break DialResult::CallerGone(EndReason::LocalBye);
                }
                if let Some(timeout) = staff.rtp_silence(now.into_std()) {
                    info!(call_id = %call_id, member = %leg.member, event = "bridge_end", by = "staff", reason = "rtp_timeout",
                          timeout_s = timeout.as_secs(), "no RTP from staff; hanging up staff");
                    staff.set_hold(true);
                    call.send_to(leg.id, CallCommand::Hangup);
                    break DialResult::Outcome(DialOutcome::Answered);
                }
                if now >= deadline {
                    info!(call_id = %call_id, event = "max_duration", "bridged call reached the maximum duration");
                    call.send_to(leg.id, CallCommand::Hangup);
                    break DialResult::Outcome(DialOutcome::Answered);
                }
            }
        }
    };
    ctx.media.relay_to(None);
    summary.talk = accepted.elapsed();
    info!(call_id = %call_id, member = %leg.member, event = "bridge_done", talk_ms = summary.talk.as_millis() as u64, "bridge ended");
    drop(staff);
    result
}

/// Hold and resume (or a new address) from a staff phone: answered like the caller's.
pub(super) fn answer_leg_reoffer(
    call: &mut Call,
    l: &mut LiveLeg,
    media: Option<&MediaHandle>,
    offer: &[u8],
) {
    // A leg's media session and its agreed terms start together (`Dialing::answered`).
    let answer = match (media, l.encoding) {
        (Some(media), Some(keep)) => {
            let origin = (l.local_ip, l.rtp_port, l.session_id);
            match super::super::reanswer(offer, keep, origin, &mut l.sdp_version, media) {
                Ok((sdp, _, neg)) => {
                    let hold = !neg.direction.answer().we_send();
                    info!(call_id = %call.call_id, member = %l.member, hold, event = "staff_reoffer", "staff phone updated media");

                    Ok(sdp)
                }
                Err(why) => Err((488, why)),
            }
        }
        _ => Err((488, "no media session".to_string())),
    };
    call.send_to(l.id, CallCommand::AnswerReoffer(answer));
}
