//! SIP message parsing and response building.
//!
//! Incoming bytes go through two steps. First a byte-level scan (`RawMessage`) that splits the start
//! line, headers and body, unfolds continuation lines, expands compact header names and checks the
//! Content-Length framing (RFC 3261 §7.3, §18.3). That scan survives input rsip would refuse
//! (non-UTF-8 values, unknown methods), so we can still answer such requests with 400 or 501.
//! Second, well-framed messages are handed to `rsip` for the grammar of the start line, URIs and
//! name-addr headers, and the result is distilled into [`Request`] / [`Response`].
//!
//! Outgoing messages are written by [`ResponseBuilder`] and `dialog::RequestBuilder` as text: we
//! control header order and the exact Via/To/Record-Route copying RFC 3261 §8.2.6 demands.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use rsip::prelude::*;
use thiserror::Error;

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

/// Long names for RFC 3261 §7.3.3 compact forms (plus RFC 3515/3841/4028 ones seen in the wild).
fn expand_compact(name: &str) -> &str {
    match name {
        "i" | "I" => "Call-ID",
        "m" | "M" => "Contact",
        "e" | "E" => "Content-Encoding",
        "l" | "L" => "Content-Length",
        "c" | "C" => "Content-Type",
        "f" | "F" => "From",
        "s" | "S" => "Subject",
        "k" | "K" => "Supported",
        "t" | "T" => "To",
        "v" | "V" => "Via",
        "o" | "O" => "Event",
        "r" | "R" => "Refer-To",
        "x" | "X" => "Session-Expires",
        other => other,
    }
}

/// One header line after unfolding; `value` is raw bytes because it may not be UTF-8.
#[derive(Clone, Debug)]
pub struct RawHeader {
    pub name: String,
    pub value: Vec<u8>,
}

impl RawHeader {
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// The byte-level view of a message: enough to frame it and to answer it even when rsip cannot
/// parse it.
#[derive(Clone, Debug)]
pub struct RawMessage {
    pub start_line: String,
    pub headers: Vec<RawHeader>,
    pub body: Vec<u8>,
}

impl RawMessage {
    /// Scans a complete datagram (or one framed TCP message). `Err` carries what was readable so far
    /// so the caller can still build a 400.
    pub fn scan(buf: &[u8]) -> Result<RawMessage, (ParseError, Option<RawMessage>)> {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err((ParseError::TooLarge(buf.len()), None));
        }
        // RFC 3261 §7.5: ignore CRLFs before the start line (keep-alives, stream padding).
        let start = buf
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(buf.len());
        let buf = &buf[start..];
        let (head, body, complete) = match find_subslice(buf, b"\r\n\r\n") {
            Some(i) => (&buf[..i], &buf[i + 4..], true),
            None => match find_subslice(buf, b"\n\n") {
                Some(i) => (&buf[..i], &buf[i + 2..], true),
                None => (buf, &[][..], false),
            },
        };
        let mut lines = split_lines(head);
        let start_line = match lines.first() {
            Some(l) if looks_like_start_line(l) => String::from_utf8_lossy(l).into_owned(),
            _ => return Err((ParseError::NoStartLine, None)),
        };
        lines.remove(0);
        let mut headers: Vec<RawHeader> = Vec::new();
        let mut error = None;
        for line in lines {
            if line.is_empty() {
                continue;
            }
            if line[0] == b' ' || line[0] == b'\t' {
                // Continuation line (RFC 3261 §7.3.1): fold into the previous header with one space.
                if let Some(last) = headers.last_mut() {
                    last.value.push(b' ');
                    last.value.extend_from_slice(trim_bytes(line));
                    continue;
                }
            }
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                error.get_or_insert(ParseError::BadHeaderLine(
                    String::from_utf8_lossy(line).into_owned(),
                ));
                continue;
            };
            let name = match std::str::from_utf8(trim_bytes(&line[..colon])) {
                Ok(n) if !n.is_empty() && !n.contains(' ') => expand_compact(n).to_string(),
                _ => {
                    error.get_or_insert(ParseError::BadHeaderLine(
                        String::from_utf8_lossy(line).into_owned(),
                    ));
                    continue;
                }
            };
            let value = trim_bytes(&line[colon + 1..]).to_vec();
            if std::str::from_utf8(&value).is_err() {
                error.get_or_insert(ParseError::NotUtf8(name.clone()));
            }
            headers.push(RawHeader { name, value });
        }
        let mut raw = RawMessage {
            start_line,
            headers,
            body: Vec::new(),
        };
        if !complete {
            return Err((ParseError::Truncated, Some(raw)));
        }
        if let Some(e) = error {
            return Err((e, Some(raw)));
        }
        match raw.content_length() {
            Err(e) => return Err((e, Some(raw))),
            Ok(Some(n)) if n > body.len() => {
                let e = ParseError::BodyTooShort {
                    declared: n,
                    actual: body.len(),
                };
                return Err((e, Some(raw)));
            }
            // Extra bytes after the declared body are ignored (§18.3).
            Ok(Some(n)) => raw.body = body[..n].to_vec(),
            Ok(None) => raw.body = body.to_vec(),
        }
        Ok(raw)
    }

    pub fn header(&self, name: &str) -> Option<&RawHeader> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|h| h.value_str())
    }

    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        match self.header("Content-Length") {
            None => Ok(None),
            Some(h) => h
                .value_str()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .map(Some)
                .ok_or(ParseError::BadContentLength),
        }
    }

    pub fn is_request(&self) -> bool {
        !self.start_line.starts_with("SIP/")
    }

    /// The request method token, exactly as sent (methods are case-sensitive, RFC 3261 §7.1).
    pub fn method_token(&self) -> Option<&str> {
        if self.is_request() {
            self.start_line.split(' ').next()
        } else {
            None
        }
    }

    /// Every Via value in order, splitting comma-joined values.
    pub fn vias(&self) -> Vec<String> {
        self.header_list("Via")
    }

    /// The value of every `name` header line, in order (readable ones; not split at commas).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| h.value_str())
    }

    /// Every element of the list header `name` (Via, Contact, Record-Route), in order, with
    /// comma-joined values split.
    pub fn header_list(&self, name: &str) -> Vec<String> {
        self.header_values(name)
            .flat_map(split_comma_list)
            .collect()
    }

    /// Whether the headers needed to build any response are present and readable.
    pub fn can_answer(&self) -> bool {
        // A response is routed by its Via alone; missing From/To/Call-ID are simply not echoed.
        self.is_request() && self.vias().first().is_some_and(|v| Via::parse(v).is_ok())
    }
}

/// TCP stream framing (RFC 3261 §18.3): how long is the first message in `buf`?
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// Keep-alive CRLFs to discard (RFC 5626 §3.5.1).
    KeepAlive(usize),
    /// A complete message occupies `buf[..n]`.
    Message(usize),
    /// Need more bytes.
    Incomplete,
}

pub fn frame_stream(buf: &[u8]) -> Result<Frame, ParseError> {
    let lead = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    if lead > 0 {
        return Ok(Frame::KeepAlive(lead));
    }
    let Some(end) = find_subslice(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge(buf.len()));
        }
        return Ok(Frame::Incomplete);
    };
    let head = &buf[..end];
    let mut length = None;
    for line in split_lines(head).into_iter().skip(1) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(trim_bytes(&line[..colon]));
        if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l") {
            let v = String::from_utf8_lossy(trim_bytes(&line[colon + 1..]));
            length = Some(
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| ParseError::BadContentLength)?,
            );
        }
    }
    // On a stream Content-Length is mandatory (§18.3, §20.14).
    let length = length.ok_or(ParseError::MissingHeader("Content-Length"))?;
    let total = end + 4 + length;
    if total > MAX_MESSAGE_SIZE {
        return Err(ParseError::TooLarge(total));
    }
    if buf.len() >= total {
        Ok(Frame::Message(total))
    } else {
        Ok(Frame::Incomplete)
    }
}

/// The top Via of a request, with what RFC 3261 §18.2.1 / RFC 3581 need.
#[derive(Clone, Debug, PartialEq)]
pub struct Via {
    pub raw: String,
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub branch: Option<String>,
    pub has_rport: bool,
}

impl Via {
    pub fn parse(raw: &str) -> Result<Via, ParseError> {
        let bad = || ParseError::BadHeader("Via");
        let mut parts = raw.split(';');
        let sent = parts.next().ok_or_else(bad)?.trim();
        let (proto, sent_by) = sent.split_once(char::is_whitespace).ok_or_else(bad)?;
        let mut proto_parts = proto.split('/');
        let (Some(name), Some(_version), Some(transport)) =
            (proto_parts.next(), proto_parts.next(), proto_parts.next())
        else {
            return Err(bad());
        };
        if !name.trim().eq_ignore_ascii_case("SIP") {
            return Err(bad());
        }
        let (host, port) = split_host_port(sent_by.trim()).ok_or_else(bad)?;
        let mut branch = None;
        let mut has_rport = false;
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "branch" => branch = Some(v.trim().to_string()),
                "rport" => has_rport = true,
                _ => {}
            }
        }
        Ok(Via {
            raw: raw.trim().to_string(),
            transport: transport.trim().to_ascii_uppercase(),
            host,
            port,
            branch,
            has_rport,
        })
    }

    /// The Via value to echo in responses: `received` when the source differs from sent-by
    /// (§18.2.1) and the filled-in `rport` when the client asked for it (RFC 3581 §4).
    pub fn stamped(&self, source: SocketAddr) -> String {
        let mut params: Vec<String> = self
            .raw
            .split(';')
            .skip(1)
            .map(|p| p.trim().to_string())
            .filter(|p| {
                let k = p.split('=').next().unwrap_or("").to_ascii_lowercase();
                k != "received" && k != "rport"
            })
            .collect();
        let sent = self.raw.split(';').next().unwrap_or("").trim().to_string();
        let same_host = self
            .host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .map(|ip| ip == source.ip())
            .unwrap_or(false);
        if !same_host || self.has_rport {
            params.push(format!("received={}", source.ip()));
        }
        if self.has_rport {
            params.push(format!("rport={}", source.port()));
        }
        let mut out = sent;
        for p in params {
            out.push(';');
            out.push_str(&p);
        }
        out
    }

    /// Where responses go over UDP (§18.2.2 + RFC 3581): the source address when rport is used,
    /// else the source IP and the sent-by port.
    pub fn response_target(&self, source: SocketAddr) -> SocketAddr {
        if self.has_rport {
            source
        } else {
            SocketAddr::new(source.ip(), self.port.unwrap_or(5060))
        }
    }

    /// RFC 3261 magic cookie: only such branches identify transactions reliably.
    pub fn rfc3261_branch(&self) -> Option<&str> {
        self.branch
            .as_deref()
            .filter(|b| b.starts_with("z9hG4bK") && b.len() > 7)
    }
}

/// A name-addr header such as From/To/Contact, keeping the raw text for echoing.
#[derive(Clone, Debug, PartialEq)]
pub struct NameAddr {
    pub raw: String,
    pub uri: String,
    pub tag: Option<String>,
}

impl NameAddr {
    fn parse(raw: &str, name: &'static str) -> Result<NameAddr, ParseError> {
        let raw = raw.trim();
        let (uri, params) = if let Some(lt) = raw.find('<') {
            let gt = raw[lt..].find('>').ok_or(ParseError::BadHeader(name))? + lt;
            (raw[lt + 1..gt].trim(), &raw[gt + 1..])
        } else {
            // addr-spec form: header params follow the first ';' (§20.10).
            match raw.split_once(';') {
                Some((u, p)) => (u.trim(), p),
                None => (raw, ""),
            }
        };
        if uri.is_empty() || !uri.contains(':') {
            return Err(ParseError::BadHeader(name));
        }
        let tag = params.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("tag")
                .then(|| v.trim().to_string())
        });
        Ok(NameAddr {
            raw: raw.to_string(),
            uri: uri.to_string(),
            tag,
        })
    }

    /// The user part of the URI (`sip:alice@host` → `alice`), for logs and caller identity.
    pub fn user(&self) -> &str {
        uri_user(&self.uri)
    }
}

/// The user part of a SIP or tel URI (`sip:alice@host;x` → `alice`, `tel:+1555;y` → `+1555`);
/// empty when there is none.
pub fn uri_user(uri: &str) -> &str {
    let (scheme, after_scheme) = uri.split_once(':').unwrap_or(("", uri));
    match after_scheme.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or(user),
        // tel:+15551230001;phone-context=... (RFC 3966) is all number.
        None if scheme.eq_ignore_ascii_case("tel") => {
            after_scheme.split(';').next().unwrap_or(after_scheme)
        }
        None => "",
    }
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
    let method = match rsip::Method::all()
        .into_iter()
        .find(|m| m.to_string() == method_tok)
    {
        Some(m) => m,
        None => {
            return Err(Rejection::Respond {
                status: 501,
                reason: format!("method {method_tok} is not implemented"),
                raw: Box::new(raw),
            });
        }
    };
    // Hand the unfolded, normalised message to rsip for the URI grammar and header tokens.
    let normalised = normalise(&raw);
    let parsed = match rsip::Request::try_from(normalised.as_slice()) {
        Ok(r) => r,
        Err(e) => {
            let e = ParseError::BadStartLine(format!("{}: {e}", raw.start_line));
            return Err(reject(400, e, raw));
        }
    };
    if parsed.call_id_header().is_err() {
        return Err(reject(400, ParseError::MissingHeader("Call-ID"), raw));
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
        Some(c) if c.trim() != "*" => match NameAddr::parse(&split_comma_list(c)[0], "Contact") {
            Ok(c) => Some(c),
            Err(e) => return Err(reject(400, e, raw)),
        },
        _ => None,
    };
    let record_route = raw.header_list("Record-Route");
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
    let contacts = raw
        .header_list("Contact")
        .iter()
        .filter_map(|c| NameAddr::parse(c, "Contact").ok())
        .collect();
    let record_route = raw.header_list("Record-Route");
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

/// Re-serialises the scanned message with long header names and no folding, so rsip sees only
/// the forms its tokenizer knows.
fn normalise(raw: &RawMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + raw.body.len());
    out.extend_from_slice(raw.start_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in &raw.headers {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&raw.body);
    out
}

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
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
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

/// Splits a header value on top-level commas (not inside quotes or angle brackets).
pub fn split_comma_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth_angle = 0i32;
    let mut in_quote = false;
    let mut cur = String::new();
    let mut prev = '\0';
    for c in value.chars() {
        match c {
            '"' if prev != '\\' => in_quote = !in_quote,
            '<' if !in_quote => depth_angle += 1,
            '>' if !in_quote => depth_angle -= 1,
            ',' if !in_quote && depth_angle <= 0 => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
                prev = c;
                continue;
            }
            _ => {}
        }
        cur.push(c);
        prev = c;
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// `host[:port]` with IPv6 references in brackets.
pub fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = format!("[{}]", &rest[..end]);
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.trim().parse().ok()?),
            None if after.trim().is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h.trim().to_string(), Some(p.trim().parse().ok()?))),
        None if !s.is_empty() => Some((s.trim().to_string(), None)),
        None => None,
    }
}

fn looks_like_start_line(line: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(line) else {
        return false;
    };
    if s.starts_with("SIP/2.0 ") {
        return true;
    }
    let mut it = s.split(' ');
    let method = it.next().unwrap_or("");
    !method.is_empty()
        && method
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c))
        && it.next().is_some_and(|u| u.contains(':'))
        && it.next().is_some_and(|v| v.starts_with("SIP/"))
}

fn split_lines(buf: &[u8]) -> Vec<&[u8]> {
    buf.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect()
}

fn trim_bytes(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
