//! A staff call-back out through a `[[trunks]]` entry (issue 15 item 1, outbound): with
//! `[desk] callback_trunk = "carrier"` the INVITE goes to the trunk's registrar address as the
//! carrier's proxy, From the trunk's caller ID, and the carrier's 401 is answered with the
//! trunk's account (sipp checks it with `verifyauth`) before the customer answers.

use crate::common;

use std::time::Duration;

use common::staff::Staff;
use common::{Ivr, require_tool, run_sipp};

const WAIT: Duration = Duration::from_secs(40);

#[test]
fn a_call_back_through_a_trunk_answers_the_carriers_challenge() {
    if !require_tool("sipp") {
        return;
    }
    let dir = common::unique_temp_dir("trunk-callback");
    let carrier = Staff::start(&dir, "trunk_carrier_challenge.xml", 0);
    let config = format!(
        "[staff]\nalgorithms = [\"MD5\", \"SHA-256\"]\n\
         [[staff.users]]\nname = \"alice\"\npassword = \"s3cret\"\n\
         [desk]\ncallback_trunk = \"carrier\"\n\
         [[trunks]]\nname = \"carrier\"\nregistrar = \"sip:127.0.0.1:{}\"\nregister = false\n\
         username = \"acct\"\npassword = \"s3cret\"\ncaller_id = \"+442071234567\"\n",
        carrier.port
    );
    // alice is on the desk but not registered: the caller ends in voicemail.
    let ivr = Ivr::start_desk("desk.toml", &["alice".to_string()], &config);
    common::write_spoken_audio(ivr.dir());
    let caller = run_sipp(
        &ivr,
        "uac_caller_speaks_hangup.xml",
        &["-key", "caller", "+15551230003", "-d", "4000"],
    );
    assert!(caller.success(), "caller: {}\n{}", caller.errors, ivr.log());
    ivr.wait_for_log(&["event=\"voicemail_stored\""], WAIT);
    let back = common::staff::alice_calls_back(
        &ivr,
        "staff_callback.xml",
        "+15551230003",
        &["-d", "2000"],
    );
    assert!(back.success(), "call-back: {}\n{}", back.errors, ivr.log());
    carrier.assert_completed();
    let log = ivr.wait_for_log(&["event=\"callback_ended\""], WAIT);
    assert!(
        log.contains("event=\"callback_trunk\"") && log.contains("event=\"dial_leg_auth\""),
        "{log}"
    );
    // alice's phone shares the trunk's address (loopback) but proved who it is: staff, not a
    // call from the trunk.
    let alice_call = log
        .lines()
        .find(|l| l.contains("event=\"invite\"") && l.contains("from=sip:alice@"))
        .and_then(|l| l.split("call_id=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("alice's INVITE not logged: {log}"));
    assert!(
        !log.lines()
            .any(|l| l.contains("event=\"trunk_call\"")
                && l.contains(&format!("call_id={alice_call} "))),
        "{log}"
    );
}
