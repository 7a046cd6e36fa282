//! Ringing the after-hours desk end to end: `ivr` on loopback, sipp as the caller and as the
//! staff phones (answer and press 1, answer and never press, busy, never answer), the CDR read
//! back with `ivr cdr export`.

use crate::common;

use std::time::Duration;

use common::staff::Staff;
use common::{Ivr, cdr_rows, manifest_dir, require_tool, run_sipp};

const WAIT: Duration = Duration::from_secs(40);

/// `[staff]` with one user, alice, MD5 first (sipp 3.6 answers only the first challenge, MD5).
const ALICE: &str = "[staff]\nalgorithms = [\"MD5\", \"SHA-256\"]\n\
    [[staff.users]]\nname = \"alice\"\npassword = \"s3cret\"\n";

/// sipp registers alice (digest, right password) with a Contact at `port`, where the phone is.
fn register_alice(ivr: &Ivr, port: u16) {
    let port = port.to_string();
    let reg = run_sipp(
        ivr,
        "register_contact.xml",
        &[
            "-s",
            "alice",
            "-au",
            "alice",
            "-ap",
            "s3cret",
            "-key",
            "contact_port",
            &port,
        ],
    );
    assert!(reg.success(), "register: {}\n{}", reg.errors, ivr.log());
}

/// `ivr serve` with the desk group `members`, the flow `tests/flows/<flow>`, a 4 s accept
/// window, and `extra` config.
fn start_ivr(flow: &str, members: &[String], extra: &str) -> Ivr {
    let desk =
        "[desk]\naccept_timeout_s = 4\nringback = \"us\"\nring_each_s = 15\nredirect_hosts = []\n";
    Ivr::start_desk(flow, members, &format!("{extra}\n{desk}"))
}

#[test]
fn first_to_press_1_wins_and_the_other_phones_are_dropped() {
    if !require_tool("sipp") {
        return;
    }
    let dir = common::unique_temp_dir("desk-staff");
    // A answers at once but never accepts; B is busy; C rings 2 s, answers, presses 1 and
    // later hangs up; D rings for ever.
    let a = Staff::start(&dir, "staff_no_press.xml", 0);
    let b = Staff::start(&dir, "staff_busy.xml", 0);
    let c = Staff::start(&dir, "staff_accept_bye.xml", 2000);
    let d = Staff::start(&dir, "staff_never.xml", 0);
    let members = [a.uri(), b.uri(), c.uri(), d.uri()];
    let ivr = start_ivr("desk.toml", &members, "");
    // The caller stays until ivr hangs up (after C hangs up).
    let caller = run_sipp(&ivr, "uac_caller.xml", &["-key", "caller", "+15551230001"]);
    assert!(caller.success(), "caller: {}\n{}", caller.errors, ivr.log());
    let c_uri = c.uri();
    // D got CANCEL, A got BYE, B's 486 was ACKed, C's BYE was answered.
    for s in [a, b, c, d] {
        s.assert_completed();
    }
    let log = ivr.log();
    assert!(log.contains("event=\"bridged\""), "{log}");
    let cdr = ivr.final_cdr(WAIT);
    assert_eq!(cdr["outcome"], "bridged", "{cdr:?}");
    assert_eq!(cdr["answered_by"], c_uri, "{cdr:?}");
    // C stays on the call for 3 s after pressing 1.
    let talk: u64 = cdr["talk_seconds"].parse().expect("talk_seconds");
    assert!((2..=10).contains(&talk), "talk time {talk} s: {cdr:?}");
}

#[test]
fn caller_hanging_up_while_phones_ring_cancels_them_all() {
    if !require_tool("sipp") {
        return;
    }
    let dir = common::unique_temp_dir("desk-cancel");
    let a = Staff::start(&dir, "staff_never.xml", 0);
    let b = Staff::start(&dir, "staff_never.xml", 0);
    let ivr = start_ivr("desk.toml", &[a.uri(), b.uri()], "");
    let caller = run_sipp(&ivr, "uac_desk_hangup.xml", &["-d", "2500"]);
    assert!(caller.success(), "caller: {}\n{}", caller.errors, ivr.log());
    a.assert_completed();
    b.assert_completed();
    let cdr = ivr.final_cdr(WAIT);
    assert_eq!(cdr["outcome"], "abandoned", "{cdr:?}");
    assert_eq!(cdr["answered_by"], "");
}

#[test]
fn caller_hanging_up_while_bridged_hangs_up_staff() {
    if !require_tool("sipp") {
        return;
    }
    let dir = common::unique_temp_dir("desk-bridged-bye");
    let a = Staff::start(&dir, "staff_accept_wait.xml", 0);
    let a_uri = a.uri();
    let ivr = start_ivr("desk.toml", std::slice::from_ref(&a_uri), "");
    let caller = run_sipp(&ivr, "uac_desk_hangup.xml", &["-d", "6000"]);
    assert!(caller.success(), "caller: {}\n{}", caller.errors, ivr.log());
    a.assert_completed();
    let cdr = ivr.final_cdr(WAIT);
    assert_eq!(cdr["outcome"], "bridged", "{cdr:?}");
    assert_eq!(cdr["answered_by"], a_uri);
}

#[test]
fn nobody_accepting_in_turn_leads_to_voicemail() {
    if !require_tool("sipp") {
        return;
    }
    let dir = common::unique_temp_dir("desk-seq");
    // Sequential, 2 s each: A rings and is cancelled, B answers but never presses 1 (dropped
    // when the 5 s dial ends), then voicemail; the caller hangs up during the recording.
    let a = Staff::start(&dir, "staff_never.xml", 0);
    let b = Staff::start(&dir, "staff_no_press.xml", 0);
    let ivr = start_ivr("desk_sequential.toml", &[a.uri(), b.uri()], "");
    let caller = run_sipp(&ivr, "uac_desk_hangup.xml", &["-d", "9000"]);
    assert!(caller.success(), "caller: {}\n{}", caller.errors, ivr.log());
    a.assert_completed();
    b.assert_completed();
    // The caller says nothing and hangs up: no message (deleted, not a voicemail).
    let log = ivr.wait_for_log(&["event=\"no_message\""], WAIT);
    let order: Vec<usize> = [
        "event=\"dial_leg_cancel\"",
        "event=\"whisper\"",
        "event=\"recording\"",
    ]
    .iter()
    .map(|n| log.find(n).unwrap_or_else(|| panic!("{n} missing:\n{log}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{log}");
    let cdr = ivr.final_cdr(WAIT);
    assert_eq!(cdr["outcome"], "no_message", "{cdr:?}");
}

#[test]
fn a_registered_staff_phone_gets_the_call() {
    if !require_tool("sipp") {
        return;
    }
    let dir = common::unique_temp_dir("desk-registered");
    let phone = Staff::start(&dir, "staff_accept_bye.xml", 500);
    let ivr = start_ivr("desk.toml", &["alice".to_string()], ALICE);
    // Nobody registered yet: alice is skipped, the caller goes to voicemail and hangs up
    // without a word (no message).
    let early = run_sipp(&ivr, "uac_desk_hangup.xml", &["-d", "2000"]);
    assert!(early.success(), "{}", early.errors);
    ivr.wait_for_log(&["event=\"dial_skip\"", "member=alice"], WAIT);
    // A wrong password is refused and binds nothing.
    let wrong = run_sipp(
        &ivr,
        "register_wrong.xml",
        &["-s", "alice", "-au", "alice", "-ap", "not-the-password"],
    );
    assert!(wrong.success(), "{}", wrong.errors);
    // The right one binds the phone's Contact (another port: the phone itself is the UAS).
    register_alice(&ivr, phone.port);
    // Now a call reaches that contact, is accepted and bridged.
    let caller = run_sipp(&ivr, "uac_caller.xml", &["-key", "caller", "+15551230002"]);
    assert!(caller.success(), "caller: {}\n{}", caller.errors, ivr.log());
    phone.assert_completed();
    ivr.wait_for_log(&["outcome=\"bridged\""], WAIT);
    let rows = cdr_rows(&ivr.dir().join("data"));
    let outcomes: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["outcome"].as_str(), r["answered_by"].as_str()))
        .collect();
    assert_eq!(
        outcomes,
        vec![("no_message", ""), ("bridged", "alice")],
        "{rows:?}"
    );
}

#[test]
fn a_staff_phone_that_challenges_the_invite_gets_a_digest_answer() {
    if !require_tool("sipp") {
        return;
    }
    let dir = common::unique_temp_dir("desk-challenge");
    let phone = Staff::start(&dir, "staff_challenge.xml", 0);
    let ivr = start_ivr("desk.toml", &["alice".to_string()], ALICE);
    register_alice(&ivr, phone.port);
    let caller = run_sipp(&ivr, "uac_desk_hangup.xml", &["-d", "5000"]);
    assert!(caller.success(), "caller: {}\n{}", caller.errors, ivr.log());
    phone.assert_completed();
    let log = ivr.wait_for_log(&["outcome=\"bridged\""], WAIT);
    assert!(log.contains("event=\"dial_leg_auth\""), "{log}");
}

#[test]
fn a_staff_call_back_to_a_voicemail_number_stops_its_escalation() {
    if !require_tool("sipp") {
        return;
    }
    let dir = common::unique_temp_dir("desk-callback");
    // The customer's phone behind the trunk: answers and waits for the BYE.
    let customer = Staff::start(&dir, "staff_no_press.xml", 0);
    let trunk = format!("callback_trunk = \"sip:127.0.0.1:{}\"", customer.port);
    let config = format!("{ALICE}[desk]\n{trunk}\n");
    // alice is on the desk but not registered: the caller ends in voicemail.
    let ivr = Ivr::start_desk("desk.toml", &["alice".to_string()], &config);
    // The caller speaks: a silent one would leave no voicemail to call back.
    common::write_spoken_audio(ivr.dir());
    let caller = run_sipp(
        &ivr,
        "uac_caller_speaks_hangup.xml",
        &["-key", "caller", "+15551230003", "-d", "4000"],
    );
    assert!(caller.success(), "caller: {}\n{}", caller.errors, ivr.log());
    ivr.wait_for_log(&["event=\"voicemail_stored\""], WAIT);
    // A number that left no voicemail cannot be called through the line.
    let refused =
        common::staff::alice_calls_back(&ivr, "staff_callback_refused.xml", "+15559990000", &[]);
    assert!(
        refused.success(),
        "refused: {}\n{}",
        refused.errors,
        ivr.log()
    );
    // alice calls the customer back; the customer answers; alice hangs up after 2 s.
    let back = common::staff::alice_calls_back(
        &ivr,
        "staff_callback.xml",
        "+15551230003",
        &["-d", "2000"],
    );
    assert!(back.success(), "call-back: {}\n{}", back.errors, ivr.log());
    customer.assert_completed();
    let log = ivr.wait_for_log(&["event=\"callback_ended\""], WAIT);
    assert!(log.contains("voicemails_acked=1"), "{log}");
    // The helpdesk's `callback_connected` event is queued in the outbox (no URL configured here).
    let data = ivr.dir().join("data");
    let payload = common::db::value(
        &data,
        "SELECT payload FROM outbox WHERE event_type = 'callback_connected'",
    );
    assert!(
        payload.contains("+15551230003") && payload.contains("alice"),
        "{payload}"
    );
    // The voicemail counts as called back: acknowledged, its escalation timer stopped.
    let out = common::db::ivr_command(&data)
        .args(["voicemail", "list", "--data"])
        .arg(&data)
        .output()
        .expect("voicemail list");
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(list.contains("+15551230003"), "{list}");
    assert!(list.contains("outbound call to +15551230003"), "{list}");
}

/// Issue 12, item 6: in business hours a call that reached the desk is recorded as what happened
/// (`bridged`), not as `closed_hours`.
#[test]
fn a_call_bridged_in_business_hours_is_recorded_as_bridged() {
    if !require_tool("sipp") {
        return;
    }
    let dir = common::unique_temp_dir("desk-hours");
    let c = Staff::start(&dir, "staff_accept_bye.xml", 0);
    let config = dir.join("ivr.toml");
    std::fs::write(
        &config,
        format!(
            "[desk]\naccept_timeout_s = 4\nringback = \"us\"\n\
             [[desk.groups]]\nname = \"desk\"\nmembers = [{:?}]\n",
            c.uri()
        ),
    )
    .expect("write config");
    let flow = manifest_dir().join("tests/flows/desk.toml");
    // Wednesday 10:00 in New York (the default time zone and hours): open.
    let ivr = Ivr::start(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--flow",
        flow.to_str().expect("utf-8"),
        "--now",
        "2026-12-02T15:00:00Z",
    ]);
    let caller = run_sipp(&ivr, "uac_caller.xml", &["-key", "caller", "+15551230009"]);
    assert!(caller.success(), "caller: {}\n{}", caller.errors, ivr.log());
    let c_uri = c.uri();
    c.assert_completed();
    let cdr = ivr.final_cdr(WAIT);
    assert_eq!(cdr["after_hours"], "false", "{cdr:?}");
    assert_eq!(cdr["outcome"], "bridged", "{cdr:?}");
    assert_eq!(cdr["answered_by"], c_uri, "{cdr:?}");
}
