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
