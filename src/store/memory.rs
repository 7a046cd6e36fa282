//! [`MemoryStore`]: an outbox and SLA-timer table in memory, the same contract as the SQLite
//! store's [`OutboxStore`] and [`SlaStore`] with nothing surviving the process. For tests of
//! the webhook worker and the SLA timers (a "restart" is a new worker on the same store).

use std::sync::{Mutex, MutexGuard};

use jiff::Timestamp;

use super::{OutboxEvent, OutboxRow, OutboxStore, SlaState, SlaStore, SlaTimer, StoreError};

#[derive(Clone, Debug)]
struct TimerEntry {
    timer: SlaTimer,
    acked_at: Option<Timestamp>,
    escalated_at: Option<Timestamp>,
}

impl TimerEntry {
    fn pending(&self) -> bool {
        self.acked_at.is_none() && self.escalated_at.is_none()
    }
}

#[derive(Default)]
struct Inner {
    outbox: Vec<OutboxRow>,
    timers: Vec<TimerEntry>,
    next_id: i64,
}

/// An in-memory outbox and SLA timer table (see the module docs).
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated (every method
        // changes it in a single step), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every outbox row, delivered or not, in id order.
    pub fn snapshot(&self) -> Vec<OutboxRow> {
        self.lock().outbox.clone()
    }

    /// Starts the callback timer of a voicemail (the SQL stores do this when they save one).
    pub fn add_sla_timer(&self, timer: SlaTimer) {
        self.lock().timers.push(TimerEntry {
            timer,
            acked_at: None,
            escalated_at: None,
        });
    }

    /// Acknowledges a voicemail (someone is calling back): its timer stops. `false` when
    /// there is no such voicemail.
    pub fn ack_voicemail(&self, voicemail_id: i64, at: Timestamp) -> bool {
        let mut g = self.lock();
        match g
            .timers
            .iter_mut()
            .find(|t| t.timer.voicemail_id == voicemail_id)
        {
            Some(t) => {
                t.acked_at.get_or_insert(at);
                t.timer.state = SlaState::Acked;
                true
            }
            None => false,
        }
    }

    /// When a voicemail's timer escalated, if it did.
    pub fn escalated_at(&self, voicemail_id: i64) -> Option<Timestamp> {
        let g = self.lock();
        g.timers
            .iter()
            .find(|t| t.timer.voicemail_id == voicemail_id)
            .and_then(|t| t.escalated_at)
    }

    fn push(inner: &mut Inner, event: &OutboxEvent) -> i64 {
        inner.next_id += 1;
        let id = inner.next_id;
        inner.outbox.push(OutboxRow {
            id,
            event: event.clone(),
            attempts: 0,
            next_attempt_at: event.occurred_at,
            delivered_at: None,
            last_error: None,
            lease_until: None,
        });
        id
    }

    fn row(inner: &mut Inner, id: i64) -> Result<&mut OutboxRow, StoreError> {
        inner
            .outbox
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or(StoreError::NoSuchOutboxRow(id))
    }

    /// Whether an earlier row of the same (call, target) queue is still undelivered.
    fn behind(outbox: &[OutboxRow], row: &OutboxRow) -> bool {
        row.event.call_id.is_some()
            && outbox.iter().any(|p| {
                p.id < row.id
                    && p.delivered_at.is_none()
                    && p.event.call_id == row.event.call_id
                    && p.event.target == row.event.target
            })
    }
}

impl OutboxStore for MemoryStore {
    /// One process owns this store, so there is no other node to lease against.
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
        Ok(Self::push(&mut self.lock(), event))
    }

    fn pending_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        let g = self.lock();
        Ok(g.outbox
            .iter()
            .filter(|r| r.delivered_at.is_none() && r.next_attempt_at <= now)
            .filter(|r| !Self::behind(&g.outbox, r))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    fn mark_delivered(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        let mut g = self.lock();
        Self::row(&mut g, id)?.delivered_at.get_or_insert(at);
        Ok(())
    }

    fn mark_attempt_failed(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut g = self.lock();
        let r = Self::row(&mut g, id)?;
        r.attempts = r.attempts.saturating_add(1);
        r.next_attempt_at = next_attempt_at;
        r.last_error = Some(error.to_string());
        Ok(())
    }

    fn postpone_outbox(&self, id: i64, until: Timestamp) -> Result<(), StoreError> {
        let mut g = self.lock();
        if let Ok(r) = Self::row(&mut g, id)
            && r.delivered_at.is_none()
        {
            r.next_attempt_at = until;
        }
        Ok(())
    }

    fn undelivered_outbox(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        let g = self.lock();
        Ok(g.outbox
            .iter()
            .filter(|r| r.delivered_at.is_none())
            .take(limit as usize)
            .cloned()
            .collect())
    }

    fn retry_outbox_now(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        let mut g = self.lock();
        Ok(match Self::row(&mut g, id) {
            Ok(r) if r.delivered_at.is_none() => {
                r.next_attempt_at = now;
                true
            }
            _ => false,
        })
    }
}

impl SlaStore for MemoryStore {
    fn due_sla_timers(&self, now: Timestamp) -> Result<Vec<SlaTimer>, StoreError> {
        let g = self.lock();
        let mut due: Vec<SlaTimer> = g
            .timers
            .iter()
            .filter(|t| t.pending() && t.timer.due_at <= now)
            .map(|t| t.timer.clone())
            .collect();
        due.sort_by_key(|t| (t.due_at, t.voicemail_id));
        Ok(due)
    }

    fn next_sla_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let g = self.lock();
        Ok(g.timers
            .iter()
            .filter(|t| t.pending())
            .map(|t| t.timer.due_at)
            .min())
    }

    fn mark_escalated(&self, voicemail_id: i64, at: Timestamp) -> Result<bool, StoreError> {
        let mut g = self.lock();
        Ok(claim(&mut g, voicemail_id, at))
    }

    fn escalate(
        &self,
        voicemail_id: i64,
        at: Timestamp,
        event: &OutboxEvent,
    ) -> Result<Option<i64>, StoreError> {
        // One lock for the claim and the enqueue: the in-memory equivalent of the single
        // transaction the SQL stores use.
        let mut g = self.lock();
        Ok(claim(&mut g, voicemail_id, at).then(|| Self::push(&mut g, event)))
    }
}

/// Moves a pending timer to escalated; `false` if it was not pending.
fn claim(inner: &mut Inner, voicemail_id: i64, at: Timestamp) -> bool {
    match inner
        .timers
        .iter_mut()
        .find(|t| t.timer.voicemail_id == voicemail_id)
    {
        Some(t) if t.pending() => {
            t.escalated_at = Some(at);
            t.timer.state = SlaState::Escalated;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{TempDir, event, t};
    use super::super::{OutboxStore, SqliteStore};
    use super::*;

    /// What a store's outbox says after each step, to hold the two stores side by side.
    fn run(s: &dyn OutboxStore) -> Vec<Vec<(i64, u32)>> {
        let at = "2026-11-28T03:00:00Z";
        let ids = [
            s.enqueue(&event("call_started", Some("a"), at)).unwrap(),
            s.enqueue(&event("call_ended", Some("a"), at)).unwrap(),
            s.enqueue(&event("call_started", Some("b"), at)).unwrap(),
            s.enqueue(&event("custom", None, at)).unwrap(),
        ];
        let heads = |now: &str| {
            s.pending_outbox(t(now), 100)
                .unwrap()
                .iter()
                .map(|r| (r.id, r.attempts))
                .collect::<Vec<_>>()
        };
        let mut seen = vec![heads(at)];
        s.mark_attempt_failed(ids[0], t("2026-11-28T03:10:00Z"), "503")
            .unwrap();
        seen.push(heads("2026-11-28T03:05:00Z"));
        seen.push(heads("2026-11-28T03:10:00Z"));
        s.postpone_outbox(ids[2], t("2026-11-28T03:20:00Z"))
            .unwrap();
        seen.push(heads("2026-11-28T03:15:00Z"));
        s.mark_delivered(ids[0], t("2026-11-28T03:11:00Z")).unwrap();
        seen.push(heads("2026-11-28T03:15:00Z"));
        assert!(
            s.retry_outbox_now(ids[2], t("2026-11-28T03:15:00Z"))
                .unwrap()
        );
        assert!(
            !s.retry_outbox_now(ids[0], t("2026-11-28T03:15:00Z"))
                .unwrap()
        );
        seen.push(heads("2026-11-28T03:15:00Z"));
        seen.push(
            s.undelivered_outbox(100)
                .unwrap()
                .iter()
                .map(|r| (r.id, r.attempts))
                .collect(),
        );
        assert!(matches!(
            s.mark_delivered(999, t(at)),
            Err(StoreError::NoSuchOutboxRow(999))
        ));
        seen
    }

    /// The in-memory outbox keeps the SQLite store's contract: queue heads only, due at `now`,
    /// backoff and postponement, admin listing and retry.
    #[test]
    fn the_memory_outbox_answers_as_sqlite_does() {
        let dir = TempDir::new("memory-parity");
        let sqlite = SqliteStore::open(dir.path()).expect("open");
        let memory = MemoryStore::new();
        let expected = run(&sqlite);
        assert_eq!(run(&memory), expected);
        // And the sequence shows what it should: a's second event waits behind its first.
        assert_eq!(expected[0], [(1, 0), (3, 0), (4, 0)]);
        assert_eq!(expected[1], [(3, 0), (4, 0)]);
        assert_eq!(expected[4], [(2, 0), (4, 0)]);
    }
}
