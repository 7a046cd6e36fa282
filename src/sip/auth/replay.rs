//! Replay detection for digest answers (RFC 7616 §3.3 and §5.4): the nonce counts already used
//! under each (user, nonce, cnonce), sans-IO on the nonces' own Unix-second clock.
//!
//! A right answer is only ever good once: with qop=auth each request carries a new `nc`, so an
//! `nc` seen before under the same nonce and cnonce is a replay (a sniffed REGISTER or call-back
//! INVITE sent again, from anywhere, with any Call-ID); without qop (RFC 2069) there is no count,
//! so such a nonce is single-use. Only answers that already passed the password check get here,
//! so nobody without the password can add entries.
//!
//! Counts are kept as a sliding window (the highest `nc` and a bitmap of the 64 below it), so
//! requests sent in parallel on one nonce may arrive out of order; one further back than that is
//! refused as if replayed. Entries live as long as their nonce is fresh. The table is capped; when
//! it is full the oldest entry goes and every nonce issued at or before that one's issue time is
//! treated as stale from then on (`stale=true`: the phone retries with a fresh nonce), so an
//! evicted entry can never make its nonce reusable.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

use super::digest::Verified;
use super::error::AuthError;
use super::table::BoundedMap;

/// Nonce counts this far below the highest seen are still told apart.
const WINDOW: u32 = 64;
/// Expired entries are swept at most this often (Unix seconds), or when the table is full.
const SWEEP_EVERY_S: u64 = 60;

#[derive(Clone, Copy, Debug)]
struct Counts {
    issued: u64,
    highest: u32,
    /// Bit i: `highest - i` was used.
    used: u64,
}

impl Counts {
    /// Marks `nc` used; false when it already was (or is too far back to tell).
    fn use_nc(&mut self, nc: u32) -> bool {
        if nc > self.highest {
            let shift = nc - self.highest;
            self.used = if shift >= WINDOW {
                0
            } else {
                self.used << shift
            };
            self.used |= 1;
            self.highest = nc;
            return true;
        }
        let back = self.highest - nc;
        if back >= WINDOW || self.used & (1 << back) != 0 {
            return false;
        }
        self.used |= 1 << back;
        true
    }
}

#[derive(Debug)]
pub struct NonceCounts {
    seen: BoundedMap<u64, Counts>,
    /// Keys the table by a keyed hash of (user, nonce, cnonce): fixed-size entries, and keys a
    /// peer cannot aim at one another.
    hasher: RandomState,
    /// How long a nonce is fresh (its TTL plus the future skew the digest check allows).
    lifetime_s: u64,
    /// Nonces issued at or before this second may have lost their entry to eviction.
    evicted_up_to: Option<u64>,
    last_sweep: u64,
    next_sweep: u64,
}

impl NonceCounts {
    /// `lifetime`: how long after its issue time a nonce can still be answered; `cap`: entries.
    pub fn new(lifetime: Duration, cap: usize) -> Self {
        NonceCounts {
            seen: BoundedMap::new(cap),
            hasher: RandomState::new(),
            lifetime_s: lifetime.as_secs(),
            evicted_up_to: None,
            last_sweep: 0,
            next_sweep: 0,
        }
    }

    /// Records a verified answer at `now_unix`: `Ok` when its nonce count is new,
    /// [`AuthError::Replayed`] when it was used before, [`AuthError::StaleNonce`] when the nonce
    /// is one whose record may have been evicted.
    pub fn record(&mut self, answer: &Verified, now_unix: u64) -> Result<(), AuthError> {
        self.sweep(now_unix);
        let key = self
            .hasher
            .hash_one((&answer.username, &answer.nonce, &answer.cnonce));
        if let Some(counts) = self.seen.get_mut(&key) {
            return if counts.use_nc(answer.nc) {
                Ok(())
            } else {
                Err(AuthError::Replayed)
            };
        }
        if self.evicted_up_to.is_some_and(|t| answer.issued <= t) {
            return Err(AuthError::StaleNonce);
        }
        let counts = Counts {
            issued: answer.issued,
            highest: answer.nc,
            used: 1,
        };
        if let Some((_, gone)) = self.seen.insert(key, counts, |_| false) {
            self.evicted_up_to = Some(self.evicted_up_to.unwrap_or(0).max(gone.issued));
        }
        Ok(())
    }

    /// Entries held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.len() == 0
    }

    fn sweep(&mut self, now_unix: u64) {
        // The sweep walks every entry: a full table is swept at most once a second.
        let full_due = self.seen.is_full() && now_unix > self.last_sweep;
        if now_unix < self.next_sweep && !full_due {
            return;
        }
        self.last_sweep = now_unix;
        self.next_sweep = now_unix.saturating_add(SWEEP_EVERY_S);
        let lifetime = self.lifetime_s;
        self.seen
            .retain(|_, c| c.issued.saturating_add(lifetime) >= now_unix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn answer(user: &str, nonce: &str, cnonce: &str, nc: u32, issued: u64) -> Verified {
        Verified {
            username: user.to_string(),
            issued,
            nonce: nonce.to_string(),
            cnonce: cnonce.to_string(),
            nc,
        }
    }

    fn table() -> NonceCounts {
        NonceCounts::new(Duration::from_secs(305), 1000)
    }

    #[test]
    fn each_nonce_count_is_good_once() {
        let mut t = table();
        let a = |nc| answer("alice", "n1", "c1", nc, T0);
        assert_eq!(t.record(&a(1), T0), Ok(()));
        assert_eq!(t.record(&a(1), T0 + 1), Err(AuthError::Replayed));
        assert_eq!(t.record(&a(2), T0 + 2), Ok(()));
        assert_eq!(t.record(&a(2), T0 + 2), Err(AuthError::Replayed));
        assert_eq!(t.record(&a(1), T0 + 3), Err(AuthError::Replayed));
    }

    #[test]
    fn out_of_order_counts_within_the_window_are_accepted_once() {
        let mut t = table();
        let a = |nc| answer("alice", "n1", "c1", nc, T0);
        assert_eq!(t.record(&a(5), T0), Ok(()));
        assert_eq!(t.record(&a(3), T0), Ok(()));
        assert_eq!(t.record(&a(4), T0), Ok(()));
        assert_eq!(t.record(&a(3), T0), Err(AuthError::Replayed));
        assert_eq!(t.record(&a(70), T0), Ok(()));
        // 6 is 64 behind 70: too far back to tell, refused.
        assert_eq!(t.record(&a(6), T0), Err(AuthError::Replayed));
        assert_eq!(t.record(&a(7), T0), Ok(()));
        assert_eq!(t.record(&a(7), T0), Err(AuthError::Replayed));
        // A jump past the whole window forgets the old bits.
        assert_eq!(t.record(&a(1000), T0), Ok(()));
        assert_eq!(t.record(&a(999), T0), Ok(()));
        assert_eq!(t.record(&a(70), T0), Err(AuthError::Replayed));
    }

    #[test]
    fn rfc2069_answers_are_single_use() {
        let mut t = table();
        let a = answer("alice", "n1", "", 0, T0);
        assert_eq!(t.record(&a, T0), Ok(()));
        assert_eq!(t.record(&a, T0 + 10), Err(AuthError::Replayed));
    }

    #[test]
    fn users_nonces_and_cnonces_are_counted_apart() {
        let mut t = table();
        assert_eq!(t.record(&answer("alice", "n1", "c1", 1, T0), T0), Ok(()));
        assert_eq!(t.record(&answer("bob", "n1", "c1", 1, T0), T0), Ok(()));
        assert_eq!(t.record(&answer("alice", "n2", "c1", 1, T0), T0), Ok(()));
        assert_eq!(t.record(&answer("alice", "n1", "c2", 1, T0), T0), Ok(()));
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn entries_expire_with_their_nonce() {
        let mut t = table();
        for i in 0..100 {
            let n = format!("n{i}");
            assert_eq!(t.record(&answer("alice", &n, "c", 1, T0), T0), Ok(()));
        }
        assert_eq!(t.len(), 100);
        // Still fresh at the end of the lifetime; swept once it has passed.
        t.record(&answer("alice", "x", "c", 1, T0 + 305), T0 + 305)
            .unwrap();
        assert_eq!(t.len(), 101);
        t.record(&answer("alice", "y", "c", 1, T0 + 400), T0 + 400)
            .unwrap();
        assert_eq!(t.len(), 2, "only the two young nonces are left");
    }

    #[test]
    fn a_full_table_stays_bounded_and_an_evicted_nonce_is_stale_never_reusable() {
        let mut t = NonceCounts::new(Duration::from_secs(305), 8);
        let first = answer("alice", "n0", "c", 1, T0);
        assert_eq!(t.record(&first, T0), Ok(()));
        for i in 1..100 {
            let n = format!("n{i}");
            // Issued a second later each, all still fresh.
            assert_eq!(
                t.record(&answer("alice", &n, "c", 1, T0 + i), T0 + 100),
                Ok(())
            );
            assert!(t.len() <= 8);
        }
        // The first entry is long gone: its replay must not be accepted as new.
        assert_eq!(t.record(&first, T0 + 100), Err(AuthError::StaleNonce));
        // A fresh nonce (issued after everything evicted) is fine.
        assert_eq!(
            t.record(&answer("alice", "new", "c", 1, T0 + 100), T0 + 100),
            Ok(())
        );
    }
}
