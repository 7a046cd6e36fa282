//! Digest computation and the stateless half of the server side: challenges, nonces and the check
//! of one `Authorization` answer (RFC 7616, RFC 8760, RFC 2069 form), plus the client's answer to a
//! challenge. What needs memory (replayed answers, failure counts) lives beside it in this folder.
//!
//! Nonces: `hex(unix seconds) || hex(8 random bytes) || hex(HMAC-SHA256(secret, seconds, salt,
//! algorithm, realm)[..16])`. Any process that holds the secret can tell one of ours from a forgery
//! with nothing stored per challenge, a nonce issued for SHA-256 cannot be answered with MD5 (no
//! downgrade), and the salt makes every challenge's nonce unique, so two phones challenged in the
//! same second never share one (the replay table counts `nc` per nonce).

use std::fmt::Write as _;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

use super::error::AuthError;
use super::params::quote_escape;
pub use super::params::{DigestParams, parse_digest};

type HmacSha256 = Hmac<Sha256>;

/// A nonce from a clock this far ahead of ours is still accepted (clock steps, several nodes).
pub(super) const FUTURE_SKEW_SECS: u64 = 5;
/// Bytes of the HMAC tag kept in a nonce: 128 bits is far beyond guessing.
const NONCE_TAG_LEN: usize = 16;
/// Random bytes in each nonce, so no two challenges share one.
const NONCE_SALT_LEN: usize = 8;
/// Hex digits of a nonce: time, salt and tag.
const NONCE_HEX_LEN: usize = 16 + 2 * NONCE_SALT_LEN + 2 * NONCE_TAG_LEN;

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

/// A digest answer that passed every stateless check: right password, our nonce, fresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub username: String,
    /// The nonce's issue time (Unix seconds).
    pub issued: u64,
    pub nonce: String,
    /// Empty for the RFC 2069 form.
    pub cnonce: String,
    /// The nonce count; 0 for the RFC 2069 form, whose nonce is single-use.
    pub nc: u32,
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

    /// A fresh nonce for `ts` and `algorithm`: 16 hex digits of time, 16 of salt, 32 of HMAC tag.
    pub fn nonce(&self, ts: u64, algorithm: Algorithm) -> String {
        let salt: [u8; NONCE_SALT_LEN] = rand::random();
        let tag = self.nonce_tag(ts, &salt, algorithm);
        format!(
            "{:016x}{}{}",
            ts,
            hex::encode(salt),
            hex::encode(&tag[..NONCE_TAG_LEN])
        )
    }

    fn nonce_tag(&self, ts: u64, salt: &[u8], algorithm: Algorithm) -> Vec<u8> {
        // HMAC takes keys of any length, so `new_from_slice` cannot fail.
        #[allow(clippy::expect_used)]
        let mut m = HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts any key length");
        m.update(&ts.to_be_bytes());
        m.update(salt);
        m.update(algorithm.name().as_bytes());
        m.update(b"\0");
        m.update(self.realm.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// The issue time of a nonce we made for `algorithm`, or `None` when it is not ours.
    fn nonce_time(&self, nonce: &str, algorithm: Algorithm) -> Option<u64> {
        if nonce.len() != NONCE_HEX_LEN || !nonce.is_ascii() {
            return None;
        }
        let ts = u64::from_str_radix(&nonce[..16], 16).ok()?;
        let salt_end = 16 + 2 * NONCE_SALT_LEN;
        let salt = hex::decode(&nonce[16..salt_end]).ok()?;
        let tag = hex::decode(&nonce[salt_end..]).ok()?;
        let expected = self.nonce_tag(ts, &salt, algorithm);
        ct_eq(&tag, &expected[..NONCE_TAG_LEN]).then_some(ts)
    }

    /// Checks an `Authorization` (or `Proxy-Authorization`) value for a request with `method` and
    /// Request-URI `request_uri`. `lookup_password` maps a username to its plain password.
    /// Returns the authenticated username. Stateless: a replayed answer passes (see
    /// [`check`](Self::check) and the replay table).
    pub fn verify(
        &self,
        method: &str,
        request_uri: &str,
        authorization: Option<&str>,
        lookup_password: impl Fn(&str) -> Option<String>,
        now_unix: u64,
    ) -> Result<String, AuthError> {
        self.check(
            method,
            request_uri,
            authorization,
            lookup_password,
            now_unix,
        )
        .map(|v| v.username)
    }

    /// As [`verify`](Self::verify), returning what the replay table needs: the nonce, its issue
    /// time, the cnonce and the nonce count of the answer.
    pub fn check(
        &self,
        method: &str,
        request_uri: &str,
        authorization: Option<&str>,
        lookup_password: impl Fn(&str) -> Option<String>,
        now_unix: u64,
    ) -> Result<Verified, AuthError> {
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
        let (cnonce, nc) = match qop {
            // Checked above to be 8 hex digits.
            Some((cnonce, nc)) => (cnonce, u32::from_str_radix(nc, 16).unwrap_or(u32::MAX)),
            None => ("", 0),
        };
        Ok(Verified {
            username: username.to_string(),
            issued,
            nonce: nonce.to_string(),
            cnonce: cnonce.to_string(),
            nc,
        })
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
    let ha1 = d
        .algorithm
        .hash_hex(format!("{}:{}:{}", d.username, d.realm, d.password).as_bytes());
    response_from_ha1(d, ha1)
}

/// As [`compute_response`] from a stored `H(username:realm:password)` (`d.password` unused):
/// trunks may be configured with the HA1 instead of the password.
fn response_from_ha1(d: &DigestInput<'_>, mut ha1: String) -> String {
    let h = |s: &str| d.algorithm.hash_hex(s.as_bytes());
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

/// What a client proves it knows: the password, or the HA1 (`H(username:realm:password)`, bound
/// to one realm and one algorithm).
#[derive(Clone, Copy)]
pub enum ClientSecret<'a> {
    Password(&'a str),
    Ha1(&'a str),
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
    answer_challenge_with(
        www_authenticate,
        method,
        uri,
        username,
        ClientSecret::Password(password),
        cnonce,
        nc,
    )
}

/// [`answer_challenge`] with the password or its HA1 (an HA1 answers only MD5 challenges:
/// it is the MD5 of `username:realm:password`).
pub fn answer_challenge_with(
    www_authenticate: &str,
    method: &str,
    uri: &str,
    username: &str,
    secret: ClientSecret<'_>,
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
    let input = DigestInput {
        algorithm,
        sess,
        username,
        realm,
        password: match secret {
            ClientSecret::Password(p) => p,
            ClientSecret::Ha1(_) => "",
        },
        method,
        uri,
        nonce,
        qop: qop.map(|q| (cnonce, nc_hex.as_str(), q)),
    };
    let response = match secret {
        ClientSecret::Password(_) => compute_response(&input),
        ClientSecret::Ha1(_) if algorithm != Algorithm::Md5 => {
            return Err(AuthError::UnsupportedAlgorithm(format!(
                "{} (only an MD5 challenge can be answered with an HA1)",
                algorithm.name()
            )));
        }
        ClientSecret::Ha1(ha1) => response_from_ha1(&input, ha1.to_ascii_lowercase()),
    };
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

/// Equality whose time depends only on the lengths (which are public here), not the contents.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // black_box keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

#[cfg(test)]
mod tests;
