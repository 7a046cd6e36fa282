//! The line's memory: calls (CDRs), callers, voicemails with their callback-SLA timers, and the
//! webhook outbox, behind narrow traits ([`traits`]: one per kind of record) that together make
//! [`Store`].
//!
//! [`SqliteStore`] (one WAL-mode file, `DATA/ivr.db`, or the file `[store] url` names) is the
//! default; a PostgreSQL store for clusters implements the same traits later, so callers hold an
//! `Arc<dyn Store>` (or the one narrow trait they need) and never see SQL. The traits are
//! synchronous on purpose: SQLite calls block, so the async shell runs them on
//! `tokio::task::spawn_blocking` ([`blocking`]) and never on a runtime worker.
//!
//! The values (calls, callers, voicemails, SLA timers, outbox events and rows, errors) are
//! defined once, here ([`types`], [`event`], [`callers`]); the notifier, the SLA timers, the
//! transcription worker and the services use these, with no copies to translate. The store
//! imports none of them: the repeat-caller rule comes in with the call ([`RepeatRule`]).
//!
//! Correctness that must hold across nodes lives inside single store operations, so a shared
//! database keeps it: [`CallStore::call_started`] records a call and reads the calls before it in
//! one transaction (two simultaneous calls cannot both miss a repeat), [`VoicemailStore::add_voicemail`]
//! creates the voicemail and its SLA timer together, and [`SlaStore::escalate`] marks a timer
//! escalated and queues the `callback_overdue` event together (exactly one node wins the claim;
//! a crash cannot leave an escalated timer with no event).
//!
//! Times are [`jiff::Timestamp`]s at the API and unix milliseconds (INTEGER) in the database:
//! exact comparisons and ordering in SQL, no time zone text to parse. Sub-millisecond precision
//! is dropped.

mod audio;
mod backlog;
pub mod callers;
mod cdr_csv;
mod disk;
pub mod event;
mod incidents;
mod memory;
mod postgres;
mod registrations;
mod schema;
mod sqlite;
pub mod traits;
mod transcripts;
pub mod types;
mod writer;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod sqlite_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod writer_tests;

pub use self::postgres::PgStore;
use audio::read_recording;
pub use backlog::Backlog;
pub use callers::{ANONYMOUS, CallerId, PreviousCall, RepeatRule};
pub use cdr_csv::{CDR_COLUMNS, cdr_json, write_cdrs_csv};
pub use event::{EventKind, OutboxEvent, OutboxRow, Target};
pub use incidents::{Incident, IncidentSource, NewIncident};
pub use memory::MemoryStore;
pub use registrations::Binding;
pub use sqlite::{DB_FILE, SqliteStore};
pub use traits::{
    CallStore, IncidentStore, OutboxStore, RegistrationStore, SlaStore, Store, StoreMetrics,
    VoicemailStore,
};
pub use transcripts::{OwedTranscript, TranscriptOutcome};
pub use types::*;

/// Runs a synchronous store call off the async threads (SQLite blocks on disk); a task that
/// stopped is [`StoreError::Task`].
pub async fn blocking<S, T, F>(store: &std::sync::Arc<S>, f: F) -> Result<T, StoreError>
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
