//! The data directory and the process, on the real binary: voicemail file names whatever Call-ID
//! the caller sends, one `ivr serve` per data directory, private file modes, and SIGHUP (what a
//! dropped SSH session sends) never stopping the line.
//!
//! Calls are made by hand over UDP on 127.0.0.1 (`common::UdpUa`); the voicemail calls stream a
//! few seconds of a PCMU tone so the recording holds real sound.

use crate::common;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    CallIds, Ivr, SipMsg, UdpUa, cdr_rows, in_dialog, manifest_dir, place_call, sdp_audio_addr,
    sdp_offer, token,
};
use ivr::media::g711::Codec;

const SIP_WAIT: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(30);

/// Hangs up `ok`'s call and expects the 200.
fn hang_up(ua: &UdpUa, ids: &CallIds, ok: &SipMsg) {
    ua.send(in_dialog(ua, ids, ok, "BYE", 2));
    let resp = ua.expect_response(&ids.call_id, |s| s >= 200, SIP_WAIT);
    assert_eq!(resp.status(), Some(200), "BYE answer:\n{}", resp.text());
}

/// `secs` seconds of a loud two-tone PCMU stream, paced at 20 ms.
fn send_tone(rtp: &UdpSocket, to: SocketAddr, secs: u32) {
    let ssrc = 0x5eed_0001u32;
    let start = Instant::now();
    for i in 0..secs * 50 {
        let pcm: Vec<i16> = (0..160)
            .map(|n| {
                let t = f64::from(i * 160 + n) / 8000.0;
                let tau = std::f64::consts::TAU;
                (6000.0 * (tau * 440.0 * t).sin() + 3000.0 * (tau * 1000.0 * t).sin()) as i16
            })
            .collect();
        let mut pkt = vec![0x80, if i == 0 { 0x80 } else { 0x00 }];
        pkt.extend_from_slice(&(i as u16).to_be_bytes());
        pkt.extend_from_slice(&(i * 160).to_be_bytes());
        pkt.extend_from_slice(&ssrc.to_be_bytes());
        Codec::Pcmu.encode(&pcm, &mut pkt);
        rtp.send_to(&pkt, to).expect("send RTP");
        let due = start + Duration::from_millis(u64::from(i + 1) * 20);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
}

/// `ivr serve` running `tests/flows/voicemail.toml` (straight to the recording).
fn voicemail_line() -> Ivr {
    let flow = manifest_dir().join("tests/flows/voicemail.toml");
    Ivr::start(&["--flow", flow.to_str().expect("utf-8 path")])
}

/// Leaves a 3-second voicemail on call `ids` and hangs up once it is saved.
fn leave_voicemail(ivr: &Ivr, ids: &CallIds) {
    let ua = UdpUa::new(ivr.sip_addr());
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind RTP");
    let port = rtp.local_addr().expect("RTP addr").port();
    let ok = place_call(&ua, ids, &sdp_offer(port, "0 101"), SIP_WAIT);
    let server_rtp = sdp_audio_addr(&ok.body_str());
    // The beep plays first; the recording starts after it (or fails to, on a bad name).
    let deadline = Instant::now() + WAIT;
    while !ivr.log().contains("event=\"recording\"") {
        let log = ivr.log();
        assert!(
            !log.contains("cannot record voicemail") && Instant::now() < deadline,
            "the voicemail was not recorded; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    send_tone(&rtp, server_rtp, 3);
    hang_up(&ua, ids, &ok);
    ivr.wait_for_log(&["event=\"recorded\""], WAIT);
}

fn data(ivr: &Ivr) -> PathBuf {
    ivr.dir().join("data")
}

fn wavs(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join("voicemail"))
        .expect("voicemail dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect()
}

/// The CDR of `call_id`, once `ivr cdr export` shows it with `ready`.
fn cdr_of(
    data: &Path,
    call_id: &str,
    ready: impl Fn(&std::collections::HashMap<String, String>) -> bool,
) -> std::collections::HashMap<String, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = cdr_rows(data);
        if let Some(row) = rows.iter().find(|r| r["call_id"] == call_id)
            && ready(row)
        {
            return row.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no ready CDR for {call_id}: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 12 item 9: a 300-character Call-ID made the file name too long for the file system; the
/// message was lost and the log blamed the disk.
#[test]
fn a_300_character_call_id_still_leaves_a_voicemail() {
    let ivr = voicemail_line();
    let ids = CallIds {
        call_id: format!("{}-{}@test.invalid", token(), "x".repeat(300)),
        ..CallIds::new()
    };
    assert!(ids.call_id.len() > 300);
    leave_voicemail(&ivr, &ids);

    let files = wavs(&data(&ivr));
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(name.len() < 200, "{} bytes: {name}", name.len());
    assert!(std::fs::metadata(&files[0]).expect("wav").len() > 44 + 8000 * 2);
    let row = cdr_of(&data(&ivr), &ids.call_id, |r| !r["outcome"].is_empty());
    assert_eq!(row["outcome"], "voicemail", "{row:?}");
}

/// Issue 12 item 11: the database, its WAL and voicemails were 0644 and directories 0755.
#[test]
fn data_files_are_private_to_the_owner() {
    let ivr = voicemail_line();
    leave_voicemail(&ivr, &CallIds::new());
    let data = data(&ivr);
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    for dir in [data.clone(), data.join("voicemail")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    let mut files = wavs(&data);
    files.extend(["ivr.db", "ivr.db-wal", "ivr.db-shm"].map(|f| data.join(f)));
    for file in files.iter().filter(|f| f.exists()) {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    // Under IVR_TEST_STORE=postgres the calls are in PostgreSQL; the recordings stay here.
    assert!(common::db::postgres() || data.join("ivr.db").exists());
    assert!(!wavs(&data).is_empty());
}

/// Issue 12 item 10: a second `ivr serve` on the same `--data` ran start-up recovery, closing the
/// first one's live call as "ivr stopped during the call", before it failed to bind.
#[test]
fn a_second_serve_on_one_data_dir_refuses_and_leaves_live_calls_alone() {
    let first = Ivr::start(&["--hold-after-prompt"]);
    let data = data(&first);
    let ua = UdpUa::new(first.sip_addr());
    let ids = CallIds::new();
    let ok = place_call(&ua, &ids, &sdp_offer(9, "0 101"), SIP_WAIT);
    cdr_of(&data, &ids.call_id, |_| true);

    // Same data directory and, as in the report, the same SIP address.
    let mut second = Command::new(env!("CARGO_BIN_EXE_ivr"));
    second
        .arg("serve")
        .arg("--sip")
        .arg(first.sip_addr().to_string())
        .arg("--data")
        .arg(&data)
        .arg("--prompts")
        .arg(manifest_dir().join("prompts"))
        .arg("--flow")
        .arg(manifest_dir().join("tests/flows/greeting.toml"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The first one's store too (its PostgreSQL database under IVR_TEST_STORE=postgres).
    let mut second = common::db::with_store(&mut second, &data)
        .spawn()
        .expect("spawn the second ivr");
    let deadline = Instant::now() + WAIT;
    while second.try_wait().expect("poll the second ivr").is_none() {
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("the second ivr serve on {} kept running", data.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = second.wait_with_output().expect("second ivr output");
    // The first one's call is still live, untouched, and ends normally.
    let row = cdr_of(&data, &ids.call_id, |_| true);
    assert_eq!(
        row["outcome"], "",
        "live call closed by the second ivr: {row:?}"
    );
    assert_eq!(row["end_reason"], "", "{row:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is in use by another running ivr")
            && stderr.contains(&data.display().to_string())
            && stderr.contains(&format!("pid {}", first.pid())),
        "{stderr}"
    );

    hang_up(&ua, &ids, &ok);
    let row = cdr_of(&data, &ids.call_id, |r| !r["outcome"].is_empty());
    assert_ne!(row["end_reason"], "ivr stopped during the call", "{row:?}");
}

/// Issue 12 item 12: SIGHUP (a dropped SSH session) killed ivr at once, leaving the caller's BYE
/// unanswered and the CDR open.
#[test]
fn sighup_does_not_stop_the_line() {
    let ivr = Ivr::start(&["--hold-after-prompt"]);
    let ua = UdpUa::new(ivr.sip_addr());
    let ids = CallIds::new();
    let ok = place_call(&ua, &ids, &sdp_offer(9, "0 101"), SIP_WAIT);
    let pid = libc::pid_t::try_from(ivr.pid()).expect("pid");
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    ivr.wait_for_log(&["event=\"sighup\""], WAIT);

    hang_up(&ua, &ids, &ok);
    let row = cdr_of(&data(&ivr), &ids.call_id, |r| !r["outcome"].is_empty());
    assert_ne!(row["end_reason"], "ivr stopped during the call", "{row:?}");
    // Still answering new calls.
    let ids = CallIds::new();
    let ok = place_call(&ua, &ids, &sdp_offer(9, "0 101"), SIP_WAIT);
    hang_up(&ua, &ids, &ok);
}

/// Issue 16: `[store] url = "sqlite://PATH"` puts the database at PATH (relative to the config
/// file), for `serve` and for the CLI reading the same config; the data directory keeps the
/// voicemails but gets no `ivr.db`. (Before `[store]` existed the config was refused: "unknown
/// field `store`".)
#[test]
fn a_sqlite_store_url_puts_the_database_where_it_says() {
    if common::db::sqlite_only("[store] url names a SQLite file") {
        return;
    }
    let root = common::unique_temp_dir("store-url");
    let config = root.join("etc/ivr.toml");
    std::fs::create_dir_all(config.parent().expect("parent")).expect("etc");
    std::fs::write(&config, "[store]\nurl = \"sqlite://db/calls.db\"\n").expect("config");
    let data = root.join("data");
    let ivr = Ivr::serve_files(&root, &config, &data, None, &["--hold-after-prompt"]);
    let db = root.join("etc/db/calls.db");
    ivr.wait_for_log(&["store opened", "calls.db"], WAIT);
    let ua = UdpUa::new(ivr.sip_addr());
    let ids = CallIds::new();
    let ok = place_call(&ua, &ids, &sdp_offer(9, "0 101"), SIP_WAIT);
    hang_up(&ua, &ids, &ok);
    assert!(db.is_file(), "no database at {}", db.display());
    assert!(
        !data.join("ivr.db").exists(),
        "a database in the data dir too"
    );
    // The CLI reading the same config finds the call there.
    let deadline = Instant::now() + WAIT;
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_ivr"))
            .args(["cdr", "export", "--config"])
            .arg(&config)
            .output()
            .expect("ivr cdr export");
        let csv = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && csv.contains(&ids.call_id) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the call is not in {}: {csv} {}",
            db.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
