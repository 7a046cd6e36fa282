//! RTP receive statistics (RFC 3550 §6.4.1 and appendices A.1, A.3, A.8), sans-IO: fed each
//! packet's sequence number, RTP timestamp and arrival time, it tracks loss and interarrival
//! jitter the way RTCP receiver reports define them, so our numbers match what a SIP trunk
//! provider's tools report for the same call.
//!
//! Loss counts every packet of the stream (RFC 4733 events share the audio's sequence numbers),
//! jitter only the audio: an event's timestamp stays at the key-down instant for the whole press
//! (RFC 4733 §2.3.1), and a replayed capture's events carry timestamps of another recording
//! altogether, so their "transit time" says nothing about the network and would swamp the figure.

use std::fmt;
use std::time::Instant;

/// A forward jump smaller than this is taken as loss; a larger one as a restarted sender (A.1).
pub(crate) const MAX_DROPOUT: u16 = 3000;
/// A backward step smaller than this is taken as a late (reordered or duplicated) packet (A.1).
pub(crate) const MAX_MISORDER: u16 = 100;

#[derive(Debug, Clone, Default)]
pub struct RtpStats {
    /// Set by the first packet; `None` means nothing received yet.
    seq: Option<SeqState>,
    /// Packets accepted (including duplicates, as RFC 3550 counts them).
    received: u64,
    /// Packets ignored as the unconfirmed first packet of a sequence jump.
    discarded: u64,
    jitter: Jitter,
}

#[derive(Debug, Clone)]
struct SeqState {
    /// Extended (cycles-counted) sequence number of the first packet.
    base: u64,
    max_seq: u16,
    /// Sequence-number wrap count, in units of 2^16.
    cycles: u64,
    /// After a large jump: the sequence number that would confirm the sender restarted.
    bad_seq: Option<u16>,
}

#[derive(Debug, Clone, Default)]
struct Jitter {
    /// Arrival time of the first packet: arrival timestamps count from here.
    origin: Option<Instant>,
    last_transit: Option<u32>,
    /// Estimate in RTP timestamp units (A.8 keeps it scaled by 16; a float needs no scaling).
    value: f64,
    clock_rate: u32,
}

/// Counters at one point in time, for logs, CDRs and RTCP.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RtpStatsSnapshot {
    /// Packets received (duplicates included).
    pub packets: u64,
    /// Packets the sequence numbers say were sent: extended highest seq − first seq + 1.
    pub expected: u64,
    /// Cumulative lost packets, `expected - packets`; negative when duplicates outnumber losses.
    pub lost_raw: i64,
    /// `lost_raw` clamped to zero, for reporting.
    pub lost: u64,
    /// Extended highest sequence number received.
    pub highest_seq: u64,
    /// Interarrival jitter in RTP timestamp units (the RTCP RR field).
    pub jitter_ts: u32,
    /// Interarrival jitter in milliseconds.
    pub jitter_ms: f64,
    /// Packets not counted because they looked like a jump to a new sequence.
    pub discarded: u64,
}

impl RtpStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one received audio packet of the negotiated codec, with its clock rate (8000 for
    /// G.711): it counts for loss and jitter.
    pub fn on_audio(&mut self, seq: u16, rtp_ts: u32, arrival: Instant, clock_rate: u32) {
        if self.count(seq) {
            self.jitter.update(rtp_ts, arrival, clock_rate);
        }
    }

    /// Records one received packet that is not audio (telephone events, comfort noise, other
    /// payload types): it counts for loss only.
    pub fn on_other(&mut self, seq: u16) {
        self.count(seq);
    }

    fn count(&mut self, seq: u16) -> bool {
        if !self.update_seq(seq) {
            self.discarded += 1;
            return false;
        }
        self.received += 1;
        true
    }

    /// A.1 `update_seq`, without the probation period for new sources (we latch onto one
    /// source per session, so a single packet is enough to start).
    fn update_seq(&mut self, seq: u16) -> bool {
        let Some(s) = self.seq.as_mut() else {
            self.seq = Some(SeqState {
                base: u64::from(seq),
                max_seq: seq,
                cycles: 0,
                bad_seq: None,
            });
            return true;
        };
        let delta = seq.wrapping_sub(s.max_seq);
        if delta < MAX_DROPOUT {
            // In order, possibly with a gap.
            if seq < s.max_seq {
                s.cycles += 1;
            }
            s.max_seq = seq;
            s.bad_seq = None;
        } else if delta <= u16::MAX - MAX_MISORDER {
            // A big jump: either garbage or the sender restarted; two consecutive packets decide.
            if s.bad_seq == Some(seq) {
                self.seq = None;
                self.received = 0;
                // A restarted sender stamps afresh: one transit step across the restart would
                // weigh in as 1/16 of the jump.
                self.jitter.last_transit = None;
                return self.update_seq(seq);
            }
            s.bad_seq = Some(seq.wrapping_add(1));
            return false;
        }
        // Otherwise a duplicate or late packet: counted, but the highest seq stays.
        true
    }

    pub fn snapshot(&self) -> RtpStatsSnapshot {
        let (highest, expected) = match &self.seq {
            Some(s) => {
                let ext = (s.cycles << 16) | u64::from(s.max_seq);
                (ext, ext + 1 - s.base)
            }
            None => (0, 0),
        };
        let lost_raw = expected as i64 - self.received as i64;
        let jitter_ms = if self.jitter.clock_rate == 0 {
            0.0
        } else {
            self.jitter.value * 1000.0 / f64::from(self.jitter.clock_rate)
        };
        RtpStatsSnapshot {
            packets: self.received,
            expected,
            lost_raw,
            lost: lost_raw.max(0) as u64,
            highest_seq: highest,
            jitter_ts: self.jitter.value as u32,
            jitter_ms,
            discarded: self.discarded,
        }
    }
}

impl Jitter {
    /// A.8: J += (|D(i-1, i)| - J) / 16, where D is the change in transit time.
    fn update(&mut self, rtp_ts: u32, arrival: Instant, clock_rate: u32) {
        self.clock_rate = clock_rate;
        let origin = *self.origin.get_or_insert(arrival);
        let since = arrival.saturating_duration_since(origin).as_nanos();
        // Arrival time in timestamp units; the RTP timestamp wraps mod 2^32, so this does too.
        let arrival_ts = (since * u128::from(clock_rate) / 1_000_000_000) as u32;
        let transit = arrival_ts.wrapping_sub(rtp_ts);
        if let Some(last) = self.last_transit {
            // Reinterpreting the wrapped difference as signed yields the true small delta.
            let d = f64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            self.value += (d - self.value) / 16.0;
        }
        self.last_transit = Some(transit);
    }
}

impl fmt::Display for RtpStatsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = if self.expected == 0 {
            0.0
        } else {
            self.lost as f64 * 100.0 / self.expected as f64
        };
        write!(
            f,
            "rtp rx packets={} expected={} lost={} ({pct:.1}%) jitter={:.1}ms",
            self.packets, self.expected, self.lost, self.jitter_ms
        )?;
        if self.discarded > 0 {
            write!(f, " discarded={}", self.discarded)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const RATE: u32 = 8000;

    /// Feeds packets `(seq, index-in-time)` arriving exactly on a 20 ms grid.
    fn feed(stats: &mut RtpStats, t0: Instant, seqs: &[(u16, u32)]) {
        for &(seq, i) in seqs {
            let arrival = t0 + Duration::from_millis(20 * u64::from(i));
            stats.on_audio(seq, 1000 + 160 * i, arrival, RATE);
        }
    }

    #[test]
    fn no_loss_perfect_pacing_has_zero_jitter() {
        let mut s = RtpStats::new();
        let pkts: Vec<(u16, u32)> = (0..100).map(|i| (500 + i as u16, i)).collect();
        feed(&mut s, Instant::now(), &pkts);
        let snap = s.snapshot();
        assert_eq!((snap.packets, snap.expected, snap.lost), (100, 100, 0));
        assert_eq!(snap.highest_seq, 599);
        assert_eq!(snap.jitter_ms, 0.0);
        assert_eq!(
            snap.to_string(),
            "rtp rx packets=100 expected=100 lost=0 (0.0%) jitter=0.0ms"
        );
    }

    #[test]
    fn gaps_count_as_lost() {
        let mut s = RtpStats::new();
        // 10..20 with 13, 14 and 17 missing.
        let pkts: Vec<(u16, u32)> = (10..20u16)
            .filter(|q| ![13, 14, 17].contains(q))
            .map(|q| (q, u32::from(q)))
            .collect();
        feed(&mut s, Instant::now(), &pkts);
        let snap = s.snapshot();
        assert_eq!((snap.packets, snap.expected, snap.lost), (7, 10, 3));
    }

    #[test]
    fn reordered_packets_are_not_lost() {
        let mut s = RtpStats::new();
        feed(
            &mut s,
            Instant::now(),
            &[(1, 1), (2, 2), (4, 3), (3, 4), (5, 5)],
        );
        let snap = s.snapshot();
        assert_eq!((snap.packets, snap.expected, snap.lost), (5, 5, 0));
        assert_eq!(snap.highest_seq, 5);
    }

    #[test]
    fn duplicates_make_raw_loss_negative_but_reported_loss_zero() {
        let mut s = RtpStats::new();
        feed(&mut s, Instant::now(), &[(1, 1), (2, 2), (2, 2), (3, 3)]);
        let snap = s.snapshot();
        assert_eq!((snap.packets, snap.expected), (4, 3));
        assert_eq!((snap.lost_raw, snap.lost), (-1, 0));
    }

    #[test]
    fn sequence_wrap_extends_highest_seq() {
        let mut s = RtpStats::new();
        let pkts: Vec<(u16, u32)> = (0..10u32)
            .map(|i| (65530u16.wrapping_add(i as u16), i))
            .collect();
        feed(&mut s, Instant::now(), &pkts);
        let snap = s.snapshot();
        assert_eq!((snap.packets, snap.expected, snap.lost), (10, 10, 0));
        assert_eq!(snap.highest_seq, 65536 + 3);
    }

    #[test]
    fn late_packet_from_before_wrap_does_not_count_a_cycle() {
        let mut s = RtpStats::new();
        feed(
            &mut s,
            Instant::now(),
            &[(65534, 0), (0, 2), (65535, 1), (1, 3)],
        );
        let snap = s.snapshot();
        assert_eq!((snap.packets, snap.expected, snap.lost), (4, 4, 0));
        assert_eq!(snap.highest_seq, 65537);
    }

    #[test]
    fn big_jump_needs_confirmation_then_restarts() {
        let mut s = RtpStats::new();
        feed(&mut s, Instant::now(), &[(1, 1), (2, 2), (30000, 3)]);
        assert_eq!(s.snapshot().packets, 2, "lone jump discarded");
        assert_eq!(s.snapshot().discarded, 1);
        feed(&mut s, Instant::now(), &[(30001, 4), (30002, 5)]);
        let snap = s.snapshot();
        assert_eq!((snap.packets, snap.expected, snap.lost), (2, 2, 0));
    }

    #[test]
    fn jittered_arrivals_give_positive_jitter() {
        let mut s = RtpStats::new();
        let t0 = Instant::now();
        for i in 0..200u32 {
            // Every other packet arrives 10 ms late: |D| alternates 80 ts units.
            let late = if i % 2 == 1 { 10 } else { 0 };
            let arrival = t0 + Duration::from_millis(20 * u64::from(i) + late);
            s.on_audio(i as u16, 160 * i, arrival, RATE);
        }
        let snap = s.snapshot();
        // J converges towards |D| = 80 units = 10 ms.
        assert!(snap.jitter_ms > 9.0 && snap.jitter_ms <= 10.0, "{snap}");
        assert!(snap.jitter_ts > 70 && snap.jitter_ts <= 80);
    }

    /// Issue 12 item 18: 1 s of audio, a 2 s key press sent as RFC 4733 events (their timestamp
    /// that of a capture recorded elsewhere, fixed for the whole press), 1 s more audio, all on a
    /// perfect 20 ms grid: no jitter at all, and every packet counted.
    #[test]
    fn key_press_events_count_for_loss_but_not_for_jitter() {
        let mut s = RtpStats::new();
        let t0 = Instant::now();
        let at = |slot: u32| t0 + Duration::from_millis(20 * u64::from(slot));
        let mut seq = 7000u16;
        let mut next = || {
            seq = seq.wrapping_add(1);
            seq
        };
        let audio_ts = |slot: u32| 3_000_000_000u32.wrapping_add(160 * slot);
        for slot in 0..50 {
            s.on_audio(next(), audio_ts(slot), at(slot), RATE);
        }
        for _slot in 50..150 {
            s.on_other(next()); // timestamp 17632 throughout
        }
        for slot in 150..200 {
            s.on_audio(next(), audio_ts(slot), at(slot), RATE);
        }
        let snap = s.snapshot();
        assert_eq!((snap.packets, snap.expected, snap.lost), (200, 200, 0));
        assert_eq!((snap.jitter_ts, snap.jitter_ms), (0, 0.0), "{snap}");
    }

    #[test]
    fn jitter_is_reported_in_ms_of_the_clock_rate() {
        let mut s = RtpStats::new();
        let t0 = Instant::now();
        // Every packet 5 ms (40 units at 8 kHz) later than the one before relative to its
        // timestamp: |D| = 40 each time, and J tends to 40 units = 5 ms.
        for i in 0..400u32 {
            let arrival = t0 + Duration::from_millis(25 * u64::from(i));
            s.on_audio(i as u16, 160 * i, arrival, RATE);
        }
        let snap = s.snapshot();
        assert_eq!(snap.jitter_ts, 39, "{snap}"); // truncated from 39.99...
        assert!((snap.jitter_ms - 5.0).abs() < 0.01, "{snap}");
        assert!(snap.to_string().ends_with("jitter=5.0ms"), "{snap}");
    }

    #[test]
    fn a_confirmed_sequence_restart_does_not_jump_the_jitter() {
        let mut s = RtpStats::new();
        let t0 = Instant::now();
        for i in 0..50u32 {
            let arrival = t0 + Duration::from_millis(20 * u64::from(i));
            s.on_audio(100 + i as u16, 160 * i, arrival, RATE);
        }
        // The sender restarts (a second capture replayed): new sequence and timestamp bases.
        for i in 50..100u32 {
            let arrival = t0 + Duration::from_millis(20 * u64::from(i));
            s.on_audio(40_000 + i as u16, 999_999 + 160 * i, arrival, RATE);
        }
        let snap = s.snapshot();
        assert_eq!(snap.discarded, 1);
        assert_eq!(snap.jitter_ms, 0.0, "{snap}");
    }

    #[test]
    fn empty_stats() {
        let snap = RtpStats::new().snapshot();
        assert_eq!(snap, RtpStatsSnapshot::default());
    }
}
