//! Non-INVITE server transaction (RFC 3261 §17.2.2).

use std::time::Instant;

use bytes::Bytes;

use super::*;

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
