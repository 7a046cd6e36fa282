//! RFC 3263 §4 as a sans-IO state machine: it asks for one DNS lookup at a time
//! ([`Procedure::next_query`]), is told each answer ([`Procedure::on_answer`]), and finally
//! orders the targets ([`Procedure::finish`]). The shell does the lookups; tests feed answers.
//!
//! The steps: an IP literal is used as it is; a URI with a port only needs A/AAAA; otherwise
//! NAPTR (unless the URI names a transport) picks the SRV names, SRV gives hosts and ports
//! ordered per RFC 2782, and each SRV target's A/AAAA give the addresses. No SRV at all: the
//! host's A/AAAA on the transport's default port (5060, or 5061 for TLS).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use super::srv::{NaptrRecord, SrvRecord, default_srv_names, order_srv, select_naptr};
use super::uri::{SipUri, Transport};
use super::{DnsError, Target};

/// One lookup the procedure needs. Names carry no trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    Naptr(String),
    Srv(String),
    /// A and AAAA.
    Addr(String),
}

impl Query {
    pub fn name(&self) -> &str {
        match self {
            Query::Naptr(n) | Query::Srv(n) | Query::Addr(n) => n,
        }
    }
}

/// What a lookup found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Naptr(Vec<NaptrRecord>),
    Srv(Vec<SrvRecord>),
    Addr(Vec<IpAddr>),
}

/// The resolution of one URI in progress.
#[derive(Debug)]
pub struct Procedure {
    uri: SipUri,
    supported: Vec<Transport>,
    queue: VecDeque<Query>,
    /// The SRV names asked for, with their transports, in the order they are to be tried.
    srv_names: Vec<(Transport, String)>,
    srv_answers: HashMap<String, Vec<SrvRecord>>,
    /// Set when the host's own A/AAAA are used: the transport and port to go with them.
    direct: Option<(Transport, u16)>,
    addrs: HashMap<String, Vec<IpAddr>>,
    addr_errors: Vec<DnsError>,
    /// A timeout stops the procedure: the next lookups would time out too.
    failed: Option<DnsError>,
}

impl Procedure {
    /// `supported`: the transports the sender can use; others are never returned.
    pub fn new(uri: SipUri, supported: &[Transport]) -> Procedure {
        let mut p = Procedure {
            queue: VecDeque::new(),
            srv_names: Vec::new(),
            srv_answers: HashMap::new(),
            direct: None,
            addrs: HashMap::new(),
            addr_errors: Vec::new(),
            failed: None,
            supported: supported.to_vec(),
            uri,
        };
        let transport = p.uri.fallback_transport();
        if let Some(ip) = p.uri.ip() {
            let port = p.uri.port.unwrap_or(transport.default_port());
            p.direct = Some((transport, port));
            p.addrs.insert(p.uri.host.clone(), vec![ip]);
        } else if let Some(port) = p.uri.port {
            p.direct = Some((transport, port));
            p.queue.push_back(Query::Addr(p.uri.host.clone()));
        } else if p.uri.transport.is_some() {
            p.ask_srv(default_srv_names(&p.uri, &p.supported));
        } else {
            p.queue.push_back(Query::Naptr(p.uri.host.clone()));
        }
        p
    }

    pub fn uri(&self) -> &SipUri {
        &self.uri
    }

    /// The next lookup to make; `None` when [`Procedure::finish`] can be called.
    pub fn next_query(&mut self) -> Option<Query> {
        if self.failed.is_some() {
            return None;
        }
        self.queue.pop_front()
    }

    /// The outcome of `query`. NXDOMAIN and "no records" for NAPTR and SRV only mean the next
    /// step applies; a timeout ends the procedure.
    pub fn on_answer(&mut self, query: &Query, result: Result<Answer, DnsError>) {
        if let Err(e @ DnsError::Timeout { .. }) = &result {
            self.failed = Some(e.clone());
            return;
        }
        match (query, result) {
            (Query::Naptr(_), result) => {
                let records = match result {
                    Ok(Answer::Naptr(r)) => r,
                    _ => Vec::new(),
                };
                let mut names = select_naptr(&records, &self.uri, &self.supported);
                if names.is_empty() {
                    names = default_srv_names(&self.uri, &self.supported);
                }
                self.ask_srv(names);
            }
            (Query::Srv(name), result) => {
                let records = match result {
                    Ok(Answer::Srv(r)) => r,
                    _ => Vec::new(),
                };
                self.srv_answers.insert(name.clone(), records);
                if self.srv_answers.len() == self.srv_names.len() {
                    self.after_srv();
                }
            }
            (Query::Addr(name), Ok(Answer::Addr(ips))) => {
                self.addrs.insert(name.clone(), ips);
            }
            (Query::Addr(name), result) => {
                let err = match result {
                    Err(e) => e,
                    Ok(_) => DnsError::NoRecords {
                        name: name.clone(),
                        kind: "A/AAAA",
                    },
                };
                self.addr_errors.push(err);
            }
        }
    }

    fn ask_srv(&mut self, names: Vec<(Transport, String)>) {
        for (_, n) in &names {
            self.queue.push_back(Query::Srv(n.clone()));
        }
        self.srv_names = names;
        if self.srv_names.is_empty() {
            self.after_srv();
        }
    }

    /// Every SRV name answered: the targets' addresses, or the host's own when there is none.
    fn after_srv(&mut self) {
        let mut hosts: Vec<String> = Vec::new();
        for (_, name) in &self.srv_names {
            // Lowest priority first, so the first target's address is the first asked.
            let mut records: Vec<&SrvRecord> =
                self.srv_answers.get(name).into_iter().flatten().collect();
            records.sort_by_key(|r| r.priority);
            for r in records {
                if r.target != "." && !hosts.contains(&r.target) {
                    hosts.push(r.target.clone());
                }
            }
        }
        if hosts.is_empty() {
            let t = self.uri.fallback_transport();
            self.direct = Some((t, t.default_port()));
            hosts.push(self.uri.host.clone());
        }
        self.queue.extend(hosts.into_iter().map(Query::Addr));
    }

    /// The targets in the order to try them. `pick(total)` draws in `0..=total` (RFC 2782).
    pub fn finish(self, pick: &mut impl FnMut(u32) -> u32) -> Result<Vec<Target>, DnsError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let mut all: Vec<Target> = Vec::new();
        let ips = |name: &str| self.addrs.get(name).cloned().unwrap_or_default();
        if let Some((transport, port)) = self.direct {
            for ip in ips(&self.uri.host) {
                all.push(Target {
                    transport,
                    addr: SocketAddr::new(ip, port),
                });
            }
        } else {
            for (transport, name) in &self.srv_names {
                let records = self.srv_answers.get(name).cloned().unwrap_or_default();
                for r in order_srv(&records, pick) {
                    for ip in ips(&r.target) {
                        all.push(Target {
                            transport: *transport,
                            addr: SocketAddr::new(ip, r.port),
                        });
                    }
                }
            }
        }
        let mut out: Vec<Target> = Vec::new();
        for t in &all {
            if self.supported.contains(&t.transport) && !out.contains(t) {
                out.push(t.clone());
            }
        }
        if out.is_empty() {
            if !all.is_empty() {
                let found: Vec<String> = all.iter().map(ToString::to_string).collect();
                return Err(DnsError::NoUsableTransport {
                    name: self.uri.host.clone(),
                    found: found.join(", "),
                });
            }
            return Err(self
                .addr_errors
                .into_iter()
                .next()
                .unwrap_or(DnsError::NoRecords {
                    name: self.uri.host.clone(),
                    kind: "SRV or A/AAAA",
                }));
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "procedure_tests.rs"]
mod tests;
