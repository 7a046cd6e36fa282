//! Prompt playout, sans-IO: cuts a prompt's samples into 20 ms G.711 frames. It knows nothing of
//! time or sockets; the stream's send core (`outgoing`) asks it for a frame whenever a packet slot
//! is due and has it encoded straight into the datagram the `RtpSender` is writing.

use std::sync::Arc;

use super::g711::Codec;

/// Samples in one 20 ms frame at 8 kHz (the RFC 3551 default packetisation for G.711).
pub const FRAME_SAMPLES: usize = 160;

/// One frame ready to packetise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// G.711 bytes, always `FRAME_SAMPLES` long.
    pub payload: Vec<u8>,
    /// Sampling periods covered (the RTP timestamp increment).
    pub samples: u32,
    /// First frame of a talk spurt (RFC 3551 §4.1 marker bit).
    pub marker: bool,
}

#[derive(Debug, Clone)]
pub struct PromptPlayer {
    samples: Arc<[i16]>,
    codec: Codec,
    pos: usize,
    first: bool,
}

impl PromptPlayer {
    pub fn new(samples: Arc<[i16]>, codec: Codec) -> Self {
        Self {
            samples,
            codec,
            pos: 0,
            first: true,
        }
    }

    /// Number of frames the whole prompt takes (the last one padded with silence).
    pub fn frame_count(&self) -> usize {
        self.samples.len().div_ceil(FRAME_SAMPLES)
    }

    pub fn is_done(&self) -> bool {
        self.pos >= self.samples.len()
    }

    /// The next frame, or `None` once the prompt is exhausted.
    pub fn next_frame(&mut self) -> Option<Frame> {
        let marker = self.first;
        let mut payload = Vec::with_capacity(FRAME_SAMPLES);
        self.encode_next(&mut payload).then_some(Frame {
            payload,
            samples: FRAME_SAMPLES as u32,
            marker,
        })
    }

    /// Appends the next frame's `FRAME_SAMPLES` G.711 bytes to `out` (the session encodes straight
    /// into the outgoing datagram); `false`, with nothing appended, once the prompt is exhausted.
    pub fn encode_next(&mut self, out: &mut Vec<u8>) -> bool {
        if self.is_done() {
            return false;
        }
        let end = (self.pos + FRAME_SAMPLES).min(self.samples.len());
        let start = out.len();
        self.codec.encode(&self.samples[self.pos..end], out);
        // A short last frame is padded so every packet has the same duration, which keeps the
        // receiver's playout and our timestamps simple.
        out.resize(start + FRAME_SAMPLES, self.codec.silence_byte());
        self.pos = end;
        self.first = false;
        true
    }

    /// Moves past the next frame without encoding it (the stream is on hold: the prompt plays
    /// out on schedule, unheard).
    pub fn skip_frame(&mut self) {
        self.pos = (self.pos + FRAME_SAMPLES).min(self.samples.len());
        self.first = false;
    }
}

/// One frame of digital silence, sent between prompts (see `session`).
pub fn silence_frame(codec: Codec) -> Frame {
    let mut payload = Vec::with_capacity(FRAME_SAMPLES);
    append_silence(codec, &mut payload);
    Frame {
        payload,
        samples: FRAME_SAMPLES as u32,
        marker: false,
    }
}

/// Appends one frame of digital silence to `out`.
pub fn append_silence(codec: Codec, out: &mut Vec<u8>) {
    out.resize(out.len() + FRAME_SAMPLES, codec.silence_byte());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cover_prompt_and_pad_the_last() {
        let samples: Vec<i16> = (0..400).map(|i| (i * 50) as i16).collect();
        let mut p = PromptPlayer::new(samples.clone().into(), Codec::Pcmu);
        assert_eq!(p.frame_count(), 3);
        let frames: Vec<Frame> = std::iter::from_fn(|| p.next_frame()).collect();
        assert_eq!(frames.len(), 3);
        assert!(p.is_done());
        assert_eq!(
            frames.iter().map(|f| f.marker).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert!(
            frames
                .iter()
                .all(|f| f.payload.len() == 160 && f.samples == 160)
        );

        let mut expected = Vec::new();
        Codec::Pcmu.encode(&samples, &mut expected);
        expected.resize(480, 0xFF);
        let got: Vec<u8> = frames.into_iter().flat_map(|f| f.payload).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn exact_multiple_has_no_padding_frame() {
        let mut p = PromptPlayer::new(vec![0i16; 320].into(), Codec::Pcma);
        assert_eq!(p.frame_count(), 2);
        assert!(p.next_frame().is_some());
        assert!(p.next_frame().is_some());
        assert!(p.next_frame().is_none());
    }

    #[test]
    fn empty_prompt_yields_nothing() {
        let mut p = PromptPlayer::new(Vec::<i16>::new().into(), Codec::Pcma);
        assert!(p.is_done());
        assert_eq!(p.next_frame(), None);
    }

    #[test]
    fn silence_frame_is_codec_silence() {
        assert_eq!(silence_frame(Codec::Pcma).payload, vec![0xD5; 160]);
        assert_eq!(silence_frame(Codec::Pcmu).payload, vec![0xFF; 160]);
    }
}
