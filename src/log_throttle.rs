//! Events that each deserve a log line but can come thousands a second (calls refused, datagrams
//! shed under overload, RTP from strangers): counted, and reported at most once a second with the
//! count. A leaf: `sip` and `media` both use it.

use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct LogThrottle {
    count: u64,
    logged_at: Option<Instant>,
}

impl LogThrottle {
    /// Counts one event at `now`. When a line is due (the first event, then at most one a
    /// second), returns how many events it reports, including this one.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.count += 1;
        if self
            .logged_at
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_event_then_a_count_a_second() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut t = LogThrottle::default();
        assert_eq!(t.note(at(0)), Some(1));
        assert_eq!(t.note(at(10)), None);
        assert_eq!(t.note(at(999)), None);
        assert_eq!(t.note(at(1000)), Some(3), "the two held back and this one");
        assert_eq!(t.note(at(1500)), None);
    }
}
