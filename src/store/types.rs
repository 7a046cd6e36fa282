//! The values that go in and out of a [`super::Store`], and its error type. Backend-neutral: no
//! SQLite types appear here, so a PostgreSQL store returns the same values and errors.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;

use super::{CallerId, PreviousCall, RepeatRule};

/// What is known when a call arrives.
#[derive(Clone, Debug)]
pub struct CallStart {
    /// SIP Call-ID; one `calls` row per Call-ID.
    pub call_id: String,
    /// The caller after normalisation (see `repeat::normalise`).
    pub caller: CallerId,
    /// The user part as received (From or trusted P-Asserted-Identity), for the record.
    pub caller_raw: String,
    /// The dialled number (Request-URI user part).
    pub called: String,
    /// The caller's client name (see `billing::client_for`).
    pub client: Option<String>,
    pub started_at: Timestamp,
    pub after_hours: bool,
    /// The client has an After Hours Escalation Agreement.
    pub agreement: bool,
    /// The multiplier that applies (see `billing::rate_multiplier`).
    pub rate_multiplier: f64,
    /// How repeats are decided (`crate::repeat::RepeatPolicy`); the store runs it inside its
    /// transaction (see [`RepeatRule`]).
    pub repeat_rule: Arc<dyn RepeatRule>,
    /// `[cluster] node`: the node answering, so that its restart closes only its own calls
    /// ([`crate::store::CallStore::open_calls`]).
    pub node: String,
}

/// What the store learned while recording a call's start.
#[derive(Clone, Debug, PartialEq)]
pub struct CallStartOutcome {
    /// The call is a repeat (the flow's `caller.repeat`; emit `repeat_caller` at once).
    pub repeat: bool,
    /// The calls to the line just before this one, most recent first (at most
    /// `repeat_rule.lookback()`), as repeat detection saw them.
    pub previous_calls: Vec<PreviousCall>,
    /// Calls from this number within `repeat_rule.window()`, this one included (1 for a first
    /// or anonymous caller); every such call counts, not only the ones the rule needed.
    pub calls_in_window: u32,
    /// This number's history before this call; `None` for a first-time or anonymous caller.
    pub history: Option<CallerHistory>,
    /// An earlier call from this number that started within `repeat_rule.window()` has
    /// `agreed_terms` (the flow's `caller.agreed_recently`); never for an anonymous caller.
    pub agreed_recently: bool,
}

/// One row of `callers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerHistory {
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Calls from this number, counted before the current one.
    pub calls: u32,
}

/// How a call ended, for billing and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Connected to staff.
    Bridged,
    /// The caller left a voicemail.
    Voicemail,
    /// The caller hung up before being connected or leaving a message.
    Abandoned,
    /// The caller reached the voicemail tone but left no message (shorter than the record
    /// node's `min_length`, or all silence): nothing kept, no callback promised.
    NoMessage,
    /// The caller was to leave a voicemail but it could not be recorded (the voicemail
    /// directory cannot be written).
    VoicemailFailed,
    /// Business hours: the caller was told the line is open/closed and the call ended there.
    ClosedHours,
    /// Refused (limits, bad request, overload).
    Rejected,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Bridged,
        Outcome::Voicemail,
        Outcome::Abandoned,
        Outcome::NoMessage,
        Outcome::VoicemailFailed,
        Outcome::ClosedHours,
        Outcome::Rejected,
    ];

    /// The name in the database, CSV and webhooks.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Bridged => "bridged",
            Outcome::Voicemail => "voicemail",
            Outcome::Abandoned => "abandoned",
            Outcome::NoMessage => "no_message",
            Outcome::VoicemailFailed => "voicemail_failed",
            Outcome::ClosedHours => "closed_hours",
            Outcome::Rejected => "rejected",
        }
    }

    /// The outcome named `s` (as written by [`Outcome::as_str`]).
    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call detail record: one row of `calls`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cdr {
    pub call_id: String,
    /// Normalised caller (`anonymous` when withheld).
    pub caller: String,
    pub caller_raw: String,
    pub called: String,
    pub client: Option<String>,
    pub started_at: Timestamp,
    /// When the line answered (200 OK).
    pub answered_at: Option<Timestamp>,
    /// `None` while the call is live.
    pub ended_at: Option<Timestamp>,
    /// Billable seconds connected to a person (bridged); 0 when never bridged.
    pub talk_seconds: u64,
    pub after_hours: bool,
    pub agreement: bool,
    pub rate_multiplier: f64,
    /// The caller pressed 1 to agree to the after-hours terms.
    pub agreed_terms: bool,
    /// Every DTMF digit the caller pressed, in order.
    pub digits: String,
    pub ticket: Option<String>,
    /// `None` while the call is live.
    pub outcome: Option<Outcome>,
    /// SIP end reason (`BYE from caller`, `487 Request Terminated`, ...).
    pub end_reason: String,
    pub repeat: bool,
    /// The desk member who accepted the call, when it was bridged.
    pub answered_by: Option<String>,
    /// The incident whose announcement the caller heard (its Alertmanager fingerprint or
    /// `ivr incident` name).
    pub incident: Option<String>,
}

/// One thing learned about a live call, recorded when it happens (see
/// [`super::CallStore::call_progress`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallFact {
    /// The line answered (200 OK).
    Answered(Timestamp),
    /// Every digit pressed so far.
    Digits(String),
    /// The caller agreed to the after-hours terms (or not).
    AgreedTerms(bool),
    /// The ticket the caller gave (`None`: none yet).
    Ticket(Option<String>),
    /// The desk member who accepted the call.
    AnsweredBy(String),
    /// The caller heard the announcement of this incident (its key).
    Incident(String),
}

/// A voicemail to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVoicemail {
    pub call_id: String,
    /// Normalised caller: the number to call back, and what `ack_voicemails_for_number` matches.
    pub caller: String,
    pub client: Option<String>,
    pub ticket: Option<String>,
    /// The WAV file.
    pub path: PathBuf,
    pub duration_ms: u64,
    pub created_at: Timestamp,
}

/// A stored voicemail with its acknowledgement and SLA state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voicemail {
    pub id: i64,
    pub call_id: String,
    pub caller: String,
    pub client: Option<String>,
    pub ticket: Option<String>,
    pub path: PathBuf,
    pub duration_ms: u64,
    pub created_at: Timestamp,
    pub acked_at: Option<Timestamp>,
    pub acked_by: Option<String>,
    pub escalated_at: Option<Timestamp>,
    /// The SLA timer's due time and state.
    pub sla_due_at: Timestamp,
    pub sla_state: SlaState,
    /// The transcript (`None` until transcribed, or when transcription failed; empty when the
    /// engine recognised nothing), the engine that made it, when the outcome was stored, and
    /// the final error of a failed transcription.
    pub transcript: Option<String>,
    pub transcript_engine: Option<String>,
    pub transcribed_at: Option<Timestamp>,
    pub transcript_error: Option<String>,
}

/// What acknowledging a voicemail did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// Acknowledged now; its SLA timer is stopped.
    Acked,
    /// It was acknowledged before, by `by` at `at`; nothing changed.
    AlreadyAcked { by: String, at: Timestamp },
    /// No voicemail has that id.
    NotFound,
}

/// The state of a callback-SLA timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlaState {
    /// Running: nobody has acknowledged the voicemail yet.
    Pending,
    /// Stopped by an acknowledgement (possibly after escalating).
    Acked,
    /// Overdue and escalated (`callback_overdue` queued), not yet acknowledged.
    Escalated,
}

impl SlaState {
    pub fn as_str(self) -> &'static str {
        match self {
            SlaState::Pending => "pending",
            SlaState::Acked => "acked",
            SlaState::Escalated => "escalated",
        }
    }

    pub fn parse(s: &str) -> Option<SlaState> {
        [SlaState::Pending, SlaState::Acked, SlaState::Escalated]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// A due SLA timer with what the escalation event needs to say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlaTimer {
    pub voicemail_id: i64,
    pub due_at: Timestamp,
    pub state: SlaState,
    pub call_id: String,
    pub caller: String,
    pub client: Option<String>,
    pub ticket: Option<String>,
    pub created_at: Timestamp,
}

/// Why a store operation failed. Display texts name the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {} is read-only: {reason}", dir.display())]
    ReadOnly { dir: PathBuf, reason: String },
    #[error(
        "data directory {} is full (no space left on the device): {reason}",
        dir.display()
    )]
    Full { dir: PathBuf, reason: String },
    #[error(
        "no database in {} ({} not found); pass --data with the directory `ivr serve` uses",
        dir.display(),
        super::DB_FILE
    )]
    Missing { dir: PathBuf },
    #[error("cannot open the database {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    #[error(
        "the database {} stayed locked by another process for longer than the busy timeout; \
         is something holding a long transaction?",
        path.display()
    )]
    Busy { path: PathBuf },
    #[error(
        "the database {} has schema version {found}, newer than this ivr knows ({known}); \
         upgrade ivr",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("outbox row {0} does not exist")]
    NoSuchOutboxRow(i64),
    #[error("database error while {doing}: {reason}")]
    Database { doing: String, reason: String },
    #[error("cannot read the voicemail recording {}: {reason}", path.display())]
    Audio { path: PathBuf, reason: String },
    /// The blocking task running a store call stopped (panicked or was cancelled).
    #[error("store task stopped: {0}")]
    Task(String),
}

impl StoreError {
    /// The disk cannot take writes (full or read-only): the call should still get a clear
    /// prompt, and an operator must act.
    pub fn is_disk_problem(&self) -> bool {
        matches!(self, StoreError::ReadOnly { .. } | StoreError::Full { .. })
    }
}
