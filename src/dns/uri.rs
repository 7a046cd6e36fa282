//! The parts of a SIP URI that decide how it resolves (RFC 3263 §4): the host (a name or an IP
//! literal), an explicit port, the `transport` parameter, and whether it is `sips:`.

use std::net::IpAddr;

use thiserror::Error;

/// A SIP transport as DNS names it (NAPTR services, SRV prefixes, default ports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// RFC 3261 §19.1.2: 5061 for TLS, 5060 otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            Transport::Udp | Transport::Tcp => 5060,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// The SRV owner name prefix (RFC 3263 §4.1): `_sips._tcp` for TLS.
    pub fn srv_prefix(self) -> &'static str {
        match self {
            Transport::Udp => "_sip._udp",
            Transport::Tcp => "_sip._tcp",
            Transport::Tls => "_sips._tcp",
        }
    }

    /// The NAPTR service field (RFC 3263 §4.1, case-insensitive).
    pub fn from_naptr_service(service: &str) -> Option<Transport> {
        match service.to_ascii_uppercase().as_str() {
            "SIP+D2U" => Some(Transport::Udp),
            "SIP+D2T" => Some(Transport::Tcp),
            "SIPS+D2T" => Some(Transport::Tls),
            _ => None,
        }
    }
}

/// Why a string is not a SIP URI this line can resolve.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum UriError {
    #[error("{uri:?}: not a sip: or sips: URI")]
    Scheme { uri: String },
    #[error("{uri:?}: host {host:?} is neither an IP address nor a DNS name")]
    Host { uri: String, host: String },
    #[error("{uri:?}: bad port")]
    Port { uri: String },
    #[error("{uri:?}: transport {transport:?} is not udp, tcp or tls")]
    Transport { uri: String, transport: String },
}

/// What RFC 3263 looks at in a SIP URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipUri {
    /// A DNS name (lower case, no trailing dot) or an IP literal (no brackets).
    pub host: String,
    pub port: Option<u16>,
    pub transport: Option<Transport>,
    pub sips: bool,
}

impl SipUri {
    /// `sip:user@host:port;transport=tcp`, `sips:host`, `sip:user@[2001:db8::1]`...
    pub fn parse(uri: &str) -> Result<SipUri, UriError> {
        let text = uri.trim().trim_start_matches('<').trim_end_matches('>');
        let (scheme, rest) = text.split_once(':').ok_or_else(|| UriError::Scheme {
            uri: uri.to_string(),
        })?;
        let sips = match scheme.to_ascii_lowercase().as_str() {
            "sip" => false,
            "sips" => true,
            _ => {
                return Err(UriError::Scheme {
                    uri: uri.to_string(),
                });
            }
        };
        // Headers (`?`) are never part of the address; the user part may hold `;` and `:`.
        let rest = rest.split('?').next().unwrap_or_default();
        let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let mut parts = rest.split(';');
        let hostport = parts.next().unwrap_or_default();
        let (host, port) = split_host_port(hostport).ok_or_else(|| UriError::Port {
            uri: uri.to_string(),
        })?;
        let mut transport = None;
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.eq_ignore_ascii_case("transport")
            {
                transport = Some(match v.to_ascii_lowercase().as_str() {
                    "udp" => Transport::Udp,
                    "tcp" if sips => Transport::Tls,
                    "tcp" => Transport::Tcp,
                    "tls" => Transport::Tls,
                    _ => {
                        return Err(UriError::Transport {
                            uri: uri.to_string(),
                            transport: v.to_string(),
                        });
                    }
                });
            }
        }
        if host.parse::<IpAddr>().is_err() && !is_dns_name(&host) {
            return Err(UriError::Host {
                uri: uri.to_string(),
                host,
            });
        }
        Ok(SipUri {
            host: host.trim_end_matches('.').to_ascii_lowercase(),
            port,
            transport,
            sips,
        })
    }

    /// The host when it is an IP literal: no DNS at all.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The transport used when DNS gives no SRV (RFC 3263 §4.1/§4.2): the URI's, else TLS for
    /// `sips:` and UDP for `sip:`.
    pub fn fallback_transport(&self) -> Transport {
        match (self.transport, self.sips) {
            (Some(t), _) => t,
            (None, true) => Transport::Tls,
            (None, false) => Transport::Udp,
        }
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; `None` for a bad port.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((host, p)) => Some((host.to_string(), Some(p.parse().ok()?))),
        None => Some((s.to_string(), None)),
    }
}

/// RFC 1123 host names: labels of letters, digits and `-` (not at either end), 1-63 bytes,
/// at least one dot or a single label, 253 bytes in all; a trailing dot is allowed.
fn is_dns_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        // A name that is all digits and dots is a mistyped IPv4 address, not a name.
        && !name.chars().all(|c| c.is_ascii_digit() || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SipUri {
        SipUri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_parts_that_decide_resolution_are_read() {
        let u = p("sip:+15551230001@PBX.Example.com");
        assert_eq!(
            (u.host.as_str(), u.port, u.transport, u.sips),
            ("pbx.example.com", None, None, false)
        );
        let u = p("sip:desk@pbx.test:5070;transport=TCP;lr");
        assert_eq!((u.port, u.transport), (Some(5070), Some(Transport::Tcp)));
        let u = p("sips:pbx.test;transport=tcp");
        assert_eq!((u.sips, u.transport), (true, Some(Transport::Tls)));
        let u = p("<sip:alice;phone-context=x@[2001:db8::1]:5080>");
        assert_eq!(
            (u.ip(), u.port),
            (Some("2001:db8::1".parse().unwrap()), Some(5080))
        );
        assert_eq!(p("sip:192.0.2.1").ip(), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(p("sip:pbx.test.").host, "pbx.test");
    }

    #[test]
    fn garbage_is_refused_with_the_reason() {
        for (bad, why) in [
            ("tel:+15551230001", "sip: or sips:"),
            ("sip:desk@", "neither an IP"),
            ("sip:desk@pbx_1.test", "neither an IP"),
            ("sip:desk@-pbx.test", "neither an IP"),
            ("sip:desk@pbx..test", "neither an IP"),
            ("sip:desk@192.0.2", "neither an IP"),
            ("sip:desk@pbx.test:99999", "bad port"),
            ("sip:desk@pbx.test:x", "bad port"),
            ("sip:desk@pbx.test;transport=sctp", "not udp, tcp or tls"),
        ] {
            let err = SipUri::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn without_srv_sip_falls_back_to_udp_and_sips_to_tls() {
        assert_eq!(p("sip:pbx.test").fallback_transport(), Transport::Udp);
        assert_eq!(p("sips:pbx.test").fallback_transport(), Transport::Tls);
        assert_eq!(
            p("sip:pbx.test;transport=tcp").fallback_transport(),
            Transport::Tcp
        );
        assert_eq!(Transport::Tls.default_port(), 5061);
        assert_eq!(
            Transport::from_naptr_service("sip+d2u"),
            Some(Transport::Udp)
        );
        assert_eq!(
            Transport::from_naptr_service("SIPS+D2T"),
            Some(Transport::Tls)
        );
        assert_eq!(Transport::from_naptr_service("SIP+D2S"), None);
    }
}
