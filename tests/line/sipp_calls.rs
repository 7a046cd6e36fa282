//! Interoperability: real sipp scenarios (tests/sipp/*.xml) against the real `ivr` binary over
//! loopback. Each test starts its own server. Without sipp the tests print SKIP and pass, unless
//! `IVR_REQUIRE_INTEROP=1` (CI), which makes a missing sipp a failure.

use crate::common;

use std::time::Duration;

use common::{Ivr, require_tool, run_sipp};

/// Call events are logged by the call task shortly after the last SIP message.
const LOG_WAIT: Duration = Duration::from_secs(10);

fn assert_sipp_ok(ivr: &Ivr, scenario: &str, extra: &[&str]) {
    let run = run_sipp(ivr, scenario, extra);
    assert!(
        run.success(),
        "sipp {scenario} {extra:?} failed ({}):\n{}\n--- ivr log:\n{}",
        run.status,
        run.errors,
        ivr.log()
    );
}

/// The server answers, plays the greeting and hangs up; sipp answers the BYE.
fn basic_call(extra: &[&str]) {
    let ivr = Ivr::start(&[]);
    assert_sipp_ok(&ivr, "uac_basic.xml", extra);
    let log = ivr.wait_for_log(
        &[
            "event=\"invite\"",
            "event=\"answering\"",
            "codec=\"PCMU\"",
            "event=\"prompt\"",
            "event=\"flow_end\"",
            "event=\"bye_sent\"",
            "event=\"ended\" reason=we hung up",
        ],
        LOG_WAIT,
    );
    assert!(!log.contains(" ERROR "), "errors in ivr log:\n{log}");
}

#[test]
fn sipp_basic_call_udp() {
    if !require_tool("sipp") {
        return;
    }
    basic_call(&[]);
}

#[test]
fn sipp_basic_call_tcp() {
    if !require_tool("sipp") {
        return;
    }
    basic_call(&["-t", "t1"]);
}

#[test]
fn sipp_options_lists_invite_and_bye() {
    if !require_tool("sipp") {
        return;
    }
    let ivr = Ivr::start(&[]);
    assert_sipp_ok(&ivr, "options.xml", &[]);
    let log = ivr.log();
    assert!(
        !log.contains("event=\"invite\""),
        "OPTIONS must not start a call:\n{log}"
    );
}

#[test]
fn sipp_caller_hangs_up_first() {
    if !require_tool("sipp") {
        return;
    }
    // Hold after the prompt so the caller's BYE (after 2 s) can never cross ours.
    let ivr = Ivr::start(&["--hold-after-prompt"]);
    assert_sipp_ok(&ivr, "uac_caller_bye.xml", &[]);
    let log = ivr.wait_for_log(
        &[
            "event=\"invite\"",
            "event=\"answering\"",
            "event=\"bye\"",
            "event=\"ended\" reason=caller hung up",
        ],
        LOG_WAIT,
    );
    assert!(
        !log.contains("event=\"bye_sent\""),
        "ivr sent a BYE although the caller hung up:\n{log}"
    );
}

/// CANCEL while ringing: 200 for the CANCEL, 487 for the INVITE, ACK on the INVITE's branch,
/// over UDP and TCP; the cancelled call never plays the prompt.
#[test]
fn sipp_cancel_while_ringing() {
    if !require_tool("sipp") {
        return;
    }
    for transport in ["u1", "t1"] {
        let ivr = Ivr::start(&[]);
        let run = run_sipp(&ivr, "uac_cancel.xml", &["-t", transport]);
        assert!(
            run.success(),
            "sipp uac_cancel.xml over {transport} failed ({}):\n{}\n--- ivr log:\n{}",
            run.status,
            run.errors,
            ivr.log()
        );
        let log = ivr.wait_for_log(
            &[
                "event=\"invite\"",
                "event=\"cancel\"",
                "event=\"ended\" reason=caller cancelled",
            ],
            LOG_WAIT,
        );
        assert!(
            !log.contains("event=\"prompt\""),
            "a cancelled call must not play the prompt:\n{log}"
        );
    }
}

/// Hold with a re-INVITE (a=sendonly → answered a=recvonly), resume with UPDATE (a=sendrecv),
/// then the caller's BYE; the server logs both media changes.
#[test]
fn sipp_hold_and_resume() {
    if !require_tool("sipp") {
        return;
    }
    let ivr = Ivr::start(&["--hold-after-prompt"]);
    assert_sipp_ok(&ivr, "uac_hold.xml", &[]);
    let log = ivr.wait_for_log(
        &[
            "event=\"reoffer\" hold=true",
            "event=\"reoffer\" hold=false",
            "event=\"ended\" reason=caller hung up",
        ],
        LOG_WAIT,
    );
    assert!(!log.contains(" ERROR "), "errors in ivr log:\n{log}");
}
