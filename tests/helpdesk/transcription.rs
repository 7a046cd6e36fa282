//! Voicemail transcription end to end (issue 14 item 3): the real `ivr serve`, its worker
//! running a real engine (PocketSphinx, or a configured command), the real SQLite file, a real
//! HTTP webhook receiver and the real `ivr voicemail list`.
//!
//! - A caller (sipp) leaves a voicemail whose audio is an espeak-ng message sent as G.711 RTP;
//!   PocketSphinx transcribes it; the transcript is in the row, in `voicemail_transcribed` and in
//!   the listing. Skips unless sipp, espeak-ng, sox and pocketsphinx are installed
//!   (`IVR_REQUIRE_INTEROP=1` fails instead). The accuracy is printed, not asserted beyond
//!   "some word of the message was heard" (BENCHMARKS.md measures it).
//! - An engine that fails, hangs past its timeout or is not installed: the error is stored,
//!   logged and sent, the line keeps running. These need only `sh`; the voicemail is put in
//!   the store before `ivr serve` starts, which also shows the worker picks up what a previous
//!   run left owed.

use crate::admin_support;
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::hook::Hook;
use common::{Ivr, manifest_dir, require_tool_from, run_sipp, unique_temp_dir};
use serde_json::Value;

const MESSAGE: &str = "my server is down please call me back";
const CALLER: &str = "+15551230001";

/// transcript, transcript_engine, transcribed_at, transcript_error of one voicemail.
type Row = (Option<String>, Option<String>, Option<i64>, Option<String>);

/// The transcript columns of every voicemail, straight from the line's store.
fn transcript_rows(data: &Path) -> Vec<Row> {
    crate::common::db::rows(
        data,
        "SELECT transcript, transcript_engine, transcribed_at, transcript_error \
         FROM voicemails ORDER BY id",
    )
    .into_iter()
    .map(|r| {
        let [text, engine, at, error] = <[Option<String>; 4]>::try_from(r).expect("4 columns");
        (text, engine, at.map(|v| v.parse().expect("ms")), error)
    })
    .collect()
}

fn voicemail_list(data: &Path) -> String {
    let out = crate::common::db::ivr_command(data)
        .args(["voicemail", "list", "--data"])
        .arg(data)
        .output()
        .expect("run ivr voicemail list");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_config(dir: &Path, hook: &Hook, transcription: &str) -> PathBuf {
    let path = dir.join("ivr.toml");
    std::fs::write(
        &path,
        format!(
            "[call]\nring_ms = 0\n\n[webhooks]\nurl = \"{}\"\n\n[transcription]\n{transcription}\n",
            hook.url()
        ),
    )
    .expect("write config");
    path
}

/// `MESSAGE` spoken by espeak-ng, as raw 8 kHz PCMU in whole 20 ms packets (what sipp streams).
fn write_spoken_message(dir: &Path) {
    let wav = dir.join("message.wav");
    let ulaw = dir.join("caller_audio.ulaw");
    let ok = Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(&wav)
        .arg(MESSAGE)
        .status()
        .expect("run espeak-ng")
        .success();
    assert!(ok, "espeak-ng failed");
    // -D: no dither, so the same message makes the same audio every run.
    let ok = Command::new("sox")
        .arg("-D")
        .arg(&wav)
        .args(["-r", "8000", "-c", "1", "-t", "raw", "-e", "u-law"])
        .arg(&ulaw)
        .status()
        .expect("run sox")
        .success();
    assert!(ok, "sox failed");
    let mut bytes = std::fs::read(&ulaw).expect("read ulaw");
    // µ-law silence up to a whole packet, then half a second more: the message ends cleanly.
    let whole = bytes.len().div_ceil(160) * 160 + 4000;
    bytes.resize(whole, 0xFF);
    std::fs::write(&ulaw, bytes).expect("write ulaw");
}

#[test]
fn an_espeak_voicemail_is_transcribed_stored_sent_and_listed() {
    if !(require_tool_from("sipp", "sip-tester")
        && require_tool_from("espeak-ng", "espeak-ng")
        && require_tool_from("sox", "sox")
        && require_tool_from("pocketsphinx_batch", "pocketsphinx"))
    {
        return;
    }
    let model = Path::new("/usr/share/pocketsphinx/model/en-us/en-us");
    assert!(
        model.is_dir(),
        "{} missing: apt-get install pocketsphinx-en-us",
        model.display()
    );
    let dir = unique_temp_dir("transcribe-call");
    let hook = Hook::start(0);
    let lm = manifest_dir().join("models/it-support.lm");
    let config = write_config(
        &dir,
        &hook,
        &format!("lm = {:?}", lm.to_str().expect("utf-8")),
    );
    let flow = manifest_dir().join("tests/flows/voicemail.toml");
    let ivr = Ivr::start(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--flow",
        flow.to_str().expect("utf-8"),
    ]);
    ivr.wait_for_log(&["transcription worker started"], Duration::from_secs(10));
    write_spoken_message(ivr.dir());
    let run = run_sipp(&ivr, "uac_voicemail_once.xml", &["-key", "caller", CALLER]);
    assert!(
        run.success(),
        "sipp failed:\n{}\nlog:\n{}",
        run.errors,
        ivr.log()
    );

    let reqs = hook.wait_until("voicemail_transcribed", |r| {
        r.iter().any(|r| r.event() == "voicemail_transcribed")
    });
    let events: Vec<String> = reqs.iter().map(|r| r.event()).collect();
    let recorded = events.iter().position(|e| e == "voicemail_recorded");
    let transcribed = events.iter().position(|e| e == "voicemail_transcribed");
    assert!(
        recorded < transcribed && recorded.is_some(),
        "order: {events:?}"
    );
    let body = hook.named("voicemail_transcribed")[0].json();
    let data = &body["data"];
    assert_eq!(data["caller"], CALLER);
    assert_eq!(data["engine"], "pocketsphinx");
    assert_eq!(data["error"], Value::Null);
    let heard = data["transcript"]
        .as_str()
        .expect("a transcript")
        .to_string();
    let recorded_body = hook.named("voicemail_recorded")[0].json();
    assert_eq!(data["voicemail_id"], recorded_body["data"]["voicemail_id"]);
    assert_eq!(body["call_id"], recorded_body["call_id"]);

    let rate = ivr::transcribe::wer::wer(MESSAGE, &heard).expect("reference has words");
    eprintln!(
        "said:  {MESSAGE}\nheard: {heard}\nWER:   {:.0}%",
        rate * 100.0
    );
    let said = ivr::transcribe::wer::normalise(MESSAGE);
    assert!(
        ivr::transcribe::wer::normalise(&heard)
            .iter()
            .any(|w| said.contains(w)),
        "not one word of {MESSAGE:?} heard: {heard:?}"
    );

    let data_dir = ivr.dir().join("data");
    let rows = transcript_rows(&data_dir);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (text, engine, at, error) = &rows[0];
    assert_eq!(text.as_deref(), Some(heard.as_str()));
    assert_eq!(engine.as_deref(), Some("pocketsphinx"));
    assert!(at.is_some() && error.is_none(), "{rows:?}");
    let log = ivr.log();
    assert!(log.contains("voicemail transcribed"), "{log}");

    let list = voicemail_list(&data_dir);
    assert!(
        list.lines().next().unwrap_or("").ends_with("\tTRANSCRIPT"),
        "{list}"
    );
    assert!(list.contains(&format!("\t{heard}\n")), "{list}");
}

/// A data directory holding one voicemail (its WAV a second of tone) and nothing transcribed,
/// as a run before this one would leave it.
fn data_with_a_voicemail(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let wav = data.join("voicemail").join("vm1.wav");
    std::fs::create_dir_all(wav.parent().expect("dir")).expect("mkdir");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).expect("wav");
    for n in 0..8000 {
        let t = f64::from(n) / 8000.0;
        w.write_sample((4000.0 * (std::f64::consts::TAU * 440.0 * t).sin()) as i16)
            .expect("sample");
    }
    w.finalize().expect("finalize");
    let now = jiff::Timestamp::now();
    crate::common::db::with_store_of(&data, |store| {
        ivr::store::VoicemailStore::add_voicemail(
            store,
            &ivr::store::NewVoicemail {
                call_id: "earlier-call".into(),
                caller: CALLER.into(),
                client: None,
                ticket: Some("T-7".into()),
                path: wav,
                duration_ms: 1000,
                created_at: now,
            },
            now + jiff::SignedDuration::from_mins(20),
        )
        .expect("add voicemail")
    });
    data
}

/// Serves with `transcription` on a data directory holding one untranscribed voicemail; waits
/// for its `voicemail_transcribed`, which must carry an error containing `expect`.
fn failing_engine(label: &str, transcription: &str, expect: &str) {
    let dir = unique_temp_dir(label);
    let data = data_with_a_voicemail(&dir);
    let hook = Hook::start(0);
    let config = write_config(&dir, &hook, transcription);
    let flow = manifest_dir().join("tests/flows/greeting.toml");
    let ivr = Ivr::serve_files(&dir, &config, &data, Some(&flow), &[]);
    hook.wait_until("voicemail_transcribed", |r| {
        r.iter().any(|r| r.event() == "voicemail_transcribed")
    });
    let body = hook.named("voicemail_transcribed")[0].json();
    assert_eq!(body["call_id"], "earlier-call");
    assert_eq!(body["data"]["transcript"], Value::Null);
    assert_eq!(body["data"]["ticket"], "T-7");
    assert_eq!(body["data"]["engine"], "command:sh");
    let error = body["data"]["error"]
        .as_str()
        .expect("an error")
        .to_string();
    assert!(error.contains(expect), "{error}");

    let rows = transcript_rows(&data);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, None);
    assert_eq!(rows[0].3.as_deref(), Some(error.as_str()));
    let log = ivr.wait_for_log(&["voicemail transcription failed"], Duration::from_secs(5));
    assert!(log.contains("final_attempt=true"), "{log}");
    assert!(voicemail_list(&data).contains("(transcription failed: "));
    // Still serving: the SIP side answers.
    let ua = common::UdpUa::new(ivr.sip_addr());
    let branch = common::token();
    ua.send(format!(
        "OPTIONS sip:ivr@{0} SIP/2.0\r\nVia: SIP/2.0/UDP {1};branch=z9hG4bK{branch}\r\n\
         From: <sip:t@{1}>;tag=1\r\nTo: <sip:ivr@{0}>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        ivr.sip_addr(),
        ua.local()
    ));
    let reply = ua.recv(Duration::from_secs(5)).expect("OPTIONS answered");
    assert_eq!(reply.status(), Some(200));
}

#[test]
fn an_engine_that_exits_non_zero_stores_and_sends_its_error() {
    failing_engine(
        "transcribe-fails",
        "engine = \"command\"\ncommand = [\"sh\", \"-c\", \"echo model file missing >&2; exit 3\", \"{wav}\"]\nmax_attempts = 1",
        "model file missing",
    );
}

#[test]
fn an_engine_that_hangs_is_killed_at_its_timeout() {
    failing_engine(
        "transcribe-hangs",
        "engine = \"command\"\ncommand = [\"sh\", \"-c\", \"sleep 60\", \"{wav}\"]\ntimeout_s = 1\nmax_attempts = 1",
        "did not finish within 1s and was killed",
    );
}

#[test]
fn an_engine_that_is_not_installed_turns_transcription_off_and_check_says_so() {
    let dir = unique_temp_dir("transcribe-missing");
    let data = data_with_a_voicemail(&dir);
    let hook = Hook::start(0);
    let config = write_config(
        &dir,
        &hook,
        "engine = \"command\"\ncommand = [\"/nonexistent/whisper-cli\", \"-f\", \"{wav}\"]",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ivr"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("ivr check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("transcription: transcription is off")
            && stdout.contains("/nonexistent/whisper-cli"),
        "{stdout}"
    );
    let ivr = Ivr::serve_files(
        &dir,
        &config,
        &data,
        Some(&manifest_dir().join("tests/flows/greeting.toml")),
        &[],
    );
    let log = ivr.wait_for_log(&["transcription is off"], Duration::from_secs(10));
    assert_eq!(log.matches("transcription is off").count(), 1, "{log}");
    assert!(
        log.contains("voicemails are kept without transcripts"),
        "{log}"
    );
    assert!(voicemail_list(&data).contains("(not transcribed yet)"));
}

/// What a caller says ends up as text on the admin page: an engine that "heard" markup must not
/// get it into the HTML, and the JSON carries it as a string.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_page_and_api_show_the_transcript_escaped() {
    use admin_support::{TOKEN, client, hash_token, json, url};
    let dir = unique_temp_dir("transcribe-admin");
    let data = data_with_a_voicemail(&dir);
    let heard = "<script>alert(1)</script> my server & \"mail\" are down";
    {
        let stored = crate::common::db::with_store_of(&data, |store| {
            ivr::store::VoicemailStore::set_transcript(
                store,
                1,
                &ivr::store::TranscriptOutcome {
                    engine: "command:whisper-cli".into(),
                    at: jiff::Timestamp::now(),
                    text: Ok(heard.into()),
                },
                None,
            )
            .expect("set transcript")
        });
        assert!(stored);
    }
    let hash = hash_token(TOKEN);
    let ivr = admin_support::start(
        &dir,
        &data,
        &format!("[admin]\ntoken_hash = \"{hash}\"\n[transcription]\nengine = \"off\"\n"),
    );
    let admin = ivr.admin_addr();
    let http = client();
    let bearer = format!("Bearer {TOKEN}");
    let list = json(
        http.get(url(admin, "/api/voicemails"))
            .header(reqwest::header::AUTHORIZATION, &bearer)
            .send()
            .await
            .expect("GET /api/voicemails"),
    )
    .await;
    assert_eq!(list[0]["transcript"], heard);
    assert_eq!(list[0]["transcript_state"], "done");
    assert_eq!(list[0]["transcript_engine"], "command:whisper-cli");
    assert_eq!(list[0]["transcript_error"], Value::Null);
    assert!(list[0]["transcribed_at"].is_string());

    let html = http
        .get(url(admin, "/"))
        .header(reqwest::header::AUTHORIZATION, &bearer)
        .send()
        .await
        .expect("GET /")
        .text()
        .await
        .expect("html");
    assert!(
        html.contains(
            "&lt;script&gt;alert(1)&lt;/script&gt; my server &amp; &quot;mail&quot; are down"
        ),
        "{html}"
    );
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(voicemail_list(&data).contains(heard));
}

/// Whether process `pid` has exited (a zombie until its parent waits counts as exited).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// A line with one voicemail owed a transcript whose engine leaves its pid beside the WAV,
/// then runs far longer than any test waits: the line, its data directory, the webhook
/// receiver and the engine's pid.
fn line_with_a_running_engine(label: &str) -> (Ivr, PathBuf, Hook, u32) {
    let dir = unique_temp_dir(label);
    let data = data_with_a_voicemail(&dir);
    let hook = Hook::start(0);
    let config = write_config(
        &dir,
        &hook,
        "engine = \"command\"\ncommand = [\"sh\", \"-c\", \"echo $$ > \\\"$0.pid\\\"; exec sleep 60\", \"{wav}\"]\ntimeout_s = 600",
    );
    let flow = manifest_dir().join("tests/flows/greeting.toml");
    let ivr = Ivr::serve_files(&dir, &config, &data, Some(&flow), &[]);
    let pid_file = data.join("voicemail").join("vm1.wav.pid");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let engine: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the engine never started; log:\n{}",
            ivr.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    (ivr, data, hook, engine)
}

/// Sends `signal` to the line and waits (30 s at most) until it has exited.
fn signal_and_wait(ivr: &Ivr, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &ivr.pid().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !exited(ivr.pid()) {
        assert!(
            std::time::Instant::now() < deadline,
            "ivr still running 30 s after {signal} (its engine sleeps 60 s); log:\n{}",
            ivr.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A node killed outright (SIGKILL, the OOM killer) takes its engine with it: before, the
/// engine ran on for its whole 60 s, orphaned, on a machine that was restarting the line.
#[test]
fn a_killed_line_takes_its_running_engine_with_it() {
    let (ivr, _data, _hook, engine) = line_with_a_running_engine("transcribe-kill");
    signal_and_wait(&ivr, "-KILL");
    // The kernel signals the engine as its parent goes: a moment, not the engine's 60 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !exited(engine) {
        assert!(
            std::time::Instant::now() < deadline,
            "the engine {engine} outlived the killed ivr"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stopping `ivr serve` kills a running engine rather than waiting for it (before: the process
/// stayed up until the engine's 60 s were over), and the voicemail stays owed a transcript for
/// the next start, its attempts untouched.
#[test]
fn stopping_the_line_kills_a_running_engine_and_the_voicemail_stays_owed() {
    let (ivr, data, hook, engine) = line_with_a_running_engine("transcribe-stop");
    signal_and_wait(&ivr, "-TERM");
    assert!(exited(engine), "the engine {engine} outlived ivr");
    let rows = transcript_rows(&data);
    assert_eq!(rows[0], (None, None, None, None), "still owed: {rows:?}");
    let attempts = crate::common::db::value(&data, "SELECT transcript_attempts FROM voicemails");
    assert_eq!(attempts, "0");
    assert!(hook.named("voicemail_transcribed").is_empty());
}
