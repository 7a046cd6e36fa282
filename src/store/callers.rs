//! Who called: a caller's normalised identity ([`CallerId`]), the earlier calls to the line the
//! store returns ([`PreviousCall`]), and the repeat-caller rule as the store sees it
//! ([`RepeatRule`]).
//!
//! The rule itself (`crate::repeat`) is not the store's: the store runs whatever rule the call
//! brings in [`super::CallStart::repeat_rule`]. It must still run *inside* the transaction
//! that records the call: that transaction reads the calls before it and writes the new call
//! with its `repeat` flag under the write lock, so two calls arriving at once (or on two nodes
//! sharing a database) cannot both miss that one of them is a repeat. Deciding after the store
//! returned the previous calls would take a second transaction and reopen that race; so the
//! rule travels into the store as a trait object, and the store keeps no copy of it.

use std::time::Duration;

use jiff::Timestamp;

/// A caller's identity after normalisation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CallerId {
    /// An E.164 number, `+` and digits (`+15551230001`).
    E164(String),
    /// A usable identity that is not an E.164 number: an extension, a SIP user name, or a
    /// national number when no default country is configured. Still compared for repeats.
    Other(String),
    /// Withheld, anonymous or missing: never a repeat, never matched to a client.
    Anonymous,
}

/// What the store writes for an anonymous caller.
pub const ANONYMOUS: &str = "anonymous";

impl CallerId {
    /// The text stored and compared: the number, the name, or `anonymous`.
    pub fn as_str(&self) -> &str {
        match self {
            CallerId::E164(s) | CallerId::Other(s) => s,
            CallerId::Anonymous => ANONYMOUS,
        }
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, CallerId::Anonymous)
    }
}

impl std::fmt::Display for CallerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One earlier call to the line, as the store returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousCall {
    /// The normalised caller ([`CallerId::as_str`]; `anonymous` for withheld numbers).
    pub caller: String,
    pub started_at: Timestamp,
}

/// The repeat-caller rule, as [`super::CallStore::call_started`] runs it inside its
/// transaction (see the module docs for why inside).
pub trait RepeatRule: Send + Sync + std::fmt::Debug {
    /// How many previous calls to the line [`RepeatRule::is_repeat`] needs to see.
    fn lookback(&self) -> usize;

    /// How far back a caller's calls count (for `calls_in_window` and `agreed_recently`).
    fn window(&self) -> Duration;

    /// Whether a call from `caller` starting at `now` is a repeat, given the calls to the line
    /// before it, most recent first (at most [`RepeatRule::lookback`] of them).
    fn is_repeat(&self, caller: &CallerId, previous_calls: &[PreviousCall], now: Timestamp)
    -> bool;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::test_support::{TempDir, start};
    use super::super::{CallStore, SqliteStore};
    use super::*;
    use crate::repeat::RepeatPolicy;

    /// A rule of the caller's own, not `crate::repeat`'s: "the same number as the call just
    /// before, however long ago", which the default 30-minute window would not call a repeat.
    #[derive(Debug)]
    struct SameAsLast;

    impl RepeatRule for SameAsLast {
        fn lookback(&self) -> usize {
            1
        }

        fn window(&self) -> Duration {
            Duration::from_secs(24 * 3600)
        }

        fn is_repeat(&self, caller: &CallerId, previous: &[PreviousCall], _now: Timestamp) -> bool {
            previous
                .first()
                .is_some_and(|p| p.caller == caller.as_str())
        }
    }

    /// The store decides repeats with the rule the call brings (it has none of its own), from the
    /// calls before it read in the same transaction, and keeps the answer for a second start.
    #[test]
    fn the_store_runs_the_rule_the_call_brings() {
        let dir = TempDir::new("rule");
        let store = SqliteStore::open(dir.path()).expect("open");
        let go = |id: &str, at: &str, rule: Arc<dyn RepeatRule>| {
            let mut s = start(id, "+15551230001", at);
            s.repeat_rule = rule;
            store.call_started(&s).expect("start")
        };
        assert!(!go("c1", "2026-11-28T03:00:00Z", Arc::new(SameAsLast)).repeat);
        let default = go(
            "c2",
            "2026-11-28T05:00:00Z",
            Arc::new(RepeatPolicy::default()),
        );
        assert!(!default.repeat, "two hours apart is no repeat by default");
        let own = go("c3", "2026-11-28T07:00:00Z", Arc::new(SameAsLast));
        assert!(own.repeat, "the caller's own rule decided");
        assert_eq!(own.previous_calls.len(), 1);
        assert_eq!(
            own.calls_in_window, 3,
            "its window (a day) counts all three"
        );
        let again = go(
            "c3",
            "2026-11-28T07:00:00Z",
            Arc::new(RepeatPolicy::default()),
        );
        assert!(again.repeat, "a second start answers as the first did");
    }
}
