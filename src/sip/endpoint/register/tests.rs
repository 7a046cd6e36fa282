//! REGISTER and call-back authentication against attackers, on a virtual clock: replayed
//! answers, the Call-ID/CSeq rule, password guessing and what a guesser can learn.

use std::time::Duration;

use super::super::super::auth::{self, LockoutPolicy};
use super::*;

const REG_URI: &str = "sip:127.0.0.1:5060";
const CB_URI: &str = "sip:+15551230001@127.0.0.1:5060";

fn phone() -> SocketAddr {
    "127.0.0.1:5061".parse().unwrap()
}
fn attacker() -> SocketAddr {
    "127.0.0.2:5099".parse().unwrap()
}
fn local() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}

struct H {
    ep: Endpoint,
    t0: Instant,
}

struct Sent {
    msgs: Vec<String>,
    events: Vec<CallEvent>,
}

impl Sent {
    fn statuses(&self) -> Vec<u16> {
        self.msgs
            .iter()
            .filter_map(|m| m.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok())
            .collect()
    }
    fn only(&self) -> &str {
        assert_eq!(self.msgs.len(), 1, "{:?}", self.msgs);
        &self.msgs[0]
    }
}

fn values<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

fn policy() -> LockoutPolicy {
    LockoutPolicy {
        failures: 5,
        window: Duration::from_secs(300),
        block: Duration::from_secs(60),
        block_max: Duration::from_secs(3600),
    }
}

impl H {
    fn new() -> H {
        let staff = StaffAuth {
            users: [("alice".to_string(), "s3cret".to_string())].into(),
            lockout: policy(),
            ..StaffAuth::default()
        };
        H {
            ep: Endpoint::new(EndpointConfig {
                staff,
                ..EndpointConfig::default()
            }),
            t0: Instant::now(),
        }
    }
    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }
    fn recv(&mut self, ms: u64, from: SocketAddr, msg: &str) -> Sent {
        let now = self.at(ms);
        self.ep
            .handle_message(now, msg.as_bytes(), from, Transport::Udp, local());
        let mut s = Sent {
            msgs: Vec::new(),
            events: Vec::new(),
        };
        while let Some(o) = self.ep.poll_output() {
            match o {
                Output::Transmit { bytes, .. } => {
                    s.msgs.push(String::from_utf8(bytes.to_vec()).unwrap())
                }
                Output::Event(_, e) => s.events.push(e),
            }
        }
        s
    }
    /// A 401's (or 407's) challenges for a REGISTER (INVITE) without credentials from `from`.
    fn challenge(&mut self, ms: u64, from: SocketAddr, branch: &str) -> String {
        let s = self.recv(ms, from, &register(from, branch, "ch@test", 1, "alice", ""));
        assert_eq!(s.statuses(), vec![401]);
        values(s.only(), "WWW-Authenticate")[0].to_string()
    }
}

/// A REGISTER from `from` for `to_user` with `extra` header lines.
fn register(
    from: SocketAddr,
    branch: &str,
    call_id: &str,
    cseq: u32,
    to_user: &str,
    extra: &str,
) -> String {
    format!(
        "REGISTER {REG_URI} SIP/2.0\r\n\
Via: SIP/2.0/UDP {from};branch=z9hG4bK{branch}\r\n\
From: <sip:{to_user}@127.0.0.1>;tag=r1\r\nTo: <sip:{to_user}@127.0.0.1>\r\n\
Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn answer(challenge: &str, user: &str, password: &str, cnonce: &str, nc: u32) -> String {
    auth::answer_challenge(challenge, "REGISTER", REG_URI, user, password, cnonce, nc).unwrap()
}

fn contact(at: SocketAddr) -> String {
    format!("Contact: <sip:alice@{at}>\r\nExpires: 600\r\n")
}

/// alice's phone registers; returns the Authorization it sent (what a sniffer captures).
fn alice_registers(h: &mut H) -> String {
    let ch = h.challenge(0, phone(), "c0");
    let a = answer(&ch, "alice", "s3cret", "phone-cn", 1);
    let s = h.recv(
        10,
        phone(),
        &register(
            phone(),
            "r1",
            "alice-reg@phone",
            2,
            "alice",
            &format!("Authorization: {a}\r\n{}", contact(phone())),
        ),
    );
    assert_eq!(s.statuses(), vec![200], "{:?}", s.msgs);
    a
}

fn bound(h: &H, ms: u64) -> Vec<String> {
    h.ep.contacts(h.at(ms), "alice")
        .into_iter()
        .map(|b| b.contact)
        .collect()
}

#[test]
fn a_replayed_register_answer_is_refused_with_stale_challenges_and_alices_binding_survives() {
    let mut h = H::new();
    let sniffed = alice_registers(&mut h);
    let alice = format!("sip:alice@{}", phone());
    // Replayed from elsewhere with a new Call-ID: `Contact: *` would wipe alice's binding...
    let wipe = register(
        attacker(),
        "x1",
        "evil-1",
        1,
        "alice",
        &format!("Authorization: {sniffed}\r\nContact: *\r\nExpires: 0\r\n"),
    );
    let s = h.recv(1000, attacker(), &wipe);
    assert_eq!(s.statuses(), vec![401]);
    let challenges = values(s.only(), "WWW-Authenticate");
    assert!(
        challenges.len() == 2 && challenges.iter().all(|c| c.contains("stale=true")),
        "{challenges:?}"
    );
    // ...and its own Contact would take alice's calls.
    let hijack = register(
        attacker(),
        "x2",
        "evil-2",
        1,
        "alice",
        &format!("Authorization: {sniffed}\r\n{}", contact(attacker())),
    );
    assert_eq!(h.recv(2000, attacker(), &hijack).statuses(), vec![401]);
    assert_eq!(bound(&h, 2000), vec![alice.clone()]);
    // The same replayed by the phone's own address is no better.
    let again = register(
        phone(),
        "x3",
        "alice-reg@phone",
        3,
        "alice",
        &format!("Authorization: {sniffed}\r\n{}", contact(attacker())),
    );
    assert_eq!(h.recv(3000, phone(), &again).statuses(), vec![401]);
    assert_eq!(bound(&h, 3000), vec![alice]);
}

#[test]
fn a_retransmission_is_answered_by_its_transaction_not_taken_for_a_replay() {
    let mut h = H::new();
    let ch = h.challenge(0, phone(), "c0");
    let a = answer(&ch, "alice", "s3cret", "cn", 1);
    let req = register(
        phone(),
        "r1",
        "cid",
        2,
        "alice",
        &format!("Authorization: {a}\r\n{}", contact(phone())),
    );
    let first = h.recv(10, phone(), &req);
    assert_eq!(first.statuses(), vec![200]);
    // Timer E retransmissions (same branch) get the same 200, byte for byte.
    for ms in [510, 1510, 3510] {
        let again = h.recv(ms, phone(), &req);
        assert_eq!(again.msgs, first.msgs);
    }
}

#[test]
fn a_phone_counting_up_on_one_nonce_is_fine_and_a_resent_count_recovers_via_stale() {
    let mut h = H::new();
    let ch = h.challenge(0, phone(), "c0");
    let with = |a: &str| format!("Authorization: {a}\r\n{}", contact(phone()));
    let a1 = answer(&ch, "alice", "s3cret", "cn", 1);
    let a2 = answer(&ch, "alice", "s3cret", "cn", 2);
    let req = |b: &str, cseq: u32, a: &str| register(phone(), b, "cid", cseq, "alice", &with(a));
    assert_eq!(
        h.recv(10, phone(), &req("r1", 2, &a1)).statuses(),
        vec![200]
    );
    assert_eq!(
        h.recv(20, phone(), &req("r2", 3, &a2)).statuses(),
        vec![200]
    );
    // A new transaction re-using count 2 (a buggy phone, or a replay): stale, then it recovers.
    let s = h.recv(30, phone(), &req("r3", 4, &a2));
    assert_eq!(s.statuses(), vec![401]);
    let fresh = values(s.only(), "WWW-Authenticate")[0].to_string();
    assert!(fresh.contains("stale=true"));
    let a = answer(&fresh, "alice", "s3cret", "cn", 1);
    assert_eq!(h.recv(40, phone(), &req("r4", 5, &a)).statuses(), vec![200]);
}

#[test]
fn an_rfc2069_answer_without_qop_is_single_use() {
    let mut h = H::new();
    let ch = h.challenge(0, phone(), "c0");
    // The same challenge without qop: the client answers in the RFC 2069 form.
    let bare = ch.replace(", qop=\"auth\"", "");
    let a = answer(&bare, "alice", "s3cret", "unused", 1);
    assert!(!a.contains("nc="), "{a}");
    let req = |b: &str, cseq| {
        register(
            phone(),
            b,
            "cid",
            cseq,
            "alice",
            &format!("Authorization: {a}\r\n{}", contact(phone())),
        )
    };
    assert_eq!(h.recv(10, phone(), &req("r1", 2)).statuses(), vec![200]);
    assert_eq!(h.recv(20, phone(), &req("r2", 3)).statuses(), vec![401]);
}

#[test]
fn same_call_id_with_an_old_cseq_fails_500_and_changes_nothing() {
    // RFC 3261 §10.3 steps 6 and 7, with answers that are fresh each time.
    let mut h = H::new();
    alice_registers(&mut h); // Call-ID alice-reg@phone, CSeq 2.
    let alice = format!("sip:alice@{}", phone());
    let mut n: u64 = 0;
    let mut send = |h: &mut H, call_id: &str, cseq: u32, rest: &str| {
        n += 1;
        let ch = h.challenge(100 * n, phone(), &format!("c{n}"));
        let a = answer(&ch, "alice", "s3cret", &format!("cn{n}"), 1);
        let req = register(
            phone(),
            &format!("r{n}x"),
            call_id,
            cseq,
            "alice",
            &format!("Authorization: {a}\r\n{rest}"),
        );
        h.recv(100 * n + 1, phone(), &req).statuses()
    };
    let star = "Contact: *\r\nExpires: 0\r\n";
    assert_eq!(send(&mut h, "alice-reg@phone", 2, star), vec![500]);
    assert_eq!(send(&mut h, "alice-reg@phone", 1, star), vec![500]);
    let other = format!("Contact: <{alice}>\r\nExpires: 0\r\n");
    assert_eq!(send(&mut h, "alice-reg@phone", 2, &other), vec![500]);
    assert_eq!(bound(&h, 1000), vec![alice.clone()]);
    // A higher CSeq, or another Call-ID (another client of alice's, authenticated), may.
    assert_eq!(
        send(&mut h, "alice-reg@phone", 3, &contact(phone())),
        vec![200]
    );
    assert_eq!(send(&mut h, "laptop", 1, star), vec![200]);
    assert!(bound(&h, 2000).is_empty());
}

/// A REGISTER answering `ch` with `password`, from `from`, for Call-ID `cid`.
fn guess(from: SocketAddr, ch: &str, user: &str, password: &str, n: u32) -> String {
    let a = answer(ch, user, password, "cn", n);
    register(
        from,
        &format!("g{n}"),
        "guess",
        n + 1,
        user,
        &format!("Authorization: {a}\r\n{}", contact(from)),
    )
}

#[test]
fn guessing_is_blocked_after_n_failures_and_alices_phone_still_registers() {
    let mut h = H::new();
    alice_registers(&mut h);
    let ch = h.challenge(20, attacker(), "ca");
    let mut statuses = Vec::new();
    for n in 1..=20 {
        let s = h.recv(
            100 + u64::from(n),
            attacker(),
            &guess(attacker(), &ch, "alice", "guess", n),
        );
        statuses.push(s.statuses().first().copied().unwrap_or(0));
    }
    // Five checked (401), then five refusals (403), then silence (0).
    let mut want = vec![401; 5];
    want.extend([403; 5]);
    want.extend([0; 10]);
    assert_eq!(statuses, want);
    // The right password from the blocked source is refused without being looked at.
    let s = h.recv(
        200,
        attacker(),
        &guess(attacker(), &ch, "alice", "s3cret", 21),
    );
    assert!(s.msgs.is_empty(), "{:?}", s.msgs);
    assert!(bound(&h, 200) == vec![format!("sip:alice@{}", phone())]);
    // Dropped requests leave no transaction behind.
    // (alice's two, the attacker's challenge, five 401s and five 403s.)
    assert_eq!(h.ep.server_txs.len(), 13);
    // alice's phone (it logged in before) refreshes as usual, although alice is blocked too.
    let ch = h.challenge(300, phone(), "cp");
    let a = answer(&ch, "alice", "s3cret", "cn9", 1);
    let refresh = register(
        phone(),
        "rp",
        "alice-reg@phone",
        9,
        "alice",
        &format!("Authorization: {a}\r\n{}", contact(phone())),
    );
    assert_eq!(h.recv(310, phone(), &refresh).statuses(), vec![200]);
    // A third address asking to be alice is refused during the user block.
    let third: SocketAddr = "127.0.0.3:5062".parse().unwrap();
    let ch3 = h.challenge(320, third, "c3");
    let s = h.recv(330, third, &guess(third, &ch3, "alice", "s3cret", 1));
    assert_eq!(s.statuses(), vec![403]);
    // After the block (60 s) the attacker's source may try again, and the right password works.
    let later = 61_000;
    let ch = h.challenge(later, attacker(), "cb");
    let s = h.recv(
        later + 1,
        attacker(),
        &guess(attacker(), &ch, "alice", "s3cret", 30),
    );
    assert_eq!(s.statuses(), vec![200]);
}

#[test]
fn unknown_and_known_users_get_byte_identical_answers_and_blocks() {
    // Everything the peer sees, with nonces and To tags masked.
    fn masked(msgs: &[String]) -> Vec<String> {
        msgs.iter()
            .map(|m| {
                m.lines()
                    .map(|l| {
                        if let Some((head, _)) = l.split_once("nonce=\"") {
                            let rest = &l[head.len() + 7..];
                            let end = rest.find('"').unwrap_or(rest.len());
                            format!("{head}nonce=\"N\"{}", &rest[end..])
                        } else if let Some((head, _)) = l.split_once(";tag=")
                            && l.starts_with("To:")
                        {
                            format!("{head};tag=T")
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\r\n")
            })
            .collect()
    }
    let run = |user: &str| {
        let mut h = H::new();
        let mut seen = Vec::new();
        let ch = h.challenge(0, attacker(), "c");
        for n in 1..=12 {
            // The To header names alice in both runs: only the credentials differ.
            let a = answer(&ch, user, "guess", "cn", n);
            let req = register(
                attacker(),
                &format!("g{n}"),
                "guess",
                n + 1,
                "alice",
                &format!("Authorization: {a}\r\n"),
            );
            seen.extend(masked(&h.recv(u64::from(n), attacker(), &req).msgs));
        }
        seen
    };
    let known = run("alice");
    let unknown = run("mallory");
    assert_eq!(known.len(), 10, "{known:#?}");
    assert_eq!(known, unknown);
}

/// An INVITE from staff user alice calling a customer back, with `extra` headers.
fn callback_invite(from: SocketAddr, branch: &str, call_id: &str, extra: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
    format!(
        "INVITE {CB_URI} SIP/2.0\r\n\
Via: SIP/2.0/UDP {from};branch=z9hG4bK{branch}\r\n\
From: <sip:alice@127.0.0.1:5060>;tag=s1\r\nTo: <sip:+15551230001@127.0.0.1:5060>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{from}>\r\n\
Max-Forwards: 70\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

#[test]
fn a_replayed_call_back_invite_places_no_second_call() {
    let mut h = H::new();
    let s = h.recv(0, phone(), &callback_invite(phone(), "i1", "cb-1", ""));
    assert_eq!(s.statuses(), vec![407]);
    let ch = values(s.only(), "Proxy-Authenticate")[0].to_string();
    let a = auth::answer_challenge(&ch, "INVITE", CB_URI, "alice", "s3cret", "cn", 1).unwrap();
    let creds = format!("Proxy-Authorization: {a}\r\n");
    let s = h.recv(10, phone(), &callback_invite(phone(), "i2", "cb-1", &creds));
    assert_eq!(s.statuses(), vec![100]);
    assert_eq!(s.events.len(), 1);
    // The same credentials in a new INVITE (new Call-ID) from elsewhere: no call, a stale 407.
    let s = h.recv(
        20,
        attacker(),
        &callback_invite(attacker(), "i3", "cb-evil", &creds),
    );
    assert_eq!(s.statuses(), vec![407]);
    assert!(s.events.is_empty());
    assert!(values(s.only(), "Proxy-Authenticate")[0].contains("stale=true"));
}

#[test]
fn a_blocked_source_gets_403_for_call_back_invites_too() {
    let mut h = H::new();
    let ch = h.challenge(0, attacker(), "c");
    for n in 1..=5 {
        h.recv(
            u64::from(n),
            attacker(),
            &guess(attacker(), &ch, "alice", "guess", n),
        );
    }
    let s = h.recv(
        10,
        attacker(),
        &callback_invite(attacker(), "i1", "cb-1", ""),
    );
    assert_eq!(s.statuses(), vec![403]);
    assert!(s.events.is_empty());
    // A customer's call from the same address is no authentication: it is let through.
    let customer = callback_invite(attacker(), "i2", "call-1", "")
        .replace("<sip:alice@127.0.0.1:5060>", "<sip:+15550001111@127.0.0.2>");
    let s = h.recv(20, attacker(), &customer);
    assert_eq!(s.statuses(), vec![100]);
}

/// RFC 3327: a REGISTER through a proxy carries Path; the registrar stores it with the binding
/// (the route set for requests to that contact) and returns it, in order, in the 200 OK.
#[test]
fn a_register_through_a_proxy_keeps_its_path_and_echoes_it() {
    let mut h = H::new();
    let proxy: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    let ch = h.challenge(0, proxy, "p0");
    let a = answer(&ch, "alice", "s3cret", "proxy-cn", 1);
    let outer = "<sip:192.0.2.1:5060;lr;received=sip:203.0.113.9:41000>";
    let inner = "<sip:edge.example;lr>";
    let s = h.recv(
        10,
        proxy,
        &register(
            proxy,
            "p1",
            "alice-reg@proxied",
            2,
            "alice",
            &format!(
                "Path: {outer}, {inner}\r\nAuthorization: {a}\r\n{}",
                contact(phone())
            ),
        ),
    );
    assert_eq!(s.statuses(), vec![200], "{:?}", s.msgs);
    assert_eq!(values(s.only(), "Path"), vec![outer, inner]);
    let bindings = h.ep.contacts(h.at(20), "alice");
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].path, vec![outer, inner]);
    assert_eq!(bindings[0].source, proxy);

    // Without a Path (registered directly) nothing is echoed and the route set is empty.
    let direct = alice_registers(&mut h);
    assert!(!direct.is_empty());
    let bindings = h.ep.contacts(h.at(20), "alice");
    assert!(bindings.iter().any(|b| b.path.is_empty()));
}
