//! The `Digest` header syntax (RFC 7616 §3.4, RFC 3261 §25.1 quoting): parsing auth-params from
//! an untrusted header, and quoting values into the ones we write.

use super::error::AuthError;

/// Parsed `Digest` auth-params: lowercase keys, unquoted values, in order.
#[derive(Debug, PartialEq, Eq)]
pub struct DigestParams(Vec<(String, String)>);

impl DigestParams {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Most auth-params a Digest answer may carry: RFC 7616 defines a dozen. A header of thousands
/// (a 64 KiB datagram of `a=b,`) would make the duplicate check quadratic.
const MAX_PARAMS: usize = 32;

/// Parses `Digest k=v, k="quoted, \"value\"", ...` (RFC 7616 §3.4, RFC 3261 §25.1 quoting).
/// The scheme is case-insensitive; duplicate keys and more than [`MAX_PARAMS`] are errors.
pub fn parse_digest(value: &str) -> Result<DigestParams, AuthError> {
    let bad = |m: &str| AuthError::Malformed(m.to_string());
    let v = value.trim();
    let scheme_end = v.find(|c: char| c.is_ascii_whitespace()).unwrap_or(v.len());
    if !v[..scheme_end].eq_ignore_ascii_case("Digest") {
        return Err(AuthError::Malformed(format!(
            "scheme {:?} is not Digest",
            &v[..scheme_end]
        )));
    }
    let chars: Vec<char> = v[scheme_end..].chars().collect();
    let mut i = 0;
    let mut out: Vec<(String, String)> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && is_token_char(chars[i]) {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        if key.is_empty() {
            return Err(AuthError::Malformed(format!(
                "expected a parameter name at {:?}",
                chars[i..].iter().collect::<String>()
            )));
        }
        skip_ws(&mut i);
        if i >= chars.len() || chars[i] != '=' {
            return Err(AuthError::Malformed(format!(
                "parameter {key} has no value"
            )));
        }
        i += 1;
        skip_ws(&mut i);
        let mut val = String::new();
        if i < chars.len() && chars[i] == '"' {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(bad("unterminated quoted string")),
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        let c = chars.get(i + 1).ok_or_else(|| bad("dangling backslash"))?;
                        val.push(*c);
                        i += 2;
                    }
                    Some(c) => {
                        val.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            let vs = i;
            while i < chars.len() && is_token_char(chars[i]) {
                i += 1;
            }
            val = chars[vs..i].iter().collect();
            if val.is_empty() {
                return Err(AuthError::Malformed(format!(
                    "parameter {key} has an empty value"
                )));
            }
        }
        if out.len() == MAX_PARAMS {
            return Err(bad("too many parameters"));
        }
        if out.iter().any(|(k, _)| k.eq_ignore_ascii_case(&key)) {
            return Err(AuthError::Malformed(format!("duplicate parameter {key}")));
        }
        out.push((key.to_ascii_lowercase(), val));
        skip_ws(&mut i);
        match chars.get(i) {
            None => break,
            Some(',') => i += 1,
            Some(c) => {
                return Err(AuthError::Malformed(format!(
                    "expected ',' after parameter {key}, found {c:?}"
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(bad("Digest without parameters"));
    }
    Ok(DigestParams(out))
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

pub(super) fn quote_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
