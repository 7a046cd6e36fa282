//! The header values the endpoint reads: Via (sent-by, branch, rport), name-addr headers
//! (From, To, Contact), URI user parts and comma-separated lists.

use std::net::{IpAddr, SocketAddr};

use super::ParseError;

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
    pub(super) fn parse(raw: &str, name: &'static str) -> Result<NameAddr, ParseError> {
        let raw = raw.trim();
        // A quoted display name may hold '<', ',' or ';': skip it whole. One without its closing
        // quote leaves the header's extent unknowable (RFC 4475 §3.1.2.6): refuse it.
        let name_end = match raw.strip_prefix('"') {
            Some(quoted) => 1 + closing_quote(quoted).ok_or(ParseError::BadHeader(name))? + 1,
            None => 0,
        };
        let (uri, params) = if let Some(lt) = raw[name_end..].find('<').map(|i| i + name_end) {
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

/// The byte index of the `"` that ends a quoted string whose opening quote was just consumed
/// (RFC 3261 §25.1 quoted-pair: a backslash escapes the next character).
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
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
