//! Test inputs for the DTMF modules: synthesized keypad tones at calibrated levels, G.711 round
//! trips, reproducible white noise, and a minimal pcap reader for shipped RTP captures.

use std::path::Path;

use crate::media::g711::Codec;

use super::goertzel::dbm0_mean_square;

pub const RATE: f64 = 8000.0;

/// The two frequencies of a key (Q.23 keypad).
pub fn key_freqs(key: char) -> (f64, f64) {
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    const KEYS: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    for (r, row) in KEYS.iter().enumerate() {
        if let Some(c) = row.find(key) {
            return (ROWS[r], COLS[c]);
        }
    }
    panic!("no DTMF key {key:?}");
}

/// Peak amplitude of a sine at `level_dbm0` (see `goertzel::dbm0_mean_square`).
pub fn amplitude(level_dbm0: f64) -> f64 {
    (2.0 * dbm0_mean_square(level_dbm0)).sqrt()
}

/// A signal being built up: tones, gaps and noise, as f64 before quantisation.
#[derive(Default)]
pub struct Signal {
    pub samples: Vec<f64>,
}

impl Signal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a key press: the high tone at `level_dbm0`, the low tone `twist_db` below it
    /// (negative twist: low tone louder), each tone with its own phase.
    pub fn key(mut self, key: char, ms: u32, level_dbm0: f64, twist_db: f64) -> Self {
        let (lo, hi) = key_freqs(key);
        let (a_lo, a_hi) = (amplitude(level_dbm0 - twist_db), amplitude(level_dbm0));
        let n = ms as usize * 8;
        let start = self.samples.len();
        for i in 0..n {
            let t = (start + i) as f64 / RATE;
            let v = a_lo * (2.0 * std::f64::consts::PI * lo * t + 0.3).sin()
                + a_hi * (2.0 * std::f64::consts::PI * hi * t + 1.1).sin();
            self.samples.push(v);
        }
        self
    }

    pub fn tone(mut self, hz: f64, ms: u32, level_dbm0: f64) -> Self {
        let a = amplitude(level_dbm0);
        let start = self.samples.len();
        for i in 0..ms as usize * 8 {
            let t = (start + i) as f64 / RATE;
            self.samples
                .push(a * (2.0 * std::f64::consts::PI * hz * t).sin());
        }
        self
    }

    pub fn silence(mut self, ms: u32) -> Self {
        self.samples
            .resize(self.samples.len() + ms as usize * 8, 0.0);
        self
    }

    /// Adds white noise `snr_db` below the mean power of the non-silent samples.
    pub fn with_noise(mut self, snr_db: f64, seed: u64) -> Self {
        let active: Vec<f64> = self.samples.iter().copied().filter(|v| *v != 0.0).collect();
        let power = active.iter().map(|v| v * v).sum::<f64>() / active.len().max(1) as f64;
        let sigma = (power / 10f64.powf(snr_db / 10.0)).sqrt();
        let mut rng = Noise::new(seed);
        for v in &mut self.samples {
            *v += sigma * rng.gaussian();
        }
        self
    }

    /// Quantised to 16 bits, then through the codec and back, as it arrives in a call.
    pub fn through(&self, codec: Codec) -> Vec<i16> {
        let pcm: Vec<i16> = self
            .samples
            .iter()
            .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect();
        g711_round_trip(&pcm, codec)
    }
}

pub fn g711_round_trip(pcm: &[i16], codec: Codec) -> Vec<i16> {
    let mut coded = Vec::new();
    codec.encode(pcm, &mut coded);
    let mut out = Vec::new();
    codec.decode(&coded, &mut out);
    out
}

/// xorshift64* with Box–Muller: reproducible noise without seeding a crate RNG.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn gaussian(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// One UDP payload from a capture, with its capture time in microseconds.
pub struct CapturedUdp {
    pub micros: u64,
    pub payload: Vec<u8>,
}

/// Reads the UDP payloads of a classic pcap file (Ethernet / IPv4 / UDP only, either byte
/// order, micro- or nanosecond timestamps). `None` if the file does not exist.
pub fn read_pcap_udp(path: &Path) -> Option<Vec<CapturedUdp>> {
    let data = std::fs::read(path).ok()?;
    assert!(
        data.len() >= 24,
        "{}: no pcap global header",
        path.display()
    );
    let magic = [data[0], data[1], data[2], data[3]];
    let (big_endian, nanos) = match magic {
        [0xD4, 0xC3, 0xB2, 0xA1] => (false, false),
        [0xA1, 0xB2, 0xC3, 0xD4] => (true, false),
        [0x4D, 0x3C, 0xB2, 0xA1] => (false, true),
        [0xA1, 0xB2, 0x3C, 0x4D] => (true, true),
        _ => panic!("{}: not a pcap file (magic {magic:02x?})", path.display()),
    };
    let u32_at = |b: &[u8], at: usize| {
        let bytes = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }
    };
    let link_type = u32_at(&data, 20);
    assert_eq!(
        link_type,
        1,
        "{}: only Ethernet captures are read",
        path.display()
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let secs = u64::from(u32_at(&data, at));
        let frac = u64::from(u32_at(&data, at + 4));
        let caplen = u32_at(&data, at + 8) as usize;
        let frame = &data[at + 16..(at + 16 + caplen).min(data.len())];
        at += 16 + caplen;
        let micros = secs * 1_000_000 + if nanos { frac / 1000 } else { frac };
        // Ethernet II with IPv4, then the IHL-sized IP header and the 8-byte UDP header.
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0F) * 4;
        if ip[0] >> 4 != 4 || ip[9] != 17 || ip.len() < ihl + 8 {
            continue;
        }
        let udp = &ip[ihl..];
        let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        let end = udp_len.clamp(8, udp.len());
        out.push(CapturedUdp {
            micros,
            payload: udp[8..end].to_vec(),
        });
    }
    Some(out)
}

/// A shipped interop input is missing: skip the test, unless CI demands the interop inputs.
pub fn skip_or_fail(what: &str) {
    if std::env::var("IVR_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("{what} is missing and IVR_REQUIRE_INTEROP=1");
    }
    eprintln!("SKIP: {what} is missing (install sip-tester)");
}
