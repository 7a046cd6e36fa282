//! The UAC leg on a virtual clock: provisional, answer and ACK, failures, CANCEL, challenges,
//! redirects and timer B.

use super::super::super::auth;
use super::super::*;
use std::time::Duration;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8\r\n";

fn staff() -> SocketAddr {
    "127.0.0.1:5070".parse().unwrap()
}
fn local() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}

struct Leg {
    ep: Endpoint,
    t0: Instant,
    call: CallRef,
    invite: String,
}

fn spec() -> OutboundCall {
    OutboundCall {
        request_uri: "sip:alice@127.0.0.1:5070".into(),
        destination: staff(),
        transport: Transport::Udp,
        local: local(),
        display_name: "Acme +15551230001".into(),
        from_user: "+15551230001".into(),
        sdp: SDP.into(),
        credentials: Some(Credentials {
            username: "alice".into(),
            password: "secret".into(),
        }),
        redirect_hosts: vec!["127.0.0.1".into()],
        extra_headers: vec![],
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .find(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
        })
        .map(|l| l.split_once(':').unwrap().1.trim())
}

impl Leg {
    fn new(spec: OutboundCall) -> Leg {
        let mut ep = Endpoint::new(EndpointConfig::default());
        let t0 = Instant::now();
        let call = ep.invite(t0, spec);
        let (sent, _) = drain(&mut ep);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, staff());
        Leg {
            ep,
            t0,
            call,
            invite: sent[0].1.clone(),
        }
    }
    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }
    /// A response to our latest INVITE (or to `of`, a request we sent).
    fn response(
        &self,
        of: &str,
        status: u16,
        to_tag: Option<&str>,
        extra: &str,
        body: &str,
    ) -> String {
        let mut out = format!("SIP/2.0 {status} X\r\n");
        for name in ["Via", "From", "Call-ID", "CSeq"] {
            out.push_str(&format!("{name}: {}\r\n", header(of, name).unwrap()));
        }
        let to = header(of, "To").unwrap();
        match to_tag {
            Some(t) => out.push_str(&format!("To: {to};tag={t}\r\n")),
            None => out.push_str(&format!("To: {to}\r\n")),
        }
        out.push_str(extra);
        if body.is_empty() {
            out.push_str("Content-Length: 0\r\n\r\n");
        } else {
            out.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        }
        out
    }
    fn recv(&mut self, ms: u64, msg: &str) -> (Vec<(SocketAddr, String)>, Vec<CallEvent>) {
        let now = self.at(ms);
        self.ep
            .handle_message(now, msg.as_bytes(), staff(), Transport::Udp, local());
        drain(&mut self.ep)
    }
    fn run_until(&mut self, until_ms: u64) -> (Vec<(SocketAddr, String)>, Vec<CallEvent>) {
        let mut sent = Vec::new();
        let mut events = Vec::new();
        while let Some(d) = self.ep.poll_timeout() {
            if d > self.at(until_ms) {
                break;
            }
            self.ep.handle_timeout(d);
            let (s, e) = drain(&mut self.ep);
            sent.extend(s);
            events.extend(e);
        }
        (sent, events)
    }
}

fn drain(ep: &mut Endpoint) -> (Vec<(SocketAddr, String)>, Vec<CallEvent>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    while let Some(o) = ep.poll_output() {
        match o {
            Output::Transmit { to, bytes, .. } => {
                sent.push((to, String::from_utf8(bytes.to_vec()).unwrap()))
            }
            Output::Event(_, e) => events.push(e),
        }
    }
    (sent, events)
}

#[test]
fn invite_carries_offer_caller_and_contact() {
    let leg = Leg::new(spec());
    let inv = &leg.invite;
    assert!(inv.starts_with("INVITE sip:alice@127.0.0.1:5070 SIP/2.0\r\n"));
    assert!(
        header(inv, "From")
            .unwrap()
            .starts_with("\"Acme +15551230001\" <sip:+15551230001@127.0.0.1:5060>;tag=")
    );
    assert_eq!(header(inv, "To"), Some("<sip:alice@127.0.0.1:5070>"));
    assert_eq!(header(inv, "Contact"), Some("<sip:ivr@127.0.0.1:5060>"));
    assert_eq!(header(inv, "CSeq"), Some("1 INVITE"));
    assert!(inv.ends_with(SDP));
}

#[test]
fn ringing_then_answer_is_acked_and_reported() {
    let mut leg = Leg::new(spec());
    let inv = leg.invite.clone();
    let (_, ev) = leg.recv(10, &leg.response(&inv, 180, Some("st1"), "", ""));
    assert_eq!(
        ev,
        vec![CallEvent::Progress {
            status: 180,
            body: vec![]
        }]
    );
    let ok = leg.response(
        &inv,
        200,
        Some("st1"),
        "Contact: <sip:alice@127.0.0.1:5071>\r\n",
        SDP,
    );
    let (sent, ev) = leg.recv(20, &ok);
    assert_eq!(
        ev,
        vec![CallEvent::Answered {
            body: SDP.as_bytes().to_vec()
        }]
    );
    assert_eq!(sent.len(), 1);
    let (to, ack) = &sent[0];
    // The ACK goes to the Contact of the 2xx, with the INVITE's CSeq and the remote tag.
    assert_eq!(*to, "127.0.0.1:5071".parse().unwrap());
    assert!(ack.starts_with("ACK sip:alice@127.0.0.1:5071 SIP/2.0"));
    assert_eq!(header(ack, "CSeq"), Some("1 ACK"));
    assert!(header(ack, "To").unwrap().ends_with(";tag=st1"));
    // A retransmitted 2xx (our ACK was lost) gets the same ACK again.
    let (sent, ev) = leg.recv(520, &ok);
    assert!(ev.is_empty());
    assert_eq!(sent, vec![(*to, ack.clone())]);
}

#[test]
fn answered_leg_hangs_up_with_bye_and_takes_a_bye() {
    let mut leg = Leg::new(spec());
    let inv = leg.invite.clone();
    leg.recv(
        10,
        &leg.response(
            &inv,
            200,
            Some("st1"),
            "Contact: <sip:alice@127.0.0.1:5070>\r\n",
            SDP,
        ),
    );
    let now = leg.at(30);
    leg.ep.hangup(now, leg.call);
    let (sent, _) = drain(&mut leg.ep);
    assert!(
        sent[0]
            .1
            .starts_with("BYE sip:alice@127.0.0.1:5070 SIP/2.0")
    );
    assert_eq!(header(&sent[0].1, "CSeq"), Some("2 BYE"));

    // The other direction: the staff phone hangs up.
    let mut leg = Leg::new(spec());
    let inv = leg.invite.clone();
    leg.recv(
        10,
        &leg.response(
            &inv,
            200,
            Some("st9"),
            "Contact: <sip:alice@127.0.0.1:5070>\r\n",
            SDP,
        ),
    );
    let from_tag = header(&inv, "From")
        .unwrap()
        .split("tag=")
        .nth(1)
        .unwrap()
        .to_string();
    let bye = format!(
        "BYE sip:ivr@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbye1\r\n\
From: <sip:alice@127.0.0.1:5070>;tag=st9\r\nTo: {};tag={from_tag}\r\nCall-ID: {}\r\nCSeq: 7 BYE\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        header(&inv, "From").unwrap().split(";tag=").next().unwrap(),
        header(&inv, "Call-ID").unwrap()
    );
    let (sent, ev) = leg.recv(40, &bye);
    assert!(sent[0].1.starts_with("SIP/2.0 200"));
    assert_eq!(
        ev,
        vec![CallEvent::Ended {
            reason: EndReason::RemoteBye
        }]
    );
}

#[test]
fn busy_is_acked_and_ends_the_leg() {
    let mut leg = Leg::new(spec());
    let inv = leg.invite.clone();
    let (sent, ev) = leg.recv(10, &leg.response(&inv, 486, Some("st1"), "", ""));
    assert_eq!(
        ev,
        vec![CallEvent::Ended {
            reason: EndReason::Declined(486)
        }]
    );
    let ack = &sent[0].1;
    assert!(ack.starts_with("ACK sip:alice@127.0.0.1:5070 SIP/2.0"));
    // Same branch as the INVITE (§17.1.1.3).
    assert_eq!(header(ack, "Via"), header(&inv, "Via"));
    assert!(header(ack, "To").unwrap().ends_with(";tag=st1"));
}

#[test]
fn cancel_waits_for_a_provisional_and_487_ends_the_leg() {
    let mut leg = Leg::new(spec());
    let inv = leg.invite.clone();
    let now = leg.at(5);
    leg.ep.hangup(now, leg.call);
    let (sent, _) = drain(&mut leg.ep);
    assert!(
        sent.is_empty(),
        "no CANCEL before a provisional (§9.1): {sent:?}"
    );
    let (sent, ev) = leg.recv(10, &leg.response(&inv, 180, Some("st1"), "", ""));
    assert!(ev.is_empty());
    let cancel = &sent[0].1;
    assert!(cancel.starts_with("CANCEL sip:alice@127.0.0.1:5070 SIP/2.0"));
    assert_eq!(header(cancel, "Via"), header(&inv, "Via"));
    assert_eq!(header(cancel, "CSeq"), Some("1 CANCEL"));
    let (_, ev) = leg.recv(15, &leg.response(cancel, 200, Some("st1"), "", ""));
    assert!(ev.is_empty());
    let (sent, ev) = leg.recv(20, &leg.response(&inv, 487, Some("st1"), "", ""));
    assert!(sent[0].1.starts_with("ACK "));
    assert_eq!(
        ev,
        vec![CallEvent::Ended {
            reason: EndReason::Declined(487)
        }]
    );
}

#[test]
fn answer_crossing_our_cancel_is_acked_then_hung_up() {
    let mut leg = Leg::new(spec());
    let inv = leg.invite.clone();
    leg.recv(10, &leg.response(&inv, 100, None, "", ""));
    let now = leg.at(20);
    leg.ep.hangup(now, leg.call);
    drain(&mut leg.ep);
    let (sent, ev) = leg.recv(
        30,
        &leg.response(
            &inv,
            200,
            Some("st1"),
            "Contact: <sip:alice@127.0.0.1:5070>\r\n",
            SDP,
        ),
    );
    let lines: Vec<&str> = sent
        .iter()
        .map(|(_, m)| m.lines().next().unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            "ACK sip:alice@127.0.0.1:5070 SIP/2.0",
            "BYE sip:alice@127.0.0.1:5070 SIP/2.0"
        ]
    );
    assert!(ev.is_empty(), "an unwanted answer is not reported: {ev:?}");
}

#[test]
fn challenge_is_answered_once_with_digest() {
    let mut leg = Leg::new(spec());
    let inv = leg.invite.clone();
    let server = auth::DigestServer::new("staff", [7; 32], Duration::from_secs(300));
    let challenge = format!(
        "WWW-Authenticate: {}\r\n",
        server.challenge(1000, auth::Algorithm::Sha256)
    );
    let (sent, ev) = leg.recv(10, &leg.response(&inv, 401, Some("x"), &challenge, ""));
    assert!(ev.is_empty());
    assert!(sent[0].1.starts_with("ACK "));
    let again = &sent[1].1;
    assert!(again.starts_with("INVITE sip:alice@127.0.0.1:5070 SIP/2.0"));
    assert_eq!(header(again, "CSeq"), Some("2 INVITE"));
    assert_ne!(
        header(again, "Via"),
        header(&inv, "Via"),
        "a new transaction"
    );
    let authz = header(again, "Authorization").unwrap();
    assert!(authz.contains("username=\"alice\""));
    assert!(authz.contains("algorithm=SHA-256"));
    // A second challenge means the password is wrong: give up, do not loop.
    let (_, ev) = leg.recv(20, &leg.response(again, 401, Some("y"), &challenge, ""));
    assert_eq!(
        ev,
        vec![CallEvent::Ended {
            reason: EndReason::Declined(401)
        }]
    );
}

#[test]
fn redirect_followed_once_inside_allowed_hosts_only() {
    let mut leg = Leg::new(spec());
    let inv = leg.invite.clone();
    let (sent, _) = leg.recv(
        10,
        &leg.response(
            &inv,
            302,
            Some("r"),
            "Contact: <sip:bob@127.0.0.1:5080>\r\n",
            "",
        ),
    );
    assert_eq!(sent[1].0, "127.0.0.1:5080".parse().unwrap());
    assert!(
        sent[1]
            .1
            .starts_with("INVITE sip:bob@127.0.0.1:5080 SIP/2.0")
    );
    let second = sent[1].1.clone();
    let (_, ev) = leg.recv(
        20,
        &leg.response(
            &second,
            302,
            Some("r2"),
            "Contact: <sip:carol@127.0.0.1:5090>\r\n",
            "",
        ),
    );
    assert_eq!(
        ev,
        vec![CallEvent::Ended {
            reason: EndReason::Declined(302)
        }]
    );

    // Outside the allowed hosts: refused, nothing sent there.
    let mut leg = Leg::new(spec());
    let inv = leg.invite.clone();
    let (sent, ev) = leg.recv(
        10,
        &leg.response(
            &inv,
            302,
            Some("r"),
            "Contact: <sip:+19005550100@203.0.113.9>\r\n",
            "",
        ),
    );
    assert!(sent.iter().all(|(to, _)| *to == staff()));
    assert_eq!(
        ev,
        vec![CallEvent::Ended {
            reason: EndReason::Declined(302)
        }]
    );
}

#[test]
fn silent_phone_gets_retransmissions_then_timer_b() {
    let mut leg = Leg::new(spec());
    let (sent, ev) = leg.run_until(40_000);
    let times = sent.len();
    // Timer A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s after the first send; timer B at 32 s.
    assert_eq!(times, 6, "{sent:?}");
    assert!(sent.iter().all(|(_, m)| m == &leg.invite));
    assert_eq!(
        ev,
        vec![CallEvent::Ended {
            reason: EndReason::NoResponse
        }]
    );
    assert!(!leg.ep.transactions_pending());
}

#[test]
fn cancel_without_any_answer_gives_up_after_64_t1() {
    let mut leg = Leg::new(spec());
    let inv = leg.invite.clone();
    leg.recv(10, &leg.response(&inv, 180, Some("st1"), "", ""));
    let now = leg.at(100);
    leg.ep.hangup(now, leg.call);
    drain(&mut leg.ep);
    let (_, ev) = leg.run_until(100 + 32_000);
    assert_eq!(
        ev,
        vec![CallEvent::Ended {
            reason: EndReason::NoResponse
        }]
    );
}

#[test]
fn a_phone_registered_over_tcp_is_called_on_its_connection_without_retransmissions() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    ep.invite(
        t0,
        OutboundCall {
            transport: Transport::Tcp(7),
            ..spec()
        },
    );
    let mut sent = Vec::new();
    let mut events = Vec::new();
    loop {
        while let Some(o) = ep.poll_output() {
            match o {
                Output::Transmit {
                    transport, bytes, ..
                } => sent.push((transport, String::from_utf8(bytes.to_vec()).unwrap())),
                Output::Event(_, e) => events.push(e),
            }
        }
        match ep.poll_timeout() {
            Some(d) if d <= t0 + Duration::from_secs(40) => ep.handle_timeout(d),
            _ => break,
        }
    }
    assert_eq!(sent.len(), 1, "no timer A over TCP: {sent:?}");
    let (transport, invite) = &sent[0];
    assert_eq!(*transport, Transport::Tcp(7));
    assert!(
        header(invite, "Via")
            .unwrap()
            .starts_with("SIP/2.0/TCP 127.0.0.1:5060;")
    );
    assert_eq!(
        header(invite, "Contact"),
        Some("<sip:ivr@127.0.0.1:5060;transport=tcp>")
    );
    assert_eq!(
        events,
        vec![CallEvent::Ended {
            reason: EndReason::NoResponse
        }]
    );
}
