//! Ringing the desk: which staff phones ring when, who wins, and when to give up.
//!
//! A sans-IO state machine. The shell starts legs, plays whispers and bridges when told to, and
//! feeds back what happens on each leg; the dialer answers with [`DialAction`]s. Time comes in as
//! an argument, so ring schedules are tested on a virtual clock.
//!
//! Rules (what a caller and the staff on call expect):
//! - `simultaneous`: every contact of every member rings at once; `sequential`: members in
//!   configured order, each for `ring_each` (all contacts of one member ring together).
//! - A phone that answers hears the whisper and must press 1 within `accept_timeout` after it
//!   ends (1 during the whisper counts); otherwise that leg is dropped and the dial goes on. The
//!   first to press 1 wins: every other leg is cancelled or hung up.
//! - The overall `timeout` ends the dial, whisper or not.
//! - The outcome when nobody accepted: `Busy` if every phone that responded was busy, `Failed` if
//!   no phone could be reached at all (nobody registered, errors), else `NoAnswer`.

use std::time::{Duration, Instant};

use crate::flow::{DialOutcome, Strategy};
use crate::sip::EndReason;

/// Index of a leg in the order the dialer started them.
pub type LegId = usize;

/// The dial's settings.
#[derive(Clone, Debug)]
pub struct DialPlan {
    pub strategy: Strategy,
    /// Overall ring time.
    pub timeout: Duration,
    /// Per member, when sequential.
    pub ring_each: Duration,
    /// After the whisper ends, how long staff have to press 1.
    pub accept_timeout: Duration,
    /// Per member (in ring order): how many contacts (registered phones) it has.
    pub contacts: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialAction {
    /// Ring contact `contact` of member `member`; later events name the leg `leg`.
    Start {
        leg: LegId,
        member: usize,
        contact: usize,
    },
    /// Drop a leg: CANCEL while ringing, BYE once answered.
    Drop(LegId),
    /// The leg answered: play it the whisper (and listen for its digits).
    Whisper(LegId),
    /// The leg pressed 1: connect it to the caller.
    Bridge(LegId),
    /// The dial is over without a bridge.
    Finish(DialOutcome),
}

/// What happened on a leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegEvent {
    /// A provisional response: the phone exists and rings.
    Ringing,
    Answered,
    WhisperDone,
    Digit(char),
    Ended(EndReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Ringing,
    Whisper { accept_by: Option<Instant> },
    Bridged,
    Gone,
}

#[derive(Debug)]
struct Leg {
    member: usize,
    phase: Phase,
    /// The phone responded at all (rang, answered or refused).
    reached: bool,
    busy: bool,
}

#[derive(Debug)]
pub struct Dialer {
    plan: DialPlan,
    legs: Vec<Leg>,
    deadline: Instant,
    /// Sequential: the member ringing now, and until when.
    current: usize,
    slot_until: Option<Instant>,
    done: bool,
}

impl Dialer {
    /// Starts the dial at `now`.
    pub fn start(plan: DialPlan, now: Instant) -> (Dialer, Vec<DialAction>) {
        let mut d = Dialer {
            deadline: now + plan.timeout,
            plan,
            legs: Vec::new(),
            current: 0,
            slot_until: None,
            done: false,
        };
        let mut out = Vec::new();
        match d.plan.strategy {
            Strategy::Simultaneous => {
                for m in 0..d.plan.contacts.len() {
                    d.ring_member(m, &mut out);
                }
            }
            Strategy::Sequential => d.ring_next_member(now, &mut out),
        }
        d.check_finished(&mut out);
        (d, out)
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The earliest instant `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        let accepts = self.legs.iter().filter_map(|l| match l.phase {
            Phase::Whisper { accept_by } => accept_by,
            _ => None,
        });
        accepts
            .chain(self.slot_until)
            .chain(Some(self.deadline))
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<DialAction> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        if now >= self.deadline {
            for id in 0..self.legs.len() {
                self.drop_leg(id, &mut out);
            }
            self.finish(DialOutcome::NoAnswer, &mut out);
            return out;
        }
        for id in 0..self.legs.len() {
            if let Phase::Whisper { accept_by: Some(t) } = self.legs[id].phase
                && t <= now
            {
                tracing::info!(
                    leg = id,
                    event = "whisper_not_accepted",
                    "staff did not press 1 in time; dropping that phone"
                );
                self.drop_leg(id, &mut out);
            }
        }
        if self.slot_until.is_some_and(|t| t <= now) {
            // The member's ring time is over: stop its ringing phones (one listening to the
            // whisper may still accept) and ring the next.
            let member = self.current.saturating_sub(1);
            for id in 0..self.legs.len() {
                if self.legs[id].member == member && self.legs[id].phase == Phase::Ringing {
                    self.drop_leg(id, &mut out);
                }
            }
            self.slot_until = None;
            self.ring_next_member(now, &mut out);
        }
        self.check_finished(&mut out);
        out
    }

    pub fn on_leg(&mut self, now: Instant, leg: LegId, ev: LegEvent) -> Vec<DialAction> {
        let mut out = Vec::new();
        let Some(l) = self.legs.get_mut(leg) else {
            return out;
        };
        match (l.phase, ev) {
            (_, LegEvent::Ringing) => l.reached = true,
            (Phase::Ringing, LegEvent::Answered) if !self.done => {
                l.reached = true;
                l.phase = Phase::Whisper { accept_by: None };
                out.push(DialAction::Whisper(leg));
            }
            (Phase::Whisper { accept_by: None }, LegEvent::WhisperDone) => {
                l.phase = Phase::Whisper {
                    accept_by: Some(now + self.plan.accept_timeout),
                };
            }
            (Phase::Whisper { .. }, LegEvent::Digit('1')) if !self.done => {
                l.phase = Phase::Bridged;
                for id in 0..self.legs.len() {
                    if id != leg {
                        self.drop_leg(id, &mut out);
                    }
                }
                out.push(DialAction::Bridge(leg));
                self.done = true;
            }
            (Phase::Ringing | Phase::Whisper { .. }, LegEvent::Ended(reason)) => {
                l.phase = Phase::Gone;
                match reason {
                    EndReason::Declined(486 | 600) => {
                        l.reached = true;
                        l.busy = true;
                    }
                    EndReason::Declined(s) if (400..700).contains(&s) && s != 408 => {
                        l.reached = true;
                    }
                    _ => {}
                }
                // Sequential: a member whose phones are all gone makes way for the next at once.
                if self.plan.strategy == Strategy::Sequential
                    && self.slot_until.is_some()
                    && !self.member_live(self.current.saturating_sub(1))
                {
                    self.slot_until = None;
                    self.ring_next_member(now, &mut out);
                }
                self.check_finished(&mut out);
            }
            (Phase::Bridged, LegEvent::Ended(_)) => l.phase = Phase::Gone,
            _ => {}
        }
        out
    }

    /// The caller hung up: drop every leg.
    pub fn abort(&mut self) -> Vec<DialAction> {
        let mut out = Vec::new();
        for id in 0..self.legs.len() {
            self.drop_leg(id, &mut out);
        }
        self.done = true;
        out
    }

    fn ring_member(&mut self, member: usize, out: &mut Vec<DialAction>) {
        for contact in 0..self.plan.contacts[member] {
            let leg = self.legs.len();
            self.legs.push(Leg {
                member,
                phase: Phase::Ringing,
                reached: false,
                busy: false,
            });
            out.push(DialAction::Start {
                leg,
                member,
                contact,
            });
        }
    }

    /// Sequential: the next member with at least one phone.
    fn ring_next_member(&mut self, now: Instant, out: &mut Vec<DialAction>) {
        while self.current < self.plan.contacts.len() {
            let m = self.current;
            self.current += 1;
            if self.plan.contacts[m] > 0 {
                self.ring_member(m, out);
                self.slot_until = Some(now + self.plan.ring_each);
                return;
            }
        }
    }

    fn member_live(&self, member: usize) -> bool {
        self.legs
            .iter()
            .any(|l| l.member == member && matches!(l.phase, Phase::Ringing))
    }

    fn drop_leg(&mut self, id: LegId, out: &mut Vec<DialAction>) {
        if matches!(self.legs[id].phase, Phase::Ringing | Phase::Whisper { .. }) {
            self.legs[id].phase = Phase::Gone;
            out.push(DialAction::Drop(id));
        }
    }

    /// Nobody left to ring and nobody listening to a whisper: the dial is over.
    fn check_finished(&mut self, out: &mut Vec<DialAction>) {
        if self.done {
            return;
        }
        let live = self
            .legs
            .iter()
            .any(|l| matches!(l.phase, Phase::Ringing | Phase::Whisper { .. }));
        let more = self.plan.strategy == Strategy::Sequential
            && self.plan.contacts[self.current.min(self.plan.contacts.len())..]
                .iter()
                .any(|&c| c > 0);
        if live || more {
            return;
        }
        let reached = self.legs.iter().filter(|l| l.reached).count();
        let busy = self.legs.iter().filter(|l| l.busy).count();
        let outcome = if reached == 0 {
            DialOutcome::Failed
        } else if busy == reached {
            DialOutcome::Busy
        } else {
            DialOutcome::NoAnswer
        };
        self.finish(outcome, out);
    }

    fn finish(&mut self, outcome: DialOutcome, out: &mut Vec<DialAction>) {
        self.done = true;
        self.slot_until = None;
        out.push(DialAction::Finish(outcome));
    }
}

#[cfg(test)]
#[path = "dialer_tests.rs"]
mod tests;
