//! Call-progress and keypad tones, synthesised at 8 kHz: the ringback a caller hears while staff
//! phones ring, and DTMF key tones for phones that cannot take RFC 4733 events. Plain sample
//! vectors, ready to hand to `MediaHandle::play` (ringback: one cadence cycle, to be looped).

use std::f64::consts::PI;
use std::str::FromStr;

use super::dtmf::goertzel::dbm0_mean_square;

/// Sampling rate of everything here (G.711).
const RATE: usize = 8000;

/// Level of each ringback frequency. ITU-T E.180 and the national specs put ringing tone between
/// −10 and −24 dBm0 (ETSI ES 201 970: −19 ± 3 dBm0 per frequency); −19 sits in every range.
pub const RINGBACK_DBM0: f64 = -19.0;

/// Level of each of the two DTMF frequencies: what phones send (Q.23 / Q.24 allow −3 to −20 dBm0
/// with both tones close together); loud enough for any detector, far from clipping.
pub const DTMF_DBM0: f64 = -10.0;

/// Rise and fall of every tone burst, so bursts start and stop without clicks (splatter at the
/// edges of a hard-gated sine is audible and can trip far-end tone detectors).
const RAMP_SAMPLES: usize = 16;

/// National ringback (ringing tone) plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RingbackTone {
    /// North America: 440 + 480 Hz, 2 s on, 4 s off.
    Us,
    /// United Kingdom: 400 + 450 Hz, 0.4 s on, 0.2 s off, 0.4 s on, 2 s off.
    Uk,
    /// Europe (ETSI ES 201 970 recommendation): 425 Hz, 1 s on, 4 s off.
    Eu,
}

/// A ringback name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ringback tone {0:?}: expected \"us\", \"uk\" or \"eu\"")]
pub struct UnknownRingbackTone(pub String);

impl FromStr for RingbackTone {
    type Err = UnknownRingbackTone;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "us" => Ok(RingbackTone::Us),
            "uk" => Ok(RingbackTone::Uk),
            "eu" => Ok(RingbackTone::Eu),
            _ => Err(UnknownRingbackTone(s.to_owned())),
        }
    }
}

impl RingbackTone {
    /// The frequencies played together during the "on" parts.
    pub fn frequencies(self) -> &'static [f64] {
        match self {
            RingbackTone::Us => &[440.0, 480.0],
            RingbackTone::Uk => &[400.0, 450.0],
            RingbackTone::Eu => &[425.0],
        }
    }

    /// The cadence as (on ms, off ms) pairs, one full cycle.
    pub fn cadence_ms(self) -> &'static [(u32, u32)] {
        match self {
            RingbackTone::Us => &[(2000, 4000)],
            RingbackTone::Uk => &[(400, 200), (400, 2000)],
            RingbackTone::Eu => &[(1000, 4000)],
        }
    }
}

/// Exactly one cadence cycle of `tone` at 8 kHz, starting with the tone and ending with the
/// silence, so playing it again and again sounds like the real thing.
pub fn ringback(tone: RingbackTone) -> Vec<i16> {
    let mut out = Vec::new();
    for &(on, off) in tone.cadence_ms() {
        burst(&mut out, tone.frequencies(), RINGBACK_DBM0, on);
        out.resize(out.len() + ms_to_samples(off), 0);
    }
    out
}

/// The two frequencies (low, high) of a DTMF key (ITU-T Q.23); `None` if `digit` is not one of
/// `0`–`9`, `*`, `#`, `A`–`D` (lower case accepted).
pub fn dtmf_frequencies(digit: char) -> Option<(f64, f64)> {
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    const KEYS: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    let digit = digit.to_ascii_uppercase();
    KEYS.iter()
        .enumerate()
        .find_map(|(r, row)| row.find(digit).map(|c| (ROWS[r], COLS[c])))
}

/// The tone pair of `digit` for `duration_ms`, both frequencies at [`DTMF_DBM0`]; empty if
/// `digit` is not a DTMF key.
pub fn dtmf_tone(digit: char, duration_ms: u32) -> Vec<i16> {
    let Some((lo, hi)) = dtmf_frequencies(digit) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    burst(&mut out, &[lo, hi], DTMF_DBM0, duration_ms);
    out
}

fn ms_to_samples(ms: u32) -> usize {
    ms as usize * RATE / 1000
}

/// Appends `ms` of the sum of `freqs`, each at `level_dbm0`, with raised-cosine edges.
fn burst(out: &mut Vec<i16>, freqs: &[f64], level_dbm0: f64, ms: u32) {
    let n = ms_to_samples(ms);
    let amplitude = (2.0 * dbm0_mean_square(level_dbm0)).sqrt();
    let ramp = RAMP_SAMPLES.min(n / 2);
    out.reserve(n);
    for i in 0..n {
        let t = i as f64 / RATE as f64;
        let v: f64 = freqs.iter().map(|f| (2.0 * PI * f * t).sin()).sum();
        let edge = i.min(n - 1 - i);
        let gain = if edge < ramp {
            0.5 - 0.5 * (PI * (edge as f64 + 0.5) / ramp as f64).cos()
        } else {
            1.0
        };
        // Two tones at −10 dBm0 peak at ~14 400, far from i16's limits; clamp anyway.
        out.push((amplitude * gain * v).round().clamp(-32768.0, 32767.0) as i16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::dtmf::InbandDetector;

    /// RMS-based level of a pure burst, in dBm0 (of the sum of its tones).
    fn level_dbm0(samples: &[i16]) -> f64 {
        let ms = samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64;
        10.0 * (ms / dbm0_mean_square(0.0)).log10()
    }

    /// Lengths of the alternating non-silent / silent runs, in ms.
    fn runs_ms(samples: &[i16]) -> Vec<(bool, usize)> {
        let mut runs: Vec<(bool, usize)> = Vec::new();
        // A sine crosses zero now and then: treat short zero runs inside a burst as part of it.
        let mut i = 0;
        while i < samples.len() {
            let on = samples[i..(i + 8).min(samples.len())]
                .iter()
                .any(|&s| s != 0);
            match runs.last_mut() {
                Some((state, len)) if *state == on => *len += 8,
                _ => runs.push((on, 8)),
            }
            i += 8;
        }
        runs.into_iter().map(|(on, n)| (on, n / 8)).collect()
    }

    #[test]
    fn parses_tone_names() {
        assert_eq!("us".parse(), Ok(RingbackTone::Us));
        assert_eq!("UK".parse(), Ok(RingbackTone::Uk));
        assert_eq!(" eu ".parse(), Ok(RingbackTone::Eu));
        let err = "fr".parse::<RingbackTone>().unwrap_err();
        assert!(
            err.to_string().contains("\"us\", \"uk\" or \"eu\""),
            "{err}"
        );
    }

    #[test]
    fn ringback_is_one_cadence_cycle() {
        let cases = [
            (RingbackTone::Us, vec![(true, 2000), (false, 4000)]),
            (
                RingbackTone::Uk,
                vec![(true, 400), (false, 200), (true, 400), (false, 2000)],
            ),
            (RingbackTone::Eu, vec![(true, 1000), (false, 4000)]),
        ];
        for (tone, expected) in cases {
            let cycle = ringback(tone);
            let total: u32 = tone.cadence_ms().iter().map(|(a, b)| a + b).sum();
            assert_eq!(cycle.len(), total as usize * 8, "{tone:?}");
            assert_eq!(runs_ms(&cycle), expected, "{tone:?}");
            // Ends in silence, so looping it has no seam.
            assert_eq!(cycle.last(), Some(&0));
        }
    }

    #[test]
    fn ringback_level_is_about_minus_19_dbm0_per_tone() {
        for tone in [RingbackTone::Us, RingbackTone::Uk, RingbackTone::Eu] {
            let cycle = ringback(tone);
            // The middle of the first burst, away from the ramps.
            let on = &cycle[800..2400];
            let per_tone = level_dbm0(on) - 10.0 * (tone.frequencies().len() as f64).log10();
            assert!(
                (per_tone - RINGBACK_DBM0).abs() < 0.3,
                "{tone:?}: {per_tone:.2} dBm0"
            );
        }
    }

    #[test]
    fn dtmf_tones_are_detected_as_their_digit() {
        for digit in "0123456789*#ABCD".chars() {
            let mut samples = dtmf_tone(digit, 100);
            assert_eq!(samples.len(), 800);
            samples.extend(std::iter::repeat_n(0, 800));
            let digits: Vec<char> = InbandDetector::new()
                .push(&samples)
                .into_iter()
                .map(|d| d.digit)
                .collect();
            assert_eq!(digits, [digit]);
        }
        assert_eq!(dtmf_tone('a', 40).len(), 320, "lower case A–D");
        assert!(dtmf_tone('x', 100).is_empty());
        let per_tone = level_dbm0(&dtmf_tone('5', 100)[100..700]) - 10.0 * 2f64.log10();
        assert!((per_tone - DTMF_DBM0).abs() < 0.3, "{per_tone:.2} dBm0");
    }
}
