//! `[oncall]`: the on-call rota (issue 15 item 4). A weekly rotation of staff users with a
//! handover time in the line's `[hours]` time zone, plus `[[oncall.overrides]]` for dates; the
//! desk group member `oncall` rings whoever it names at the moment of the call (`crate::oncall`).

use jiff::civil::{Date, DateTime, Time, Weekday};
use serde::Deserialize;

use super::{Config, ConfigError};
use crate::oncall::{LocalOverride, Rota};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OncallConfig {
    /// When a period hands over, local time: "HH:MM", or "Mon 09:00" (the weekday must be the
    /// one `start` falls on: a check, not a second setting).
    #[serde(default = "default_handover")]
    pub handover: String,
    /// The local date the first person's period starts (YYYY-MM-DD); periods count from it.
    #[serde(default)]
    pub start: String,
    /// Days per person (7: weekly).
    #[serde(default = "default_period_days")]
    pub period_days: u32,
    /// `[[staff.users]]` names, in turn.
    #[serde(default)]
    pub rotation: Vec<String>,
    #[serde(default)]
    pub overrides: Vec<OncallOverride>,
}

impl Default for OncallConfig {
    fn default() -> OncallConfig {
        OncallConfig {
            handover: default_handover(),
            start: String::new(),
            period_days: default_period_days(),
            rotation: Vec::new(),
            overrides: Vec::new(),
        }
    }
}

fn default_handover() -> String {
    "Mon 09:00".into()
}

fn default_period_days() -> u32 {
    7
}

/// `[[oncall.overrides]]`: `user` is on call from `from` to `to` (local "YYYY-MM-DDTHH:MM").
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OncallOverride {
    pub user: String,
    pub from: String,
    pub to: String,
}

/// A bad `[oncall]` value: the key, the value and why.
#[derive(Debug)]
pub struct OncallError {
    pub key: &'static str,
    pub value: String,
    pub reason: String,
}

impl Config {
    /// The checked rota, in the `[hours]` time zone.
    pub fn rota(&self) -> Result<Rota, OncallError> {
        let bad = |key, value: &str, reason: String| OncallError {
            key,
            value: value.to_string(),
            reason,
        };
        let c = &self.oncall;
        let hours = crate::hours::BusinessHours::from_config(&self.hours)
            .map_err(|e| bad(e.key, &e.value, e.reason))?;
        let (weekday, handover) = parse_handover(&c.handover).ok_or_else(|| {
            bad(
                "oncall.handover",
                &c.handover,
                "expected a local time \"HH:MM\" or a weekday and a time, e.g. \"Mon 09:00\""
                    .into(),
            )
        })?;
        if c.period_days == 0 {
            return Err(bad(
                "oncall.period_days",
                "0",
                "must be at least 1 (7: weekly)".into(),
            ));
        }
        let start = if c.start.is_empty() {
            if !c.rotation.is_empty() {
                return Err(bad(
                    "oncall.start",
                    "",
                    "a rotation needs the local date its first period starts, e.g. \
                     start = \"2026-11-30\""
                        .into(),
                ));
            }
            Date::constant(2000, 1, 3)
        } else {
            c.start.parse::<Date>().map_err(|e| {
                bad(
                    "oncall.start",
                    &c.start,
                    format!("{e}; expected a date YYYY-MM-DD"),
                )
            })?
        };
        if let Some(day) = weekday.filter(|_| !c.start.is_empty()) {
            if !c.period_days.is_multiple_of(7) {
                return Err(bad(
                    "oncall.handover",
                    &c.handover,
                    format!(
                        "a weekday only makes sense with whole weeks (period_days = {}); give \
                         the time alone",
                        c.period_days
                    ),
                ));
            }
            if start.weekday() != day {
                return Err(bad(
                    "oncall.start",
                    &c.start,
                    format!(
                        "is a {:?} but oncall.handover = {:?} hands over on {day:?}s",
                        start.weekday(),
                        c.handover
                    ),
                ));
            }
        }
        let users: Vec<&str> = self.staff.users.iter().map(|u| u.name.as_str()).collect();
        let known = |key, user: &str| {
            if users.contains(&user) {
                Ok(())
            } else {
                Err(bad(
                    key,
                    user,
                    "not a [[staff.users]] name: list the user there (their registered phones \
                     are rung)"
                        .into(),
                ))
            }
        };
        for u in &c.rotation {
            known("oncall.rotation", u)?;
        }
        let mut overrides = Vec::new();
        for o in &c.overrides {
            known("oncall.overrides.user", &o.user)?;
            let local = |key, s: &str| {
                s.parse::<DateTime>().map_err(|e| {
                    bad(
                        key,
                        s,
                        format!(
                            "{e}; expected a local time in {} like \"2026-12-24T17:00\"",
                            hours.time_zone_name()
                        ),
                    )
                })
            };
            overrides.push(LocalOverride {
                user: o.user.clone(),
                from: local("oncall.overrides.from", &o.from)?,
                to: local("oncall.overrides.to", &o.to)?,
            });
        }
        Rota::new(
            hours.time_zone().clone(),
            start,
            handover,
            c.period_days,
            c.rotation.clone(),
            overrides,
        )
        .map_err(|e| bad("oncall", "", e.to_string()))
    }

    /// `[oncall]` and what it touches: the rota, the reserved member name, mobile numbers.
    pub(super) fn validate_oncall(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key, value: &str, reason: String| ConfigError::Value {
            origin: origin.to_string(),
            key,
            value: value.to_string(),
            reason,
        };
        for u in &self.staff.users {
            if u.name == crate::oncall::MEMBER {
                return Err(bad(
                    "staff.users.name",
                    &u.name,
                    "reserved: the desk member \"oncall\" means whoever the [oncall] rota names"
                        .into(),
                ));
            }
            if let Some(m) = &u.mobile {
                let digits = m.strip_prefix('+').unwrap_or("");
                if !(6..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit())
                {
                    return Err(bad(
                        "staff.users.mobile",
                        m,
                        format!(
                            "user {}: expected an E.164 number, e.g. \"+15551230001\"",
                            u.name
                        ),
                    ));
                }
            }
        }
        self.rota().map_err(|e| bad(e.key, &e.value, e.reason))?;
        Ok(())
    }
}

/// `"09:00"` or `"Mon 09:00"` (weekday names in English, short or long, any case).
fn parse_handover(s: &str) -> Option<(Option<Weekday>, Time)> {
    let mut words = s.split_whitespace();
    let (first, second) = (words.next()?, words.next());
    if words.next().is_some() {
        return None;
    }
    let (day, time) = match second {
        Some(t) => (Some(parse_weekday(first)?), t),
        None => (None, first),
    };
    // "HH:MM" only: seconds on a rota are noise, and "9" alone is ambiguous to a reader.
    if time.len() != 5 {
        return None;
    }
    Some((day, time.parse::<Time>().ok()?))
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    let s = s.to_ascii_lowercase();
    let days = [
        ("mon", Weekday::Monday),
        ("tue", Weekday::Tuesday),
        ("wed", Weekday::Wednesday),
        ("thu", Weekday::Thursday),
        ("fri", Weekday::Friday),
        ("sat", Weekday::Saturday),
        ("sun", Weekday::Sunday),
    ];
    days.iter().find_map(|(short, day)| {
        let full = format!("{:?}", day).to_ascii_lowercase();
        (s == *short || s == full).then_some(*day)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: &str = "[[staff.users]]\nname = \"alice\"\npassword = \"a\"\n\
        [[staff.users]]\nname = \"bob\"\npassword = \"b\"\nmobile = \"+15550002\"\n";

    fn load(oncall: &str) -> Result<Config, ConfigError> {
        Config::from_str(&format!("[staff]\n{USERS}\n{oncall}"), "test.toml")
    }

    fn err(oncall: &str) -> String {
        load(oncall).unwrap_err().to_string()
    }

    #[test]
    fn a_rota_of_staff_users_loads_and_names_who_is_on_call() {
        let c = load(
            "[oncall]\nhandover = \"Mon 09:00\"\nstart = \"2026-11-30\"\n\
             rotation = [\"alice\", \"bob\"]\n\
             [[oncall.overrides]]\nuser = \"alice\"\nfrom = \"2026-12-08T17:00\"\nto = \"2026-12-09T09:00\"\n",
        )
        .unwrap();
        let rota = c.rota().unwrap();
        let at = |s: &str| rota.on_call(s.parse().unwrap()).map(|o| o.user);
        assert_eq!(at("2026-12-02T15:00:00Z").as_deref(), Some("alice"));
        assert_eq!(at("2026-12-08T15:00:00Z").as_deref(), Some("bob"));
        assert_eq!(at("2026-12-08T23:00:00Z").as_deref(), Some("alice"));
        assert_eq!(c.staff.users[1].mobile.as_deref(), Some("+15550002"));
        // The built-in defaults: an empty rota.
        assert!(Config::embedded().rota().unwrap().is_empty());
    }

    #[test]
    fn bad_rotas_name_the_key_at_fault() {
        let cases = [
            (
                "[oncall]\nstart = \"2026-11-30\"\nrotation = [\"alice\", \"zed\"]\n",
                "oncall.rotation = \"zed\": not a [[staff.users]] name",
            ),
            (
                "[oncall]\nrotation = [\"alice\"]\n",
                "oncall.start = \"\": a rotation needs",
            ),
            (
                "[oncall]\nstart = \"2026-12-01\"\nrotation = [\"alice\"]\n",
                "oncall.start = \"2026-12-01\": is a Tuesday but oncall.handover = \"Mon 09:00\"",
            ),
            (
                "[oncall]\nhandover = \"9am\"\n",
                "oncall.handover = \"9am\": expected a local time",
            ),
            (
                "[[oncall.overrides]]\nuser = \"carol\"\nfrom = \"2026-12-24T17:00\"\nto = \"2026-12-27T09:00\"\n",
                "oncall.overrides.user = \"carol\"",
            ),
            (
                "[[oncall.overrides]]\nuser = \"bob\"\nfrom = \"Christmas Eve\"\nto = \"2026-12-27T09:00\"\n",
                "oncall.overrides.from = \"Christmas Eve\"",
            ),
            (
                "[[oncall.overrides]]\nuser = \"bob\"\nfrom = \"2026-12-27T09:00\"\nto = \"2026-12-24T17:00\"\n",
                "must be after `from`",
            ),
            (
                "[[desk.groups]]\nname = \"desk\"\nmembers = [\"oncall\"]\n",
                "desk group \"desk\": member \"oncall\" needs an on-call rota",
            ),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(e.contains(want), "{text}\n=> {e}\nwanted {want}");
        }
    }

    #[test]
    fn oncall_is_no_staff_user_name_and_mobiles_are_e164() {
        let e = Config::from_str(
            "[[staff.users]]\nname = \"oncall\"\npassword = \"x\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("staff.users.name = \"oncall\": reserved"), "{e}");
        let e = Config::from_str(
            "[[staff.users]]\nname = \"bob\"\npassword = \"x\"\nmobile = \"555-0102\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("staff.users.mobile = \"555-0102\""), "{e}");
    }
}
