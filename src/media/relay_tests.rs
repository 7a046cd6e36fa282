//! Tests of the relay core: framing, latency cap, event restamping and suppression.

use std::time::Instant;

use super::*;
use crate::media::dtmf::{EventHeader, Rfc4733Decoder};
use crate::media::g711::{alaw_to_linear, ulaw_to_linear};

const TE: u8 = 96;

fn frame(value: i16, len: usize) -> RelayFrame {
    RelayFrame::Audio(vec![value; len])
}

fn event(code: u8, end: bool, duration: u16, source_timestamp: u32) -> RelayFrame {
    let d = duration.to_be_bytes();
    RelayFrame::Event {
        payload: [code, if end { 0x80 } else { 0 } | 10, d[0], d[1]],
        source_timestamp,
        marker: false,
    }
}

fn events(out: RelayOutput) -> Vec<EventPacket> {
    match out {
        RelayOutput::Events(e) => e,
        other => panic!("expected events, got {other:?}"),
    }
}

#[test]
fn fifo_drops_oldest_beyond_sixty_ms() {
    let mut r = RelayOut::new(None);
    for i in 0..5 {
        r.push(frame(i, 160));
    }
    assert_eq!(r.buffered_samples(), MAX_BUFFERED_SAMPLES);
    assert_eq!(MAX_BUFFERED_SAMPLES, 480);
    assert_eq!(r.samples_dropped(), 320);
    for expected in 2..5 {
        assert_eq!(r.tick(0), RelayOutput::Audio(vec![expected; 160]));
    }
    assert_eq!(r.tick(0), RelayOutput::Silence, "empty FIFO: silence");
}

#[test]
fn odd_sized_inputs_come_out_as_whole_frames_in_order() {
    let mut r = RelayOut::new(None);
    let input: Vec<i16> = (0..700).map(|i| i as i16).collect();
    let mut out = Vec::new();
    let mut fed = 0;
    for chunk in [100, 100, 250, 90, 160] {
        r.push(RelayFrame::Audio(input[fed..fed + chunk].to_vec()));
        fed += chunk;
        match r.tick(0) {
            RelayOutput::Audio(pcm) => {
                assert_eq!(pcm.len(), 160);
                out.extend(pcm);
            }
            RelayOutput::Silence => assert!(r.buffered_samples() < 160),
            other => panic!("unexpected {other:?}"),
        }
    }
    while let RelayOutput::Audio(pcm) = r.tick(0) {
        out.extend(pcm);
    }
    assert_eq!(
        out,
        input[..640],
        "every whole frame, in order, nothing lost"
    );
    assert_eq!(r.buffered_samples(), 60);
    assert_eq!(r.samples_dropped(), 0);
}

#[test]
fn one_output_timestamp_per_event_and_marker_on_first_packet_only() {
    let mut r = RelayOut::new(Some(TE));
    r.push(frame(7, 160));
    assert_eq!(r.tick(1000), RelayOutput::Audio(vec![7; 160]));

    // Event 1: source timestamp 50_000; our stream stamps it at the tick it starts (1160).
    r.push(event(5, false, 160, 50_000));
    let first = events(r.tick(1160));
    assert_eq!(
        first,
        [EventPacket {
            payload: [5, 10, 0, 160],
            timestamp: 1160,
            marker: true
        }]
    );
    r.push(event(5, false, 320, 50_000));
    let update = events(r.tick(1320));
    assert_eq!((update[0].timestamp, update[0].marker), (1160, false));
    assert_eq!(
        update[0].payload,
        [5, 10, 1, 64],
        "payload passed unchanged"
    );
    assert_eq!(r.tick(1480), RelayOutput::Nothing, "no packet due yet");
    // The three end packets arrive together.
    for _ in 0..3 {
        r.push(event(5, true, 640, 50_000));
    }
    let ends = events(r.tick(1640));
    assert_eq!(ends.len(), 3);
    assert!(
        ends.iter()
            .all(|p| p.timestamp == 1160 && !p.marker && p.payload[1] == 0x8A)
    );

    // Hangover, then audio again.
    let mut ts = 1640;
    for _ in 0..HANGOVER_TICKS {
        ts += 160;
        assert_eq!(r.tick(ts), RelayOutput::Nothing);
    }
    r.push(frame(9, 160));
    ts += 160;
    assert_eq!(r.tick(ts), RelayOutput::Audio(vec![9; 160]));

    // Event 2 (another key): its own output timestamp and marker.
    r.push(event(11, false, 160, 52_000));
    ts += 160;
    let second = events(r.tick(ts));
    assert_eq!((second[0].timestamp, second[0].marker), (ts, true));
    r.push(event(11, true, 480, 52_000));
    let end2 = events(r.tick(ts + 160));
    assert_eq!((end2[0].timestamp, end2[0].marker), (ts, false));
    assert_eq!(r.events_relayed(), 2);
    assert_eq!(r.events_dropped(), 0);
}

#[test]
fn audio_is_suppressed_while_an_event_is_active_and_does_not_pile_up() {
    let mut r = RelayOut::new(Some(TE));
    r.push(event(1, false, 160, 10));
    r.push(frame(100, 160));
    assert!(matches!(r.tick(0), RelayOutput::Events(_)));
    for i in 0..10u16 {
        r.push(frame(100, 160));
        r.push(event(1, false, 320 + 160 * i, 10));
        assert!(r.suppressing());
        assert!(matches!(r.tick(0), RelayOutput::Events(_)), "tick {i}");
        assert!(
            r.buffered_samples() <= 160,
            "in-band tone discarded, not delayed"
        );
    }
    r.push(event(1, true, 2000, 10));
    assert!(matches!(r.tick(0), RelayOutput::Events(_)));
    for _ in 0..HANGOVER_TICKS {
        r.push(frame(100, 160));
        assert_eq!(r.tick(0), RelayOutput::Nothing);
    }
    r.push(frame(3, 160));
    assert_eq!(r.tick(0), RelayOutput::Audio(vec![3; 160]));
    assert!(!r.suppressing());
}

/// The sender's three end packets (RFC 4733 §2.5.1.4) come one packet interval apart; the
/// third, delayed by one more interval (a busy sender or network jitter), still goes out: a
/// receiver that lost our first end needs it.
#[test]
fn a_redundant_end_a_tick_late_still_goes_out() {
    let mut r = RelayOut::new(Some(TE));
    r.push(event(2, true, 800, 10));
    assert_eq!(events(r.tick(0)).len(), 1);
    r.push(event(2, true, 800, 10));
    assert_eq!(events(r.tick(160)).len(), 1);
    r.tick(320);
    r.push(event(2, true, 800, 10));
    assert_eq!(events(r.tick(480)).len(), 1, "the third end, one tick late");
}

#[test]
fn stragglers_after_the_hangover_are_dropped() {
    let mut r = RelayOut::new(Some(TE));
    r.push(event(2, true, 800, 10));
    assert_eq!(events(r.tick(0)).len(), 1);
    r.push(event(2, true, 800, 10));
    assert_eq!(
        events(r.tick(160)).len(),
        1,
        "redundant end within the hangover"
    );
    for n in 1..HANGOVER_TICKS {
        r.tick(160 + 160 * n as u32);
    }
    r.push(frame(4, 160));
    r.push(event(2, true, 800, 10));
    assert_eq!(
        r.tick(160 + 160 * HANGOVER_TICKS as u32),
        RelayOutput::Audio(vec![4; 160])
    );
    assert_eq!(r.events_relayed(), 1);
}

#[test]
fn events_without_a_telephone_event_type_are_dropped_and_counted_audio_passes() {
    let mut r = RelayOut::new(None);
    for d in [160, 320, 480] {
        r.push(event(5, false, d, 777));
        r.push(frame(1, 160));
        assert_eq!(r.tick(0), RelayOutput::Audio(vec![1; 160]));
    }
    r.push(event(5, true, 640, 777));
    r.push(event(6, true, 640, 999));
    assert_eq!(r.tick(0), RelayOutput::Silence);
    assert_eq!(r.events_dropped(), 2, "counted per event, not per packet");
    assert_eq!(r.events_relayed(), 0);
}

#[test]
fn an_event_starting_during_a_prompt_is_dropped_entirely() {
    let mut r = RelayOut::new(Some(TE));
    r.push(event(3, false, 160, 40));
    r.push(frame(1, 160));
    r.skip_tick();
    assert_eq!(r.buffered_samples(), 0, "the slot's audio is consumed");
    r.push(event(3, false, 320, 40));
    r.push(frame(2, 160));
    assert_eq!(
        r.tick(0),
        RelayOutput::Audio(vec![2; 160]),
        "later packets of the dropped event stay dropped"
    );
    assert_eq!(r.events_dropped(), 1);
}

#[test]
fn an_event_whose_end_is_lost_is_ended_by_us() {
    let mut r = RelayOut::new(Some(TE));
    r.push(event(9, false, 160, 5));
    let start = events(r.tick(3200));
    assert!(start[0].marker);
    let mut ends = Vec::new();
    for _ in 0..EVENT_TIMEOUT_TICKS {
        match r.tick(0) {
            RelayOutput::Nothing => {}
            RelayOutput::Events(e) => ends = e,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ends.len(), 3);
    assert!(
        ends.iter()
            .all(|p| p.timestamp == 3200 && p.payload == [9, 0x8A, 0, 160])
    );
    assert!(r.suppressing(), "hangover after the synthesised end");
}

#[test]
fn frames_from_packets() {
    let pkt = |payload_type: u8, payload: Vec<u8>| RtpIn {
        payload_type,
        seq: 1,
        timestamp: 1234,
        ssrc: 5,
        marker: true,
        payload,
    };
    let codes: Vec<u8> = (0..=255).collect();
    assert_eq!(
        frame_from_packet(&pkt(0, codes.clone()), Codec::Pcmu, Some(101)),
        Some(RelayFrame::Audio(
            codes.iter().map(|&c| ulaw_to_linear(c)).collect()
        ))
    );
    assert_eq!(
        frame_from_packet(&pkt(8, codes.clone()), Codec::Pcma, None),
        Some(RelayFrame::Audio(
            codes.iter().map(|&c| alaw_to_linear(c)).collect()
        ))
    );
    assert_eq!(
        frame_from_packet(&pkt(101, vec![5, 0x8A, 3, 32, 9]), Codec::Pcmu, Some(101)),
        Some(RelayFrame::Event {
            payload: [5, 0x8A, 3, 32],
            source_timestamp: 1234,
            marker: true
        })
    );
    assert_eq!(
        frame_from_packet(&pkt(101, vec![5, 0x8A]), Codec::Pcmu, Some(101)),
        None,
        "short event payload"
    );
    assert_eq!(
        frame_from_packet(&pkt(101, vec![5, 0x8A, 3, 32]), Codec::Pcmu, None),
        None,
        "no telephone-event type negotiated"
    );
    assert_eq!(
        frame_from_packet(&pkt(13, vec![40]), Codec::Pcmu, Some(101)),
        None,
        "comfort noise"
    );
    assert_eq!(
        frame_from_packet(&pkt(8, vec![0xD5; 160]), Codec::Pcmu, Some(101)),
        None,
        "not this leg's codec"
    );
}

#[test]
fn digit_events_follow_rfc_4733_and_decode() {
    let mut d = DigitEvents::new('5', Duration::from_millis(100)).expect("a key");
    let pkts: Vec<EventPacket> = std::iter::from_fn(|| d.next_packet(rand::random())).collect();
    assert!(d.is_done());
    let durations: Vec<u16> = pkts
        .iter()
        .map(|p| u16::from_be_bytes([p.payload[2], p.payload[3]]))
        .collect();
    assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
    let ends: Vec<bool> = pkts.iter().map(|p| p.payload[1] & 0x80 != 0).collect();
    assert_eq!(ends, [false, false, false, false, true, true, true]);
    assert!(
        pkts.iter()
            .all(|p| p.payload[0] == 5 && p.payload[1] & 0x3F == 10)
    );
    assert!(pkts.iter().all(|p| p.timestamp == pkts[0].timestamp));
    assert_eq!(
        pkts.iter().map(|p| p.marker).collect::<Vec<_>>(),
        [true, false, false, false, false, false, false]
    );

    let mut dec = Rfc4733Decoder::new();
    let now = Instant::now();
    let digits: Vec<_> = pkts
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            let hdr = EventHeader {
                ssrc: 1,
                seq: i as u16,
                timestamp: p.timestamp,
                marker: p.marker,
            };
            dec.on_packet(hdr, &p.payload, now).expect("valid")
        })
        .collect();
    assert_eq!(digits.len(), 1);
    assert_eq!((digits[0].digit, digits[0].duration_ms), ('5', 100));

    assert!(DigitEvents::new('x', Duration::from_millis(100)).is_none());
    assert_eq!(digit_event('#'), Some(11));
    assert_eq!(digit_event('d'), Some(15));
    let mut short = DigitEvents::new('1', Duration::ZERO).expect("a key");
    let n = std::iter::from_fn(|| short.next_packet(0)).count();
    assert_eq!(n, 1 + 3, "clamped to 40 ms: one update, three ends");
}
