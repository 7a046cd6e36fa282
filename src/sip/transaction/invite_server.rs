//! INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1).

use std::time::Instant;

use bytes::Bytes;

use super::*;

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
                // Timer L keeps running from the 2xx: it bounds the absorbing period. The 2xx
                // itself is not needed any more (retransmissions are absorbed, not answered).
                self.acked = true;
                self.retransmit = None;
                self.last_response = None;
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
