//! Thousands of live transactions at once, on a virtual clock: every retransmission, CANCEL and
//! ACK must reach its own transaction (the index, not a scan, finds it), and the timer queue must
//! fire each transaction's timers and then forget it.

use super::*;
use std::time::Duration;

const CALLS: usize = 3000;

fn caller(i: usize) -> SocketAddr {
    // Many callers on other loopback hosts and ports: sent-by differs per caller too.
    SocketAddr::from(([127, 0, (i / 250) as u8 + 2, 1], 10_000 + (i % 250) as u16))
}

fn local() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}

fn via(i: usize) -> String {
    format!("SIP/2.0/UDP {};branch=z9hG4bK-scale-{i}", caller(i))
}

fn invite(i: usize) -> String {
    format!(
        "INVITE sip:ivr@127.0.0.1:5060 SIP/2.0\r\nVia: {}\r\n\
From: <sip:c{i}@example.com>;tag=f{i}\r\nTo: <sip:ivr@127.0.0.1:5060>\r\n\
Call-ID: scale-{i}@test\r\nCSeq: 1 INVITE\r\nContact: <sip:c{i}@{}>\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        via(i),
        caller(i)
    )
}

/// CANCEL or the ACK for a non-2xx final: same branch as the INVITE (§9.1, §17.1.1.3).
fn same_branch(i: usize, method: &str, to_tag: Option<&str>) -> String {
    let to = match to_tag {
        Some(t) => format!("<sip:ivr@127.0.0.1:5060>;tag={t}"),
        None => "<sip:ivr@127.0.0.1:5060>".to_string(),
    };
    format!(
        "{method} sip:ivr@127.0.0.1:5060 SIP/2.0\r\nVia: {}\r\n\
From: <sip:c{i}@example.com>;tag=f{i}\r\nTo: {to}\r\n\
Call-ID: scale-{i}@test\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        via(i)
    )
}

fn ack_2xx(i: usize, to_tag: &str) -> String {
    format!(
        "ACK sip:ivr@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-ack-{i}\r\n\
From: <sip:c{i}@example.com>;tag=f{i}\r\nTo: <sip:ivr@127.0.0.1:5060>;tag={to_tag}\r\n\
Call-ID: scale-{i}@test\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        caller(i)
    )
}

struct Sent {
    to: SocketAddr,
    text: String,
}

impl Sent {
    fn status(&self) -> Option<u16> {
        self.text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
    }
    fn to_tag(&self) -> String {
        self.header("To")
            .and_then(|t| t.split("tag=").nth(1))
            .expect("To tag")
            .to_string()
    }
}

fn drain(ep: &mut Endpoint) -> (Vec<Sent>, Vec<(CallRef, CallEvent)>) {
    let (mut sent, mut events) = (Vec::new(), Vec::new());
    while let Some(o) = ep.poll_output() {
        match o {
            Output::Transmit { to, bytes, .. } => sent.push(Sent {
                to,
                text: String::from_utf8(bytes.to_vec()).unwrap(),
            }),
            Output::Event(c, e) => events.push((c, e)),
        }
    }
    (sent, events)
}

fn recv(
    ep: &mut Endpoint,
    now: Instant,
    i: usize,
    msg: &str,
) -> (Vec<Sent>, Vec<(CallRef, CallEvent)>) {
    ep.handle_message(now, msg.as_bytes(), caller(i), Transport::Udp, local());
    drain(ep)
}

#[test]
fn thousands_of_live_transactions_each_match_their_own_retransmission_cancel_and_ack() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut ep = Endpoint::new(EndpointConfig {
        max_calls: CALLS + 1,
        max_pending_setups: CALLS + 1,
        ..EndpointConfig::default()
    });
    // All calls arrive; each gets its own 100 Trying and its own call reference.
    let mut calls = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let (sent, events) = recv(&mut ep, at(0), i, &invite(i));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].status(), Some(100));
        assert_eq!(sent[0].to, caller(i));
        let [(call, CallEvent::Incoming(inc))] = &events[..] else {
            panic!("call {i}: {events:?}")
        };
        assert_eq!(inc.call_id, format!("scale-{i}@test"));
        calls.push(*call);
    }
    assert_eq!(ep.live_calls(), CALLS);
    // Three fates: i % 3 == 0 answered, 1 busy (486), 2 left ringing then cancelled.
    let mut tags = vec![String::new(); CALLS];
    for (i, &call) in calls.iter().enumerate() {
        ep.ring(at(10), call);
        match i % 3 {
            0 => ep.accept(at(10), call, "v=0\r\n".to_string()),
            1 => ep.reject(at(10), call, 486, None),
            _ => {}
        }
        let (sent, _) = drain(&mut ep);
        let last = sent.last().expect("a response");
        assert_eq!(
            last.header("Call-ID"),
            Some(format!("scale-{i}@test").as_str())
        );
        tags[i] = last.to_tag();
    }
    // A retransmitted INVITE, in reverse order, gets exactly that call's last response.
    for i in (0..CALLS).rev() {
        let (sent, events) = recv(&mut ep, at(100), i, &invite(i));
        assert!(
            events.is_empty(),
            "call {i}: a retransmission is no new call"
        );
        let [resp] = &sent[..] else {
            panic!("call {i}: {} responses", sent.len())
        };
        let want = [200, 486, 180][i % 3];
        assert_eq!(resp.status(), Some(want), "call {i}");
        assert_eq!(
            resp.header("Call-ID"),
            Some(format!("scale-{i}@test").as_str())
        );
        assert_eq!(resp.to, caller(i));
    }
    // CANCEL the ringing ones, ACK the 486s (same branch) and the 200s (their own branch).
    let mut ended = HashMap::new();
    for i in 0..CALLS {
        let (sent, events) = match i % 3 {
            0 => recv(&mut ep, at(200), i, &ack_2xx(i, &tags[i])),
            1 => recv(&mut ep, at(200), i, &same_branch(i, "ACK", Some(&tags[i]))),
            _ => recv(&mut ep, at(200), i, &same_branch(i, "CANCEL", None)),
        };
        match i % 3 {
            0 => {
                assert!(sent.is_empty());
                assert_eq!(events.len(), 1);
                assert_eq!(events[0].0, calls[i]);
                assert!(matches!(events[0].1, CallEvent::Confirmed { .. }));
            }
            1 => assert!(sent.is_empty() && events.is_empty(), "ACK absorbed"),
            _ => {
                let statuses: Vec<_> = sent.iter().map(|s| s.status()).collect();
                assert_eq!(statuses, vec![Some(200), Some(487)], "call {i}");
                for s in &sent {
                    assert_eq!(
                        s.header("Call-ID"),
                        Some(format!("scale-{i}@test").as_str())
                    );
                    assert_eq!(s.to_tag(), tags[i], "200 and 487 carry the call's tag");
                }
                let [(call, CallEvent::Ended { reason })] = &events[..] else {
                    panic!("call {i}: {events:?}")
                };
                assert_eq!((*call, *reason), (calls[i], EndReason::Cancelled));
                ended.insert(*call, i);
            }
        }
    }
    assert_eq!(ended.len(), CALLS / 3);
    assert_eq!(ep.live_calls(), CALLS - CALLS / 3 - CALLS / 3);
    // The ACKed 486s and 200s are not retransmitted; only the 487s, until their ACK would have
    // come (timer G then H). Nothing else is sent for 40 s of virtual time.
    let mut retransmitted = HashMap::<u16, usize>::new();
    while let Some(deadline) = ep.poll_timeout() {
        if deadline > at(40_000) {
            break;
        }
        ep.handle_timeout(deadline);
        let (sent, events) = drain(&mut ep);
        for s in sent {
            *retransmitted.entry(s.status().unwrap_or(0)).or_default() += 1;
        }
        // The 487s never ACKed time out quietly: the calls ended already.
        assert!(events.is_empty(), "{events:?}");
    }
    assert_eq!(retransmitted.keys().copied().collect::<Vec<_>>(), vec![487]);
    // Timer G for each unACKed 487: 0.5, 1.5, 3.5, then every 4 s up to 32 s (10 sends).
    assert_eq!(retransmitted[&487], 10 * (CALLS / 3));
    // Every transaction has ended and left nothing behind in the timer queue.
    assert_eq!(ep.transactions(), 0);
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn pending_timers_do_not_grow_the_per_message_cost() {
    // Not a timing assertion: the endpoint must keep one timer entry per live transaction, not
    // accumulate entries as responses move deadlines.
    let t0 = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig {
        max_calls: CALLS + 1,
        max_pending_setups: CALLS + 1,
        ..EndpointConfig::default()
    });
    for i in 0..CALLS {
        let (_, events) = recv(&mut ep, t0, i, &invite(i));
        let (call, _) = events[0];
        ep.ring(t0, call);
        ep.accept(t0, call, "v=0\r\n".to_string());
        drain(&mut ep);
    }
    assert_eq!(ep.transactions(), CALLS);
    assert_eq!(ep.timers.len(), CALLS);
    assert!(ep.timers.entries() <= 2 * CALLS, "{}", ep.timers.entries());
}

#[test]
fn new_calls_are_refused_statelessly_while_call_setup_is_behind() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig {
        max_pending_setups: 2,
        ..EndpointConfig::default()
    });
    let (_, first) = recv(&mut ep, t0, 0, &invite(0));
    recv(&mut ep, t0, 1, &invite(1));
    assert_eq!(ep.pending_setups(), 2);
    // The third finds two calls whose tasks have not answered: 503 at once, no call, no state.
    for attempt in 0..2 {
        let (sent, events) = recv(&mut ep, t0, 2, &invite(2));
        assert!(events.is_empty(), "no call task is started");
        let [resp] = &sent[..] else { panic!() };
        assert_eq!(resp.status(), Some(503));
        assert_eq!(resp.header("Retry-After"), Some("2"));
        assert_eq!(resp.to, caller(2));
        // A retransmission gets the same To tag (§8.2.7).
        let tag = resp.to_tag();
        assert!(tag.starts_with('s'), "attempt {attempt}: {tag}");
    }
    assert_eq!(ep.live_calls(), 2);
    assert_eq!(
        ep.transactions(),
        2,
        "the refused INVITE left no transaction"
    );
    // Once a task rings its call, a new call is taken again.
    ep.ring(t0, first[0].0);
    drain(&mut ep);
    assert_eq!(ep.pending_setups(), 1);
    let (sent, events) = recv(&mut ep, t0, 3, &invite(3));
    assert_eq!(sent[0].status(), Some(100));
    assert!(matches!(events[0].1, CallEvent::Incoming(_)));
    // A call ended by its caller before its task answered frees its place too.
    let (sent, events) = recv(&mut ep, t0, 3, &same_branch(3, "CANCEL", None));
    assert_eq!(sent.len(), 2);
    assert!(matches!(events[0].1, CallEvent::Ended { .. }));
    assert_eq!(ep.pending_setups(), 1);
}

#[test]
fn an_options_flood_leaves_no_transaction_state() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default());
    let options = |i: usize| {
        format!(
            "OPTIONS sip:ivr@127.0.0.1:5060 SIP/2.0\r\nVia: {}\r\n\
From: <sip:probe@example.com>;tag=p{i}\r\nTo: <sip:ivr@127.0.0.1:5060>\r\n\
Call-ID: opt-{i}@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            via(i)
        )
    };
    let mut tags = HashMap::new();
    for i in 0..10_000 {
        let (sent, events) = recv(&mut ep, t0, i % CALLS, &options(i));
        assert!(events.is_empty());
        let [resp] = &sent[..] else { panic!() };
        assert_eq!(resp.status(), Some(200));
        assert_eq!(
            resp.header("Call-ID"),
            Some(format!("opt-{i}@test").as_str())
        );
        assert!(resp.header("Allow").is_some_and(|a| a.contains("INVITE")));
        tags.insert(i, resp.to_tag());
    }
    assert_eq!(ep.transactions(), 0);
    assert_eq!(ep.poll_timeout(), None);
    // A retransmission is answered again, identically tagged.
    let (sent, _) = recv(&mut ep, t0, 7, &options(7));
    assert_eq!(sent[0].to_tag(), tags[&7]);
}
