//! Endpoint behaviour on a virtual clock: every instant is `t0 + offset`, nothing sleeps.

use super::super::auth;
use super::*;
use std::time::Duration;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";

fn caller() -> SocketAddr {
    "127.0.0.1:5061".parse().unwrap()
}
fn local() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}

fn invite(branch: &str) -> String {
    format!(
        "INVITE sip:ivr@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\r\n\
From: <sip:alice@127.0.0.1:5061>;tag=a1\r\nTo: <sip:ivr@127.0.0.1:5060>\r\n\
Call-ID: c1@test\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5061>\r\n\
Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn in_dialog(method: &str, cseq: u32, branch: &str, to_tag: &str) -> String {
    format!(
        "{method} sip:ivr@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\r\n\
From: <sip:alice@127.0.0.1:5061>;tag=a1\r\nTo: <sip:ivr@127.0.0.1:5060>;tag={to_tag}\r\n\
Call-ID: c1@test\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

struct Harness {
    ep: Endpoint,
    t0: Instant,
}

#[derive(Debug, Default)]
struct Drained {
    sent: Vec<(SocketAddr, String)>,
    events: Vec<(CallRef, CallEvent)>,
}

impl Drained {
    fn statuses(&self) -> Vec<u16> {
        self.sent
            .iter()
            .filter_map(|(_, m)| m.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok())
            .collect()
    }
}

impl Harness {
    fn new() -> Self {
        Harness {
            ep: Endpoint::new(EndpointConfig::default()),
            t0: Instant::now(),
        }
    }
    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }
    fn recv(&mut self, ms: u64, msg: &str) -> Drained {
        let now = self.at(ms);
        self.ep
            .handle_message(now, msg.as_bytes(), caller(), Transport::Udp, local());
        self.drain()
    }
    fn drain(&mut self) -> Drained {
        let mut d = Drained::default();
        while let Some(o) = self.ep.poll_output() {
            match o {
                Output::Transmit { to, bytes, .. } => d
                    .sent
                    .push((to, String::from_utf8(bytes.to_vec()).unwrap())),
                Output::Event(c, e) => d.events.push((c, e)),
            }
        }
        d
    }
    /// Runs the timers until `until_ms`, returning (ms offset, first line) of each transmission.
    fn run_until(&mut self, until_ms: u64) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        while let Some(deadline) = self.ep.poll_timeout() {
            if deadline > self.at(until_ms) {
                break;
            }
            self.ep.handle_timeout(deadline);
            let ms = (deadline - self.t0).as_millis() as u64;
            for (_, m) in self.drain().sent {
                out.push((ms, m.lines().next().unwrap().to_string()));
            }
        }
        out
    }
    /// INVITE in, 180 and 200 out; returns (call, our tag).
    fn answered_call(&mut self) -> (CallRef, String) {
        let d = self.recv(0, &invite("z9hG4bKinv1"));
        assert_eq!(d.statuses(), vec![100]);
        let (call, CallEvent::Incoming(inc)) = d.events[0].clone() else {
            panic!("no incoming event: {d:?}")
        };
        assert_eq!(inc.offer, SDP.as_bytes());
        self.ep.ring(self.at(0), call);
        self.ep.accept(self.at(0), call, SDP.to_string());
        let d = self.drain();
        assert_eq!(d.statuses(), vec![180, 200]);
        let ok = &d.sent[1].1;
        assert!(ok.contains("Contact: <sip:ivr@127.0.0.1:5060>"));
        assert!(ok.contains("Content-Type: application/sdp"));
        let tag = ok
            .lines()
            .find(|l| l.starts_with("To:"))
            .and_then(|l| l.split("tag=").nth(1))
            .unwrap()
            .to_string();
        (call, tag)
    }
}

#[test]
fn ok_is_retransmitted_on_the_rfc_schedule_until_32s_then_bye() {
    let mut h = Harness::new();
    let (call, _) = h.answered_call();
    let sent = h.run_until(40_000);
    let ok_times: Vec<u64> = sent
        .iter()
        .filter(|(_, l)| l.starts_with("SIP/2.0 200"))
        .map(|(t, _)| *t)
        .collect();
    // Intervals 500 ms, 1 s, 2 s, then capped at T2 = 4 s.
    assert_eq!(
        ok_times,
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    // No ACK by 64*T1: the dialog is torn down with BYE (§13.3.1.4).
    assert!(
        sent.iter()
            .any(|(t, l)| *t == 32_000 && l.starts_with("BYE "))
    );
    let d = h.drain();
    assert!(d.events.is_empty());
    assert_eq!(h.ep.live_calls(), 0);
    let _ = call;
}

#[test]
fn ack_stops_retransmission_and_confirms() {
    let mut h = Harness::new();
    let (call, tag) = h.answered_call();
    let sent = h.run_until(1_700);
    assert_eq!(sent.len(), 2, "{sent:?}"); // at 500 and 1500
    let d = h.recv(1_700, &in_dialog("ACK", 1, "z9hG4bKack1", &tag));
    assert_eq!(
        d.events,
        vec![(call, CallEvent::Confirmed { body: vec![] })]
    );
    assert!(h.run_until(60_000).is_empty());
    assert_eq!(h.ep.live_calls(), 1);
}

#[test]
fn invite_retransmission_is_absorbed_and_answered_with_last_response() {
    let mut h = Harness::new();
    let d = h.recv(0, &invite("z9hG4bKinv1"));
    let call = d.events[0].0;
    h.ep.ring(h.at(10), call);
    assert_eq!(h.drain().statuses(), vec![180]);
    // Caller's timer A fires: the same INVITE again. No new call, the 180 is repeated.
    let d = h.recv(500, &invite("z9hG4bKinv1"));
    assert_eq!(d.statuses(), vec![180]);
    assert!(d.events.is_empty());
    assert_eq!(h.ep.live_calls(), 1);
}

#[test]
fn cancel_while_ringing_gives_200_and_487() {
    let mut h = Harness::new();
    let d = h.recv(0, &invite("z9hG4bKinv1"));
    let call = d.events[0].0;
    h.ep.ring(h.at(0), call);
    h.drain();
    let cancel = invite("z9hG4bKinv1")
        .replace("INVITE sip", "CANCEL sip")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let d = h.recv(100, &cancel);
    assert_eq!(d.statuses(), vec![200, 487]);
    assert!(d.sent[0].1.contains("CSeq: 1 CANCEL"));
    assert!(d.sent[1].1.contains("CSeq: 1 INVITE"));
    let to_line = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("To:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        to_line(&d.sent[0].1),
        to_line(&d.sent[1].1),
        "same To tag (§9.2)"
    );
    assert_eq!(
        d.events,
        vec![(
            call,
            CallEvent::Ended {
                reason: EndReason::Cancelled
            }
        )]
    );
    // The 487 is retransmitted until the caller ACKs it (same branch as the INVITE).
    let ack = in_dialog("ACK", 1, "z9hG4bKinv1", "x");
    let _ = h.run_until(600);
    h.recv(700, &ack);
    assert!(h.run_until(60_000).is_empty());
}

#[test]
fn cancel_after_200_gets_200_and_the_call_goes_on() {
    let mut h = Harness::new();
    let (call, tag) = h.answered_call();
    let cancel = invite("z9hG4bKinv1")
        .replace("INVITE sip", "CANCEL sip")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let d = h.recv(100, &cancel);
    assert_eq!(d.statuses(), vec![200]);
    assert!(d.events.is_empty());
    let d = h.recv(200, &in_dialog("ACK", 1, "z9hG4bKack", &tag));
    assert_eq!(
        d.events,
        vec![(call, CallEvent::Confirmed { body: vec![] })]
    );
    assert_eq!(h.ep.live_calls(), 1);
}

#[test]
fn bye_from_caller_ends_the_call() {
    let mut h = Harness::new();
    let (call, tag) = h.answered_call();
    h.recv(100, &in_dialog("ACK", 1, "z9hG4bKack", &tag));
    let d = h.recv(5_000, &in_dialog("BYE", 2, "z9hG4bKbye", &tag));
    assert_eq!(d.statuses(), vec![200]);
    assert_eq!(
        d.events,
        vec![(
            call,
            CallEvent::Ended {
                reason: EndReason::RemoteBye
            }
        )]
    );
    // A retransmitted BYE gets the same 200 from the transaction, not a 481.
    let d = h.recv(5_500, &in_dialog("BYE", 2, "z9hG4bKbye", &tag));
    assert_eq!(d.statuses(), vec![200]);
    // A BYE for the dead dialog under a new transaction is 481.
    let d = h.recv(6_000, &in_dialog("BYE", 3, "z9hG4bKbye2", &tag));
    assert_eq!(d.statuses(), vec![481]);
}

#[test]
fn our_bye_is_retransmitted_until_answered() {
    let mut h = Harness::new();
    let (call, tag) = h.answered_call();
    h.recv(100, &in_dialog("ACK", 1, "z9hG4bKack", &tag));
    h.ep.hangup(h.at(1_000), call);
    let d = h.drain();
    assert_eq!(d.sent.len(), 1);
    let bye = &d.sent[0].1;
    assert!(bye.starts_with("BYE sip:alice@127.0.0.1:5061 SIP/2.0\r\n"));
    assert!(bye.contains(&format!("From: <sip:ivr@127.0.0.1:5060>;tag={tag}")));
    assert!(bye.contains("To: <sip:alice@127.0.0.1:5061>;tag=a1"));
    assert_eq!(d.sent[0].0, caller());
    let sent = h.run_until(2_600);
    assert_eq!(
        sent.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        vec![1_500, 2_500]
    );
    let branch = bye
        .lines()
        .find(|l| l.starts_with("Via:"))
        .and_then(|l| l.split("branch=").nth(1))
        .and_then(|b| b.split(';').next())
        .unwrap();
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
From: <sip:ivr@127.0.0.1:5060>;tag={tag}\r\nTo: <sip:alice@127.0.0.1:5061>;tag=a1\r\n\
Call-ID: c1@test\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let d = h.recv(2_700, &ok);
    assert_eq!(
        d.events,
        vec![(
            call,
            CallEvent::Ended {
                reason: EndReason::LocalBye
            }
        )]
    );
    assert!(h.run_until(60_000).is_empty());
}

#[test]
fn hangup_before_ack_waits_for_the_ack() {
    let mut h = Harness::new();
    let (call, tag) = h.answered_call();
    h.ep.hangup(h.at(10), call);
    assert!(h.drain().sent.is_empty());
    let d = h.recv(20, &in_dialog("ACK", 1, "z9hG4bKack", &tag));
    assert!(d.sent[0].1.starts_with("BYE "));
}

#[test]
fn reinvite_for_hold_is_offered_to_the_call_and_answered() {
    let mut h = Harness::new();
    let (call, tag) = h.answered_call();
    h.recv(100, &in_dialog("ACK", 1, "z9hG4bKack", &tag));
    let hold_sdp = SDP.replace("RTP/AVP 0\r\n", "RTP/AVP 0\r\na=sendonly\r\n");
    let reinvite = in_dialog("INVITE", 2, "z9hG4bKre", &tag).replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{hold_sdp}",
            hold_sdp.len()
        ),
    );
    let d = h.recv(2_000, &reinvite);
    assert_eq!(d.statuses(), vec![100]);
    assert_eq!(
        d.events,
        vec![(
            call,
            CallEvent::ReOffer {
                offer: hold_sdp.clone().into_bytes()
            }
        )]
    );
    h.ep.answer_reoffer(h.at(2_010), call, Ok("answer".into()));
    let d = h.drain();
    assert_eq!(d.statuses(), vec![200]);
    assert!(d.sent[0].1.contains("CSeq: 2 INVITE"));
    let d = h.recv(2_050, &in_dialog("ACK", 2, "z9hG4bKack2", &tag));
    assert_eq!(d.events.len(), 1);
    assert!(h.run_until(60_000).is_empty());
}

#[test]
fn in_dialog_requests_for_unknown_dialogs_get_481() {
    let mut h = Harness::new();
    let d = h.recv(0, &in_dialog("BYE", 2, "z9hG4bKx", "nosuch"));
    assert_eq!(d.statuses(), vec![481]);
    let d = h.recv(0, &in_dialog("INFO", 2, "z9hG4bKy", "nosuch"));
    assert_eq!(d.statuses(), vec![481]);
}

#[test]
fn options_unknown_methods_and_required_extensions() {
    let mut h = Harness::new();
    let options = in_dialog("OPTIONS", 1, "z9hG4bKo", "x").replace(";tag=x", "");
    let d = h.recv(0, &options);
    assert_eq!(d.statuses(), vec![200]);
    assert!(d.sent[0].1.contains(&format!("Allow: {ALLOW}")));
    assert!(d.sent[0].1.contains("Accept: application/sdp"));
    let foo = options.replace("OPTIONS", "FOO");
    let d = h.recv(0, &foo);
    assert_eq!(d.statuses(), vec![501]);
    let sub = options
        .replace("OPTIONS", "SUBSCRIBE")
        .replace("z9hG4bKo", "z9hG4bKs");
    let d = h.recv(0, &sub);
    assert_eq!(d.statuses(), vec![405]);
    let req = invite("z9hG4bKr").replace("Max-Forwards", "Require: 100rel\r\nMax-Forwards");
    let d = h.recv(0, &req);
    assert_eq!(d.statuses(), vec![420]);
    assert!(d.sent[0].1.contains("Unsupported: 100rel"));
    assert!(d.events.is_empty());
}

#[test]
fn draining_refuses_new_calls_with_503() {
    let mut h = Harness::new();
    h.ep.drain();
    let d = h.recv(0, &invite("z9hG4bKinv1"));
    assert_eq!(d.statuses(), vec![503]);
    assert!(d.sent[0].1.contains("Retry-After: 30"));
    // Counted once for the metrics, and taken once.
    assert_eq!(h.ep.take_refused().overload, 1);
    assert_eq!(h.ep.take_refused(), crate::sip::Refused::default());
}

#[test]
fn draining_answers_options_with_503_like_an_invite() {
    let mut h = Harness::new();
    let options = in_dialog("OPTIONS", 1, "z9hG4bKo", "x").replace(";tag=x", "");
    assert_eq!(h.recv(0, &options).statuses(), vec![200]);
    h.ep.drain();
    let options = options.replace("z9hG4bKo", "z9hG4bKo2");
    let d = h.recv(1, &options);
    assert_eq!(d.statuses(), vec![503]);
    assert!(d.sent[0].1.contains("Retry-After: 30"));
    // A ping is not a refused call.
    assert_eq!(h.ep.take_refused(), crate::sip::Refused::default());
}

#[test]
fn rejection_with_warning() {
    let mut h = Harness::new();
    let d = h.recv(0, &invite("z9hG4bKinv1"));
    let call = d.events[0].0;
    h.ep.reject(h.at(1), call, 488, Some("no common codec"));
    let d = h.drain();
    assert_eq!(d.statuses(), vec![488]);
    assert!(d.sent[0].1.contains("Warning: 399 ivr \"no common codec\""));
    assert_eq!(
        d.events,
        vec![(
            call,
            CallEvent::Ended {
                reason: EndReason::Rejected(488)
            }
        )]
    );
}

// ---- REGISTER: digest auth and the registrar (issue 6) ----

const REG_URI: &str = "sip:127.0.0.1:5060";
const ALICE_CONTACT: &str = "sip:alice@127.0.0.1:5061";

fn staff_harness() -> Harness {
    let staff = StaffAuth {
        users: [("alice".to_string(), "s3cret".to_string())].into(),
        ..StaffAuth::default()
    };
    Harness {
        ep: Endpoint::new(EndpointConfig {
            staff,
            ..EndpointConfig::default()
        }),
        t0: Instant::now(),
    }
}

/// A REGISTER for `to_user` with Call-ID `r1@test`; `extra` holds further header lines.
fn register(branch: &str, cseq: u32, to_user: &str, extra: &str) -> String {
    format!(
        "REGISTER {REG_URI} SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\r\n\
From: <sip:{to_user}@127.0.0.1>;tag=r1\r\nTo: <sip:{to_user}@127.0.0.1>\r\n\
Call-ID: r1@test\r\nCSeq: {cseq} REGISTER\r\n{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn header_values<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

impl Harness {
    /// Sends a REGISTER without credentials and returns the 401's challenges.
    fn challenges(&mut self, ms: u64, branch: &str) -> Vec<String> {
        let d = self.recv(ms, &register(branch, 1, "alice", ""));
        assert_eq!(d.statuses(), vec![401]);
        header_values(&d.sent[0].1, "WWW-Authenticate")
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// Challenge at `ms`, then an authenticated REGISTER as `user`/`password` for the To user
    /// `to_user` with `extra` headers; returns the final response.
    fn register_as(
        &mut self,
        ms: u64,
        n: u32,
        user: &str,
        password: &str,
        to_user: &str,
        extra: &str,
    ) -> String {
        let challenges = self.challenges(ms, &format!("z9hG4bKc{n}"));
        let auth = auth::answer_challenge(
            &challenges[0],
            "REGISTER",
            REG_URI,
            user,
            password,
            "cn1",
            1,
        )
        .unwrap();
        let d = self.recv(
            ms,
            &register(
                &format!("z9hG4bKr{n}"),
                n + 1,
                to_user,
                &format!("Authorization: {auth}\r\n{extra}"),
            ),
        );
        assert_eq!(d.sent.len(), 1, "{d:?}");
        d.sent[0].1.clone()
    }
}

#[test]
fn register_without_credentials_gets_sha256_and_md5_challenges() {
    let mut h = staff_harness();
    let c = h.challenges(0, "z9hG4bKc0");
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(c[0].contains("algorithm=SHA-256"), "{c:?}");
    assert!(c[1].contains("algorithm=MD5"), "{c:?}");
    assert!(
        c.iter()
            .all(|c| c.contains("realm=\"ivr\"") && !c.contains("stale"))
    );
}

#[test]
fn register_with_the_wrong_password_is_challenged_again() {
    let mut h = staff_harness();
    let resp = h.register_as(
        0,
        1,
        "alice",
        "guess",
        "alice",
        &format!("Contact: <{ALICE_CONTACT}>\r\n"),
    );
    assert!(resp.starts_with("SIP/2.0 401 "), "{resp}");
    assert_eq!(header_values(&resp, "WWW-Authenticate").len(), 2);
    // So is an unknown user, indistinguishably.
    let resp = h.register_as(0, 3, "mallory", "guess", "mallory", "");
    assert!(resp.starts_with("SIP/2.0 401 "), "{resp}");
    assert!(h.ep.contacts(h.at(0), "alice").is_empty());
}

#[test]
fn register_with_the_right_password_binds_the_contact_then_it_expires() {
    let mut h = staff_harness();
    let resp = h.register_as(
        0,
        1,
        "alice",
        "s3cret",
        "alice",
        &format!("Contact: <{ALICE_CONTACT}>\r\nExpires: 600\r\n"),
    );
    assert!(resp.starts_with("SIP/2.0 200 "), "{resp}");
    assert_eq!(
        header_values(&resp, "Contact"),
        vec![format!("<{ALICE_CONTACT}>;expires=600")]
    );
    let bound = h.ep.contacts(h.at(1000), "alice");
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].contact, ALICE_CONTACT);
    assert_eq!(bound[0].source, caller());
    // The endpoint's timer includes the expiry, and firing it purges the binding.
    h.run_until(599_000);
    assert_eq!(h.ep.poll_timeout(), Some(h.at(600_000)));
    assert!(!h.ep.transactions_pending());
    h.run_until(600_000);
    assert!(h.ep.contacts(h.at(600_000), "alice").is_empty());
    assert_eq!(h.ep.registrar.users().count(), 0);
    assert_eq!(h.ep.poll_timeout(), None);
}

#[test]
fn registrations_are_handed_to_the_shell_when_they_change() {
    let mut h = staff_harness();
    // The first take gives the (empty) start state, so the shell publishes something at once.
    assert_eq!(h.ep.take_registrations(h.at(0)), Some(vec![]));
    assert_eq!(h.ep.take_registrations(h.at(0)), None);
    // A refused REGISTER changes nothing.
    h.register_as(
        0,
        1,
        "alice",
        "guess",
        "alice",
        &format!("Contact: <{ALICE_CONTACT}>\r\n"),
    );
    assert_eq!(h.ep.take_registrations(h.at(0)), None);
    h.register_as(
        0,
        3,
        "alice",
        "s3cret",
        "alice",
        &format!("Contact: <{ALICE_CONTACT}>\r\nExpires: 600\r\n"),
    );
    let taken = h.ep.take_registrations(h.at(0)).expect("changed");
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].user, "alice");
    assert_eq!(taken[0].binding.contact, ALICE_CONTACT);
    assert_eq!(taken[0].binding.remaining_secs(h.at(0)), 600);
    assert_eq!(h.ep.take_registrations(h.at(1000)), None);
    // The expiry timer purges the binding: the shell hears of it.
    h.run_until(600_000);
    assert_eq!(h.ep.take_registrations(h.at(600_000)), Some(vec![]));
}

#[test]
fn md5_answers_are_accepted_too() {
    let mut h = staff_harness();
    let c = h.challenges(0, "z9hG4bKc0");
    let auth =
        auth::answer_challenge(&c[1], "REGISTER", REG_URI, "alice", "s3cret", "x", 1).unwrap();
    let d = h.recv(
        0,
        &register(
            "z9hG4bKr0",
            2,
            "alice",
            &format!("Authorization: {auth}\r\nContact: <{ALICE_CONTACT}>;expires=120\r\n"),
        ),
    );
    assert_eq!(d.statuses(), vec![200]);
    assert!(d.sent[0].1.contains(";expires=120"), "{}", d.sent[0].1);
}

#[test]
fn expires_zero_removes_the_binding() {
    let mut h = staff_harness();
    let c = format!("Contact: <{ALICE_CONTACT}>\r\n");
    let resp = h.register_as(0, 1, "alice", "s3cret", "alice", &c);
    assert!(resp.starts_with("SIP/2.0 200 "), "{resp}");
    // Default expiry is max_expires.
    assert!(resp.contains(";expires=3600"), "{resp}");
    let resp = h.register_as(
        10_000,
        3,
        "alice",
        "s3cret",
        "alice",
        &format!("{c}Expires: 0\r\n"),
    );
    assert!(resp.starts_with("SIP/2.0 200 "), "{resp}");
    assert!(header_values(&resp, "Contact").is_empty(), "{resp}");
    assert!(h.ep.contacts(h.at(10_000), "alice").is_empty());
}

#[test]
fn too_brief_an_interval_gets_423_with_min_expires() {
    let mut h = staff_harness();
    let resp = h.register_as(
        0,
        1,
        "alice",
        "s3cret",
        "alice",
        &format!("Contact: <{ALICE_CONTACT}>\r\nExpires: 30\r\n"),
    );
    assert!(resp.starts_with("SIP/2.0 423 Interval Too Brief"), "{resp}");
    assert_eq!(header_values(&resp, "Min-Expires"), vec!["60"]);
    assert!(h.ep.contacts(h.at(0), "alice").is_empty());
}

#[test]
fn a_user_cannot_register_someone_elses_address() {
    let mut h = staff_harness();
    let resp = h.register_as(
        0,
        1,
        "alice",
        "s3cret",
        "bob",
        &format!("Contact: <{ALICE_CONTACT}>\r\n"),
    );
    assert!(resp.starts_with("SIP/2.0 403 "), "{resp}");
    assert!(h.ep.contacts(h.at(0), "bob").is_empty());
}

#[test]
fn a_stale_nonce_gets_stale_challenges() {
    let mut h = staff_harness();
    let c = h.challenges(0, "z9hG4bKc0");
    let auth =
        auth::answer_challenge(&c[0], "REGISTER", REG_URI, "alice", "s3cret", "x", 1).unwrap();
    let later = NONCE_TTL.as_millis() as u64 + 2_000;
    let d = h.recv(
        later,
        &register(
            "z9hG4bKr0",
            2,
            "alice",
            &format!("Authorization: {auth}\r\n"),
        ),
    );
    assert_eq!(d.statuses(), vec![401]);
    let c = header_values(&d.sent[0].1, "WWW-Authenticate");
    assert_eq!(c.len(), 2);
    assert!(c.iter().all(|c| c.contains("stale=true")), "{c:?}");
}

#[test]
fn a_malformed_authorization_gets_400() {
    let mut h = staff_harness();
    let d = h.recv(
        0,
        &register(
            "z9hG4bKr0",
            1,
            "alice",
            "Authorization: Digest username=\"alice\r\n",
        ),
    );
    assert_eq!(d.statuses(), vec![400]);
}

#[test]
fn without_staff_users_register_is_forbidden() {
    let mut h = Harness::new();
    let d = h.recv(0, &register("z9hG4bKr0", 1, "alice", ""));
    assert_eq!(d.statuses(), vec![403]);
    assert!(
        d.sent[0].1.contains("no staff users configured"),
        "{}",
        d.sent[0].1
    );
}

/// An INVITE from staff user `from` (a desk call-back) with optional extra headers.
fn staff_invite(branch: &str, cseq: u32, from: &str, extra: &str) -> String {
    format!(
        "INVITE sip:+15551230001@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\r\n\
From: <sip:{from}@127.0.0.1:5060>;tag=s1\r\nTo: <sip:+15551230001@127.0.0.1:5060>\r\n\
Call-ID: cb1@test\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{from}@127.0.0.1:5061>\r\n\
Max-Forwards: 70\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

#[test]
fn invite_from_a_staff_user_must_prove_it_with_digest() {
    let mut h = staff_harness();
    // Without credentials: 407 with Proxy-Authenticate, no call.
    let d = h.recv(0, &staff_invite("z9hG4bKs1", 1, "alice", ""));
    assert_eq!(d.statuses(), vec![407]);
    assert!(d.events.is_empty());
    let challenge = header_values(&d.sent[0].1, "Proxy-Authenticate")[0].to_string();
    let uri = "sip:+15551230001@127.0.0.1:5060";
    // The wrong password: challenged again, still no call.
    let bad = auth::answer_challenge(&challenge, "INVITE", uri, "alice", "guess", "c1", 1).unwrap();
    let d = h.recv(
        10,
        &staff_invite(
            "z9hG4bKs2",
            2,
            "alice",
            &format!("Proxy-Authorization: {bad}\r\n"),
        ),
    );
    assert_eq!(d.statuses(), vec![407]);
    assert!(d.events.is_empty());
    // The right one: a call marked as the staff user's.
    let good =
        auth::answer_challenge(&challenge, "INVITE", uri, "alice", "s3cret", "c2", 1).unwrap();
    let d = h.recv(
        20,
        &staff_invite(
            "z9hG4bKs3",
            3,
            "alice",
            &format!("Proxy-Authorization: {good}\r\n"),
        ),
    );
    assert_eq!(d.statuses(), vec![100]);
    let Some((_, CallEvent::Incoming(inc))) = d.events.first() else {
        panic!("no call: {d:?}")
    };
    assert_eq!(inc.staff_user.as_deref(), Some("alice"));
    // A customer's INVITE (From not a staff user) is a normal call, no challenge.
    let customer = invite("z9hG4bKc9").replace("<sip:alice@", "<sip:+15551230009@");
    let d = h.recv(30, &customer);
    assert_eq!(d.statuses(), vec![100]);
    let Some((_, CallEvent::Incoming(inc))) = d.events.first() else {
        panic!("no call: {d:?}")
    };
    assert_eq!(inc.staff_user, None);
}
