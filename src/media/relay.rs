//! Media relay between the two legs of a bridged call (B2BUA), sans-IO.
//!
//! Each leg's media session keeps sending its own RTP stream (its SSRC, sequence and timestamps,
//! paced by its own `Pacer`); the relay only decides what goes into that stream. A packet received
//! on one leg becomes a [`RelayFrame`] ([`frame_from_packet`]: audio decoded to PCM, telephone
//! events passed as they are), crosses to the other leg's session, and is fed to that session's
//! [`RelayOut`], which the session's 20 ms tick asks what to send: 160 samples of audio to encode
//! with its own codec (transcoding PCMU ↔ PCMA falls out of decode + encode), RFC 4733 event packets
//! restamped onto its own timeline, or nothing for now.
//!
//! Why re-origination instead of forwarding packets: the two legs have different codecs, payload
//! types and SSRCs, the bridge may start mid-stream after a whisper prompt, and either leg can be
//! on hold; a stream of our own stays continuous through all of that.
//!
//! [`DigitEvents`] generates the RFC 4733 packets of a key press we originate ourselves
//! (`MediaHandle::send_dtmf`).

use std::collections::VecDeque;
use std::time::Duration;

use super::g711::Codec;
use super::player::FRAME_SAMPLES;
use super::rtp::RtpIn;

/// Most relayed audio buffered for sending: 60 ms. Audio arriving faster than we send (a burst
/// after network jitter, a far-end clock running fast) would otherwise pile up as delay that
/// never goes away; beyond this the oldest samples are dropped.
pub const MAX_BUFFERED_SAMPLES: usize = 3 * FRAME_SAMPLES;

/// Ticks (20 ms each) audio stays suppressed after an event's end: in-band remnants of the tone
/// in the source's audio must not follow the event (RFC 4733 §2.5.1.2 asks senders not to send
/// the tone both ways). It is also how long the sender's redundant end packets (three, one
/// interval apart, §2.5.1.4) are still relayed: 4 ticks cover them with 40 ms of jitter to
/// spare. At 2, a third end one tick late was dropped (the flaky bridge test under load).
const HANGOVER_TICKS: u64 = 4;

/// Ticks without a packet of the current event after which its end packets are taken as lost:
/// 500 ms, as the receiving decoder's own timeout (`rfc4733::END_TIMEOUT`).
const EVENT_TIMEOUT_TICKS: u64 = 25;

/// Source events remembered, so late packets of a finished event are recognised as such.
const EVENT_MEMORY: usize = 16;

/// Event packets waiting for the next tick before new ones are dropped; a sender emits one per
/// packet interval, so this only fills if the session stops ticking.
const MAX_PENDING_EVENTS: usize = 32;

/// E bit of the second byte of a telephone-event payload (RFC 4733 §2.3).
const END_BIT: u8 = 0x80;

/// One unit of media moving from one leg's session to the other's.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayFrame {
    /// Decoded 8 kHz PCM from the other leg (any length; usually 160 samples).
    Audio(Vec<i16>),
    /// An RFC 4733 telephone-event payload (4 bytes: event, E/R/volume, duration), with the source
    /// packet's RTP timestamp (identifies one event: all packets of an event share it) and marker.
    Event {
        payload: [u8; 4],
        source_timestamp: u32,
        marker: bool,
    },
}

/// Converts a packet received on a leg into a frame for the other leg: audio of `codec`'s payload
/// type is decoded, telephone-event packets (payload type `telephone_event`) are passed as
/// `Event`; anything else (comfort noise 13, unknown types, short event payloads) is `None`.
pub fn frame_from_packet(
    pkt: &RtpIn,
    codec: Codec,
    telephone_event: Option<u8>,
) -> Option<RelayFrame> {
    if pkt.payload_type == codec.payload_type() {
        let mut pcm = Vec::with_capacity(pkt.payload.len());
        codec.decode(&pkt.payload, &mut pcm);
        return Some(RelayFrame::Audio(pcm));
    }
    if Some(pkt.payload_type) == telephone_event {
        // Only the first event of the payload: further bytes are RFC 4733 §2.5.1.5 stacked events,
        // which the receiving side's decoder does not need to see the key.
        let [a, b, c, d, ..] = *pkt.payload.as_slice() else {
            return None;
        };
        return Some(RelayFrame::Event {
            payload: [a, b, c, d],
            source_timestamp: pkt.timestamp,
            marker: pkt.marker,
        });
    }
    None
}

/// One telephone-event packet to send on our stream (payload type: the session's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    pub payload: [u8; 4],
    /// Our stream's timestamp of the event's start; the same for every packet of the event.
    pub timestamp: u32,
    /// Set on our first packet of the event only.
    pub marker: bool,
}

/// What one tick of the sending session should transmit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayOutput {
    /// Exactly `FRAME_SAMPLES` samples of relayed audio.
    Audio(Vec<i16>),
    /// No relayed audio buffered: send silence, as between prompts.
    Silence,
    /// Telephone-event packets instead of audio.
    Events(Vec<EventPacket>),
    /// An event is under way (or just ended) but no packet of it is due: send nothing, the
    /// event is the stream's content for now.
    Nothing,
}

/// A source event we have seen: where it went on our timeline, or that it was dropped.
#[derive(Debug, Clone, Copy)]
struct Mapped {
    source_timestamp: u32,
    /// `None`: dropped (no telephone-event payload type here, or a prompt owned the stream).
    output_timestamp: Option<u32>,
}

/// The event being relayed, until its end packet.
#[derive(Debug, Clone, Copy)]
struct Active {
    source_timestamp: u32,
    output_timestamp: u32,
    last_payload: [u8; 4],
    last_packet_tick: u64,
}

/// The sending side of a relay, owned by the session that transmits it: a bounded PCM FIFO
/// consumed one frame per tick, and the state that restamps the other leg's telephone events
/// onto this stream.
///
/// Event rules: every source event (identified by its source timestamp) gets one output timestamp,
/// fixed at the tick its first packet is sent; our first packet of it carries the marker bit; audio
/// is suppressed from its start until [`HANGOVER_TICKS`] after its end packet (the buffered audio
/// is consumed and discarded meanwhile, so no delay builds up). An event whose end packets are all
/// lost is ended after [`EVENT_TIMEOUT_TICKS`] with end packets of our own. Events arriving while
/// this leg has no telephone-event payload type are dropped and counted; the in-band audio passes.
#[derive(Debug, Clone)]
pub struct RelayOut {
    telephone_event: Option<u8>,
    fifo: VecDeque<i16>,
    pending: VecDeque<([u8; 4], u32)>,
    seen: VecDeque<Mapped>,
    active: Option<Active>,
    /// Audio stays suppressed while `tick < quiet_until`.
    quiet_until: u64,
    tick: u64,
    samples_dropped: u64,
    events_relayed: u64,
    events_dropped: u64,
}

impl RelayOut {
    /// `telephone_event`: this leg's negotiated telephone-event payload type, if any.
    pub fn new(telephone_event: Option<u8>) -> Self {
        Self {
            telephone_event,
            // Grows on the first relayed frame: most sessions are never bridged.
            fifo: VecDeque::new(),
            pending: VecDeque::new(),
            seen: VecDeque::new(),
            active: None,
            quiet_until: 0,
            tick: 0,
            samples_dropped: 0,
            events_relayed: 0,
            events_dropped: 0,
        }
    }

    pub fn telephone_event(&self) -> Option<u8> {
        self.telephone_event
    }

    /// A re-negotiation changed (or removed) this leg's telephone-event payload type. An event
    /// under way is abandoned (its packets could no longer be sent consistently).
    pub fn set_telephone_event(&mut self, pt: Option<u8>) {
        if pt != self.telephone_event {
            self.telephone_event = pt;
            self.active = None;
        }
    }

    /// Takes a frame from the other leg; it goes out at the next ticks.
    pub fn push(&mut self, frame: RelayFrame) {
        match frame {
            RelayFrame::Audio(pcm) => {
                self.fifo.extend(pcm);
                let excess = self.fifo.len().saturating_sub(MAX_BUFFERED_SAMPLES);
                if excess > 0 {
                    self.fifo.drain(..excess);
                    self.samples_dropped += excess as u64;
                }
            }
            RelayFrame::Event {
                payload,
                source_timestamp,
                ..
            } => {
                if self.pending.len() >= MAX_PENDING_EVENTS {
                    self.pending.pop_front();
                }
                self.pending.push_back((payload, source_timestamp));
            }
        }
    }

    /// What to send in this tick's packet slot. `next_timestamp` is the RTP timestamp the slot's
    /// audio packet would carry (`RtpSender::next_timestamp`): a new event is stamped with it.
    pub fn tick(&mut self, next_timestamp: u32) -> RelayOutput {
        self.tick += 1;
        let events = self.take_events(Some(next_timestamp));
        if self.suppressing() {
            self.discard_frame();
            return if events.is_empty() {
                RelayOutput::Nothing
            } else {
                RelayOutput::Events(events)
            };
        }
        if self.fifo.len() < FRAME_SAMPLES {
            // Wait for a whole frame rather than send a fragment padded with silence: with the
            // other leg's packets arriving at the same rate, the FIFO settles at a steady fill.
            return RelayOutput::Silence;
        }
        RelayOutput::Audio(self.fifo.drain(..FRAME_SAMPLES).collect())
    }

    /// This tick's slot is taken by something else (a prompt, a key press of our own): relayed
    /// audio for it is discarded, and events starting now are dropped for good.
    pub fn skip_tick(&mut self) {
        self.tick += 1;
        self.take_events(None);
        self.discard_frame();
    }

    /// Relayed samples waiting to be sent.
    pub fn buffered_samples(&self) -> usize {
        self.fifo.len()
    }

    /// Samples dropped because more than [`MAX_BUFFERED_SAMPLES`] were waiting.
    pub fn samples_dropped(&self) -> u64 {
        self.samples_dropped
    }

    /// Source events relayed (each counted once, not per packet).
    pub fn events_relayed(&self) -> u64 {
        self.events_relayed
    }

    /// Source events dropped: no telephone-event payload type on this leg, or a prompt was playing.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// Whether relayed audio is being held back for an event.
    pub fn suppressing(&self) -> bool {
        self.active.is_some() || self.tick < self.quiet_until
    }

    fn discard_frame(&mut self) {
        let n = FRAME_SAMPLES.min(self.fifo.len());
        self.fifo.drain(..n);
    }

    /// Turns the event packets received since the last tick into packets to send now. With
    /// `stamp` `None` nothing may be sent: new events are dropped, packets of the active one
    /// discarded.
    fn take_events(&mut self, stamp: Option<u32>) -> Vec<EventPacket> {
        let mut out = Vec::new();
        while let Some((payload, source)) = self.pending.pop_front() {
            let end = payload[1] & END_BIT != 0;
            let known = self
                .seen
                .iter()
                .find(|m| m.source_timestamp == source)
                .copied();
            let output_timestamp = match known {
                Some(Mapped {
                    output_timestamp: None,
                    ..
                }) => continue,
                Some(Mapped {
                    output_timestamp: Some(ts),
                    ..
                }) => {
                    let current = self.active.is_some_and(|a| a.source_timestamp == source);
                    if !current {
                        // A straggler (typically a redundant end) of a finished event goes out
                        // only while the hangover lasts; later it would only interrupt the audio.
                        if stamp.is_some() && self.tick < self.quiet_until {
                            out.push(EventPacket {
                                payload,
                                timestamp: ts,
                                marker: false,
                            });
                        }
                        continue;
                    }
                    if stamp.is_some() {
                        out.push(EventPacket {
                            payload,
                            timestamp: ts,
                            marker: false,
                        });
                    }
                    ts
                }
                None => {
                    let (Some(_), Some(ts)) = (self.telephone_event, stamp) else {
                        self.remember(source, None);
                        self.events_dropped += 1;
                        continue;
                    };
                    // A new event while another is under way: the old one's end was lost; the far
                    // end's decoder closes it when it sees the new timestamp.
                    self.remember(source, Some(ts));
                    self.events_relayed += 1;
                    out.push(EventPacket {
                        payload,
                        timestamp: ts,
                        marker: true,
                    });
                    ts
                }
            };
            // `source` is (now) the active event.
            if end {
                self.active = None;
                self.quiet_until = self.tick + 1 + HANGOVER_TICKS;
            } else {
                self.active = Some(Active {
                    source_timestamp: source,
                    output_timestamp,
                    last_payload: payload,
                    last_packet_tick: self.tick,
                });
            }
        }
        if let Some(a) = self.active
            && self.tick - a.last_packet_tick >= EVENT_TIMEOUT_TICKS
        {
            tracing::debug!(
                source_timestamp = a.source_timestamp,
                "relayed telephone-event lost its end; ending it"
            );
            self.active = None;
            self.quiet_until = self.tick + 1 + HANGOVER_TICKS;
            if stamp.is_some() {
                let mut payload = a.last_payload;
                payload[1] |= END_BIT;
                out.extend((0..3).map(|_| EventPacket {
                    payload,
                    timestamp: a.output_timestamp,
                    marker: false,
                }));
            }
        }
        out
    }

    fn remember(&mut self, source_timestamp: u32, output_timestamp: Option<u32>) {
        if self.seen.len() >= EVENT_MEMORY {
            self.seen.pop_front();
        }
        self.seen.push_back(Mapped {
            source_timestamp,
            output_timestamp,
        });
    }
}

/// The RFC 4733 event code of a DTMF key (§3.2 table 7): `0`–`9`, `*` 10, `#` 11, `A`–`D` 12–15
/// (lower case accepted).
pub fn digit_event(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// Volume field of the events we originate: −10 dBm0, what phones report (RFC 4733 §2.3.4).
const DIGIT_VOLUME: u8 = 10;

/// End packets sent per event: RFC 4733 §2.5.1.4 recommends three, against loss.
const END_PACKETS: u8 = 3;

/// Shortest and longest key press we send, in timestamp units: 40 ms (Q.24's minimum recognised
/// tone) and one 16-bit duration segment (8.19 s, far beyond a human key press).
const MIN_DIGIT_UNITS: u32 = 320;
const MAX_DIGIT_UNITS: u32 = u16::MAX as u32;

/// The RFC 4733 packets of one key press we originate, one per tick: a start packet (marker set),
/// an update per packet interval with the duration so far, then three end packets (E bit) with
/// the final duration, all with the timestamp of the first tick.
#[derive(Debug, Clone)]
pub struct DigitEvents {
    event: u8,
    /// Press length in timestamp units.
    total: u32,
    /// Duration reported by the last packet sent.
    sent: u32,
    ends_sent: u8,
    timestamp: Option<u32>,
}

impl DigitEvents {
    /// `None` if `digit` is not a DTMF key. The duration is clamped to 40 ms … 8.19 s.
    pub fn new(digit: char, duration: Duration) -> Option<Self> {
        let event = digit_event(digit)?;
        let units = duration
            .as_millis()
            .saturating_mul(u128::from(Codec::CLOCK_RATE))
            / 1000;
        let total = u32::try_from(units)
            .unwrap_or(MAX_DIGIT_UNITS)
            .clamp(MIN_DIGIT_UNITS, MAX_DIGIT_UNITS);
        Some(Self {
            event,
            total,
            sent: 0,
            ends_sent: 0,
            timestamp: None,
        })
    }

    pub fn is_done(&self) -> bool {
        self.ends_sent >= END_PACKETS
    }

    /// The packet for this tick; `next_timestamp` is the slot's audio timestamp, which the first
    /// packet adopts for the whole event. `None` once all end packets are out.
    pub fn next_packet(&mut self, next_timestamp: u32) -> Option<EventPacket> {
        if self.is_done() {
            return None;
        }
        let marker = self.timestamp.is_none();
        let timestamp = *self.timestamp.get_or_insert(next_timestamp);
        // The packet whose duration reaches the total is the first end packet.
        self.sent = (self.sent + FRAME_SAMPLES as u32).min(self.total);
        let end = self.sent >= self.total;
        if end {
            self.ends_sent += 1;
        }
        // total <= u16::MAX, so the duration fits.
        let duration = (self.sent as u16).to_be_bytes();
        let flags = if end { END_BIT } else { 0 } | DIGIT_VOLUME;
        Some(EventPacket {
            payload: [self.event, flags, duration[0], duration[1]],
            timestamp,
            marker,
        })
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
