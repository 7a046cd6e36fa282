//! Who may use the admin page and API, decided without I/O: the admin token (an argon2 hash
//! from config, or the `IVR_ADMIN_TOKEN` value), login sessions with their CSRF tokens, and the
//! per-address throttle on failed logins. Time comes in as an argument, so tests run on a
//! virtual clock; the HTTP layer (`super::guard`) feeds it requests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

/// Where the admin token comes from.
pub enum TokenCheck {
    /// Nothing configured: every request is refused (never open by default).
    Unconfigured,
    /// `[admin] token_hash`: an argon2 PHC string.
    Hash(String),
    /// `IVR_ADMIN_TOKEN`: the token itself, kept only as its SHA-256.
    Plain([u8; 32]),
}

impl TokenCheck {
    /// The check from config and environment: the hash wins over the variable.
    pub fn new(token_hash: &str, env_token: Option<String>) -> TokenCheck {
        if !token_hash.is_empty() {
            TokenCheck::Hash(token_hash.to_string())
        } else {
            match env_token.filter(|t| !t.is_empty()) {
                Some(t) => TokenCheck::Plain(sha256(t.as_bytes())),
                None => TokenCheck::Unconfigured,
            }
        }
    }

    pub fn configured(&self) -> bool {
        !matches!(self, TokenCheck::Unconfigured)
    }
}

/// Checks presented tokens. Argon2 is slow on purpose (tens of milliseconds), too slow for every
/// API request, so the SHA-256 of a token that verified once is remembered and later requests
/// are compared with it in constant time.
pub struct TokenVerifier {
    check: TokenCheck,
    verified: Option<[u8; 32]>,
}

impl TokenVerifier {
    pub fn new(check: TokenCheck) -> TokenVerifier {
        TokenVerifier {
            check,
            verified: None,
        }
    }

    pub fn configured(&self) -> bool {
        self.check.configured()
    }

    /// `token` is the admin token.
    pub fn verify(&mut self, token: &str) -> bool {
        let digest = sha256(token.as_bytes());
        if let Some(known) = &self.verified
            && constant_time_eq(known, &digest)
        {
            return true;
        }
        let ok = match &self.check {
            TokenCheck::Unconfigured => false,
            TokenCheck::Plain(want) => constant_time_eq(want, &digest),
            TokenCheck::Hash(phc) => PasswordHash::new(phc).is_ok_and(|h| {
                argon2::Argon2::default()
                    .verify_password(token.as_bytes(), &h)
                    .is_ok()
            }),
        };
        if ok {
            self.verified = Some(digest);
        }
        ok
    }
}

/// The argon2id PHC string of `token` (for `[admin] token_hash`), with a fresh random salt.
pub fn hash_token(token: &str) -> Result<String, argon2::password_hash::Error> {
    let salt: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt)?;
    Ok(argon2::Argon2::default()
        .hash_password(token.as_bytes(), &salt)?
        .to_string())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equal bytes, in a time that depends only on the length (which is public here: digests and
/// tokens of fixed size).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh unguessable id (256 random bits, hex).
pub fn random_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A logged-in browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The name given at login: who acknowledges voicemails.
    pub user: String,
    /// Every form POST must carry this.
    pub csrf: String,
    pub expires_at: Timestamp,
}

/// The server-side session table: the cookie holds only a random id.
pub struct Sessions {
    ttl: Duration,
    max: usize,
    by_id: HashMap<String, Session>,
}

impl Sessions {
    pub fn new(ttl: Duration, max: usize) -> Sessions {
        Sessions {
            ttl,
            max,
            by_id: HashMap::new(),
        }
    }

    /// A new session for `user`; returns its id (the cookie value).
    pub fn create(&mut self, user: &str, now: Timestamp) -> String {
        self.expire(now);
        if self.by_id.len() >= self.max {
            // A flood of logins must not grow the table without bound: drop the oldest.
            if let Some(oldest) = self
                .by_id
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(id, _)| id.clone())
            {
                self.by_id.remove(&oldest);
            }
        }
        let id = random_id();
        let expires_at = now.checked_add(self.ttl).unwrap_or(jiff::Timestamp::MAX);
        self.by_id.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                csrf: random_id(),
                expires_at,
            },
        );
        id
    }

    /// The live session with this id.
    pub fn get(&mut self, id: &str, now: Timestamp) -> Option<Session> {
        match self.by_id.get(id) {
            Some(s) if s.expires_at > now => Some(s.clone()),
            Some(_) => {
                self.by_id.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&mut self, id: &str) {
        self.by_id.remove(id);
    }

    fn expire(&mut self, now: Timestamp) {
        self.by_id.retain(|_, s| s.expires_at > now);
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// `given` is `session`'s CSRF token.
pub fn csrf_ok(session: &Session, given: Option<&str>) -> bool {
    given.is_some_and(|g| constant_time_eq(session.csrf.as_bytes(), g.as_bytes()))
}

/// Failed logins per source address: after `max_failures` within `window`, the address is
/// refused until `block` has passed since its last failure.
pub struct LoginThrottle {
    max_failures: usize,
    window: Duration,
    block: Duration,
    max_sources: usize,
    failures: HashMap<IpAddr, Vec<Timestamp>>,
}

impl LoginThrottle {
    pub fn new(max_failures: usize, window: Duration, block: Duration) -> LoginThrottle {
        LoginThrottle {
            max_failures,
            window,
            block,
            max_sources: 10_000,
            failures: HashMap::new(),
        }
    }

    /// `Err(wait)` while `ip` is blocked.
    pub fn check(&mut self, ip: IpAddr, now: Timestamp) -> Result<(), Duration> {
        let Some(list) = self.failures.get(&ip) else {
            return Ok(());
        };
        if list.len() < self.max_failures {
            return Ok(());
        }
        let last = *list.last().expect("non-empty");
        let until = last.checked_add(self.block).unwrap_or(Timestamp::MAX);
        if until > now {
            let wait = until.duration_since(now).unsigned_abs();
            return Err(wait);
        }
        self.failures.remove(&ip);
        Ok(())
    }

    pub fn failed(&mut self, ip: IpAddr, now: Timestamp) {
        if self.failures.len() >= self.max_sources && !self.failures.contains_key(&ip) {
            let window = self.window;
            self.failures.retain(|_, l| {
                l.last()
                    .is_some_and(|t| now.duration_since(*t).unsigned_abs() < window)
            });
        }
        let window = self.window;
        let list = self.failures.entry(ip).or_default();
        list.retain(|t| now.duration_since(*t).unsigned_abs() < window);
        list.push(now);
    }

    pub fn succeeded(&mut self, ip: IpAddr) {
        self.failures.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s as i64).unwrap()
    }

    #[test]
    fn plain_token_verifies_and_others_do_not() {
        let mut v = TokenVerifier::new(TokenCheck::new("", Some("s3cret".into())));
        assert!(v.configured());
        assert!(!v.verify("s3cre"));
        assert!(!v.verify("s3cret "));
        assert!(v.verify("s3cret"));
        let mut none = TokenVerifier::new(TokenCheck::new("", Some(String::new())));
        assert!(!none.configured());
        assert!(!none.verify(""), "no token configured refuses everything");
    }

    #[test]
    fn hashed_token_verifies_and_is_remembered() {
        let phc = hash_token("correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("correct"));
        let mut v = TokenVerifier::new(TokenCheck::new(&phc, Some("ignored".into())));
        assert!(!v.verify("ignored"), "the hash wins over the variable");
        assert!(v.verify("correct horse"));
        assert!(v.verify("correct horse"), "second check from the cache");
        assert!(!v.verify("wrong horse"));
    }

    #[test]
    fn sessions_expire_and_carry_their_own_csrf_token() {
        let mut s = Sessions::new(Duration::from_secs(3600), 100);
        let a = s.create("alice", t(0));
        let b = s.create("bob", t(0));
        assert_ne!(a, b);
        let alice = s.get(&a, t(10)).expect("live");
        let bob = s.get(&b, t(10)).expect("live");
        assert_eq!(alice.user, "alice");
        assert!(csrf_ok(&alice, Some(&alice.csrf.clone())));
        assert!(!csrf_ok(&alice, Some(&bob.csrf)), "another session's token");
        assert!(!csrf_ok(&alice, None));
        assert!(!csrf_ok(&alice, Some("")));
        assert!(s.get(&a, t(3600)).is_none(), "expired at its ttl");
        assert!(s.get("nonsense", t(0)).is_none());
        s.remove(&b);
        assert!(s.get(&b, t(10)).is_none(), "logged out");
    }

    #[test]
    fn session_table_is_bounded() {
        let mut s = Sessions::new(Duration::from_secs(3600), 3);
        let first = s.create("a", t(0));
        for i in 1..10 {
            s.create("a", t(i));
        }
        assert_eq!(s.len(), 3);
        assert!(s.get(&first, t(20)).is_none(), "the oldest went first");
    }

    #[test]
    fn throttle_blocks_an_address_after_failures_and_forgives_later() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let mut th = LoginThrottle::new(3, Duration::from_secs(60), Duration::from_secs(300));
        for i in 0..3 {
            assert!(th.check(ip, t(i)).is_ok());
            th.failed(ip, t(i));
        }
        assert_eq!(th.check(ip, t(3)), Err(Duration::from_secs(299)));
        assert!(th.check(other, t(3)).is_ok(), "per address");
        assert!(th.check(ip, t(302)).is_ok(), "block over");
        // Failures spread wider than the window never add up to a block.
        let mut th = LoginThrottle::new(3, Duration::from_secs(60), Duration::from_secs(300));
        for i in 0..10 {
            th.failed(ip, t(i * 61));
            assert!(th.check(ip, t(i * 61)).is_ok());
        }
        th.failed(ip, t(1000));
        th.failed(ip, t(1001));
        th.succeeded(ip);
        th.failed(ip, t(1002));
        assert!(th.check(ip, t(1002)).is_ok(), "success resets");
    }
}
