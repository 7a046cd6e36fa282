//! Rows to store values, and the statements several operations share. The column lists are
//! SQLite's (`super::super::schema`): the schemas have the same columns in the same order.

use std::path::PathBuf;

use postgres::{GenericClient, Row};

use super::cached::Db;

use super::{Fail, from_ms, opt_from_ms, to_u32, to_u64};
use crate::store::{
    CallerHistory, Cdr, EventKind, OutboxEvent, OutboxRow, Outcome, PreviousCall, SlaState,
    SlaTimer, Target, Voicemail,
};

pub(super) use crate::store::schema::{CDR_COLUMNS_SQL, OUTBOX_COLUMNS_SQL, VOICEMAIL_SELECT};

pub(super) fn cdr(r: &Row) -> Result<Cdr, Fail> {
    let outcome: Option<String> = r.try_get(15)?;
    Ok(Cdr {
        call_id: r.try_get(0)?,
        caller: r.try_get(1)?,
        caller_raw: r.try_get(2)?,
        called: r.try_get(3)?,
        client: r.try_get(4)?,
        started_at: from_ms(r.try_get(5)?)?,
        answered_at: opt_from_ms(r.try_get(6)?)?,
        ended_at: opt_from_ms(r.try_get(7)?)?,
        talk_seconds: to_u64(r.try_get(8)?),
        after_hours: r.try_get(9)?,
        agreement: r.try_get(10)?,
        rate_multiplier: r.try_get(11)?,
        agreed_terms: r.try_get(12)?,
        digits: r.try_get(13)?,
        ticket: r.try_get(14)?,
        outcome: outcome
            .map(|s| Outcome::parse(&s).ok_or_else(|| Fail::Bad(format!("unknown outcome {s:?}"))))
            .transpose()?,
        end_reason: r.try_get(16)?,
        repeat: r.try_get(17)?,
        answered_by: r.try_get(18)?,
        incident: r.try_get(19)?,
    })
}

pub(super) fn voicemail(r: &Row) -> Result<Voicemail, Fail> {
    Ok(Voicemail {
        id: r.try_get(0)?,
        call_id: r.try_get(1)?,
        caller: r.try_get(2)?,
        client: r.try_get(3)?,
        ticket: r.try_get(4)?,
        path: PathBuf::from(r.try_get::<_, String>(5)?),
        duration_ms: to_u64(r.try_get(6)?),
        created_at: from_ms(r.try_get(7)?)?,
        acked_at: opt_from_ms(r.try_get(8)?)?,
        acked_by: r.try_get(9)?,
        escalated_at: opt_from_ms(r.try_get(10)?)?,
        sla_due_at: from_ms(r.try_get(11)?)?,
        sla_state: sla_state(r, 12)?,
        transcript: r.try_get(13)?,
        transcript_engine: r.try_get(14)?,
        transcribed_at: opt_from_ms(r.try_get(15)?)?,
        transcript_error: r.try_get(16)?,
    })
}

pub(super) fn outbox(r: &Row) -> Result<OutboxRow, Fail> {
    let id: i64 = r.try_get(0)?;
    let kind: String = r.try_get(1)?;
    let target: String = r.try_get(3)?;
    let payload: String = r.try_get(4)?;
    Ok(OutboxRow {
        id,
        event: OutboxEvent {
            kind: EventKind::from_name(&kind),
            call_id: r.try_get(2)?,
            occurred_at: from_ms(r.try_get(5)?)?,
            payload: serde_json::from_str(&payload)
                .map_err(|e| Fail::Bad(format!("outbox payload is not JSON: {e}")))?,
            target: Target::from_stored(id, &target),
        },
        attempts: to_u32(r.try_get(6)?),
        next_attempt_at: from_ms(r.try_get(7)?)?,
        delivered_at: opt_from_ms(r.try_get(8)?)?,
        last_error: r.try_get(9)?,
        lease_until: opt_from_ms(r.try_get(10)?)?,
    })
}

/// Columns: voicemail_id, due_at, state, call_id, caller, client, ticket, created_at.
pub(super) fn sla_timer(r: &Row) -> Result<SlaTimer, Fail> {
    Ok(SlaTimer {
        voicemail_id: r.try_get(0)?,
        due_at: from_ms(r.try_get(1)?)?,
        state: sla_state(r, 2)?,
        call_id: r.try_get(3)?,
        caller: r.try_get(4)?,
        client: r.try_get(5)?,
        ticket: r.try_get(6)?,
        created_at: from_ms(r.try_get(7)?)?,
    })
}

fn sla_state(r: &Row, idx: usize) -> Result<SlaState, Fail> {
    let s: String = r.try_get(idx)?;
    SlaState::parse(&s).ok_or_else(|| Fail::Bad(format!("unknown SLA state {s:?}")))
}

/// Every row of `rows` through `f`.
pub(super) fn all<T>(rows: Vec<Row>, f: fn(&Row) -> Result<T, Fail>) -> Result<Vec<T>, Fail> {
    rows.iter().map(f).collect()
}

/// Queue `ev`; returns its outbox id.
pub(super) fn insert_event(
    c: &mut Db<'_, impl GenericClient>,
    ev: &OutboxEvent,
) -> Result<i64, Fail> {
    let at = ev.occurred_at.as_millisecond();
    let row = c.query_one(
        "INSERT INTO outbox (event_type, call_id, target, payload, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        &[
            &ev.kind.as_str(),
            &ev.call_id,
            &ev.target.as_str(),
            &ev.payload.to_string(),
            &at,
        ],
    )?;
    Ok(row.try_get(0)?)
}

/// The last `limit` calls before row `before_id`, most recent first.
pub(super) fn previous_calls(
    c: &mut Db<'_, impl GenericClient>,
    before_id: i64,
    limit: usize,
) -> Result<Vec<PreviousCall>, Fail> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = c.query(
        "SELECT caller, started_at FROM calls WHERE id < $1 ORDER BY id DESC LIMIT $2",
        &[&before_id, &limit],
    )?;
    rows.iter()
        .map(|r| {
            Ok(PreviousCall {
                caller: r.try_get(0)?,
                started_at: from_ms(r.try_get(1)?)?,
            })
        })
        .collect()
}

/// How many calls from `caller` before row `before_id` started at or after `since`, and
/// whether one of them has the terms agreed: read in the start's transaction, like the repeat
/// rule, so the answers match the rows that decided `repeat`.
pub(super) fn calls_since(
    c: &mut Db<'_, impl GenericClient>,
    caller: &str,
    before_id: i64,
    since: i64,
) -> Result<(u32, bool), Fail> {
    let row = c.query_one(
        "SELECT COUNT(*), COALESCE(BOOL_OR(agreed_terms), FALSE) FROM calls \
         WHERE caller = $1 AND id < $2 AND started_at >= $3",
        &[&caller, &before_id, &since],
    )?;
    Ok((to_u32(row.try_get(0)?), row.try_get(1)?))
}

pub(super) fn caller_history(
    c: &mut Db<'_, impl GenericClient>,
    caller: &crate::store::CallerId,
) -> Result<Option<CallerHistory>, Fail> {
    if caller.is_anonymous() {
        return Ok(None);
    }
    let row = c.query_opt(
        "SELECT first_seen, last_seen, calls FROM callers WHERE number = $1",
        &[&caller.as_str()],
    )?;
    row.map(|r| {
        Ok(CallerHistory {
            first_seen: from_ms(r.try_get(0)?)?,
            last_seen: from_ms(r.try_get(1)?)?,
            calls: to_u32(r.try_get(2)?),
        })
    })
    .transpose()
}
