//! Calls and CDRs: the call-start transaction with repeat detection, call progress and end,
//! and the CDR reads.

use jiff::Timestamp;
use postgres::Transaction;

use super::cached::Db;
use postgres::types::ToSql;

use super::migrate::LOCK_CALLER;
use super::rows::{self, CDR_COLUMNS_SQL, caller_history, calls_since, previous_calls};
use super::{Fail, PgStore, to_i64};
use crate::store::{CallFact, CallStart, CallStartOutcome, Cdr, Outcome, StoreError};

/// This number's calls within the repeat window before row `before_id`: how many (this one
/// included), and whether one of them agreed to the terms.
fn in_window(
    tx: &mut Db<'_, Transaction<'_>>,
    call: &CallStart,
    before_id: i64,
) -> Result<(u32, bool), Fail> {
    if call.caller.is_anonymous() {
        return Ok((1, false));
    }
    // Saturating: a window too long for i64 milliseconds means "forever".
    let window_ms = i64::try_from(call.repeat_rule.window().as_millis()).unwrap_or(i64::MAX);
    let since = call.started_at.as_millisecond().saturating_sub(window_ms);
    let (n, agreed) = calls_since(tx, call.caller.as_str(), before_id, since)?;
    Ok((n.saturating_add(1), agreed))
}

/// A second start for the same Call-ID answers as the first time did; `None` when the call has
/// no row yet.
fn replay(
    tx: &mut Db<'_, Transaction<'_>>,
    call: &CallStart,
) -> Result<Option<CallStartOutcome>, Fail> {
    let Some(row) = tx.query_opt(
        "SELECT id, repeat FROM calls WHERE call_id = $1",
        &[&call.call_id],
    )?
    else {
        return Ok(None);
    };
    let (id, repeat): (i64, bool) = (row.try_get(0)?, row.try_get(1)?);
    let (calls_in_window, agreed_recently) = in_window(tx, call, id)?;
    Ok(Some(CallStartOutcome {
        repeat,
        previous_calls: previous_calls(tx, id, call.repeat_rule.lookback())?,
        calls_in_window,
        history: caller_history(tx, &call.caller)?,
        agreed_recently,
    }))
}

impl crate::store::CallStore for PgStore {
    /// See [`crate::store::Store::call_started`]. Two calls from one number are decided one
    /// after the other, whichever nodes they reach: the transaction first takes a lock on the
    /// number (released at commit), so the second reads the calls only once the first's row is
    /// committed. Calls from different numbers do not wait for each other.
    fn call_started(&self, call: &CallStart) -> Result<CallStartOutcome, StoreError> {
        self.write("recording a call start", |tx| {
            let caller = call.caller.as_str();
            let lookback = call.repeat_rule.lookback();
            if !call.caller.is_anonymous() {
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                    &[&LOCK_CALLER, &caller],
                )?;
            }
            if let Some(outcome) = replay(tx, call)? {
                return Ok(outcome);
            }
            let previous = previous_calls(tx, i64::MAX, lookback)?;
            let repeat = call
                .repeat_rule
                .is_repeat(&call.caller, &previous, call.started_at);
            let history = caller_history(tx, &call.caller)?;
            let (calls_in_window, agreed_recently) = in_window(tx, call, i64::MAX)?;
            let at = call.started_at.as_millisecond();
            // ON CONFLICT: the same Call-ID started at once on another connection (anonymous
            // callers take no lock). The insert waits for that transaction and then inserts
            // nothing; the start is answered from its row, as any retransmission is.
            let inserted = tx.execute(
                "INSERT INTO calls (call_id, caller, caller_raw, called, client, started_at, \
                 after_hours, agreement, rate_multiplier, repeat, node) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (call_id) DO NOTHING",
                &[
                    &call.call_id,
                    &caller,
                    &call.caller_raw,
                    &call.called,
                    &call.client,
                    &at,
                    &call.after_hours,
                    &call.agreement,
                    &call.rate_multiplier,
                    &repeat,
                    &call.node,
                ],
            )?;
            if inserted == 0 {
                return replay(tx, call)?.ok_or_else(|| {
                    Fail::Bad(format!("call {} conflicted but has no row", call.call_id))
                });
            }
            if !call.caller.is_anonymous() {
                tx.execute(
                    "INSERT INTO callers (number, first_seen, last_seen, calls) \
                     VALUES ($1, $2, $2, 1) \
                     ON CONFLICT (number) DO UPDATE SET \
                     last_seen = GREATEST(callers.last_seen, excluded.last_seen), \
                     calls = callers.calls + 1",
                    &[&caller, &at],
                )?;
            }
            Ok(CallStartOutcome {
                repeat,
                previous_calls: previous,
                calls_in_window,
                history,
                agreed_recently,
            })
        })
    }

    /// See [`crate::store::Store::call_ended`].
    fn call_ended(&self, cdr: &Cdr) -> Result<(), StoreError> {
        self.write("recording a call end", |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO calls ({CDR_COLUMNS_SQL}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
                     ON CONFLICT (call_id) DO UPDATE SET \
                     client = excluded.client, answered_at = excluded.answered_at, \
                     ended_at = excluded.ended_at, talk_seconds = excluded.talk_seconds, \
                     after_hours = excluded.after_hours, agreement = excluded.agreement, \
                     rate_multiplier = excluded.rate_multiplier, \
                     agreed_terms = excluded.agreed_terms, digits = excluded.digits, \
                     ticket = excluded.ticket, outcome = excluded.outcome, \
                     end_reason = excluded.end_reason, answered_by = excluded.answered_by, \
                     incident = COALESCE(excluded.incident, calls.incident)"
                ),
                &[
                    &cdr.call_id,
                    &cdr.caller,
                    &cdr.caller_raw,
                    &cdr.called,
                    &cdr.client,
                    &cdr.started_at.as_millisecond(),
                    &cdr.answered_at.map(|t| t.as_millisecond()),
                    &cdr.ended_at.map(|t| t.as_millisecond()),
                    &to_i64(cdr.talk_seconds),
                    &cdr.after_hours,
                    &cdr.agreement,
                    &cdr.rate_multiplier,
                    &cdr.agreed_terms,
                    &cdr.digits,
                    &cdr.ticket,
                    &cdr.outcome.map(Outcome::as_str),
                    &cdr.end_reason,
                    &cdr.repeat,
                    &cdr.answered_by,
                    &cdr.incident,
                ],
            )?;
            Ok(())
        })
    }

    /// See [`crate::store::Store::call_progress`].
    fn call_progress(&self, call_id: &str, facts: &[CallFact]) -> Result<(), StoreError> {
        self.write("recording a call's progress", |tx| {
            // `ended_at IS NULL`: a fact that arrives after the final record never rewrites it.
            for fact in facts {
                let ms;
                let (column, value): (&str, &(dyn ToSql + Sync)) = match fact {
                    CallFact::Answered(at) => {
                        ms = at.as_millisecond();
                        ("answered_at", &ms)
                    }
                    CallFact::Digits(d) => ("digits", d),
                    CallFact::AgreedTerms(a) => ("agreed_terms", a),
                    CallFact::Ticket(t) => ("ticket", t),
                    CallFact::AnsweredBy(m) => ("answered_by", m),
                    CallFact::Incident(k) => ("incident", k),
                };
                tx.execute(
                    &format!(
                        "UPDATE calls SET {column} = $2 WHERE call_id = $1 AND ended_at IS NULL"
                    ),
                    &[&call_id, value],
                )?;
            }
            Ok(())
        })
    }

    /// See [`crate::store::Store::cdrs_between`].
    fn cdrs_between(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Vec<Cdr>, StoreError> {
        self.read("reading CDRs", |c| {
            let rows = c.query(
                &format!(
                    "SELECT {CDR_COLUMNS_SQL} FROM calls \
                     WHERE ($1::BIGINT IS NULL OR started_at >= $1) \
                     AND ($2::BIGINT IS NULL OR started_at < $2) \
                     ORDER BY started_at, id"
                ),
                &[
                    &from.map(|t| t.as_millisecond()),
                    &to.map(|t| t.as_millisecond()),
                ],
            )?;
            rows::all(rows, rows::cdr)
        })
    }

    /// See [`crate::store::Store::open_calls`].
    fn open_calls(&self, node: &str) -> Result<Vec<Cdr>, StoreError> {
        self.read("reading calls still open", |c| {
            // '' is a call started before calls knew their node (migration 0002).
            let rows = c.query(
                &format!(
                    "SELECT {CDR_COLUMNS_SQL} FROM calls WHERE ended_at IS NULL \
                     AND (node = $1 OR node = '') ORDER BY started_at, id"
                ),
                &[&node],
            )?;
            rows::all(rows, rows::cdr)
        })
    }
}
