//! SIP transport shell (RFC 3261 §18): one UDP socket and one TCP listener on the same address.
//!
//! Tasks here only move bytes. Datagrams and framed stream messages go to the endpoint task as
//! [`Inbound`]; the endpoint's transmissions come back through [`SipTransport::send`]. A TCP
//! connection that cannot be framed (no or absurd Content-Length) is answered with 400/513 when the
//! head is readable, then closed: the stream has lost its message boundaries.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::message::{
    Frame, MAX_MESSAGE_SIZE, ParseError, RawMessage, ResponseBuilder, Transport, frame_stream,
};

/// A complete message received from the network.
#[derive(Debug)]
pub struct Inbound {
    pub bytes: Bytes,
    pub source: SocketAddr,
    pub transport: Transport,
    /// Our address as the peer sees it (used for Contact, Via and SDP).
    pub local: SocketAddr,
}

type ConnTable = Arc<Mutex<HashMap<u64, mpsc::Sender<Bytes>>>>;

#[derive(Clone)]
pub struct SipTransport {
    udp: Arc<UdpSocket>,
    conns: ConnTable,
    local: SocketAddr,
    public_ip: Option<IpAddr>,
    /// Route-derived local IPs per peer when bound to a wildcard address.
    local_ips: Arc<Mutex<HashMap<IpAddr, IpAddr>>>,
}

impl SipTransport {
    /// Binds UDP and TCP on `addr` (port 0 picks one free port for both) and starts the receive
    /// tasks; messages arrive on the returned channel.
    pub async fn bind(
        addr: SocketAddr,
        public_ip: Option<IpAddr>,
    ) -> io::Result<(SipTransport, mpsc::Receiver<Inbound>)> {
        let (udp, tcp) = bind_pair(addr).await?;
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
            conns: Arc::new(Mutex::new(HashMap::new())),
            local,
            public_ip,
            local_ips: Arc::new(Mutex::new(HashMap::new())),
        };
        tokio::spawn(udp_loop(transport.clone(), tx.clone()));
        tokio::spawn(accept_loop(tcp, transport.conns.clone(), public_ip, tx));
        info!(%local, "SIP listening on UDP and TCP");
        Ok((transport, rx))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends `bytes`; a closed TCP connection is logged (the transaction layer times out).
    pub async fn send(&self, transport: Transport, to: SocketAddr, bytes: Bytes) {
        match transport {
            Transport::Udp => {
                if let Err(e) = self.udp.send_to(&bytes, to).await {
                    warn!(%to, error = %e, "UDP send failed");
                }
            }
            Transport::Tcp(id) => {
                let sender = self.conns.lock().ok().and_then(|c| c.get(&id).cloned());
                match sender {
                    Some(s) => {
                        if s.try_send(bytes).is_err() {
                            warn!(%to, conn = id, "TCP connection gone or congested; message dropped");
                        }
                    }
                    None => warn!(%to, conn = id, "TCP connection closed; message dropped"),
                }
            }
        }
    }

    /// Our address as seen from `peer` over UDP.
    fn local_for(&self, peer: SocketAddr) -> SocketAddr {
        if let Some(ip) = self.public_ip {
            return SocketAddr::new(ip, self.local.port());
        }
        if !self.local.ip().is_unspecified() {
            return self.local;
        }
        let cached = self
            .local_ips
            .lock()
            .ok()
            .and_then(|m| m.get(&peer.ip()).copied());
        let ip = cached.unwrap_or_else(|| {
            let ip = route_source_ip(peer).unwrap_or(self.local.ip());
            if let Ok(mut m) = self.local_ips.lock() {
                m.insert(peer.ip(), ip);
            }
            ip
        });
        SocketAddr::new(ip, self.local.port())
    }
}

/// The source IP the kernel would use towards `peer` (a connected UDP socket sends nothing).
pub fn route_source_ip(peer: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(peer).ok()?;
    s.local_addr().ok().map(|a| a.ip())
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
    let mut shed = super::LogThrottle::default();
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
            if let Some(dropped) = shed.note(std::time::Instant::now()) {
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
            local: t.local_for(source),
        };
        if tx.send(inbound).await.is_err() {
            return;
        }
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

async fn accept_loop(
    listener: TcpListener,
    conns: ConnTable,
    public_ip: Option<IpAddr>,
    tx: mpsc::Sender<Inbound>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let local = match (public_ip, stream.local_addr()) {
            (Some(ip), Ok(l)) => SocketAddr::new(ip, l.port()),
            (None, Ok(l)) => l,
            (_, Err(_)) => continue,
        };
        debug!(%peer, conn = id, "TCP connection");
        tokio::spawn(connection(
            stream,
            peer,
            local,
            id,
            conns.clone(),
            tx.clone(),
        ));
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    id: u64,
    conns: ConnTable,
    tx: mpsc::Sender<Inbound>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(256);
    if let Ok(mut c) = conns.lock() {
        c.insert(id, out_tx.clone());
    }
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut buf = BytesMut::with_capacity(8192);
    'read: loop {
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            match frame_stream(&buf) {
                Ok(Frame::KeepAlive(n)) => {
                    let _ = buf.split_to(n);
                    // RFC 5626 §3.5.1: answer a double-CRLF ping with a single CRLF pong.
                    if n >= 4 {
                        let _ = out_tx.try_send(Bytes::from_static(b"\r\n"));
                    }
                }
                Ok(Frame::Message(n)) => {
                    let bytes = buf.split_to(n).freeze();
                    let inbound = Inbound {
                        bytes,
                        source: peer,
                        transport: Transport::Tcp(id),
                        local,
                    };
                    if tx.send(inbound).await.is_err() {
                        break 'read;
                    }
                }
                Ok(Frame::Incomplete) => break,
                Err(e) => {
                    warn!(%peer, conn = id, error = %e, "unframeable TCP stream; closing");
                    if let Some(resp) = framing_error_response(&buf, peer, &e) {
                        let _ = out_tx.send(resp).await;
                    }
                    break 'read;
                }
            }
        }
    }
    if let Ok(mut c) = conns.lock() {
        c.remove(&id);
    }
    drop(out_tx);
    let _ = write_task.await;
    debug!(%peer, conn = id, "TCP connection closed");
}

/// A 400/513 for a stream message whose head is readable but whose length is unusable.
fn framing_error_response(buf: &[u8], peer: SocketAddr, e: &ParseError) -> Option<Bytes> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let raw = match RawMessage::scan(&buf[..end]) {
        Ok(raw) => raw,
        Err((_, Some(raw))) => raw,
        Err((_, None)) => return None,
    };
    if !raw.can_answer() {
        return None;
    }
    let status = if matches!(e, ParseError::TooLarge(_)) {
        513
    } else {
        400
    };
    let resp = ResponseBuilder::with_reason(&raw, peer, status, &e.to_string(), None).build();
    Some(Bytes::from(resp))
}
