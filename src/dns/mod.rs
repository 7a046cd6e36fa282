//! SIP addresses by host name (RFC 3263): which transport, IP and port to send a request for
//! `sip:user@host` to, in the order to try them, and when to move to the next.
//!
//! Sans-IO core plus a thin shell, like the SIP layer:
//! - [`uri`]: the parts of a SIP URI that decide the lookups (host, port, transport, sips);
//! - [`srv`]: NAPTR selection and RFC 2782 SRV ordering (priority, then weighted random);
//! - [`procedure`]: the RFC 3263 §4 steps as a state machine fed DNS answers;
//! - [`cursor`]: failover to the next target on a transport error, a timeout or a 503 (§4.3);
//! - [`resolver`]: the async shell over hickory-resolver (name servers from `[dns]` or
//!   /etc/resolv.conf, hickory's TTL-honouring cache) behind the [`Lookup`] trait.
//!
//! An IP literal never touches DNS, so configs written before this module behave as before.

pub mod cursor;
pub mod procedure;
pub mod resolver;
pub mod srv;
pub mod uri;

pub use cursor::{Failure, TargetCursor};
pub use resolver::{DnsSettings, HickoryLookup, Lookup, SipDestination, SipResolver};
pub use uri::{SipUri, Transport};

use std::net::SocketAddr;

use thiserror::Error;

/// Where to send one attempt: a transport and an address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.transport.as_str())
    }
}

/// Why a name gave no target.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("{name}: no such domain (NXDOMAIN)")]
    NxDomain { name: String },
    #[error("{name}: no {kind} records")]
    NoRecords { name: String, kind: &'static str },
    #[error("{name}: DNS query timed out")]
    Timeout { name: String },
    #[error("{name}: DNS lookup failed: {reason}")]
    Failed { name: String, reason: String },
    #[error("{name}: no address for a transport this sender can use ({found})")]
    NoUsableTransport { name: String, found: String },
    #[error(transparent)]
    BadUri(#[from] uri::UriError),
}
