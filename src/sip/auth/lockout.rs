//! Throttling failed digest answers (password guessing), sans-IO on the endpoint's clock.
//!
//! Failures are counted per source address and per user name. `failures` of them within `window`
//! block the source (or the user) for `block`, doubling with each further block of the same source
//! or user up to `block_max`; a source or user quiet for `block_max` after its last block starts
//! again from `block`. While blocked, authentication is refused before any password is looked at:
//! the first `failures` refusals of a block are answered (403), later ones dropped in silence, so
//! a guesser learns nothing and gets nothing back to measure.
//!
//! Who is counted, and why:
//! - A source: every failed answer (wrong password, unknown user, forged or foreign nonce, bad
//!   realm or algorithm, malformed header, replay). IPv6 sources count per /64, the block an
//!   ordinary host can pick addresses from.
//! - A user: wrong passwords only (answers that were checked against a password), counted under
//!   the name in the answer whether or not such a staff user exists, so a block looks the same
//!   for an unknown name as for a real one and reveals nothing.
//! - A user block applies to every source except those that authenticated as that user within
//!   [`TRUST`]: guessing alice's password from many addresses locks out new places, never alice's
//!   own phones, so an attacker cannot lock a real user out everywhere.
//!
//! Every table is a [`BoundedMap`]: entries are forgotten once their window and block memory have
//! passed, and a full table evicts the oldest (sparing, within limits, those blocked now).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::table::BoundedMap;

/// How long a successful login keeps its source exempt from blocks of that user.
pub const TRUST: Duration = Duration::from_secs(24 * 3600);
/// Entries per table: sources and user names, and (user, source) pairs that logged in.
pub const MAX_SOURCES: usize = 16_384;
pub const MAX_USERS: usize = 16_384;
pub const MAX_TRUSTED: usize = 4_096;
/// Longer names are counted by this prefix (a name is attacker-chosen; its key must stay small).
const USER_KEY_MAX: usize = 64;
/// A full table is swept for forgotten entries at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The `[staff]` auth_* settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures within `window` that block; 0 turns throttling off.
    pub failures: u32,
    pub window: Duration,
    pub block: Duration,
    pub block_max: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            failures: 10,
            window: Duration::from_secs(300),
            block: Duration::from_secs(60),
            block_max: Duration::from_secs(3600),
        }
    }
}

/// What to do with a request that wants to authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Check its credentials (or challenge it).
    Check,
    /// Blocked: answer 403 without looking at the credentials.
    Refuse,
    /// Blocked, and already told: no answer at all.
    Drop,
}

/// Who a block is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Culprit {
    Source(IpAddr),
    User(String),
}

/// A block that just started: the one log line it deserves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub who: Culprit,
    /// Failures that led to it (within the window).
    pub failures: u32,
    /// This is the `nth` block in a row of this source or user (its length doubles each time).
    pub nth: u32,
    pub length: Duration,
    pub until: Instant,
}

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    window_start: Instant,
    last_failure: Instant,
    blocked_until: Option<Instant>,
    blocks: u32,
    /// Requests refused during the current block.
    refused: u32,
}

impl Record {
    fn new(now: Instant) -> Self {
        Record {
            failures: 0,
            window_start: now,
            last_failure: now,
            blocked_until: None,
            blocks: 0,
            refused: 0,
        }
    }

    fn blocked(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|t| now < t)
    }

    /// Whether nothing of this record matters any more: no failures in the window, no block,
    /// and `block_max` since the last block (after which the doubling starts over).
    fn forgotten(&self, now: Instant, p: &LockoutPolicy) -> bool {
        let window_over = now >= self.last_failure + p.window;
        let blocks_over = self.blocked_until.is_none_or(|t| now >= t + p.block_max);
        window_over && blocks_over
    }
}

#[derive(Debug)]
struct Counter<K> {
    records: BoundedMap<K, Record>,
    last_sweep: Option<Instant>,
}

impl<K: Eq + std::hash::Hash + Clone> Counter<K> {
    fn new(cap: usize) -> Self {
        Counter {
            records: BoundedMap::new(cap),
            last_sweep: None,
        }
    }

    fn blocked(&self, now: Instant, key: &K) -> bool {
        self.records.get(key).is_some_and(|r| r.blocked(now))
    }

    /// Counts a refusal of `key` during its block.
    fn refuse(&mut self, key: &K, p: &LockoutPolicy) -> Admission {
        let Some(r) = self.records.get_mut(key) else {
            return Admission::Check;
        };
        r.refused = r.refused.saturating_add(1);
        if r.refused <= p.failures {
            Admission::Refuse
        } else {
            Admission::Drop
        }
    }

    /// Counts one failure of `key`; `Some` when it starts a block.
    fn fail(
        &mut self,
        now: Instant,
        key: &K,
        p: &LockoutPolicy,
        who: impl FnOnce() -> Culprit,
    ) -> Option<Block> {
        self.sweep(now, p);
        if self
            .records
            .get(key)
            .is_none_or(|r| r.forgotten(now, p) && !r.blocked(now))
        {
            self.records
                .insert(key.clone(), Record::new(now), |r| r.blocked(now));
        }
        let r = self.records.get_mut(key)?;
        // Failures while blocked come only from exempt (trusted) sources: the block stands as it is.
        if r.blocked(now) {
            return None;
        }
        if r.failures == 0 || now >= r.window_start + p.window {
            r.window_start = now;
            r.failures = 0;
        }
        r.failures += 1;
        r.last_failure = now;
        if r.failures < p.failures {
            return None;
        }
        r.blocks = r.blocks.saturating_add(1);
        let doublings = r.blocks.saturating_sub(1).min(31);
        let length = p
            .block
            .checked_mul(1 << doublings)
            .unwrap_or(p.block_max)
            .min(p.block_max);
        let until = now + length;
        r.blocked_until = Some(until);
        r.refused = 0;
        let failures = std::mem::take(&mut r.failures);
        Some(Block {
            who: who(),
            failures,
            nth: r.blocks,
            length,
            until,
        })
    }

    /// A success from `key`: its failures so far were typing errors, not guesses.
    fn clear_failures(&mut self, key: &K) {
        if let Some(r) = self.records.get_mut(key) {
            r.failures = 0;
        }
    }

    fn sweep(&mut self, now: Instant, p: &LockoutPolicy) {
        if !self.records.is_full() || self.last_sweep.is_some_and(|t| now < t + SWEEP_EVERY) {
            return;
        }
        self.last_sweep = Some(now);
        self.records.retain(|_, r| !r.forgotten(now, p));
    }
}

#[derive(Debug)]
pub struct Lockout {
    policy: LockoutPolicy,
    sources: Counter<IpAddr>,
    users: Counter<String>,
    /// (user, source) → when its exemption from blocks of that user ends.
    trusted: BoundedMap<(String, IpAddr), Instant>,
}

impl Lockout {
    pub fn new(policy: LockoutPolicy) -> Self {
        Lockout::with_caps(policy, MAX_SOURCES, MAX_USERS, MAX_TRUSTED)
    }

    pub fn with_caps(policy: LockoutPolicy, sources: usize, users: usize, trusted: usize) -> Self {
        Lockout {
            policy,
            sources: Counter::new(sources),
            users: Counter::new(users),
            trusted: BoundedMap::new(trusted),
        }
    }

    pub fn policy(&self) -> &LockoutPolicy {
        &self.policy
    }

    /// Before any digest work: whether a request from `source` (claiming `user`, when its
    /// credentials name one) may be checked at all.
    pub fn admit(&mut self, now: Instant, source: IpAddr, user: Option<&str>) -> Admission {
        if self.policy.failures == 0 {
            return Admission::Check;
        }
        let src = source_key(source);
        if self.sources.blocked(now, &src) {
            return self.sources.refuse(&src, &self.policy);
        }
        if let Some(user) = user {
            let u = user_key(user);
            if self.users.blocked(now, &u) && !self.is_trusted(now, &u, src) {
                return self.users.refuse(&u, &self.policy);
            }
        }
        Admission::Check
    }

    /// A failed answer from `source`; `guessed` names the user whose password was checked and
    /// found wrong (None for failures that checked no password). Returns the blocks it starts.
    pub fn failed(&mut self, now: Instant, source: IpAddr, guessed: Option<&str>) -> Vec<Block> {
        let mut started = Vec::new();
        if self.policy.failures == 0 {
            return started;
        }
        let p = self.policy;
        let src = source_key(source);
        started.extend(self.sources.fail(now, &src, &p, || Culprit::Source(src)));
        if let Some(user) = guessed {
            let u = user_key(user);
            started.extend(self.users.fail(now, &u, &p, || Culprit::User(u.clone())));
        }
        started
    }

    /// `source` proved to be `user`: its failures are forgiven and it is exempt from blocks of
    /// that user for [`TRUST`].
    pub fn succeeded(&mut self, now: Instant, source: IpAddr, user: &str) {
        let src = source_key(source);
        self.sources.clear_failures(&src);
        let key = (user_key(user), src);
        if self.trusted.is_full() && self.trusted.get(&key).is_none() {
            self.trusted.retain(|_, until| now < *until);
        }
        self.trusted.insert(key, now + TRUST, |_| false);
    }

    fn is_trusted(&self, now: Instant, user: &str, src: IpAddr) -> bool {
        self.trusted
            .get(&(user.to_string(), src))
            .is_some_and(|until| now < *until)
    }

    /// Entries held in the source and user tables (for tests and metrics).
    pub fn sizes(&self) -> (usize, usize, usize) {
        (
            self.sources.records.len(),
            self.users.records.len(),
            self.trusted.len(),
        )
    }
}

/// The address a source is counted under: IPv4 as is, IPv6 by its /64 (IPv4-mapped IPv6 as IPv4).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::V6(o.into())
        }
        v4 => v4,
    }
}

fn user_key(user: &str) -> String {
    match user.char_indices().nth(USER_KEY_MAX) {
        Some((i, _)) => user[..i].to_string(),
        None => user.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            failures: 3,
            window: Duration::from_secs(60),
            block: Duration::from_secs(10),
            block_max: Duration::from_secs(40),
        }
    }

    struct Clock(Instant);
    impl Clock {
        fn at(&self, s: u64) -> Instant {
            self.0 + Duration::from_secs(s)
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const ATTACKER: &str = "192.0.2.66";
    const PHONE: &str = "198.51.100.7";

    #[test]
    fn a_source_is_blocked_after_n_failures_and_refused_then_dropped() {
        let c = Clock(Instant::now());
        let mut l = Lockout::new(policy());
        let a = ip(ATTACKER);
        assert_eq!(l.failed(c.at(0), a, None), vec![]);
        assert_eq!(l.failed(c.at(1), a, None), vec![]);
        assert_eq!(l.admit(c.at(1), a, None), Admission::Check);
        let blocks = l.failed(c.at(2), a, None);
        assert_eq!(
            blocks,
            vec![Block {
                who: Culprit::Source(a),
                failures: 3,
                nth: 1,
                length: Duration::from_secs(10),
                until: c.at(12),
            }]
        );
        // The first `failures` refusals are answered, later ones dropped.
        let seen: Vec<Admission> = (0..5).map(|_| l.admit(c.at(3), a, Some("alice"))).collect();
        use Admission::*;
        assert_eq!(seen, vec![Refuse, Refuse, Refuse, Drop, Drop]);
        // Other sources are not affected.
        assert_eq!(l.admit(c.at(3), ip(PHONE), Some("alice")), Check);
        // Until the block ends.
        assert_eq!(l.admit(c.at(11), a, None), Drop);
        assert_eq!(l.admit(c.at(12), a, None), Check);
    }

    #[test]
    fn repeated_blocks_double_up_to_the_cap_and_quiet_resets_them() {
        let c = Clock(Instant::now());
        let mut l = Lockout::new(policy());
        let a = ip(ATTACKER);
        let mut t = 0;
        let mut lengths = Vec::new();
        for _ in 0..5 {
            let mut block = Vec::new();
            for _ in 0..3 {
                block = l.failed(c.at(t), a, None);
            }
            let b = block.pop().expect("a block");
            lengths.push(b.length.as_secs());
            assert_eq!(l.admit(c.at(t), a, None), Admission::Refuse);
            t = (b.until - c.0).as_secs();
        }
        assert_eq!(lengths, vec![10, 20, 40, 40, 40]);
        // Quiet for block_max after the last block: the next block is short again.
        t += 40;
        let mut block = Vec::new();
        for _ in 0..3 {
            block = l.failed(c.at(t), a, None);
        }
        assert_eq!(block[0].length, Duration::from_secs(10));
        assert_eq!(block[0].nth, 1);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let c = Clock(Instant::now());
        let mut l = Lockout::new(policy());
        let a = ip(ATTACKER);
        for i in 0..10 {
            // Two per minute never reach three within one.
            assert!(l.failed(c.at(i * 60), a, None).is_empty());
            assert!(l.failed(c.at(i * 60 + 1), a, None).is_empty());
        }
        assert_eq!(l.admit(c.at(600), a, None), Admission::Check);
    }

    #[test]
    fn a_success_forgives_the_sources_earlier_typos() {
        let c = Clock(Instant::now());
        let mut l = Lockout::new(policy());
        let p = ip(PHONE);
        l.failed(c.at(0), p, Some("alice"));
        l.failed(c.at(1), p, Some("alice"));
        l.succeeded(c.at(2), p, "alice");
        assert!(l.failed(c.at(3), p, None).is_empty());
        assert!(l.failed(c.at(4), p, None).is_empty());
        assert_eq!(l.admit(c.at(4), p, Some("alice")), Admission::Check);
        // The user's count is not forgiven: a success says nothing about guesses elsewhere.
        let blocks = l.failed(c.at(5), ip(ATTACKER), Some("alice"));
        assert_eq!(blocks[0].who, Culprit::User("alice".to_string()));
    }

    #[test]
    fn a_user_block_spares_the_users_own_phones_only() {
        let c = Clock(Instant::now());
        let mut l = Lockout::new(policy());
        let phone = ip(PHONE);
        l.succeeded(c.at(0), phone, "alice");
        // Guesses at alice's password from three addresses: one each, never a source block.
        let mut blocks = Vec::new();
        for (i, a) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
            blocks.extend(l.failed(c.at(10 + i as u64), ip(a), Some("alice")));
        }
        assert_eq!(blocks.len(), 1, "{blocks:?}");
        assert_eq!(blocks[0].who, Culprit::User("alice".to_string()));
        // Any new address asking for alice is refused; alice's phone is not; bob is not.
        assert_eq!(
            l.admit(c.at(13), ip("192.0.2.9"), Some("alice")),
            Admission::Refuse
        );
        assert_eq!(l.admit(c.at(13), phone, Some("alice")), Admission::Check);
        assert_eq!(
            l.admit(c.at(13), ip("192.0.2.9"), Some("bob")),
            Admission::Check
        );
        // Nor is a request that names no user (it gets a challenge, whose answer names one).
        assert_eq!(l.admit(c.at(13), ip("192.0.2.9"), None), Admission::Check);
        // The phone's own failures during the block do not extend it.
        assert!(l.failed(c.at(14), phone, Some("alice")).is_empty());
        assert_eq!(
            l.admit(c.at(21), ip("192.0.2.9"), Some("alice")),
            Admission::Refuse
        );
        assert_eq!(
            l.admit(c.at(22), ip("192.0.2.9"), Some("alice")),
            Admission::Check
        );
    }

    #[test]
    fn trust_runs_out() {
        let c = Clock(Instant::now());
        let mut l = Lockout::new(policy());
        let phone = ip(PHONE);
        l.succeeded(c.at(0), phone, "alice");
        let later = TRUST.as_secs();
        for i in 0..3 {
            l.failed(c.at(later + i), ip(ATTACKER), Some("alice"));
        }
        assert_eq!(
            l.admit(c.at(later + 3), phone, Some("alice")),
            Admission::Refuse
        );
    }

    #[test]
    fn unknown_and_known_names_are_blocked_alike() {
        // The lockout never learns which names exist: the same failures give the same blocks.
        let c = Clock(Instant::now());
        let run = |user: &str| {
            let mut l = Lockout::new(policy());
            let mut out = Vec::new();
            for i in 0..8 {
                let src = ip(&format!("192.0.2.{}", i % 4));
                out.push(l.admit(c.at(i), src, Some(user)));
                let b = l.failed(c.at(i), src, Some(user));
                out.extend(b.iter().map(|_| Admission::Refuse));
            }
            out
        };
        assert_eq!(run("alice"), run("nosuchuser"));
    }

    #[test]
    fn ipv6_sources_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            source_key(ip("2001:db8:1:2:aaaa::1")),
            source_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            source_key(ip("2001:db8:1:2::1")),
            source_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(source_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn tables_stay_bounded_under_a_sweep_of_sources_and_names() {
        let c = Clock(Instant::now());
        let mut l = Lockout::with_caps(policy(), 100, 100, 10);
        let blocked = ip(ATTACKER);
        for i in 0..3 {
            l.failed(c.at(i), blocked, None);
        }
        for i in 0..50_000u32 {
            let src = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.failed(c.at(5), src, Some(&format!("user{i}")));
            l.succeeded(c.at(5), src, &format!("user{i}"));
        }
        let (s, u, t) = l.sizes();
        assert!(s <= 100 && u <= 100 && t <= 10, "{s} {u} {t}");
        // The block in force survived the flood of new keys.
        assert_eq!(l.admit(c.at(6), blocked, None), Admission::Refuse);
        // Very long names are counted by their prefix.
        let long = "a".repeat(10_000);
        for i in 0..3 {
            l.failed(c.at(7 + i), ip(PHONE), Some(&long));
        }
        assert!(l.sizes().1 <= 100);
    }

    #[test]
    fn zero_failures_turns_throttling_off() {
        let c = Clock(Instant::now());
        let mut l = Lockout::new(LockoutPolicy {
            failures: 0,
            ..policy()
        });
        for i in 0..100 {
            assert!(l.failed(c.at(i), ip(ATTACKER), Some("alice")).is_empty());
        }
        assert_eq!(l.admit(c.at(100), ip(ATTACKER), None), Admission::Check);
    }
}
