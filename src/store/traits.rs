//! What the rest of `ivr` asks of the store, as narrow traits, one per kind of record: calls
//! and callers ([`CallStore`]), voicemails and their transcripts ([`VoicemailStore`]),
//! callback-SLA timers ([`SlaStore`]), the webhook/mail outbox ([`OutboxStore`]), incidents
//! ([`IncidentStore`]), and the gauges /metrics reads ([`StoreMetrics`]). [`Store`] is all of
//! them: a backend (SQLite today, PostgreSQL later) implements each trait and is then a `Store`
//! by the blanket impl below.
//!
//! A consumer takes the narrowest trait it needs (`Arc<dyn OutboxStore>` for the webhook
//! worker, `Arc<dyn SlaStore>` for the SLA timers); whoever holds an `Arc<dyn Store>` hands it
//! over as such by trait upcasting (`let o: Arc<dyn OutboxStore> = store.clone();`).
//!
//! Registrations ([`RegistrationStore`]) are a copy: each node's registrar keeps its own phones'
//! bindings in memory (authoritative for them; a REGISTER is refreshed every few minutes, so a
//! restart loses nothing a phone does not resend) and writes them through here, so a desk call
//! on another node can find them.
//!
//! Every implementation is `Send + Sync` and blocks; see the module docs of [`super`] for how
//! async code calls it. A write method returns `Ok` only once its data is committed durably (a
//! voicemail is on disk before anyone is told about it); an implementation may commit several
//! callers' writes together to get there.

use jiff::Timestamp;

use super::{
    AckOutcome, Backlog, Binding, CallFact, CallStart, CallStartOutcome, Cdr, Incident,
    IncidentSource, NewIncident, NewVoicemail, OutboxEvent, OutboxRow, OwedTranscript, SlaTimer,
    StoreError, TranscriptOutcome, Voicemail,
};

/// Calls (CDRs) and callers.
pub trait CallStore: Send + Sync {
    /// Record the start of a call: inserts its `calls` row, updates `callers`, and decides
    /// whether it is a repeat from the calls to the line before it, all in one transaction.
    /// Calling it again with the same `call_id` changes nothing and returns the same repeat
    /// decision (the first one's, stored in its row); the history and window counts are read
    /// as they are now, which may include calls that started in between.
    fn call_started(&self, call: &CallStart) -> Result<CallStartOutcome, StoreError>;

    /// Complete a call's CDR (answer and end times, outcome, digits, ticket, billing). The
    /// caller, start time and repeat flag recorded at the start are kept. A call whose start
    /// was never recorded (the store failed then) is inserted whole, so no CDR is lost.
    fn call_ended(&self, cdr: &Cdr) -> Result<(), StoreError>;

    /// Record facts of a live call as they happen (answer time, digits so far, the terms agreed,
    /// the ticket, who accepted), so a crash keeps them. A call already ended is left as its
    /// final record says; a call whose start was never recorded is not created.
    fn call_progress(&self, call_id: &str, facts: &[CallFact]) -> Result<(), StoreError>;

    /// CDRs of calls started in `[from, to)` (either bound optional), in start order.
    fn cdrs_between(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Vec<Cdr>, StoreError>;

    /// Calls `node` recorded as started but never ended (live when it stopped), oldest first,
    /// with calls from before calls knew their node. Another node's calls are not included:
    /// on a shared database they may be live right now.
    fn open_calls(&self, node: &str) -> Result<Vec<Cdr>, StoreError>;
}

/// Voicemails, their acknowledgement, and their transcripts.
pub trait VoicemailStore: Send + Sync {
    /// Store a voicemail and start its callback-SLA timer (due at `sla_due_at`); returns the
    /// voicemail id.
    fn add_voicemail(&self, vm: &NewVoicemail, sla_due_at: Timestamp) -> Result<i64, StoreError> {
        self.register_voicemail(vm, sla_due_at, &[])
    }

    /// [`VoicemailStore::add_voicemail`] and queue `events` (its `voicemail_recorded` for the
    /// webhook and for the mail) in the same transaction, each payload's `voicemail_id` set to
    /// the new id: a crash cannot keep a voicemail whose events are lost, nor events for a
    /// voicemail that is not stored.
    fn register_voicemail(
        &self,
        vm: &NewVoicemail,
        sla_due_at: Timestamp,
        events: &[OutboxEvent],
    ) -> Result<i64, StoreError>;

    /// Acknowledge a voicemail (someone is calling back), which stops its SLA timer.
    fn ack_voicemail(&self, id: i64, by: &str, at: Timestamp) -> Result<AckOutcome, StoreError>;

    /// Acknowledge every unacknowledged voicemail from `number` (an outbound call from the desk
    /// to that number keeps the promise); returns how many were acknowledged.
    fn ack_voicemails_for_number(&self, number: &str, at: Timestamp) -> Result<u32, StoreError>;

    /// One voicemail, or `None`.
    fn voicemail(&self, id: i64) -> Result<Option<Voicemail>, StoreError>;

    /// Every voicemail, oldest first.
    fn voicemails(&self) -> Result<Vec<Voicemail>, StoreError>;

    /// The WAV bytes of voicemail `id`, wherever this store keeps them: `None` when there is
    /// no such voicemail, or its recording is nowhere to be had.
    ///
    /// This default (the SQLite store, one node) reads the file at the voicemail's stored path;
    /// a missing file is `None` (the row is still the callback promise: it is listed, and its
    /// reader says the recording is missing), any other read failure is
    /// [`StoreError::Audio`]. The PostgreSQL store keeps the bytes in the database instead,
    /// so any node can read a voicemail another node recorded (see `postgres/voicemails.rs`).
    fn voicemail_audio(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        match self.voicemail(id)? {
            Some(vm) => super::read_recording(&vm.path),
            None => Ok(None),
        }
    }

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
}

/// The callback-SLA timers (one per voicemail, started by
/// [`VoicemailStore::register_voicemail`], stopped by an acknowledgement).
pub trait SlaStore: Send + Sync {
    /// Pending SLA timers due at or before `now`, earliest first.
    fn due_sla_timers(&self, now: Timestamp) -> Result<Vec<SlaTimer>, StoreError>;

    /// When the earliest pending SLA timer is due (the SLA shell sleeps until then).
    fn next_sla_due(&self) -> Result<Option<Timestamp>, StoreError>;

    /// Claim a pending timer as escalated; `false` if it was not pending (acknowledged, already
    /// escalated, or unknown). Prefer [`SlaStore::escalate`], which also queues the event.
    fn mark_escalated(&self, voicemail_id: i64, at: Timestamp) -> Result<bool, StoreError>;

    /// Claim a pending timer as escalated and queue `event` in the same transaction. Returns the
    /// outbox id, or `None` (and queues nothing) if the timer was not pending (acknowledged or
    /// escalated meanwhile, perhaps by another node). This is what makes the overdue event
    /// exactly-once across crashes and nodes.
    fn escalate(
        &self,
        voicemail_id: i64,
        at: Timestamp,
        event: &OutboxEvent,
    ) -> Result<Option<i64>, StoreError>;
}

/// The outbox: events owed to the webhook endpoints and the mail intake.
pub trait OutboxStore: Send + Sync {
    /// Put an event in the outbox; it is durable when this returns, before any attempt to send.
    /// Returns its id, larger than every id before it.
    fn enqueue(&self, event: &OutboxEvent) -> Result<i64, StoreError>;

    /// Undelivered events due at `now`, oldest first, at most `limit`. Per-call order: for each
    /// (`call_id`, `target`) only the oldest undelivered event is returned, so a later event of
    /// a call is never offered while an earlier one is waiting for a retry. Deliver the batch
    /// in order and poll again after marking. (`Timestamp::MAX` gives every queue's head, due or
    /// not: the webhook worker asks that to know when to wake.)
    fn pending_outbox(&self, now: Timestamp, limit: u32) -> Result<Vec<OutboxRow>, StoreError>;

    /// [`pending_outbox`](Self::pending_outbox) for delivery by `node`: the same rows, each
    /// leased to `node` until `lease_until`, so nodes sharing one database never deliver an
    /// event at the same time. A row leased to another node is skipped until its lease runs
    /// out (its holder is then taken for dead and the row goes to whoever claims next); the
    /// holder may claim its own rows again. Marking delivered or failed ends the lease.
    fn claim_outbox(
        &self,
        node: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError>;

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

    /// Undelivered events (pending or failed at least once), oldest first, at most `limit`:
    /// the admin page's list, with each row's last error.
    fn undelivered_outbox(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError>;

    /// Make an undelivered event due at `now` (its backoff is skipped; attempts and the last
    /// error are kept for the record). `false` when it is unknown or already delivered.
    fn retry_outbox_now(&self, id: i64, now: Timestamp) -> Result<bool, StoreError>;
}

/// Incidents (outage announcements).
pub trait IncidentStore: Send + Sync {
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
}

/// Staff phones' registrations, shared between nodes (each node writes its registrar's bindings).
pub trait RegistrationStore: Send + Sync {
    /// Store a binding, or replace the one with the same user and contact (a refresh, or the
    /// phone moving to another node).
    fn put_binding(&self, binding: &Binding) -> Result<(), StoreError>;

    /// Forget `user`'s binding of `contact` (unregistered or expired); nothing if there is none.
    fn remove_binding(&self, user: &str, contact: &str) -> Result<(), StoreError>;

    /// `user`'s bindings not expired at `now` (`expires_at` after it), by contact.
    fn bindings(&self, user: &str, now: Timestamp) -> Result<Vec<Binding>, StoreError>;
}

/// What /metrics reads from the store.
pub trait StoreMetrics: Send + Sync {
    /// Voicemails waiting for a callback and webhook events waiting for delivery at `now`
    /// (the metrics' scrape-time gauges). Read-only.
    fn backlog(&self, now: Timestamp) -> Result<Backlog, StoreError>;

    /// Where the data is, for /health/ready and the log: the SQLite file's path, or the
    /// PostgreSQL URL without its password.
    fn location(&self) -> String;

    /// Time every later write, from queueing to its durable commit (or failure), in
    /// `histogram`. A store that cannot time its writes ignores it.
    fn time_writes(&self, histogram: prometheus::Histogram) {
        let _ = histogram;
    }
}

/// Everything the rest of `ivr` stores, whatever the database: the narrow traits together, so
/// an `Arc<dyn Store>` can be handed to each consumer as the one it needs.
pub trait Store:
    CallStore
    + VoicemailStore
    + SlaStore
    + OutboxStore
    + IncidentStore
    + RegistrationStore
    + StoreMetrics
{
}

impl<T> Store for T where
    T: CallStore
        + VoicemailStore
        + SlaStore
        + OutboxStore
        + IncidentStore
        + RegistrationStore
        + StoreMetrics
        + ?Sized
{
}
