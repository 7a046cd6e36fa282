//! DTMF for one call, from all three ways phones send it, as one stream of digits.
//!
//! `rfc4733` decodes telephone-event RTP packets, `info` reads SIP INFO bodies and `goertzel`
//! detects tones in the G.711 audio itself. [`DtmfReceiver`] feeds each its input and merges their
//! digits, dropping the copies a phone produces when it signals one key press two ways at once (see
//! [`DtmfReceiver`] for the rule). Everything here is sans-IO: inputs carry their arrival time and
//! the caller (the call task) owns sockets and timers.

pub mod goertzel;
pub mod info;
pub mod rfc4733;

#[cfg(test)]
mod receiver_tests;
#[cfg(test)]
mod test_support;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use goertzel::InbandDetector;
pub use info::parse_info;
pub use rfc4733::{EventHeader, Rfc4733Decoder, Rfc4733Error, TelephoneEvent};

use super::g711::Codec;
use super::rtp::RtpIn;

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    /// `0`–`9`, `*`, `#` or `A`–`D`.
    pub digit: char,
    /// How long the key was held, as the source reported or measured it.
    pub duration_ms: u32,
    pub source: DtmfSource,
}

/// How a digit reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfSource {
    /// RTP telephone-event packets (RFC 4733, formerly RFC 2833).
    Rfc4733,
    /// A SIP INFO request (`application/dtmf-relay` or `application/dtmf`).
    SipInfo,
    /// Tones in the audio, found by the Goertzel detector.
    Inband,
}

impl DtmfSource {
    fn index(self) -> usize {
        match self {
            DtmfSource::Rfc4733 => 0,
            DtmfSource::SipInfo => 1,
            DtmfSource::Inband => 2,
        }
    }
}

/// A digit from one source is taken as a copy of the same digit from another source accepted at
/// most this long before. Phones that double-signal send INFO at key-down and the RFC 4733 end at
/// key-up, so the two copies are a key press apart (usually 100–300 ms); a second real press of
/// the same key comes from the same source and is never suppressed, so the window can be generous.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(1);

/// Timestamp jump (in samples) after which missing audio is treated as silence: 40 ms, the
/// shortest gap that separates two presses. Shorter holes are lost packets inside a tone and are
/// closed up instead, so that one lost packet does not split a held key into two.
const AUDIO_GAP_SAMPLES: usize = 320;

/// A digit accepted recently, kept so a copy from another source can be recognised.
#[derive(Debug, Clone)]
struct Accepted {
    digit: char,
    source: DtmfSource,
    at: Instant,
    /// Per source: a copy from it was already matched to this digit (each copy matches once, so
    /// "55" sent both ways still gives two digits).
    copied_by: [bool; 3],
}

/// Merges RFC 4733, SIP INFO and in-band DTMF of one call into one digit stream.
///
/// De-duplication rule: (1) once a telephone-event packet has been seen in the call, in-band
/// detection stops for the rest of it — a phone that sends RFC 4733 may also leave the tones in its
/// audio, and the events are the more reliable copy; (2) a digit is dropped when the same digit
/// from a *different* source was accepted within [`DEDUP_WINDOW`] and has not already absorbed a
/// copy from this source.
///
/// Each call may complete more than one digit; the extra ones are queued and returned by the next
/// call of any method (`poll_at` says when to come back for them).
#[derive(Debug)]
pub struct DtmfReceiver {
    codec: Codec,
    telephone_event_pt: Option<u8>,
    rfc4733: Rfc4733Decoder,
    rfc4733_seen: bool,
    inband: InbandDetector,
    /// SSRC and next expected RTP timestamp of the audio stream.
    audio_next: Option<(u32, u32)>,
    pcm: Vec<i16>,
    recent: VecDeque<Accepted>,
    queued: VecDeque<DtmfDigit>,
    last_input: Option<Instant>,
}

impl DtmfReceiver {
    /// `codec` is the call's negotiated audio codec, `telephone_event_pt` the dynamic payload type
    /// of `telephone-event/8000` if the answer has one.
    pub fn new(codec: Codec, telephone_event_pt: Option<u8>) -> Self {
        Self {
            codec,
            telephone_event_pt,
            rfc4733: Rfc4733Decoder::new(),
            rfc4733_seen: false,
            inband: InbandDetector::new(),
            audio_next: None,
            pcm: Vec::new(),
            recent: VecDeque::new(),
            queued: VecDeque::new(),
            last_input: None,
        }
    }

    /// Feeds one received RTP packet; returns a digit it completes (or one queued earlier).
    pub fn on_rtp(&mut self, pkt: &RtpIn, arrival: Instant) -> Option<DtmfDigit> {
        self.last_input = Some(arrival);
        if Some(pkt.payload_type) == self.telephone_event_pt {
            self.rfc4733_seen = true;
            match self.rfc4733.on_packet(pkt.into(), &pkt.payload, arrival) {
                Ok(digits) => digits.into_iter().for_each(|d| self.offer(d, arrival)),
                Err(e) => tracing::debug!(error = %e, seq = pkt.seq, "telephone-event ignored"),
            }
        } else if pkt.payload_type == self.codec.payload_type() {
            self.on_audio(pkt, arrival);
        }
        // Audio keeps arriving during a call, so it doubles as the clock for a lost event end.
        if let Some(d) = self.rfc4733.poll(arrival) {
            self.offer(d, arrival);
        }
        self.queued.pop_front()
    }

    /// Feeds the Content-Type and body of a received SIP INFO request.
    pub fn on_info(
        &mut self,
        content_type: Option<&str>,
        body: &[u8],
        now: Instant,
    ) -> Option<DtmfDigit> {
        self.last_input = Some(now);
        if let Some(d) = parse_info(content_type, body) {
            self.offer(d, now);
        }
        self.queued.pop_front()
    }

    /// Lets time pass: emits an RFC 4733 press whose end packets were lost, or a queued digit.
    pub fn poll(&mut self, now: Instant) -> Option<DtmfDigit> {
        self.last_input = Some(now);
        if let Some(d) = self.rfc4733.poll(now) {
            self.offer(d, now);
        }
        self.queued.pop_front()
    }

    /// When `poll` has something to do: at once (the last input's time) if digits are queued,
    /// else when a press with lost end packets times out, else never.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.queued.is_empty() {
            self.rfc4733.poll_at()
        } else {
            self.last_input
        }
    }

    /// Decodes audio for the in-band detector, in timestamp order.
    fn on_audio(&mut self, pkt: &RtpIn, arrival: Instant) {
        if self.rfc4733_seen || pkt.payload.is_empty() {
            return;
        }
        let samples = u32::try_from(pkt.payload.len()).unwrap_or(u32::MAX);
        self.pcm.clear();
        match self.audio_next {
            Some((ssrc, next)) if ssrc == pkt.ssrc => {
                let ahead = pkt.timestamp.wrapping_sub(next) as i32;
                if ahead < 0 {
                    // Late or duplicated: splicing it in would cut a tone in two.
                    return;
                }
                if ahead as usize >= AUDIO_GAP_SAMPLES {
                    self.pcm.resize(AUDIO_GAP_SAMPLES, 0);
                }
            }
            _ => {}
        }
        self.audio_next = Some((pkt.ssrc, pkt.timestamp.wrapping_add(samples)));
        self.codec.decode(&pkt.payload, &mut self.pcm);
        for d in self.inband.push(&self.pcm) {
            self.offer(d, arrival);
        }
    }

    /// Applies the de-duplication rule and queues the digit if it is new.
    fn offer(&mut self, d: DtmfDigit, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|a| now.saturating_duration_since(a.at) > DEDUP_WINDOW)
        {
            self.recent.pop_front();
        }
        let copy_of = self
            .recent
            .iter_mut()
            .find(|a| a.digit == d.digit && a.source != d.source && !a.copied_by[d.source.index()]);
        if let Some(original) = copy_of {
            original.copied_by[d.source.index()] = true;
            tracing::debug!(digit = %d.digit, source = ?d.source, first = ?original.source,
                "DTMF digit dropped as a copy");
            return;
        }
        self.recent.push_back(Accepted {
            digit: d.digit,
            source: d.source,
            at: now,
            copied_by: [false; 3],
        });
        self.queued.push_back(d);
    }
}
