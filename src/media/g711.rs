//! ITU-T G.711 μ-law (PCMU) and A-law (PCMA) companding of 16-bit PCM.
//!
//! Hand-written rather than a dependency: the algorithms are tiny, fixed by the standard since 1972,
//! and no well-kept crate exists for them. The bit manipulation follows the classic Sun Microsystems
//! reference (`g711.c`), which every telephony stack agrees with bit for bit.

/// The two G.711 codecs of the RTP/AVP profile (RFC 3551 §4.5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// μ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// G.711 is always sampled at 8 kHz (also its RTP clock rate).
    pub const CLOCK_RATE: u32 = 8000;

    /// Static RTP payload type (RFC 3551 table 4).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// Encoding name as written in SDP `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The codec for a static payload type, if it is one of ours.
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// Appends one G.711 byte per sample to `out`.
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        let table = match self {
            Codec::Pcmu => &ULAW,
            Codec::Pcma => &ALAW,
        };
        out.extend(pcm.iter().map(|&s| table[usize::from(s as u16)]));
    }

    /// Appends one PCM sample per G.711 byte to `out`.
    pub fn decode(self, coded: &[u8], out: &mut Vec<i16>) {
        out.reserve(coded.len());
        match self {
            Codec::Pcmu => out.extend(coded.iter().map(|&b| ulaw_to_linear(b))),
            Codec::Pcma => out.extend(coded.iter().map(|&b| alaw_to_linear(b))),
        }
    }

    /// The code for digital silence, used to pad frames and fill gaps between prompts.
    pub fn silence_byte(self) -> u8 {
        match self {
            Codec::Pcmu => linear_to_ulaw(0),
            Codec::Pcma => linear_to_alaw(0),
        }
    }
}

/// The code of every 16-bit sample (indexed by its bit pattern), computed at compile time: the
/// media plane encodes every frame of every call, and 160 lookups in a table that stays in cache
/// cost about a fifth of 160 segment searches. 64 KiB each, in the binary's read-only data.
static ULAW: [u8; 65536] = encode_table(Codec::Pcmu);
static ALAW: [u8; 65536] = encode_table(Codec::Pcma);

const fn encode_table(codec: Codec) -> [u8; 65536] {
    let mut table = [0u8; 65536];
    let mut i = 0;
    while i < table.len() {
        let sample = i as u16 as i16;
        table[i] = match codec {
            Codec::Pcmu => linear_to_ulaw(sample),
            Codec::Pcma => linear_to_alaw(sample),
        };
        i += 1;
    }
    table
}

/// μ-law works on magnitudes offset by this bias so that every segment starts at a power of two.
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude that still fits the top segment once the bias is added.
const ULAW_CLIP: i32 = 32635;

/// Encodes one sample as μ-law.
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    let mut mag = sample as i32;
    let sign = if mag < 0 {
        mag = -mag;
        0x80
    } else {
        0
    };
    let biased = if mag < ULAW_CLIP { mag } else { ULAW_CLIP } + ULAW_BIAS;
    // `biased` lies in 0x84..=0x7FFF, so its top set bit is bit 7..=14: the segment is 0..=7.
    let exponent = (31 - biased.leading_zeros() as i32) - 7;
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    // Bits are inverted on the wire so that silence is not a long run of zeros (old T1 line coding).
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes one μ-law byte; the result is the midpoint of the quantisation interval.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let code = !code;
    let exponent = i32::from((code >> 4) & 0x07);
    let mantissa = i32::from(code & 0x0F);
    let mag = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    // mag <= 32124, so the cast cannot truncate.
    if code & 0x80 != 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

/// Encodes one sample as A-law.
pub const fn linear_to_alaw(sample: i16) -> u8 {
    // A-law is defined on 13-bit samples.
    let mut pcm = (sample as i32) >> 3;
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        // One's complement keeps the negative range symmetric with the positive one.
        pcm = -pcm - 1;
        0x55
    };
    // Segment = number of doublings above 32 (segments 0 and 1 share the same step size).
    let seg = if pcm < 0x20 {
        0
    } else {
        (31 - pcm.leading_zeros() as i32) - 4
    };
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let shift = if seg < 2 { 1 } else { seg };
    let aval = (seg << 4) | ((pcm >> shift) & 0x0F);
    // Even bits are inverted on the wire (the 0x55 pattern) for the same line-coding reason as μ-law.
    (aval ^ mask) as u8
}

/// Decodes one A-law byte; the result is the midpoint of the quantisation interval.
pub fn alaw_to_linear(code: u8) -> i16 {
    let code = i32::from(code ^ 0x55);
    let mut t = (code & 0x0F) << 4;
    let seg = (code & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    // t <= 32256, so the cast cannot truncate.
    if code & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_code_points() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(Codec::Pcmu.silence_byte(), 0xFF);
        assert_eq!(Codec::Pcma.silence_byte(), 0xD5);
    }

    #[test]
    fn ulaw_round_trip_within_quantisation_bound_for_every_sample() {
        for s in i16::MIN..=i16::MAX {
            let back = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            let mag = i32::from(s).abs();
            let err = (back - i32::from(s)).abs();
            if mag <= ULAW_CLIP {
                // Half a step: the step in segment e is 2^(e+3) and (mag + bias) >= 2^(e+7).
                assert!(err <= (mag + ULAW_BIAS) / 32, "sample {s}: decoded {back}");
                assert!(back.signum() * i32::from(s).signum() >= 0, "sign of {s}");
            } else {
                assert_eq!(back.abs(), 32124, "clipped sample {s}");
            }
        }
    }

    #[test]
    fn alaw_round_trip_within_quantisation_bound_for_every_sample() {
        for s in i16::MIN..=i16::MAX {
            let back = i32::from(alaw_to_linear(linear_to_alaw(s)));
            let mag = i32::from(s).abs();
            let err = (back - i32::from(s)).abs();
            if mag <= 32256 {
                // Linear segments 0–1 have a 16-step in 16-bit terms; above that the step is mag/16 or less.
                assert!(err <= (mag / 32).max(8) + 8, "sample {s}: decoded {back}");
            } else {
                assert!(err <= 512, "clipped sample {s}: decoded {back}");
            }
        }
    }

    #[test]
    fn tables_agree_with_the_reference_code_for_every_sample() {
        let every: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let (mut u, mut a) = (Vec::new(), Vec::new());
        Codec::Pcmu.encode(&every, &mut u);
        Codec::Pcma.encode(&every, &mut a);
        for (i, &s) in every.iter().enumerate() {
            assert_eq!(u[i], linear_to_ulaw(s), "μ-law {s}");
            assert_eq!(a[i], linear_to_alaw(s), "A-law {s}");
        }
    }

    #[test]
    fn decoding_then_encoding_is_identity_on_codes() {
        for code in 0..=255u8 {
            assert_eq!(linear_to_ulaw(ulaw_to_linear(code)), code_norm_ulaw(code));
            assert_eq!(linear_to_alaw(alaw_to_linear(code)), code);
        }
    }

    /// μ-law has two zeros (0xFF and 0x7F); both decode to 0, which encodes back as 0xFF.
    fn code_norm_ulaw(code: u8) -> u8 {
        if code == 0x7F { 0xFF } else { code }
    }

    #[test]
    fn codec_metadata_and_buffers() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::Pcmu.name(), "PCMU");
        assert_eq!(Codec::Pcma.name(), "PCMA");
        assert_eq!(Codec::from_payload_type(0), Some(Codec::Pcmu));
        assert_eq!(Codec::from_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_payload_type(101), None);

        let pcm = [0i16, 1000, -1000, 20000];
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut coded = vec![0xAB];
            codec.encode(&pcm, &mut coded);
            assert_eq!(coded.len(), 5, "encode appends");
            let mut back = Vec::new();
            codec.decode(&coded[1..], &mut back);
            assert_eq!(back.len(), 4);
            for (a, b) in pcm.iter().zip(&back) {
                assert!(
                    (i32::from(*a) - i32::from(*b)).abs() <= 700,
                    "{codec:?} {a} -> {b}"
                );
            }
        }
    }
}
