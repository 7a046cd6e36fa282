//! SIP message parsing and response building.
//!
//! Incoming bytes go through two steps. First a byte-level scan (`RawMessage`) that splits the start
//! line, headers and body, unfolds continuation lines, expands compact header names and checks the
//! Content-Length framing (RFC 3261 §7.3, §18.3). That scan survives input rsip would refuse
//! (non-UTF-8 values, unknown methods), so we can still answer such requests with 400 or 501.
//! Second, the headers the endpoint uses are read from that scan into [`Request`] / [`Response`],
//! and `rsip` checks the grammar of the Request-URI. Each message is parsed once: handing the
//! whole message to rsip as well doubled the cost of a request and its result was dropped.
//!
//! Outgoing messages are written by [`ResponseBuilder`] and `dialog::RequestBuilder` as text: we
//! control header order and the exact Via/To/Record-Route copying RFC 3261 §8.2.6 demands.

use std::borrow::Cow;
use std::net::Ipv6Addr;

use thiserror::Error;

mod headers;
mod raw;
mod response;

pub use headers::{NameAddr, Via, split_comma_list, split_host_port, uri_user};
pub use raw::{Frame, RawHeader, RawMessage, frame_stream};
pub use response::{ResponseBuilder, reason_phrase};

/// Largest message we accept on any transport: UDP datagrams cannot be bigger, and a TCP peer that
/// announces more is either broken or hostile.
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// Methods this endpoint implements; anything else gets 501 with this list in `Allow`.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, REGISTER";

/// The transport a message arrived on or leaves by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    /// A TCP connection, identified by the shell's connection id.
    Tcp(u64),
}

impl Transport {
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp(_))
    }
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp(_) => "TCP",
        }
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum ParseError {
    #[error("no SIP start line")]
    NoStartLine,
    #[error("message ends inside the headers (truncated)")]
    Truncated,
    #[error("header line without a colon: {0:?}")]
    BadHeaderLine(String),
    #[error("header {0} is not valid UTF-8")]
    NotUtf8(String),
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("malformed {0} header")]
    BadHeader(&'static str),
    #[error("Content-Length is not a number")]
    BadContentLength,
    #[error("Content-Length headers disagree")]
    ConflictingContentLength,
    #[error("Contact {0} cannot be a request target")]
    BadContact(String),
    #[error("unsupported URI scheme in {0:?}")]
    UnsupportedScheme(String),
    #[error("Content-Length {declared} but only {actual} body bytes arrived")]
    BodyTooShort { declared: usize, actual: usize },
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_SIZE}-byte limit")]
    TooLarge(usize),
    #[error("unsupported SIP version {0:?}")]
    BadVersion(String),
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMismatch { cseq: String, method: String },
    #[error("malformed start line: {0}")]
    BadStartLine(String),
}

/// A parsed, validated request.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: rsip::Method,
    pub uri: String,
    pub via: Via,
    pub vias: Vec<String>,
    pub from: NameAddr,
    pub to: NameAddr,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: String,
    pub contact: Option<NameAddr>,
    pub record_route: Vec<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub raw: RawMessage,
}

impl Request {
    /// The first P-Asserted-Identity (RFC 3325 §9.1), if present and well-formed.
    pub fn asserted_identity(&self) -> Option<NameAddr> {
        let value = self.raw.header_str("P-Asserted-Identity")?;
        let first = split_comma_list(value).into_iter().next()?;
        NameAddr::parse(&first, "P-Asserted-Identity").ok()
    }
}

/// A parsed response (to a request we sent).
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub via: Via,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: String,
    pub to_tag: Option<String>,
    /// The To header (with the tag the far end chose), echoed in our ACK and dialog requests.
    pub to: Option<NameAddr>,
    /// Every Contact (a 2xx names the remote target; a 3xx lists where to try instead).
    pub contacts: Vec<NameAddr>,
    pub record_route: Vec<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub raw: RawMessage,
}

#[derive(Debug)]
pub enum Incoming {
    Request(Box<Request>),
    Response(Box<Response>),
}

/// Why a message could not be accepted, and what to do about it.
#[derive(Debug)]
pub enum Rejection {
    /// Answer with this status; `raw` has what is needed to address the response.
    Respond {
        status: u16,
        reason: String,
        raw: Box<RawMessage>,
    },
    /// Nothing can be answered (garbage, a broken response): log and drop.
    Drop(ParseError),
}

/// Parses one complete message (a datagram or a framed stream message).
pub fn parse(buf: &[u8]) -> Result<Incoming, Rejection> {
    let raw = match RawMessage::scan(buf) {
        Ok(raw) => raw,
        Err((e, Some(raw))) if raw.can_answer() => {
            return Err(Rejection::Respond {
                status: if matches!(e, ParseError::TooLarge(_)) {
                    513
                } else {
                    400
                },
                reason: e.to_string(),
                raw: Box::new(raw),
            });
        }
        Err((e, _)) => return Err(Rejection::Drop(e)),
    };
    if raw.is_request() {
        parse_request(raw).map(|r| Incoming::Request(Box::new(r)))
    } else {
        parse_response(&raw)
            .map(|r| Incoming::Response(Box::new(r)))
            .map_err(Rejection::Drop)
    }
}

fn parse_request(raw: RawMessage) -> Result<Request, Rejection> {
    let reject = |status: u16, e: ParseError, raw: RawMessage| {
        if raw.can_answer() {
            Rejection::Respond {
                status,
                reason: e.to_string(),
                raw: Box::new(raw),
            }
        } else {
            Rejection::Drop(e)
        }
    };
    let mut parts = raw.start_line.split(' ');
    let (Some(method_tok), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        let e = ParseError::BadStartLine(raw.start_line.clone());
        return Err(reject(400, e, raw));
    };
    if version != "SIP/2.0" {
        let e = ParseError::BadVersion(version.to_string());
        return Err(reject(505, e, raw));
    }
    let vias = raw.vias();
    let Some(top) = vias.first() else {
        return Err(Rejection::Drop(ParseError::MissingHeader("Via")));
    };
    let via = match Via::parse(top) {
        Ok(v) => v,
        Err(e) => return Err(Rejection::Drop(e)),
    };
    for (name, key) in [
        ("Call-ID", "Call-ID"),
        ("From", "From"),
        ("To", "To"),
        ("CSeq", "CSeq"),
    ] {
        if raw.header_str(name).is_none() {
            return Err(reject(400, ParseError::MissingHeader(key), raw));
        }
    }
    let cseq_raw = raw.header_str("CSeq").unwrap_or_default().to_string();
    let mut cseq_parts = cseq_raw.split_whitespace();
    let (Some(Ok(cseq)), Some(cseq_method)) = (
        cseq_parts.next().map(|n| n.parse::<u32>()),
        cseq_parts.next(),
    ) else {
        return Err(reject(400, ParseError::BadHeader("CSeq"), raw));
    };
    let cseq_method = cseq_method.to_string();
    if cseq_method != method_tok {
        let e = ParseError::CSeqMismatch {
            cseq: cseq_method,
            method: method_tok.to_string(),
        };
        return Err(reject(400, e, raw));
    }
    // Methods are case-sensitive tokens; rsip only knows the standard set, so an extension method
    // is answered 501 by the caller from `raw` (RFC 3261 §8.2.1).
    let method = match method_of(method_tok) {
        Some(m) => m,
        None => {
            return Err(Rejection::Respond {
                status: 501,
                reason: format!("method {method_tok} is not implemented"),
                raw: Box::new(raw),
            });
        }
    };
    // We serve sip: (and sips:, whose security is the transport's business); any other scheme
    // (tel:, mailto:, ...) is not ours to route: 416 (§8.2.2.1, RFC 4475 §3.3.1).
    if !is_sip_scheme(uri) {
        let e = ParseError::UnsupportedScheme(uri.to_string());
        return Err(reject(416, e, raw));
    }
    if let Err(e) = check_sip_uri(uri) {
        let e = ParseError::BadStartLine(format!("{}: {e}", raw.start_line));
        return Err(reject(400, e, raw));
    }
    let call_id = raw.header_str("Call-ID").unwrap_or_default().to_string();
    if call_id.is_empty() {
        return Err(reject(400, ParseError::MissingHeader("Call-ID"), raw));
    }
    let from = match NameAddr::parse(raw.header_str("From").unwrap_or_default(), "From") {
        Ok(f) => f,
        Err(e) => return Err(reject(400, e, raw)),
    };
    let to = match NameAddr::parse(raw.header_str("To").unwrap_or_default(), "To") {
        Ok(t) => t,
        Err(e) => return Err(reject(400, e, raw)),
    };
    let contact = match raw.header_str("Contact") {
        Some(c) if c.trim() != "*" => {
            // An empty value (or only commas) has no first element: a 400, not an index panic
            // (found by the fuzzer; one datagram stopped the signalling thread).
            let first = split_comma_list(c).into_iter().next().unwrap_or_default();
            match NameAddr::parse(&first, "Contact") {
                Ok(c) => Some(c),
                Err(e) => return Err(reject(400, e, raw)),
            }
        }
        _ => None,
    };
    // The Contact of a request that creates a dialog or refreshes its target becomes the
    // Request-URI of our BYE and re-INVITE: it must be one we can send (RFC 3261 §8.1.1.8).
    // A new INVITE without one leaves the dialog the From URI instead (`Dialog::uas`).
    let refreshes = matches!(
        method_tok,
        "INVITE" | "UPDATE" | "SUBSCRIBE" | "NOTIFY" | "REFER"
    );
    let target = match &contact {
        Some(c) if refreshes => Some(c),
        None if method_tok == "INVITE" && to.tag.is_none() => Some(&from),
        _ => None,
    };
    if let Some(t) = target
        && let Err(why) = check_sip_uri(&t.uri)
    {
        let e = ParseError::BadContact(format!("{}: {why}", t.uri));
        return Err(reject(400, e, raw));
    }
    let record_route = match route_set(&raw) {
        Ok(r) => r,
        Err(e) => return Err(reject(400, e, raw)),
    };
    Ok(Request {
        method,
        uri: uri.to_string(),
        via,
        vias: vias.clone(),
        from,
        to,
        call_id,
        cseq,
        cseq_method,
        contact,
        record_route,
        content_type: raw.header_str("Content-Type").map(|s| s.to_string()),
        body: raw.body.clone(),
        raw,
    })
}

fn parse_response(raw: &RawMessage) -> Result<Response, ParseError> {
    let mut parts = raw.start_line.splitn(3, ' ');
    let (Some("SIP/2.0"), Some(code)) = (parts.next(), parts.next()) else {
        return Err(ParseError::BadStartLine(raw.start_line.clone()));
    };
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|c| (100..700).contains(c))
        .ok_or_else(|| ParseError::BadStartLine(raw.start_line.clone()))?;
    let via = raw
        .vias()
        .first()
        .ok_or(ParseError::MissingHeader("Via"))
        .and_then(|v| Via::parse(v))?;
    let call_id = raw
        .header_str("Call-ID")
        .ok_or(ParseError::MissingHeader("Call-ID"))?
        .to_string();
    let cseq_raw = raw
        .header_str("CSeq")
        .ok_or(ParseError::MissingHeader("CSeq"))?;
    let mut cs = cseq_raw.split_whitespace();
    let cseq = cs
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or(ParseError::BadHeader("CSeq"))?;
    let cseq_method = cs.next().ok_or(ParseError::BadHeader("CSeq"))?.to_string();
    let to = raw
        .header_str("To")
        .and_then(|t| NameAddr::parse(t, "To").ok());
    // Only Contacts we could send a request to: a 2xx's becomes the dialog's target, a 3xx's a
    // new destination; anything else (tel:, a broken URI) is as good as absent.
    let contacts = raw
        .header_list("Contact")
        .iter()
        .filter_map(|c| NameAddr::parse(c, "Contact").ok())
        .filter(|c| check_sip_uri(&c.uri).is_ok())
        .collect();
    let record_route = route_set(raw)?;
    Ok(Response {
        status,
        via,
        call_id,
        cseq,
        cseq_method,
        to_tag: to.as_ref().and_then(|t| t.tag.clone()),
        to,
        contacts,
        record_route,
        content_type: raw.header_str("Content-Type").map(|s| s.to_string()),
        body: raw.body.clone(),
        raw: raw.clone(),
    })
}

/// The Record-Route entries, each a `<sip:...>` we could send a request to: they become the
/// dialog's route set, whose first URI may be the Request-URI of our BYE (a strict router). One
/// bad entry spoils the set (skipping it would bypass that proxy), so the message is refused;
/// found by the fuzzer, a `Record-Route: <.0.1:5060>` in a 2xx became our ACK's request line.
fn route_set(raw: &RawMessage) -> Result<Vec<String>, ParseError> {
    let entries = raw.header_list("Record-Route");
    for e in &entries {
        let uri = NameAddr::parse(e, "Record-Route")
            .ok()
            .filter(|n| n.raw.starts_with('<'))
            .map(|n| n.uri);
        if uri.is_none_or(|u| check_sip_uri(&u).is_err()) {
            return Err(ParseError::BadHeader("Record-Route"));
        }
    }
    Ok(entries)
}

fn is_sip_scheme(uri: &str) -> bool {
    let scheme = uri.split_once(':').map_or("", |(s, _)| s);
    scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
}

/// Whether `uri` is a SIP or SIPS URI we could put in a request line. rsip checks the grammar;
/// every header we use is read from the scan, so the message is parsed once (see DESIGN.md,
/// "Parsing SIP").
fn check_sip_uri(uri: &str) -> Result<(), String> {
    if !is_sip_scheme(uri) {
        return Err("not a sip: or sips: URI".to_string());
    }
    // rsip lets these through, but a request line split at the blank would not be ours.
    if let Some(c) = uri
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
    {
        return Err(format!("{c:?} in the URI"));
    }
    let checkable = without_ipv6_host(uri)?;
    rsip::Uri::try_from(checkable.as_ref())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The URI with an IPv6 reference host (`sip:bob@[2001:db8::1]:5080`) checked here and replaced
/// by a placeholder name: rsip 0.4 refuses every IPv6 reference ("invalid digit found in
/// string"), which made us answer 400 to any request addressed to an IPv6 host, and refuse our
/// own BYE to a caller whose Contact is one (found by the fuzzer).
fn without_ipv6_host(uri: &str) -> Result<Cow<'_, str>, String> {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Ok(Cow::Borrowed(uri));
    };
    let host_at = rest.find('@').map_or(0, |i| i + 1);
    let Some(reference) = rest[host_at..].strip_prefix('[') else {
        return Ok(Cow::Borrowed(uri));
    };
    let end = reference
        .find(']')
        .ok_or_else(|| "IPv6 reference without its ']'".to_string())?;
    let (address, after) = (&reference[..end], &reference[end + 1..]);
    address
        .parse::<Ipv6Addr>()
        .map_err(|_| format!("{address:?} is not an IPv6 address"))?;
    if !(after.is_empty() || after.starts_with([':', ';', '?'])) {
        return Err(format!("{after:?} after the IPv6 reference"));
    }
    let user = &rest[..host_at];
    Ok(Cow::Owned(format!("{scheme}:{user}ipv6.invalid{after}")))
}

/// The rsip method for a request token. Methods are case-sensitive (RFC 3261 §7.1), so only
/// the exact upper-case names match; anything else is an extension we answer with 501.
fn method_of(token: &str) -> Option<rsip::Method> {
    use rsip::Method::*;
    Some(match token {
        "ACK" => Ack,
        "BYE" => Bye,
        "CANCEL" => Cancel,
        "INFO" => Info,
        "INVITE" => Invite,
        "MESSAGE" => Message,
        "NOTIFY" => Notify,
        "OPTIONS" => Options,
        "PRACK" => PRack,
        "PUBLISH" => Publish,
        "REFER" => Refer,
        "REGISTER" => Register,
        "SUBSCRIBE" => Subscribe,
        "UPDATE" => Update,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
