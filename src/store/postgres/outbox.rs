//! The webhook outbox: queueing, the per-call ordered reads, delivery results, the multi-node
//! lease ([`PgStore::claim_outbox`]), the admin's two calls, and the backlog gauges.

use std::time::Duration;

use jiff::Timestamp;

use super::rows::{self, OUTBOX_COLUMNS_SQL, insert_event};
use super::{PgStore, to_u64};
use crate::store::{Backlog, OutboxEvent, OutboxRow, StoreError};

/// The rows due at `$1` that are first in line for their (call_id, target): a later event of a
/// call is never offered while an earlier one is undelivered, whoever holds that one.
const DUE_IN_ORDER: &str = "o.delivered_at IS NULL AND o.next_attempt_at <= $1 \
     AND (o.call_id IS NULL OR NOT EXISTS (SELECT 1 FROM outbox p \
          WHERE p.call_id = o.call_id AND p.target = o.target \
          AND p.delivered_at IS NULL AND p.id < o.id))";

impl crate::store::OutboxStore for PgStore {
    /// See [`PgStore::claim_outbox`] (`FOR UPDATE SKIP LOCKED` and the lease columns).
    fn claim_outbox(
        &self,
        node: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        PgStore::claim_outbox(self, node, now, lease_until, limit)
    }

    /// See [`crate::store::Store::enqueue`].
    fn enqueue(&self, event: &OutboxEvent) -> Result<i64, StoreError> {
        self.write("queueing an event", |tx| insert_event(tx, event))
    }

    /// See [`crate::store::Store::pending_outbox`]. Ignores leases: it is the one-node read.
    /// Nodes sharing the database deliver through [`PgStore::claim_outbox`] instead.
    fn pending_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.read("reading the outbox", |c| {
            let rows = c.query(
                &format!(
                    "SELECT {OUTBOX_COLUMNS_SQL}, lease_until FROM outbox o WHERE {DUE_IN_ORDER} \
                     ORDER BY o.id LIMIT $2"
                ),
                &[&now.as_millisecond(), &i64::from(limit)],
            )?;
            rows::all(rows, rows::outbox)
        })
    }

    /// See [`crate::store::Store::mark_delivered`].
    fn mark_delivered(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        self.write("marking an event delivered", |tx| {
            // COALESCE: a second report of the same delivery keeps the first time.
            let n = tx.execute(
                "UPDATE outbox SET delivered_at = COALESCE(delivered_at, $2) WHERE id = $1",
                &[&id, &at.as_millisecond()],
            )?;
            if n == 0 {
                return Err(StoreError::NoSuchOutboxRow(id).into());
            }
            Ok(())
        })
    }

    /// See [`crate::store::Store::mark_attempt_failed`]. Ends a lease: the retry, when due,
    /// goes to whichever node claims it.
    fn mark_attempt_failed(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        self.write("recording a failed delivery", |tx| {
            let n = tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, \
                 last_error = $3, leased_by = NULL, lease_until = NULL WHERE id = $1",
                &[&id, &next_attempt_at.as_millisecond(), &error],
            )?;
            if n == 0 {
                return Err(StoreError::NoSuchOutboxRow(id).into());
            }
            Ok(())
        })
    }

    /// See [`crate::store::Store::postpone_outbox`]. Ends a lease too.
    fn postpone_outbox(&self, id: i64, until: Timestamp) -> Result<(), StoreError> {
        self.write("postponing a delivery", |tx| {
            tx.execute(
                "UPDATE outbox SET next_attempt_at = $2, leased_by = NULL, lease_until = NULL \
                 WHERE id = $1 AND delivered_at IS NULL",
                &[&id, &until.as_millisecond()],
            )?;
            Ok(())
        })
    }

    /// Undelivered events (pending or failed at least once), oldest first, at most `limit`:
    /// the admin page's list, as `SqliteStore::undelivered_outbox`.
    fn undelivered_outbox(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.read("reading the outbox", |c| {
            let rows = c.query(
                &format!(
                    "SELECT {OUTBOX_COLUMNS_SQL}, lease_until FROM outbox \
                     WHERE delivered_at IS NULL ORDER BY id LIMIT $1"
                ),
                &[&i64::from(limit)],
            )?;
            rows::all(rows, rows::outbox)
        })
    }

    /// Make an undelivered event due at `now` (attempts and the last error are kept), as
    /// `SqliteStore::retry_outbox_now`. `false` when it is unknown or already delivered.
    fn retry_outbox_now(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        self.write("scheduling a retry", |tx| {
            let n = tx.execute(
                "UPDATE outbox SET next_attempt_at = $2 WHERE id = $1 AND delivered_at IS NULL",
                &[&id, &now.as_millisecond()],
            )?;
            Ok(n == 1)
        })
    }
}

impl PgStore {
    /// Take up to `limit` due events for delivery by `node` until `lease_until`: the multi-node
    /// [`crate::store::Store::pending_outbox`]. The same per-(call_id, target) order holds, and
    /// a row is handed to one node at a time: rows another claim is taking right now are
    /// skipped (`FOR UPDATE SKIP LOCKED`, so nodes never wait for each other), and rows leased
    /// to another node stay skipped until the lease runs out (then its holder is taken to be
    /// dead or hung, and the row goes to whoever claims it next: at-least-once delivery). The
    /// holder's own rows it may claim again. Delivering, the node calls `mark_delivered` or
    /// `mark_attempt_failed` (which ends the lease) as with `pending_outbox`; the lease should
    /// outlast a delivery attempt with its timeout.
    ///
    /// The outbox worker calls it through [`crate::store::OutboxStore::claim_outbox`].
    pub fn claim_outbox(
        &self,
        node: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.write("claiming outbox events", |tx| {
            let rows = tx.query(
                &format!(
                    "WITH claimed AS ( \
                       SELECT o.id FROM outbox o WHERE {DUE_IN_ORDER} \
                       AND (o.lease_until IS NULL OR o.lease_until <= $1 OR o.leased_by = $3) \
                       ORDER BY o.id LIMIT $2 FOR UPDATE OF o SKIP LOCKED) \
                     UPDATE outbox SET leased_by = $3, lease_until = $4 \
                     FROM claimed WHERE outbox.id = claimed.id \
                     RETURNING {}, outbox.lease_until",
                    OUTBOX_COLUMNS_SQL
                        .split(", ")
                        .map(|c| format!("outbox.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[
                    &now.as_millisecond(),
                    &i64::from(limit),
                    &node,
                    &lease_until.as_millisecond(),
                ],
            )?;
            let mut claimed = rows::all(rows, rows::outbox)?;
            // RETURNING has no order; deliver oldest first like pending_outbox.
            claimed.sort_by_key(|r| r.id);
            Ok(claimed)
        })
    }
}

impl crate::store::StoreMetrics for PgStore {
    /// The server and database, never the password (see `display_name`).
    fn location(&self) -> String {
        self.name().to_string()
    }

    /// See [`crate::store::Store::backlog`] (voicemails and outbox together, for the gauges).
    fn backlog(&self, now: Timestamp) -> Result<Backlog, StoreError> {
        let now_ms = now.as_millisecond();
        self.read("reading the backlog", |c| {
            let vm = c.query_one(
                "SELECT \
                   COUNT(*) FILTER (WHERE s.state = 'pending' AND s.due_at > $1), \
                   COUNT(*) FILTER (WHERE s.state = 'escalated' \
                                    OR (s.state = 'pending' AND s.due_at <= $1)) \
                 FROM voicemails v JOIN sla_timers s ON s.voicemail_id = v.id \
                 WHERE v.acked_at IS NULL",
                &[&now_ms],
            )?;
            let ob = c.query_one(
                "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE delivered_at IS NULL",
                &[],
            )?;
            let oldest: Option<i64> = ob.try_get(1)?;
            Ok(Backlog {
                voicemails_pending: to_u64(vm.try_get(0)?),
                voicemails_overdue: to_u64(vm.try_get(1)?),
                outbox_events: to_u64(ob.try_get(0)?),
                outbox_oldest_age: oldest
                    .map(|t| Duration::from_millis(u64::try_from(now_ms - t).unwrap_or(0))),
            })
        })
    }
}
