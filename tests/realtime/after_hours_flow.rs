//! End to end: the shipped after-hours flow on the real binary, with a sipp caller keying in the
//! procedure (5 = start a request, 1 = agree to the terms) by RFC 4733 telephone-events and by
//! SIP INFO. The time is injected with `serve --now` (a Friday night in the line's time zone), so
//! the result does not depend on when the test runs. The order of the procedure is read from the
//! call log: prompts played, digits decoded, nodes entered. The caller sends keys and no audio,
//! so at the voicemail tone it leaves no message: nothing is kept and the caller is told so.

use crate::common;

use std::time::Duration;

use common::{Ivr, manifest_dir, prompts_played, require_tool, run_sipp};

/// Friday 2026-11-27 22:30 in America/New_York (the default `[hours]` zone): after hours.
const AFTER_HOURS: &str = "2026-11-27T22:30:00-05:00";
/// Monday 2026-11-30 10:00 in New York: open.
const IN_HOURS: &str = "2026-11-30T10:00:00-05:00";

fn start_line(at: &str) -> Ivr {
    let flow = manifest_dir().join("callflows/after_hours.toml");
    // sipp sends the key presses' RFC 4733 packets and no audio, where a phone streams all
    // along: with `rtp.timeout_s` on, this minute-long call would be cut as a dead one.
    let config = common::unique_temp_dir("after-hours").join("ivr.toml");
    std::fs::write(&config, "[rtp]\ntimeout_s = 0\n").expect("write config");
    Ivr::start(&[
        "--flow",
        flow.to_str().expect("utf-8 path"),
        "--now",
        at,
        "--config",
        config.to_str().expect("utf-8 path"),
    ])
}

fn assert_subsequence(haystack: &[String], needles: &[&str], log: &str) {
    let mut it = haystack.iter();
    for n in needles {
        assert!(
            it.any(|h| h == n),
            "prompt {n} missing or out of order; played {haystack:?}\n--- log:\n{log}"
        );
    }
}

fn after_hours_call(scenario: &str, digit_source: &str, ticket: &str) {
    let ivr = start_line(AFTER_HOURS);
    let run = run_sipp(&ivr, scenario, &["-timeout", "180s"]);
    assert!(
        run.success(),
        "sipp {scenario} failed ({}):\n{}\n--- ivr log:\n{}",
        run.status,
        run.errors,
        ivr.log()
    );
    let log = ivr.wait_for_log(&["event=\"ended\""], Duration::from_secs(10));
    assert!(log.contains("open=false"), "{log}");
    let played = prompts_played(&log);
    assert_subsequence(
        &played,
        &[
            "after_hours_greeting",
            "rate_disclaimer",
            "terms",
            "connecting",
            "leave_message",
            "no_message",
            "call_again",
        ],
        &log,
    );
    assert!(!played.iter().any(|p| p == "open_hours"), "{played:?}");
    for digit in ["5", "1"] {
        let needle = format!("event=\"digit\" digit={digit} source={digit_source}");
        assert!(log.contains(&needle), "no `{needle}` in log:\n{log}");
    }
    for node in [
        "terms",
        "agreed",
        "ticket",
        "notify_request",
        "ring_desk",
        "voicemail",
        "no_message",
        "call_again",
    ] {
        assert!(
            log.contains(&format!("event=\"node\" node={node}")),
            "node {node} not entered:\n{log}"
        );
    }
    // No desk bridge yet: the dial takes the no-answer branch to the voicemail. The caller sends
    // no audio, so the recording holds no message: it is deleted, no callback is promised.
    assert!(log.contains("event=\"no_message\""), "{log}");
    assert!(!log.contains("event=\"voicemail_stored\""), "{log}");
    assert!(!played.iter().any(|p| p == "goodbye"), "{played:?}");
    let vm_dir = ivr.dir().join("data").join("voicemail");
    let wavs: Vec<_> = std::fs::read_dir(&vm_dir)
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(wavs.is_empty(), "no voicemail expected: {wavs:?}");
    // The CDR: after hours at twice the rate, terms agreed, the keys pressed, the ticket.
    let out = crate::common::db::ivr_command(&ivr.dir().join("data"))
        .args(["cdr", "export", "--data"])
        .arg(ivr.dir().join("data"))
        .output()
        .expect("ivr cdr export");
    let csv = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{csv}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().expect("header").split(',').collect();
    let row: Vec<&str> = rows.next().expect("one CDR row").split(',').collect();
    let col = |name: &str| row[header.iter().position(|h| *h == name).expect(name)];
    assert_eq!(col("after_hours"), "true", "{csv}");
    assert_eq!(
        col("rate_multiplier").parse::<f64>().ok(),
        Some(2.0),
        "{csv}"
    );
    assert_eq!(col("agreed_terms"), "true", "{csv}");
    assert_eq!(col("outcome"), "no_message", "{csv}");
    assert_eq!(col("ticket"), ticket, "{csv}");
    assert!(col("digits").starts_with("51"), "{csv}");
}

#[test]
fn after_hours_procedure_with_rfc4733_digits() {
    if !require_tool("sipp") {
        return;
    }
    after_hours_call("uac_after_hours_rfc4733.xml", "Rfc4733", "42");
}

#[test]
fn after_hours_procedure_with_sip_info_digits() {
    if !require_tool("sipp") {
        return;
    }
    after_hours_call("uac_after_hours_info.xml", "SipInfo", "");
}

#[test]
fn in_hours_the_caller_is_sent_to_the_main_line() {
    if !require_tool("sipp") {
        return;
    }
    let ivr = start_line(IN_HOURS);
    let run = run_sipp(&ivr, "uac_basic.xml", &[]);
    assert!(run.success(), "{}\n{}", run.errors, ivr.log());
    let log = ivr.wait_for_log(&["event=\"ended\""], Duration::from_secs(10));
    assert!(log.contains("open=true"), "{log}");
    assert_eq!(prompts_played(&log), vec!["open_hours"], "{log}");
}

/// Issue 12 item 19: sipp's captures played 0 to 9 into one ten-digit gather are all read. The
/// "1" capture's sequence numbers and timestamps lie below the "0" capture's on the same SSRC; its
/// first packet carries the marker bit, so it is a new key press, not a straggler.
#[test]
fn sipp_rfc4733_captures_0_to_9_are_all_read() {
    if !require_tool("sipp") {
        return;
    }
    let flow = manifest_dir().join("tests/flows/gather10.toml");
    let config = common::unique_temp_dir("captures").join("ivr.toml");
    std::fs::write(&config, "[rtp]\ntimeout_s = 0\n").expect("write config");
    let ivr = Ivr::start(&[
        "--flow",
        flow.to_str().expect("utf-8 path"),
        "--config",
        config.to_str().expect("utf-8 path"),
    ]);
    let run = run_sipp(&ivr, "uac_rfc4733_captures_0_to_9.xml", &[]);
    assert!(run.success(), "{}\n{}", run.errors, ivr.log());
    let log = ivr.wait_for_log(&["event=\"ended\""], Duration::from_secs(10));
    let digits: String = log
        .lines()
        .filter(|l| l.contains("event=\"digit\"") && l.contains("source=Rfc4733"))
        .filter_map(|l| l.split("digit=").nth(1)?.chars().next())
        .collect();
    assert_eq!(digits, "0123456789", "{log}");
}
