//! Attacks on the media plane (issue 11, rows 1 and 6a), against the real binary on loopback:
//! - another host (127.0.0.2) sprays RTP, key presses included, at a call's RTP port from before
//!   the caller's first packet: the caller keeps its audio, the attacker gets none and its keys
//!   do not count; the same after a re-INVITE, and on a staff phone's leg;
//! - an INVITE whose SDP names a third party (127.0.0.3) that never sends: the stream stops and
//!   the call is hung up after `rtp.timeout_s`, and the CDR says why.

use crate::common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{CallIds, Ivr, SipMsg, UdpUa, in_dialog, invite, ok_for, sdp_audio_addr, sdp_offer};
use ivr::media::g711::Codec;
use ivr::media::rtp::RtpSender;

const SIP_WAIT: Duration = Duration::from_secs(10);
const PTIME: Duration = Duration::from_millis(20);
/// The telephone-event payload type every party here uses.
const TE: u8 = 101;

/// RTP sent from a socket on a thread of its own until stopped: PCMU silence every `every`, and
/// with `key` an RFC 4733 press of it every 20 packets. Counts what arrives on the socket when
/// `count` (then the socket must be the thread's alone: it is made non-blocking).
struct Stream {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl Stream {
    fn start(
        sock: UdpSocket,
        to: SocketAddr,
        every: Duration,
        key: Option<u8>,
        count: bool,
    ) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            if count {
                sock.set_nonblocking(true).expect("non-blocking");
            }
            let mut tx = RtpSender::new(Codec::Pcmu);
            let mut received = 0u64;
            let mut buf = [0u8; 2048];
            let start = Instant::now();
            let mut n = 0u32;
            while !flag.load(Ordering::Relaxed) {
                match key {
                    Some(k) if n % 20 == 10 => press(&sock, to, &mut tx, k),
                    _ => {
                        let pkt = tx.next_packet(&[0xFF; 160], 160, n == 0);
                        let _ = sock.send_to(&pkt, to);
                    }
                }
                while count && sock.recv_from(&mut buf).is_ok() {
                    received += 1;
                }
                n += 1;
                let due = start + every * n;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            received
        });
        Stream { stop, thread }
    }

    /// Stops sending; returns the datagrams received (0 unless counting).
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("stream thread")
    }
}

/// One RFC 4733 key press on `tx`'s stream, back to back: start, update, three ends.
fn press(sock: &UdpSocket, to: SocketAddr, tx: &mut RtpSender, key: u8) {
    let ts = tx.next_timestamp();
    for (i, (dur, end)) in [
        (160u16, false),
        (320, false),
        (480, true),
        (480, true),
        (480, true),
    ]
    .into_iter()
    .enumerate()
    {
        let payload = [
            key,
            if end { 0x8a } else { 0x0a },
            (dur >> 8) as u8,
            dur as u8,
        ];
        let pkt = tx.next_packet_at(TE, &payload, ts, i == 0);
        let _ = sock.send_to(&pkt, to);
    }
}

/// A caller's key press, paced like a phone's (20 ms apart).
fn press_paced(sock: &UdpSocket, to: SocketAddr, key: u8) {
    let mut tx = RtpSender::new(Codec::Pcmu);
    let ts = tx.next_timestamp();
    for (i, (dur, end)) in [
        (160u16, false),
        (320, false),
        (480, false),
        (640, true),
        (640, true),
    ]
    .into_iter()
    .enumerate()
    {
        let payload = [
            key,
            if end { 0x8a } else { 0x0a },
            (dur >> 8) as u8,
            dur as u8,
        ];
        let pkt = tx.next_packet_at(TE, &payload, ts, i == 0);
        sock.send_to(&pkt, to).expect("send key");
        std::thread::sleep(PTIME);
    }
}

/// Waits up to `first_within` for a first datagram on `sock`, then counts those arriving within
/// `window` of it (the first included). 0 when none came.
fn count_window(sock: &UdpSocket, first_within: Duration, window: Duration) -> usize {
    let mut buf = [0u8; 2048];
    sock.set_read_timeout(Some(first_within)).expect("timeout");
    if sock.recv_from(&mut buf).is_err() {
        return 0;
    }
    let end = Instant::now() + window;
    let mut n = 1;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        if sock.recv_from(&mut buf).is_ok() && Instant::now() <= end {
            n += 1;
        }
    }
    n
}

/// Asserts `got` is at least 90% of the packets a `window` of 20 ms packets holds.
fn assert_most_packets(who: &str, got: usize, window: Duration, log: &str) {
    let want = (window.as_millis() / PTIME.as_millis()) as usize;
    eprintln!("{who}: {got} of {want} RTP packets in {window:?}");
    assert!(
        got * 10 >= want * 9,
        "{who} got {got} of the {want} RTP packets of {window:?}; ivr log:\n{log}"
    );
}

/// Sends the INVITE and waits for the 200 (not ACKed yet).
fn invite_ok(ua: &UdpUa, ids: &CallIds, sdp: &str) -> SipMsg {
    ua.send(invite(ua, ids, sdp));
    ua.expect_response(&ids.call_id, |s| s == 200, SIP_WAIT)
}

/// The call's CDR once closed: its log line comes before the row is written, so poll the row.
fn closed_cdr(ivr: &Ivr) -> HashMap<String, String> {
    let deadline = Instant::now() + SIP_WAIT;
    loop {
        let rows = common::cdr_rows(&ivr.dir().join("data"));
        assert!(rows.len() <= 1, "{rows:?}");
        if let Some(row) = rows
            .into_iter()
            .next()
            .filter(|r| !r["ended_at"].is_empty())
        {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "no closed CDR; log:\n{}",
            ivr.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn attacker_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2 (another loopback host)")
}

/// Row 1: the attacker sprays from the 200 on (before the caller's ACK and first packet), on
/// through a re-INVITE to a new caller port; the caller's audio arrives, the attacker's does not
/// and its key 5 is never taken, the caller's 9 is.
#[test]
fn rtp_sprayed_from_another_host_is_neither_heard_nor_answered() {
    let flow = common::manifest_dir().join("tests/flows/gather.toml");
    let ivr = Ivr::start(&["--flow", flow.to_str().expect("utf-8 path")]);
    let ua = UdpUa::new(ivr.sip_addr());
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").expect("caller RTP");
    let ids = CallIds::new();
    let port = caller_rtp.local_addr().expect("addr").port();
    let ok = invite_ok(&ua, &ids, &sdp_offer(port, "0 101"));
    let ivr_rtp = sdp_audio_addr(&ok.body_str());

    let attacker = Stream::start(
        attacker_socket(),
        ivr_rtp,
        Duration::from_millis(10),
        Some(5),
        true,
    );
    std::thread::sleep(Duration::from_millis(150));
    ua.send(in_dialog(&ua, &ids, &ok, "ACK", 1));
    let caller = Stream::start(
        caller_rtp.try_clone().expect("clone"),
        ivr_rtp,
        PTIME,
        None,
        false,
    );
    let window = Duration::from_secs(3);
    let got = count_window(&caller_rtp, Duration::from_secs(3), window);
    assert_most_packets("the caller", got, window, &ivr.log());

    // A re-INVITE moves the caller to a new port; the latch re-arms, the attacker keeps going.
    let caller_rtp2 = UdpSocket::bind("127.0.0.1:0").expect("caller RTP 2");
    let sdp = sdp_offer(caller_rtp2.local_addr().expect("addr").port(), "0 101");
    let reinvite = in_dialog(&ua, &ids, &ok, "INVITE", 2).replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Contact: <sip:tester@{}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            ua.local(),
            sdp.len()
        ),
    );
    caller.stop();
    ua.send(reinvite);
    let ok2 = ua.expect_response(&ids.call_id, |s| s == 200, SIP_WAIT);
    ua.send(in_dialog(&ua, &ids, &ok2, "ACK", 2));
    let caller = Stream::start(
        caller_rtp2.try_clone().expect("clone"),
        ivr_rtp,
        PTIME,
        None,
        false,
    );
    let window = Duration::from_secs(2);
    let got = count_window(&caller_rtp2, Duration::from_secs(3), window);
    assert_most_packets("the caller after its re-INVITE", got, window, &ivr.log());
    caller.stop();

    // The caller's key answers the menu; the attacker's 5s, sent all along, never did.
    press_paced(&caller_rtp2, ivr_rtp, 9);
    let bye = ua.expect_request(&ids.call_id, "BYE", SIP_WAIT);
    ua.send(ok_for(&bye));
    let heard_by_attacker = attacker.stop();
    let log = ivr.wait_for_log(&["event=\"cdr\"", "media session ended"], SIP_WAIT);
    assert_eq!(heard_by_attacker, 0, "the attacker received ivr's RTP");
    assert!(log.contains("event=\"node\" node=nine"), "{log}");
    assert!(
        !log.contains("node=five"),
        "the attacker's key was taken:\n{log}"
    );
    assert!(
        !log.contains("digit=5"),
        "the attacker's key was decoded:\n{log}"
    );
    assert!(
        log.contains("RTP from an unexpected source dropped"),
        "no drop report:\n{log}"
    );
    let dropped: u64 = log
        .split("rtp_dropped=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    eprintln!("ivr dropped {dropped} packets from the attacker");
    assert!(dropped > 100, "rtp_dropped={dropped}:\n{log}");
    let cdr = closed_cdr(&ivr);
    assert_eq!(cdr["digits"], "9", "{cdr:?}");
}

fn staff_response(req: &SipMsg, status: &str, contact: SocketAddr, sdp: Option<&str>) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in req.headers_named("Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for name in ["From", "Call-ID", "CSeq"] {
        out.push_str(&format!("{name}: {}\r\n", req.header(name).expect(name)));
    }
    out.push_str(&format!(
        "To: {};tag=st1\r\n",
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

/// Row 1 on a staff leg: the attacker sprays ivr's RTP port towards a ringing staff phone, "1"
/// (accept) included, from before the phone answers. Staff hears the whisper, the attacker
/// nothing, and only staff's own 1 connects the call. Then the staff phone goes silent: after
/// `rtp.timeout_s` ivr hangs it up and the call ends as if staff had hung up.
#[test]
fn rtp_sprayed_at_a_staff_leg_neither_hears_the_whisper_nor_accepts() {
    let staff = UdpUa::new("127.0.0.1:9".parse().expect("addr"));
    let staff_sip = staff.local();
    let ivr = Ivr::start_desk(
        "desk.toml",
        &[format!("sip:staff@{staff_sip}")],
        "[rtp]\ntimeout_s = 2\n[desk]\naccept_timeout_s = 20\n",
    );
    let staff = UdpUa {
        sock: staff.sock,
        server: ivr.sip_addr(),
    };
    let staff_rtp = UdpSocket::bind("127.0.0.1:0").expect("staff RTP");
    let ua = UdpUa::new(ivr.sip_addr());
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").expect("caller RTP");
    let ids = CallIds::new();
    let port = caller_rtp.local_addr().expect("addr").port();
    let ok = invite_ok(&ua, &ids, &sdp_offer(port, "0 101"));
    ua.send(in_dialog(&ua, &ids, &ok, "ACK", 1));
    let caller = Stream::start(
        caller_rtp.try_clone().expect("clone"),
        sdp_audio_addr(&ok.body_str()),
        PTIME,
        None,
        false,
    );

    let inv = staff.recv(SIP_WAIT).expect("INVITE to staff");
    assert_eq!(inv.method(), Some("INVITE"), "{}", inv.text());
    let ivr_staff_rtp = sdp_audio_addr(&inv.body_str());
    let attacker = Stream::start(
        attacker_socket(),
        ivr_staff_rtp,
        Duration::from_millis(10),
        Some(1),
        true,
    );
    staff.send(staff_response(&inv, "180 Ringing", staff_sip, None));
    std::thread::sleep(Duration::from_millis(300));
    let answer = sdp_offer(staff_rtp.local_addr().expect("addr").port(), "0 101");
    staff.send(staff_response(&inv, "200 OK", staff_sip, Some(&answer)));
    let ack = staff.recv(SIP_WAIT).expect("ACK");
    assert_eq!(ack.method(), Some("ACK"), "{}", ack.text());
    let phone = Stream::start(
        staff_rtp.try_clone().expect("clone"),
        ivr_staff_rtp,
        PTIME,
        None,
        false,
    );
    let window = Duration::from_millis(1500);
    let got = count_window(&staff_rtp, Duration::from_secs(3), window);
    assert_most_packets("staff (the whisper)", got, window, &ivr.log());
    assert!(
        !ivr.log().contains("event=\"bridged\""),
        "the attacker's 1 accepted the call:\n{}",
        ivr.log()
    );
    phone.stop();

    press_paced(&staff_rtp, ivr_staff_rtp, 1);
    ivr.wait_for_log(&["event=\"bridged\""], SIP_WAIT);
    // Staff sends nothing more (the attacker still does): ivr hangs up staff, then the caller
    // (the flow's dial has no `next`), who kept sending all along.
    let staff_bye = staff.expect_request(inv.call_id().expect("Call-ID"), "BYE", SIP_WAIT);
    staff.send(ok_for(&staff_bye));
    let bye = ua.expect_request(&ids.call_id, "BYE", SIP_WAIT);
    ua.send(ok_for(&bye));
    let heard_by_attacker = attacker.stop();
    caller.stop();
    let log = ivr.wait_for_log(&["event=\"cdr\""], SIP_WAIT);
    assert!(
        log.contains("by=\"staff\" reason=\"rtp_timeout\""),
        "the bridge did not end on staff's silence:\n{log}"
    );
    assert!(
        !log.contains("event=\"rtp_timeout\""),
        "the caller was not silent:\n{log}"
    );
    assert_eq!(heard_by_attacker, 0, "the attacker received ivr's RTP");
    assert!(
        log.contains("RTP from an unexpected source dropped"),
        "no drop report:\n{log}"
    );
}

/// Row 6a: the INVITE's SDP names a third party (127.0.0.3) that never sends, and the line would
/// hold the call after the flow: ivr streams there only until `rtp.timeout_s` runs out, then
/// hangs up, and the CDR says why.
#[test]
fn a_third_party_named_in_the_sdp_stops_receiving_after_the_rtp_timeout() {
    let config = common::unique_temp_dir("rtp-timeout").join("ivr.toml");
    std::fs::write(&config, "[rtp]\ntimeout_s = 2\n").expect("write config");
    let ivr = Ivr::start(&[
        "--config",
        config.to_str().expect("utf-8 path"),
        "--hold-after-prompt",
    ]);
    let third = UdpSocket::bind("127.0.0.3:0").expect("bind 127.0.0.3 (another loopback host)");
    let port = third.local_addr().expect("addr").port();
    let sdp = sdp_offer(port, "0 101").replace("c=IN IP4 127.0.0.1", "c=IN IP4 127.0.0.3");
    let ua = UdpUa::new(ivr.sip_addr());
    let ids = CallIds::new();
    let ok = invite_ok(&ua, &ids, &sdp);
    ua.send(in_dialog(&ua, &ids, &ok, "ACK", 1));

    // Receive until 2 s pass without a packet, or give up after 8 s.
    let mut buf = [0u8; 2048];
    third
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let acked = Instant::now();
    let (mut packets, mut last) = (0u64, None);
    while acked.elapsed() < Duration::from_secs(8) && third.recv_from(&mut buf).is_ok() {
        packets += 1;
        last = Some(acked.elapsed());
    }
    let last = last.unwrap_or_default();
    eprintln!("the third party got {packets} packets, the last {last:?} after the ACK");
    assert!(packets > 0, "ivr never streamed to the SDP address");
    assert!(
        acked.elapsed() < Duration::from_secs(8),
        "the third party still received RTP {:?} after the answer ({packets} packets); ivr log:\n{}",
        acked.elapsed(),
        ivr.log()
    );
    assert!(
        last <= Duration::from_millis(3500),
        "the last packet came {last:?} after the answer (timeout 2 s)"
    );
    let bye = ua.expect_request(&ids.call_id, "BYE", SIP_WAIT);
    ua.send(ok_for(&bye));
    ivr.wait_for_log(&["event=\"rtp_timeout\""], SIP_WAIT);
    let cdr = closed_cdr(&ivr);
    assert_eq!(cdr["end_reason"], "no RTP for 2 s", "{cdr:?}");
}
