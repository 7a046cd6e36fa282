//! The line's memory: calls (CDRs), callers, voicemails with their callback-SLA timers, and the
//! webhook outbox, behind one [`Store`] trait.
//!
//! [`SqliteStore`] (one WAL-mode file, `DATA/ivr.db`) is the default; a PostgreSQL store for
//! clusters implements the same trait later, so callers hold an `Arc<dyn Store>` and never see
//! SQL. The trait is synchronous on purpose: SQLite calls block, so the async shell runs them on
//! `tokio::task::spawn_blocking` (or one dedicated store thread) and never on a runtime worker.
//!
//! Correctness that must hold across nodes lives inside single store operations, so a shared
//! database keeps it: [`Store::call_started`] records a call and reads the calls before it in
//! one transaction (two simultaneous calls cannot both miss a repeat), [`Store::add_voicemail`]
//! creates the voicemail and its SLA timer together, and [`Store::escalate`] marks a timer
//! escalated and queues the `callback_overdue` event together (exactly one node wins the claim;
//! a crash cannot leave an escalated timer with no event).
//!
//! Times are [`jiff::Timestamp`]s at the API and unix milliseconds (INTEGER) in the database:
//! exact comparisons and ordering in SQL, no time zone text to parse. Sub-millisecond precision
//! is dropped.

mod backlog;
mod cdr_csv;
mod disk;
mod incidents;
mod outbox_admin;
mod postgres;
mod schema;
mod sqlite;
mod transcripts;
mod types;
mod writer;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod sqlite_queue_tests;
#[cfg(test)]
mod sqlite_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod writer_tests;

pub use self::postgres::PgStore;
pub use backlog::Backlog;
pub use cdr_csv::{CDR_COLUMNS, cdr_json, write_cdrs_csv};
pub use incidents::{Incident, IncidentSource, NewIncident};
pub use sqlite::{DB_FILE, SqliteStore};
pub use transcripts::{OwedTranscript, TranscriptOutcome};
pub use types::*;

use jiff::Timestamp;

/// Everything the rest of `ivr` stores, whatever the database. Implementations are `Send +
/// Sync` and block; see the module docs for how async code calls them. A write method returns
/// `Ok` only once its data is committed durably (a voicemail is on disk before anyone is told
/// about it); an implementation may commit several callers' writes together to get there.
pub trait Store: Send + Sync {
    /// Record the start of a call: inserts its `calls` row, updates `callers`, and decides
    /// whether it is a repeat from the calls to the line before it, all in one transaction.
    /// Calling it again with the same `call_id` changes nothing and returns the same answer.
    fn call_started(&self, call: &CallStart) -> Result<CallStartOutcome, StoreError>;

    /// Complete a call's CDR (answer and end times, outcome, digits, ticket, billing). The
    /// caller, start time and repeat flag recorded at the start are kept. A call whose start
    /// was never recorded (the store failed then) is inserted whole, so no CDR is lost.
    fn call_ended(&self, cdr: &Cdr) -> Result<(), StoreError>;

    /// Store a voicemail and start its callback-SLA timer (due at `sla_due_at`); returns the
    /// voicemail id.
    fn add_voicemail(&self, vm: &NewVoicemail, sla_due_at: Timestamp) -> Result<i64, StoreError> {
        self.register_voicemail(vm, sla_due_at, &[])
    }

    /// [`Store::add_voicemail`] and queue `events` (its `voicemail_recorded` for the webhook and
    /// for the mail) in the same transaction, each payload's `voicemail_id` set to the new id: a
    /// crash cannot keep a voicemail whose events are lost, nor events for a voicemail that is
    /// not stored.
    fn register_voicemail(
        &self,
        vm: &NewVoicemail,
        sla_due_at: Timestamp,
        events: &[OutboxEvent],
    ) -> Result<i64, StoreError>;

    /// Record facts of a live call as they happen (answer time, digits so far, the terms agreed,
    /// the ticket, who accepted), so a crash keeps them. A call already ended is left as its
    /// final record says; a call whose start was never recorded is not created.
    fn call_progress(&self, call_id: &str, facts: &[CallFact]) -> Result<(), StoreError>;

    /// Acknowledge a voicemail (someone is calling back), which stops its SLA timer.
    fn ack_voicemail(&self, id: i64, by: &str, at: Timestamp) -> Result<AckOutcome, StoreError>;

    /// Acknowledge every unacknowledged voicemail from `number` (an outbound call from the desk
    /// to that number keeps the promise); returns how many were acknowledged.
    fn ack_voicemails_for_number(&self, number: &str, at: Timestamp) -> Result<u32, StoreError>;

    /// One voicemail, or `None`.
    fn voicemail(&self, id: i64) -> Result<Option<Voicemail>, StoreError>;

    /// Every voicemail, oldest first.
    fn voicemails(&self) -> Result<Vec<Voicemail>, StoreError>;

    /// Pending SLA timers due at or before `now`, earliest first.
    fn due_sla_timers(&self, now: Timestamp) -> Result<Vec<SlaTimer>, StoreError>;

    /// When the earliest pending SLA timer is due (the SLA shell sleeps until then).
    fn next_sla_due(&self) -> Result<Option<Timestamp>, StoreError>;

    /// Claim a pending timer as escalated; `false` if it was not pending (acknowledged, already
    /// escalated, or unknown). Prefer [`Store::escalate`], which also queues the event.
    fn mark_escalated(&self, voicemail_id: i64, at: Timestamp) -> Result<bool, StoreError>;

    /// Claim a pending timer as escalated and queue `event` in the same transaction. Returns the
    /// outbox id, or `None` (and queues nothing) if the timer was not pending.
    fn escalate(
        &self,
        voicemail_id: i64,
        at: Timestamp,
        event: &OutboxEvent,
    ) -> Result<Option<i64>, StoreError>;

    /// Put an event in the outbox; it is durable when this returns, before any attempt to send.
    fn enqueue(&self, event: &OutboxEvent) -> Result<i64, StoreError>;

    /// Undelivered events due at `now`, oldest first, at most `limit`. Per-call order: for each
    /// (`call_id`, `target`) only the oldest undelivered event is returned, so a later event of
    /// a call is never offered while an earlier one is waiting for a retry. Deliver the batch
    /// in order and poll again after marking.
    fn pending_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxRow>, StoreError>;

    /// Record a successful delivery.
    fn mark_delivered(&self, id: i64, at: Timestamp) -> Result<(), StoreError>;

    /// Record a failed attempt: one more attempt, the error, and when to try again.
    fn mark_attempt_failed(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Hold row `id` back until `until` without counting an attempt (a voicemail's mail waiting
    /// for its transcript). A delivered row is left alone.
    fn postpone_outbox(&self, id: i64, until: Timestamp) -> Result<(), StoreError>;

    /// CDRs of calls started in `[from, to)` (either bound optional), in start order.
    fn cdrs_between(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Vec<Cdr>, StoreError>;

    /// Calls recorded as started but never ended (live when the process stopped), oldest first.
    /// One node per store for now: with several nodes this must be limited to the caller's own.
    fn open_calls(&self) -> Result<Vec<Cdr>, StoreError>;

    /// Voicemails waiting for a callback and webhook events waiting for delivery at `now`
    /// (the metrics' scrape-time gauges). Read-only.
    fn backlog(&self, now: Timestamp) -> Result<Backlog, StoreError>;

    /// Set an incident, or refresh the one with the same source and key (new labels, summary
    /// and expiry; no longer resolved). Returns its id.
    fn set_incident(&self, incident: &NewIncident) -> Result<i64, StoreError>;

    /// Resolve the unresolved incident `source`/`key` at `at`; `false` if there is none.
    fn resolve_incident(
        &self,
        source: IncidentSource,
        key: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Incidents active at `now` (not resolved, `ends_at` after `now`), oldest first.
    fn active_incidents(&self, now: Timestamp) -> Result<Vec<Incident>, StoreError>;

    /// Every incident, newest first.
    fn incidents(&self) -> Result<Vec<Incident>, StoreError>;

    /// Voicemails with no transcription outcome yet (durable: a restarted worker carries on),
    /// newest first, at most `limit`, each with its failed attempts so far.
    fn transcripts_owed(&self, limit: u32) -> Result<Vec<OwedTranscript>, StoreError>;

    /// Store voicemail `id`'s final transcription outcome (text or error) and queue `event` (its
    /// `voicemail_transcribed`) in the same transaction. `false`, and nothing queued, when it
    /// already has an outcome or does not exist.
    fn set_transcript(
        &self,
        id: i64,
        outcome: &TranscriptOutcome,
        event: Option<&OutboxEvent>,
    ) -> Result<bool, StoreError>;

    /// Count a failed transcription attempt that will be tried again, keeping its error;
    /// returns the failed attempts so far (0 when the voicemail has an outcome or is unknown).
    fn transcript_attempt_failed(&self, id: i64, error: &str) -> Result<u32, StoreError>;

    /// Time every later write, from queueing to its durable commit (or failure), in
    /// `histogram`. A store that cannot time its writes ignores it.
    fn time_writes(&self, histogram: prometheus::Histogram) {
        let _ = histogram;
    }
}
