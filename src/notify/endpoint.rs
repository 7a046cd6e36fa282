//! Where events go: one [`Endpoint`] per target (URL, signing secret, event filter, custom
//! headers) and the [`WebhookTargets`] the worker routes by.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use thiserror::Error;

use super::event::{EventKind, OutboxEvent, Target};
use super::tls::CaFileError;

/// Setting up webhooks failed (at start, so the admin sees it at once).
#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("webhook url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// Never carries the header's value: it is usually a credential.
    #[error("webhook header {name:?}: {reason}")]
    BadHeader { name: String, reason: String },
    #[error("webhooks.ca_file: {0}")]
    CaFile(#[from] CaFileError),
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("email: {0}")]
    Mail(String),
}

/// Headers ivr sets itself on every request; a configured header may not replace them (the
/// body's framing and the signature scheme depend on them).
fn reserved(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-type" | "content-length" | "transfer-encoding" | "host" | "connection"
    ) || name.as_str().starts_with("x-ivr-")
}

/// A configured header checked for the wire, or why not. The reason never quotes the value.
pub fn check_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| "not a valid HTTP header name".to_string())?;
    if reserved(&name) {
        return Err("set by ivr itself on every webhook; it cannot be configured".into());
    }
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        "the value holds characters a header cannot carry (line breaks, control characters \
         or non-ASCII)"
            .to_string()
    })?;
    // Keeps it out of hyper's and reqwest's own debug output as well as ours.
    value.set_sensitive(true);
    Ok((name, value))
}

/// Where one target's events go.
#[derive(Clone)]
pub struct Endpoint {
    pub(super) url: reqwest::Url,
    pub(super) secret: Option<String>,
    events: Option<Vec<String>>,
    pub(super) headers: HeaderMap,
}

impl fmt::Debug for Endpoint {
    // The secret and the header values (bearer tokens, API keys) stay out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = self
            .headers
            .keys()
            .map(|k| format!("{k}: <redacted>"))
            .collect();
        f.debug_struct("Endpoint")
            .field("url", &self.url.as_str())
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("events", &self.events)
            .field("headers", &headers)
            .finish()
    }
}

impl Endpoint {
    /// An `http://` or `https://` endpoint; with a `secret` (non-empty) every request is signed.
    pub fn new(url: &str, secret: Option<String>) -> Result<Self, NotifyError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| NotifyError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        match parsed.scheme() {
            "http" | "https" => {}
            other => {
                return Err(NotifyError::BadUrl {
                    url: url.into(),
                    reason: format!("scheme `{other}` is not http or https"),
                });
            }
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(NotifyError::BadUrl {
                url: url.into(),
                reason: "no host".into(),
            });
        }
        Ok(Endpoint {
            url: parsed,
            secret: secret.filter(|s| !s.is_empty()),
            events: None,
            headers: HeaderMap::new(),
        })
    }

    /// Only these event names are queued for this endpoint (`callback_overdue` always is).
    pub fn with_events(mut self, events: Vec<String>) -> Self {
        self.events = Some(events);
        self
    }

    /// Sends these headers with every request (e.g. `Authorization = "Bearer ..."` for a
    /// helpdesk API).
    pub fn with_headers(mut self, headers: &BTreeMap<String, String>) -> Result<Self, NotifyError> {
        for (name, value) in headers {
            let (n, v) = check_header(name, value).map_err(|reason| NotifyError::BadHeader {
                name: name.clone(),
                reason,
            })?;
            self.headers.insert(n, v);
        }
        Ok(self)
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The URL for logs: a query string (where some helpdesks take an API key) and any
    /// user:password are replaced by `<redacted>`.
    pub fn url_for_log(&self) -> String {
        let mut url = self.url.clone();
        if url.query().is_some() {
            url.set_query(Some("<redacted>"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            let _ = url.set_username("<redacted>");
            let _ = url.set_password(None);
        }
        url.to_string()
    }

    /// `host:port` of the URL, for messages.
    pub fn authority(&self) -> String {
        let host = self.url.host_str().unwrap_or("");
        match self.url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        }
    }

    /// Whether this endpoint wants events of `kind`.
    pub fn accepts(&self, kind: &EventKind) -> bool {
        match (&self.events, kind) {
            (_, EventKind::CallbackOverdue) | (None, _) => true,
            (Some(list), k) => list.iter().any(|e| e == k.as_str()),
        }
    }
}

/// The configured endpoints, and the CAs their HTTPS certificates are checked against.
#[derive(Clone, Debug, Default)]
pub struct WebhookTargets {
    pub primary: Option<Endpoint>,
    /// For `callback_overdue`; when unset those go to `primary`.
    pub escalation: Option<Endpoint>,
    /// `webhooks.ca_file`: a PEM bundle trusted besides the system's CAs.
    pub ca_file: Option<PathBuf>,
}

impl WebhookTargets {
    /// The endpoint events for `target` are posted to.
    pub fn route(&self, target: Target) -> Option<&Endpoint> {
        match target {
            Target::Primary => self.primary.as_ref(),
            Target::Escalation => self.escalation.as_ref().or(self.primary.as_ref()),
            // Mail goes by SMTP (`smtp::Mailer`), never to a URL.
            Target::Email => None,
        }
    }

    /// Whether `event` should be queued: yes unless its endpoint filters its kind out. With no
    /// endpoint at all it is queued and kept until one is configured.
    pub fn accepts(&self, event: &OutboxEvent) -> bool {
        self.route(event.target)
            .is_none_or(|ep| ep.accepts(&event.kind))
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;

    #[test]
    fn endpoints_take_http_and_https() {
        assert!(Endpoint::new("http://127.0.0.1:9/hook", None).is_ok());
        let https = Endpoint::new("https://helpdesk.example/api/tickets", None).unwrap();
        assert_eq!(https.authority(), "helpdesk.example:443");
        assert!(matches!(
            Endpoint::new("ftp://x/", None),
            Err(NotifyError::BadUrl { .. })
        ));
        assert!(matches!(
            Endpoint::new("not a url", None),
            Err(NotifyError::BadUrl { .. })
        ));
    }

    #[test]
    fn secrets_and_header_values_are_not_printed() {
        let headers = BTreeMap::from([
            ("Authorization".to_string(), "Bearer tok-31337".to_string()),
            ("X-Api-Key".to_string(), "key-4242".to_string()),
        ]);
        let ep = Endpoint::new("http://127.0.0.1:9/", Some("hunter2".into()))
            .unwrap()
            .with_headers(&headers)
            .unwrap();
        let printed = format!(
            "{ep:?} {:?}",
            WebhookTargets {
                primary: Some(ep.clone()),
                ..WebhookTargets::default()
            }
        );
        for secret in ["hunter2", "tok-31337", "key-4242"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("authorization: <redacted>"), "{printed}");
        // reqwest's own Debug of the values hides them too.
        assert!(!format!("{:?}", ep.headers).contains("tok-31337"));
    }

    #[test]
    fn bad_or_reserved_headers_are_refused_without_quoting_the_value() {
        let bad = |name: &str, value: &str| {
            let e = Endpoint::new("http://127.0.0.1:9/", None)
                .unwrap()
                .with_headers(&BTreeMap::from([(name.to_string(), value.to_string())]))
                .unwrap_err();
            assert!(!e.to_string().contains("s3cret"), "{e}");
            e.to_string()
        };
        assert!(bad("Bad Name", "s3cret").contains("not a valid HTTP header name"));
        assert!(bad("Authorization", "Bearer s3cret\r\nX: y").contains("cannot carry"));
        assert!(bad("X-Ivr-Signature", "s3cret").contains("set by ivr itself"));
        assert!(bad("Content-Type", "s3cret").contains("set by ivr itself"));
    }

    #[test]
    fn routing_falls_back_and_filters_apply() {
        let primary = Endpoint::new("http://127.0.0.1:9/p", None)
            .unwrap()
            .with_events(vec!["voicemail_recorded".into()]);
        let mut t = WebhookTargets {
            primary: Some(primary),
            ..WebhookTargets::default()
        };
        assert_eq!(
            t.route(Target::Escalation).unwrap().url(),
            "http://127.0.0.1:9/p"
        );
        let at = Timestamp::UNIX_EPOCH;
        let started = OutboxEvent {
            kind: EventKind::CallStarted,
            call_id: None,
            occurred_at: at,
            payload: serde_json::json!({}),
            target: Target::Primary,
        };
        assert!(!t.accepts(&started));
        let overdue = OutboxEvent {
            kind: EventKind::CallbackOverdue,
            target: Target::Escalation,
            ..started.clone()
        };
        assert!(t.accepts(&overdue), "callback_overdue ignores the filter");
        t.escalation = Some(Endpoint::new("http://127.0.0.1:9/e", None).unwrap());
        assert_eq!(
            t.route(Target::Escalation).unwrap().url(),
            "http://127.0.0.1:9/e"
        );
        // No endpoint at all: queued and kept.
        assert!(WebhookTargets::default().accepts(&started));
    }

    #[test]
    fn a_url_is_logged_without_its_query_or_credentials() {
        let e = Endpoint::new(
            "https://bot:pw@desk.example/api/hook?token=s3cret&x=1",
            None,
        )
        .expect("url");
        let logged = e.url_for_log();
        assert!(
            !logged.contains("s3cret") && !logged.contains("pw"),
            "{logged}"
        );
        assert!(
            logged.starts_with("https://") && logged.contains("desk.example/api/hook"),
            "{logged}"
        );
    }
}
