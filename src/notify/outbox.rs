//! The outbox as the webhook worker sees it: the [`OutboxStore`] trait the store implements
//! (SQLite in `crate::store`, in memory here), and [`MemoryStore`], a non-durable
//! implementation of it and of [`SlaStore`] for tests and simulations.

use std::sync::{Mutex, MutexGuard};

use jiff::Timestamp;
use thiserror::Error;

use super::event::OutboxEvent;
use super::mail_text::Transcript;
use crate::sla::{SlaStore, SlaTimer};

/// A store operation failed. The worker logs it and tries again later; nothing is lost, because
/// the row stays as it was.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Backend(String),
    #[error("store task stopped: {0}")]
    Task(String),
}

impl StoreError {
    /// Wraps any backend error (SQLite, Postgres, ...) keeping its message.
    pub fn backend(e: impl std::fmt::Display) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// One undelivered outbox row.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    /// Ids grow in enqueue order; they are the body's `id` and the `X-Ivr-Delivery` header.
    pub id: i64,
    pub event: OutboxEvent,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the next attempt is due; `None` when never attempted (due at once).
    pub next_attempt_at: Option<Timestamp>,
}

/// What the webhook worker needs from the store. Methods are synchronous (SQLite is); the worker
/// calls them from `spawn_blocking`.
pub trait OutboxStore: Send + Sync {
    /// Stores `event` as undelivered and never attempted; returns its id, larger than every id
    /// before it. Once this returns the event is owed: it survives restarts.
    fn enqueue(&self, event: &OutboxEvent) -> Result<i64, StoreError>;

    /// Undelivered rows in id order, at most `limit`, **whether due or not**: the worker needs to
    /// see a call's older, backed-off row to hold back its newer ones. A store may instead
    /// return only the oldest undelivered row of each `(target, call_id)` (plus every row
    /// without a call id), which scales better with a large backlog; the worker's ordering is
    /// the same either way.
    fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError>;

    /// The receiver accepted row `id` at `at`; it is never sent again.
    fn mark_delivered(&self, id: i64, at: Timestamp) -> Result<(), StoreError>;

    /// An attempt failed: add one to `attempts`, set `next_attempt_at`, remember `error` (for
    /// the admin page).
    fn mark_attempt_failed(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Holds row `id` back until `until` without counting an attempt (a mail waiting for its
    /// transcript).
    fn postpone(&self, id: i64, until: Timestamp) -> Result<(), StoreError>;

    /// The transcript of voicemail `id` as it stands, for its mail. A store that keeps none
    /// says [`Transcript::Pending`]; with transcription off the worker reads that as off.
    fn transcript(&self, voicemail_id: i64) -> Result<Transcript, StoreError> {
        let _ = voicemail_id;
        Ok(Transcript::Pending)
    }
}

/// A row as [`MemoryStore::snapshot`] shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEntry {
    pub row: OutboxRow,
    pub delivered_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug)]
struct TimerEntry {
    timer: SlaTimer,
    acked_at: Option<Timestamp>,
    escalated_at: Option<Timestamp>,
}

#[derive(Default)]
struct Inner {
    outbox: Vec<OutboxEntry>,
    timers: Vec<TimerEntry>,
    next_id: i64,
}

/// An in-memory outbox and SLA timer table: same contract as the SQLite store, nothing
/// survives the process. For tests (a "restart" is a new worker on the same `MemoryStore`) and
/// for `ivr simulate`.
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
    pub fn snapshot(&self) -> Vec<OutboxEntry> {
        self.lock().outbox.clone()
    }

    /// Starts the callback timer of a voicemail (the store does this when it saves one).
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
        inner.outbox.push(OutboxEntry {
            row: OutboxRow {
                id,
                event: event.clone(),
                attempts: 0,
                next_attempt_at: None,
            },
            delivered_at: None,
            last_error: None,
        });
        id
    }

    fn entry(inner: &mut Inner, id: i64) -> Result<&mut OutboxEntry, StoreError> {
        inner
            .outbox
            .iter_mut()
            .find(|e| e.row.id == id)
            .ok_or_else(|| StoreError::Backend(format!("no outbox row {id}")))
    }
}

impl OutboxStore for MemoryStore {
    fn enqueue(&self, event: &OutboxEvent) -> Result<i64, StoreError> {
        Ok(Self::push(&mut self.lock(), event))
    }

    fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let g = self.lock();
        Ok(g.outbox
            .iter()
            .filter(|e| e.delivered_at.is_none())
            .take(limit)
            .map(|e| e.row.clone())
            .collect())
    }

    fn mark_delivered(&self, id: i64, at: Timestamp) -> Result<(), StoreError> {
        let mut g = self.lock();
        let e = Self::entry(&mut g, id)?;
        e.delivered_at.get_or_insert(at);
        Ok(())
    }

    fn mark_attempt_failed(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut g = self.lock();
        let e = Self::entry(&mut g, id)?;
        e.row.attempts = e.row.attempts.saturating_add(1);
        e.row.next_attempt_at = Some(next_attempt_at);
        e.last_error = Some(error.to_string());
        Ok(())
    }

    fn postpone(&self, id: i64, until: Timestamp) -> Result<(), StoreError> {
        let mut g = self.lock();
        let e = Self::entry(&mut g, id)?;
        if e.delivered_at.is_none() {
            e.row.next_attempt_at = Some(until);
        }
        Ok(())
    }
}

impl SlaStore for MemoryStore {
    fn due_sla_timers(&self, now: Timestamp) -> Result<Vec<SlaTimer>, StoreError> {
        let g = self.lock();
        let mut due: Vec<SlaTimer> = g
            .timers
            .iter()
            .filter(|t| t.acked_at.is_none() && t.escalated_at.is_none())
            .filter(|t| t.timer.due_at <= now)
            .map(|t| t.timer.clone())
            .collect();
        due.sort_by_key(|t| (t.due_at, t.voicemail_id));
        Ok(due)
    }

    fn next_sla_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let g = self.lock();
        Ok(g.timers
            .iter()
            .filter(|t| t.acked_at.is_none() && t.escalated_at.is_none())
            .map(|t| t.timer.due_at)
            .min())
    }

    fn escalate(
        &self,
        voicemail_id: i64,
        event: &OutboxEvent,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        // One lock for the check, the enqueue and the mark: the in-memory equivalent of the
        // single transaction the SQL stores use.
        let mut g = self.lock();
        let Some(i) = g
            .timers
            .iter()
            .position(|t| t.timer.voicemail_id == voicemail_id)
        else {
            return Ok(None);
        };
        if g.timers[i].acked_at.is_some() || g.timers[i].escalated_at.is_some() {
            return Ok(None);
        }
        g.timers[i].escalated_at = Some(now);
        Ok(Some(Self::push(&mut g, event)))
    }
}

/// Runs a synchronous store call off the async threads (SQLite blocks on disk).
pub(crate) async fn blocking<S, T, F>(store: &std::sync::Arc<S>, f: F) -> Result<T, StoreError>
where
    S: ?Sized + Send + Sync + 'static,
    T: Send + 'static,
    F: FnOnce(&S) -> Result<T, StoreError> + Send + 'static,
{
    let store = std::sync::Arc::clone(store);
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}
