//! A staff user's phones registered with OTHER nodes (issue 16): the store's copy of their
//! bindings, less this node's own (its registrar is authoritative for those) and less any
//! contact this node has itself, each turned into where and how to send the INVITE.

use std::net::SocketAddr;

use crate::sip::Binding as Local;
use crate::store::Binding;

/// How to reach a phone another node registered.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Remote {
    pub(super) uri: String,
    pub(super) destination: SocketAddr,
    /// Route headers: the registration's Path (RFC 3327), through the proxy that saw it.
    pub(super) route: Vec<String>,
}

/// The store's `stored` bindings of a user reachable from here and not already among `local`
/// (this node's registrar's), deduplicated by contact, in the store's order. A binding with a
/// Path goes to its first hop (an IP literal; else to the source it registered from) over
/// UDP; one without goes to its source, over UDP only: a TCP registration is reachable only
/// through the connection the other node holds.
pub(super) fn remote_contacts(local: &[Local], stored: Vec<Binding>, node: &str) -> Vec<Remote> {
    let mut out: Vec<Remote> = Vec::new();
    for b in stored {
        let known = |c: &str| c.trim().eq_ignore_ascii_case(b.contact.trim());
        if b.node == node
            || local.iter().any(|l| known(&l.contact))
            || out.iter().any(|r| known(&r.uri))
        {
            continue;
        }
        let destination = match super::reach::first_hop(&b.path) {
            Some(hop) => hop,
            None if !b.path.is_empty() => b.source,
            None if b.transport.eq_ignore_ascii_case("udp") => {
                super::reach::binding_destination(&b.contact, b.source, crate::sip::Transport::Udp)
            }
            None => continue,
        };
        out.push(Remote {
            uri: b.contact,
            destination,
            route: b.path,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::sip::Transport;

    fn stored(contact: &str, node: &str, transport: &str, path: &[&str]) -> Binding {
        Binding {
            user: "alice".into(),
            contact: contact.into(),
            source: "198.51.100.9:5060".parse().unwrap(),
            transport: transport.into(),
            path: path.iter().map(|p| p.to_string()).collect(),
            expires_at: "2030-01-01T00:00:00Z".parse().unwrap(),
            node: node.into(),
        }
    }

    #[test]
    fn other_nodes_phones_are_reached_through_their_path_or_source() {
        let local = vec![Local {
            contact: "sip:alice@10.0.0.1:5060".into(),
            expires_at: Instant::now(),
            call_id: "c".into(),
            cseq: 1,
            q: None,
            source: "10.0.0.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            path: Vec::new(),
        }];
        let via_proxy = "<sip:192.0.2.1:5070;lr;received=sip:203.0.113.5:41000>";
        let got = remote_contacts(
            &local,
            vec![
                // This node's own row (a copy of its registrar): skipped.
                stored("sip:alice@10.0.0.7", "n1", "udp", &[]),
                // The same phone this node has: skipped, the local binding rings it.
                stored("SIP:alice@10.0.0.1:5060", "n2", "udp", &[]),
                stored("sip:alice@10.0.0.2:5062", "n2", "udp", &[via_proxy]),
                stored("sip:alice@198.51.100.9:5064", "n2", "udp", &[]),
                // Over TCP to the other node, no Path: nothing here can reach it.
                stored("sip:alice@10.0.0.3", "n2", "tcp", &[]),
                // The same contact registered with a third node too: rung once.
                stored("sip:alice@10.0.0.2:5062", "n3", "udp", &[]),
            ],
            "n1",
        );
        assert_eq!(
            got,
            vec![
                Remote {
                    uri: "sip:alice@10.0.0.2:5062".into(),
                    destination: "192.0.2.1:5070".parse().unwrap(),
                    route: vec![via_proxy.into()],
                },
                Remote {
                    uri: "sip:alice@198.51.100.9:5064".into(),
                    destination: "198.51.100.9:5064".parse().unwrap(),
                    route: Vec::new(),
                },
            ]
        );
    }
}
