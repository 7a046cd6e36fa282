//! RFC 3261 §17 transaction state machines, with the RFC 6026 "Accepted" state for INVITE server
//! transactions.
//!
//! Sans-IO: every method takes `now` and returns [`TxAction`]s; the shell sends the bytes, sleeps
//! until [`next_deadline`](InviteServerTx::next_deadline) and calls `on_timeout`. Messages are
//! already serialized (`Bytes`), so a retransmission is a cheap clone. Matching an incoming message
//! to its transaction (branch, method, sent-by) is the endpoint's job, not this module's: here we
//! only keep the state and the timers.
//!
//! Timer names follow RFC 3261 §17 / Table 4 (A–K) and RFC 6026 (L).

use std::time::{Duration, Instant};

use bytes::Bytes;

/// The RFC 3261 timer base values (Table 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate: first retransmission interval.
    pub t1: Duration,
    /// Maximum retransmission interval for non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// Maximum time a message stays in the network.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64*T1: timers B, F, H, J and L (32 s with the defaults).
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Timer D: how long an INVITE client transaction absorbs retransmitted non-2xx finals over
/// an unreliable transport. A fixed "at least 32 s" in RFC 3261 Table 4, not a multiple of T1:
/// it covers the server's timer H whatever T1 the server uses.
const TIMER_D: Duration = Duration::from_secs(32);

/// What the shell must do after feeding an event to a transaction.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum TxAction {
    /// Send these bytes (again) to the transaction's peer.
    Transmit(Bytes),
    /// The transaction failed (no ACK before timer H/L, no final response before timer B/F): tell
    /// the TU. Always followed by `Terminated`.
    Timeout,
    /// The transaction is over: remove it from the endpoint's table.
    Terminated,
    /// Client transactions only: pass this response (status code) up to the TU.
    Response(u16),
}

/// Response classes, so the state machines match on meaning rather than on number ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Provisional,
    Success,
    Failure,
}

fn classify(status: u16) -> Option<Class> {
    match status {
        100..=199 => Some(Class::Provisional),
        200..=299 => Some(Class::Success),
        300..=699 => Some(Class::Failure),
        _ => None,
    }
}

/// A retransmission timer (A, E, G, or the 2xx retransmission of §13.3.1.4): fires at `at`, then
/// the interval doubles, capped at `cap` when there is one.
#[derive(Clone, Copy, Debug)]
struct Retransmit {
    at: Instant,
    interval: Duration,
    cap: Option<Duration>,
}

impl Retransmit {
    fn new(now: Instant, first: Duration, cap: Option<Duration>) -> Self {
        Self {
            at: now + first,
            interval: first,
            cap,
        }
    }

    /// Schedule the next firing. The next deadline is computed from the previous *deadline*, not
    /// from `now`, so the schedule stays exact even if the shell wakes up a little late; if it
    /// woke up very late, the missed firings collapse into the one just made (a burst of
    /// identical retransmissions would help nobody).
    fn advance(&mut self, now: Instant) {
        while self.at <= now {
            let doubled = self.interval.saturating_mul(2);
            self.interval = match self.cap {
                Some(cap) => doubled.min(cap),
                None => doubled,
            };
            self.at += self.interval;
        }
    }

    /// From now on every interval is `d` (timer E in Proceeding: "reset with a value of T2").
    /// The firing already scheduled is kept.
    fn pin(&mut self, d: Duration) {
        self.interval = d;
        self.cap = Some(d);
    }
}

fn due(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| d <= now)
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

// ---------------------------------------------------------------------------------------------
// INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1)
// ---------------------------------------------------------------------------------------------

/// States of an INVITE server transaction (RFC 3261 Figure 7 as amended by RFC 6026 Figure 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteServerState {
    Proceeding,
    Completed,
    Accepted,
    Confirmed,
    Terminated,
}

/// INVITE server transaction.
///
/// Deviation from the letter of RFC 3261, on purpose: the 2xx retransmission that §13.3.1.4 gives
/// to the UAS core lives here, in the Accepted state, because it is the same kind of timer as G
/// and the TU then has nothing to schedule. It runs over UDP *and* TCP (it is end-to-end: a proxy
/// on the path may be on UDP).
///
/// After the ACK for a 2xx the transaction stays in Accepted, silent, until timer L (64*T1 after
/// the 2xx) and then terminates: keeping it lets the endpoint match late INVITE and ACK
/// retransmissions to it instead of mistaking them for a new call (the reason RFC 6026 added the
/// state). `on_ack` itself returns no action; use [`is_acked`](Self::is_acked) before calling it to
/// tell the first ACK (which the dialog wants) from a retransmitted one.
#[derive(Debug)]
pub struct InviteServerTx {
    reliable: bool,
    timers: Timers,
    state: InviteServerState,
    last_response: Option<Bytes>,
    /// Timer G (Completed) or the 2xx retransmission (Accepted, until ACKed).
    retransmit: Option<Retransmit>,
    /// Timer H (Completed), L (Accepted) or I (Confirmed).
    end: Option<Instant>,
    acked: bool,
}

impl InviteServerTx {
    /// A transaction for an INVITE just received; `reliable` is the transport it arrived on.
    pub fn new(reliable: bool, timers: Timers) -> Self {
        Self {
            reliable,
            timers,
            state: InviteServerState::Proceeding,
            last_response: None,
            retransmit: None,
            end: None,
            acked: false,
        }
    }

    /// The TU sends a response. Yields `Transmit(bytes)`; a final response also moves the state
    /// (2xx → Accepted, 3xx–6xx → Completed) and starts its timers.
    ///
    /// A response the state does not allow (anything after a non-2xx final, a non-2xx after a
    /// 2xx, a status outside 100–699) is a TU bug: it is logged and dropped rather than sent,
    /// because sending it would confuse the peer's transaction. A further 2xx in Accepted is sent
    /// (RFC 6026 lets the TU retransmit it) and replaces the one being retransmitted.
    pub fn respond(&mut self, now: Instant, status: u16, bytes: Bytes) -> Vec<TxAction> {
        let class = classify(status);
        match (self.state, class) {
            (InviteServerState::Proceeding, Some(Class::Provisional)) => {}
            (InviteServerState::Proceeding, Some(Class::Success)) => {
                self.state = InviteServerState::Accepted;
                let cap = Some(self.timers.t2);
                self.retransmit = Some(Retransmit::new(now, self.timers.t1, cap));
                self.end = Some(now + self.timers.t1x64());
            }
            (InviteServerState::Proceeding, Some(Class::Failure)) => {
                self.state = InviteServerState::Completed;
                // Timer G only over unreliable transports: TCP/TLS deliver the response.
                if !self.reliable {
                    let cap = Some(self.timers.t2);
                    self.retransmit = Some(Retransmit::new(now, self.timers.t1, cap));
                }
                self.end = Some(now + self.timers.t1x64());
            }
            (InviteServerState::Accepted, Some(Class::Success)) => {}
            (state, _) => {
                tracing::warn!(
                    ?state,
                    status,
                    "INVITE server transaction: response dropped"
                );
                return Vec::new();
            }
        }
        self.last_response = Some(bytes.clone());
        vec![TxAction::Transmit(bytes)]
    }

    /// A retransmission of the INVITE arrived and was matched to this transaction: resend the
    /// last response (the peer evidently lost it). Nothing before the first response, and nothing
    /// once the final response has been ACKed (the peer has it; a late duplicate is absorbed).
    pub fn on_request_retransmission(&mut self, _now: Instant) -> Vec<TxAction> {
        let resend = match self.state {
            InviteServerState::Proceeding | InviteServerState::Completed => true,
            InviteServerState::Accepted => !self.acked,
            InviteServerState::Confirmed | InviteServerState::Terminated => false,
        };
        match (&self.last_response, resend) {
            (Some(bytes), true) => vec![TxAction::Transmit(bytes.clone())],
            _ => Vec::new(),
        }
    }

    /// An ACK arrived for this transaction. Stops the retransmissions.
    ///
    /// - Completed (non-2xx final): → Confirmed; timer I (T4 unreliable); over a reliable
    ///   transport timer I is zero, so this returns `[Terminated]` at once.
    /// - Accepted (2xx): stays Accepted, absorbing retransmissions, until timer L (see the type
    ///   docs); returns nothing.
    /// - Anywhere else the ACK is absorbed.
    pub fn on_ack(&mut self, now: Instant) -> Vec<TxAction> {
        match self.state {
            InviteServerState::Completed => {
                self.acked = true;
                self.retransmit = None;
                if self.reliable {
                    self.terminate();
                    vec![TxAction::Terminated]
                } else {
                    self.state = InviteServerState::Confirmed;
                    self.end = Some(now + self.timers.t4);
                    Vec::new()
                }
            }
            InviteServerState::Accepted => {
                // Timer L keeps running from the 2xx: it bounds the absorbing period.
                self.acked = true;
                self.retransmit = None;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Fire every timer whose deadline is `<= now`.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<TxAction> {
        // The ending timer first: once the transaction is over, a retransmission due at the same
        // instant is moot.
        if due(self.end, now) {
            let timed_out = match self.state {
                // Timer H: the ACK never came.
                InviteServerState::Completed => true,
                // Timer L: a failure only if the 2xx was never ACKed.
                InviteServerState::Accepted => !self.acked,
                _ => false,
            };
            self.terminate();
            return if timed_out {
                vec![TxAction::Timeout, TxAction::Terminated]
            } else {
                vec![TxAction::Terminated]
            };
        }
        let mut out = Vec::new();
        if let Some(r) = &mut self.retransmit
            && r.at <= now
        {
            r.advance(now);
            if let Some(bytes) = &self.last_response {
                out.push(TxAction::Transmit(bytes.clone()));
            }
        }
        out
    }

    /// When `on_timeout` should next be called, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        earliest(self.retransmit.map(|r| r.at), self.end)
    }

    pub fn state(&self) -> InviteServerState {
        self.state
    }

    /// Whether an ACK has been received for the final response.
    pub fn is_acked(&self) -> bool {
        self.acked
    }

    fn terminate(&mut self) {
        self.state = InviteServerState::Terminated;
        self.retransmit = None;
        self.end = None;
    }
}

// ---------------------------------------------------------------------------------------------
// Non-INVITE server transaction (RFC 3261 §17.2.2)
// ---------------------------------------------------------------------------------------------

/// States of a non-INVITE server transaction (RFC 3261 Figure 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonInviteServerState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// Non-INVITE server transaction (BYE, OPTIONS, INFO... received). It never retransmits on its
/// own: the client retransmits its request and we answer each copy with the last response.
#[derive(Debug)]
pub struct NonInviteServerTx {
    reliable: bool,
    timers: Timers,
    state: NonInviteServerState,
    last_response: Option<Bytes>,
    /// Timer J (Completed).
    end: Option<Instant>,
}

impl NonInviteServerTx {
    pub fn new(reliable: bool, timers: Timers) -> Self {
        Self {
            reliable,
            timers,
            state: NonInviteServerState::Trying,
            last_response: None,
            end: None,
        }
    }

    /// The TU sends a response: `Transmit(bytes)`. A final response moves to Completed with timer
    /// J (64*T1 unreliable); over a reliable transport J is zero, so `Terminated` follows at once.
    /// Responses after the final one are TU bugs: logged and dropped.
    pub fn respond(&mut self, now: Instant, status: u16, bytes: Bytes) -> Vec<TxAction> {
        let class = classify(status);
        let mut out = Vec::new();
        match (self.state, class) {
            (
                NonInviteServerState::Trying | NonInviteServerState::Proceeding,
                Some(Class::Provisional),
            ) => {
                self.state = NonInviteServerState::Proceeding;
                out.push(TxAction::Transmit(bytes.clone()));
            }
            (
                NonInviteServerState::Trying | NonInviteServerState::Proceeding,
                Some(Class::Success | Class::Failure),
            ) => {
                out.push(TxAction::Transmit(bytes.clone()));
                if self.reliable {
                    self.state = NonInviteServerState::Terminated;
                    out.push(TxAction::Terminated);
                } else {
                    self.state = NonInviteServerState::Completed;
                    self.end = Some(now + self.timers.t1x64());
                }
            }
            (state, _) => {
                tracing::warn!(
                    ?state,
                    status,
                    "non-INVITE server transaction: response dropped"
                );
                return out;
            }
        }
        self.last_response = Some(bytes);
        out
    }

    /// A retransmission of the request arrived: resend the last response (Proceeding or
    /// Completed); in Trying the TU has not answered yet, so there is nothing to send.
    pub fn on_request_retransmission(&mut self, _now: Instant) -> Vec<TxAction> {
        match (self.state, &self.last_response) {
            (NonInviteServerState::Proceeding | NonInviteServerState::Completed, Some(bytes)) => {
                vec![TxAction::Transmit(bytes.clone())]
            }
            _ => Vec::new(),
        }
    }

    /// Fire timer J if it is due.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<TxAction> {
        if due(self.end, now) {
            self.state = NonInviteServerState::Terminated;
            self.end = None;
            return vec![TxAction::Terminated];
        }
        Vec::new()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.end
    }

    pub fn state(&self) -> NonInviteServerState {
        self.state
    }
}

// ---------------------------------------------------------------------------------------------
// Non-INVITE client transaction (RFC 3261 §17.1.2)
// ---------------------------------------------------------------------------------------------

/// States of a non-INVITE client transaction (RFC 3261 Figure 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonInviteClientState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// Non-INVITE client transaction (a BYE or OPTIONS we send).
///
/// Every provisional response received in Trying or Proceeding is passed up (§17.1.2.2 says
/// "any further provisional responses MUST be passed up"); the first final response is passed
/// up and its retransmissions are absorbed.
#[derive(Debug)]
pub struct NonInviteClientTx {
    reliable: bool,
    timers: Timers,
    state: NonInviteClientState,
    request: Bytes,
    /// Timer E (unreliable only).
    retransmit: Option<Retransmit>,
    /// Timer F (Trying/Proceeding) or K (Completed).
    end: Option<Instant>,
}

impl NonInviteClientTx {
    /// Start the transaction: the returned actions hold the first `Transmit(request)`.
    pub fn new(
        now: Instant,
        reliable: bool,
        timers: Timers,
        request: Bytes,
    ) -> (Self, Vec<TxAction>) {
        let retransmit = (!reliable).then(|| Retransmit::new(now, timers.t1, Some(timers.t2)));
        let tx = Self {
            reliable,
            timers,
            state: NonInviteClientState::Trying,
            request: request.clone(),
            retransmit,
            end: Some(now + timers.t1x64()),
        };
        (tx, vec![TxAction::Transmit(request)])
    }

    /// A response matched to this transaction arrived.
    pub fn on_response(&mut self, now: Instant, status: u16) -> Vec<TxAction> {
        let Some(class) = classify(status) else {
            tracing::warn!(
                status,
                "non-INVITE client transaction: invalid status ignored"
            );
            return Vec::new();
        };
        match (self.state, class) {
            (
                NonInviteClientState::Trying | NonInviteClientState::Proceeding,
                Class::Provisional,
            ) => {
                self.state = NonInviteClientState::Proceeding;
                // Once the server has answered, keep retransmitting at a steady T2 only in case
                // the final response gets lost (§17.1.2.2).
                if let Some(r) = &mut self.retransmit {
                    r.pin(self.timers.t2);
                }
                vec![TxAction::Response(status)]
            }
            (NonInviteClientState::Trying | NonInviteClientState::Proceeding, _) => {
                self.retransmit = None;
                if self.reliable {
                    self.state = NonInviteClientState::Terminated;
                    self.end = None;
                    vec![TxAction::Response(status), TxAction::Terminated]
                } else {
                    // Timer K: absorb retransmitted finals for T4.
                    self.state = NonInviteClientState::Completed;
                    self.end = Some(now + self.timers.t4);
                    vec![TxAction::Response(status)]
                }
            }
            // Completed/Terminated: retransmissions (or stragglers) are absorbed.
            _ => Vec::new(),
        }
    }

    /// Fire every timer whose deadline is `<= now` (E, F, K).
    pub fn on_timeout(&mut self, now: Instant) -> Vec<TxAction> {
        if due(self.end, now) {
            let timed_out = matches!(
                self.state,
                NonInviteClientState::Trying | NonInviteClientState::Proceeding
            );
            self.state = NonInviteClientState::Terminated;
            self.retransmit = None;
            self.end = None;
            return if timed_out {
                vec![TxAction::Timeout, TxAction::Terminated]
            } else {
                vec![TxAction::Terminated]
            };
        }
        if let Some(r) = &mut self.retransmit
            && r.at <= now
        {
            r.advance(now);
            return vec![TxAction::Transmit(self.request.clone())];
        }
        Vec::new()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        earliest(self.retransmit.map(|r| r.at), self.end)
    }

    pub fn state(&self) -> NonInviteClientState {
        self.state
    }
}

// ---------------------------------------------------------------------------------------------
// INVITE client transaction (RFC 3261 §17.1.1)
// ---------------------------------------------------------------------------------------------

/// States of an INVITE client transaction (RFC 3261 Figure 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteClientState {
    Calling,
    Proceeding,
    Completed,
    Terminated,
}

/// INVITE client transaction (the B2BUA leg to staff).
///
/// The ACK for a 3xx–6xx belongs to the transaction but needs the response (its To tag), so
/// [`on_response`](Self::on_response) takes a closure that builds it; the closure runs only for
/// the first non-2xx final, and the ACK is kept to answer retransmissions of that final. A 2xx
/// terminates the transaction (RFC 3261 §17.1.1.2): the TU ACKs 2xx itself, and absorbs their
/// retransmissions in the dialog.
#[derive(Debug)]
pub struct InviteClientTx {
    reliable: bool,
    state: InviteClientState,
    request: Bytes,
    ack: Option<Bytes>,
    /// Timer A (Calling, unreliable only).
    retransmit: Option<Retransmit>,
    /// Timer B (Calling) or D (Completed).
    end: Option<Instant>,
}

impl InviteClientTx {
    /// Start the transaction: the returned actions hold the first `Transmit(request)`.
    pub fn new(
        now: Instant,
        reliable: bool,
        timers: Timers,
        request: Bytes,
    ) -> (Self, Vec<TxAction>) {
        // Timer A doubles without a cap (§17.1.1.2); timer B ends it after 64*T1 anyway.
        let retransmit = (!reliable).then(|| Retransmit::new(now, timers.t1, None));
        let tx = Self {
            reliable,
            state: InviteClientState::Calling,
            request: request.clone(),
            ack: None,
            retransmit,
            end: Some(now + timers.t1x64()),
        };
        (tx, vec![TxAction::Transmit(request)])
    }

    /// A response matched to this transaction arrived. `build_ack` is called at most once, for
    /// the first 3xx–6xx, to build the ACK this transaction then sends (and resends for every
    /// retransmission of that response).
    pub fn on_response(
        &mut self,
        now: Instant,
        status: u16,
        build_ack: impl FnOnce() -> Bytes,
    ) -> Vec<TxAction> {
        let Some(class) = classify(status) else {
            tracing::warn!(status, "INVITE client transaction: invalid status ignored");
            return Vec::new();
        };
        match (self.state, class) {
            (InviteClientState::Calling | InviteClientState::Proceeding, Class::Provisional) => {
                // The server is alive: stop retransmitting, and timer B no longer applies (in
                // Proceeding the TU decides how long to ring, and CANCELs).
                self.state = InviteClientState::Proceeding;
                self.retransmit = None;
                self.end = None;
                vec![TxAction::Response(status)]
            }
            (InviteClientState::Calling | InviteClientState::Proceeding, Class::Success) => {
                self.terminate();
                vec![TxAction::Response(status), TxAction::Terminated]
            }
            (InviteClientState::Calling | InviteClientState::Proceeding, Class::Failure) => {
                let ack = build_ack();
                self.ack = Some(ack.clone());
                let mut out = vec![TxAction::Response(status), TxAction::Transmit(ack)];
                if self.reliable {
                    // Timer D is zero over reliable transports.
                    self.terminate();
                    out.push(TxAction::Terminated);
                } else {
                    self.state = InviteClientState::Completed;
                    self.retransmit = None;
                    self.end = Some(now + TIMER_D);
                }
                out
            }
            // A retransmitted non-2xx final: our ACK was lost, send it again (not passed up).
            (InviteClientState::Completed, Class::Failure) => match &self.ack {
                Some(ack) => vec![TxAction::Transmit(ack.clone())],
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// Fire every timer whose deadline is `<= now` (A, B, D).
    pub fn on_timeout(&mut self, now: Instant) -> Vec<TxAction> {
        if due(self.end, now) {
            let timed_out = self.state == InviteClientState::Calling;
            self.terminate();
            return if timed_out {
                vec![TxAction::Timeout, TxAction::Terminated]
            } else {
                vec![TxAction::Terminated]
            };
        }
        if let Some(r) = &mut self.retransmit
            && r.at <= now
        {
            r.advance(now);
            return vec![TxAction::Transmit(self.request.clone())];
        }
        Vec::new()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        earliest(self.retransmit.map(|r| r.at), self.end)
    }

    pub fn state(&self) -> InviteClientState {
        self.state
    }

    fn terminate(&mut self) {
        self.state = InviteClientState::Terminated;
        self.retransmit = None;
        self.end = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Drive a transaction on a virtual clock: jump from deadline to deadline until it has none
    /// or `until` is passed, recording (offset, actions) for every firing.
    fn run<T>(
        tx: &mut T,
        base: Instant,
        until: Duration,
        deadline: impl Fn(&T) -> Option<Instant>,
        mut fire: impl FnMut(&mut T, Instant) -> Vec<TxAction>,
    ) -> Vec<(Duration, Vec<TxAction>)> {
        let mut log = Vec::new();
        while let Some(at) = deadline(tx) {
            if at - base > until {
                break;
            }
            let actions = fire(tx, at);
            log.push((at - base, actions));
        }
        log
    }

    fn transmit_offsets(log: &[(Duration, Vec<TxAction>)]) -> Vec<Duration> {
        log.iter()
            .filter(|(_, a)| a.iter().any(|a| matches!(a, TxAction::Transmit(_))))
            .map(|(t, _)| *t)
            .collect()
    }

    const OK: Bytes = Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n");
    const RINGING: Bytes = Bytes::from_static(b"SIP/2.0 180 Ringing\r\n\r\n");
    const BUSY: Bytes = Bytes::from_static(b"SIP/2.0 486 Busy Here\r\n\r\n");
    const BYE: Bytes = Bytes::from_static(b"BYE sip:a@b SIP/2.0\r\n\r\n");
    const INVITE: Bytes = Bytes::from_static(b"INVITE sip:a@b SIP/2.0\r\n\r\n");
    const ACK: Bytes = Bytes::from_static(b"ACK sip:a@b SIP/2.0\r\n\r\n");

    fn ist_run(
        tx: &mut InviteServerTx,
        base: Instant,
        until: Duration,
    ) -> Vec<(Duration, Vec<TxAction>)> {
        run(
            tx,
            base,
            until,
            |t| t.next_deadline(),
            |t, now| t.on_timeout(now),
        )
    }

    /// The 2xx schedule both reliable and unreliable transports use.
    fn ok_schedule() -> Vec<Duration> {
        [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ]
        .into_iter()
        .map(ms)
        .collect()
    }

    #[test]
    fn ok_retransmitted_until_timeout_without_ack() {
        for reliable in [false, true] {
            let base = Instant::now();
            let mut tx = InviteServerTx::new(reliable, Timers::default());
            assert_eq!(tx.respond(base, 200, OK), vec![TxAction::Transmit(OK)]);
            assert_eq!(tx.state(), InviteServerState::Accepted);
            let log = ist_run(&mut tx, base, Duration::from_secs(60));
            assert_eq!(transmit_offsets(&log), ok_schedule(), "reliable={reliable}");
            let (at, last) = log.last().expect("timer L fired");
            assert_eq!(*at, Duration::from_secs(32));
            assert_eq!(last, &vec![TxAction::Timeout, TxAction::Terminated]);
            assert_eq!(tx.state(), InviteServerState::Terminated);
            assert_eq!(tx.next_deadline(), None);
        }
    }

    #[test]
    fn ack_stops_ok_retransmission_then_timer_l_terminates_quietly() {
        let base = Instant::now();
        let mut tx = InviteServerTx::new(false, Timers::default());
        tx.respond(base, 200, OK);
        let log = ist_run(&mut tx, base, ms(1700));
        assert_eq!(transmit_offsets(&log), vec![ms(500), ms(1500)]);
        assert!(!tx.is_acked());
        assert_eq!(tx.on_ack(base + ms(1700)), vec![]);
        assert!(tx.is_acked());
        // A retransmitted ACK or INVITE is absorbed.
        assert_eq!(tx.on_ack(base + ms(1800)), vec![]);
        assert_eq!(tx.on_request_retransmission(base + ms(1900)), vec![]);
        assert_eq!(tx.state(), InviteServerState::Accepted);
        let log = ist_run(&mut tx, base, Duration::from_secs(60));
        assert_eq!(
            log,
            vec![(Duration::from_secs(32), vec![TxAction::Terminated])]
        );
        assert_eq!(tx.state(), InviteServerState::Terminated);
    }

    #[test]
    fn late_wakeup_sends_one_retransmission_and_keeps_schedule() {
        let base = Instant::now();
        let mut tx = InviteServerTx::new(false, Timers::default());
        tx.respond(base, 200, OK);
        // Woke up at 4 s: the 0.5, 1.5 and 3.5 s firings collapse into one.
        assert_eq!(tx.on_timeout(base + ms(4000)), vec![TxAction::Transmit(OK)]);
        assert_eq!(tx.next_deadline(), Some(base + ms(7500)));
    }

    #[test]
    fn invite_retransmission_resends_last_response() {
        let base = Instant::now();
        let mut tx = InviteServerTx::new(false, Timers::default());
        assert_eq!(tx.on_request_retransmission(base), vec![]);
        tx.respond(base, 180, RINGING);
        assert_eq!(tx.state(), InviteServerState::Proceeding);
        assert_eq!(
            tx.next_deadline(),
            None,
            "provisionals are not retransmitted by timer"
        );
        assert_eq!(
            tx.on_request_retransmission(base + ms(500)),
            vec![TxAction::Transmit(RINGING)]
        );
        tx.respond(base + ms(1000), 200, OK);
        assert_eq!(
            tx.on_request_retransmission(base + ms(1100)),
            vec![TxAction::Transmit(OK)]
        );
        // Same for a non-2xx final.
        let mut tx = InviteServerTx::new(false, Timers::default());
        tx.respond(base, 180, RINGING);
        tx.respond(base, 486, BUSY);
        assert_eq!(
            tx.on_request_retransmission(base + ms(100)),
            vec![TxAction::Transmit(BUSY)]
        );
    }

    #[test]
    fn busy_over_udp_timer_g_then_ack_then_timer_i() {
        let base = Instant::now();
        let mut tx = InviteServerTx::new(false, Timers::default());
        assert_eq!(tx.respond(base, 486, BUSY), vec![TxAction::Transmit(BUSY)]);
        assert_eq!(tx.state(), InviteServerState::Completed);
        let log = ist_run(&mut tx, base, ms(12000));
        assert_eq!(
            transmit_offsets(&log),
            vec![ms(500), ms(1500), ms(3500), ms(7500), ms(11500)]
        );
        let ack_at = base + ms(12000);
        assert_eq!(tx.on_ack(ack_at), vec![]);
        assert_eq!(tx.state(), InviteServerState::Confirmed);
        assert_eq!(tx.next_deadline(), Some(ack_at + Duration::from_secs(5)));
        assert_eq!(
            tx.on_ack(ack_at + ms(100)),
            vec![],
            "ACK retransmission absorbed"
        );
        assert_eq!(tx.on_timeout(ack_at + ms(4999)), vec![]);
        assert_eq!(tx.on_timeout(ack_at + ms(5000)), vec![TxAction::Terminated]);
        assert_eq!(tx.state(), InviteServerState::Terminated);
    }

    #[test]
    fn busy_over_udp_without_ack_times_out_at_timer_h() {
        let base = Instant::now();
        let mut tx = InviteServerTx::new(false, Timers::default());
        tx.respond(base, 486, BUSY);
        let log = ist_run(&mut tx, base, Duration::from_secs(60));
        assert_eq!(transmit_offsets(&log), ok_schedule());
        assert_eq!(
            log.last(),
            Some(&(
                Duration::from_secs(32),
                vec![TxAction::Timeout, TxAction::Terminated]
            ))
        );
    }

    #[test]
    fn busy_over_tcp_no_retransmission_terminated_on_ack() {
        let base = Instant::now();
        let mut tx = InviteServerTx::new(true, Timers::default());
        tx.respond(base, 486, BUSY);
        assert_eq!(
            tx.next_deadline(),
            Some(base + Duration::from_secs(32)),
            "only timer H"
        );
        assert_eq!(tx.on_timeout(base + ms(10000)), vec![]);
        assert_eq!(tx.on_ack(base + ms(10000)), vec![TxAction::Terminated]);
        assert_eq!(tx.state(), InviteServerState::Terminated);
        assert_eq!(tx.next_deadline(), None);
    }

    #[test]
    fn invite_server_drops_responses_the_state_forbids() {
        let base = Instant::now();
        let mut tx = InviteServerTx::new(false, Timers::default());
        tx.respond(base, 486, BUSY);
        assert_eq!(tx.respond(base, 200, OK), vec![]);
        assert_eq!(tx.respond(base, 180, RINGING), vec![]);
        let mut tx = InviteServerTx::new(false, Timers::default());
        assert_eq!(tx.respond(base, 42, OK), vec![]);
        assert_eq!(tx.state(), InviteServerState::Proceeding);
    }

    #[test]
    fn non_invite_server_resends_final_and_ends_at_timer_j() {
        let base = Instant::now();
        let mut tx = NonInviteServerTx::new(false, Timers::default());
        assert_eq!(tx.state(), NonInviteServerState::Trying);
        assert_eq!(tx.on_request_retransmission(base), vec![]);
        tx.respond(base, 100, RINGING);
        assert_eq!(tx.state(), NonInviteServerState::Proceeding);
        assert_eq!(
            tx.on_request_retransmission(base),
            vec![TxAction::Transmit(RINGING)]
        );
        assert_eq!(tx.respond(base, 200, OK), vec![TxAction::Transmit(OK)]);
        assert_eq!(tx.state(), NonInviteServerState::Completed);
        assert_eq!(
            tx.on_request_retransmission(base + ms(500)),
            vec![TxAction::Transmit(OK)]
        );
        assert_eq!(tx.respond(base, 500, BUSY), vec![], "second final dropped");
        assert_eq!(tx.next_deadline(), Some(base + Duration::from_secs(32)));
        assert_eq!(tx.on_timeout(base + ms(31999)), vec![]);
        assert_eq!(tx.on_timeout(base + ms(32000)), vec![TxAction::Terminated]);
        assert_eq!(tx.state(), NonInviteServerState::Terminated);

        let mut tx = NonInviteServerTx::new(true, Timers::default());
        assert_eq!(
            tx.respond(base, 200, OK),
            vec![TxAction::Transmit(OK), TxAction::Terminated],
            "timer J is zero over TCP"
        );
    }

    fn nict_run(
        tx: &mut NonInviteClientTx,
        base: Instant,
        until: Duration,
    ) -> Vec<(Duration, Vec<TxAction>)> {
        run(
            tx,
            base,
            until,
            |t| t.next_deadline(),
            |t, now| t.on_timeout(now),
        )
    }

    #[test]
    fn non_invite_client_retransmits_then_times_out() {
        let base = Instant::now();
        let (mut tx, first) = NonInviteClientTx::new(base, false, Timers::default(), BYE);
        assert_eq!(first, vec![TxAction::Transmit(BYE)]);
        let log = nict_run(&mut tx, base, Duration::from_secs(60));
        assert_eq!(transmit_offsets(&log), ok_schedule());
        assert_eq!(
            log.last(),
            Some(&(
                Duration::from_secs(32),
                vec![TxAction::Timeout, TxAction::Terminated]
            ))
        );
        assert_eq!(tx.state(), NonInviteClientState::Terminated);
    }

    #[test]
    fn non_invite_client_final_stops_retransmission() {
        let base = Instant::now();
        let (mut tx, _) = NonInviteClientTx::new(base, false, Timers::default(), BYE);
        let log = nict_run(&mut tx, base, ms(2000));
        assert_eq!(transmit_offsets(&log), vec![ms(500), ms(1500)]);
        assert_eq!(
            tx.on_response(base + ms(2000), 200),
            vec![TxAction::Response(200)]
        );
        assert_eq!(tx.state(), NonInviteClientState::Completed);
        assert_eq!(
            tx.on_response(base + ms(2100), 200),
            vec![],
            "retransmitted final absorbed"
        );
        // Only timer K is left: T4 after the final.
        let log = nict_run(&mut tx, base, Duration::from_secs(60));
        assert_eq!(log, vec![(ms(7000), vec![TxAction::Terminated])]);

        let (mut tx, _) = NonInviteClientTx::new(base, true, Timers::default(), BYE);
        assert_eq!(
            tx.next_deadline(),
            Some(base + Duration::from_secs(32)),
            "no timer E on TCP"
        );
        assert_eq!(
            tx.on_response(base, 200),
            vec![TxAction::Response(200), TxAction::Terminated]
        );
    }

    #[test]
    fn non_invite_client_in_proceeding_retransmits_every_t2() {
        let base = Instant::now();
        let (mut tx, _) = NonInviteClientTx::new(base, false, Timers::default(), BYE);
        assert_eq!(
            tx.on_response(base + ms(100), 100),
            vec![TxAction::Response(100)]
        );
        assert_eq!(tx.state(), NonInviteClientState::Proceeding);
        let log = nict_run(&mut tx, base, ms(13000));
        // The pending E at 0.5 s fires, then every T2.
        assert_eq!(
            transmit_offsets(&log),
            vec![ms(500), ms(4500), ms(8500), ms(12500)]
        );
    }

    #[test]
    fn invite_client_schedule_and_timer_b() {
        let base = Instant::now();
        let (mut tx, first) = InviteClientTx::new(base, false, Timers::default(), INVITE);
        assert_eq!(first, vec![TxAction::Transmit(INVITE)]);
        let log = run(
            &mut tx,
            base,
            Duration::from_secs(60),
            |t| t.next_deadline(),
            |t, now| t.on_timeout(now),
        );
        // Timer A doubles with no cap: 0.5, 1, 2, 4, 8, 16 s intervals.
        assert_eq!(
            transmit_offsets(&log),
            vec![ms(500), ms(1500), ms(3500), ms(7500), ms(15500), ms(31500)]
        );
        assert_eq!(
            log.last(),
            Some(&(
                Duration::from_secs(32),
                vec![TxAction::Timeout, TxAction::Terminated]
            ))
        );
        assert_eq!(tx.state(), InviteClientState::Terminated);
    }

    #[test]
    fn invite_client_provisional_then_success() {
        let base = Instant::now();
        let (mut tx, _) = InviteClientTx::new(base, false, Timers::default(), INVITE);
        let no_ack = || -> Bytes { panic!("no ACK for 1xx/2xx") };
        assert_eq!(
            tx.on_response(base + ms(200), 180, no_ack),
            vec![TxAction::Response(180)]
        );
        assert_eq!(tx.state(), InviteClientState::Proceeding);
        assert_eq!(tx.next_deadline(), None, "no timer A or B in Proceeding");
        assert_eq!(
            tx.on_response(base + ms(5000), 200, no_ack),
            vec![TxAction::Response(200), TxAction::Terminated]
        );
        assert_eq!(tx.state(), InviteClientState::Terminated);
    }

    #[test]
    fn invite_client_failure_acks_and_timer_d() {
        let base = Instant::now();
        let (mut tx, _) = InviteClientTx::new(base, false, Timers::default(), INVITE);
        assert_eq!(
            tx.on_response(base + ms(700), 486, || ACK),
            vec![TxAction::Response(486), TxAction::Transmit(ACK)]
        );
        assert_eq!(tx.state(), InviteClientState::Completed);
        // A retransmitted 486 gets the same ACK again and is not passed up.
        let unused = || -> Bytes { panic!("ACK is built once") };
        assert_eq!(
            tx.on_response(base + ms(1000), 486, unused),
            vec![TxAction::Transmit(ACK)]
        );
        assert_eq!(
            tx.next_deadline(),
            Some(base + ms(700) + Duration::from_secs(32))
        );
        assert_eq!(
            tx.on_timeout(base + ms(32700)),
            vec![TxAction::Terminated],
            "timer D ends quietly"
        );

        let (mut tx, _) = InviteClientTx::new(base, true, Timers::default(), INVITE);
        assert_eq!(
            tx.on_response(base, 486, || ACK),
            vec![
                TxAction::Response(486),
                TxAction::Transmit(ACK),
                TxAction::Terminated
            ]
        );
    }
}
