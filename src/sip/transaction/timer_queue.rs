//! Deadlines of many timers in one binary heap, so the endpoint finds the next one and the due
//! ones without walking every transaction: `set` and `pop_due` cost O(log n) in the number of
//! live timers, `next` O(1).
//!
//! Each key has at most one live deadline. Changing or clearing it does not search the heap: the
//! old entry stays behind and is recognised as stale (its sequence number is no longer the key's)
//! when it reaches the top. Stale entries at the top are dropped eagerly, so [`next`] is exact;
//! the others leave by the time their instant passes, which bounds the heap by the timers set in
//! the last 64*T1.
//!
//! [`next`]: TimerQueue::next

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::Instant;

struct Entry<K> {
    at: Instant,
    seq: u64,
    key: K,
}

impl<K> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl<K> Eq for Entry<K> {}

impl<K> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Entry<K> {
    // Reversed: `BinaryHeap` is a max-heap and we want the earliest deadline on top (ties in
    // the order they were set).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A min-heap of deadlines, one per key.
pub struct TimerQueue<K> {
    heap: BinaryHeap<Entry<K>>,
    /// The live deadline of each key and the sequence number of its heap entry.
    armed: HashMap<K, (Instant, u64)>,
    seq: u64,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            armed: HashMap::new(),
            seq: 0,
        }
    }
}

impl<K: Clone + Eq + Hash> TimerQueue<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (`Some`) or clears (`None`) the deadline of `key`, replacing any earlier one.
    pub fn set(&mut self, key: &K, at: Option<Instant>) {
        match at {
            None => {
                self.armed.remove(key);
            }
            Some(at) => {
                if self.armed.get(key).is_some_and(|(a, _)| *a == at) {
                    return;
                }
                self.seq += 1;
                self.armed.insert(key.clone(), (at, self.seq));
                self.heap.push(Entry {
                    at,
                    seq: self.seq,
                    key: key.clone(),
                });
            }
        }
        self.drop_stale_top();
    }

    /// The earliest live deadline.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.at)
    }

    /// Removes and returns one key whose deadline is `<= now`, earliest first; `None` when no
    /// deadline is due. The key's deadline is cleared: set it again after firing its timer.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        while let Some(top) = self.heap.peek() {
            if top.at > now {
                return None;
            }
            let entry = self.heap.pop()?;
            if self.is_live(&entry) {
                self.armed.remove(&entry.key);
                self.drop_stale_top();
                return Some(entry.key);
            }
        }
        None
    }

    /// The number of keys with a live deadline.
    pub fn len(&self) -> usize {
        self.armed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }

    /// Heap entries including stale ones (for tests and memory accounting).
    pub fn entries(&self) -> usize {
        self.heap.len()
    }

    fn is_live(&self, e: &Entry<K>) -> bool {
        self.armed.get(&e.key).is_some_and(|(_, seq)| *seq == e.seq)
    }

    fn drop_stale_top(&mut self) {
        while let Some(top) = self.heap.peek() {
            if self.is_live(top) {
                break;
            }
            self.heap.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        q.set(&"b", Some(t0 + ms(20)));
        q.set(&"a", Some(t0 + ms(10)));
        q.set(&"c", Some(t0 + ms(30)));
        assert_eq!(q.next(), Some(t0 + ms(10)));
        assert_eq!(q.pop_due(t0 + ms(5)), None);
        assert_eq!(q.pop_due(t0 + ms(25)), Some("a"));
        assert_eq!(q.pop_due(t0 + ms(25)), Some("b"));
        assert_eq!(q.pop_due(t0 + ms(25)), None);
        assert_eq!(q.next(), Some(t0 + ms(30)));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn moving_or_clearing_a_deadline_leaves_no_live_duplicate() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        q.set(&1u32, Some(t0 + ms(10)));
        q.set(&1u32, Some(t0 + ms(50)));
        // The stale 10 ms entry was on top and is gone: next() is exact.
        assert_eq!(q.next(), Some(t0 + ms(50)));
        q.set(&2u32, Some(t0 + ms(5)));
        q.set(&2u32, None);
        assert_eq!(q.next(), Some(t0 + ms(50)));
        assert_eq!(q.pop_due(t0 + ms(100)), Some(1));
        assert_eq!(q.pop_due(t0 + ms(100)), None);
        assert!(q.is_empty());
        assert_eq!(q.entries(), 0);
        // Setting the same deadline twice keeps one entry.
        q.set(&3u32, Some(t0 + ms(7)));
        q.set(&3u32, Some(t0 + ms(7)));
        assert_eq!(q.entries(), 1);
    }

    #[test]
    fn many_timers_fire_each_exactly_once() {
        let t0 = Instant::now();
        let mut q = TimerQueue::new();
        for i in 0..10_000u64 {
            // Scrambled deadlines, each moved once.
            q.set(&i, Some(t0 + ms((i * 7919) % 1000)));
            q.set(&i, Some(t0 + ms((i * 104_729) % 2000)));
        }
        let mut fired = Vec::new();
        let mut last = t0;
        while let Some(at) = q.next() {
            assert!(at >= last, "deadlines come out in order");
            last = at;
            while let Some(k) = q.pop_due(at) {
                fired.push(k);
            }
        }
        fired.sort_unstable();
        assert_eq!(fired, (0..10_000).collect::<Vec<_>>());
        assert_eq!(
            q.entries(),
            0,
            "stale entries are gone once their time passed"
        );
    }
}
