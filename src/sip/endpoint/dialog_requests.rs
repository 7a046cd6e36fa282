//! The requests we receive as UAS: new INVITEs (§8.2, merged requests), requests inside a dialog
//! (BYE, re-INVITE, UPDATE, INFO, OPTIONS; §12.2.2), ACK (§13.2.2.4, §17.2.3) and CANCEL (§9.2),
//! the responses that belong to a dialog (our tag, Contact, Record-Route), and the ending of a
//! dialog: our BYE, the no-ACK rule (§13.3.1.4) and the call's removal.

use tracing::{debug, info, warn};

use super::*;
use crate::sip::dialog::uri_socket_addr;
use crate::text::Escaped;

impl Endpoint {
    pub(super) fn on_request(
        &mut self,
        now: Instant,
        req: Request,
        source: SocketAddr,
        transport: Transport,
        local: SocketAddr,
    ) {
        let method = req.method;
        let key = tx_key(&req);
        debug!(call_id = %req.call_id, %method, %source, "request");
        if method == rsip::Method::Ack {
            self.on_ack(now, &req, &key);
            return;
        }
        // A retransmission of a request we are already handling (§17.2.3).
        if let Some(t) = self.server_txs.get_mut(&key) {
            let actions = match &mut t.kind {
                ServerTxKind::Invite(tx) => tx.on_request_retransmission(now),
                ServerTxKind::NonInvite(tx) => tx.on_request_retransmission(now),
            };
            self.apply_server_actions(&key, actions);
            return;
        }
        let reply_to = match transport {
            Transport::Udp => req.via.response_target(source),
            Transport::Tcp(_) => source,
        };
        if req.to.tag.is_none() && method != rsip::Method::Cancel {
            if !self.names_us(&req.uri, local) {
                self.refuse_foreign_host(now, &req, source, transport, reply_to, local);
                return;
            }
            if !self.admit(now, &req, source, transport, reply_to) {
                return;
            }
            if self.answer_statelessly(now, &req, source, transport, reply_to) {
                return;
            }
        }
        let kind = if method == rsip::Method::Invite {
            ServerTxKind::Invite(InviteServerTx::new(
                transport.is_reliable(),
                self.config.timers,
            ))
        } else {
            ServerTxKind::NonInvite(NonInviteServerTx::new(
                transport.is_reliable(),
                self.config.timers,
            ))
        };
        self.server_txs.insert(
            key.clone(),
            ServerTx {
                kind,
                raw: Some(req.raw.clone()),
                source,
                transport,
                reply_to,
                call: None,
            },
        );
        if method == rsip::Method::Cancel {
            self.on_cancel(now, &req, &key);
            return;
        }
        if method != rsip::Method::Invite
            && method != rsip::Method::Options
            && !ALLOW.split(", ").any(|m| m == method.to_string())
        {
            self.respond_with(now, &key, 405, |b| b.header("Allow", ALLOW));
            return;
        }
        // §8.2.2.3: we implement no extensions, so any Require is refused.
        if let Some(required) = req.raw.header_str("Require") {
            let required = required.to_string();
            self.respond_with(now, &key, 420, |b| b.header("Unsupported", &required));
            return;
        }
        if req.to.tag.is_some() {
            self.on_in_dialog_request(now, req, &key);
            return;
        }
        match method {
            rsip::Method::Invite => self.on_new_invite(now, req, key, source, transport, local),
            rsip::Method::Register => self.on_register(now, &req, &key, source, transport),
            // (OPTIONS outside a dialog was answered statelessly, or got 420, above.)
            // BYE, INFO, UPDATE outside a dialog (§12.2.2).
            _ => self.respond_with(now, &key, 481, |b| b),
        }
    }

    pub(super) fn on_new_invite(
        &mut self,
        now: Instant,
        req: Request,
        key: TxKey,
        source: SocketAddr,
        transport: Transport,
        local: SocketAddr,
    ) {
        // §8.2.2.2 merged request: same From tag, Call-ID and CSeq arriving by another path.
        let merged = self
            .by_call_id
            .get(&req.call_id)
            .into_iter()
            .flatten()
            .filter_map(|call| self.calls.get(call))
            .any(|c| {
                c.dialog.remote_tag == req.from.tag
                    && c.invite_cseq == req.cseq
                    && c.invite_key != key
            });
        if merged {
            self.respond_with(now, &key, 482, |b| b);
            return;
        }
        if !req.body.is_empty() {
            let ct = req.content_type.as_deref().unwrap_or("");
            if !ct
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/sdp")
            {
                self.respond_with(now, &key, 415, |b| b.header("Accept", "application/sdp"));
                return;
            }
        }
        // A call whose From claims one of our users (a desk call-back) must prove who it is:
        // nobody may borrow a staff From to call out through the line. Every such From is
        // challenged, named staff or not, so the answers do not tell which names exist.
        let staff_user = if !self.config.staff.users.is_empty()
            && self.claims_to_be_ours(&req.from.uri, local)
        {
            match self.authenticate_invite(now, &req, &key, source) {
                Some(user) => Some(user),
                None => return,
            }
        } else {
            None
        };
        // 100 Trying at once so the caller's timer A stops retransmitting (§17.2.1).
        self.respond_with(now, &key, 100, |b| b);
        let call = self.next_call;
        self.next_call += 1;
        let dialog = Dialog::uas(&req, &random_token(10));
        self.dialogs
            .insert((dialog.call_id.clone(), dialog.local_tag.clone()), call);
        self.by_call_id
            .entry(dialog.call_id.clone())
            .or_default()
            .push(call);
        if let Some(t) = self.server_txs.get_mut(&key) {
            t.call = Some(call);
        }
        info!(call_id = %req.call_id, from = %Escaped(&req.from.uri.to_string()), to = %Escaped(&req.to.uri.to_string()), %source, event = "invite", "incoming call");
        self.calls.insert(
            call,
            Call {
                dialog,
                invite_key: key,
                state: CallState::Early,
                peer_transport: transport,
                source,
                local,
                reoffer: None,
                awaiting_ack: Vec::new(),
                invite_cseq: req.cseq,
                from: req.from.uri.clone(),
                to: req.to.uri.clone(),
                outbound: None,
                setup_pending: true,
                half_open: true,
            },
        );
        self.admission.opened(source.ip());
        self.pending_setups += 1;
        let incoming = IncomingCall {
            call_id: req.call_id.clone(),
            from: req.from.clone(),
            to: req.to.clone(),
            request_uri: req.uri.clone(),
            offer: req.body.clone(),
            source,
            transport,
            local,
            asserted_identity: req.asserted_identity(),
            staff_user,
            trunk: None,
            dialled: None,
        };
        self.outputs
            .push_back(Output::Event(call, CallEvent::Incoming(Box::new(incoming))));
    }

    /// Out-of-dialog requests answered without keeping a transaction (RFC 3261 §8.2.7): OPTIONS
    /// pings, and new calls refused because we are shutting down, full, or behind. Under a flood
    /// of either, 32 s of transaction state per request would be the cost; a retransmission is
    /// simply answered again, with the same To tag. Returns whether the request was answered.
    fn answer_statelessly(
        &mut self,
        now: Instant,
        req: &Request,
        source: SocketAddr,
        transport: Transport,
        reply_to: SocketAddr,
    ) -> bool {
        let full = self.draining || self.calls.len() >= self.config.max_calls;
        let behind = self.pending_setups >= self.config.max_pending_setups;
        let (status, retry_after) = match req.method {
            // §11.2: OPTIONS gets the answer an INVITE would get, so a proxy's probing (README
            // "Two nodes behind Kamailio") takes a draining or full node out of its rotation
            // instead of sending it calls to refuse.
            rsip::Method::Options if req.raw.header("Require").is_none() => match (full, behind) {
                (true, _) => (503, Some("30")),
                (false, true) => (503, Some("2")),
                (false, false) => (200, None),
            },
            rsip::Method::Invite if full => (503, Some("30")),
            rsip::Method::Invite if behind => (503, Some("2")),
            _ => return false,
        };
        if status == 503 && req.method == rsip::Method::Invite {
            self.refused.overload += 1;
            self.note_shed(now, req, retry_after == Some("2"));
        }
        let headers: &[(&str, &str)] = match retry_after {
            Some(secs) => &[("Retry-After", secs)],
            None => &[
                ("Allow", ALLOW),
                ("Accept", "application/sdp"),
                ("Accept-Language", "en"),
            ],
        };
        self.reply_statelessly(req, (source, transport, reply_to), status, headers);
        true
    }

    /// Logs refused calls without a line per call: the first at once, then a count per second.
    fn note_shed(&mut self, now: Instant, req: &Request, overloaded: bool) {
        let Some(refused) = self.shed.note(now) else {
            return;
        };
        let why = if self.draining {
            "shutting down"
        } else if overloaded {
            "overloaded: call set-up is behind"
        } else {
            "at capacity (sip.max_calls)"
        };
        warn!(call_id = %req.call_id, live = self.calls.len(), pending = self.pending_setups,
              refused, event = "call_refused", "refusing new calls with 503: {why}");
    }

    pub(super) fn on_in_dialog_request(&mut self, now: Instant, req: Request, key: &TxKey) {
        let Some(call) = self.find_dialog(&req) else {
            self.respond_with(now, key, 481, |b| b);
            return;
        };
        if let Some(t) = self.server_txs.get_mut(key) {
            t.call = Some(call);
        }
        let Some(c) = self.calls.get_mut(&call) else {
            self.respond_with(now, key, 481, |b| b);
            return;
        };
        if let Err(e) = c.dialog.on_remote_request(&req) {
            let why = e.to_string();
            self.respond_with(now, key, 500, |b| {
                b.header("Warning", &format!("399 ivr \"{why}\""))
            });
            return;
        }
        match req.method {
            rsip::Method::Bye => {
                let early_invite = (c.state == CallState::Early).then(|| c.invite_key.clone());
                info!(call_id = %req.call_id, from = %Escaped(&c.from), to = %Escaped(&c.to), event = "bye", "caller hung up");
                self.respond_with(now, key, 200, |b| b);
                if let Some(invite_key) = early_invite {
                    self.respond_with(now, &invite_key, 487, |b| b);
                }
                self.end_call(call, EndReason::RemoteBye);
            }
            rsip::Method::Invite | rsip::Method::Update => {
                if c.reoffer.is_some() || matches!(c.state, CallState::Early | CallState::Calling) {
                    // §14.2: an offer while one is pending; the peer retries after a pause.
                    self.respond_with(now, key, 491, |b| b);
                    return;
                }
                c.reoffer = Some(key.clone());
                if req.method == rsip::Method::Invite {
                    self.respond_with(now, key, 100, |b| b);
                }
                self.outputs.push_back(Output::Event(
                    call,
                    CallEvent::ReOffer {
                        offer: req.body.clone(),
                    },
                ));
            }
            rsip::Method::Info => {
                self.respond_with(now, key, 200, |b| b);
                self.outputs.push_back(Output::Event(
                    call,
                    CallEvent::Info {
                        content_type: req.content_type.clone(),
                        body: req.body.clone(),
                    },
                ));
            }
            rsip::Method::Options => {
                self.respond_with(now, key, 200, |b| {
                    b.header("Allow", ALLOW).header("Accept", "application/sdp")
                });
            }
            _ => self.respond_with(now, key, 405, |b| b.header("Allow", ALLOW)),
        }
    }

    pub(super) fn on_ack(&mut self, now: Instant, req: &Request, key: &TxKey) {
        // ACK for a non-2xx final shares the INVITE's branch (§17.2.3).
        if let Some(t) = self.server_txs.get_mut(key)
            && let ServerTxKind::Invite(tx) = &mut t.kind
            && tx.state() == InviteServerState::Completed
        {
            let actions = tx.on_ack(now);
            self.apply_server_actions(key, actions);
            return;
        }
        // ACK for a 2xx is its own transaction inside the dialog (§13.2.2.4).
        let Some(call) = self.find_dialog(req) else {
            debug!(call_id = %req.call_id, "ACK matches no dialog; dropped");
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(pos) = c
            .awaiting_ack
            .iter()
            .position(|(cseq, _)| *cseq == req.cseq)
        else {
            return; // a retransmitted ACK
        };
        let (_, invite_key) = c.awaiting_ack.remove(pos);
        let first_ack = invite_key == c.invite_key;
        let hangup_pending = matches!(
            c.state,
            CallState::Answered {
                hangup_pending: true
            }
        );
        if first_ack {
            c.state = CallState::Confirmed;
            if std::mem::take(&mut c.half_open) {
                let ip = c.source.ip();
                self.admission.closed(ip);
            }
        }
        if let Some(t) = self.server_txs.get_mut(&invite_key)
            && let ServerTxKind::Invite(tx) = &mut t.kind
        {
            let actions = tx.on_ack(now);
            self.apply_server_actions(&invite_key, actions);
        }
        self.outputs.push_back(Output::Event(
            call,
            CallEvent::Confirmed {
                body: req.body.clone(),
            },
        ));
        if first_ack && hangup_pending {
            self.send_bye(now, call);
        }
    }

    pub(super) fn on_cancel(&mut self, now: Instant, req: &Request, cancel_key: &TxKey) {
        let invite_key = Arc::new((
            cancel_key.0.clone(),
            cancel_key.1.clone(),
            "INVITE".to_string(),
        ));
        let Some(t) = self.server_txs.get(&invite_key) else {
            self.respond_with(now, cancel_key, 481, |b| b);
            return;
        };
        let proceeding = matches!(&t.kind, ServerTxKind::Invite(tx) if tx.state() == InviteServerState::Proceeding);
        let call = t.call;
        // The 200 to the CANCEL carries the same To tag as the 487 (§9.2).
        if let Some(tc) = self.server_txs.get_mut(cancel_key) {
            tc.call = call;
        }
        self.respond_with(now, cancel_key, 200, |b| b);
        // After a final response the CANCEL has no effect and the call goes on (§9.2).
        if proceeding {
            self.respond_with(now, &invite_key, 487, |b| b);
            if let Some(call) = call {
                if let Some(c) = self.calls.get(&call) {
                    info!(call_id = %req.call_id, from = %Escaped(&c.from), to = %Escaped(&c.to), event = "cancel", "caller cancelled while ringing");
                }
                self.end_call(call, EndReason::Cancelled);
            }
        }
    }

    /// A response that belongs to the call's dialog: carries our tag, Contact and Record-Route.
    pub(super) fn respond_in_call(
        &mut self,
        now: Instant,
        call: CallRef,
        key: &TxKey,
        status: u16,
        sdp: Option<String>,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let tag = c.dialog.local_tag.clone();
        let contact = match c.peer_transport {
            Transport::Udp => format!("<sip:ivr@{}>", c.local),
            Transport::Tcp(_) => format!("<sip:ivr@{};transport=tcp>", c.local),
        };
        let Some(t) = self.server_txs.get(key) else {
            return;
        };
        let Some(raw) = &t.raw else {
            return;
        };
        let mut b = ResponseBuilder::new(raw, t.source, status, Some(&tag));
        // §12.1.1: copy Record-Route into dialog-establishing responses.
        for rr in raw.header_values("Record-Route") {
            b = b.header("Record-Route", rr);
        }
        b = b.header("Contact", &contact);
        if status >= 200 {
            b = b.header("Allow", ALLOW);
        }
        if let Some(sdp) = sdp {
            b = b.body("application/sdp", sdp.into_bytes());
        }
        self.send_response(now, key, status, b.build());
    }

    pub(super) fn find_dialog(&self, req: &Request) -> Option<CallRef> {
        let tag = req.to.tag.clone()?;
        let call = *self.dialogs.get(&(req.call_id.clone(), tag))?;
        let c = self.calls.get(&call)?;
        c.dialog
            .matches(&req.call_id, &req.from, &req.to)
            .then_some(call)
    }

    /// Sends BYE in the call's dialog; returns the BYE transaction's key.
    pub(super) fn send_bye(&mut self, now: Instant, call: CallRef) -> Option<String> {
        let c = self.calls.get_mut(&call)?;
        c.state = CallState::Ending;
        let branch = format!("z9hG4bK{}", random_token(16));
        let (bytes, next_hop) = c.dialog.request(
            "BYE",
            &c.local.to_string(),
            c.peer_transport.via_name(),
            &branch,
            &[],
            None,
        );
        let hop = match c.outbound {
            Some(_) => uri_socket_addr(&next_hop),
            None => next_hop_addr(&next_hop, c),
        };
        let to = gate::allowed_hop(&self.config.follow_routes_to, hop, c.source);
        let transport = c.peer_transport;
        info!(call_id = %c.dialog.call_id, from = %Escaped(&c.from), to = %Escaped(&c.to), event = "bye_sent", "hanging up");
        let (tx, actions) = NonInviteClientTx::new(
            now,
            transport.is_reliable(),
            self.config.timers,
            Bytes::from(bytes),
        );
        self.client_txs.insert(
            branch.clone(),
            ClientTx {
                tx,
                to,
                transport,
                call: Some(call),
                request: None,
            },
        );
        self.apply_client_actions(&branch, actions);
        Some(branch)
    }

    pub(super) fn no_ack(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        warn!(call_id = %c.dialog.call_id, from = %Escaped(&c.from), to = %Escaped(&c.to), event = "no_ack", "no ACK for 200 OK within 64*T1; sending BYE");
        let bye = self.send_bye(now, call);
        // The BYE runs on without the call: the caller is gone as far as we can tell.
        if let Some(t) = bye.and_then(|b| self.client_txs.get_mut(&b)) {
            t.call = None;
        }
        self.end_call(call, EndReason::NoAck);
    }

    /// Removes the call and tells its task. Touches only this call's entries: server
    /// transactions that still name it resolve to nothing from now on (call references are never
    /// reused).
    pub(super) fn end_call(&mut self, call: CallRef, reason: EndReason) {
        self.timers.set(&TimerKey::CancelGiveUp(call), None);
        self.setup_done(call);
        if let Some(c) = self.calls.remove(&call) {
            if c.half_open {
                self.admission.closed(c.source.ip());
            }
            self.dialogs
                .remove(&(c.dialog.call_id.clone(), c.dialog.local_tag.clone()));
            if let Some(calls) = self.by_call_id.get_mut(&c.dialog.call_id) {
                calls.retain(|x| *x != call);
                if calls.is_empty() {
                    self.by_call_id.remove(&c.dialog.call_id);
                }
            }
            info!(call_id = %c.dialog.call_id, from = %Escaped(&c.from), to = %Escaped(&c.to), event = "dialog_ended", %reason, "dialog ended");
            self.outputs
                .push_back(Output::Event(call, CallEvent::Ended { reason }));
        }
    }
}

/// The next hop of an in-dialog request without DNS: over TCP, or with no route set, we reuse the
/// flow the INVITE came on (works through NAT, RFC 5626 spirit; the Contact is not used); otherwise
/// the first route's address when it is an IP literal, else that same flow.
fn next_hop_addr(next_hop: &str, c: &Call) -> Option<SocketAddr> {
    if matches!(c.peer_transport, Transport::Tcp(_)) || c.dialog.route_set.is_empty() {
        return None;
    }
    uri_socket_addr(next_hop)
}

/// The To tag of a stateless response: the same for every retransmission of the request
/// (§8.2.7), so it is derived from the request's identity rather than drawn at random.
pub(super) fn stateless_tag(req: &Request) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    (&req.call_id, &req.from.tag, req.cseq, &req.via.branch).hash(&mut h);
    format!("s{:x}", h.finish())
}

fn tx_key(req: &Request) -> TxKey {
    let method = match req.method {
        rsip::Method::Ack => "INVITE".to_string(),
        m => m.to_string(),
    };
    let sent_by = format!("{}:{}", req.via.host, req.via.port.unwrap_or(5060));
    match req.via.rfc3261_branch() {
        Some(b) => Arc::new((b.to_string(), sent_by, method)),
        // RFC 2543 peers: no usable branch, fall back to the §17.2.3 legacy identity.
        None => Arc::new((
            format!(
                "{}|{}|{}|{}",
                req.call_id,
                req.from.tag.as_deref().unwrap_or(""),
                req.cseq,
                req.via.raw
            ),
            sent_by,
            method,
        )),
    }
}
