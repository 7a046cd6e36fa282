//! What a voicemail's email says, decided without I/O: the facts read back from the queued
//! `voicemail_recorded` event, the transcript as it stands, and the subject and body a helpdesk
//! turns into a ticket. The SMTP shell (`smtp`) attaches the WAV and sends it.
//!
//! Everything here may come from the caller (a SIP user part, a ticket typed on the keypad), so
//! every value is stripped of control characters before it reaches a header or the body: a
//! caller must not be able to add a `Bcc:` or forge lines in the ticket.

use std::path::PathBuf;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value;

use super::event::OutboxEvent;

/// A voicemail as its email tells it.
#[derive(Clone, Debug, PartialEq)]
pub struct VoicemailFacts {
    pub voicemail_id: i64,
    pub call_id: String,
    pub caller: String,
    pub client: Option<String>,
    pub agreement: bool,
    pub after_hours: bool,
    pub rate_multiplier: Option<f64>,
    pub ticket: Option<String>,
    pub recorded_at: Timestamp,
    pub duration_ms: u64,
    pub callback_due_at: Option<Timestamp>,
    /// The WAV on this host.
    pub path: PathBuf,
}

impl VoicemailFacts {
    /// Reads a queued `voicemail_recorded` event back. Rows queued by an older ivr lack the
    /// billing fields: the mail then leaves them out rather than guess.
    pub fn from_event(event: &OutboxEvent) -> Result<VoicemailFacts, String> {
        let d = &event.payload;
        let text = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
        let voicemail_id = d
            .get("voicemail_id")
            .and_then(Value::as_i64)
            .ok_or("the event has no voicemail_id")?;
        let path = text("path").ok_or("the event has no path")?;
        Ok(VoicemailFacts {
            voicemail_id,
            call_id: event.call_id.clone().unwrap_or_default(),
            caller: text("caller").unwrap_or_else(|| "unknown".into()),
            client: text("client"),
            agreement: d.get("agreement").and_then(Value::as_bool).unwrap_or(false),
            after_hours: d
                .get("after_hours")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            rate_multiplier: d.get("rate_multiplier").and_then(Value::as_f64),
            ticket: text("ticket").filter(|t| !t.is_empty()),
            recorded_at: event.occurred_at,
            duration_ms: d.get("duration_ms").and_then(Value::as_u64).unwrap_or(0),
            callback_due_at: text("callback_due_at").and_then(|t| t.parse().ok()),
            path: PathBuf::from(path),
        })
    }
}

/// The transcript of a voicemail as it stands when its mail goes out.
#[derive(Clone, Debug, PartialEq)]
pub enum Transcript {
    /// Transcribed by `engine`.
    Ready { text: String, engine: String },
    /// The engine failed; the mail says so and goes without it.
    Failed { error: String },
    /// Still being made: the mail waits for it up to the configured time, then goes without.
    Pending,
    /// Transcription is off.
    Off,
}

impl Transcript {
    /// The transcript of voicemail `vm` as the store has it: ready, failed, or (no outcome yet,
    /// or no such voicemail) pending.
    pub fn of(vm: Option<&crate::store::Voicemail>) -> Transcript {
        match vm {
            Some(v) if v.transcribed_at.is_some() => match (&v.transcript, &v.transcript_error) {
                (Some(text), _) => Transcript::Ready {
                    text: text.clone(),
                    engine: v.transcript_engine.clone().unwrap_or_default(),
                },
                (None, error) => Transcript::Failed {
                    error: error.clone().unwrap_or_else(|| "unknown error".into()),
                },
            },
            _ => Transcript::Pending,
        }
    }
}

/// Whether a voicemail's mail goes now or waits for its transcript.
#[derive(Clone, Debug, PartialEq)]
pub enum MailReadiness {
    Send(Transcript),
    WaitUntil(Timestamp),
}

/// Decides whether to send: a pending transcript holds the mail back until `recorded_at +
/// wait`, never longer, so a slow or stuck engine cannot delay the alert past that.
pub fn readiness(
    transcript: Transcript,
    recorded_at: Timestamp,
    wait: std::time::Duration,
    now: Timestamp,
) -> MailReadiness {
    if transcript != Transcript::Pending {
        return MailReadiness::Send(transcript);
    }
    let deadline = jiff::SignedDuration::try_from(wait)
        .ok()
        .and_then(|w| recorded_at.checked_add(w).ok())
        .unwrap_or(recorded_at);
    if now < deadline {
        MailReadiness::WaitUntil(deadline)
    } else {
        MailReadiness::Send(Transcript::Pending)
    }
}

/// The subject and body of a voicemail's mail, and the attachment's file name.
#[derive(Clone, Debug, PartialEq)]
pub struct MailText {
    pub subject: String,
    pub body: String,
    pub attachment_name: String,
}

/// Composes the mail. Times are on the line's wall clock (`tz`), as staff read them.
pub fn compose(
    facts: &VoicemailFacts,
    transcript: &Transcript,
    tz: &TimeZone,
    admin_url: &str,
) -> MailText {
    let caller = clean(&facts.caller, 80);
    let client = facts.client.as_deref().map(|c| clean(c, 80));
    let ticket = facts.ticket.as_deref().map(ticket_token);
    let length = minutes_seconds(facts.duration_ms);
    let when = |t: Timestamp| {
        t.to_zoned_datetime(tz.clone())
            .strftime("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    };

    // Helpdesks (Zendesk, Freshdesk, osTicket, Zammad, Jira SM) thread a reply into ticket N
    // when the subject carries `[#N]`; it goes first so no subject rule can cut it off.
    let mut subject = String::new();
    if let Some(t) = ticket.as_deref().filter(|t| !t.is_empty()) {
        subject.push_str(&format!("[#{t}] "));
    }
    subject.push_str(&format!("Voicemail from {caller}"));
    if let Some(c) = &client {
        subject.push_str(&format!(" ({c})"));
    }
    subject.push_str(&format!(", {length}"));
    if facts.after_hours {
        subject.push_str(", after hours");
    }

    let mut body = String::new();
    body.push_str(if facts.after_hours {
        "A caller left a voicemail on the after-hours line.\n\n"
    } else {
        "A caller left a voicemail on the support line.\n\n"
    });
    let mut field = |name: &str, value: &str| {
        body.push_str(&format!("{:<14}{value}\n", format!("{name}:")));
    };
    field("Caller", &caller);
    match &client {
        Some(c) if facts.agreement => {
            field("Client", &format!("{c} (After Hours Escalation Agreement)"))
        }
        Some(c) => field(
            "Client",
            &format!("{c} (no After Hours Escalation Agreement)"),
        ),
        None => field("Client", "not a known client number"),
    }
    field("Billing", &billing(facts));
    match ticket.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => field("Ticket", &format!("#{t}")),
        None => field("Ticket", "none given"),
    }
    field("Left at", &when(facts.recorded_at));
    field("Length", &length);
    if let Some(due) = facts.callback_due_at {
        field("Call back by", &when(due));
    }
    if !admin_url.is_empty() {
        field(
            "Listen",
            &format!(
                "{}/#vm-{}",
                admin_url.trim_end_matches('/'),
                facts.voicemail_id
            ),
        );
    }
    body.push('\n');
    match transcript {
        Transcript::Ready { text, engine } => {
            let text = clean_multiline(text);
            body.push_str(&format!(
                "Transcript (automatic, {}; may contain errors):\n{}\n\n",
                clean(engine, 40),
                if text.trim().is_empty() {
                    "(no words recognised)"
                } else {
                    text.trim()
                }
            ));
        }
        Transcript::Failed { error } => body.push_str(&format!(
            "No transcript: transcription failed ({}).\n\n",
            clean(error, 200)
        )),
        Transcript::Pending => body.push_str(
            "No transcript yet: it was not ready when this mail was sent; it goes to the \
             admin page and the voicemail_transcribed webhook when it is.\n\n",
        ),
        Transcript::Off => {}
    }
    let attachment_name = format!("voicemail-{}.wav", facts.voicemail_id);
    body.push_str(&format!("The recording is attached ({attachment_name}).\n"));
    body.push_str(&format!(
        "\n-- \nivr voicemail {} (call {})\n",
        facts.voicemail_id,
        clean(&facts.call_id, 120)
    ));
    MailText {
        subject,
        body,
        attachment_name,
    }
}

/// "after hours, 2x the standard rate (...)" as the billing rules decided it for the call.
fn billing(facts: &VoicemailFacts) -> String {
    if !facts.after_hours {
        return "business hours, standard rate".into();
    }
    let Some(m) = facts.rate_multiplier else {
        return "after hours".into();
    };
    let terms = if facts.agreement {
        "the agreement's rate"
    } else {
        "default after-hours rate"
    };
    format!("after hours, {m}x the standard rate, billed by the hour ({terms})")
}

/// `m:ss`.
fn minutes_seconds(ms: u64) -> String {
    let s = (ms + 500) / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

/// The ticket as it may stand in `[#...]`: letters, digits and `-` only (helpdesks' ticket
/// ids), at most 32.
fn ticket_token(t: &str) -> String {
    t.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect()
}

/// One line: control characters (CR, LF, tabs, escapes) become spaces; cut at `max` chars.
fn clean(s: &str, max: usize) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    one.trim().to_string()
}

/// Keeps line breaks, drops every other control character.
fn clean_multiline(s: &str) -> String {
    s.chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::event::{OutboxEvent, VoicemailRecorded};

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn facts(ticket: Option<&str>) -> VoicemailFacts {
        let ev = OutboxEvent::voicemail_recorded(
            "call-1",
            at("2026-12-01T23:45:10Z"),
            VoicemailRecorded {
                voicemail_id: 12,
                caller: "+15551230001".into(),
                client: Some("Acme Corp".into()),
                agreement: true,
                after_hours: true,
                rate_multiplier: Some(1.5),
                ticket: ticket.map(str::to_string),
                duration_ms: 42_400,
                path: "/var/ivr/voicemail/x.wav".into(),
                callback_due_at: at("2026-12-02T00:05:10Z"),
            },
        );
        VoicemailFacts::from_event(&ev).expect("facts")
    }

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").expect("tz")
    }

    #[test]
    fn a_ticket_number_leads_the_subject_in_helpdesk_threading_form() {
        let m = compose(&facts(Some("1234")), &Transcript::Off, &ny(), "");
        assert_eq!(
            m.subject,
            "[#1234] Voicemail from +15551230001 (Acme Corp), 0:42, after hours"
        );
        let m = compose(&facts(None), &Transcript::Off, &ny(), "");
        assert_eq!(
            m.subject,
            "Voicemail from +15551230001 (Acme Corp), 0:42, after hours"
        );
        assert!(m.body.contains("Ticket:       none given"), "{}", m.body);
    }

    #[test]
    fn the_body_carries_what_a_ticket_needs_on_the_line_clock() {
        let m = compose(
            &facts(Some("1234")),
            &Transcript::Ready {
                text: "my server is down please call me back".into(),
                engine: "pocketsphinx".into(),
            },
            &ny(),
            "https://ivr.example.com/",
        );
        for line in [
            "Caller:       +15551230001",
            "Client:       Acme Corp (After Hours Escalation Agreement)",
            "Billing:      after hours, 1.5x the standard rate, billed by the hour (the agreement's rate)",
            "Ticket:       #1234",
            "Left at:      Tue 2026-12-01 18:45 EST",
            "Length:       0:42",
            "Call back by: Tue 2026-12-01 19:05 EST",
            "Listen:       https://ivr.example.com/#vm-12",
            "Transcript (automatic, pocketsphinx; may contain errors):\nmy server is down please call me back\n",
            "The recording is attached (voicemail-12.wav).",
        ] {
            assert!(m.body.contains(line), "missing {line:?} in:\n{}", m.body);
        }
        assert_eq!(m.attachment_name, "voicemail-12.wav");
    }

    #[test]
    fn caller_controlled_text_cannot_add_header_lines() {
        let mut f = facts(Some("12\r\nBcc: x@evil.example"));
        f.caller = "evil\r\nBcc: victim@example.com".into();
        f.client = None;
        let m = compose(&f, &Transcript::Off, &ny(), "");
        assert!(!m.subject.contains('\r') && !m.subject.contains('\n'));
        assert!(
            m.subject.starts_with("[#12Bccxevilexample] "),
            "{}",
            m.subject
        );
        assert!(!m.body.contains("\r\nBcc"), "{}", m.body);
        assert!(m.body.contains("Client:       not a known client number"));
    }

    #[test]
    fn a_pending_transcript_holds_the_mail_only_until_the_wait_ends() {
        let rec = at("2026-12-01T23:45:10Z");
        let wait = std::time::Duration::from_secs(120);
        assert_eq!(
            readiness(Transcript::Pending, rec, wait, at("2026-12-01T23:46:00Z")),
            MailReadiness::WaitUntil(at("2026-12-01T23:47:10Z"))
        );
        assert_eq!(
            readiness(Transcript::Pending, rec, wait, at("2026-12-01T23:47:10Z")),
            MailReadiness::Send(Transcript::Pending)
        );
        let ready = Transcript::Ready {
            text: "hi".into(),
            engine: "x".into(),
        };
        assert_eq!(
            readiness(ready.clone(), rec, wait, at("2026-12-01T23:45:11Z")),
            MailReadiness::Send(ready)
        );
        let m = compose(&facts(None), &Transcript::Pending, &ny(), "");
        assert!(m.body.contains("No transcript yet"), "{}", m.body);
    }

    #[test]
    fn rows_queued_before_the_billing_fields_still_make_a_mail() {
        let ev = OutboxEvent {
            kind: crate::notify::EventKind::VoicemailRecorded,
            call_id: Some("c".into()),
            occurred_at: at("2026-12-01T23:45:10Z"),
            payload: serde_json::json!({"voicemail_id": 3, "caller": "+1555", "path": "/x.wav",
                                        "duration_ms": 1000}),
            target: crate::notify::Target::Primary,
        };
        let f = VoicemailFacts::from_event(&ev).expect("facts");
        let m = compose(&f, &Transcript::Off, &ny(), "");
        assert!(m.body.contains("Billing:      after hours\n"), "{}", m.body);
    }
}
