//! Durations as admins write them in flows: `"500ms"`, `"6s"`, `"3m"`, `"1h"`, `"1m30s"`.
//!
//! Deliberately tiny: whole numbers, the units `h`, `m`, `s`, `ms`, each at most once and
//! largest first, so `"1m30s"` reads one way only and `"30s1m"` is a mistake we point at.

use std::time::Duration;

/// Why a duration string did not parse; `offset` is the byte in the string to point at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DurationError {
    pub offset: usize,
    pub message: String,
    pub hint: String,
}

const HINT: &str =
    "write a whole number and a unit: \"500ms\", \"6s\", \"3m\", \"1h\" or \"1m30s\"";

/// Parses `text` (the content of a TOML string) into a [`Duration`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let fail = |offset: usize, message: String| DurationError {
        offset,
        message,
        hint: HINT.to_string(),
    };
    if text.is_empty() {
        return Err(fail(0, "empty duration".into()));
    }
    let bytes = text.as_bytes();
    let mut total = Duration::ZERO;
    // Rank of the previous unit (h=4 .. ms=1); each next unit must be strictly smaller.
    let mut last_rank = u8::MAX;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(fail(
                start,
                format!(
                    "bad duration \"{text}\": expected a number at `{}`",
                    &text[start..]
                ),
            ));
        }
        let number: u64 = text[start..i]
            .parse()
            .map_err(|_| fail(start, format!("bad duration \"{text}\": number too large")))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &text[unit_start..i];
        let (rank, one) = match unit {
            "h" => (4, Duration::from_secs(3600)),
            "m" => (3, Duration::from_secs(60)),
            "s" => (2, Duration::from_secs(1)),
            "ms" => (1, Duration::from_millis(1)),
            "" => {
                return Err(fail(
                    unit_start,
                    format!("bad duration \"{text}\": the number {number} has no unit"),
                ));
            }
            other => {
                return Err(fail(
                    unit_start,
                    format!("bad duration \"{text}\": unknown unit `{other}` (units: ms, s, m, h)"),
                ));
            }
        };
        if rank >= last_rank {
            return Err(fail(
                unit_start,
                format!(
                    "bad duration \"{text}\": units must go from largest to smallest, each once"
                ),
            ));
        }
        last_rank = rank;
        let part = u32::try_from(number)
            .ok()
            .and_then(|n| one.checked_mul(n))
            .ok_or_else(|| fail(start, format!("bad duration \"{text}\": number too large")))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| fail(start, format!("bad duration \"{text}\": number too large")))?;
    }
    Ok(total)
}

/// The shortest text that [`parse_duration`] reads back as `d` (for graphs and the simulator).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_combinations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("6s"), Ok(Duration::from_secs(6)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1s250ms"), Ok(Duration::from_millis(1250)));
    }

    #[test]
    fn rejects_with_offsets() {
        let e = parse_duration("6").unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (1, "bad duration \"6\": the number 6 has no unit")
        );
        let e = parse_duration("6 s").unwrap_err();
        assert_eq!(e.offset, 1);
        let e = parse_duration("5x").unwrap_err();
        assert_eq!(
            e.message,
            "bad duration \"5x\": unknown unit `x` (units: ms, s, m, h)"
        );
        let e = parse_duration("30s1m").unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for text in ["500ms", "6s", "3m", "1h", "1m30s", "0s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
