//! RTP inactivity, sans-IO: when a far end that said it sends (`sendrecv`) has sent nothing we
//! believe for `rtp.timeout_s`, the call is dead or was never real: an INVITE whose SDP names a
//! third party would otherwise have us stream at that address for as long as the call may last.
//! (RFC 7675's consent freshness has the same aim for WebRTC.)
//!
//! The clock starts when the session starts (the answer), so a peer that never sends at all is
//! cut too; each accepted packet restarts it. While the far end is on hold (`sendonly`,
//! `inactive`) or only receives (`recvonly`) silence is no sign of death and the clock stops; it
//! restarts from zero when media is expected again, and after a re-INVITE moves the far end.
//! The shell sleeps until [`Inactivity::deadline`] and asks [`Inactivity::poll`], which fires once.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Inactivity {
    /// `None`: off (`rtp.timeout_s = 0`).
    timeout: Option<Duration>,
    /// Silence counts from here: the start, the last accepted packet, or the end of a hold.
    since: Instant,
    /// The far end has said it sends; cleared once the timeout has fired.
    expected: bool,
}

impl Inactivity {
    pub fn new(now: Instant, timeout: Option<Duration>) -> Self {
        Inactivity {
            timeout: timeout.filter(|t| !t.is_zero()),
            since: now,
            expected: true,
        }
    }

    /// An accepted packet arrived.
    pub fn on_media(&mut self, now: Instant) {
        self.since = self.since.max(now);
    }

    /// Whether the far end is expected to send (`sendrecv`); a change to `true` restarts the clock.
    pub fn set_expected(&mut self, now: Instant, expected: bool) {
        if expected && !self.expected {
            self.since = now;
        }
        self.expected = expected;
    }

    /// The far end moved (re-INVITE): it gets a full timeout at its new address.
    pub fn restart(&mut self, now: Instant) {
        self.since = self.since.max(now);
    }

    /// When `poll` will fire if nothing arrives; `None` while nothing is expected or when off.
    pub fn deadline(&self) -> Option<Instant> {
        let timeout = self.timeout?;
        self.expected.then(|| self.since + timeout)
    }

    /// At or after the deadline: the timeout that ran out (what the far end was silent for, give
    /// or take how late the shell woke up). Fires once; the clock stays stopped afterwards until
    /// media is expected again.
    pub fn poll(&mut self, now: Instant) -> Option<Duration> {
        let deadline = self.deadline()?;
        if now < deadline {
            return None;
        }
        self.expected = false;
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    fn at(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn a_peer_that_never_sends_is_cut_after_the_timeout_from_the_start() {
        let t0 = Instant::now();
        let mut w = Inactivity::new(t0, Some(TIMEOUT));
        assert_eq!(w.deadline(), Some(at(t0, 30)));
        assert_eq!(w.poll(at(t0, 29)), None);
        assert_eq!(
            w.poll(at(t0, 31)),
            Some(TIMEOUT),
            "late wake-ups report the timeout"
        );
        assert_eq!(w.poll(at(t0, 32)), None, "fires once");
        assert_eq!(w.deadline(), None);
    }

    #[test]
    fn each_packet_restarts_the_clock() {
        let t0 = Instant::now();
        let mut w = Inactivity::new(t0, Some(TIMEOUT));
        w.on_media(at(t0, 20));
        assert_eq!(w.poll(at(t0, 45)), None);
        assert_eq!(w.deadline(), Some(at(t0, 50)));
        // A packet stamped earlier than one already seen (read late) does not rewind it.
        w.on_media(at(t0, 10));
        assert_eq!(w.deadline(), Some(at(t0, 50)));
        assert_eq!(w.poll(at(t0, 50)), Some(TIMEOUT));
    }

    #[test]
    fn hold_stops_the_clock_and_resume_restarts_it_from_zero() {
        let t0 = Instant::now();
        let mut w = Inactivity::new(t0, Some(TIMEOUT));
        w.set_expected(at(t0, 5), false);
        assert_eq!(w.deadline(), None);
        assert_eq!(w.poll(at(t0, 600)), None, "a long hold is not a dead call");
        w.set_expected(at(t0, 600), true);
        assert_eq!(w.deadline(), Some(at(t0, 630)));
        // Saying "expected" again while already expected does not push the deadline.
        w.set_expected(at(t0, 620), true);
        assert_eq!(w.deadline(), Some(at(t0, 630)));
        assert_eq!(w.poll(at(t0, 630)), Some(TIMEOUT));
    }

    #[test]
    fn a_re_invite_gives_the_new_address_a_full_timeout() {
        let t0 = Instant::now();
        let mut w = Inactivity::new(t0, Some(TIMEOUT));
        w.restart(at(t0, 25));
        assert_eq!(w.deadline(), Some(at(t0, 55)));
    }

    #[test]
    fn zero_turns_it_off() {
        let t0 = Instant::now();
        for timeout in [None, Some(Duration::ZERO)] {
            let mut w = Inactivity::new(t0, timeout);
            assert_eq!(w.deadline(), None);
            assert_eq!(w.poll(at(t0, 100_000)), None);
        }
    }
}
