//! Showing caller-supplied text to people: in logs, on the admin's terminal, in a spreadsheet.
//!
//! A From user, an INFO body or a ticket comes from whoever sent the packet. Written raw, a CR or
//! LF forges log lines, an ESC sequence can clear or retitle the admin's terminal, and a CSV cell
//! starting with `=` runs as a formula when billing opens the export. A leaf module (it imports
//! nothing from the crate), so every layer, sip and media included, may use it.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// `s` with control characters (C0, DEL, C1) and the invisible line/direction overrides shown as
/// visible escapes: `\r`, `\n`, `\t`, `\0`, `\x1b`, `\u{202e}`. Ordinary text, non-ASCII
/// letters included, is returned as is, without copying.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(Escaped(s).to_string())
}

/// A `Display` adapter for log fields (`from = %Escaped(&user)`): tracing's `%` writes the text
/// as it is, so caller text goes through this.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\r' => f.write_str("\\r")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                '\0' => f.write_str("\\0")?,
                c if needs_escape(c) && (c as u32) < 0x100 => write!(f, "\\x{:02x}", c as u32)?,
                c if needs_escape(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

fn needs_escape(c: char) -> bool {
    // Line and paragraph separators and the bidirectional overrides are not "control" to
    // Unicode, but they break or reorder a line just the same.
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// One CSV cell made safe for a spreadsheet (OWASP "CSV injection"): a cell starting with `=`,
/// `+`, `-`, `@`, TAB or CR gets a leading `'`, so it is shown as text, not run as a formula.
///
/// A plain number is left alone: `+15551230001` (a caller in E.164) or `-2.5`. OWASP would
/// prefix those too, but a spreadsheet reads a signed number as a number, never as a formula, and
/// a billing export where every phone number reads `'+1555...` is wrong for the people who use
/// it. Only `+` or `-` followed by digits (with at most one `.` between digits) counts as a
/// number; `+1+cmd|...` or `-1)*cmd` do not.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    let Some(first) = s.chars().next() else {
        return Cow::Borrowed(s);
    };
    if !matches!(first, '=' | '+' | '-' | '@' | '\t' | '\r') {
        return Cow::Borrowed(s);
    }
    if matches!(first, '+' | '-') && is_plain_number(&s[1..]) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(format!("'{s}"))
}

fn is_plain_number(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, "0"));
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(int) && digits(frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible() {
        assert_eq!(
            escape_control("a\r\nb\x1b[2Jc\0d\te\u{7f}\u{9b}\u{202e}"),
            "a\\r\\nb\\x1b[2Jc\\0d\\te\\x7f\\x9b\\u{202e}"
        );
        assert!(matches!(escape_control("Zoë +1555"), Cow::Borrowed(_)));
        assert_eq!(
            format!("{}", Escaped("x\x1by")),
            "x\\x1by",
            "the Display adapter escapes the same way"
        );
    }

    #[test]
    fn formulas_are_neutralised_and_numbers_kept() {
        for bad in [
            "=HYPERLINK(\"x\")",
            "=cmd|' /C calc'!A0",
            "@SUM(A1)",
            "+1+cmd|x",
            "-1)*cmd",
            "\tx",
            "\rx",
            "+",
            "-",
        ] {
            assert_eq!(csv_cell(bad), format!("'{bad}"), "{bad:?}");
        }
        for good in [
            "+15551230001",
            "-2.5",
            "-7",
            "100",
            "",
            "Acme",
            "a=b",
            "1.5",
        ] {
            assert_eq!(csv_cell(good), good, "{good:?}");
        }
    }
}
