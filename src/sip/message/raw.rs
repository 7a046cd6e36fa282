//! Byte-level scanning of SIP messages: the start line, unfolded headers with compact names
//! expanded, the body cut at Content-Length (RFC 3261 §7.3, §18.3), and TCP stream framing.
//! The scan survives input a grammar parser would refuse, so such requests can still be answered.

use super::{MAX_MESSAGE_SIZE, ParseError, Via, split_comma_list};

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
                // A blank one adds nothing: a trailing space would stay in the value (found by the
                // fuzzer: a Call-ID echoed with it no longer matched the peer's).
                if let Some(last) = headers.last_mut() {
                    let more = trim_bytes(line);
                    if !more.is_empty() {
                        if !last.value.is_empty() {
                            last.value.push(b' ');
                        }
                        last.value.extend_from_slice(more);
                    }
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

    /// The declared body length. Two Content-Length headers that disagree make the message's
    /// end ambiguous (RFC 4475 §3.1.2.11): which one a proxy in front believed is unknowable, so
    /// the message is refused rather than guessed at (request smuggling).
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        let mut length = None;
        for h in self
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("Content-Length"))
        {
            let n = h
                .value_str()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(ParseError::BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(ParseError::ConflictingContentLength);
            }
            length = Some(n);
        }
        Ok(length)
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
            let n = v
                .trim()
                .parse::<usize>()
                .map_err(|_| ParseError::BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(ParseError::ConflictingContentLength);
            }
            length = Some(n);
        }
    }
    // On a stream Content-Length is mandatory (§18.3, §20.14).
    let length = length.ok_or(ParseError::MissingHeader("Content-Length"))?;
    // Saturating: a length near usize::MAX wrapped the sum to a few bytes (found by the fuzzer;
    // at exactly 0 the connection's reader was handed an empty message for ever).
    let total = (end + 4).saturating_add(length);
    if total > MAX_MESSAGE_SIZE {
        return Err(ParseError::TooLarge(total));
    }
    if buf.len() >= total {
        Ok(Frame::Message(total))
    } else {
        Ok(Frame::Incomplete)
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
