//! Voicemail transcripts (issue 14 item 3): which voicemails are still owed one, and storing an
//! outcome together with its `voicemail_transcribed` event. The SQL behind the
//! [`super::VoicemailStore`] transcript methods, kept out of `sqlite/`.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension};

use super::schema::{Fail, VOICEMAIL_SELECT, insert_event, voicemail_from_row};
use super::{OutboxEvent, SqliteStore, StoreError, Voicemail};

/// The final outcome of transcribing one voicemail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptOutcome {
    /// The engine's name (`pocketsphinx`, `command:whisper-cli`).
    pub engine: String,
    pub at: Timestamp,
    /// The text (possibly empty), or why there is none.
    pub text: Result<String, String>,
}

/// A voicemail owed a transcript, with the failed attempts so far (its `transcript_error` is
/// the last one's error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwedTranscript {
    pub voicemail: Voicemail,
    pub attempts: u32,
}

fn owed(c: &Connection, limit: u32) -> Result<Vec<OwedTranscript>, Fail> {
    // Newest first: a fresh message (whose e-mail may be waiting for it) goes before a backlog.
    let mut stmt = c.prepare(&format!(
        "{VOICEMAIL_SELECT} WHERE v.transcribed_at IS NULL ORDER BY v.id DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit], voicemail_from_row)?;
    let vms = rows.collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(vms.len());
    for vm in vms {
        let attempts: i64 = c.query_row(
            "SELECT transcript_attempts FROM voicemails WHERE id = ?1",
            [vm.id],
            |r| r.get(0),
        )?;
        out.push(OwedTranscript {
            voicemail: vm,
            attempts: u32::try_from(attempts).unwrap_or(0),
        });
    }
    Ok(out)
}

fn set(
    tx: &Connection,
    id: i64,
    outcome: &TranscriptOutcome,
    event: Option<&OutboxEvent>,
) -> Result<bool, Fail> {
    let (text, error) = match &outcome.text {
        Ok(t) => (Some(t.as_str()), None),
        Err(e) => (None, Some(e.as_str())),
    };
    // `transcribed_at IS NULL`: an outcome is stored once; a second worker (another node, a
    // restart racing an old attempt) changes nothing and queues no second event.
    let n = tx.execute(
        "UPDATE voicemails SET transcript = ?2, transcript_engine = ?3, transcribed_at = ?4, \
         transcript_error = ?5, \
         transcript_attempts = transcript_attempts + (CASE WHEN ?5 IS NULL THEN 0 ELSE 1 END) \
         WHERE id = ?1 AND transcribed_at IS NULL",
        rusqlite::params![id, text, outcome.engine, outcome.at.as_millisecond(), error],
    )?;
    if n == 0 {
        return Ok(false);
    }
    if let Some(ev) = event {
        insert_event(tx, ev)?;
    }
    // The voicemail's mail may be held back waiting for this (never tried yet): due now, so it
    // goes with the transcript instead of at the end of its wait.
    tx.execute(
        "UPDATE outbox SET next_attempt_at = ?2 WHERE target = 'email' AND attempts = 0 \
         AND delivered_at IS NULL AND json_extract(payload, '$.voicemail_id') = ?1 \
         AND next_attempt_at > ?2",
        rusqlite::params![id, outcome.at.as_millisecond()],
    )?;
    Ok(true)
}

fn attempt_failed(tx: &Connection, id: i64, error: &str) -> Result<u32, Fail> {
    let attempts: Option<i64> = tx
        .query_row(
            "UPDATE voicemails SET transcript_attempts = transcript_attempts + 1, \
             transcript_error = ?2 WHERE id = ?1 AND transcribed_at IS NULL \
             RETURNING transcript_attempts",
            rusqlite::params![id, error],
            |r| r.get(0),
        )
        .optional()?;
    Ok(attempts.map_or(0, |a| u32::try_from(a).unwrap_or(0)))
}

impl SqliteStore {
    pub(super) fn transcripts_owed(&self, limit: u32) -> Result<Vec<OwedTranscript>, StoreError> {
        self.read("listing voicemails to transcribe", |c| owed(c, limit))
    }

    pub(super) fn transcript_set(
        &self,
        id: i64,
        outcome: &TranscriptOutcome,
        event: Option<&OutboxEvent>,
    ) -> Result<bool, StoreError> {
        let outcome = outcome.clone();
        let event = event.cloned();
        self.write("storing a transcript", move |tx| {
            set(tx, id, &outcome, event.as_ref())
        })
    }

    pub(super) fn transcript_attempt_failed(
        &self,
        id: i64,
        error: &str,
    ) -> Result<u32, StoreError> {
        let error = error.to_string();
        self.write("recording a failed transcription", move |tx| {
            attempt_failed(tx, id, &error)
        })
    }
}
