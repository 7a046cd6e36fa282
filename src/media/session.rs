//! The media session of one call: a tokio task that owns the call's RTP socket, sends paced
//! prompt audio and receives the caller's RTP. It is the thin shell around the sans-IO pieces
//! (`Pacer`, `PromptPlayer`, `RtpSender`, `RtpStats`); the call task drives it through a
//! `MediaHandle`.
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
//! - Symmetric RTP (RFC 4961): we send to the address of the first RTP packet we receive instead
//!   of the SDP address, which fixes callers behind NAT. The latch is taken once per remote
//!   (reset by `set_remote`); packets from any other source are then ignored, so a stranger
//!   cannot hijack the stream by spraying packets later.
//! - Bridging (B2BUA): `relay_to` hands every received packet, as a `RelayFrame`, to another
//!   session's `relay_input`; that session sends it on its own stream (its SSRC, sequence and
//!   timestamps, its codec, its telephone-event payload type) through a `RelayOut`. Priority in
//!   each 20 ms slot: a key press of our own (`send_dtmf`), then prompts (a whisper plays before
//!   the bridge; relayed media arriving meanwhile is dropped), then relayed audio or events, then
//!   silence. Forwarding uses `try_send`, so a stalled session never stalls the other leg.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::g711::Codec;
use super::pacer::Pacer;
use super::player::{FRAME_SAMPLES, Frame, PromptPlayer, silence_frame};
use super::relay::{
    DigitEvents, EventPacket, RelayFrame, RelayOut, RelayOutput, frame_from_packet,
};
use super::rtp::{self, RtpIn, RtpSender};
use super::stats::{RtpStats, RtpStatsSnapshot};
use super::tones::dtmf_tone;

/// Packetisation time: RFC 3551's default for G.711, and what every SIP endpoint expects.
pub const PTIME: Duration = Duration::from_millis(20);

/// Received packets buffered for the consumer of `take_events` before new ones are dropped.
const EVENT_QUEUE: usize = 256;

/// Relayed frames queued into a session before the other leg's `try_send` drops them: a second of
/// media. The session drains its input at once (into its `RelayOut`, which caps the delay), so
/// this only fills when the task is stalled.
const RELAY_QUEUE: usize = 50;

/// Silence after an in-band key tone (`send_dtmf` without telephone-event), so that two presses
/// of the same key in a row are heard as two.
const INBAND_DIGIT_GAP_MS: usize = 60;

/// A sender into a session's relay input (`MediaHandle::relay_input`).
pub type RelaySender = mpsc::Sender<RelayFrame>;

/// How a `play` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayOutcome {
    /// The last packet of the prompt was sent (or, on hold, would have been).
    Finished,
    /// `stop_playback` cut it short or it was still queued then.
    Interrupted,
    /// The session stopped (or its task ended) before the prompt finished.
    SessionEnded,
}

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

enum Command {
    Play {
        samples: Arc<[i16]>,
        done: oneshot::Sender<PlayOutcome>,
    },
    StopPlayback,
    SetRemote(SocketAddr),
    SetHold(bool),
    SetTelephoneEvent(Option<u8>),
    RelayTo(Option<RelaySender>),
    SendDtmf {
        digit: char,
        duration: Duration,
    },
    Stop {
        reply: oneshot::Sender<RtpStatsSnapshot>,
    },
}

/// Control of a running media session. Dropping it ends the session task.
#[derive(Debug)]
pub struct MediaHandle {
    // Unbounded: commands come from one call task at human speed, and an unbounded sender lets
    // the control methods be synchronous.
    cmd: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
    local_addr: Option<SocketAddr>,
    events: Option<mpsc::Receiver<RtpIn>>,
    relay_input: RelaySender,
}

/// Namespace for starting sessions; the running state lives in the spawned task.
pub struct MediaSession;

impl MediaSession {
    /// Spawns the session task on the current tokio runtime. `remote` is the address from the
    /// peer's SDP; `codec` the negotiated G.711 flavour.
    pub fn start(
        socket: UdpSocket,
        remote: SocketAddr,
        codec: Codec,
        call_id: String,
    ) -> MediaHandle {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let (relay_tx, relay_rx) = mpsc::channel(RELAY_QUEUE);
        let local_addr = socket.local_addr().ok();
        let span = tracing::info_span!("media", call_id = %call_id, local = ?local_addr);
        let task = Task {
            socket,
            codec,
            remote,
            latched: None,
            sender: RtpSender::new(codec),
            stats: RtpStats::new(),
            pacer: None,
            current: None,
            queue: VecDeque::new(),
            held: false,
            marker_pending: true,
            events: ev_tx,
            send_errors: 0,
            telephone_event: None,
            relay_out: RelayOut::new(None),
            relay_target: None,
            relay_full: 0,
            digits: VecDeque::new(),
        };
        MediaHandle {
            cmd: cmd_tx,
            task: tokio::spawn(task.run(cmd_rx, relay_rx).instrument(span)),
            local_addr,
            events: Some(ev_rx),
            relay_input: relay_tx,
        }
    }
}

impl MediaHandle {
    /// The local RTP address, for our SDP.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Queues a prompt (8 kHz mono samples) after whatever is playing; the returned `Playback`
    /// resolves when its last packet has been sent.
    pub fn play(&self, samples: Arc<[i16]>) -> Playback {
        let (done, rx) = oneshot::channel();
        // If the task is gone, `done` is dropped with the command and the Playback resolves to
        // SessionEnded, which is the truth.
        let _ = self.cmd.send(Command::Play { samples, done });
        Playback { rx }
    }

    /// Cuts the current prompt and drops queued ones (barge-in on DTMF); they resolve
    /// `Interrupted`. The stream continues with silence.
    pub fn stop_playback(&self) {
        let _ = self.cmd.send(Command::StopPlayback);
    }

    /// A re-INVITE moved the far end: send there, and latch afresh.
    pub fn set_remote(&self, addr: SocketAddr) {
        let _ = self.cmd.send(Command::SetRemote(addr));
    }

    /// Far end put us on hold (`sendonly`/`inactive`): stop sending until released.
    pub fn set_hold(&self, held: bool) {
        let _ = self.cmd.send(Command::SetHold(held));
    }

    /// The negotiated `telephone-event/8000` payload type of this leg (from the SDP answer), or
    /// `None`: used to recognise received RFC 4733 packets for `relay_to` and to send events
    /// (relayed ones and `send_dtmf`). Types outside the dynamic range 96–127 are refused.
    pub fn set_telephone_event(&self, pt: Option<u8>) {
        let pt = pt.filter(|&pt| {
            let ok = (96..=127).contains(&pt);
            if !ok {
                tracing::warn!(pt, "telephone-event payload type outside 96–127 ignored");
            }
            ok
        });
        let _ = self.cmd.send(Command::SetTelephoneEvent(pt));
    }

    /// A sender into this session: frames pushed here go to this session's far end, encoded with
    /// its codec (events with its telephone-event payload type), on its own RTP stream. The first
    /// frame starts the stream if no prompt has. Prompts take precedence (relayed media is dropped
    /// while one plays); with no relayed audio buffered the stream carries silence.
    pub fn relay_input(&self) -> RelaySender {
        self.relay_input.clone()
    }

    /// From now on, converts every packet received from the far end (`relay::frame_from_packet`)
    /// and offers it to `target` without waiting (dropped if its queue is full); `None` stops.
    /// Received packets still go to `take_events` as well.
    pub fn relay_to(&self, target: Option<RelaySender>) {
        let _ = self.cmd.send(Command::RelayTo(target));
    }

    /// Sends a key press to the far end: RFC 4733 events on this session's stream if a
    /// telephone-event payload type is set (no audio meanwhile), else the in-band Q.23 tone pair,
    /// queued like a prompt. Presses queue behind one another. Non-DTMF characters are ignored.
    pub fn send_dtmf(&self, digit: char, duration: Duration) {
        let _ = self.cmd.send(Command::SendDtmf { digit, duration });
    }

    /// Received RTP packets (from the latched source), for DTMF and recording. Can be taken once;
    /// if nobody takes it, packets beyond a small buffer are dropped.
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<RtpIn>> {
        self.events.take()
    }

    /// Ends the session and returns its final receive statistics.
    pub async fn stop(self) -> RtpStatsSnapshot {
        let (reply, rx) = oneshot::channel();
        let _ = self.cmd.send(Command::Stop { reply });
        let snapshot = rx.await;
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "media task failed");
        }
        snapshot.unwrap_or_else(|_| {
            // Only reachable if the task panicked; the error was logged above.
            tracing::warn!("media task ended before stop; receive statistics lost");
            RtpStatsSnapshot::default()
        })
    }
}

struct Task {
    socket: UdpSocket,
    codec: Codec,
    /// Where SDP says to send.
    remote: SocketAddr,
    /// Where RTP actually came from (symmetric RTP); wins over `remote` once set.
    latched: Option<SocketAddr>,
    sender: RtpSender,
    stats: RtpStats,
    /// `None` until the first prompt starts the stream.
    pacer: Option<Pacer>,
    current: Option<(PromptPlayer, oneshot::Sender<PlayOutcome>)>,
    queue: VecDeque<(Arc<[i16]>, oneshot::Sender<PlayOutcome>)>,
    held: bool,
    /// The next packet sent starts a talk spurt (stream start, or resume after hold).
    marker_pending: bool,
    events: mpsc::Sender<RtpIn>,
    send_errors: u64,
    /// This leg's telephone-event payload type.
    telephone_event: Option<u8>,
    /// Media relayed from the other leg of a bridge, waiting for its slot.
    relay_out: RelayOut,
    /// Where received packets are relayed (the other leg's `relay_input`).
    relay_target: Option<RelaySender>,
    /// Received packets the relay target had no room for.
    relay_full: u64,
    /// Key presses to send as RFC 4733 events; the front one is being sent.
    digits: VecDeque<DigitEvents>,
}

/// What one packet slot carries.
enum Slot {
    Audio(Frame, Option<oneshot::Sender<PlayOutcome>>),
    Events(Vec<EventPacket>),
    /// Nothing is sent, but the slot's time passes.
    Nothing,
}

impl Task {
    async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Command>,
        mut relay_in: mpsc::Receiver<RelayFrame>,
    ) {
        // Larger than any sane RTP packet, so truncated datagrams cannot happen in practice.
        let mut buf = vec![0u8; 2048];
        tracing::debug!(remote = %self.remote, codec = self.codec.name(), "media session started");
        loop {
            let due = self.pacer.as_ref().map(Pacer::next_due);
            let wake = tokio::time::Instant::from_std(due.unwrap_or_else(Instant::now));
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Command::Stop { reply }) => {
                        let _ = reply.send(self.finish());
                        return;
                    }
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        self.finish();
                        return;
                    }
                },
                // The handle holds a sender, so the channel never closes while the task runs.
                Some(frame) = relay_in.recv() => {
                    self.start_stream();
                    self.relay_out.push(frame);
                }
                res = self.socket.recv_from(&mut buf) => match res {
                    Ok((len, from)) => self.on_datagram(&buf[..len], from, Instant::now()),
                    Err(e) => tracing::debug!(error = %e, "RTP receive failed"),
                },
                () = tokio::time::sleep_until(wake), if due.is_some() => {
                    self.on_tick(Instant::now()).await;
                }
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Play { samples, done } => {
                self.start_stream();
                self.queue.push_back((samples, done));
            }
            Command::StopPlayback => self.end_playback(PlayOutcome::Interrupted),
            Command::SetRemote(addr) => {
                tracing::info!(remote = %addr, "media remote changed");
                self.remote = addr;
                self.latched = None;
            }
            Command::SetHold(held) => {
                if self.held && !held {
                    self.marker_pending = true;
                }
                tracing::info!(held, "media hold changed");
                self.held = held;
            }
            Command::SetTelephoneEvent(pt) => {
                tracing::debug!(pt, "telephone-event payload type set");
                self.telephone_event = pt;
                self.relay_out.set_telephone_event(pt);
                if pt.is_none() {
                    self.digits.clear();
                }
            }
            Command::RelayTo(target) => {
                tracing::info!(relaying = target.is_some(), "media relay changed");
                self.relay_target = target;
            }
            Command::SendDtmf { digit, duration } => self.queue_digit(digit, duration),
            // Handled by `run`, which must also leave the loop.
            Command::Stop { .. } => {}
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
        match self.latched {
            None => {
                if from != self.remote {
                    tracing::info!(%from, sdp = %self.remote, "symmetric RTP: sending to source address");
                }
                self.latched = Some(from);
            }
            Some(addr) if addr != from => {
                tracing::debug!(%from, latched = %addr, "ignoring RTP from unlatched source");
                return;
            }
            Some(_) => {}
        }
        self.stats
            .on_packet(pkt.seq, pkt.timestamp, now, Codec::CLOCK_RATE);
        self.relay(&pkt);
        // A slow or absent consumer loses events rather than stalling the media task.
        let _ = self.events.try_send(pkt);
    }

    async fn on_tick(&mut self, now: Instant) {
        let Some(pacer) = self.pacer.as_mut() else {
            return;
        };
        let due = pacer.poll(now);
        let skipped = pacer.take_skipped();
        if skipped > 0 {
            tracing::warn!(skipped, "media task woke late; skipped packet slots");
            self.sender
                .skip_samples(skipped.saturating_mul(super::player::FRAME_SAMPLES as u32));
        }
        for _ in 0..due {
            match self.next_slot() {
                Slot::Audio(frame, finished) => {
                    self.send_frame(&frame).await;
                    if let Some(done) = finished {
                        let _ = done.send(PlayOutcome::Finished);
                    }
                }
                Slot::Events(pkts) => self.send_events(&pkts).await,
                Slot::Nothing => self.sender.skip_samples(FRAME_SAMPLES as u32),
            }
        }
    }

    /// Starts the paced stream if nothing has yet.
    fn start_stream(&mut self) {
        if self.pacer.is_none() {
            self.pacer = Some(Pacer::new(Instant::now(), PTIME));
        }
    }

    fn queue_digit(&mut self, digit: char, duration: Duration) {
        if self.telephone_event.is_some() {
            match DigitEvents::new(digit, duration) {
                Some(d) => {
                    self.start_stream();
                    self.digits.push_back(d);
                }
                None => tracing::warn!(?digit, "send_dtmf: not a DTMF key; ignored"),
            }
            return;
        }
        let ms = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
        let mut samples = dtmf_tone(digit, ms);
        if samples.is_empty() {
            tracing::warn!(
                ?digit,
                "send_dtmf: not a DTMF key (or zero length); ignored"
            );
            return;
        }
        samples.resize(samples.len() + INBAND_DIGIT_GAP_MS * 8, 0);
        // Nobody waits for the outcome: dropping the receiver is fine, `send` on a closed
        // oneshot is ignored.
        let (done, _) = oneshot::channel();
        self.start_stream();
        self.queue.push_back((samples.into(), done));
    }

    /// Offers a received packet to the relay target, if bridged.
    fn relay(&mut self, pkt: &RtpIn) {
        let Some(target) = &self.relay_target else {
            return;
        };
        let Some(frame) = frame_from_packet(pkt, self.codec, self.telephone_event) else {
            return;
        };
        match target.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.relay_full += 1;
                if self.relay_full.is_power_of_two() {
                    tracing::warn!(count = self.relay_full, "relay target full; packet dropped");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::info!("relay target ended; relaying stopped");
                self.relay_target = None;
            }
        }
    }

    /// What this packet slot carries: our own key press first, then prompts, then relayed media.
    fn next_slot(&mut self) -> Slot {
        let ts = self.sender.next_timestamp();
        while let Some(digit) = self.digits.front_mut() {
            let pkt = digit.next_packet(ts);
            if digit.is_done() {
                self.digits.pop_front();
            }
            if let Some(pkt) = pkt {
                self.relay_out.skip_tick();
                return Slot::Events(vec![pkt]);
            }
        }
        if self.current.is_some() || !self.queue.is_empty() {
            self.relay_out.skip_tick();
            let (frame, done) = self.next_frame();
            return Slot::Audio(frame, done);
        }
        match self.relay_out.tick(ts) {
            RelayOutput::Audio(pcm) => {
                let mut payload = Vec::with_capacity(FRAME_SAMPLES);
                self.codec.encode(&pcm, &mut payload);
                Slot::Audio(
                    Frame {
                        samples: FRAME_SAMPLES as u32,
                        payload,
                        marker: false,
                    },
                    None,
                )
            }
            RelayOutput::Silence => Slot::Audio(silence_frame(self.codec), None),
            RelayOutput::Events(pkts) => Slot::Events(pkts),
            RelayOutput::Nothing => Slot::Nothing,
        }
    }

    /// Sends telephone-event packets in place of one audio packet: the audio timestamp moves on
    /// by the slot either way, so audio after the event stays in step with wall time.
    async fn send_events(&mut self, pkts: &[EventPacket]) {
        if let (false, Some(pt)) = (self.held, self.telephone_event) {
            for p in pkts {
                let pkt = self
                    .sender
                    .next_packet_at(pt, &p.payload, p.timestamp, p.marker);
                self.transmit(&pkt).await;
            }
        }
        self.sender.skip_samples(FRAME_SAMPLES as u32);
    }

    /// The next frame to send, and the completion to signal once it is sent if it was the
    /// last frame of a prompt.
    fn next_frame(&mut self) -> (Frame, Option<oneshot::Sender<PlayOutcome>>) {
        loop {
            if self.current.is_none() {
                match self.queue.pop_front() {
                    Some((samples, done)) => {
                        self.current = Some((PromptPlayer::new(samples, self.codec), done));
                    }
                    None => return (silence_frame(self.codec), None),
                }
            }
            let Some((player, _)) = self.current.as_mut() else {
                continue;
            };
            match player.next_frame() {
                Some(frame) if player.is_done() => {
                    let done = self.current.take().map(|(_, d)| d);
                    return (frame, done);
                }
                Some(frame) => return (frame, None),
                None => {
                    // An empty prompt: nothing to send, it is finished at once.
                    if let Some((_, done)) = self.current.take() {
                        let _ = done.send(PlayOutcome::Finished);
                    }
                }
            }
        }
    }

    async fn send_frame(&mut self, frame: &Frame) {
        if self.held {
            self.sender.skip_samples(frame.samples);
            return;
        }
        let marker = std::mem::replace(&mut self.marker_pending, false);
        let pkt = self
            .sender
            .next_packet(&frame.payload, frame.samples, marker);
        self.transmit(&pkt).await;
    }

    async fn transmit(&mut self, pkt: &[u8]) {
        let dest = self.latched.unwrap_or(self.remote);
        if let Err(e) = self.socket.send_to(pkt, dest).await {
            self.send_errors += 1;
            // Powers of two: the first failure and then ever more rarely, not 50 lines a second.
            if self.send_errors.is_power_of_two() {
                log_send_error(&e, dest, self.send_errors);
            }
        }
    }

    fn end_playback(&mut self, outcome: PlayOutcome) {
        if let Some((_, done)) = self.current.take() {
            let _ = done.send(outcome);
        }
        for (_, done) in self.queue.drain(..) {
            let _ = done.send(outcome);
        }
    }

    fn finish(&mut self) -> RtpStatsSnapshot {
        self.end_playback(PlayOutcome::SessionEnded);
        let snap = self.stats.snapshot();
        tracing::info!(
            sent = self.sender.packets_sent(),
            send_errors = self.send_errors,
            relay_full = self.relay_full,
            relay_samples_dropped = self.relay_out.samples_dropped(),
            relay_events = self.relay_out.events_relayed(),
            relay_events_dropped = self.relay_out.events_dropped(),
            "media session ended: {snap}"
        );
        snap
    }
}

fn log_send_error(e: &io::Error, dest: SocketAddr, count: u64) {
    tracing::warn!(error = %e, %dest, count, "RTP send failed");
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
