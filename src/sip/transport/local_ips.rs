//! Our own address as each peer sees it, when SIP listens on a wildcard address (0.0.0.0 or
//! `[::]`): the address goes into Contact, Via and SDP, and only the routing table knows it.
//!
//! Asking the kernel costs a socket and a `connect` ([`route_source_ip`]), so answers are kept
//! per peer IP; but peers are whoever sends a datagram, and a sweep from a million source
//! addresses must not grow the table with it. [`LocalIpCache`] holds two generations: when the
//! current one is full it becomes the previous one and the old previous one is dropped, so
//! at most `2 × generation` entries live and peers seen recently (or often) stay. An entry is
//! trusted for `ttl`, so a route that changes (an interface going away) is relearned.
//!
//! Why not learn the address from each datagram (`IP_PKTINFO` with `recvmsg`): no crate in the
//! tree wraps the option and its control message, and doing it by hand means `unsafe` libc
//! calls on the hot receive path, for a lookup that costs a few microseconds once per peer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Entries per generation (two generations live at most).
pub const GENERATION: usize = 2048;

/// How long a learned address is trusted.
pub const TTL: Duration = Duration::from_secs(300);

/// Peer IP → our IP towards it, bounded; sans-IO (the caller does the route lookup).
#[derive(Debug)]
pub struct LocalIpCache {
    current: HashMap<IpAddr, (IpAddr, Instant)>,
    previous: HashMap<IpAddr, (IpAddr, Instant)>,
    generation: usize,
    ttl: Duration,
}

impl Default for LocalIpCache {
    fn default() -> Self {
        LocalIpCache::new(GENERATION, TTL)
    }
}

impl LocalIpCache {
    pub fn new(generation: usize, ttl: Duration) -> Self {
        LocalIpCache {
            current: HashMap::new(),
            previous: HashMap::new(),
            generation: generation.max(1),
            ttl,
        }
    }

    /// The most entries the cache ever holds.
    pub fn capacity(&self) -> usize {
        2 * self.generation
    }

    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Our address towards `peer`, learned less than `ttl` before `now`. A hit in the previous
    /// generation moves to the current one, so a peer in use survives the next turnover.
    pub fn get(&mut self, now: Instant, peer: IpAddr) -> Option<IpAddr> {
        let fresh = |(ip, at): (IpAddr, Instant)| {
            (now.saturating_duration_since(at) < self.ttl).then_some(ip)
        };
        if let Some(hit) = self.current.get(&peer).copied() {
            return fresh(hit);
        }
        let hit = self.previous.remove(&peer)?;
        let ip = fresh(hit)?;
        self.insert_entry(peer, hit);
        Some(ip)
    }

    /// Remembers `local` as our address towards `peer`, learned at `now`. Returns true when
    /// this turned the generations over (an old generation was dropped).
    pub fn insert(&mut self, now: Instant, peer: IpAddr, local: IpAddr) -> bool {
        self.insert_entry(peer, (local, now))
    }

    fn insert_entry(&mut self, peer: IpAddr, entry: (IpAddr, Instant)) -> bool {
        self.previous.remove(&peer);
        let turned = self.current.len() >= self.generation && !self.current.contains_key(&peer);
        if turned {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(peer, entry);
        turned
    }
}

/// The source IP the kernel would use towards `peer` (a connected UDP socket sends nothing).
pub fn route_source_ip(peer: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(peer).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u32) -> IpAddr {
        IpAddr::from((0x0a00_0000 + n).to_be_bytes())
    }

    const OURS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn a_sweep_of_sources_never_grows_it_past_two_generations() {
        let t0 = Instant::now();
        let mut c = LocalIpCache::new(100, TTL);
        let mut turns = 0;
        for n in 0..10_000 {
            if c.get(t0, peer(n)).is_none() && c.insert(t0, peer(n), OURS) {
                turns += 1;
            }
            assert!(c.len() <= c.capacity(), "{} entries after {n}", c.len());
        }
        assert_eq!(c.capacity(), 200);
        assert_eq!(
            turns, 99,
            "one turnover per hundred new peers after the first hundred"
        );
        // The latest peers are still known; the first ones were dropped.
        assert_eq!(c.get(t0, peer(9_999)), Some(OURS));
        assert_eq!(c.get(t0, peer(0)), None);
    }

    #[test]
    fn a_peer_in_use_survives_turnovers() {
        let t0 = Instant::now();
        let mut c = LocalIpCache::new(10, TTL);
        c.insert(t0, peer(0), OURS);
        for n in 1..1_000 {
            c.insert(t0, peer(n), OURS);
            // The phone keeps sending now and then.
            if n % 5 == 0 {
                assert_eq!(c.get(t0, peer(0)), Some(OURS), "lost after {n} new peers");
            }
        }
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let t0 = Instant::now();
        let mut c = LocalIpCache::new(10, Duration::from_secs(60));
        c.insert(t0, peer(1), OURS);
        assert_eq!(c.get(t0 + Duration::from_secs(59), peer(1)), Some(OURS));
        assert_eq!(c.get(t0 + Duration::from_secs(60), peer(1)), None);
        // Relearned, then trusted again.
        let other = IpAddr::from([198, 51, 100, 1]);
        c.insert(t0 + Duration::from_secs(60), peer(1), other);
        assert_eq!(c.get(t0 + Duration::from_secs(61), peer(1)), Some(other));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_route_to_loopback_starts_on_loopback() {
        let ip = route_source_ip("127.0.0.1:5060".parse().unwrap());
        assert_eq!(ip, Some(IpAddr::from([127, 0, 0, 1])));
    }
}
