//! The UAC half of the endpoint: the INVITEs we send to staff phones (the B2BUA's second leg).
//!
//! A leg is a [`Call`] like an incoming one, with an [`Outbound`] part: its INVITE client
//! transaction (timers A/B/D), the digest answer to a 401/407 (once), one redirect within the
//! allowed hosts (once), CANCEL (only after a provisional response, §9.1), and the ACK of the 2xx,
//! which the dialog resends when the 2xx is retransmitted (§13.2.2.4). Once answered, the leg is an
//! ordinary dialog: BYE, re-INVITE and INFO run through the same code as for callers.

use std::fmt::Write as _;

use super::*;
use crate::sip::auth::{answer_challenge, pick_challenge};
use crate::sip::dialog::uri_socket_addr;
use crate::sip::transaction::InviteClientTx;

/// What a call task asks for when it rings a staff phone.
#[derive(Debug, Clone)]
pub struct OutboundCall {
    /// The staff phone's URI (a configured address or a registered contact).
    pub request_uri: String,
    /// Where the INVITE goes (no DNS: configured IP literals and registered contacts).
    pub destination: SocketAddr,
    /// UDP, or the TCP connection a phone registered on (it is reachable only through it).
    pub transport: Transport,
    /// Our SIP address as the staff phone reaches it (Via, Contact, From host).
    pub local: SocketAddr,
    /// Shown on the staff phone: who is calling.
    pub display_name: String,
    /// The From user part (the caller's number, for the phone's call log).
    pub from_user: String,
    pub sdp: String,
    /// Answer a 401/407 from the staff phone with these.
    pub credentials: Option<Credentials>,
    /// Hosts a 3xx may send us to; anything else is refused (no open relay).
    pub redirect_hosts: Vec<String>,
    pub extra_headers: Vec<(String, String)>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancel {
    NotAsked,
    /// Asked before any provisional response: sent when one arrives (§9.1).
    Pending,
    /// Sent; if no final response follows within 64*T1 the leg is given up
    /// (`TimerKey::CancelGiveUp`).
    Sent,
}

pub(super) struct Outbound {
    spec: OutboundCall,
    branch: String,
    cseq: u32,
    provisional: bool,
    cancel: Cancel,
    /// The ACK of the 2xx, resent for each retransmission of it.
    ack: Option<(Bytes, SocketAddr, Transport)>,
    authenticated: bool,
    redirected: bool,
}

pub(super) struct InviteClient {
    tx: InviteClientTx,
    to: SocketAddr,
    transport: Transport,
    call: CallRef,
}

impl Endpoint {
    /// Starts ringing a staff phone; the leg's events (`Progress`, `Answered`, `Ended`...) come
    /// as [`Output::Event`]s for the returned reference.
    pub fn invite(&mut self, now: Instant, spec: OutboundCall) -> CallRef {
        let call = self.next_call;
        self.next_call += 1;
        let call_id = format!("{}@ivr", random_token(20));
        let tag = random_token(10);
        let local_uri = format!(
            "\"{}\" <sip:{}@{}>",
            spec.display_name.replace(['"', '\\'], ""),
            spec.from_user,
            spec.local
        );
        let remote_uri = format!("<{}>", spec.request_uri);
        let dialog = Dialog::uac(
            &call_id,
            &tag,
            &local_uri,
            &remote_uri,
            &spec.request_uri,
            1,
        );
        self.dialogs.insert((call_id.clone(), tag), call);
        self.by_call_id
            .entry(call_id.clone())
            .or_default()
            .push(call);
        info!(%call_id, to = %spec.request_uri, destination = %spec.destination, event = "dial_leg", "ringing staff phone");
        self.calls.insert(
            call,
            Call {
                dialog,
                invite_key: Arc::new((String::new(), String::new(), "INVITE".to_string())),
                state: CallState::Calling,
                peer_transport: spec.transport,
                source: spec.destination,
                local: spec.local,
                reoffer: None,
                awaiting_ack: Vec::new(),
                invite_cseq: 1,
                from: local_uri,
                to: spec.request_uri.clone(),
                outbound: Some(Box::new(Outbound {
                    spec,
                    branch: String::new(),
                    cseq: 1,
                    provisional: false,
                    cancel: Cancel::NotAsked,
                    ack: None,
                    authenticated: false,
                    redirected: false,
                })),
                setup_pending: false,
                half_open: false,
            },
        );
        self.send_invite(now, call, None);
        call
    }

    fn send_invite(
        &mut self,
        now: Instant,
        call: CallRef,
        authorization: Option<(&'static str, String)>,
    ) {
        let timers = self.config.timers;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(o) = c.outbound.as_mut() else {
            return;
        };
        o.branch = format!("z9hG4bK{}", random_token(16));
        o.provisional = false;
        c.dialog.set_local_cseq(o.cseq);
        c.invite_cseq = o.cseq;
        let mut extra: Vec<(&str, String)> = vec![
            ("Contact", contact_of(o.spec.local, o.spec.transport)),
            ("Allow", ALLOW.to_string()),
        ];
        if let Some((name, value)) = authorization {
            extra.push((name, value));
        }
        for (k, v) in &o.spec.extra_headers {
            extra.push((k.as_str(), v.clone()));
        }
        let bytes = uac_request(
            o,
            &c.from,
            &c.dialog,
            "INVITE",
            &format!("<{}>", o.spec.request_uri),
            &extra,
            Some(("application/sdp", o.spec.sdp.as_bytes())),
        );
        let to = o.spec.destination;
        c.source = to;
        let branch = o.branch.clone();
        let transport = o.spec.transport;
        let (tx, actions) =
            InviteClientTx::new(now, transport.is_reliable(), timers, Bytes::from(bytes));
        self.invite_client_txs.insert(
            branch.clone(),
            InviteClient {
                tx,
                to,
                transport,
                call,
            },
        );
        self.apply_invite_client_actions(now, &branch, actions, None);
    }

    /// A response whose CSeq method is INVITE: to one of our legs, or a 2xx retransmission.
    pub(super) fn on_invite_response(&mut self, now: Instant, resp: Response) {
        let branch = resp.via.branch.clone().unwrap_or_default();
        let Some(entry) = self.invite_client_txs.get_mut(&branch) else {
            self.on_stray_invite_response(now, &resp);
            return;
        };
        let call = entry.call;
        let ack = match self.calls.get(&call) {
            Some(c) => non2xx_ack(c, &resp),
            None => Bytes::new(),
        };
        let Some(entry) = self.invite_client_txs.get_mut(&branch) else {
            return;
        };
        let actions = entry.tx.on_response(now, resp.status, || ack);
        self.apply_invite_client_actions(now, &branch, actions, Some(&resp));
    }

    fn apply_invite_client_actions(
        &mut self,
        now: Instant,
        branch: &str,
        actions: Vec<TxAction>,
        resp: Option<&Response>,
    ) {
        // The ACK of a final response goes out before whatever the response leads to (a new
        // INVITE after a challenge or redirect).
        let mut actions = actions;
        actions.sort_by_key(|a| !matches!(a, TxAction::Transmit(_)));
        for a in actions {
            let Some(entry) = self.invite_client_txs.get(branch) else {
                return;
            };
            let (to, call, transport) = (entry.to, entry.call, entry.transport);
            match a {
                TxAction::Transmit(bytes) => self.outputs.push_back(Output::Transmit {
                    transport,
                    to,
                    bytes,
                }),
                TxAction::Response(status) => {
                    if let Some(resp) = resp {
                        self.on_leg_response(now, call, status, resp);
                    }
                }
                TxAction::Timeout => {
                    if let Some(c) = self.calls.get(&call) {
                        warn!(call_id = %c.dialog.call_id, to = %c.to, event = "dial_leg_timeout", "staff phone did not respond (timer B)");
                    }
                    self.end_call(call, EndReason::NoResponse);
                }
                TxAction::Terminated => {
                    self.invite_client_txs.remove(branch);
                }
            }
        }
        let deadline = self
            .invite_client_txs
            .get(branch)
            .and_then(|t| t.tx.next_deadline());
        self.timers
            .set(&TimerKey::InviteClient(branch.to_string()), deadline);
    }

    fn on_leg_response(&mut self, now: Instant, call: CallRef, status: u16, resp: &Response) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(o) = c.outbound.as_mut() else {
            return;
        };
        if c.state != CallState::Calling {
            return;
        }
        let call_id = c.dialog.call_id.clone();
        let target = c.to.clone();
        match status {
            100..=199 => {
                o.provisional = true;
                if o.cancel == Cancel::Pending {
                    self.send_cancel(now, call);
                } else if status > 100 {
                    self.outputs.push_back(Output::Event(
                        call,
                        CallEvent::Progress {
                            status,
                            body: resp.body.clone(),
                        },
                    ));
                }
            }
            200..=299 => self.on_leg_answered(now, call, resp),
            401 | 407 if !o.authenticated && o.cancel == Cancel::NotAsked => {
                match challenge_answer(o, status, resp) {
                    Ok(header) => {
                        o.authenticated = true;
                        o.cseq += 1;
                        info!(%call_id, to = %target, status, event = "dial_leg_auth", "answering the staff phone's challenge");
                        self.send_invite(now, call, Some(header));
                    }
                    Err(why) => {
                        warn!(%call_id, to = %target, status, reason = %why, event = "dial_leg_auth_failed", "cannot authenticate to staff phone");
                        self.end_call(call, EndReason::Declined(status));
                    }
                }
            }
            300..=399 if !o.redirected && o.cancel == Cancel::NotAsked => {
                match redirect_target(resp, &o.spec.redirect_hosts) {
                    Some((uri, destination)) => {
                        info!(%call_id, from = %o.spec.request_uri, to = %uri, event = "dial_leg_redirect", "following redirect");
                        o.redirected = true;
                        o.cseq += 1;
                        o.spec.request_uri = uri.clone();
                        o.spec.destination = destination;
                        c.dialog.remote_target = uri.clone();
                        c.to = uri;
                        self.send_invite(now, call, None);
                    }
                    None => {
                        warn!(%call_id, to = %target, status, event = "dial_leg_redirect_refused",
                              "redirect outside the allowed hosts (or without a usable Contact) refused");
                        self.end_call(call, EndReason::Declined(status));
                    }
                }
            }
            _ => {
                info!(%call_id, to = %target, status, event = "dial_leg_failed", "staff phone declined");
                self.end_call(call, EndReason::Declined(status));
            }
        }
    }

    /// Fires an INVITE client transaction's timers (A, B, D).
    pub(super) fn invite_client_timeout(&mut self, now: Instant, branch: &str) {
        let Some(t) = self.invite_client_txs.get_mut(branch) else {
            return;
        };
        let actions = t.tx.on_timeout(now);
        self.apply_invite_client_actions(now, branch, actions, None);
    }

    fn on_leg_answered(&mut self, now: Instant, call: CallRef, resp: &Response) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(o) = c.outbound.as_mut() else {
            return;
        };
        let Some(to) = resp.to.as_ref().filter(|t| t.tag.is_some()) else {
            warn!(call_id = %c.dialog.call_id, "2xx without a To tag; ignored");
            return;
        };
        c.dialog
            .on_answer(to, resp.contacts.first(), &resp.record_route);
        let branch = format!("z9hG4bK{}", random_token(16));
        let (bytes, next_hop) = c.dialog.ack(
            o.cseq,
            &o.spec.local.to_string(),
            o.spec.transport.via_name(),
            &branch,
        );
        let dest = gate::allowed_hop(
            &self.config.follow_routes_to,
            uri_socket_addr(&next_hop),
            c.source,
        );
        let bytes = Bytes::from(bytes);
        o.ack = Some((bytes.clone(), dest, o.spec.transport));
        let cancelled = o.cancel != Cancel::NotAsked;
        c.state = CallState::Confirmed;
        self.outputs.push_back(Output::Transmit {
            transport: o.spec.transport,
            to: dest,
            bytes,
        });
        if cancelled {
            // Answered while our CANCEL crossed it (§9.1): the leg is unwanted, hang up.
            self.send_bye(now, call);
            return;
        }
        info!(call_id = %c.dialog.call_id, to = %c.to, event = "dial_leg_answered", "staff phone answered");
        self.outputs.push_back(Output::Event(
            call,
            CallEvent::Answered {
                body: resp.body.clone(),
            },
        ));
    }

    /// A 2xx retransmitted after its transaction ended: our ACK was lost, send it again.
    fn on_stray_invite_response(&mut self, _now: Instant, resp: &Response) {
        if !(200..300).contains(&resp.status) {
            debug!(call_id = %resp.call_id, status = resp.status, "stray INVITE response dropped");
            return;
        }
        let Some(tag) = resp.to_tag.clone() else {
            return;
        };
        let calls = self.by_call_id.get(&resp.call_id).into_iter().flatten();
        let ack = calls.filter_map(|call| self.calls.get(call)).find_map(|c| {
            let o = c.outbound.as_ref()?;
            (c.dialog.remote_tag.as_deref() == Some(tag.as_str()) && o.cseq == resp.cseq)
                .then(|| o.ack.clone())
                .flatten()
        });
        if let Some((bytes, to, transport)) = ack {
            debug!(call_id = %resp.call_id, "2xx retransmission: ACK resent");
            self.outputs.push_back(Output::Transmit {
                transport,
                to,
                bytes,
            });
        }
    }

    /// The call task gives up on a leg that has not answered: CANCEL once a provisional
    /// response came (§9.1), else as soon as one does.
    pub(super) fn cancel_outbound(&mut self, now: Instant, call: CallRef) {
        let Some(o) = self.calls.get_mut(&call).and_then(|c| c.outbound.as_mut()) else {
            return;
        };
        match o.cancel {
            Cancel::NotAsked if o.provisional => self.send_cancel(now, call),
            Cancel::NotAsked => o.cancel = Cancel::Pending,
            _ => {}
        }
    }

    fn send_cancel(&mut self, now: Instant, call: CallRef) {
        let timers = self.config.timers;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(o) = c.outbound.as_mut() else {
            return;
        };
        o.cancel = Cancel::Sent;
        let bytes = uac_request(
            o,
            &c.from,
            &c.dialog,
            "CANCEL",
            &format!("<{}>", o.spec.request_uri),
            &[],
            None,
        );
        info!(call_id = %c.dialog.call_id, to = %c.to, event = "dial_leg_cancel", "cancelling staff phone");
        let to = o.spec.destination;
        let transport = o.spec.transport;
        let (tx, actions) =
            NonInviteClientTx::new(now, transport.is_reliable(), timers, Bytes::from(bytes));
        // Keyed apart from the INVITE (same branch): responses are told apart by CSeq method.
        let key = format!("{}|CANCEL", o.branch);
        self.timers
            .set(&TimerKey::CancelGiveUp(call), Some(now + timers.t1x64()));
        self.client_txs.insert(
            key.clone(),
            ClientTx {
                tx,
                to,
                transport,
                call: None,
                request: None,
            },
        );
        self.apply_client_actions(&key, actions);
    }

    /// A leg whose CANCEL got no final response in 64*T1 is given up.
    pub(super) fn give_up_cancelled_leg(&mut self, call: CallRef) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != CallState::Calling {
            return;
        }
        if let Some(o) = &c.outbound {
            let branch = o.branch.clone();
            self.invite_client_txs.remove(&branch);
            self.timers.set(&TimerKey::InviteClient(branch), None);
        }
        self.end_call(call, EndReason::NoResponse);
    }
}

/// The `Authorization`/`Proxy-Authorization` header answering a 401/407, once per leg.
fn challenge_answer(
    o: &Outbound,
    status: u16,
    resp: &Response,
) -> Result<(&'static str, String), String> {
    let (challenge_header, answer_header) = if status == 401 {
        ("WWW-Authenticate", "Authorization")
    } else {
        ("Proxy-Authenticate", "Proxy-Authorization")
    };
    let challenges: Vec<&str> = resp.raw.header_values(challenge_header).collect();
    let credentials = o
        .spec
        .credentials
        .as_ref()
        .ok_or("no credentials configured for this staff phone")?;
    let challenge = pick_challenge(&challenges).ok_or("no digest challenge we can answer")?;
    let value = answer_challenge(
        challenge,
        "INVITE",
        &o.spec.request_uri,
        &credentials.username,
        &credentials.password,
        &random_token(12),
        1,
    )
    .map_err(|e| e.to_string())?;
    Ok((answer_header, value))
}

/// The ACK for a non-2xx final (§17.1.1.3): same branch and Request-URI as the INVITE, the
/// response's To (with its tag).
fn non2xx_ack(c: &Call, resp: &Response) -> Bytes {
    let Some(o) = c.outbound.as_ref() else {
        return Bytes::new();
    };
    let to = resp
        .to
        .as_ref()
        .map(|t| t.raw.clone())
        .unwrap_or_else(|| format!("<{}>", o.spec.request_uri));
    Bytes::from(uac_request(o, &c.from, &c.dialog, "ACK", &to, &[], None))
}

/// Where a 3xx sends us, if its first Contact is a `sip:` URI on an allowed host with an IP
/// literal we can reach without DNS.
fn redirect_target(resp: &Response, allowed: &[String]) -> Option<(String, SocketAddr)> {
    let contact = resp.contacts.first()?;
    if !contact.uri.to_ascii_lowercase().starts_with("sip:") {
        return None;
    }
    let (host, _) = uri_host_port(&contact.uri)?;
    if !allowed.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
        return None;
    }
    Some((contact.uri.clone(), uri_socket_addr(&contact.uri)?))
}

/// Our Contact towards a staff phone.
fn contact_of(local: SocketAddr, transport: Transport) -> String {
    match transport {
        Transport::Udp => format!("<sip:ivr@{local}>"),
        Transport::Tcp(_) => format!("<sip:ivr@{local};transport=tcp>"),
    }
}

/// An out-of-dialog request of ours (INVITE, its CANCEL and non-2xx ACK): the leg's current
/// Request-URI, branch and CSeq, our From (`from` with the dialog's tag) and the given To.
fn uac_request(
    o: &Outbound,
    from: &str,
    dialog: &Dialog,
    method: &str,
    to: &str,
    extra: &[(&str, String)],
    body: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let (request_uri, local, branch, cseq) = (&o.spec.request_uri, o.spec.local, &o.branch, o.cseq);
    let (from_tag, call_id) = (&dialog.local_tag, &dialog.call_id);
    let mut text = String::with_capacity(768);
    let _ = write!(text, "{method} {request_uri} SIP/2.0\r\n");
    let via = o.spec.transport.via_name();
    let _ = write!(text, "Via: SIP/2.0/{via} {local};branch={branch};rport\r\n");
    let _ = write!(text, "Max-Forwards: 70\r\n");
    let _ = write!(text, "From: {from};tag={from_tag}\r\n");
    let _ = write!(text, "To: {to}\r\n");
    let _ = write!(text, "Call-ID: {call_id}\r\n");
    let _ = write!(text, "CSeq: {cseq} {method}\r\n");
    for (name, value) in extra {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    let _ = write!(text, "User-Agent: ivr/{}\r\n", env!("CARGO_PKG_VERSION"));
    crate::sip::dialog::with_body(text, body)
}

#[cfg(test)]
#[path = "uac_tests.rs"]
mod tests;
