//! Non-INVITE client transaction (RFC 3261 §17.1.2).

use std::time::Instant;

use bytes::Bytes;

use super::{Class, ClientTimers, Retransmit, Timers, TxAction, classify};

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
    /// Timer E (unreliable only) and timer F (Trying/Proceeding) or K (Completed).
    clock: ClientTimers,
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
            clock: ClientTimers {
                retransmit,
                end: Some(now + timers.t1x64()),
            },
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
                if let Some(r) = &mut self.clock.retransmit {
                    r.pin(self.timers.t2);
                }
                vec![TxAction::Response(status)]
            }
            (NonInviteClientState::Trying | NonInviteClientState::Proceeding, _) => {
                self.clock.retransmit = None;
                if self.reliable {
                    self.state = NonInviteClientState::Terminated;
                    self.clock.end = None;
                    vec![TxAction::Response(status), TxAction::Terminated]
                } else {
                    // Timer K: absorb retransmitted finals for T4.
                    self.state = NonInviteClientState::Completed;
                    self.clock.end = Some(now + self.timers.t4);
                    vec![TxAction::Response(status)]
                }
            }
            // Completed/Terminated: retransmissions (or stragglers) are absorbed.
            _ => Vec::new(),
        }
    }

    /// Fire every timer whose deadline is `<= now` (E, F, K).
    pub fn on_timeout(&mut self, now: Instant) -> Vec<TxAction> {
        let waiting = matches!(
            self.state,
            NonInviteClientState::Trying | NonInviteClientState::Proceeding
        );
        let (actions, ended) = self.clock.fire(now, &self.request, waiting);
        if ended {
            self.state = NonInviteClientState::Terminated;
        }
        actions
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.clock.next_deadline()
    }

    pub fn state(&self) -> NonInviteClientState {
        self.state
    }
}
