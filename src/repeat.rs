//! Who is calling, and are they calling again: caller-number normalisation and repeat-caller
//! detection.
//!
//! Both are pure functions of their inputs and `now`, so they are tested without a clock or a
//! database. The store (`store::CallStore::call_started`) runs [`is_repeat`], handed to it as a
//! [`crate::store::RepeatRule`], inside the transaction that records the call, so two calls
//! arriving at once (or on two nodes) cannot both miss that one of them is a repeat.
//!
//! The rule, from the procedure: "the phone system alerts when the same number calls twice in a
//! row". A call is a repeat when the previous call *to the line* (from anyone) came from the same
//! number within [`RepeatPolicy::window`]. Generalised with [`RepeatPolicy::times`] = N: the last
//! N-1 calls to the line all came from this number, all within the window. Anonymous callers are
//! never repeats: we cannot tell two withheld numbers apart.

use std::time::Duration;

use jiff::Timestamp;

// The identity and the earlier calls are the store's values (it keeps and returns them); the
// rule that judges them is here.
pub use crate::store::{ANONYMOUS, CallerId, PreviousCall};

/// The default repeat window (the procedure's "within 30 minutes").
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 60);
/// The default number of consecutive calls that make a repeat ("twice in a row").
pub const DEFAULT_TIMES: u32 = 2;
/// National numbers shorter than this are internal extensions ("100", "2001"), not phone
/// numbers, so the default country code is not put in front of them.
const MIN_NATIONAL_DIGITS: usize = 6;
/// E.164 allows at most 15 digits after the `+`.
const MAX_E164_DIGITS: usize = 15;
/// User parts that mean "number withheld" (compared case-insensitively).
const ANONYMOUS_NAMES: &[&str] = &[
    "anonymous",
    "unknown",
    "restricted",
    "private",
    "withheld",
    "unavailable",
];

/// When a call counts as a repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepeatPolicy {
    /// How far back the previous calls may lie (measured from the new call's start).
    pub window: Duration,
    /// How many calls in a row from one number make a repeat (2 = "twice in a row"). Values
    /// below 2 are treated as 2: a first call is never a repeat.
    pub times: u32,
}

impl Default for RepeatPolicy {
    fn default() -> Self {
        RepeatPolicy {
            window: DEFAULT_WINDOW,
            times: DEFAULT_TIMES,
        }
    }
}

impl RepeatPolicy {
    /// How many previous calls to the line [`is_repeat`] needs to see.
    pub fn lookback(&self) -> usize {
        self.times.max(2) as usize - 1
    }
}

/// Normalise a SIP user part (From, or P-Asserted-Identity from a trusted proxy) to a
/// [`CallerId`]: E.164 when possible.
///
/// - visual separators (space, `-`, `.`, `(`, `)`, `/`) are dropped, and URI parameters after
///   `;` (`5551230001;phone-context=...`) are ignored;
/// - `+` and digits is E.164; `00` (and `011` when the default country is `1`) is the
///   international prefix and becomes `+`;
/// - with `default_country` (digits, e.g. `"1"`, `"44"`), a national number of at least six
///   digits gets the country code: for `1` (NANP) ten digits, or eleven starting with `1`; for
///   other countries one leading trunk `0` is dropped first (`020 7946 0000`, `"44"` →
///   `+442079460000`). Countries that keep the leading 0 (Italy) are not special-cased;
/// - `anonymous`, `unknown`, `restricted`, `private`, `withheld`, `unavailable` and empty →
///   [`CallerId::Anonymous`];
/// - anything else (short extensions, names) → [`CallerId::Other`], unchanged but trimmed.
pub fn normalise(raw_user_part: &str, default_country: Option<&str>) -> CallerId {
    let user = raw_user_part.split(';').next().unwrap_or("").trim();
    if user.is_empty()
        || ANONYMOUS_NAMES
            .iter()
            .any(|name| user.eq_ignore_ascii_case(name))
    {
        return CallerId::Anonymous;
    }
    let compact: String = user
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '/'))
        .collect();
    let country = default_country
        .map(|c| c.trim_start_matches('+'))
        .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()));
    if let Some(digits) = compact.strip_prefix('+') {
        return e164_or_other(digits, &compact);
    }
    if compact.is_empty() || !compact.bytes().all(|b| b.is_ascii_digit()) {
        return CallerId::Other(user.to_string());
    }
    if let Some(rest) = compact.strip_prefix("00") {
        return e164_or_other(rest, &compact);
    }
    let Some(country) = country else {
        return CallerId::Other(compact);
    };
    if country == "1" {
        if let Some(rest) = compact.strip_prefix("011") {
            return e164_or_other(rest, &compact);
        }
        return match compact.len() {
            10 => e164_or_other(&format!("1{compact}"), &compact),
            11 if compact.starts_with('1') => e164_or_other(&compact, &compact),
            _ => CallerId::Other(compact),
        };
    }
    if compact.len() < MIN_NATIONAL_DIGITS {
        return CallerId::Other(compact);
    }
    let national = compact.strip_prefix('0').unwrap_or(&compact);
    e164_or_other(&format!("{country}{national}"), &compact)
}

/// `+digits` when `digits` is a plausible E.164 number, otherwise `fallback` as [`CallerId::Other`].
fn e164_or_other(digits: &str, fallback: &str) -> CallerId {
    let plausible = !digits.is_empty()
        && digits.len() <= MAX_E164_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if plausible {
        CallerId::E164(format!("+{digits}"))
    } else {
        CallerId::Other(fallback.to_string())
    }
}

/// The store runs this rule inside the transaction that records the call (see
/// [`crate::store::RepeatRule`]).
impl crate::store::RepeatRule for RepeatPolicy {
    fn lookback(&self) -> usize {
        RepeatPolicy::lookback(self)
    }

    fn window(&self) -> Duration {
        self.window
    }

    fn is_repeat(
        &self,
        caller: &CallerId,
        previous_calls: &[PreviousCall],
        now: Timestamp,
    ) -> bool {
        is_repeat(self, caller, previous_calls, now)
    }
}

/// Whether a call from `caller` starting at `now` is a repeat, given the calls to the line before
/// it, most recent first (`previous_calls[0]` is the call just before this one). Only the first
/// [`RepeatPolicy::lookback`] entries are looked at; fewer than that means "not a repeat".
pub fn is_repeat(
    policy: &RepeatPolicy,
    caller: &CallerId,
    previous_calls: &[PreviousCall],
    now: Timestamp,
) -> bool {
    if caller.is_anonymous() {
        return false;
    }
    let needed = policy.lookback();
    if previous_calls.len() < needed {
        return false;
    }
    // Saturating: a window too long for i64 milliseconds means "forever".
    let window_ms = i64::try_from(policy.window.as_millis()).unwrap_or(i64::MAX);
    previous_calls[..needed].iter().all(|prev| {
        // A previous call stamped after `now` (clock skew between nodes) is within the window.
        let age_ms = now.as_millisecond() - prev.started_at.as_millisecond();
        prev.caller == caller.as_str() && age_ms <= window_ms
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn prev(caller: &str, at: &str) -> PreviousCall {
        PreviousCall {
            caller: caller.to_string(),
            started_at: t(at),
        }
    }

    fn e164(s: &str) -> CallerId {
        CallerId::E164(s.to_string())
    }

    #[test]
    fn normalise_e164_and_separators() {
        assert_eq!(normalise("+1 (555) 123-0001", None), e164("+15551230001"));
        assert_eq!(
            normalise("+44.20.7946.0000", Some("1")),
            e164("+442079460000")
        );
        assert_eq!(normalise("0044 20 7946 0000", None), e164("+442079460000"));
        assert_eq!(
            normalise("01144 20 7946 0000", Some("1")),
            e164("+442079460000")
        );
        assert_eq!(
            normalise("5551230001;phone-context=example.com", Some("1")),
            e164("+15551230001")
        );
    }

    #[test]
    fn normalise_national_numbers_with_default_country() {
        assert_eq!(normalise("5551230001", Some("1")), e164("+15551230001"));
        assert_eq!(normalise("1-555-123-0001", Some("1")), e164("+15551230001"));
        assert_eq!(normalise("5551230001", Some("+1")), e164("+15551230001"));
        assert_eq!(
            normalise("020 7946 0000", Some("44")),
            e164("+442079460000")
        );
        // Without a country a national number stays as dialled, minus separators.
        assert_eq!(
            normalise("555-123-0001", None),
            CallerId::Other("5551230001".into())
        );
    }

    #[test]
    fn normalise_extensions_names_and_anonymous() {
        assert_eq!(normalise("100", Some("1")), CallerId::Other("100".into()));
        assert_eq!(
            normalise("2001", Some("44")),
            CallerId::Other("2001".into())
        );
        assert_eq!(
            normalise("alice", Some("1")),
            CallerId::Other("alice".into())
        );
        for raw in ["anonymous", "Anonymous", "unknown", "RESTRICTED", "", "  "] {
            assert_eq!(normalise(raw, Some("1")), CallerId::Anonymous, "{raw:?}");
        }
        assert_eq!(CallerId::Anonymous.as_str(), "anonymous");
        // Too long for E.164: kept, but not claimed to be E.164.
        assert_eq!(
            normalise("+1234567890123456", None),
            CallerId::Other("+1234567890123456".into())
        );
    }

    #[test]
    fn twice_in_a_row_is_a_repeat() {
        let policy = RepeatPolicy::default();
        let previous = [prev("+15551230001", "2026-11-27T22:10:00Z")];
        assert!(is_repeat(
            &policy,
            &e164("+15551230001"),
            &previous,
            t("2026-11-27T22:30:00Z")
        ));
        // Exactly at the window edge still counts.
        assert!(is_repeat(
            &policy,
            &e164("+15551230001"),
            &previous,
            t("2026-11-27T22:40:00Z")
        ));
    }

    #[test]
    fn first_call_is_not_a_repeat() {
        let policy = RepeatPolicy::default();
        assert!(!is_repeat(
            &policy,
            &e164("+15551230001"),
            &[],
            t("2026-11-27T22:30:00Z")
        ));
    }

    #[test]
    fn different_number_in_between_is_not_a_repeat() {
        let policy = RepeatPolicy::default();
        let previous = [
            prev("+15559990000", "2026-11-27T22:20:00Z"),
            prev("+15551230001", "2026-11-27T22:10:00Z"),
        ];
        assert!(!is_repeat(
            &policy,
            &e164("+15551230001"),
            &previous,
            t("2026-11-27T22:30:00Z")
        ));
    }

    #[test]
    fn outside_the_window_is_not_a_repeat() {
        let policy = RepeatPolicy::default();
        let previous = [prev("+15551230001", "2026-11-27T21:59:59Z")];
        assert!(!is_repeat(
            &policy,
            &e164("+15551230001"),
            &previous,
            t("2026-11-27T22:30:00Z")
        ));
        let wide = RepeatPolicy {
            window: Duration::from_secs(3600),
            ..RepeatPolicy::default()
        };
        assert!(is_repeat(
            &wide,
            &e164("+15551230001"),
            &previous,
            t("2026-11-27T22:30:00Z")
        ));
    }

    #[test]
    fn anonymous_is_never_a_repeat() {
        let policy = RepeatPolicy::default();
        let previous = [prev(ANONYMOUS, "2026-11-27T22:29:00Z")];
        assert!(!is_repeat(
            &policy,
            &CallerId::Anonymous,
            &previous,
            t("2026-11-27T22:30:00Z")
        ));
    }

    #[test]
    fn three_times_needs_two_previous_calls_from_the_number() {
        let policy = RepeatPolicy {
            times: 3,
            ..RepeatPolicy::default()
        };
        assert_eq!(policy.lookback(), 2);
        let me = e164("+15551230001");
        let now = t("2026-11-27T22:30:00Z");
        let one = [prev("+15551230001", "2026-11-27T22:20:00Z")];
        assert!(!is_repeat(&policy, &me, &one, now));
        let two = [
            prev("+15551230001", "2026-11-27T22:20:00Z"),
            prev("+15551230001", "2026-11-27T22:10:00Z"),
        ];
        assert!(is_repeat(&policy, &me, &two, now));
        let broken = [
            prev("+15551230001", "2026-11-27T22:20:00Z"),
            prev("+15559990000", "2026-11-27T22:10:00Z"),
            prev("+15551230001", "2026-11-27T22:05:00Z"),
        ];
        assert!(!is_repeat(&policy, &me, &broken, now));
        let too_old = [
            prev("+15551230001", "2026-11-27T22:20:00Z"),
            prev("+15551230001", "2026-11-27T21:50:00Z"),
        ];
        assert!(!is_repeat(&policy, &me, &too_old, now));
    }

    #[test]
    fn times_below_two_behaves_like_two() {
        let policy = RepeatPolicy {
            times: 0,
            ..RepeatPolicy::default()
        };
        assert_eq!(policy.lookback(), 1);
        assert!(!is_repeat(
            &policy,
            &e164("+15551230001"),
            &[],
            t("2026-11-27T22:30:00Z")
        ));
    }
}
