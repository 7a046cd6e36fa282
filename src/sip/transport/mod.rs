//! SIP transport shell (RFC 3261 §18): one UDP socket and one TCP listener on the same address.
//!
//! Tasks here only move bytes. Datagrams and framed stream messages go to the endpoint task as
//! [`Inbound`]; the endpoint's transmissions come back through [`SipTransport::send`]. TCP
//! connections live under the rules of `conn_table` (caps, idle and message deadlines), carried
//! out by `tcp`; the shell tells the transport which connections calls and registrations use
//! ([`SipTransport::set_tcp_in_use`]). On a wildcard listen address our own address towards each
//! peer comes from a bounded cache (`local_ips`). `fd_budget` sizes the caps to the process's
//! open-files limit at start.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::LogThrottle;
use super::message::{
    Frame, MAX_MESSAGE_SIZE, ParseError, RawMessage, ResponseBuilder, Transport, frame_stream,
};

mod conn_table;
pub mod fd_budget;
mod local_ips;
mod tcp;
pub use tcp::Refusals as TcpRefusals;

pub use conn_table::{CloseReason, ConnectionTable, Refusal, TcpLimits};
pub use local_ips::{LocalIpCache, route_source_ip};

/// A complete message received from the network.
#[derive(Debug)]
pub struct Inbound {
    pub bytes: Bytes,
    pub source: SocketAddr,
    pub transport: Transport,
    /// Our address as the peer sees it (used for Contact, Via and SDP). On a wildcard listen
    /// address a response datagram carries the listen address unless the peer's route is
    /// already known: responses never need it, and a lookup per source would make a sweep of
    /// forged responses cost a socket each.
    pub local: SocketAddr,
}

#[derive(Clone)]
pub struct SipTransport {
    udp: Arc<UdpSocket>,
    tcp: Arc<tcp::Tcp>,
    local: SocketAddr,
    public_ip: Option<IpAddr>,
}

impl SipTransport {
    /// Binds UDP and TCP on `addr` (port 0 picks one free port for both) and starts the receive
    /// tasks; messages arrive on the returned channel. TCP connections follow `limits`.
    pub async fn bind(
        addr: SocketAddr,
        public_ip: Option<IpAddr>,
        limits: TcpLimits,
    ) -> io::Result<(SipTransport, mpsc::Receiver<Inbound>)> {
        let (udp, listener) = bind_pair(addr).await?;
        // A burst of datagrams while the signalling thread is descheduled must wait in the
        // kernel, not be dropped: the default buffer (~208 KiB) holds a few hundred INVITEs, and a
        // dropped ACK or BYE costs a retransmission storm. The kernel caps this at
        // net.core.rmem_max; a smaller buffer than asked for is fine, so the result is only logged.
        if let Err(e) = socket2::SockRef::from(&udp).set_recv_buffer_size(SIP_RECV_BUFFER) {
            debug!(error = %e, "could not enlarge the SIP socket's receive buffer");
        }
        let local = udp.local_addr()?;
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let transport = SipTransport {
            udp: Arc::new(udp),
            tcp: tcp::Tcp::new(limits),
            local,
            public_ip,
        };
        tokio::spawn(udp_loop(transport.clone(), tx.clone()));
        tokio::spawn(tcp::accept_loop(
            listener,
            transport.tcp.clone(),
            public_ip,
            tx,
        ));
        tokio::spawn(tcp::sweeper(transport.tcp.clone()));
        info!(
            %local,
            tcp_max_connections = limits.max_connections,
            tcp_max_per_source = limits.max_per_source,
            tcp_idle_timeout_s = limits.idle_timeout.as_secs(),
            tcp_message_timeout_s = limits.message_timeout.as_secs(),
            "SIP listening on UDP and TCP"
        );
        Ok((transport, rx))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// How often the shell should call [`set_tcp_in_use`](Self::set_tcp_in_use): idle
    /// connections are closed on those calls, so this is how late past the idle timeout they
    /// may close.
    pub fn tcp_in_use_interval(&self) -> Duration {
        (self.tcp.limits().idle_timeout / 4)
            .clamp(Duration::from_millis(250), Duration::from_secs(5))
    }

    /// The TCP connections (ids of [`Transport::Tcp`]) that calls and registration bindings use
    /// now: these are never closed for being idle. Idle others are closed at once.
    pub fn set_tcp_in_use(&self, ids: HashSet<u64>) {
        self.tcp.set_in_use(ids);
    }

    /// TCP connections refused for the connection caps since the last call (for the metrics).
    pub fn take_tcp_refusals(&self) -> tcp::Refusals {
        self.tcp.take_refusals()
    }

    /// Sends `bytes`; a closed TCP connection is logged (the transaction layer times out).
    pub async fn send(&self, transport: Transport, to: SocketAddr, bytes: Bytes) {
        match transport {
            Transport::Udp => {
                if let Err(e) = self.udp.send_to(&bytes, to).await {
                    warn!(%to, error = %e, "UDP send failed");
                }
            }
            Transport::Tcp(id) => match self.tcp.sender(id) {
                Some(s) => {
                    if s.try_send(bytes).is_err() {
                        warn!(%to, conn = id, "TCP connection gone or congested; message dropped");
                    }
                }
                None => warn!(%to, conn = id, "TCP connection closed; message dropped"),
            },
        }
    }
}

/// Our address towards UDP peers (Contact, Via, SDP), kept by the receive loop.
struct LocalAddrs {
    listen: SocketAddr,
    public_ip: Option<IpAddr>,
    cache: LocalIpCache,
    turnovers: LogThrottle,
}

impl LocalAddrs {
    fn new(listen: SocketAddr, public_ip: Option<IpAddr>) -> Self {
        LocalAddrs {
            listen,
            public_ip,
            cache: LocalIpCache::default(),
            turnovers: LogThrottle::default(),
        }
    }

    /// Our address as `peer` sees it; `lookup` says whether an unknown peer is worth a route
    /// lookup (not for responses, which never need it).
    fn for_peer(&mut self, peer: SocketAddr, lookup: bool) -> SocketAddr {
        let port = self.listen.port();
        if let Some(ip) = self.public_ip {
            return SocketAddr::new(ip, port);
        }
        if !self.listen.ip().is_unspecified() {
            return self.listen;
        }
        let now = Instant::now();
        let ip = match self.cache.get(now, peer.ip()) {
            Some(ip) => ip,
            None if lookup => {
                let ip = route_source_ip(peer).unwrap_or(self.listen.ip());
                if self.cache.insert(now, peer.ip(), ip)
                    && let Some(turnovers) = self.turnovers.note(now)
                {
                    info!(
                        turnovers,
                        entries = self.cache.len(),
                        capacity = self.cache.capacity(),
                        event = "local_ip_cache_full",
                        "many SIP peers: forgetting the local address of the least recent ones"
                    );
                }
                ip
            }
            None => self.listen.ip(),
        };
        SocketAddr::new(ip, port)
    }
}

async fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr).await?;
        let tcp = TcpListener::bind(addr).await?;
        return Ok((udp, tcp));
    }
    // Port 0: take a free UDP port and try the same number for TCP; retry on collision.
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port for UDP and TCP")))
}

/// The receive buffer asked for the SIP UDP socket.
const SIP_RECV_BUFFER: usize = 4 << 20;

/// Messages waiting for the endpoint task, at most.
const INBOUND_QUEUE: usize = 4096;

/// Below this much free room in the queue, new work (INVITE, OPTIONS, REGISTER) arriving over
/// UDP is dropped unparsed: the endpoint is so far behind that even answering 503 costs more than
/// it can afford. What finishes work already taken (responses, ACK, BYE, CANCEL) still passes,
/// and a dropped client retransmits or tries another server.
const SHED_BELOW_FREE: usize = INBOUND_QUEUE / 4;

fn is_new_work(datagram: &[u8]) -> bool {
    [&b"INVITE "[..], b"OPTIONS ", b"REGISTER "]
        .iter()
        .any(|m| datagram.starts_with(m))
}

async fn udp_loop(t: SipTransport, tx: mpsc::Sender<Inbound>) {
    let mut buf = vec![0u8; MAX_MESSAGE_SIZE + 1];
    let mut shed = LogThrottle::default();
    let mut local = LocalAddrs::new(t.local, t.public_ip);
    loop {
        let (n, source) = match t.udp.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP port-unreachable surfaces here on some systems; it is not fatal.
                debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        // Keep-alive CRLFs (RFC 5626 §4.4.1) carry nothing.
        if buf[..n].iter().all(|b| *b == b'\r' || *b == b'\n') {
            continue;
        }
        if tx.capacity() < SHED_BELOW_FREE && is_new_work(&buf[..n]) {
            if let Some(dropped) = shed.note(Instant::now()) {
                warn!(
                    dropped,
                    queued = INBOUND_QUEUE - tx.capacity(),
                    event = "sip_shed",
                    "SIP overload: dropping new requests unparsed"
                );
            }
            continue;
        }
        let inbound = Inbound {
            bytes: Bytes::copy_from_slice(&buf[..n]),
            source,
            transport: Transport::Udp,
            local: local.for_peer(source, !buf.starts_with(b"SIP/")),
        };
        if tx.send(inbound).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod refusal_tests {
    use std::time::Duration;

    use super::*;

    /// Connections over the caps are counted (for `ivr_dropped_total`) by the cap they hit.
    #[tokio::test]
    async fn tcp_connections_over_the_caps_are_counted_by_cap() {
        let limits = TcpLimits {
            idle_timeout: Duration::from_secs(60),
            message_timeout: Duration::from_secs(60),
            max_connections: 3,
            max_per_source: 2,
        };
        let (transport, _inbound) =
            SipTransport::bind("127.0.0.1:0".parse().unwrap(), None, limits)
                .await
                .expect("bind");
        let at = transport.local_addr();
        // 127.0.0.1 fills its own share (2), the third from it is refused per source; from
        // 127.0.0.2 one more fits the total (3), the next is refused by the total.
        let mut kept = Vec::new();
        for from in [
            "127.0.0.1",
            "127.0.0.1",
            "127.0.0.1",
            "127.0.0.2",
            "127.0.0.2",
        ] {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
            kept.push(socket.connect(at).await.expect("connect"));
            // Accepts are handled in order.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut seen = tcp::Refusals::default();
        while seen.total + seen.per_source < 2 && tokio::time::Instant::now() < deadline {
            let r = transport.take_tcp_refusals();
            seen.total += r.total;
            seen.per_source += r.per_source;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            seen,
            tcp::Refusals {
                total: 1,
                per_source: 1
            }
        );
        assert_eq!(transport.take_tcp_refusals(), tcp::Refusals::default());
    }
}
