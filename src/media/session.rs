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
use super::player::{Frame, PromptPlayer, silence_frame};
use super::rtp::{self, RtpIn, RtpSender};
use super::stats::{RtpStats, RtpStatsSnapshot};

/// Packetisation time: RFC 3551's default for G.711, and what every SIP endpoint expects.
pub const PTIME: Duration = Duration::from_millis(20);

/// Received packets buffered for the consumer of `take_events` before new ones are dropped.
const EVENT_QUEUE: usize = 256;

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
        };
        MediaHandle {
            cmd: cmd_tx,
            task: tokio::spawn(task.run(cmd_rx).instrument(span)),
            local_addr,
            events: Some(ev_rx),
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
}

impl Task {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Command>) {
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
                if self.pacer.is_none() {
                    self.pacer = Some(Pacer::new(Instant::now(), PTIME));
                }
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
            let (frame, finished) = self.next_frame();
            self.send_frame(&frame).await;
            if let Some(done) = finished {
                let _ = done.send(PlayOutcome::Finished);
            }
        }
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
        let dest = self.latched.unwrap_or(self.remote);
        if let Err(e) = self.socket.send_to(&pkt, dest).await {
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
