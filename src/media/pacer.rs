//! Drift-free packet pacing, sans-IO. Packet n of a stream is due at exactly `start + n * ptime`;
//! deadlines are never derived from "now + ptime", so scheduler latency on one wake-up does not
//! accumulate into the stream's clock (a 3-minute prompt ends at 3 minutes, not 3 minutes plus
//! 9000 wake-up delays).
//!
//! [`Schedule`] keeps many streams' pacers on one timeline, so one thread can serve thousands of
//! calls with one wake-up per [`Schedule`] quantum instead of one timer and one task wake-up per
//! packet (see `ticker`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
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
        self.start + nanos(self.ptime.as_nanos() * u128::from(n))
    }
}

/// What one stream may do when `Schedule::run_due` reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Slots to serve now (at most `MAX_BURST`; at least 1).
    pub send: u32,
    /// Slots that passed unserved, before these (see `Pacer::take_skipped`).
    pub skipped: u32,
}

/// Many streams' pacers on one timeline, sans-IO. The shell sleeps until `next_wake` and then
/// calls `run_due`, which hands each stream with a slot due its `Due`, earliest first.
///
/// Wake-ups fall on a grid of `quantum` steps from `epoch`: a stream's slot is served at the
/// first grid point at or after its due time. The quantum divides the packet time, so each
/// stream meets the grid at the same offset in every period: the rounding adds a fixed delay of
/// less than one quantum to a stream, not jitter, while one wake-up serves every stream due in
/// that quantum. (Serving a stream the moment it is due would mean a wake-up per packet.)
#[derive(Debug)]
pub struct Schedule<T> {
    epoch: Instant,
    quantum: Duration,
    /// (next due, entry index); ties are served in entry order.
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    entries: Vec<Option<(Pacer, T)>>,
    free: Vec<usize>,
}

impl<T> Schedule<T> {
    pub fn new(epoch: Instant, quantum: Duration) -> Self {
        Self {
            epoch,
            quantum,
            heap: BinaryHeap::new(),
            entries: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Streams on the schedule.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Adds a stream paced by `pacer`; its first slot is served at the next wake-up at or after
    /// `pacer.next_due()`.
    pub fn insert(&mut self, pacer: Pacer, item: T) {
        let due = pacer.next_due();
        let entry = Some((pacer, item));
        let idx = match self.free.pop() {
            Some(idx) => {
                self.entries[idx] = entry;
                idx
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        };
        self.heap.push(Reverse((due, idx)));
    }

    /// When the shell should call `run_due` next: the grid point at or after the earliest due
    /// slot. `None` with no streams.
    pub fn next_wake(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((due, _))| self.ceil(*due))
    }

    /// Serves every stream due by the last grid point at or before `now`, earliest first:
    /// `serve` gets the stream and its `Due`, and returns whether the stream goes on (`false`
    /// removes it). Returns how many streams were served.
    pub fn run_due(&mut self, now: Instant, mut serve: impl FnMut(&mut T, Due) -> bool) -> usize {
        let limit = self.floor(now);
        let mut served = 0;
        while let Some(&Reverse((due, idx))) = self.heap.peek() {
            if due > limit {
                break;
            }
            self.heap.pop();
            // Every heap entry points at a live entry: both are removed together below.
            let Some((pacer, item)) = self.entries.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            let send = pacer.poll(limit);
            let skipped = pacer.take_skipped();
            served += 1;
            if serve(item, Due { send, skipped }) {
                self.heap.push(Reverse((pacer.next_due(), idx)));
            } else {
                self.entries[idx] = None;
                self.free.push(idx);
            }
        }
        served
    }

    /// The grid point at or after `t` (the epoch for anything earlier).
    fn ceil(&self, t: Instant) -> Instant {
        let q = self.quantum.as_nanos().max(1);
        let since = t.saturating_duration_since(self.epoch).as_nanos();
        self.epoch + nanos(since.div_ceil(q) * q)
    }

    /// The grid point at or before `t` (the epoch for anything earlier).
    fn floor(&self, t: Instant) -> Instant {
        let q = self.quantum.as_nanos().max(1);
        let since = t.saturating_duration_since(self.epoch).as_nanos();
        self.epoch + nanos(since / q * q)
    }
}

fn nanos(n: u128) -> Duration {
    Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32)
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

    const Q: Duration = Duration::from_millis(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs `sched` at every wake-up it asks for until `end`, recording (time, stream, due).
    fn drive(sched: &mut Schedule<u32>, end: Instant) -> Vec<(Instant, u32, Due)> {
        let mut log = Vec::new();
        while let Some(at) = sched.next_wake().filter(|&at| at < end) {
            sched.run_due(at, |id, due| {
                log.push((at, *id, due));
                true
            });
        }
        log
    }

    #[test]
    fn streams_are_served_on_the_grid_once_per_slot() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Q);
        // Stream 1 starts on a grid point, stream 2 between two.
        s.insert(Pacer::new(t0, PTIME), 1);
        s.insert(Pacer::new(t0 + Duration::from_micros(5300), PTIME), 2);
        let log = drive(&mut s, t0 + ms(100));
        let times = |id| {
            log.iter()
                .filter(|(_, i, _)| *i == id)
                .map(|(at, _, due)| {
                    assert_eq!(
                        *due,
                        Due {
                            send: 1,
                            skipped: 0
                        }
                    );
                    *at - t0
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(times(1), [0, 20, 40, 60, 80].map(ms));
        // Rounded up to the next grid point, by the same amount in every period: no jitter.
        assert_eq!(times(2), [6, 26, 46, 66, 86].map(ms));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn one_wakeup_serves_every_stream_due_in_its_quantum() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Q);
        for i in 0..10u32 {
            s.insert(
                Pacer::new(t0 + Duration::from_micros(100 * u64::from(i) + 1), PTIME),
                i,
            );
        }
        assert_eq!(s.next_wake(), Some(t0 + ms(1)));
        let mut order = Vec::new();
        let served = s.run_due(t0 + ms(1), |id, _| {
            order.push(*id);
            true
        });
        assert_eq!(served, 10);
        assert_eq!(order, (0..10).collect::<Vec<_>>(), "earliest due first");
        assert_eq!(s.next_wake(), Some(t0 + ms(21)));
    }

    #[test]
    fn early_or_mid_quantum_runs_serve_nothing_new() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Q);
        s.insert(Pacer::new(t0 + Duration::from_micros(200), PTIME), 7);
        // Woken between grid points (a new stream arrived): the stream waits for its grid point,
        // so its packets keep one fixed offset.
        let served = s.run_due(t0 + Duration::from_micros(900), |_, _| true);
        assert_eq!(served, 0);
        assert_eq!(s.run_due(t0 + ms(1), |_, _| true), 1);
    }

    #[test]
    fn late_wakeups_catch_up_and_report_skips() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Q);
        s.insert(Pacer::new(t0, PTIME), 1);
        let mut got = Vec::new();
        s.run_due(t0 + ms(65), |_, due| {
            got.push(due);
            true
        });
        s.run_due(t0 + ms(1000), |_, due| {
            got.push(due);
            true
        });
        assert_eq!(
            got,
            [
                Due {
                    send: 4,
                    skipped: 0
                },
                Due {
                    send: MAX_BURST,
                    skipped: 42
                }
            ]
        );
        assert_eq!(s.next_wake(), Some(t0 + ms(1020)));
    }

    #[test]
    fn ended_streams_leave_and_their_entries_are_reused() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, Q);
        s.insert(Pacer::new(t0, PTIME), 1);
        s.insert(Pacer::new(t0, PTIME), 2);
        s.run_due(t0, |id, _| *id != 1);
        assert_eq!(s.len(), 1);
        s.insert(Pacer::new(t0 + ms(3), PTIME), 3);
        assert_eq!(s.entries.len(), 2, "slot of stream 1 reused");
        let log = drive(&mut s, t0 + ms(30));
        let ids: Vec<u32> = log.iter().map(|(_, id, _)| *id).collect();
        assert_eq!(ids, [3, 2, 3]);
        s.run_due(t0 + ms(60), |_, _| false);
        assert!(s.is_empty());
        assert_eq!(s.next_wake(), None);
    }

    #[test]
    fn streams_started_before_the_epoch_are_served_at_once() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0 + ms(5), Q);
        s.insert(Pacer::new(t0, PTIME), 1);
        assert_eq!(s.next_wake(), Some(t0 + ms(5)));
        assert_eq!(s.run_due(t0 + ms(5), |_, _| true), 1);
        assert_eq!(s.next_wake(), Some(t0 + ms(20)));
    }
}
