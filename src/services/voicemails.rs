//! Voicemails with their callback status, acknowledgement, and the WAV behind each.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::store::{AckOutcome, SlaState, StoreError, Voicemail, VoicemailStore};

/// Where a voicemail's callback promise stands at a given time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallbackStatus {
    Acked { by: String, at: Timestamp },
    Escalated { at: Timestamp },
    Overdue { since: Timestamp },
    Waiting { due: Timestamp },
}

impl CallbackStatus {
    /// The status of `vm` judged at `now`.
    pub fn of(vm: &Voicemail, now: Timestamp) -> CallbackStatus {
        match (vm.sla_state, vm.acked_at, vm.escalated_at) {
            (SlaState::Acked, Some(at), _) => CallbackStatus::Acked {
                by: vm.acked_by.clone().unwrap_or_default(),
                at,
            },
            (SlaState::Escalated, _, Some(at)) => CallbackStatus::Escalated { at },
            _ if vm.sla_due_at <= now => CallbackStatus::Overdue {
                since: vm.sla_due_at,
            },
            _ => CallbackStatus::Waiting { due: vm.sla_due_at },
        }
    }

    /// A short machine name: `acked`, `escalated`, `overdue`, `waiting`.
    pub fn name(&self) -> &'static str {
        match self {
            CallbackStatus::Acked { .. } => "acked",
            CallbackStatus::Escalated { .. } => "escalated",
            CallbackStatus::Overdue { .. } => "overdue",
            CallbackStatus::Waiting { .. } => "waiting",
        }
    }

    /// The sentence `ivr voicemail list` prints (`by` is caller-free but admin-typed: escaped).
    pub fn describe(&self) -> String {
        match self {
            CallbackStatus::Acked { by, at } => {
                format!("acked by {} at {at}", crate::text::escape_control(by))
            }
            CallbackStatus::Escalated { at } => format!("ESCALATED at {at}, not acked"),
            CallbackStatus::Overdue { since } => format!("OVERDUE since {since}"),
            CallbackStatus::Waiting { due } => format!("waiting, callback due by {due}"),
        }
    }
}

/// Where a voicemail's transcript stands (`[transcription]`, `crate::transcribe`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TranscriptState<'a> {
    /// No outcome yet: the worker has not got to it, or transcription is off.
    Pending,
    /// The text (empty: the engine recognised nothing).
    Text(&'a str),
    /// Transcription failed for good, with the last error.
    Failed(&'a str),
}

impl<'a> TranscriptState<'a> {
    pub fn of(vm: &'a Voicemail) -> Self {
        match (&vm.transcribed_at, &vm.transcript, &vm.transcript_error) {
            (None, _, _) => TranscriptState::Pending,
            (Some(_), Some(text), _) => TranscriptState::Text(text),
            (Some(_), None, error) => TranscriptState::Failed(error.as_deref().unwrap_or("")),
        }
    }

    /// A short machine name: `pending`, `done`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            TranscriptState::Pending => "pending",
            TranscriptState::Text(_) => "done",
            TranscriptState::Failed(_) => "failed",
        }
    }

    /// What a listing shows. The text is the caller's words (as heard by an engine): escape it
    /// for wherever it goes.
    pub fn describe(&self) -> String {
        match self {
            TranscriptState::Pending => "(not transcribed yet)".into(),
            TranscriptState::Text("") => "(no words recognised)".into(),
            TranscriptState::Text(t) => (*t).to_string(),
            TranscriptState::Failed(e) => format!("(transcription failed: {e})"),
        }
    }
}

/// A voicemail and its status at the time of the listing.
#[derive(Clone, Debug)]
pub struct Listed {
    pub voicemail: Voicemail,
    pub status: CallbackStatus,
}

/// Every voicemail, oldest first, judged at `now`.
pub fn list(store: &dyn VoicemailStore, now: Timestamp) -> Result<Vec<Listed>, StoreError> {
    Ok(store
        .voicemails()?
        .into_iter()
        .map(|voicemail| Listed {
            status: CallbackStatus::of(&voicemail, now),
            voicemail,
        })
        .collect())
}

/// Acknowledges voicemail `id` for `by` at `at` (stops its callback timer).
pub fn ack(
    store: &dyn VoicemailStore,
    id: i64,
    by: &str,
    at: Timestamp,
) -> Result<AckOutcome, StoreError> {
    store.ack_voicemail(id, by, at)
}

/// The WAV file of voicemail `id`, if there is such a voicemail. Rows keep the path as the
/// data directory was named when the message was recorded (relative, in old databases, or
/// before the directory moved); when that path is gone, the file of the same name in
/// `data_dir/voicemail` is the one (the name is unique: time and Call-ID).
pub fn audio_path(
    store: &dyn VoicemailStore,
    id: i64,
    data_dir: &Path,
) -> Result<Option<PathBuf>, StoreError> {
    Ok(store.voicemail(id)?.map(|vm| {
        if vm.path.is_file() {
            return vm.path;
        }
        vm.path
            .file_name()
            .map(|name| data_dir.join("voicemail").join(name))
            .filter(|p| p.is_file())
            .unwrap_or(vm.path)
    }))
}

/// Where a voicemail's recording can be had, for a reader (the admin API, the transcription
/// worker).
#[derive(Debug, PartialEq, Eq)]
pub enum Audio {
    /// This node's file ([`audio_path`]): served with Range requests, read by engines.
    File(PathBuf),
    /// The store's copy (PostgreSQL: recorded on another node, or the file is gone).
    Bytes(Vec<u8>),
    /// Nowhere: the file at this path is gone and the store has no copy.
    Missing(PathBuf),
}

/// The recording of voicemail `id` (`None`: no such voicemail): this node's file when it has
/// it (cheapest, and what every reader used before audio was in the store), else the store's
/// copy ([`VoicemailStore::voicemail_audio`]).
pub fn audio(
    store: &dyn VoicemailStore,
    id: i64,
    data_dir: &Path,
) -> Result<Option<Audio>, StoreError> {
    let Some(path) = audio_path(store, id, data_dir)? else {
        return Ok(None);
    };
    if path.is_file() {
        return Ok(Some(Audio::File(path)));
    }
    Ok(Some(match store.voicemail_audio(id)? {
        Some(bytes) => Audio::Bytes(bytes),
        None => Audio::Missing(path),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(state: SlaState) -> Voicemail {
        Voicemail {
            id: 1,
            call_id: "c".into(),
            caller: "+1555".into(),
            client: None,
            ticket: None,
            path: "v.wav".into(),
            duration_ms: 1000,
            created_at: "2026-11-27T22:00:00Z".parse().unwrap(),
            acked_at: None,
            acked_by: None,
            escalated_at: None,
            sla_due_at: "2026-11-27T22:20:00Z".parse().unwrap(),
            sla_state: state,
            transcript: None,
            transcript_engine: None,
            transcribed_at: None,
            transcript_error: None,
        }
    }

    #[test]
    fn transcript_state_pending_text_empty_or_failed() {
        let mut v = vm(SlaState::Pending);
        assert_eq!(TranscriptState::of(&v), TranscriptState::Pending);
        assert_eq!(TranscriptState::of(&v).describe(), "(not transcribed yet)");
        v.transcribed_at = Some("2026-11-27T22:01:00Z".parse().unwrap());
        v.transcript_error = Some("pocketsphinx_batch did not finish".into());
        assert_eq!(TranscriptState::of(&v).name(), "failed");
        assert!(
            TranscriptState::of(&v)
                .describe()
                .contains("did not finish")
        );
        v.transcript = Some(String::new());
        v.transcript_error = None;
        assert_eq!(TranscriptState::of(&v).describe(), "(no words recognised)");
        v.transcript = Some("my server is down".into());
        assert_eq!(
            TranscriptState::of(&v),
            TranscriptState::Text("my server is down")
        );
    }

    #[test]
    fn status_follows_the_clock_until_acked_or_escalated() {
        let before: Timestamp = "2026-11-27T22:19:59Z".parse().unwrap();
        let after: Timestamp = "2026-11-27T22:20:00Z".parse().unwrap();
        let pending = vm(SlaState::Pending);
        assert_eq!(CallbackStatus::of(&pending, before).name(), "waiting");
        assert_eq!(CallbackStatus::of(&pending, after).name(), "overdue");
        let mut acked = vm(SlaState::Acked);
        acked.acked_at = Some(before);
        acked.acked_by = Some("al\x1bice".into());
        let status = CallbackStatus::of(&acked, after);
        assert_eq!(
            status.describe(),
            "acked by al\\x1bice at 2026-11-27T22:19:59Z"
        );
    }
}

#[cfg(test)]
mod audio_tests {
    use super::*;
    use crate::store::{NewVoicemail, SqliteStore, VoicemailStore};

    #[test]
    fn audio_is_found_in_the_data_directory_when_the_stored_path_is_stale() {
        let dir = std::env::temp_dir().join(format!("ivr-vm-audio-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let data = dir.join("data");
        std::fs::create_dir_all(data.join("voicemail")).expect("dirs");
        let store = SqliteStore::open(&data).expect("store");
        let at: Timestamp = "2026-11-27T22:00:00Z".parse().unwrap();
        let add = |path: &str| {
            store
                .add_voicemail(
                    &NewVoicemail {
                        call_id: path.into(),
                        caller: "+1555".into(),
                        client: None,
                        ticket: None,
                        path: path.into(),
                        duration_ms: 1,
                        created_at: at,
                    },
                    at,
                )
                .expect("add")
        };
        let moved = add("/old/place/voicemail/20261127-a.wav");
        let gone = add("/old/place/voicemail/20261127-b.wav");
        std::fs::write(data.join("voicemail/20261127-a.wav"), b"RIFF").expect("wav");
        assert_eq!(
            audio_path(&store, moved, &data).expect("read"),
            Some(data.join("voicemail/20261127-a.wav"))
        );
        assert_eq!(
            audio_path(&store, gone, &data).expect("read"),
            Some(PathBuf::from("/old/place/voicemail/20261127-b.wav")),
            "a missing file keeps its recorded path, for the error"
        );
        assert_eq!(audio_path(&store, 999, &data).expect("read"), None);
        assert_eq!(
            audio(&store, moved, &data).expect("read"),
            Some(Audio::File(data.join("voicemail/20261127-a.wav")))
        );
        assert_eq!(
            audio(&store, gone, &data).expect("read"),
            Some(Audio::Missing("/old/place/voicemail/20261127-b.wav".into()))
        );
        assert_eq!(audio(&store, 999, &data).expect("read"), None);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
