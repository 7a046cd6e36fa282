//! Signalling attacks against the real binary, with the attacker on other loopback hosts
//! (127.0.0.2, 127.0.0.3): a flood of never-ACKed INVITEs from one source, a Record-Route aimed at
//! a third party, staff-name enumeration by From, and RFC 4475-style requests that must get
//! their RFC status. Issue 11, rows 2, 6 (Record-Route), 8 and 9.

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Ivr, SipMsg, UdpUa, ok_for, sdp_offer, token, unique_temp_dir};

const WAIT: Duration = Duration::from_secs(5);

/// A UDP user agent on another loopback host.
fn ua_on(ip: &str, server: SocketAddr) -> UdpUa {
    let sock = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
    UdpUa { sock, server }
}

/// An INVITE from `ua` with `from` as the From URI (`None`: the UA's own address), an SDP offer,
/// and `extra` header lines; returns (message, Call-ID).
fn invite(ua: &UdpUa, request_uri: &str, from: Option<&str>, extra: &str) -> (String, String) {
    let local = ua.local();
    let call_id = format!("atk-{}@test", token());
    let from = from.map_or_else(|| format!("sip:caller@{local}"), str::to_string);
    let sdp = sdp_offer(local.port() + 1000, "0 101");
    let msg = format!(
        "INVITE {request_uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <{from}>;tag={}\r\n\
         To: <sip:ivr@{}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{local}>\r\n\
         {extra}\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        token(),
        token(),
        ua.server,
        sdp.len()
    );
    (msg, call_id)
}

fn ack_for(ua: &UdpUa, ok: &SipMsg) -> String {
    let local = ua.local();
    format!(
        "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{};rport\r\nMax-Forwards: 70\r\n\
         From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        ok.contact_uri().expect("Contact in 200"),
        token(),
        ok.header("From").unwrap_or_default(),
        ok.header("To").unwrap_or_default(),
        ok.call_id().unwrap_or_default(),
    )
}

/// Places a call from `ua` and checks it is answered (200), then ACKs it.
fn call_is_answered(ua: &UdpUa, what: &str) -> SipMsg {
    let (msg, call_id) = invite(ua, &format!("sip:ivr@{}", ua.server), None, "");
    ua.send(&msg);
    let ok = ua.expect_response(&call_id, |s| s >= 200, WAIT);
    assert_eq!(ok.status(), Some(200), "{what}: {}", ok.text());
    ua.send(ack_for(ua, &ok));
    ok
}

/// Everything that arrives on `sock` within `window`: (datagrams, bytes).
fn drain(sock: &UdpSocket, window: Duration) -> (usize, usize) {
    let deadline = Instant::now() + window;
    let mut buf = vec![0u8; 65_536];
    let (mut n, mut bytes) = (0, 0);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv_from(&mut buf) {
            Ok((len, _)) => {
                n += 1;
                bytes += len;
            }
            Err(_) => break,
        }
    }
    (n, bytes)
}

#[test]
fn a_flood_of_unacked_invites_from_one_source_cannot_take_the_line() {
    let ivr = Ivr::start(&[]);
    let flooder = ua_on("127.0.0.2", ivr.sip_addr());
    let caller = UdpUa::new(ivr.sip_addr());
    // 600 INVITEs in about 0.3 s, never ACKed.
    let mut sent_bytes = 0;
    let start = Instant::now();
    for i in 0..600 {
        let (msg, _) = invite(&flooder, &format!("sip:ivr@{}", ivr.sip_addr()), None, "");
        flooder.send(&msg);
        sent_bytes += msg.len();
        if i == 300 {
            // A real caller in the middle of the flood is answered.
            call_is_answered(&caller, "during the flood");
        }
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let flood_time = start.elapsed();
    // What the flooder got back over the next 3 s: a handful of calls' worth, not 600.
    let (datagrams, back_bytes) = drain(&flooder.sock, Duration::from_secs(3));
    call_is_answered(&caller, "after the flood");
    let log = ivr.log();
    let incoming = log.matches("event=\"invite\"").count();
    eprintln!(
        "flood: 600 INVITEs ({sent_bytes} bytes) in {flood_time:?}; back in 3 s: {datagrams} datagrams, \
         {back_bytes} bytes ({:.2}x); calls created: {incoming} (2 real)",
        back_bytes as f64 / sent_bytes as f64
    );
    assert!(
        incoming <= 12,
        "calls created for the flooder (+2 real): {incoming}; the flood took {flood_time:?}"
    );
    assert!(
        back_bytes * 2 < sent_bytes,
        "reflection: {back_bytes} bytes in {datagrams} datagrams back for {sent_bytes} sent"
    );
    assert!(log.contains("event=\"source_limited\""), "{log}");
    let limited_lines = log.matches("event=\"source_limited\"").count();
    assert!(
        limited_lines <= 5,
        "one line a second, not one per request: {limited_lines}"
    );
}

#[test]
fn a_record_route_from_the_caller_does_not_aim_our_bye_at_a_third_party() {
    let ivr = Ivr::start(&[]);
    let caller = UdpUa::new(ivr.sip_addr());
    let victim = UdpSocket::bind("127.0.0.3:0").unwrap();
    let rr = format!(
        "Record-Route: <sip:{};lr>\r\n",
        victim.local_addr().unwrap()
    );
    let (msg, call_id) = invite(&caller, &format!("sip:ivr@{}", ivr.sip_addr()), None, &rr);
    caller.send(&msg);
    let ok = caller.expect_response(&call_id, |s| s >= 200, WAIT);
    assert_eq!(ok.status(), Some(200), "{}", ok.text());
    caller.send(ack_for(&caller, &ok));
    // The greeting flow hangs up after its prompt: the BYE comes back to the caller.
    let bye = caller.expect_request(&call_id, "BYE", Duration::from_secs(20));
    caller.send(ok_for(&bye));
    let (datagrams, _) = drain(&victim, Duration::from_millis(300));
    assert_eq!(
        datagrams, 0,
        "the third party named by Record-Route got our BYE"
    );
}

const STAFF: &str = "[[staff.users]]\nname = \"alice\"\npassword = \"s3cret\"\n";

fn start_with(config: &str) -> Ivr {
    let path = unique_temp_dir("attack-sip").join("ivr.toml");
    std::fs::write(&path, config).unwrap();
    Ivr::start(&["--config", path.to_str().expect("utf-8 temp path")])
}

#[test]
fn staff_names_cannot_be_told_apart_by_the_answer_to_an_invite() {
    let ivr = start_with(STAFF);
    let ua = ua_on("127.0.0.2", ivr.sip_addr());
    let ours = ivr.sip_addr();
    let mut answers = Vec::new();
    for user in ["alice", "carol"] {
        let (msg, call_id) = invite(
            &ua,
            &format!("sip:ivr@{ours}"),
            Some(&format!("sip:{user}@{}", ours.ip())),
            "",
        );
        ua.send(&msg);
        let m = ua.expect_response(&call_id, |s| s >= 180, WAIT);
        assert_eq!(
            m.start_line,
            "SIP/2.0 407 Proxy Authentication Required",
            "{user}: {}",
            m.text()
        );
        let names: Vec<String> = m.headers.iter().map(|(n, _)| n.clone()).collect();
        answers.push(names);
    }
    assert_eq!(
        answers[0], answers[1],
        "same headers for a staff name and another"
    );
    // From a caller's own address, either name is just a caller.
    for user in ["alice", "carol"] {
        let (msg, call_id) = invite(
            &ua,
            &format!("sip:ivr@{ours}"),
            Some(&format!("sip:{user}@{}", ua.local())),
            "",
        );
        ua.send(&msg);
        let m = ua.expect_response(&call_id, |s| s >= 180, WAIT);
        assert_eq!(m.status(), Some(180), "{user}: {}", m.text());
    }
}

/// Sends `msg` and returns the first final response for its Call-ID.
fn final_status(ua: &UdpUa, msg: &str, call_id: &str) -> SipMsg {
    ua.send(msg);
    ua.expect_response(call_id, |s| s >= 200, WAIT)
}

#[test]
fn rfc_4475_style_requests_get_their_rfc_status() {
    let ivr = Ivr::start(&[]);
    let ua = UdpUa::new(ivr.sip_addr());
    let ours = format!("sip:ivr@{}", ivr.sip_addr());

    // An unsupported Request-URI scheme: 416 (RFC 3261 §8.2.2.1).
    let (msg, id) = invite(&ua, "mailto:ivr@example.com", None, "");
    let m = final_status(&ua, &msg, &id);
    assert_eq!(m.status(), Some(416), "{}", m.text());

    // A Request-URI host that is not ours: 404, no call.
    let (msg, id) = invite(&ua, "sip:ivr@192.0.2.10", None, "");
    assert_eq!(final_status(&ua, &msg, &id).status(), Some(404));

    // Two Content-Length headers that disagree: 400.
    let (msg, id) = invite(&ua, &ours, None, "");
    let msg = msg.replacen("Content-Length:", "Content-Length: 3\r\nContent-Length:", 1);
    assert_eq!(final_status(&ua, &msg, &id).status(), Some(400));

    // An unterminated quoted display name: 400.
    let (msg, id) = invite(&ua, &ours, None, "");
    let msg = msg.replacen("From: <", "From: \"Caller <", 1);
    assert_eq!(final_status(&ua, &msg, &id).status(), Some(400));

    // None of them became a call, and the line still answers.
    assert_eq!(
        ivr.log().matches("event=\"invite\"").count(),
        0,
        "{}",
        ivr.log()
    );
    call_is_answered(&ua, "after the bad requests");
}
