//! Edits that know text inputs: SIP header lines, Content-Length and parameters, `sip_session`
//! chunks and directives, SDP lines, digest parameters.

use rand::Rng;

use super::Mutator;
use super::dictionary::{DIGEST_TOKENS, NUMBERS, SIP_LINES};

impl Mutator<'_> {
    pub(super) fn lines_edit(&mut self, d: &mut Vec<u8>, dictionary: &[&str], eol: &str) {
        let mut lines = split_lines(d);
        match self.rng.random_range(0..9) {
            0 if !lines.is_empty() => {
                let i = self.rng.random_range(0..lines.len());
                let copy = lines[i].clone();
                let at = self.pos(lines.len());
                lines.insert(at, copy);
            }
            1 if lines.len() > 1 => {
                let i = self.rng.random_range(1..lines.len());
                lines.remove(i);
            }
            2 if lines.len() > 2 => {
                let a = self.rng.random_range(0..lines.len());
                let b = self.rng.random_range(0..lines.len());
                lines.swap(a, b);
            }
            3 | 4 => {
                let mut line = self.pick(dictionary).as_bytes().to_vec();
                line.extend_from_slice(eol.as_bytes());
                // Not before the start line, mostly.
                let at = if lines.is_empty() {
                    0
                } else {
                    self.rng.random_range(1..=lines.len())
                };
                lines.insert(at, line);
            }
            5 if !lines.is_empty() => {
                // Line endings: bare LF, bare CR, none.
                let i = self.rng.random_range(0..lines.len());
                let l = &mut lines[i];
                let body_end = l.iter().rposition(|b| *b != b'\r' && *b != b'\n');
                l.truncate(body_end.map_or(0, |e| e + 1));
                l.extend_from_slice(self.pick(&[&b"\n"[..], b"\r", b"", b"\r\r\n", b"\n\r"]));
            }
            6 if !lines.is_empty() => {
                // Fold: a continuation line in the middle of a value.
                let i = self.rng.random_range(0..lines.len());
                let l = &mut lines[i];
                let at = self.rng.random_range(0..=l.len());
                let fold: &[u8] = self.pick(&[&b"\r\n "[..], b"\r\n\t", b"\n "]);
                l.splice(at..at, fold.iter().copied());
            }
            7 if !lines.is_empty() => {
                // Lower/upper-case a line's first word (header names, methods, SDP types).
                let i = self.rng.random_range(0..lines.len());
                let upper = self.rng.random_bool(0.5);
                for b in lines[i]
                    .iter_mut()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
                {
                    *b = if upper {
                        b.to_ascii_uppercase()
                    } else {
                        b.to_ascii_lowercase()
                    };
                }
            }
            _ if !lines.is_empty() => {
                // Repeat a line's value: a header with many list elements.
                let i = self.rng.random_range(0..lines.len());
                let l = &lines[i];
                if let Some(colon) = l.iter().position(|b| *b == b':' || *b == b'=') {
                    let end = l
                        .iter()
                        .rposition(|b| *b != b'\r' && *b != b'\n')
                        .map_or(l.len(), |e| e + 1);
                    if end > colon + 1 {
                        let value = l[colon + 1..end].to_vec();
                        let times = self.pick(&[2usize, 10, 100, 1000]);
                        let mut grown = l[..end].to_vec();
                        for _ in 1..times {
                            grown.push(b',');
                            grown.extend_from_slice(&value);
                        }
                        grown.extend_from_slice(&l[end..]);
                        lines[i] = grown;
                    }
                }
            }
            _ => {}
        }
        *d = lines.concat();
    }

    pub(super) fn sip_edit(&mut self, d: &mut Vec<u8>) {
        match self.rng.random_range(0..6) {
            0 => self.content_length(d),
            1 => self.header_param(d),
            _ => self.lines_edit(d, SIP_LINES, "\r\n"),
        }
    }

    /// Rewrites (or adds, or doubles) Content-Length: right, off by one, huge, garbage.
    fn content_length(&mut self, d: &mut Vec<u8>) {
        let body_len = find(d, b"\r\n\r\n").map_or(0, |i| d.len() - i - 4);
        let value = match self.rng.random_range(0..5) {
            0 => body_len.to_string(),
            1 => (body_len + 1).to_string(),
            2 => body_len.saturating_sub(1).to_string(),
            _ => self.pick(NUMBERS).to_string(),
        };
        let lines = split_lines(d);
        let idx = lines.iter().position(|l| {
            let l = String::from_utf8_lossy(l).to_ascii_lowercase();
            l.starts_with("content-length") || l.starts_with("l:") || l.starts_with("l :")
        });
        let mut lines = lines;
        let line = format!("Content-Length: {value}\r\n").into_bytes();
        match idx {
            Some(i) if self.rng.random_bool(0.7) => lines[i] = line,
            Some(i) => lines.insert(i, line),
            None if lines.len() > 1 => lines.insert(1, line),
            None => lines.push(line),
        }
        *d = lines.concat();
    }

    /// Appends a parameter to a header line's value.
    fn header_param(&mut self, d: &mut Vec<u8>) {
        let mut lines = split_lines(d);
        let headers: Vec<usize> = (1..lines.len())
            .filter(|i| lines[*i].contains(&b':'))
            .collect();
        if headers.is_empty() {
            return;
        }
        let i = self.pick(&headers);
        let param: &str = self.pick(&[
            ";tag=x",
            ";tag=",
            ";tag",
            ";branch=z9hG4bKdup",
            ";rport",
            ";received=10.0.0.1",
            ";lr",
            ";expires=0",
            ";q=0.5",
            ";",
            ";;",
            ";=",
            ", <sip:x@y>",
            ",",
            " ;x=\"\\\"",
            ">",
            "<",
        ]);
        let l = &mut lines[i];
        let end = l
            .iter()
            .rposition(|b| *b != b'\r' && *b != b'\n')
            .map_or(l.len(), |e| e + 1);
        l.splice(end..end, param.bytes());
        *d = lines.concat();
    }

    // ---- sip_session: chunks of messages and directives ----

    pub(super) fn session_edit(&mut self, d: &mut Vec<u8>) {
        let mut chunks = session_chunks(d);
        match self.rng.random_range(0..8) {
            0 if !chunks.is_empty() => {
                let i = self.rng.random_range(0..chunks.len());
                let copy = chunks[i].clone();
                chunks.insert(i, copy);
            }
            1 if chunks.len() > 1 => {
                let i = self.rng.random_range(0..chunks.len());
                chunks.remove(i);
            }
            2 if chunks.len() > 1 => {
                let a = self.rng.random_range(0..chunks.len());
                let b = self.rng.random_range(0..chunks.len());
                chunks.swap(a, b);
            }
            3 => {
                let dir: &str = self.pick(&[
                    "!wait 500",
                    "!wait 4000",
                    "!wait 32000",
                    "!wait 3600000",
                    "!hangup",
                    "!accept",
                    "!dial",
                    "!tcp",
                    "!udp",
                    "!src 1",
                    "!src 2",
                    "!src 3",
                    "!drain",
                    "!policy ring",
                    "!policy reject",
                    "!policy hangup",
                    "!policy ignore",
                ]);
                let at = self.pos(chunks.len());
                chunks.insert(at, format!("{dir}\n").into_bytes());
            }
            4 if !self.others.is_empty() => {
                let other = &self.others[self.rng.random_range(0..self.others.len())];
                let theirs = session_chunks(other);
                if !theirs.is_empty() {
                    let c = theirs[self.rng.random_range(0..theirs.len())].clone();
                    let at = self.pos(chunks.len());
                    chunks.insert(at, c);
                }
            }
            _ if !chunks.is_empty() => {
                let i = self.rng.random_range(0..chunks.len());
                let mut c = std::mem::take(&mut chunks[i]);
                if c.first() == Some(&b'!') {
                    self.byte_edit(&mut c);
                } else {
                    self.sip_edit(&mut c);
                }
                chunks[i] = c;
            }
            _ => {}
        }
        *d = join_chunks(&chunks);
    }

    // ---- digest ----

    pub(super) fn digest_edit(&mut self, d: &mut Vec<u8>) {
        let text = String::from_utf8_lossy(d).into_owned();
        // Parameters of the first line, split at commas outside quotes.
        let (first, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        let (scheme, params) = first.split_once(' ').unwrap_or((first, ""));
        let mut params = split_params(params);
        match self.rng.random_range(0..6) {
            0 if !params.is_empty() => {
                let i = self.rng.random_range(0..params.len());
                params.remove(i);
            }
            1 if !params.is_empty() => {
                let i = self.rng.random_range(0..params.len());
                let p = params[i].clone();
                params.insert(self.pos(params.len()), p);
            }
            2 if params.len() > 1 => {
                let a = self.rng.random_range(0..params.len());
                let b = self.rng.random_range(0..params.len());
                params.swap(a, b);
            }
            3 if !params.is_empty() => {
                // Unquote or requote a value.
                let i = self.rng.random_range(0..params.len());
                params[i] = if params[i].contains('"') {
                    params[i].replacen('"', "", 1 + self.below(2))
                } else {
                    params[i].replacen('=', "=\"", 1)
                };
            }
            _ => {
                let p = self.pick(DIGEST_TOKENS).to_string();
                params.insert(self.pos(params.len()), p);
            }
        }
        let sep = self.pick(&[", ", ",", " , ", ",\t"]);
        let mut out = format!("{scheme} {}", params.join(sep));
        if !rest.is_empty() || text.contains('\n') {
            out.push('\n');
            out.push_str(rest);
        }
        *d = out.into_bytes();
    }
}

/// Lines with their endings kept (so joining them gives the input back).
pub(super) fn split_lines(d: &[u8]) -> Vec<Vec<u8>> {
    d.split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// `sip_session` chunks with their `%%` terminators (so joining them gives the input back).
pub(super) fn session_chunks(d: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for line in d.split_inclusive(|b| *b == b'\n') {
        cur.extend_from_slice(line);
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare == b"%%" {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

pub(super) fn join_chunks(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(c);
        let ends_with_sep = c.ends_with(b"\n%%\n") || c.ends_with(b"\n%%\r\n") || c == b"%%\n";
        if !ends_with_sep {
            // A chunk moved from the end (or inserted) gets its own terminator.
            if !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(b"%%\n");
        }
    }
    out
}

/// Digest parameters split at commas outside quotes.
fn split_params(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
