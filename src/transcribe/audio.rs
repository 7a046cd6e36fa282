//! Preparing a voicemail for an engine: telephone audio is 8 kHz, PocketSphinx's en-us model
//! is 16 kHz. The acoustic model's filter bank is fixed by its `feat.params` (130-6800 Hz), so
//! decoding at 8 kHz is refused; the audio is upsampled ×2 here instead.

/// Half the taps of the interpolation filter: a windowed-sinc low-pass at the old Nyquist
/// frequency (4 kHz), long enough to keep aliases of the 8 kHz images ~40 dB down.
const HALF_TAPS: usize = 16;

/// `samples` at twice the rate: the originals are kept and each new sample between two is the
/// band-limited interpolation of its neighbours (Hann-windowed sinc).
pub fn upsample_2x(samples: &[i16]) -> Vec<i16> {
    // Taps at odd half-sample offsets ±0.5, ±1.5, ... (in input samples).
    let taps: Vec<f64> = (0..HALF_TAPS)
        .map(|k| {
            let x = k as f64 + 0.5;
            let sinc = (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x);
            let window = 0.5 + 0.5 * (std::f64::consts::PI * x / (HALF_TAPS as f64 + 0.5)).cos();
            sinc * window
        })
        .collect();
    let norm: f64 = 2.0 * taps.iter().sum::<f64>();
    let at = |i: isize| -> f64 {
        usize::try_from(i)
            .ok()
            .and_then(|i| samples.get(i))
            .map_or(0.0, |&s| f64::from(s))
    };
    let mut out = Vec::with_capacity(samples.len() * 2);
    for (n, &s) in samples.iter().enumerate() {
        out.push(s);
        let n = n as isize;
        let mid: f64 = taps
            .iter()
            .enumerate()
            .map(|(k, t)| t * (at(n - k as isize) + at(n + 1 + k as isize)))
            .sum::<f64>()
            / norm;
        out.push(mid.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twice_as_many_samples_and_the_originals_kept() {
        let input = [100, -200, 300, 0, 5];
        let out = upsample_2x(&input);
        assert_eq!(out.len(), 10);
        for (i, s) in input.iter().enumerate() {
            assert_eq!(out[2 * i], *s);
        }
    }

    #[test]
    fn a_steady_level_stays_steady() {
        let out = upsample_2x(&[1000; 200]);
        // Away from the edges (where zeros are assumed beyond the ends).
        for s in &out[40..360] {
            assert!((i32::from(*s) - 1000).abs() <= 2, "{s}");
        }
    }

    #[test]
    fn a_1khz_tone_comes_out_as_the_same_tone_at_16khz() {
        let tone = |rate: f64, n: usize| -> Vec<f64> {
            (0..n)
                .map(|i| 8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / rate).sin())
                .collect()
        };
        let input: Vec<i16> = tone(8000.0, 400).iter().map(|v| v.round() as i16).collect();
        let want = tone(16000.0, 800);
        let out = upsample_2x(&input);
        let worst = out[100..700]
            .iter()
            .zip(&want[100..700])
            .map(|(o, w)| (f64::from(*o) - w).abs())
            .fold(0.0, f64::max);
        // Under 1% of the amplitude.
        assert!(worst < 80.0, "worst error {worst}");
    }
}
