//! Where a trunk's registrar host becomes an address: the ONE place the DNS resolver (the
//! `dns` module being written beside this one, hickory: NAPTR/SRV/A per RFC 3263) plugs in.
//!
//! Until then only IP literals are accepted (config validation refuses host names with a
//! message saying so), and [`IpLiteral`] is the resolver the shell uses.

use std::net::{IpAddr, SocketAddr};

/// Turns a registrar's host and port into the address to send to.
pub trait ResolveRegistrar: Send + Sync {
    /// `None` when the host cannot be resolved (now): the registration counts a transport
    /// failure and retries with backoff, so a name that starts resolving later is picked up.
    fn resolve(&self, host: &str, port: u16) -> Option<SocketAddr>;
}

/// IP literals only (`203.0.113.10`, `[2001:db8::1]`).
pub struct IpLiteral;

impl ResolveRegistrar for IpLiteral {
    fn resolve(&self, host: &str, port: u16) -> Option<SocketAddr> {
        let ip: IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
        Some(SocketAddr::new(ip, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_resolve_and_names_do_not_yet() {
        assert_eq!(
            IpLiteral.resolve("192.0.2.7", 5070),
            Some("192.0.2.7:5070".parse().unwrap())
        );
        assert_eq!(
            IpLiteral.resolve("[2001:db8::1]", 5060),
            Some("[2001:db8::1]:5060".parse().unwrap())
        );
        assert_eq!(IpLiteral.resolve("sip.example.com", 5060), None);
    }
}
