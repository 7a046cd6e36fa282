//! What the admin page and API need from the SQLite store beyond the [`super::Store`] trait:
//! the undelivered webhook events with their last error, and "retry now". Kept off the trait
//! (and out of `sqlite.rs`) because only the admin of a running node uses them; a PostgreSQL
//! store would add the same two methods.

use jiff::Timestamp;

use super::schema::{OUTBOX_COLUMNS_SQL, outbox_from_row};
use super::{OutboxRow, SqliteStore, StoreError};

impl SqliteStore {
    /// Undelivered events (pending or failed at least once), oldest first, at most `limit`.
    pub fn undelivered_outbox(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.read("reading the outbox", |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {OUTBOX_COLUMNS_SQL} FROM outbox \
                 WHERE delivered_at IS NULL ORDER BY id LIMIT ?1"
            ))?;
            let rows = stmt.query_map([limit], outbox_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Makes an undelivered event due at `now` (its backoff is skipped; attempts and the last
    /// error are kept for the record). `false` when it is unknown or already delivered.
    pub fn retry_outbox_now(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
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
    use super::super::Store;
    use super::super::test_support::{TempDir, event, t};
    use super::*;

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
