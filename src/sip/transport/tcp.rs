//! The TCP shell: accepts connections, frames their byte streams into messages and carries out
//! the [`ConnectionTable`]'s verdicts (refuse at accept, close when overdue).
//!
//! A connection's buffer never holds more than one message of at most
//! [`MAX_MESSAGE_SIZE`] bytes plus one, and a quiet connection holds none, so memory is bounded by
//! the connection cap: 1024 connections mid-message hold at most 64 MiB. A stream that cannot be
//! framed (no or absurd Content-Length) is answered with 400/513 when the head is readable, then
//! closed: it has lost its message boundaries.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tracing::{debug, info, warn};

use super::conn_table::{CloseReason, ConnectionTable, Refusal, TcpLimits};
use super::{
    Frame, Inbound, LogThrottle, MAX_MESSAGE_SIZE, ParseError, RawMessage, ResponseBuilder,
    Transport, frame_stream,
};

/// The first read of a message reserves this much; a larger message grows the buffer by
/// doubling, up to the message limit.
const READ_CHUNK: usize = 4096;

/// How long a closing connection may take to flush what it still has to send.
const WRITE_GRACE: Duration = Duration::from_secs(2);

/// What the rest of the transport holds of one connection.
struct Handle {
    out: mpsc::Sender<Bytes>,
    close: Arc<Notify>,
}

#[derive(Default)]
struct Logs {
    refused: LogThrottle,
    idle: LogThrottle,
    slow: LogThrottle,
    accept_failed: LogThrottle,
}

struct State {
    table: ConnectionTable,
    handles: HashMap<u64, Handle>,
    logs: Logs,
    /// Connections refused since the shell last took the count.
    refused: Refusals,
}

/// TCP connections refused, by which cap they hit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refusals {
    pub total: u64,
    pub per_source: u64,
}

/// The TCP side of the transport, shared by the accept loop, the connection tasks, the sweeper
/// and `SipTransport::send`.
pub(super) struct Tcp {
    state: Mutex<State>,
    next_id: AtomicU64,
}

impl Tcp {
    pub(super) fn new(limits: TcpLimits) -> Arc<Tcp> {
        Arc::new(Tcp {
            state: Mutex::new(State {
                table: ConnectionTable::new(limits),
                handles: HashMap::new(),
                logs: Logs::default(),
                refused: Refusals::default(),
            }),
            next_id: AtomicU64::new(1),
        })
    }

    /// The lock is never held across an await, and nothing in it can panic halfway through an
    /// update, so a poisoned lock still holds a consistent table.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn limits(&self) -> TcpLimits {
        self.state().table.limits()
    }

    /// The queue towards connection `id`'s writer, while it is open.
    pub(super) fn sender(&self, id: u64) -> Option<mpsc::Sender<Bytes>> {
        self.state().handles.get(&id).map(|h| h.out.clone())
    }

    /// The endpoint's view of the connections calls and bindings use; idle ones close now.
    pub(super) fn set_in_use(&self, ids: HashSet<u64>) {
        let now = Instant::now();
        self.state().table.set_in_use(now, ids);
        self.sweep(now);
    }

    /// Closes what the table finds overdue at `now`, with one summary line per kind.
    fn sweep(&self, now: Instant) {
        let mut st = self.state();
        let overdue = st.table.overdue(now);
        if overdue.is_empty() {
            return;
        }
        let (mut idle, mut slow) = (0u64, 0u64);
        for (id, reason) in overdue {
            st.table.remove(id);
            if let Some(h) = st.handles.remove(&id) {
                h.close.notify_one();
            }
            match reason {
                CloseReason::Idle => idle += 1,
                CloseReason::SlowMessage => slow += 1,
            }
        }
        let open = st.table.len();
        let limits = st.table.limits();
        for _ in 0..idle {
            if let Some(closed) = st.logs.idle.note(now) {
                info!(
                    closed,
                    open,
                    idle_timeout_s = limits.idle_timeout.as_secs(),
                    event = "tcp_idle_closed",
                    "closed TCP connections with no message, call or registration for sip.tcp_idle_timeout_s"
                );
            }
        }
        for _ in 0..slow {
            if let Some(closed) = st.logs.slow.note(now) {
                warn!(
                    closed,
                    open,
                    message_timeout_s = limits.message_timeout.as_secs(),
                    event = "tcp_slow_closed",
                    "closed TCP connections whose message was not finished within sip.tcp_message_timeout_s"
                );
            }
        }
    }

    /// Connections refused since the last call.
    pub(super) fn take_refusals(&self) -> Refusals {
        std::mem::take(&mut self.state().refused)
    }

    /// Admits connection `id` from `peer`, or counts and logs the refusal.
    fn admit(&self, id: u64, peer: SocketAddr, handle: Handle) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut st = self.state();
        match st.table.admit(now, id, peer.ip()) {
            Ok(()) => {
                st.handles.insert(id, handle);
                Ok(())
            }
            Err(why) => {
                match why {
                    Refusal::Total => st.refused.total += 1,
                    Refusal::PerSource => st.refused.per_source += 1,
                }
                let (open, from_source) = (st.table.len(), st.table.from_source(peer.ip()));
                if let Some(refused) = st.logs.refused.note(now) {
                    warn!(refused, %peer, open, from_source, reason = %why, event = "tcp_refused",
                        "refusing TCP connections");
                }
                Err(why)
            }
        }
    }

    fn received(&self, id: u64, messages: usize, partial: bool) {
        self.state()
            .table
            .received(Instant::now(), id, messages, partial);
    }

    fn forget(&self, id: u64) {
        let mut st = self.state();
        st.table.remove(id);
        st.handles.remove(&id);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.state().table.next_deadline()
    }

    fn accept_failed(&self, e: &std::io::Error) {
        let mut st = self.state();
        if let Some(failures) = st.logs.accept_failed.note(Instant::now()) {
            let open = st.table.len();
            warn!(failures, open, error = %e, "TCP accept failed");
        }
    }
}

/// Closes slow messages at their deadlines. Idle connections are closed by
/// [`Tcp::set_in_use`] instead, when the endpoint says which ones are in use.
pub(super) async fn sweeper(tcp: Arc<Tcp>) {
    // Every deadline is at least `message_timeout` after the moment it was set, so waking at
    // least that often (and sleeping to the earliest deadline otherwise) misses none.
    let step = tcp.limits().message_timeout;
    loop {
        let now = Instant::now();
        let wake = tcp
            .next_deadline()
            .map_or(now + step, |d| d.min(now + step));
        tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
        tcp.sweep(Instant::now());
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    tcp: Arc<Tcp>,
    public_ip: Option<IpAddr>,
    tx: mpsc::Sender<Inbound>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors, most likely: the connection waits in the backlog.
                tcp.accept_failed(&e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let id = tcp.next_id.fetch_add(1, Ordering::Relaxed);
        let local = match (public_ip, stream.local_addr()) {
            (Some(ip), Ok(l)) => SocketAddr::new(ip, l.port()),
            (None, Ok(l)) => l,
            (_, Err(_)) => continue,
        };
        let (out_tx, out_rx) = mpsc::channel::<Bytes>(256);
        let close = Arc::new(Notify::new());
        let handle = Handle {
            out: out_tx.clone(),
            close: close.clone(),
        };
        if tcp.admit(id, peer, handle).is_err() {
            // A reset, not a FIN: no TIME_WAIT left behind on our side for a refused peer.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            drop(stream);
            continue;
        }
        debug!(%peer, conn = id, "TCP connection");
        let conn = Conn {
            id,
            peer,
            local,
            tcp: tcp.clone(),
            tx: tx.clone(),
        };
        tokio::spawn(conn.run(stream, out_tx, out_rx, close));
    }
}

struct Conn {
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    tcp: Arc<Tcp>,
    tx: mpsc::Sender<Inbound>,
}

impl Conn {
    async fn run(
        self,
        stream: TcpStream,
        out_tx: mpsc::Sender<Bytes>,
        mut out_rx: mpsc::Receiver<Bytes>,
        close: Arc<Notify>,
    ) {
        let (reader, mut writer) = stream.into_split();
        let write_task = tokio::spawn(async move {
            while let Some(bytes) = out_rx.recv().await {
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
        });
        // Allocated when bytes arrive, and given back when a message is done: a quiet
        // connection holds no buffer.
        let mut buf: Vec<u8> = Vec::new();
        loop {
            tokio::select! {
                ready = reader.readable() => if ready.is_err() { break },
                _ = close.notified() => break,
            }
            // Room for one message plus the byte that proves it too long, never more.
            let room = MAX_MESSAGE_SIZE + 1 - buf.len();
            if buf.len() == buf.capacity() {
                buf.reserve_exact(buf.capacity().max(READ_CHUNK).min(room));
            }
            match reader.try_read_buf(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => break,
            }
            let Some(messages) = self.frame(&mut buf, &out_tx).await else {
                break;
            };
            self.tcp.received(self.id, messages, !buf.is_empty());
            if buf.is_empty() && buf.capacity() > READ_CHUNK {
                buf = Vec::new();
            }
        }
        self.tcp.forget(self.id);
        drop(out_tx);
        // Let a last response (a 513, say) go out, but a peer that never reads must not keep
        // the writer, and with it the descriptor, forever.
        let abort = write_task.abort_handle();
        if tokio::time::timeout(WRITE_GRACE, write_task).await.is_err() {
            abort.abort();
        }
        debug!(peer = %self.peer, conn = self.id, "TCP connection closed");
    }

    /// Takes the complete messages off the front of `buf` and passes them on; returns how many,
    /// or `None` when the connection must close.
    async fn frame(&self, buf: &mut Vec<u8>, out: &mpsc::Sender<Bytes>) -> Option<usize> {
        let mut messages = 0;
        loop {
            match frame_stream(buf) {
                Ok(Frame::KeepAlive(n)) => {
                    buf.drain(..n);
                    // RFC 5626 §3.5.1: answer a double-CRLF ping with a single CRLF pong.
                    if n >= 4 {
                        let _ = out.try_send(Bytes::from_static(b"\r\n"));
                    }
                }
                Ok(Frame::Message(n)) => {
                    let bytes = Bytes::copy_from_slice(&buf[..n]);
                    buf.drain(..n);
                    messages += 1;
                    let inbound = Inbound {
                        bytes,
                        source: self.peer,
                        transport: Transport::Tcp(self.id),
                        local: self.local,
                    };
                    self.tx.send(inbound).await.ok()?;
                }
                Ok(Frame::Incomplete) => return Some(messages),
                Err(e) => {
                    warn!(peer = %self.peer, conn = self.id, error = %e, "unframeable TCP stream; closing");
                    if let Some(resp) = framing_error_response(buf, self.peer, &e) {
                        let _ = out.send(resp).await;
                    }
                    return None;
                }
            }
        }
    }
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
