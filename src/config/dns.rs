//! `[dns]`: the name servers SIP host names (a call-back trunk, later trunks and desk phones
//! by name) are resolved with, RFC 3263 (src/dns). Empty `servers`: /etc/resolv.conf.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// `[dns]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// "IP" or "IP:port" ("[v6]:port"); empty: the system's resolvers.
    pub servers: Vec<String>,
    /// How long one query waits for an answer (milliseconds).
    pub timeout_ms: u64,
    /// How many times a query is sent before it counts as timed out.
    pub attempts: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            servers: Vec::new(),
            timeout_ms: 2000,
            attempts: 2,
        }
    }
}

/// One `servers` entry: an IP (port 53) or an IP and port.
pub fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| "expected an IP address, optionally with a port, e.g. \"192.0.2.53\" or \"127.0.0.1:5353\" (a name server is given by address, not by name)".into())
}

impl DnsConfig {
    /// The resolver's settings; `Err((key, value, reason))` names the entry at fault.
    pub fn settings(&self) -> Result<crate::dns::DnsSettings, (&'static str, String, String)> {
        let servers = self
            .servers
            .iter()
            .map(|s| parse_dns_server(s).map_err(|r| ("dns.servers", s.clone(), r)))
            .collect::<Result<Vec<_>, _>>()?;
        if !(1..=30_000).contains(&self.timeout_ms) {
            return Err((
                "dns.timeout_ms",
                self.timeout_ms.to_string(),
                "expected 1 to 30000 milliseconds".into(),
            ));
        }
        if !(1..=10).contains(&self.attempts) {
            return Err((
                "dns.attempts",
                self.attempts.to_string(),
                "expected 1 to 10".into(),
            ));
        }
        Ok(crate::dns::DnsSettings {
            servers,
            timeout: Duration::from_millis(self.timeout_ms),
            attempts: self.attempts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_addresses_with_an_optional_port() {
        assert_eq!(
            parse_dns_server("192.0.2.53"),
            Ok("192.0.2.53:53".parse().unwrap())
        );
        assert_eq!(
            parse_dns_server("127.0.0.1:5353"),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_dns_server("[::1]:5353"),
            Ok("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_dns_server("::1"), Ok("[::1]:53".parse().unwrap()));
        for bad in ["dns.example.com", "127.0.0.1:x", ""] {
            assert!(parse_dns_server(bad).is_err(), "{bad}");
        }
        let c = DnsConfig {
            servers: vec!["127.0.0.1:5353".into()],
            ..DnsConfig::default()
        };
        let s = c.settings().unwrap();
        assert_eq!(
            (s.servers.len(), s.timeout, s.attempts),
            (1, Duration::from_secs(2), 2)
        );
        let c = DnsConfig {
            timeout_ms: 0,
            ..DnsConfig::default()
        };
        assert!(c.settings().is_err());
    }
}
