//! A real softphone, baresip, as a "staff phone" for integration tests: it registers with digest
//! auth at a registrar on 127.0.0.1 (our `ivr serve`), answers every incoming call at once,
//! sends a WAV file as its microphone and records what it hears.
//!
//! Written against the Debian package baresip 1.0.0 (libre 1.1.0). What that version does, found
//! by trying it (see also `tests/staff/baresip_harness.rs`):
//!
//! * Digest auth: MD5 only. A 401 with any `WWW-Authenticate` of another algorithm (SHA-256,
//!   whichever comes first) makes it give up at once ("Register: Function not implemented"), so
//!   the registrar must run with `staff.algorithms = ["MD5"]`.
//! * There is no file *player* in this version (`aufile` is a source only), so the harness
//!   records with the `sndfile` audio filter instead: for every call it writes
//!   `dump-<YYYY-MM-DD-hh-mm-ss>-dec.wav` (what it heard, after decoding) and `...-enc.wav` (what
//!   it sent) into its recordings directory, 8 kHz mono 16-bit for G.711. The files grow while
//!   the call runs, but their RIFF/data sizes stay 0 until the call ends (the header is fixed up
//!   on close), so [`read_wav_lenient`] reads everything after the `data` chunk header. The name
//!   has one-second resolution, so two calls starting in the same second would collide.
//!   The player is `aubridge` with a device nobody reads, i.e. a null sink: no sound card.
//! * `aufile` loads the whole source WAV up front; it must be 8 kHz mono S16LE for G.711
//!   (it refuses other rates). When the file has been sent, baresip **hangs up the call**. The
//!   harness therefore repeats the source to at least [`BaresipOptions::source_min_duration`];
//!   set it to zero for a phone that hangs up once it has "said" the file.
//! * SIGINT/SIGTERM: the first signal hangs up calls (BYE; the recordings are closed with
//!   correct headers) and unregisters, then exits once the REGISTER is answered (or times out,
//!   32 s if the registrar is gone). A second signal makes it exit within about 1.5 s. Drop
//!   sends one, waits up to 2 s, sends the second, waits up to 3 s, then kills.
//! * `sip_listen 127.0.0.1:P` binds UDP and TCP on P and also TCP on P+1 (seen with strace;
//!   presumably its TLS listener), so the harness picks P with P+1 free too (and retries with
//!   another P if baresip fails to start).
//! * `net_interface lo` fails ("No such device") but `net_interface 127.0.0.1` works and keeps
//!   the SDP `c=` on loopback. DNS queries (none are made: every URI is an IP literal) would go
//!   to `dns_server 127.0.0.1:53`. No UI module is loaded: `stdio` needs a terminal on fd 0.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::unique_temp_dir;

/// How long baresip may take to print "baresip is ready.".
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where baresip's modules may live: `$BARESIP_MODULE_PATH`, else the Debian package's
/// directory, else a source build's.
fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BARESIP_MODULE_PATH") {
        return PathBuf::from(p);
    }
    let candidates = [
        "/usr/lib/baresip/modules",
        "/usr/lib/x86_64-linux-gnu/baresip/modules",
        "/usr/local/lib/baresip/modules",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("aufile.so").is_file())
        .unwrap_or_else(|| PathBuf::from(candidates[0]))
}

/// What the staff phone is and does.
#[derive(Debug, Clone)]
pub struct BaresipOptions {
    /// The registrar (UDP), e.g. `ivr.sip_addr()`.
    pub registrar: SocketAddr,
    /// SIP user and digest auth user.
    pub user: String,
    pub password: String,
    /// What the phone's "microphone" says: an 8 kHz mono 16-bit WAV file.
    pub source_wav: PathBuf,
    /// The source is repeated until it lasts at least this long, because baresip hangs up when
    /// it reaches the end of the file. Zero: send it once, then hang up.
    pub source_min_duration: Duration,
    /// Audio codecs offered/accepted, in order, by baresip name: "PCMU", "PCMA".
    pub codecs: Vec<&'static str>,
    /// REGISTER expiry asked for, in seconds (ivr's default `staff.min_expires` is 60).
    pub regint: u32,
    /// SIP transport towards the registrar: "udp" or "tcp" (calls then come on that connection).
    pub transport: &'static str,
}

impl BaresipOptions {
    /// alice-style defaults: PCMU, 60 s registrations, the source repeated to 10 minutes.
    pub fn new(registrar: SocketAddr, user: &str, password: &str, source_wav: &Path) -> Self {
        BaresipOptions {
            registrar,
            user: user.to_string(),
            password: password.to_string(),
            source_wav: source_wav.to_path_buf(),
            source_min_duration: Duration::from_secs(600),
            codecs: vec!["PCMU"],
            regint: 60,
            transport: "udp",
        }
    }
}

/// A running baresip; stopped on drop. Its files (config, log, recordings) live in one temp
/// directory, kept when the test panics.
pub struct Baresip {
    child: Child,
    dir: PathBuf,
    log_path: PathBuf,
    recordings: PathBuf,
    sip_port: u16,
    user: String,
}

impl Baresip {
    /// Writes a config directory and starts `baresip -f <dir> -s` (SIP trace on, into the log),
    /// then waits until it is ready (registration runs in the background: see
    /// [`Baresip::wait_registered`]).
    pub fn start(opts: BaresipOptions) -> Baresip {
        let dir = unique_temp_dir("baresip");
        let recordings = dir.join("recordings");
        std::fs::create_dir_all(&recordings).expect("recordings dir");
        let source = dir.join("source.wav");
        write_source(&opts.source_wav, &source, opts.source_min_duration);
        let log_path = dir.join("baresip.log");
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let sip_port = free_sip_port();
            std::fs::write(
                dir.join("config"),
                config_text(sip_port, &source, &recordings),
            )
            .expect("writing baresip config");
            std::fs::write(dir.join("accounts"), account_line(&opts)).expect("accounts");
            // An existing (empty) contacts file stops baresip writing its template.
            std::fs::write(dir.join("contacts"), "").expect("contacts");
            let log = std::fs::File::create(&log_path).expect("baresip log");
            let child = Command::new("baresip")
                .arg("-f")
                .arg(&dir)
                .arg("-s")
                .env("HOME", &dir)
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("clone log")))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap_or_else(|e| panic!("spawning baresip: {e}"));
            let mut bs = Baresip {
                child,
                dir: dir.clone(),
                log_path: log_path.clone(),
                recordings: recordings.clone(),
                sip_port,
                user: opts.user.clone(),
            };
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                let log = bs.log();
                if log.contains("baresip is ready.") {
                    return bs;
                }
                if let Ok(Some(_)) = bs.child.try_wait() {
                    // Most likely a port taken between our check and its bind: try another.
                    last_log = log;
                    break;
                }
                if Instant::now() >= deadline {
                    panic!("baresip not ready within {READY_TIMEOUT:?}; log:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // `bs` has exited; dropping it must not delete the directory we reuse.
            std::mem::forget(bs);
        }
        panic!("baresip failed to start 5 times; last log:\n{last_log}");
    }

    /// Waits for the registrar's 200 ("alice@127.0.0.1: {0/UDP/v4} 200 OK (...) [1 binding]").
    /// False on timeout or on a failed registration (the reason is in [`Baresip::log`]).
    pub fn wait_registered(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let ok = format!("{}@", self.user);
        loop {
            let log = self.log();
            if log
                .lines()
                .any(|l| l.starts_with(&ok) && l.contains("} 200 OK"))
            {
                return true;
            }
            if self.registration_error().is_some() || Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// baresip's complaint when a registration failed, e.g.
    /// "reg: sip:alice@127.0.0.1:5060: 401 Unauthorized (ivr/0.1.0)" (wrong password) or
    /// "reg: sip:alice@127.0.0.1:5060: Register: Function not implemented" (a challenge
    /// that is not MD5: see the module notes).
    pub fn registration_error(&self) -> Option<String> {
        self.log()
            .lines()
            .find(|l| l.contains("reg: sip:"))
            .map(strip_ansi)
    }

    /// Waits until the log contains `needle` (e.g. "Call established", "terminated").
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything baresip printed so far (stdout and stderr, SIP trace included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// baresip's SIP port on 127.0.0.1 (UDP and TCP).
    pub fn sip_port(&self) -> u16 {
        self.sip_port
    }

    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    /// The temp directory holding config, log and recordings.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Recordings of what the phone heard, one per call, oldest first.
    pub fn heard_wavs(&self) -> Vec<PathBuf> {
        self.dumps("-dec.wav")
    }

    /// Recordings of what the phone sent (its source after the audio pipeline), oldest first.
    pub fn sent_wavs(&self) -> Vec<PathBuf> {
        self.dumps("-enc.wav")
    }

    /// The samples the phone heard in its latest call (so far, if the call is still up).
    pub fn heard(&self) -> Vec<i16> {
        self.heard_wavs()
            .last()
            .map(|p| read_wav_lenient(p))
            .unwrap_or_default()
    }

    /// The samples the phone sent in its latest call.
    pub fn sent(&self) -> Vec<i16> {
        self.sent_wavs()
            .last()
            .map(|p| read_wav_lenient(p))
            .unwrap_or_default()
    }

    /// RTP packet counts `(transmitted, received)` of the last ended call, from the
    /// `rtp_stats` summary baresip prints at hang-up.
    pub fn last_call_rtp_packets(&self) -> Option<(u64, u64)> {
        let log = self.log();
        let line = log.lines().rev().find(|l| l.starts_with("packets:"))?;
        let mut nums = line
            .split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok());
        Some((nums.next()?, nums.next()?))
    }

    fn dumps(&self, suffix: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.recordings)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("dump-") && n.ends_with(suffix))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Stops baresip like Ctrl-C: calls are hung up (recordings closed), the registration
    /// removed. A second signal after `grace` (and a kill 3 s later) forces it.
    pub fn stop(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        for wait in [grace, Duration::from_secs(3)] {
            signal(&self.child, "-INT");
            let deadline = Instant::now() + wait;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
        if std::thread::panicking() {
            eprintln!("baresip test files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Sends a signal (`-INT`, `-TERM`) to the child by its pid.
fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(sig)
        .arg(child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A port P on 127.0.0.1 free for UDP and TCP, with P+1 free for TCP (baresip's TLS listener).
fn free_sip_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let port = udp.local_addr().expect("local addr").port();
        if port == u16::MAX {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return port;
        }
    }
    panic!("no SIP port free for baresip on 127.0.0.1");
}

/// The `config` file: loopback only, G.711, file source, null player, sndfile recorder.
fn config_text(sip_port: u16, source: &Path, recordings: &Path) -> String {
    format!(
        "# Written by tests/common/baresip.rs\n\
         poll_method\t\tepoll\n\
         sip_listen\t\t127.0.0.1:{sip_port}\n\
         call_local_timeout\t120\n\
         call_max_calls\t\t4\n\
         audio_source\t\taufile,{source}\n\
         audio_player\t\taubridge,null\n\
         audio_alert\t\taubridge,null\n\
         audio_level\t\tno\n\
         ausrc_format\t\ts16\n\
         auplay_format\t\ts16\n\
         auenc_format\t\ts16\n\
         audec_format\t\ts16\n\
         audio_buffer\t\t20-160\n\
         jitter_buffer_delay\t5-10\n\
         rtcp_mux\t\tno\n\
         rtp_stats\t\tyes\n\
         net_interface\t\t127.0.0.1\n\
         dns_server\t\t127.0.0.1:53\n\
         module_path\t\t{modules}\n\
         module\t\t\tg711.so\n\
         module\t\t\taufile.so\n\
         module\t\t\taubridge.so\n\
         module\t\t\tsndfile.so\n\
         snd_path\t\t{recordings}\n\
         module_tmp\t\taccount.so\n",
        source = source.display(),
        recordings = recordings.display(),
        modules = module_path().display(),
    )
}

/// The `accounts` line: register (UDP or TCP) to the registrar, answer at once, given codecs.
fn account_line(opts: &BaresipOptions) -> String {
    format!(
        "<sip:{user}@{registrar};transport={transport}>;auth_user={user};auth_pass={pass};\
         answermode=auto;regint={regint};audio_codecs={codecs};mwi=no;call_transfer=no\n",
        user = opts.user,
        registrar = opts.registrar,
        transport = opts.transport,
        pass = opts.password,
        regint = opts.regint,
        codecs = opts.codecs.join(","),
    )
}

/// Copies `from` to `to` (8 kHz mono 16-bit), repeated until it lasts at least `min`.
fn write_source(from: &Path, to: &Path, min: Duration) {
    let mut reader =
        hound::WavReader::open(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    let spec = reader.spec();
    assert!(
        spec.sample_rate == 8000
            && spec.channels == 1
            && spec.bits_per_sample == 16
            && spec.sample_format == hound::SampleFormat::Int,
        "{}: baresip's aufile needs 8 kHz mono 16-bit PCM for G.711, got {spec:?}",
        from.display()
    );
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    assert!(!samples.is_empty(), "{} has no samples", from.display());
    let want = (min.as_millis() as usize * 8).max(samples.len());
    let mut w = hound::WavWriter::create(to, spec).expect("writing source copy");
    for s in samples
        .iter()
        .cycle()
        .take(want.div_ceil(samples.len()) * samples.len())
    {
        w.write_sample(*s).expect("writing source sample");
    }
    w.finalize().expect("finalizing source copy");
}

/// The 16-bit samples of a PCM WAV file, also while it is still being written (a `data` chunk
/// size of 0 or past the end means "up to the end of the file"). Empty if unreadable.
pub fn read_wav_lenient(path: &Path) -> Vec<i16> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Vec::new();
    }
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let start = pos + 8;
        if id == b"data" {
            let end = if size == 0 || start + size > bytes.len() {
                bytes.len()
            } else {
                start + size
            };
            return bytes[start..end]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
        }
        pos = start + size + (size & 1);
    }
    Vec::new()
}

// ---- test signals ----

/// Writes `secs` seconds of a sine tone at `freq` Hz, 8 kHz mono 16-bit.
pub fn write_tone_wav(path: &Path, freq: f64, secs: f64, amplitude: i16) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    for s in tone(freq, secs, amplitude) {
        w.write_sample(s).expect("writing tone");
    }
    w.finalize().expect("finalizing tone");
}

/// `secs` seconds of a sine tone at 8 kHz.
pub fn tone(freq: f64, secs: f64, amplitude: i16) -> Vec<i16> {
    let n = (secs * 8000.0) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            (f64::from(amplitude) * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

/// The fraction (0..=1) of the signal's energy at `freq` Hz (8 kHz samples).
pub fn tone_fraction(samples: &[i16], freq: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let (mut re, mut im, mut total) = (0.0f64, 0.0f64, 0.0f64);
    for (i, s) in samples.iter().enumerate() {
        let x = f64::from(*s);
        let w = 2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0;
        re += x * w.cos();
        im += x * w.sin();
        total += x * x;
    }
    if total == 0.0 {
        return 0.0;
    }
    (2.0 * (re * re + im * im) / samples.len() as f64 / total).min(1.0)
}

/// Like [`tone_fraction`], but measured over 50 ms windows and weighted by their energy: a
/// stream that carries the tone throughout scores high even when a packet was dropped or
/// repeated somewhere (a jitter buffer under load), which breaks the phase of one long DFT bin
/// and halves [`tone_fraction`] over seconds. Silence or another sound still scores low.
pub fn tone_fraction_windowed(samples: &[i16], freq: f64) -> f64 {
    const WINDOW: usize = 400;
    let (mut tone, mut total) = (0.0f64, 0.0f64);
    for w in samples.chunks_exact(WINDOW) {
        let energy: f64 = w.iter().map(|s| f64::from(*s) * f64::from(*s)).sum();
        tone += tone_fraction(w, freq) * energy;
        total += energy;
    }
    if total == 0.0 { 0.0 } else { tone / total }
}

/// Samples whose magnitude exceeds `threshold`.
pub fn count_loud(samples: &[i16], threshold: i16) -> usize {
    samples
        .iter()
        .filter(|s| s.unsigned_abs() > threshold.unsigned_abs())
        .count()
}

/// G.711 codecs for [`write_rtp_pcap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711 {
    Pcmu,
    Pcma,
}

impl G711 {
    pub fn payload_type(self) -> u8 {
        match self {
            G711::Pcmu => 0,
            G711::Pcma => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            G711::Pcmu => "PCMU",
            G711::Pcma => "PCMA",
        }
    }

    pub fn encode(self, s: i16) -> u8 {
        match self {
            G711::Pcmu => linear_to_ulaw(s),
            G711::Pcma => linear_to_alaw(s),
        }
    }
}

fn segment(v: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|e| v <= *e).unwrap_or(8)
}

/// ITU-T G.711 mu-law (the classic Sun reference algorithm).
fn linear_to_ulaw(sample: i16) -> u8 {
    const ENDS: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
    let mut v = i32::from(sample) >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    v = v.min(8159) + 0x21;
    let seg = segment(v, &ENDS);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let u = ((seg as i32) << 4) | ((v >> (seg + 1)) & 0xF);
    (u ^ mask) as u8
}

/// ITU-T G.711 A-law (the classic Sun reference algorithm).
fn linear_to_alaw(sample: i16) -> u8 {
    const ENDS: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut v = i32::from(sample) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &ENDS);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut a = (seg as i32) << 4;
    a |= if seg < 2 {
        (v >> 1) & 0xF
    } else {
        (v >> seg) & 0xF
    };
    (a ^ mask) as u8
}

/// Writes `samples` (8 kHz) as a pcap of 20 ms G.711 RTP packets over Ethernet/IPv4/UDP, for
/// sipp's `play_pcap_audio` (which re-addresses the packets and keeps their timing).
pub fn write_rtp_pcap(path: &Path, samples: &[i16], codec: G711) {
    let mut out = Vec::new();
    // Global header: magic, v2.4, GMT, accuracy, snaplen, LINKTYPE_ETHERNET.
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let ssrc = 0x1234_5678u32;
    for (i, frame) in samples.chunks(160).enumerate() {
        let mut rtp = Vec::with_capacity(12 + frame.len());
        rtp.push(0x80);
        rtp.push(codec.payload_type() | if i == 0 { 0x80 } else { 0 });
        rtp.extend_from_slice(&(i as u16).to_be_bytes());
        rtp.extend_from_slice(&((i * 160) as u32).to_be_bytes());
        rtp.extend_from_slice(&ssrc.to_be_bytes());
        rtp.extend(frame.iter().map(|s| codec.encode(*s)));
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut ip = vec![
            0x45,
            0,
            (ip_len >> 8) as u8,
            ip_len as u8,
            0,
            0,
            0x40,
            0,
            64,
            17,
            0,
            0,
            127,
            0,
            0,
            1,
            127,
            0,
            0,
            1,
        ];
        let sum: u32 = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let folded = (sum & 0xFFFF) + (sum >> 16);
        let csum = !((folded & 0xFFFF) + (folded >> 16)) as u16;
        ip[10..12].copy_from_slice(&csum.to_be_bytes());
        let mut frame_bytes = Vec::with_capacity(14 + ip_len);
        frame_bytes.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00]);
        frame_bytes.extend_from_slice(&ip);
        frame_bytes.extend_from_slice(&20_000u16.to_be_bytes());
        frame_bytes.extend_from_slice(&20_002u16.to_be_bytes());
        frame_bytes.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame_bytes.extend_from_slice(&0u16.to_be_bytes());
        frame_bytes.extend_from_slice(&rtp);
        let micros = i as u64 * 20_000;
        out.extend_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(frame_bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame_bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame_bytes);
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

// ---- sipp against the phone ----
