//! The conformance cases of voicemails, SLA timers, the outbox and transcripts (see
//! `conformance.rs`).

use std::path::PathBuf;
use std::time::Duration;

use super::super::test_support::*;
use super::super::*;
use super::Subject;

fn pending_ids(store: &dyn Store, now: &str) -> Vec<i64> {
    store
        .pending_outbox(t(now), 100)
        .expect("pending")
        .iter()
        .map(|r| r.id)
        .collect()
}

pub(in crate::store) fn voicemail_sla_ack_and_escalation(s: &Subject) {
    let store = &*s.store;
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
    assert_eq!(
        store
            .due_sla_timers(t("2026-11-28T03:20:00Z"))
            .expect("due"),
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
        .expect("escalate")
        .expect("claimed");
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
    let queued = store
        .pending_outbox(t("2026-11-28T04:00:00Z"), 10)
        .expect("pending");
    assert_eq!(
        queued
            .iter()
            .map(|r| (r.id, r.event.kind.as_str()))
            .collect::<Vec<_>>(),
        [(first, "callback_overdue")]
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
    assert_eq!(store.voicemail(999).expect("vm"), None);
    // A plain claim (no event) of a pending timer.
    let id3 = store
        .add_voicemail(
            &voicemail("c3", "+15551230003", "2026-11-28T03:06:00Z"),
            t("2026-11-28T03:26:00Z"),
        )
        .expect("vm3");
    assert!(
        store
            .mark_escalated(id3, t("2026-11-28T03:27:00Z"))
            .expect("mark")
    );
    assert!(
        !store
            .mark_escalated(id3, t("2026-11-28T03:28:00Z"))
            .expect("mark")
    );
}

pub(in crate::store) fn outbound_call_acknowledges_that_numbers_voicemails(s: &Subject) {
    let store = &*s.store;
    let due = t("2026-11-28T03:20:00Z");
    let add = |call: &str, who: &str, at: &str| {
        store
            .add_voicemail(&voicemail(call, who, at), due)
            .expect("vm")
    };
    let a = add("c1", "+15551230001", "2026-11-28T03:00:00Z");
    let b = add("c2", "+15551230001", "2026-11-28T03:01:00Z");
    let other = add("c3", "+15559990000", "2026-11-28T03:02:00Z");
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
        assert_eq!(vm.acked_at, Some(at));
        assert_eq!(vm.sla_state, SlaState::Acked);
    }
}

pub(in crate::store) fn sla_timers_survive_a_restart(s: &Subject) {
    let id = s
        .store
        .add_voicemail(
            &voicemail("c1", "+15551230001", "2026-11-28T03:00:00Z"),
            t("2026-11-28T03:20:00Z"),
        )
        .expect("vm");
    let store = s.reopen();
    assert_eq!(
        store.next_sla_due().expect("next"),
        Some(t("2026-11-28T03:20:00Z"))
    );
    let due = store
        .due_sla_timers(t("2026-11-28T03:21:00Z"))
        .expect("due");
    assert_eq!(due.iter().map(|s| s.voicemail_id).collect::<Vec<_>>(), [id]);
}

pub(in crate::store) fn outbox_orders_per_call_and_survives_a_restart(s: &Subject) {
    let enqueue = |kind: &str, call: Option<&str>, at: &str| {
        s.store.enqueue(&event(kind, call, at)).expect("enqueue")
    };
    let c1_start = enqueue("call_started", Some("c1"), "2026-11-28T03:00:00Z");
    let c2_start = enqueue("call_started", Some("c2"), "2026-11-28T03:00:01Z");
    let c1_end = enqueue("call_ended", Some("c1"), "2026-11-28T03:00:02Z");
    let custom = enqueue("custom", None, "2026-11-28T03:00:03Z");
    // After a restart everything is still owed.
    let store = &*s.reopen();
    let now = t("2026-11-28T03:01:00Z");
    // c1's second event waits behind its first.
    assert_eq!(
        pending_ids(store, "2026-11-28T03:01:00Z"),
        [c1_start, c2_start, custom]
    );
    // Not yet due: nothing before created_at.
    assert!(pending_ids(store, "2026-11-28T02:00:00Z").is_empty());
    // c1's first event fails and backs off: c1's later event must not overtake it.
    store
        .mark_attempt_failed(c1_start, t("2026-11-28T03:05:00Z"), "connection refused")
        .expect("fail");
    store.mark_delivered(c2_start, now).expect("delivered");
    store.mark_delivered(custom, now).expect("delivered");
    // A second report of a delivery is not an error.
    store.mark_delivered(custom, now).expect("delivered twice");
    assert!(
        pending_ids(store, "2026-11-28T03:01:00Z").is_empty(),
        "c1_end must wait for c1_start"
    );
    let retry = store
        .pending_outbox(t("2026-11-28T03:05:00Z"), 100)
        .expect("retry");
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].id, c1_start);
    assert_eq!(retry[0].attempts, 1);
    assert_eq!(retry[0].next_attempt_at, t("2026-11-28T03:05:00Z"));
    assert_eq!(retry[0].event.occurred_at, t("2026-11-28T03:00:00Z"));
    assert_eq!(retry[0].event.target, Target::Primary);
    assert_eq!(retry[0].last_error.as_deref(), Some("connection refused"));
    assert_eq!(
        retry[0].event.payload,
        serde_json::json!({ "event": "call_started", "call_id": "c1" })
    );
    store
        .mark_delivered(c1_start, t("2026-11-28T03:05:01Z"))
        .expect("delivered");
    assert_eq!(pending_ids(store, "2026-11-28T03:05:01Z"), [c1_end]);
    // limit is honoured.
    assert!(
        store
            .pending_outbox(t("2026-11-28T03:05:01Z"), 0)
            .expect("limit")
            .is_empty()
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
}

pub(in crate::store) fn postponing_a_row_holds_it_without_an_attempt(s: &Subject) {
    let store = &*s.store;
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
        pending_ids(store, "2026-11-28T03:01:59Z").is_empty(),
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
    assert!(pending_ids(store, "2026-11-28T10:00:00Z").is_empty());
}

pub(in crate::store) fn register_voicemail_queues_its_events_with_the_voicemail_id(s: &Subject) {
    let store = &*s.store;
    let mut mail = event("voicemail_recorded", Some("c1"), "2026-11-28T03:00:00Z");
    mail.target = Target::Email;
    let hook = event("voicemail_recorded", Some("c1"), "2026-11-28T03:00:00Z");
    let id = store
        .register_voicemail(
            &voicemail("c1", "+15551230001", "2026-11-28T03:00:00Z"),
            t("2026-11-28T03:20:00Z"),
            &[hook, mail],
        )
        .expect("register");
    let rows = store
        .pending_outbox(t("2026-11-28T03:00:00Z"), 10)
        .expect("pending");
    assert_eq!(rows.len(), 2, "one per target: {rows:?}");
    for row in &rows {
        assert_eq!(row.event.payload["voicemail_id"], serde_json::json!(id));
        assert_eq!(row.event.payload["event"], "voicemail_recorded");
    }
    assert_eq!(
        store.voicemail(id).expect("vm").map(|v| v.sla_state),
        Some(SlaState::Pending)
    );
}

pub(in crate::store) fn backlog_counts_owed_callbacks_and_undelivered_events(s: &Subject) {
    let store = &*s.store;
    assert_eq!(
        store.backlog(t("2026-11-28T03:00:00Z")).expect("empty"),
        Backlog::default()
    );
    let due = t("2026-11-28T03:20:00Z");
    let a = store
        .add_voicemail(
            &voicemail("c1", "+15551230001", "2026-11-28T03:00:00Z"),
            due,
        )
        .expect("a");
    store
        .add_voicemail(
            &voicemail("c2", "+15551230002", "2026-11-28T03:00:00Z"),
            t("2026-11-28T04:00:00Z"),
        )
        .expect("b");
    let acked = store
        .add_voicemail(
            &voicemail("c3", "+15551230003", "2026-11-28T03:00:00Z"),
            due,
        )
        .expect("c");
    store
        .ack_voicemail(acked, "alice", t("2026-11-28T03:01:00Z"))
        .expect("ack");
    let ev = store
        .enqueue(&event("call_started", Some("c1"), "2026-11-28T03:00:00Z"))
        .expect("e1");
    store
        .enqueue(&event("call_ended", Some("c1"), "2026-11-28T03:10:00Z"))
        .expect("e2");
    let now = t("2026-11-28T03:30:00Z");
    assert_eq!(
        store.backlog(now).expect("backlog"),
        Backlog {
            voicemails_pending: 1,
            voicemails_overdue: 1,
            outbox_events: 2,
            outbox_oldest_age: Some(Duration::from_secs(30 * 60)),
        }
    );
    store
        .escalate(
            a,
            now,
            &event("callback_overdue", Some("c1"), "2026-11-28T03:30:00Z"),
        )
        .expect("escalate");
    store.mark_delivered(ev, now).expect("delivered");
    let b = store.backlog(now).expect("backlog");
    assert_eq!(
        (b.voicemails_overdue, b.outbox_events),
        (1, 2),
        "escalated still owed"
    );
    assert_eq!(b.outbox_oldest_age, Some(Duration::from_secs(20 * 60)));
}

fn outcome(text: Result<&str, &str>) -> TranscriptOutcome {
    TranscriptOutcome {
        engine: "pocketsphinx".into(),
        at: t("2026-03-02T10:01:00Z"),
        text: text.map(str::to_string).map_err(str::to_string),
    }
}

pub(in crate::store) fn transcripts_owed_newest_first_until_stored_with_its_event(s: &Subject) {
    let store = &*s.store;
    let due = t("2026-03-02T10:20:00Z");
    let a = store
        .add_voicemail(&voicemail("c1", "+15550001", "2026-03-02T10:00:00Z"), due)
        .expect("a");
    let b = store
        .add_voicemail(&voicemail("c2", "+15550002", "2026-03-02T10:00:30Z"), due)
        .expect("b");
    let owed = |limit| -> Vec<i64> {
        store
            .transcripts_owed(limit)
            .expect("owed")
            .iter()
            .map(|o| o.voicemail.id)
            .collect()
    };
    assert_eq!(owed(10), [b, a]);
    assert_eq!(owed(1), [b]);
    let ev = event("voicemail_transcribed", Some("c2"), "2026-03-02T10:01:00Z");
    assert!(
        store
            .set_transcript(b, &outcome(Ok("my server is down")), Some(&ev))
            .expect("set")
    );
    // Stored once: a second outcome changes nothing and queues nothing.
    assert!(
        !store
            .set_transcript(b, &outcome(Ok("other")), Some(&ev))
            .expect("again")
    );
    let queued: Vec<String> = store
        .pending_outbox(t("2026-03-02T11:00:00Z"), 10)
        .expect("pending")
        .into_iter()
        .map(|r| r.event.kind.as_str().to_string())
        .collect();
    assert_eq!(queued, ["voicemail_transcribed"]);
    let vm = store.voicemail(b).expect("read").expect("b");
    assert_eq!(vm.transcript.as_deref(), Some("my server is down"));
    assert_eq!(vm.transcript_engine.as_deref(), Some("pocketsphinx"));
    assert_eq!(vm.transcribed_at, Some(t("2026-03-02T10:01:00Z")));
    assert_eq!(vm.transcript_error, None);
    assert_eq!(owed(10), [a]);
    assert!(
        !store
            .set_transcript(999, &outcome(Ok("x")), None)
            .expect("unknown")
    );
}

pub(in crate::store) fn transcript_makes_the_mail_waiting_for_it_due(s: &Subject) {
    let store = &*s.store;
    let mut mail = event("voicemail_recorded", Some("c1"), "2026-03-02T10:00:00Z");
    mail.target = Target::Email;
    let id = store
        .register_voicemail(
            &voicemail("c1", "+15550001", "2026-03-02T10:00:00Z"),
            t("2026-03-02T10:20:00Z"),
            &[mail.clone()],
        )
        .expect("register");
    // Another voicemail's mail, also waiting: it stays held.
    let other = store
        .register_voicemail(
            &voicemail("c2", "+15550002", "2026-03-02T10:00:00Z"),
            t("2026-03-02T10:20:00Z"),
            &[OutboxEvent {
                call_id: Some("c2".into()),
                ..mail
            }],
        )
        .expect("register other");
    let rows = store
        .pending_outbox(t("2026-03-02T10:00:00Z"), 10)
        .expect("pending");
    for row in &rows {
        store
            .postpone_outbox(row.id, t("2026-03-02T10:05:00Z"))
            .expect("hold");
    }
    let at = t("2026-03-02T10:01:00Z");
    assert!(pending_ids(store, "2026-03-02T10:01:00Z").is_empty());
    assert!(
        store
            .set_transcript(id, &outcome(Ok("hello")), None)
            .expect("set")
    );
    let due = store.pending_outbox(at, 10).expect("pending");
    assert_eq!(
        due.len(),
        1,
        "only voicemail {id}'s mail, not {other}'s: {due:?}"
    );
    assert_eq!(due[0].event.payload["voicemail_id"], serde_json::json!(id));
    assert_eq!(due[0].next_attempt_at, at);
}

pub(in crate::store) fn failed_transcriptions_are_counted_and_a_final_error_is_the_outcome(
    s: &Subject,
) {
    let store = &*s.store;
    let id = store
        .add_voicemail(
            &voicemail("c1", "+15550001", "2026-03-02T10:00:00Z"),
            t("2026-03-02T10:20:00Z"),
        )
        .expect("vm");
    assert_eq!(
        store.transcript_attempt_failed(id, "timed out").expect("1"),
        1
    );
    assert_eq!(
        store
            .transcript_attempt_failed(id, "timed out again")
            .expect("2"),
        2
    );
    let owed = store.transcripts_owed(10).expect("owed");
    assert_eq!(owed[0].attempts, 2);
    assert_eq!(
        owed[0].voicemail.transcript_error.as_deref(),
        Some("timed out again")
    );
    assert!(
        store
            .set_transcript(id, &outcome(Err("killed after 120s")), None)
            .expect("final")
    );
    assert!(store.transcripts_owed(10).expect("owed").is_empty());
    let vm = store.voicemail(id).expect("read").expect("vm");
    assert_eq!(vm.transcript, None);
    assert_eq!(vm.transcript_error.as_deref(), Some("killed after 120s"));
    // An attempt after the outcome counts nothing; an unknown voicemail neither.
    assert_eq!(
        store.transcript_attempt_failed(id, "late").expect("late"),
        0
    );
    assert_eq!(
        store.transcript_attempt_failed(999, "x").expect("unknown"),
        0
    );
}
