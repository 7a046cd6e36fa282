//! Malformed and unwelcome input against the real binary: every case gets exactly the status
//! RFC 3261 asks for (or silence, for garbage), responses are routed by the request's Via and
//! echo its branch and Call-ID, and the server keeps serving afterwards.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Ivr, SipMsg, UdpUa, param, token};

const WAIT: Duration = Duration::from_secs(5);

/// Identity of one probe: a unique branch and Call-ID.
struct Probe {
    branch: String,
    call_id: String,
}

impl Probe {
    fn new() -> Probe {
        Probe {
            branch: format!("z9hG4bK-bad-{}", token()),
            call_id: format!("bad-{}@test.invalid", token()),
        }
    }
}

/// The next response whose top Via carries `probe`'s branch.
fn reply(ua: &UdpUa, probe: &Probe) -> SipMsg {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(m) = ua.recv(left) else {
            panic!(
                "no response with branch {} within {WAIT:?}; saw {seen:#?}",
                probe.branch
            );
        };
        if m.status().is_some() && m.via_branch().as_deref() == Some(probe.branch.as_str()) {
            return m;
        }
        seen.push(m.start_line.clone());
    }
}

/// Skips provisional responses.
fn final_reply(ua: &UdpUa, probe: &Probe) -> SipMsg {
    loop {
        let m = reply(ua, probe);
        if m.status().is_some_and(|s| s >= 200) {
            return m;
        }
    }
}

fn assert_status(m: &SipMsg, status: u16, what: &str) {
    assert_eq!(m.status(), Some(status), "{what}: got\n{}", m.text());
}

fn assert_echoes_call_id(m: &SipMsg, probe: &Probe, what: &str) {
    assert_eq!(
        m.call_id(),
        Some(probe.call_id.as_str()),
        "{what}: Call-ID not echoed:\n{}",
        m.text()
    );
}

/// Standard headers of a request from `ua`; `skip` leaves one out.
fn headers(ua: &UdpUa, probe: &Probe, method: &str, skip: &str) -> String {
    let local = ua.local();
    let server = ua.server;
    let mut out = String::new();
    let lines = [
        (
            "Via",
            format!("SIP/2.0/UDP {local};branch={};rport", probe.branch),
        ),
        ("Max-Forwards", "70".to_string()),
        ("From", format!("<sip:tester@{local}>;tag={}", token())),
        ("To", format!("<sip:ivr@{server}>")),
        ("Call-ID", probe.call_id.clone()),
        ("CSeq", format!("1 {method}")),
    ];
    for (name, value) in lines {
        if name != skip {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out
}

fn request_line(ua: &UdpUa, method: &str) -> String {
    format!("{method} sip:ivr@{} SIP/2.0\r\n", ua.server)
}

#[test]
fn udp_bad_input_is_answered_and_the_server_keeps_serving() {
    let ivr = Ivr::start(&[]);
    let ua = UdpUa::new(ivr.sip_addr());

    // 1. Truncated: the datagram ends in the middle of the headers (no blank line).
    let p = Probe::new();
    let msg = format!(
        "{}{}Contact: <sip:tester@{}>\r\nContent-Ty",
        request_line(&ua, "INVITE"),
        headers(&ua, &p, "INVITE", ""),
        ua.local()
    );
    ua.send(&msg);
    let m = reply(&ua, &p);
    assert_status(&m, 400, "truncated INVITE");
    assert_echoes_call_id(&m, &p, "truncated INVITE");

    // 2. No Call-ID.
    let p = Probe::new();
    ua.send(format!(
        "{}{}Content-Length: 0\r\n\r\n",
        request_line(&ua, "OPTIONS"),
        headers(&ua, &p, "OPTIONS", "Call-ID")
    ));
    let m = reply(&ua, &p);
    assert_status(&m, 400, "missing Call-ID");
    assert_eq!(m.call_id(), None, "no Call-ID to echo:\n{}", m.text());

    // 3. Content-Length far beyond the body that arrived.
    let p = Probe::new();
    ua.send(format!(
        "{}{}Content-Type: application/sdp\r\nContent-Length: 99999\r\n\r\nv=0\r\n",
        request_line(&ua, "INVITE"),
        headers(&ua, &p, "INVITE", "")
    ));
    let m = reply(&ua, &p);
    assert_status(&m, 400, "Content-Length 99999 with a short body");
    assert_echoes_call_id(&m, &p, "Content-Length 99999");

    // 4. Binary garbage: no response at all, and a log line.
    let mut x: u32 = 0x2545_F491;
    let garbage: Vec<u8> = (0..300)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .map(|b| if b == b'\r' || b == b'\n' { 0xA5 } else { b })
        .collect();
    ua.send(&garbage);
    if let Some(m) = ua.recv(Duration::from_secs(1)) {
        panic!("garbage must not be answered; got\n{}", m.text());
    }
    ivr.wait_for_log(&["dropping unparseable message"], WAIT);

    // 5. A header value that is not UTF-8.
    let p = Probe::new();
    let mut msg = format!(
        "{}{}",
        request_line(&ua, "OPTIONS"),
        headers(&ua, &p, "OPTIONS", "")
    )
    .into_bytes();
    msg.extend_from_slice(b"Subject: caf\xE9 \xFF\xFE\r\nContent-Length: 0\r\n\r\n");
    ua.send(&msg);
    let m = reply(&ua, &p);
    assert_status(&m, 400, "non-UTF-8 header value");
    assert_echoes_call_id(&m, &p, "non-UTF-8 header value");

    // 6. An offer with no codec we support: 488 with a Warning naming it; then ACK the 488.
    let p = Probe::new();
    let sdp = "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 6000 RTP/AVP 18\r\n";
    ua.send(format!(
        "{}{}Contact: <sip:tester@{}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        request_line(&ua, "INVITE"),
        headers(&ua, &p, "INVITE", ""),
        ua.local(),
        sdp.len()
    ));
    let m = final_reply(&ua, &p);
    assert_status(&m, 488, "G729-only offer");
    assert_echoes_call_id(&m, &p, "G729-only offer");
    let warning = m.header("Warning").unwrap_or_else(|| {
        panic!("488 without Warning:\n{}", m.text());
    });
    assert!(
        warning.starts_with("399 ") && warning.contains("G729"),
        "Warning should name the offered codec: {warning:?}"
    );
    let to = m.header("To").expect("To in 488");
    assert!(param(to, "tag").is_some(), "488 To must carry a tag: {to}");
    let invite_headers = headers(&ua, &p, "INVITE", "");
    // The ACK for a non-2xx final reuses the INVITE's branch, From and Call-ID (RFC 3261 §17.1.1.3).
    let from = m.header("From").expect("From in 488");
    let ack: String = invite_headers
        .lines()
        .map(|l| {
            if l.starts_with("To:") {
                format!("To: {to}")
            } else if l.starts_with("From:") {
                format!("From: {from}")
            } else if l.starts_with("CSeq:") {
                "CSeq: 1 ACK".to_string()
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\r\n")
        .collect();
    ua.send(format!(
        "{}{ack}Content-Length: 0\r\n\r\n",
        request_line(&ua, "ACK")
    ));
    ivr.wait_for_log(&["event=\"rejected\"", "reason=rejected with 488"], WAIT);
    // Timer G would retransmit the 488 after T1 (500 ms) had the ACK not matched the transaction.
    if let Some(m) = ua.recv(Duration::from_millis(1200)) {
        panic!("nothing should follow the ACKed 488; got\n{}", m.text());
    }

    // 7. An unknown method: 501 with Allow.
    let p = Probe::new();
    ua.send(format!(
        "{}{}Content-Length: 0\r\n\r\n",
        request_line(&ua, "FOO"),
        headers(&ua, &p, "FOO", "")
    ));
    let m = reply(&ua, &p);
    assert_status(&m, 501, "unknown method FOO");
    assert_echoes_call_id(&m, &p, "unknown method FOO");
    let allow = m.header("Allow").unwrap_or_else(|| {
        panic!("501 without Allow:\n{}", m.text());
    });
    for method in ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"] {
        assert!(
            allow.split(',').any(|a| a.trim() == method),
            "Allow lacks {method}: {allow}"
        );
    }

    // 8. BYE in a dialog that does not exist.
    let p = Probe::new();
    let bye_headers = headers(&ua, &p, "BYE", "").replace(
        &format!("To: <sip:ivr@{}>", ua.server),
        &format!("To: <sip:ivr@{}>;tag=no-such-dialog", ua.server),
    );
    assert!(bye_headers.contains("tag=no-such-dialog"));
    ua.send(format!(
        "{}{bye_headers}Content-Length: 0\r\n\r\n",
        request_line(&ua, "BYE")
    ));
    let m = reply(&ua, &p);
    assert_status(&m, 481, "BYE for an unknown dialog");
    assert_echoes_call_id(&m, &p, "BYE for an unknown dialog");

    // 9. After all that, a normal OPTIONS still works.
    let p = Probe::new();
    ua.send(format!(
        "{}{}Accept: application/sdp\r\nContent-Length: 0\r\n\r\n",
        request_line(&ua, "OPTIONS"),
        headers(&ua, &p, "OPTIONS", "")
    ));
    let m = reply(&ua, &p);
    assert_status(&m, 200, "OPTIONS after bad input");
    assert_echoes_call_id(&m, &p, "OPTIONS after bad input");
}

/// Reads one response from a TCP stream (head plus Content-Length body).
fn read_tcp_response(stream: &mut TcpStream) -> SipMsg {
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(m) = SipMsg::parse(&buf) {
            let len: usize = m
                .header("Content-Length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if m.body.len() >= len {
                return m;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => panic!(
                "connection closed before a full response; got {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!(
                "reading TCP response: {e}; got {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
}

fn tcp_options(local: SocketAddr, server: SocketAddr, p: &Probe, content_length: &str) -> String {
    format!(
        "OPTIONS sip:ivr@{server} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch={}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:tester@{local}>;tag={}\r\n\
         To: <sip:ivr@{server}>\r\n\
         Call-ID: {}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: {content_length}\r\n\r\n",
        p.branch,
        token(),
        p.call_id
    )
}

#[test]
fn tcp_oversized_content_length_closes_only_that_connection() {
    let ivr = Ivr::start(&[]);
    let server = ivr.sip_addr();

    // A length no stream message may have: 513, then the server closes the connection (it can
    // no longer find message boundaries).
    let mut s = TcpStream::connect(server).expect("connect");
    let local = s.local_addr().expect("local");
    let p = Probe::new();
    s.write_all(tcp_options(local, server, &p, "99999999").as_bytes())
        .expect("write");
    let m = read_tcp_response(&mut s);
    assert_eq!(
        m.status(),
        Some(513),
        "oversized Content-Length:\n{}",
        m.text()
    );
    assert_eq!(m.via_branch().as_deref(), Some(p.branch.as_str()));
    assert_eq!(m.call_id(), Some(p.call_id.as_str()));
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => assert!(
            rest.is_empty(),
            "nothing may follow the 513: {:?}",
            String::from_utf8_lossy(&rest)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("server did not close the connection after 513: {e}"),
    }

    // A fresh connection is served normally.
    let mut s = TcpStream::connect(server).expect("connect again");
    let local = s.local_addr().expect("local");
    let p = Probe::new();
    s.write_all(tcp_options(local, server, &p, "0").as_bytes())
        .expect("write");
    let m = read_tcp_response(&mut s);
    assert_eq!(m.status(), Some(200), "OPTIONS over TCP:\n{}", m.text());
    assert_eq!(m.via_branch().as_deref(), Some(p.branch.as_str()));
    assert_eq!(m.call_id(), Some(p.call_id.as_str()));
    assert!(
        m.header("Via")
            .is_some_and(|v| v.starts_with("SIP/2.0/TCP ")),
        "Via transport:\n{}",
        m.text()
    );
}
