//! `rtp` and `rfc4733`: datagrams arriving on a call's RTP port, through every sans-IO stage a
//! received packet reaches: the RTP parser, receive statistics, the relay to the other leg of a
//! bridged call, the DTMF receiver (RFC 4733 events and in-band tones) and the voicemail gate.
//!
//! There is no RTCP handling in `media`: we send none and leave the odd port free. RTCP that a
//! peer sends to the RTP port anyway (rtcp-mux, or a confused phone) reaches `rtp::parse` like any
//! datagram, so the `rtp` corpus holds RTCP compound packets too.

use std::time::{Duration, Instant};

use super::signature::Signature;
use crate::media::dtmf::{DtmfReceiver, Rfc4733Decoder};
use crate::media::recorder::RecordingGate;
use crate::media::relay::{RelayOutput, frame_from_packet};
use crate::media::{Codec, RelayOut, RtpSender, RtpStats, rtp};

/// The telephone-event payload type the pipeline negotiated (RFC 4733, common practice).
const TELEPHONE_EVENT: u8 = 101;

/// Records in one `rfc4733` input at most: a long press is ~500 packets, and more adds time per
/// case without new behaviour.
const MAX_RECORDS: usize = 4096;

/// One datagram, as it arrives on a call's RTP port.
///
/// Checked: every event packet the relay tells us to send is valid RTP that parses back with its
/// payload.
pub fn rtp(data: &[u8]) -> u64 {
    let mut sig = Signature::new("rtp");
    let t0 = Instant::now();
    let mut pipe = Pipeline::new(t0);
    pipe.datagram(data, t0, &mut sig);
    // The same packet again, later: a duplicate for the statistics, a retransmission for DTMF.
    pipe.datagram(data, t0 + Duration::from_millis(20), &mut sig);
    pipe.finish(t0 + Duration::from_secs(2), &mut sig);
    sig.finish()
}

/// A sequence of datagrams with arrival gaps: each record is a 2-byte big-endian length, a
/// 1-byte gap in milliseconds since the previous record, then that many bytes of datagram (a
/// short last record takes what is left). The datagrams are normally RFC 4733 telephone-event
/// packets (payload type 101) mixed with audio; they go through the same pipeline as `rtp`, and
/// their payloads also straight into an [`Rfc4733Decoder`], as a decoder sees every packet of
/// its payload type.
pub fn rfc4733(data: &[u8]) -> u64 {
    let mut sig = Signature::new("rfc4733");
    let t0 = Instant::now();
    let mut now = t0;
    let mut pipe = Pipeline::new(t0);
    let mut decoder = Rfc4733Decoder::new();
    for (gap_ms, datagram) in records(data).take(MAX_RECORDS) {
        now += Duration::from_millis(u64::from(gap_ms));
        pipe.datagram(datagram, now, &mut sig);
        if let Ok(pkt) = rtp::parse(datagram) {
            match decoder.on_packet((&pkt).into(), &pkt.payload, now) {
                Ok(digits) => digits.iter().for_each(|d| sig.add(("raw", d.digit))),
                Err(e) => sig.kind(&e),
            }
            if let Some(d) = decoder.poll(now) {
                sig.add(("raw timeout", d.digit));
            }
        }
    }
    if let Some(at) = decoder.poll_at() {
        assert!(at >= t0, "poll_at before the first packet");
        sig.add(decoder.poll(at + Duration::from_secs(1)).map(|d| d.digit));
    }
    pipe.finish(now + Duration::from_secs(2), &mut sig);
    sig.finish()
}

/// Splits an `rfc4733` input into `(gap_ms, datagram)` records.
pub fn records(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let [h, l, gap, rest @ ..] = data else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([*h, *l])).min(rest.len());
        let (datagram, tail) = rest.split_at(len);
        data = tail;
        Some((*gap, datagram))
    })
}

/// The receive side of one call, both codecs, with a bridged other leg.
struct Pipeline {
    stats: RtpStats,
    pcmu: DtmfReceiver,
    pcma: DtmfReceiver,
    /// The other leg of a bridge: one that speaks telephone-event, one that does not.
    relay: RelayOut,
    relay_no_events: RelayOut,
    sender: RtpSender,
    gate: RecordingGate,
    pcm: Vec<i16>,
}

impl Pipeline {
    fn new(t0: Instant) -> Self {
        Pipeline {
            stats: RtpStats::new(),
            pcmu: DtmfReceiver::new(Codec::Pcmu, Some(TELEPHONE_EVENT)),
            pcma: DtmfReceiver::new(Codec::Pcma, Some(96)),
            relay: RelayOut::new(Some(TELEPHONE_EVENT)),
            relay_no_events: RelayOut::new(None),
            sender: RtpSender::with_initial(Codec::Pcma, 1, 2, 3),
            gate: RecordingGate::new(t0, Duration::from_secs(60), Duration::from_secs(3)),
            pcm: Vec::new(),
        }
    }

    fn datagram(&mut self, buf: &[u8], now: Instant, sig: &mut Signature) {
        let pkt = match rtp::parse(buf) {
            Ok(p) => p,
            Err(e) => {
                sig.kind(&e);
                return;
            }
        };
        sig.add(("pt", payload_class(pkt.payload_type)));
        if pkt.payload_type == Codec::Pcmu.payload_type() {
            self.stats
                .on_audio(pkt.seq, pkt.timestamp, now, Codec::CLOCK_RATE);
        } else {
            self.stats.on_other(pkt.seq);
        }
        if let Some(frame) = frame_from_packet(&pkt, Codec::Pcmu, Some(TELEPHONE_EVENT)) {
            self.relay.push(frame.clone());
            self.relay_no_events.push(frame);
        }
        self.tick(sig);
        for rx in [&mut self.pcmu, &mut self.pcma] {
            let mut digit = rx.on_rtp(&pkt, now);
            while let Some(d) = digit {
                sig.add(("digit", d.digit, d.source));
                digit = rx.poll(now);
            }
        }
        if pkt.payload_type == Codec::Pcmu.payload_type() {
            self.pcm.clear();
            Codec::Pcmu.decode(&pkt.payload, &mut self.pcm);
            if let Some(stop) = self.gate.push(&self.pcm, now) {
                sig.add(format!("{stop:?}"));
            }
        }
    }

    /// One 20 ms slot of the bridged leg's stream.
    fn tick(&mut self, sig: &mut Signature) {
        match self.relay.tick(self.sender.next_timestamp()) {
            RelayOutput::Events(events) => {
                for e in events {
                    let pkt = self.sender.next_packet_at(
                        TELEPHONE_EVENT,
                        &e.payload,
                        e.timestamp,
                        e.marker,
                    );
                    match rtp::parse(&pkt) {
                        Ok(back) => assert_eq!(back.payload, e.payload, "relayed event payload"),
                        Err(err) => panic!("relayed event packet does not parse: {err}"),
                    }
                    sig.add("relayed event");
                }
            }
            RelayOutput::Audio(pcm) => {
                assert_eq!(pcm.len(), 160, "relayed audio frame");
                let mut out = Vec::new();
                Codec::Pcma.encode(&pcm, &mut out);
                self.sender.next_packet(&out, 160, false);
            }
            RelayOutput::Silence | RelayOutput::Nothing => self.sender.skip_samples(160),
        }
        let _ = self.relay_no_events.tick(self.sender.next_timestamp());
        self.relay_no_events.skip_tick();
    }

    /// Lets time pass for presses whose end never came, and reads the statistics.
    fn finish(&mut self, later: Instant, sig: &mut Signature) {
        for rx in [&mut self.pcmu, &mut self.pcma] {
            if let Some(at) = rx.poll_at() {
                let _ = rx.poll(at);
            }
            while let Some(d) = rx.poll(later) {
                sig.add(("late digit", d.digit));
            }
        }
        for _ in 0..30 {
            self.tick(sig);
        }
        let snap = self.stats.snapshot();
        sig.add((snap.packets, snap.lost > 0));
        let _ = snap.to_string();
        if let Some(stop) = self.gate.poll(later) {
            sig.add(format!("{stop:?}"));
        }
    }
}

/// Payload types as the pipeline tells them apart.
fn payload_class(pt: u8) -> &'static str {
    match pt {
        0 => "pcmu",
        8 => "pcma",
        TELEPHONE_EVENT => "telephone-event",
        96 => "telephone-event (pcma leg)",
        72..=76 => "rtcp",
        _ => "other",
    }
}
