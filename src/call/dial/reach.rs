//! Where a registered phone's INVITE goes, whichever node holds its registration: the first hop
//! of its Path (RFC 3327) when it registered through a proxy, else its Contact or the address
//! its REGISTER came from.

use std::net::SocketAddr;

use crate::sip::{Transport, name_addr_uri, uri_socket_addr};

/// Where to send a registered phone its INVITE: over TCP, the connection it registered on (the
/// transport ignores the address then); over UDP its Contact when that names the address the
/// REGISTER came from (another port is fine: the phone may listen elsewhere), else the REGISTER's
/// source: a phone behind NAT advertises a private address it cannot be reached at.
pub(super) fn binding_destination(
    contact: &str,
    source: SocketAddr,
    transport: Transport,
) -> SocketAddr {
    match (transport, crate::sip::uri_socket_addr(contact)) {
        (Transport::Udp, Some(addr)) if addr.ip() == source.ip() => addr,
        _ => source,
    }
}

/// Where a request routed by `path` (RFC 3327) goes first: its first entry's address, when an
/// IP literal (a proxy's Path names its own address).
pub(super) fn first_hop(path: &[String]) -> Option<SocketAddr> {
    uri_socket_addr(name_addr_uri(path.first()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_phones_are_reached_where_they_can_be() {
        let source: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        // The Contact names the REGISTER's address (maybe another port): use it.
        assert_eq!(
            binding_destination("sip:alice@198.51.100.7:5070", source, Transport::Udp),
            "198.51.100.7:5070".parse().unwrap()
        );
        // A private address behind NAT, or a host name: where the REGISTER came from.
        for contact in ["sip:alice@192.168.1.20:5060", "sip:alice@laptop.local"] {
            assert_eq!(binding_destination(contact, source, Transport::Udp), source);
        }
        // Over TCP, the registration's connection.
        assert_eq!(
            binding_destination("sip:alice@198.51.100.7:5070", source, Transport::Tcp(3)),
            source
        );
    }
}
