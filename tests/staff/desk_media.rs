//! The bridged call's media, sample by sample: a hand-written caller (PCMU, telephone-event 96)
//! and a hand-written staff phone (PCMA, telephone-event 101) on plain loopback sockets, so every
//! byte ivr relays can be checked: transcoding both ways, RFC 4733 digits mapped between payload
//! types, a SIP INFO digit turned into RFC 4733, continuous RTP streams, and BYE from staff
//! ending the caller's call. Also: nothing the caller sends makes ivr dial outside the group.

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{CallIds, Ivr, SipMsg, UdpUa, in_dialog, invite, ok_for, sdp_audio_addr};
use ivr::media::g711::Codec;
use ivr::media::rtp::{RtpIn, RtpSender, parse};

const SIP_WAIT: Duration = Duration::from_secs(15);

fn start_ivr(members: &[String]) -> Ivr {
    start_ivr_with(members, "")
}

fn start_ivr_with(members: &[String], desk_extra: &str) -> Ivr {
    let desk =
        "[desk]\naccept_timeout_s = 5\nringback = \"eu\"\nring_each_s = 15\nredirect_hosts = []\n";
    Ivr::start_desk("desk.toml", members, &format!("{desk}{desk_extra}\n"))
}

/// A caller connected to ivr (answered, ACKed) while the desk's one member, a hand-written
/// staff phone, has just received ivr's INVITE.
struct DeskCall {
    ivr: Ivr,
    staff: UdpUa,
    staff_sip: SocketAddr,
    staff_rtp: UdpSocket,
    caller: UdpUa,
    caller_rtp: UdpSocket,
    ids: CallIds,
    /// ivr's 200 to the caller.
    ok: SipMsg,
    /// ivr's INVITE to the staff phone.
    inv: SipMsg,
}

/// Starts ivr with the staff phone as the desk (`desk_extra` added to `[desk]`), calls it and
/// waits for the INVITE to the staff phone.
fn call_the_desk(desk_extra: &str) -> DeskCall {
    let staff = UdpUa::new("127.0.0.1:9".parse().unwrap());
    let staff_rtp = UdpSocket::bind("127.0.0.1:0").expect("staff rtp");
    let staff_sip = staff.local();
    let ivr = start_ivr_with(&[format!("sip:staff@{staff_sip}")], desk_extra);
    let staff = UdpUa {
        sock: staff.sock,
        server: ivr.sip_addr(),
    };
    let caller = UdpUa::new(ivr.sip_addr());
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").expect("caller rtp");
    let ids = CallIds::new();
    caller.send(invite(
        &caller,
        &ids,
        &caller_sdp(caller_rtp.local_addr().unwrap().port()),
    ));
    let ok = caller.expect_response(&ids.call_id, |s| s == 200, SIP_WAIT);
    caller.send(in_dialog(&caller, &ids, &ok, "ACK", 1));
    let inv = staff.recv(SIP_WAIT).expect("INVITE to staff");
    DeskCall {
        ivr,
        staff,
        staff_sip,
        staff_rtp,
        caller,
        caller_rtp,
        ids,
        ok,
        inv,
    }
}

fn caller_sdp(port: u16) -> String {
    format!(
        "v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 96\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\n\
         a=fmtp:96 0-16\r\na=sendrecv\r\n"
    )
}

fn staff_answer_sdp(port: u16) -> String {
    format!(
        "v=0\r\no=staff 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\na=sendrecv\r\n"
    )
}

/// A response from the staff phone to `req` with our tag and optional SDP.
fn staff_response(
    req: &SipMsg,
    status: &str,
    tag: &str,
    contact: SocketAddr,
    sdp: Option<&str>,
) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in req.headers_named("Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for name in ["From", "Call-ID", "CSeq"] {
        out.push_str(&format!("{name}: {}\r\n", req.header(name).expect(name)));
    }
    out.push_str(&format!(
        "To: {};tag={tag}\r\n",
        req.header("To").expect("To")
    ));
    out.push_str(&format!("Contact: <sip:staff@{contact}>\r\n"));
    match sdp {
        Some(s) => out.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{s}",
            s.len()
        )),
        None => out.push_str("Content-Length: 0\r\n\r\n"),
    }
    out
}

/// `n` frames of a signal no two frames of which are alike (a chirp), as 160-sample frames.
fn signal(n: usize, seed: f64) -> Vec<Vec<i16>> {
    (0..n)
        .map(|f| {
            (0..160)
                .map(|i| {
                    let t = (f * 160 + i) as f64 / 8000.0;
                    let hz = seed + 300.0 * t;
                    (9000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
                })
                .collect()
        })
        .collect()
}

/// Sends `frames` encoded with `codec` from `sock` to `to`, paced at 20 ms.
fn stream(sock: &UdpSocket, to: SocketAddr, codec: Codec, frames: &[Vec<i16>]) -> Vec<Vec<u8>> {
    let mut sender = RtpSender::new(codec);
    let start = Instant::now();
    let mut sent = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let mut payload = Vec::new();
        codec.encode(f, &mut payload);
        let pkt = sender.next_packet(&payload, 160, i == 0);
        sock.send_to(&pkt, to).expect("send RTP");
        sent.push(payload);
        let due = start + Duration::from_millis(20 * (i as u64 + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    sent
}

/// RFC 4733 packets for one key press (3 updates and 3 end packets).
fn send_event(sock: &UdpSocket, to: SocketAddr, pt: u8, event: u8) {
    let mut sender = RtpSender::new(Codec::Pcmu);
    let ts = sender.next_timestamp();
    for (i, (dur, end)) in [
        (160u16, false),
        (320, false),
        (480, false),
        (640, true),
        (640, true),
        (640, true),
    ]
    .into_iter()
    .enumerate()
    {
        let payload = [
            event,
            if end { 0x8a } else { 0x0a },
            (dur >> 8) as u8,
            dur as u8,
        ];
        let pkt = sender.next_packet_at(pt, &payload, ts, i == 0);
        sock.send_to(&pkt, to).expect("send event");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Everything that arrives on `sock` for `d`.
fn collect(sock: &UdpSocket, d: Duration) -> Vec<RtpIn> {
    let end = Instant::now() + d;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && let Ok(p) = parse(&buf[..n])
        {
            out.push(p);
        }
    }
    out
}

/// Where `want` (a run of samples) starts inside `got`, if anywhere.
fn find(got: &[i16], want: &[i16]) -> Option<usize> {
    got.windows(want.len()).position(|w| w == want)
}

/// Frames of `want` a loaded test machine may cost the relay: the relay keeps at most 60 ms of
/// audio (`relay::MAX_BUFFERED_SAMPLES`) and drops the oldest when a late-scheduled sender or
/// receive task delivers a burst, as it must on a real network; losing 2 of 40 frames is that,
/// more is a fault.
const MAX_LOST_FRAMES: usize = 2;

/// `heard` carries every 160-sample frame of `want` exactly (transcoded sample for sample), in
/// order, but for at most [`MAX_LOST_FRAMES`] lost to the relay's bounded buffer.
fn assert_relayed(heard: &[i16], want: &[i16], what: &str) {
    let mut pos = 0;
    let mut lost = Vec::new();
    for (k, frame) in want.chunks(160).enumerate() {
        match find(&heard[pos..], frame) {
            Some(at) => pos += at + frame.len(),
            None => lost.push(k),
        }
    }
    assert!(
        lost.len() <= MAX_LOST_FRAMES,
        "{what}: frames {lost:?} of {} not heard exactly and in order",
        want.len() / 160
    );
}

fn decoded(packets: &[RtpIn], codec: Codec) -> Vec<i16> {
    let mut out = Vec::new();
    for p in packets
        .iter()
        .filter(|p| p.payload_type == codec.payload_type())
    {
        codec.decode(&p.payload, &mut out);
    }
    out
}

/// `payloads` (coded with `from`) as the far side must hear them after ivr transcodes to `to`.
fn expected(payloads: &[Vec<u8>], from: Codec, to: Codec) -> Vec<i16> {
    let mut pcm = Vec::new();
    for p in payloads {
        from.decode(p, &mut pcm);
    }
    let mut coded = Vec::new();
    to.encode(&pcm, &mut coded);
    let mut out = Vec::new();
    to.decode(&coded, &mut out);
    out
}

/// The digits in a run of RFC 4733 packets of payload type `pt` (one per event timestamp).
fn events(packets: &[RtpIn], pt: u8) -> Vec<(u8, u32)> {
    let mut out: Vec<(u8, u32)> = Vec::new();
    for p in packets.iter().filter(|p| p.payload_type == pt) {
        if !out.iter().any(|&(_, ts)| ts == p.timestamp) {
            out.push((p.payload[0], p.timestamp));
        }
    }
    out
}

#[test]
fn bridged_media_is_transcoded_both_ways_with_digits_relayed() {
    // The caller dials in; the flow rings the desk (one hand-written staff phone) at once.
    let DeskCall {
        ivr,
        staff,
        staff_sip,
        staff_rtp,
        caller,
        caller_rtp,
        ids,
        ok,
        inv,
    } = call_the_desk("");
    let ivr_caller_rtp = sdp_audio_addr(&ok.body_str());

    // The staff phone rings: ivr offers the caller's codec first, then the other, and events.
    assert_eq!(inv.method(), Some("INVITE"), "{}", inv.text());
    assert!(inv.body_str().contains("m=audio"), "{}", inv.text());
    assert!(
        inv.body_str()
            .lines()
            .any(|l| l.starts_with("m=audio") && l.ends_with("RTP/AVP 0 8 101")),
        "offer: {}",
        inv.body_str()
    );
    let ivr_staff_rtp = sdp_audio_addr(&inv.body_str());
    staff.send(staff_response(&inv, "180 Ringing", "st1", staff_sip, None));
    staff.send(staff_response(
        &inv,
        "200 OK",
        "st1",
        staff_sip,
        Some(&staff_answer_sdp(staff_rtp.local_addr().unwrap().port())),
    ));
    let ack = staff.recv(SIP_WAIT).expect("ACK");
    assert_eq!(ack.method(), Some("ACK"), "{}", ack.text());
    // Staff hears the whisper (PCMA) and accepts with 1 (RFC 4733, payload type 101).
    let whisper = collect(&staff_rtp, Duration::from_millis(600));
    assert!(
        whisper.iter().any(|p| p.payload_type == 8),
        "no whisper audio to staff"
    );
    send_event(&staff_rtp, ivr_staff_rtp, 101, 1);
    ivr.wait_for_log(&["event=\"bridged\""], SIP_WAIT);
    // Let the ringback stop and the relay settle.
    collect(&staff_rtp, Duration::from_millis(200));
    collect(&caller_rtp, Duration::from_millis(200));

    // Caller → staff: PCMU in, PCMA out, sample for sample.
    let frames = signal(40, 500.0);
    let receiver = {
        let s = staff_rtp.try_clone().unwrap();
        std::thread::spawn(move || collect(&s, Duration::from_millis(1800)))
    };
    let sent = stream(&caller_rtp, ivr_caller_rtp, Codec::Pcmu, &frames);
    let got = receiver.join().unwrap();
    let want = expected(&sent, Codec::Pcmu, Codec::Pcma);
    let heard = decoded(&got, Codec::Pcma);
    assert_relayed(&heard, &want, "caller audio at staff");
    // One continuous stream towards staff: one SSRC, sequence numbers +1.
    assert!(
        got.windows(2).all(|w| w[1].seq == w[0].seq.wrapping_add(1)),
        "gap in staff stream"
    );
    assert!(got.iter().all(|p| p.ssrc == got[0].ssrc));
    assert_eq!(
        got[0].ssrc, whisper[0].ssrc,
        "the bridge kept the whisper's stream"
    );

    // Staff → caller: PCMA in, PCMU out.
    let frames = signal(40, 900.0);
    let receiver = {
        let s = caller_rtp.try_clone().unwrap();
        std::thread::spawn(move || collect(&s, Duration::from_millis(1800)))
    };
    let sent = stream(&staff_rtp, ivr_staff_rtp, Codec::Pcma, &frames);
    let got = receiver.join().unwrap();
    let want = expected(&sent, Codec::Pcma, Codec::Pcmu);
    let heard = decoded(&got, Codec::Pcmu);
    assert_relayed(&heard, &want, "staff audio at the caller");

    // A caller's RFC 4733 key (type 96) reaches staff as type 101; an INFO key as RFC 4733.
    let receiver = {
        let s = staff_rtp.try_clone().unwrap();
        std::thread::spawn(move || collect(&s, Duration::from_millis(1500)))
    };
    send_event(&caller_rtp, ivr_caller_rtp, 96, 7);
    std::thread::sleep(Duration::from_millis(200));
    let info_body = "Signal=4\r\nDuration=160\r\n";
    let info = in_dialog(&caller, &ids, &ok, "INFO", 2).replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\n{info_body}",
            info_body.len()
        ),
    );
    caller.send(info);
    caller.expect_response(&ids.call_id, |s| s == 200, SIP_WAIT);
    let got = receiver.join().unwrap();
    let digits: Vec<u8> = events(&got, 101).into_iter().map(|(e, _)| e).collect();
    assert_eq!(digits, vec![7, 4], "digits at staff: {got:?}");
    assert!(
        events(&got, 96).is_empty(),
        "caller's payload type leaked to staff"
    );

    // Staff puts the caller on hold (re-INVITE sendonly): ivr answers recvonly and stops
    // sending to staff; resuming (sendrecv) brings the stream back.
    let mut cseq = 1;
    for (direction, answer, flowing) in [
        ("sendonly", "recvonly", false),
        ("sendrecv", "sendrecv", true),
    ] {
        cseq += 1;
        let sdp = staff_answer_sdp(staff_rtp.local_addr().unwrap().port())
            .replace("a=sendrecv", &format!("a={direction}"));
        let reinvite = format!(
            "INVITE {} SIP/2.0\r\nVia: SIP/2.0/UDP {staff_sip};branch=z9hG4bK-hold{cseq}\r\n\
             From: {};tag=st1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} INVITE\r\n\
             Contact: <sip:staff@{staff_sip}>\r\nMax-Forwards: 70\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            inv.contact_uri().expect("Contact in INVITE"),
            inv.header("To").unwrap(),
            inv.header("From").unwrap(),
            inv.call_id().unwrap(),
            sdp.len()
        );
        staff.send(reinvite);
        let ok = staff.expect_response(inv.call_id().unwrap(), |s| s == 200, SIP_WAIT);
        assert!(
            ok.body_str().contains(&format!("a={answer}")),
            "{}",
            ok.text()
        );
        // Same o= session id as ivr's offer, a higher version (RFC 3264 §8), same codec.
        let origin = |sdp: &str| -> (String, u64) {
            let o: Vec<String> = sdp
                .lines()
                .find(|l| l.starts_with("o="))
                .expect("o=")
                .split_whitespace()
                .map(str::to_string)
                .collect();
            (o[1].clone(), o[2].parse().expect("version"))
        };
        let (id0, v0) = origin(&inv.body_str());
        let (id, v) = origin(&ok.body_str());
        assert_eq!(id, id0, "{}", ok.text());
        assert!(v > v0, "{}", ok.text());
        assert!(ok.body_str().contains("RTP/AVP 8 101"), "{}", ok.text());
        let ack = format!(
            "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {staff_sip};branch=z9hG4bK-holdack{cseq}\r\n\
             From: {};tag=st1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} ACK\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            inv.contact_uri().unwrap(),
            inv.header("To").unwrap(),
            inv.header("From").unwrap(),
            inv.call_id().unwrap(),
        );
        staff.send(ack);
        collect(&staff_rtp, Duration::from_millis(150));
        let got = collect(&staff_rtp, Duration::from_millis(500));
        assert_eq!(
            !got.is_empty(),
            flowing,
            "{direction}: {} packets to staff",
            got.len()
        );
    }

    // Staff hangs up: ivr answers the BYE and hangs up the caller.
    let staff_from = inv.header("To").unwrap().to_string();
    let ivr_from = inv.header("From").unwrap().to_string();
    let bye = format!(
        "BYE {} SIP/2.0\r\nVia: SIP/2.0/UDP {staff_sip};branch=z9hG4bK-staffbye\r\n\
         From: {staff_from};tag=st1\r\nTo: {ivr_from}\r\nCall-ID: {}\r\nCSeq: 9 BYE\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        inv.contact_uri().expect("Contact in INVITE"),
        inv.call_id().unwrap()
    );
    staff.send(bye);
    let resp = staff.recv(SIP_WAIT).expect("200 to staff BYE");
    assert_eq!(resp.status(), Some(200), "{}", resp.text());
    let caller_bye = caller.expect_request(&ids.call_id, "BYE", SIP_WAIT);
    caller.send(ok_for(&caller_bye));
    ivr.wait_for_log(&["event=\"cdr\""], SIP_WAIT);
    let log = ivr.log();
    assert!(log.contains("outcome=\"bridged\""), "{log}");
}

#[test]
fn caller_input_cannot_make_ivr_dial_outside_the_group() {
    // A trap: the address a toll fraudster would like ivr to call.
    let trap = UdpSocket::bind("127.0.0.1:0").expect("trap");
    let trap_addr = trap.local_addr().unwrap();
    let staff = UdpSocket::bind("127.0.0.1:0").expect("staff");
    let staff_addr = staff.local_addr().unwrap();
    let ivr = start_ivr(&[format!("sip:staff@{staff_addr}")]);
    let caller = UdpUa::new(ivr.sip_addr());
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").expect("caller rtp");
    let ids = CallIds::new();
    // The Request-URI, To, Contact and a pile of routing headers all point at the trap.
    let inv = invite(&caller, &ids, &caller_sdp(caller_rtp.local_addr().unwrap().port()))
        .replacen(
            &format!("INVITE sip:ivr@{}", ivr.sip_addr()),
            &format!("INVITE sip:+19005550100@{trap_addr}"),
            1,
        )
        .replace(
            "CSeq: 1 INVITE\r\n",
            &format!(
                "CSeq: 1 INVITE\r\nDiversion: <sip:+19005550100@{trap_addr}>\r\n\
                 Refer-To: <sip:+19005550100@{trap_addr}>\r\nX-Dial: sip:+19005550100@{trap_addr}\r\n\
                 P-Asserted-Identity: <sip:+19005550100@{trap_addr}>\r\n"
            ),
        );
    caller.send(inv);
    let ok = caller.expect_response(&ids.call_id, |s| s == 200, SIP_WAIT);
    caller.send(in_dialog(&caller, &ids, &ok, "ACK", 1));
    let ivr_caller_rtp = sdp_audio_addr(&ok.body_str());
    // Digits that spell the trap's number, in band and as INFO, while the desk rings.
    for d in [1u8, 9, 0, 0, 5, 5, 5, 0, 1, 0, 0] {
        send_event(&caller_rtp, ivr_caller_rtp, 96, d);
    }
    // Only the configured member is rung; the trap hears nothing at all.
    let mut buf = [0u8; 4096];
    staff.set_read_timeout(Some(SIP_WAIT)).unwrap();
    let (n, _) = staff.recv_from(&mut buf).expect("the group member is rung");
    let first = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        first.starts_with(&format!("INVITE sip:staff@{staff_addr} SIP/2.0")),
        "{first}"
    );
    trap.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    assert!(
        trap.recv_from(&mut buf).is_err(),
        "ivr sent something to the trap"
    );
    let log = ivr.log();
    let destinations: Vec<&str> = log
        .split("destination=")
        .skip(1)
        .map(|rest| rest.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(destinations, vec![staff_addr.to_string()], "{log}");
}

#[test]
fn early_media_from_a_ringing_phone_reaches_the_caller() {
    let DeskCall {
        ivr,
        staff,
        staff_sip,
        staff_rtp,
        caller,
        caller_rtp,
        ids,
        ok,
        inv,
    } = call_the_desk("early_media = true");
    let ivr_staff_rtp = sdp_audio_addr(&inv.body_str());
    // 183 Session Progress with SDP, then the phone's own ringing audio (PCMA).
    staff.send(staff_response(
        &inv,
        "183 Session Progress",
        "st1",
        staff_sip,
        Some(&staff_answer_sdp(staff_rtp.local_addr().unwrap().port())),
    ));
    ivr.wait_for_log(&["event=\"early_media\""], SIP_WAIT);
    let frames = signal(30, 700.0);
    let receiver = {
        let s = caller_rtp.try_clone().unwrap();
        std::thread::spawn(move || collect(&s, Duration::from_millis(1500)))
    };
    std::thread::sleep(Duration::from_millis(100));
    let sent = stream(&staff_rtp, ivr_staff_rtp, Codec::Pcma, &frames);
    let got = receiver.join().unwrap();
    let want = expected(&sent, Codec::Pcma, Codec::Pcmu);
    let heard = decoded(&got, Codec::Pcmu);
    assert_relayed(&heard, &want, "early media at the caller");
    // The phone gives up (busy): the dial ends and the flow goes on to voicemail.
    staff.send(staff_response(
        &inv,
        "486 Busy Here",
        "st1",
        staff_sip,
        None,
    ));
    ivr.wait_for_log(&["event=\"recording\""], SIP_WAIT);
    caller.send(in_dialog(&caller, &ids, &ok, "BYE", 2));
    caller.expect_response(&ids.call_id, |s| s == 200, SIP_WAIT);
}
