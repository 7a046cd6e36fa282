//! Call memory end to end, on the real binary: repeat callers, CDR billing rows, voicemails whose
//! samples are checked against what a sipp caller streamed, recordings ended by `#` and by
//! silence, a SIGKILL mid-recording with crash recovery and the durable webhook outbox, and a data
//! directory the line cannot write.
//!
//! Each test starts its own `ivr serve` (its own temp dir, data dir, config file and free ports on
//! 127.0.0.1) with `--now` on a Friday night, so every call is after hours. Webhooks go to a small
//! HTTP/1.1 receiver on a thread of this test, which records every request and answers 200; the
//! signatures are checked with an HMAC computed here. Callers are sipp scenarios in `tests/sipp/`
//! whose From user is `-key caller NUMBER`; audio is a raw PCMU file this test writes (with the
//! crate's own G.711 encoder) into the directory sipp runs in.

use super::line::{AFTER_HOURS, Line};
use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::hook::{Hook, Hooked};
use common::{cdr_rows, prompts_played, require_tool, unique_temp_dir};
use hmac::{Hmac, KeyInit, Mac};
use ivr::media::g711::Codec;
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "s3cret";
/// Generous waits for things that happen asynchronously (never timed assertions).
const WAIT: Duration = Duration::from_secs(30);
/// 160 samples = one 20 ms G.711 packet.
const FRAME: usize = 160;
/// The file name the voicemail scenarios stream (relative to sipp's working directory: sipp does
/// not expand `-key` values inside `rtp_stream`).
const CALLER_AUDIO: &str = "caller_audio.ulaw";

// ---------------------------------------------------------------------------------------------
// A temp dir kept for a post-mortem when the test fails.

struct TestDir(PathBuf);

impl TestDir {
    fn new(label: &str) -> TestDir {
        TestDir(unique_temp_dir(label))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("memory_e2e test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn webhook_config(port: u16, extra: &str) -> String {
    format!(
        "[call]\nring_ms = 0\n\n[webhooks]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"{SECRET}\"\n\n{extra}"
    )
}

/// A port nothing listens on right now (bound and released).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The signature, computed here from the documented recipe (not with `ivr::notify::verify`):
/// `sha256=hex(HMAC-SHA256(secret, "<X-Ivr-Timestamp>.<body>"))`, timestamp near our clock.
fn assert_signed(r: &Hooked) {
    let ts = r.header("x-ivr-timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        r.header("x-ivr-signature"),
        expected,
        "bad signature on {}",
        String::from_utf8_lossy(&r.body)
    );
    let sent: i64 = ts.parse().expect("X-Ivr-Timestamp is Unix seconds");
    let now = jiff::Timestamp::now().as_second();
    assert!(
        (sent - now).abs() < 300,
        "timestamp {sent} far from now {now}"
    );
    assert_eq!(r.header("x-ivr-event"), r.event());
    assert_eq!(r.json()["id"].as_i64(), Some(r.delivery()));
}

/// Every request signed, each delivery id once, and per call the events in queue order.
fn deliveries_by_call(reqs: &[Hooked]) -> BTreeMap<String, Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut by_call: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for r in reqs {
        assert_signed(r);
        assert!(seen.insert(r.delivery()), "delivery {} twice", r.delivery());
        // Sent whenever the transcription worker finishes, which may be before or after the
        // call ends; tests/helpdesk/transcription.rs checks it.
        if r.event() == "voicemail_transcribed" {
            continue;
        }
        by_call
            .entry(r.call_id())
            .or_default()
            .push((r.delivery(), r.event()));
    }
    by_call
        .into_iter()
        .map(|(call, evs)| {
            assert!(
                evs.windows(2).all(|w| w[0].0 < w[1].0),
                "call {call}: delivered out of queue order: {evs:?}"
            );
            (call, evs.into_iter().map(|(_, e)| e).collect())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// CLI helpers.

fn ivr_cli(args: &[&str], data: &Path) -> String {
    let out = crate::common::db::ivr_command(data)
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run ivr");
    assert!(
        out.status.success(),
        "ivr {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn col<'a>(rows: &'a [HashMap<String, String>], name: &str) -> Vec<&'a str> {
    rows.iter().map(|r| r[name].as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// Audio: what the caller says, and what the voicemail holds.

/// `voice_s` seconds of a 440 Hz + 1 kHz mix under a slow envelope with a little deterministic
/// noise (so no two 20 ms frames are alike), then `silence_s` seconds of digital silence.
fn caller_signal(voice_s: usize, silence_s: usize) -> Vec<i16> {
    let mut seed: u32 = 0x2545_f491;
    let tau = std::f64::consts::TAU;
    let mut out: Vec<i16> = (0..voice_s * 8000)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let envelope = 0.65 + 0.35 * (tau * 0.7 * t).sin();
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = f64::from((seed >> 16) % 601) - 300.0;
            let tone = 5000.0 * (tau * 440.0 * t).sin() + 2500.0 * (tau * 1000.0 * t).sin();
            (envelope * tone + noise) as i16
        })
        .collect();
    out.resize(out.len() + silence_s * 8000, 0);
    out
}

/// Writes `signal` as raw PCMU where the scenarios stream it from; returns what the far end
/// decodes (the reference every recorded sample must equal).
fn write_caller_audio(dir: &Path, signal: &[i16]) -> Vec<i16> {
    let mut ulaw = Vec::new();
    Codec::Pcmu.encode(signal, &mut ulaw);
    assert_eq!(ulaw.len() % FRAME, 0, "whole packets only");
    std::fs::write(dir.join(CALLER_AUDIO), &ulaw).expect("write caller audio");
    let mut decoded = Vec::new();
    Codec::Pcmu.decode(&ulaw, &mut decoded);
    decoded
}

/// The single voicemail WAV in `data/voicemail`.
fn the_voicemail(data: &Path) -> PathBuf {
    let dir = data.join("voicemail");
    let wavs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    assert_eq!(wavs.len(), 1, "one voicemail expected: {wavs:?}");
    wavs.into_iter().next().expect("one")
}

/// Reads a voicemail: 8 kHz mono 16-bit PCM, every sample readable.
fn read_wav(path: &Path) -> Vec<i16> {
    let mut reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{} is not a valid WAV: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(
        (
            spec.sample_rate,
            spec.channels,
            spec.bits_per_sample,
            spec.sample_format
        ),
        (8000, 1, 16, hound::SampleFormat::Int),
        "{}",
        path.display()
    );
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The header accounts for exactly the audio in the file.
    let len = std::fs::metadata(path).expect("metadata").len();
    assert_eq!(
        len,
        44 + 2 * samples.len() as u64,
        "{}: header and length disagree",
        path.display()
    );
    samples
}

/// Every recorded 160-sample frame equals the decoded source at consecutive frame positions,
/// starting where the first recorded frame sits in the source. Returns that start (in samples).
fn assert_frames_match(recorded: &[i16], source: &[i16]) -> usize {
    assert!(!recorded.is_empty(), "empty recording");
    assert_eq!(recorded.len() % FRAME, 0, "recording is whole 20 ms frames");
    let first = &recorded[..FRAME];
    let starts: Vec<usize> = (0..=source.len() - FRAME)
        .filter(|&i| &source[i..i + FRAME] == first)
        .collect();
    assert_eq!(
        starts.len(),
        1,
        "the first recorded frame must occur exactly once in the source: {starts:?}"
    );
    let start = starts[0];
    assert_eq!(start % FRAME, 0, "packets start on frame boundaries");
    assert!(
        start + recorded.len() <= source.len(),
        "recording ({} samples from {start}) runs past the source ({})",
        recorded.len(),
        source.len()
    );
    for (k, frame) in recorded.chunks(FRAME).enumerate() {
        let at = start + k * FRAME;
        assert!(
            frame == &source[at..at + FRAME],
            "recorded frame {k} differs from source frame at sample {at} (lost, reordered or altered audio)"
        );
    }
    start
}

fn voicemail_log_line(log: &str) -> &str {
    log.lines()
        .find(|l| l.contains("event=\"recorded\""))
        .unwrap_or_else(|| panic!("no voicemail saved; log:\n{log}"))
}

fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {v}"))
}

fn incoming_call_id(log: &str) -> String {
    log.lines()
        .find(|l| l.contains("event=\"invite\""))
        .and_then(|l| l.split("call_id=").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no incoming call in log:\n{log}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// 1. Repeat callers and CDR billing.

#[test]
fn repeat_caller_twice_in_a_row() {
    if !require_tool("sipp") {
        return;
    }
    let dir = TestDir::new("mem-repeat");
    let data = dir.path().join("data");
    let hook = Hook::start(0);
    let line = Line::start(
        dir.path(),
        &data,
        "hangup.toml",
        &webhook_config(hook.port(), ""),
        "ivr",
    );
    // The same number twice in a row (the second time in national form: E.164-normalised to the
    // same caller), another number, then the first again (not "in a row" any more).
    let callers = ["+15551230001", "5551230001", "+15559870002", "+15551230001"];
    for (i, caller) in callers.iter().enumerate() {
        line.call("uac_caller.xml", caller, dir.path(), &format!("call{i}"));
    }
    let reqs = hook.wait_until("4 call_ended", |r| {
        r.iter().filter(|r| r.event() == "call_ended").count() == 4
    });

    let rows = cdr_rows(&data);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(
        col(&rows, "caller"),
        [
            "+15551230001",
            "+15551230001",
            "+15559870002",
            "+15551230001"
        ]
    );
    assert_eq!(col(&rows, "repeat"), ["false", "true", "false", "false"]);
    assert_eq!(col(&rows, "after_hours"), ["true"; 4]);
    assert_eq!(col(&rows, "client"), [""; 4]);
    assert_eq!(col(&rows, "agreement"), ["false"; 4]);
    assert_eq!(col(&rows, "rate_multiplier"), ["2"; 4]);
    assert_eq!(col(&rows, "outcome"), ["abandoned"; 4]);
    for r in &rows {
        assert!(
            !r["answered_at"].is_empty() && !r["ended_at"].is_empty(),
            "{r:?}"
        );
    }

    // Webhooks: signed, once each, per call in order; repeat_caller once, for the second call.
    let by_call = deliveries_by_call(&reqs);
    let call_ids = col(&rows, "call_id");
    assert_eq!(by_call.len(), 4, "{by_call:?}");
    for (i, id) in call_ids.iter().enumerate() {
        let expected: &[&str] = if i == 1 {
            &["call_started", "repeat_caller", "call_ended"]
        } else {
            &["call_started", "call_ended"]
        };
        assert_eq!(by_call[*id], expected, "call {i} ({id})");
    }
    let repeat = hook.named("repeat_caller");
    assert_eq!(repeat.len(), 1);
    let body = repeat[0].json();
    assert_eq!(body["call_id"], call_ids[1]);
    assert_eq!(body["data"]["caller"], "+15551230001");
    assert_eq!(body["data"]["calls_in_window"], 2);
    assert_eq!(
        ts(&body["data"]["previous_call_at"]),
        rows[0]["started_at"].parse::<jiff::Timestamp>().unwrap()
    );
    for started in hook.named("call_started") {
        let b = started.json();
        let i = call_ids.iter().position(|c| b["call_id"] == *c).unwrap();
        assert_eq!(b["data"]["caller"], rows[i]["caller"]);
        assert_eq!(b["data"]["repeat"], i == 1);
        assert_eq!(b["data"]["after_hours"], true);
    }
    for ended in hook.named("call_ended") {
        let cdr = &ended.json()["data"]["cdr"];
        let i = call_ids.iter().position(|c| cdr["call_id"] == *c).unwrap();
        assert_eq!(cdr["repeat"], i == 1);
        assert_eq!(cdr["rate_multiplier"], 2.0);
    }
    drop(line);
}

#[test]
fn clients_agreements_and_anonymous_callers_in_the_cdr() {
    if !require_tool("sipp") {
        return;
    }
    let dir = TestDir::new("mem-clients");
    let data = dir.path().join("data");
    let hook = Hook::start(0);
    let clients = r#"
[[clients]]
name = "Acme"
numbers = ["+1555123*"]
agreement = true
rate_multiplier = 1.5

[[clients]]
name = "Globex"
numbers = ["+1555987*"]
agreement = false
"#;
    let line = Line::start(
        dir.path(),
        &data,
        "hangup.toml",
        &webhook_config(hook.port(), clients),
        "ivr",
    );
    let callers = [
        "+15551230001", // Acme, agreement at 1.5
        "+15559870002", // Globex, no agreement: the after-hours default
        "anonymous",
        "anonymous",    // twice in a row, yet never a repeat
        "+15550000003", // nobody's client
    ];
    for (i, caller) in callers.iter().enumerate() {
        line.call("uac_caller.xml", caller, dir.path(), &format!("call{i}"));
    }
    let reqs = hook.wait_until("5 call_ended", |r| {
        r.iter().filter(|r| r.event() == "call_ended").count() == 5
    });
    let rows = cdr_rows(&data);
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(
        col(&rows, "caller"),
        [
            "+15551230001",
            "+15559870002",
            "anonymous",
            "anonymous",
            "+15550000003"
        ]
    );
    assert_eq!(col(&rows, "client"), ["Acme", "Globex", "", "", ""]);
    assert_eq!(
        col(&rows, "agreement"),
        ["true", "false", "false", "false", "false"]
    );
    assert_eq!(col(&rows, "rate_multiplier"), ["1.5", "2", "2", "2", "2"]);
    assert_eq!(col(&rows, "repeat"), ["false"; 5]);
    assert!(hook.named("repeat_caller").is_empty());
    let by_call = deliveries_by_call(&reqs);
    assert!(
        by_call
            .values()
            .all(|evs| evs == &["call_started", "call_ended"]),
        "{by_call:?}"
    );
    let acme = hook
        .named("call_started")
        .into_iter()
        .find(|r| r.json()["data"]["caller"] == "+15551230001")
        .expect("Acme's call_started");
    assert_eq!(acme.json()["data"]["client"], "Acme");
    drop(line);
}

// ---------------------------------------------------------------------------------------------
// 2./3. Voicemail: the samples, `#`, silence.

/// Checks the `voicemail_recorded` webhook of a voicemail against its file.
fn assert_voicemail_event(hook: &Hook, wav: &Path, samples: usize, caller: &str) -> Value {
    let reqs = hook.wait_until("call_ended after voicemail_recorded", |r| {
        r.iter().any(|r| r.event() == "call_ended")
    });
    let by_call = deliveries_by_call(&reqs);
    assert_eq!(
        by_call.values().collect::<Vec<_>>(),
        [&["call_started", "voicemail_recorded", "call_ended"]],
        "{by_call:?}"
    );
    let vm = hook.named("voicemail_recorded");
    let body = vm[0].json();
    let d = &body["data"];
    assert_eq!(d["path"], wav.display().to_string());
    assert_eq!(d["caller"], caller);
    assert_eq!(d["duration_ms"], (samples / 8) as u64, "{d}");
    let created = ts(&body["occurred_at"]);
    let due = ts(&d["callback_due_at"]);
    let promise = due.duration_since(created).as_secs_f64();
    assert!(
        (promise - 1200.0).abs() <= 3.0,
        "callback due {promise} s after the recording, not 20 min: {body}"
    );
    let cdr = &hook.named("call_ended")[0].json()["data"]["cdr"];
    assert_eq!(cdr["outcome"], "voicemail");
    body
}

#[test]
fn voicemail_samples_match_what_the_caller_sent() {
    if !require_tool("sipp") {
        return;
    }
    let dir = TestDir::new("mem-vm-key");
    let data = dir.path().join("data");
    let source = write_caller_audio(dir.path(), &caller_signal(10, 0));
    let hook = Hook::start(0);
    let line = Line::start(
        dir.path(),
        &data,
        "voicemail.toml",
        &webhook_config(hook.port(), ""),
        "ivr",
    );
    // Streams for 4.5 s from the ACK, then presses #.
    line.call("uac_voicemail_key.xml", "+15551230001", dir.path(), "vm");
    let log = line.wait_for_log("event=\"recorded\"", 1, WAIT);
    let saved = voicemail_log_line(&log);
    assert!(saved.contains("reason=FinishKey"), "{saved}");
    assert!(
        log.contains("event=\"digit\" digit=# source=Rfc4733"),
        "{log}"
    );

    let wav = the_voicemail(&data);
    let recorded = read_wav(&wav);
    let secs = recorded.len() as f64 / 8000.0;
    assert!(
        (2.0..=4.5).contains(&secs),
        "{secs} s recorded from 4.5 s of streaming"
    );
    let start = assert_frames_match(&recorded, &source);
    // The recording starts after the answer delay and the beep, so mid-stream, not at the start.
    assert!(start > 0, "recording started at the first packet");
    assert!(
        saved.contains(&format!("duration_ms={}", recorded.len() / 8)),
        "{saved}"
    );
    let name = wav.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.contains("_+15551230001_"), "{name}");

    assert_voicemail_event(&hook, &wav, recorded.len(), "+15551230001");
    // The line's clock is the moved one: judged at the same time, the callback is not yet due.
    let list = ivr_cli(&["voicemail", "list", "--now", AFTER_HOURS], &data);
    assert!(list.contains(&wav.display().to_string()), "{list}");
    assert!(list.contains("waiting, callback due by"), "{list}");
    drop(line);
}

/// `--now` moves one clock: the hours decision, the CDR's times, the voicemail's file name, the
/// webhook events and the callback deadline all read the same (moved) time.
#[test]
fn the_now_clock_stamps_cdrs_file_names_and_webhooks() {
    if !require_tool("sipp") {
        return;
    }
    let dir = TestDir::new("mem-clock");
    let data = dir.path().join("data");
    write_caller_audio(dir.path(), &caller_signal(10, 0));
    let hook = Hook::start(0);
    let line = Line::start(
        dir.path(),
        &data,
        "voicemail.toml",
        &webhook_config(hook.port(), ""),
        "ivr",
    );
    line.call("uac_voicemail_key.xml", "+15551230009", dir.path(), "vm");
    line.wait_for_log("event=\"recorded\"", 1, WAIT);
    let at: jiff::Timestamp = AFTER_HOURS.parse().expect("AFTER_HOURS");
    let near = |t: jiff::Timestamp, what: &str| {
        let off = t.duration_since(at).as_secs();
        assert!(
            (0..120).contains(&off),
            "{what} is {t}, {off} s from the --now time {at}, not on the moved clock"
        );
    };
    let name = the_voicemail(&data)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(name.starts_with("20261128T033"), "voicemail file {name}");
    let reqs = hook.wait_until("call_ended", |r| {
        r.iter().any(|r| r.event() == "call_ended")
    });
    for r in &reqs {
        near(
            ts(&r.json()["occurred_at"]),
            &format!("{} occurred_at", r.event()),
        );
    }
    let vm = hook.named("voicemail_recorded")[0].json();
    let due = ts(&vm["data"]["callback_due_at"]);
    near(
        due - jiff::SignedDuration::from_mins(20),
        "callback_due_at - 20 min",
    );
    let rows = cdr_rows(&data);
    let row = rows.last().expect("a CDR row");
    for column in ["started_at", "answered_at", "ended_at"] {
        let t: jiff::Timestamp = row[column].parse().unwrap_or_else(|e| {
            panic!("CDR {column} {:?}: {e}", row[column]);
        });
        near(t, &format!("CDR {column}"));
    }
    drop(line);
}

#[test]
fn silence_ends_a_recording() {
    if !require_tool("sipp") {
        return;
    }
    let dir = TestDir::new("mem-vm-silence");
    let data = dir.path().join("data");
    // 3 s of voice then 6 s of digital silence, streamed once: the 3 s silence window ends the
    // recording about 3 s after the voice stops, while silent packets still arrive.
    let source = write_caller_audio(dir.path(), &caller_signal(3, 6));
    let hook = Hook::start(0);
    let line = Line::start(
        dir.path(),
        &data,
        "voicemail.toml",
        &webhook_config(hook.port(), ""),
        "ivr",
    );
    let started = Instant::now();
    line.call("uac_voicemail_once.xml", "+15551230001", dir.path(), "vm");
    let took = started.elapsed();
    let log = line.wait_for_log("event=\"recorded\"", 1, WAIT);
    let saved = voicemail_log_line(&log);
    assert!(saved.contains("reason=Silence"), "{saved}");
    assert!(
        took < Duration::from_secs(15),
        "the call took {took:?}: silence did not end the recording"
    );

    let wav = the_voicemail(&data);
    let recorded = read_wav(&wav);
    let start = assert_frames_match(&recorded, &source);
    let voice_end = 3 * 8000;
    assert!(start < voice_end, "recording started after the voice");
    let voiced = voice_end - start;
    assert!(voiced >= 8000, "only {voiced} samples of voice recorded");
    // What follows the voice is the silence that ended the message: about 3 s of it.
    let tail = recorded.len() - voiced;
    assert!(
        (2 * 8000..=4 * 8000).contains(&tail),
        "{tail} samples of trailing silence for a 3 s window"
    );
    assert!(recorded[voiced..].iter().all(|s| *s == 0));
    assert_voicemail_event(&hook, &wav, recorded.len(), "+15551230001");
    drop(line);
}

#[test]
fn a_caller_who_stops_sending_audio_is_ended_by_silence() {
    if !require_tool("sipp") {
        return;
    }
    let dir = TestDir::new("mem-vm-nortp");
    let data = dir.path().join("data");
    // 3 s of voice streamed once, then no packets at all.
    write_caller_audio(dir.path(), &caller_signal(3, 0));
    let line = Line::start(dir.path(), &data, "voicemail.toml", "", "ivr");
    let started = Instant::now();
    line.call("uac_voicemail_once.xml", "+15551230001", dir.path(), "vm");
    let log = line.wait_for_log("event=\"recorded\"", 1, WAIT);
    let saved = voicemail_log_line(&log);
    assert!(saved.contains("reason=Silence"), "{saved}");
    // Voice ends ~3 s in; the 3 s window ends it ~6 s in, far before the 20 s maximum.
    assert!(started.elapsed() < Duration::from_secs(12), "{saved}");
}

// ---------------------------------------------------------------------------------------------
// 4. SIGKILL mid-recording.

struct Crash {
    dir: TestDir,
    data: PathBuf,
    source: Vec<i16>,
    hook: Hook,
    line: Line,
    call_id: String,
}

/// Records ~3 s of a voicemail with the webhook endpoint down, SIGKILLs ivr, then starts the
/// receiver and a new ivr on the same data dir.
fn crash_mid_recording() -> Crash {
    let dir = TestDir::new("mem-kill");
    let data = dir.path().join("data");
    let source = write_caller_audio(dir.path(), &caller_signal(12, 0));
    let port = closed_port();
    let config = webhook_config(port, "");
    let mut first = Line::start(dir.path(), &data, "voicemail.toml", &config, "ivr-1");
    let mut caller = first
        .sipp("uac_voicemail_once.xml", "+15551230001", dir.path(), "vm")
        .spawn()
        .expect("spawn sipp");
    let log = first.wait_for_log("event=\"recording\"", 1, WAIT);
    let call_id = incoming_call_id(&log);
    std::thread::sleep(Duration::from_millis(3300));
    let log = first.log();
    assert!(
        !log.contains("event=\"recorded\""),
        "the recording ended before the kill:\n{log}"
    );
    first.sigkill();
    // The caller is left hanging; it is ours to stop.
    let _ = caller.kill();
    let _ = caller.wait();
    drop(first);

    let hook = Hook::start(port);
    let line = Line::start(dir.path(), &data, "voicemail.toml", &config, "ivr-2");
    Crash {
        dir,
        data,
        source,
        hook,
        line,
        call_id,
    }
}

#[test]
fn killed_mid_recording_loses_nothing() {
    if !require_tool("sipp") {
        return;
    }
    let c = crash_mid_recording();
    let log = c
        .line
        .wait_for_log("event=\"voicemail_recovered\"", 1, WAIT);
    let wav = the_voicemail(&c.data);
    assert!(log.contains(&wav.display().to_string()), "{log}");

    // Header repaired: hound reads every sample, the sizes match the file.
    let recorded = read_wav(&wav);
    assert!(
        recorded.len() >= 2 * 8000,
        "only {} samples survived ~3.3 s of recording (header rewritten every second)",
        recorded.len()
    );
    assert_frames_match(&recorded, &c.source);

    // The outbox: call_started (queued before the crash) and the recovered voicemail arrive.
    c.hook
        .wait_until("call_started and voicemail_recorded", |r| {
            r.iter().any(|r| r.event() == "call_started")
                && r.iter().any(|r| r.event() == "voicemail_recorded")
        });
    // A little longer: nothing is delivered twice.
    std::thread::sleep(Duration::from_millis(500));
    let reqs = c.hook.requests();
    deliveries_by_call(&reqs);
    let started = c.hook.named("call_started");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].call_id(), c.call_id);
    assert_eq!(started[0].json()["data"]["caller"], "+15551230001");
    let vm = c.hook.named("voicemail_recorded");
    assert_eq!(vm.len(), 1);
    let body = vm[0].json();
    let d = &body["data"];
    assert_eq!(d["path"], wav.display().to_string());
    assert_eq!(d["caller"], "+15551230001");
    assert_eq!(d["duration_ms"], (recorded.len() / 8) as u64, "{d}");
    let created = ts(&body["occurred_at"]);
    assert_eq!(
        ts(&d["callback_due_at"]).duration_since(created).as_secs(),
        1200
    );
    // The recording's creation time (from the file name, second resolution, on the line's moved
    // clock) is shortly after the first start.
    let after_start = created
        .duration_since(AFTER_HOURS.parse::<jiff::Timestamp>().unwrap())
        .as_secs();
    assert!(
        (0..120).contains(&after_start),
        "created {after_start} s after the --now time"
    );

    let list = ivr_cli(&["voicemail", "list"], &c.data);
    assert!(list.contains(&wav.display().to_string()), "{list}");
    assert!(list.contains("+15551230001"), "{list}");
    // The call that was live at the crash is closed: its CDR has an end, the outcome voicemail,
    // and its call_ended event is delivered.
    let rows = cdr_rows(&c.data);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["outcome"], "voicemail", "{rows:?}");
    assert_eq!(
        rows[0]["end_reason"], "ivr stopped during the call",
        "{rows:?}"
    );
    assert!(!rows[0]["ended_at"].is_empty(), "{rows:?}");
    c.hook
        .wait_until("call_ended of the interrupted call", |r| {
            r.iter().any(|r| r.event() == "call_ended")
        });
    let ended = c.hook.named("call_ended");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].call_id(), c.call_id);
    assert_eq!(ended[0].json()["data"]["cdr"]["outcome"], "voicemail");
    drop(c.line);
    drop(c.dir);
}

#[test]
fn recovered_voicemail_keeps_the_call_id() {
    if !require_tool("sipp") {
        return;
    }
    let c = crash_mid_recording();
    c.hook.wait_until("voicemail_recorded", |r| {
        r.iter().any(|r| r.event() == "voicemail_recorded")
    });
    assert_eq!(c.hook.named("voicemail_recorded")[0].call_id(), c.call_id);
}

// ---------------------------------------------------------------------------------------------
// 5. A data directory the line cannot write.

#[test]
fn read_only_data_dir_still_answers() {
    if !require_tool("sipp") {
        return;
    }
    let dir = TestDir::new("mem-rodata");
    // A path under a regular file: creating it fails with "Not a directory", even as root.
    let afile = dir.path().join("afile");
    std::fs::write(&afile, b"not a directory").expect("write");
    let data = afile.join("sub");
    match Line::try_start(dir.path(), &data, "greeting.toml", "", "ivr") {
        Ok(line) => {
            // The line answers (greeting, then BYE) and says loudly that it remembers nothing.
            line.call("uac_caller.xml", "+15551230001", dir.path(), "call");
            let log = line.wait_for_log("event=\"ended\"", 1, WAIT);
            assert!(log.contains("after_hours_greeting"), "{log}");
            assert!(log.contains("ERROR"), "{log}");
            // The SQLite file lives in the data directory; a PostgreSQL database does not,
            // and still keeps the call (IVR_TEST_STORE=postgres).
            assert!(
                crate::common::db::postgres() || log.contains("STORE UNAVAILABLE"),
                "{log}"
            );
            assert!(!log.contains("panicked"), "{log}");
        }
        Err(failure) => {
            // The current decision: `serve` refuses to start. Then the reason must be plain.
            let status = failure.status.expect("ivr exited");
            assert_eq!(status.code(), Some(1), "{failure:?}");
            let log = &failure.log;
            assert!(
                log.contains("ivr: error: cannot create data directory")
                    && log.contains(&data.display().to_string())
                    && log.contains("Not a directory"),
                "unclear start failure:\n{log}"
            );
            assert!(!log.contains("panicked"), "{log}");
        }
    }
}

#[test]
fn unopenable_store_still_answers() {
    if !require_tool("sipp") || crate::common::db::sqlite_only("a directory where ivr.db goes") {
        return;
    }
    let dir = TestDir::new("mem-nostore");
    let data = dir.path().join("data");
    // The data dir exists but the database cannot be opened (a directory sits where ivr.db goes).
    std::fs::create_dir_all(data.join("ivr.db")).expect("mkdir");
    let line = Line::start(dir.path(), &data, "greeting.toml", "", "ivr");
    let log = line.log();
    assert!(
        log.contains("ERROR") && log.contains("STORE UNAVAILABLE"),
        "{log}"
    );
    line.call("uac_caller.xml", "+15551230001", dir.path(), "call");
    let log = line.wait_for_log("event=\"ended\"", 1, WAIT);
    assert!(
        log.contains("event=\"prompt\" prompt=after_hours_greeting"),
        "{log}"
    );
    assert!(log.contains("event=\"bye_sent\""), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn unwritable_voicemail_dir_still_ends_the_call_cleanly() {
    if !require_tool("sipp") {
        return;
    }
    let dir = TestDir::new("mem-novm");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    // A file where the voicemail directory goes: the recording cannot be created.
    std::fs::write(data.join("voicemail"), b"in the way").expect("write");
    write_caller_audio(dir.path(), &caller_signal(10, 0));
    let hook = Hook::start(0);
    let line = Line::start(
        dir.path(),
        &data,
        "voicemail.toml",
        &webhook_config(hook.port(), ""),
        "ivr",
    );
    // The recording fails at once and the flow goes on to hang up: the caller gets its BYE.
    line.call("uac_voicemail_once.xml", "+15551230001", dir.path(), "vm");
    let log = line.wait_for_log("event=\"ended\"", 1, WAIT);
    assert!(log.contains("cannot record voicemail"), "{log}");
    assert!(!log.contains("event=\"recorded\""), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let reqs = hook.wait_until("call_ended", |r| {
        r.iter().any(|r| r.event() == "call_ended")
    });
    let cdr = &hook.named("call_ended")[0].json()["data"]["cdr"];
    assert_eq!(cdr["outcome"], "voicemail_failed", "{cdr}");
    assert!(reqs.iter().all(|r| r.event() != "voicemail_recorded"));
    drop(line);
}

/// Issue 12 item 8: the shipped flow with a voicemail directory it cannot write. The caller goes
/// through the whole procedure (5, 1, ticket 42#), nobody is at the desk, and then must never
/// hear "leave a message ... we call you back within 20 minutes": the record node's `on_error`
/// tries the desk again and tells them to call back. The failure is an ERROR, a health alert
/// and the CDR outcome `voicemail_failed`.
#[test]
fn shipped_flow_never_promises_a_callback_it_cannot_record() {
    if !require_tool("sipp") {
        return;
    }
    let dir = TestDir::new("mem-vmfail");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    // A file where the voicemail directory goes: no recording can be created (even as root).
    std::fs::write(data.join("voicemail"), b"in the way").expect("write");
    let hook = Hook::start(0);
    // sipp sends key presses and no audio: the RTP timeout would end this long call.
    let config = webhook_config(hook.port(), "[rtp]\ntimeout_s = 0\n");
    let line = Line::start(
        dir.path(),
        &data,
        "../../callflows/after_hours.toml",
        &config,
        "ivr",
    );
    let run = common::run_sipp_to(
        line.addr,
        dir.path(),
        "uac_after_hours_rfc4733.xml",
        &["-timeout", "180s"],
    );
    assert!(
        run.success(),
        "sipp failed ({}):\n{}\n--- ivr log:\n{}",
        run.status,
        run.errors,
        line.log()
    );
    let log = line.wait_for_log("event=\"ended\"", 1, WAIT);
    let played = prompts_played(&log);
    let heard = |p: &str| played.iter().any(|x| x == p);
    assert!(heard("terms") && heard("connecting"), "{played:?}");
    for promise in ["leave_message", "review_options", "goodbye"] {
        assert!(
            !heard(promise),
            "the caller heard `{promise}`: {played:?}\n{log}"
        );
    }
    let tail: Vec<&str> = played
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["voicemail_unavailable", "call_again"], "{played:?}");
    assert!(
        log.contains("event=\"node\" node=ring_desk_again"),
        "the desk was not tried again:\n{log}"
    );
    // Visible: an ERROR naming the problem and a health alert for `voicemail`.
    let failed = log
        .lines()
        .find(|l| l.contains("event=\"voicemail_failed\""))
        .unwrap_or_else(|| panic!("no voicemail_failed line:\n{log}"));
    assert!(
        failed.contains("ERROR") && failed.contains("cannot record voicemail"),
        "{failed}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("event=\"health_alert\"") && l.contains("check=\"voicemail\"")),
        "no health alert:\n{log}"
    );
    let rows = cdr_rows(&data);
    assert_eq!(col(&rows, "outcome"), ["voicemail_failed"], "{rows:?}");
    assert_eq!(col(&rows, "agreed_terms"), ["true"], "{rows:?}");
    let reqs = hook.wait_until("call_ended", |r| {
        r.iter().any(|r| r.event() == "call_ended")
    });
    assert!(reqs.iter().all(|r| r.event() != "voicemail_recorded"));
    let cdr = &hook.named("call_ended")[0].json()["data"]["cdr"];
    assert_eq!(cdr["outcome"], "voicemail_failed", "{cdr}");
    drop(line);
}

/// Issue 12 item 4: three callers reach the voicemail tone. One hangs up at once (0.0 s), one
/// sends 5 s of silence, one speaks. Only the spoken message is a voicemail: one WAV, one
/// `voicemail_recorded`, one callback promise; the other two leave no file and their CDRs say
/// `no_message`.
#[test]
fn empty_and_silent_recordings_are_not_voicemails() {
    if !require_tool("sipp") {
        return;
    }
    let dir = TestDir::new("mem-vm-empty");
    let data = dir.path().join("data");
    let hook = Hook::start(0);
    let line = Line::start(
        dir.path(),
        &data,
        "voicemail.toml",
        &webhook_config(hook.port(), ""),
        "ivr",
    );
    let at_tone = dir.path().join("at-tone");
    let silent = dir.path().join("silent");
    let spoken = dir.path().join("spoken");
    for d in [&at_tone, &silent, &spoken] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    write_caller_audio(&silent, &caller_signal(0, 5));
    let source = write_caller_audio(&spoken, &caller_signal(3, 6));
    line.call("uac_voicemail_hangup.xml", "+15551230001", &at_tone, "tone");
    line.call("uac_voicemail_once.xml", "+15551230002", &silent, "silent");
    line.call("uac_voicemail_once.xml", "+15551230003", &spoken, "spoken");
    let log = line.wait_for_log("event=\"cdr\"", 3, WAIT);

    // Only the spoken message is on disk, and it is the caller's audio.
    let wav = the_voicemail(&data);
    assert!(
        wav.display().to_string().contains("15551230003"),
        "{}",
        wav.display()
    );
    assert_frames_match(&read_wav(&wav), &source);
    let dropped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("event=\"no_message\""))
        .collect();
    assert_eq!(dropped.len(), 2, "{log}");
    assert!(dropped[0].contains("why=too short"), "{}", dropped[0]);
    assert!(dropped[1].contains("why=all silence"), "{}", dropped[1]);

    // One voicemail, one callback promise, one webhook.
    let list = ivr_cli(&["voicemail", "list"], &data);
    assert!(list.contains("+15551230003"), "{list}");
    for number in ["+15551230001", "+15551230002"] {
        assert!(!list.contains(number), "{number} has a voicemail:\n{list}");
    }
    hook.wait_until("three call_ended", |r| {
        r.iter().filter(|r| r.event() == "call_ended").count() == 3
    });
    let vms = hook.named("voicemail_recorded");
    assert_eq!(
        vms.len(),
        1,
        "{:?}",
        vms.iter().map(Hooked::json).collect::<Vec<_>>()
    );
    assert_eq!(vms[0].json()["data"]["caller"], "+15551230003");
    let rows = cdr_rows(&data);
    let outcomes: BTreeMap<&str, &str> = rows
        .iter()
        .map(|r| (r["caller"].as_str(), r["outcome"].as_str()))
        .collect();
    assert_eq!(
        outcomes,
        BTreeMap::from([
            ("+15551230001", "no_message"),
            ("+15551230002", "no_message"),
            ("+15551230003", "voicemail"),
        ]),
        "{rows:?}"
    );
    let ended: BTreeMap<String, String> = hook
        .named("call_ended")
        .iter()
        .map(|r| {
            let cdr = &r.json()["data"]["cdr"];
            (
                cdr["caller"].as_str().unwrap_or("").to_string(),
                cdr["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(ended["+15551230002"], "no_message", "{ended:?}");
    drop(line);
}
