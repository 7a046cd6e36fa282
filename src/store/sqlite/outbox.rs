//! [`OutboxStore`] on SQLite: the `outbox` table.

use jiff::Timestamp;

use super::SqliteStore;
use crate::store::schema::{OUTBOX_COLUMNS_SQL, insert_event, outbox_from_row};
use crate::store::{OutboxEvent, OutboxRow, OutboxStore, StoreError};

impl OutboxStore for SqliteStore {
    /// No lease needed: a SQLite file has one `ivr serve` (the data directory's lock keeps a
    /// second one out) and so one outbox worker; nodes that share an outbox use PostgreSQL.
    fn claim_outbox(
        &self,
        _node: &str,
        now: Timestamp,
        _lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.pending_outbox(now, limit)
    }

    fn enqueue(&self, event: &OutboxEvent) -> Result<i64, StoreError> {
        let event = event.clone();
        self.write("queueing an event", move |tx| insert_event(tx, &event))
    }

    fn pending_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.read("reading the outbox", |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {OUTBOX_COLUMNS_SQL} FROM outbox o \
                 WHERE o.delivered_at IS NULL AND o.next_attempt_at <= ?1 \
                 AND (o.call_id IS NULL OR NOT EXISTS (SELECT 1 FROM outbox p \
                      WHERE p.call_id = o.call_id AND p.target = o.target \
                      AND p.delivered_at IS NULL AND p.id < o.id)) \
                 ORDER BY o.id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(
                rusqlite::params![now.as_millisecond(), limit],
                outbox_from_row,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn mark_delivered(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        self.write("marking an event delivered", move |tx| {
            // COALESCE: a second report of the same delivery keeps the first time.
            let n = tx.execute(
                "UPDATE outbox SET delivered_at = COALESCE(delivered_at, ?2) WHERE id = ?1",
                rusqlite::params![id, at.as_millisecond()],
            )?;
            if n == 0 {
                return Err(StoreError::NoSuchOutboxRow(id).into());
            }
            Ok(())
        })
    }

    fn mark_attempt_failed(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        let error = error.to_string();
        self.write("recording a failed delivery", move |tx| {
            let n = tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, \
                 last_error = ?3 WHERE id = ?1",
                rusqlite::params![id, next_attempt_at.as_millisecond(), error],
            )?;
            if n == 0 {
                return Err(StoreError::NoSuchOutboxRow(id).into());
            }
            Ok(())
        })
    }

    fn postpone_outbox(&self, id: i64, until: Timestamp) -> Result<(), StoreError> {
        self.write("postponing a delivery", move |tx| {
            tx.execute(
                "UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1 AND delivered_at IS NULL",
                rusqlite::params![id, until.as_millisecond()],
            )?;
            Ok(())
        })
    }

    fn undelivered_outbox(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.read("reading the outbox", |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {OUTBOX_COLUMNS_SQL} FROM outbox \
                 WHERE delivered_at IS NULL ORDER BY id LIMIT ?1"
            ))?;
            let rows = stmt.query_map([limit], outbox_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn retry_outbox_now(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        self.write("scheduling a retry", move |tx| {
            let n = tx.execute(
                "UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1 AND delivered_at IS NULL",
                rusqlite::params![id, now.as_millisecond()],
            )?;
            Ok(n == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{TempDir, event, t};

    #[test]
    fn retry_now_makes_a_failed_event_due_and_lists_it_with_its_error() {
        let dir = TempDir::new("outbox-admin");
        let store = SqliteStore::open(dir.path()).expect("open");
        let failed = store
            .enqueue(&event("call_ended", Some("c1"), "2026-11-27T22:00:00Z"))
            .expect("enqueue");
        let delivered = store
            .enqueue(&event("call_ended", Some("c2"), "2026-11-27T22:00:00Z"))
            .expect("enqueue");
        store
            .mark_attempt_failed(failed, t("2026-11-27T23:00:00Z"), "503 from receiver")
            .expect("fail");
        store
            .mark_delivered(delivered, t("2026-11-27T22:00:01Z"))
            .expect("deliver");
        let now = t("2026-11-27T22:05:00Z");
        assert!(store.pending_outbox(now, 10).expect("pending").is_empty());

        let listed = store.undelivered_outbox(10).expect("list");
        assert_eq!(listed.len(), 1, "the delivered event is not listed");
        assert_eq!(listed[0].last_error.as_deref(), Some("503 from receiver"));

        assert!(store.retry_outbox_now(failed, now).expect("retry"));
        let due = store.pending_outbox(now, 10).expect("pending");
        assert_eq!(due.iter().map(|r| r.id).collect::<Vec<_>>(), [failed]);
        assert_eq!(due[0].attempts, 1, "the attempt count is kept");
        assert!(!store.retry_outbox_now(delivered, now).expect("retry"));
        assert!(!store.retry_outbox_now(999, now).expect("retry"));
    }
}
