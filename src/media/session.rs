//! The media session of one call: owns the call's RTP socket, sends paced prompt audio and
//! receives the caller's RTP. It is the thin shell around the sans-IO pieces: the stream's send
//! core (`Outgoing`) is served by a pacing thread (`ticker`), which sends each 20 ms packet from
//! this call's socket; a small tokio task receives; the call task drives both through a
//! `MediaHandle`, whose methods act at once on the shared state.
//!
//! Stream behaviour, chosen for interoperability with SIP trunks:
//! - Nothing is sent until the first prompt is played. From then on the stream is continuous:
//!   between prompts we send G.711 silence every 20 ms rather than going quiet, because many
//!   carriers and SBCs tear a call down after some seconds without RTP and NAT bindings expire;
//!   a voicemail recording can last minutes. As a bonus, timestamps and sequence numbers advance
//!   with wall time on their own and the marker bit is set only when the stream (re)starts.
//! - Hold (`set_hold(true)`) stops sending entirely; prompts keep playing out on schedule (frames
//!   are consumed, not sent) so call-flow timing does not depend on the far end. On resume the RTP
//!   timestamp has advanced by the held time and the first packet carries the marker bit.
//! - Source rules and symmetric RTP (RFC 4961): a `Latch` decides which packets are believed and
//!   where we send: the SDP address, or once the far end's RTP arrives from its signalling IP or
//!   its SDP IP (any port: NAT), that source. Packets from anywhere else are dropped and counted
//!   (one log line a second at most), never decoded, recorded or relayed. `set_remote` re-arms it.
//! - RTP inactivity: an `Inactivity` clock, restarted by every believed packet and stopped while
//!   the far end does not say it sends (`expect_inbound`); the call task sleeps until
//!   `rtp_deadline` and asks `rtp_silence` whether the far end is gone.
//! - Bridging (B2BUA): `relay_to` hands every received packet, as a `RelayFrame`, to another
//!   session's `relay_input`; that session sends it on its own stream (its SSRC, sequence and
//!   timestamps, its codec, its telephone-event payload type) through a `RelayOut`. Priority in
//!   each 20 ms slot: a key press of our own (`send_dtmf`), then prompts (a whisper plays before
//!   the bridge; relayed media arriving meanwhile is dropped), then relayed audio or events, then
//!   silence. Handing a frame over takes the other session's lock for a moment and never waits
//!   for its task, so a stalled session never stalls the other leg.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::g711::Codec;
use super::inactivity::Inactivity;
use super::latch::{Latch, LatchMode, Verdict};
use super::outgoing::Outgoing;
pub use super::outgoing::PlayOutcome;
use super::pacer::Due;
use super::relay::{RelayFrame, frame_from_packet};
use super::rtp::{self, RtpIn};
use super::socket::{ReceiveSocket, send_and_receive};
use super::stats::{RtpStats, RtpStatsSnapshot};
pub use super::ticker::PTIME;
use super::ticker::{self, Paced};

/// Received packets buffered for the consumer of `take_events` before new ones are dropped.
const EVENT_QUEUE: usize = 256;

/// Datagrams read per wake-up of the receive task before it lets others run.
const RECV_BATCH: usize = 32;

/// Larger than any sane RTP packet, so truncated datagrams cannot happen in practice.
const RECV_BUFFER: usize = 2048;

/// Resolves when a prompt given to `MediaHandle::play` ends; can be awaited or used in `select!`
/// (dropping it does not stop the prompt).
#[derive(Debug)]
pub struct Playback {
    rx: oneshot::Receiver<PlayOutcome>,
}

impl Future for Playback {
    type Output = PlayOutcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PlayOutcome> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(PlayOutcome::SessionEnded))
    }
}

/// A sender into a session's relay input (`MediaHandle::relay_input`). It does not keep the
/// session alive: once that ends, `send` fails.
#[derive(Debug, Clone)]
pub struct RelaySender {
    target: Weak<Shared>,
}

/// `RelaySender::send` after the target session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the relay target's media session has ended")]
pub struct RelayClosed;

impl RelaySender {
    /// Hands a frame to the session: it goes out in its next packet slots (the first frame starts
    /// the stream if nothing has). Never waits; the session caps what it buffers.
    pub fn send(&self, frame: RelayFrame) -> Result<(), RelayClosed> {
        let shared = self.target.upgrade().ok_or(RelayClosed)?;
        let mut st = shared.lock();
        if st.socket.is_none() {
            return Err(RelayClosed);
        }
        st.out.push_relay(frame);
        shared.start_stream(&mut st);
        Ok(())
    }

    fn is(&self, other: &RelaySender) -> bool {
        self.target.ptr_eq(&other.target)
    }
}

/// Control of a running media session. Dropping it ends the session.
#[derive(Debug)]
pub struct MediaHandle {
    shared: Arc<Shared>,
    /// Dropping or firing it ends the receive task.
    stop: oneshot::Sender<()>,
    task: JoinHandle<SessionReport>,
    local_addr: Option<SocketAddr>,
    events: Option<mpsc::Receiver<RtpIn>>,
}

/// The far end of a session.
#[derive(Debug, Clone, Copy)]
pub struct Remote {
    /// The address from its SDP.
    pub sdp: SocketAddr,
    /// Where its SIP came from (or where we sent ours): RTP from this IP is believed on any port.
    pub signalling_ip: IpAddr,
}

/// Process-wide packet counters (the metrics' RTP counters) a session adds to as each packet
/// passes, so a long call shows on a scrape while it lasts rather than in one jump at its end.
/// Each is an atomic add: cheap enough for every packet.
#[derive(Clone, Debug)]
pub struct PacketCounters {
    /// Packets accepted from the believed source.
    pub received: prometheus::IntCounter,
    pub sent: prometheus::IntCounter,
}

/// Per-process rules for received RTP (`[rtp]` in the config).
#[derive(Debug, Clone, Copy, Default)]
pub struct RtpRules {
    pub latch: LatchMode,
    /// Silence from a far end that says it sends after which the call task hangs up; `None`: off.
    pub timeout: Option<Duration>,
}

/// Namespace for starting sessions; the running state lives in `Shared`.
pub struct MediaSession;

impl MediaSession {
    /// Starts the session on the current tokio runtime; `codec` is the negotiated G.711 flavour.
    /// The inactivity clock starts now.
    pub fn start(
        socket: UdpSocket,
        remote: Remote,
        rules: RtpRules,
        codec: Codec,
        call_id: String,
    ) -> MediaHandle {
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let (stop_tx, stop_rx) = oneshot::channel();
        let local_addr = socket.local_addr().ok();
        let span = tracing::info_span!("media", call_id = %call_id, local = ?local_addr);
        let (send, receive) = match send_and_receive(socket) {
            Ok((send, receive)) => (Some(send), Some(receive)),
            Err(e) => {
                // Only if the runtime cannot take one more socket: the call goes on without
                // media, as if it had been stopped.
                tracing::error!(parent: &span, error = %e, "RTP socket unusable; this call has no media");
                (None, None)
            }
        };
        let shared = Arc::new(Shared {
            call_id: call_id.into(),
            counters: OnceLock::new(),
            state: Mutex::new(State {
                out: Outgoing::new(codec),
                socket: send,
                latch: Latch::new(rules.latch, remote.sdp, remote.signalling_ip),
                inactivity: Inactivity::new(Instant::now(), rules.timeout),
                relay_target: None,
                send_errors: 0,
                started: false,
            }),
        });
        let rx = Receiver {
            shared: shared.clone(),
            codec,
            stats: RtpStats::new(),
            events: ev_tx,
        };
        tracing::debug!(parent: &span, remote = %remote.sdp, signalling_ip = %remote.signalling_ip,
                        codec = codec.name(), "media session started");
        MediaHandle {
            shared,
            stop: stop_tx,
            task: tokio::spawn(rx.run(receive, stop_rx).instrument(span)),
            local_addr,
            events: Some(ev_rx),
        }
    }
}

impl MediaHandle {
    /// From now on every packet received from the believed source and every packet sent is
    /// added to `counters` as it passes. Only the first call takes effect.
    pub fn count_into(&self, counters: PacketCounters) {
        let _ = self.shared.counters.set(counters);
    }

    /// The local RTP address, for our SDP.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Queues a prompt (8 kHz mono samples) after whatever is playing; the returned `Playback`
    /// resolves when its last packet has been sent.
    pub fn play(&self, samples: Arc<[i16]>) -> Playback {
        let (done, rx) = oneshot::channel();
        let mut st = self.shared.lock();
        // Once the session has ended `done` is dropped here and the Playback resolves to
        // SessionEnded, which is the truth.
        if st.socket.is_some() {
            st.out.play(samples, done);
            self.shared.start_stream(&mut st);
        }
        Playback { rx }
    }

    /// Cuts the current prompt and drops queued ones (barge-in on DTMF); they resolve
    /// `Interrupted`. The stream continues with silence.
    pub fn stop_playback(&self) {
        self.shared
            .lock()
            .out
            .end_playback(PlayOutcome::Interrupted);
    }

    /// A re-INVITE moved the far end: send there, and latch afresh (same rules, new SDP address).
    pub fn set_remote(&self, addr: SocketAddr) {
        tracing::info!(call_id = %self.shared.call_id, remote = %addr, "media remote changed");
        let mut st = self.shared.lock();
        st.latch.set_remote(addr);
        st.inactivity.restart(Instant::now());
    }

    /// Whether the far end says it sends (`sendrecv`): only then does its silence count towards
    /// `rtp.timeout_s` (on hold many phones go quiet). Turning it on restarts the clock.
    pub fn expect_inbound(&self, expected: bool) {
        self.shared
            .lock()
            .inactivity
            .set_expected(Instant::now(), expected);
    }

    /// When the far end will count as gone if nothing arrives meanwhile (`rtp_silence`); `None`
    /// while its silence does not count.
    pub fn rtp_deadline(&self) -> Option<Instant> {
        self.shared.lock().inactivity.deadline()
    }

    /// At or after `rtp_deadline`: the timeout the far end's silence ran out. Answers `Some`
    /// once; the clock then stays stopped.
    pub fn rtp_silence(&self, now: Instant) -> Option<Duration> {
        self.shared.lock().inactivity.poll(now)
    }

    /// Far end put us on hold (`sendonly`/`inactive`): stop sending until released.
    pub fn set_hold(&self, held: bool) {
        tracing::info!(call_id = %self.shared.call_id, held, "media hold changed");
        self.shared.lock().out.set_hold(held);
    }

    /// The negotiated `telephone-event/8000` payload type of this leg (from the SDP answer), or
    /// `None`: used to recognise received RFC 4733 packets for `relay_to` and to send events
    /// (relayed ones and `send_dtmf`). Types outside the dynamic range 96–127 are refused.
    pub fn set_telephone_event(&self, pt: Option<u8>) {
        let pt = pt.filter(|&pt| {
            let ok = (96..=127).contains(&pt);
            if !ok {
                tracing::warn!(call_id = %self.shared.call_id, pt, "telephone-event payload type outside 96–127 ignored");
            }
            ok
        });
        tracing::debug!(call_id = %self.shared.call_id, pt, "telephone-event payload type set");
        self.shared.lock().out.set_telephone_event(pt);
    }

    /// A sender into this session: frames pushed here go to this session's far end, encoded with
    /// its codec (events with its telephone-event payload type), on its own RTP stream. The first
    /// frame starts the stream if no prompt has. Prompts take precedence (relayed media is dropped
    /// while one plays); with no relayed audio buffered the stream carries silence.
    pub fn relay_input(&self) -> RelaySender {
        RelaySender {
            target: Arc::downgrade(&self.shared),
        }
    }

    /// From now on, converts every packet received from the far end (`relay::frame_from_packet`)
    /// and hands it to `target` without waiting; `None` stops. Received packets still go to
    /// `take_events` as well.
    pub fn relay_to(&self, target: Option<RelaySender>) {
        tracing::info!(call_id = %self.shared.call_id, relaying = target.is_some(), "media relay changed");
        self.shared.lock().relay_target = target;
    }

    /// Sends a key press to the far end: RFC 4733 events on this session's stream if a
    /// telephone-event payload type is set (no audio meanwhile), else the in-band Q.23 tone pair,
    /// queued like a prompt. Presses queue behind one another. Non-DTMF characters are ignored.
    pub fn send_dtmf(&self, digit: char, duration: Duration) {
        let mut st = self.shared.lock();
        match st.out.send_dtmf(digit, duration) {
            Ok(()) => self.shared.start_stream(&mut st),
            Err(e) => {
                tracing::warn!(call_id = %self.shared.call_id, ?digit, "send_dtmf: {e}; ignored");
            }
        }
    }

    /// Received RTP packets (from the believed source only), for DTMF and recording. Can be
    /// taken once; if nobody takes it, packets beyond a small buffer are dropped.
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<RtpIn>> {
        self.events.take()
    }

    /// Ends the session and returns its final receive statistics.
    pub async fn stop(self) -> RtpStatsSnapshot {
        self.stop_report().await.received
    }

    /// Ends the session and returns its final counts, both ways.
    pub async fn stop_report(self) -> SessionReport {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(call_id = %self.shared.call_id, error = %e, "media task failed; receive statistics lost");
                // Its guard has ended the stream all the same.
                SessionReport::default()
            }
        }
    }
}

/// A session's final counts, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionReport {
    /// What was received from the believed source.
    pub received: RtpStatsSnapshot,
    /// RTP packets sent.
    pub sent: u64,
    /// Packets dropped because they came from a source the latch does not believe.
    pub foreign_dropped: u64,
}

/// The state a session's handle, receive task and pacing thread share. Each holds the lock only
/// for a moment and never while taking another session's.
#[derive(Debug)]
struct Shared {
    call_id: Box<str>,
    /// Set once, soon after start; packets before it go uncounted by the process (the final
    /// report still has them).
    counters: OnceLock<PacketCounters>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    out: Outgoing,
    /// The socket the pacing thread sends from; `None` once the session has ended.
    socket: Option<Arc<std::net::UdpSocket>>,
    /// Which received packets are believed, and where we send.
    latch: Latch,
    /// How long the far end has sent nothing believed.
    inactivity: Inactivity,
    /// Where received packets are relayed (the other leg's `relay_input`).
    relay_target: Option<RelaySender>,
    send_errors: u64,
    /// The stream has started (the first prompt, key press or relayed frame) and has been handed
    /// to a pacing thread.
    started: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent-enough media state (at worst
        // a packet half-accounted); the call should go on rather than fail every later access.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the paced stream if nothing has yet. `st` is this session's locked state.
    fn start_stream(self: &Arc<Self>, st: &mut State) {
        if !st.started {
            st.started = true;
            ticker::register(self.clone(), Instant::now());
        }
    }

    /// The session is over: no more packets, prompts end `SessionEnded`; the pacing thread drops
    /// the stream at its next slot.
    fn end(&self) {
        let mut st = self.lock();
        st.socket = None;
        st.relay_target = None;
        st.out.end_playback(PlayOutcome::SessionEnded);
    }
}

impl Paced for Shared {
    fn serve(&self, due: Due, buf: &mut Vec<u8>) -> bool {
        let mut st = self.lock();
        let State {
            out,
            socket,
            latch,
            send_errors,
            ..
        } = &mut *st;
        let Some(socket) = socket.as_deref() else {
            return false;
        };
        if due.skipped > 0 {
            out.skip(due.skipped);
        }
        let dest = latch.destination();
        let sent = self.counters.get().map(|c| &c.sent);
        for _ in 0..due.send {
            out.slot(buf, |pkt| {
                if let Some(sent) = sent {
                    sent.inc();
                }
                if let Err(e) = socket.send_to(pkt, dest) {
                    *send_errors += 1;
                    // Powers of two: the first failure and then ever more rarely, not 50 lines a
                    // second.
                    if send_errors.is_power_of_two() {
                        log_send_error(&self.call_id, &e, dest, *send_errors);
                    }
                }
            });
        }
        true
    }
}

fn log_send_error(call_id: &str, e: &io::Error, dest: SocketAddr, count: u64) {
    tracing::warn!(call_id, error = %e, %dest, count, "RTP send failed");
}

/// The receive task: reads the socket, applies the source rules, relays and queues what they
/// accept.
struct Receiver {
    shared: Arc<Shared>,
    codec: Codec,
    stats: RtpStats,
    events: mpsc::Sender<RtpIn>,
}

/// Ends the stream when the receive task ends, however it ends (stopped, handle dropped, runtime
/// shut down, panic), so the pacing thread never sends for a session nobody controls.
struct EndGuard(Arc<Shared>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.end();
    }
}

impl Receiver {
    async fn run(
        mut self,
        socket: Option<ReceiveSocket>,
        mut stop: oneshot::Receiver<()>,
    ) -> SessionReport {
        let _end = EndGuard(self.shared.clone());
        if let Some(socket) = socket {
            loop {
                tokio::select! {
                    _ = &mut stop => return self.finish(),
                    res = socket.readable() => match res {
                        Ok(_ready) => self.drain(&socket),
                        Err(e) => {
                            // Only when the runtime is shutting down.
                            tracing::debug!(error = %e, "RTP receive failed");
                            break;
                        }
                    },
                }
            }
        }
        let _ = stop.await;
        self.finish()
    }

    /// Reads what the socket has, a batch at a time. The buffer lives on this poll's stack, not
    /// in the task, so an idle session costs no receive buffer.
    fn drain(&mut self, socket: &ReceiveSocket) {
        let mut buf = [0u8; RECV_BUFFER];
        for _ in 0..RECV_BATCH {
            match socket.try_io(Interest::READABLE, |s| s.recv_from(&mut buf)) {
                Ok((len, from)) => self.on_datagram(&buf[..len], from, Instant::now()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => tracing::debug!(error = %e, "RTP receive failed"),
            }
        }
    }

    fn on_datagram(&mut self, buf: &[u8], from: SocketAddr, now: Instant) {
        let pkt = match rtp::parse(buf) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(%from, error = %e, "ignoring non-RTP datagram");
                return;
            }
        };
        let relay = {
            let mut st = self.shared.lock();
            match st.latch.on_packet(now, from, pkt.ssrc) {
                Verdict::Accept => {}
                Verdict::Latched { to, moved_from } => match moved_from {
                    Some(old) => {
                        tracing::info!(%to, from = %old, ssrc = pkt.ssrc, "RTP source moved (NAT rebinding): sending there");
                    }
                    None if to != st.latch.sdp() => {
                        tracing::info!(%to, sdp = %st.latch.sdp(), "symmetric RTP: sending to source address");
                    }
                    None => {}
                },
                Verdict::Dropped { report } => {
                    if let Some(count) = report {
                        tracing::warn!(%from, expected = %st.latch.destination(), count,
                                       total = st.latch.dropped(), "RTP from an unexpected source dropped");
                    }
                    return;
                }
            }
            st.inactivity.on_media(now);
            if let Some(c) = self.shared.counters.get() {
                c.received.inc();
            }
            st.relay_target
                .clone()
                .map(|target| (target, st.out.telephone_event()))
        };
        if pkt.payload_type == self.codec.payload_type() {
            self.stats
                .on_audio(pkt.seq, pkt.timestamp, now, Codec::CLOCK_RATE);
        } else {
            self.stats.on_other(pkt.seq);
        }
        // Our lock is released: the target's is taken on its own, never both at once.
        if let Some((target, telephone_event)) = relay
            && let Some(frame) = frame_from_packet(&pkt, self.codec, telephone_event)
            && target.send(frame).is_err()
        {
            tracing::info!("relay target ended; relaying stopped");
            let mut st = self.shared.lock();
            if st.relay_target.as_ref().is_some_and(|t| t.is(&target)) {
                st.relay_target = None;
            }
        }
        // A slow or absent consumer loses events rather than stalling the media task.
        let _ = self.events.try_send(pkt);
    }

    fn finish(&self) -> SessionReport {
        let snap = self.stats.snapshot();
        let st = self.shared.lock();
        let relay = st.out.relay_out();
        tracing::info!(
            sent = st.out.packets_sent(),
            send_errors = st.send_errors,
            slots_skipped = st.out.slots_skipped(),
            relay_samples_dropped = relay.samples_dropped(),
            relay_events = relay.events_relayed(),
            relay_events_dropped = relay.events_dropped(),
            rtp_dropped = st.latch.dropped(),
            "media session ended: {snap}"
        );
        SessionReport {
            received: snap,
            sent: st.out.packets_sent(),
            foreign_dropped: st.latch.dropped(),
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
