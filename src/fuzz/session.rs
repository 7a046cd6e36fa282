//! `sip_session`: a conversation with the endpoint core on a virtual clock, with a stand-in for
//! the call tasks that answers, rings, rejects and hangs up, so fuzzed messages reach dialogs,
//! re-INVITEs, INFO, REGISTER with digest, CANCEL, the legs we dial and the timers behind them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::digest::fill_response;
use super::signature::Signature;
use super::sip::{addr, status_of};
use crate::media::dtmf::parse_info;
use crate::sip::auth::parse_digest;
use crate::sip::endpoint::StaffAuth;
use crate::sip::message::{Frame, Incoming, Rejection, frame_stream, parse};
use crate::sip::sdp::{self, AudioEncoding};
use crate::sip::{
    CallEvent, CallRef, Credentials, Endpoint, EndpointConfig, OutboundCall, Output, Transport,
};

/// The password of the staff user `alice` (and of the credentials we dial with).
const PASSWORD: &str = "secret";
const LOCAL: &str = "127.0.0.1:5060";
/// `!src N` picks one: a caller, another host, IPv6, an address outside loopback.
const SOURCES: [&str; 4] = [
    "127.0.0.2:5062",
    "127.0.0.3:5070",
    "[::1]:5080",
    "10.0.0.1:5060",
];
/// After the last input, time runs on this long: past 64*T1, so every transaction ends.
const SETTLE: Duration = Duration::from_secs(70);
/// Timer firings per virtual-time advance at most (bounds a timer that keeps re-arming at once).
const MAX_TIMER_STEPS: usize = 2000;
/// Outputs drained per step at most (bounds an output that keeps producing outputs).
const MAX_OUTPUTS: usize = 10_000;
/// `!wait` at most an hour: registrations expire, and nothing lives longer.
const MAX_WAIT_MS: u64 = 3_600_000;

/// Input: SIP messages and directives, each chunk ended by a line that is just `%%`.
///
/// A message chunk is delivered from the current source over the current transport (over TCP it
/// is appended to the connection's stream and framed like the transport does). Before delivery
/// these placeholders are filled from what the endpoint last sent: `$TAG` (the To tag of its
/// last response), `$FROMTAG`, `$BRANCH`, `$CALLID`, `$CSEQ` (of its last request other than
/// ACK: for answering the legs it dials), `$NONCE` and `$NONCE_MD5` (of its last challenge's
/// SHA-256 and MD5 offers); then `$RESPONSE` in
/// an `Authorization` or `Proxy-Authorization` line becomes the right digest response for user
/// `alice`'s password. So a seed can hold a whole dialog or an authenticated REGISTER, and
/// mutations of it get past the checks that guard the deeper code.
///
/// A directive chunk holds lines starting with `!`: `!wait MS` (run the timers), `!hangup` (every
/// call), `!accept` (answer calls left ringing), `!dial` (ring a staff phone at the current
/// source, with credentials), `!tcp`, `!udp`, `!src N`, `!drain`, `!policy answer|ring|reject|
/// hangup|ignore` (what the stand-in call task does with the next new calls).
///
/// Checked: every request the endpoint sends parses with our own parser.
pub fn sip_session(data: &[u8]) -> u64 {
    let mut h = Harness::new();
    for chunk in chunks(data) {
        if chunk.first() == Some(&b'!') {
            for line in String::from_utf8_lossy(chunk).lines() {
                h.directive(line.trim());
            }
        } else {
            let filled = h.fill(chunk);
            h.deliver(&filled);
        }
    }
    let end = h.now + SETTLE;
    h.advance(end);
    h.sig.finish()
}

/// Splits at lines that are exactly `%%`; the newline before such a line stays with the chunk.
fn chunks(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut line_start = 0;
    for (i, b) in data.iter().enumerate() {
        if *b != b'\n' {
            continue;
        }
        let line = &data[line_start..i];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"%%" {
            out.push(&data[start..line_start]);
            start = i + 1;
        }
        line_start = i + 1;
    }
    if start < data.len() {
        out.push(&data[start..]);
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Policy {
    Answer,
    Ring,
    Reject,
    Hangup,
    Ignore,
}

/// What the endpoint last told us, for the placeholders.
#[derive(Default)]
struct Learned {
    tag: String,
    from_tag: String,
    branch: String,
    call_id: String,
    cseq: String,
    /// The nonces of the last challenge's SHA-256 and MD5 offers.
    nonce: String,
    nonce_md5: String,
}

struct Harness {
    ep: Endpoint,
    now: Instant,
    transport: Transport,
    source: SocketAddr,
    local: SocketAddr,
    /// Bytes of the TCP connection not framed yet.
    stream: Vec<u8>,
    learned: Learned,
    policy: Policy,
    /// Live calls and the codec their media would run.
    calls: HashMap<CallRef, AudioEncoding>,
    /// Calls left ringing (`Policy::Ring` / `Ignore`) with the answer `!accept` gives them.
    unanswered: Vec<(CallRef, String)>,
    sig: Signature,
}

impl Harness {
    fn new() -> Self {
        let now = Instant::now();
        let staff = StaffAuth {
            users: HashMap::from([("alice".to_string(), PASSWORD.to_string())]),
            ..StaffAuth::default()
        };
        let config = EndpointConfig {
            staff,
            wall_clock: Some((now, 1_700_000_000)),
            domains: vec!["ivr.example.com".to_string()],
            ..EndpointConfig::default()
        };
        Harness {
            ep: Endpoint::new(config),
            now,
            transport: Transport::Udp,
            source: addr(SOURCES[0]),
            local: addr(LOCAL),
            stream: Vec::new(),
            learned: Learned::default(),
            policy: Policy::Answer,
            calls: HashMap::new(),
            unanswered: Vec::new(),
            sig: Signature::new("sip_session"),
        }
    }

    fn directive(&mut self, line: &str) {
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or("");
        let arg = words.next().unwrap_or("");
        match name {
            "!wait" => {
                let ms = arg.parse::<u64>().unwrap_or(0).min(MAX_WAIT_MS);
                let to = self.now + Duration::from_millis(ms);
                self.advance(to);
            }
            "!hangup" => {
                let mut calls: Vec<CallRef> = self.calls.keys().copied().collect();
                calls.sort_unstable();
                for c in calls {
                    self.ep.hangup(self.now, c);
                }
                self.drain();
            }
            "!accept" => {
                for (call, answer) in std::mem::take(&mut self.unanswered) {
                    self.ep.accept(self.now, call, answer);
                }
                self.drain();
            }
            "!dial" => {
                let spec = OutboundCall {
                    request_uri: format!("sip:alice@{}", self.source),
                    destination: self.source,
                    transport: self.transport,
                    local: self.local,
                    display_name: "Caller \"quoted\" \\ name".to_string(),
                    from_user: "+15551230001".to_string(),
                    sdp: sdp::offer(AudioEncoding::Pcmu, self.local.ip(), 4000, 1, 1),
                    credentials: Some(Credentials {
                        username: "alice".to_string(),
                        password: PASSWORD.to_string(),
                    }),
                    redirect_hosts: vec!["127.0.0.2".to_string()],
                    extra_headers: vec![("X-Ivr-Call".to_string(), "fuzz".to_string())],
                };
                let call = self.ep.invite(self.now, spec);
                self.calls.insert(call, AudioEncoding::Pcmu);
                self.drain();
            }
            "!tcp" => self.transport = Transport::Tcp(1),
            "!udp" => self.transport = Transport::Udp,
            "!src" => {
                let i = arg.parse::<usize>().unwrap_or(0) % SOURCES.len();
                self.source = addr(SOURCES[i]);
            }
            "!drain" => self.ep.drain(),
            "!policy" => {
                self.policy = match arg {
                    "ring" => Policy::Ring,
                    "reject" => Policy::Reject,
                    "hangup" => Policy::Hangup,
                    "ignore" => Policy::Ignore,
                    _ => Policy::Answer,
                }
            }
            _ => return,
        }
        self.sig.add(("directive", name.to_string()));
    }

    /// Fills the placeholders of a message chunk.
    fn fill(&self, chunk: &[u8]) -> Vec<u8> {
        if !chunk.contains(&b'$') {
            return chunk.to_vec();
        }
        let l = &self.learned;
        let mut out = chunk.to_vec();
        for (name, value) in [
            ("$FROMTAG", &l.from_tag),
            ("$TAG", &l.tag),
            ("$BRANCH", &l.branch),
            ("$CALLID", &l.call_id),
            ("$CSEQ", &l.cseq),
            ("$NONCE_MD5", &l.nonce_md5),
            ("$NONCE", &l.nonce),
        ] {
            out = replace(&out, name.as_bytes(), value.as_bytes());
        }
        if !contains(&out, b"$RESPONSE") {
            return out;
        }
        // Only text reaches here in practice; a non-UTF-8 chunk keeps its placeholder.
        let Ok(text) = std::str::from_utf8(&out) else {
            return out;
        };
        let method = text.trim_start().split(' ').next().unwrap_or("");
        let lines: Vec<String> = text
            .split('\n')
            .map(|line| match line.split_once(':') {
                Some((name, value))
                    if name.trim().eq_ignore_ascii_case("Authorization")
                        || name.trim().eq_ignore_ascii_case("Proxy-Authorization") =>
                {
                    let value = value.trim_end_matches('\r');
                    let cr = if line.ends_with('\r') { "\r" } else { "" };
                    format!("{name}:{}{cr}", fill_response(value, method, PASSWORD))
                }
                _ => line.to_string(),
            })
            .collect();
        lines.join("\n").into_bytes()
    }

    fn deliver(&mut self, msg: &[u8]) {
        match self.transport {
            Transport::Udp => {
                self.ep
                    .handle_message(self.now, msg, self.source, Transport::Udp, self.local);
                self.drain();
            }
            Transport::Tcp(id) => {
                self.stream.extend_from_slice(msg);
                loop {
                    match frame_stream(&self.stream) {
                        Ok(Frame::KeepAlive(n)) => {
                            self.stream.drain(..n);
                        }
                        Ok(Frame::Message(n)) => {
                            let m: Vec<u8> = self.stream.drain(..n).collect();
                            self.ep.handle_message(
                                self.now,
                                &m,
                                self.source,
                                Transport::Tcp(id),
                                self.local,
                            );
                            self.drain();
                        }
                        Ok(Frame::Incomplete) => break,
                        Err(e) => {
                            // The transport closes a connection it cannot frame.
                            self.sig.kind(&e);
                            self.stream.clear();
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Runs the timers up to `to`, each at its own deadline.
    fn advance(&mut self, to: Instant) {
        for _ in 0..MAX_TIMER_STEPS {
            let Some(deadline) = self.ep.poll_timeout() else {
                break;
            };
            if deadline > to {
                break;
            }
            self.now = self.now.max(deadline);
            self.ep.handle_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(to);
    }

    /// Takes everything the endpoint has to say, acting as the call tasks would.
    fn drain(&mut self) {
        for _ in 0..MAX_OUTPUTS {
            let Some(out) = self.ep.poll_output() else {
                return;
            };
            match out {
                Output::Transmit { bytes, .. } => self.learn(&bytes),
                Output::Event(call, event) => self.on_event(call, event),
            }
        }
    }

    fn learn(&mut self, bytes: &[u8]) {
        let status = status_of(bytes);
        self.sig.add(("sent", status));
        match parse(bytes) {
            Ok(Incoming::Response(r)) => {
                if let Some(tag) = r.to_tag {
                    self.learned.tag = tag;
                }
                let challenges = r
                    .raw
                    .header_values("WWW-Authenticate")
                    .chain(r.raw.header_values("Proxy-Authenticate"));
                for p in challenges.filter_map(|c| parse_digest(c).ok()) {
                    let nonce = p.get("nonce").unwrap_or_default().to_string();
                    match p.get("algorithm") {
                        Some(a) if a.eq_ignore_ascii_case("MD5") => self.learned.nonce_md5 = nonce,
                        _ => self.learned.nonce = nonce,
                    }
                }
            }
            Ok(Incoming::Request(req)) => {
                self.sig.add(("request", req.method.to_string()));
                if req.method != rsip::Method::Ack {
                    self.learned.branch = req.via.branch.clone().unwrap_or_default();
                    self.learned.call_id = req.call_id.clone();
                    self.learned.cseq = req.cseq.to_string();
                    self.learned.from_tag = req.from.tag.clone().unwrap_or_default();
                }
            }
            Err(e) => {
                // A response to a request too broken to echo (no Call-ID...) may not parse; a
                // request of ours always must.
                let why = match e {
                    Rejection::Respond { status, reason, .. } => format!("{status} {reason}"),
                    Rejection::Drop(e) => e.to_string(),
                };
                assert!(
                    status != 0,
                    "we sent a request our own parser refuses ({why}):\n{}",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
    }

    fn on_event(&mut self, call: CallRef, event: CallEvent) {
        self.sig.kind(&event);
        match event {
            CallEvent::Incoming(inc) => {
                self.sig
                    .add(("incoming", self.policy, inc.staff_user.is_some()));
                let (answer, encoding) = if inc.offer.is_empty() {
                    (our_offer(), AudioEncoding::Pcmu)
                } else {
                    match sdp::parse(&inc.offer)
                        .map_err(|e| e.to_string())
                        .and_then(|o| {
                            sdp::negotiate(&o)
                                .map(|n| (o, n))
                                .map_err(|e| e.to_string())
                        }) {
                        Ok((offer, neg)) => (
                            sdp::answer(&offer, &neg, self.local.ip(), 4000, 1, 1),
                            neg.encoding,
                        ),
                        Err(why) => {
                            self.ep.reject(self.now, call, 488, Some(&why));
                            return;
                        }
                    }
                };
                self.calls.insert(call, encoding);
                match self.policy {
                    Policy::Answer => {
                        self.ep.ring(self.now, call);
                        self.ep.accept(self.now, call, answer);
                    }
                    Policy::Ring => {
                        self.ep.ring(self.now, call);
                        self.unanswered.push((call, answer));
                    }
                    Policy::Reject => self.ep.reject(self.now, call, 486, None),
                    Policy::Hangup => {
                        self.ep.accept(self.now, call, answer);
                        self.ep.hangup(self.now, call);
                    }
                    Policy::Ignore => self.unanswered.push((call, answer)),
                }
            }
            CallEvent::Confirmed { body } | CallEvent::Answered { body } => self.read_sdp(&body),
            CallEvent::Progress { status, body } => {
                self.sig.add(("progress", status));
                self.read_sdp(&body);
            }
            CallEvent::ReOffer { offer } => {
                let keep = self
                    .calls
                    .get(&call)
                    .copied()
                    .unwrap_or(AudioEncoding::Pcmu);
                let answer = if offer.is_empty() {
                    Ok(our_offer())
                } else {
                    sdp::parse(&offer)
                        .map_err(|e| (488, e.to_string()))
                        .and_then(|o| {
                            sdp::renegotiate(&o, keep)
                                .map(|n| sdp::answer(&o, &n, self.local.ip(), 4000, 1, 2))
                                .map_err(|e| (488, e.to_string()))
                        })
                };
                self.sig.add(("reoffer", answer.is_ok()));
                self.ep.answer_reoffer(self.now, call, answer);
            }
            CallEvent::Info { content_type, body } => {
                let digit = parse_info(content_type.as_deref(), &body).map(|d| d.digit);
                self.sig.add(("info", digit));
            }
            CallEvent::Ended { reason } => {
                self.sig.add(("ended", reason.to_string()));
                self.calls.remove(&call);
                self.unanswered.retain(|(c, _)| *c != call);
            }
        }
    }

    fn read_sdp(&mut self, body: &[u8]) {
        if body.is_empty() {
            return;
        }
        let negotiated = sdp::parse(body).ok().map(|o| sdp::negotiate(&o).is_ok());
        self.sig.add(("sdp", negotiated));
    }
}

fn our_offer() -> String {
    sdp::offer(AudioEncoding::Pcmu, addr(LOCAL).ip(), 4000, 1, 1)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn replace(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}
