//! [`SlaStore`] on SQLite: the `sla_timers` table.

use jiff::Timestamp;

use super::SqliteStore;
use crate::store::schema::{claim_escalation, from_ms, insert_event, sla_state};
use crate::store::{OutboxEvent, SlaStore, SlaTimer, StoreError};

impl SlaStore for SqliteStore {
    fn due_sla_timers(&self, now: Timestamp) -> Result<Vec<SlaTimer>, StoreError> {
        self.read("reading due SLA timers", |c| {
            let mut stmt = c.prepare(
                "SELECT s.voicemail_id, s.due_at, s.state, v.call_id, v.caller, v.client, \
                 v.ticket, v.created_at FROM sla_timers s JOIN voicemails v ON v.id = s.voicemail_id \
                 WHERE s.state = 'pending' AND s.due_at <= ?1 ORDER BY s.due_at, s.voicemail_id",
            )?;
            let rows = stmt.query_map([now.as_millisecond()], |r| {
                Ok(SlaTimer {
                    voicemail_id: r.get(0)?,
                    due_at: from_ms(r.get(1)?, 1)?,
                    state: sla_state(r, 2)?,
                    call_id: r.get(3)?,
                    caller: r.get(4)?,
                    client: r.get(5)?,
                    ticket: r.get(6)?,
                    created_at: from_ms(r.get(7)?, 7)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn next_sla_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read("reading the next SLA deadline", |c| {
            let ms: Option<i64> = c.query_row(
                "SELECT MIN(due_at) FROM sla_timers WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )?;
            Ok(ms.map(|ms| from_ms(ms, 0)).transpose()?)
        })
    }

    fn mark_escalated(&self, voicemail_id: i64, at: Timestamp) -> Result<bool, StoreError> {
        self.write("escalating an SLA timer", move |tx| {
            claim_escalation(tx, voicemail_id, at)
        })
    }

    fn escalate(
        &self,
        voicemail_id: i64,
        at: Timestamp,
        event: &OutboxEvent,
    ) -> Result<Option<i64>, StoreError> {
        let event = event.clone();
        self.write("escalating an SLA timer", move |tx| {
            if claim_escalation(tx, voicemail_id, at)? {
                Ok(Some(insert_event(tx, &event)?))
            } else {
                Ok(None)
            }
        })
    }
}
