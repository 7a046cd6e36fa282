//! Fuzz targets for everything `ivr` reads from the network, and a stable-toolchain fuzzer that
//! runs them.
//!
//! Each target takes arbitrary bytes, drives the real code path those bytes would reach in
//! `ivr serve` (the SIP parser and the endpoint core behind it, SDP offer/answer, RTP with the
//! statistics, relay and DTMF stages behind it, the digest parser and verifier) and must never
//! panic. Targets also check a few properties that must hold for any input (what we send parses
//! with our own parser; our SDP answer negotiates back to the same codec); a broken property is a
//! panic, so it is a finding like any crash. The return value is a coarse signature of what the
//! input did (statuses sent, error kinds, digits decoded): the fuzzer keeps an input that shows a
//! new signature as a parent for further mutation, a poor man's coverage feedback for a stable
//! toolchain without instrumentation.
//!
//! The targets are plain functions so a future cargo-fuzz crate calls the same ones:
//! `fuzz_target!(|data: &[u8]| { ivr::fuzz::sdp(data); })`.
//!
//! [`engine::run`] is the fuzzer: it starts from the committed corpus (`fuzz/corpus/<target>/`),
//! mutates with [`mutate::Mutator`] (byte-level and structure-aware: SIP header lines,
//! Content-Length, SDP lines, digest parameters, RTP header fields, RFC 4733 packet sequences),
//! catches panics per case and saves each crashing input to `fuzz/artifacts/<target>/`.
//! `tests/edge/fuzz.rs` runs every target for a fixed number of cases; `fuzz/run.sh` runs them for
//! minutes in an optimised build with overflow checks (`examples/fuzz.rs`).

mod digest;
pub mod engine;
mod media;
pub mod mutate;
mod sdp;
mod session;
mod signature;
mod sip;

pub use digest::digest;
pub use media::{rfc4733, rtp};
pub use sdp::sdp;
pub use session::sip_session;
pub use sip::sip_message;

/// Which structure-aware mutations suit a target's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One SIP message (text lines, headers, a Content-Length and a body).
    SipMessage,
    /// SIP messages and harness directives separated by `%%` lines (see [`sip_session`]).
    SipSession,
    /// An SDP body.
    Sdp,
    /// An `Authorization` / `WWW-Authenticate` value.
    Digest,
    /// One RTP (or RTCP) datagram.
    Rtp,
    /// Length-prefixed RTP datagrams with arrival gaps (see [`rfc4733`]).
    RtpSequence,
}

/// A fuzz target: its name (the corpus and artifact directory), entry point and input shape.
#[derive(Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]) -> u64,
    pub shape: Shape,
    /// Longest input the mutator builds: a little past what the transport would accept, so the
    /// size limits themselves are exercised.
    pub max_len: usize,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

/// Every target, in the order the runner reports them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "sip_message",
        run: sip_message,
        shape: Shape::SipMessage,
        max_len: 70_000,
    },
    Target {
        name: "sip_session",
        run: sip_session,
        shape: Shape::SipSession,
        max_len: 24_000,
    },
    Target {
        name: "sdp",
        run: sdp,
        shape: Shape::Sdp,
        max_len: 16_000,
    },
    Target {
        name: "rtp",
        run: rtp,
        shape: Shape::Rtp,
        max_len: 2_048,
    },
    Target {
        name: "rfc4733",
        run: rfc4733,
        shape: Shape::RtpSequence,
        max_len: 64_000,
    },
    Target {
        name: "digest",
        run: digest,
        shape: Shape::Digest,
        max_len: 8_000,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
