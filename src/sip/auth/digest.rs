//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760), sans-IO.
//!
//! Server side: [`DigestServer`] writes `WWW-Authenticate` challenges and checks `Authorization`
//! answers. Its nonces are stateless: `hex(unix seconds) || hex(HMAC-SHA256(secret, seconds,
//! algorithm, realm)[..16])`, so any process that holds the secret can verify them, nothing is
//! stored per challenge, and a nonce issued for SHA-256 cannot be answered with MD5 (no downgrade).
//! Stateless nonces cannot track `nc`, so an answer can be replayed until the nonce goes stale; for
//! REGISTER that only repeats the same binding, and the registrar's Call-ID/CSeq rule rejects it.
//!
//! Client side: [`answer_challenge`] answers a 401/407 from a staff phone or trunk (issue 6's UAC).
//!
//! How the shell maps [`AuthError`] to responses:
//! - `Missing`, `WrongPassword`, `UnknownUser`, `BadNonce`, `BadRealm`, `UnsupportedAlgorithm`:
//!   401 (407 for a proxy) with fresh challenges. Log the variant, but never tell the peer which
//!   one it was (that would reveal which usernames exist).
//! - `StaleNonce`: the password was right, the nonce too old: 401 with `stale=true` challenges
//!   ([`DigestServer::stale_challenge`]), so the phone retries without asking its user.
//! - `Malformed`: 400 (RFC 7616 §3.4.6 for a `uri` that does not match the Request-URI).

use std::fmt::Write as _;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// A nonce from a clock this far ahead of ours is still accepted (clock steps, several nodes).
const FUTURE_SKEW_SECS: u64 = 5;
/// Bytes of the HMAC tag kept in a nonce: 128 bits is far beyond guessing.
const NONCE_TAG_LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
    Sha512_256,
}

impl Algorithm {
    /// The token used in the `algorithm` parameter (without the `-sess` suffix).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    /// Parses an `algorithm` value, case-insensitively; the bool is true for `-sess` variants.
    pub fn parse(token: &str) -> Option<(Algorithm, bool)> {
        let t = token.trim().to_ascii_uppercase();
        let (base, sess) = match t.strip_suffix("-SESS") {
            Some(b) => (b, true),
            None => (t.as_str(), false),
        };
        let alg = match base {
            "MD5" => Algorithm::Md5,
            "SHA-256" => Algorithm::Sha256,
            "SHA-512-256" => Algorithm::Sha512_256,
            _ => return None,
        };
        Some((alg, sess))
    }

    /// Lowercase hex of the hash of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data)),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data)),
            Algorithm::Sha512_256 => hex::encode(Sha512_256::digest(data)),
        }
    }

    /// Strength order used to pick among several challenges.
    fn rank(self) -> u8 {
        match self {
            Algorithm::Md5 => 0,
            Algorithm::Sha256 => 2,
            Algorithm::Sha512_256 => 1,
        }
    }
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no Authorization header")]
    Missing,
    #[error("malformed digest header: {0}")]
    Malformed(String),
    #[error("unknown user")]
    UnknownUser,
    #[error("wrong password (digest response does not match)")]
    WrongPassword,
    #[error("nonce is stale; re-challenge with stale=true")]
    StaleNonce,
    /// The nonce was not issued by us (forged, tampered, from another realm or algorithm).
    #[error("nonce was not issued by this server")]
    BadNonce,
    #[error("realm does not match ours")]
    BadRealm,
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
}

/// The server side: issues challenges and verifies answers without per-client state.
#[derive(Clone)]
pub struct DigestServer {
    pub realm: String,
    secret: [u8; 32],
    pub nonce_ttl: Duration,
}

impl std::fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("secret", &"<redacted>")
            .field("nonce_ttl", &self.nonce_ttl)
            .finish()
    }
}

impl DigestServer {
    /// `secret` keys the nonce HMAC; nodes of a cluster that share it accept each other's nonces.
    pub fn new(realm: impl Into<String>, secret: [u8; 32], nonce_ttl: Duration) -> Self {
        DigestServer {
            realm: realm.into(),
            secret,
            nonce_ttl,
        }
    }

    /// A server with a random secret (nonces die with the process, which is fine for one node).
    pub fn with_random_secret(realm: impl Into<String>, nonce_ttl: Duration) -> Self {
        DigestServer::new(realm, rand::random(), nonce_ttl)
    }

    /// A `WWW-Authenticate` / `Proxy-Authenticate` value for `algorithm` at Unix second `now`.
    /// RFC 8760 §2.4: send one per algorithm, most preferred (SHA-256) first.
    pub fn challenge(&self, now_unix: u64, algorithm: Algorithm) -> String {
        self.render_challenge(now_unix, algorithm, false)
    }

    /// As [`challenge`](Self::challenge) with `stale=true`, the answer to [`AuthError::StaleNonce`].
    pub fn stale_challenge(&self, now_unix: u64, algorithm: Algorithm) -> String {
        self.render_challenge(now_unix, algorithm, true)
    }

    fn render_challenge(&self, now_unix: u64, algorithm: Algorithm, stale: bool) -> String {
        let mut s = format!(
            "Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"auth\"",
            quote_escape(&self.realm),
            self.nonce(now_unix, algorithm),
            algorithm.name()
        );
        if stale {
            s.push_str(", stale=true");
        }
        s
    }

    /// The stateless nonce for `ts` and `algorithm`: 16 hex digits of time, 32 of HMAC tag.
    pub fn nonce(&self, ts: u64, algorithm: Algorithm) -> String {
        let tag = self.nonce_tag(ts, algorithm);
        format!("{:016x}{}", ts, hex::encode(&tag[..NONCE_TAG_LEN]))
    }

    fn nonce_tag(&self, ts: u64, algorithm: Algorithm) -> Vec<u8> {
        // HMAC takes keys of any length, so `new_from_slice` cannot fail.
        #[allow(clippy::expect_used)]
        let mut m = HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts any key length");
        m.update(&ts.to_be_bytes());
        m.update(algorithm.name().as_bytes());
        m.update(b"\0");
        m.update(self.realm.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// The issue time of a nonce we made for `algorithm`, or `None` when it is not ours.
    fn nonce_time(&self, nonce: &str, algorithm: Algorithm) -> Option<u64> {
        if nonce.len() != 16 + 2 * NONCE_TAG_LEN || !nonce.is_ascii() {
            return None;
        }
        let ts = u64::from_str_radix(&nonce[..16], 16).ok()?;
        let tag = hex::decode(&nonce[16..]).ok()?;
        let expected = self.nonce_tag(ts, algorithm);
        ct_eq(&tag, &expected[..NONCE_TAG_LEN]).then_some(ts)
    }

    /// Checks an `Authorization` (or `Proxy-Authorization`) value for a request with `method` and
    /// Request-URI `request_uri`. `lookup_password` maps a username to its plain password.
    /// Returns the authenticated username.
    pub fn verify(
        &self,
        method: &str,
        request_uri: &str,
        authorization: Option<&str>,
        lookup_password: impl Fn(&str) -> Option<String>,
        now_unix: u64,
    ) -> Result<String, AuthError> {
        let value = authorization.ok_or(AuthError::Missing)?;
        let p = parse_digest(value)?;
        let need = |k: &str| {
            p.get(k)
                .ok_or_else(|| AuthError::Malformed(format!("missing {k} parameter")))
        };
        let username = need("username")?;
        let realm = need("realm")?;
        let nonce = need("nonce")?;
        let uri = need("uri")?;
        let response = need("response")?;
        if realm != self.realm {
            return Err(AuthError::BadRealm);
        }
        let (algorithm, sess) = match p.get("algorithm") {
            None => (Algorithm::Md5, false),
            Some(a) => {
                Algorithm::parse(a).ok_or_else(|| AuthError::UnsupportedAlgorithm(a.to_string()))?
            }
        };
        let qop = match p.get("qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let cnonce = need("cnonce")?;
                let nc = need("nc")?;
                if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(AuthError::Malformed(format!(
                        "nc must be 8 hex digits, got {nc:?}"
                    )));
                }
                Some((cnonce, nc))
            }
            Some(q) => {
                return Err(AuthError::Malformed(format!(
                    "qop {q:?} was not offered (only \"auth\")"
                )));
            }
        };
        if sess && qop.is_none() {
            return Err(AuthError::Malformed(
                "-sess algorithms need qop and cnonce".to_string(),
            ));
        }
        if !uri.trim().eq_ignore_ascii_case(request_uri.trim()) {
            return Err(AuthError::Malformed(format!(
                "digest uri {uri:?} does not match the Request-URI {request_uri:?}"
            )));
        }
        let issued = self
            .nonce_time(nonce, algorithm)
            .ok_or(AuthError::BadNonce)?;
        let password = lookup_password(username);
        let input = DigestInput {
            algorithm,
            sess,
            username,
            realm,
            password: password.as_deref().unwrap_or(""),
            method,
            uri,
            nonce,
            qop: qop.map(|(cnonce, nc)| (cnonce, nc, "auth")),
        };
        // Hash for unknown users too, so timing does not tell which usernames exist.
        let expected = compute_response(&input);
        if password.is_none() {
            return Err(AuthError::UnknownUser);
        }
        let got = response.to_ascii_lowercase();
        if !ct_eq(got.as_bytes(), expected.as_bytes()) {
            return Err(AuthError::WrongPassword);
        }
        // Staleness is judged only once the password is known to be right (RFC 7616 §3.3).
        let ttl = self.nonce_ttl.as_secs();
        if issued > now_unix.saturating_add(FUTURE_SKEW_SECS)
            || now_unix.saturating_sub(issued) > ttl
        {
            return Err(AuthError::StaleNonce);
        }
        Ok(username.to_string())
    }
}

/// Everything the response digest is computed from.
pub struct DigestInput<'a> {
    pub algorithm: Algorithm,
    pub sess: bool,
    pub username: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
    /// `(cnonce, nc, qop)`; `None` for the RFC 2069 form.
    pub qop: Option<(&'a str, &'a str, &'a str)>,
}

/// The `response` value: `KD(H(A1), nonce:nc:cnonce:qop:H(A2))`, or `KD(H(A1), nonce:H(A2))`
/// without qop (RFC 2069). Lowercase hex.
pub fn compute_response(d: &DigestInput<'_>) -> String {
    let h = |s: &str| d.algorithm.hash_hex(s.as_bytes());
    let mut ha1 = h(&format!("{}:{}:{}", d.username, d.realm, d.password));
    if d.sess {
        let cnonce = d.qop.map(|q| q.0).unwrap_or("");
        ha1 = h(&format!("{ha1}:{}:{cnonce}", d.nonce));
    }
    let ha2 = h(&format!("{}:{}", d.method, d.uri));
    match d.qop {
        Some((cnonce, nc, qop)) => h(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", d.nonce)),
        None => h(&format!("{ha1}:{}:{ha2}", d.nonce)),
    }
}

/// Builds the `Authorization` (or `Proxy-Authorization`) value answering one
/// `WWW-Authenticate` / `Proxy-Authenticate` challenge. `nc` counts the requests sent with this
/// nonce, from 1.
pub fn answer_challenge(
    www_authenticate: &str,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, AuthError> {
    let p = parse_digest(www_authenticate)?;
    let realm = p
        .get("realm")
        .ok_or_else(|| AuthError::Malformed("challenge without realm".to_string()))?;
    let nonce = p
        .get("nonce")
        .ok_or_else(|| AuthError::Malformed("challenge without nonce".to_string()))?;
    let alg_token = p.get("algorithm");
    let (algorithm, sess) = match alg_token {
        None => (Algorithm::Md5, false),
        Some(a) => {
            Algorithm::parse(a).ok_or_else(|| AuthError::UnsupportedAlgorithm(a.to_string()))?
        }
    };
    let qop = match p.get("qop") {
        None => None,
        Some(list) => {
            if list
                .split(',')
                .any(|q| q.trim().eq_ignore_ascii_case("auth"))
            {
                Some("auth")
            } else {
                return Err(AuthError::Malformed(format!(
                    "challenge offers qop {list:?}, we only do \"auth\""
                )));
            }
        }
    };
    if sess && qop.is_none() {
        return Err(AuthError::Malformed(
            "-sess algorithm offered without qop".to_string(),
        ));
    }
    let nc_hex = format!("{nc:08x}");
    let response = compute_response(&DigestInput {
        algorithm,
        sess,
        username,
        realm,
        password,
        method,
        uri,
        nonce,
        qop: qop.map(|q| (cnonce, nc_hex.as_str(), q)),
    });
    let mut out = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\"",
        quote_escape(username),
        quote_escape(realm),
        quote_escape(nonce),
        quote_escape(uri),
        response
    );
    if let Some(a) = alg_token {
        let _ = write!(out, ", algorithm={}", a.trim());
    }
    if let Some(q) = qop {
        let _ = write!(
            out,
            ", cnonce=\"{}\", qop={q}, nc={nc_hex}",
            quote_escape(cnonce)
        );
    }
    if let Some(opaque) = p.get("opaque") {
        let _ = write!(out, ", opaque=\"{}\"", quote_escape(opaque));
    }
    Ok(out)
}

/// Of several challenges (one per `WWW-Authenticate` header), the strongest Digest one we
/// support: SHA-256, then SHA-512-256, then MD5 (RFC 8760 §2.4 leaves the choice to the client).
pub fn pick_challenge<'a>(challenges: &[&'a str]) -> Option<&'a str> {
    challenges
        .iter()
        .filter_map(|c| {
            let p = parse_digest(c).ok()?;
            let alg = match p.get("algorithm") {
                None => Algorithm::Md5,
                Some(a) => Algorithm::parse(a)?.0,
            };
            Some((alg.rank(), *c))
        })
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, c)| c)
}

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

/// Parses `Digest k=v, k="quoted, \"value\"", ...` (RFC 7616 §3.4, RFC 3261 §25.1 quoting).
/// The scheme is case-insensitive; duplicate keys are an error.
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

fn quote_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Equality whose time depends only on the lengths (which are public here), not the contents.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // black_box keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
