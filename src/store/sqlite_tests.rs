//! Tests of what only the SQLite store has, against real database files in temp directories:
//! opening and migrations, file and disk errors, its query plans, two connections racing. The
//! behaviour every store shares is in `conformance*.rs`, run on SQLite and PostgreSQL alike. Assertions read rows back through a
//! second, plain connection where it matters, so they check what is on disk.

use std::path::Path;
use std::sync::{Arc, Barrier};

use jiff::Timestamp;

use super::test_support::*;
use super::*;

#[test]
fn open_creates_wal_database_with_schema_and_reopens_idempotently() {
    let dir = TempDir::new("open");
    let data = dir.path().join("nested/data");
    {
        let store = SqliteStore::open(&data).expect("open");
        assert_eq!(store.path(), data.join("ivr.db"));
        store
            .call_started(&start("c1", "5551230001", "2026-11-28T03:00:00Z"))
            .expect("call");
    }
    let conn = raw(&data);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
    let versions = || -> Vec<(i64, String)> {
        let mut stmt = conn
            .prepare("SELECT version, name FROM schema_version ORDER BY version")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(
        versions(),
        [
            (1, "init".to_string()),
            (2, "answered_by".to_string()),
            (3, "no_message_outcomes".to_string()),
            (4, "incidents".to_string()),
            (5, "transcripts".to_string()),
            (6, "calls_by_caller".to_string()),
            (7, "calls_node".to_string()),
            (8, "registrations".to_string())
        ]
    );
    // Opening again applies nothing and keeps the data. Callers hold it as `Arc<dyn Store>`.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&data).expect("reopen"));
    assert_eq!(
        versions(),
        [
            (1, "init".to_string()),
            (2, "answered_by".to_string()),
            (3, "no_message_outcomes".to_string()),
            (4, "incidents".to_string()),
            (5, "transcripts".to_string()),
            (6, "calls_by_caller".to_string()),
            (7, "calls_node".to_string()),
            (8, "registrations".to_string())
        ]
    );
    let cdrs = store.cdrs_between(None, None).expect("cdrs");
    assert_eq!(cdrs.len(), 1);
    assert_eq!(cdrs[0].caller, "+15551230001");
}

#[test]
fn newer_schema_is_refused() {
    let dir = TempDir::new("too-new");
    drop(SqliteStore::open(dir.path()).expect("open"));
    raw(dir.path())
        .execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (99, 'future', 0)",
            [],
        )
        .expect("insert");
    let err = SqliteStore::open(dir.path())
        .err()
        .expect("newer schema refused");
    assert!(
        matches!(
            err,
            StoreError::TooNew {
                found: 99,
                known: 8,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade ivr"), "{err}");
}

#[test]
fn open_existing_names_the_missing_database() {
    let dir = TempDir::new("missing");
    let err = SqliteStore::open_existing(dir.path())
        .err()
        .expect("no database");
    assert!(matches!(err, StoreError::Missing { .. }));
    assert!(
        err.to_string().contains("ivr.db not found"),
        "message: {err}"
    );
    assert!(
        !dir.path().join(DB_FILE).exists(),
        "no empty database left behind"
    );
}

/// Whether this process can write into a directory it has made read-only (root can).
fn root_ignores_permissions(dir: &Path) -> bool {
    std::fs::write(dir.join("root-probe"), b"x").is_ok()
}

#[test]
fn read_only_data_directory_is_named_in_the_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("ro");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    if root_ignores_permissions(&data) {
        // Running as root (CAP_DAC_OVERRIDE): mode bits do not stop writes. tests/line/store_cli.rs
        // covers this case with a real read-only bind mount instead.
        eprintln!("note: skipping the chmod read-only case: this process can write anyway (root)");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        return;
    }
    let err = SqliteStore::open(&data).err().expect("read-only dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod back");
    assert!(err.is_disk_problem(), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("data directory {} is read-only: ", data.display())),
        "message: {err}"
    );
    // A data directory that cannot even be created.
    let parent = dir.path().join("locked");
    std::fs::create_dir_all(&parent).expect("mkdir");
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let err = SqliteStore::open(&parent.join("data"))
        .err()
        .expect("no mkdir");
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).expect("chmod back");
    assert!(
        err.to_string().contains("is read-only: cannot create it"),
        "{err}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn full_disk_at_open_is_named_in_the_error() {
    // A database file that is /dev/full: every write fails with ENOSPC, as on a full disk.
    let dir = TempDir::new("devfull");
    std::os::unix::fs::symlink("/dev/full", dir.path().join(DB_FILE)).expect("symlink");
    let err = SqliteStore::open(dir.path()).err().expect("full disk");
    assert!(matches!(err, StoreError::Full { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "data directory {} is full (no space left on the device): ",
            dir.path().display()
        )),
        "message: {err}"
    );
}

/// Migration 3 rebuilds `calls` to allow the outcomes `no_message` and `voicemail_failed`: a
/// version-2 database keeps every row and id, and then stores the new outcomes.
#[test]
fn a_version_2_database_keeps_its_calls_and_takes_the_new_outcomes() {
    let dir = TempDir::new("migrate-3");
    std::fs::create_dir_all(dir.path()).expect("mkdir");
    {
        let conn = raw(dir.path());
        conn.execute_batch(include_str!("migrations/0001_init.sql"))
            .expect("v1");
        conn.execute_batch(include_str!("migrations/0002_answered_by.sql"))
            .expect("v2");
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
             applied_at INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (1, 'init', 0), (2, 'answered_by', 0);
             INSERT INTO calls (id, call_id, caller, caller_raw, called, started_at, ended_at,
                                after_hours, agreement, rate_multiplier, outcome, answered_by)
                 VALUES (7, 'old', '+15551230001', '+15551230001', '100', 1, 2, 1, 0, 2.0,
                         'bridged', 'alice');",
        )
        .expect("a version-2 row");
        let refused = conn.execute(
            "UPDATE calls SET outcome = 'no_message' WHERE call_id = 'old'",
            [],
        );
        assert!(refused.is_err(), "version 2 refuses the new outcome");
    }
    let store = SqliteStore::open(dir.path()).expect("migrate");
    let old = store.cdrs_between(None, None).expect("cdrs");
    assert_eq!(old.len(), 1);
    assert_eq!(
        (
            old[0].call_id.as_str(),
            old[0].outcome,
            old[0].answered_by.as_deref()
        ),
        ("old", Some(Outcome::Bridged), Some("alice"))
    );
    for (call_id, outcome) in [
        ("empty", Outcome::NoMessage),
        ("failed", Outcome::VoicemailFailed),
    ] {
        let begin = start(call_id, "5551230002", "2026-11-28T03:00:00Z");
        store.call_started(&begin).expect("start");
        let cdr = Cdr {
            call_id: call_id.into(),
            caller: "+15551230002".into(),
            caller_raw: "5551230002".into(),
            called: "100".into(),
            client: None,
            started_at: begin.started_at,
            answered_at: None,
            ended_at: Some(t("2026-11-28T03:01:00Z")),
            talk_seconds: 0,
            after_hours: true,
            agreement: false,
            rate_multiplier: 2.0,
            agreed_terms: false,
            digits: String::new(),
            ticket: None,
            outcome: Some(outcome),
            end_reason: "BYE from caller".into(),
            repeat: false,
            answered_by: None,
            incident: None,
        };
        store.call_ended(&cdr).expect("end");
    }
    let outcomes: Vec<(String, Option<Outcome>)> = store
        .cdrs_between(None, None)
        .expect("cdrs")
        .into_iter()
        .map(|c| (c.call_id, c.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("old".to_string(), Some(Outcome::Bridged)),
            ("empty".to_string(), Some(Outcome::NoMessage)),
            ("failed".to_string(), Some(Outcome::VoicemailFailed)),
        ]
    );
    // Ids go on after the old ones (AUTOINCREMENT survives the rebuild).
    let next_id: i64 = raw(dir.path())
        .query_row("SELECT id FROM calls WHERE call_id = 'empty'", [], |r| {
            r.get(0)
        })
        .expect("id");
    assert_eq!(next_id, 8);
}

/// The repeat-caller reads at a call's start (calls_since, agreed_since) search one caller's
/// calls by index, not every earlier row: their cost must not grow with the line's history.
#[test]
fn the_reads_at_a_calls_start_use_the_caller_index() {
    let dir = TempDir::new("caller-index");
    let _store = SqliteStore::open(dir.path()).expect("open");
    let conn = raw(dir.path());
    for sql in [
        super::schema::CALLS_SINCE_SQL,
        super::schema::AGREED_SINCE_SQL,
    ] {
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("prepare")
            .query_map(rusqlite::params!["+15551230001", 100, 0], |r| r.get(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert!(
            plan.iter().any(|p| p.contains("calls_caller_started")),
            "{sql}: {plan:?}"
        );
    }
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

/// One node: the audio is the file, read where the row says; once the file is gone there is
/// none (`None`, and the admin API says the file is missing), while the voicemail stays listed.
#[test]
fn voicemail_audio_is_the_file_and_none_once_it_is_gone() {
    let dir = TempDir::new("sqlite-audio");
    let store = SqliteStore::open(dir.path()).expect("open");
    let (vm, wav) = voicemail_with_wav(dir.path(), "c1", 500);
    let id = store
        .register_voicemail(&vm, t("2026-11-28T03:20:00Z"), &[])
        .expect("register");
    assert_eq!(store.voicemail_audio(id).expect("audio"), Some(wav));
    std::fs::remove_file(&vm.path).expect("rm");
    assert_eq!(store.voicemail_audio(id).expect("audio"), None);
    assert!(store.voicemail(id).expect("vm").is_some());
    // A path that is there but cannot be read as a file is an error naming it.
    std::fs::create_dir(&vm.path).expect("a directory where the file was");
    let err = store
        .voicemail_audio(id)
        .expect_err("a directory is not a recording");
    assert!(
        matches!(&err, StoreError::Audio { path, .. } if *path == vm.path),
        "{err}"
    );
}
