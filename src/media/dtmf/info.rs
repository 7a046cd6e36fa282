//! DTMF carried in SIP INFO requests: the body formats phones actually send.
//!
//! There is no standard for this (RFC 6086 leaves INFO packages to others), so we read the two
//! de facto formats: `application/dtmf-relay` (Cisco's `Signal=5\r\nDuration=160\r\n`) and
//! `application/dtmf` (the body is the digit alone). Anything else is not a digit.

use super::{DtmfDigit, DtmfSource};

/// Duration reported when a `dtmf-relay` body has no usable `Duration` line; 100 ms is what
/// Asterisk assumes in that case, and a typical short key press.
pub const DEFAULT_DURATION_MS: u32 = 100;

/// The digit a SIP INFO request carries, or `None` if its body is not DTMF.
///
/// `content_type` is the Content-Type header value (parameters such as `; charset=` allowed);
/// `body` is the message body.
pub fn parse_info(content_type: Option<&str>, body: &[u8]) -> Option<DtmfDigit> {
    let mime = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    let (digit, duration_ms) = match mime.as_str() {
        "application/dtmf-relay" => parse_relay(text)?,
        "application/dtmf" => (signal_digit(text)?, DEFAULT_DURATION_MS),
        _ => return None,
    };
    Some(DtmfDigit {
        digit,
        duration_ms,
        source: DtmfSource::SipInfo,
    })
}

/// `Signal=` and `Duration=` lines, keys in any case, spaces around `=` allowed, CRLF or LF.
fn parse_relay(text: &str) -> Option<(char, u32)> {
    let mut digit = None;
    let mut duration = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "signal" => digit = Some(signal_digit(value)?),
            "duration" => duration = value.trim().parse::<u32>().ok(),
            _ => {}
        }
    }
    Some((digit?, duration.unwrap_or(DEFAULT_DURATION_MS)))
}

/// One DTMF key: `0`–`9`, `*`, `#`, `A`–`D` (either case), or the RFC 4733 event numbers 10–15
/// that some phones put there instead (`Signal=10` for `*`, `Signal=11` for `#`).
fn signal_digit(value: &str) -> Option<char> {
    let value = value.trim();
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
        (Some(c), None) if ('a'..='d').contains(&c.to_ascii_lowercase()) => {
            Some(c.to_ascii_uppercase())
        }
        _ => match value.parse::<u8>() {
            Ok(n @ 10..=15) => super::rfc4733::event_digit(n),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: Option<&str> = Some("application/dtmf-relay");

    fn digit(ct: Option<&str>, body: &str) -> Option<(char, u32)> {
        parse_info(ct, body.as_bytes()).map(|d| {
            assert_eq!(d.source, DtmfSource::SipInfo);
            (d.digit, d.duration_ms)
        })
    }

    #[test]
    fn dtmf_relay_as_cisco_and_sipp_send_it() {
        assert_eq!(
            digit(RELAY, "Signal=5\r\nDuration=160\r\n"),
            Some(('5', 160))
        );
        assert_eq!(
            digit(RELAY, "Signal=#\r\nDuration=250\r\n"),
            Some(('#', 250))
        );
        assert_eq!(
            digit(RELAY, "Signal= *\r\nDuration= 100\r\n"),
            Some(('*', 100))
        );
        // Bare LF, lower-case keys, extra spaces, unknown lines, no trailing newline.
        assert_eq!(digit(RELAY, "signal = 9\nduration=80"), Some(('9', 80)));
        assert_eq!(
            digit(RELAY, "Signal=1\r\nVolume=10\r\nDuration=300"),
            Some(('1', 300))
        );
        assert_eq!(
            digit(RELAY, "Duration=120\r\nSignal=0\r\n"),
            Some(('0', 120))
        );
    }

    #[test]
    fn dtmf_relay_numeric_signals_and_letters() {
        assert_eq!(
            digit(RELAY, "Signal=10\r\nDuration=160\r\n"),
            Some(('*', 160))
        );
        assert_eq!(
            digit(RELAY, "Signal=11\r\nDuration=160\r\n"),
            Some(('#', 160))
        );
        assert_eq!(
            digit(RELAY, "Signal=12\r\n"),
            Some(('A', DEFAULT_DURATION_MS))
        );
        assert_eq!(
            digit(RELAY, "Signal=d\r\nDuration=160\r\n"),
            Some(('D', 160))
        );
        assert_eq!(
            digit(RELAY, "Signal=7\r\nDuration=long\r\n"),
            Some(('7', DEFAULT_DURATION_MS))
        );
    }

    #[test]
    fn content_type_is_case_insensitive_and_may_carry_parameters() {
        let ct = Some("Application/DTMF-Relay ; charset=utf-8");
        assert_eq!(digit(ct, "Signal=3\r\nDuration=160\r\n"), Some(('3', 160)));
    }

    #[test]
    fn application_dtmf_is_the_bare_digit() {
        let ct = Some("application/dtmf");
        assert_eq!(digit(ct, "5"), Some(('5', DEFAULT_DURATION_MS)));
        assert_eq!(digit(ct, "#\r\n"), Some(('#', DEFAULT_DURATION_MS)));
        assert_eq!(digit(ct, " 11 "), Some(('#', DEFAULT_DURATION_MS)));
    }

    #[test]
    fn anything_else_is_not_a_digit() {
        assert_eq!(digit(None, "Signal=5\r\n"), None);
        assert_eq!(digit(Some("text/plain"), "5"), None);
        assert_eq!(digit(Some("application/sdp"), "v=0\r\n"), None);
        assert_eq!(digit(Some("application/dtmf-relayx"), "Signal=5"), None);
        assert_eq!(digit(RELAY, ""), None);
        assert_eq!(digit(RELAY, "Duration=160\r\n"), None);
        assert_eq!(digit(RELAY, "Signal=\r\nDuration=160\r\n"), None);
        assert_eq!(digit(RELAY, "Signal=55\r\n"), None);
        assert_eq!(digit(RELAY, "Signal=16\r\n"), None); // hook flash is no digit
        assert_eq!(digit(RELAY, "Signal=E\r\n"), None);
        assert_eq!(digit(RELAY, "Signal=5\r\nSignal=x\r\n"), None);
        assert_eq!(digit(Some("application/dtmf"), "55"), None);
        assert_eq!(digit(Some("application/dtmf"), ""), None);
        assert_eq!(parse_info(RELAY, &[0xFF, 0xFE, b'5']), None);
    }
}
