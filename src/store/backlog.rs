//! What is owed and not yet done, for the scrape-time gauges: voicemails waiting for a callback
//! (within their SLA or past it) and webhook events not yet delivered.

use std::time::Duration;

use jiff::Timestamp;
use rusqlite::Connection;

/// The store's backlog at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Voicemails not acknowledged whose callback SLA has not run out.
    pub voicemails_pending: u64,
    /// Voicemails not acknowledged whose SLA ran out (escalated or about to be).
    pub voicemails_overdue: u64,
    /// Outbox events not delivered.
    pub outbox_events: u64,
    /// How long the oldest undelivered event has waited; `None` when the outbox is empty.
    pub outbox_oldest_age: Option<Duration>,
}

pub(super) fn query(c: &Connection, now: Timestamp) -> rusqlite::Result<Backlog> {
    let now_ms = now.as_millisecond();
    let (pending, overdue): (i64, i64) = c.query_row(
        "SELECT \
           COALESCE(SUM(s.state = 'pending' AND s.due_at > ?1), 0), \
           COALESCE(SUM(s.state = 'escalated' OR (s.state = 'pending' AND s.due_at <= ?1)), 0) \
         FROM voicemails v JOIN sla_timers s ON s.voicemail_id = v.id \
         WHERE v.acked_at IS NULL",
        [now_ms],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (events, oldest): (i64, Option<i64>) = c.query_row(
        "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE delivered_at IS NULL",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(Backlog {
        voicemails_pending: count(pending),
        voicemails_overdue: count(overdue),
        outbox_events: count(events),
        outbox_oldest_age: oldest
            .map(|t| Duration::from_millis(u64::try_from(now_ms - t).unwrap_or(0))),
    })
}
