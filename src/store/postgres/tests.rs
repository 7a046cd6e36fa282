//! The PostgreSQL store against a real server (a throw-away cluster, see `test_cluster.rs`):
//! the shared conformance suite, migrations, and the races two nodes can run into.

use std::sync::{Arc, Barrier};

use jiff::Timestamp;

use super::test_cluster::database;
use super::*;
use crate::store::conformance::{Subject, conformance_tests};
use crate::store::test_support::{event, start, t, voicemail};
use crate::store::*;

fn fresh() -> Option<Subject> {
    let url = database()?;
    let store = PgStore::connect(&url).expect("connect");
    let reopen = move || -> Box<dyn Store> { Box::new(PgStore::connect(&url).expect("reconnect")) };
    Some(Subject::new(Box::new(store), reopen, ()))
}

conformance_tests!(fresh);

/// A plain client on the same database, to see what is really stored.
fn raw(url: &str) -> Client {
    Client::connect(url, NoTls).expect("raw connection")
}

fn versions(url: &str) -> Vec<(i64, String)> {
    raw(url)
        .query(
            "SELECT version, name FROM schema_migrations ORDER BY version",
            &[],
        )
        .expect("versions")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn connect_migrates_once_and_reconnects_idempotently() {
    let Some(url) = database() else { return };
    {
        let store = PgStore::connect(&url).expect("connect");
        store
            .call_started(&start("c1", "5551230001", "2026-11-28T03:00:00Z"))
            .expect("call");
    }
    assert_eq!(versions(&url), expected_versions());
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(&url).expect("reconnect"));
    assert_eq!(versions(&url), expected_versions());
    let cdrs = store.cdrs_between(None, None).expect("cdrs");
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0].caller, "+15551230001");
}

#[test]
fn nodes_starting_together_migrate_once() {
    let Some(url) = database() else { return };
    let barrier = Arc::new(Barrier::new(4));
    let nodes: Vec<_> = (0..4)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                PgStore::connect(&url).map(|_| ())
            })
        })
        .collect();
    for node in nodes {
        if let Err(e) = node.join().expect("node thread") {
            panic!("a node failed to start: {e}");
        }
    }
    assert_eq!(versions(&url), expected_versions());
}

#[test]
fn newer_schema_is_refused() {
    let Some(url) = database() else { return };
    drop(PgStore::connect(&url).expect("connect"));
    raw(&url)
        .execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)",
            &[],
        )
        .expect("insert");
    let err = PgStore::connect(&url).err().expect("newer schema refused");
    assert!(
        matches!(
            err,
            StoreError::TooNew {
                found: 99,
                known: 4,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade ivr"), "{err}");
}

#[test]
fn an_unreachable_server_is_named_without_the_password() {
    // A port nothing listens on (bound and released just now).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port();
    let err = PgStore::connect(&format!(
        "postgresql://ivr:secret@127.0.0.1:{port}/ivr?connect_timeout=2"
    ))
    .err()
    .expect("nothing listens");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(
        text.starts_with(&format!(
            "cannot open the database postgresql://ivr@127.0.0.1:{port}/ivr: "
        )),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
    let err = PgStore::connect("postgresql://[bad")
        .err()
        .expect("bad URL");
    assert!(err.to_string().contains("not valid"), "{err}");
}

#[test]
fn simultaneous_calls_on_two_nodes_cannot_both_miss_the_repeat() {
    let Some(url) = database() else { return };
    let a = Arc::new(PgStore::connect(&url).expect("node a"));
    let b = Arc::new(PgStore::connect(&url).expect("node b"));
    for round in 0..50 {
        let barrier = Arc::new(Barrier::new(2));
        // An hour apart: each round's pair is alone in its window.
        let at = Timestamp::from_second(1_800_000_000 + round * 3600).expect("time");
        let spawn = |store: Arc<PgStore>, id: String| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut s = start(&id, "+15551230001", "2026-11-28T03:00:00Z");
                s.started_at = at;
                barrier.wait();
                store.call_started(&s).expect("start")
            })
        };
        let x = spawn(a.clone(), format!("a{round}"));
        let y = spawn(b.clone(), format!("b{round}"));
        let (x, y) = (x.join().expect("a"), y.join().expect("b"));
        assert!(
            x.repeat ^ y.repeat,
            "round {round}: exactly one of two calls is the repeat ({}, {})",
            x.repeat,
            y.repeat
        );
        let mut counts = [x.calls_in_window, y.calls_in_window];
        counts.sort();
        assert_eq!(counts, [1, 2], "round {round}: the second counts the first");
    }
    let calls: i64 = raw(&url)
        .query_one("SELECT calls FROM callers", &[])
        .expect("callers")
        .get(0);
    assert_eq!(calls, 100, "every call counted once");
}

#[test]
fn the_same_call_started_on_two_nodes_at_once_is_one_call() {
    let Some(url) = database() else { return };
    let a = Arc::new(PgStore::connect(&url).expect("node a"));
    let b = Arc::new(PgStore::connect(&url).expect("node b"));
    for round in 0..20 {
        for caller in ["+15551230001", "anonymous"] {
            let barrier = Arc::new(Barrier::new(2));
            let id = format!("{caller}-{round}");
            let spawn = |store: Arc<PgStore>| {
                let (barrier, id) = (barrier.clone(), id.clone());
                std::thread::spawn(move || {
                    let s = start(&id, caller, "2026-11-28T03:00:00Z");
                    barrier.wait();
                    store.call_started(&s).expect("start")
                })
            };
            let (x, y) = (spawn(a.clone()), spawn(b.clone()));
            let (x, y) = (x.join().expect("a"), y.join().expect("b"));
            // `history` is left out: a replayed start reads the caller's row as it is now,
            // counting the first start (SqliteStore does the same).
            let answer = |o: CallStartOutcome| {
                (
                    o.repeat,
                    o.previous_calls,
                    o.calls_in_window,
                    o.agreed_recently,
                )
            };
            assert_eq!(
                answer(x),
                answer(y),
                "round {round}, {caller}: both answered as one call"
            );
        }
    }
    let rows: i64 = raw(&url)
        .query_one("SELECT COUNT(*) FROM calls", &[])
        .expect("count")
        .get(0);
    assert_eq!(rows, 40);
}

#[test]
fn simultaneous_escalation_on_two_nodes_has_exactly_one_winner() {
    let Some(url) = database() else { return };
    let a = Arc::new(PgStore::connect(&url).expect("node a"));
    let b = Arc::new(PgStore::connect(&url).expect("node b"));
    let rounds = 30;
    for round in 0..rounds {
        let id = a
            .add_voicemail(
                &voicemail(&format!("c{round}"), "+15551230001", "2026-11-28T03:00:00Z"),
                t("2026-11-28T03:20:00Z"),
            )
            .expect("vm");
        let barrier = Arc::new(Barrier::new(2));
        let spawn = |store: Arc<PgStore>| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let ev = event("callback_overdue", Some("c"), "2026-11-28T03:20:00Z");
                barrier.wait();
                store
                    .escalate(id, t("2026-11-28T03:20:00Z"), &ev)
                    .expect("escalate")
            })
        };
        let (x, y) = (spawn(a.clone()), spawn(b.clone()));
        let (x, y) = (x.join().expect("a"), y.join().expect("b"));
        assert!(
            x.is_some() ^ y.is_some(),
            "round {round}: exactly one node escalates ({x:?}, {y:?})"
        );
    }
    let queued: i64 = raw(&url)
        .query_one(
            "SELECT COUNT(*) FROM outbox WHERE event_type = 'callback_overdue'",
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(queued, rounds, "one event per escalated voicemail");
}

#[test]
fn simultaneous_acknowledgements_on_two_nodes_have_one_acknowledger() {
    let Some(url) = database() else { return };
    let a = Arc::new(PgStore::connect(&url).expect("node a"));
    let b = Arc::new(PgStore::connect(&url).expect("node b"));
    for round in 0..30 {
        let id = a
            .add_voicemail(
                &voicemail(&format!("c{round}"), "+15551230001", "2026-11-28T03:00:00Z"),
                t("2026-11-28T03:20:00Z"),
            )
            .expect("vm");
        let barrier = Arc::new(Barrier::new(2));
        let spawn = |store: Arc<PgStore>, who: &'static str| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                store
                    .ack_voicemail(id, who, t("2026-11-28T03:10:00Z"))
                    .expect("ack")
            })
        };
        let (x, y) = (spawn(a.clone(), "alice"), spawn(b.clone(), "bob"));
        let (x, y) = (x.join().expect("a"), y.join().expect("b"));
        let acked = [&x, &y]
            .iter()
            .filter(|o| ***o == AckOutcome::Acked)
            .count();
        assert_eq!(acked, 1, "round {round}: {x:?}, {y:?}");
        let stored = a.voicemail(id).expect("vm").expect("exists");
        let loser = if x == AckOutcome::Acked { &y } else { &x };
        assert_eq!(
            *loser,
            AckOutcome::AlreadyAcked {
                by: stored.acked_by.clone().expect("acked"),
                at: t("2026-11-28T03:10:00Z")
            },
            "round {round}: the other is told who did"
        );
    }
}

/// The server holds the store as `Arc<dyn Store>` in async code, and the last clone may go
/// there (at shutdown). Each pooled client runs a small runtime of its own, which must not be
/// dropped on a runtime thread.
#[test]
fn a_store_dropped_in_async_code_closes_quietly() {
    let Some(url) = database() else { return };
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(&url).expect("connect"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let used = store.clone();
    std::thread::spawn(move || used.next_sla_due().expect("read"))
        .join()
        .expect("a pooled connection in use");
    rt.block_on(async move {
        tokio::spawn(async move { drop(store) })
            .await
            .expect("dropped on a runtime worker without panicking");
    });
}

/// A transaction that holds a lock for long (a node hung inside a call start) makes the others
/// fail `Busy` after the lock timeout instead of waiting for ever, as SQLite's busy timeout
/// does. The URL's `options` may set the timeout (here short, for the test).
#[test]
fn a_lock_held_too_long_fails_busy() {
    let Some(url) = database() else { return };
    let store =
        PgStore::connect(&format!("{url}?options=-c%20lock_timeout%3D300ms")).expect("connect");
    let mut hung = raw(&url);
    let mut tx = hung.transaction().expect("begin");
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext('+15551230001'))",
        &[&super::migrate::LOCK_CALLER],
    )
    .expect("the hung node's lock");
    let err = store
        .call_started(&start("c1", "+15551230001", "2026-11-28T03:00:00Z"))
        .expect_err("busy");
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    assert!(err.to_string().contains("long transaction"), "{err}");
    // Another number is not held up.
    store
        .call_started(&start("c2", "+15559990000", "2026-11-28T03:00:00Z"))
        .expect("another number");
    tx.rollback().expect("the hung node goes away");
    store
        .call_started(&start("c1", "+15551230001", "2026-11-28T03:00:00Z"))
        .expect("the number is free again");
}

/// Connections the server closed (a restart, a failover, an admin's pg_terminate_backend) are
/// replaced: the next operation works.
#[test]
fn connections_the_server_closed_are_replaced() {
    let Some(url) = database() else { return };
    let store = PgStore::connect(&url).expect("connect");
    store
        .call_started(&start("c1", "+15551230001", "2026-11-28T03:00:00Z"))
        .expect("before");
    let killed: i64 = raw(&url)
        .query_one(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .expect("terminate")
        .get(0);
    assert!(killed >= 1, "the store's connection was there to close");
    store
        .call_started(&start("c2", "+15551230001", "2026-11-28T03:01:00Z"))
        .expect("after");
    assert_eq!(store.cdrs_between(None, None).expect("cdrs").len(), 2);
}

/// Every migration's (version, name), as a migrated database records them.
#[test]
fn voicemail_audio_outlives_the_recording_nodes_file() {
    let Some(url) = database() else { return };
    let dir = crate::store::test_support::TempDir::new("pg-audio");
    let (vm, wav) = crate::store::test_support::voicemail_with_wav(dir.path(), "c1", 60_000);
    let store = PgStore::connect(&url).expect("connect");
    let id = store
        .register_voicemail(&vm, t("2026-11-28T03:20:00Z"), &[])
        .expect("register");
    // The node that recorded it is gone with its disk; another node asks.
    std::fs::remove_file(&vm.path).expect("rm");
    let other = PgStore::connect(&url).expect("another node");
    assert_eq!(other.voicemail_audio(id).expect("audio"), Some(wav.clone()));
    let stored: Vec<u8> = raw(&url)
        .query_one(
            "SELECT wav FROM voicemail_audio WHERE voicemail_id = $1",
            &[&id],
        )
        .expect("audio row")
        .get(0);
    assert_eq!(
        stored.len(),
        wav.len(),
        "60 s at 8 kHz 16-bit, with its header"
    );
    // A recording that was already gone when it was registered: the callback promise is still
    // kept (row, timer), with no audio anywhere.
    let lost = voicemail("c2", "+15551230002", "2026-11-28T03:01:00Z");
    let lost_id = other
        .register_voicemail(&lost, t("2026-11-28T03:21:00Z"), &[])
        .expect("register without a file");
    assert_eq!(other.voicemail_audio(lost_id).expect("audio"), None);
    assert_eq!(
        other.voicemail(lost_id).expect("vm").map(|v| v.sla_state),
        Some(SlaState::Pending)
    );
}

fn expected_versions() -> Vec<(i64, String)> {
    super::migrate::MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name.to_string()))
        .collect()
}
