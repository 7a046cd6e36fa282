//! Start-up recovery of voicemails a crash left behind.
//!
//! A recording is registered in the store when it ends; if the process dies mid-recording (or the
//! store failed then), the WAV is on disk but nobody owes a callback for it. At start every
//! `DATA/voicemail/*.wav` the store does not know is repaired (header sizes from the file length)
//! and registered, with its callback timer and a `voicemail_recorded` event, so no message is
//! ever silently dropped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use tracing::{error, info, warn};

use super::memory::Memory;
use crate::media::recorder::repair_wav;
use crate::notify::event::{CallEnded, OutboxEvent, VoicemailRecorded};
use crate::store::{NewVoicemail, Outcome};

/// Registers unknown voicemail files; returns how many were recovered.
pub fn recover_voicemails(memory: &Memory, data_dir: &Path) -> usize {
    let Some(store) = &memory.store else {
        return 0;
    };
    let dir = data_dir.join("voicemail");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let known: HashSet<PathBuf> = match store.voicemails() {
        Ok(v) => v.into_iter().map(|v| v.path).collect(),
        Err(e) => {
            error!(error = %e, "voicemail recovery skipped: cannot list stored voicemails");
            return 0;
        }
    };
    let mut recovered = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("wav") || known.contains(&path) {
            continue;
        }
        let duration = match repair_wav(&path) {
            Ok(Some(d)) => d,
            Ok(None) => wav_duration(&path),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "unreadable voicemail file left as is");
                continue;
            }
        };
        let (created_at, caller, call_id) = parse_name(&path);
        let due = crate::sla::due_at(created_at, memory.callback_sla);
        let vm = NewVoicemail {
            call_id: call_id.clone(),
            caller: caller.clone(),
            client: None,
            ticket: None,
            path: path.clone(),
            duration_ms: duration.as_millis() as u64,
            created_at,
        };
        match store.add_voicemail(&vm, due) {
            Ok(id) => {
                recovered += 1;
                info!(voicemail_id = id, path = %path.display(), %caller, event = "voicemail_recovered",
                      "voicemail recovered after a crash");
                if let Some(n) = &memory.notifier {
                    let ev = OutboxEvent::voicemail_recorded(
                        &call_id,
                        created_at,
                        VoicemailRecorded {
                            voicemail_id: id,
                            caller,
                            client: None,
                            ticket: None,
                            duration_ms: vm.duration_ms,
                            path: path.display().to_string(),
                            callback_due_at: due,
                        },
                    );
                    if let Err(e) = n.enqueue_blocking(&ev) {
                        error!(error = %e, "voicemail_recorded event for a recovered voicemail not queued");
                    }
                }
            }
            Err(e) => error!(path = %path.display(), error = %e, "voicemail recovery failed"),
        }
    }
    recovered
}

/// Closes the CDRs of calls that were live when the process stopped (crash, kill, power loss):
/// outcome `voicemail` when a message from the call was kept (or recovered), else `abandoned`,
/// and their `call_ended` events are queued. Returns how many were closed.
pub fn close_interrupted_calls(memory: &Memory) -> usize {
    let Some(store) = &memory.store else {
        return 0;
    };
    let open = match store.open_calls() {
        Ok(v) => v,
        Err(e) => {
            error!(error = %e, "cannot list calls left open by the last run");
            return 0;
        }
    };
    if open.is_empty() {
        return 0;
    }
    let with_voicemail: HashSet<String> = store
        .voicemails()
        .map(|v| v.into_iter().map(|v| v.call_id).collect())
        .unwrap_or_default();
    let now = Timestamp::now();
    let mut closed = 0;
    for mut cdr in open {
        cdr.ended_at = Some(now);
        cdr.outcome = Some(if with_voicemail.contains(&cdr.call_id) {
            Outcome::Voicemail
        } else {
            Outcome::Abandoned
        });
        cdr.end_reason = "ivr stopped during the call".into();
        if let Err(e) = store.call_ended(&cdr) {
            error!(call_id = %cdr.call_id, error = %e, "could not close an interrupted call");
            continue;
        }
        closed += 1;
        warn!(call_id = %cdr.call_id, event = "call_closed_after_restart", "call was live when ivr stopped; record closed");
        if let Some(n) = &memory.notifier {
            let ev = OutboxEvent::call_ended(
                &cdr.call_id,
                now,
                CallEnded {
                    cdr: super::memory::cdr_json(&cdr),
                },
            );
            if let Err(e) = n.enqueue_blocking(&ev) {
                error!(call_id = %cdr.call_id, error = %e, "call_ended for an interrupted call not queued");
            }
        }
    }
    closed
}

/// `<20261127T223000Z>_<caller>_<call-id>.wav` → (time, caller, call id); unknown parts fall
/// back to the file's modification time and "unknown".
fn parse_name(path: &Path) -> (Timestamp, String, String) {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let mut parts = stem.splitn(3, '_');
    let stamp = parts.next().unwrap_or("");
    let caller = unescape(parts.next().unwrap_or("unknown"));
    let call_id = unescape(parts.next().unwrap_or(stem));
    let created = jiff::fmt::strtime::parse("%Y%m%dT%H%M%SZ", stamp)
        .and_then(|t| t.to_datetime())
        .and_then(|dt| jiff::tz::TimeZone::UTC.to_timestamp(dt))
        .ok()
        .or_else(|| {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
            Timestamp::try_from(modified).ok()
        })
        .unwrap_or_else(Timestamp::now);
    (created, caller, call_id)
}

/// Reverses `driver::file_safe`.
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

fn wav_duration(path: &Path) -> std::time::Duration {
    hound::WavReader::open(path)
        .map(|r| std::time::Duration::from_millis(u64::from(r.duration()) * 1000 / 8000))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_time_caller_and_call_id() {
        let (t, caller, call_id) = parse_name(Path::new(
            "/x/20261127T223000Z_+15551230001_abc-123-127-0-0-1.wav",
        ));
        assert_eq!(t.to_string(), "2026-11-27T22:30:00Z");
        assert_eq!(caller, "+15551230001");
        assert_eq!(call_id, "abc-123-127-0-0-1");
    }
}
