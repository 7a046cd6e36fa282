//! Why a digest answer was not accepted; the shell maps each to a response (see `auth`).

use thiserror::Error;

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
    /// A right answer seen before: the same nonce, cnonce and `nc` (or, without qop, the same
    /// nonce) again. Answered like [`StaleNonce`](Self::StaleNonce), so a phone that re-sent
    /// recovers with a fresh nonce while a replayer gains nothing.
    #[error("digest answer replayed (nonce count already used)")]
    Replayed,
}
