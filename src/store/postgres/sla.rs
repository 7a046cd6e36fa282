//! Callback-SLA timers: which are due, and the escalation claim that exactly one node wins.

use jiff::Timestamp;
use postgres::Transaction;

use super::cached::Db;

use super::rows::{self, insert_event};
use super::{Fail, PgStore, opt_from_ms};
use crate::store::{OutboxEvent, SlaTimer, StoreError};

/// Move a pending timer to escalated; `false` if it was not pending. The `state = 'pending'`
/// condition is the claim: of two nodes racing, the second's update waits for the first's
/// commit, finds the row no longer pending and changes nothing.
fn claim(tx: &mut Db<'_, Transaction<'_>>, voicemail_id: i64, at: Timestamp) -> Result<bool, Fail> {
    let n = tx.execute(
        "UPDATE sla_timers SET state = 'escalated' WHERE voicemail_id = $1 AND state = 'pending'",
        &[&voicemail_id],
    )?;
    if n == 0 {
        return Ok(false);
    }
    tx.execute(
        "UPDATE voicemails SET escalated_at = $2 WHERE id = $1",
        &[&voicemail_id, &at.as_millisecond()],
    )?;
    Ok(true)
}

impl crate::store::SlaStore for PgStore {
    /// See [`crate::store::Store::due_sla_timers`].
    fn due_sla_timers(&self, now: Timestamp) -> Result<Vec<SlaTimer>, StoreError> {
        self.read("reading due SLA timers", |c| {
            let rows = c.query(
                "SELECT s.voicemail_id, s.due_at, s.state, v.call_id, v.caller, v.client, \
                 v.ticket, v.created_at FROM sla_timers s JOIN voicemails v ON v.id = s.voicemail_id \
                 WHERE s.state = 'pending' AND s.due_at <= $1 ORDER BY s.due_at, s.voicemail_id",
                &[&now.as_millisecond()],
            )?;
            rows::all(rows, rows::sla_timer)
        })
    }

    /// See [`crate::store::Store::next_sla_due`].
    fn next_sla_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read("reading the next SLA deadline", |c| {
            let row = c.query_one(
                "SELECT MIN(due_at) FROM sla_timers WHERE state = 'pending'",
                &[],
            )?;
            opt_from_ms(row.try_get(0)?)
        })
    }

    /// See [`crate::store::Store::mark_escalated`].
    fn mark_escalated(&self, voicemail_id: i64, at: Timestamp) -> Result<bool, StoreError> {
        self.write("escalating an SLA timer", |tx| claim(tx, voicemail_id, at))
    }

    /// See [`crate::store::Store::escalate`].
    fn escalate(
        &self,
        voicemail_id: i64,
        at: Timestamp,
        event: &OutboxEvent,
    ) -> Result<Option<i64>, StoreError> {
        self.write("escalating an SLA timer", |tx| {
            if claim(tx, voicemail_id, at)? {
                Ok(Some(insert_event(tx, event)?))
            } else {
                Ok(None)
            }
        })
    }
}
