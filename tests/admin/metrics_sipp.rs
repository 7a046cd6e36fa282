//! `GET /metrics` against a call made by a third-party SIP client: sipp places the call, sends
//! the ten RFC 4733 digits of the captures sipp ships and its audio, and the flow hangs up. The
//! scrape (parsed as Prometheus text) must count that call, its SIP traffic, its digits by method
//! and its media, and nothing else.

use crate::admin_support;
use crate::common;

use std::time::Duration;

use admin_support::{metric, scrape};
use common::{Ivr, manifest_dir, require_tool, run_sipp};

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_a_sipp_call_its_digits_and_its_media() {
    if !require_tool("sipp") {
        return;
    }
    let flow = manifest_dir().join("tests/flows/gather10.toml");
    let config = common::unique_temp_dir("metrics-sipp").join("ivr.toml");
    std::fs::write(&config, "[rtp]\ntimeout_s = 0\n").expect("write config");
    let ivr = Ivr::start(&[
        "--flow",
        flow.to_str().expect("utf-8 path"),
        "--config",
        config.to_str().expect("utf-8 path"),
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = ivr.admin_addr();
    let before = scrape(admin).await;
    assert_eq!(metric(&before, "ivr_calls_total", &[]), 0.0);
    assert_eq!(metric(&before, "ivr_dtmf_digits_total", &[]), 0.0);
    assert_eq!(metric(&before, "ivr_rtp_packets_total", &[]), 0.0);

    let (ivr, run) = tokio::task::spawn_blocking(move || {
        let run = run_sipp(&ivr, "uac_rfc4733_captures_0_to_9.xml", &[]);
        (ivr, run)
    })
    .await
    .expect("sipp task");
    assert!(run.success(), "{}\n{}", run.errors, ivr.log());
    ivr.wait_for_log(&["event=\"ended\""], Duration::from_secs(10));
    // The call's end is counted just after its record is written.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let after = loop {
        let s = scrape(admin).await;
        if metric(&s, "ivr_calls_total", &[]) >= 1.0 || std::time::Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = ivr.log();
    let n = |name: &str, labels: &[(&str, &str)]| metric(&after, name, labels);
    assert_eq!(n("ivr_calls_total", &[]), 1.0, "{log}");
    assert_eq!(n("ivr_calls_active", &[]), 0.0);
    // The flow hangs up after the tenth digit: sipp sent INVITE and ACK, ivr sent the BYE.
    for (dir, method, count) in [
        ("in", "INVITE", 1.0),
        ("in", "ACK", 1.0),
        ("out", "BYE", 1.0),
    ] {
        let got = n(
            "ivr_sip_requests_total",
            &[("direction", dir), ("method", method)],
        );
        assert_eq!(got, count, "{method} {dir}");
    }
    assert!(
        n(
            "ivr_sip_responses_total",
            &[("direction", "out"), ("code", "200")]
        ) >= 1.0
    );
    assert!(
        n(
            "ivr_sip_responses_total",
            &[("direction", "in"), ("code", "200")]
        ) >= 1.0
    );
    assert_eq!(
        n("ivr_dtmf_digits_total", &[("method", "rfc4733")]),
        10.0,
        "the ten digits of the capture, each counted once"
    );
    assert_eq!(n("ivr_dtmf_digits_total", &[("method", "info")]), 0.0);
    assert!(
        n("ivr_rtp_packets_total", &[("direction", "in")]) > 50.0,
        "sipp's capture is seconds of packets"
    );
    assert!(n("ivr_rtp_packets_total", &[("direction", "out")]) > 0.0);
    assert_eq!(
        n("ivr_rtp_jitter_seconds", &[]),
        1.0,
        "one call's jitter observed"
    );
}
