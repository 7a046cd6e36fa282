//! Failover across the targets of one URI (RFC 3263 §4.3): a request that fails with a
//! transport error, a transaction timeout or a 503 goes to the next target; any other answer
//! (busy, declined, not found...) is the far end's word and ends the attempt. Sans-IO: the SIP
//! sender asks [`TargetCursor::current`], sends, and reports how it failed.

use super::Target;

/// How an attempt at one target failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The message could not be sent (or the connection failed).
    Transport,
    /// No final response before the transaction timed out (timer B/F).
    Timeout,
    /// A final non-2xx response.
    Status(u16),
}

impl Failure {
    /// How the end of a dialled leg reads: no final response is a timeout, a final status is
    /// itself; anything else (hung up, cancelled) is no failure of the target.
    pub fn of_leg_end(reason: &crate::sip::EndReason) -> Option<Failure> {
        use crate::sip::EndReason;
        match reason {
            EndReason::NoResponse => Some(Failure::Timeout),
            EndReason::Declined(s) => Some(Failure::Status(*s)),
            _ => None,
        }
    }

    /// RFC 3263 §4.3: only these mean "that server is not working, try another".
    pub fn fails_over(self) -> bool {
        matches!(
            self,
            Failure::Transport | Failure::Timeout | Failure::Status(503)
        )
    }
}

/// The targets of one request and which one is being tried.
#[derive(Clone, Debug)]
pub struct TargetCursor {
    targets: Vec<Target>,
    at: usize,
}

impl TargetCursor {
    pub fn new(targets: Vec<Target>) -> TargetCursor {
        TargetCursor { targets, at: 0 }
    }

    /// The target to send to now; `None` once every one has failed (or there were none).
    pub fn current(&self) -> Option<&Target> {
        self.targets.get(self.at)
    }

    /// The attempt at the current target failed: the next target when `failure` calls for
    /// one and one is left, else `None` (the request has failed for good).
    pub fn failed(&mut self, failure: Failure) -> Option<&Target> {
        if !failure.fails_over() {
            self.at = self.targets.len();
            return None;
        }
        self.at = (self.at + 1).min(self.targets.len());
        self.current()
    }

    /// Every target, in the order they are tried.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Targets not yet tried after the current one.
    pub fn remaining(&self) -> usize {
        self.targets.len().saturating_sub(self.at + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::Transport;

    fn targets(n: u8) -> Vec<Target> {
        (1..=n)
            .map(|i| Target {
                transport: Transport::Udp,
                addr: format!("127.0.0.{i}:5060").parse().unwrap(),
            })
            .collect()
    }

    #[test]
    fn timeouts_transport_errors_and_503_move_to_the_next_target() {
        let mut c = TargetCursor::new(targets(4));
        assert_eq!(c.current().unwrap().addr.to_string(), "127.0.0.1:5060");
        assert_eq!(c.remaining(), 3);
        assert_eq!(
            c.failed(Failure::Timeout).unwrap().addr.to_string(),
            "127.0.0.2:5060"
        );
        assert_eq!(
            c.failed(Failure::Status(503)).unwrap().addr.to_string(),
            "127.0.0.3:5060"
        );
        assert_eq!(
            c.failed(Failure::Transport).unwrap().addr.to_string(),
            "127.0.0.4:5060"
        );
        assert_eq!(c.remaining(), 0);
        // The last one failing too: nothing left, and it stays that way.
        assert_eq!(c.failed(Failure::Timeout), None);
        assert_eq!(c.failed(Failure::Timeout), None);
        assert_eq!(c.current(), None);
    }

    #[test]
    fn any_other_final_answer_ends_the_attempt() {
        for status in [404, 480, 486, 500, 502, 504, 600, 603] {
            let mut c = TargetCursor::new(targets(2));
            assert_eq!(c.failed(Failure::Status(status)), None, "{status}");
            assert_eq!(c.current(), None, "{status}");
        }
    }

    #[test]
    fn a_leg_that_ends_unanswered_or_with_503_fails_over() {
        use crate::sip::EndReason;
        let fo = |r: EndReason| Failure::of_leg_end(&r).is_some_and(Failure::fails_over);
        assert!(fo(EndReason::NoResponse));
        assert!(fo(EndReason::Declined(503)));
        assert!(!fo(EndReason::Declined(486)));
        assert!(!fo(EndReason::RemoteBye));
        assert!(!fo(EndReason::Cancelled));
    }

    #[test]
    fn no_targets_means_nothing_to_try() {
        let mut c = TargetCursor::new(Vec::new());
        assert_eq!(c.current(), None);
        assert_eq!(c.failed(Failure::Timeout), None);
    }
}
