//! The SIP user-agent core: a sans-IO value that owns every transaction and dialog of the process.
//!
//! The shell feeds it received messages (`handle_message`), the passing of time (`handle_timeout`)
//! and the calls' decisions (`ring`, `accept`, `reject`, `answer_reoffer`, `hangup`), then drains
//! [`Output`]s: bytes to transmit and [`CallEvent`]s for the call tasks. It applies the UAS rules of
//! RFC 3261 §8.2 (method and extension checks, merged requests), transaction matching (§17.2.3),
//! CANCEL (§9.2), dialog checks (§12.2.2) and the no-ACK rule (§13.3.1.4).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use rand::distr::Alphanumeric;
use tracing::{debug, info, warn};

use super::auth::{Algorithm, AuthError, DigestServer, parse_digest};
use super::dialog::{Dialog, uri_host_port};
use super::message::{
    ALLOW, Incoming, NameAddr, RawMessage, Rejection, Request, Response, ResponseBuilder,
    Transport, parse,
};
use super::registrar::{
    Binding, RegisterError, RegisterInput, Registrar, contact_header_values, parse_contacts,
};
use super::transaction::{
    InviteServerState, InviteServerTx, NonInviteClientTx, NonInviteServerTx, Timers, TxAction,
};

/// Identifies one call (one INVITE dialog) between the endpoint and its call task.
pub type CallRef = u64;

#[derive(Clone, Debug)]
pub struct EndpointConfig {
    pub timers: Timers,
    /// New INVITEs beyond this many live calls get 503.
    pub max_calls: usize,
    /// Who may REGISTER, and for how long.
    pub staff: StaffAuth,
    /// A monotonic instant and the Unix second it corresponds to: digest nonces carry Unix time,
    /// and the endpoint derives it from the `now` it is handed (so nonce staleness follows the
    /// same clock as every other timer, virtual in tests). `None`: the first instant the
    /// endpoint sees counts as Unix second 0, which is fine for nonces that only this process
    /// verifies.
    pub wall_clock: Option<(Instant, u64)>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            timers: Timers::default(),
            max_calls: 1000,
            staff: StaffAuth::default(),
            wall_clock: None,
        }
    }
}

/// How long a digest nonce stays fresh; an older one gets a `stale=true` re-challenge.
pub const NONCE_TTL: Duration = Duration::from_secs(300);

/// The registrar's settings: the digest realm, the staff credentials and the expiry bounds.
#[derive(Clone)]
pub struct StaffAuth {
    pub realm: String,
    /// User name → password. Empty: REGISTER is refused with 403.
    pub users: HashMap<String, String>,
    pub min_expires: u32,
    pub max_expires: u32,
    /// The challenge algorithms, one `WWW-Authenticate` each, in this order (RFC 8760 §2.4:
    /// most preferred first).
    pub algorithms: Vec<Algorithm>,
}

impl Default for StaffAuth {
    fn default() -> Self {
        StaffAuth {
            realm: "ivr".to_string(),
            users: HashMap::new(),
            min_expires: super::registrar::MIN_EXPIRES,
            max_expires: 3600,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        }
    }
}

impl std::fmt::Debug for StaffAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.users.keys().collect();
        users.sort();
        f.debug_struct("StaffAuth")
            .field("realm", &self.realm)
            .field("users", &users)
            .field("min_expires", &self.min_expires)
            .field("max_expires", &self.max_expires)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

#[derive(Debug, PartialEq)]
pub enum Output {
    Transmit {
        transport: Transport,
        to: SocketAddr,
        bytes: Bytes,
    },
    Event(CallRef, CallEvent),
}

/// What a new INVITE tells the call task.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingCall {
    pub call_id: String,
    pub from: NameAddr,
    pub to: NameAddr,
    pub request_uri: String,
    /// The SDP offer; empty for a late-offer INVITE (the answer then comes in the ACK).
    pub offer: Vec<u8>,
    pub source: SocketAddr,
    pub transport: Transport,
    /// Our address as the caller reached it (for Contact and SDP).
    pub local: SocketAddr,
    /// P-Asserted-Identity (RFC 3325), to be believed only from trusted proxies.
    pub asserted_identity: Option<NameAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    Incoming(Box<IncomingCall>),
    /// The caller ACKed our 2xx; `body` holds the SDP answer of a late-offer call.
    Confirmed {
        body: Vec<u8>,
    },
    /// An in-dialog offer (re-INVITE or UPDATE) to answer with `answer_reoffer`; empty for an
    /// offerless re-INVITE, which we answer with a fresh offer.
    ReOffer {
        offer: Vec<u8>,
    },
    /// A staff leg we dial: a provisional response (180 Ringing, 183 with early media).
    Progress {
        status: u16,
        body: Vec<u8>,
    },
    /// A staff leg we dial answered (2xx, already ACKed); `body` is its SDP answer.
    Answered {
        body: Vec<u8>,
    },
    /// SIP INFO inside the dialog (DTMF relay and the like).
    Info {
        content_type: Option<String>,
        body: Vec<u8>,
    },
    /// The call is over; no more events follow.
    Ended {
        reason: EndReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The caller sent BYE.
    RemoteBye,
    /// We sent BYE and it completed (or timed out).
    LocalBye,
    /// The caller sent CANCEL before we answered.
    Cancelled,
    /// No ACK for our 2xx within 64*T1: we sent BYE (§13.3.1.4).
    NoAck,
    /// We answered with this final non-2xx status.
    Rejected(u16),
    /// A leg we dialled got this final non-2xx status (486 busy, 603 declined, 487 after our
    /// CANCEL...).
    Declined(u16),
    /// A leg we dialled never answered our INVITE (timer B) or our CANCEL.
    NoResponse,
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::RemoteBye => write!(f, "caller hung up"),
            EndReason::LocalBye => write!(f, "we hung up"),
            EndReason::Cancelled => write!(f, "caller cancelled"),
            EndReason::NoAck => write!(f, "no ACK for 200 OK"),
            EndReason::Rejected(s) => write!(f, "rejected with {s}"),
            EndReason::Declined(s) => write!(f, "declined with {s}"),
            EndReason::NoResponse => write!(f, "no response"),
        }
    }
}

/// Transaction key per §17.2.3: branch, sent-by and method (ACK maps to INVITE).
type TxKey = (String, String, String);

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
}

enum ServerTxKind {
    Invite(InviteServerTx),
    NonInvite(NonInviteServerTx),
}

struct ServerTx {
    kind: ServerTxKind,
    raw: RawMessage,
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
    outputs: VecDeque<Output>,
    next_call: CallRef,
    draining: bool,
    registrar: Registrar,
    digest: DigestServer,
    /// See [`EndpointConfig::wall_clock`].
    wall_clock: Option<(Instant, u64)>,
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Self {
        let staff = &config.staff;
        let registrar = Registrar::new(staff.min_expires, staff.max_expires, staff.max_expires);
        let digest = DigestServer::with_random_secret(staff.realm.clone(), NONCE_TTL);
        Endpoint {
            registrar,
            digest,
            wall_clock: config.wall_clock,
            config,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            server_txs: HashMap::new(),
            client_txs: HashMap::new(),
            invite_client_txs: HashMap::new(),
            outputs: VecDeque::new(),
            next_call: 1,
            draining: false,
        }
    }

    /// Stop taking new calls (503) while live calls finish: graceful shutdown.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    pub fn live_calls(&self) -> usize {
        self.calls.len()
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
        !self.server_txs.is_empty()
            || !self.client_txs.is_empty()
            || !self.invite_client_txs.is_empty()
    }

    /// The earliest timer (transactions and registration expiry); the shell sleeps until then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.transaction_timeout()
            .into_iter()
            .chain(self.registrar.next_expiry())
            .min()
    }

    fn transaction_timeout(&self) -> Option<Instant> {
        let server = self.server_txs.values().filter_map(|t| match &t.kind {
            ServerTxKind::Invite(tx) => tx.next_deadline(),
            ServerTxKind::NonInvite(tx) => tx.next_deadline(),
        });
        let client = self
            .client_txs
            .values()
            .filter_map(|t| t.tx.next_deadline());
        let invites = self
            .invite_client_txs
            .values()
            .filter_map(|t| t.next_deadline());
        let cancels = self
            .calls
            .values()
            .filter_map(|c| c.outbound.as_ref()?.deadline());
        server.chain(client).chain(invites).chain(cancels).min()
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
            debug!(
                users_before = before,
                users_after = self.registrar.users().count(),
                "expired registrations purged"
            );
        }
        let due: Vec<TxKey> = self
            .server_txs
            .iter()
            .filter(|(_, t)| {
                let d = match &t.kind {
                    ServerTxKind::Invite(tx) => tx.next_deadline(),
                    ServerTxKind::NonInvite(tx) => tx.next_deadline(),
                };
                d.is_some_and(|d| d <= now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(t) = self.server_txs.get_mut(&key) else {
                continue;
            };
            let (actions, was_accepted) = match &mut t.kind {
                ServerTxKind::Invite(tx) => {
                    let accepted = tx.state() == InviteServerState::Accepted;
                    (tx.on_timeout(now), accepted)
                }
                ServerTxKind::NonInvite(tx) => (tx.on_timeout(now), false),
            };
            let call = t.call;
            let timed_out = self.apply_server_actions(&key, actions);
            if timed_out
                && was_accepted
                && let Some(call) = call
            {
                self.no_ack(now, call);
            }
        }
        let due: Vec<String> = self
            .client_txs
            .iter()
            .filter(|(_, t)| t.tx.next_deadline().is_some_and(|d| d <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(t) = self.client_txs.get_mut(&key) else {
                continue;
            };
            let actions = t.tx.on_timeout(now);
            self.apply_client_actions(&key, actions);
        }
        self.invite_client_timeouts(now);
        self.expire_cancelled_legs(now);
    }

    // ---- commands from call tasks ----

    /// Sends 180 Ringing (with our To tag: an early dialog).
    pub fn ring(&mut self, now: Instant, call: CallRef) {
        if let Some(c) = self.calls.get(&call)
            && c.state == CallState::Early
        {
            let key = c.invite_key.clone();
            self.respond_in_call(now, call, &key, 180, None);
        }
    }

    /// Answers the INVITE with 200 OK carrying `sdp`.
    pub fn accept(&mut self, now: Instant, call: CallRef, sdp: String) {
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
                        .and_then(|t| t.raw.header_str("CSeq"))
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
            CallState::Confirmed => self.send_bye(now, call),
            CallState::Ending => {}
        }
    }

    // ---- internals ----

    fn on_request(
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
                raw: req.raw.clone(),
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
            rsip::Method::Options => {
                self.respond_with(now, &key, 200, |b| {
                    b.header("Allow", ALLOW)
                        .header("Accept", "application/sdp")
                        .header("Accept-Language", "en")
                });
            }
            // BYE, INFO, UPDATE outside a dialog (§12.2.2).
            _ => self.respond_with(now, &key, 481, |b| b),
        }
    }

    fn on_new_invite(
        &mut self,
        now: Instant,
        req: Request,
        key: TxKey,
        source: SocketAddr,
        transport: Transport,
        local: SocketAddr,
    ) {
        // §8.2.2.2 merged request: same From tag, Call-ID and CSeq arriving by another path.
        let merged = self.calls.values().any(|c| {
            c.dialog.call_id == req.call_id
                && c.dialog.remote_tag == req.from.tag
                && c.invite_cseq == req.cseq
                && c.invite_key != key
        });
        if merged {
            self.respond_with(now, &key, 482, |b| b);
            return;
        }
        if self.draining || self.calls.len() >= self.config.max_calls {
            warn!(call_id = %req.call_id, live = self.calls.len(), "refusing call: at capacity or shutting down");
            self.respond_with(now, &key, 503, |b| b.header("Retry-After", "30"));
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
        // 100 Trying at once so the caller's timer A stops retransmitting (§17.2.1).
        self.respond_with(now, &key, 100, |b| b);
        let call = self.next_call;
        self.next_call += 1;
        let dialog = Dialog::uas(&req, &random_token(10));
        self.dialogs
            .insert((dialog.call_id.clone(), dialog.local_tag.clone()), call);
        if let Some(t) = self.server_txs.get_mut(&key) {
            t.call = Some(call);
        }
        info!(call_id = %req.call_id, from = %req.from.uri, to = %req.to.uri, %source, event = "invite", "incoming call");
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
            },
        );
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
        };
        self.outputs
            .push_back(Output::Event(call, CallEvent::Incoming(Box::new(incoming))));
    }

    fn on_in_dialog_request(&mut self, now: Instant, req: Request, key: &TxKey) {
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
                info!(call_id = %req.call_id, from = %c.from, to = %c.to, event = "bye", "caller hung up");
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

    fn on_ack(&mut self, now: Instant, req: &Request, key: &TxKey) {
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

    fn on_cancel(&mut self, now: Instant, req: &Request, cancel_key: &TxKey) {
        let invite_key = (
            cancel_key.0.clone(),
            cancel_key.1.clone(),
            "INVITE".to_string(),
        );
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
                    info!(call_id = %req.call_id, from = %c.from, to = %c.to, event = "cancel", "caller cancelled while ringing");
                }
                self.end_call(call, EndReason::Cancelled);
            }
        }
    }

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
        let actions = t.tx.on_response(now, resp.status);
        self.apply_client_actions(&branch, actions);
    }

    fn find_dialog(&self, req: &Request) -> Option<CallRef> {
        let tag = req.to.tag.clone()?;
        let call = *self.dialogs.get(&(req.call_id.clone(), tag))?;
        let c = self.calls.get(&call)?;
        c.dialog
            .matches(&req.call_id, &req.from, &req.to)
            .then_some(call)
    }

    fn send_bye(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
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
        let to = match c.outbound {
            Some(_) => uac::outbound_next_hop(&next_hop, c.source),
            None => next_hop_addr(&next_hop, c),
        };
        let transport = c.peer_transport;
        info!(call_id = %c.dialog.call_id, from = %c.from, to = %c.to, event = "bye_sent", "hanging up");
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
            },
        );
        self.apply_client_actions(&branch, actions);
    }

    fn no_ack(&mut self, now: Instant, call: CallRef) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        warn!(call_id = %c.dialog.call_id, from = %c.from, to = %c.to, event = "no_ack", "no ACK for 200 OK within 64*T1; sending BYE");
        self.send_bye(now, call);
        // The BYE runs on without the call: the caller is gone as far as we can tell.
        if let Some(t) = self.client_txs.values_mut().find(|t| t.call == Some(call)) {
            t.call = None;
        }
        self.end_call(call, EndReason::NoAck);
    }

    fn end_call(&mut self, call: CallRef, reason: EndReason) {
        if let Some(c) = self.calls.remove(&call) {
            self.dialogs
                .remove(&(c.dialog.call_id.clone(), c.dialog.local_tag.clone()));
            for t in self.server_txs.values_mut() {
                if t.call == Some(call) {
                    t.call = None;
                }
            }
            info!(call_id = %c.dialog.call_id, from = %c.from, to = %c.to, event = "dialog_ended", %reason, "dialog ended");
            self.outputs
                .push_back(Output::Event(call, CallEvent::Ended { reason }));
        }
    }

    /// A response that belongs to the call's dialog: carries our tag, Contact and Record-Route.
    fn respond_in_call(
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
        let mut b = ResponseBuilder::new(&t.raw, t.source, status, Some(&tag));
        // §12.1.1: copy Record-Route into dialog-establishing responses.
        for rr in t
            .raw
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("Record-Route"))
            .filter_map(|h| h.value_str())
        {
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
        let tag = match t.call.and_then(|c| self.calls.get(&c)) {
            Some(c) => c.dialog.local_tag.clone(),
            None => random_token(10),
        };
        let b = ResponseBuilder::new(&t.raw, t.source, status, Some(&tag));
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
                TxAction::Timeout => self.bye_done(branch),
                TxAction::Terminated => {
                    self.client_txs.remove(branch);
                }
            }
        }
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

/// Resolves the next hop of an in-dialog request without DNS: over TCP, or with no route set, we
/// reuse the flow the INVITE came on (works through NAT, RFC 5626 spirit); otherwise the first
/// route's address when it is an IP literal, else that same flow.
fn next_hop_addr(next_hop: &str, c: &Call) -> SocketAddr {
    if matches!(c.peer_transport, Transport::Tcp(_)) || c.dialog.route_set.is_empty() {
        return c.source;
    }
    uri_host_port(next_hop)
        .and_then(|(host, port)| {
            let ip = host
                .trim_matches(|ch| ch == '[' || ch == ']')
                .parse()
                .ok()?;
            Some(SocketAddr::new(ip, port.unwrap_or(5060)))
        })
        .unwrap_or(c.source)
}

fn tx_key(req: &Request) -> TxKey {
    let method = match req.method {
        rsip::Method::Ack => "INVITE".to_string(),
        m => m.to_string(),
    };
    let sent_by = format!("{}:{}", req.via.host, req.via.port.unwrap_or(5060));
    match req.via.rfc3261_branch() {
        Some(b) => (b.to_string(), sent_by, method),
        // RFC 2543 peers: no usable branch, fall back to the §17.2.3 legacy identity.
        None => (
            format!(
                "{}|{}|{}|{}",
                req.call_id,
                req.from.tag.as_deref().unwrap_or(""),
                req.cseq,
                req.via.raw
            ),
            sent_by,
            method,
        ),
    }
}

pub fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[path = "endpoint_register.rs"]
mod register;

#[path = "endpoint_uac.rs"]
mod uac;
pub use uac::{Credentials, OutboundCall};

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
