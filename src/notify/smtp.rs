//! The mail shell: one SMTP submission per voicemail with `lettre` (rustls, never OpenSSL), the
//! WAV attached as stored. The words come from [`mail_text`](super::mail_text); retries, order
//! and "sent once" come from the outbox worker like any webhook.

use std::time::Duration;

use jiff::tz::TimeZone;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::endpoint::NotifyError;
use super::mail_config::{EmailConfig, EmailTls};
use super::mail_text::{self, MailText, Transcript, VoicemailFacts};
use super::tls;

/// A configured SMTP submission.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    config: EmailConfig,
    tz: TimeZone,
    /// How long a mail waits for its transcript; `None` when transcription is off.
    pub transcript_wait: Option<Duration>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server_for_log())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// From a validated `[email]` (see `config::validate`); `tz` is the line's, for the times
    /// in the mail.
    pub fn new(
        config: &EmailConfig,
        tz: TimeZone,
        transcript_wait: Option<Duration>,
    ) -> Result<Mailer, NotifyError> {
        let bad = |what: String| NotifyError::Mail(what);
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| bad(format!("email.from {:?}: {e}", config.from)))?;
        let host = config.smtp_host.trim().to_string();
        let params = || -> Result<TlsParameters, NotifyError> {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(path) = config.ca_file() {
                for der in tls::load_ca_file(path)? {
                    let cert = Certificate::from_der(der.to_vec())
                        .map_err(|e| bad(format!("email.ca_file {}: {e}", path.display())))?;
                    b = b.add_root_certificate(cert);
                }
            }
            b.build_rustls()
                .map_err(|e| bad(format!("SMTP TLS set-up: {e}")))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(config.port())
            .timeout(Some(config.timeout()));
        builder = match config.tls {
            // `Required`: a server that does not offer STARTTLS fails the attempt rather than
            // get the voicemail (and the password) in clear text.
            EmailTls::Starttls => builder.tls(Tls::Required(params()?)),
            EmailTls::Tls => builder.tls(Tls::Wrapper(params()?)),
            EmailTls::None => builder.tls(Tls::None),
        };
        if !config.username.is_empty() {
            builder = builder
                .credentials(Credentials::new(
                    config.username.clone(),
                    config.password.clone(),
                ))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            config: config.clone(),
            tz,
            transcript_wait,
        })
    }

    /// `host:port (mode)` for the log; never the credentials.
    pub fn server_for_log(&self) -> String {
        format!(
            "{}:{} ({})",
            self.config.smtp_host.trim(),
            self.config.port(),
            self.config.tls.as_str()
        )
    }

    /// Sends the mail of `facts` with `wav` attached (`Err`: why there is no recording, said
    /// in the text instead). `Err` is one line for the log and the admin page's outbox.
    pub async fn send(
        &self,
        facts: &VoicemailFacts,
        transcript: &Transcript,
        wav: Result<Vec<u8>, String>,
    ) -> Result<(), String> {
        let text = mail_text::compose(facts, transcript, &self.tz, &self.config.admin_url);
        let message = self.message(facts, text, wav)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| describe(&e, &self.server_for_log()))
    }

    fn message(
        &self,
        facts: &VoicemailFacts,
        text: MailText,
        wav: Result<Vec<u8>, String>,
    ) -> Result<Message, String> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(text.subject)
            // The same id on every attempt: a mail sent whose reply was lost, then sent again,
            // is one message to a receiver that drops duplicates.
            .message_id(Some(format!(
                "<ivr.voicemail.{}.{}@{}>",
                facts.voicemail_id,
                facts.recorded_at.as_millisecond(),
                message_id_host(&self.from)
            )))
            .user_agent(concat!("ivr/", env!("CARGO_PKG_VERSION")).to_string());
        for to in self.config.recipients(facts.client.as_deref()) {
            let mailbox: Mailbox = to.parse().map_err(|e| format!("recipient {to:?}: {e}"))?;
            builder = builder.to(mailbox);
        }
        let mut body = text.body;
        let mut parts = MultiPart::mixed().build();
        match wav {
            Ok(bytes) => {
                parts = parts
                    .singlepart(SinglePart::plain(body))
                    .singlepart(Attachment::new(text.attachment_name).body(bytes, wav_type()));
            }
            Err(why) => {
                body.push_str(&format!("\nNOT ATTACHED: {why}\n"));
                parts = parts.singlepart(SinglePart::plain(body));
            }
        }
        builder
            .multipart(parts)
            .map_err(|e| format!("cannot build the mail: {e}"))
    }
}

fn wav_type() -> ContentType {
    ContentType::parse("audio/wav").unwrap_or(ContentType::TEXT_PLAIN)
}

/// The sender's domain, so message ids are unique to this installation.
fn message_id_host(from: &Mailbox) -> String {
    from.email.domain().to_string()
}

/// An SMTP failure in words: a certificate problem first (as for HTTPS), else the error and
/// its causes.
fn describe(e: &lettre::transport::smtp::Error, server: &str) -> String {
    if let Some(t) = tls::find_tls_error(e) {
        return tls::describe(t, server);
    }
    format!("SMTP {server}: {}", tls::chain(e))
}
