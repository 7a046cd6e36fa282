//! The rota in words, for `ivr oncall`, `ivr simulate` and the logs: local times in the line's
//! zone with the weekday and the zone's abbreviation (EST/EDT tell a DST week apart).

use std::fmt::Write as _;

use jiff::Timestamp;

use super::{Rota, Shift};

/// `Mon 2026-12-07 09:00 EST`.
pub fn local(rota: &Rota, t: Timestamp) -> String {
    t.to_zoned_datetime(rota.time_zone().clone())
        .strftime("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

/// `bob (rotation) since Mon 2026-11-30 09:00 EST until Mon 2026-12-07 09:00 EST`; `extra` adds
/// words after the name (a mobile number).
pub fn describe_shift(rota: &Rota, s: &Shift, extra: &dyn Fn(&str) -> String) -> String {
    let mut out = match &s.on_call {
        Some(o) => format!("{}{} ({})", o.user, extra(&o.user), o.why),
        None => "nobody".to_string(),
    };
    if let Some(t) = s.since {
        let _ = write!(out, " since {}", local(rota, t));
    }
    match s.until {
        Some(t) => {
            let _ = write!(out, " until {}", local(rota, t));
        }
        None => out.push_str(", no change ahead"),
    }
    out
}

/// What `ivr oncall` prints: who is on call at `at`, then the next `n` changes.
pub fn report(rota: &Rota, at: Timestamp, n: usize, extra: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let tz = rota.time_zone().iana_name().unwrap_or("UTC");
    let _ = writeln!(out, "time: {at} ({} {tz})", local(rota, at));
    if rota.is_empty() {
        out.push_str(
            "on call: nobody: the rota is empty (set [oncall] rotation or [[oncall.overrides]])\n",
        );
        return out;
    }
    let now = rota.shift(at);
    let _ = writeln!(out, "on call: {}", describe_shift(rota, &now, extra));
    let next = rota.next_changes(at, n);
    if n > 0 {
        if next.is_empty() {
            out.push_str("next changes: none\n");
        } else {
            out.push_str("next changes:\n");
        }
    }
    for s in &next {
        let who = match &s.on_call {
            Some(o) => format!("{}{} ({})", o.user, extra(&o.user), o.why),
            None => "nobody".to_string(),
        };
        let when = s.since.map_or_else(String::new, |t| local(rota, t));
        let _ = writeln!(out, "  {when}  {who}");
    }
    out
}
