//! Voicemail recording: the caller's decoded audio into an 8 kHz mono 16-bit WAV (hound).
//!
//! [`RecordingGate`] is the sans-IO part: it is fed 20 ms frames with their arrival time and says
//! when to stop (maximum length, or a stretch of silence once the caller has spoken).
//! [`Recorder`] owns the file. The WAV header is rewritten after every second of audio, so a
//! crash loses at most that second and leaves a playable file.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hound::{SampleFormat, WavSpec, WavWriter};

/// Why a recording stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    MaxLength,
    Silence,
    FinishKey,
    Hangup,
    /// The file could not take more audio (disk full, I/O error): what was written is kept.
    WriteFailed,
}

/// Mean absolute amplitude below which a frame counts as silence (about -45 dBFS: line noise and
/// comfort noise stay below it, speech does not).
const SILENCE_LEVEL: f64 = 180.0;

/// Frames above the silence level a message needs (200 ms in all): a click, a cough or the
/// tone of a key press is not a message.
const MESSAGE_FRAMES: u32 = 10;

/// Why a finished recording is not a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoMessage {
    /// Shorter than the node's `min_length` (a caller hanging up at the tone).
    TooShort,
    /// Long enough, but the caller never spoke (a muted phone, an open line, a robot).
    Silent,
}

impl std::fmt::Display for NoMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NoMessage::TooShort => "too short",
            NoMessage::Silent => "all silence",
        })
    }
}

/// Decides when a recording ends, from the audio it is fed, and whether it holds a message.
#[derive(Debug)]
pub struct RecordingGate {
    deadline: Instant,
    silence: Duration,
    quiet_since: Option<Instant>,
    heard_voice: bool,
    /// Frames at or above [`SILENCE_LEVEL`].
    voiced_frames: u32,
}

impl RecordingGate {
    pub fn new(start: Instant, max: Duration, silence: Duration) -> Self {
        RecordingGate {
            deadline: start + max,
            silence,
            quiet_since: Some(start),
            heard_voice: false,
            voiced_frames: 0,
        }
    }

    /// Whether a recording of `length` holds a message: at least `min_length` long, with the
    /// caller's voice in it.
    pub fn message(&self, length: Duration, min_length: Duration) -> Result<(), NoMessage> {
        if length < min_length {
            Err(NoMessage::TooShort)
        } else if self.voiced_frames < MESSAGE_FRAMES {
            Err(NoMessage::Silent)
        } else {
            Ok(())
        }
    }

    /// Feeds one frame; `Some` when the recording should stop.
    pub fn push(&mut self, samples: &[i16], now: Instant) -> Option<StopReason> {
        if now >= self.deadline {
            return Some(StopReason::MaxLength);
        }
        let level = if samples.is_empty() {
            0.0
        } else {
            samples.iter().map(|s| f64::from(*s).abs()).sum::<f64>() / samples.len() as f64
        };
        if level >= SILENCE_LEVEL {
            self.heard_voice = true;
            self.voiced_frames = self.voiced_frames.saturating_add(1);
            // Silence starts when this frame ends: a phone with silence suppression simply stops
            // sending, and the clock (`deadline`/`poll`) must still end the message.
            self.quiet_since = Some(now + Duration::from_millis(20));
            return None;
        }
        // Silence ends a message only after the caller said something, or after twice the
        // silence window when they never did (a caller collecting their thoughts).
        self.quiet_since.get_or_insert(now);
        self.poll(now)
    }

    /// When the recording ends if nothing else happens: the maximum length, or the end of the
    /// current silence window (also when no audio arrives at all: a silent or muted caller).
    pub fn deadline(&self) -> Instant {
        match self.quiet_since {
            Some(since) => self.deadline.min(since + self.window()),
            None => self.deadline,
        }
    }

    /// Time passing without audio: `Some` when the recording should stop.
    pub fn poll(&mut self, now: Instant) -> Option<StopReason> {
        if now >= self.deadline {
            return Some(StopReason::MaxLength);
        }
        let since = self.quiet_since?;
        (now.duration_since(since) >= self.window()).then_some(StopReason::Silence)
    }

    fn window(&self) -> Duration {
        if self.heard_voice {
            self.silence
        } else {
            self.silence * 2
        }
    }
}

/// An open WAV file being written.
pub struct Recorder {
    writer: WavWriter<io::BufWriter<std::fs::File>>,
    path: PathBuf,
    samples: u64,
    since_flush: u32,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Recorder, hound::Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let spec = WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        Ok(Recorder {
            writer: WavWriter::create(path, spec)?,
            path: path.to_path_buf(),
            samples: 0,
            since_flush: 0,
        })
    }

    pub fn write(&mut self, samples: &[i16]) -> Result<(), hound::Error> {
        for s in samples {
            self.writer.write_sample(*s)?;
        }
        self.samples += samples.len() as u64;
        self.since_flush += samples.len() as u32;
        if self.since_flush >= 8000 {
            // Keeps the header valid on disk every second.
            self.writer.flush()?;
            self.since_flush = 0;
        }
        Ok(())
    }

    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.samples / 8)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finalises the header; returns the path.
    pub fn finish(self) -> Result<PathBuf, hound::Error> {
        let path = self.path.clone();
        self.writer.finalize()?;
        Ok(path)
    }
}

/// Whether a finished WAV holds a message, judged as a live recording is (`min_length`, and the
/// caller's voice in [`MESSAGE_FRAMES`] frames): for files left by a crash, which start-up
/// recovery must not turn into callback promises when they hold nothing.
pub fn file_holds_message(path: &Path, min_length: Duration) -> io::Result<Result<(), NoMessage>> {
    let reader = hound::WavReader::open(path).map_err(io::Error::other)?;
    let samples: Vec<i16> = reader
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(io::Error::other)?;
    let start = Instant::now();
    // Only the voice count matters here, not when the gate would have stopped: limits far
    // beyond any file (an `Instant` cannot take `Duration::MAX`).
    let never = Duration::from_secs(365 * 24 * 3600);
    let mut gate = RecordingGate::new(start, never, never);
    for (k, frame) in samples.chunks(160).enumerate() {
        gate.push(frame, start + Duration::from_millis(20 * k as u64));
    }
    let length = Duration::from_millis(samples.len() as u64 / 8);
    Ok(gate.message(length, min_length))
}

/// Makes a WAV left behind by a crash playable: the RIFF and data chunk sizes are set from the
/// file's real length (a whole number of samples). Returns the audio length when the file needed a
/// repair, `None` when it was already consistent. Only the 44-byte header hound writes for PCM is
/// handled, which is what `Recorder` produces.
pub fn repair_wav(path: &Path) -> io::Result<Option<Duration>> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut header = [0u8; 44];
    f.read_exact(&mut header)?;
    if &header[0..4] != b"RIFF" || &header[8..12] != b"WAVE" || &header[36..40] != b"data" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a PCM WAV written by ivr", path.display()),
        ));
    }
    let len = f.metadata()?.len();
    let data_len = (len.saturating_sub(44) / 2 * 2).min(u64::from(u32::MAX) - 36) as u32;
    let declared = u32::from_le_bytes([header[40], header[41], header[42], header[43]]);
    if declared == data_len && len == 44 + u64::from(data_len) {
        return Ok(None);
    }
    f.set_len(44 + u64::from(data_len))?;
    f.seek(SeekFrom::Start(4))?;
    f.write_all(&(36 + data_len).to_le_bytes())?;
    f.seek(SeekFrom::Start(40))?;
    f.write_all(&data_len.to_le_bytes())?;
    f.sync_all()?;
    Ok(Some(Duration::from_millis(u64::from(data_len) / 16)))
}

/// Keeps what reached the disk of a recording that could not be finalised (a full disk): the
/// header is made to match the audio on disk. Returns that audio's length; an error when not
/// even the header was written.
pub fn keep_what_fits(path: &Path) -> io::Result<Duration> {
    match repair_wav(path)? {
        Some(d) => Ok(d),
        None => {
            let len = std::fs::metadata(path)?.len();
            Ok(Duration::from_millis(len.saturating_sub(44) / 16))
        }
    }
}

/// A 440 ms 1 kHz tone at -12 dBFS: the "beep" before a recording starts.
pub fn beep() -> Vec<i16> {
    (0..3520)
        .map(|n| {
            let t = n as f64 / 8000.0;
            (8200.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(level: i16) -> Vec<i16> {
        (0..160)
            .map(|i| if i % 2 == 0 { level } else { -level })
            .collect()
    }

    #[test]
    fn silence_after_speech_stops_the_recording() {
        let t0 = Instant::now();
        let mut g = RecordingGate::new(t0, Duration::from_secs(180), Duration::from_secs(3));
        let ms = |m| t0 + Duration::from_millis(m);
        for i in 0..50 {
            assert_eq!(g.push(&frame(3000), ms(i * 20)), None);
        }
        let mut stopped = None;
        for i in 50..400 {
            if let Some(r) = g.push(&frame(10), ms(i * 20)) {
                stopped = Some((i, r));
                break;
            }
        }
        // Speech ends at 1.0 s; 3 s of silence later, at 4.0 s, the recording stops.
        assert_eq!(stopped, Some((200, StopReason::Silence)));
    }

    #[test]
    fn no_audio_at_all_ends_on_the_clock() {
        let t0 = Instant::now();
        let mut g = RecordingGate::new(t0, Duration::from_secs(180), Duration::from_secs(5));
        assert_eq!(g.deadline(), t0 + Duration::from_secs(10));
        assert_eq!(g.poll(t0 + Duration::from_millis(9999)), None);
        assert_eq!(
            g.poll(t0 + Duration::from_secs(10)),
            Some(StopReason::Silence)
        );
    }

    #[test]
    fn a_caller_who_stops_sending_is_ended_by_the_clock() {
        let t0 = Instant::now();
        let mut g = RecordingGate::new(t0, Duration::from_secs(180), Duration::from_secs(3));
        assert_eq!(g.push(&frame(3000), t0 + Duration::from_millis(980)), None);
        // No more packets (silence suppression): the voice ended at 1.0 s.
        assert_eq!(g.deadline(), t0 + Duration::from_secs(4));
        assert_eq!(g.poll(t0 + Duration::from_millis(3999)), None);
        assert_eq!(
            g.poll(t0 + Duration::from_secs(4)),
            Some(StopReason::Silence)
        );
    }

    #[test]
    fn max_length_stops_the_recording() {
        let t0 = Instant::now();
        let mut g = RecordingGate::new(t0, Duration::from_secs(2), Duration::from_secs(60));
        assert_eq!(g.push(&frame(3000), t0 + Duration::from_millis(1980)), None);
        assert_eq!(
            g.push(&frame(3000), t0 + Duration::from_secs(2)),
            Some(StopReason::MaxLength)
        );
    }

    #[test]
    fn a_silent_caller_gets_twice_the_window() {
        let t0 = Instant::now();
        let mut g = RecordingGate::new(t0, Duration::from_secs(180), Duration::from_secs(3));
        assert_eq!(g.push(&frame(0), t0 + Duration::from_millis(5980)), None);
        assert_eq!(
            g.push(&frame(0), t0 + Duration::from_secs(6)),
            Some(StopReason::Silence)
        );
    }

    #[test]
    fn a_message_needs_its_length_and_a_voice() {
        let t0 = Instant::now();
        let min = Duration::from_millis(1500);
        let ms = |m| t0 + Duration::from_millis(m);
        let mut silent = RecordingGate::new(t0, Duration::from_secs(180), Duration::from_secs(5));
        // Hanging up at the tone: a few frames.
        assert_eq!(
            silent.message(Duration::from_millis(60), min),
            Err(NoMessage::TooShort)
        );
        // Five seconds of line noise below the silence level, and a single click.
        for i in 0..250 {
            silent.push(&frame(if i == 100 { 5000 } else { 100 }), ms(i * 20));
        }
        assert_eq!(
            silent.message(Duration::from_secs(5), min),
            Err(NoMessage::Silent)
        );
        let mut spoken = RecordingGate::new(t0, Duration::from_secs(180), Duration::from_secs(5));
        for i in 0..100 {
            spoken.push(&frame(if i < 50 { 3000 } else { 0 }), ms(i * 20));
        }
        assert_eq!(spoken.message(Duration::from_secs(2), min), Ok(()));
        // Speech, but shorter than the minimum.
        assert_eq!(
            spoken.message(Duration::from_millis(1400), min),
            Err(NoMessage::TooShort)
        );
    }

    #[test]
    fn a_recording_cut_by_a_crash_is_repaired() {
        let dir = std::env::temp_dir().join(format!("ivr-crash-{}", std::process::id()));
        let path = dir.join("vm.wav");
        let mut r = Recorder::create(&path).unwrap();
        // 14,000 samples: the header is rewritten at 8,000; of the 12,000 bytes after it, the
        // buffered writer has already pushed 8 KiB to the file when the "crash" comes.
        let samples: Vec<i16> = (0..14_000)
            .map(|i| ((i * 37) % 2000) as i16 - 1000)
            .collect();
        for frame in samples.chunks(160) {
            r.write(frame).unwrap();
        }
        // A crash: no finalize, buffered tail possibly lost, header counting only what was
        // flushed at the last full second.
        std::mem::forget(r);
        let repaired = repair_wav(&path).unwrap();
        assert!(repaired.is_some());
        let mut reader = hound::WavReader::open(&path).unwrap();
        let back: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        assert!(
            back.len() > 8000,
            "audio after the last header update survives: {}",
            back.len()
        );
        assert_eq!(back[..], samples[..back.len()]);
        // A consistent file is left alone.
        assert_eq!(repair_wav(&path).unwrap(), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn recorder_writes_a_playable_wav() {
        let dir = std::env::temp_dir().join(format!("ivr-rec-{}", std::process::id()));
        let path = dir.join("vm.wav");
        let mut r = Recorder::create(&path).unwrap();
        let samples: Vec<i16> = (0..16000).map(|i| (i % 200) as i16 * 10).collect();
        r.write(&samples).unwrap();
        assert_eq!(r.duration(), Duration::from_secs(2));
        let path = r.finish().unwrap();
        let mut reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec().sample_rate, 8000);
        let back: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(back, samples);
        let _ = std::fs::remove_dir_all(dir);
    }
}
