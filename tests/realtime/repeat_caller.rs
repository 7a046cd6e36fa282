//! Issue 12 item 1, on the real binary with the shipped flow: a repeat caller reaches the desk
//! without the menus only when they agreed to the after-hours terms on a call within the repeat
//! window. The caller is a hand-written SIP user agent on loopback (the same From user on every
//! call, so the second call is a repeat) pressing keys as RFC 4733 telephone-events; what the
//! line did is read from its log (nodes entered, prompts played, digits decoded) and from the
//! CDRs (`ivr cdr export`). The time is injected with `serve --now` (a Friday night), so every
//! call is after hours.

use crate::common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{CallIds, Ivr, SipMsg, UdpUa, cdr_rows, in_dialog, invite, manifest_dir, sdp_offer};
use ivr::media::g711::Codec;
use ivr::media::rtp::RtpSender;

/// Friday 2026-11-27 22:30 in America/New_York (the default `[hours]` zone): after hours.
const AFTER_HOURS: &str = "2026-11-27T22:30:00-05:00";
/// Generous waits for what happens asynchronously (never timed assertions).
const WAIT: Duration = Duration::from_secs(60);
/// The telephone-event payload type our offer uses (`sdp_offer`'s rtpmap for 101).
const TELEPHONE_EVENT: u8 = 101;

/// `ivr serve` with the shipped after-hours flow. The caller sends only key presses, no audio:
/// `rtp.timeout_s = 0` keeps such a call from being cut as dead.
fn start_line() -> Ivr {
    let flow = manifest_dir().join("callflows/after_hours.toml");
    let config = common::unique_temp_dir("repeat-caller").join("ivr.toml");
    std::fs::write(&config, "[rtp]\ntimeout_s = 0\n").expect("write config");
    Ivr::start(&[
        "--flow",
        flow.to_str().expect("utf-8 path"),
        "--now",
        AFTER_HOURS,
        "--config",
        config.to_str().expect("utf-8 path"),
    ])
}

/// One answered call from the test's caller.
struct Call {
    ua: UdpUa,
    ids: CallIds,
    ok: SipMsg,
    rtp: UdpSocket,
    /// Where ivr wants our RTP (its SDP answer).
    ivr_rtp: SocketAddr,
    sender: RtpSender,
}

impl Call {
    /// Places a call from `ua` (its From user is the caller's identity) and ACKs the 200.
    fn place(ua: UdpUa) -> Call {
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind caller RTP");
        let ids = CallIds::new();
        let port = rtp.local_addr().expect("rtp addr").port();
        ua.send(invite(&ua, &ids, &sdp_offer(port, "0 101")));
        let ok = ua.expect_response(&ids.call_id, |s| s == 200, WAIT);
        ua.send(in_dialog(&ua, &ids, &ok, "ACK", 1));
        let ivr_rtp = common::sdp_audio_addr(&ok.body_str());
        Call {
            ua,
            ids,
            ok,
            rtp,
            ivr_rtp,
            sender: RtpSender::new(Codec::Pcmu),
        }
    }

    fn call_id(&self) -> &str {
        &self.ids.call_id
    }

    /// One key press as RFC 4733 packets: three updates, three end packets, 20 ms apart, on
    /// this call's one RTP stream (so successive presses have rising timestamps).
    fn press(&mut self, key: char) {
        let event = match key {
            '0'..='9' => key as u8 - b'0',
            '*' => 10,
            '#' => 11,
            _ => panic!("no telephone-event for {key:?}"),
        };
        let ts = self.sender.next_timestamp();
        for (i, (duration, end)) in [
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
            let [hi, lo] = duration.to_be_bytes();
            let payload = [event, if end { 0x8a } else { 0x0a }, hi, lo];
            let pkt = self
                .sender
                .next_packet_at(TELEPHONE_EVENT, &payload, ts, i == 0);
            self.rtp.send_to(&pkt, self.ivr_rtp).expect("send event");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.sender.skip_samples(640 + 800);
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Hangs up (BYE) and waits for its 200.
    fn hang_up(self) {
        self.ua
            .send(in_dialog(&self.ua, &self.ids, &self.ok, "BYE", 2));
        self.ua
            .expect_response(&self.ids.call_id, |s| s == 200, WAIT);
    }
}

/// This call's log lines.
fn call_log(ivr: &Ivr, call_id: &str) -> Vec<String> {
    ivr.log()
        .lines()
        .filter(|l| l.contains(call_id))
        .map(String::from)
        .collect()
}

/// The nodes this call entered, in order.
fn nodes(ivr: &Ivr, call_id: &str) -> Vec<String> {
    call_log(ivr, call_id)
        .iter()
        .filter(|l| l.contains("event=\"node\""))
        .filter_map(|l| l.split("node=").nth(1)?.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// The prompts this call played, in order.
fn prompts(ivr: &Ivr, call_id: &str) -> Vec<String> {
    call_log(ivr, call_id)
        .iter()
        .filter(|l| l.contains("event=\"prompt\""))
        .filter_map(|l| l.split("prompt=").nth(1)?.split_whitespace().next())
        .map(|p| p.trim_matches('"').to_string())
        .collect()
}

/// Waits until this call has entered `node`.
fn wait_for_node(ivr: &Ivr, call_id: &str, node: &str) {
    let deadline = Instant::now() + WAIT;
    while !nodes(ivr, call_id).iter().any(|n| n == node) {
        assert!(
            Instant::now() < deadline,
            "call {call_id} never entered `{node}`; nodes: {:?}\n--- log:\n{}",
            nodes(ivr, call_id),
            ivr.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the finished CDR of `call_id` (the row is closed after the call's BYE).
fn finished_cdr(ivr: &Ivr, call_id: &str) -> HashMap<String, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let row = cdr_rows(&ivr.dir().join("data"))
            .into_iter()
            .find(|r| r["call_id"] == call_id);
        if let Some(row) = row.filter(|r| !r["ended_at"].is_empty()) {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "no finished CDR for {call_id}; log:\n{}",
            ivr.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The CDR row of `call_id` as it is now, if it has one.
fn cdr_now(ivr: &Ivr, call_id: &str) -> Option<HashMap<String, String>> {
    cdr_rows(&ivr.dir().join("data"))
        .into_iter()
        .find(|r| r["call_id"] == call_id)
}

/// Where `node` is in `nodes`, with a message naming the call's path when it is missing.
fn position(nodes: &[String], node: &str) -> usize {
    nodes
        .iter()
        .position(|n| n == node)
        .unwrap_or_else(|| panic!("node `{node}` not entered; nodes: {nodes:?}"))
}

#[test]
fn a_repeat_caller_who_hung_up_in_the_greeting_must_press_5_and_1_before_the_desk() {
    let ivr = start_line();
    // Call 1: hangs up 4 s into the greeting, before the disclaimer.
    let first = Call::place(UdpUa::new(ivr.sip_addr()));
    let first_id = first.call_id().to_string();
    std::thread::sleep(Duration::from_secs(4));
    first.hang_up();
    let cdr1 = finished_cdr(&ivr, &first_id);
    assert_eq!(cdr1["agreed_terms"], "false", "{cdr1:?}");

    // Call 2, the same number (From user) a moment later: a repeat, without a recent agreement.
    let mut second = Call::place(UdpUa::new(ivr.sip_addr()));
    let id = second.call_id().to_string();
    // Wait until the flow has chosen its path: the repeat greeting, or (the defect) the desk.
    let deadline = Instant::now() + WAIT;
    while !nodes(&ivr, &id)
        .iter()
        .any(|n| n == "welcome_back" || n == "ring_desk")
    {
        assert!(Instant::now() < deadline, "no path chosen:\n{}", ivr.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !nodes(&ivr, &id).iter().any(|n| n == "ring_desk"),
        "call 2 reached the desk without pressing 5 and 1; nodes: {:?}, prompts: {:?}",
        nodes(&ivr, &id),
        prompts(&ivr, &id)
    );
    // 5 during the welcome cuts it short (barge-in); the disclaimer still plays.
    second.press('5');
    wait_for_node(&ivr, &id, "repeat_disclaimer");
    wait_for_node(&ivr, &id, "repeat_terms");
    let row = cdr_now(&ivr, &id).expect("call 2 has a row from its start");
    assert_eq!(row["agreed_terms"], "false", "before pressing 1: {row:?}");
    assert!(
        !nodes(&ivr, &id).iter().any(|n| n == "ring_desk"),
        "5 alone must not reach the desk: {:?}",
        nodes(&ivr, &id)
    );
    // 1 during the terms: agreed. `#`: no ticket. Then the desk is rung.
    second.press('1');
    wait_for_node(&ivr, &id, "ticket");
    second.press('#');
    wait_for_node(&ivr, &id, "ring_desk");
    second.hang_up();

    let path = nodes(&ivr, &id);
    let played = prompts(&ivr, &id);
    assert!(
        position(&path, "welcome_back") < position(&path, "repeat_disclaimer")
            && position(&path, "repeat_disclaimer") < position(&path, "repeat_menu")
            && position(&path, "repeat_menu") < position(&path, "repeat_terms")
            && position(&path, "repeat_terms") < position(&path, "agree_menu")
            && position(&path, "agree_menu") < position(&path, "agreed")
            && position(&path, "agreed") < position(&path, "ring_desk"),
        "{path:?}"
    );
    for prompt in ["repeat_confirm_terms", "rate_disclaimer", "terms"] {
        assert!(played.iter().any(|p| p == prompt), "{prompt}: {played:?}");
    }
    assert!(
        !played.iter().any(|p| p == "repeat_agreed"),
        "not told they agreed: {played:?}"
    );
    let log = call_log(&ivr, &id).join("\n");
    for digit in ["5", "1"] {
        let needle = format!("event=\"digit\" digit={digit} source=Rfc4733");
        assert!(log.contains(&needle), "no `{needle}`:\n{log}");
    }
    let cdr2 = finished_cdr(&ivr, &id);
    assert_eq!(cdr2["repeat"], "true", "{cdr2:?}");
    assert_eq!(cdr2["agreed_terms"], "true", "{cdr2:?}");
    assert_eq!(cdr2["after_hours"], "true", "{cdr2:?}");
    assert_eq!(cdr2["rate_multiplier"].parse::<f64>().ok(), Some(2.0));
    assert!(cdr2["digits"].starts_with("51"), "{cdr2:?}");
}

#[test]
fn a_repeat_caller_who_agreed_on_the_last_call_goes_straight_to_the_desk() {
    let ivr = start_line();
    // Call 1: 5, 1 and # typed ahead during the greeting (no barge-in there: the greeting,
    // disclaimer and terms play out), then the desk is rung and the caller hangs up.
    let mut first = Call::place(UdpUa::new(ivr.sip_addr()));
    let first_id = first.call_id().to_string();
    std::thread::sleep(Duration::from_secs(1));
    for key in ['5', '1', '#'] {
        first.press(key);
    }
    wait_for_node(&ivr, &first_id, "ring_desk");
    first.hang_up();
    let cdr1 = finished_cdr(&ivr, &first_id);
    assert_eq!(cdr1["agreed_terms"], "true", "{cdr1:?}");

    // Call 2: told the agreement stands, straight to the desk, recorded as agreed.
    let second = Call::place(UdpUa::new(ivr.sip_addr()));
    let id = second.call_id().to_string();
    wait_for_node(&ivr, &id, "ring_desk");
    second.hang_up();
    let cdr2 = finished_cdr(&ivr, &id);
    assert_eq!(cdr2["repeat"], "true", "{cdr2:?}");
    assert_eq!(cdr2["agreed_terms"], "true", "{cdr2:?}");
    assert_eq!(cdr2["digits"], "", "no keys pressed: {cdr2:?}");
    let path = nodes(&ivr, &id);
    assert_eq!(
        path[..4],
        [
            "hours",
            "agreed_earlier",
            "welcome_back_agreed",
            "ring_desk"
        ],
        "{path:?}"
    );
    let played = prompts(&ivr, &id);
    assert_eq!(played.first().map(String::as_str), Some("repeat_agreed"));
    for skipped in ["rate_disclaimer", "terms", "press_5"] {
        assert!(!played.iter().any(|p| p == skipped), "{played:?}");
    }
}
