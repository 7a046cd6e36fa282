//! Staff phones' registrations shared between nodes (issue 16): each node's registrar keeps its
//! own phones' bindings in memory and writes them through to the store, so a desk call on any
//! node can ring a phone that registered with another one. The value is here; the SQL lives
//! with each backend (`sqlite/registrations.rs`, `postgres/registrations.rs`).

use std::net::SocketAddr;

use jiff::Timestamp;

/// One registered contact of a staff user, as the node that took the REGISTER saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The address-of-record's user part (`alice` of `sip:alice@line`).
    pub user: String,
    /// The Contact URI the phone registered.
    pub contact: String,
    /// Where the REGISTER came from (the phone, or the proxy in front of the node).
    pub source: SocketAddr,
    /// The transport it came over (`udp`, `tcp`, `tls`, `ws`, `wss`), lower case.
    pub transport: String,
    /// The REGISTER's Path header values (RFC 3327), in order: a request to this contact is
    /// routed through them. Empty when it came with none.
    pub path: Vec<String>,
    /// When the binding lapses unless the phone refreshes it.
    pub expires_at: Timestamp,
    /// The node whose registrar holds it (`[cluster] node`, or the host name).
    pub node: String,
}

impl Binding {
    /// The Path as stored: a JSON array of strings (both backends).
    pub(crate) fn path_json(&self) -> String {
        serde_json::to_string(&self.path).unwrap_or_else(|_| "[]".into())
    }

    /// Read a stored Path back; `None` when it is not a JSON array of strings.
    pub(crate) fn path_from_json(text: &str) -> Option<Vec<String>> {
        serde_json::from_str(text).ok()
    }
}
