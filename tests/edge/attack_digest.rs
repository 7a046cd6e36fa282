//! Issue 11, rows 4 and 5, against the real binary: a sniffed digest answer replayed from another
//! address (REGISTER and a staff call-back INVITE), and password guessing as fast as one socket
//! can send. Attackers sit on 127.0.0.2, alice's phone on 127.0.0.1, a caller on 127.0.0.3.

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{CallIds, Ivr, SipMsg, UdpUa, require_tool, run_sipp, sdp_offer, token};
use ivr::sip::auth::answer_challenge;

const WAIT: Duration = Duration::from_secs(5);
/// How long to listen for something that must not arrive.
const QUIET: Duration = Duration::from_millis(1500);

const ALICE: &str = "[staff]\n[[staff.users]]\nname = \"alice\"\npassword = \"s3cret\"\n";

/// A UA on another loopback address ("another host").
fn ua_on(ip: &str, server: SocketAddr) -> UdpUa {
    let sock = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
    UdpUa { sock, server }
}

fn register_uri(ivr: &Ivr) -> String {
    format!("sip:{}", ivr.sip_addr())
}

/// A REGISTER for alice from `ua` with `extra` header lines.
fn register(ua: &UdpUa, call_id: &str, cseq: u32, extra: &str) -> String {
    let local = ua.local();
    format!(
        "REGISTER sip:{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{b};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{server}>;tag={t}\r\n\
         To: <sip:alice@{server}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         {extra}Content-Length: 0\r\n\r\n",
        server = ua.server,
        b = token(),
        t = token(),
    )
}

/// Sends a REGISTER without credentials and returns the first challenge of the 401.
fn challenge(ua: &UdpUa, call_id: &str) -> String {
    ua.send(register(ua, call_id, 1, ""));
    let r = ua.expect_response(call_id, |s| s >= 200, WAIT);
    assert_eq!(r.status(), Some(401), "{}", r.text());
    r.header("WWW-Authenticate")
        .expect("WWW-Authenticate")
        .to_string()
}

/// alice's phone registers its Contact and returns the Authorization it sent.
fn alice_registers(ivr: &Ivr, alice: &UdpUa, call_id: &str) -> String {
    let ch = challenge(alice, call_id);
    let auth = answer_challenge(
        &ch,
        "REGISTER",
        &register_uri(ivr),
        "alice",
        "s3cret",
        &token(),
        1,
    )
    .expect("answer");
    let contact = format!("Contact: <sip:alice@{}>\r\nExpires: 600\r\n", alice.local());
    alice.send(register(
        alice,
        call_id,
        2,
        &format!("Authorization: {auth}\r\n{contact}"),
    ));
    let r = alice.expect_response(call_id, |s| s >= 200, WAIT);
    assert_eq!(r.status(), Some(200), "{}\n{}", r.text(), ivr.log());
    auth
}

/// alice's registered contacts, from the 200 to a query (a REGISTER without Contact).
fn alice_bindings(ivr: &Ivr, alice: &UdpUa) -> Vec<String> {
    let call_id = format!("query-{}", token());
    let ch = challenge(alice, &call_id);
    let auth = answer_challenge(
        &ch,
        "REGISTER",
        &register_uri(ivr),
        "alice",
        "s3cret",
        &token(),
        1,
    )
    .expect("answer");
    alice.send(register(
        alice,
        &call_id,
        2,
        &format!("Authorization: {auth}\r\n"),
    ));
    let r = alice.expect_response(&call_id, |s| s >= 200, WAIT);
    assert_eq!(r.status(), Some(200), "{}", r.text());
    r.headers_named("Contact").map(str::to_string).collect()
}

/// The next INVITE `ua` receives within `timeout` (any Call-ID).
fn next_invite(ua: &UdpUa, timeout: Duration) -> Option<SipMsg> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let m = ua.recv(left)?;
        if m.method() == Some("INVITE") {
            return Some(m);
        }
    }
}

/// A response from the UAS `ua` to a request it received.
fn respond(ua: &UdpUa, req: &SipMsg, status: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in req.headers_named("Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for name in ["From", "Call-ID", "CSeq"] {
        out.push_str(&format!("{name}: {}\r\n", req.header(name).unwrap_or("")));
    }
    let to = req.header("To").unwrap_or("");
    out.push_str(&format!("To: {to};tag={}\r\n", token()));
    out.push_str(&format!(
        "Contact: <sip:u@{}>\r\nContent-Length: 0\r\n\r\n",
        ua.local()
    ));
    out
}

#[test]
fn a_replayed_register_answer_is_refused_and_the_desk_still_rings_alice() {
    let ivr = Ivr::start_desk("desk.toml", &["alice".to_string()], ALICE);
    let alice = UdpUa::new(ivr.sip_addr());
    let attacker = ua_on("127.0.0.2", ivr.sip_addr());
    let sniffed = alice_registers(&ivr, &alice, &format!("alice-{}", token()));

    // Replayed with a new Call-ID from another host: first `Contact: *` to wipe alice...
    let wipe = format!("wipe-{}", token());
    attacker.send(register(
        &attacker,
        &wipe,
        1,
        &format!("Authorization: {sniffed}\r\nContact: *\r\nExpires: 0\r\n"),
    ));
    let r = attacker.expect_response(&wipe, |s| s >= 200, WAIT);
    assert_ne!(
        r.status(),
        Some(200),
        "replayed Contact: * accepted:\n{}",
        r.text()
    );
    assert_eq!(r.status(), Some(401), "{}", r.text());
    assert!(
        r.headers_named("WWW-Authenticate")
            .all(|c| c.contains("stale=true")),
        "{}",
        r.text()
    );
    // ...then to bind the attacker's own Contact.
    let bind = format!("bind-{}", token());
    let contact = format!(
        "Contact: <sip:alice@{}>\r\nExpires: 600\r\n",
        attacker.local()
    );
    attacker.send(register(
        &attacker,
        &bind,
        1,
        &format!("Authorization: {sniffed}\r\n{contact}"),
    ));
    let r = attacker.expect_response(&bind, |s| s >= 200, WAIT);
    assert_ne!(
        r.status(),
        Some(200),
        "replayed REGISTER bound the attacker:\n{}",
        r.text()
    );

    // alice's binding is intact and alone.
    let bindings = alice_bindings(&ivr, &alice);
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    assert!(
        bindings[0].contains(&alice.local().to_string()),
        "{bindings:?}"
    );
    // The next desk call, with a customer's number, rings alice and nobody else.
    let caller = ua_on("127.0.0.3", ivr.sip_addr());
    let ids = CallIds::new();
    let invite = common::invite(&caller, &ids, &sdp_offer(40_000, "0 101"))
        .replace("sip:tester@", "sip:+15551230004@");
    caller.send(invite);
    let ok = caller.expect_response(&ids.call_id, |s| s >= 200, WAIT);
    assert_eq!(ok.status(), Some(200), "{}", ok.text());
    caller.send(common::in_dialog(&caller, &ids, &ok, "ACK", 1));
    let leg = next_invite(&alice, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the desk call did not ring alice:\n{}", ivr.log()));
    assert!(leg.text().contains("+15551230004"), "{}", leg.text());
    alice.send(respond(&alice, &leg, "486 Busy Here"));
    assert!(
        next_invite(&attacker, QUIET).is_none(),
        "the attacker's contact was rung"
    );
}

#[test]
fn a_replayed_call_back_invite_places_no_second_call_to_the_trunk() {
    if !require_tool("sipp") {
        return;
    }
    let trunk = UdpSocket::bind("127.0.0.1:0").expect("trunk socket");
    let trunk_addr = trunk.local_addr().expect("trunk addr");
    let config = format!("{ALICE}[desk]\ncallback_trunk = \"sip:{trunk_addr}\"\n");
    let ivr = Ivr::start_desk("desk.toml", &[], &config);
    let trunk = UdpUa {
        sock: trunk,
        server: ivr.sip_addr(),
    };
    // A customer leaves a voicemail, so its number may be called back.
    let number = "+15551230005";
    // The caller speaks: a silent one would leave no voicemail to call back.
    common::write_spoken_audio(ivr.dir());
    let caller = run_sipp(
        &ivr,
        "uac_caller_speaks_hangup.xml",
        &["-key", "caller", number, "-d", "4000"],
    );
    assert!(caller.success(), "caller: {}\n{}", caller.errors, ivr.log());
    ivr.wait_for_log(&["event=\"voicemail_stored\""], Duration::from_secs(30));

    // alice calls it back: 407, then the INVITE with her answer, which reaches the trunk.
    let alice = UdpUa::new(ivr.sip_addr());
    let uri = format!("sip:{number}@{}", ivr.sip_addr());
    let callback = |ua: &UdpUa, ids: &CallIds, extra: &str| {
        let local = ua.local();
        let sdp = sdp_offer(40_010, "0");
        format!(
            "INVITE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@{server}>;tag={tag}\r\n\
             To: <sip:{number}@{server}>\r\n\
             Call-ID: {cid}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:alice@{local}>\r\n\
             {extra}Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            server = ua.server,
            branch = ids.branch,
            tag = ids.from_tag,
            cid = ids.call_id,
            len = sdp.len(),
        )
    };
    let first = CallIds::new();
    alice.send(callback(&alice, &first, ""));
    let r = alice.expect_response(&first.call_id, |s| s >= 200, WAIT);
    assert_eq!(r.status(), Some(407), "{}", r.text());
    let ch = r
        .header("Proxy-Authenticate")
        .expect("challenge")
        .to_string();
    let auth =
        answer_challenge(&ch, "INVITE", &uri, "alice", "s3cret", &token(), 1).expect("answer");
    let creds = format!("Proxy-Authorization: {auth}\r\n");
    let second = CallIds::new();
    alice.send(callback(&alice, &second, &creds));
    let out = next_invite(&trunk, WAIT)
        .unwrap_or_else(|| panic!("alice's call-back did not reach the trunk:\n{}", ivr.log()));
    assert!(out.start_line.contains(number), "{}", out.start_line);
    trunk.send(respond(&trunk, &out, "486 Busy Here"));
    alice.expect_response(&second.call_id, |s| s >= 300, WAIT);

    // The same INVITE replayed from another host with a new Call-ID: no second call.
    let attacker = ua_on("127.0.0.2", ivr.sip_addr());
    let replay = CallIds::new();
    attacker.send(callback(&attacker, &replay, &creds));
    let again = next_invite(&trunk, QUIET);
    assert!(
        again.is_none(),
        "the replayed call-back reached the trunk: {}",
        again.map(|m| m.start_line).unwrap_or_default()
    );
    let r = attacker.expect_response(&replay.call_id, |s| s >= 200, WAIT);
    assert_eq!(r.status(), Some(407), "{}", r.text());
    assert!(
        r.header("Proxy-Authenticate")
            .is_some_and(|c| c.contains("stale=true")),
        "{}",
        r.text()
    );
}

/// What came back for a burst of guesses.
#[derive(Debug, Default)]
struct Tally {
    checked: usize,
    refused: usize,
    other: Vec<u16>,
    /// From the first guess sent to the last 401 received.
    checking_time: Duration,
}

/// Sends `n` wrong-password answers for alice on the nonce of `ch` from `ua`, as fast as the
/// socket takes them, and tallies the answers until the server has been quiet for a while.
fn guess_burst(ivr: &Ivr, ua: &UdpUa, ch: &str, n: u32) -> Tally {
    let rx_sock = ua.sock.try_clone().expect("clone socket");
    rx_sock
        .set_read_timeout(Some(Duration::from_millis(800)))
        .expect("timeout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        // Ends after 800 ms without a datagram.
        while let Ok((len, _)) = rx_sock.recv_from(&mut buf) {
            if let Some(status) = SipMsg::parse(&buf[..len]).and_then(|m| m.status()) {
                let _ = tx.send((Instant::now(), status));
            }
        }
    });
    let cnonce = token();
    let call_id = format!("guess-{}", token());
    let start = Instant::now();
    for i in 1..=n {
        let auth = answer_challenge(
            ch,
            "REGISTER",
            &register_uri(ivr),
            "alice",
            &format!("guess{i}"),
            &cnonce,
            i,
        )
        .expect("answer");
        ua.send(register(
            ua,
            &call_id,
            i + 1,
            &format!("Authorization: {auth}\r\n"),
        ));
    }
    reader.join().expect("reader");
    let mut t = Tally::default();
    for (at, status) in rx.try_iter() {
        match status {
            401 => {
                t.checked += 1;
                t.checking_time = at - start;
            }
            403 => t.refused += 1,
            s => t.other.push(s),
        }
    }
    t
}

#[test]
fn password_guessing_is_blocked_after_a_few_tries_and_logged_once() {
    let ivr = Ivr::start(&["--config", &write_config(ALICE)]);
    let alice = UdpUa::new(ivr.sip_addr());
    let alice_call_id = format!("alice-{}", token());
    alice_registers(&ivr, &alice, &alice_call_id);
    let warns_before = warn_lines(&ivr.log());

    // 500 guesses on one nonce, from one socket, as fast as it sends.
    let attacker = ua_on("127.0.0.2", ivr.sip_addr());
    let ch = challenge(&attacker, &format!("ch-{}", token()));
    let n = 500;
    let t = guess_burst(&ivr, &attacker, &ch, n);
    let rate = t.checked as f64 / t.checking_time.as_secs_f64().max(1e-3);
    // Printed for the record (guesses checked per second while checking went on).
    eprintln!(
        "guessing: {n} sent, {} checked (401) in {:?} = {rate:.0}/s, {} refused (403), {} unanswered, other {:?}",
        t.checked,
        t.checking_time,
        t.refused,
        n as usize - t.checked - t.refused - t.other.len(),
        t.other
    );
    assert!(
        t.checked <= 10,
        "{} of {n} guesses were checked against the password (no lockout): {t:?}",
        t.checked
    );
    assert!(t.refused >= 1, "{t:?}");
    // The per-source REGISTER rate (sip.limits) may refuse some with 503 as well.
    assert!(t.other.iter().all(|s| *s == 503), "{t:?}");

    // The right password from the blocked source is refused too (403 or silence, never 200).
    let call_id = format!("right-{}", token());
    let auth = answer_challenge(
        &ch,
        "REGISTER",
        &register_uri(&ivr),
        "alice",
        "s3cret",
        &token(),
        1,
    )
    .expect("answer");
    let contact = format!(
        "Contact: <sip:alice@{}>\r\nExpires: 600\r\n",
        attacker.local()
    );
    attacker.send(register(
        &attacker,
        &call_id,
        2,
        &format!("Authorization: {auth}\r\n{contact}"),
    ));
    let answered = attacker.recv(QUIET);
    assert!(
        answered.as_ref().is_none_or(|m| m.status() == Some(403)),
        "{answered:?}"
    );

    // alice's phone, from its own address, registers as usual.
    let ch = challenge(&alice, &alice_call_id);
    let auth = answer_challenge(
        &ch,
        "REGISTER",
        &register_uri(&ivr),
        "alice",
        "s3cret",
        &token(),
        1,
    )
    .expect("answer");
    alice.send(register(
        &alice,
        &alice_call_id,
        5,
        &format!(
            "Authorization: {auth}\r\nContact: <sip:alice@{}>\r\nExpires: 600\r\n",
            alice.local()
        ),
    ));
    let r = alice.expect_response(&alice_call_id, |s| s >= 200, WAIT);
    assert_eq!(r.status(), Some(200), "{}", r.text());
    let bindings = alice_bindings(&ivr, &alice);
    assert_eq!(bindings.len(), 1, "{bindings:?}");

    // A handful of log lines: the first failure, the source's block and the user's block.
    let log = ivr.log();
    let warns = warn_lines(&log) - warns_before;
    eprintln!("guessing: {warns} WARN lines logged for the {n} guesses");
    assert!(warns <= 5, "{warns} WARN lines for {n} guesses:\n{log}");
    assert!(log.contains("event=\"auth_blocked\""), "{log}");
    assert!(log.contains("source=127.0.0.2"), "{log}");
}

#[test]
fn a_block_ends_and_the_right_password_works_again() {
    let config = ALICE.replace(
        "[staff]\n",
        "[staff]\nauth_failures_before_block = 3\nauth_block_s = 1\nauth_block_max_s = 1\n",
    );
    let ivr = Ivr::start(&["--config", &write_config(&config)]);
    let attacker = ua_on("127.0.0.2", ivr.sip_addr());
    let ch = challenge(&attacker, &format!("ch-{}", token()));
    let t = guess_burst(&ivr, &attacker, &ch, 3);
    assert_eq!((t.checked, t.refused), (3, 0), "{t:?}");
    // Blocked now: even a request without credentials gets 403, not a challenge.
    let call_id = format!("blocked-{}", token());
    attacker.send(register(&attacker, &call_id, 1, ""));
    let r = attacker.expect_response(&call_id, |s| s >= 200, WAIT);
    assert_eq!(r.status(), Some(403), "{}", r.text());
    assert!(
        r.text().contains("too many failed attempts"),
        "{}",
        r.text()
    );
    // Once the block is over, the right password registers.
    std::thread::sleep(Duration::from_millis(1200));
    let call_id = format!("after-{}", token());
    let ch = challenge(&attacker, &call_id);
    let auth = answer_challenge(
        &ch,
        "REGISTER",
        &register_uri(&ivr),
        "alice",
        "s3cret",
        &token(),
        1,
    )
    .expect("answer");
    attacker.send(register(
        &attacker,
        &call_id,
        2,
        &format!("Authorization: {auth}\r\n"),
    ));
    let r = attacker.expect_response(&call_id, |s| s >= 200, WAIT);
    assert_eq!(r.status(), Some(200), "{}\n{}", r.text(), ivr.log());
}

fn warn_lines(log: &str) -> usize {
    log.lines().filter(|l| l.contains(" WARN ")).count()
}

/// Writes `config` to a temp file that lives as long as the test process needs it.
fn write_config(config: &str) -> String {
    let path = common::unique_temp_dir("attack-digest").join("ivr.toml");
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path.to_str().expect("utf-8 temp path").to_string()
}
