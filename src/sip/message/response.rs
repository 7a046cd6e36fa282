//! Writing responses: the headers RFC 3261 §8.2.6.2 copies from the request, the stamped top
//! Via (§18.2.1), and the standard reason phrases.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::{NameAddr, RawMessage, Via};

/// Standard reason phrases for the statuses we send.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        _ => "Unknown",
    }
}

/// Builds a response to a request from the headers RFC 3261 §8.2.6.2 says to copy.
pub struct ResponseBuilder {
    text: String,
    body: Vec<u8>,
    content_type: Option<String>,
}

impl ResponseBuilder {
    /// `to_tag` is added to To when the request's To has none (dialog-creating or any final
    /// response, §8.2.6.2); `source` stamps the top Via (§18.2.1).
    pub fn new(raw: &RawMessage, source: SocketAddr, status: u16, to_tag: Option<&str>) -> Self {
        Self::with_reason(raw, source, status, reason_phrase(status), to_tag)
    }

    pub fn with_reason(
        raw: &RawMessage,
        source: SocketAddr,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Self {
        let mut text = String::with_capacity(512);
        // Reason phrases must not carry CR/LF from untrusted input.
        let reason: String = reason.chars().filter(|c| !c.is_control()).collect();
        let _ = write!(text, "SIP/2.0 {status} {reason}\r\n");
        for (i, via) in raw.vias().iter().enumerate() {
            let value = match (i, Via::parse(via)) {
                (0, Ok(v)) => v.stamped(source),
                _ => via.clone(),
            };
            let _ = write!(text, "Via: {value}\r\n");
        }
        for name in ["From", "To", "Call-ID", "CSeq"] {
            let Some(value) = raw.header_str(name) else {
                continue;
            };
            if name == "To" && status > 100 {
                let has_tag = NameAddr::parse(value, "To")
                    .map(|n| n.tag.is_some())
                    .unwrap_or(true);
                if let (false, Some(tag)) = (has_tag, to_tag) {
                    let _ = write!(text, "To: {value};tag={tag}\r\n");
                    continue;
                }
            }
            let _ = write!(text, "{name}: {value}\r\n");
        }
        ResponseBuilder {
            text,
            body: Vec::new(),
            content_type: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        let _ = write!(self.text, "{name}: {value}\r\n");
        self
    }

    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.content_type = Some(content_type.to_string());
        self.body = body;
        self
    }

    pub fn build(mut self) -> Vec<u8> {
        self.text.push_str("Server: ivr/");
        self.text.push_str(env!("CARGO_PKG_VERSION"));
        self.text.push_str("\r\n");
        if let Some(ct) = &self.content_type {
            let _ = write!(self.text, "Content-Type: {ct}\r\n");
        }
        let _ = write!(self.text, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = self.text.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}
