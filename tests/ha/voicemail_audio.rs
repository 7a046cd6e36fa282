//! Voicemail audio on a cluster (issue 16): with `[store] url = "postgres://..."` the WAV is
//! stored in the database with its voicemail, so a voicemail left on node A is still there to
//! play, transcribe and mail after A is gone with its data directory. Node B serves it on its
//! admin API (the bytes A recorded), B's transcription worker reads it (a `sh` engine that
//! counts the bytes it was given, so the transcript proves which audio the engine read), and
//! the voicemail's mail, which A held back waiting for a transcript that A never finished, goes
//! out from B with the recording attached.
//!
//! Skips (SKIP line) without PostgreSQL, sipp or aiosmtpd; fails instead with
//! IVR_REQUIRE_INTEROP=1.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::smtp::{SmtpServer, SmtpTls};
use crate::common::{self, Ivr, free_port, manifest_dir, require_tool, run_sipp, unique_temp_dir};
use crate::pg;

const CALLER: &str = "+15551230007";
const TOKEN: &str = "audio-test-token";
/// Generous wait for what happens asynchronously (never a timed assertion).
const WAIT: Duration = Duration::from_secs(30);

/// The argon2 hash `[admin] token_hash` takes, from `ivr admin hash-token`.
fn hash_token(token: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ivr"))
        .args(["admin", "hash-token"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run ivr admin hash-token");
    writeln!(child.stdin.take().expect("stdin"), "{token}").expect("write token");
    let out = child.wait_with_output().expect("hash-token output");
    assert!(out.status.success(), "ivr admin hash-token failed");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// A node on the shared database `db`; `extra` is more TOML (its admin, its transcription).
fn start_node(dir: &Path, node: &str, db: &str, extra: &str) -> Ivr {
    let config = dir.join(format!("{node}.toml"));
    std::fs::write(
        &config,
        format!(
            "[call]\nring_ms = 0\n\n[store]\nurl = \"{db}\"\n\n[cluster]\nnode = \"{node}\"\n\n\
             {extra}"
        ),
    )
    .expect("write config");
    let flow = manifest_dir().join("tests/flows/voicemail.toml");
    Ivr::start(&[
        "--config",
        config.to_str().expect("utf-8 path"),
        "--flow",
        flow.to_str().expect("utf-8 path"),
        "--admin",
        "127.0.0.1:0",
    ])
}

/// Waits for `sql`'s first row (one text column), polling the database.
fn wait_row(db: &str, sql: &str) -> String {
    let mut c = postgres::Client::connect(db, postgres::NoTls).expect("connect to the test db");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(row) = c.query_opt(sql, &[]).expect("query") {
            return row.get(0);
        }
        assert!(Instant::now() < deadline, "no row for {sql}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// GET `path` on an admin API with the token: status, content type and body.
fn get(admin: std::net::SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    // reqwest comes without a default crypto provider (ivr's webhook client brings its own).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(format!("http://{admin}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET");
        let status = resp.status().as_u16();
        let kind = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, kind, resp.bytes().await.expect("body").to_vec())
    })
}

/// The recording's samples, checking it is what the recorder writes: 8 kHz 16-bit mono.
fn samples(wav: &[u8]) -> Vec<i16> {
    assert_eq!(&wav[..4], b"RIFF", "not a WAV");
    let reader = hound::WavReader::new(std::io::Cursor::new(wav)).expect("a readable WAV");
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16)
    );
    reader
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("samples")
}

#[test]
fn a_voicemail_left_on_a_node_that_is_gone_plays_and_transcribes_from_another() {
    if !(require_tool("sipp") && crate::common::smtp::available()) {
        return;
    }
    let Some(db) = pg::database() else {
        return;
    };
    let dir = unique_temp_dir("vm-audio");
    let port = free_port();
    let smtp = SmtpServer::start(port, &dir.join("mail"), SmtpTls::Plain, None);
    let shared = format!(
        "[admin]\ntoken_hash = \"{}\"\n\n[email]\nsmtp_host = \"127.0.0.1\"\n\
         smtp_port = {port}\ntls = \"none\"\nfrom = \"ivr@line.example\"\n\
         to = [\"desk@help.example\"]\n\n",
        hash_token(TOKEN)
    );
    // A's engine takes longer than A lives, so A holds the mail back for its transcript.
    let a = start_node(
        &dir,
        "node-a",
        &db,
        &format!(
            "{shared}[transcription]\nengine = \"command\"\nwait_s = 600\n\
             command = [\"sh\", \"-c\", \"sleep 30\", \"{{wav}}\"]\n"
        ),
    );

    common::write_tone_audio(a.dir(), 3);
    let run = run_sipp(&a, "uac_voicemail_once.xml", &["-key", "caller", CALLER]);
    assert!(run.success(), "sipp failed:\n{}\n{}", run.errors, a.log());
    let id: i64 = wait_row(&db, "SELECT id::TEXT FROM voicemails")
        .parse()
        .expect("id");
    let recorded = PathBuf::from(wait_row(&db, "SELECT path FROM voicemails"));
    let on_a = std::fs::read(&recorded).expect("node A's recording");
    let tone = samples(&on_a);
    assert!(
        tone.len() >= 2 * 8000 && tone.iter().any(|s| s.unsigned_abs() > 2000),
        "A recorded the caller's tone: {} samples",
        tone.len()
    );

    // A held the mail back (not yet tried) for the transcript it is still making.
    wait_row(
        &db,
        "SELECT id::TEXT FROM outbox WHERE target = 'email' AND attempts = 0 \
         AND next_attempt_at > (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT + 300000",
    );

    // Node A goes, and its data directory with it (a dead machine).
    let a_dir = a.dir().to_path_buf();
    drop(a);
    let _ = std::fs::remove_dir_all(&a_dir);
    assert!(!recorded.exists(), "{} is gone", recorded.display());

    let b = start_node(
        &dir,
        "node-b",
        &db,
        &format!(
            "{shared}[transcription]\nengine = \"command\"\n\
             command = [\"sh\", \"-c\", \"wc -c < \\\"$0\\\"\", \"{{wav}}\"]\n"
        ),
    );
    let admin = b.admin_addr();
    let (status, kind, served) = get(admin, &format!("/api/voicemails/{id}/audio"));
    assert_eq!(
        status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&served),
        b.log()
    );
    assert_eq!(kind, "audio/wav");
    assert_eq!(served.len(), on_a.len(), "the WAV A recorded, whole");
    assert!(
        served == on_a,
        "node B served other bytes than node A recorded"
    );
    assert_eq!(samples(&served), tone);

    // B's transcription worker got the same audio (from the database: A's file is gone).
    let transcript = wait_row(
        &db,
        &format!(
            "SELECT COALESCE(transcript, 'FAILED: ' || transcript_error) FROM voicemails \
             WHERE id = {id} AND transcribed_at IS NOT NULL"
        ),
    );
    assert_eq!(transcript.trim(), on_a.len().to_string(), "{}", b.log());
    let (_, _, list) = get(admin, "/api/voicemails");
    let list: serde_json::Value = serde_json::from_slice(&list).expect("JSON");
    assert_eq!(
        list[0]["transcript"].as_str().map(str::trim),
        Some(transcript.trim())
    );

    // The mail A held goes from B once B has the transcript, with A's recording attached.
    let got = smtp.wait_for(1, WAIT);
    assert_eq!(got.len(), 1, "one mail");
    let mail = mail_parser::MessageParser::default()
        .parse(&got[0].raw)
        .expect("the mail parses as MIME");
    let attached = mail.attachments().next().expect("the recording attached");
    assert!(
        attached.contents() == on_a.as_slice(),
        "the attachment is not the WAV A recorded ({} bytes)",
        attached.contents().len()
    );
    let text = mail.body_text(0).expect("a text part");
    assert!(text.contains(transcript.trim()), "{text}");
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}
