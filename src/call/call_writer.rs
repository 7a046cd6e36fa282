//! One call's writes to the store, in order, off the call's own task.
//!
//! Facts are written as they happen (the answer, each digit, the terms agreed, the ticket, who
//! accepted), so a crash keeps what the caller did; then the voicemail (with its callback timer
//! and `voicemail_recorded` event, one transaction) and last the final record with `call_ended`.
//! One task per call takes them from a channel, so the flow never waits for an fsync, a late
//! fact can never land after the final record, and facts queued while a write was committing go
//! in the next write together.
//!
//! A disk problem (full, read-only) does not lose the voicemail or the record: they are retried,
//! in order, with backoff while the process runs (facts are not: the final record carries them
//! anyway). The store check is raised in [`crate::health::Health`] when a write fails and cleared
//! when one succeeds again. What is still unwritten when the process stops is recovered at the
//! next start from the WAV files and the open call rows.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use std::sync::OnceLock;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{error, info, warn};

use crate::notify::Notifier;
use crate::notify::event::OutboxEvent;
use crate::store::{CallFact, Cdr, NewVoicemail, Store, StoreError, blocking};

/// Retry delays for the voicemail and the final record: quick at first (a disk freed by an
/// operator is used at once), then no more than one attempt every 30 s.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(30);
/// A failure that is not a disk problem (a bug, a corrupt database) is retried this many times,
/// then logged and dropped: retrying it for ever would hide it.
const OTHER_ATTEMPTS: u32 = 5;

/// How many calls have writes waiting for a retry, process-wide: shutdown gives them a last
/// chance (see [`flush_owed`]).
fn owing() -> &'static watch::Sender<usize> {
    static OWING: OnceLock<watch::Sender<usize>> = OnceLock::new();
    OWING.get_or_init(|| watch::Sender::new(0))
}

/// Wakes every writer waiting to retry.
fn retry_now() -> &'static Notify {
    static RETRY: OnceLock<Notify> = OnceLock::new();
    RETRY.get_or_init(Notify::new)
}

/// At shutdown: every writer with writes waiting retries at once; waits up to `grace` for them
/// to succeed and returns how many calls still owe writes. Those are logged here: the next start
/// registers their voicemails from the files and closes their records as interrupted.
pub async fn flush_owed(grace: Duration) -> usize {
    let mut rx = owing().subscribe();
    if *rx.borrow() == 0 {
        return 0;
    }
    info!(
        calls = *rx.borrow(),
        "waiting for call records the store refused (disk full?)"
    );
    retry_now().notify_waiters();
    let _ = tokio::time::timeout(grace, rx.wait_for(|n| *n == 0)).await;
    let left = *rx.borrow();
    if left > 0 {
        error!(
            calls = left,
            "stopping with call records not written (disk full?): their voicemails are registered at the next start from the files, and their calls closed as interrupted"
        );
    }
    left
}

/// The handle a call uses to queue its writes; cheap to clone. The default writes nothing (no
/// store).
#[derive(Clone, Default)]
pub struct CallWriter {
    tx: Option<mpsc::UnboundedSender<Job>>,
}

impl std::fmt::Debug for CallWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallWriter")
            .field("enabled", &self.tx.is_some())
            .finish()
    }
}

/// A voicemail to register, with its event (the store puts the id in).
pub struct VoicemailJob {
    pub vm: NewVoicemail,
    pub due: jiff::Timestamp,
    pub event: Option<OutboxEvent>,
}

enum Job {
    Fact(CallFact),
    Voicemail(VoicemailJob),
    Ended {
        cdr: Box<Cdr>,
        event: Option<OutboxEvent>,
        event_queued: bool,
    },
    /// Answered when every job before it is written, or as soon as one is being retried.
    Settled(oneshot::Sender<()>),
}

impl CallWriter {
    /// Starts the writer task of `call_id`.
    pub fn start(
        store: Arc<dyn Store>,
        notifier: Option<Notifier>,
        health: crate::health::Health,
        call_id: String,
    ) -> CallWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            store,
            notifier,
            health,
            call_id,
            queue: VecDeque::new(),
        };
        tokio::spawn(task.run(rx));
        CallWriter { tx: Some(tx) }
    }

    /// Whether writes go anywhere.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Records `fact` (best effort, in order).
    pub fn fact(&self, fact: CallFact) {
        self.send(Job::Fact(fact));
    }

    /// Registers a voicemail after the facts queued before it.
    pub fn voicemail(&self, job: VoicemailJob) {
        self.send(Job::Voicemail(job));
    }

    /// Queues the final record and its `call_ended` event; returns once they are written
    /// (`true`), or once writing them failed and is being retried in the background (`false`).
    pub async fn ended(&self, cdr: Cdr, event: Option<OutboxEvent>) -> bool {
        self.send(Job::Ended {
            cdr: Box::new(cdr),
            event,
            event_queued: false,
        });
        let (tx, rx) = oneshot::channel();
        self.send(Job::Settled(tx));
        rx.await.is_ok()
    }

    fn send(&self, job: Job) {
        if let Some(tx) = &self.tx {
            // The task lives as long as a sender does: a send cannot fail.
            let _ = tx.send(job);
        }
    }
}

/// The billing vars last recorded as call facts (`agreed`, `ticket`), so each change is
/// written once, when the flow makes it.
#[derive(Default)]
pub struct NotedVars {
    agreed: bool,
    ticket: Option<String>,
}

impl NotedVars {
    pub fn note(&mut self, writer: &CallWriter, vars: &std::collections::BTreeMap<String, String>) {
        let agreed = vars.get("agreed").is_some_and(|v| v == "true");
        if agreed != self.agreed {
            self.agreed = agreed;
            writer.fact(CallFact::AgreedTerms(agreed));
        }
        let ticket = vars.get("ticket").filter(|t| !t.is_empty());
        if ticket != self.ticket.as_ref() {
            self.ticket = ticket.cloned();
            writer.fact(CallFact::Ticket(self.ticket.clone()));
        }
    }
}

struct Task {
    store: Arc<dyn Store>,
    notifier: Option<Notifier>,
    health: crate::health::Health,
    call_id: String,
    queue: VecDeque<Job>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        let mut delay = FIRST_RETRY;
        let mut failures = 0u32;
        loop {
            while let Ok(job) = rx.try_recv() {
                self.queue.push_back(job);
            }
            if self.queue.is_empty() {
                match rx.recv().await {
                    Some(job) => self.queue.push_back(job),
                    None => return,
                }
                continue;
            }
            match self.write_head().await {
                Ok(wrote) => {
                    if failures > 0 {
                        owing().send_modify(|n| *n = n.saturating_sub(1));
                        info!(call_id = %self.call_id, event = "store_write_recovered", attempts = failures + 1,
                              "the call's record is written after the store failed");
                    }
                    if wrote {
                        self.health.ok("store");
                    }
                    failures = 0;
                    delay = FIRST_RETRY;
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        owing().send_modify(|n| *n += 1);
                        error!(call_id = %self.call_id, error = %e, event = "store_write_retry",
                               "store: the call's record could not be written; retrying while ivr runs");
                    }
                    self.health.fail("store", &e);
                    if !e.is_disk_problem() && failures >= OTHER_ATTEMPTS {
                        error!(call_id = %self.call_id, error = %e, "store: giving up on a write of the call's record");
                        self.queue.pop_front();
                        owing().send_modify(|n| *n = n.saturating_sub(1));
                        failures = 0;
                        continue;
                    }
                    self.back_off(&mut rx, delay).await;
                    delay = (delay * 2).min(LAST_RETRY);
                }
            }
        }
    }

    /// Writes the job at the head of the queue; on success it is removed. `Ok(true)` when
    /// something reached the store (it works), `Ok(false)` when nothing was written.
    async fn write_head(&mut self) -> Result<bool, StoreError> {
        let notifier = self.notifier.clone();
        let Some(job) = self.queue.front_mut() else {
            return Ok(false);
        };
        match job {
            Job::Settled(_) => {
                if let Some(Job::Settled(tx)) = self.queue.pop_front() {
                    let _ = tx.send(());
                }
                Ok(false)
            }
            Job::Fact(_) => {
                let mut facts = Vec::new();
                while let Some(Job::Fact(_)) = self.queue.front() {
                    if let Some(Job::Fact(f)) = self.queue.pop_front() {
                        facts.push(f);
                    }
                }
                let call_id = self.call_id.clone();
                let r = blocking(&self.store, move |s| s.call_progress(&call_id, &facts)).await;
                // Facts are not retried: the final record carries them all.
                match r {
                    Ok(()) => Ok(true),
                    Err(e) => {
                        warn!(call_id = %self.call_id, error = %e, "store: call progress not recorded");
                        self.health.fail("store", &e);
                        Ok(false)
                    }
                }
            }
            Job::Voicemail(v) => {
                let vm = v.vm.clone();
                let due = v.due;
                let events = v.event.as_ref().map_or_else(Vec::new, |ev| {
                    notifier
                        .as_ref()
                        .map_or_else(Vec::new, |n| n.voicemail_events(ev))
                });
                let id = blocking(&self.store, move |s| {
                    s.register_voicemail(&vm, due, &events)
                })
                .await?;
                info!(call_id = %self.call_id, voicemail_id = id, event = "voicemail_stored",
                      callback_due_at = %due, "voicemail stored; callback timer started");
                self.queue.pop_front();
                wake(&notifier);
                crate::transcribe::wake();
                Ok(true)
            }
            Job::Ended {
                cdr,
                event,
                event_queued,
            } => {
                // The event is queued before the row is closed: a crash in between leaves the
                // call open, and the next start closes it and queues call_ended again (at least
                // once, never lost).
                if !*event_queued {
                    if let Some(ev) = event.as_ref().and_then(|ev| owed(&notifier, ev)) {
                        blocking(&self.store, move |s| s.enqueue(&ev).map(|_| ())).await?;
                        wake(&notifier);
                    }
                    *event_queued = true;
                }
                let row = (**cdr).clone();
                blocking(&self.store, move |s| s.call_ended(&row)).await?;
                self.queue.pop_front();
                Ok(true)
            }
        }
    }

    /// Waits `delay` (or until shutdown asks for a last try) before retrying. Whoever waits for
    /// this call's record meanwhile stops waiting at once: the call ends, its record is
    /// retried here.
    async fn back_off(&mut self, rx: &mut mpsc::UnboundedReceiver<Job>, delay: Duration) {
        let until = tokio::time::Instant::now() + delay;
        let mut open = true;
        loop {
            while let Ok(job) = rx.try_recv() {
                self.queue.push_back(job);
            }
            self.answer_waiters();
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                _ = retry_now().notified() => return,
                job = rx.recv(), if open => match job {
                    Some(job) => self.queue.push_back(job),
                    None => open = false,
                },
            }
        }
    }

    fn answer_waiters(&mut self) {
        // Dropping a waiter's sender wakes it.
        self.queue.retain(|job| !matches!(job, Job::Settled(_)));
    }
}

/// The event, when a webhook endpoint wants it.
fn owed(notifier: &Option<Notifier>, event: &OutboxEvent) -> Option<OutboxEvent> {
    let n = notifier.as_ref()?;
    n.targets().accepts(event).then(|| event.clone())
}

fn wake(notifier: &Option<Notifier>) {
    if let Some(n) = notifier {
        n.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CallStart, Outcome, SqliteStore};

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("time")
    }

    /// A full store: the call's end does not wait for it, an alert is raised, and the voicemail
    /// and the final record are written in order once there is room, without a restart.
    #[tokio::test]
    async fn a_full_store_is_retried_in_order_while_the_call_moves_on() {
        let dir = std::env::temp_dir().join(format!("ivr-call-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sqlite = Arc::new(SqliteStore::open(&dir).expect("store"));
        let store: Arc<dyn Store> = sqlite.clone();
        let started = at("2026-11-28T03:30:00Z");
        store
            .call_started(&CallStart {
                call_id: "c1".into(),
                caller: crate::repeat::normalise("+15551230001", None),
                caller_raw: "+15551230001".into(),
                called: "ivr".into(),
                client: None,
                started_at: started,
                after_hours: true,
                agreement: false,
                rate_multiplier: 2.0,
                repeat_rule: std::sync::Arc::new(crate::repeat::RepeatPolicy::default()),
                node: "test-node".into(),
            })
            .expect("start");
        let mut live = store.open_calls("test-node").expect("open").remove(0);
        // Freeze the file at its size: SQLite then reports SQLITE_FULL, as for ENOSPC.
        sqlite.with_conn(|c| {
            let pages: i64 = c
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .expect("pages");
            c.pragma_update(None, "max_page_count", pages)
                .expect("limit");
        });
        let health = crate::health::Health::new(crate::clock::Clock::system());
        let writer = CallWriter::start(store.clone(), None, health.clone(), "c1".into());
        writer.voicemail(VoicemailJob {
            vm: NewVoicemail {
                call_id: "c1".into(),
                caller: "+15551230001".into(),
                client: None,
                ticket: None,
                // Bigger than the free space of the frozen file.
                path: dir.join("x".repeat(300_000)),
                duration_ms: 2000,
                created_at: at("2026-11-28T03:30:05Z"),
            },
            due: at("2026-11-28T03:50:05Z"),
            event: None,
        });
        live.ended_at = Some(at("2026-11-28T03:30:09Z"));
        live.outcome = Some(Outcome::Voicemail);
        live.end_reason = "BYE from caller".into();
        let written =
            tokio::time::timeout(Duration::from_secs(5), writer.ended(live.clone(), None))
                .await
                .expect("the call's end does not wait for a full disk");
        assert!(!written);
        assert!(health.problem("store").is_some(), "no alert raised");
        assert!(store.voicemails().expect("voicemails").is_empty());
        assert_eq!(store.open_calls("test-node").expect("open").len(), 1);

        sqlite.with_conn(|c| {
            c.pragma_update(None, "max_page_count", 1_000_000_i64)
                .expect("room again");
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !store.open_calls("test-node").expect("open").is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "never retried");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(store.voicemails().expect("voicemails").len(), 1);
        assert_eq!(store.cdrs_between(None, None).expect("cdrs"), vec![live]);
        assert!(health.problem("store").is_none(), "alert not cleared");
        drop(writer);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
