//! Voicemails and their transcripts: storing one with its SLA timer and events, acknowledging,
//! reading, and the transcription outcome with its event.

use std::collections::HashMap;

use jiff::Timestamp;

use super::rows::{self, VOICEMAIL_SELECT, insert_event};
use super::{Fail, PgStore, from_ms, to_i64, to_u32};
use crate::store::{
    AckOutcome, NewVoicemail, OutboxEvent, OwedTranscript, StoreError, TranscriptOutcome,
    Voicemail, read_recording,
};

impl crate::store::VoicemailStore for PgStore {
    /// See [`crate::store::Store::register_voicemail`]. The recording's bytes are stored with
    /// the row, in the same transaction (see `store/audio.rs` for why). The file is read before
    /// the transaction opens, so no row lock waits on the disk. A file that cannot be read is
    /// logged and the voicemail stored without audio: the callback promise (caller, SLA timer,
    /// events) matters more than the recording, and no node has the recording then anyway.
    fn register_voicemail(
        &self,
        vm: &NewVoicemail,
        sla_due_at: Timestamp,
        events: &[OutboxEvent],
    ) -> Result<i64, StoreError> {
        let wav = match read_recording(&vm.path) {
            Ok(Some(wav)) => Some(wav),
            Ok(None) => {
                tracing::warn!(call_id = %vm.call_id, path = %vm.path.display(),
                               "voicemail stored without audio: its recording is missing");
                None
            }
            Err(e) => {
                tracing::warn!(call_id = %vm.call_id, error = %e,
                               "voicemail stored without audio");
                None
            }
        };
        self.write("storing a voicemail", |tx| {
            let id: i64 = tx
                .query_one(
                    "INSERT INTO voicemails (call_id, caller, client, ticket, path, duration_ms, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    &[
                        &vm.call_id,
                        &vm.caller,
                        &vm.client,
                        &vm.ticket,
                        &vm.path.to_string_lossy().as_ref(),
                        &to_i64(vm.duration_ms),
                        &vm.created_at.as_millisecond(),
                    ],
                )?
                .try_get(0)?;
            tx.execute(
                "INSERT INTO sla_timers (voicemail_id, due_at, state) VALUES ($1, $2, 'pending')",
                &[&id, &sla_due_at.as_millisecond()],
            )?;
            if let Some(wav) = &wav {
                tx.execute(
                    "INSERT INTO voicemail_audio (voicemail_id, wav) VALUES ($1, $2)",
                    &[&id, wav],
                )?;
            }
            for mut event in events.iter().cloned() {
                if let Some(data) = event.payload.as_object_mut() {
                    data.insert("voicemail_id".into(), id.into());
                }
                insert_event(tx, &event)?;
            }
            Ok(id)
        })
    }

    /// See [`crate::store::Store::ack_voicemail`]. The `acked_at IS NULL` update is the claim:
    /// of two nodes acknowledging at once, one acknowledges and the other is told who did.
    fn ack_voicemail(&self, id: i64, by: &str, at: Timestamp) -> Result<AckOutcome, StoreError> {
        self.write("acknowledging a voicemail", |tx| {
            let acked = tx.execute(
                "UPDATE voicemails SET acked_at = $2, acked_by = $3 \
                 WHERE id = $1 AND acked_at IS NULL",
                &[&id, &at.as_millisecond(), &by],
            )?;
            if acked == 1 {
                tx.execute(
                    "UPDATE sla_timers SET state = 'acked' WHERE voicemail_id = $1",
                    &[&id],
                )?;
                return Ok(AckOutcome::Acked);
            }
            let row = tx.query_opt(
                "SELECT acked_at, acked_by FROM voicemails WHERE id = $1",
                &[&id],
            )?;
            match row {
                None => Ok(AckOutcome::NotFound),
                Some(r) => Ok(AckOutcome::AlreadyAcked {
                    by: r.try_get::<_, Option<String>>(1)?.unwrap_or_default(),
                    at: from_ms(r.try_get(0)?)?,
                }),
            }
        })
    }

    /// See [`crate::store::Store::ack_voicemails_for_number`].
    fn ack_voicemails_for_number(&self, number: &str, at: Timestamp) -> Result<u32, StoreError> {
        self.write("acknowledging voicemails for a number", |tx| {
            let ids: Vec<i64> = tx
                .query(
                    "UPDATE voicemails SET acked_at = $2, acked_by = $3 \
                     WHERE caller = $1 AND acked_at IS NULL RETURNING id",
                    &[
                        &number,
                        &at.as_millisecond(),
                        &format!("outbound call to {number}"),
                    ],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            tx.execute(
                "UPDATE sla_timers SET state = 'acked' WHERE voicemail_id = ANY($1)",
                &[&ids],
            )?;
            Ok(u32::try_from(ids.len()).unwrap_or(u32::MAX))
        })
    }

    /// See [`crate::store::Store::voicemail`].
    fn voicemail(&self, id: i64) -> Result<Option<Voicemail>, StoreError> {
        self.read("reading a voicemail", |c| {
            c.query_opt(&format!("{VOICEMAIL_SELECT} WHERE v.id = $1"), &[&id])?
                .map(|r| rows::voicemail(&r))
                .transpose()
        })
    }

    /// See [`crate::store::VoicemailStore::voicemail_audio`]: the bytes stored with the
    /// voicemail; a voicemail without them (registered before migration 0004, or its file was
    /// unreadable then) falls back to its file, which only the node that recorded it may have.
    fn voicemail_audio(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self.read("reading a voicemail's audio", |c| {
            c.query_opt(
                "SELECT v.path, a.wav FROM voicemails v \
                 LEFT JOIN voicemail_audio a ON a.voicemail_id = v.id WHERE v.id = $1",
                &[&id],
            )?
            .map(|r| Ok::<_, Fail>((r.try_get::<_, String>(0)?, r.try_get(1)?)))
            .transpose()
        })?;
        match row {
            None => Ok(None),
            Some((_, Some(wav))) => Ok(Some(wav)),
            Some((path, None)) => read_recording(std::path::Path::new(&path)),
        }
    }

    /// See [`crate::store::Store::voicemails`].
    fn voicemails(&self) -> Result<Vec<Voicemail>, StoreError> {
        self.read("listing voicemails", |c| {
            let rows = c.query(&format!("{VOICEMAIL_SELECT} ORDER BY v.id"), &[])?;
            rows::all(rows, rows::voicemail)
        })
    }

    /// See [`crate::store::Store::transcripts_owed`]: newest first, so a fresh message (whose
    /// mail may be waiting for it) goes before a backlog.
    fn transcripts_owed(&self, limit: u32) -> Result<Vec<OwedTranscript>, StoreError> {
        self.read("listing voicemails to transcribe", |c| {
            let rows = c.query(
                &format!(
                    "{VOICEMAIL_SELECT} WHERE v.transcribed_at IS NULL ORDER BY v.id DESC LIMIT $1"
                ),
                &[&i64::from(limit)],
            )?;
            let vms = rows::all(rows, rows::voicemail)?;
            let ids: Vec<i64> = vms.iter().map(|v| v.id).collect();
            let attempts: HashMap<i64, i64> = c
                .query(
                    "SELECT id, transcript_attempts FROM voicemails WHERE id = ANY($1)",
                    &[&ids],
                )?
                .iter()
                .map(|r| Ok::<_, Fail>((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, _>>()?;
            Ok(vms
                .into_iter()
                .map(|vm| OwedTranscript {
                    attempts: to_u32(attempts.get(&vm.id).copied().unwrap_or(0)),
                    voicemail: vm,
                })
                .collect())
        })
    }

    /// See [`crate::store::Store::set_transcript`].
    fn set_transcript(
        &self,
        id: i64,
        outcome: &TranscriptOutcome,
        event: Option<&OutboxEvent>,
    ) -> Result<bool, StoreError> {
        let (text, error) = match &outcome.text {
            Ok(t) => (Some(t.as_str()), None),
            Err(e) => (None, Some(e.as_str())),
        };
        let at = outcome.at.as_millisecond();
        self.write("storing a transcript", |tx| {
            // `transcribed_at IS NULL`: an outcome is stored once; a second worker (another
            // node, a restart racing an old attempt) changes nothing and queues no second event.
            let n = tx.execute(
                "UPDATE voicemails SET transcript = $2, transcript_engine = $3, \
                 transcribed_at = $4, transcript_error = $5, \
                 transcript_attempts = transcript_attempts \
                     + (CASE WHEN $5::TEXT IS NULL THEN 0 ELSE 1 END) \
                 WHERE id = $1 AND transcribed_at IS NULL",
                &[&id, &text, &outcome.engine, &at, &error],
            )?;
            if n == 0 {
                return Ok(false);
            }
            if let Some(ev) = event {
                insert_event(tx, ev)?;
            }
            // The voicemail's mail may be held back waiting for this (never tried yet): due
            // now, so it goes with the transcript instead of at the end of its wait.
            tx.execute(
                "UPDATE outbox SET next_attempt_at = $2 WHERE target = 'email' AND attempts = 0 \
                 AND delivered_at IS NULL AND next_attempt_at > $2 \
                 AND payload::jsonb -> 'voicemail_id' = to_jsonb($1::BIGINT)",
                &[&id, &at],
            )?;
            Ok(true)
        })
    }

    /// See [`crate::store::Store::transcript_attempt_failed`].
    fn transcript_attempt_failed(&self, id: i64, error: &str) -> Result<u32, StoreError> {
        self.write("recording a failed transcription", |tx| {
            let row = tx.query_opt(
                "UPDATE voicemails SET transcript_attempts = transcript_attempts + 1, \
                 transcript_error = $2 WHERE id = $1 AND transcribed_at IS NULL \
                 RETURNING transcript_attempts",
                &[&id, &error],
            )?;
            Ok(row.map_or(Ok(0), |r| r.try_get(0).map(to_u32))?)
        })
    }
}
