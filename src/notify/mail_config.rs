//! `[email]` (read by `crate::config`, defined here beside the mail it configures): each kept
//! voicemail mailed, WAV attached, to the helpdesk's intake address (issue 14), through the same
//! durable outbox as the webhooks. Empty `smtp_host` sends no mail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EmailTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Tls,
    /// No TLS at all: only for a relay on the same host or a trusted network (port 25).
    None,
}

impl EmailTls {
    /// The usual port for this mode.
    pub fn default_port(self) -> u16 {
        match self {
            EmailTls::Starttls => 587,
            EmailTls::Tls => 465,
            EmailTls::None => 25,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EmailTls::Starttls => "starttls",
            EmailTls::Tls => "tls",
            EmailTls::None => "none",
        }
    }
}

/// `[email]`. Its Debug hides the password.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// The SMTP server (host name or IP); empty: no email is sent.
    pub smtp_host: String,
    /// 0: the usual port for `tls` (587, 465 or 25).
    pub smtp_port: u16,
    pub tls: EmailTls,
    /// SMTP AUTH user; empty: no authentication.
    pub username: String,
    pub password: String,
    /// A PEM bundle of CAs trusted for the SMTP server besides the system's; empty: none.
    pub ca_file: PathBuf,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
    /// The helpdesk's intake address(es).
    pub to: Vec<String>,
    /// Per client name (as in `[[clients]]`): where that client's voicemails go instead of `to`.
    pub client_to: BTreeMap<String, Vec<String>>,
    /// The admin page's address as staff reach it (`https://ivr.example.com:8080`); empty: the
    /// mail carries no link.
    pub admin_url: String,
    /// Per attempt, connection included.
    pub timeout_s: u64,
}

impl EmailConfig {
    /// Whether mail is configured at all.
    pub fn enabled(&self) -> bool {
        !self.smtp_host.trim().is_empty()
    }

    /// `smtp_port`, or the usual one for `tls`.
    pub fn port(&self) -> u16 {
        if self.smtp_port == 0 {
            self.tls.default_port()
        } else {
            self.smtp_port
        }
    }

    /// `ca_file`, unless empty.
    pub fn ca_file(&self) -> Option<&Path> {
        (!self.ca_file.as_os_str().is_empty()).then_some(self.ca_file.as_path())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s.max(1))
    }

    /// Where a voicemail of `client` goes.
    pub fn recipients(&self, client: Option<&str>) -> &[String] {
        client
            .and_then(|c| self.client_to.get(c))
            .map_or(self.to.as_slice(), Vec::as_slice)
    }
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("ca_file", &self.ca_file)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("client_to", &self.client_to)
            .field("admin_url", &self.admin_url)
            .field("timeout_s", &self.timeout_s)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_follow_the_tls_mode_unless_given() {
        let mut c = EmailConfig {
            tls: EmailTls::Tls,
            ..EmailConfig::default()
        };
        assert_eq!(c.port(), 465);
        c.tls = EmailTls::None;
        assert_eq!(c.port(), 25);
        c.smtp_port = 2525;
        assert_eq!(c.port(), 2525);
    }

    #[test]
    fn a_client_with_its_own_address_gets_it_others_the_default() {
        let mut c = EmailConfig {
            to: vec!["desk@help.example".into()],
            ..EmailConfig::default()
        };
        c.client_to
            .insert("Acme".into(), vec!["acme@help.example".into()]);
        assert_eq!(c.recipients(Some("Acme")), ["acme@help.example"]);
        assert_eq!(c.recipients(Some("Other")), ["desk@help.example"]);
        assert_eq!(c.recipients(None), ["desk@help.example"]);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = EmailConfig {
            password: "hunter2".into(),
            ..EmailConfig::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
