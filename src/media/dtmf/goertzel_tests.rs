//! Tests of the in-band detector with real inputs: keypad tones synthesized at calibrated levels and
//! passed through G.711 as they would arrive, and the shipped speech prompts for talk-off.

use super::*;
use crate::media::dtmf::test_support::{Signal, g711_round_trip};
use crate::media::g711::Codec;

const KEYS_ALL: &str = "123A456B789C*0#D";
const CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

/// Feeds `pcm` in 20 ms packets (as RTP delivers it), then 100 ms of silence to end any press.
fn detect(pcm: &[i16]) -> Vec<DtmfDigit> {
    let mut det = InbandDetector::new();
    let mut found = Vec::new();
    for packet in pcm.chunks(160) {
        found.extend(det.push(packet));
    }
    found.extend(det.push(&[0; 800]));
    found
}

fn digits(pcm: &[i16]) -> String {
    detect(pcm).iter().map(|d| d.digit).collect()
}

#[test]
fn every_key_at_every_level_through_both_codecs() {
    for codec in CODECS {
        for level in [-3.0, -10.0, -20.0, -26.0] {
            for key in KEYS_ALL.chars() {
                let pcm = Signal::new()
                    .silence(30)
                    .key(key, 60, level, 0.0)
                    .silence(30)
                    .through(codec);
                let found = detect(&pcm);
                assert_eq!(
                    found.len(),
                    1,
                    "{key} at {level} dBm0 via {codec:?}: {found:?}"
                );
                let d = found[0];
                assert_eq!((d.digit, d.source), (key, DtmfSource::Inband));
                assert!((45..=75).contains(&d.duration_ms), "{key}: {d:?}");
            }
        }
    }
}

#[test]
fn too_quiet_tones_are_ignored() {
    for key in KEYS_ALL.chars() {
        let pcm = Signal::new().key(key, 100, -40.0, 0.0).through(Codec::Pcmu);
        assert_eq!(digits(&pcm), "", "{key} at -40 dBm0");
    }
}

#[test]
fn twist_within_limits_is_accepted_and_beyond_rejected() {
    for codec in CODECS {
        for key in KEYS_ALL.chars() {
            for (level, twist) in [(-10.0, 4.0), (-10.0, -4.0), (-6.0, 8.0), (-22.0, 4.0)] {
                // `twist` > 0: low tone quieter (normal twist); the louder tone is at `level`.
                let level = if twist < 0.0 { level + twist } else { level };
                let pcm = Signal::new().key(key, 60, level, twist).through(codec);
                assert_eq!(
                    digits(&pcm),
                    key.to_string(),
                    "{key} twist {twist} dB via {codec:?}"
                );
            }
            for twist in [10.0, -10.0, -6.5] {
                let pcm = Signal::new().key(key, 60, -10.0, twist).through(codec);
                assert_eq!(digits(&pcm), "", "{key} twist {twist} dB via {codec:?}");
            }
        }
    }
}

#[test]
fn forty_ms_is_a_press_and_twenty_ms_is_not_wherever_it_falls() {
    // Every offset of the tone against the window grid, one sample apart, loud and quiet.
    for (codec, level) in [
        (Codec::Pcmu, -10.0),
        (Codec::Pcma, -26.0),
        (Codec::Pcmu, -3.0),
    ] {
        for lead in 0..HOP {
            for key in ['1', '5', '#', 'D'] {
                let tone = |ms| {
                    let mut s = Signal::new().key(key, ms, level, 0.0).silence(50);
                    s.samples.splice(0..0, std::iter::repeat_n(0.0, lead));
                    s.through(codec)
                };
                let what = format!("{key} at {level} dBm0 after {lead} samples");
                assert_eq!(digits(&tone(40)), key.to_string(), "40 ms {what}");
                assert_eq!(digits(&tone(20)), "", "20 ms {what}");
                assert_eq!(digits(&tone(25)), "", "25 ms {what}");
            }
        }
    }
}

#[test]
fn twenty_db_snr_white_noise_does_not_hide_digits() {
    for codec in CODECS {
        for (seed, key) in KEYS_ALL.chars().enumerate() {
            for level in [-3.0, -10.0, -20.0, -26.0] {
                let pcm = Signal::new()
                    .key(key, 60, level, 0.0)
                    .with_noise(20.0, seed as u64 + 1)
                    .through(codec);
                assert_eq!(
                    digits(&pcm),
                    key.to_string(),
                    "{key} at {level} dBm0 in noise"
                );
            }
        }
        // The noise alone, loud (as loud as a −10 dBm0 key) and quiet, presses nothing.
        let noise = Signal::new().silence(2000).with_noise(0.0, 9);
        let mut loud = noise.samples.clone();
        loud.iter_mut().for_each(|v| *v *= 16141.0 * 0.316); // σ of a −10 dBm0 sine's RMS
        assert_eq!(digits(&Signal { samples: loud }.through(codec)), "");
    }
}

#[test]
fn repeated_keys_separated_by_short_gaps_are_each_counted() {
    for codec in CODECS {
        let mut s = Signal::new();
        for key in "5551".chars() {
            s = s.key(key, 50, -12.0, 2.0).silence(50);
        }
        assert_eq!(digits(&s.through(codec)), "5551");
        // The 40 ms minimum gap of Q.24, with 40 ms tones: the fastest legal dialling.
        let mut s = Signal::new();
        for key in "0123456789*#ABCD00".chars() {
            s = s.key(key, 40, -12.0, 2.0).silence(40);
        }
        assert_eq!(digits(&s.through(codec)), "0123456789*#ABCD00");
    }
}

#[test]
fn a_ten_ms_drop_out_does_not_split_a_press() {
    let mut s = Signal::new().key('8', 300, -10.0, 0.0);
    s.samples[1200..1280].iter_mut().for_each(|v| *v = 0.0);
    let found = detect(&s.through(Codec::Pcma));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].digit, '8');
    assert!((280..=310).contains(&found[0].duration_ms), "{found:?}");
}

#[test]
fn leftover_samples_carry_across_pushes_of_any_size() {
    let pcm = Signal::new()
        .key('7', 45, -15.0, 0.0)
        .silence(60)
        .key('9', 45, -15.0, 0.0)
        .through(Codec::Pcmu);
    for chunk in [1, 7, 53, 105, 106, 107, 480] {
        let mut det = InbandDetector::new();
        let mut found = String::new();
        for part in pcm.chunks(chunk).chain([&[0i16; 800][..]]) {
            found.extend(det.push(part).iter().map(|d| d.digit));
        }
        assert_eq!(found, "79", "chunks of {chunk}");
    }
}

#[test]
fn single_tones_and_a_sweep_are_not_digits() {
    for codec in CODECS {
        for hz in [
            697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0, 1000.0, 2000.0,
        ] {
            for level in [-3.0, -20.0] {
                let pcm = Signal::new().tone(hz, 500, level).through(codec);
                assert_eq!(digits(&pcm), "", "{hz} Hz at {level} dBm0");
            }
        }
        // A linear sweep 300 → 3400 Hz over 2 s, crossing every DTMF frequency.
        let a = super::super::test_support::amplitude(-6.0);
        let samples = (0..16_000)
            .map(|i| {
                let t = f64::from(i) / 8000.0;
                a * (2.0 * std::f64::consts::PI * (300.0 * t + 3100.0 / 4.0 * t * t)).sin()
            })
            .collect();
        assert_eq!(digits(&Signal { samples }.through(codec)), "");
        // Two row tones at once (two keys of one column pressed together) is no digit either.
        let parts = [697.0, 852.0, 1209.0].map(|hz| Signal::new().tone(hz, 200, -12.0).samples);
        let samples = (0..parts[0].len())
            .map(|i| parts.iter().map(|p| p[i]).sum())
            .collect();
        assert_eq!(
            digits(&Signal { samples }.through(codec)),
            "",
            "keys 1 and 7 together"
        );
    }
}

/// The speech prompts shipped in `prompts/` (espeak-ng), as 16-bit samples.
fn prompt_wavs() -> Vec<(String, Vec<i16>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("prompts/ directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let mut reader = hound::WavReader::open(&p).expect("readable WAV");
            let spec = reader.spec();
            assert_eq!(
                (spec.sample_rate, spec.channels, spec.bits_per_sample),
                (8000, 1, 16)
            );
            let samples = reader
                .samples::<i16>()
                .map(|s| s.expect("sample"))
                .collect();
            (p.display().to_string(), samples)
        })
        .collect()
}

#[test]
fn speech_prompts_press_no_keys() {
    let prompts = prompt_wavs();
    assert!(
        prompts.len() >= 10,
        "expected the shipped prompts, found {}",
        prompts.len()
    );
    let mut seconds = 0.0;
    for (name, pcm) in &prompts {
        seconds += pcm.len() as f64 / 8000.0;
        for codec in CODECS {
            // Also 6 dB louder, as a hot line or a gain stage would deliver it.
            for gain in [1.0, 2.0] {
                let louder: Vec<i16> = pcm
                    .iter()
                    .map(|&s| (f64::from(s) * gain).clamp(-32768.0, 32767.0) as i16)
                    .collect();
                let found = detect(&g711_round_trip(&louder, codec));
                assert!(found.is_empty(), "{name} x{gain} via {codec:?}: {found:?}");
            }
        }
    }
    assert!(seconds > 60.0, "only {seconds} s of speech");
}

/// Not a pass/fail of the detector but of its calibration: how close speech comes to passing.
#[test]
fn speech_stays_clear_of_the_thresholds() {
    let (mut windows, mut single_pass) = (0, 0);
    let mut best_ratio: f64 = 0.0;
    for (_, pcm) in prompt_wavs() {
        let pcm = g711_round_trip(&pcm, Codec::Pcmu);
        for w in pcm.windows(WINDOW).step_by(HOP) {
            let a = WindowAnalysis::of(w);
            windows += 1;
            let loud = a.weaker_tone_dbm0() >= MIN_TONE_DBM0;
            let twist = a.reverse_twist_db();
            let slack = WINDOW_TWIST_SLACK_DB;
            let shape =
                twist <= MAX_REVERSE_TWIST_DB + slack && -twist <= MAX_NORMAL_TWIST_DB + slack;
            if loud && shape && a.group_margin_db() >= GROUP_MARGIN_DB {
                best_ratio = best_ratio.max(a.tonal_ratio());
            }
            if a.digit().is_some() {
                single_pass += 1;
            }
        }
    }
    eprintln!(
        "speech: {windows} windows, {single_pass} pass alone, best tonal ratio {best_ratio:.3}"
    );
    assert!(windows > 10_000);
    assert!(
        best_ratio < MIN_TONAL_RATIO,
        "speech reached tonal ratio {best_ratio}"
    );
    assert_eq!(single_pass, 0);
}
