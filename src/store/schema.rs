//! The SQLite schema as Rust sees it: the embedded migrations, the column lists, the mapping
//! between rows and store values, and the queries several operations share.
//!
//! Times are unix milliseconds (INTEGER); booleans are 0/1; JSON payloads are text. The query
//! helpers take the writer's connection, which runs them inside its batch transaction.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior};

use super::{
    CallerHistory, Cdr, EventKind, OutboxEvent, OutboxRow, Outcome, PreviousCall, SlaState,
    StoreError, Target, Voicemail,
};

/// One embedded schema migration.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in order. Append only: a released migration is never edited.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "answered_by",
        sql: include_str!("migrations/0002_answered_by.sql"),
    },
    Migration {
        version: 3,
        name: "no_message_outcomes",
        sql: include_str!("migrations/0003_no_message_outcomes.sql"),
    },
    Migration {
        version: 4,
        name: "incidents",
        sql: include_str!("migrations/0004_incidents.sql"),
    },
    Migration {
        version: 5,
        name: "transcripts",
        sql: include_str!("migrations/0005_transcripts.sql"),
    },
    Migration {
        version: 6,
        name: "calls_by_caller",
        sql: include_str!("migrations/0006_calls_by_caller.sql"),
    },
    Migration {
        version: 7,
        name: "calls_node",
        sql: include_str!("migrations/0007_calls_node.sql"),
    },
    Migration {
        version: 8,
        name: "registrations",
        sql: include_str!("migrations/0008_registrations.sql"),
    },
];

/// The columns of a CDR, in the order [`cdr_from_row`] reads them.
pub(super) const CDR_COLUMNS_SQL: &str = "call_id, caller, caller_raw, called, client, started_at, \
    answered_at, ended_at, talk_seconds, after_hours, agreement, rate_multiplier, agreed_terms, \
    digits, ticket, outcome, end_reason, repeat, answered_by, incident";
/// Voicemail columns joined with their timer, in the order [`voicemail_from_row`] reads them.
pub(super) const VOICEMAIL_SELECT: &str = "SELECT v.id, v.call_id, v.caller, v.client, v.ticket, v.path, \
    v.duration_ms, v.created_at, v.acked_at, v.acked_by, v.escalated_at, s.due_at, s.state, \
    v.transcript, v.transcript_engine, v.transcribed_at, v.transcript_error \
    FROM voicemails v JOIN sla_timers s ON s.voicemail_id = v.id";
pub(super) const OUTBOX_COLUMNS_SQL: &str = "id, event_type, call_id, target, payload, created_at, attempts, \
    next_attempt_at, delivered_at, last_error";

/// A failure inside a store operation, before it is turned into a [`StoreError`] with context.
pub(super) enum Fail {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

/// Apply the migrations this database lacks, in one transaction (a second process opening at
/// the same moment waits, then finds nothing to do).
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), Fail> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, \
         name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > known {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: current,
            known,
        }
        .into());
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.execute_batch(m.sql)?;
        tx.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![m.version, m.name, Timestamp::now().as_millisecond()],
        )?;
        tracing::info!(db = %path.display(), version = m.version, name = m.name, "applied migration");
    }
    tx.commit()?;
    Ok(())
}

/// The last `limit` calls before row `before_id`, most recent first.
pub(super) fn previous_calls(
    tx: &Connection,
    before_id: i64,
    limit: usize,
) -> Result<Vec<PreviousCall>, Fail> {
    let mut stmt =
        tx.prepare("SELECT caller, started_at FROM calls WHERE id < ?1 ORDER BY id DESC LIMIT ?2")?;
    let rows = stmt.query_map(rusqlite::params![before_id, to_i64(limit as u64)], |r| {
        Ok(PreviousCall {
            caller: r.get(0)?,
            started_at: from_ms(r.get(1)?, 1)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The reads at a call's start, one caller's calls in a window (index `calls_caller_started`).
pub(super) const CALLS_SINCE_SQL: &str =
    "SELECT COUNT(*) FROM calls WHERE caller = ?1 AND id < ?2 AND started_at >= ?3";
pub(super) const AGREED_SINCE_SQL: &str = "SELECT EXISTS (SELECT 1 FROM calls WHERE caller = ?1 \
    AND id < ?2 AND started_at >= ?3 AND agreed_terms)";

/// How many calls from `caller` before row `before_id` started at or after `since` (unix ms):
/// the whole count, not capped at the repeat rule's lookback, so a third call says 3.
pub(super) fn calls_since(
    tx: &Connection,
    caller: &str,
    before_id: i64,
    since: i64,
) -> Result<u32, Fail> {
    let n: i64 = tx.query_row(
        CALLS_SINCE_SQL,
        rusqlite::params![caller, before_id, since],
        |r| r.get(0),
    )?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Whether a call from `caller` before row `before_id` that started at or after `since` (unix ms)
/// has the terms agreed. Read inside the start's transaction, like the repeat rule, so the answer
/// matches the rows that decided `repeat`.
pub(super) fn agreed_since(
    tx: &Connection,
    caller: &str,
    before_id: i64,
    since: i64,
) -> Result<bool, Fail> {
    Ok(tx.query_row(
        AGREED_SINCE_SQL,
        rusqlite::params![caller, before_id, since],
        |r| r.get(0),
    )?)
}

pub(super) fn caller_history(
    tx: &Connection,
    caller: &super::CallerId,
) -> Result<Option<CallerHistory>, Fail> {
    if caller.is_anonymous() {
        return Ok(None);
    }
    Ok(tx
        .query_row(
            "SELECT first_seen, last_seen, calls FROM callers WHERE number = ?1",
            [caller.as_str()],
            |r| {
                Ok(CallerHistory {
                    first_seen: from_ms(r.get(0)?, 0)?,
                    last_seen: from_ms(r.get(1)?, 1)?,
                    calls: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// Move a pending timer to escalated; `false` if it was not pending. The `state = 'pending'`
/// condition is the claim: of two nodes racing, only one updates the row.
pub(super) fn claim_escalation(
    tx: &Connection,
    voicemail_id: i64,
    at: Timestamp,
) -> Result<bool, Fail> {
    let n = tx.execute(
        "UPDATE sla_timers SET state = 'escalated' WHERE voicemail_id = ?1 AND state = 'pending'",
        [voicemail_id],
    )?;
    if n == 0 {
        return Ok(false);
    }
    tx.execute(
        "UPDATE voicemails SET escalated_at = ?2 WHERE id = ?1",
        rusqlite::params![voicemail_id, at.as_millisecond()],
    )?;
    Ok(true)
}

pub(super) fn insert_event(tx: &Connection, ev: &OutboxEvent) -> Result<i64, Fail> {
    let at = ev.occurred_at.as_millisecond();
    tx.execute(
        "INSERT INTO outbox (event_type, call_id, target, payload, created_at, next_attempt_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        rusqlite::params![
            ev.kind.as_str(),
            ev.call_id,
            ev.target.as_str(),
            ev.payload.to_string(),
            at
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

pub(super) fn cdr_from_row(r: &Row<'_>) -> rusqlite::Result<Cdr> {
    let outcome: Option<String> = r.get(15)?;
    Ok(Cdr {
        call_id: r.get(0)?,
        caller: r.get(1)?,
        caller_raw: r.get(2)?,
        called: r.get(3)?,
        client: r.get(4)?,
        started_at: from_ms(r.get(5)?, 5)?,
        answered_at: r
            .get::<_, Option<i64>>(6)?
            .map(|v| from_ms(v, 6))
            .transpose()?,
        ended_at: r
            .get::<_, Option<i64>>(7)?
            .map(|v| from_ms(v, 7))
            .transpose()?,
        talk_seconds: to_u64(r.get(8)?),
        after_hours: r.get(9)?,
        agreement: r.get(10)?,
        rate_multiplier: r.get(11)?,
        agreed_terms: r.get(12)?,
        digits: r.get(13)?,
        ticket: r.get(14)?,
        outcome: outcome
            .map(|s| Outcome::parse(&s).ok_or_else(|| bad_value(15, format!("outcome {s:?}"))))
            .transpose()?,
        end_reason: r.get(16)?,
        repeat: r.get(17)?,
        answered_by: r.get(18)?,
        incident: r.get(19)?,
    })
}

pub(super) fn voicemail_from_row(r: &Row<'_>) -> rusqlite::Result<Voicemail> {
    Ok(Voicemail {
        id: r.get(0)?,
        call_id: r.get(1)?,
        caller: r.get(2)?,
        client: r.get(3)?,
        ticket: r.get(4)?,
        path: PathBuf::from(r.get::<_, String>(5)?),
        duration_ms: to_u64(r.get(6)?),
        created_at: from_ms(r.get(7)?, 7)?,
        acked_at: r
            .get::<_, Option<i64>>(8)?
            .map(|v| from_ms(v, 8))
            .transpose()?,
        acked_by: r.get(9)?,
        escalated_at: r
            .get::<_, Option<i64>>(10)?
            .map(|v| from_ms(v, 10))
            .transpose()?,
        sla_due_at: from_ms(r.get(11)?, 11)?,
        sla_state: sla_state(r, 12)?,
        transcript: r.get(13)?,
        transcript_engine: r.get(14)?,
        transcribed_at: r
            .get::<_, Option<i64>>(15)?
            .map(|v| from_ms(v, 15))
            .transpose()?,
        transcript_error: r.get(16)?,
    })
}

pub(super) fn outbox_from_row(r: &Row<'_>) -> rusqlite::Result<OutboxRow> {
    let id: i64 = r.get(0)?;
    let kind: String = r.get(1)?;
    let target: String = r.get(3)?;
    let payload: String = r.get(4)?;
    Ok(OutboxRow {
        id,
        event: OutboxEvent {
            kind: EventKind::from_name(&kind),
            call_id: r.get(2)?,
            occurred_at: from_ms(r.get(5)?, 5)?,
            payload: serde_json::from_str(&payload)
                .map_err(|e| bad_value(4, format!("payload is not JSON: {e}")))?,
            target: Target::from_stored(id, &target),
        },
        attempts: r.get(6)?,
        next_attempt_at: from_ms(r.get(7)?, 7)?,
        delivered_at: r
            .get::<_, Option<i64>>(8)?
            .map(|v| from_ms(v, 8))
            .transpose()?,
        last_error: r.get(9)?,
        // One process per SQLite file: its rows are never leased.
        lease_until: None,
    })
}

pub(super) fn sla_state(r: &Row<'_>, idx: usize) -> rusqlite::Result<SlaState> {
    let s: String = r.get(idx)?;
    SlaState::parse(&s).ok_or_else(|| bad_value(idx, format!("SLA state {s:?}")))
}

/// Unix milliseconds from the database as a timestamp (column `idx` for the error).
pub(super) fn from_ms(ms: i64, idx: usize) -> rusqlite::Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| bad_value(idx, format!("time {ms}: {e}")))
}

pub(super) fn bad_value(idx: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, what.into())
}

/// SQLite integers are i64; counts beyond that cannot occur (seconds, milliseconds, rows).
pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Stored counts are never negative; a negative one (edited by hand) reads as 0.
pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
