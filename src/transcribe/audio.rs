//! Preparing a voicemail for an engine: telephone audio is 8 kHz, PocketSphinx's en-us model
//! is 16 kHz. The acoustic model's filter bank is fixed by its `feat.params` (130-6800 Hz), so
//! decoding at 8 kHz is refused; the audio is upsampled ×2 here instead.
//!
//! The images of the 8 kHz signal (4-8 kHz at the new rate) must go: the model's filters reach
//! 6.8 kHz, and image energy there is noise on every phoneme. A first, shorter filter (a
//! half-band interpolator keeping the original samples) left the image of a 3.3 kHz tone 55 dB
//! down (3.5 kHz: 44 dB), and with the IT-support language model its word error rate was 82 %
//! where sox's resampler gave 72 % (BENCHMARKS.md; on eight messages, so suggestive only). This
//! one, a Blackman-windowed sinc with its cutoff just under 4 kHz, puts those images 89 and 76 dB
//! down and matched sox (74 %).

use std::f64::consts::PI;

/// Half the filter's length, in input samples (3 ms each side at 8 kHz).
const HALF_WIDTH: usize = 24;
/// The cutoff as a fraction of the input's Nyquist frequency (3.8 of 4 kHz): the transition
/// band ends at 4 kHz, where the images start.
const CUTOFF: f64 = 0.95;

/// The filter's weight for a sample `t` input samples away (`|t| < HALF_WIDTH`).
fn tap(t: f64) -> f64 {
    let sinc = if t == 0.0 {
        1.0
    } else {
        (PI * CUTOFF * t).sin() / (PI * CUTOFF * t)
    };
    // Blackman over [-HALF_WIDTH, HALF_WIDTH].
    let x = (t / HALF_WIDTH as f64 + 1.0) / 2.0;
    let window = 0.42 - 0.5 * (2.0 * PI * x).cos() + 0.08 * (4.0 * PI * x).cos();
    sinc * window
}

/// `samples` at twice the rate, band-limited below the old Nyquist frequency.
pub fn upsample_2x(samples: &[i16]) -> Vec<i16> {
    // Two phases: output 2n sits on input n (offsets 0, ±1, ...), output 2n+1 halfway between
    // n and n+1 (offsets ±0.5, ±1.5, ...). Each phase's weights sum to 1: a steady level stays.
    let phase = |offset: f64| -> Vec<(isize, f64)> {
        let taps: Vec<(isize, f64)> = (-(HALF_WIDTH as isize)..=HALF_WIDTH as isize)
            .map(|k| (k, offset - k as f64))
            .filter(|(_, t)| t.abs() < HALF_WIDTH as f64)
            .map(|(k, t)| (k, tap(t)))
            .collect();
        let sum: f64 = taps.iter().map(|(_, w)| w).sum();
        taps.into_iter().map(|(k, w)| (k, w / sum)).collect()
    };
    let (even, odd) = (phase(0.0), phase(0.5));
    let at = |i: isize| -> f64 {
        usize::try_from(i)
            .ok()
            .and_then(|i| samples.get(i))
            .map_or(0.0, |&s| f64::from(s))
    };
    let filter = |n: isize, taps: &[(isize, f64)]| -> i16 {
        let v: f64 = taps.iter().map(|(k, w)| w * at(n + k)).sum();
        v.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
    };
    let mut out = Vec::with_capacity(samples.len() * 2);
    for n in 0..samples.len() as isize {
        out.push(filter(n, &even));
        out.push(filter(n, &odd));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 8000.0 * (2.0 * PI * freq * i as f64 / rate).sin())
            .collect()
    }

    fn as_i16(v: &[f64]) -> Vec<i16> {
        v.iter().map(|x| x.round() as i16).collect()
    }

    /// The amplitude of `freq` in `x` (sampled at `rate`), by correlation.
    fn level(x: &[i16], freq: f64, rate: f64) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, s) in x.iter().enumerate() {
            let a = 2.0 * PI * freq * i as f64 / rate;
            re += f64::from(*s) * a.cos();
            im += f64::from(*s) * a.sin();
        }
        2.0 * (re * re + im * im).sqrt() / x.len() as f64
    }

    #[test]
    fn twice_as_many_samples_and_a_steady_level_stays_steady() {
        assert_eq!(upsample_2x(&[1, 2, 3]).len(), 6);
        assert!(upsample_2x(&[]).is_empty());
        let out = upsample_2x(&[1000; 200]);
        // Away from the edges (where zeros are assumed beyond the ends).
        for s in &out[60..340] {
            assert!((i32::from(*s) - 1000).abs() <= 2, "{s}");
        }
    }

    #[test]
    fn a_1khz_tone_comes_out_as_the_same_tone_at_16khz() {
        let out = upsample_2x(&as_i16(&tone(1000.0, 8000.0, 800)));
        let want = tone(1000.0, 16000.0, 1600);
        let worst = out[200..1400]
            .iter()
            .zip(&want[200..1400])
            .map(|(o, w)| (f64::from(*o) - w).abs())
            .fold(0.0, f64::max);
        // Under 1% of the amplitude.
        assert!(worst < 80.0, "worst error {worst}");
    }

    #[test]
    fn the_image_above_4khz_is_removed() {
        // A 3.3 kHz tone zero-stuffed to 16 kHz has an image at 4.7 kHz, inside the model's band.
        let out = upsample_2x(&as_i16(&tone(3300.0, 8000.0, 4000)));
        let middle = &out[1000..7000];
        let wanted = level(middle, 3300.0, 16000.0);
        let image = level(middle, 4700.0, 16000.0);
        assert!(wanted > 7000.0, "3.3 kHz kept: {wanted}");
        // More than 70 dB down (the first, half-band filter managed 55).
        let db = 20.0 * (image / wanted).log10();
        assert!(db < -70.0, "image {image} vs tone {wanted}: {db:.1} dB");
    }
}
