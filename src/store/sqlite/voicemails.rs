//! [`VoicemailStore`] on SQLite: the `voicemails` table, with the SLA timer and outbox rows a
//! new voicemail starts in the same transaction.

use jiff::Timestamp;
use rusqlite::OptionalExtension;

use super::SqliteStore;
use crate::store::schema::{VOICEMAIL_SELECT, from_ms, insert_event, to_i64, voicemail_from_row};
use crate::store::{
    AckOutcome, NewVoicemail, OutboxEvent, OwedTranscript, StoreError, TranscriptOutcome,
    Voicemail, VoicemailStore,
};

impl VoicemailStore for SqliteStore {
    fn register_voicemail(
        &self,
        vm: &NewVoicemail,
        sla_due_at: Timestamp,
        events: &[OutboxEvent],
    ) -> Result<i64, StoreError> {
        let vm = vm.clone();
        let events = events.to_vec();
        self.write("storing a voicemail", move |tx| {
            tx.execute(
                "INSERT INTO voicemails (call_id, caller, client, ticket, path, duration_ms, \
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    vm.call_id,
                    vm.caller,
                    vm.client,
                    vm.ticket,
                    vm.path.to_string_lossy(),
                    to_i64(vm.duration_ms),
                    vm.created_at.as_millisecond(),
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO sla_timers (voicemail_id, due_at, state) VALUES (?1, ?2, 'pending')",
                rusqlite::params![id, sla_due_at.as_millisecond()],
            )?;
            for mut event in events.iter().cloned() {
                if let Some(data) = event.payload.as_object_mut() {
                    data.insert("voicemail_id".into(), id.into());
                }
                insert_event(tx, &event)?;
            }
            Ok(id)
        })
    }

    fn ack_voicemail(&self, id: i64, by: &str, at: Timestamp) -> Result<AckOutcome, StoreError> {
        let by = by.to_string();
        self.write("acknowledging a voicemail", move |tx| {
            let row: Option<(Option<i64>, Option<String>)> = tx
                .query_row(
                    "SELECT acked_at, acked_by FROM voicemails WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match row {
                None => Ok(AckOutcome::NotFound),
                Some((Some(acked_at), acked_by)) => Ok(AckOutcome::AlreadyAcked {
                    by: acked_by.unwrap_or_default(),
                    at: from_ms(acked_at, 0)?,
                }),
                Some((None, _)) => {
                    tx.execute(
                        "UPDATE voicemails SET acked_at = ?2, acked_by = ?3 WHERE id = ?1",
                        rusqlite::params![id, at.as_millisecond(), by],
                    )?;
                    tx.execute(
                        "UPDATE sla_timers SET state = 'acked' WHERE voicemail_id = ?1",
                        [id],
                    )?;
                    Ok(AckOutcome::Acked)
                }
            }
        })
    }

    fn ack_voicemails_for_number(&self, number: &str, at: Timestamp) -> Result<u32, StoreError> {
        let number = number.to_string();
        self.write("acknowledging voicemails for a number", move |tx| {
            tx.execute(
                "UPDATE sla_timers SET state = 'acked' WHERE voicemail_id IN \
                 (SELECT id FROM voicemails WHERE caller = ?1 AND acked_at IS NULL)",
                [&number],
            )?;
            let n = tx.execute(
                "UPDATE voicemails SET acked_at = ?2, acked_by = ?3 \
                 WHERE caller = ?1 AND acked_at IS NULL",
                rusqlite::params![
                    &number,
                    at.as_millisecond(),
                    format!("outbound call to {number}")
                ],
            )?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    fn voicemail(&self, id: i64) -> Result<Option<Voicemail>, StoreError> {
        self.read("reading a voicemail", |c| {
            Ok(c.query_row(
                &format!("{VOICEMAIL_SELECT} WHERE v.id = ?1"),
                [id],
                voicemail_from_row,
            )
            .optional()?)
        })
    }

    fn voicemails(&self) -> Result<Vec<Voicemail>, StoreError> {
        self.read("listing voicemails", |c| {
            let mut stmt = c.prepare(&format!("{VOICEMAIL_SELECT} ORDER BY v.id"))?;
            let rows = stmt.query_map([], voicemail_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn transcripts_owed(&self, limit: u32) -> Result<Vec<OwedTranscript>, StoreError> {
        SqliteStore::transcripts_owed(self, limit)
    }

    fn set_transcript(
        &self,
        id: i64,
        outcome: &TranscriptOutcome,
        event: Option<&OutboxEvent>,
    ) -> Result<bool, StoreError> {
        self.transcript_set(id, outcome, event)
    }

    fn transcript_attempt_failed(&self, id: i64, error: &str) -> Result<u32, StoreError> {
        SqliteStore::transcript_attempt_failed(self, id, error)
    }
}
