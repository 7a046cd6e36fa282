//! The TCP connection policy, sans-IO: which connections may open and which must close.
//!
//! A connection costs a file descriptor and up to [`MAX_MESSAGE_SIZE`](super::MAX_MESSAGE_SIZE)
//! bytes of buffer, so an open listener without rules lets anyone exhaust both (idle connections
//! until `accept` fails with "Too many open files" and calls find no RTP port; half-sent headers
//! holding 64 KiB each). The table admits a connection only under a cap in total and per source
//! IP, and names the connections overdue at `now`:
//! - a message whose first byte arrived more than `message_timeout` ago and is still incomplete
//!   (slowloris), whatever the connection carries;
//! - a connection with no complete message for `idle_timeout` that carries no call and no
//!   registration binding. What is in use is only known to the endpoint, so the shell hands the
//!   table that set now and then ([`ConnectionTable::set_in_use`]); a connection is judged idle
//!   only on a set taken after its idle deadline, so a call that began just before the last set
//!   was taken is never mistaken for idle. A phone registered over TCP behind NAT can only be
//!   reached over its connection: closing it would make the phone unreachable.
//!
//! CRLF keep-alives do not count as messages: a connection kept open by pings alone, with no
//! binding on it, is idle.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The `[sip] tcp_*` settings, after the file-descriptor budget has been applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpLimits {
    pub idle_timeout: Duration,
    pub message_timeout: Duration,
    pub max_connections: usize,
    pub max_per_source: usize,
}

/// Why a new connection is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are open.
    Total,
    /// `max_per_source` are open from the same IP.
    PerSource,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Total => "sip.tcp_max_connections reached",
            Refusal::PerSource => "sip.tcp_max_per_source reached for this address",
        })
    }
}

/// Why an open connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// No complete message for `idle_timeout`, and no call or binding on it.
    Idle,
    /// A message was begun and not finished within `message_timeout`.
    SlowMessage,
}

#[derive(Debug)]
struct Conn {
    source: IpAddr,
    last_message: Instant,
    /// When the first byte of the message now being received arrived.
    partial_since: Option<Instant>,
}

#[derive(Debug)]
pub struct ConnectionTable {
    limits: TcpLimits,
    conns: HashMap<u64, Conn>,
    per_source: HashMap<IpAddr, usize>,
    in_use: HashSet<u64>,
    /// When `in_use` was taken; no idle verdict before the first set arrives.
    in_use_at: Option<Instant>,
}

impl ConnectionTable {
    pub fn new(limits: TcpLimits) -> Self {
        ConnectionTable {
            limits,
            conns: HashMap::new(),
            per_source: HashMap::new(),
            in_use: HashSet::new(),
            in_use_at: None,
        }
    }

    pub fn limits(&self) -> TcpLimits {
        self.limits
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Open connections from `source`.
    pub fn from_source(&self, source: IpAddr) -> usize {
        self.per_source.get(&source).copied().unwrap_or(0)
    }

    /// A connection `id` from `source` was accepted at `now`: keep it, or refuse it (the shell
    /// closes it at once).
    pub fn admit(&mut self, now: Instant, id: u64, source: IpAddr) -> Result<(), Refusal> {
        if self.conns.len() >= self.limits.max_connections {
            return Err(Refusal::Total);
        }
        let n = self.per_source.entry(source).or_insert(0);
        if *n >= self.limits.max_per_source {
            return Err(Refusal::PerSource);
        }
        *n += 1;
        self.conns.insert(
            id,
            Conn {
                source,
                last_message: now,
                partial_since: None,
            },
        );
        Ok(())
    }

    /// The connection is gone (closed by either side). Forgetting one twice is harmless.
    pub fn remove(&mut self, id: u64) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        if let Some(n) = self.per_source.get_mut(&c.source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&c.source);
            }
        }
        self.in_use.remove(&id);
    }

    /// Bytes were read on `id` at `now`: `messages` complete messages came out of them, and
    /// `partial` says whether the start of another is waiting in the buffer.
    pub fn received(&mut self, now: Instant, id: u64, messages: usize, partial: bool) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if messages > 0 {
            c.last_message = now;
        }
        c.partial_since = match (partial, c.partial_since, messages) {
            (false, _, _) => None,
            // A message finished and the next one began in the same read.
            (true, _, m) if m > 0 => Some(now),
            (true, since, _) => since.or(Some(now)),
        };
    }

    /// The connections a call or a registration binding uses, as the endpoint saw them at `now`.
    pub fn set_in_use(&mut self, now: Instant, ids: HashSet<u64>) {
        self.in_use = ids;
        self.in_use_at = Some(now);
    }

    /// Connections to close at `now`, and why. The shell closes them and calls
    /// [`remove`](Self::remove).
    pub fn overdue(&self, now: Instant) -> Vec<(u64, CloseReason)> {
        let l = &self.limits;
        self.conns
            .iter()
            .filter_map(|(id, c)| match c.partial_since {
                Some(since) if since + l.message_timeout <= now => {
                    Some((*id, CloseReason::SlowMessage))
                }
                Some(_) => None,
                None => {
                    let idle_at = c.last_message + l.idle_timeout;
                    let judged = self.in_use_at.is_some_and(|at| at >= idle_at);
                    (judged && !self.in_use.contains(id)).then_some((*id, CloseReason::Idle))
                }
            })
            .collect()
    }

    /// When the next message deadline falls (idle connections are judged when the next in-use
    /// set arrives, so they set no deadline of their own).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|c| c.partial_since)
            .min()
            .map(|since| since + self.limits.message_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    fn limits() -> TcpLimits {
        TcpLimits {
            idle_timeout: Duration::from_secs(30),
            message_timeout: Duration::from_secs(10),
            max_connections: 4,
            max_per_source: 2,
        }
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn caps_connections_per_source_and_in_total() {
        let t0 = Instant::now();
        let mut t = ConnectionTable::new(limits());
        assert_eq!(t.admit(t0, 1, ip(1)), Ok(()));
        assert_eq!(t.admit(t0, 2, ip(1)), Ok(()));
        assert_eq!(t.admit(t0, 3, ip(1)), Err(Refusal::PerSource));
        assert_eq!(t.admit(t0, 4, ip(2)), Ok(()));
        assert_eq!(t.admit(t0, 5, ip(3)), Ok(()));
        assert_eq!(t.admit(t0, 6, ip(4)), Err(Refusal::Total));
        assert_eq!(t.len(), 4);
        // A closed connection frees its slot in both counts, once.
        t.remove(1);
        t.remove(1);
        assert_eq!(t.from_source(ip(1)), 1);
        assert_eq!(t.admit(t0, 7, ip(1)), Ok(()));
        t.remove(4);
        assert_eq!(t.admit(t0, 8, ip(1)), Err(Refusal::PerSource));
        t.remove(2);
        t.remove(7);
        assert_eq!(t.from_source(ip(1)), 0);
        assert!(
            !t.per_source.contains_key(&ip(1)),
            "no empty per-source rows"
        );
    }

    #[test]
    fn an_unfinished_message_is_closed_at_its_deadline() {
        let t0 = Instant::now();
        let mut t = ConnectionTable::new(limits());
        t.admit(t0, 1, ip(1)).unwrap();
        assert_eq!(t.next_deadline(), None);
        // The first bytes at t=1, more at t=5: the deadline runs from the first.
        t.received(secs(t0, 1), 1, 0, true);
        t.received(secs(t0, 5), 1, 0, true);
        assert_eq!(t.next_deadline(), Some(secs(t0, 11)));
        assert!(t.overdue(secs(t0, 10)).is_empty());
        assert_eq!(t.overdue(secs(t0, 11)), vec![(1, CloseReason::SlowMessage)]);
        // Even a connection a call uses.
        t.set_in_use(secs(t0, 11), HashSet::from([1]));
        assert_eq!(t.overdue(secs(t0, 11)), vec![(1, CloseReason::SlowMessage)]);
    }

    #[test]
    fn a_finished_message_clears_the_deadline_and_the_next_one_starts_its_own() {
        let t0 = Instant::now();
        let mut t = ConnectionTable::new(limits());
        t.admit(t0, 1, ip(1)).unwrap();
        t.received(secs(t0, 1), 1, 0, true);
        t.received(secs(t0, 3), 1, 1, false);
        assert_eq!(t.next_deadline(), None);
        t.received(secs(t0, 4), 1, 1, true);
        assert_eq!(t.next_deadline(), Some(secs(t0, 14)));
        t.received(secs(t0, 6), 1, 0, true);
        assert_eq!(t.next_deadline(), Some(secs(t0, 14)));
    }

    #[test]
    fn idle_connections_close_only_on_an_in_use_set_taken_after_their_deadline() {
        let t0 = Instant::now();
        let mut t = ConnectionTable::new(limits());
        t.admit(t0, 1, ip(1)).unwrap();
        t.admit(t0, 2, ip(2)).unwrap();
        // No set yet: nothing is judged idle, however late.
        assert!(t.overdue(secs(t0, 100)).is_empty());
        // A set from before the deadline does not judge it either.
        t.set_in_use(secs(t0, 29), HashSet::new());
        assert!(t.overdue(secs(t0, 31)).is_empty());
        t.set_in_use(secs(t0, 30), HashSet::from([2]));
        assert_eq!(t.overdue(secs(t0, 30)), vec![(1, CloseReason::Idle)]);
        t.remove(1);
        // Connection 2 carries a call: kept however long it is quiet.
        t.set_in_use(secs(t0, 500), HashSet::from([2]));
        assert!(t.overdue(secs(t0, 500)).is_empty());
        // The call ended: idle from its last message on.
        t.set_in_use(secs(t0, 502), HashSet::new());
        assert_eq!(t.overdue(secs(t0, 502)), vec![(2, CloseReason::Idle)]);
    }

    #[test]
    fn a_message_resets_the_idle_clock_and_keep_alives_do_not() {
        let t0 = Instant::now();
        let mut t = ConnectionTable::new(limits());
        t.admit(t0, 1, ip(1)).unwrap();
        t.received(secs(t0, 20), 1, 1, false);
        t.set_in_use(secs(t0, 40), HashSet::new());
        assert!(t.overdue(secs(t0, 40)).is_empty());
        // CRLF pings: bytes, but no message and nothing left in the buffer.
        t.received(secs(t0, 45), 1, 0, false);
        t.set_in_use(secs(t0, 50), HashSet::new());
        assert_eq!(t.overdue(secs(t0, 50)), vec![(1, CloseReason::Idle)]);
    }

    #[test]
    fn a_message_in_progress_is_not_idle() {
        let t0 = Instant::now();
        let mut t = ConnectionTable::new(TcpLimits {
            message_timeout: Duration::from_secs(60),
            ..limits()
        });
        t.admit(t0, 1, ip(1)).unwrap();
        t.received(secs(t0, 25), 1, 0, true);
        t.set_in_use(secs(t0, 40), HashSet::new());
        assert!(t.overdue(secs(t0, 40)).is_empty());
        assert_eq!(t.overdue(secs(t0, 85)), vec![(1, CloseReason::SlowMessage)]);
    }

    #[test]
    fn events_for_unknown_connections_are_ignored() {
        let t0 = Instant::now();
        let mut t = ConnectionTable::new(limits());
        t.received(t0, 9, 1, true);
        t.remove(9);
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }
}
