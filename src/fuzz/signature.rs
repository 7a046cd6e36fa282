//! A coarse fingerprint of what one input did, built up by a target as it runs.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};

/// The set of things a target saw (statuses sent, error kinds, digits), folded into a `u64`.
/// A set, not a sequence: the same feature twice, or in another order, is the same behaviour,
/// so the fuzzer's pool of parents grows with new behaviour and not with every input. Only what
/// is the same on every run goes in (never random tags or times), so a run is reproducible by
/// seed.
pub(super) struct Signature(BTreeSet<u64>);

impl Signature {
    pub(super) fn new(target: &str) -> Self {
        let mut s = Signature(BTreeSet::new());
        s.add(target);
        s
    }

    pub(super) fn add(&mut self, what: impl Hash) {
        let mut h = DefaultHasher::new();
        what.hash(&mut h);
        self.0.insert(h.finish());
    }

    /// The variant of an error (or any enum) without its payload, which would make every
    /// message text a new feature.
    pub(super) fn kind<T>(&mut self, value: &T) {
        self.add(std::mem::discriminant(value));
    }

    pub(super) fn finish(self) -> u64 {
        let mut h = DefaultHasher::new();
        self.0.hash(&mut h);
        h.finish()
    }
}
