//! Group commit: the SQLite store's one writer thread, which runs every write queued while the
//! previous commit was on disk in one transaction, so a batch of writes costs one fsync.
//!
//! A caller queues a [`Work`] closure and blocks until its answer. The writer takes up to
//! [`MAX_BATCH`] queued jobs, opens one `BEGIN IMMEDIATE` transaction, runs each job inside its
//! own `SAVEPOINT` (a failing job is rolled back to its savepoint and answered with its error
//! alone), commits, and only then answers the jobs that succeeded: a write returns `Ok` only
//! once it is durable. If the commit fails (a full disk), every job of the batch gets the error.
//!
//! There is no timer: the writer never waits to collect a batch. While one commit is syncing,
//! the next callers queue up, and the next batch is whatever arrived meanwhile; a lone write
//! under no load commits alone, with one fsync as before (plus a thread hand-off).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::StoreError;
use super::disk::classify;
use super::schema::Fail;

/// At most this many writes share one transaction. Enough to absorb thousands of writes per
/// second behind one fsync; the bound keeps one transaction (and the latency of its first
/// caller) short when a burst queues far more.
const MAX_BATCH: usize = 256;

/// One write, run by the writer thread inside the batch transaction. `Fn`, not `FnOnce`: if
/// SQLite rolls back the whole transaction (it may, for a full disk or an I/O error in another
/// job), the jobs that had succeeded lost their work with it and run again.
pub(super) type Work<T> = Box<dyn Fn(&Connection) -> Result<T, Fail> + Send>;

/// The writer thread and its queue. Dropping it lets the thread finish the queued jobs, then
/// waits for it to close its connection.
pub(super) struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// What callers and the writer thread share.
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or the store closes.
    ready: Condvar,
    commits: AtomicU64,
    /// Where each write's wait (queued until committed or failed) is observed, once set.
    latency: OnceLock<prometheus::Histogram>,
}

struct Queue {
    jobs: VecDeque<Box<dyn Job>>,
    /// False once the store is dropped or the writer has stopped: new writes are refused.
    open: bool,
}

/// Where the database is, to turn SQLite errors into [`StoreError`]s that name it.
struct Place {
    dir: PathBuf,
    path: PathBuf,
}

impl Place {
    fn error(&self, doing: &str, e: Fail) -> StoreError {
        match e {
            Fail::Sql(e) => classify(&self.dir, &self.path, doing, e),
            Fail::Store(e) => e,
        }
    }
}

impl Writer {
    /// Start the writer thread on `conn`, an open and configured connection.
    pub(super) fn start(
        conn: Connection,
        dir: PathBuf,
        path: PathBuf,
    ) -> Result<Writer, StoreError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                open: true,
            }),
            ready: Condvar::new(),
            commits: AtomicU64::new(0),
            latency: OnceLock::new(),
        });
        let place = Place {
            dir,
            path: path.clone(),
        };
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ivr-store-writer".into())
            .spawn(move || run(&conn, &place, &thread_shared))
            .map_err(|e| StoreError::Open {
                path,
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Writer {
            shared,
            thread: Some(thread),
        })
    }

    /// Queue `work` and wait until it is committed (its value) or has failed (its error).
    pub(super) fn write<T: Send + 'static>(
        &self,
        doing: &'static str,
        work: Work<T>,
    ) -> Result<T, StoreError> {
        let stopped = || StoreError::Database {
            doing: doing.to_string(),
            reason: "the store's writer thread has stopped".to_string(),
        };
        // Capacity 1: the writer answers each job exactly once and never waits on the caller.
        let (reply, answer) = sync_channel(1);
        let queued_at = std::time::Instant::now();
        {
            let mut queue = self.shared.lock();
            if !queue.open {
                return Err(stopped());
            }
            queue.jobs.push_back(Box::new(Pending {
                doing,
                work,
                value: None,
                reply,
            }));
        }
        self.shared.ready.notify_one();
        // A closed channel means the writer dropped the job unanswered: it stopped.
        let answer = answer.recv().unwrap_or_else(|_| Err(stopped()));
        if let Some(h) = self.shared.latency.get() {
            h.observe(queued_at.elapsed().as_secs_f64());
        }
        answer
    }

    /// Observe every later write's wait in `histogram` (the first histogram given stays).
    pub(super) fn time_writes(&self, histogram: prometheus::Histogram) {
        let _ = self.shared.latency.set(histogram);
    }

    /// Transactions committed so far.
    pub(super) fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Jobs waiting for the writer (tests use it to know a batch has formed).
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.shared.lock().jobs.len()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.lock().open = false;
        self.shared.ready.notify_one();
        if let Some(thread) = self.thread.take() {
            // The thread catches panics from jobs; one that still panicked has nothing more
            // to tell us, and its connection was closed by unwinding.
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding this lock (push, drain, flag), so a poisoned queue is
        // still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Refuses new writes and drops the queued ones (their callers get an error instead of
/// waiting forever) when the writer thread ends, by return or by panic.
struct CloseOnExit<'a>(&'a Shared);

impl Drop for CloseOnExit<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        queue.open = false;
        queue.jobs.clear();
    }
}

/// The writer thread: take whatever is queued, up to [`MAX_BATCH`], and commit it as one
/// batch; when the store closes, finish what is queued and return.
fn run(conn: &Connection, place: &Place, shared: &Shared) {
    let _close = CloseOnExit(shared);
    loop {
        let batch: Vec<Box<dyn Job>> = {
            let mut queue = shared.lock();
            while queue.jobs.is_empty() && queue.open {
                queue = shared
                    .ready
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if queue.jobs.is_empty() {
                return;
            }
            let n = queue.jobs.len().min(MAX_BATCH);
            queue.jobs.drain(..n).collect()
        };
        commit_batch(conn, place, &shared.commits, batch);
    }
}

/// Run `jobs` in one transaction and answer each; count the commit in `commits`.
fn commit_batch(
    conn: &Connection,
    place: &Place,
    commits: &AtomicU64,
    mut jobs: Vec<Box<dyn Job>>,
) {
    // Each pass runs the jobs still owed an answer. SQLite may roll back the whole transaction
    // when a statement fails (full disk, I/O error, busy): the jobs before the failed one lost
    // their work with it, so the pass starts again without the failed job, which has had its
    // answer. Every restart removes one job, so this ends.
    loop {
        if jobs.is_empty() {
            return;
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            fail_all(place, jobs, &e);
            return;
        }
        let mut done = Vec::with_capacity(jobs.len());
        let mut rest = jobs.into_iter();
        let mut lost = false;
        for mut job in rest.by_ref() {
            match run_in_savepoint(conn, job.as_mut()) {
                Ok(()) => done.push(job),
                Err(e) => {
                    let doing = job.doing();
                    job.fail(place.error(doing, e));
                    if conn.is_autocommit() {
                        lost = true;
                        break;
                    }
                }
            }
        }
        if !lost {
            commit(conn, place, commits, done);
            return;
        }
        done.extend(rest);
        jobs = done;
    }
}

/// Commit the open transaction, then answer `jobs`: each with its value, or all with the
/// commit's error (nothing of a failed commit is durable, so no job may report success).
fn commit(conn: &Connection, place: &Place, commits: &AtomicU64, jobs: Vec<Box<dyn Job>>) {
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            // Counted before answering, so a caller holding its answer sees its commit.
            commits.fetch_add(1, Ordering::Relaxed);
            for job in jobs {
                job.succeed();
            }
        }
        Err(e) => {
            // A failed COMMIT may leave the transaction open (SQLite then expects the
            // application to roll back); nothing of it may survive into a later batch.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            fail_all(place, jobs, &e);
        }
    }
}

/// Run one job inside a savepoint: released if the job succeeds, rolled back if it fails. If
/// the rollback itself fails, the whole transaction is rolled back (a half-done job must never
/// be committed); the caller sees that as a lost transaction.
fn run_in_savepoint(conn: &Connection, job: &mut dyn Job) -> Result<(), Fail> {
    conn.execute_batch("SAVEPOINT job")?;
    let result = job
        .run(conn)
        .and_then(|()| Ok(conn.execute_batch("RELEASE job")?));
    if result.is_err()
        && !conn.is_autocommit()
        && conn.execute_batch("ROLLBACK TO job; RELEASE job").is_err()
    {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

/// Answer every job with the same SQLite error.
fn fail_all(place: &Place, jobs: Vec<Box<dyn Job>>, e: &rusqlite::Error) {
    for job in jobs {
        let doing = job.doing();
        job.fail(place.error(doing, Fail::Sql(copy_error(e))));
    }
}

/// `rusqlite::Error` is not `Clone`; a batch-wide failure is reported to each job with its own
/// context, so rebuild the error for each. Failures of BEGIN and COMMIT are SQLite failures;
/// anything else keeps its text under a generic code.
fn copy_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

/// A queued write, with its answer channel; `T` erased so one queue holds every kind.
trait Job: Send {
    fn doing(&self) -> &'static str;
    /// Run the work in the open transaction, keeping its value for [`Job::succeed`].
    fn run(&mut self, conn: &Connection) -> Result<(), Fail>;
    /// The batch committed: answer with the kept value.
    fn succeed(self: Box<Self>);
    /// Answer with an error (this job failed, or the batch did).
    fn fail(self: Box<Self>, e: StoreError);
}

struct Pending<T> {
    doing: &'static str,
    work: Work<T>,
    value: Option<T>,
    reply: SyncSender<Result<T, StoreError>>,
}

impl<T: Send> Job for Pending<T> {
    fn doing(&self) -> &'static str {
        self.doing
    }

    fn run(&mut self, conn: &Connection) -> Result<(), Fail> {
        // A panicking job (a bug) must not take the writer, and every later write, with it.
        // Its statements were dropped while unwinding; its savepoint is rolled back below.
        let value = catch_unwind(AssertUnwindSafe(|| (self.work)(conn))).map_err(|_| {
            Fail::Store(StoreError::Database {
                doing: self.doing.to_string(),
                reason: "the operation panicked".to_string(),
            })
        })??;
        self.value = Some(value);
        Ok(())
    }

    fn succeed(self: Box<Self>) {
        let answer = self.value.ok_or_else(|| StoreError::Database {
            doing: self.doing.to_string(),
            reason: "the writer committed a job it never ran".to_string(),
        });
        // The caller waits in `Writer::write` until answered; if it is gone there is no one
        // to tell.
        let _ = self.reply.send(answer);
    }

    fn fail(self: Box<Self>, e: StoreError) {
        let _ = self.reply.send(Err(e));
    }
}
