//! One behaviour suite for every [`Store`]: the cases are written once against `&dyn Store`,
//! and [`conformance_tests!`] turns them into a `#[test]` each for a store kind. SQLite runs
//! them below, PostgreSQL in `postgres/tests.rs`; a store passes when it behaves as the other.
//! The SQLite-only tests (files, WAL, disk errors, migrations of old files) stay in
//! `sqlite_tests.rs`; these read everything back through the trait.

use std::time::Duration;

use super::test_support::*;
use super::*;
use crate::repeat::{CallerId, RepeatPolicy};

/// A fresh, empty store to run one case on, and a way to open it again (a restart).
pub(super) struct Subject {
    pub(super) store: Box<dyn Store>,
    reopen: Box<dyn Fn() -> Box<dyn Store>>,
    /// What must outlive the store (its temp directory); dropped last.
    _keep: Box<dyn std::any::Any>,
}

impl Subject {
    pub(super) fn new(
        store: Box<dyn Store>,
        reopen: impl Fn() -> Box<dyn Store> + 'static,
        keep: impl std::any::Any,
    ) -> Subject {
        Subject {
            store,
            reopen: Box::new(reopen),
            _keep: Box::new(keep),
        }
    }

    /// Another store on the same data, as after a restart.
    fn reopen(&self) -> Box<dyn Store> {
        (self.reopen)()
    }
}

/// A `#[test]` per case, each on the fresh store `$fresh()` gives (`None`: skipped).
macro_rules! conformance_tests {
    ($fresh:expr) => {
        $crate::store::conformance::conformance_tests!(@cases $fresh;
            call_start_and_end_make_one_complete_cdr,
            call_end_without_start_still_leaves_a_cdr,
            repeat_detection_through_the_store,
            agreed_recently_means_this_number_agreed_on_a_call_within_the_window,
            three_in_a_row_policy_and_history,
            calls_in_window_counts_every_call_not_only_the_rules_lookback,
            cdrs_between_is_half_open_and_ordered,
            anonymous_caller_is_stored_as_normalised_text,
            call_progress_is_kept_while_live_and_never_rewrites_the_final_record,
            open_calls_are_the_asking_nodes_own,
            voicemail_sla_ack_and_escalation,
            outbound_call_acknowledges_that_numbers_voicemails,
            voicemail_audio_is_the_recordings_bytes,
            sla_timers_survive_a_restart,
            outbox_orders_per_call_and_survives_a_restart,
            postponing_a_row_holds_it_without_an_attempt,
            register_voicemail_queues_its_events_with_the_voicemail_id,
            backlog_counts_owed_callbacks_and_undelivered_events,
            incident_set_then_refresh_keeps_one_row_and_its_start,
            incident_resolve_ends_it_and_a_new_firing_starts_again,
            expired_incidents_are_not_active,
            transcripts_owed_newest_first_until_stored_with_its_event,
            transcript_makes_the_mail_waiting_for_it_due,
            failed_transcriptions_are_counted_and_a_final_error_is_the_outcome,
            bindings_are_kept_per_user_and_contact_and_refreshed_in_place,
            expired_bindings_are_not_returned,
        );
    };
    (@cases $fresh:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let fresh: fn() -> Option<$crate::store::conformance::Subject> = $fresh;
                if let Some(subject) = fresh() {
                    $crate::store::conformance::$case(&subject);
                }
            }
        )*
    };
}
pub(super) use conformance_tests;

#[path = "conformance_incidents.rs"]
mod incidents;
#[path = "conformance_queue.rs"]
mod queue;
#[path = "conformance_registrations.rs"]
mod registrations;
pub(super) use incidents::*;
pub(super) use queue::*;
pub(super) use registrations::*;

/// The SQLite store runs the suite on a file in a temp directory.
mod sqlite {
    use super::super::test_support::TempDir;
    use super::super::{SqliteStore, Store};
    use super::Subject;

    fn fresh() -> Option<Subject> {
        let dir = TempDir::new("conformance");
        let path = dir.path().to_path_buf();
        let store = SqliteStore::open(&path).expect("open");
        let reopen =
            move || -> Box<dyn Store> { Box::new(SqliteStore::open(&path).expect("reopen")) };
        Some(Subject::new(Box::new(store), reopen, dir))
    }

    super::conformance_tests!(fresh);
}

fn cdr_of(store: &dyn Store, call_id: &str) -> Cdr {
    store
        .cdrs_between(None, None)
        .expect("cdrs")
        .into_iter()
        .find(|c| c.call_id == call_id)
        .unwrap_or_else(|| panic!("{call_id} has a CDR"))
}

pub(super) fn call_start_and_end_make_one_complete_cdr(s: &Subject) {
    let store = &*s.store;
    let mut begin = start("c1", "(555) 123-0001", "2026-11-28T03:00:00Z");
    begin.client = Some("Acme".into());
    begin.agreement = true;
    begin.rate_multiplier = 1.5;
    let out = store.call_started(&begin).expect("start");
    assert_eq!(
        out,
        CallStartOutcome {
            repeat: false,
            previous_calls: vec![],
            calls_in_window: 1,
            history: None,
            agreed_recently: false,
        }
    );
    let cdr = Cdr {
        call_id: "c1".into(),
        caller: "ignored: the start's caller is kept".into(),
        caller_raw: "(555) 123-0001".into(),
        called: "100".into(),
        client: Some("Acme".into()),
        started_at: t("2026-11-28T03:00:00Z"),
        answered_at: Some(t("2026-11-28T03:00:01Z")),
        ended_at: Some(t("2026-11-28T03:05:00Z")),
        talk_seconds: 240,
        after_hours: true,
        agreement: true,
        rate_multiplier: 1.5,
        agreed_terms: true,
        digits: "51123#".into(),
        ticket: Some("123".into()),
        outcome: Some(Outcome::Bridged),
        end_reason: "BYE from caller".into(),
        repeat: true, // ignored too: decided at the start
        answered_by: Some("alice".into()),
        incident: Some("fp1".into()),
    };
    store.call_ended(&cdr).expect("end");
    let expect = Cdr {
        caller: "+15551230001".into(),
        repeat: false,
        ..cdr.clone()
    };
    assert_eq!(
        store.cdrs_between(None, None).expect("cdrs"),
        std::slice::from_ref(&expect)
    );
    // A later end without the incident keeps the one heard; the row stays one.
    store
        .call_ended(&Cdr {
            incident: None,
            ..cdr
        })
        .expect("end again");
    assert_eq!(store.cdrs_between(None, None).expect("cdrs"), [expect]);
    assert!(store.open_calls("node-a").expect("open").is_empty());
}

pub(super) fn call_end_without_start_still_leaves_a_cdr(s: &Subject) {
    let store = &*s.store;
    let cdr = Cdr {
        call_id: "lost-start".into(),
        caller: "+15551230001".into(),
        caller_raw: "+15551230001".into(),
        called: "100".into(),
        client: None,
        started_at: t("2026-11-28T03:00:00Z"),
        answered_at: None,
        ended_at: Some(t("2026-11-28T03:00:20Z")),
        talk_seconds: 0,
        after_hours: true,
        agreement: false,
        rate_multiplier: 2.0,
        agreed_terms: false,
        digits: String::new(),
        ticket: None,
        outcome: Some(Outcome::Abandoned),
        end_reason: "CANCEL".into(),
        repeat: false,
        answered_by: None,
        incident: None,
    };
    store.call_ended(&cdr).expect("end");
    assert_eq!(store.cdrs_between(None, None).expect("cdrs"), [cdr]);
}

pub(super) fn repeat_detection_through_the_store(s: &Subject) {
    let store = &*s.store;
    let repeat = |id: &str, caller: &str, at: &str| {
        store
            .call_started(&start(id, caller, at))
            .expect("start")
            .repeat
    };
    // Twice in a row within 30 minutes.
    assert!(!repeat("a1", "5551230001", "2026-11-28T03:00:00Z"));
    assert!(repeat("a2", "+1 555 123 0001", "2026-11-28T03:10:00Z"));
    // A different number in between breaks the run.
    assert!(!repeat("b1", "5559990000", "2026-11-28T03:12:00Z"));
    assert!(!repeat("a3", "5551230001", "2026-11-28T03:14:00Z"));
    // Outside the window.
    assert!(!repeat("a4", "5551230001", "2026-11-28T03:45:00Z"));
    // Anonymous callers never repeat, and they break a run too.
    assert!(!repeat("x1", "anonymous", "2026-11-28T03:46:00Z"));
    assert!(!repeat("x2", "anonymous", "2026-11-28T03:47:00Z"));
    assert!(!repeat("a5", "5551230001", "2026-11-28T03:48:00Z"));
    let flags: Vec<(String, bool)> = store
        .cdrs_between(None, None)
        .expect("cdrs")
        .into_iter()
        .map(|c| (c.call_id, c.repeat))
        .collect();
    let expect = [
        ("a1", false),
        ("a2", true),
        ("b1", false),
        ("a3", false),
        ("a4", false),
        ("x1", false),
        ("x2", false),
        ("a5", false),
    ];
    assert_eq!(flags, expect.map(|(id, r)| (id.to_string(), r)).to_vec());
    // callers: counted per number, and not for anonymous calls.
    let history = |id: &str, caller: &str| {
        store
            .call_started(&start(id, caller, "2026-11-28T05:00:00Z"))
            .expect("start")
            .history
            .map(|h| h.calls)
    };
    assert_eq!(history("a6", "5551230001"), Some(5));
    assert_eq!(history("b2", "5559990000"), Some(1));
    assert_eq!(history("x3", "anonymous"), None);
}

pub(super) fn agreed_recently_means_this_number_agreed_on_a_call_within_the_window(s: &Subject) {
    let store = &*s.store;
    let agreed_recently = |id: &str, caller: &str, at: &str| {
        store
            .call_started(&start(id, caller, at))
            .expect("start")
            .agreed_recently
    };
    let agree = |id: &str| {
        store
            .call_progress(id, &[CallFact::AgreedTerms(true)])
            .expect("agree")
    };
    assert!(!agreed_recently("a1", "5551230001", "2026-11-28T03:00:00Z"));
    // A repeat that never agreed (hung up in the greeting) carries nothing over.
    assert!(!agreed_recently("a2", "5551230001", "2026-11-28T03:05:00Z"));
    agree("a2");
    assert!(agreed_recently("a3", "5551230001", "2026-11-28T03:10:00Z"));
    // A second start for the same Call-ID answers as the first.
    assert!(agreed_recently("a3", "5551230001", "2026-11-28T03:10:00Z"));
    // Another number's agreement is not this one's.
    assert!(!agreed_recently("b1", "5559990000", "2026-11-28T03:12:00Z"));
    // 31 minutes after the agreeing call started: outside the 30-minute window.
    assert!(!agreed_recently("a4", "5551230001", "2026-11-28T03:36:00Z"));
    // Withheld numbers cannot be told apart: never.
    assert!(!agreed_recently("x1", "anonymous", "2026-11-28T03:40:00Z"));
    agree("x1");
    assert!(!agreed_recently("x2", "anonymous", "2026-11-28T03:41:00Z"));
}

pub(super) fn three_in_a_row_policy_and_history(s: &Subject) {
    let store = &*s.store;
    let policy = RepeatPolicy {
        times: 3,
        window: Duration::from_secs(600),
    };
    let go = |id: &str, at: &str| {
        let mut begin = start(id, "+15551230001", at);
        begin.repeat_rule = std::sync::Arc::new(policy);
        store.call_started(&begin).expect("start")
    };
    assert!(!go("c1", "2026-11-28T03:00:00Z").repeat);
    let second = go("c2", "2026-11-28T03:01:00Z");
    assert!(!second.repeat, "twice is not enough when times = 3");
    assert_eq!(
        second.history,
        Some(CallerHistory {
            first_seen: t("2026-11-28T03:00:00Z"),
            last_seen: t("2026-11-28T03:00:00Z"),
            calls: 1
        })
    );
    let third = go("c3", "2026-11-28T03:02:00Z");
    assert!(third.repeat);
    assert_eq!(third.calls_in_window, 3);
    assert_eq!(third.previous_calls.len(), 2);
    assert_eq!(
        third.previous_calls[0].started_at,
        t("2026-11-28T03:01:00Z")
    );
    // The same Call-ID again (a retransmitted INVITE): same answer, no second row, no count.
    assert!(go("c3", "2026-11-28T03:02:00Z").repeat);
    assert_eq!(store.cdrs_between(None, None).expect("cdrs").len(), 3);
    let fourth = go("c4", "2026-11-28T03:03:00Z");
    assert_eq!(fourth.history.map(|h| h.calls), Some(3));
}

pub(super) fn calls_in_window_counts_every_call_not_only_the_rules_lookback(s: &Subject) {
    let store = &*s.store;
    let go =
        |id: &str, who: &str, at: &str| store.call_started(&start(id, who, at)).expect("start");
    assert_eq!(
        go("a", "+15551230001", "2026-11-28T03:00:00Z").calls_in_window,
        1
    );
    assert_eq!(
        go("b", "+15551230001", "2026-11-28T03:01:00Z").calls_in_window,
        2
    );
    let third = go("c", "+15551230001", "2026-11-28T03:02:00Z");
    assert!(third.repeat);
    assert_eq!(third.calls_in_window, 3);
    // Another number in between breaks "in a row" but not the count in the window.
    assert_eq!(
        go("d", "+15559990000", "2026-11-28T03:03:00Z").calls_in_window,
        1
    );
    let fifth = go("e", "+15551230001", "2026-11-28T03:04:00Z");
    assert!(!fifth.repeat);
    assert_eq!(fifth.calls_in_window, 4);
    // Calls older than the window (30 min) drop out; a retransmitted start answers the same.
    assert_eq!(
        go("f", "+15551230001", "2026-11-28T03:31:30Z").calls_in_window,
        3
    );
    assert_eq!(
        go("f", "+15551230001", "2026-11-28T03:31:30Z").calls_in_window,
        3
    );
}

pub(super) fn cdrs_between_is_half_open_and_ordered(s: &Subject) {
    let store = &*s.store;
    for (id, at) in [
        ("late", "2026-11-28T05:00:00Z"),
        ("early", "2026-11-28T03:00:00Z"),
        ("mid", "2026-11-28T04:00:00Z"),
    ] {
        store
            .call_started(&start(id, &format!("55512300{}", id.len()), at))
            .expect("start");
    }
    let ids = |from: Option<&str>, to: Option<&str>| -> Vec<String> {
        store
            .cdrs_between(from.map(t), to.map(t))
            .expect("cdrs")
            .into_iter()
            .map(|c| c.call_id)
            .collect()
    };
    assert_eq!(ids(None, None), ["early", "mid", "late"]);
    assert_eq!(
        ids(Some("2026-11-28T04:00:00Z"), Some("2026-11-28T05:00:00Z")),
        ["mid"]
    );
    assert_eq!(ids(Some("2026-11-28T03:30:00Z"), None), ["mid", "late"]);
    assert_eq!(
        ids(None, Some("2026-11-28T03:00:00Z")),
        Vec::<String>::new()
    );
    // Calls never ended are the open ones, oldest first.
    let open: Vec<String> = store
        .open_calls("node-a")
        .expect("open")
        .into_iter()
        .map(|c| c.call_id)
        .collect();
    assert_eq!(open, ["early", "mid", "late"]);
}

/// Two nodes on one database: a node's restart must not close the other's live calls, so each
/// sees only the calls it started (and calls from before calls knew their node, '' here).
pub(super) fn open_calls_are_the_asking_nodes_own(s: &Subject) {
    let store = &*s.store;
    for (id, node, at) in [
        ("on-a", "node-a", "2026-11-28T03:00:00Z"),
        ("on-b", "node-b", "2026-11-28T03:01:00Z"),
        ("legacy", "", "2026-11-28T03:02:00Z"),
    ] {
        let mut begin = start(id, "+15551230001", at);
        begin.node = node.into();
        store.call_started(&begin).expect("start");
    }
    let open = |node: &str| -> Vec<String> {
        let calls = store.open_calls(node).expect("open calls");
        calls.into_iter().map(|c| c.call_id).collect()
    };
    assert_eq!(open("node-a"), ["on-a", "legacy"]);
    assert_eq!(open("node-b"), ["on-b", "legacy"]);
    assert_eq!(open("node-c"), ["legacy"]);
}

pub(super) fn anonymous_caller_is_stored_as_normalised_text(s: &Subject) {
    let store = &*s.store;
    let mut begin = start("c1", "anonymous", "2026-11-28T03:00:00Z");
    begin.caller = CallerId::Anonymous;
    let out = store.call_started(&begin).expect("start");
    assert_eq!(out.history, None);
    assert_eq!(out.calls_in_window, 1);
    assert_eq!(cdr_of(store, "c1").caller, "anonymous");
}

pub(super) fn call_progress_is_kept_while_live_and_never_rewrites_the_final_record(s: &Subject) {
    let store = &*s.store;
    store
        .call_started(&start("c1", "+15551230001", "2026-11-28T03:00:00Z"))
        .expect("start");
    store
        .call_progress(
            "c1",
            &[
                CallFact::Answered(t("2026-11-28T03:00:01Z")),
                CallFact::Digits("5".into()),
                CallFact::Digits("51".into()),
                CallFact::AgreedTerms(true),
                CallFact::Ticket(Some("42".into())),
                CallFact::AnsweredBy("alice".into()),
                CallFact::Incident("fp9".into()),
            ],
        )
        .expect("progress");
    let open = store.open_calls("node-a").expect("open calls");
    assert_eq!(open.len(), 1);
    let live = &open[0];
    assert_eq!(live.answered_at, Some(t("2026-11-28T03:00:01Z")));
    assert_eq!(live.digits, "51");
    assert!(live.agreed_terms);
    assert_eq!(live.ticket.as_deref(), Some("42"));
    assert_eq!(live.answered_by.as_deref(), Some("alice"));
    assert_eq!(live.incident.as_deref(), Some("fp9"));
    assert_eq!(live.ended_at, None);
    store
        .call_progress("c1", &[CallFact::Ticket(None)])
        .expect("ticket cleared");
    assert_eq!(store.open_calls("node-a").expect("open")[0].ticket, None);

    let mut last = store.open_calls("node-a").expect("open")[0].clone();
    last.digits = "51#".into();
    last.ended_at = Some(t("2026-11-28T03:05:00Z"));
    last.outcome = Some(Outcome::Bridged);
    last.end_reason = "BYE from caller".into();
    store.call_ended(&last).expect("end");
    // A fact that arrives after the end changes nothing; one for an unknown call creates nothing.
    store
        .call_progress("c1", &[CallFact::Digits("999".into())])
        .expect("late fact");
    store
        .call_progress("nope", &[CallFact::AgreedTerms(true)])
        .expect("unknown call");
    assert_eq!(store.cdrs_between(None, None).expect("cdrs"), vec![last]);
}

/// Every store gives a voicemail's recording back byte for byte (SQLite from the file, the
/// PostgreSQL store from the database; what each does once the file is gone is in its own
/// tests), and nothing for a voicemail that does not exist.
pub(super) fn voicemail_audio_is_the_recordings_bytes(s: &Subject) {
    let store = &*s.store;
    let dir = TempDir::new("conformance-audio");
    let (vm, wav) = voicemail_with_wav(dir.path(), "c1", 1_000);
    let id = store
        .register_voicemail(&vm, t("2026-11-28T03:20:00Z"), &[])
        .expect("register");
    assert_eq!(store.voicemail_audio(id).expect("audio"), Some(wav.clone()));
    assert_eq!(
        s.reopen().voicemail_audio(id).expect("after a restart"),
        Some(wav)
    );
    assert_eq!(store.voicemail_audio(id + 1).expect("unknown"), None);
}
