//! The default [`Store`]: one SQLite file, `DATA/ivr.db`, in WAL mode (readers never wait for
//! the writer, and a crash loses no committed transaction).
//!
//! Two connections. Writes go to one writer thread ([`super::writer`]) that commits whatever
//! writes are queued as one transaction: under load, many calls' rows share one fsync, and
//! each write still returns only once it is durable. Every batch is a `BEGIN IMMEDIATE`
//! transaction, which takes the write lock up front, so a read-then-write (repeat detection,
//! timer claims) cannot interleave with another process using the same file; `busy_timeout`
//! makes that other process wait instead of failing. Reads use their own connection: in WAL
//! mode they see every committed batch and never wait behind a batch's fsync.
//! Schema migrations are compiled in (`migrations/*.sql`) and applied at open, recorded in
//! `schema_version`; opening an up-to-date database changes nothing.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension};

use super::disk::{classify, io_error};
use super::schema::{
    CDR_COLUMNS_SQL, Fail, OUTBOX_COLUMNS_SQL, VOICEMAIL_SELECT, agreed_since, caller_history,
    calls_since, cdr_from_row, claim_escalation, from_ms, insert_event, migrate, outbox_from_row,
    previous_calls, sla_state, to_i64, voicemail_from_row,
};
use super::writer::Writer;
use super::{
    AckOutcome, CallFact, CallStart, CallStartOutcome, Cdr, Incident, IncidentSource, NewIncident,
    NewVoicemail, OutboxEvent, OutboxRow, Outcome, SlaTimer, Store, StoreError, Voicemail,
};
use crate::repeat::is_repeat;

/// The database file inside the data directory.
pub const DB_FILE: &str = "ivr.db";
/// How long a statement waits for another process's write lock before failing `Busy`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    /// Declared before `writer` because fields drop in order: the reader closes first, so the
    /// writer's connection is the last one and folds the WAL back into the database file.
    reader: Mutex<Connection>,
    writer: Writer,
    dir: PathBuf,
    path: PathBuf,
}

impl SqliteStore {
    /// Open `DATA/ivr.db`, creating the directory and the database if missing, and bring the
    /// schema up to date.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| io_error(data_dir, &e, "cannot create it"))?;
        Self::open_file(data_dir)
    }

    /// Open an existing `DATA/ivr.db` (for the CLI: a wrong `--data` should not leave an empty
    /// database behind); [`StoreError::Missing`] if there is none.
    pub fn open_existing(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        if !data_dir.join(DB_FILE).is_file() {
            return Err(StoreError::Missing {
                dir: data_dir.to_path_buf(),
            });
        }
        Self::open_file(data_dir)
    }

    fn open_file(dir: &Path) -> Result<SqliteStore, StoreError> {
        let path = dir.join(DB_FILE);
        let fail = |doing: &str, e: Fail| match e {
            Fail::Sql(e) => classify(dir, &path, doing, e),
            Fail::Store(e) => e,
        };
        let mut conn = Connection::open(&path).map_err(|e| fail("opening", e.into()))?;
        Self::configure(&mut conn, &path).map_err(|e| fail("opening", e))?;
        // Opened after the writer's connection has made the file WAL and migrated it.
        let reader = Connection::open(&path).map_err(|e| fail("opening", e.into()))?;
        Self::configure_reader(&reader).map_err(|e| fail("opening", e.into()))?;
        Ok(SqliteStore {
            reader: Mutex::new(reader),
            writer: Writer::start(conn, dir.to_path_buf(), path.clone())?,
            dir: dir.to_path_buf(),
            path,
        })
    }

    fn configure(conn: &mut Connection, path: &Path) -> Result<(), Fail> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Some file systems (network mounts) cannot do WAL; SQLite then keeps its rollback
            // journal, which is slower but just as safe.
            tracing::warn!(db = %path.display(), mode, "SQLite refused WAL mode");
        }
        // FULL: a committed outbox event or voicemail survives a power cut, not only a crash.
        // Group commit makes this cheap: one fsync per batch of writes, not per write.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(conn, path)
    }

    /// The read connection: it waits for locks like the writer (a checkpoint or WAL recovery
    /// by another process can hold one briefly) and refuses writes, which belong to the writer.
    fn configure_reader(conn: &Connection) -> rusqlite::Result<()> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "query_only", "ON")
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write transactions committed since open. Each commits a batch of writes with one fsync;
    /// writes divided by commits is how much group commit saves (for /metrics).
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }

    fn error(&self, doing: &str, e: Fail) -> StoreError {
        match e {
            Fail::Sql(e) => classify(&self.dir, &self.path, doing, e),
            Fail::Store(e) => e,
        }
    }

    /// Run `f` on the writer thread inside the current batch transaction (in its own
    /// savepoint); returns once the batch is committed. `f` owns its inputs because it runs
    /// on another thread, and may run twice (see [`super::writer::Work`]).
    pub(super) fn write<T: Send + 'static>(
        &self,
        doing: &'static str,
        f: impl Fn(&Connection) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer.write(doing, Box::new(f))
    }

    /// Run a read-only `f` on the read connection.
    pub(super) fn read<T>(
        &self,
        doing: &str,
        f: impl FnOnce(&Connection) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        f(&self.lock_reader()).map_err(|e| self.error(doing, e))
    }

    fn lock_reader(&self) -> MutexGuard<'_, Connection> {
        // Reads hold no transaction open across calls, so a panic during one left the
        // connection consistent: keep using it rather than failing forever.
        self.reader
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Jobs queued for the writer (tests wait on it to know a batch has formed).
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.writer.queued()
    }

    /// Tests reach the writer's connection (to simulate a full disk with `max_page_count`).
    #[cfg(test)]
    pub(crate) fn with_conn<T: Send + 'static>(
        &self,
        f: impl Fn(&Connection) -> T + Send + 'static,
    ) -> T {
        self.write("testing", move |c| Ok(f(c)))
            .expect("the writer runs test code")
    }
}

impl Store for SqliteStore {
    fn set_incident(&self, incident: &NewIncident) -> Result<i64, StoreError> {
        self.incident_set(incident)
    }

    fn resolve_incident(
        &self,
        source: IncidentSource,
        key: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.incident_resolve(source, key, at)
    }

    fn active_incidents(&self, now: Timestamp) -> Result<Vec<Incident>, StoreError> {
        self.incidents_active(now)
    }

    fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.incidents_all()
    }

    fn transcripts_owed(&self, limit: u32) -> Result<Vec<super::OwedTranscript>, StoreError> {
        SqliteStore::transcripts_owed(self, limit)
    }

    fn set_transcript(
        &self,
        id: i64,
        outcome: &super::TranscriptOutcome,
        event: Option<&OutboxEvent>,
    ) -> Result<bool, StoreError> {
        self.transcript_set(id, outcome, event)
    }

    fn transcript_attempt_failed(&self, id: i64, error: &str) -> Result<u32, StoreError> {
        SqliteStore::transcript_attempt_failed(self, id, error)
    }

    fn call_started(&self, call: &CallStart) -> Result<CallStartOutcome, StoreError> {
        let call = call.clone();
        self.write("recording a call start", move |tx| {
            let caller = call.caller.as_str();
            let lookback = call.repeat_policy.lookback();
            let existing: Option<(i64, bool)> = tx
                .query_row(
                    "SELECT id, repeat FROM calls WHERE call_id = ?1",
                    [&call.call_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            // This number's calls within the window before row `before_id`: how many (this one
            // included), and whether one of them agreed to the terms.
            let in_window = |before_id: i64| -> Result<(u32, bool), _> {
                if call.caller.is_anonymous() {
                    return Ok((1, false));
                }
                // Saturating: a window too long for i64 milliseconds means "forever".
                let window_ms =
                    i64::try_from(call.repeat_policy.window.as_millis()).unwrap_or(i64::MAX);
                let since = call.started_at.as_millisecond().saturating_sub(window_ms);
                Ok::<_, Fail>((
                    calls_since(tx, caller, before_id, since)?.saturating_add(1),
                    agreed_since(tx, caller, before_id, since)?,
                ))
            };
            if let Some((id, repeat)) = existing {
                // A second start for the same Call-ID: answer as the first time did.
                let (calls_in_window, agreed_recently) = in_window(id)?;
                return Ok(CallStartOutcome {
                    repeat,
                    previous_calls: previous_calls(tx, id, lookback)?,
                    calls_in_window,
                    history: caller_history(tx, &call.caller)?,
                    agreed_recently,
                });
            }
            let previous = previous_calls(tx, i64::MAX, lookback)?;
            let repeat = is_repeat(
                &call.repeat_policy,
                &call.caller,
                &previous,
                call.started_at,
            );
            let history = caller_history(tx, &call.caller)?;
            let (calls_in_window, agreed_recently) = in_window(i64::MAX)?;
            let at = call.started_at.as_millisecond();
            if !call.caller.is_anonymous() {
                tx.execute(
                    "INSERT INTO callers (number, first_seen, last_seen, calls) \
                     VALUES (?1, ?2, ?2, 1) \
                     ON CONFLICT (number) DO UPDATE SET \
                     last_seen = max(last_seen, excluded.last_seen), calls = calls + 1",
                    rusqlite::params![caller, at],
                )?;
            }
            tx.execute(
                "INSERT INTO calls (call_id, caller, caller_raw, called, client, started_at, \
                 after_hours, agreement, rate_multiplier, repeat) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rusqlite::params![
                    call.call_id,
                    caller,
                    call.caller_raw,
                    call.called,
                    call.client,
                    at,
                    call.after_hours,
                    call.agreement,
                    call.rate_multiplier,
                    repeat,
                ],
            )?;
            Ok(CallStartOutcome {
                repeat,
                previous_calls: previous,
                calls_in_window,
                history,
                agreed_recently,
            })
        })
    }

    fn call_ended(&self, cdr: &Cdr) -> Result<(), StoreError> {
        let cdr = cdr.clone();
        self.write("recording a call end", move |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO calls ({CDR_COLUMNS_SQL}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20) \
                     ON CONFLICT (call_id) DO UPDATE SET \
                     client = excluded.client, answered_at = excluded.answered_at, \
                     ended_at = excluded.ended_at, talk_seconds = excluded.talk_seconds, \
                     after_hours = excluded.after_hours, agreement = excluded.agreement, \
                     rate_multiplier = excluded.rate_multiplier, \
                     agreed_terms = excluded.agreed_terms, digits = excluded.digits, \
                     ticket = excluded.ticket, outcome = excluded.outcome, \
                     end_reason = excluded.end_reason, answered_by = excluded.answered_by, \
                     incident = COALESCE(excluded.incident, incident)"
                ),
                rusqlite::params![
                    cdr.call_id,
                    cdr.caller,
                    cdr.caller_raw,
                    cdr.called,
                    cdr.client,
                    cdr.started_at.as_millisecond(),
                    cdr.answered_at.map(|t| t.as_millisecond()),
                    cdr.ended_at.map(|t| t.as_millisecond()),
                    to_i64(cdr.talk_seconds),
                    cdr.after_hours,
                    cdr.agreement,
                    cdr.rate_multiplier,
                    cdr.agreed_terms,
                    cdr.digits,
                    cdr.ticket,
                    cdr.outcome.map(Outcome::as_str),
                    cdr.end_reason,
                    cdr.repeat,
                    cdr.answered_by,
                    cdr.incident,
                ],
            )?;
            Ok(())
        })
    }

    fn register_voicemail(
        &self,
        vm: &NewVoicemail,
        sla_due_at: Timestamp,
        events: &[OutboxEvent],
    ) -> Result<i64, StoreError> {
        let vm = vm.clone();
        let events = events.to_vec();
        self.write("storing a voicemail", move |tx| {
            tx.execute(
                "INSERT INTO voicemails (call_id, caller, client, ticket, path, duration_ms, \
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    vm.call_id,
                    vm.caller,
                    vm.client,
                    vm.ticket,
                    vm.path.to_string_lossy(),
                    to_i64(vm.duration_ms),
                    vm.created_at.as_millisecond(),
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO sla_timers (voicemail_id, due_at, state) VALUES (?1, ?2, 'pending')",
                rusqlite::params![id, sla_due_at.as_millisecond()],
            )?;
            for mut event in events.iter().cloned() {
                if let Some(data) = event.payload.as_object_mut() {
                    data.insert("voicemail_id".into(), id.into());
                }
                insert_event(tx, &event)?;
            }
            Ok(id)
        })
    }

    fn call_progress(&self, call_id: &str, facts: &[CallFact]) -> Result<(), StoreError> {
        let call_id = call_id.to_string();
        let facts = facts.to_vec();
        self.write("recording a call's progress", move |tx| {
            // `ended_at IS NULL`: a fact that arrives after the final record never rewrites it.
            for fact in &facts {
                let (sql, value): (&str, rusqlite::types::Value) = match fact {
                    CallFact::Answered(at) => ("answered_at", at.as_millisecond().into()),
                    CallFact::Digits(d) => ("digits", d.clone().into()),
                    CallFact::AgreedTerms(a) => ("agreed_terms", i64::from(*a).into()),
                    CallFact::Ticket(t) => ("ticket", t.clone().into()),
                    CallFact::AnsweredBy(m) => ("answered_by", m.clone().into()),
                    CallFact::Incident(k) => ("incident", k.clone().into()),
                };
                tx.execute(
                    &format!("UPDATE calls SET {sql} = ?2 WHERE call_id = ?1 AND ended_at IS NULL"),
                    rusqlite::params![call_id, value],
                )?;
            }
            Ok(())
        })
    }

    fn ack_voicemail(&self, id: i64, by: &str, at: Timestamp) -> Result<AckOutcome, StoreError> {
        let by = by.to_string();
        self.write("acknowledging a voicemail", move |tx| {
            let row: Option<(Option<i64>, Option<String>)> = tx
                .query_row(
                    "SELECT acked_at, acked_by FROM voicemails WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match row {
                None => Ok(AckOutcome::NotFound),
                Some((Some(acked_at), acked_by)) => Ok(AckOutcome::AlreadyAcked {
                    by: acked_by.unwrap_or_default(),
                    at: from_ms(acked_at, 0)?,
                }),
                Some((None, _)) => {
                    tx.execute(
                        "UPDATE voicemails SET acked_at = ?2, acked_by = ?3 WHERE id = ?1",
                        rusqlite::params![id, at.as_millisecond(), by],
                    )?;
                    tx.execute(
                        "UPDATE sla_timers SET state = 'acked' WHERE voicemail_id = ?1",
                        [id],
                    )?;
                    Ok(AckOutcome::Acked)
                }
            }
        })
    }

    fn ack_voicemails_for_number(&self, number: &str, at: Timestamp) -> Result<u32, StoreError> {
        let number = number.to_string();
        self.write("acknowledging voicemails for a number", move |tx| {
            tx.execute(
                "UPDATE sla_timers SET state = 'acked' WHERE voicemail_id IN \
                 (SELECT id FROM voicemails WHERE caller = ?1 AND acked_at IS NULL)",
                [&number],
            )?;
            let n = tx.execute(
                "UPDATE voicemails SET acked_at = ?2, acked_by = ?3 \
                 WHERE caller = ?1 AND acked_at IS NULL",
                rusqlite::params![
                    &number,
                    at.as_millisecond(),
                    format!("outbound call to {number}")
                ],
            )?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    fn voicemail(&self, id: i64) -> Result<Option<Voicemail>, StoreError> {
        self.read("reading a voicemail", |c| {
            Ok(c.query_row(
                &format!("{VOICEMAIL_SELECT} WHERE v.id = ?1"),
                [id],
                voicemail_from_row,
            )
            .optional()?)
        })
    }

    fn voicemails(&self) -> Result<Vec<Voicemail>, StoreError> {
        self.read("listing voicemails", |c| {
            let mut stmt = c.prepare(&format!("{VOICEMAIL_SELECT} ORDER BY v.id"))?;
            let rows = stmt.query_map([], voicemail_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn due_sla_timers(&self, now: Timestamp) -> Result<Vec<SlaTimer>, StoreError> {
        self.read("reading due SLA timers", |c| {
            let mut stmt = c.prepare(
                "SELECT s.voicemail_id, s.due_at, s.state, v.call_id, v.caller, v.client, \
                 v.ticket, v.created_at FROM sla_timers s JOIN voicemails v ON v.id = s.voicemail_id \
                 WHERE s.state = 'pending' AND s.due_at <= ?1 ORDER BY s.due_at, s.voicemail_id",
            )?;
            let rows = stmt.query_map([now.as_millisecond()], |r| {
                Ok(SlaTimer {
                    voicemail_id: r.get(0)?,
                    due_at: from_ms(r.get(1)?, 1)?,
                    state: sla_state(r, 2)?,
                    call_id: r.get(3)?,
                    caller: r.get(4)?,
                    client: r.get(5)?,
                    ticket: r.get(6)?,
                    created_at: from_ms(r.get(7)?, 7)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn next_sla_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read("reading the next SLA deadline", |c| {
            let ms: Option<i64> = c.query_row(
                "SELECT MIN(due_at) FROM sla_timers WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )?;
            Ok(ms.map(|ms| from_ms(ms, 0)).transpose()?)
        })
    }

    fn mark_escalated(&self, voicemail_id: i64, at: Timestamp) -> Result<bool, StoreError> {
        self.write("escalating an SLA timer", move |tx| {
            claim_escalation(tx, voicemail_id, at)
        })
    }

    fn escalate(
        &self,
        voicemail_id: i64,
        at: Timestamp,
        event: &OutboxEvent,
    ) -> Result<Option<i64>, StoreError> {
        let event = event.clone();
        self.write("escalating an SLA timer", move |tx| {
            if claim_escalation(tx, voicemail_id, at)? {
                Ok(Some(insert_event(tx, &event)?))
            } else {
                Ok(None)
            }
        })
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

    fn cdrs_between(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Vec<Cdr>, StoreError> {
        self.read("reading CDRs", |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {CDR_COLUMNS_SQL} FROM calls \
                 WHERE (?1 IS NULL OR started_at >= ?1) AND (?2 IS NULL OR started_at < ?2) \
                 ORDER BY started_at, id"
            ))?;
            let rows = stmt.query_map(
                rusqlite::params![
                    from.map(|t| t.as_millisecond()),
                    to.map(|t| t.as_millisecond())
                ],
                cdr_from_row,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn open_calls(&self) -> Result<Vec<Cdr>, StoreError> {
        self.read("reading calls still open", |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {CDR_COLUMNS_SQL} FROM calls WHERE ended_at IS NULL ORDER BY started_at, id"
            ))?;
            let rows = stmt.query_map([], cdr_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn time_writes(&self, histogram: prometheus::Histogram) {
        self.writer.time_writes(histogram);
    }

    fn backlog(&self, now: Timestamp) -> Result<super::Backlog, StoreError> {
        self.read("reading the backlog", |c| {
            Ok(super::backlog::query(c, now)?)
        })
    }
}
