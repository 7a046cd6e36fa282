//! The on-call rota (`[oncall]`): who the desk member `oncall` rings at a given moment.
//!
//! Pure: built from the checked config, asked with a [`Timestamp`] (the line's [`Clock`], so
//! `serve --now` and `simulate --at` move it). Two sources decide, overrides first:
//!
//! - **Overrides**: `user` is on call from `from` to `to` (local times in the line's zone). When
//!   several cover a moment, the shortest wins (a one-evening swap inside a week of holiday cover
//!   takes effect whichever is listed first); of equally long ones, the one listed last.
//! - **The rotation**: period `k` (k = 0, 1, ...) starts on `start + k × period_days` at the
//!   handover time, local wall-clock time, and belongs to `rotation[k mod len]`. So a Monday
//!   09:00 handover stays at 09:00 across a daylight-saving change (that week is an hour shorter
//!   or longer). Before the first period starts, nobody is on call by rotation.
//!
//! A local time that does not exist (a handover at 02:30 on the spring-forward night) or exists
//! twice (01:30 on the fall-back night) is resolved as jiff's `compatible` disambiguation does,
//! like most calendar software: a time in the gap moves forward by the gap's length (02:30 →
//! 03:30 daylight time), an ambiguous time takes its first occurrence (01:30 daylight time).
//!
//! [`Clock`]: crate::clock::Clock

use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use thiserror::Error;

pub mod text;

pub use text::{describe_shift, report};

/// The desk group member that means "whoever is on call at the moment of the call".
pub const MEMBER: &str = "oncall";

/// How many candidate changes [`Rota::shift`] walks to find where a shift starts or ends: a
/// one-person rotation never changes, and looking further would only slow the answer down.
const WALK_LIMIT: usize = 1000;

/// Why someone is on call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// Their turn in the weekly rotation.
    Rotation,
    /// An `[[oncall.overrides]]` entry.
    Override,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Rotation => "rotation",
            Why::Override => "override",
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is on call, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OnCall {
    pub user: String,
    pub why: Why,
}

/// A stretch of time with one answer: `on_call` (nobody when `None`) from `since` (`None`: for
/// as far back as the rota goes) until `until` (`None`: no change ahead).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shift {
    pub on_call: Option<OnCall>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// One override, its local times resolved to instants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    pub user: String,
    pub from: Timestamp,
    pub to: Timestamp,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RotaError {
    #[error("period_days must be at least 1")]
    Period,
    #[error("{0} is outside the calendar's range")]
    Range(String),
    #[error("override for {user}: `to` ({to}) must be after `from` ({from})")]
    EmptyOverride {
        user: String,
        from: String,
        to: String,
    },
}

/// The checked rota. The default is empty: nobody is ever on call.
#[derive(Clone, Debug)]
pub struct Rota {
    tz: TimeZone,
    start: Date,
    handover: Time,
    period_days: i64,
    rotation: Vec<String>,
    overrides: Vec<Override>,
}

impl Default for Rota {
    fn default() -> Rota {
        Rota {
            tz: TimeZone::UTC,
            start: Date::constant(2000, 1, 3),
            handover: Time::midnight(),
            period_days: 7,
            rotation: Vec::new(),
            overrides: Vec::new(),
        }
    }
}

/// One override as configured: local wall-clock times in the rota's zone.
#[derive(Clone, Debug)]
pub struct LocalOverride {
    pub user: String,
    pub from: DateTime,
    pub to: DateTime,
}

impl Rota {
    /// A rota in `tz` whose first period starts on `start` at `handover`.
    pub fn new(
        tz: TimeZone,
        start: Date,
        handover: Time,
        period_days: u32,
        rotation: Vec<String>,
        overrides: Vec<LocalOverride>,
    ) -> Result<Rota, RotaError> {
        if period_days == 0 {
            return Err(RotaError::Period);
        }
        let resolve = |dt: DateTime| {
            tz.to_ambiguous_timestamp(dt)
                .compatible()
                .map_err(|_| RotaError::Range(dt.to_string()))
        };
        let overrides = overrides
            .into_iter()
            .map(|o| {
                let (from, to) = (resolve(o.from)?, resolve(o.to)?);
                if to <= from {
                    return Err(RotaError::EmptyOverride {
                        user: o.user,
                        from: o.from.to_string(),
                        to: o.to.to_string(),
                    });
                }
                Ok(Override {
                    user: o.user,
                    from,
                    to,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rota = Rota {
            tz,
            start,
            handover,
            period_days: i64::from(period_days),
            rotation,
            overrides,
        };
        if !rota.rotation.is_empty() && rota.period_start(0).is_none() {
            return Err(RotaError::Range(start.to_string()));
        }
        Ok(rota)
    }

    /// No rotation and no overrides: nobody is ever on call.
    pub fn is_empty(&self) -> bool {
        self.rotation.is_empty() && self.overrides.is_empty()
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Who is on call at `at` (overrides first, then the rotation).
    pub fn on_call(&self, at: Timestamp) -> Option<OnCall> {
        let mut best: Option<&Override> = None;
        for o in self.overrides.iter().filter(|o| o.from <= at && at < o.to) {
            // `<=`: of equally long overrides, the one listed last wins.
            if best.is_none_or(|b| o.to.duration_since(o.from) <= b.to.duration_since(b.from)) {
                best = Some(o);
            }
        }
        if let Some(o) = best {
            return Some(OnCall {
                user: o.user.clone(),
                why: Why::Override,
            });
        }
        let k = self.period_index(at)?;
        let len = i64::try_from(self.rotation.len()).ok()?;
        let who = self
            .rotation
            .get(usize::try_from(k.rem_euclid(len)).ok()?)?;
        Some(OnCall {
            user: who.clone(),
            why: Why::Rotation,
        })
    }

    /// The shift `at` falls in: who is on call, since when and until when (the neighbouring
    /// moments where the answer changes, person or reason).
    pub fn shift(&self, at: Timestamp) -> Shift {
        let on_call = self.on_call(at);
        let mut since = None;
        let mut c = self.change_at_or_before(at);
        for _ in 0..WALK_LIMIT {
            let Some(t) = c else { break };
            since = Some(t);
            let Some(before) = t.checked_sub(SignedDuration::from_nanos(1)).ok() else {
                break;
            };
            if self.on_call(before) != on_call {
                break;
            }
            c = self.change_at_or_before(before);
            if c.is_none() {
                // Nothing earlier can change the answer: it has held for as far back as we know.
                since = None;
            }
        }
        let mut until = None;
        let mut c = self.change_after(at);
        for _ in 0..WALK_LIMIT {
            let Some(t) = c else { break };
            until = Some(t);
            if self.on_call(t) != on_call {
                break;
            }
            until = None;
            c = self.change_after(t);
        }
        Shift {
            on_call,
            since,
            until,
        }
    }

    /// The next `n` shifts after the one `at` falls in, each starting where the one before ends.
    pub fn next_changes(&self, at: Timestamp, n: usize) -> Vec<Shift> {
        let mut out = Vec::new();
        let mut cur = self.shift(at);
        while out.len() < n {
            let Some(next) = cur.until else { break };
            cur = self.shift(next);
            out.push(cur.clone());
        }
        out
    }

    /// Every user the rota names (rotation and overrides), for the config check.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.rotation
            .iter()
            .map(String::as_str)
            .chain(self.overrides.iter().map(|o| o.user.as_str()))
    }

    /// Every period is the same person's.
    fn single_person(&self) -> bool {
        !self.rotation.is_empty() && self.rotation.windows(2).all(|w| w[0] == w[1])
    }

    /// When period `k` starts: its local start date at the handover time, in the zone.
    fn period_start(&self, k: i64) -> Option<Timestamp> {
        let days = k.checked_mul(self.period_days)?;
        let date = self
            .start
            .checked_add(SignedDuration::from_hours(days.checked_mul(24)?))
            .ok()?;
        self.tz
            .to_ambiguous_timestamp(date.to_datetime(self.handover))
            .compatible()
            .ok()
    }

    /// The period `at` falls in, if the rotation has started by then.
    fn period_index(&self, at: Timestamp) -> Option<i64> {
        if self.rotation.is_empty() {
            return None;
        }
        let k0 = self.period_guess(at);
        // The guess is off by at most one either way (the handover time, a DST shift).
        (k0 - 1..=k0 + 1)
            .rev()
            .filter(|k| *k >= 0)
            .find(|k| self.period_start(*k).is_some_and(|t| t <= at))
    }

    /// The period whose local start date is on or before `at`'s local date.
    fn period_guess(&self, at: Timestamp) -> i64 {
        let date = self.tz.to_datetime(at).date();
        let days = date.duration_since(self.start).as_secs().div_euclid(86_400);
        days.div_euclid(self.period_days)
    }

    /// The latest moment at or before `at` where the answer may change. A one-person rotation
    /// changes only where it starts: its later handovers are not walked one by one.
    fn change_at_or_before(&self, at: Timestamp) -> Option<Timestamp> {
        let handover = if self.single_person() {
            self.period_start(0).filter(|t| *t <= at)
        } else {
            self.period_index(at).and_then(|k| self.period_start(k))
        };
        self.overrides
            .iter()
            .flat_map(|o| [o.from, o.to])
            .filter(|t| *t <= at)
            .chain(handover)
            .max()
    }

    /// The first moment after `at` where the answer may change.
    fn change_after(&self, at: Timestamp) -> Option<Timestamp> {
        let handover = if self.rotation.is_empty() {
            None
        } else if self.single_person() {
            self.period_start(0).filter(|t| *t > at)
        } else {
            let k0 = self.period_guess(at).max(0);
            (k0.saturating_sub(1).max(0)..=k0 + 2)
                .filter_map(|k| self.period_start(k))
                .find(|t| *t > at)
        };
        self.overrides
            .iter()
            .flat_map(|o| [o.from, o.to])
            .filter(|t| *t > at)
            .chain(handover)
            .min()
    }
}

#[cfg(test)]
mod tests;
