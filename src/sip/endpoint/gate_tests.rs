//! The endpoint's gate on a virtual clock: foreign Request-URI hosts, per-source admission and
//! half-open calls, which From must prove itself, and where our BYE may go.

use super::*;
use std::collections::HashMap;
use std::time::Duration;

fn local() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}

struct Sent {
    to: SocketAddr,
    text: String,
}

impl Sent {
    fn status(&self) -> Option<u16> {
        self.text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }
}

struct Gate {
    ep: Endpoint,
    t0: Instant,
}

impl Gate {
    fn new(config: EndpointConfig) -> Gate {
        Gate {
            ep: Endpoint::new(config),
            t0: Instant::now(),
        }
    }

    fn recv(&mut self, ms: u64, from: SocketAddr, msg: &str) -> (Vec<Sent>, Vec<CallRef>) {
        let now = self.t0 + Duration::from_millis(ms);
        self.ep
            .handle_message(now, msg.as_bytes(), from, Transport::Udp, local());
        self.drain()
    }

    fn drain(&mut self) -> (Vec<Sent>, Vec<CallRef>) {
        let (mut sent, mut calls) = (Vec::new(), Vec::new());
        while let Some(o) = self.ep.poll_output() {
            match o {
                Output::Transmit { to, bytes, .. } => sent.push(Sent {
                    to,
                    text: String::from_utf8(bytes.to_vec()).unwrap(),
                }),
                Output::Event(c, CallEvent::Incoming(_)) => calls.push(c),
                Output::Event(..) => {}
            }
        }
        (sent, calls)
    }
}

fn invite(n: usize, from: SocketAddr, from_uri: &str, request_uri: &str, extra: &str) -> String {
    format!(
        "INVITE {request_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-g{n}\r\n\
From: <{from_uri}>;tag=f{n}\r\nTo: <sip:ivr@127.0.0.1:5060>\r\n\
Call-ID: gate-{n}@test\r\nCSeq: 1 INVITE\r\nContact: <sip:c@{from}>\r\n{extra}\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn options(n: usize, from: SocketAddr, request_uri: &str) -> String {
    format!(
        "OPTIONS {request_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-o{n}\r\n\
From: <sip:probe@example.com>;tag=o{n}\r\nTo: <{request_uri}>\r\n\
Call-ID: opt-{n}@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn ack(n: usize, from: SocketAddr, to_tag: &str) -> String {
    format!(
        "ACK sip:ivr@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-a{n}\r\n\
From: <sip:c{n}@example.com>;tag=f{n}\r\nTo: <sip:ivr@127.0.0.1:5060>;tag={to_tag}\r\n\
Call-ID: gate-{n}@test\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn to_tag(resp: &str) -> String {
    resp.lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split("tag=").nth(1))
        .unwrap()
        .to_string()
}

fn caller(host: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, host], port))
}

#[test]
fn requests_for_hosts_that_are_not_ours_get_404_and_no_state() {
    let mut g = Gate::new(EndpointConfig {
        domains: vec!["ivr.example.com".into()],
        ..EndpointConfig::default()
    });
    let c = caller(2, 5061);
    let (sent, calls) = g.recv(
        0,
        c,
        &invite(1, c, "sip:a@example.com", "sip:ivr@192.0.2.50", ""),
    );
    assert_eq!(
        sent.iter().map(Sent::status).collect::<Vec<_>>(),
        vec![Some(404)]
    );
    assert!(calls.is_empty());
    assert_eq!(g.ep.transactions(), 0, "answered statelessly");
    let (sent, _) = g.recv(0, c, &options(2, c, "sip:ivr@other.example.net"));
    assert_eq!(sent[0].status(), Some(404));
    // Ours: the address it arrived on (any port, any case of a listed name).
    for (n, uri) in [
        (3, "sip:ivr@127.0.0.1:5060"),
        (4, "sip:+15550100@127.0.0.1"),
        (5, "sip:ivr@IVR.example.com"),
    ] {
        let (sent, calls) = g.recv(0, c, &invite(n, c, "sip:a@example.com", uri, ""));
        assert_eq!(sent[0].status(), Some(100), "{uri}");
        assert_eq!(calls.len(), 1, "{uri}");
    }
}

fn limited() -> EndpointConfig {
    use crate::sip::admission::{AdmissionConfig, Rate};
    EndpointConfig {
        admission: AdmissionConfig {
            calls: Rate {
                per_s: 1.0,
                burst: 5.0,
            },
            max_half_open: 3,
            silent_after: 4,
            ..AdmissionConfig::default()
        },
        ..EndpointConfig::default()
    }
}

#[test]
fn a_flood_of_unacked_invites_takes_three_slots_then_503_then_silence() {
    let mut g = Gate::new(limited());
    let flooder = caller(2, 5062);
    let mut statuses: HashMap<Option<u16>, usize> = HashMap::new();
    let mut silent = 0;
    let mut created = 0;
    for n in 0..600 {
        let (sent, calls) = g.recv(
            n as u64 / 2,
            flooder,
            &invite(n, flooder, "sip:x@example.com", "sip:ivr@127.0.0.1", ""),
        );
        created += calls.len();
        if sent.is_empty() {
            silent += 1;
        }
        for s in &sent {
            *statuses.entry(s.status()).or_default() += 1;
            if s.status() == Some(503) {
                assert!(s.text.contains("Retry-After: 5\r\n"), "{}", s.text);
            }
        }
    }
    assert_eq!(created, 3, "the half-open cap");
    assert_eq!(statuses.get(&Some(100)), Some(&3));
    assert_eq!(
        statuses.get(&Some(503)),
        Some(&4),
        "answered until silent_after"
    );
    assert_eq!(silent, 600 - 3 - 4);
    assert_eq!(g.ep.live_calls(), 3);
    // Every refusal, answered or silent, is counted for the metrics under the limit it hit.
    let refused = g.ep.take_refused();
    assert_eq!(refused.rate + refused.half_open, 600 - 3, "{refused:?}");
    assert!(refused.half_open > 0, "{refused:?}");
    assert_eq!(refused.overload, 0);
    // Someone else calls meanwhile: answered.
    let other = caller(3, 5064);
    let (sent, calls) = g.recv(
        400,
        other,
        &invite(1000, other, "sip:y@example.com", "sip:ivr@127.0.0.1", ""),
    );
    assert_eq!(sent[0].status(), Some(100));
    assert_eq!(calls.len(), 1);
}

#[test]
fn an_acked_call_no_longer_counts_as_half_open() {
    let mut g = Gate::new(limited());
    let c = caller(2, 5062);
    let mut calls = Vec::new();
    for n in 0..3 {
        calls.extend(
            g.recv(
                0,
                c,
                &invite(n, c, "sip:x@example.com", "sip:ivr@127.0.0.1", ""),
            )
            .1,
        );
    }
    let (sent, none) = g.recv(
        0,
        c,
        &invite(3, c, "sip:x@example.com", "sip:ivr@127.0.0.1", ""),
    );
    assert_eq!((sent[0].status(), none.len()), (Some(503), 0));
    // The first call is answered and ACKed: its slot frees.
    g.ep.accept(g.t0, calls[0], String::new());
    let (sent, _) = g.drain();
    let tag = to_tag(&sent.iter().find(|s| s.status() == Some(200)).unwrap().text);
    g.recv(10, c, &ack(0, c, &tag));
    let (sent, more) = g.recv(
        20,
        c,
        &invite(4, c, "sip:x@example.com", "sip:ivr@127.0.0.1", ""),
    );
    assert_eq!((sent[0].status(), more.len()), (Some(100), 1));
    // A refused (ended) call frees its slot too.
    g.ep.reject(g.t0 + Duration::from_millis(30), calls[1], 486, None);
    g.drain();
    let (sent, more) = g.recv(
        40,
        c,
        &invite(5, c, "sip:x@example.com", "sip:ivr@127.0.0.1", ""),
    );
    assert_eq!((sent[0].status(), more.len()), (Some(100), 1));
}

#[test]
fn a_from_in_our_domain_is_challenged_whether_or_not_the_name_exists() {
    let mut config = EndpointConfig::default();
    config.staff.users.insert("alice".into(), "s3cret".into());
    let mut g = Gate::new(config);
    let c = caller(2, 5061);
    let mut first_line_and_headers = Vec::new();
    for (n, from) in [
        (1, "sip:alice@127.0.0.1"),
        (2, "sip:carol@127.0.0.1"),
        (3, "sip:alice@127.0.0.1:5060"),
    ] {
        let (sent, calls) = g.recv(0, c, &invite(n, c, from, "sip:ivr@127.0.0.1", ""));
        assert!(calls.is_empty(), "{from}");
        assert_eq!(sent[0].status(), Some(407), "{from}");
        let t = &sent[0].text;
        assert!(
            t.starts_with("SIP/2.0 407 Proxy Authentication Required\r\n"),
            "{t}"
        );
        // Same headers in the same order; only tags, nonces, branch and Call-ID differ.
        let names: Vec<String> = t
            .lines()
            .filter_map(|l| l.split_once(':').map(|x| x.0.to_string()))
            .collect();
        first_line_and_headers.push(names);
    }
    assert!(first_line_and_headers.windows(2).all(|w| w[0] == w[1]));
    // A caller's own phone, or another domain: a caller, whatever the name.
    for (n, from) in [
        (4, "sip:alice@127.0.0.1:5061"),
        (5, "sip:carol@127.0.0.1:5061"),
        (6, "sip:alice@example.com"),
        (7, "sip:carol@example.com"),
    ] {
        let (sent, calls) = g.recv(0, c, &invite(n, c, from, "sip:ivr@127.0.0.1", ""));
        assert_eq!((sent[0].status(), calls.len()), (Some(100), 1), "{from}");
    }
}

/// A confirmed call whose INVITE carried `extra`; returns where our BYE went.
fn bye_destination(follow: &[&str], extra: &str) -> SocketAddr {
    let mut g = Gate::new(EndpointConfig {
        follow_routes_to: follow.iter().map(|n| n.parse().unwrap()).collect(),
        ..EndpointConfig::default()
    });
    let c = caller(2, 5061);
    let (_, calls) = g.recv(
        0,
        c,
        &invite(1, c, "sip:x@example.com", "sip:ivr@127.0.0.1", extra),
    );
    g.ep.accept(g.t0, calls[0], String::new());
    let (sent, _) = g.drain();
    let tag = to_tag(&sent.iter().find(|s| s.status() == Some(200)).unwrap().text);
    g.recv(10, c, &ack(1, c, &tag));
    g.ep.hangup(g.t0 + Duration::from_millis(20), calls[0]);
    let (sent, _) = g.drain();
    let bye = sent
        .iter()
        .find(|s| s.text.starts_with("BYE "))
        .expect("a BYE");
    bye.to
}

#[test]
fn a_record_route_to_a_third_party_is_not_followed_unless_allowed() {
    let rr = "Record-Route: <sip:192.0.2.99:5070;lr>\r\n";
    assert_eq!(bye_destination(&[], rr), caller(2, 5061));
    assert_eq!(
        bye_destination(&["192.0.2.0/24"], rr),
        "192.0.2.99:5070".parse().unwrap()
    );
    // The caller's own host on another port is followed: it is who we talk to anyway.
    let own = "Record-Route: <sip:127.0.0.2:5099;lr>\r\n";
    assert_eq!(bye_destination(&[], own), caller(2, 5099));
    // No route set: the flow, whatever the Contact says.
    assert_eq!(bye_destination(&[], ""), caller(2, 5061));
}
