//! A size-capped map for the security tables (failures per source and per user, trusted sources,
//! used nonce counts): whoever sends the packets decides how many keys there are, so no table may
//! grow with them. When full, the oldest entry goes, except that a few entries the caller wants
//! kept (blocked sources, say) are passed over, so a flood of new keys cannot simply wash out an
//! active block; past those few, the oldest goes regardless and memory stays bounded.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// How many protected entries eviction passes over before it evicts one anyway.
const SPARE_PROBES: usize = 16;

#[derive(Debug)]
pub(super) struct BoundedMap<K, V> {
    entries: HashMap<K, (V, u64)>,
    /// Keys in the order they were inserted (protected ones re-queued at the back), each with
    /// the sequence number of its insertion; a pair whose key was removed or re-inserted since
    /// is stale and skipped.
    order: VecDeque<(K, u64)>,
    cap: usize,
    next_seq: u64,
}

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    /// A map of at most `cap` entries (at least one).
    pub(super) fn new(cap: usize) -> Self {
        BoundedMap {
            entries: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            next_seq: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_full(&self) -> bool {
        self.entries.len() >= self.cap
    }

    pub(super) fn get(&self, k: &K) -> Option<&V> {
        self.entries.get(k).map(|(v, _)| v)
    }

    pub(super) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.entries.get_mut(k).map(|(v, _)| v)
    }

    /// Keeps only the entries `keep` says yes to.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.entries.retain(|k, (v, _)| keep(k, v));
        let entries = &self.entries;
        self.order
            .retain(|(k, seq)| entries.get(k).is_some_and(|(_, s)| s == seq));
    }

    /// Inserts or replaces `k`. A new key in a full map first evicts the oldest entry that
    /// `spare` does not protect (looking past at most [`SPARE_PROBES`] protected ones), which is
    /// returned.
    pub(super) fn insert(&mut self, k: K, v: V, spare: impl Fn(&V) -> bool) -> Option<(K, V)> {
        if let Some((old, _)) = self.entries.get_mut(&k) {
            *old = v;
            return None;
        }
        let evicted = if self.is_full() {
            self.evict(spare)
        } else {
            None
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(k.clone(), (v, seq));
        self.order.push_back((k, seq));
        evicted
    }

    fn evict(&mut self, spare: impl Fn(&V) -> bool) -> Option<(K, V)> {
        let mut passed_over = 0;
        while let Some((k, seq)) = self.order.pop_front() {
            let Some((v, s)) = self.entries.get(&k) else {
                continue;
            };
            if *s != seq {
                continue;
            }
            if passed_over < SPARE_PROBES && spare(v) {
                passed_over += 1;
                self.order.push_back((k, seq));
                continue;
            }
            return self.entries.remove(&k).map(|(v, _)| (k, v));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_oldest_when_full_and_never_grows() {
        let mut m = BoundedMap::new(3);
        for i in 0..3 {
            assert_eq!(m.insert(i, i * 10, |_| false), None);
        }
        assert_eq!(m.insert(3, 30, |_| false), Some((0, 0)));
        assert_eq!(m.insert(4, 40, |_| false), Some((1, 10)));
        assert_eq!(m.len(), 3);
        // Replacing an existing key evicts nothing.
        assert_eq!(m.insert(4, 41, |_| false), None);
        assert_eq!(m.get(&4), Some(&41));
        for i in 100..10_000 {
            m.insert(i, i, |_| false);
        }
        assert_eq!(m.len(), 3);
        assert!(m.order.len() <= 3, "{}", m.order.len());
    }

    #[test]
    fn protected_entries_survive_a_flood_of_new_keys_up_to_the_probe_limit() {
        let mut m = BoundedMap::new(4);
        m.insert("blocked", 1, |_| false);
        m.insert("a", 0, |_| false);
        m.insert("b", 0, |_| false);
        m.insert("c", 0, |_| false);
        let spare = |v: &i32| *v == 1;
        for i in 0..1000 {
            let k: &'static str = Box::leak(format!("new{i}").into_boxed_str());
            let evicted = m.insert(k, 0, spare);
            assert_ne!(evicted.map(|e| e.0), Some("blocked"));
        }
        assert_eq!(m.get(&"blocked"), Some(&1));
        // When everything is protected the oldest goes after all.
        let mut all = BoundedMap::new(2);
        all.insert(1, 1, spare);
        all.insert(2, 1, spare);
        assert_eq!(all.insert(3, 1, spare).map(|e| e.0), Some(1));
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn retain_drops_entries_and_their_order() {
        let mut m = BoundedMap::new(10);
        for i in 0..10 {
            m.insert(i, i, |_| false);
        }
        m.retain(|_, v| v % 2 == 0);
        assert_eq!(m.len(), 5);
        assert_eq!(m.order.len(), 5);
        assert!(!m.is_full());
        // A re-inserted key is evicted by its new age, not its old one.
        m.insert(1, 1, |_| false);
        for i in 20..24 {
            m.insert(i, i, |_| false);
        }
        assert!(m.is_full());
        assert_eq!(m.insert(30, 30, |_| false).map(|e| e.0), Some(0));
        assert_eq!(m.get_mut(&1).copied(), Some(1));
    }
}
