//! Tests of the SQLite store's voicemails, callback-SLA timers and outbox against real database
//! files: acknowledgement, escalation claims, per-call delivery order, restarts, a full disk.

use std::path::PathBuf;

use super::test_support::*;
use super::*;

#[test]
fn voicemail_sla_ack_and_escalation() {
    let dir = TempDir::new("vm");
    let store = SqliteStore::open(dir.path()).expect("open");
    let id1 = store
        .add_voicemail(
            &voicemail("c1", "+15551230001", "2026-11-28T03:00:00Z"),
            t("2026-11-28T03:20:00Z"),
        )
        .expect("vm1");
    let id2 = store
        .add_voicemail(
            &voicemail("c2", "+15559990000", "2026-11-28T03:05:00Z"),
            t("2026-11-28T03:25:00Z"),
        )
        .expect("vm2");
    assert_eq!(
        store.next_sla_due().expect("next"),
        Some(t("2026-11-28T03:20:00Z"))
    );
    assert!(
        store
            .due_sla_timers(t("2026-11-28T03:19:59Z"))
            .expect("due")
            .is_empty()
    );
    let due = store
        .due_sla_timers(t("2026-11-28T03:20:00Z"))
        .expect("due");
    assert_eq!(
        due,
        [SlaTimer {
            voicemail_id: id1,
            due_at: t("2026-11-28T03:20:00Z"),
            state: SlaState::Pending,
            call_id: "c1".into(),
            caller: "+15551230001".into(),
            client: Some("Acme".into()),
            ticket: Some("T-42".into()),
            created_at: t("2026-11-28T03:00:00Z"),
        }]
    );

    // Ack the first: its timer stops.
    assert_eq!(
        store
            .ack_voicemail(id1, "alice", t("2026-11-28T03:10:00Z"))
            .expect("ack"),
        AckOutcome::Acked
    );
    assert_eq!(
        store
            .ack_voicemail(id1, "bob", t("2026-11-28T03:11:00Z"))
            .expect("ack again"),
        AckOutcome::AlreadyAcked {
            by: "alice".into(),
            at: t("2026-11-28T03:10:00Z")
        }
    );
    assert_eq!(
        store
            .ack_voicemail(999, "alice", t("2026-11-28T03:11:00Z"))
            .expect("ack unknown"),
        AckOutcome::NotFound
    );
    assert!(
        store
            .due_sla_timers(t("2026-11-28T04:00:00Z"))
            .expect("due")
            .iter()
            .all(|s| s.voicemail_id != id1)
    );

    // The second is overdue: escalation claims it once and queues the event with it.
    let overdue = event("callback_overdue", Some("c2"), "2026-11-28T03:25:00Z");
    let first = store
        .escalate(id2, t("2026-11-28T03:25:00Z"), &overdue)
        .expect("escalate");
    assert!(first.is_some());
    assert_eq!(
        store
            .escalate(id2, t("2026-11-28T03:25:01Z"), &overdue)
            .expect("escalate again"),
        None,
        "a second claim (another node) queues nothing"
    );
    assert!(
        !store
            .mark_escalated(id2, t("2026-11-28T03:26:00Z"))
            .expect("mark")
    );
    assert_eq!(store.next_sla_due().expect("next"), None);
    let outbox: Vec<(i64, String)> = outbox_events(dir.path());
    assert_eq!(
        outbox,
        [(first.expect("id"), "callback_overdue".to_string())]
    );

    let list = store.voicemails().expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].acked_by.as_deref(), Some("alice"));
    assert_eq!(list[0].sla_state, SlaState::Acked);
    assert_eq!(list[1].escalated_at, Some(t("2026-11-28T03:25:00Z")));
    assert_eq!(list[1].sla_state, SlaState::Escalated);
    assert_eq!(list[1].path, PathBuf::from("voicemail/c2.wav"));
    assert_eq!(list[1].duration_ms, 12_500);

    // Acknowledging after escalation still stops it for good.
    assert_eq!(
        store
            .ack_voicemail(id2, "carol", t("2026-11-28T03:30:00Z"))
            .expect("late ack"),
        AckOutcome::Acked
    );
    assert_eq!(
        store.voicemail(id2).expect("vm").map(|v| v.sla_state),
        Some(SlaState::Acked)
    );
}

#[test]
fn outbound_call_acknowledges_that_numbers_voicemails() {
    let dir = TempDir::new("vm-number");
    let store = SqliteStore::open(dir.path()).expect("open");
    let due = t("2026-11-28T03:20:00Z");
    let a = store
        .add_voicemail(
            &voicemail("c1", "+15551230001", "2026-11-28T03:00:00Z"),
            due,
        )
        .expect("a");
    let b = store
        .add_voicemail(
            &voicemail("c2", "+15551230001", "2026-11-28T03:01:00Z"),
            due,
        )
        .expect("b");
    let other = store
        .add_voicemail(
            &voicemail("c3", "+15559990000", "2026-11-28T03:02:00Z"),
            due,
        )
        .expect("other");
    let at = t("2026-11-28T03:10:00Z");
    assert_eq!(
        store
            .ack_voicemails_for_number("+15551230001", at)
            .expect("ack"),
        2
    );
    assert_eq!(
        store
            .ack_voicemails_for_number("+15551230001", at)
            .expect("again"),
        0
    );
    let due_now: Vec<i64> = store
        .due_sla_timers(due)
        .expect("due")
        .iter()
        .map(|s| s.voicemail_id)
        .collect();
    assert_eq!(due_now, [other]);
    for id in [a, b] {
        let vm = store.voicemail(id).expect("vm").expect("exists");
        assert_eq!(
            vm.acked_by.as_deref(),
            Some("outbound call to +15551230001")
        );
        assert_eq!(vm.sla_state, SlaState::Acked);
    }
}

#[test]
fn sla_timers_survive_a_restart() {
    let dir = TempDir::new("sla-restart");
    let id = {
        let store = SqliteStore::open(dir.path()).expect("open");
        store
            .add_voicemail(
                &voicemail("c1", "+15551230001", "2026-11-28T03:00:00Z"),
                t("2026-11-28T03:20:00Z"),
            )
            .expect("vm")
    };
    let store = SqliteStore::open(dir.path()).expect("reopen");
    assert_eq!(
        store.next_sla_due().expect("next"),
        Some(t("2026-11-28T03:20:00Z"))
    );
    let due = store
        .due_sla_timers(t("2026-11-28T03:21:00Z"))
        .expect("due");
    assert_eq!(due.iter().map(|s| s.voicemail_id).collect::<Vec<_>>(), [id]);
}

#[test]
fn outbox_orders_per_call_and_survives_a_restart() {
    let dir = TempDir::new("outbox");
    let ids = {
        let store = SqliteStore::open(dir.path()).expect("open");
        [
            store
                .enqueue(&event("call_started", Some("c1"), "2026-11-28T03:00:00Z"))
                .expect("e1"),
            store
                .enqueue(&event("call_started", Some("c2"), "2026-11-28T03:00:01Z"))
                .expect("e2"),
            store
                .enqueue(&event("call_ended", Some("c1"), "2026-11-28T03:00:02Z"))
                .expect("e3"),
            store
                .enqueue(&event("custom", None, "2026-11-28T03:00:03Z"))
                .expect("e4"),
        ]
    };
    let [c1_start, c2_start, c1_end, custom] = ids;
    // After a restart everything is still owed.
    let store = SqliteStore::open(dir.path()).expect("reopen");
    let now = t("2026-11-28T03:01:00Z");
    let pending = |now| -> Vec<i64> {
        store
            .pending_outbox(now, 100)
            .expect("pending")
            .iter()
            .map(|r| r.id)
            .collect()
    };
    // c1's second event waits behind its first.
    assert_eq!(pending(now), [c1_start, c2_start, custom]);
    // Not yet due: nothing before created_at.
    assert!(pending(t("2026-11-28T02:00:00Z")).is_empty());

    // c1's first event fails and backs off: c1's later event must not overtake it, other
    // calls' events go on.
    store
        .mark_attempt_failed(c1_start, t("2026-11-28T03:05:00Z"), "connection refused")
        .expect("fail");
    store.mark_delivered(c2_start, now).expect("delivered");
    store.mark_delivered(custom, now).expect("delivered");
    assert!(pending(now).is_empty(), "c1_end must wait for c1_start");
    let retry = store
        .pending_outbox(t("2026-11-28T03:05:00Z"), 100)
        .expect("retry");
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].id, c1_start);
    assert_eq!(retry[0].attempts, 1);
    assert_eq!(retry[0].last_error.as_deref(), Some("connection refused"));
    assert_eq!(
        retry[0].event.payload,
        serde_json::json!({ "event": "call_started", "call_id": "c1" })
    );
    store
        .mark_delivered(c1_start, t("2026-11-28T03:05:01Z"))
        .expect("delivered");
    assert_eq!(pending(t("2026-11-28T03:05:01Z")), [c1_end]);
    // limit is honoured.
    assert_eq!(
        store
            .pending_outbox(t("2026-11-28T03:05:01Z"), 0)
            .expect("limit")
            .len(),
        0
    );
    // Unknown ids are errors, not silent no-ops.
    assert!(matches!(
        store.mark_delivered(12345, now),
        Err(StoreError::NoSuchOutboxRow(12345))
    ));
    assert!(matches!(
        store.mark_attempt_failed(12345, now, "x"),
        Err(StoreError::NoSuchOutboxRow(12345))
    ));
    let delivered: i64 = raw(dir.path())
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(delivered, 3);
}

#[test]
fn full_database_on_write_is_a_typed_error_and_nothing_half_written() {
    let dir = TempDir::new("full");
    let store = SqliteStore::open(dir.path()).expect("open");
    store
        .enqueue(&event("call_started", Some("c1"), "2026-11-28T03:00:00Z"))
        .expect("fits");
    // Freeze the file at its current size: SQLite reports SQLITE_FULL exactly as for ENOSPC.
    store.with_conn(|c| {
        let pages: i64 = c
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .expect("pages");
        c.pragma_update(None, "max_page_count", pages)
            .expect("limit");
    });
    let mut big = event("call_ended", Some("c1"), "2026-11-28T03:00:01Z");
    big.payload = serde_json::json!({ "blob": "x".repeat(200_000) });
    let err = store.enqueue(&big).expect_err("no room");
    assert!(matches!(err, StoreError::Full { .. }), "{err:?}");
    assert!(err.to_string().contains("is full"), "{err}");
    // The failed transaction left nothing behind, and reads still work.
    let pending = store
        .pending_outbox(t("2026-11-28T04:00:00Z"), 10)
        .expect("reads still work");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].event.kind, EventKind::CallStarted);
}

/// A mail waiting for its transcript is held back without counting a failed attempt, and a
/// delivered row is never moved again.
#[test]
fn postponing_a_row_holds_it_without_an_attempt() {
    let dir = TempDir::new("postpone");
    let store = SqliteStore::open(dir.path()).expect("open");
    let ev = OutboxEvent {
        kind: EventKind::VoicemailRecorded,
        call_id: Some("c1".into()),
        target: Target::Email,
        payload: serde_json::json!({"voicemail_id": 1}),
        occurred_at: t("2026-11-28T03:00:00Z"),
    };
    let id = store.enqueue(&ev).expect("enqueue");
    store
        .postpone_outbox(id, t("2026-11-28T03:02:00Z"))
        .expect("postpone");
    assert!(
        store
            .pending_outbox(t("2026-11-28T03:01:59Z"), 10)
            .expect("pending")
            .is_empty(),
        "held back until 03:02"
    );
    let rows = store
        .pending_outbox(t("2026-11-28T03:02:00Z"), 10)
        .expect("pending");
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].attempts, rows[0].last_error.as_deref()), (0, None));
    store
        .mark_delivered(id, t("2026-11-28T03:02:01Z"))
        .expect("delivered");
    store
        .postpone_outbox(id, t("2026-11-28T09:00:00Z"))
        .expect("postpone a delivered row");
    let db = rusqlite::Connection::open(store.path()).expect("open the file");
    let next: i64 = db
        .query_row(
            "SELECT next_attempt_at FROM outbox WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .expect("row");
    assert_eq!(next, t("2026-11-28T03:02:00Z").as_millisecond());
}
