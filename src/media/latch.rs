//! RTP source rules, sans-IO: which received packets a media session believes, and where it sends.
//!
//! An RTP port is open to the whole internet, and the first packet to arrive used to decide where
//! the call's audio went and whose keys counted. A [`Latch`] is fed each packet's source and SSRC
//! and answers accept or drop:
//! - [`LatchMode::Sdp`]: only packets from the exact address the SDP names; we send there.
//! - [`LatchMode::Signalling`] (the default): the exact SDP address, or a source whose IP is the
//!   signalling peer's (where its SIP came from, or where we sent ours) or the SDP's, on any
//!   port. The first such packet latches the session to its address (we send there from now on:
//!   symmetric RTP, RFC 4961) and pins its SSRC. This serves a caller behind NAT whose SDP names
//!   a private address while its RTP comes from the same public IP as its SIP.
//! - Once latched, only the latched address is believed. The one thing that moves the latch is
//!   a packet with the pinned SSRC from another port of an allowed IP (a NAT rebinding); the
//!   latched address may change its SSRC (a phone restarting its stream) and the pin follows.
//! - A re-INVITE (`set_remote`) re-arms the latch with the new SDP address.
//!
//! Everything else is dropped and counted, never latched onto: a stranger spraying an RTP port
//! gets no audio, and its packets are never decoded as digits, recorded or relayed. Drops are
//! reported for a log line at most once a second (`Verdict::Dropped::report`).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::log_throttle::LogThrottle;

/// How strictly a session chooses where media comes from (`rtp.latch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatchMode {
    /// The SDP address, or a latch to a source at the signalling peer's IP or the SDP's IP on any
    /// port (NAT), pinned to its SSRC.
    #[default]
    Signalling,
    /// Only the exact address the SDP names; never latch elsewhere.
    Sdp,
}

/// What to do with one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From the source we believe.
    Accept,
    /// From the source we believe, which this packet has just latched the session to: media goes
    /// to `to` from now on. `moved_from` is the previous latch when this was a NAT rebinding.
    Latched {
        to: SocketAddr,
        moved_from: Option<SocketAddr>,
    },
    /// Not from the source we believe: drop it. `report` is set when a log line is due (the
    /// first drop, then at most one a second) with the drops since the last line, this one
    /// included.
    Dropped { report: Option<u64> },
}

/// The believed source of a session's RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Source {
    addr: SocketAddr,
    ssrc: u32,
}

/// The RTP source rules of one media session.
#[derive(Debug)]
pub struct Latch {
    mode: LatchMode,
    /// Where the SDP says the far end is.
    sdp: SocketAddr,
    /// The IP the far end's SIP came from (or ours went to).
    peer_ip: IpAddr,
    latched: Option<Source>,
    dropped: u64,
    /// Drops not yet reported in a log line.
    report: LogThrottle,
}

impl Latch {
    pub fn new(mode: LatchMode, sdp: SocketAddr, peer_ip: IpAddr) -> Self {
        Latch {
            mode,
            sdp,
            peer_ip,
            latched: None,
            dropped: 0,
            report: LogThrottle::default(),
        }
    }

    /// Judges a packet from `from` carrying `ssrc`, received at `now`.
    pub fn on_packet(&mut self, now: Instant, from: SocketAddr, ssrc: u32) -> Verdict {
        let from = canonical(from);
        if self.mode == LatchMode::Sdp {
            return if from == canonical(self.sdp) {
                Verdict::Accept
            } else {
                self.drop(now)
            };
        }
        match self.latched {
            Some(ref mut src) if src.addr == from => {
                src.ssrc = ssrc;
                Verdict::Accept
            }
            Some(src) if src.ssrc == ssrc && self.allowed_ip(from.ip()) => {
                self.latched = Some(Source { addr: from, ssrc });
                Verdict::Latched {
                    to: from,
                    moved_from: Some(src.addr),
                }
            }
            Some(_) => self.drop(now),
            None if from == canonical(self.sdp) || self.allowed_ip(from.ip()) => {
                self.latched = Some(Source { addr: from, ssrc });
                Verdict::Latched {
                    to: from,
                    moved_from: None,
                }
            }
            None => self.drop(now),
        }
    }

    /// Where to send: the latched source once there is one, else the SDP address.
    pub fn destination(&self) -> SocketAddr {
        self.latched.map_or(self.sdp, |s| s.addr)
    }

    /// The SDP address (a re-INVITE's).
    pub fn sdp(&self) -> SocketAddr {
        self.sdp
    }

    /// A re-INVITE named a new address: send there, and latch afresh.
    pub fn set_remote(&mut self, sdp: SocketAddr) {
        self.sdp = sdp;
        self.latched = None;
    }

    /// Packets dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn allowed_ip(&self, ip: IpAddr) -> bool {
        // An unspecified SDP address (old-style hold, `c=0.0.0.0`) names nobody.
        [self.peer_ip, self.sdp.ip()]
            .into_iter()
            .map(|a| a.to_canonical())
            .any(|a| !a.is_unspecified() && a == ip)
    }

    fn drop(&mut self, now: Instant) -> Verdict {
        self.dropped += 1;
        Verdict::Dropped {
            report: self.report.note(now),
        }
    }
}

/// A dual-stack socket sees IPv4 peers as `::ffff:a.b.c.d`, while SDP and SIP name them plainly.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test IP")
    }

    const CALLER: u32 = 0x1111_1111;
    const ATTACKER: u32 = 0x2222_2222;

    #[test]
    fn a_stranger_spraying_first_is_dropped_and_the_caller_latches() {
        let t0 = Instant::now();
        let mut l = Latch::new(
            LatchMode::Signalling,
            addr("192.0.2.10:4000"),
            ip("192.0.2.10"),
        );
        for i in 0..5 {
            let v = l.on_packet(t0, addr("198.51.100.7:5000"), ATTACKER + i);
            assert!(matches!(v, Verdict::Dropped { .. }), "{v:?}");
        }
        assert_eq!(l.destination(), addr("192.0.2.10:4000"));
        assert_eq!(
            l.on_packet(t0, addr("192.0.2.10:4000"), CALLER),
            Verdict::Latched {
                to: addr("192.0.2.10:4000"),
                moved_from: None
            }
        );
        assert_eq!(
            l.on_packet(t0, addr("192.0.2.10:4000"), CALLER),
            Verdict::Accept
        );
        assert!(matches!(
            l.on_packet(t0, addr("198.51.100.7:5000"), CALLER),
            Verdict::Dropped { .. }
        ));
        assert_eq!(l.dropped(), 6);
        assert_eq!(l.destination(), addr("192.0.2.10:4000"));
    }

    #[test]
    fn nat_caller_latches_on_its_signalling_ip_any_port() {
        // SDP names a private address; RTP comes from the public IP the INVITE came from.
        let t0 = Instant::now();
        let mut l = Latch::new(
            LatchMode::Signalling,
            addr("10.0.0.5:4000"),
            ip("203.0.113.9"),
        );
        assert_eq!(
            l.on_packet(t0, addr("203.0.113.9:31000"), CALLER),
            Verdict::Latched {
                to: addr("203.0.113.9:31000"),
                moved_from: None
            }
        );
        assert_eq!(l.destination(), addr("203.0.113.9:31000"));
        // Another port of the same IP with another SSRC does not move it.
        assert!(matches!(
            l.on_packet(t0, addr("203.0.113.9:31002"), ATTACKER),
            Verdict::Dropped { .. }
        ));
        assert_eq!(l.destination(), addr("203.0.113.9:31000"));
    }

    #[test]
    fn the_sdp_ip_on_another_port_latches_too() {
        // A media gateway whose signalling comes from elsewhere (a proxy).
        let t0 = Instant::now();
        let mut l = Latch::new(
            LatchMode::Signalling,
            addr("192.0.2.20:4000"),
            ip("192.0.2.1"),
        );
        assert!(matches!(
            l.on_packet(t0, addr("192.0.2.20:4002"), CALLER),
            Verdict::Latched { .. }
        ));
    }

    #[test]
    fn only_the_pinned_ssrc_moves_the_latch_nat_rebinding() {
        let t0 = Instant::now();
        let mut l = Latch::new(
            LatchMode::Signalling,
            addr("10.0.0.5:4000"),
            ip("203.0.113.9"),
        );
        l.on_packet(t0, addr("203.0.113.9:31000"), CALLER);
        assert_eq!(
            l.on_packet(t0, addr("203.0.113.9:40000"), CALLER),
            Verdict::Latched {
                to: addr("203.0.113.9:40000"),
                moved_from: Some(addr("203.0.113.9:31000"))
            }
        );
        assert_eq!(l.destination(), addr("203.0.113.9:40000"));
        // The pinned SSRC from an IP that is neither the peer's nor the SDP's: dropped.
        assert!(matches!(
            l.on_packet(t0, addr("198.51.100.7:40000"), CALLER),
            Verdict::Dropped { .. }
        ));
        assert_eq!(l.destination(), addr("203.0.113.9:40000"));
    }

    #[test]
    fn the_latched_source_may_restart_its_stream_and_the_pin_follows() {
        let t0 = Instant::now();
        let mut l = Latch::new(
            LatchMode::Signalling,
            addr("10.0.0.5:4000"),
            ip("203.0.113.9"),
        );
        l.on_packet(t0, addr("203.0.113.9:31000"), CALLER);
        assert_eq!(
            l.on_packet(t0, addr("203.0.113.9:31000"), CALLER + 1),
            Verdict::Accept
        );
        assert!(matches!(
            l.on_packet(t0, addr("203.0.113.9:40000"), CALLER),
            Verdict::Dropped { .. }
        ));
        assert!(matches!(
            l.on_packet(t0, addr("203.0.113.9:40000"), CALLER + 1),
            Verdict::Latched { .. }
        ));
    }

    #[test]
    fn strict_mode_believes_only_the_exact_sdp_address() {
        let t0 = Instant::now();
        let mut l = Latch::new(LatchMode::Sdp, addr("10.0.0.5:4000"), ip("203.0.113.9"));
        for from in ["203.0.113.9:31000", "10.0.0.5:4002", "198.51.100.7:4000"] {
            assert!(
                matches!(l.on_packet(t0, addr(from), CALLER), Verdict::Dropped { .. }),
                "{from}"
            );
        }
        assert_eq!(
            l.on_packet(t0, addr("10.0.0.5:4000"), CALLER),
            Verdict::Accept
        );
        assert_eq!(l.destination(), addr("10.0.0.5:4000"));
    }

    #[test]
    fn re_invite_rearms_the_latch_with_the_new_address() {
        let t0 = Instant::now();
        let mut l = Latch::new(
            LatchMode::Signalling,
            addr("192.0.2.10:4000"),
            ip("192.0.2.10"),
        );
        l.on_packet(t0, addr("192.0.2.10:4000"), CALLER);
        l.set_remote(addr("192.0.2.10:6000"));
        assert_eq!(l.destination(), addr("192.0.2.10:6000"));
        // A stranger spraying after the re-INVITE cannot take the fresh latch...
        assert!(matches!(
            l.on_packet(t0, addr("198.51.100.7:6000"), ATTACKER),
            Verdict::Dropped { .. }
        ));
        assert_eq!(l.destination(), addr("192.0.2.10:6000"));
        // ...the caller's new stream does.
        assert_eq!(
            l.on_packet(t0, addr("192.0.2.10:6000"), CALLER + 7),
            Verdict::Latched {
                to: addr("192.0.2.10:6000"),
                moved_from: None
            }
        );
        // And the old port, with the old SSRC, now counts as a rebinding of nothing: the pin is
        // the new stream's.
        assert!(matches!(
            l.on_packet(t0, addr("192.0.2.10:4000"), CALLER),
            Verdict::Dropped { .. }
        ));
    }

    #[test]
    fn old_style_hold_address_allows_no_ip_but_the_peer_still_latches() {
        let t0 = Instant::now();
        let mut l = Latch::new(
            LatchMode::Signalling,
            addr("0.0.0.0:4000"),
            ip("192.0.2.10"),
        );
        assert!(matches!(
            l.on_packet(t0, addr("198.51.100.7:4000"), CALLER),
            Verdict::Dropped { .. }
        ));
        assert!(matches!(
            l.on_packet(t0, addr("192.0.2.10:5000"), CALLER),
            Verdict::Latched { .. }
        ));
    }

    #[test]
    fn ipv4_mapped_sources_match_plain_addresses() {
        let t0 = Instant::now();
        let mut l = Latch::new(
            LatchMode::Signalling,
            addr("192.0.2.10:4000"),
            ip("192.0.2.10"),
        );
        assert!(matches!(
            l.on_packet(t0, addr("[::ffff:192.0.2.10]:4000"), CALLER),
            Verdict::Latched { .. }
        ));
        let mut l = Latch::new(LatchMode::Sdp, addr("192.0.2.10:4000"), ip("192.0.2.10"));
        assert_eq!(
            l.on_packet(t0, addr("[::ffff:192.0.2.10]:4000"), CALLER),
            Verdict::Accept
        );
    }

    #[test]
    fn drops_are_reported_once_then_at_most_once_a_second() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut l = Latch::new(LatchMode::Sdp, addr("192.0.2.10:4000"), ip("192.0.2.10"));
        let stranger = addr("198.51.100.7:5000");
        assert_eq!(
            l.on_packet(at(0), stranger, ATTACKER),
            Verdict::Dropped { report: Some(1) }
        );
        for ms in [1, 10, 500, 999] {
            assert_eq!(
                l.on_packet(at(ms), stranger, ATTACKER),
                Verdict::Dropped { report: None }
            );
        }
        assert_eq!(
            l.on_packet(at(1000), stranger, ATTACKER),
            Verdict::Dropped { report: Some(5) }
        );
        assert_eq!(l.dropped(), 6);
    }
}
