//! The wall clock of the process: what every CDR time, voicemail file name, webhook event,
//! callback deadline and business-hours decision reads.
//!
//! `serve --now` moves it (demos, and tests that need "Saturday night" on a Tuesday), so it is
//! one value carried by whoever needs the time, never `Timestamp::now()` read directly: if the
//! hours decision and the CDR disagreed on the date, the record would bill a call as after hours
//! at a time that was inside them. Timers of the sans-IO cores keep their monotonic `Instant`s;
//! this is only the calendar time.

use jiff::{SignedDuration, Timestamp};

/// The system clock, optionally shifted by a fixed offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    offset: SignedDuration,
}

impl Clock {
    /// The system clock as it is.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `at` now and runs on from there at the system clock's pace.
    pub fn starting_at(at: Timestamp) -> Clock {
        Clock {
            offset: at.duration_since(Timestamp::now()),
        }
    }

    /// The time now on this clock. An offset that would leave jiff's range (only a nonsense
    /// `--now`) falls back to the system time rather than failing a call.
    pub fn now(&self) -> Timestamp {
        let real = Timestamp::now();
        real.checked_add(self.offset).unwrap_or(real)
    }

    /// How far this clock is from the system clock.
    pub fn offset(&self) -> SignedDuration {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_started_in_the_past_stays_there_and_runs_on() {
        let at: Timestamp = "2026-11-28T23:30:00Z".parse().unwrap();
        let clock = Clock::starting_at(at);
        let first = clock.now();
        // Within a second of the requested time, and never before it once read again.
        assert!(first.duration_since(at).abs() < SignedDuration::from_secs(1));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let later = clock.now();
        assert!(later > first, "{later} should follow {first}");
        assert!(later.duration_since(at) < SignedDuration::from_secs(5));
    }

    #[test]
    fn the_system_clock_is_not_moved() {
        let before = Timestamp::now();
        let now = Clock::system().now();
        assert!(now >= before);
        assert_eq!(Clock::system().offset(), SignedDuration::ZERO);
    }
}
