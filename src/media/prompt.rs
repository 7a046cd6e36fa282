//! Prompt audio: WAV files loaded once at start into 8 kHz mono 16-bit samples shared by every
//! call (`Arc<[i16]>`), so playing a prompt never touches the disk or copies audio.
//!
//! The native format is 8 kHz mono 16-bit PCM (what `prompts/gen.sh` writes). Other 16-bit integer
//! or 32-bit float files are converted on load: channels are averaged, and other sample rates are
//! converted by linear interpolation, after a windowed-sinc low-pass when downsampling so speech
//! above 4 kHz does not fold back as aliasing. That is adequate for voice prompts, not for music;
//! anything else is rejected with the `sox` command that fixes it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hound::{SampleFormat, WavReader};

/// Sample rate of every loaded prompt (G.711's rate).
pub const PROMPT_RATE: u32 = 8000;

const SOX_HINT: &str = "convert with `sox in.wav -r 8000 -c 1 -b 16 out.wav`";

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{}: cannot read WAV file: {source}", .path.display())]
    Read { path: PathBuf, source: hound::Error },
    #[error("{}: {bits}-bit integer samples not supported; {SOX_HINT}", .path.display())]
    UnsupportedIntBits { path: PathBuf, bits: u16 },
    #[error("{}: {bits}-bit float samples not supported; {SOX_HINT}", .path.display())]
    UnsupportedFloatBits { path: PathBuf, bits: u16 },
    #[error("{}: invalid format ({channels} channels at {rate} Hz); {SOX_HINT}", .path.display())]
    BadFormat {
        path: PathBuf,
        channels: u16,
        rate: u32,
    },
    #[error("{}: contains no audio", .path.display())]
    Empty { path: PathBuf },
    #[error("{}: cannot list prompt directory: {source}", .dir.display())]
    ListDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: file name is not valid UTF-8; rename it", .path.display())]
    BadName { path: PathBuf },
    #[error("{}: prompt `{name}` is already loaded from another file", .path.display())]
    Duplicate { path: PathBuf, name: String },
}

/// One prompt: its name (the file stem) and its 8 kHz mono samples.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub name: String,
    pub samples: Arc<[i16]>,
}

impl Prompt {
    /// Loads and, if needed, converts one WAV file; the prompt is named after the file stem.
    pub fn load(path: &Path) -> Result<Prompt, PromptError> {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| PromptError::BadName {
                path: path.to_owned(),
            })?
            .to_owned();
        let read_err = |source| PromptError::Read {
            path: path.to_owned(),
            source,
        };
        let mut reader = WavReader::open(path).map_err(read_err)?;
        let spec = reader.spec();
        if spec.channels == 0 || spec.sample_rate == 0 {
            return Err(PromptError::BadFormat {
                path: path.to_owned(),
                channels: spec.channels,
                rate: spec.sample_rate,
            });
        }
        let channels = usize::from(spec.channels);
        let samples: Vec<i16> = match (spec.sample_format, spec.bits_per_sample) {
            (SampleFormat::Int, 16) if channels == 1 && spec.sample_rate == PROMPT_RATE => reader
                .samples::<i16>()
                .collect::<Result<_, _>>()
                .map_err(read_err)?,
            (SampleFormat::Int, 16) => {
                let interleaved: Vec<f32> = reader
                    .samples::<i16>()
                    .map(|s| s.map(f32::from))
                    .collect::<Result<_, _>>()
                    .map_err(read_err)?;
                convert(&interleaved, channels, spec.sample_rate)
            }
            (SampleFormat::Float, 32) => {
                let interleaved: Vec<f32> = reader
                    .samples::<f32>()
                    .map(|s| s.map(|v| v * 32767.0))
                    .collect::<Result<_, _>>()
                    .map_err(read_err)?;
                convert(&interleaved, channels, spec.sample_rate)
            }
            (SampleFormat::Int, bits) => {
                return Err(PromptError::UnsupportedIntBits {
                    path: path.to_owned(),
                    bits,
                });
            }
            (SampleFormat::Float, bits) => {
                return Err(PromptError::UnsupportedFloatBits {
                    path: path.to_owned(),
                    bits,
                });
            }
        };
        if samples.is_empty() {
            return Err(PromptError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Prompt {
            name,
            samples: samples.into(),
        })
    }

    /// A prompt from samples already at 8 kHz (generated tones, tests).
    pub fn from_samples(name: impl Into<String>, samples: impl Into<Arc<[i16]>>) -> Prompt {
        Prompt {
            name: name.into(),
            samples: samples.into(),
        }
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(PROMPT_RATE))
    }
}

/// Downmixes interleaved frames to mono, then resamples to 8 kHz.
fn convert(interleaved: &[f32], channels: usize, rate: u32) -> Vec<i16> {
    let mono: Vec<f32> = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    resample(&mono, rate, PROMPT_RATE)
        .into_iter()
        .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Linear-interpolation resampler with an anti-aliasing low-pass when downsampling.
fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let filtered;
    let src = if from > to {
        // Cut off a little below the new Nyquist frequency (to / 2), relative to the old rate.
        filtered = low_pass(input, 0.45 * f64::from(to) / f64::from(from));
        &filtered[..]
    } else {
        input
    };
    let out_len = (src.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    let last = src.len() - 1;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            let idx = (pos as usize).min(last);
            let frac = (pos - idx as f64) as f32;
            let next = src[(idx + 1).min(last)];
            src[idx] * (1.0 - frac) + next * frac
        })
        .collect()
}

/// Hann-windowed sinc FIR, `cutoff` as a fraction of the sample rate (0.5 = Nyquist).
fn low_pass(input: &[f32], cutoff: f64) -> Vec<f32> {
    const HALF: isize = 32;
    let taps: Vec<f64> = (-HALF..=HALF)
        .map(|k| {
            let x = k as f64;
            let sinc = if k == 0 {
                2.0 * cutoff
            } else {
                (2.0 * std::f64::consts::PI * cutoff * x).sin() / (std::f64::consts::PI * x)
            };
            let window = 0.5 + 0.5 * (std::f64::consts::PI * x / (HALF as f64 + 1.0)).cos();
            sinc * window
        })
        .collect();
    // Unity gain at DC, so levels are unchanged by the filter.
    let sum: f64 = taps.iter().sum();
    let n = input.len() as isize;
    (0..n)
        .map(|i| {
            let acc: f64 = taps
                .iter()
                .enumerate()
                .filter_map(|(j, t)| {
                    let idx = i + j as isize - HALF;
                    (0..n)
                        .contains(&idx)
                        .then(|| t * f64::from(input[idx as usize]))
                })
                .sum();
            (acc / sum) as f32
        })
        .collect()
}

/// Every prompt of a directory, by name.
#[derive(Debug, Clone, Default)]
pub struct PromptStore {
    prompts: HashMap<String, Prompt>,
}

impl PromptStore {
    /// Loads every `*.wav` in `dir` (not recursive); the first bad file fails the whole load, so
    /// a broken prompt is found at start, not in the middle of a call.
    pub fn load_dir(dir: &Path) -> Result<PromptStore, PromptError> {
        let list_err = |source| PromptError::ListDir {
            dir: dir.to_owned(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(list_err)? {
            let path = entry.map_err(list_err)?.path();
            let is_wav = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
            if is_wav && path.is_file() {
                paths.push(path);
            }
        }
        // Sorted so that which of two clashing files is reported does not depend on the fs.
        paths.sort();
        let mut prompts = HashMap::with_capacity(paths.len());
        for path in paths {
            let prompt = Prompt::load(&path)?;
            if prompts.contains_key(&prompt.name) {
                return Err(PromptError::Duplicate {
                    name: prompt.name,
                    path,
                });
            }
            prompts.insert(prompt.name.clone(), prompt);
        }
        Ok(PromptStore { prompts })
    }

    pub fn get(&self, name: &str) -> Option<&Prompt> {
        self.prompts.get(name)
    }

    pub fn insert(&mut self, prompt: Prompt) {
        self.prompts.insert(prompt.name.clone(), prompt);
    }

    /// Prompt names in sorted order (for `ivr check` and logs).
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.prompts.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hound::{WavSpec, WavWriter};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh, empty directory under the system temp dir, unique per test and process.
    fn temp_dir(tag: &str) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ivr-prompt-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    fn spec(channels: u16, rate: u32, bits: u16, format: SampleFormat) -> WavSpec {
        WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    fn tone(freq: f64, rate: u32, secs: f64, amp: f64) -> impl Iterator<Item = f64> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n).map(move |i| {
            amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()
        })
    }

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
    }

    #[test]
    fn native_format_loads_verbatim() {
        let dir = temp_dir("native");
        let path = dir.join("hello.wav");
        let mut w = WavWriter::create(&path, spec(1, 8000, 16, SampleFormat::Int)).expect("create");
        let written: Vec<i16> = (0..800).map(|i| (i * 37 % 20000) as i16 - 10000).collect();
        for &s in &written {
            w.write_sample(s).expect("write");
        }
        w.finalize().expect("finalize");

        let p = Prompt::load(&path).expect("load");
        assert_eq!(p.name, "hello");
        assert_eq!(&p.samples[..], &written[..]);
        assert_eq!(p.duration(), Duration::from_millis(100));
    }

    #[test]
    fn stereo_44k_is_downmixed_and_resampled() {
        let dir = temp_dir("stereo");
        let path = dir.join("st.wav");
        let mut w =
            WavWriter::create(&path, spec(2, 44100, 16, SampleFormat::Int)).expect("create");
        // 440 Hz in the left channel only, so the mono mix has half the amplitude.
        for s in tone(440.0, 44100, 1.0, 16000.0) {
            w.write_sample(s as i16).expect("write");
            w.write_sample(0i16).expect("write");
        }
        w.finalize().expect("finalize");

        let p = Prompt::load(&path).expect("load");
        assert_eq!(p.samples.len(), 8000);
        // A 8000-amplitude sine has RMS 8000 / sqrt 2 ≈ 5657; edges of the filter cost a little.
        let r = rms(&p.samples);
        assert!((5400.0..5800.0).contains(&r), "rms {r}");
    }

    #[test]
    fn downsampling_filters_out_what_would_alias() {
        let dir = temp_dir("alias");
        let path = dir.join("hiss.wav");
        let mut w =
            WavWriter::create(&path, spec(1, 48000, 32, SampleFormat::Float)).expect("create");
        // 7 kHz cannot be represented at 8 kHz; unfiltered it would fold back to 1 kHz at full level.
        for s in tone(7000.0, 48000, 0.5, 0.5) {
            w.write_sample(s as f32).expect("write");
        }
        w.finalize().expect("finalize");

        let p = Prompt::load(&path).expect("load");
        assert_eq!(p.samples.len(), 4000);
        let r = rms(&p.samples[100..3900]);
        assert!(r < 0.05 * 0.5 * 32767.0 / 2f64.sqrt(), "alias rms {r}");
    }

    #[test]
    fn float_at_8k_is_scaled() {
        let dir = temp_dir("float");
        let path = dir.join("f.wav");
        let mut w =
            WavWriter::create(&path, spec(1, 8000, 32, SampleFormat::Float)).expect("create");
        for v in [0.0f32, 0.5, -0.5, 1.0, -1.0] {
            w.write_sample(v).expect("write");
        }
        w.finalize().expect("finalize");
        let p = Prompt::load(&path).expect("load");
        assert_eq!(&p.samples[..], &[0, 16384, -16384, 32767, -32767]);
    }

    #[test]
    fn twenty_four_bit_is_rejected_with_the_fix() {
        let dir = temp_dir("24bit");
        let path = dir.join("x.wav");
        let mut w = WavWriter::create(&path, spec(1, 8000, 24, SampleFormat::Int)).expect("create");
        w.write_sample(0i32).expect("write");
        w.finalize().expect("finalize");
        let err = Prompt::load(&path).expect_err("24-bit must fail");
        assert!(matches!(
            err,
            PromptError::UnsupportedIntBits { bits: 24, .. }
        ));
        assert_eq!(
            err.to_string(),
            format!(
                "{}: 24-bit integer samples not supported; convert with `sox in.wav -r 8000 -c 1 -b 16 out.wav`",
                path.display()
            )
        );
    }

    #[test]
    fn not_a_wav_names_the_file() {
        let dir = temp_dir("junk");
        let path = dir.join("junk.wav");
        std::fs::write(&path, b"definitely not RIFF").expect("write");
        let err = Prompt::load(&path).expect_err("junk must fail");
        assert!(
            err.to_string()
                .starts_with(&format!("{}: cannot read WAV file", path.display()))
        );
    }

    #[test]
    fn store_loads_wavs_by_stem_and_ignores_other_files() {
        let dir = temp_dir("store");
        for name in ["a", "b"] {
            let mut w = WavWriter::create(
                dir.join(format!("{name}.wav")),
                spec(1, 8000, 16, SampleFormat::Int),
            )
            .expect("create");
            w.write_sample(1i16).expect("write");
            w.finalize().expect("finalize");
        }
        std::fs::write(dir.join("prompts.txt"), "a|A").expect("write");
        let store = PromptStore::load_dir(&dir).expect("load dir");
        assert_eq!(store.names(), ["a", "b"]);
        assert_eq!(store.get("a").map(|p| p.samples.len()), Some(1));
        assert!(store.get("prompts").is_none());
        assert!(store.get("c").is_none());
    }

    #[test]
    fn missing_dir_is_an_error_naming_it() {
        let dir = temp_dir("missing").join("nope");
        let err = PromptStore::load_dir(&dir).expect_err("missing dir");
        assert!(
            err.to_string()
                .contains("nope: cannot list prompt directory")
        );
    }

    #[test]
    fn shipped_prompts_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let store = PromptStore::load_dir(&dir).expect("prompts/ loads");
        let greeting = store
            .get("after_hours_greeting")
            .expect("after_hours_greeting.wav");
        assert!(greeting.duration() > Duration::from_secs(1));
        // Shipped prompts must already be in the native format, not converted on every start.
        let reader = WavReader::open(dir.join("after_hours_greeting.wav")).expect("open");
        assert_eq!(reader.spec(), spec(1, 8000, 16, SampleFormat::Int));
        for name in [
            "rate_disclaimer",
            "press_5",
            "terms",
            "press_1_agree",
            "open_hours",
            "leave_message",
            "goodbye",
            "invalid_input",
            "no_input",
            "connecting",
        ] {
            assert!(store.get(name).is_some(), "prompts/{name}.wav missing");
        }
    }
}
