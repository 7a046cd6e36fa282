//! Loopback tests of the media session shell: real sockets, real time.

use super::*;
use crate::media::g711::Codec;
use crate::media::rtp::{RtpIn, RtpSender, parse};
use crate::media::socket::bind;
use std::net::{IpAddr, Ipv4Addr};
use tokio::time::timeout;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn peer() -> UdpSocket {
    UdpSocket::bind((LOOPBACK, 0)).await.expect("bind peer")
}

async fn recv(sock: &UdpSocket, within: Duration) -> Option<RtpIn> {
    let mut buf = [0u8; 2048];
    match timeout(within, sock.recv_from(&mut buf)).await {
        Ok(Ok((len, _))) => Some(parse(&buf[..len]).expect("session sends valid RTP")),
        Ok(Err(e)) => panic!("recv failed: {e}"),
        Err(_) => None,
    }
}

fn tone(secs: f64) -> Arc<[i16]> {
    let n = (8000.0 * secs) as usize;
    (0..n)
        .map(|i| (12000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16)
        .collect()
}

async fn start(remote: SocketAddr, codec: Codec) -> MediaHandle {
    start_with(remote, RtpRules::default(), codec).await
}

/// A session whose far end signals from the SDP's IP.
async fn start_with(remote: SocketAddr, rules: RtpRules, codec: Codec) -> MediaHandle {
    let (sock, port) = bind(LOOPBACK, (42000, 42998)).await.expect("RTP port");
    let remote = Remote {
        sdp: remote,
        signalling_ip: remote.ip(),
    };
    let handle = MediaSession::start(sock, remote, rules, codec, "test-call".into());
    assert_eq!(handle.local_addr().map(|a| a.port()), Some(port));
    handle
}

#[tokio::test]
async fn plays_prompt_paced_then_latches_and_counts_received_rtp() {
    let sdp_peer = peer().await;
    let mut handle = start(sdp_peer.local_addr().expect("addr"), Codec::Pcmu).await;
    let mut events = handle.take_events().expect("events once");
    assert!(handle.take_events().is_none());

    let prompt = tone(1.0);
    let playback = handle.play(prompt.clone());

    let mut pkts = Vec::new();
    let mut first_at = None;
    while pkts.len() < 50 {
        let p = recv(&sdp_peer, Duration::from_secs(2))
            .await
            .expect("prompt packet");
        first_at.get_or_insert_with(Instant::now);
        pkts.push(p);
    }
    let spread = first_at.map(|t| t.elapsed()).unwrap_or_default();
    assert_eq!(
        timeout(Duration::from_secs(1), playback).await,
        Ok(PlayOutcome::Finished)
    );
    // 50 packets are 49 ptimes apart: paced, not blasted.
    assert!(spread >= Duration::from_millis(900), "spread {spread:?}");

    let ssrc = pkts[0].ssrc;
    for (i, p) in pkts.iter().enumerate() {
        assert_eq!(p.payload_type, 0);
        assert_eq!(p.ssrc, ssrc);
        assert_eq!(p.seq, pkts[0].seq.wrapping_add(i as u16));
        assert_eq!(p.timestamp, pkts[0].timestamp.wrapping_add(160 * i as u32));
        assert_eq!(p.marker, i == 0, "marker on packet {i}");
        assert_eq!(p.payload.len(), 160);
    }
    let mut decoded = Vec::new();
    for p in &pkts {
        Codec::Pcmu.decode(&p.payload, &mut decoded);
    }
    let mut coded = Vec::new();
    Codec::Pcmu.encode(&prompt, &mut coded);
    let mut expected = Vec::new();
    Codec::Pcmu.decode(&coded, &mut expected);
    assert_eq!(decoded, expected);

    // Silence follows the prompt, continuing the same stream.
    let next = recv(&sdp_peer, Duration::from_secs(1))
        .await
        .expect("silence");
    assert_eq!(next.seq, pkts[49].seq.wrapping_add(1));
    assert!(!next.marker);
    assert!(next.payload.iter().all(|&b| b == 0xFF));

    // The caller's RTP comes from another address (NAT): we must latch onto it.
    let nat_peer = peer().await;
    let local = handle.local_addr().expect("local addr");
    let mut tx = RtpSender::with_initial(Codec::Pcmu, 77, 1000, 0);
    for i in 0..3 {
        let pkt = tx.next_packet(&[0xFF; 160], 160, i == 0);
        nat_peer.send_to(&pkt, local).await.expect("send");
    }
    let latched = recv(&nat_peer, Duration::from_secs(1))
        .await
        .expect("packets follow the latched address");
    assert_eq!(latched.ssrc, ssrc, "same stream");
    for i in 0..3u16 {
        let ev = timeout(Duration::from_secs(1), events.recv())
            .await
            .expect("event in time")
            .expect("event");
        assert_eq!((ev.ssrc, ev.seq), (77, 1000 + i));
    }

    // A stranger cannot steal the stream once latched.
    let stranger = peer().await;
    let pkt = RtpSender::with_initial(Codec::Pcmu, 666, 5, 0).next_packet(&[0; 160], 160, true);
    stranger.send_to(&pkt, local).await.expect("send");
    assert!(recv(&stranger, Duration::from_millis(200)).await.is_none());

    let snap = handle.stop().await;
    assert_eq!((snap.packets, snap.expected, snap.lost), (3, 3, 0));
}

#[tokio::test]
async fn a_stranger_spraying_first_gets_no_media_and_feeds_nothing() {
    let caller = peer().await;
    // Another host (loopback's 127.0.0.2) sprays the port before the caller's first packet.
    let stranger = UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let mut handle = start(caller.local_addr().expect("addr"), Codec::Pcmu).await;
    let counter = |name| prometheus::IntCounter::new(name, "test").expect("counter");
    let counters = crate::media::PacketCounters {
        received: counter("received"),
        sent: counter("sent"),
    };
    handle.count_into(counters.clone());
    let mut events = handle.take_events().expect("events");
    let local = handle.local_addr().expect("local addr");
    let mut spray = RtpSender::with_initial(Codec::Pcmu, 666, 5, 0);
    for i in 0..20 {
        let pkt = spray.next_packet(&[0; 160], 160, i == 0);
        stranger.send_to(&pkt, local).await.expect("spray");
    }
    let mut tx = RtpSender::with_initial(Codec::Pcmu, 77, 1000, 0);
    for i in 0..3 {
        let pkt = tx.next_packet(&[0xFF; 160], 160, i == 0);
        caller.send_to(&pkt, local).await.expect("send");
    }
    handle.play(tone(0.2));
    assert!(recv(&caller, Duration::from_secs(1)).await.is_some());
    assert!(recv(&stranger, Duration::from_millis(200)).await.is_none());
    let first = timeout(Duration::from_secs(1), events.recv())
        .await
        .expect("event in time")
        .expect("event");
    assert_eq!(
        first.ssrc, 77,
        "the stranger's packets never reach the call"
    );
    // Counted while the session lives: the caller's packets, not the stranger's.
    assert_eq!(counters.received.get(), 3);
    assert!(counters.sent.get() > 0, "the tone is being sent");
    let report = handle.stop_report().await;
    assert_eq!(
        counters.sent.get(),
        report.sent,
        "every sent packet counted once"
    );
    assert_eq!(report.received.packets, 3);
    // The metrics' `rtp_foreign_source` drops: every sprayed packet, none of the caller's.
    assert_eq!(report.foreign_dropped, 20);
    assert!(report.sent > 0, "the tone was sent: {report:?}");
}

#[tokio::test]
async fn the_inactivity_deadline_follows_believed_packets_and_hold() {
    let caller = peer().await;
    let rules = RtpRules {
        timeout: Some(Duration::from_secs(5)),
        ..RtpRules::default()
    };
    let handle = start_with(caller.local_addr().expect("addr"), rules, Codec::Pcmu).await;
    let started = handle.rtp_deadline().expect("armed at start");
    let pkt = RtpSender::with_initial(Codec::Pcmu, 77, 1, 0).next_packet(&[0xFF; 160], 160, true);
    caller
        .send_to(&pkt, handle.local_addr().expect("local"))
        .await
        .expect("send");
    let moved = loop {
        let d = handle.rtp_deadline().expect("armed");
        if d > started {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        handle
            .rtp_silence(moved - Duration::from_millis(1))
            .is_none()
    );
    handle.expect_inbound(false);
    assert_eq!(
        handle.rtp_deadline(),
        None,
        "on hold silence does not count"
    );
    handle.expect_inbound(true);
    let d = handle.rtp_deadline().expect("re-armed");
    assert!(handle.rtp_silence(d).is_some());
    assert!(handle.rtp_silence(d).is_none(), "fires once");
}

#[tokio::test]
async fn hold_suppresses_sending_without_stalling_prompts() {
    let sdp_peer = peer().await;
    let handle = start(sdp_peer.local_addr().expect("addr"), Codec::Pcma).await;
    handle.set_hold(true);
    let playback = handle.play(tone(0.2));
    assert_eq!(
        timeout(Duration::from_secs(1), playback).await,
        Ok(PlayOutcome::Finished),
        "prompt plays out on schedule while held"
    );
    assert!(recv(&sdp_peer, Duration::from_millis(100)).await.is_none());

    handle.set_hold(false);
    let first = recv(&sdp_peer, Duration::from_secs(1))
        .await
        .expect("resumes");
    assert!(first.marker, "resume starts a talk spurt");
    assert_eq!(first.payload_type, 8);
    let second = recv(&sdp_peer, Duration::from_secs(1))
        .await
        .expect("continues");
    assert!(!second.marker);
    assert_eq!(second.timestamp, first.timestamp.wrapping_add(160));
    handle.stop().await;
}

#[tokio::test]
async fn stop_playback_interrupts_current_and_queued_prompts() {
    let sdp_peer = peer().await;
    let handle = start(sdp_peer.local_addr().expect("addr"), Codec::Pcmu).await;
    let first = handle.play(tone(5.0));
    let second = handle.play(tone(1.0));
    recv(&sdp_peer, Duration::from_secs(1))
        .await
        .expect("playing");
    handle.stop_playback();
    assert_eq!(first.await, PlayOutcome::Interrupted);
    assert_eq!(second.await, PlayOutcome::Interrupted);

    let third = handle.play(tone(5.0));
    handle.stop().await;
    assert_eq!(third.await, PlayOutcome::SessionEnded);
}

#[tokio::test]
async fn set_remote_redirects_the_stream() {
    let a = peer().await;
    let b = peer().await;
    let handle = start(a.local_addr().expect("addr"), Codec::Pcmu).await;
    let _playing = handle.play(tone(2.0));
    recv(&a, Duration::from_secs(1)).await.expect("to a");
    handle.set_remote(b.local_addr().expect("addr"));
    recv(&b, Duration::from_secs(1)).await.expect("to b");
    handle.stop().await;
}

/// One RTP packet as a phone would send it.
fn rtp(pt: u8, seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    RtpSender::with_initial(Codec::Pcmu, 0x0CA1_1E55, seq, 0)
        .next_packet_at(pt, payload, timestamp, marker)
}

/// Frame `i` of the caller's test signal: a 300 Hz tone whose level differs per frame, so
/// every frame is recognisable and none is silence.
fn signal_frame(i: usize) -> Vec<i16> {
    let amp = 1000.0 + 700.0 * i as f64;
    (0..160)
        .map(|n| {
            let t = (i * 160 + n) as f64 / 8000.0;
            (amp * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16
        })
        .collect()
}

#[tokio::test]
async fn bridge_transcodes_audio_and_maps_telephone_events() {
    let phone = peer().await; // the caller's phone, the far end of leg A
    let staff = peer().await; // the staff phone, the far end of leg B
    let a = start(phone.local_addr().expect("addr"), Codec::Pcmu).await;
    let b = start(staff.local_addr().expect("addr"), Codec::Pcma).await;
    a.set_telephone_event(Some(101));
    b.set_telephone_event(Some(96));

    // B's stream exists before the bridge: the whisper plays, then silence follows.
    let whisper = b.play(tone(0.1));
    let mut seen = Vec::new();
    loop {
        let p = recv(&staff, Duration::from_secs(1))
            .await
            .expect("whisper, then silence");
        let silent = p.payload.iter().all(|&x| x == 0xD5);
        seen.push(p);
        if silent {
            break;
        }
    }
    assert_eq!(
        timeout(Duration::from_secs(1), whisper).await,
        Ok(PlayOutcome::Finished)
    );
    let ssrc = seen[0].ssrc;

    a.relay_to(Some(b.relay_input()));
    b.relay_to(Some(a.relay_input()));

    // The phone: 5 frames of silence (μ-law 0xFF, relayed as A-law silence), 20 signal frames,
    // one key press as RFC 4733 events (PT 101), then more silence; paced at 20 ms.
    const FRAMES: usize = 20;
    let ev_ts = 160 * (5 + FRAMES as u32);
    let event_payloads: Vec<[u8; 4]> = vec![
        [5, 10, 0, 160],
        [5, 10, 1, 64],
        [5, 10, 1, 224],
        [5, 0x8A, 2, 128],
        [5, 0x8A, 2, 128],
        [5, 0x8A, 2, 128],
    ];
    let a_addr = a.local_addr().expect("addr");
    let sent_events = event_payloads.clone();
    let phone_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PTIME);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 1000u16;
        let mut audio = Vec::new();
        for i in 0..5 + FRAMES + 10 {
            let pcm = if (5..5 + FRAMES).contains(&i) {
                signal_frame(i - 5)
            } else {
                vec![0; 160]
            };
            audio.clear();
            Codec::Pcmu.encode(&pcm, &mut audio);
            tick.tick().await;
            let pkt = rtp(0, seq, 160 * i as u32, i == 0, &audio);
            phone.send_to(&pkt, a_addr).await.expect("send");
            seq = seq.wrapping_add(1);
            if i == 5 + FRAMES - 1 {
                for (k, payload) in sent_events.iter().enumerate() {
                    tick.tick().await;
                    let pkt = rtp(101, seq, ev_ts, k == 0, payload);
                    phone.send_to(&pkt, a_addr).await.expect("send");
                    seq = seq.wrapping_add(1);
                }
            }
        }
        phone
    });

    // Collect B's output until the event's last end packet and a few frames after it. B sends
    // for ever, so a lost event must fail the test, not hang it.
    let mut after_end = None;
    let give_up = Instant::now() + Duration::from_secs(10);
    while after_end.is_none_or(|n| n > 0) {
        assert!(
            Instant::now() < give_up,
            "the key press never fully reached B: {} event packets",
            seen.iter().filter(|p| p.payload_type == 96).count()
        );
        let p = recv(&staff, Duration::from_secs(2))
            .await
            .expect("B keeps sending");
        let is_end = p.payload_type == 96 && p.payload[1] & 0x80 != 0;
        seen.push(p);
        after_end = match after_end {
            Some(n) => Some(n - 1),
            None if is_end && seen.iter().filter(|p| p.payload_type == 96).count() == 6 => Some(3),
            None => None,
        };
    }
    let _phone = phone_task.await.expect("phone task");

    // One continuous stream: same SSRC as the whisper, sequence numbers one apart.
    for (i, p) in seen.iter().enumerate() {
        assert_eq!(p.ssrc, ssrc, "packet {i}");
        assert_eq!(p.seq, seen[0].seq.wrapping_add(i as u16), "packet {i}");
        assert!(
            [8, 96].contains(&p.payload_type),
            "packet {i}: PT {}",
            p.payload_type
        );
    }

    // Audio: every signal frame, in order, transcoded μ-law → PCM → A-law, exact.
    let whisper_frames = seen
        .iter()
        .position(|p| p.payload.iter().all(|&x| x == 0xD5));
    let relayed: Vec<Vec<i16>> = seen[whisper_frames.expect("silence after whisper")..]
        .iter()
        .filter(|p| p.payload_type == 8 && !p.payload.iter().all(|&x| x == 0xD5))
        .map(|p| {
            let mut pcm = Vec::new();
            Codec::Pcma.decode(&p.payload, &mut pcm);
            pcm
        })
        .collect();
    let expected: Vec<Vec<i16>> = (0..FRAMES)
        .map(|i| {
            let mut ulaw = Vec::new();
            Codec::Pcmu.encode(&signal_frame(i), &mut ulaw);
            let mut pcm = Vec::new();
            Codec::Pcmu.decode(&ulaw, &mut pcm);
            let mut alaw = Vec::new();
            Codec::Pcma.encode(&pcm, &mut alaw);
            let mut back = Vec::new();
            Codec::Pcma.decode(&alaw, &mut back);
            back
        })
        .collect();
    // A loaded machine may deliver the phone's packets in a burst, and the relay keeps at most
    // 60 ms (`relay::MAX_BUFFERED_SAMPLES`): one frame of the 20 may go, as on a real network.
    // Every frame that arrives is exact and in order.
    let mut next = expected.iter().enumerate();
    for (i, got) in relayed.iter().enumerate() {
        assert!(
            next.by_ref().any(|(_, want)| want == got),
            "relayed frame {i} is no sent frame, or out of order"
        );
    }
    assert!(
        relayed.len() + 1 >= FRAMES,
        "{} of {FRAMES} signal frames relayed",
        relayed.len()
    );

    // The key press: PT 96 on B, the payloads as sent, one timestamp, marker on the first.
    let events: Vec<&RtpIn> = seen.iter().filter(|p| p.payload_type == 96).collect();
    assert_eq!(
        events
            .iter()
            .map(|p| p.payload.as_slice())
            .collect::<Vec<_>>(),
        event_payloads
            .iter()
            .map(|p| p.as_slice())
            .collect::<Vec<_>>()
    );
    assert!(events.iter().all(|p| p.timestamp == events[0].timestamp));
    assert_eq!(
        events.iter().map(|p| p.marker).collect::<Vec<_>>(),
        [true, false, false, false, false, false]
    );
    // Audio continues after the event on the same clock: later than the event's start.
    let last = seen.last().expect("packets");
    assert_eq!(last.payload_type, 8);
    assert!((last.timestamp.wrapping_sub(events[0].timestamp) as i32) > 0);

    a.stop().await;
    b.stop().await;
}

/// Receives from `sock` and feeds a DTMF receiver until it yields a digit.
async fn receive_digit(
    sock: &UdpSocket,
    codec: Codec,
    telephone_event: Option<u8>,
) -> (crate::media::dtmf::DtmfDigit, Vec<RtpIn>) {
    let mut rx = crate::media::dtmf::DtmfReceiver::new(codec, telephone_event);
    let mut pkts = Vec::new();
    loop {
        let p = recv(sock, Duration::from_secs(2))
            .await
            .expect("packets until the digit");
        let digit = rx.on_rtp(&p, Instant::now());
        pkts.push(p);
        if let Some(d) = digit {
            return (d, pkts);
        }
    }
}

#[tokio::test]
async fn send_dtmf_uses_telephone_events_when_negotiated() {
    let far = peer().await;
    let handle = start(far.local_addr().expect("addr"), Codec::Pcmu).await;
    handle.set_telephone_event(Some(101));
    handle.send_dtmf('7', Duration::from_millis(100));
    let (digit, pkts) = receive_digit(&far, Codec::Pcmu, Some(101)).await;
    assert_eq!(digit.digit, '7');
    assert_eq!(digit.source, crate::media::dtmf::DtmfSource::Rfc4733);
    assert_eq!(digit.duration_ms, 100);
    // Nothing but the event: start (marker), updates, first end; one timestamp.
    assert!(pkts.iter().all(|p| p.payload_type == 101));
    assert!(pkts.iter().all(|p| p.timestamp == pkts[0].timestamp));
    assert!(pkts[0].marker && pkts[1..].iter().all(|p| !p.marker));
    assert_eq!(pkts.len(), 5);
    // Two more end packets, then the stream goes on with silence.
    for _ in 0..2 {
        let p = recv(&far, Duration::from_secs(1)).await.expect("end");
        assert_eq!((p.payload_type, p.payload[1] & 0x80), (101, 0x80));
    }
    let next = recv(&far, Duration::from_secs(1)).await.expect("silence");
    assert_eq!(next.payload_type, 0);
    assert_eq!(next.seq, pkts[0].seq.wrapping_add(7));
    handle.stop().await;
}

#[tokio::test]
async fn send_dtmf_falls_back_to_inband_tones() {
    let far = peer().await;
    let handle = start(far.local_addr().expect("addr"), Codec::Pcma).await;
    handle.send_dtmf('#', Duration::from_millis(120));
    let (digit, pkts) = receive_digit(&far, Codec::Pcma, None).await;
    assert_eq!(digit.digit, '#');
    assert_eq!(digit.source, crate::media::dtmf::DtmfSource::Inband);
    assert!(pkts.iter().all(|p| p.payload_type == 8));
    handle.stop().await;
}
