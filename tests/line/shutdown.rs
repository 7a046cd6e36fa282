//! Shutdown against the real binary (issue 12, item 13): its deadlines fire on their own. A quiet
//! line exits at once on SIGTERM; a live call is hung up when the grace ends with no other
//! traffic to wake the server, and then the process exits.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Ivr, UdpUa, ok_for, sdp_offer, token, unique_temp_dir};

/// Whether process `pid` has exited (a zombie until its parent waits counts as exited).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// Waits up to `limit` for `pid` to exit; the time it took, or `None`.
fn wait_exit(pid: u32, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if exited(pid) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid}");
}

#[test]
fn a_quiet_line_exits_at_once_on_sigterm() {
    let ivr = Ivr::start(&[]);
    // A call that has come and gone leaves transactions that live on for 32 s over UDP (the
    // INVITE's and the BYE's, absorbing retransmissions): shutdown must not wait for them.
    let ua = UdpUa::new(ivr.sip_addr());
    let (call_id, _ok) = answered_call(&ivr, &ua);
    let bye = ua.expect_request(&call_id, "BYE", Duration::from_secs(20));
    ua.send(ok_for(&bye));
    ivr.wait_for_log(&["event=\"dialog_ended\""], Duration::from_secs(5));
    sigterm(ivr.pid());
    let took = wait_exit(ivr.pid(), Duration::from_secs(10));
    let log = ivr.log();
    assert!(
        took.is_some(),
        "still running 10 s after SIGTERM; log:\n{log}"
    );
    assert!(log.contains("event=\"shutdown_done\""), "{log}");
}

/// Places a call from `ua` (offer to a port nobody uses), ACKs the 200; returns its Call-ID and
/// the 200.
fn answered_call(ivr: &Ivr, ua: &UdpUa) -> (String, common::SipMsg) {
    let local = ua.local();
    let call_id = format!("held-{}", token());
    let sdp = sdp_offer(local.port() + 2, "0");
    ua.send(format!(
        "INVITE sip:ivr@{0} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{1};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:caller@{local}>;tag={1}\r\nTo: <sip:ivr@{0}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{local}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {2}\r\n\r\n{sdp}",
        ivr.sip_addr(),
        token(),
        sdp.len()
    ));
    let ok = ua.expect_response(&call_id, |s| s >= 200, Duration::from_secs(5));
    assert_eq!(ok.status(), Some(200), "{}", ok.text());
    ua.send(format!(
        "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{};rport\r\nMax-Forwards: 70\r\n\
         From: {}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        ok.contact_uri().expect("Contact"),
        token(),
        ok.header("From").unwrap_or_default(),
        ok.header("To").unwrap_or_default(),
    ));
    ivr.wait_for_log(&["event=\"prompt\""], Duration::from_secs(5));
    (call_id, ok)
}

#[test]
fn a_live_call_is_hung_up_when_the_grace_ends_without_other_traffic() {
    let config = unique_temp_dir("shutdown").join("ivr.toml");
    std::fs::write(
        &config,
        "[call]\nshutdown_grace_s = 2\nhold_after_prompt = true\n",
    )
    .unwrap();
    let ivr = Ivr::start(&["--config", config.to_str().expect("utf-8")]);
    let ua = UdpUa::new(ivr.sip_addr());
    let (call_id, _ok) = answered_call(&ivr, &ua);
    sigterm(ivr.pid());
    // Nothing else is sent: the BYE must come from the grace's own deadline.
    let bye = ua.expect_request(&call_id, "BYE", Duration::from_secs(10));
    ua.send(ok_for(&bye));
    let took = wait_exit(ivr.pid(), Duration::from_secs(10));
    let log = ivr.log();
    assert!(
        took.is_some(),
        "still running after the hang-up; log:\n{log}"
    );
    assert!(log.contains("event=\"shutdown_hangup\""), "{log}");
}
