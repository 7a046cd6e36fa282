//! INVITE client transaction (RFC 3261 §17.1.1).

use std::time::Instant;

use bytes::Bytes;

use super::{Class, ClientTimers, Retransmit, TIMER_D, Timers, TxAction, classify};

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
    /// Timer A (Calling, unreliable only) and timer B (Calling) or D (Completed).
    clock: ClientTimers,
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
            clock: ClientTimers {
                retransmit,
                end: Some(now + timers.t1x64()),
            },
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
                self.clock.stop();
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
                    self.clock.retransmit = None;
                    self.clock.end = Some(now + TIMER_D);
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
        let waiting = self.state == InviteClientState::Calling;
        let (actions, ended) = self.clock.fire(now, &self.request, waiting);
        if ended {
            self.state = InviteClientState::Terminated;
        }
        actions
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.clock.next_deadline()
    }

    pub fn state(&self) -> InviteClientState {
        self.state
    }

    fn terminate(&mut self) {
        self.state = InviteClientState::Terminated;
        self.clock.stop();
    }
}
