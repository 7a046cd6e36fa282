//! Tests of `DtmfReceiver`: the shipped sipp RFC 4733 captures, and calls that signal the same key
//! two ways at once.

use std::path::Path;
use std::time::{Duration, Instant};

use super::test_support::{Signal, read_pcap_udp, skip_or_fail};
use super::*;
use crate::media::rtp;

const TE_PT: u8 = 101;
const SSRC: u32 = 0x1234_5678;

fn collect(
    rx: &mut DtmfReceiver,
    digit: Option<DtmfDigit>,
    out: &mut Vec<DtmfDigit>,
    now: Instant,
) {
    out.extend(digit);
    while let Some(d) = rx.poll(now) {
        out.push(d);
    }
}

/// Feeds every RTP packet of a capture at its captured pace; `None` if the file is missing.
fn replay_capture(
    path: &Path,
    mangle: impl Fn(Vec<rtp::RtpIn>) -> Vec<rtp::RtpIn>,
) -> Option<Vec<DtmfDigit>> {
    let udp = read_pcap_udp(path)?;
    let t0 = Instant::now();
    let first = udp.first().map_or(0, |u| u.micros);
    let mut timed: Vec<(Instant, rtp::RtpIn)> = udp
        .iter()
        .map(|u| {
            let pkt = rtp::parse(&u.payload).expect("the capture holds RTP");
            (t0 + Duration::from_micros(u.micros - first), pkt)
        })
        .collect();
    let times: Vec<Instant> = timed.iter().map(|(t, _)| *t).collect();
    let pkts = mangle(timed.drain(..).map(|(_, p)| p).collect());
    let mut rx = DtmfReceiver::new(Codec::Pcmu, Some(TE_PT));
    let mut out = Vec::new();
    let mut now = t0;
    for (i, pkt) in pkts.iter().enumerate() {
        now = times.get(i).copied().unwrap_or(now);
        let d = rx.on_rtp(pkt, now);
        collect(&mut rx, d, &mut out, now);
    }
    let later = now + Duration::from_secs(2);
    collect(&mut rx, None, &mut out, later);
    Some(out)
}

#[test]
fn sipp_capture_of_key_0_gives_exactly_one_0() {
    let path = Path::new("/usr/share/sip-tester/dtmf_2833_0.pcap");
    let Some(found) = replay_capture(path, |p| p) else {
        return skip_or_fail(&path.display().to_string());
    };
    // 8 packets, the last three the redundant end reports, duration 2240 units = 280 ms.
    assert_eq!(
        found,
        vec![DtmfDigit {
            digit: '0',
            duration_ms: 280,
            source: DtmfSource::Rfc4733
        }]
    );
}

#[test]
fn every_sipp_capture_gives_its_key_once_even_shuffled_and_duplicated() {
    let keys = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "pound", "star",
    ];
    for key in keys {
        let path = format!("/usr/share/sip-tester/dtmf_2833_{key}.pcap");
        let expected = match key {
            "pound" => '#',
            "star" => '*',
            k => k.chars().next().expect("one char"),
        };
        let Some(found) = replay_capture(Path::new(&path), |p| p) else {
            return skip_or_fail(&path);
        };
        assert_eq!(
            found.iter().map(|d| d.digit).collect::<String>(),
            expected.to_string()
        );
        // The network's worst: every packet twice, neighbours swapped, the first end first.
        let found = replay_capture(Path::new(&path), |mut p| {
            let end = p
                .iter()
                .position(|q| q.payload[1] & 0x80 != 0)
                .expect("an end packet");
            p.swap(1, end);
            p.swap(3, 4);
            p.iter().flat_map(|q| [q.clone(), q.clone()]).collect()
        })
        .expect("read above");
        assert_eq!(found.len(), 1, "{path}: {found:?}");
        assert_eq!(found[0].digit, expected);
    }
}

/// A call's received stream, built 20 ms at a time: audio packets and telephone-event packets.
struct Call {
    codec: Codec,
    seq: u16,
    pkts: Vec<(Duration, rtp::RtpIn)>,
}

impl Call {
    fn new(codec: Codec) -> Self {
        Self {
            codec,
            seq: 0,
            pkts: Vec::new(),
        }
    }

    fn push(&mut self, at_ms: u64, payload_type: u8, timestamp: u32, payload: Vec<u8>) {
        self.seq = self.seq.wrapping_add(1);
        let pkt = rtp::RtpIn {
            payload_type,
            seq: self.seq,
            timestamp,
            ssrc: SSRC,
            marker: false,
            payload,
        };
        self.pkts.push((Duration::from_millis(at_ms), pkt));
    }

    /// Audio `pcm` as 20 ms packets starting at `start_ms` (RTP timestamp = 8 × ms).
    fn audio(&mut self, start_ms: u64, pcm: &[i16]) {
        for (i, frame) in pcm.chunks(160).enumerate() {
            let mut coded = Vec::new();
            self.codec.encode(frame, &mut coded);
            let ms = start_ms + 20 * i as u64;
            self.push(ms, self.codec.payload_type(), ms as u32 * 8, coded);
        }
    }

    /// One RFC 4733 press of `ms` starting at `start_ms`, reports every 20 ms sent from `send_ms`.
    fn event(&mut self, key: u8, start_ms: u64, ms: u16, send_ms: u64) {
        let ts = start_ms as u32 * 8;
        for i in 0..ms / 20 {
            let p = rfc4733_payload(key, false, i * 160);
            self.push(send_ms + 20 * u64::from(i), TE_PT, ts, p);
        }
        for _ in 0..3 {
            self.push(
                send_ms + u64::from(ms),
                TE_PT,
                ts,
                rfc4733_payload(key, true, ms * 8),
            );
        }
    }

    fn run(mut self, rx: &mut DtmfReceiver) -> Vec<DtmfDigit> {
        self.pkts.sort_by_key(|(at, _)| *at);
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut now = t0;
        for (at, pkt) in &self.pkts {
            now = t0 + *at;
            let d = rx.on_rtp(pkt, now);
            collect(rx, d, &mut out, now);
        }
        collect(rx, None, &mut out, now + Duration::from_secs(2));
        out
    }
}

fn rfc4733_payload(event: u8, end: bool, duration: u16) -> Vec<u8> {
    let d = duration.to_be_bytes();
    vec![event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
}

fn text(found: &[DtmfDigit]) -> String {
    found.iter().map(|d| d.digit).collect()
}

#[test]
fn inband_tones_alone_are_found_even_when_telephone_event_was_negotiated() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        let mut call = Call::new(codec);
        let pcm = Signal::new()
            .silence(100)
            .key('5', 80, -10.0, 2.0)
            .silence(60)
            .key('1', 80, -10.0, 2.0);
        call.audio(0, &pcm.silence(200).through(codec));
        let found = call.run(&mut DtmfReceiver::new(codec, Some(TE_PT)));
        assert_eq!(text(&found), "51", "{codec:?}");
        assert!(found.iter().all(|d| d.source == DtmfSource::Inband));
    }
}

#[test]
fn same_key_as_rfc4733_and_inband_tone_gives_one_digit() {
    let mut call = Call::new(Codec::Pcmu);
    let pcm = Signal::new()
        .silence(100)
        .key('5', 120, -8.0, 2.0)
        .silence(300);
    call.audio(0, &pcm.through(Codec::Pcmu));
    call.event(5, 100, 120, 100);
    let found = call.run(&mut DtmfReceiver::new(Codec::Pcmu, Some(TE_PT)));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].digit, found[0].source),
        ('5', DtmfSource::Rfc4733)
    );
}

#[test]
fn rfc4733_arriving_after_the_inband_tone_is_still_one_digit() {
    // A gateway that detects the tone itself and reports it late: in-band wins, the report is a copy.
    let mut call = Call::new(Codec::Pcmu);
    let pcm = Signal::new()
        .silence(100)
        .key('9', 100, -8.0, 2.0)
        .silence(600);
    call.audio(0, &pcm.through(Codec::Pcmu));
    call.event(9, 100, 100, 400);
    let found = call.run(&mut DtmfReceiver::new(Codec::Pcmu, Some(TE_PT)));
    assert_eq!(text(&found), "9", "{found:?}");
    assert_eq!(found[0].source, DtmfSource::Inband);
}

#[test]
fn info_and_rfc4733_for_the_same_presses_give_each_press_once() {
    let t0 = Instant::now();
    let mut rx = DtmfReceiver::new(Codec::Pcma, Some(TE_PT));
    let mut out = Vec::new();
    let relay = Some("application/dtmf-relay");
    // "55": INFO at each key-down, the RFC 4733 end at each key-up 200 ms later.
    for (press, start_ms) in [(0u32, 0u64), (1, 400)] {
        let now = t0 + Duration::from_millis(start_ms);
        let d = rx.on_info(relay, b"Signal=5\r\nDuration=200\r\n", now);
        collect(&mut rx, d, &mut out, now);
        for i in 0..=10u16 {
            let end = i >= 8;
            let pkt = rtp::RtpIn {
                payload_type: TE_PT,
                seq: (press * 20) as u16 + i,
                timestamp: 8000 + press * 3200,
                ssrc: SSRC,
                marker: i == 0,
                payload: rfc4733_payload(5, end, i.min(8) * 200),
            };
            let now = now + Duration::from_millis(25 * u64::from(i));
            let d = rx.on_rtp(&pkt, now);
            collect(&mut rx, d, &mut out, now);
        }
    }
    assert_eq!(text(&out), "55", "{out:?}");
    assert!(out.iter().all(|d| d.source == DtmfSource::SipInfo));
    // A different key right after is not a copy.
    let now = t0 + Duration::from_millis(900);
    assert_eq!(
        rx.on_info(Some("application/dtmf"), b"6", now)
            .map(|d| d.digit),
        Some('6')
    );
    // And the same key from another source, long after, is a new press.
    let now = t0 + Duration::from_secs(5);
    let d = rx.on_rtp(
        &rtp::RtpIn {
            payload_type: TE_PT,
            seq: 99,
            timestamp: 80_000,
            ssrc: SSRC,
            marker: true,
            payload: rfc4733_payload(5, true, 800),
        },
        now,
    );
    assert_eq!(
        d.map(|d| (d.digit, d.source)),
        Some(('5', DtmfSource::Rfc4733))
    );
}

#[test]
fn lost_event_end_is_reported_by_poll_when_poll_at_says() {
    let t0 = Instant::now();
    let mut rx = DtmfReceiver::new(Codec::Pcmu, Some(TE_PT));
    for i in 0..5u16 {
        let pkt = rtp::RtpIn {
            payload_type: TE_PT,
            seq: i,
            timestamp: 777,
            ssrc: SSRC,
            marker: i == 0,
            payload: rfc4733_payload(12, false, i * 160),
        };
        assert_eq!(
            rx.on_rtp(&pkt, t0 + Duration::from_millis(20 * u64::from(i))),
            None
        );
    }
    let at = rx.poll_at().expect("a press is waiting for its end");
    assert_eq!(at, t0 + Duration::from_millis(80) + rfc4733::END_TIMEOUT);
    assert_eq!(rx.poll(at - Duration::from_millis(1)), None);
    let d = rx.poll(at).expect("timed out");
    assert_eq!((d.digit, d.duration_ms), ('A', 80));
    assert_eq!(rx.poll_at(), None);
}

#[test]
fn audio_gaps_separate_presses_but_late_packets_do_not_split_them() {
    let codec = Codec::Pcmu;
    // Two '3' presses with no RTP between them (the phone's silence suppression): "33".
    let mut call = Call::new(codec);
    let press = Signal::new().key('3', 100, -10.0, 0.0).through(codec);
    call.audio(0, &press);
    call.audio(1000, &press);
    call.audio(1100, &Signal::new().silence(200).through(codec));
    assert_eq!(text(&call.run(&mut DtmfReceiver::new(codec, None))), "33");

    // One long press whose packets arrive out of order: the late one is dropped, one digit.
    let mut call = Call::new(codec);
    call.audio(
        0,
        &Signal::new()
            .key('3', 400, -10.0, 0.0)
            .silence(200)
            .through(codec),
    );
    call.pkts.swap(6, 7);
    let t0 = Instant::now();
    let mut rx = DtmfReceiver::new(codec, None);
    let mut out = Vec::new();
    for (i, (_, pkt)) in call.pkts.iter().enumerate() {
        let now = t0 + Duration::from_millis(20 * i as u64);
        let d = rx.on_rtp(pkt, now);
        collect(&mut rx, d, &mut out, now);
    }
    assert_eq!(text(&out), "3");

    // Packets of other payload types (comfort noise, a codec not negotiated) are ignored.
    let mut call = Call::new(Codec::Pcma);
    call.audio(
        0,
        &Signal::new()
            .key('3', 100, -10.0, 0.0)
            .silence(200)
            .through(Codec::Pcma),
    );
    assert_eq!(
        text(&call.run(&mut DtmfReceiver::new(Codec::Pcmu, None))),
        ""
    );
}
