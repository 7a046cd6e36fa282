//! Drift-free packet pacing, sans-IO. Packet n of a stream is due at exactly `start + n * ptime`;
//! deadlines are never derived from "now + ptime", so scheduler latency on one wake-up does not
//! accumulate into the stream's clock (a 3-minute prompt ends at 3 minutes, not 3 minutes plus
//! 9000 wake-up delays).

use std::time::{Duration, Instant};

/// Most packets `poll` releases at once. A task that wakes late catches up by sending the slots
/// it missed, but only up to this many: after a long stall (a paused VM, a blocked runtime)
/// blasting hundreds of packets would overflow the far end's jitter buffer, so older slots are
/// skipped instead and the stream resumes on schedule. The shell learns the count from
/// `take_skipped` and advances the RTP timestamp by it, so timestamps keep tracking wall time.
pub const MAX_BURST: u32 = 5;

#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    ptime: Duration,
    /// Index of the next packet to release.
    next: u64,
    skipped: u32,
}

impl Pacer {
    pub fn new(start: Instant, ptime: Duration) -> Self {
        Self {
            start,
            ptime,
            next: 0,
            skipped: 0,
        }
    }

    pub fn ptime(&self) -> Duration {
        self.ptime
    }

    /// When the next packet is due; the shell sleeps until then.
    pub fn next_due(&self) -> Instant {
        self.due(self.next)
    }

    /// How many packets have been released or skipped so far.
    pub fn released(&self) -> u64 {
        self.next
    }

    /// How many packets are due at `now` (0 if woken early), at most `MAX_BURST`.
    pub fn poll(&mut self, now: Instant) -> u32 {
        if now < self.next_due() {
            return 0;
        }
        let elapsed = now.saturating_duration_since(self.start);
        // Slots 0..=last_due are due; u128 nanos avoids Duration division overflow concerns.
        let last_due = (elapsed.as_nanos() / self.ptime.as_nanos().max(1)) as u64;
        let due = last_due + 1 - self.next;
        let send = due.min(u64::from(MAX_BURST));
        let skip = due - send;
        self.skipped = self
            .skipped
            .saturating_add(u32::try_from(skip).unwrap_or(u32::MAX));
        self.next += due;
        // send <= MAX_BURST, so it fits.
        send as u32
    }

    /// Slots skipped by burst capping since the last call.
    pub fn take_skipped(&mut self) -> u32 {
        std::mem::take(&mut self.skipped)
    }

    fn due(&self, n: u64) -> Instant {
        // Multiplying in nanoseconds keeps the grid exact: no rounding error piles up.
        let nanos = self.ptime.as_nanos() * u128::from(n);
        let offset = Duration::new(
            (nanos / 1_000_000_000) as u64,
            (nanos % 1_000_000_000) as u32,
        );
        self.start + offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTIME: Duration = Duration::from_millis(20);

    #[test]
    fn first_packet_is_due_at_start() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, PTIME);
        assert_eq!(p.next_due(), t0);
        assert_eq!(p.poll(t0), 1);
        assert_eq!(p.next_due(), t0 + PTIME);
        assert_eq!(p.poll(t0 + Duration::from_millis(19)), 0, "early wake-up");
        assert_eq!(p.poll(t0 + PTIME), 1);
    }

    #[test]
    fn jittery_wakeups_do_not_drift_over_three_minutes() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, PTIME);
        let mut sent = 0u64;
        // Deterministic pseudo-random lateness between 0 and 7 ms on every wake-up.
        let mut lcg: u32 = 12345;
        while sent < 9000 {
            lcg = lcg.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let late = Duration::from_micros(u64::from((lcg >> 16) % 7000));
            let now = p.next_due() + late;
            let n = p.poll(now);
            assert!((1..=2).contains(&n), "a few ms late never releases a burst");
            sent += u64::from(n);
            assert_eq!(p.take_skipped(), 0);
        }
        assert_eq!(sent, 9000);
        // The 9000th packet (index 8999) went out; the next one is due at exactly 180 s.
        assert_eq!(p.next_due(), t0 + Duration::from_secs(180));
    }

    #[test]
    fn late_wakeup_catches_up_within_burst_cap() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, PTIME);
        assert_eq!(
            p.poll(t0 + Duration::from_millis(65)),
            4,
            "slots 0, 20, 40, 60"
        );
        assert_eq!(p.take_skipped(), 0);
        assert_eq!(p.next_due(), t0 + Duration::from_millis(80));
    }

    #[test]
    fn stall_is_capped_and_rest_skipped() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, PTIME);
        // Woken 1 s late: slots 0..=50 are due, five go out, 46 are skipped.
        assert_eq!(p.poll(t0 + Duration::from_secs(1)), MAX_BURST);
        assert_eq!(p.take_skipped(), 46);
        assert_eq!(p.take_skipped(), 0, "taking resets");
        assert_eq!(p.released(), 51);
        assert_eq!(p.next_due(), t0 + Duration::from_millis(1020));
    }
}
