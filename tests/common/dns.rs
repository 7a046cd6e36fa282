//! A tiny authoritative DNS server on loopback for the RFC 3263 tests: answers A, SRV and NAPTR
//! from an in-memory zone over UDP, encoded with hickory-proto, and counts the queries it gets
//! (the cache tests read the count). Names under a zone name that has no records of its own
//! answer NODATA, anything else NXDOMAIN; negative answers carry an SOA with a 1 s minimum.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, NAPTR, SOA, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record};

/// The records served.
#[derive(Clone, Default)]
pub struct Zone {
    records: Vec<Record>,
}

fn name(n: &str) -> Name {
    Name::from_ascii(format!("{}.", n.trim_end_matches('.'))).expect("DNS name")
}

impl Zone {
    pub fn a(mut self, host: &str, ip: Ipv4Addr, ttl: u32) -> Zone {
        self.records
            .push(Record::from_rdata(name(host), ttl, RData::A(A(ip))));
        self
    }

    pub fn srv(
        mut self,
        owner: &str,
        priority: u16,
        weight: u16,
        port: u16,
        target: &str,
        ttl: u32,
    ) -> Zone {
        let rdata = RData::SRV(SRV::new(priority, weight, port, name(target)));
        self.records
            .push(Record::from_rdata(name(owner), ttl, rdata));
        self
    }

    pub fn naptr(
        mut self,
        owner: &str,
        order: u16,
        pref: u16,
        service: &str,
        to: &str,
        ttl: u32,
    ) -> Zone {
        let rdata = RData::NAPTR(NAPTR::new(
            order,
            pref,
            b"s".to_vec().into_boxed_slice(),
            service.as_bytes().to_vec().into_boxed_slice(),
            Vec::new().into_boxed_slice(),
            name(to),
        ));
        self.records
            .push(Record::from_rdata(name(owner), ttl, rdata));
        self
    }

    /// The response to one query message.
    fn answer(&self, query: &Message) -> Message {
        let mut resp = Message::response(query.metadata.id, OpCode::Query);
        resp.metadata.message_type = MessageType::Response;
        resp.metadata.authoritative = true;
        resp.metadata.recursion_desired = query.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        let Some(q) = query.queries.first() else {
            resp.metadata.response_code = ResponseCode::FormErr;
            return resp;
        };
        resp.add_query(q.clone());
        let qname = q.name().to_ascii().to_ascii_lowercase();
        let matching: Vec<Record> = self
            .records
            .iter()
            .filter(|r| {
                r.name.to_ascii().to_ascii_lowercase() == qname && r.record_type() == q.query_type()
            })
            .cloned()
            .collect();
        if !matching.is_empty() {
            resp.add_answers(matching);
            return resp;
        }
        // A name exists when it, or a name below it, has records (an empty non-terminal).
        let exists = self.records.iter().any(|r| {
            let n = r.name.to_ascii().to_ascii_lowercase();
            n == qname || n.ends_with(&format!(".{qname}"))
        });
        if !exists {
            resp.metadata.response_code = ResponseCode::NXDomain;
        }
        let soa = SOA::new(name("ns.test"), name("admin.test"), 1, 60, 60, 60, 1);
        resp.add_authority(Record::from_rdata(name("test"), 1, RData::SOA(soa)));
        resp
    }
}

/// The server: stops when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// "TYPE name" of every query received, in order.
    log: Arc<Mutex<Vec<String>>>,
}

impl DnsServer {
    /// Serves `zone` on 127.0.0.1, a free port.
    pub fn start(zone: Zone) -> DnsServer {
        DnsServer::start_with(Some(zone))
    }

    /// A server that reads queries and never answers (the resolver times out).
    pub fn silent() -> DnsServer {
        DnsServer::start_with(None)
    }

    fn start_with(zone: Option<Zone>) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind DNS socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let addr = socket.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop2, log2) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if let Some(q) = query.queries.first() {
                    let entry = format!(
                        "{} {}",
                        q.query_type(),
                        q.name()
                            .to_ascii()
                            .trim_end_matches('.')
                            .to_ascii_lowercase()
                    );
                    log2.lock().expect("log").push(entry);
                }
                if let Some(zone) = &zone
                    && let Ok(bytes) = zone.answer(&query).to_vec()
                {
                    let _ = socket.send_to(&bytes, from);
                }
            }
        });
        DnsServer {
            addr,
            stop,
            thread: Some(thread),
            log,
        }
    }

    /// How many queries of `rtype` ("SRV", "A"...) for `name` arrived.
    pub fn queries(&self, rtype: &str, name: &str) -> usize {
        let want = format!(
            "{} {}",
            rtype.to_ascii_uppercase(),
            name.to_ascii_lowercase()
        );
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|e| **e == want)
            .count()
    }

    /// Every query so far, "TYPE name".
    pub fn all_queries(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
