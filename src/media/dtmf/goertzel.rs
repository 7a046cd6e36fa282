//! In-band DTMF detector, sans-IO: fed 8 kHz linear PCM (decoded G.711), returns each key press
//! once, after it ends, with its duration.
//!
//! Eight Goertzel filters (one per DTMF frequency) run over windows of [`WINDOW`] samples that
//! overlap by half. Each window is judged on its own, in the spirit of ITU-T Q.24: both tones loud
//! enough, twist within limits, each tone clearly the strongest of its group, and nearly all of the
//! window's energy in those two tones (speech spreads its energy over many frequencies, which is
//! what keeps the prompts' own speech from "pressing" keys — talk-off). A key press is then a run of
//! windows agreeing on one digit that lasts at least 40 ms, and it ends after about 40 ms without it.

use super::{DtmfDigit, DtmfSource};

/// Samples per analysis window: 106 samples = 13.25 ms at 8 kHz. The Goertzel filter of an N-sample
/// window has its first null fs/N = 75.5 Hz away from its centre, which is about the 73–89 Hz
/// spacing of the low-group tones, so each row filter nearly ignores its neighbours (≥ 17 dB apart)
/// while staying short enough to time 40 ms presses and gaps. (The classic 205-sample window
/// resolves better but is 25.6 ms long, too coarse for 40 ms timing.)
pub const WINDOW: usize = 106;

/// Windows start every 53 samples (half overlap) so press and gap lengths are measured to 6.6 ms
/// rather than to a whole window, which is what separates 20 ms blips from 40 ms presses.
pub const HOP: usize = WINDOW / 2;

/// Consecutive agreeing windows that make a press. A tone of L samples fully covers at least
/// ⌊(L − 106) / 53⌋ windows: 4 for 40 ms (320 samples), at most 3 overlapping usefully for 20 ms.
pub const MIN_ON_WINDOWS: u32 = 4;

/// Consecutive windows without the digit that end a press: a 40 ms gap fully covers at least 4
/// windows, while a 10 ms drop-out (Q.24 asks that short interruptions be bridged) spoils at
/// most 3.
pub const MIN_OFF_WINDOWS: u32 = 4;

/// Low group (rows), high group (columns), and the keypad they address.
const ROWS_HZ: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS_HZ: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

const SAMPLE_RATE: f64 = 8000.0;

/// Level of a full-scale sine in dBm0: +3.14 for μ-law per G.711 (A-law's is +3.17; the 0.03 dB
/// difference is below anything this detector measures).
#[allow(clippy::approx_constant)] // G.711's figure, not π.
const G711_FULL_SCALE_DBM0: f64 = 3.14;

/// Mean square of a sine at `level_dbm0`. A full-scale sine (peak 32768) is +3.14 dBm0, so 0 dBm0
/// is a sine of peak 32768 · 10^(−3.14/20) ≈ 22 828, mean square ≈ 2.6e8.
pub fn dbm0_mean_square(level_dbm0: f64) -> f64 {
    let peak = 32768.0 * 10f64.powf((level_dbm0 - G711_FULL_SCALE_DBM0) / 20.0);
    peak * peak / 2.0
}

/// Quietest tone (each of the two, in dBm0) accepted. Q.24's administrations ask that −25 to
/// −27 dBm0 per tone be accepted and RFC 4733 quotes 0 to −36 dBm0; −33 dBm0 takes −26 dBm0 tones
/// with 4 dB of twist to spare while ignoring line noise, and quiet speech fails the other tests.
pub const MIN_TONE_DBM0: f64 = -33.0;

/// Normal twist (high group louder, as lines attenuate the high group less than phones boost it):
/// Q.24 / Bellcore require 8 dB to be accepted. The limit is applied to the tone energies summed
/// over the whole press, and sits 1 dB above the requirement for G.711 and estimation error: a
/// real 8 dB twist passes, a 10 dB one does not.
pub const MAX_NORMAL_TWIST_DB: f64 = 9.0;

/// Reverse twist (low group louder): Q.24 / Bellcore require 4 dB; 1 dB of slack as above.
pub const MAX_REVERSE_TWIST_DB: f64 = 5.0;

/// Extra twist one window may show. In a 13 ms window the strong tone's sidelobes (only ~23 dB
/// down at the other group) beat with the weak tone and move its estimate by up to ±1.5 dB at
/// 8 dB twist, so single windows get this slack and the press as a whole is held to the limits.
pub const WINDOW_TWIST_SLACK_DB: f64 = 2.5;

/// Each chosen tone must beat the other three tones of its group by this much. A clean tone leaks
/// at most −17 dB into a row neighbour (see [`WINDOW`]) and a strong high tone's sidelobes reach
/// the low group at about −23 dB, which at 8 dB twist leaves ~10 dB; 8 dB still rejects two keys
/// at once and the broad spectra of vowels.
pub const GROUP_MARGIN_DB: f64 = 8.0;

/// Share of the window's total energy that the two tones must carry (talk-off guard). A DTMF
/// signal has ≈ 0.97–1.0 even at 20 dB SNR; the shipped speech prompts never exceed 0.45 (see the
/// `speech_stays_clear_of_the_thresholds` test), because voiced speech spreads its energy over
/// many harmonics and formants. 0.8 sits between the two and still takes tones in noise only
/// ~6 dB below them.
pub const MIN_TONAL_RATIO: f64 = 0.8;

/// The measurements of one window, exposed so tests can show margins, not just verdicts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowAnalysis {
    /// Index into the rows / columns of the strongest tone of each group.
    pub row: usize,
    pub col: usize,
    /// Energy of each of the eight tones, in the same units as `total` (sum of squared samples),
    /// so a pure tone's estimate equals the window's energy.
    pub rows: [f64; 4],
    pub cols: [f64; 4],
    pub total: f64,
    /// Window length in samples.
    pub len: usize,
}

impl WindowAnalysis {
    /// Runs the eight Goertzel filters over one window.
    pub fn of(window: &[i16]) -> Self {
        let n = window.len() as f64;
        let mut rows = [0.0; 4];
        let mut cols = [0.0; 4];
        for (out, hz) in rows
            .iter_mut()
            .zip(ROWS_HZ)
            .chain(cols.iter_mut().zip(COLS_HZ))
        {
            // The exact frequency, not the nearest DFT bin: bins 75 Hz apart would miss tones by
            // up to 37 Hz and lose several dB.
            let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / SAMPLE_RATE).cos();
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for &x in window {
                let s = f64::from(x) + coeff * s1 - s2;
                s2 = s1;
                s1 = s;
            }
            // |X(f)|² scaled by 2/N: a sine of amplitude A gives |X|² ≈ (A·N/2)², energy A²·N/2.
            *out = (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2.0 / n;
        }
        let total = window.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        Self {
            row: argmax(&rows),
            col: argmax(&cols),
            rows,
            cols,
            total,
            len: window.len(),
        }
    }

    /// Low tone louder than high tone, in dB (negative for normal twist).
    pub fn reverse_twist_db(&self) -> f64 {
        db(self.rows[self.row] / self.cols[self.col])
    }

    /// How far each chosen tone is above the next strongest of its group, in dB (the smaller).
    pub fn group_margin_db(&self) -> f64 {
        let margin = |e: &[f64; 4], best: usize| {
            let next = e.iter().enumerate().filter(|&(i, _)| i != best);
            db(e[best] / next.map(|(_, &v)| v).fold(f64::MIN_POSITIVE, f64::max))
        };
        margin(&self.rows, self.row).min(margin(&self.cols, self.col))
    }

    /// Share of the window's energy in the two chosen tones.
    pub fn tonal_ratio(&self) -> f64 {
        (self.rows[self.row] + self.cols[self.col]) / self.total.max(f64::MIN_POSITIVE)
    }

    /// Level of the weaker chosen tone in dBm0.
    pub fn weaker_tone_dbm0(&self) -> f64 {
        let weaker = self.rows[self.row].min(self.cols[self.col]);
        db(weaker / self.len.max(1) as f64 / dbm0_mean_square(0.0))
    }

    /// The key this window shows, if it passes every test.
    pub fn digit(&self) -> Option<char> {
        let twist = self.reverse_twist_db();
        let ok = self.weaker_tone_dbm0() >= MIN_TONE_DBM0
            && twist <= MAX_REVERSE_TWIST_DB + WINDOW_TWIST_SLACK_DB
            && -twist <= MAX_NORMAL_TWIST_DB + WINDOW_TWIST_SLACK_DB
            && self.group_margin_db() >= GROUP_MARGIN_DB
            && self.tonal_ratio() >= MIN_TONAL_RATIO;
        ok.then(|| KEYS[self.row][self.col])
    }
}

fn argmax(e: &[f64; 4]) -> usize {
    (1..4).fold(0, |best, i| if e[i] > e[best] { i } else { best })
}

fn db(ratio: f64) -> f64 {
    10.0 * ratio.max(f64::MIN_POSITIVE).log10()
}

/// A window that passed: its key and the energies of its two tones.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Hit {
    digit: char,
    low: f64,
    high: f64,
}

/// A run of consecutive windows showing one digit: a press once it reaches [`MIN_ON_WINDOWS`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    digit: char,
    first: u64,
    last: u64,
    hits: u32,
    /// Windows without the digit since `last`.
    misses: u32,
    /// Tone energies summed over the run's windows, for the press-level twist test.
    low: f64,
    high: f64,
}

impl Run {
    fn start(window: u64, hit: Hit) -> Self {
        Self {
            digit: hit.digit,
            first: window,
            last: window,
            hits: 1,
            misses: 0,
            low: hit.low,
            high: hit.high,
        }
    }

    /// The press, if its twist over all its windows is within the limits.
    fn into_digit(self) -> Option<DtmfDigit> {
        let twist = db(self.low / self.high);
        if twist > MAX_REVERSE_TWIST_DB || -twist > MAX_NORMAL_TWIST_DB {
            return None;
        }
        let samples = (self.last - self.first) * HOP as u64 + WINDOW as u64;
        Some(DtmfDigit {
            digit: self.digit,
            duration_ms: u32::try_from(samples / 8).unwrap_or(u32::MAX),
            source: DtmfSource::Inband,
        })
    }
}

/// The in-band detector for one call's received audio.
#[derive(Debug, Clone)]
pub struct InbandDetector {
    /// Samples not yet consumed by a window (fewer than [`WINDOW`] after each `push`).
    pending: Vec<i16>,
    /// Index of the next window, counting from the first sample pushed.
    next_window: u64,
    run: Option<Run>,
}

impl Default for InbandDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl InbandDetector {
    pub fn new() -> Self {
        Self {
            pending: Vec::with_capacity(WINDOW * 4),
            next_window: 0,
            run: None,
        }
    }

    /// Feeds consecutive 8 kHz samples (any count, e.g. one RTP packet's); returns the presses that
    /// ended within them.
    pub fn push(&mut self, samples: &[i16]) -> Vec<DtmfDigit> {
        self.pending.extend_from_slice(samples);
        let mut found = Vec::new();
        let mut start = 0;
        while self.pending.len() - start >= WINDOW {
            let a = WindowAnalysis::of(&self.pending[start..start + WINDOW]);
            let hit = a.digit().map(|digit| Hit {
                digit,
                low: a.rows[a.row],
                high: a.cols[a.col],
            });
            found.extend(self.step(hit));
            start += HOP;
        }
        self.pending.drain(..start);
        found
    }

    /// Advances the press tracker by one window.
    fn step(&mut self, hit: Option<Hit>) -> Option<DtmfDigit> {
        let w = self.next_window;
        self.next_window += 1;
        let Some(run) = &mut self.run else {
            self.run = hit.map(|h| Run::start(w, h));
            return None;
        };
        match hit {
            Some(h) if h.digit == run.digit => {
                run.last = w;
                run.hits += 1;
                run.misses = 0;
                run.low += h.low;
                run.high += h.high;
                None
            }
            // Not yet long enough to be a press: any interruption discards it.
            _ if run.hits < MIN_ON_WINDOWS => {
                self.run = hit.map(|h| Run::start(w, h));
                None
            }
            // Silence, noise or another key: the press ends only after a gap long enough not to
            // be a drop-out (a key change without a gap is not valid dialling anyway).
            _ => {
                run.misses += 1;
                if run.misses < MIN_OFF_WINDOWS {
                    return None;
                }
                let done = *run;
                self.run = None;
                done.into_digit()
            }
        }
    }
}

#[cfg(test)]
#[path = "goertzel_tests.rs"]
mod tests;
