//! One delivery round, decided without I/O: given the undelivered rows and `now`, which rows to
//! send, which wait, and when the worker should look again.
//!
//! Rows form queues by `(target, call_id)`; only the oldest undelivered row of a queue (its
//! head) may be sent, which is what keeps a call's events in order: while a head is backing
//! off, the rows behind it wait however due they are. Rows without a call id are queues of
//! their own. A head whose target has no endpoint configured is set aside (it, and its queue,
//! stay in the outbox) and does not count towards the next wake-up, so the worker does not
//! spin on it.

use std::collections::HashSet;

use jiff::{SignedDuration, Timestamp};

use super::event::Target;
use crate::store::OutboxRow;

/// What to do this round.
#[derive(Debug, Default, PartialEq)]
pub struct Round {
    /// Due queue heads, oldest first; each is an independent queue, so they may go out
    /// concurrently.
    pub send: Vec<OutboxRow>,
    /// Queue heads whose target has no endpoint.
    pub unrouted: Vec<OutboxRow>,
    /// The earliest retry among the heads that are not due yet.
    pub wake_at: Option<Timestamp>,
}

#[derive(Hash, PartialEq, Eq)]
enum Queue {
    Call(Target, String),
    Lone(i64),
}

/// Plans a round. `rows` are undelivered rows (any order: they are sorted by id here);
/// `routable` says whether a target has an endpoint.
pub fn plan(mut rows: Vec<OutboxRow>, now: Timestamp, routable: impl Fn(Target) -> bool) -> Round {
    rows.sort_by_key(|r| r.id);
    let mut seen = HashSet::new();
    let mut heads = Vec::new();
    for row in rows {
        let queue = match &row.event.call_id {
            Some(call) => Queue::Call(row.event.target, call.clone()),
            None => Queue::Lone(row.id),
        };
        // Rows come oldest first, so the first row seen of a queue is its head.
        if seen.insert(queue) {
            heads.push(row);
        }
    }
    let mut round = Round::default();
    for row in heads {
        if !routable(row.event.target) {
            round.unrouted.push(row);
            continue;
        }
        match row.retry_at() {
            Some(at) if at > now => {
                round.wake_at = Some(round.wake_at.map_or(at, |w| w.min(at)));
            }
            _ => round.send.push(row),
        }
    }
    round
}

/// Least pause before looking again at a row another node holds: its lease may have run out
/// a moment ago and been claimed afresh by a third node; the worker must not spin on it.
const LEASE_RECHECK_MIN: SignedDuration = SignedDuration::from_millis(100);

/// When to look again at `due` rows that this node could not claim: they are leased to another
/// node (a dead one's lease runs out, and then the row is ours to take). At the earliest lease's
/// end, not a lease of our own later: that doubled a dead node's takeover time. A row without a
/// lease time (claimed by another node between our claim and this read) counts as `fallback`.
pub fn leased_elsewhere_wake(
    due: &[OutboxRow],
    now: Timestamp,
    fallback: Timestamp,
) -> Option<Timestamp> {
    let soonest = now.checked_add(LEASE_RECHECK_MIN).unwrap_or(now);
    due.iter()
        .map(|r| r.lease_until.unwrap_or(fallback).max(soonest))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::event::{EventKind, OutboxEvent};
    use serde_json::json;

    fn ts(s: u32) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + i64::from(s)).unwrap()
    }

    fn row(id: i64, call: Option<&str>, target: Target, next: Option<u32>) -> OutboxRow {
        OutboxRow {
            id,
            event: OutboxEvent {
                kind: EventKind::CallStarted,
                call_id: call.map(str::to_string),
                occurred_at: ts(0),
                payload: json!({}),
                target,
            },
            attempts: u32::from(next.is_some()),
            next_attempt_at: next.map_or(ts(0), ts),
            delivered_at: None,
            last_error: None,
            lease_until: None,
        }
    }

    fn ids(rows: &[OutboxRow]) -> Vec<i64> {
        rows.iter().map(|r| r.id).collect()
    }

    #[test]
    fn one_head_per_call_oldest_first() {
        let rows = vec![
            row(3, Some("a"), Target::Primary, None),
            row(1, Some("a"), Target::Primary, None),
            row(2, Some("b"), Target::Primary, None),
            row(4, Some("b"), Target::Primary, None),
        ];
        let r = plan(rows, ts(10), |_| true);
        assert_eq!(ids(&r.send), [1, 2]);
        assert_eq!(r.wake_at, None);
    }

    #[test]
    fn a_backed_off_head_holds_its_call_but_not_others() {
        let rows = vec![
            row(1, Some("a"), Target::Primary, Some(30)),
            row(2, Some("a"), Target::Primary, None),
            row(3, Some("b"), Target::Primary, Some(5)),
            row(4, Some("c"), Target::Primary, Some(20)),
        ];
        let r = plan(rows, ts(10), |_| true);
        // a's row 2 is due but waits behind row 1; b's head is due; c waits.
        assert_eq!(ids(&r.send), [3]);
        assert_eq!(r.wake_at, Some(ts(20)));
    }

    #[test]
    fn escalation_is_its_own_queue_and_lone_rows_are_independent() {
        let rows = vec![
            row(1, Some("a"), Target::Primary, Some(60)),
            row(2, Some("a"), Target::Escalation, None),
            row(3, None, Target::Escalation, Some(60)),
            row(4, None, Target::Escalation, None),
        ];
        let r = plan(rows, ts(10), |_| true);
        assert_eq!(ids(&r.send), [2, 4]);
        assert_eq!(r.wake_at, Some(ts(60)));
    }

    #[test]
    fn unrouted_heads_are_set_aside_without_a_wake_up() {
        let rows = vec![
            row(1, Some("a"), Target::Escalation, Some(5)),
            row(2, Some("a"), Target::Escalation, None),
            row(3, Some("a"), Target::Primary, None),
        ];
        let r = plan(rows, ts(10), |t| t == Target::Primary);
        assert_eq!(ids(&r.send), [3]);
        assert_eq!(ids(&r.unrouted), [1]);
        assert_eq!(r.wake_at, None);
    }

    #[test]
    fn due_exactly_now_is_sent() {
        let r = plan(
            vec![row(1, Some("a"), Target::Primary, Some(10))],
            ts(10),
            |_| true,
        );
        assert_eq!(ids(&r.send), [1]);
    }

    #[test]
    fn rows_leased_elsewhere_are_looked_at_again_when_the_first_lease_ends() {
        let leased = |id, until: Option<u32>| {
            let mut r = row(id, None, Target::Primary, None);
            r.lease_until = until.map(ts);
            r
        };
        let now = ts(100);
        // Two rows held by other nodes until 104 and 107: look again at 104, not at our own
        // lease's end (110).
        let rows = [leased(1, Some(107)), leased(2, Some(104))];
        assert_eq!(leased_elsewhere_wake(&rows, now, ts(110)), Some(ts(104)));
        // A lease with no time (claimed just now elsewhere): our own lease's length.
        assert_eq!(
            leased_elsewhere_wake(&[leased(3, None)], now, ts(110)),
            Some(ts(110))
        );
        // A lease already over: shortly, never at once (no spinning).
        let over = leased_elsewhere_wake(&[leased(4, Some(90))], now, ts(110)).unwrap();
        assert!(over > now && over <= ts(101), "{over}");
        assert_eq!(leased_elsewhere_wake(&[], now, ts(110)), None);
    }
}
