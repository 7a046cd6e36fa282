//! Writing responses: the headers RFC 3261 §8.2.6.2 copies from the request, the stamped top
//! Via (§18.2.1), and the standard reason phrases.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::{NameAddr, RawMessage, Via};

/// Standard reason phrases: every status of RFC 3261 §21 and the extensions SIP stacks commonly
/// send (RFC 3262, 3265, 3329, 3892, 4028, 4412, 4474, 5079, 5360, 5393, 6228, 6442, 8224, 8688),
/// so no code we send, or a call task passes through, goes out as "Unknown".
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        417 => "Unknown Resource-Priority",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        428 => "Use Identity Header",
        429 => "Provide Referrer Identity",
        433 => "Anonymity Disallowed",
        436 => "Bad Identity Info",
        437 => "Unsupported Credential",
        438 => "Invalid Identity Header",
        439 => "First Hop Lacks Outbound Support",
        440 => "Max-Breadth Exceeded",
        469 => "Bad Info Package",
        470 => "Consent Needed",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        555 => "Push Notification Service Not Supported",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        608 => "Rejected",
        // RFC 3261 §21: an unrecognised code is treated as x00 of its class; name the class.
        _ => match status / 100 {
            1 => "Provisional",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
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

#[cfg(test)]
mod tests {
    use super::reason_phrase;

    #[test]
    fn every_status_we_send_has_its_own_phrase() {
        assert_eq!(reason_phrase(407), "Proxy Authentication Required");
        let generic = [
            "Provisional",
            "Success",
            "Redirection",
            "Client Error",
            "Server Error",
            "Global Failure",
        ];
        // The endpoint's, the call tasks' and the parser's statuses (and 416/404 of issue 11).
        for status in [
            100, 180, 183, 200, 400, 401, 403, 404, 405, 407, 408, 413, 415, 416, 420, 423, 480,
            481, 482, 484, 486, 487, 488, 491, 500, 501, 502, 503, 504, 505, 513, 600, 603,
        ] {
            let phrase = reason_phrase(status);
            assert!(
                !generic.contains(&phrase) && phrase != "Unknown",
                "{status} {phrase}"
            );
        }
        assert_eq!(reason_phrase(499), "Client Error");
        assert_eq!(reason_phrase(699), "Global Failure");
    }
}
