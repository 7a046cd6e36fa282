//! [`CallStore`] on SQLite: the `calls` and `callers` tables.

use jiff::Timestamp;
use rusqlite::OptionalExtension;

use super::SqliteStore;
use crate::store::schema::{
    CDR_COLUMNS_SQL, Fail, agreed_since, caller_history, calls_since, cdr_from_row, previous_calls,
    to_i64,
};
use crate::store::{CallFact, CallStart, CallStartOutcome, CallStore, Cdr, Outcome, StoreError};

impl CallStore for SqliteStore {
    fn call_started(&self, call: &CallStart) -> Result<CallStartOutcome, StoreError> {
        let call = call.clone();
        self.write("recording a call start", move |tx| {
            let caller = call.caller.as_str();
            let lookback = call.repeat_rule.lookback();
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
                    i64::try_from(call.repeat_rule.window().as_millis()).unwrap_or(i64::MAX);
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
            // The rule is the caller's (see `store::callers`), run here, between the read of
            // the previous calls and the insert, under the transaction's write lock.
            let repeat = call
                .repeat_rule
                .is_repeat(&call.caller, &previous, call.started_at);
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
                 after_hours, agreement, rate_multiplier, repeat, node) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
                    call.node,
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

    fn open_calls(&self, node: &str) -> Result<Vec<Cdr>, StoreError> {
        let node = node.to_string();
        self.read("reading calls still open", move |c| {
            // '' is a call started before calls knew their node (migration 0007).
            let mut stmt = c.prepare(&format!(
                "SELECT {CDR_COLUMNS_SQL} FROM calls WHERE ended_at IS NULL \
                 AND (node = ?1 OR node = '') ORDER BY started_at, id"
            ))?;
            let rows = stmt.query_map([node], cdr_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}
