//! Tests of repeat detection, `agreed_recently` and `calls_in_window` through the SQLite store,
//! on real database files (moved out of `sqlite_tests.rs`, which had grown past 600 lines).

use std::sync::{Arc, Barrier};
use std::time::Duration;

use jiff::Timestamp;

use super::test_support::*;
use super::*;
use crate::repeat::RepeatPolicy;

#[test]
fn repeat_detection_through_the_store() {
    let dir = TempDir::new("repeat");
    let store = SqliteStore::open(dir.path()).expect("open");
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

    let flags: Vec<(String, bool)> = {
        let conn = raw(dir.path());
        let mut stmt = conn
            .prepare("SELECT call_id, repeat FROM calls ORDER BY id")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
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
    assert_eq!(
        flags,
        expect.map(|(id, r)| (id.to_string(), r)).to_vec(),
        "repeat column on disk"
    );
    // callers: one row per number (none for anonymous), with counts.
    let callers: Vec<(String, i64)> = {
        let conn = raw(dir.path());
        let mut stmt = conn
            .prepare("SELECT number, calls FROM callers ORDER BY number")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(
        callers,
        [
            ("+15551230001".to_string(), 5),
            ("+15559990000".to_string(), 1)
        ]
    );
}

#[test]
fn agreed_recently_means_this_number_agreed_on_a_call_within_the_window() {
    let dir = TempDir::new("agreed");
    let store = SqliteStore::open(dir.path()).expect("open");
    let agreed_recently = |id: &str, caller: &str, at: &str| {
        store
            .call_started(&start(id, caller, at))
            .expect("start")
            .agreed_recently
    };
    // The column the flow's `agreed` variable fills, at the end of the call or as it happens.
    let agree = |id: &str| {
        let n = raw(dir.path())
            .execute("UPDATE calls SET agreed_terms = 1 WHERE call_id = ?1", [id])
            .expect("update");
        assert_eq!(n, 1, "{id} has a row");
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

#[test]
fn three_in_a_row_policy_and_history() {
    let dir = TempDir::new("repeat3");
    let store = SqliteStore::open(dir.path()).expect("open");
    let policy = RepeatPolicy {
        times: 3,
        window: Duration::from_secs(600),
    };
    let go = |id: &str, at: &str| {
        let mut s = start(id, "+15551230001", at);
        s.repeat_rule = std::sync::Arc::new(policy);
        store.call_started(&s).expect("start")
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
    // The same Call-ID again (a retransmitted INVITE reaching the shell twice): same answer,
    // no second row, no extra count.
    assert!(go("c3", "2026-11-28T03:02:00Z").repeat);
    let n: i64 = raw(dir.path())
        .query_row("SELECT calls FROM callers", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 3);
}

#[test]
fn calls_in_window_counts_every_call_not_only_the_rules_lookback() {
    // Default rule: twice in a row. The third call within the window is the third, not "2".
    let dir = TempDir::new("inwindow");
    let store = SqliteStore::open(dir.path()).expect("open");
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

#[test]
fn simultaneous_calls_from_two_connections_cannot_both_miss_the_repeat() {
    // Two stores on one file stand for two processes (or nodes) sharing the database.
    let dir = TempDir::new("race");
    let a = Arc::new(SqliteStore::open(dir.path()).expect("open a"));
    let b = Arc::new(SqliteStore::open(dir.path()).expect("open b"));
    for round in 0..20 {
        let barrier = Arc::new(Barrier::new(2));
        let at = Timestamp::from_second(1_800_000_000 + round * 3600).expect("time");
        let spawn = |store: Arc<SqliteStore>, id: String| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut s = start(&id, "+15551230001", "2026-11-28T03:00:00Z");
                s.started_at = at;
                barrier.wait();
                store.call_started(&s).expect("start").repeat
            })
        };
        let x = spawn(a.clone(), format!("a{round}"));
        let y = spawn(b.clone(), format!("b{round}"));
        let (x, y) = (x.join().expect("a"), y.join().expect("b"));
        assert!(
            x ^ y,
            "round {round}: exactly one of two calls is the repeat ({x}, {y})"
        );
    }
}
