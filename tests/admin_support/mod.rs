//! Shared by the admin HTTP tests: a seeded data directory, `ivr serve` with an admin token,
//! and small HTTP and store helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{Ivr, manifest_dir};
use ivr::store::{CallStart, Cdr, EventKind, NewVoicemail, OutboxEvent, Outcome, Store, Target};
use jiff::Timestamp;

pub const TOKEN: &str = "test-admin-token-0123456789";

/// `ivr admin hash-token` with `token` on stdin.
pub fn hash_token(token: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ivr"))
        .args(["admin", "hash-token"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ivr admin hash-token");
    writeln!(child.stdin.take().expect("stdin"), "{token}").expect("write token");
    let out = child.wait_with_output().expect("hash-token output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// A data directory with one voicemail (its WAV a real prompt file) and one failed outbox event
/// retried only next year. Returns (data dir, WAV path, voicemail id, outbox id).
pub fn seeded(dir: &Path) -> (PathBuf, PathBuf, i64, i64) {
    let data = dir.join("data");
    let wav = dir.join("message.wav");
    std::fs::copy(crate::common::greeting_path(), &wav).expect("copy a WAV");
    let (vm, event) = crate::common::db::with_store_of(&data, |store| {
        let now = Timestamp::now();
        let vm = store
            .add_voicemail(
                &NewVoicemail {
                    call_id: "vm-call".into(),
                    caller: "+15550100".into(),
                    client: Some("Acme <Corp>".into()),
                    ticket: Some("T-7".into()),
                    path: wav.clone(),
                    duration_ms: 4200,
                    created_at: now,
                },
                now + jiff::SignedDuration::from_mins(20),
            )
            .expect("voicemail");
        let event = store
            .enqueue(&OutboxEvent {
                kind: EventKind::CallEnded,
                call_id: Some("vm-call".into()),
                target: Target::Primary,
                payload: serde_json::json!({"event": "call_ended"}),
                occurred_at: now,
            })
            .expect("enqueue");
        for (id, client, outcome, day) in [
            ("c-acme-vm", Some("Acme"), Outcome::Voicemail, "2026-11-02"),
            ("c-acme-br", Some("Acme"), Outcome::Bridged, "2026-11-03"),
            ("c-none-ab", None, Outcome::Abandoned, "2026-11-04"),
        ] {
            record_call(store, id, client, outcome, day);
        }
        let next_year = now + jiff::SignedDuration::from_hours(24 * 365);
        store
            .mark_attempt_failed(event, next_year, "connection refused (seeded)")
            .expect("fail");
        (vm, event)
    });
    (data, wav, vm, event)
}

/// A whole call started at 22:00 UTC on `day`.
pub fn record_call(store: &dyn Store, id: &str, client: Option<&str>, outcome: Outcome, day: &str) {
    let started: Timestamp = format!("{day}T22:00:00Z").parse().expect("time");
    let caller = ivr::repeat::normalise("+15550199", Some("1"));
    store
        .call_started(&CallStart {
            call_id: id.into(),
            caller: caller.clone(),
            caller_raw: "+15550199".into(),
            called: "100".into(),
            client: client.map(String::from),
            started_at: started,
            after_hours: true,
            agreement: false,
            rate_multiplier: 2.0,
            repeat_rule: std::sync::Arc::new(ivr::repeat::RepeatPolicy::default()),
            node: "test-node".into(),
        })
        .expect("start");
    store
        .call_ended(&Cdr {
            call_id: id.into(),
            caller: caller.as_str().into(),
            caller_raw: "+15550199".into(),
            called: "100".into(),
            client: client.map(String::from),
            started_at: started,
            answered_at: Some(started),
            ended_at: Some(started + jiff::SignedDuration::from_secs(60)),
            talk_seconds: 0,
            after_hours: true,
            agreement: false,
            rate_multiplier: 2.0,
            agreed_terms: true,
            digits: "=1+2".into(),
            ticket: None,
            outcome: Some(outcome),
            end_reason: "BYE from caller".into(),
            repeat: false,
            answered_by: None,
            incident: None,
        })
        .expect("end");
}

/// `ivr serve` on the seeded data with `[admin] token_hash` and a webhook URL nobody listens on.
pub fn start(dir: &Path, data: &Path, extra_config: &str) -> Ivr {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let config = dir.join("ivr.toml");
    std::fs::write(
        &config,
        format!("[webhooks]\nurl = \"http://127.0.0.1:{port}/hook\"\n{extra_config}"),
    )
    .expect("write config");
    let flow = manifest_dir().join("tests/flows/greeting.toml");
    Ivr::serve_files(dir, &config, data, Some(&flow), &["--admin", "127.0.0.1:0"])
}

pub fn client() -> reqwest::Client {
    // ivr builds reqwest with rustls but without a default crypto provider (its webhook client
    // brings its own, src/notify/tls.rs); a client built without one would panic.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

pub async fn json(resp: reqwest::Response) -> serde_json::Value {
    let status = resp.status();
    let body = resp.bytes().await.expect("body");
    serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{status}: not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })
}

/// `ivr voicemail list --data` output.
pub fn voicemail_list(data: &Path) -> String {
    let out = crate::common::db::ivr_command(data)
        .args(["voicemail", "list", "--data"])
        .arg(data)
        .output()
        .expect("run ivr voicemail list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (attempts, next_attempt_at ms, last_error) of outbox row `id`, from the line's store.
pub fn outbox_row(data: &Path, id: i64) -> (u32, i64, Option<String>) {
    let rows = crate::common::db::rows(
        data,
        &format!("SELECT attempts, next_attempt_at, last_error FROM outbox WHERE id = {id}"),
    );
    let [attempts, next, error] =
        <[Option<String>; 3]>::try_from(rows.into_iter().next().expect("outbox row"))
            .expect("three columns");
    let number = |v: Option<String>| v.expect("not NULL").parse().expect("a number");
    (number(attempts) as u32, number(next), error)
}

/// `GET /metrics` on a loopback admin listener (no token), parsed as Prometheus text: a body
/// the parser refuses fails the test.
pub async fn scrape(admin: SocketAddr) -> prometheus_parse::Scrape {
    let resp = client()
        .get(url(admin, "/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(
        resp.status(),
        reqwest::StatusCode::OK,
        "a loopback scrape needs no token"
    );
    let text = resp.text().await.expect("body");
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text")
}

/// The sum of `name`'s samples whose labels include `labels` (a histogram: its count).
pub fn metric(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    use prometheus_parse::Value;
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            _ => 0.0,
        })
        .sum()
}
