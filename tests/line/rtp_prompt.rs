//! The media a caller actually receives: a hand-written SIP caller (plain UDP sockets, no sipp)
//! answers ivr's call flow and checks the RTP stream of the greeting packet by packet and sample
//! by sample, then the symmetric-RTP latch.

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{CallIds, Ivr, SipMsg, UdpUa, in_dialog, invite, ok_for, sdp_audio_addr, sdp_offer};
use ivr::media::g711::Codec;
use ivr::media::prompt::Prompt;
use ivr::media::rtp::{RtpIn, parse};

const SIP_WAIT: Duration = Duration::from_secs(10);
const FRAME: usize = 160;

/// Sends the INVITE, collects 100/180/200 and ACKs the 200. Returns the 200.
fn place_call(ua: &UdpUa, ids: &CallIds, sdp: &str) -> SipMsg {
    ua.send(invite(ua, ids, sdp));
    let mut provisional = Vec::new();
    let ok = loop {
        let m = ua.expect_response(&ids.call_id, |_| true, SIP_WAIT);
        let status = m.status().expect("status");
        assert_eq!(
            m.via_branch().as_deref(),
            Some(ids.branch.as_str()),
            "response must echo the INVITE's branch:\n{}",
            m.text()
        );
        match status {
            100 | 180 => provisional.push(status),
            200 => break m,
            other => panic!("unexpected {other} to INVITE:\n{}", m.text()),
        }
    };
    assert!(
        provisional.contains(&180),
        "expected 180 before 200, got {provisional:?}"
    );
    assert!(ok.to_tag().is_some(), "200 without To tag:\n{}", ok.text());
    assert_eq!(
        ok.header("Content-Type"),
        Some("application/sdp"),
        "200 must carry an SDP answer:\n{}",
        ok.text()
    );
    ua.send(in_dialog(ua, ids, &ok, "ACK", 1));
    ok
}

fn recv_rtp(sock: &UdpSocket, timeout: Duration) -> Option<(RtpIn, SocketAddr)> {
    sock.set_read_timeout(Some(timeout)).expect("timeout");
    let mut buf = [0u8; 2048];
    match sock.recv_from(&mut buf) {
        Ok((n, from)) => Some((
            parse(&buf[..n]).unwrap_or_else(|e| panic!("non-RTP datagram from {from}: {e}")),
            from,
        )),
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            None
        }
        Err(e) => panic!("RTP receive failed: {e}"),
    }
}

/// Checks the whole greeting as received with `offer` ("0 8 101", "8 0"): payload type, headers,
/// and every sample.
fn prompt_stream(offer: &str, codec: Codec, expect_te: bool) {
    let prompt = Prompt::load(&common::greeting_path()).expect("greeting loads");
    let frames = prompt.samples.len().div_ceil(FRAME);
    // A few frames of the silence that follows the prompt, to check the stream stays continuous.
    const TRAILING: usize = 5;

    let ivr = Ivr::start(&[]);
    let ua = UdpUa::new(ivr.sip_addr());
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind RTP");
    let ids = CallIds::new();
    let ok = place_call(
        &ua,
        &ids,
        &sdp_offer(rtp.local_addr().expect("addr").port(), offer),
    );

    // The SDP answer.
    let answer = ok.body_str();
    let pt = codec.payload_type();
    let m_line = answer
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .expect("m=audio in answer");
    let fmts: Vec<&str> = m_line.split_whitespace().skip(3).collect();
    let want_fmts: Vec<String> = if expect_te {
        vec![pt.to_string(), "101".into()]
    } else {
        vec![pt.to_string()]
    };
    assert_eq!(fmts, want_fmts, "answer m= line: {m_line}\n{answer}");
    assert!(
        answer.contains(&format!("a=rtpmap:{pt} {}/8000", codec.name())),
        "answer lacks rtpmap for {}:\n{answer}",
        codec.name()
    );
    assert_eq!(
        answer.contains("a=rtpmap:101 telephone-event/8000"),
        expect_te,
        "telephone-event must be echoed exactly when offered:\n{answer}"
    );
    let server_rtp = sdp_audio_addr(&answer);

    // The RTP stream: the prompt (from its first packet: nothing is sent before the prompt) then
    // silence. The first packet comes after the 300 ms answer delay.
    let mut packets = Vec::with_capacity(frames + TRAILING);
    let started = Instant::now();
    while packets.len() < frames + TRAILING {
        let Some((pkt, from)) = recv_rtp(&rtp, Duration::from_secs(3)) else {
            panic!(
                "RTP stopped after {} of {} packets ({:?}); ivr log:\n{}",
                packets.len(),
                frames + TRAILING,
                started.elapsed(),
                ivr.log()
            );
        };
        assert_eq!(
            from, server_rtp,
            "RTP must come from the SDP answer's address"
        );
        packets.push(pkt);
    }
    let first = &packets[0];
    assert!(first.marker, "first packet must carry the marker bit");
    for (i, p) in packets.iter().enumerate() {
        assert_eq!(p.payload_type, pt, "packet {i}: payload type");
        assert_eq!(p.ssrc, first.ssrc, "packet {i}: SSRC changed");
        assert_eq!(p.payload.len(), FRAME, "packet {i}: payload size");
        if i > 0 {
            let prev = &packets[i - 1];
            assert!(!p.marker, "packet {i}: marker bit after the first packet");
            assert_eq!(
                p.seq,
                prev.seq.wrapping_add(1),
                "packet {i}: sequence gap (lost or reordered)"
            );
            if p.timestamp != prev.timestamp.wrapping_add(FRAME as u32) {
                // A media task stalled for over 100 ms skips slots (and logs it): on an
                // overloaded machine that is by design, so say so in the failure.
                panic!(
                    "packet {i}: timestamp {} after {} (step must be {FRAME}); server skipped \
                     slots: {}",
                    p.timestamp,
                    prev.timestamp,
                    ivr.log().contains("skipped packet slots")
                );
            }
        }
    }

    // Sample for sample: what the caller decodes equals the prompt through the same codec. The
    // stream starts with the prompt's first frame, so no alignment search is needed.
    let mut coded = Vec::new();
    codec.encode(&prompt.samples, &mut coded);
    let mut expected = Vec::new();
    codec.decode(&coded, &mut expected);
    let mut received = Vec::new();
    for p in &packets[..frames] {
        codec.decode(&p.payload, &mut received);
    }
    if let Some(i) = (0..expected.len()).find(|&i| expected[i] != received[i]) {
        panic!(
            "decoded stream differs from the prompt at sample {i} (packet {}): expected {:?}, got {:?}",
            i / FRAME,
            &expected[i..(i + 8).min(expected.len())],
            &received[i..(i + 8).min(received.len())]
        );
    }
    // The last frame is padded with codec silence, and silence frames follow.
    let pad_start = prompt.samples.len() % FRAME;
    if pad_start != 0 {
        assert!(
            packets[frames - 1].payload[pad_start..]
                .iter()
                .all(|b| *b == codec.silence_byte()),
            "last prompt frame must be padded with silence"
        );
    }
    for (i, p) in packets[frames..].iter().enumerate() {
        assert!(
            p.payload.iter().all(|b| *b == codec.silence_byte()),
            "post-prompt packet {i} is not silence"
        );
    }

    // The server hangs up after the prompt; answer its BYE.
    let bye = ua.expect_request(&ids.call_id, "BYE", SIP_WAIT);
    assert_eq!(
        bye.to_tag(),
        Some(ids.from_tag.clone()),
        "BYE To tag is ours"
    );
    assert_eq!(
        common::param(bye.header("From").expect("From"), "tag"),
        ok.to_tag(),
        "BYE From tag is the server's"
    );
    ua.send(ok_for(&bye));
    ivr.wait_for_log(
        &[
            &format!("codec=\"{}\"", codec.name()),
            "event=\"flow_end\"",
            "event=\"ended\" reason=we hung up",
        ],
        SIP_WAIT,
    );
}

#[test]
fn prompt_rtp_pcmu_with_telephone_event() {
    prompt_stream("0 8 101", Codec::Pcmu, true);
}

#[test]
fn prompt_rtp_pcma_preferred_by_offer_order() {
    prompt_stream("8 0", Codec::Pcma, false);
}

/// The caller's SDP points at a dead port (9 on 127.0.0.1); once we send RTP from our real socket,
/// the server must send its RTP to where ours came from (RFC 4961 symmetric RTP).
#[test]
fn symmetric_rtp_follows_the_source_address() {
    let ivr = Ivr::start(&["--hold-after-prompt"]);
    let ua = UdpUa::new(ivr.sip_addr());
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind RTP");
    let ids = CallIds::new();
    let ok = place_call(&ua, &ids, &sdp_offer(9, "0 101"));
    let server_rtp = sdp_audio_addr(&ok.body_str());

    // Our own stream: PCMU silence, 20 ms apart.
    let ssrc = 0x1234_5678u32;
    for i in 0..5u16 {
        let mut pkt = vec![0x80, if i == 0 { 0x80 } else { 0x00 }];
        pkt.extend_from_slice(&(1000 + i).to_be_bytes());
        pkt.extend_from_slice(&(u32::from(i) * 160).to_be_bytes());
        pkt.extend_from_slice(&ssrc.to_be_bytes());
        pkt.extend_from_slice(&[0xFF; FRAME]);
        rtp.send_to(&pkt, server_rtp).expect("send RTP");
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut got = Vec::new();
    while got.len() < 10 {
        match recv_rtp(&rtp, Duration::from_secs(5)) {
            Some((pkt, from)) => {
                assert_eq!(from, server_rtp, "RTP from an unexpected address");
                got.push(pkt);
            }
            None => panic!(
                "no RTP reached our real socket after {} packets; ivr log:\n{}",
                got.len(),
                ivr.log()
            ),
        }
    }
    assert!(
        got.iter()
            .all(|p| p.payload_type == 0 && p.ssrc == got[0].ssrc)
    );
    ivr.wait_for_log(
        &["symmetric RTP: sending to source address"],
        Duration::from_secs(5),
    );

    // Hang up ourselves.
    ua.send(in_dialog(&ua, &ids, &ok, "BYE", 2));
    let resp = ua.expect_response(&ids.call_id, |s| s >= 200, SIP_WAIT);
    assert_eq!(resp.status(), Some(200), "BYE answer:\n{}", resp.text());
    ivr.wait_for_log(&["event=\"ended\" reason=caller hung up"], SIP_WAIT);
}
