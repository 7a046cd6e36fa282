//! Caller-chosen text in ivr's log: a From user with an ESC byte and an INFO body with CR, LF and
//! ESC must reach the log file as visible escapes, never as raw bytes (a raw CR/LF forges log
//! lines; an ESC sequence rewrites the admin's terminal when the log is viewed).

use crate::common;

use std::time::Duration;

use common::{CallIds, Ivr, UdpUa, in_dialog, sdp_offer};

const SIP_WAIT: Duration = Duration::from_secs(10);

#[test]
fn caller_text_is_logged_with_control_characters_escaped() {
    let ivr = Ivr::start(&[]);
    let ua = UdpUa::new(ivr.sip_addr());
    let ids = CallIds::new();
    let sdp = sdp_offer(4000, "0");
    // A raw ESC in the From user (RFC 3261 forbids it; ivr accepts the call anyway and must
    // not pass the byte on).
    let invite =
        common::invite(&ua, &ids, &sdp).replacen("\"Tester\" <sip:tester@", "<sip:ev\x1b[2Jil@", 1);
    assert!(invite.contains('\x1b'), "the From was not replaced");
    ua.send(invite);
    let ok = ua.expect_response(&ids.call_id, |s| s >= 200, SIP_WAIT);
    assert_eq!(ok.status(), Some(200), "{}", ok.text());
    ua.send(in_dialog(&ua, &ids, &ok, "ACK", 1));
    // An INFO whose body tries to forge a log line and clear the screen.
    let body = "5\r\n2026-12-01T00:00:00Z  INFO forged\x1b[2J";
    let info = in_dialog(&ua, &ids, &ok, "INFO", 2).replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    ua.send(info);
    ivr.wait_for_log(&["INFO received"], SIP_WAIT);
    ua.send(in_dialog(&ua, &ids, &ok, "BYE", 3));
    let _ = ua.expect_response(&ids.call_id, |s| s >= 200, SIP_WAIT);
    let log = ivr.wait_for_log(&["incoming call"], SIP_WAIT);
    let bytes = log.as_bytes();
    assert!(
        !bytes.contains(&0x1b),
        "raw ESC in the log:\n{}",
        log.escape_debug()
    );
    assert!(
        !bytes.contains(&b'\r'),
        "raw CR in the log:\n{}",
        log.escape_debug()
    );
    assert!(
        !log.lines().any(|l| l.starts_with("2026-12-01T00:00:00Z")),
        "a forged log line:\n{log}"
    );
    assert!(
        log.contains("ev\\x1b[2Jil"),
        "From user not shown escaped:\n{log}"
    );
    assert!(
        log.contains("5\\r\\n2026-12-01T00:00:00Z  INFO forged\\x1b[2J"),
        "INFO body not shown escaped:\n{log}"
    );
}
