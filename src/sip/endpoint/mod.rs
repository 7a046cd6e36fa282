//! The SIP user-agent core: a sans-IO value that owns every transaction and dialog of the process.
//!
//! The shell feeds it received messages (`handle_message`), the passing of time (`handle_timeout`)
//! and the calls' decisions (`ring`, `accept`, `reject`, `answer_reoffer`, `hangup`), then drains
//! [`Output`]s: bytes to transmit and [`CallEvent`]s for the call tasks. It applies the UAS rules of
//! RFC 3261 §8.2 (method and extension checks, merged requests), transaction matching (§17.2.3),
//! CANCEL (§9.2), dialog checks (§12.2.2) and the no-ACK rule (§13.3.1.4).
//! Received requests (new INVITEs, in-dialog requests, ACK, CANCEL) and BYE: `dialog_requests.rs`;
//! REGISTER: `register.rs`; the legs we dial: `uac.rs`; settings: `config.rs`; outputs and events:
//! `events.rs`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rand::Rng;
use rand::distr::Alphanumeric;
use tracing::{debug, info, warn};

use super::admission::{Admission, Verdict, Work};
use super::auth::{AuthError, DigestServer, Gatekeeper, parse_digest};
use super::dialog::{Dialog, uri_host_port};
use super::message::{
    ALLOW, Incoming, RawMessage, Rejection, Request, Response, ResponseBuilder, Transport, parse,
};
use super::registrar::{
    Binding, RegisterError, RegisterInput, Registrar, contact_header_values, parse_contacts,
};
mod config;
mod connections;
mod events;
mod gate;

pub use config::{EndpointConfig, NONCE_TTL, StaffAuth};
pub use events::{CallEvent, CallRef, EndReason, IncomingCall, Output};

use super::LogThrottle;
use super::transaction::{
    InviteServerState, InviteServerTx, NonInviteClientState, NonInviteClientTx,
    NonInviteServerState, NonInviteServerTx, TimerQueue, TxAction,
};

/// Transaction key per §17.2.3: branch, sent-by and method (ACK maps to INVITE). Shared, so the
/// call, the timer queue and the table hold one copy.
type TxKey = Arc<(String, String, String)>;

/// Whose timer a [`TimerQueue`] entry is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum TimerKey {
    Server(TxKey),
    /// A non-INVITE client transaction (BYE, CANCEL), by its table key.
    Client(String),
    /// An INVITE client transaction, by branch.
    InviteClient(String),
    /// A leg we CANCELled: give up on it if no final response came in 64*T1.
    CancelGiveUp(CallRef),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// Our INVITE to a staff phone is out, no final response yet.
    Calling,
    Early,
    /// 2xx sent, waiting for the ACK; `hangup_pending` when the call task already wants out.
    Answered {
        hangup_pending: bool,
    },
    Confirmed,
    /// Our BYE is in flight.
    Ending,
}

struct Call {
    dialog: Dialog,
    invite_key: TxKey,
    state: CallState,
    peer_transport: Transport,
    /// Where the INVITE came from: the flow we reuse for in-dialog requests.
    source: SocketAddr,
    local: SocketAddr,
    /// A pending re-INVITE or UPDATE waiting for the call task's answer.
    reoffer: Option<TxKey>,
    /// 2xx responses (by INVITE CSeq) still waiting for their ACK.
    awaiting_ack: Vec<(u32, TxKey)>,
    /// From-tag/CSeq of the INVITE, for merged-request detection (§8.2.2.2).
    invite_cseq: u32,
    /// Caller and callee URIs, for the call log.
    from: String,
    to: String,
    /// Set for the legs we dial (UAC).
    outbound: Option<Box<uac::Outbound>>,
    /// An incoming call whose task has not yet rung, answered or rejected it.
    setup_pending: bool,
    /// An incoming call not yet confirmed by ACK: it counts against its source's half-open cap.
    half_open: bool,
}

enum ServerTxKind {
    Invite(InviteServerTx),
    NonInvite(NonInviteServerTx),
}

impl ServerTxKind {
    fn next_deadline(&self) -> Option<Instant> {
        match self {
            ServerTxKind::Invite(tx) => tx.next_deadline(),
            ServerTxKind::NonInvite(tx) => tx.next_deadline(),
        }
    }

    /// Whether the final response has been sent: the TU may send nothing more, so the request
    /// need not be kept (retransmissions are answered from the response bytes).
    fn final_sent(&self) -> bool {
        match self {
            ServerTxKind::Invite(tx) => tx.state() != InviteServerState::Proceeding,
            ServerTxKind::NonInvite(tx) => !matches!(
                tx.state(),
                NonInviteServerState::Trying | NonInviteServerState::Proceeding
            ),
        }
    }
}

struct ServerTx {
    kind: ServerTxKind,
    /// The request, to build responses from; dropped once the final response is out (a UDP
    /// transaction lives 32 s after that, and thousands of them would otherwise keep every
    /// request).
    raw: Option<RawMessage>,
    source: SocketAddr,
    transport: Transport,
    /// Where responses go (§18.2.2).
    reply_to: SocketAddr,
    call: Option<CallRef>,
}

struct ClientTx {
    tx: NonInviteClientTx,
    to: SocketAddr,
    transport: Transport,
    call: Option<CallRef>,
    /// Set for requests a shell sent through [`Endpoint::send_request`] (trunk REGISTERs): the
    /// final response or timeout is reported back under this reference.
    request: Option<requests::RequestRef>,
}

/// Requests the endpoint refused (503) or dropped unanswered, by why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refused {
    /// Out-of-dialog requests over their source's rate (`sip.limits`).
    pub rate: u64,
    /// INVITEs over their source's cap on half-open calls.
    pub half_open: u64,
    /// New calls refused because the line is full, setups are pending, or it is shutting down.
    pub overload: u64,
}

pub struct Endpoint {
    config: EndpointConfig,
    calls: HashMap<CallRef, Call>,
    /// (Call-ID, our tag) → call.
    dialogs: HashMap<(String, String), CallRef>,
    server_txs: HashMap<TxKey, ServerTx>,
    client_txs: HashMap<String, ClientTx>,
    /// INVITEs we sent, by branch.
    invite_client_txs: HashMap<String, uac::InviteClient>,
    /// Every transaction timer and CANCEL give-up deadline, earliest first.
    timers: TimerQueue<TimerKey>,
    /// Call-ID → the calls (normally one) with it: merged-request checks and stray 2xx
    /// retransmissions look here instead of at every call.
    by_call_id: HashMap<String, Vec<CallRef>>,
    outputs: VecDeque<Output>,
    next_call: CallRef,
    /// Calls with `setup_pending` (see [`EndpointConfig::max_pending_setups`]).
    pending_setups: usize,
    /// New calls refused with 503 since the last log line about it.
    shed: LogThrottle,
    /// Per-source limits on out-of-dialog requests.
    admission: Admission,
    /// Requests refused or dropped by `admission` since the last log line about it.
    limited: LogThrottle,
    /// Requests for hosts that are not ours since the last log line about it.
    foreign: LogThrottle,
    draining: bool,
    /// Requests refused or dropped since the shell last took the counts (for the metrics).
    refused: Refused,
    registrar: Registrar,
    /// The bindings changed since the shell last took them (see `take_registrations`).
    registrations_changed: bool,
    auth: Gatekeeper,
    /// See [`EndpointConfig::wall_clock`].
    wall_clock: Option<(Instant, u64)>,
    /// Outcomes of [`Endpoint::send_request`] requests, for `poll_request_outcome`.
    request_outcomes: VecDeque<(requests::RequestRef, requests::RequestOutcome)>,
    next_request: requests::RequestRef,
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Self {
        let staff = &config.staff;
        let registrar = Registrar::new(staff.min_expires, staff.max_expires, staff.max_expires);
        let digest = DigestServer::with_random_secret(staff.realm.clone(), NONCE_TTL);
        let admission = Admission::new(config.admission.clone());
        let auth = Gatekeeper::new(digest, staff.lockout);
        Endpoint {
            registrar,
            registrations_changed: true,
            auth,
            wall_clock: config.wall_clock,
            config,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            server_txs: HashMap::new(),
            client_txs: HashMap::new(),
            invite_client_txs: HashMap::new(),
            timers: TimerQueue::new(),
            by_call_id: HashMap::new(),
            outputs: VecDeque::new(),
            next_call: 1,
            pending_setups: 0,
            shed: LogThrottle::default(),
            admission,
            limited: LogThrottle::default(),
            foreign: LogThrottle::default(),
            draining: false,
            refused: Refused::default(),
            request_outcomes: VecDeque::new(),
            next_request: 1,
        }
    }

    /// Stop taking new calls (503) while live calls finish: graceful shutdown.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Requests refused or dropped since the last call.
    pub fn take_refused(&mut self) -> Refused {
        std::mem::take(&mut self.refused)
    }

    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// Calls whose task has not answered them yet.
    pub fn pending_setups(&self) -> usize {
        self.pending_setups
    }

    /// The call's task has decided (rung, answered or rejected) or the call is gone.
    fn setup_done(&mut self, call: CallRef) {
        if let Some(c) = self.calls.get_mut(&call)
            && c.setup_pending
        {
            c.setup_pending = false;
            self.pending_setups -= 1;
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// A user's live registered contacts, highest q first (for the dial step).
    pub fn contacts(&self, now: Instant, user: &str) -> Vec<Binding> {
        self.registrar
            .contacts(now, user)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Whether any transaction is still running (responses or BYEs to retransmit); unlike
    /// [`poll_timeout`](Self::poll_timeout) this ignores registration expiry, so a draining
    /// shell knows when it may exit.
    pub fn transactions_pending(&self) -> bool {
        self.transactions() > 0
    }

    /// Whether requests we sent (BYE, CANCEL, INVITE legs) still wait for a final response: a
    /// shutting-down shell waits for these, not for server transactions that only absorb
    /// retransmissions.
    pub fn requests_in_flight(&self) -> bool {
        // A UDP transaction that has its final response lingers in Completed (timer K) only to
        // absorb retransmissions: not in flight.
        self.client_txs.values().any(|t| {
            matches!(
                t.tx.state(),
                NonInviteClientState::Trying | NonInviteClientState::Proceeding
            )
        }) || !self.invite_client_txs.is_empty()
    }

    /// The earliest timer (transactions and registration expiry); the shell sleeps until then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers
            .next()
            .into_iter()
            .chain(self.registrar.next_expiry())
            .min()
    }

    /// Live transactions (server, client and INVITE client), for metrics and tests.
    pub fn transactions(&self) -> usize {
        self.server_txs.len() + self.client_txs.len() + self.invite_client_txs.len()
    }

    /// One complete message from `source` over `transport`, received on our address `local`.
    pub fn handle_message(
        &mut self,
        now: Instant,
        buf: &[u8],
        source: SocketAddr,
        transport: Transport,
        local: SocketAddr,
    ) {
        match parse(buf) {
            Ok(Incoming::Request(req)) => self.on_request(now, *req, source, transport, local),
            Ok(Incoming::Response(resp)) => self.on_response(now, *resp),
            Err(Rejection::Respond {
                status,
                reason,
                raw,
            }) => {
                warn!(%source, status, %reason, "rejecting malformed request");
                let via = raw
                    .vias()
                    .first()
                    .and_then(|v| super::message::Via::parse(v).ok());
                let reply_to = match (transport, via) {
                    (Transport::Udp, Some(v)) => v.response_target(source),
                    _ => source,
                };
                let mut b = ResponseBuilder::with_reason(&raw, source, status, &reason, None);
                if status == 501 {
                    b = b.header("Allow", ALLOW);
                }
                // Echo the reason where tools show it, and in the standard place (RFC 3326 style).
                b = b.header(
                    "Warning",
                    &format!("399 ivr \"{}\"", reason.replace('"', "'")),
                );
                self.transmit(transport, reply_to, b.build());
            }
            Err(Rejection::Drop(e)) => {
                warn!(%source, error = %e, "dropping unparseable message");
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.registrar.next_expiry().is_some_and(|d| d <= now) {
            let before: usize = self.registrar.users().count();
            self.registrar.expire(now);
            self.registrations_changed = true;
            debug!(
                users_before = before,
                users_after = self.registrar.users().count(),
                "expired registrations purged"
            );
        }
        while let Some(key) = self.timers.pop_due(now) {
            match key {
                TimerKey::Server(key) => self.server_timeout(now, &key),
                TimerKey::Client(key) => {
                    if let Some(t) = self.client_txs.get_mut(&key) {
                        let actions = t.tx.on_timeout(now);
                        self.apply_client_actions(&key, actions);
                    }
                }
                TimerKey::InviteClient(branch) => self.invite_client_timeout(now, &branch),
                TimerKey::CancelGiveUp(call) => self.give_up_cancelled_leg(call),
            }
        }
    }

    fn server_timeout(&mut self, now: Instant, key: &TxKey) {
        let Some(t) = self.server_txs.get_mut(key) else {
            return;
        };
        let (actions, was_accepted) = match &mut t.kind {
            ServerTxKind::Invite(tx) => {
                let accepted = tx.state() == InviteServerState::Accepted;
                (tx.on_timeout(now), accepted)
            }
            ServerTxKind::NonInvite(tx) => (tx.on_timeout(now), false),
        };
        let call = t.call;
        let timed_out = self.apply_server_actions(key, actions);
        if timed_out
            && was_accepted
            && let Some(call) = call
        {
            self.no_ack(now, call);
        }
    }

    // ---- commands from call tasks ----

    /// Sends 180 Ringing (with our To tag: an early dialog).
    pub fn ring(&mut self, now: Instant, call: CallRef) {
        self.setup_done(call);
        if let Some(c) = self.calls.get(&call)
            && c.state == CallState::Early
        {
            let key = c.invite_key.clone();
            self.respond_in_call(now, call, &key, 180, None);
        }
    }

    /// Answers the INVITE with 200 OK carrying `sdp`.
    pub fn accept(&mut self, now: Instant, call: CallRef, sdp: String) {
        self.setup_done(call);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.state != CallState::Early {
            return;
        }
        c.state = CallState::Answered {
            hangup_pending: false,
        };
        let key = c.invite_key.clone();
        c.awaiting_ack.push((c.invite_cseq, key.clone()));
        self.respond_in_call(now, call, &key, 200, Some(sdp));
    }

    /// Refuses the INVITE with a final status (488 with a Warning for SDP trouble, 486, 503...).
    pub fn reject(&mut self, now: Instant, call: CallRef, status: u16, warning: Option<&str>) {
        self.setup_done(call);
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.state != CallState::Early {
            return;
        }
        let key = c.invite_key.clone();
        self.respond_with(now, &key, status, |b| match warning {
            Some(w) => b.header("Warning", &format!("399 ivr \"{}\"", w.replace('"', "'"))),
            None => b,
        });
        self.end_call(call, EndReason::Rejected(status));
    }

    /// Answers a pending re-INVITE/UPDATE: `Ok(sdp)` → 200 with it, `Err((status, why))` → status.
    pub fn answer_reoffer(
        &mut self,
        now: Instant,
        call: CallRef,
        answer: Result<String, (u16, String)>,
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(key) = c.reoffer.take() else {
            return;
        };
        match answer {
            Ok(sdp) => {
                if key.2 == "INVITE" {
                    let cseq = self
                        .server_txs
                        .get(&key)
                        .and_then(|t| t.raw.as_ref()?.header_str("CSeq"))
                        .and_then(|c| c.split_whitespace().next()?.parse().ok())
                        .unwrap_or(0);
                    c.awaiting_ack.push((cseq, key.clone()));
                }
                self.respond_in_call(now, call, &key, 200, Some(sdp));
            }
            Err((status, why)) => {
                self.respond_with(now, &key, status, |b| {
                    b.header("Warning", &format!("399 ivr \"{}\"", why.replace('"', "'")))
                });
            }
        }
    }

    /// Ends the call from our side: BYE once confirmed, a final 480 while still ringing.
    pub fn hangup(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        match c.state {
            CallState::Calling => self.cancel_outbound(now, call),
            CallState::Early => self.reject(now, call, 480, None),
            // §15: no BYE before the ACK (or its timeout); the ACK handler sends it.
            CallState::Answered { .. } => {
                c.state = CallState::Answered {
                    hangup_pending: true,
                }
            }
            CallState::Confirmed => {
                self.send_bye(now, call);
            }
            CallState::Ending => {}
        }
    }

    // ---- internals ----

    fn on_response(&mut self, now: Instant, resp: Response) {
        if resp.cseq_method == "INVITE" {
            self.on_invite_response(now, resp);
            return;
        }
        let Some(mut branch) = resp.via.branch.clone() else {
            return;
        };
        if resp.cseq_method == "CANCEL" {
            branch.push_str("|CANCEL");
        }
        let Some(t) = self.client_txs.get_mut(&branch) else {
            debug!(call_id = %resp.call_id, status = resp.status, "stray response dropped");
            return;
        };
        let status = resp.status;
        let actions = t.tx.on_response(now, status);
        if status >= 200
            && actions.contains(&TxAction::Response(status))
            && let Some(id) = t.request.take()
        {
            self.request_outcomes
                .push_back((id, requests::RequestOutcome::Response(Box::new(resp))));
        }
        self.apply_client_actions(&branch, actions);
    }

    fn respond_with(
        &mut self,
        now: Instant,
        key: &TxKey,
        status: u16,
        extra: impl FnOnce(ResponseBuilder) -> ResponseBuilder,
    ) {
        let Some(t) = self.server_txs.get(key) else {
            return;
        };
        let Some(raw) = &t.raw else {
            debug!(status, "response after the final one dropped");
            return;
        };
        let tag = match t.call.and_then(|c| self.calls.get(&c)) {
            Some(c) => c.dialog.local_tag.clone(),
            None => random_token(10),
        };
        let b = ResponseBuilder::new(raw, t.source, status, Some(&tag));
        self.send_response(now, key, status, extra(b).build());
    }

    fn send_response(&mut self, now: Instant, key: &TxKey, status: u16, bytes: Vec<u8>) {
        let Some(t) = self.server_txs.get_mut(key) else {
            return;
        };
        let actions = match &mut t.kind {
            ServerTxKind::Invite(tx) => tx.respond(now, status, Bytes::from(bytes)),
            ServerTxKind::NonInvite(tx) => tx.respond(now, status, Bytes::from(bytes)),
        };
        self.apply_server_actions(key, actions);
    }

    /// Carries out a server transaction's actions; true when it timed out.
    fn apply_server_actions(&mut self, key: &TxKey, actions: Vec<TxAction>) -> bool {
        let mut timed_out = false;
        for a in actions {
            match a {
                TxAction::Transmit(bytes) => {
                    if let Some(t) = self.server_txs.get(key) {
                        self.outputs.push_back(Output::Transmit {
                            transport: t.transport,
                            to: t.reply_to,
                            bytes,
                        });
                    }
                }
                TxAction::Timeout => timed_out = true,
                TxAction::Terminated => {
                    self.server_txs.remove(key);
                }
                TxAction::Response(_) => {}
            }
        }
        let deadline = match self.server_txs.get_mut(key) {
            Some(t) => {
                if t.raw.is_some() && t.kind.final_sent() {
                    t.raw = None;
                }
                t.kind.next_deadline()
            }
            None => None,
        };
        self.timers.set(&TimerKey::Server(key.clone()), deadline);
        timed_out
    }

    fn apply_client_actions(&mut self, branch: &str, actions: Vec<TxAction>) {
        for a in actions {
            match a {
                TxAction::Transmit(bytes) => {
                    if let Some(t) = self.client_txs.get(branch) {
                        self.outputs.push_back(Output::Transmit {
                            transport: t.transport,
                            to: t.to,
                            bytes,
                        });
                    }
                }
                // Any final response or a timeout ends the dialog for a BYE (§15.1.1).
                TxAction::Response(status) if status >= 200 => self.bye_done(branch),
                TxAction::Response(_) => {}
                TxAction::Timeout => {
                    if let Some(id) = self
                        .client_txs
                        .get_mut(branch)
                        .and_then(|t| t.request.take())
                    {
                        self.request_outcomes
                            .push_back((id, requests::RequestOutcome::Timeout));
                    }
                    self.bye_done(branch)
                }
                TxAction::Terminated => {
                    self.client_txs.remove(branch);
                }
            }
        }
        let deadline = self
            .client_txs
            .get(branch)
            .and_then(|t| t.tx.next_deadline());
        self.timers
            .set(&TimerKey::Client(branch.to_string()), deadline);
    }

    fn bye_done(&mut self, branch: &str) {
        if let Some(call) = self.client_txs.get_mut(branch).and_then(|t| t.call.take()) {
            self.end_call(call, EndReason::LocalBye);
        }
    }

    fn transmit(&mut self, transport: Transport, to: SocketAddr, bytes: Vec<u8>) {
        self.outputs.push_back(Output::Transmit {
            transport,
            to,
            bytes: Bytes::from(bytes),
        });
    }
}

pub fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

mod dialog_requests;

mod register;

mod requests;
pub use requests::{RequestOutcome, RequestRef};

mod uac;
pub use uac::{Credentials, OutboundCall};

#[cfg(test)]
mod gate_tests;
#[cfg(test)]
mod scale_tests;
#[cfg(test)]
mod tests;
