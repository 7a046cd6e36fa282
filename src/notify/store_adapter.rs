//! Connects the webhook worker and the SLA timers to the real store: every
//! [`crate::store::Store`] (SQLite today, PostgreSQL later) is an [`OutboxStore`] and a
//! [`SlaStore`], and [`SharedStore`] makes an `Arc<dyn Store>` usable where an
//! `Arc<dyn OutboxStore>` / `Arc<dyn SlaStore>` is wanted.
//!
//! The mapping: an event's `kind` is the store's `event_type` (its wire name), `target` is
//! `"primary"` or `"escalation"` (older rows saying `"default"`, or any unknown name, are read
//! as primary, so they are delivered rather than stranded), `payload` is the body's `data`, and
//! `occurred_at` is `created_at`. A voicemail's `created_at` is its `recorded_at`.

use std::sync::Arc;

use jiff::Timestamp;
use tracing::warn;

use super::event::{EventKind, OutboxEvent, Target};
use super::mail_text::Transcript;
use super::outbox::{OutboxRow, OutboxStore, StoreError};
use crate::sla::{SlaStore, SlaTimer};
use crate::store::{self, Store};

fn err(e: store::StoreError) -> StoreError {
    StoreError::backend(e)
}

/// The event as a [`Store`] keeps it.
pub(crate) fn to_store(ev: &OutboxEvent) -> store::OutboxEvent {
    store::OutboxEvent {
        event_type: ev.kind.as_str().to_string(),
        call_id: ev.call_id.clone(),
        target: ev.target.as_str().to_string(),
        payload: ev.payload.clone(),
        created_at: ev.occurred_at,
    }
}

fn from_store(r: store::OutboxRow) -> OutboxRow {
    let target = Target::from_name(&r.target).unwrap_or_else(|| {
        if r.target != "default" {
            warn!(outbox_id = r.id, target = %r.target, "unknown webhook target; sending to primary");
        }
        Target::Primary
    });
    OutboxRow {
        id: r.id,
        event: OutboxEvent {
            kind: EventKind::from_name(&r.event_type),
            call_id: r.call_id,
            occurred_at: r.created_at,
            payload: r.payload,
            target,
        },
        attempts: r.attempts,
        // The store sets `next_attempt_at = created_at` on insert; a never-tried row is due at
        // once whatever the clocks say, unless it was postponed (a mail waiting for its
        // transcript), which moves it past `created_at`: read as due then, it would be
        // attempted, held and attempted again in a loop for the whole wait.
        next_attempt_at: (r.attempts > 0 || r.next_attempt_at > r.created_at)
            .then_some(r.next_attempt_at),
    }
}

impl<S: Store + ?Sized> OutboxStore for S {
    fn enqueue(&self, event: &OutboxEvent) -> Result<i64, StoreError> {
        store::OutboxStore::enqueue(self, &to_store(event)).map_err(err)
    }

    fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        // The store returns the head of each (call, target) queue that is due at `now`; asking
        // at the end of time gives every head, due or not, which the worker needs to know when
        // to wake up. Its per-call gating is the same as `plan`'s.
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let rows = store::OutboxStore::pending_outbox(self, Timestamp::MAX, limit).map_err(err)?;
        Ok(rows.into_iter().map(from_store).collect())
    }

    fn mark_delivered(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        store::OutboxStore::mark_delivered(self, id, at).map_err(err)
    }

    fn mark_attempt_failed(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        store::OutboxStore::mark_attempt_failed(self, id, next_attempt_at, error).map_err(err)
    }

    fn postpone(&self, id: i64, until: Timestamp) -> Result<(), StoreError> {
        store::OutboxStore::postpone_outbox(self, id, until).map_err(err)
    }

    fn transcript(&self, voicemail_id: i64) -> Result<Transcript, StoreError> {
        let vm = store::VoicemailStore::voicemail(self, voicemail_id).map_err(err)?;
        Ok(match vm {
            Some(v) if v.transcribed_at.is_some() => match (v.transcript, v.transcript_error) {
                (Some(text), _) => Transcript::Ready {
                    text,
                    engine: v.transcript_engine.unwrap_or_default(),
                },
                (None, error) => Transcript::Failed {
                    error: error.unwrap_or_else(|| "unknown error".into()),
                },
            },
            _ => Transcript::Pending,
        })
    }
}

impl<S: Store + ?Sized> SlaStore for S {
    fn due_sla_timers(&self, now: Timestamp) -> Result<Vec<SlaTimer>, StoreError> {
        let timers = store::SlaStore::due_sla_timers(self, now).map_err(err)?;
        Ok(timers
            .into_iter()
            .map(|t| SlaTimer {
                voicemail_id: t.voicemail_id,
                call_id: Some(t.call_id),
                caller: t.caller,
                ticket: t.ticket,
                recorded_at: t.created_at,
                due_at: t.due_at,
            })
            .collect())
    }

    fn next_sla_due(&self) -> Result<Option<Timestamp>, StoreError> {
        store::SlaStore::next_sla_due(self).map_err(err)
    }

    fn escalate(
        &self,
        voicemail_id: i64,
        event: &OutboxEvent,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        store::SlaStore::escalate(self, voicemail_id, now, &to_store(event)).map_err(err)
    }
}

/// An `Arc<dyn Store>` as an outbox and SLA store:
/// `Notifier::new(Arc::new(SharedStore(store.clone())), ..)`.
#[derive(Clone)]
pub struct SharedStore(pub Arc<dyn Store>);

impl OutboxStore for SharedStore {
    fn enqueue(&self, event: &OutboxEvent) -> Result<i64, StoreError> {
        OutboxStore::enqueue(&*self.0, event)
    }

    fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        OutboxStore::pending_outbox(&*self.0, limit)
    }

    fn mark_delivered(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        OutboxStore::mark_delivered(&*self.0, id, at)
    }

    fn mark_attempt_failed(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        OutboxStore::mark_attempt_failed(&*self.0, id, next_attempt_at, error)
    }

    fn postpone(&self, id: i64, until: Timestamp) -> Result<(), StoreError> {
        OutboxStore::postpone(&*self.0, id, until)
    }

    fn transcript(&self, voicemail_id: i64) -> Result<Transcript, StoreError> {
        OutboxStore::transcript(&*self.0, voicemail_id)
    }
}

impl SlaStore for SharedStore {
    fn due_sla_timers(&self, now: Timestamp) -> Result<Vec<SlaTimer>, StoreError> {
        SlaStore::due_sla_timers(&*self.0, now)
    }

    fn next_sla_due(&self) -> Result<Option<Timestamp>, StoreError> {
        SlaStore::next_sla_due(&*self.0)
    }

    fn escalate(
        &self,
        voicemail_id: i64,
        event: &OutboxEvent,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        SlaStore::escalate(&*self.0, voicemail_id, event, now)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::notify::{CallStarted, OutboxEvent};
    use crate::sla::{self, SlaWheel};
    use crate::store::{NewVoicemail, SqliteStore};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> TempDir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "ivr-notify-{label}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn started(call: &str, at: Timestamp) -> OutboxEvent {
        OutboxEvent::call_started(
            call,
            at,
            CallStarted {
                caller: "+15551234567".into(),
                called: "100".into(),
                client: Some("Acme".into()),
                after_hours: true,
                repeat: false,
            },
        )
    }

    #[test]
    fn outbox_round_trips_and_gates_per_call() {
        let dir = TempDir::new("outbox");
        let store = SqliteStore::open(&dir.0).unwrap();
        let s: &dyn OutboxStore = &store;
        let at = t("2025-01-31T22:00:00Z");
        let a1 = s.enqueue(&started("a", at)).unwrap();
        let a2 = s.enqueue(&started("a", at)).unwrap();
        let b1 = s.enqueue(&started("b", at)).unwrap();
        let ev = sla::overdue_event(&SlaTimer {
            voicemail_id: 3,
            call_id: Some("a".into()),
            caller: "+1555".into(),
            ticket: None,
            recorded_at: at,
            due_at: at,
        });
        let e1 = s.enqueue(&ev).unwrap();
        assert!(a1 < a2 && a2 < b1 && b1 < e1);

        let rows = s.pending_outbox(100).unwrap();
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        // Heads: a's first, b's, and a's escalation queue.
        assert_eq!(ids, [a1, b1, e1]);
        assert_eq!(rows[0].event, started("a", at));
        assert_eq!(rows[2].event, ev);
        assert_eq!(rows[0].next_attempt_at, None);

        // A failed head stays the head (backed off) and keeps its call's next row back.
        let later = t("2025-01-31T23:00:00Z");
        s.mark_attempt_failed(a1, later, "HTTP 500").unwrap();
        let rows = s.pending_outbox(100).unwrap();
        assert_eq!(rows[0].id, a1);
        assert_eq!(
            (rows[0].attempts, rows[0].next_attempt_at),
            (1, Some(later))
        );
        assert!(rows.iter().all(|r| r.id != a2));

        s.mark_delivered(a1, later).unwrap();
        let ids: Vec<i64> = s
            .pending_outbox(100)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [a2, b1, e1]);
    }

    fn voicemail(store: &SqliteStore, at: Timestamp) -> i64 {
        store::VoicemailStore::add_voicemail(
            store,
            &NewVoicemail {
                call_id: "call-v".into(),
                caller: "+15551234567".into(),
                client: None,
                ticket: Some("T-1".into()),
                path: PathBuf::from("vm/1.wav"),
                duration_ms: 9000,
                created_at: at,
            },
            sla::due_at(at, sla::DEFAULT_SLA),
        )
        .unwrap()
    }

    #[test]
    fn sla_on_sqlite_fires_once_across_a_restart() {
        let dir = TempDir::new("sla");
        let t0 = t("2025-01-31T22:04:05Z");
        let minute = jiff::SignedDuration::from_secs(60);
        let vm = {
            let store = Arc::new(SqliteStore::open(&dir.0).unwrap());
            let vm = voicemail(&store, t0);
            let wheel = SlaWheel::new(store.clone());
            let tick = wheel.tick(t0 + minute * 19 + jiff::SignedDuration::from_secs(59));
            assert!(tick.unwrap().escalated.is_empty());
            vm
        };
        // Restart: reopen the file, a new wheel.
        let store = Arc::new(SqliteStore::open(&dir.0).unwrap());
        let wheel = SlaWheel::new(store.clone());
        let tick = wheel.tick(t0 + minute * 20).unwrap();
        assert_eq!(tick.escalated.len(), 1);
        assert_eq!(tick.escalated[0].voicemail_id, vm);
        let rows = OutboxStore::pending_outbox(&*store, 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].event.kind, EventKind::CallbackOverdue);
        assert_eq!(rows[0].event.target, Target::Escalation);
        assert_eq!(rows[0].event.payload["recorded_at"], "2025-01-31T22:04:05Z");
        drop(wheel);
        drop(store);

        let store = Arc::new(SqliteStore::open(&dir.0).unwrap());
        let wheel = SlaWheel::new(store.clone());
        assert!(wheel.tick(t0 + minute * 60).unwrap().escalated.is_empty());
        assert_eq!(OutboxStore::pending_outbox(&*store, 10).unwrap().len(), 1);
    }

    #[test]
    fn sla_on_sqlite_acked_never_fires() {
        let dir = TempDir::new("sla-ack");
        let t0 = t("2025-01-31T22:04:05Z");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.0).unwrap());
        let vm = store::VoicemailStore::add_voicemail(
            &*store,
            &NewVoicemail {
                call_id: "c".into(),
                caller: "+1555".into(),
                client: None,
                ticket: None,
                path: PathBuf::from("vm/2.wav"),
                duration_ms: 1,
                created_at: t0,
            },
            sla::due_at(t0, sla::DEFAULT_SLA),
        )
        .unwrap();
        store.ack_voicemail(vm, "desk", t0).unwrap();
        let wheel = SlaWheel::new(Arc::new(SharedStore(store.clone())));
        let tick = wheel.tick(t("2025-02-01T00:00:00Z")).unwrap();
        assert!(tick.escalated.is_empty());
        assert_eq!(tick.next_due, None);
    }

    /// A postponed row that was never tried reads as not due until its time (read as due, the
    /// worker spun through the whole wait: attempt, hold, attempt ...).
    #[test]
    fn a_postponed_row_is_not_due_until_its_time() {
        let dir = TempDir::new("postponed");
        let store = SqliteStore::open(&dir.0).unwrap();
        let s: &dyn OutboxStore = &store;
        let at = t("2025-01-31T22:00:00Z");
        let id = s.enqueue(&started("a", at)).unwrap();
        assert_eq!(s.pending_outbox(10).unwrap()[0].next_attempt_at, None);
        s.postpone(id, t("2025-01-31T22:02:00Z")).unwrap();
        let row = &s.pending_outbox(10).unwrap()[0];
        assert_eq!(
            (row.attempts, row.next_attempt_at),
            (0, Some(t("2025-01-31T22:02:00Z")))
        );
    }
}
