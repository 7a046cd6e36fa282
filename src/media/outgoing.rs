//! The sending half of one call's RTP stream, sans-IO: what each 20 ms packet slot carries and
//! the datagrams that carry it. It has no socket and no clock; a pacing thread (`ticker`) calls
//! [`Outgoing::slot`] once per due slot and sends what it writes, and the session feeds it prompts,
//! key presses, relayed frames and hold changes.
//!
//! Priority in each slot: a key press of our own (`send_dtmf`), then prompts (relayed media
//! arriving meanwhile is dropped), then relayed audio or events, then silence. While held nothing
//! is written, but prompts still play out on schedule (frames are consumed, not sent) and the RTP
//! timestamp moves on with the slots; the first packet after the hold carries the marker bit, as
//! does the stream's very first packet.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::g711::Codec;
use super::player::{FRAME_SAMPLES, PromptPlayer, append_silence};
use super::relay::{DigitEvents, EventPacket, RelayFrame, RelayOut, RelayOutput};
use super::rtp::RtpSender;
use super::tones::dtmf_tone;

/// Silence after an in-band key tone (`send_dtmf` without telephone-event), so that two presses
/// of the same key in a row are heard as two.
const INBAND_DIGIT_GAP_MS: usize = 60;

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

/// Why `send_dtmf` queued nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigitError {
    #[error("not a DTMF key")]
    NotAKey,
    #[error("not a DTMF key, or a zero-length press")]
    NoTone,
}

/// One call's outgoing RTP stream; see the module docs.
#[derive(Debug)]
pub struct Outgoing {
    codec: Codec,
    sender: RtpSender,
    current: Option<(PromptPlayer, oneshot::Sender<PlayOutcome>)>,
    queue: VecDeque<(Arc<[i16]>, oneshot::Sender<PlayOutcome>)>,
    held: bool,
    /// The next packet written starts a talk spurt (stream start, or resume after hold).
    marker_pending: bool,
    /// This leg's telephone-event payload type.
    telephone_event: Option<u8>,
    /// Media relayed from the other leg of a bridge, waiting for its slot.
    relay_out: RelayOut,
    /// Key presses to send as RFC 4733 events; the front one is being sent.
    digits: VecDeque<DigitEvents>,
    slots_skipped: u64,
}

impl Outgoing {
    /// A stream with random SSRC, sequence and timestamp (RFC 3550 §5.1).
    pub fn new(codec: Codec) -> Self {
        Self::with_sender(codec, RtpSender::new(codec))
    }

    /// A stream numbered by `sender` (fixed initial values in tests).
    pub fn with_sender(codec: Codec, sender: RtpSender) -> Self {
        Self {
            codec,
            sender,
            current: None,
            queue: VecDeque::new(),
            held: false,
            marker_pending: true,
            telephone_event: None,
            relay_out: RelayOut::new(None),
            digits: VecDeque::new(),
            slots_skipped: 0,
        }
    }

    /// Queues a prompt after whatever is playing; `done` learns how it ended.
    pub fn play(&mut self, samples: Arc<[i16]>, done: oneshot::Sender<PlayOutcome>) {
        self.queue.push_back((samples, done));
    }

    /// Ends the current prompt and drops the queued ones, telling each how.
    pub fn end_playback(&mut self, outcome: PlayOutcome) {
        if let Some((_, done)) = self.current.take() {
            let _ = done.send(outcome);
        }
        for (_, done) in self.queue.drain(..) {
            let _ = done.send(outcome);
        }
    }

    /// Stops (`true`) or resumes sending; resuming starts a talk spurt.
    pub fn set_hold(&mut self, held: bool) {
        if self.held && !held {
            self.marker_pending = true;
        }
        self.held = held;
    }

    pub fn telephone_event(&self) -> Option<u8> {
        self.telephone_event
    }

    /// This leg's negotiated telephone-event payload type; with `None`, queued key presses are
    /// dropped (they could not be sent).
    pub fn set_telephone_event(&mut self, pt: Option<u8>) {
        self.telephone_event = pt;
        self.relay_out.set_telephone_event(pt);
        if pt.is_none() {
            self.digits.clear();
        }
    }

    /// Queues a key press: RFC 4733 events if a telephone-event payload type is set, else the
    /// in-band tone pair (and a short gap), queued like a prompt.
    pub fn send_dtmf(&mut self, digit: char, duration: Duration) -> Result<(), DigitError> {
        if self.telephone_event.is_some() {
            let d = DigitEvents::new(digit, duration).ok_or(DigitError::NotAKey)?;
            self.digits.push_back(d);
            return Ok(());
        }
        let ms = u32::try_from(duration.as_millis()).unwrap_or(u32::MAX);
        let mut samples = dtmf_tone(digit, ms);
        if samples.is_empty() {
            return Err(DigitError::NoTone);
        }
        samples.resize(samples.len() + INBAND_DIGIT_GAP_MS * 8, 0);
        // Nobody waits for the outcome: dropping the receiver is fine, `send` on a closed
        // oneshot is ignored.
        let (done, _) = oneshot::channel();
        self.queue.push_back((samples.into(), done));
        Ok(())
    }

    /// Takes a frame relayed from the other leg of a bridge; it goes out in the next slots.
    pub fn push_relay(&mut self, frame: RelayFrame) {
        self.relay_out.push(frame);
    }

    /// Slots that passed without being served (the pacer fell behind): the timestamp moves on by
    /// their time, so it keeps tracking wall time; prompts are not advanced.
    pub fn skip(&mut self, slots: u32) {
        self.slots_skipped += u64::from(slots);
        self.sender
            .skip_samples(slots.saturating_mul(FRAME_SAMPLES as u32));
    }

    /// Serves one packet slot: writes each datagram to send into `buf` (cleared first, reused so
    /// the steady state allocates nothing) and hands it to `emit`; usually one, none while held,
    /// several when relayed events catch up.
    pub fn slot(&mut self, buf: &mut Vec<u8>, mut emit: impl FnMut(&[u8])) {
        let ts = self.sender.next_timestamp();
        while let Some(digit) = self.digits.front_mut() {
            let pkt = digit.next_packet(ts);
            if digit.is_done() {
                self.digits.pop_front();
            }
            if let Some(pkt) = pkt {
                self.relay_out.skip_tick();
                self.events(&[pkt], buf, &mut emit);
                return;
            }
        }
        if self.current.is_some() || !self.queue.is_empty() {
            self.relay_out.skip_tick();
            self.prompt_frame(buf, &mut emit);
            return;
        }
        let codec = self.codec;
        match self.relay_out.tick(ts) {
            RelayOutput::Audio(pcm) => self.audio(buf, &mut emit, |out| codec.encode(&pcm, out)),
            RelayOutput::Silence => self.audio(buf, &mut emit, |out| append_silence(codec, out)),
            RelayOutput::Events(pkts) => self.events(&pkts, buf, &mut emit),
            RelayOutput::Nothing => self.sender.skip_samples(FRAME_SAMPLES as u32),
        }
    }

    /// The next frame of the prompt queue (silence if every queued prompt was empty); a prompt
    /// whose last frame this is learns `Finished` once it is written.
    fn prompt_frame(&mut self, buf: &mut Vec<u8>, emit: &mut impl FnMut(&[u8])) {
        loop {
            if self.current.is_none() {
                match self.queue.pop_front() {
                    Some((samples, done)) => {
                        self.current = Some((PromptPlayer::new(samples, self.codec), done));
                    }
                    None => {
                        let codec = self.codec;
                        self.audio(buf, emit, |out| append_silence(codec, out));
                        return;
                    }
                }
            }
            if !self.current.as_ref().is_some_and(|(p, _)| p.is_done()) {
                break;
            }
            // An empty prompt: nothing to send, it is finished at once.
            if let Some((_, done)) = self.current.take() {
                let _ = done.send(PlayOutcome::Finished);
            }
        }
        // The loop above leaves a prompt with a frame to go in `current`.
        let Some((player, _)) = self.current.as_mut() else {
            return;
        };
        if self.held {
            player.skip_frame();
            self.sender.skip_samples(FRAME_SAMPLES as u32);
        } else {
            let marker = std::mem::replace(&mut self.marker_pending, false);
            self.sender
                .write_next(buf, FRAME_SAMPLES as u32, marker, |out| {
                    player.encode_next(out);
                });
            emit(buf);
        }
        if player.is_done()
            && let Some((_, done)) = self.current.take()
        {
            let _ = done.send(PlayOutcome::Finished);
        }
    }

    /// One audio packet whose payload `payload` appends, unless held.
    fn audio(
        &mut self,
        buf: &mut Vec<u8>,
        emit: &mut impl FnMut(&[u8]),
        payload: impl FnOnce(&mut Vec<u8>),
    ) {
        if self.held {
            self.sender.skip_samples(FRAME_SAMPLES as u32);
            return;
        }
        let marker = std::mem::replace(&mut self.marker_pending, false);
        self.sender
            .write_next(buf, FRAME_SAMPLES as u32, marker, payload);
        emit(buf);
    }

    /// Telephone-event packets in place of one audio packet: the audio timestamp moves on by the
    /// slot either way, so audio after the event stays in step with wall time.
    fn events(&mut self, pkts: &[EventPacket], buf: &mut Vec<u8>, emit: &mut impl FnMut(&[u8])) {
        if let (false, Some(pt)) = (self.held, self.telephone_event) {
            for p in pkts {
                self.sender
                    .write_at(buf, pt, &p.payload, p.timestamp, p.marker);
                emit(buf);
            }
        }
        self.sender.skip_samples(FRAME_SAMPLES as u32);
    }

    pub fn packets_sent(&self) -> u64 {
        self.sender.packets_sent()
    }

    /// Slots skipped because the pacer fell behind (see `skip`).
    pub fn slots_skipped(&self) -> u64 {
        self.slots_skipped
    }

    /// The relay's counters, for the session's closing log line.
    pub fn relay_out(&self) -> &RelayOut {
        &self.relay_out
    }
}

#[cfg(test)]
#[path = "outgoing_tests.rs"]
mod tests;
