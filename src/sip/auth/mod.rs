//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760), sans-IO.
//!
//! Server side: the endpoint holds one [`Gatekeeper`], which answers three questions about a
//! request that wants to authenticate (a REGISTER, or an INVITE from a staff From):
//! 1. May it be checked at all? ([`Gatekeeper::admit`], before any hashing: sources and users
//!    blocked after repeated failures are refused or ignored; `lockout.rs`.)
//! 2. Is the answer right? ([`DigestServer::check`], stateless: HMAC nonces bound to time,
//!    salt and algorithm, the response digest; `digest.rs`.)
//! 3. Was this right answer used before? (The nonce-count table: a replayed `Authorization`,
//!    from anywhere, with any Call-ID, is refused; `replay.rs`.)
//!
//! Client side: [`answer_challenge`] answers a 401/407 from a staff phone or trunk (issue 6's UAC).
//!
//! How the shell maps the outcomes to responses:
//! - [`Admission::Refuse`]: 403, the same for every source and user; [`Admission::Drop`]: nothing.
//! - `Missing`, `WrongPassword`, `UnknownUser`, `BadNonce`, `BadRealm`, `UnsupportedAlgorithm`:
//!   401 (407 for a proxy) with fresh challenges. Log the variant, but never tell the peer which
//!   one it was (that would reveal which usernames exist).
//! - `StaleNonce` and `Replayed`: 401/407 with `stale=true` challenges
//!   ([`DigestServer::stale_challenge`]), so a phone that re-sent an old answer retries at once
//!   with a fresh nonce without asking its user; a replayer gets a nonce it cannot answer. (403
//!   would also refuse the replay but strand an honest phone that re-used a count.)
//! - `Malformed`: 400 (RFC 7616 §3.4.6 for a `uri` that does not match the Request-URI).
//!
//! Every failure except `Missing` and `StaleNonce` counts against the source; wrong passwords
//! (known or unknown user alike) also count against the user named in the answer. Blocks that
//! start come out of [`Gatekeeper::poll_block`], one log line each.

mod digest;
mod error;
mod lockout;
mod params;
mod replay;
mod table;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::LogThrottle;

pub use digest::{
    Algorithm, ClientSecret, DigestInput, DigestParams, DigestServer, Verified, answer_challenge,
    answer_challenge_with, compute_response, parse_digest, pick_challenge,
};
pub use error::AuthError;
pub use lockout::{
    Admission, Block, Culprit, Lockout, LockoutPolicy, MAX_SOURCES, MAX_TRUSTED, MAX_USERS, TRUST,
    source_key,
};
pub use replay::NonceCounts;

/// Used-nonce-count entries: one per (user, nonce, cnonce) answered right within a nonce's
/// lifetime, i.e. per phone per nonce; far more than any desk needs.
pub const MAX_NONCES: usize = 16_384;

/// The server side of digest auth with memory: stateless checks, replay refusal and lockout.
#[derive(Debug)]
pub struct Gatekeeper {
    digest: DigestServer,
    replays: NonceCounts,
    lockout: Lockout,
    blocks: VecDeque<Block>,
    /// Failed answers and replays are logged with a count, at most once a second each: a guesser
    /// must not be able to write a line per guess.
    pub(crate) failure_log: LogThrottle,
    pub(crate) replay_log: LogThrottle,
}

impl Gatekeeper {
    pub fn new(digest: DigestServer, policy: LockoutPolicy) -> Self {
        Gatekeeper::with_parts(digest, Lockout::new(policy), MAX_NONCES)
    }

    /// With a given lockout and nonce table size (tests use small ones).
    pub fn with_parts(digest: DigestServer, lockout: Lockout, max_nonces: usize) -> Self {
        let lifetime = digest.nonce_ttl + Duration::from_secs(digest::FUTURE_SKEW_SECS);
        Gatekeeper {
            digest,
            replays: NonceCounts::new(lifetime, max_nonces),
            lockout,
            blocks: VecDeque::new(),
            failure_log: LogThrottle::default(),
            replay_log: LogThrottle::default(),
        }
    }

    pub fn digest(&self) -> &DigestServer {
        &self.digest
    }

    /// See [`Lockout::admit`]; `user` is the name in the request's credentials, if any.
    pub fn admit(&mut self, now: Instant, source: IpAddr, user: Option<&str>) -> Admission {
        self.lockout.admit(now, source, user)
    }

    /// Checks `authorization` for a request with `method` and `request_uri` from `source`, and
    /// books the outcome: a success trusts the source for that user, a failure counts against
    /// it (see the module doc). Returns the authenticated username.
    #[allow(clippy::too_many_arguments)]
    pub fn authenticate(
        &mut self,
        now: Instant,
        now_unix: u64,
        source: IpAddr,
        method: &str,
        request_uri: &str,
        authorization: Option<&str>,
        lookup_password: impl Fn(&str) -> Option<String>,
    ) -> Result<String, AuthError> {
        let result = self
            .digest
            .check(
                method,
                request_uri,
                authorization,
                lookup_password,
                now_unix,
            )
            .and_then(|v| {
                self.replays.record(&v, now_unix)?;
                Ok(v.username)
            });
        match &result {
            Ok(user) => self.lockout.succeeded(now, source, user),
            Err(AuthError::Missing | AuthError::StaleNonce) => {}
            Err(e) => {
                let guessed = match e {
                    AuthError::WrongPassword | AuthError::UnknownUser => authorization
                        .and_then(|a| parse_digest(a).ok())
                        .and_then(|p| p.get("username").map(str::to_string)),
                    _ => None,
                };
                let started = self.lockout.failed(now, source, guessed.as_deref());
                self.blocks.extend(started);
            }
        }
        result
    }

    /// The next block that started (one log line each).
    pub fn poll_block(&mut self) -> Option<Block> {
        self.blocks.pop_front()
    }

    /// Entries in the nonce, source, user and trusted tables (for tests and metrics).
    pub fn table_sizes(&self) -> [usize; 4] {
        let (s, u, t) = self.lockout.sizes();
        [self.replays.len(), s, u, t]
    }
}
