//! Tests of group commit against real database files: concurrent writers share commits and
//! lose nothing, a failing write leaves the rest of its batch committed, and a failed commit
//! fails every write of its batch. To make a batch form deterministically, a test first holds
//! the writer inside one job, queues the writes it wants batched, then lets the writer go.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::schema::insert_event;
use super::test_support::*;
use super::*;

/// The writer, held inside a job until released.
struct Held {
    release: Sender<()>,
    thread: JoinHandle<()>,
}

impl Held {
    /// Let the writer go. Its batch (the holding job alone) commits, then the writer takes
    /// what queued meanwhile: a test reading `commits()` while held sees one commit more.
    fn release(self) {
        self.release.send(()).expect("release the writer");
        self.thread.join().expect("holding job");
    }
}

fn hold_writer(store: &Arc<SqliteStore>) -> Held {
    let (entered, has_entered) = channel();
    let (release, released) = channel::<()>();
    let store = store.clone();
    let thread = std::thread::spawn(move || {
        store
            .write("holding the writer", move |_| {
                let _ = entered.send(());
                let _ = released.recv();
                Ok(())
            })
            .expect("holding job");
    });
    has_entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the writer runs the holding job");
    Held { release, thread }
}

/// Wait until `n` jobs are queued behind the held writer.
fn wait_queued(store: &SqliteStore, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.queued() < n {
        assert!(Instant::now() < deadline, "only {} queued", store.queued());
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Run `f` on `store` in a new thread (its write then queues behind the held writer).
fn spawn<T: Send + 'static>(
    store: &Arc<SqliteStore>,
    f: impl FnOnce(&SqliteStore) -> T + Send + 'static,
) -> JoinHandle<T> {
    let store = store.clone();
    std::thread::spawn(move || f(&store))
}

fn count(dir: &std::path::Path, sql: &str) -> i64 {
    raw(dir).query_row(sql, [], |r| r.get(0)).expect("count")
}

#[test]
fn concurrent_writers_all_get_their_rows_with_fewer_commits_than_writes() {
    const THREADS: usize = 16;
    const CALLS: usize = 20;
    let dir = TempDir::new("group");
    let store = Arc::new(SqliteStore::open(dir.path()).expect("open"));
    // Every thread's first write queues behind the held writer, so at least that batch is
    // shared even on a machine fast enough to commit each write before the next arrives.
    let held = hold_writer(&store);
    let workers: Vec<_> = (0..THREADS)
        .map(|n| {
            spawn(&store, move |store| {
                for i in 0..CALLS {
                    let id = format!("t{n}-c{i}");
                    let caller = format!("55512{n:02}{i:03}");
                    let out = store
                        .call_started(&start(&id, &caller, "2026-11-28T03:00:00Z"))
                        .expect("start");
                    assert!(!out.repeat, "{id}");
                    store
                        .enqueue(&event("call_started", Some(&id), "2026-11-28T03:00:00Z"))
                        .expect("enqueue");
                    let mut cdr = store
                        .cdrs_between(None, None)
                        .expect("read")
                        .into_iter()
                        .find(|c| c.call_id == id)
                        .expect("a returned write is visible to reads");
                    cdr.outcome = Some(Outcome::Abandoned);
                    store.call_ended(&cdr).expect("end");
                }
            })
        })
        .collect();
    wait_queued(&store, THREADS);
    let commits_before = store.commits();
    held.release();
    for w in workers {
        w.join().expect("worker");
    }
    let writes = (THREADS * CALLS * 3) as u64;
    let commits = store.commits() - commits_before;
    eprintln!("{writes} writes in {commits} commits");
    assert!(commits < writes, "{commits} commits for {writes} writes");
    let total = (THREADS * CALLS) as i64;
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM calls"), total);
    assert_eq!(
        count(
            dir.path(),
            "SELECT COUNT(*) FROM calls WHERE outcome = 'abandoned'"
        ),
        total
    );
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM callers"), total);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM outbox"), total);
}

#[test]
fn a_failing_write_loses_nothing_else_in_its_batch() {
    let dir = TempDir::new("batch-fail");
    let store = Arc::new(SqliteStore::open(dir.path()).expect("open"));
    let held = hold_writer(&store);
    let good = spawn(&store, |s| {
        s.enqueue(&event("call_started", Some("c1"), "2026-11-28T03:00:00Z"))
    });
    // Writes a row, then fails: its row must be rolled back with it.
    let bad = spawn(&store, |s| {
        s.write("writing half a job", |c| {
            c.execute(
                "INSERT INTO outbox (event_type, target, payload, created_at, next_attempt_at) \
                 VALUES ('half', 'default', '{}', 0, 0)",
                [],
            )?;
            c.execute("INSERT INTO calls (call_id) VALUES ('no caller')", [])?;
            Ok(())
        })
    });
    let panics = spawn(&store, |s| {
        s.write("panicking", |_| -> Result<(), _> {
            panic!("a bug in one write")
        })
    });
    let also_good = spawn(&store, |s| {
        s.call_started(&start("c2", "5551230002", "2026-11-28T03:01:00Z"))
    });
    wait_queued(&store, 4);
    let commits_before = store.commits();
    held.release();
    let good = good.join().expect("thread").expect("good write");
    let bad = bad.join().expect("thread").expect_err("failing write");
    let panics = panics.join().expect("thread").expect_err("panicking write");
    also_good.join().expect("thread").expect("other good write");
    assert_eq!(
        store.commits() - commits_before,
        2,
        "the holding job's commit, then one for the batch"
    );
    assert!(
        bad.to_string().contains("NOT NULL constraint failed"),
        "{bad}"
    );
    assert!(panics.to_string().contains("panicked"), "{panics}");
    let events: Vec<(i64, String)> = outbox_events(dir.path());
    assert_eq!(events, [(good, "call_started".into())]);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM calls"), 1);
    // The writer survived the panic.
    store
        .enqueue(&event("call_ended", Some("c1"), "2026-11-28T03:02:00Z"))
        .expect("later write");
}

#[test]
fn a_write_that_loses_the_transaction_makes_the_earlier_ones_run_again() {
    // SQLite may roll back the whole transaction when a statement fails (full disk, I/O
    // error); a job that runs ROLLBACK itself stands in for that.
    let dir = TempDir::new("batch-lost");
    let store = Arc::new(SqliteStore::open(dir.path()).expect("open"));
    let held = hold_writer(&store);
    let runs = Arc::new(AtomicUsize::new(0));
    let first = {
        let runs = runs.clone();
        spawn(&store, move |s| {
            s.write("the first job", move |c| {
                runs.fetch_add(1, Ordering::SeqCst);
                insert_event(c, &event("first", Some("c1"), "2026-11-28T03:00:00Z"))
            })
        })
    };
    wait_queued(&store, 1);
    let loser = spawn(&store, |s| {
        s.write("losing the transaction", |c| -> Result<(), _> {
            c.execute_batch("ROLLBACK")?;
            Err(StoreError::NoSuchOutboxRow(0).into())
        })
    });
    wait_queued(&store, 2);
    let last = spawn(&store, |s| {
        s.enqueue(&event("last", None, "2026-11-28T03:00:01Z"))
    });
    wait_queued(&store, 3);
    let commits_before = store.commits();
    held.release();
    let first = first.join().expect("thread").expect("first write");
    loser.join().expect("thread").expect_err("losing write");
    let last = last.join().expect("thread").expect("last write");
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the first job ran again");
    assert_eq!(
        store.commits() - commits_before,
        2,
        "holding job, then the batch"
    );
    let pending = store
        .pending_outbox(t("2026-11-28T04:00:00Z"), 10)
        .expect("read");
    let got: Vec<_> = pending
        .iter()
        .map(|r| (r.id, r.event.kind.as_str()))
        .collect();
    assert_eq!(got, [(first, "first"), (last, "last")]);
}

#[test]
fn a_failed_commit_fails_every_write_of_its_batch() {
    // A deferred foreign key is checked at COMMIT, so the commit fails the way it does on a
    // full disk, after every job of the batch has succeeded.
    let dir = TempDir::new("commit-fail");
    let store = Arc::new(SqliteStore::open(dir.path()).expect("open"));
    store
        .write("creating a test table", |c| {
            Ok(c.execute_batch(
                "CREATE TABLE dangling (call INTEGER REFERENCES calls (id) \
                 DEFERRABLE INITIALLY DEFERRED)",
            )?)
        })
        .expect("setup");
    let held = hold_writer(&store);
    let queued = spawn(&store, |s| {
        s.enqueue(&event("call_started", Some("c1"), "2026-11-28T03:00:00Z"))
    });
    let dangling = spawn(&store, |s| {
        s.write("inserting a dangling reference", |c| {
            Ok(c.execute("INSERT INTO dangling VALUES (999)", [])?)
        })
    });
    wait_queued(&store, 2);
    let commits_before = store.commits();
    held.release();
    let queued = queued.join().expect("thread").expect_err("not durable");
    dangling.join().expect("thread").expect_err("not durable");
    assert!(queued.to_string().contains("queueing an event"), "{queued}");
    assert!(queued.to_string().contains("FOREIGN KEY"), "{queued}");
    assert_eq!(
        store.commits() - commits_before,
        1,
        "only the holding job's"
    );
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM outbox"), 0);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM dangling"), 0);
    // The failed transaction was rolled back, not left open under the next batch.
    let id = store
        .enqueue(&event("call_started", Some("c2"), "2026-11-28T03:00:01Z"))
        .expect("next write");
    assert_eq!(
        count(dir.path(), "SELECT COUNT(*) FROM outbox"),
        1,
        "row {id} committed alone"
    );
}

#[test]
fn dropping_the_store_finishes_the_writer_and_closes_the_database() {
    let dir = TempDir::new("drop");
    let store = SqliteStore::open(dir.path()).expect("open");
    store
        .call_started(&start("c1", "5551230001", "2026-11-28T03:00:00Z"))
        .expect("start");
    assert!(store.commits() >= 1);
    drop(store);
    // The writer thread closed the last connection, which folds the WAL into the database
    // and removes it; a thread still running would keep it.
    assert!(!dir.path().join(format!("{DB_FILE}-wal")).exists());
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM calls"), 1);
}
