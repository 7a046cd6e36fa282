//! Voicemail file names: `<UTC time>_<caller>_<call-id>.wav`, built from what the caller sent.
//!
//! The caller and the Call-ID are the caller's to choose, so every byte but a few safe ones is
//! percent-escaped (nothing can climb out of the directory or hide a separator), and each part is
//! bounded: a 300-character Call-ID once made a name longer than the file system's 255-byte limit
//! and the message was never recorded. A part too long keeps its start and ends with `~` and a
//! hash of the whole value, so names stay unique and a recovery after a crash can still match the
//! file to its call (`~` is always escaped inside a part, so it marks a shortened one).

use sha2::{Digest, Sha256};

/// Longest escaped caller part, in bytes (a phone number or a SIP user is far shorter).
const CALLER_MAX: usize = 48;
/// Longest escaped Call-ID part, in bytes. With the 16-byte time, two `_` and `.wav`, the whole
/// name stays below 200 bytes, well inside NAME_MAX (255) of every common file system.
const CALL_ID_MAX: usize = 120;
/// Hex digits of the hash that ends a shortened part (64 bits: collisions are not a concern
/// among one line's recordings).
const HASH_HEX: usize = 16;

/// The file name of a voicemail recorded at `stamp` (`%Y%m%dT%H%M%SZ`).
pub(crate) fn voicemail(stamp: &str, caller: &str, call_id: &str) -> String {
    format!(
        "{stamp}_{}_{}.wav",
        bounded(caller, CALLER_MAX),
        bounded(call_id, CALL_ID_MAX)
    )
}

/// The Call-ID part [`voicemail`] writes for `call_id` (recovery compares it with live calls).
pub(crate) fn call_id_part(call_id: &str) -> String {
    bounded(call_id, CALL_ID_MAX)
}

/// Whether a part was shortened (its original cannot be read back from it).
pub(crate) fn is_shortened(part: &str) -> bool {
    part.contains('~')
}

/// `file_safe(s)`, or when longer than `max` bytes its start and `~<hash of s>`.
fn bounded(s: &str, max: usize) -> String {
    let safe = file_safe(s);
    if safe.len() <= max {
        return safe;
    }
    let mut cut = max - HASH_HEX - 1;
    // Never split a `%XX` escape: back up to its `%`.
    if let Some(pct) = safe[cut.saturating_sub(2)..cut].find('%') {
        cut = cut.saturating_sub(2) + pct;
    }
    let digest = Sha256::digest(s.as_bytes());
    let hash = hex::encode(&digest[..HASH_HEX / 2]);
    format!("{}~{hash}", &safe[..cut])
}

/// Percent-escapes everything but letters, digits, `+`, `-` and `.` (so `_` separates the parts
/// and `/` cannot escape the directory); [`unescape`] reverses it exactly.
fn file_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // A name of only dots would be `.` or `..`.
    if out.chars().all(|c| c == '.') {
        out = out.replace('.', "%2E");
    }
    out
}

/// Reverses [`file_safe`].
pub(crate) fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: &str = "20261127T223000Z";

    #[test]
    fn short_parts_are_escaped_and_read_back_exactly() {
        let name = voicemail(STAMP, "+15551230001", "a/b_c@host");
        assert_eq!(name, "20261127T223000Z_+15551230001_a%2Fb%5Fc%40host.wav");
        assert_eq!(unescape("a%2Fb%5Fc%40host"), "a/b_c@host");
        assert!(!is_shortened("a%2Fb%5Fc%40host"));
    }

    #[test]
    fn any_call_id_gives_a_bounded_safe_name() {
        for call_id in [
            "x".repeat(300),
            "@".repeat(300),
            "é".repeat(500),
            "../".repeat(100),
            format!("{}{}", "a".repeat(CALL_ID_MAX - 18), "%/~\0".repeat(40)),
        ] {
            let name = voicemail(STAMP, &"🙂".repeat(100), &call_id);
            assert!(name.len() < 200, "{} bytes: {name}", name.len());
            assert!(
                name.bytes().all(|b| b.is_ascii_alphanumeric()
                    || matches!(b, b'+' | b'-' | b'.' | b'%' | b'_' | b'~')),
                "{name}"
            );
            let part = call_id_part(&call_id);
            assert!(is_shortened(&part), "{part}");
            // No escape is cut in half.
            let kept = part.split('~').next().unwrap_or_default();
            assert!(!kept.ends_with('%') && kept.rfind('%').is_none_or(|i| i + 3 <= kept.len()));
        }
    }

    #[test]
    fn shortened_names_stay_unique_and_stable() {
        let a = format!("{}-1", "c".repeat(300));
        let b = format!("{}-2", "c".repeat(300));
        assert_ne!(call_id_part(&a), call_id_part(&b));
        assert_eq!(call_id_part(&a), call_id_part(&a.clone()));
        assert_eq!(call_id_part(&a).len(), CALL_ID_MAX);
        assert_eq!(bounded(&"9".repeat(49), CALLER_MAX).len(), CALLER_MAX);
        assert_eq!(bounded(&"9".repeat(48), CALLER_MAX), "9".repeat(48));
    }
}
