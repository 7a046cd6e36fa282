//! RFC 4733 telephone-event decoder, sans-IO: fed the payload of every telephone-event RTP packet
//! with its arrival time, it returns each key press exactly once.
//!
//! A sender reports one key press as a run of packets that all carry the RTP timestamp of the
//! moment the key went down (§2.3.1), with a duration that grows as the key is held, and ends it with
//! (normally three) packets that have the E bit set (§2.5.1.4). The decoder therefore keys presses on
//! the timestamp: the digit is emitted on the first end packet, and every later packet with that
//! timestamp (the redundant ends, duplicates, stragglers) is ignored. When every end packet is lost
//! the press is emitted when the next press starts (a newer timestamp) or when `poll` sees no packet
//! for [`END_TIMEOUT`]. Presses longer than the 16-bit duration allows are split by the sender into
//! segments whose timestamps continue one another (§2.5.1.3); those are merged into one press.
//!
//! Which way a new timestamp moves says nothing: senders that replay recorded events (sipp's
//! captures) restart timestamps and sequence numbers under one SSRC. The sequence number does: it
//! is tracked as RFC 3550 A.1 does (a big jump is believed once the next packet follows it), and a
//! packet with a new timestamp is a straggler only when its sequence number is a little behind
//! (reordered) and it lacks the marker bit; otherwise it starts a new press (§2.5.1.3).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{DtmfDigit, DtmfSource};
use crate::media::rtp::RtpIn;
use crate::media::stats::{MAX_DROPOUT, MAX_MISORDER};

/// Why a telephone-event payload cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rfc4733Error {
    #[error("telephone-event payload is {0} bytes, at least 4 are needed (RFC 4733 §2.3)")]
    TooShort(usize),
}

/// The fixed part of one telephone-event payload (RFC 4733 §2.3, figure 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0–9, 10 `*`, 11 `#`, 12–15 `A`–`D` for DTMF; other codes are other events.
    pub event: u8,
    /// E bit: this packet reports the end of the event.
    pub end: bool,
    /// Power of the tone in −dBm0 (0 is loudest, 63 quietest).
    pub volume: u8,
    /// Length of the event so far, in timestamp units (samples of the 8 kHz clock).
    pub duration: u16,
}

impl TelephoneEvent {
    /// Reads the first event of a payload; trailing bytes (RFC 4733 §2.5.1.5 packs further events
    /// after it, RFC 2198 redundancy uses its own payload type) are not needed to find the digit.
    pub fn parse(payload: &[u8]) -> Result<Self, Rfc4733Error> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(Rfc4733Error::TooShort(payload.len()));
        };
        Ok(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }
}

/// The digit for a DTMF event code (RFC 4733 §3.2, table 7), `None` for any other event.
pub fn event_digit(event: u8) -> Option<char> {
    const DIGITS: [char; 16] = [
        '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
    ];
    DIGITS.get(usize::from(event)).copied()
}

/// Quietest event volume (in −dBm0) still taken as a key press. RFC 4733 §2.3.4 (after
/// TR-TSY-000181 / Q.24) says DTMF from 0 to −36 dBm0 must be accepted and below −55 dBm0 must be
/// rejected; we accept everything up to that rejection limit, because a quiet but deliberate
/// report is still a key press and real phones send around −10 dBm0.
pub const QUIETEST_VOLUME: u8 = 55;

/// With no packet for this long, a press whose end packets never came is taken as over. Senders
/// refresh a held key every packet interval (20–50 ms), so 500 ms is many lost packets in a row,
/// yet short enough that a caller does not notice the wait.
pub const END_TIMEOUT: Duration = Duration::from_millis(500);

/// Telephone-event timestamp units per millisecond: G.711 calls negotiate `telephone-event/8000`.
const UNITS_PER_MS: u32 = 8;

/// How far short of 0xFFFF a segment may have been seen (its last updates lost) and still be taken
/// as a full segment that the next one continues: 250 ms of updates.
const SEGMENT_SLACK: u32 = 2000;

/// Timestamps of finished presses remembered so their late packets are ignored; a press lasts at
/// least tens of milliseconds, so stragglers older than 16 presses do not happen.
const FINISHED_MEMORY: usize = 16;

/// The RTP header fields the decoder needs besides the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    /// Set on the first packet of an event (RFC 4733 §2.5.1.3).
    pub marker: bool,
}

impl From<&RtpIn> for EventHeader {
    fn from(pkt: &RtpIn) -> Self {
        Self {
            ssrc: pkt.ssrc,
            seq: pkt.seq,
            timestamp: pkt.timestamp,
            marker: pkt.marker,
        }
    }
}

/// Where a packet's sequence number puts it (RFC 3550 A.1, without the probation period: one
/// source per call, and a key press is too short to wait for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeqOrder {
    /// Next, a duplicate, or after a gap; or the packet that confirms a jump.
    InOrder,
    /// A little behind the highest seen: reordered on the way.
    Late,
    /// A big jump not yet confirmed by the packet after it.
    Jump,
}

#[derive(Debug, Clone, Default)]
struct SeqTracker {
    max_seq: Option<u16>,
    /// After a big jump: the sequence number that would confirm the sender restarted.
    bad_seq: Option<u16>,
}

impl SeqTracker {
    fn update(&mut self, seq: u16) -> SeqOrder {
        let Some(max) = self.max_seq else {
            self.max_seq = Some(seq);
            return SeqOrder::InOrder;
        };
        let delta = seq.wrapping_sub(max);
        if delta < MAX_DROPOUT || self.bad_seq == Some(seq) {
            self.max_seq = Some(seq);
            self.bad_seq = None;
            SeqOrder::InOrder
        } else if delta <= u16::MAX - MAX_MISORDER {
            self.bad_seq = Some(seq.wrapping_add(1));
            SeqOrder::Jump
        } else {
            SeqOrder::Late
        }
    }
}

/// The press currently being reported.
#[derive(Debug, Clone)]
struct Press {
    /// RTP timestamp of the current segment.
    timestamp: u32,
    event: u8,
    /// Any packet of the press was loud enough (see [`QUIETEST_VOLUME`]).
    audible: bool,
    /// Longest duration seen in the current segment (packets may arrive out of order).
    segment_duration: u32,
    /// Total length of the earlier segments of a long press.
    earlier_segments: u32,
    last_arrival: Instant,
    emitted: bool,
}

impl Press {
    fn digit(&self) -> Option<DtmfDigit> {
        let digit = event_digit(self.event).filter(|_| self.audible)?;
        Some(DtmfDigit {
            digit,
            duration_ms: (self.earlier_segments + self.segment_duration) / UNITS_PER_MS,
            source: DtmfSource::Rfc4733,
        })
    }

    /// Whether a packet with a newer timestamp belongs to this press rather than starting a new one:
    /// the next segment of a long press starts where this one ends (§2.5.1.3), and a sender that
    /// wrongly restamps every packet starts each "event" inside the one before. A real new press
    /// starts after the old one's end, so it never matches.
    fn continued_by(&self, timestamp: u32, event: u8) -> bool {
        let delta = timestamp.wrapping_sub(self.timestamp);
        let full_segment = self.segment_duration + SEGMENT_SLACK >= u32::from(u16::MAX);
        event == self.event
            && (delta <= self.segment_duration || (full_segment && delta <= u32::from(u16::MAX)))
            && (!self.emitted || full_segment)
    }
}

/// Turns telephone-event packets into digits; one per call (and per SSRC, reset on a change).
#[derive(Debug, Clone, Default)]
pub struct Rfc4733Decoder {
    ssrc: Option<u32>,
    seq: SeqTracker,
    current: Option<Press>,
    finished: VecDeque<u32>,
}

impl Rfc4733Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet; returns the presses it completes (usually none or one; two
    /// when it both proves an earlier press over and is itself the end of a new one).
    pub fn on_packet(
        &mut self,
        hdr: EventHeader,
        payload: &[u8],
        arrival: Instant,
    ) -> Result<Vec<DtmfDigit>, Rfc4733Error> {
        let ev = TelephoneEvent::parse(payload)?;
        let mut out = Vec::new();
        let timestamp = hdr.timestamp;
        if self.ssrc != Some(hdr.ssrc) {
            // A new source numbers its timestamps afresh: what we remember means nothing for it.
            out.extend(self.close_current());
            self.finished.clear();
            self.seq = SeqTracker::default();
            self.ssrc = Some(hdr.ssrc);
        }
        let order = self.seq.update(hdr.seq);
        // A.1 drops an unconfirmed jump; the marker bit vouches for it being a new event's start.
        if order == SeqOrder::Jump && !hdr.marker {
            return Ok(out);
        }
        if self.finished.contains(&timestamp) {
            return Ok(out);
        }
        let audible = ev.volume <= QUIETEST_VOLUME;
        let duration = u32::from(ev.duration);
        let new_event = hdr.marker || order == SeqOrder::Jump;
        match &mut self.current {
            Some(p) if p.timestamp == timestamp => {
                p.segment_duration = p.segment_duration.max(duration);
                p.audible |= audible;
                p.last_arrival = arrival;
            }
            // Reordered on the way, unmarked, with a timestamp that is not the current press's: a
            // straggler from a press whose other packets we never saw, long over by now. A marked
            // one is a new press from a sender replaying recorded packets (sipp plays its "2"
            // capture a few sequence numbers below its "4"), as A.1 counts late packets too.
            Some(_) if order == SeqOrder::Late && !hdr.marker => return Ok(out),
            Some(p) if !new_event && p.continued_by(timestamp, ev.event) => {
                self.finished.push_back(p.timestamp);
                p.earlier_segments += timestamp.wrapping_sub(p.timestamp);
                p.timestamp = timestamp;
                p.segment_duration = duration;
                p.audible |= audible;
                p.last_arrival = arrival;
            }
            _ => {
                out.extend(self.close_current());
                self.current = Some(Press {
                    timestamp,
                    event: ev.event,
                    audible,
                    segment_duration: duration,
                    earlier_segments: 0,
                    last_arrival: arrival,
                    emitted: false,
                });
            }
        }
        if ev.end {
            out.extend(self.emit_current());
        }
        self.trim_finished();
        Ok(out)
    }

    /// Emits a press whose end packets were all lost once nothing has arrived for [`END_TIMEOUT`].
    pub fn poll(&mut self, now: Instant) -> Option<DtmfDigit> {
        let p = self.current.as_ref()?;
        if p.emitted || now.saturating_duration_since(p.last_arrival) < END_TIMEOUT {
            return None;
        }
        self.emit_current()
    }

    /// When `poll` should next be called, if a press is waiting for its end.
    pub fn poll_at(&self) -> Option<Instant> {
        let p = self.current.as_ref().filter(|p| !p.emitted)?;
        Some(p.last_arrival + END_TIMEOUT)
    }

    /// Marks the current press reported and returns its digit, once.
    fn emit_current(&mut self) -> Option<DtmfDigit> {
        let p = self.current.as_mut().filter(|p| !p.emitted)?;
        p.emitted = true;
        let ts = p.timestamp;
        let digit = p.digit();
        self.finished.push_back(ts);
        digit
    }

    /// Retires the current press, emitting it if its end was never seen.
    fn close_current(&mut self) -> Option<DtmfDigit> {
        let digit = self.emit_current();
        self.current = None;
        digit
    }

    fn trim_finished(&mut self) {
        while self.finished.len() > FINISHED_MEMORY {
            self.finished.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A telephone-event payload as a sender builds it.
    pub(crate) fn payload(event: u8, end: bool, volume: u8, duration: u16) -> Vec<u8> {
        let d = duration.to_be_bytes();
        vec![event, if end { 0x80 } else { 0 } | volume, d[0], d[1]]
    }

    /// One key press as a conformant sender transmits it: an update every 20 ms (160 units), then
    /// the final duration three times with the E bit (RFC 4733 §2.5.1.4).
    fn press(event: u8, ts: u32, len: u16) -> Vec<(u32, Vec<u8>)> {
        let mut pkts: Vec<_> = (0..len / 160)
            .map(|i| (ts, payload(event, false, 10, i * 160)))
            .collect();
        for _ in 0..3 {
            pkts.push((ts, payload(event, true, 10, len)));
        }
        pkts
    }

    /// An unmarked header of SSRC 7.
    fn hdr(seq: u16, timestamp: u32) -> EventHeader {
        EventHeader {
            ssrc: 7,
            seq,
            timestamp,
            marker: false,
        }
    }

    /// Feeds `pkts` 20 ms apart, numbered in the order given (the tests here are about timestamps).
    fn run(dec: &mut Rfc4733Decoder, pkts: &[(u32, Vec<u8>)], t0: Instant) -> Vec<DtmfDigit> {
        let numbered: Vec<_> = pkts
            .iter()
            .enumerate()
            .map(|(i, (ts, p))| (hdr(i as u16, *ts), p.clone()))
            .collect();
        run_headers(dec, &numbered, t0)
    }

    fn run_headers(
        dec: &mut Rfc4733Decoder,
        pkts: &[(EventHeader, Vec<u8>)],
        t0: Instant,
    ) -> Vec<DtmfDigit> {
        let mut out = Vec::new();
        for (i, (h, p)) in pkts.iter().enumerate() {
            let at = t0 + Duration::from_millis(20 * i as u64);
            out.extend(dec.on_packet(*h, p, at).expect("valid payload"));
            out.extend(dec.poll(at));
        }
        out
    }

    /// One press as `press` builds it, numbered from `seq` with the marker on its first packet.
    fn marked_press(seq: u16, event: u8, ts: u32, len: u16) -> Vec<(EventHeader, Vec<u8>)> {
        press(event, ts, len)
            .into_iter()
            .enumerate()
            .map(|(i, (ts, p))| {
                let mut h = hdr(seq.wrapping_add(i as u16), ts);
                h.marker = i == 0;
                (h, p)
            })
            .collect()
    }

    fn digits(found: &[DtmfDigit]) -> String {
        found.iter().map(|d| d.digit).collect()
    }

    #[test]
    fn parses_the_payload_fields() {
        let ev = TelephoneEvent::parse(&[11, 0x80 | 10, 0x08, 0xC0]).expect("4 bytes");
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 2240
            }
        );
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(Rfc4733Error::TooShort(3))
        );
        assert_eq!(event_digit(10), Some('*'));
        assert_eq!(event_digit(15), Some('D'));
        assert_eq!(event_digit(16), None);
    }

    #[test]
    fn redundant_end_packets_give_one_digit_with_its_duration() {
        let mut dec = Rfc4733Decoder::new();
        let found = run(&mut dec, &press(5, 1000, 800), Instant::now());
        assert_eq!(digits(&found), "5");
        assert_eq!(found[0].duration_ms, 100);
        assert_eq!(found[0].source, DtmfSource::Rfc4733);
    }

    #[test]
    fn reordered_and_duplicated_packets_give_one_digit() {
        let mut pkts = press(9, 4242, 1600);
        pkts.swap(2, 5);
        let end = pkts[pkts.len() - 1].clone();
        pkts.insert(1, end.clone()); // an end packet overtaking the updates
        pkts.push(pkts[3].clone()); // a duplicated update after the end
        pkts.push(end);
        let found = run(&mut Rfc4733Decoder::new(), &pkts, Instant::now());
        assert_eq!(digits(&found), "9");
    }

    #[test]
    fn same_key_twice_gives_two_digits() {
        let mut pkts = press(1, 8000, 640);
        pkts.extend(press(1, 8000 + 640 + 800, 640));
        let found = run(&mut Rfc4733Decoder::new(), &pkts, Instant::now());
        assert_eq!(digits(&found), "11");
    }

    #[test]
    fn timestamps_restarting_backwards_start_a_new_press() {
        // sipp replays its captures with their recorded numbers under one SSRC: "0" at seq 12080,
        // timestamp 17632, then "1" at seq 7984, timestamp 13280 (half a second back), then "2".
        let mut dec = Rfc4733Decoder::new();
        let t0 = Instant::now();
        let mut pkts = marked_press(12_080, 0, 17_632, 2240);
        pkts.extend(marked_press(7984, 1, 13_280, 2240));
        pkts.extend(marked_press(8042, 2, 23_200, 2240));
        assert_eq!(digits(&run_headers(&mut dec, &pkts, t0)), "012");
    }

    #[test]
    fn an_unmarked_jump_is_believed_once_the_next_packet_follows_it() {
        let mut dec = Rfc4733Decoder::new();
        let t0 = Instant::now();
        let mut pkts = marked_press(12_080, 0, 17_632, 2240);
        // The new press's marked first packet is lost: the jump stands alone for one packet.
        let mut next = marked_press(7984, 1, 13_280, 2240);
        next.remove(0);
        pkts.extend(next);
        let found = run_headers(&mut dec, &pkts, t0);
        assert_eq!(digits(&found), "01");
        assert_eq!(found[1].duration_ms, 280);
        // A lone packet far off in sequence and unmarked is ignored (A.1 garbage).
        let stray = (hdr(40_000, 99_999), payload(9, true, 10, 800));
        assert_eq!(digits(&run_headers(&mut dec, &[stray], t0)), "");
    }

    #[test]
    fn a_reordered_packet_from_an_unseen_older_press_is_ignored() {
        let mut dec = Rfc4733Decoder::new();
        let t0 = Instant::now();
        let pkts = marked_press(100, 3, 8000, 960);
        assert_eq!(digits(&run_headers(&mut dec, &pkts, t0)), "3");
        // Sequence numbers a little behind, a timestamp never seen, no marker: late.
        let late = (hdr(95, 7200), payload(6, true, 10, 480));
        assert_eq!(digits(&run_headers(&mut dec, &[late], t0)), "");
    }

    #[test]
    fn a_marked_press_a_little_behind_in_sequence_is_a_new_press() {
        // sipp's captures played 5, 1, 4, 2: the "2" (seq 8042) is 86 below the "4" (8121..8128).
        let mut dec = Rfc4733Decoder::new();
        let t0 = Instant::now();
        let mut pkts = marked_press(8155, 5, 43_200, 2240);
        pkts.extend(marked_press(7984, 1, 13_280, 2240));
        pkts.extend(marked_press(8121, 4, 37_120, 2240));
        pkts.extend(marked_press(8042, 2, 23_200, 2240));
        assert_eq!(digits(&run_headers(&mut dec, &pkts, t0)), "5142");
    }

    #[test]
    fn a_marker_starts_a_new_press_even_where_a_segment_would_continue() {
        // A second press of the same key stamped inside the first one's span (a sender whose event
        // clock runs slow): unmarked it would be taken as a restamped packet of the first.
        let mut dec = Rfc4733Decoder::new();
        let t0 = Instant::now();
        let mut pkts = marked_press(10, 4, 1000, 2240);
        pkts.truncate(pkts.len() - 3);
        pkts.extend(marked_press(30, 4, 1800, 800));
        assert_eq!(digits(&run_headers(&mut dec, &pkts, t0)), "44");
    }

    #[test]
    fn lost_end_packets_are_recovered_by_the_next_press() {
        let mut pkts = press(3, 100, 960);
        pkts.truncate(pkts.len() - 3);
        pkts.extend(press(4, 100 + 960 + 400, 960));
        let found = run(&mut Rfc4733Decoder::new(), &pkts, Instant::now());
        assert_eq!(digits(&found), "34");
        assert_eq!(found[0].duration_ms, 100); // the last update seen: 800 units
    }

    #[test]
    fn lost_end_packets_are_recovered_by_the_timeout_once() {
        let mut dec = Rfc4733Decoder::new();
        let t0 = Instant::now();
        let mut pkts = press(7, 55, 960);
        pkts.truncate(pkts.len() - 3);
        assert!(run(&mut dec, &pkts, t0).is_empty());
        let last = t0 + Duration::from_millis(20 * (pkts.len() as u64 - 1));
        assert_eq!(dec.poll_at(), Some(last + END_TIMEOUT));
        assert_eq!(
            dec.poll(last + END_TIMEOUT - Duration::from_millis(1)),
            None
        );
        let d = dec.poll(last + END_TIMEOUT).expect("timed out press");
        assert_eq!(d.digit, '7');
        assert_eq!(dec.poll(last + END_TIMEOUT * 4), None);
        // The end packets turning up late must not repeat it.
        let late = dec.on_packet(
            hdr(2, 55),
            &payload(7, true, 10, 960),
            last + END_TIMEOUT * 5,
        );
        assert_eq!(late, Ok(vec![]));
    }

    #[test]
    fn held_key_across_duration_wrap_segments_is_one_digit() {
        // 10 s press: a full 0xFFFF segment, then a continuation stamped 0xFFFF later (§2.5.1.3).
        let ts0 = u32::MAX - 30_000; // and the RTP timestamp itself wraps inside the press
        let ts1 = ts0.wrapping_add(0xFFFF);
        let mut pkts: Vec<_> = (0..=409u16)
            .map(|i| (ts0, payload(2, false, 10, i * 160)))
            .collect();
        pkts.push((ts0, payload(2, false, 10, 0xFFFF)));
        pkts.extend((0..100u16).map(|i| (ts1, payload(2, false, 10, i * 160))));
        pkts.extend((0..3).map(|_| (ts1, payload(2, true, 10, 16_000))));
        let found = run(&mut Rfc4733Decoder::new(), &pkts, Instant::now());
        assert_eq!(digits(&found), "2");
        assert_eq!(found[0].duration_ms, (0xFFFF + 16_000) / 8);
    }

    #[test]
    fn too_quiet_and_non_dtmf_events_are_not_digits() {
        let t0 = Instant::now();
        let mut dec = Rfc4733Decoder::new();
        assert_eq!(
            dec.on_packet(hdr(1, 10), &payload(5, true, 56, 800), t0),
            Ok(vec![])
        );
        let found = dec
            .on_packet(hdr(2, 2000), &payload(5, true, 55, 800), t0)
            .expect("valid");
        assert_eq!(digits(&found), "5");
        // Event 16 is hook flash: a telephone event, but no digit.
        assert_eq!(
            dec.on_packet(hdr(3, 4000), &payload(16, true, 10, 800), t0),
            Ok(vec![])
        );
    }

    #[test]
    fn a_new_ssrc_starts_afresh() {
        let t0 = Instant::now();
        let mut dec = Rfc4733Decoder::new();
        let open = dec.on_packet(hdr(1, 10), &payload(6, false, 10, 160), t0);
        assert_eq!(open, Ok(vec![]));
        // The old source's press is closed; the new source may reuse the same timestamp.
        let found = dec
            .on_packet(
                EventHeader {
                    ssrc: 8,
                    ..hdr(1, 10)
                },
                &payload(8, true, 10, 800),
                t0,
            )
            .expect("valid");
        assert_eq!(digits(&found), "68");
    }
}
