//! Outage announcements (issue 14): Alertmanager's webhook on a real `ivr serve` through real
//! HTTP, and `ivr incident set/list/clear` as the real binary; effects are checked as rows in
//! the SQLite file.

use crate::admin_support;
use crate::common;

use std::path::Path;
use std::process::Output;

use admin_support::{client, start, url};
use common::{prompts_played, unique_temp_dir};
use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;

const SECRET: &str = "am-s3cret";

/// A payload as Alertmanager 0.27 sends it (webhook version 4), one alert with `status`.
fn payload(status: &str, ends_at: &str) -> String {
    format!(
        r#"{{
  "receiver": "ivr",
  "status": "{status}",
  "alerts": [
    {{
      "status": "{status}",
      "labels": {{"alertname": "MailDown", "service": "email", "severity": "critical"}},
      "annotations": {{"summary": "IMAP is not answering"}},
      "startsAt": "2026-03-02T09:58:00.000Z",
      "endsAt": "{ends_at}",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=up%3D%3D0",
      "fingerprint": "c0ffee1234567890"
    }}
  ],
  "groupLabels": {{"alertname": "MailDown"}},
  "commonLabels": {{"alertname": "MailDown", "service": "email"}},
  "commonAnnotations": {{"summary": "IMAP is not answering"}},
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{{}}:{{alertname=\"MailDown\"}}",
  "truncatedAlerts": 0
}}"#
    )
}

/// (source, key, labels, summary, resolved) of every incident, from the line's store.
fn incidents(data: &Path) -> Vec<(String, String, String, String, bool)> {
    common::db::rows(
        data,
        "SELECT source, key, labels, summary, resolved_at FROM incidents ORDER BY id",
    )
    .into_iter()
    .map(|r| {
        let [source, key, labels, summary, resolved] =
            <[Option<String>; 5]>::try_from(r).expect("5 columns");
        let text = |v: Option<String>| v.expect("not NULL");
        (
            text(source),
            text(key),
            text(labels),
            text(summary),
            resolved.is_some(),
        )
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_firing_sets_and_resolved_clears_an_incident() {
    let dir = unique_temp_dir("incidents-am");
    let data = dir.join("data");
    let ivr = start(
        &dir,
        &data,
        &format!("[incidents]\nalertmanager_secret = \"{SECRET}\"\n"),
    );
    let hook = url(ivr.admin_addr(), "/hooks/alertmanager");
    let http = client();
    let post = |auth: Option<String>, body: String| {
        let mut req = http.post(&hook).body(body);
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a);
        }
        req.send()
    };
    let bearer = || Some(format!("Bearer {SECRET}"));
    let firing = payload("firing", "0001-01-01T00:00:00Z");

    for auth in [
        None,
        Some("Bearer wrong".to_string()),
        Some(SECRET.to_string()),
    ] {
        let resp = post(auth.clone(), firing.clone()).await.expect("post");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    assert!(incidents(&data).is_empty(), "refused posts change nothing");

    let resp = post(bearer(), "{\"version\":\"4\",\"alerts\":[".into())
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = resp.text().await.expect("body");
    assert!(
        body.contains("not an Alertmanager webhook payload"),
        "{body}"
    );

    let resp = post(bearer(), firing.clone()).await.expect("post");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        incidents(&data),
        [(
            "alertmanager".to_string(),
            "c0ffee1234567890".to_string(),
            r#"{"alertname":"MailDown","service":"email","severity":"critical"}"#.to_string(),
            "IMAP is not answering".to_string(),
            false
        )]
    );
    // Re-sent (repeat_interval): still one row.
    let resp = post(bearer(), firing).await.expect("post");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(incidents(&data).len(), 1);

    let resp = post(bearer(), payload("resolved", "2026-03-02T10:30:00Z"))
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::OK);
    let rows = incidents(&data);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].4, "resolved: {rows:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_hook_without_a_secret_says_how_to_configure_it() {
    let dir = unique_temp_dir("incidents-off");
    let data = dir.join("data");
    let ivr = start(&dir, &data, "");
    let resp = client()
        .post(url(ivr.admin_addr(), "/hooks/alertmanager"))
        .header(AUTHORIZATION, "Bearer ")
        .body(payload("firing", "0001-01-01T00:00:00Z"))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = resp.text().await.expect("body");
    assert!(body.contains("[incidents] alertmanager_secret"), "{body}");
    assert!(incidents(&data).is_empty());
}

/// `ivr args` on the store of the `--data` directory they name.
fn ivr(args: &[&str]) -> Output {
    common::db::ivr_with_args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run ivr")
}

#[test]
fn cli_sets_lists_and_clears_an_incident() {
    let dir = unique_temp_dir("incidents-cli");
    let data = dir.join("data");
    // A database to work on, as `ivr serve` leaves it.
    common::db::with_store_of(&data, |_| ());
    let d = data.to_str().expect("utf-8");
    let out = ivr(&[
        "incident",
        "set",
        "mail",
        "--label",
        "service=email",
        "--summary",
        "IMAP down",
        "--for",
        "2h",
        "--data",
        d,
        "--now",
        "2026-03-02T10:00:00Z",
    ]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("active until 2026-03-02T12:00:00Z"), "{said}");
    let rows = incidents(&data);
    assert_eq!(
        rows,
        [(
            "cli".to_string(),
            "mail".to_string(),
            r#"{"service":"email"}"#.to_string(),
            "IMAP down".to_string(),
            false
        )]
    );

    let list = ivr(&[
        "incident",
        "list",
        "--data",
        d,
        "--now",
        "2026-03-02T11:00:00Z",
    ]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("cli\tmail\tservice=email\t2026-03-02T10:00:00Z\tactive until 2026-03-02T12:00:00Z\tIMAP down"),
        "{text}"
    );

    let bad = ivr(&["incident", "set", "x", "--label", "service", "--data", d]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("expected NAME=VALUE"),
        "{bad:?}"
    );

    let out = ivr(&["incident", "clear", "mail", "--data", d]);
    assert!(out.status.success(), "{out:?}");
    assert!(incidents(&data)[0].4, "resolved in the file");
    let again = ivr(&["incident", "clear", "mail", "--data", d]);
    assert!(!again.status.success(), "nothing left to clear: {again:?}");
    let list = ivr(&["incident", "list", "--data", d]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("\tresolved "));
}

#[test]
fn a_call_during_an_incident_hears_its_prompt_and_one_after_it_does_not() {
    if !common::require_tool("sipp") {
        return;
    }
    let config = unique_temp_dir("incident-call").join("ivr.toml");
    std::fs::write(
        &config,
        "[rtp]\ntimeout_s = 0\n[[incidents.prompts]]\nlabel = \"service\"\nvalue = \"web\"\n\
         prompt = \"goodbye\"\n[[incidents.prompts]]\nlabel = \"service\"\nvalue = \"email\"\n\
         prompt = \"incident_email\"\n",
    )
    .expect("write config");
    let flow = common::manifest_dir().join("tests/flows/incident.toml");
    let line = common::Ivr::start(&[
        "--flow",
        flow.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    let data = line.dir().join("data");
    let d = data.to_str().expect("utf-8");
    let set = ivr(&[
        "incident",
        "set",
        "mail",
        "--label",
        "service=email",
        "--data",
        d,
    ]);
    assert!(set.status.success(), "{set:?}");

    let run = common::run_sipp(&line, "uac_basic.xml", &[]);
    assert!(run.success(), "{}\n{}", run.errors, line.log());
    let log = line.wait_for_log(&["event=\"ended\""], std::time::Duration::from_secs(10));
    assert_eq!(prompts_played(&log), ["incident_email"], "{log}");

    let cleared = ivr(&["incident", "clear", "mail", "--data", d]);
    assert!(cleared.status.success(), "{cleared:?}");
    let run = common::run_sipp(&line, "uac_basic.xml", &[]);
    assert!(run.success(), "{}\n{}", run.errors, line.log());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while line.log().matches("event=\"ended\"").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", line.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        prompts_played(&line.log()),
        ["incident_email", "goodbye"],
        "{}",
        line.log()
    );

    let cdrs = common::cdr_rows(&data);
    let heard: Vec<&str> = cdrs.iter().map(|r| r["incident"].as_str()).collect();
    assert_eq!(heard, ["mail", ""], "{cdrs:?}");
}

#[test]
fn check_refuses_an_incident_prompt_without_a_file() {
    let dir = unique_temp_dir("incidents-check");
    let config = dir.join("ivr.toml");
    let prompts = common::manifest_dir().join("prompts");
    let flow = common::manifest_dir().join("tests/flows/incident.toml");
    let write = |prompt: &str| {
        std::fs::write(
            &config,
            format!(
                "[[incidents.prompts]]\nlabel = \"service\"\nvalue = \"email\"\nprompt = \"{prompt}\"\n"
            ),
        )
        .expect("write config")
    };
    let check = || {
        ivr(&[
            "check",
            flow.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
            "--prompts",
            prompts.to_str().expect("utf-8"),
        ])
    };
    write("incident_mail");
    let out = check();
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "[[incidents.prompts]] service = \"email\": prompt `incident_mail` has no file"
        ),
        "{err}"
    );
    write("incident_email");
    let out = check();
    assert!(out.status.success(), "{out:?}");
}

/// The announcement as the caller receives it: every RTP sample of the call's first
/// `incident_email.wav` frames equals the WAV through PCMU.
#[test]
fn the_announcement_reaches_the_caller_sample_for_sample() {
    use ivr::media::g711::Codec;
    use ivr::media::prompt::Prompt;
    const FRAME: usize = 160;
    let wav = common::manifest_dir().join("prompts/incident_email.wav");
    let prompt = Prompt::load(&wav).expect("incident_email.wav loads");
    let config = unique_temp_dir("incident-rtp").join("ivr.toml");
    std::fs::write(
        &config,
        "[rtp]\ntimeout_s = 0\n[[incidents.prompts]]\nlabel = \"service\"\nvalue = \"email\"\n\
         prompt = \"incident_email\"\n",
    )
    .expect("write config");
    let flow = common::manifest_dir().join("tests/flows/incident.toml");
    let line = common::Ivr::start(&[
        "--flow",
        flow.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    let d = line.dir().join("data");
    let set = ivr(&[
        "incident",
        "set",
        "mail",
        "--label",
        "service=email",
        "--data",
        d.to_str().expect("utf-8"),
    ]);
    assert!(set.status.success(), "{set:?}");

    let ua = common::UdpUa::new(line.sip_addr());
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind RTP");
    rtp.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .expect("timeout");
    let ids = common::CallIds::new();
    let port = rtp.local_addr().expect("addr").port();
    common::place_call(
        &ua,
        &ids,
        &common::sdp_offer(port, "0"),
        std::time::Duration::from_secs(10),
    );
    let frames = prompt.samples.len().div_ceil(FRAME);
    let mut received = Vec::new();
    let mut buf = [0u8; 2048];
    for i in 0..frames {
        let n = rtp.recv(&mut buf).unwrap_or_else(|e| {
            panic!("RTP stopped at packet {i} of {frames}: {e}\n{}", line.log())
        });
        let pkt = ivr::media::rtp::parse(&buf[..n]).expect("RTP");
        Codec::Pcmu.decode(&pkt.payload, &mut received);
    }
    let mut coded = Vec::new();
    Codec::Pcmu.encode(&prompt.samples, &mut coded);
    let mut expected = Vec::new();
    Codec::Pcmu.decode(&coded, &mut expected);
    assert_eq!(
        received[..expected.len()],
        expected[..],
        "the caller did not receive incident_email.wav"
    );
    let bye = ua.expect_request(&ids.call_id, "BYE", std::time::Duration::from_secs(10));
    ua.send(common::ok_for(&bye));
}

#[test]
fn simulate_plays_the_incident_prompt_with_incident() {
    let flow = common::manifest_dir().join("tests/flows/incident.toml");
    let prompts = common::manifest_dir().join("prompts");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "simulate",
            flow.to_str().expect("utf-8"),
            "--prompts",
            prompts.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(extra);
        let out = ivr(&args);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let during = run(&["--incident", "incident_email"]);
    assert!(during.contains("facts: incident.active"), "{during}");
    assert!(during.contains("play incident_email"), "{during}");
    let after = run(&[]);
    assert!(
        after.contains("play goodbye") && !after.contains("incident_email"),
        "{after}"
    );
}
