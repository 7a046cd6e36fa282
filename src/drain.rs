//! The shutdown sequence, sans-IO: after the first shutdown request, live calls may finish for a
//! grace period; then what is left is hung up; then our BYEs and other requests in flight get a
//! few seconds for their answers, and the process exits. Every step has a deadline the shell
//! sleeps until, so a quiet line shuts down on time (it used to wait for unrelated traffic), and
//! server transactions that only absorb retransmissions (32 s over UDP) do not hold the exit.

use std::time::{Duration, Instant};

/// How long requests we sent (BYE, CANCEL) may wait for their answers once no call is left.
pub const FLUSH: Duration = Duration::from_secs(4);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainStep {
    /// Nothing to do before this instant (or an event).
    WaitUntil(Instant),
    /// The grace is over (or a second request came): hang up every live call, then call
    /// [`Drain::step`] again.
    HangUpAll,
    /// Done: exit.
    Exit,
}

#[derive(Debug, Clone)]
pub struct Drain {
    grace_ends: Instant,
    hung_up: bool,
    /// When the last call was gone (the flush of our requests in flight started).
    calls_gone_at: Option<Instant>,
}

impl Drain {
    /// A shutdown requested at `now`; live calls may run on for `grace`.
    pub fn new(now: Instant, grace: Duration) -> Drain {
        Drain {
            grace_ends: now + grace,
            hung_up: false,
            calls_gone_at: None,
        }
    }

    /// A second shutdown request: no more grace.
    pub fn hurry(&mut self, now: Instant) {
        self.grace_ends = self.grace_ends.min(now);
    }

    /// What to do at `now`, with `live_calls` still up and `in_flight` requests of ours still
    /// waiting for a final response.
    pub fn step(&mut self, now: Instant, live_calls: usize, in_flight: bool) -> DrainStep {
        if live_calls > 0 {
            self.calls_gone_at = None;
            if now < self.grace_ends {
                return DrainStep::WaitUntil(self.grace_ends);
            }
            if !self.hung_up {
                self.hung_up = true;
                return DrainStep::HangUpAll;
            }
            // Hung up, but the calls' ends are not confirmed yet: give their BYEs the flush
            // time, then leave anyway.
            let give_up = self.grace_ends + FLUSH;
            return if now >= give_up {
                DrainStep::Exit
            } else {
                DrainStep::WaitUntil(give_up)
            };
        }
        let gone = *self.calls_gone_at.get_or_insert(now);
        if !in_flight || now >= gone + FLUSH {
            DrainStep::Exit
        } else {
            DrainStep::WaitUntil(gone + FLUSH)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(60);

    #[test]
    fn a_quiet_line_exits_at_once() {
        let t0 = Instant::now();
        let mut d = Drain::new(t0, GRACE);
        assert_eq!(d.step(t0, 0, false), DrainStep::Exit);
    }

    #[test]
    fn live_calls_get_the_grace_then_are_hung_up_then_the_byes_get_the_flush_time() {
        let t0 = Instant::now();
        let mut d = Drain::new(t0, GRACE);
        assert_eq!(d.step(t0, 2, false), DrainStep::WaitUntil(t0 + GRACE));
        // Nothing happens on the line: the shell wakes at the deadline by itself.
        assert_eq!(d.step(t0 + GRACE, 2, false), DrainStep::HangUpAll);
        let bye_out = t0 + GRACE;
        assert_eq!(
            d.step(bye_out, 2, true),
            DrainStep::WaitUntil(t0 + GRACE + FLUSH)
        );
        // The calls are gone, one BYE still unanswered: wait for it, but not for ever.
        let gone = bye_out + Duration::from_millis(10);
        assert_eq!(d.step(gone, 0, true), DrainStep::WaitUntil(gone + FLUSH));
        assert_eq!(d.step(gone + FLUSH, 0, true), DrainStep::Exit);
    }

    #[test]
    fn calls_that_end_by_themselves_end_the_wait() {
        let t0 = Instant::now();
        let mut d = Drain::new(t0, GRACE);
        assert_eq!(d.step(t0, 1, false), DrainStep::WaitUntil(t0 + GRACE));
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(d.step(t1, 0, false), DrainStep::Exit);
    }

    #[test]
    fn a_second_request_hangs_up_at_once() {
        let t0 = Instant::now();
        let mut d = Drain::new(t0, GRACE);
        assert_eq!(d.step(t0, 3, false), DrainStep::WaitUntil(t0 + GRACE));
        let t1 = t0 + Duration::from_secs(1);
        d.hurry(t1);
        assert_eq!(d.step(t1, 3, false), DrainStep::HangUpAll);
        // Calls whose ends never come back do not hold the exit past the flush time.
        assert_eq!(d.step(t1 + FLUSH, 3, true), DrainStep::Exit);
    }
}
