//! SDP (RFC 4566) parsing and RFC 3264 offer/answer for an audio-only G.711 UAS.
//!
//! We answer offers; we never make them. [`parse`] reads the offer, [`negotiate`] picks the audio
//! stream, codec (PCMU or PCMA), telephone-event payload type and remote RTP address, and
//! [`answer`] writes the answer body. A failed negotiation yields a [`NegotiationError`] whose
//! `Display` goes into the `Warning` header of the 488.
//!
//! The parser is hand-written and lenient on purpose: real-world offers carry vendor attributes,
//! bare `\n` line endings, trailing blanks and the odd malformed attribute, and a phone call should
//! not fail because of a line we do not need. It is strict only where we must be (`v=`, `m=`,
//! `c=`), and then says which line and why, so a 488 or a log line is actionable. The SDP crates
//! we could use are strict and WebRTC-oriented (ICE, DTLS, bundles) and report errors we could not
//! turn into such reasons.

use std::fmt;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// A parsed session description: the parts an audio UAS needs, nothing more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionDescription {
    /// The raw `o=` value (`username sess-id sess-version nettype addrtype address`).
    pub origin: Option<String>,
    /// The session-level `c=` address.
    pub connection: Option<IpAddr>,
    pub media: Vec<MediaDescription>,
    /// The session-level direction attribute, the default for every media line.
    pub direction: Option<Direction>,
}

/// One `m=` line and its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `application`...
    pub kind: String,
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`...
    pub proto: String,
    /// The format list, in the offerer's order of preference (payload types for RTP).
    pub formats: Vec<String>,
    /// The media-level `c=` address, which overrides the session-level one.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap:` entries: payload type, encoding name, clock rate, channels.
    pub rtpmap: Vec<(u8, String, u32, Option<u8>)>,
    /// `a=fmtp:` entries: payload type, parameters.
    pub fmtp: Vec<(u8, String)>,
    pub direction: Option<Direction>,
    pub ptime: Option<u32>,
}

impl MediaDescription {
    fn new(kind: String, port: u16, proto: String, formats: Vec<String>) -> Self {
        Self {
            kind,
            port,
            proto,
            formats,
            connection: None,
            rtpmap: Vec::new(),
            fmtp: Vec::new(),
            direction: None,
            ptime: None,
        }
    }

    /// The encoding of payload type `pt`: its `a=rtpmap`, or for a static type without one the
    /// RFC 3551 table.
    fn encoding(&self, pt: u8) -> Option<(String, u32, Option<u8>)> {
        if let Some((_, name, clock, channels)) = self.rtpmap.iter().find(|r| r.0 == pt) {
            return Some((name.clone(), *clock, *channels));
        }
        static_payload(pt).map(|(name, clock)| (name.to_owned(), clock, None))
    }
}

/// RFC 3551 static audio payload types (the ones an offer may list without an `a=rtpmap`).
fn static_payload(pt: u8) -> Option<(&'static str, u32)> {
    Some(match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        5 => ("DVI4", 8000),
        6 => ("DVI4", 16000),
        7 => ("LPC", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        10 | 11 => ("L16", 44100),
        12 => ("QCELP", 8000),
        13 => ("CN", 8000),
        14 => ("MPA", 90000),
        15 => ("G728", 8000),
        16 => ("DVI4", 11025),
        17 => ("DVI4", 22050),
        18 => ("G729", 8000),
        _ => return None,
    })
}

/// A media direction attribute (RFC 3264 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction an answer takes for this offered direction (RFC 3264 §6.1): the mirror.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// The attribute name, as written after `a=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attr(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Whether we should send RTP to the peer.
    pub fn we_send(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a body is not an SDP we can read. Line numbers are 1-based.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("SDP body is not valid UTF-8")]
    NotUtf8,
    #[error("SDP body does not start with v=0")]
    MissingVersion,
    #[error("SDP version `v={0}` is not supported (only v=0)")]
    UnsupportedVersion(String),
    #[error("SDP line {line}: bad m= line `{text}`: {reason}")]
    BadMedia {
        line: usize,
        text: String,
        reason: &'static str,
    },
    #[error("SDP line {line}: bad c= line `{text}`: {reason}")]
    BadConnection {
        line: usize,
        text: String,
        reason: &'static str,
    },
}

/// Parse an SDP body. Accepts `\r\n` or `\n` line endings and ignores lines and attributes it
/// does not need (including malformed `a=` lines: they cannot make the call fail).
pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
    let mut lines = text
        .split('\n')
        .map(|l| l.trim_end_matches(['\r', ' ', '\t']))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.is_empty());

    match lines.next() {
        // A BOM before v= is a real-world editor accident; harmless.
        Some((_, first)) => match first.trim_start_matches('\u{feff}').strip_prefix("v=") {
            Some("0") => {}
            Some(other) => return Err(SdpError::UnsupportedVersion(other.to_owned())),
            None => return Err(SdpError::MissingVersion),
        },
        None => return Err(SdpError::MissingVersion),
    }

    let mut sdp = SessionDescription::default();
    for (n, line) in lines {
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        match kind {
            "o" if sdp.media.is_empty() => sdp.origin = Some(value.to_owned()),
            "m" => sdp.media.push(parse_media(n, line, value)?),
            "c" => {
                let addr = parse_connection(n, line, value)?;
                match sdp.media.last_mut() {
                    Some(m) => m.connection = Some(addr),
                    None => sdp.connection = Some(addr),
                }
            }
            "a" => match sdp.media.last_mut() {
                Some(m) => parse_media_attribute(m, value),
                None => {
                    if let Some(d) = Direction::from_attr(value) {
                        sdp.direction = Some(d);
                    }
                }
            },
            _ => {}
        }
    }
    Ok(sdp)
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`
fn parse_media(n: usize, line: &str, value: &str) -> Result<MediaDescription, SdpError> {
    let bad = |reason| SdpError::BadMedia {
        line: n,
        text: line.to_owned(),
        reason,
    };
    let mut fields = value.split_ascii_whitespace();
    let kind = fields.next().ok_or_else(|| bad("no media type"))?;
    let port = fields.next().ok_or_else(|| bad("no port"))?;
    // A port count (`49170/2`) asks for consecutive ports; we only ever use the first.
    let port = port.split('/').next().unwrap_or(port);
    let port: u16 = port
        .parse()
        .map_err(|_| bad("port is not a number 0-65535"))?;
    let proto = fields.next().ok_or_else(|| bad("no transport protocol"))?;
    // No formats is invalid per RFC 4566 but harmless to us: such a line can only be rejected.
    let formats = fields.map(str::to_owned).collect();
    Ok(MediaDescription::new(
        kind.to_owned(),
        port,
        proto.to_owned(),
        formats,
    ))
}

/// `c=IN IP4 <addr>[/<ttl>[/<count>]]` or `c=IN IP6 <addr>`. We cannot resolve names (sans-IO,
/// and no UA we know of sends one), so an FQDN is an error that says so.
fn parse_connection(n: usize, line: &str, value: &str) -> Result<IpAddr, SdpError> {
    let bad = |reason| SdpError::BadConnection {
        line: n,
        text: line.to_owned(),
        reason,
    };
    let mut fields = value.split_ascii_whitespace();
    if fields.next() != Some("IN") {
        return Err(bad("network type is not IN"));
    }
    let addrtype = fields.next().ok_or_else(|| bad("no address type"))?;
    let addr = fields.next().ok_or_else(|| bad("no address"))?;
    let addr = addr.split('/').next().unwrap_or(addr);
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| bad("address is not an IP literal (host names are not supported)"))?;
    match (addrtype, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        ("IP4" | "IP6", _) => Err(bad("address does not match its address type")),
        _ => Err(bad("address type is not IP4 or IP6")),
    }
}

/// The media-level attributes we use; anything else, or anything malformed, is skipped.
fn parse_media_attribute(m: &mut MediaDescription, value: &str) {
    let (name, arg) = match value.split_once(':') {
        Some((name, arg)) => (name, Some(arg.trim())),
        None => (value, None),
    };
    match (name, arg) {
        ("rtpmap", Some(arg)) => {
            if let Some(entry) = parse_rtpmap(arg) {
                m.rtpmap.push(entry);
            }
        }
        ("fmtp", Some(arg)) => {
            if let Some((pt, params)) = arg.split_once(' ')
                && let Ok(pt) = pt.parse()
            {
                m.fmtp.push((pt, params.trim().to_owned()));
            }
        }
        ("ptime", Some(arg)) => {
            // Some UAs write `20.0`; the fraction is never meaningful for G.711 framing.
            let whole = arg.split('.').next().unwrap_or(arg);
            if let Ok(ms) = whole.parse() {
                m.ptime = Some(ms);
            }
        }
        (name, None) => {
            if let Some(d) = Direction::from_attr(name) {
                m.direction = Some(d);
            }
        }
        _ => {}
    }
}

/// `<pt> <encoding>/<clock>[/<channels>]`
fn parse_rtpmap(arg: &str) -> Option<(u8, String, u32, Option<u8>)> {
    let (pt, rest) = arg.split_once(' ')?;
    let pt = pt.parse().ok()?;
    let mut parts = rest.trim().split('/');
    let name = parts.next()?.to_owned();
    let clock = parts.next()?.parse().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse().ok()?),
        None => None,
    };
    Some((pt, name, clock, channels))
}

/// The G.711 variants we speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioEncoding {
    /// μ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

impl AudioEncoding {
    /// The encoding name used in `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            AudioEncoding::Pcmu => "PCMU",
            AudioEncoding::Pcma => "PCMA",
        }
    }

    /// The RFC 3551 static payload type.
    pub fn static_payload_type(self) -> u8 {
        match self {
            AudioEncoding::Pcmu => 0,
            AudioEncoding::Pcma => 8,
        }
    }
}

/// The outcome of a successful negotiation: everything the media session needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of the accepted line in the offer's `media`.
    pub media_index: usize,
    pub encoding: AudioEncoding,
    /// The payload type the offer uses for `encoding` (normally its static type).
    pub payload_type: u8,
    /// The offerer's payload type for telephone-event/8000 (RFC 4733), if offered.
    pub telephone_event: Option<u8>,
    /// Where to send RTP. An unspecified address (`0.0.0.0`, `::`) means "do not send".
    pub remote_rtp: SocketAddr,
    /// The offer's direction, with old-style hold (`c=0.0.0.0`, RFC 2543) applied: the offerer
    /// wants nothing sent to it, so sendrecv counts as sendonly and recvonly as inactive.
    pub direction: Direction,
    /// The offer's `a=ptime`, if any.
    pub ptime: Option<u32>,
}

/// Why we cannot answer an offer: the `Display` text goes into the 488's `Warning` header, so it
/// says what the offer lacks and what we would accept (no double quotes: it is quoted there).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum NegotiationError {
    #[error("offer has no audio stream")]
    NoAudio,
    #[error("audio stream uses {proto}; we support RTP/AVP only (no SRTP)")]
    UnsupportedTransport { proto: String },
    #[error("audio stream has no connection address (c=)")]
    NoConnectionAddress,
    #[error(
        "re-offer drops {current}, the codec of this call; a codec change mid-call is not supported"
    )]
    CodecChange { current: &'static str },
    #[error(
        "no common codec: offered {}; we support PCMU/8000, PCMA/8000",
        list(offered)
    )]
    NoCommonCodec {
        /// The offered formats, as `NAME/clock (pt)` where known.
        offered: Vec<String>,
    },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items.join(", ")
    }
}

/// Pick the audio stream and codec to answer with (RFC 3264 §6.1).
///
/// The first audio line with a non-zero port and an `RTP/AVP` transport is considered, then the
/// next such line if it has no codec we support; within a line the first PCMU or PCMA format in
/// the offer's order wins (the offerer's preference). Media-level `c=` overrides session-level.
pub fn negotiate(offer: &SessionDescription) -> Result<Negotiated, NegotiationError> {
    let mut first_error = None;
    let active_audio = offer
        .media
        .iter()
        .enumerate()
        .filter(|(_, m)| m.kind.eq_ignore_ascii_case("audio") && m.port != 0);
    for (index, m) in active_audio {
        match negotiate_line(offer, index, m) {
            Ok(neg) => return Ok(neg),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(NegotiationError::NoAudio))
}

/// Negotiates a re-offer inside a running session: the session's codec `keep` stays if the
/// offer still lists it (whatever its place), since the media session cannot switch codecs;
/// an offer without it is refused (the 488 leaves the session as it was, RFC 3261 §14.2).
pub fn renegotiate(
    offer: &SessionDescription,
    keep: AudioEncoding,
) -> Result<Negotiated, NegotiationError> {
    let neg = negotiate(offer)?;
    if neg.encoding == keep {
        return Ok(neg);
    }
    let m = &offer.media[neg.media_index];
    let pt = m
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .find(|&pt| {
            m.encoding(pt).is_some_and(|(name, clock, channels)| {
                name.eq_ignore_ascii_case(keep.name())
                    && clock == 8000
                    && channels.unwrap_or(1) == 1
            })
        })
        .ok_or(NegotiationError::CodecChange {
            current: keep.name(),
        })?;
    Ok(Negotiated {
        encoding: keep,
        payload_type: pt,
        ..neg
    })
}

fn negotiate_line(
    offer: &SessionDescription,
    index: usize,
    m: &MediaDescription,
) -> Result<Negotiated, NegotiationError> {
    if !m.proto.eq_ignore_ascii_case("RTP/AVP") {
        return Err(NegotiationError::UnsupportedTransport {
            proto: m.proto.clone(),
        });
    }
    let payloads: Vec<u8> = m.formats.iter().filter_map(|f| f.parse().ok()).collect();
    let is_8k = |clock: u32, channels: Option<u8>| clock == 8000 && channels.unwrap_or(1) == 1;

    let codec = payloads.iter().find_map(|&pt| {
        let (name, clock, channels) = m.encoding(pt)?;
        if !is_8k(clock, channels) {
            return None;
        }
        if name.eq_ignore_ascii_case("PCMU") {
            Some((AudioEncoding::Pcmu, pt))
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some((AudioEncoding::Pcma, pt))
        } else {
            None
        }
    });
    let Some((encoding, payload_type)) = codec else {
        let offered = m
            .formats
            .iter()
            .map(|f| match f.parse().ok().and_then(|pt| m.encoding(pt)) {
                Some((name, clock, Some(ch))) => format!("{name}/{clock}/{ch} ({f})"),
                Some((name, clock, None)) => format!("{name}/{clock} ({f})"),
                None => format!("unknown ({f})"),
            })
            .collect();
        return Err(NegotiationError::NoCommonCodec { offered });
    };

    let telephone_event = payloads.iter().copied().find(|&pt| {
        m.encoding(pt).is_some_and(|(name, clock, _)| {
            name.eq_ignore_ascii_case("telephone-event") && clock == 8000
        })
    });

    let ip = m
        .connection
        .or(offer.connection)
        .ok_or(NegotiationError::NoConnectionAddress)?;
    let mut direction = m
        .direction
        .or(offer.direction)
        .unwrap_or(Direction::SendRecv);
    if ip.is_unspecified() {
        direction = match direction {
            Direction::SendRecv => Direction::SendOnly,
            Direction::RecvOnly => Direction::Inactive,
            other => other,
        };
    }

    Ok(Negotiated {
        media_index: index,
        encoding,
        payload_type,
        telephone_event,
        remote_rtp: SocketAddr::new(ip, m.port),
        direction,
        ptime: m.ptime,
    })
}

/// The packetization we send: 20 ms, 160 G.711 samples.
const PTIME_MS: u32 = 20;

/// Write the RFC 3264 answer to `offer`, accepting the stream `neg` chose.
///
/// Every offered m-line gets an answer line in the same order (RFC 3264 §6); all but the accepted
/// one are rejected with port 0 and the first offered format. Bumping `session_version` for a
/// re-answer in the same dialog is the caller's job.
pub fn answer(
    offer: &SessionDescription,
    neg: &Negotiated,
    local_ip: IpAddr,
    local_rtp_port: u16,
    session_id: u64,
    session_version: u64,
) -> String {
    let addr = connection_address(local_ip);
    let mut out = String::with_capacity(256);
    // `write!` into a String cannot fail; the results are ignored for that reason.
    let _ = write!(
        out,
        "v=0\r\no=- {session_id} {session_version} {addr}\r\ns=-\r\nc={addr}\r\nt=0 0\r\n"
    );
    for (i, m) in offer.media.iter().enumerate() {
        if i != neg.media_index {
            // "0" is a placeholder when the offer (invalidly) listed no formats: an m-line needs
            // at least one.
            let fmt = m.formats.first().map_or("0", String::as_str);
            let _ = write!(out, "m={} 0 {} {fmt}\r\n", m.kind, m.proto);
            continue;
        }
        let pt = neg.payload_type;
        let _ = write!(out, "m={} {local_rtp_port} {} {pt}", m.kind, m.proto);
        if let Some(te) = neg.telephone_event {
            let _ = write!(out, " {te}");
        }
        let _ = write!(out, "\r\na=rtpmap:{pt} {}/8000\r\n", neg.encoding.name());
        if let Some(te) = neg.telephone_event {
            let _ = write!(
                out,
                "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
            );
        }
        let _ = write!(
            out,
            "a=ptime:{PTIME_MS}\r\na={}\r\n",
            neg.direction.answer()
        );
    }
    out
}

/// `IN IP4 a.b.c.d` / `IN IP6 ...`: the network and address of our o= and c= lines.
fn connection_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => format!("IN IP4 {ip}"),
        IpAddr::V6(ip) => format!("IN IP6 {ip}"),
    }
}

/// The telephone-event payload type in our own offers (RFC 4733; 101 by common practice).
pub const OFFER_TELEPHONE_EVENT: u8 = 101;

/// Our offer to a staff phone: G.711 in `prefer`'s order first (so a phone that speaks the
/// caller's codec needs no transcoding), telephone-event, 20 ms, sendrecv.
pub fn offer(
    prefer: AudioEncoding,
    local_ip: IpAddr,
    local_rtp_port: u16,
    session_id: u64,
    session_version: u64,
) -> String {
    let addr = connection_address(local_ip);
    let other = match prefer {
        AudioEncoding::Pcmu => AudioEncoding::Pcma,
        AudioEncoding::Pcma => AudioEncoding::Pcmu,
    };
    let (a, b) = (prefer.static_payload_type(), other.static_payload_type());
    let te = OFFER_TELEPHONE_EVENT;
    format!(
        "v=0\r\no=- {session_id} {session_version} {addr}\r\ns=-\r\nc={addr}\r\nt=0 0\r\n\
         m=audio {local_rtp_port} RTP/AVP {a} {b} {te}\r\n\
         a=rtpmap:{a} {}/8000\r\na=rtpmap:{b} {}/8000\r\n\
         a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n\
         a=ptime:{PTIME_MS}\r\na=sendrecv\r\n",
        prefer.name(),
        other.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn a_re_offer_keeps_the_running_codec_or_is_refused() {
        let both = super::offer(AudioEncoding::Pcma, Ipv4Addr::LOCALHOST.into(), 7000, 1, 2);
        let parsed = parse(both.as_bytes()).unwrap();
        // PCMA is listed first, but the call runs PCMU: keep PCMU.
        let neg = renegotiate(&parsed, AudioEncoding::Pcmu).unwrap();
        assert_eq!((neg.encoding, neg.payload_type), (AudioEncoding::Pcmu, 0));
        let only_pcma = offer("v=0\nc=IN IP4 127.0.0.1\nm=audio 7000 RTP/AVP 8\n");
        assert_eq!(
            renegotiate(&only_pcma, AudioEncoding::Pcmu),
            Err(NegotiationError::CodecChange { current: "PCMU" })
        );
    }

    #[test]
    fn our_offer_negotiates_back_to_the_preferred_codec() {
        let o = super::offer(AudioEncoding::Pcma, Ipv4Addr::LOCALHOST.into(), 7000, 1, 1);
        let parsed = parse(o.as_bytes()).unwrap();
        let neg = negotiate(&parsed).unwrap();
        assert_eq!(neg.encoding, AudioEncoding::Pcma);
        assert_eq!(neg.telephone_event, Some(101));
        assert_eq!(neg.remote_rtp, "127.0.0.1:7000".parse().unwrap());
        assert!(o.contains("m=audio 7000 RTP/AVP 8 0 101\r\n"));
    }

    fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    fn offer(s: &str) -> SessionDescription {
        parse(&crlf(s)).expect("offer parses")
    }

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

    const SIPP: &str = "v=0
o=user1 53655765 2353687637 IN IP4 127.0.1.1
s=-
c=IN IP4 127.0.1.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
";

    const BARESIP: &str = "v=0
o=- 1718312381 1718312381 IN IP4 10.0.0.5
s=-
c=IN IP4 10.0.0.5
t=0 0
a=tool:baresip 3.10.1
m=audio 10000 RTP/AVP 0 8 101
b=AS:64
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:1234 cname:abc
";

    #[test]
    fn sipp_default_offer() {
        let o = offer(SIPP);
        assert_eq!(
            o.origin.as_deref(),
            Some("user1 53655765 2353687637 IN IP4 127.0.1.1")
        );
        let neg = negotiate(&o).expect("negotiates");
        assert_eq!(
            neg,
            Negotiated {
                media_index: 0,
                encoding: AudioEncoding::Pcmu,
                payload_type: 0,
                telephone_event: None,
                remote_rtp: "127.0.1.1:6000".parse().expect("addr"),
                direction: Direction::SendRecv,
                ptime: None,
            }
        );
        let a = answer(&o, &neg, LOCAL, 20000, 42, 1);
        assert_eq!(
            a,
            "v=0\r\no=- 42 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
             m=audio 20000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        // Our own answer is SDP we can read back.
        let back = parse(a.as_bytes()).expect("answer parses");
        assert_eq!(back.media[0].formats, vec!["0"]);
    }

    #[test]
    fn baresip_offer_with_telephone_event() {
        let o = offer(BARESIP);
        let m = &o.media[0];
        assert_eq!(m.formats, vec!["0", "8", "101"]);
        assert_eq!(m.rtpmap[2], (101, "telephone-event".to_owned(), 8000, None));
        assert_eq!(m.fmtp, vec![(101, "0-16".to_owned())]);
        assert_eq!(m.direction, Some(Direction::SendRecv));
        assert_eq!(m.ptime, Some(20));
        let neg = negotiate(&o).expect("negotiates");
        assert_eq!(neg.encoding, AudioEncoding::Pcmu);
        assert_eq!(neg.telephone_event, Some(101));
        assert_eq!(neg.ptime, Some(20));
        let a = answer(&o, &neg, LOCAL, 20002, 7, 2);
        assert!(a.contains("\r\nm=audio 20002 RTP/AVP 0 101\r\n"), "{a}");
        assert!(a.contains("\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));
        assert!(!a.contains("PCMA"));
    }

    #[test]
    fn pcma_first_wins() {
        let o = offer(
            "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n\
             m=audio 4000 RTP/AVP 18 8 0 96\na=rtpmap:96 telephone-event/8000\n",
        );
        let neg = negotiate(&o).expect("negotiates");
        assert_eq!(neg.encoding, AudioEncoding::Pcma);
        assert_eq!(neg.payload_type, 8);
        assert_eq!(neg.telephone_event, Some(96));
        let a = answer(&o, &neg, LOCAL, 20000, 1, 1);
        assert!(a.contains("m=audio 20000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\n"));
        assert!(a.contains("a=fmtp:96 0-16\r\n"));
    }

    #[test]
    fn dynamic_payload_type_for_pcmu_is_kept() {
        let o = offer("v=0\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 97\na=rtpmap:97 pcmu/8000\n");
        let neg = negotiate(&o).expect("negotiates");
        assert_eq!((neg.encoding, neg.payload_type), (AudioEncoding::Pcmu, 97));
        assert!(answer(&o, &neg, LOCAL, 1, 1, 1).contains("a=rtpmap:97 PCMU/8000\r\n"));
    }

    #[test]
    fn only_g729_is_no_common_codec() {
        let o = offer(
            "v=0\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 18 111\n\
             a=rtpmap:111 opus/48000/2\n",
        );
        let err = negotiate(&o).expect_err("no codec");
        assert_eq!(
            err,
            NegotiationError::NoCommonCodec {
                offered: vec!["G729/8000 (18)".to_owned(), "opus/48000/2 (111)".to_owned()]
            }
        );
        assert_eq!(
            err.to_string(),
            "no common codec: offered G729/8000 (18), opus/48000/2 (111); \
             we support PCMU/8000, PCMA/8000"
        );
    }

    #[test]
    fn video_and_audio_rejects_video() {
        let o = offer(
            "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n\
             m=video 5002 RTP/AVP 96 97\na=rtpmap:96 H264/90000\n\
             m=audio 5000 RTP/AVP 8 0\n",
        );
        let neg = negotiate(&o).expect("negotiates");
        assert_eq!(neg.media_index, 1);
        assert_eq!(neg.encoding, AudioEncoding::Pcma);
        let a = answer(&o, &neg, LOCAL, 20000, 1, 1);
        let m_lines: Vec<&str> = a.split("\r\n").filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m_lines,
            vec!["m=video 0 RTP/AVP 96", "m=audio 20000 RTP/AVP 8"]
        );
    }

    #[test]
    fn no_connection_address() {
        let o = offer("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 5000 RTP/AVP 0\n");
        let err = negotiate(&o).expect_err("no c=");
        assert_eq!(err, NegotiationError::NoConnectionAddress);
        assert_eq!(
            err.to_string(),
            "audio stream has no connection address (c=)"
        );
    }

    #[test]
    fn media_level_connection_overrides_session_level() {
        let o = offer("v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/AVP 0\nc=IN IP4 10.0.0.2\n");
        assert_eq!(o.connection, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        let neg = negotiate(&o).expect("negotiates");
        assert_eq!(neg.remote_rtp, "10.0.0.2:5000".parse().expect("addr"));
    }

    #[test]
    fn no_audio() {
        let o = offer("v=0\nc=IN IP4 10.0.0.1\nm=video 5002 RTP/AVP 96\n");
        assert_eq!(negotiate(&o), Err(NegotiationError::NoAudio));
        assert_eq!(
            NegotiationError::NoAudio.to_string(),
            "offer has no audio stream"
        );
        // An audio line with port 0 is a disabled stream, not an audio stream.
        let o = offer("v=0\nc=IN IP4 10.0.0.1\nm=audio 0 RTP/AVP 0\n");
        assert_eq!(negotiate(&o), Err(NegotiationError::NoAudio));
        let o = offer("v=0\nc=IN IP4 10.0.0.1\n");
        assert_eq!(negotiate(&o), Err(NegotiationError::NoAudio));
    }

    #[test]
    fn srtp_only_is_unsupported_but_best_effort_avp_line_is_taken() {
        let o = offer("v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/SAVP 0\n");
        let err = negotiate(&o).expect_err("SRTP");
        assert_eq!(
            err.to_string(),
            "audio stream uses RTP/SAVP; we support RTP/AVP only (no SRTP)"
        );
        let o = offer("v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/SAVP 0\nm=audio 5002 RTP/AVP 0\n");
        let neg = negotiate(&o).expect("negotiates");
        assert_eq!(neg.media_index, 1);
        let a = answer(&o, &neg, LOCAL, 20000, 1, 1);
        assert!(
            a.contains("m=audio 0 RTP/SAVP 0\r\nm=audio 20000 RTP/AVP 0\r\n"),
            "{a}"
        );
    }

    #[test]
    fn sendonly_hold_is_answered_recvonly() {
        let o = offer(&format!("{SIPP}a=sendonly\n"));
        let neg = negotiate(&o).expect("negotiates");
        assert_eq!(neg.direction, Direction::SendOnly);
        assert!(!neg.direction.answer().we_send());
        let a = answer(&o, &neg, LOCAL, 20000, 42, 2);
        assert!(a.ends_with("a=recvonly\r\n"), "{a}");

        // Session-level direction applies when the media line has none.
        let o = offer("v=0\nc=IN IP4 10.0.0.1\na=inactive\nm=audio 5000 RTP/AVP 0\n");
        assert_eq!(o.direction, Some(Direction::Inactive));
        assert_eq!(
            negotiate(&o).expect("negotiates").direction,
            Direction::Inactive
        );
    }

    #[test]
    fn old_style_hold_with_zero_address() {
        let o = offer("v=0\nc=IN IP4 0.0.0.0\nm=audio 5000 RTP/AVP 0\n");
        let neg = negotiate(&o).expect("negotiates");
        assert_eq!(neg.direction, Direction::SendOnly);
        assert!(neg.remote_rtp.ip().is_unspecified());
        let a = answer(&o, &neg, LOCAL, 20000, 42, 2);
        assert!(a.ends_with("a=recvonly\r\n"), "{a}");
        let o = offer("v=0\nc=IN IP4 0.0.0.0\nm=audio 5000 RTP/AVP 0\na=recvonly\n");
        assert_eq!(
            negotiate(&o).expect("negotiates").direction,
            Direction::Inactive
        );
    }

    #[test]
    fn ipv6_connection() {
        let o = offer("v=0\nc=IN IP6 2001:db8::1\nm=audio 5000 RTP/AVP 0\n");
        let neg = negotiate(&o).expect("negotiates");
        assert_eq!(neg.remote_rtp, "[2001:db8::1]:5000".parse().expect("addr"));
        let local = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
        let a = answer(&o, &neg, local, 20000, 1, 1);
        assert!(a.contains("o=- 1 1 IN IP6 2001:db8::2\r\n"));
        assert!(a.contains("c=IN IP6 2001:db8::2\r\n"));
        // A mismatched address type is reported, with the line.
        let err = parse(b"v=0\nc=IN IP4 2001:db8::1\n").expect_err("mismatch");
        assert_eq!(
            err.to_string(),
            "SDP line 2: bad c= line `c=IN IP4 2001:db8::1`: address does not match its address type"
        );
    }

    #[test]
    fn lf_only_and_crlf_parse_the_same() {
        let lf = parse(BARESIP.as_bytes()).expect("LF parses");
        let crlf = parse(&crlf(BARESIP)).expect("CRLF parses");
        assert_eq!(lf, crlf);
        assert_eq!(lf.media.len(), 1);
    }

    #[test]
    fn lenient_with_malformed_attributes_and_odd_lines() {
        let o = offer(
            "v=0  \nx-vendor junk\nc=IN IP4 224.2.1.1/127\n\
             m=audio 49170/2 RTP/AVP 0 8\na=rtpmap:eight PCMA/8000\na=rtpmap:8\n\
             a=ptime:20.0\na=fmtp:nonsense\nz=garbage\n",
        );
        let m = &o.media[0];
        assert_eq!(m.port, 49170);
        assert!(m.rtpmap.is_empty() && m.fmtp.is_empty());
        assert_eq!(m.ptime, Some(20));
        assert_eq!(o.connection, Some(IpAddr::V4(Ipv4Addr::new(224, 2, 1, 1))));
        assert_eq!(
            negotiate(&o).expect("static PT 0").encoding,
            AudioEncoding::Pcmu
        );
    }

    #[test]
    fn parse_errors() {
        assert_eq!(parse(b"v=0\r\ns=\xff\xfe\r\n"), Err(SdpError::NotUtf8));
        assert_eq!(parse(b""), Err(SdpError::MissingVersion));
        assert_eq!(parse(b"hello world"), Err(SdpError::MissingVersion));
        assert_eq!(
            parse(b"o=- 1 1 IN IP4 1.2.3.4\nv=0\n"),
            Err(SdpError::MissingVersion)
        );
        assert_eq!(
            parse(b"v=1\n"),
            Err(SdpError::UnsupportedVersion("1".to_owned()))
        );
        let err = parse(b"v=0\nm=audio sixty RTP/AVP 0\n").expect_err("bad port");
        assert_eq!(
            err.to_string(),
            "SDP line 2: bad m= line `m=audio sixty RTP/AVP 0`: port is not a number 0-65535"
        );
        assert!(matches!(
            parse(b"v=0\nm=audio 5000\n"),
            Err(SdpError::BadMedia {
                line: 2,
                reason: "no transport protocol",
                ..
            })
        ));
        assert!(matches!(
            parse(b"v=0\nc=IN IP4 pbx.example.com\n"),
            Err(SdpError::BadConnection { line: 2, .. })
        ));
    }
}
