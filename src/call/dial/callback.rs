//! Desk call-backs: a registered staff phone dials a customer's number through the line.
//!
//! The endpoint has already proved the staff user (digest, 407). Only numbers that left a
//! voicemail may be called (unanswered, or answered within `desk.callback_window_h`), and only
//! through the configured trunk: the line is no open gateway. The staff phone hears ringing (180)
//! until the customer answers; then both are answered and bridged like a desk call, and the
//! number's voicemails count as called back, which stops their 20-minute escalation.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use super::super::memory::CallSummary;
use super::super::{
    Call, CallCommand, CallSettings, Leg, MediaCtx, drain_until_end, negotiate, start_media,
};
use super::bridged::bridge;
use super::{DialResult, Internal, LiveLeg};
use crate::media::socket;
use crate::sip::Transport;
use crate::sip::route_source_ip as route_ip;
use crate::sip::sdp;
use crate::sip::{CallEvent, EndReason, IncomingCall, OutboundCall};

/// Runs a staff call-back from INVITE to the end of the call.
pub(in crate::call) async fn run(
    call: &mut Call,
    incoming: &IncomingCall,
    settings: &Arc<CallSettings>,
    staff: &str,
) {
    let dialled = crate::sip::uri_user(&incoming.request_uri).to_string();
    let number = crate::repeat::normalise(&dialled, settings.memory.default_country.as_deref());
    let number = number.as_str().to_string();
    let call_id = call.call_id.clone();
    info!(call_id = %call_id, staff = %staff, number = %number, event = "callback", "staff call-back");
    let refuse = |call: &mut Call, status: u16, why: &str| {
        warn!(call_id = %call.call_id, staff = %staff, number = %number, status, reason = %why, event = "callback_refused", "call-back refused");
        call.send(CallCommand::Reject {
            status,
            warning: why.to_string(),
        });
    };
    let Some((trunk_host, trunk)) = settings.desk.callback_trunk.clone() else {
        refuse(
            call,
            503,
            "call-backs through the line are off (set desk.callback_trunk)",
        );
        drain_until_end(call).await;
        return;
    };
    if !settings
        .memory
        .callback_allowed(&number, settings.desk.callback_window)
        .await
    {
        refuse(
            call,
            403,
            "only numbers that left a voicemail can be called back through the line",
        );
        drain_until_end(call).await;
        return;
    }
    let (offer_sdp, neg) = match negotiate(&incoming.offer) {
        Ok(x) => x,
        Err(why) => {
            refuse(call, 488, &why);
            drain_until_end(call).await;
            return;
        }
    };
    let (staff_socket, staff_port, leg_socket, leg_port) = match (
        socket::bind(settings.rtp_bind_ip, settings.rtp_ports).await,
        socket::bind(settings.rtp_bind_ip, settings.rtp_ports).await,
    ) {
        (Ok((a, ap)), Ok((b, bp))) => (a, ap, b, bp),
        _ => {
            refuse(call, 503, "no media port available");
            drain_until_end(call).await;
            return;
        }
    };
    call.send(CallCommand::Ring);
    // The trunk's targets in RFC 3263 order (an IP literal is its one target); the line sends
    // call-backs over UDP.
    let mut targets = match trunk.cursor(&[crate::dns::Transport::Udp]).await {
        Ok(c) => c,
        Err(e) => {
            refuse(call, 503, &format!("call-back trunk {}: {e}", trunk.uri));
            drain_until_end(call).await;
            return;
        }
    };
    let leg_session = u64::from(rand::random::<u32>());
    let Some(first) = targets.current().map(|t| t.addr) else {
        // The resolver returns an error rather than no targets; kept for safety.
        refuse(
            call,
            503,
            &format!("call-back trunk {}: no targets", trunk.uri),
        );
        drain_until_end(call).await;
        return;
    };
    let attempt = CallbackAttempt {
        number: &number,
        trunk_host: &trunk_host,
        staff,
        settings,
        encoding: neg.encoding,
        leg_port,
        leg_session,
        fallback_ip: incoming.local.ip(),
    };
    let Some((mut target, mut leg_ip, mut leg_id, mut leg_events)) =
        attempt.dial(call, first).await
    else {
        return;
    };
    // Ringing: the staff phone may give up (CANCEL), the number may answer or fail; a trunk
    // target that times out or answers 503 hands the call to the next one (RFC 3263 §4.3).
    let answer = loop {
        tokio::select! {
            ev = call.events.recv() => match ev {
                Some(CallEvent::Ended { reason }) => {
                    info!(call_id = %call_id, %reason, event = "callback_abandoned", "staff gave up the call-back");
                    call.send_to(leg_id, CallCommand::Hangup);
                    return;
                }
                None => {
                    call.send_to(leg_id, CallCommand::Hangup);
                    return;
                }
                Some(_) => {}
            },
            ev = leg_events.recv() => match ev {
                Some(CallEvent::Answered { body }) => break body,
                Some(CallEvent::Ended { reason }) => {
                    let next = crate::dns::Failure::of_leg_end(&reason)
                        .and_then(|f| targets.failed(f))
                        .map(|t| t.addr);
                    if let Some(next) = next {
                        info!(call_id = %call_id, number = %number, failed = %target, %reason, next = %next,
                              event = "callback_failover", "trunk target failed; trying the next");
                        let Some(leg) = attempt.dial(call, next).await else {
                            return;
                        };
                        (target, leg_ip, leg_id, leg_events) = leg;
                        continue;
                    }
                    // The customer's side failed: tell the staff phone why, as a phone would.
                    let status = match reason {
                        EndReason::Declined(s) if (400..700).contains(&s) && s != 487 => s,
                        EndReason::NoResponse => 408,
                        _ => 480,
                    };
                    info!(call_id = %call_id, number = %number, %reason, status, event = "callback_failed", "call-back not answered");
                    call.send(CallCommand::Reject { status, warning: format!("{number}: {reason}") });
                    drain_until_end(call).await;
                    return;
                }
                None => {
                    call.send(CallCommand::Reject { status: 500, warning: "call-back leg lost".into() });
                    drain_until_end(call).await;
                    return;
                }
                Some(_) => {}
            },
        }
    };
    // The customer answered: answer the staff phone and connect them.
    let (_, leg_neg) = match negotiate(&answer) {
        Ok(x) => x,
        Err(why) => {
            warn!(call_id = %call_id, reason = %why, "the trunk's SDP answer is unusable");
            call.send_to(leg_id, CallCommand::Hangup);
            refuse(call, 488, &why);
            drain_until_end(call).await;
            return;
        }
    };
    let local_ip = incoming.local.ip();
    let session_id = u64::from(rand::random::<u32>());
    let mut sdp_version = 1u64;
    call.send(CallCommand::Accept(sdp::answer(
        &offer_sdp,
        &neg,
        local_ip,
        staff_port,
        session_id,
        sdp_version,
    )));
    let staff_media = start_media(staff_socket, &neg, incoming.source.ip(), settings, &call_id);
    let leg_media = start_media(leg_socket, &leg_neg, target.ip(), settings, &call_id);
    let acked = settings.memory.callback_answered(&number, staff).await;
    info!(call_id = %call_id, staff = %staff, number = %number, voicemails_acked = acked,
          event = "callback_connected", "call-back answered; the number's voicemails count as called back");
    // The helpdesk learns the promise was kept (webhook `callback_connected`).
    let vars = [
        ("staff", staff.to_string()),
        ("number", number.clone()),
        ("voicemails_acked", acked.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    settings
        .memory
        .custom_event("callback_connected", &call_id, &vars)
        .await;
    let (itx, mut irx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(ev) = leg_events.recv().await {
            if itx.send(Internal::Leg(0, ev)).is_err() {
                break;
            }
        }
    });
    let mut leg = LiveLeg {
        id: leg_id,
        // Answered already: no desk contact, no failover.
        at: (usize::MAX, usize::MAX),
        failovers: 0,
        member: number.clone(),
        peer: target.ip(),
        socket: None,
        local_ip: leg_ip,
        rtp_port: leg_port,
        media: Some(leg_media),
        encoding: Some(leg_neg.encoding),
        dtmf: None,
        session_id: leg_session,
        sdp_version: 1,
    };
    let mut ctx = MediaCtx {
        media: &staff_media,
        offer_sdp,
        neg,
        local_ip,
        rtp_port: staff_port,
        session_id,
        sdp_version: &mut sdp_version,
    };
    let mut summary = CallSummary::default();
    let mut no_rtp = None;
    let deadline = Instant::now() + settings.max_duration;
    match bridge(
        call,
        &mut ctx,
        &mut leg,
        &mut irx,
        0,
        &mut no_rtp,
        deadline,
        &mut summary,
    )
    .await
    {
        DialResult::CallerGone(_) => {}
        DialResult::Outcome(_) => {
            // The customer hung up (or the maximum duration): hang up the staff phone.
            call.send(CallCommand::Hangup);
            drain_until_end(call).await;
        }
    }
    info!(call_id = %call_id, staff = %staff, number = %number, talk_ms = summary.talk.as_millis() as u64,
          event = "callback_ended", "call-back ended");
    staff_media.stop().await;
}

/// What every INVITE of one call-back shares; only the trunk target changes between attempts.
struct CallbackAttempt<'a> {
    number: &'a str,
    trunk_host: &'a str,
    staff: &'a str,
    settings: &'a CallSettings,
    encoding: sdp::AudioEncoding,
    leg_port: u16,
    leg_session: u64,
    /// Our address when the route to the target cannot be looked up.
    fallback_ip: std::net::IpAddr,
}

impl CallbackAttempt<'_> {
    /// Sends the INVITE to `target`: the target, our address towards it, and the new leg.
    async fn dial(
        &self,
        call: &mut Call,
        target: SocketAddr,
    ) -> Option<(
        SocketAddr,
        std::net::IpAddr,
        crate::sip::CallRef,
        mpsc::UnboundedReceiver<CallEvent>,
    )> {
        let leg_ip = route_ip(target).unwrap_or(self.fallback_ip);
        let via = self.settings.desk.callback_via.as_ref();
        if let Some(v) = via {
            info!(call_id = %call.call_id, trunk = %v.trunk, number = %self.number, %target,
                  event = "callback_trunk", "call-back through trunk");
        }
        let spec = OutboundCall {
            request_uri: format!("sip:{}@{}", self.number, self.trunk_host),
            destination: target,
            transport: Transport::Udp,
            local: SocketAddr::new(leg_ip, call.sip_port),
            display_name: String::new(),
            from_user: via
                .map(|v| v.caller_id.clone())
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| self.settings.desk.callback_caller_id.clone()),
            sdp: sdp::offer(self.encoding, leg_ip, self.leg_port, self.leg_session, 1),
            // Through a `[[trunks]]` entry: the carrier's 401/407 is answered with its account.
            credentials: via.and_then(|v| v.credentials.clone()),
            redirect_hosts: Vec::new(),
            extra_headers: vec![("X-IVR-Callback-By".into(), self.staff.to_string())],
        };
        let (reply, rx) = oneshot::channel();
        call.send(CallCommand::Dial {
            spec: Box::new(spec),
            reply,
        });
        let Leg { id, events } = rx.await.ok()?;
        Some((target, leg_ip, id, events))
    }
}
