//! RFC 3261 §17 transaction state machines, with the RFC 6026 "Accepted" state for INVITE server
//! transactions.
//!
//! Sans-IO: every method takes `now` and returns [`TxAction`]s; the shell sends the bytes, sleeps
//! until [`next_deadline`](InviteServerTx::next_deadline) and calls `on_timeout`. Messages are
//! already serialized (`Bytes`), so a retransmission is a cheap clone. Matching an incoming message
//! to its transaction (branch, method, sent-by) is the endpoint's job, not this module's: here we
//! only keep the state and the timers.
//!
//! Timer names follow RFC 3261 §17 / Table 4 (A–K) and RFC 6026 (L). One state machine per file;
//! [`TimerQueue`] keeps the deadlines of many transactions for the endpoint.

use std::time::{Duration, Instant};

use bytes::Bytes;

mod invite_client;
mod invite_server;
mod non_invite_client;
mod non_invite_server;
mod timer_queue;

#[cfg(test)]
mod tests;

pub use invite_client::{InviteClientState, InviteClientTx};
pub use invite_server::{InviteServerState, InviteServerTx};
pub use non_invite_client::{NonInviteClientState, NonInviteClientTx};
pub use non_invite_server::{NonInviteServerState, NonInviteServerTx};
pub use timer_queue::TimerQueue;

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

/// The two timers of a client transaction: retransmission of the request (A or E) and the end of
/// the transaction (B/D or F/K). Both client state machines fire them the same way.
#[derive(Debug)]
struct ClientTimers {
    retransmit: Option<Retransmit>,
    end: Option<Instant>,
}

impl ClientTimers {
    /// Fire what is due at `now`. When the ending timer fired, returns the actions and `true`:
    /// `Timeout` first if the transaction was still `waiting` for a final response (timer B or F),
    /// then `Terminated`. Otherwise a due retransmission of `request`, and `false`.
    fn fire(&mut self, now: Instant, request: &Bytes, waiting: bool) -> (Vec<TxAction>, bool) {
        if due(self.end, now) {
            self.stop();
            let actions = if waiting {
                vec![TxAction::Timeout, TxAction::Terminated]
            } else {
                vec![TxAction::Terminated]
            };
            return (actions, true);
        }
        if let Some(r) = &mut self.retransmit
            && r.at <= now
        {
            r.advance(now);
            return (vec![TxAction::Transmit(request.clone())], false);
        }
        (Vec::new(), false)
    }

    fn next_deadline(&self) -> Option<Instant> {
        earliest(self.retransmit.map(|r| r.at), self.end)
    }

    fn stop(&mut self) {
        self.retransmit = None;
        self.end = None;
    }
}
