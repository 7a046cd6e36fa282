//! Voicemail by email (issue 14): a real `ivr serve`, a real sipp caller leaving a message, and
//! a real SMTP server on loopback (aiosmtpd, `tests/common/smtp_server.py`). What arrives is
//! parsed as MIME and checked against the WAV in the data directory and the outbox in SQLite.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::smtp::{Received, SmtpServer, SmtpTls};
use common::tls::TestCa;
use common::{Ivr, free_port, manifest_dir, require_tool, run_sipp, unique_temp_dir};
use mail_parser::{Message, MessageParser, MimeHeaders};

const CALLER: &str = "+15551230001";
const WAIT: Duration = Duration::from_secs(60);
/// Tue 2026-12-01 22:00 in New York: after hours.
const AFTER_HOURS: &str = "2026-12-02T03:00:00Z";

/// `[email]` for an SMTP server on 127.0.0.1:`port`, plus the client the caller belongs to.
fn config(port: u16, tls: &str, extra: &str) -> String {
    format!(
        r#"
[hours]
timezone = "America/New_York"

[email]
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "{tls}"
from = "After-hours line <ivr@line.example>"
to = ["desk@help.example"]
client_to = {{ "Acme Corp" = ["acme@help.example"] }}
admin_url = "https://ivr.example.com/"
{extra}

[[clients]]
name = "Acme Corp"
numbers = ["{CALLER}"]
agreement = true
rate_multiplier = 1.5
"#
    )
}

/// `config` with transcription off: these mails do not wait for a transcript (the machine's
/// PocketSphinx would otherwise transcribe each test message first).
fn without_transcripts(config: String) -> String {
    config + "\n[transcription]\nengine = \"off\"\n"
}

/// `ivr serve` on `data` with `config`, the ticket-then-record flow, after hours.
fn serve(dir: &Path, data: &Path, label: &str, config: &str) -> Ivr {
    let cfg = dir.join(format!("{label}.toml"));
    std::fs::write(&cfg, config).expect("write config");
    let flow = manifest_dir().join("tests/flows/ticket_voicemail.toml");
    Ivr::serve_files(dir, &cfg, data, Some(&flow), &["--now", AFTER_HOURS])
}

/// A sipp caller from [`CALLER`] speaks for 5 s, falls silent and is hung up on.
fn leave_voicemail(ivr: &Ivr) {
    common::write_spoken_audio(ivr.dir());
    let run = run_sipp(ivr, "uac_voicemail_once.xml", &["-key", "caller", CALLER]);
    assert!(run.success(), "sipp caller failed:\n{}", run.errors);
}

/// The only voicemail WAV in `data`.
fn the_wav(data: &Path) -> PathBuf {
    let wavs: Vec<PathBuf> = std::fs::read_dir(data.join("voicemail"))
        .expect("voicemail dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    assert_eq!(wavs.len(), 1, "voicemail files: {wavs:?}");
    wavs[0].clone()
}

/// The mail row of the outbox: (attempts, delivered, last error).
fn mail_row(data: &Path) -> Option<(u32, bool, Option<String>)> {
    // Not there yet (no row, or no database before the line created it): `None`.
    let rows = crate::common::db::try_rows(
        data,
        "SELECT attempts, delivered_at, last_error FROM outbox WHERE target = 'email'",
    )
    .ok()?;
    let [attempts, delivered_at, last_error] =
        <[Option<String>; 3]>::try_from(rows.into_iter().next()?).ok()?;
    Some((attempts?.parse().ok()?, delivered_at.is_some(), last_error))
}

/// Waits until the mail row satisfies `cond`; returns it.
fn wait_row(
    data: &Path,
    what: &str,
    cond: impl Fn(&(u32, bool, Option<String>)) -> bool,
) -> (u32, bool, Option<String>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let row = mail_row(data);
        if let Some(r) = row.as_ref().filter(|r| cond(r)) {
            return r.clone();
        }
        assert!(Instant::now() < deadline, "{what}: outbox mail row {row:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn parse(m: &Received) -> Message<'_> {
    MessageParser::default()
        .parse(&m.raw)
        .expect("the mail parses as MIME")
}

/// The WAV attached to `mail`: (file name, bytes).
fn attachment(mail: &Message<'_>) -> (String, Vec<u8>) {
    let att = mail.attachments().next().expect("an attachment");
    (
        att.attachment_name().unwrap_or_default().to_string(),
        att.contents().to_vec(),
    )
}

/// The test CA's PEM, and a certificate for 127.0.0.1 it issued (cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = TestCa::new("ivr test mail CA");
    let (ca_pem, cert, key) = (
        dir.join("ca.pem"),
        dir.join("smtp.crt"),
        dir.join("smtp.key"),
    );
    ca.write_pem(&ca_pem);
    ca.write_server_pem("127.0.0.1", &cert, &key);
    (ca_pem, cert, key)
}

#[test]
fn a_voicemail_is_mailed_over_starttls_with_login_ticket_subject_and_the_wav_byte_identical() {
    if !(require_tool("sipp") && common::smtp::available()) {
        return;
    }
    let dir = unique_temp_dir("email-starttls");
    let data = dir.join("data");
    let (ca_pem, cert, key) = certificates(&dir);
    let port = free_port();
    let smtp = SmtpServer::start(
        port,
        &dir.join("mail"),
        SmtpTls::Starttls(&cert, &key),
        Some(("ivr-line", "s3cret-pass")),
    );
    let auth = format!(
        "username = \"ivr-line\"\npassword = \"s3cret-pass\"\nca_file = \"{}\"",
        ca_pem.display()
    );
    let ivr = serve(
        &dir,
        &data,
        "line",
        &without_transcripts(config(port, "starttls", &auth)),
    );
    leave_voicemail(&ivr);

    let got = smtp.wait_for(1, WAIT);
    let env = &got[0].envelope;
    assert_eq!(env["tls"], true, "the mail went over STARTTLS: {env}");
    assert_eq!(env["authenticated"], true, "{env}");
    assert_eq!(env["login"], "ivr-line", "{env}");
    assert_eq!(env["mail_from"], "ivr@line.example", "{env}");
    assert_eq!(
        env["rcpt_tos"],
        serde_json::json!(["acme@help.example"]),
        "the client's own intake address, not the default"
    );

    let mail = parse(&got[0]);
    let subject = mail.subject().expect("subject");
    assert!(
        subject.starts_with(&format!("[#4321] Voicemail from {CALLER} (Acme Corp), 0:0"))
            && subject.ends_with(", after hours"),
        "subject: {subject:?}"
    );
    let body = mail.body_text(0).expect("a text body");
    for line in [
        format!("Caller:       {CALLER}"),
        "Client:       Acme Corp (After Hours Escalation Agreement)".into(),
        "Billing:      after hours, 1.5x the standard rate".into(),
        "Ticket:       #4321".into(),
        "Left at:      Tue 2026-12-01 22:0".into(),
        "Listen:       https://ivr.example.com/#vm-1".into(),
    ] {
        assert!(
            body.contains(&line),
            "missing {line:?} in the body:\n{body}"
        );
    }
    let wav = the_wav(&data);
    let stored = std::fs::read(&wav).expect("read the stored WAV");
    let (name, bytes) = attachment(&mail);
    assert_eq!(name, "voicemail-1.wav");
    assert_eq!(
        mail.attachments()
            .next()
            .and_then(|a| a.content_type())
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default())),
        Some("audio/wav".to_string())
    );
    assert!(
        stored.len() > 8000,
        "a real recording: {} bytes",
        stored.len()
    );
    assert!(
        bytes == stored,
        "the attachment differs from {}",
        wav.display()
    );

    let (attempts, delivered, _) = wait_row(&data, "mail delivered", |r| r.1);
    assert!(delivered);
    assert_eq!(attempts, 0, "delivered at the first attempt");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(smtp.received().len(), 1, "one voicemail, one mail");
    assert!(
        !ivr.log().contains("s3cret-pass"),
        "the SMTP password appears in the log"
    );
}

#[test]
fn mail_waits_while_the_smtp_server_is_down_and_goes_once_when_it_is_back() {
    if !(require_tool("sipp") && common::smtp::available()) {
        return;
    }
    let dir = unique_temp_dir("email-down");
    let data = dir.join("data");
    let port = free_port();
    let ivr = serve(
        &dir,
        &data,
        "line",
        &without_transcripts(config(port, "none", "")),
    );
    leave_voicemail(&ivr);

    let (_, delivered, error) = wait_row(&data, "a failed attempt", |r| r.0 >= 1);
    assert!(!delivered);
    let error = error.unwrap_or_default();
    assert!(
        error.contains(&format!("127.0.0.1:{port}")) && error.to_lowercase().contains("refused"),
        "the outbox says why: {error:?}"
    );

    let smtp = SmtpServer::start(port, &dir.join("mail"), SmtpTls::Plain, None);
    let got = smtp.wait_for(1, WAIT);
    let stored = std::fs::read(the_wav(&data)).expect("read WAV");
    assert!(
        attachment(&parse(&got[0])).1 == stored,
        "attachment = stored file"
    );
    wait_row(&data, "mail delivered", |r| r.1);

    // A restart after delivery sends nothing again.
    drop(ivr);
    let again = serve(
        &dir,
        &data,
        "again",
        &without_transcripts(config(port, "none", "")),
    );
    again.wait_for_log(&["webhook worker started"], WAIT);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        smtp.received().len(),
        1,
        "sent once across the retry and the restart"
    );
}

#[test]
fn implicit_tls_names_an_untrusted_certificate_and_delivers_once_the_ca_is_configured() {
    if !(require_tool("sipp") && common::smtp::available()) {
        return;
    }
    let dir = unique_temp_dir("email-smtps");
    let data = dir.join("data");
    let (ca_pem, cert, key) = certificates(&dir);
    let port = free_port();
    let smtp = SmtpServer::start(
        port,
        &dir.join("mail"),
        SmtpTls::Implicit(&cert, &key),
        None,
    );
    let ivr = serve(
        &dir,
        &data,
        "no-ca",
        &without_transcripts(config(port, "tls", "")),
    );
    leave_voicemail(&ivr);

    let (_, _, error) = wait_row(&data, "a failed attempt", |r| r.0 >= 1);
    let error = error.unwrap_or_default();
    assert!(
        error.contains("certificate") && error.contains(&format!("127.0.0.1:{port}")),
        "the outbox names the certificate problem and the server: {error:?}"
    );
    assert!(smtp.received().is_empty());

    // The admin adds the CA and restarts: the same row goes out, once.
    drop(ivr);
    let with_ca = format!("ca_file = \"{}\"", ca_pem.display());
    let _fixed = serve(
        &dir,
        &data,
        "with-ca",
        &without_transcripts(config(port, "tls", &with_ca)),
    );
    let got = smtp.wait_for(1, WAIT);
    assert_eq!(got[0].envelope["tls"], true);
    wait_row(&data, "mail delivered", |r| r.1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(smtp.received().len(), 1);
}

/// The text the test's transcription "engine" (a shell command) prints for every message.
const SPOKEN: &str = "my server is down please call me back";

#[test]
fn the_mail_waits_for_the_transcript_and_carries_it() {
    if !(require_tool("sipp") && common::smtp::available()) {
        return;
    }
    let dir = unique_temp_dir("email-transcript");
    let data = dir.join("data");
    let port = free_port();
    let smtp = SmtpServer::start(port, &dir.join("mail"), SmtpTls::Plain, None);
    // The engine takes 2 s; the mail may wait 10 minutes for it, so a mail inside the test's
    // wait can only have been sent by the transcript's arrival.
    let engine = format!(
        "[transcription]\nengine = \"command\"\ncommand = [\"sh\", \"-c\", \"sleep 2; echo {SPOKEN}\", \"{{wav}}\"]\nwait_s = 600"
    );
    let ivr = serve(&dir, &data, "line", &(config(port, "none", "") + &engine));
    leave_voicemail(&ivr);

    let got = smtp.wait_for(1, WAIT);
    let mail = parse(&got[0]);
    let body = mail.body_text(0).expect("text body").replace("\r\n", "\n");
    assert!(
        body.contains(&format!(
            "Transcript (automatic, command:sh; may contain errors):\n{SPOKEN}\n"
        )),
        "body:\n{body}"
    );
    let (attempts, delivered, _) = wait_row(&data, "mail delivered", |r| r.1);
    assert!(delivered);
    assert_eq!(attempts, 0, "held back, never failed");
}

#[test]
fn a_transcript_that_is_late_does_not_hold_the_mail_past_its_wait() {
    if !(require_tool("sipp") && common::smtp::available()) {
        return;
    }
    let dir = unique_temp_dir("email-no-transcript");
    let data = dir.join("data");
    let port = free_port();
    let smtp = SmtpServer::start(port, &dir.join("mail"), SmtpTls::Plain, None);
    // An engine that takes far longer than the mail is willing to wait.
    let engine = "[transcription]\nengine = \"command\"\ncommand = [\"sh\", \"-c\", \"sleep 50\", \"{wav}\"]\ntimeout_s = 60\nwait_s = 2";
    let ivr = serve(&dir, &data, "line", &(config(port, "none", "") + engine));
    leave_voicemail(&ivr);

    let got = smtp.wait_for(1, WAIT);
    let body = parse(&got[0]).body_text(0).expect("text body").to_string();
    assert!(
        body.contains("No transcript yet: it was not ready when this mail was sent"),
        "body:\n{body}"
    );
    let transcribed = crate::common::db::rows(&data, "SELECT transcribed_at FROM voicemails");
    assert_eq!(
        transcribed,
        vec![vec![None]],
        "the engine was still running when the mail went"
    );
    drop(ivr);
}
