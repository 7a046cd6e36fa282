//! RTP packets in and out (RFC 3550), sans-IO: `RtpSender` numbers and stamps outgoing packets,
//! `parse` reads incoming ones. Header bytes are built and read by `rtp-rs`; this module only owns
//! the per-stream state (SSRC, sequence, timestamp) that must continue across prompts.

use rand::Rng;
use rtp_rs::{RtpPacketBuilder, RtpReader, RtpReaderError, Seq};

use super::g711::Codec;

/// Length of the fixed RTP header (RFC 3550 §5.1) we send: no CSRCs, no extension.
pub const HEADER_LEN: usize = 12;

/// Why an incoming datagram is not an RTP packet we can use.
#[derive(Debug, thiserror::Error)]
pub enum RtpError {
    #[error("not an RTP packet: {0:?}")]
    Malformed(RtpReaderError),
}

/// One received RTP packet, copied out of the receive buffer so it can cross task boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpIn {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    pub payload: Vec<u8>,
}

/// Parses one datagram as RTP version 2 (padding and header extensions are stripped).
pub fn parse(buf: &[u8]) -> Result<RtpIn, RtpError> {
    let r = RtpReader::new(buf).map_err(RtpError::Malformed)?;
    Ok(RtpIn {
        payload_type: r.payload_type(),
        seq: u16::from(r.sequence_number()),
        timestamp: r.timestamp(),
        ssrc: r.ssrc(),
        marker: r.mark(),
        payload: r.payload().to_vec(),
    })
}

/// The sending half of one RTP stream: one per media session, so SSRC, sequence and timestamp
/// continue across prompts instead of looking like a new source to the far end.
#[derive(Debug, Clone)]
pub struct RtpSender {
    payload_type: u8,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    packets_sent: u64,
    octets_sent: u64,
}

impl RtpSender {
    /// A stream with random SSRC, initial sequence number and timestamp, as RFC 3550 §5.1 asks
    /// (it makes known-plaintext attacks on encrypted streams harder and avoids SSRC collisions).
    pub fn new(codec: Codec) -> Self {
        let mut rng = rand::rng();
        Self::with_initial(codec, rng.random(), rng.random(), rng.random())
    }

    /// A stream with fixed initial values, for tests and reproducible captures.
    pub fn with_initial(codec: Codec, ssrc: u32, seq: u16, timestamp: u32) -> Self {
        Self {
            payload_type: codec.payload_type(),
            ssrc,
            seq,
            timestamp,
            packets_sent: 0,
            octets_sent: 0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.seq
    }

    /// Timestamp the next packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    pub fn packets_sent(&self) -> u64 {
        self.packets_sent
    }

    pub fn octets_sent(&self) -> u64 {
        self.octets_sent
    }

    /// Builds the next packet carrying `payload`, which holds `samples` sampling periods; the
    /// caller sets `marker` on the first packet of a talk spurt (RFC 3551 §4.1).
    pub fn next_packet(&mut self, payload: &[u8], samples: u32, marker: bool) -> Vec<u8> {
        let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
        self.write_next(&mut buf, samples, marker, |out| {
            out.extend_from_slice(payload)
        });
        buf
    }

    /// Writes the next packet into `out` (cleared first, so one buffer serves every packet of a
    /// stream without allocating): the header, then whatever `payload` appends, covering
    /// `samples` sampling periods. The payload is written in place, so a frame is encoded
    /// straight into the datagram instead of being built and copied.
    pub fn write_next(
        &mut self,
        out: &mut Vec<u8>,
        samples: u32,
        marker: bool,
        payload: impl FnOnce(&mut Vec<u8>),
    ) {
        self.write_header(out, self.payload_type, self.timestamp, marker);
        payload(out);
        self.octets_sent += (out.len() - HEADER_LEN) as u64;
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    /// Builds the next packet of the stream with its own payload type and timestamp: an RFC 4733
    /// telephone-event packet, which carries the timestamp of the event's start (§2.3.1) however
    /// late it is sent. Only the sequence number advances; the audio timestamp is left alone, so
    /// the caller moves it on with `skip_samples` for the time the packet stands in for, and audio
    /// after the event continues in step with wall time.
    ///
    /// Payload types are 7 bits; a larger value is masked (callers only pass negotiated dynamic
    /// types, 96–127).
    pub fn next_packet_at(
        &mut self,
        payload_type: u8,
        payload: &[u8],
        timestamp: u32,
        marker: bool,
    ) -> Vec<u8> {
        let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
        self.write_at(&mut buf, payload_type, payload, timestamp, marker);
        buf
    }

    /// `next_packet_at`, written into `out` (cleared first).
    pub fn write_at(
        &mut self,
        out: &mut Vec<u8>,
        payload_type: u8,
        payload: &[u8],
        timestamp: u32,
        marker: bool,
    ) {
        self.write_header(out, payload_type & 0x7F, timestamp, marker);
        out.extend_from_slice(payload);
        self.octets_sent += payload.len() as u64;
    }

    /// Clears `out` and writes one packet header into it; counts the packet and advances the
    /// sequence number only.
    fn write_header(&mut self, out: &mut Vec<u8>, payload_type: u8, timestamp: u32, marker: bool) {
        let builder = RtpPacketBuilder::new()
            .payload_type(payload_type)
            .marked(marker)
            .ssrc(self.ssrc)
            .sequence(Seq::from(self.seq))
            .timestamp(timestamp);
        let mut header = [0u8; HEADER_LEN];
        // The checked build can only fail for a payload type above 127 or a malformed header
        // extension; our payload types come from `Codec` (0 or 8) or are masked to 7 bits by
        // `write_at`, we never add extensions or CSRCs, and with no payload the packet is exactly
        // the fixed 12-byte header, so the unchecked build is sound and fills `header`.
        let len = builder.build_into_unchecked(&mut header);
        out.clear();
        out.extend_from_slice(&header[..len]);
        self.seq = self.seq.wrapping_add(1);
        self.packets_sent += 1;
    }

    /// Moves the timestamp on without sending, for time that passed with nothing sent (hold,
    /// skipped slots), so the far end's jitter buffer sees timestamps that track wall time.
    pub fn skip_samples(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_carry_consecutive_seq_and_timestamps() {
        let mut tx = RtpSender::with_initial(Codec::Pcma, 0xDEAD_BEEF, 65534, u32::MAX - 100);
        let payload = [0xD5u8; 160];
        let pkts: Vec<RtpIn> = (0..3)
            .map(|i| parse(&tx.next_packet(&payload, 160, i == 0)).expect("valid RTP"))
            .collect();
        assert_eq!(
            pkts.iter().map(|p| p.seq).collect::<Vec<_>>(),
            [65534, 65535, 0]
        );
        assert_eq!(
            pkts.iter().map(|p| p.timestamp).collect::<Vec<_>>(),
            [u32::MAX - 100, 59, 219]
        );
        assert_eq!(
            pkts.iter().map(|p| p.marker).collect::<Vec<_>>(),
            [true, false, false]
        );
        for p in &pkts {
            assert_eq!(p.payload_type, 8);
            assert_eq!(p.ssrc, 0xDEAD_BEEF);
            assert_eq!(p.payload, payload);
        }
        assert_eq!(tx.packets_sent(), 3);
        assert_eq!(tx.octets_sent(), 480);
    }

    #[test]
    fn header_is_twelve_bytes_version_two() {
        let mut tx = RtpSender::with_initial(Codec::Pcmu, 1, 2, 3);
        let pkt = tx.next_packet(&[1, 2, 3], 3, false);
        assert_eq!(pkt.len(), 15);
        assert_eq!(pkt[0] >> 6, 2, "RTP version");
        assert_eq!(pkt[1], 0, "no marker, PT 0");
    }

    #[test]
    fn skip_advances_timestamp_only() {
        let mut tx = RtpSender::with_initial(Codec::Pcmu, 1, 10, 1000);
        tx.skip_samples(800);
        let p = parse(&tx.next_packet(&[0xFF; 160], 160, true)).expect("valid RTP");
        assert_eq!((p.seq, p.timestamp), (10, 1800));
    }

    #[test]
    fn packet_at_keeps_its_timestamp_and_leaves_the_audio_clock_alone() {
        let mut tx = RtpSender::with_initial(Codec::Pcma, 9, 100, 5000);
        let a = parse(&tx.next_packet(&[0xD5; 160], 160, false)).expect("valid RTP");
        let ev = [5u8, 10, 0, 160];
        let e1 = parse(&tx.next_packet_at(96, &ev, 5160, true)).expect("valid RTP");
        let e2 = parse(&tx.next_packet_at(96, &ev, 5160, false)).expect("valid RTP");
        tx.skip_samples(160);
        let b = parse(&tx.next_packet(&[0xD5; 160], 160, false)).expect("valid RTP");
        assert_eq!((a.seq, a.timestamp, a.payload_type), (100, 5000, 8));
        assert_eq!(
            (e1.seq, e1.timestamp, e1.payload_type, e1.marker),
            (101, 5160, 96, true)
        );
        assert_eq!((e2.seq, e2.timestamp, e2.marker), (102, 5160, false));
        assert_eq!(e1.payload, ev);
        assert_eq!((b.seq, b.timestamp, b.payload_type), (103, 5320, 8));
        assert!([e1.ssrc, e2.ssrc, b.ssrc].iter().all(|&s| s == 9));
        assert_eq!(tx.packets_sent(), 4);
        assert_eq!(tx.octets_sent(), 328);
    }

    #[test]
    fn random_initial_state_differs_between_streams() {
        let a = RtpSender::new(Codec::Pcmu);
        let b = RtpSender::new(Codec::Pcmu);
        // 2^-80 chance of a false failure.
        assert_ne!(
            (a.ssrc(), a.next_seq(), a.next_timestamp()),
            (b.ssrc(), b.next_seq(), b.next_timestamp())
        );
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(parse(&[0u8; 4]).is_err(), "too short");
        assert!(parse(&[0u8; 12]).is_err(), "version 0");
    }
}
