//! The 20-minute callback promise: every voicemail starts a timer (due `recorded_at + SLA`);
//! acknowledging the voicemail stops it; when it runs out a `callback_overdue` event goes to
//! the escalation webhook (or the primary one when no escalation endpoint is set).
//!
//! The timers live in the store, never in memory: [`SlaWheel::tick`] asks the store what is
//! due at `now`, so a restart, or another node sharing the store, sees the same timers. Each
//! overdue voicemail is escalated with one store call, [`SlaStore::escalate`], which in a
//! single transaction checks that it is still unacknowledged and unescalated, queues the event
//! and marks it escalated. So the event is produced exactly once even if the process dies at
//! any point, or two nodes race for the same timer; its delivery is then at least once, like
//! every outbox event.
//!
//! [`due`], [`overdue_event`] and [`sleep_for`] are pure; [`SlaWheel::tick`] takes `now` from
//! its caller (tests drive it on a virtual clock); [`spawn`] is the tokio shell that feeds it
//! the real time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::notify::{CallbackOverdue, Notifier, OutboxEvent};
use crate::store::{SlaStore, SlaTimer, StoreError, blocking};

/// The promise made in the voicemail prompt.
pub const DEFAULT_SLA: Duration = Duration::from_secs(20 * 60);

/// When a voicemail recorded at `recorded_at` becomes overdue.
pub fn due_at(recorded_at: Timestamp, sla: Duration) -> Timestamp {
    SignedDuration::try_from(sla)
        .ok()
        .and_then(|d| recorded_at.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The timers due at `now`, earliest first. The store already filters; this keeps the rule in
/// one tested place and guards against a store whose clock or query disagrees.
pub fn due(now: Timestamp, timers: &[SlaTimer]) -> Vec<&SlaTimer> {
    let mut out: Vec<&SlaTimer> = timers.iter().filter(|t| t.due_at <= now).collect();
    out.sort_by_key(|t| (t.due_at, t.voicemail_id));
    out
}

/// The `callback_overdue` event for a timer. `occurred_at` is the due time, not the time the
/// process noticed, so the event tells the truth even after downtime.
pub fn overdue_event(timer: &SlaTimer) -> OutboxEvent {
    OutboxEvent::callback_overdue(
        Some(&timer.call_id),
        timer.due_at,
        CallbackOverdue {
            voicemail_id: timer.voicemail_id,
            caller: timer.caller.clone(),
            ticket: timer.ticket.clone(),
            recorded_at: timer.created_at,
            due_at: timer.due_at,
        },
    )
}

/// How long the shell may sleep at `now` with the next timer `next_due`: until it, at most
/// `max` (so timers created meanwhile, and wall-clock jumps, are noticed).
pub fn sleep_for(now: Timestamp, next_due: Option<Timestamp>, max: Duration) -> Duration {
    match next_due {
        Some(at) => Duration::try_from(at.duration_since(now))
            .unwrap_or(Duration::ZERO)
            .min(max),
        None => max,
    }
}

/// One escalation done by a tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escalated {
    pub voicemail_id: i64,
    pub outbox_id: i64,
}

/// The outcome of a tick.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tick {
    pub escalated: Vec<Escalated>,
    /// The next timer after this tick, if any.
    pub next_due: Option<Timestamp>,
}

/// The SLA timers of a store. Holds no timer state itself: a new wheel on the same store
/// (a restart) behaves exactly like the old one.
#[derive(Clone)]
pub struct SlaWheel {
    store: Arc<dyn SlaStore>,
}

impl SlaWheel {
    pub fn new(store: Arc<dyn SlaStore>) -> Self {
        SlaWheel { store }
    }

    /// Escalates every timer due at `now`. On a store error the timers not yet escalated stay
    /// due and the next tick retries them.
    pub fn tick(&self, now: Timestamp) -> Result<Tick, StoreError> {
        let timers = self.store.due_sla_timers(now)?;
        let mut escalated = Vec::new();
        for t in due(now, &timers) {
            if let Some(outbox_id) = self
                .store
                .escalate(t.voicemail_id, now, &overdue_event(t))?
            {
                warn!(
                    voicemail_id = t.voicemail_id,
                    caller = %t.caller,
                    due_at = %t.due_at,
                    outbox_id,
                    "callback overdue: escalating"
                );
                escalated.push(Escalated {
                    voicemail_id: t.voicemail_id,
                    outbox_id,
                });
            }
        }
        Ok(Tick {
            escalated,
            next_due: self.store.next_sla_due()?,
        })
    }
}

/// Tunables of the SLA shell.
#[derive(Clone, Debug)]
pub struct SlaPolicy {
    /// Longest sleep between looks at the store: bounds how late a timer created while the
    /// shell sleeps with nothing due (or after a clock jump) is noticed.
    pub max_sleep: Duration,
    /// Wait after a store error.
    pub store_retry: Duration,
    /// The clock callback deadlines were set on.
    pub clock: crate::clock::Clock,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        SlaPolicy {
            max_sleep: Duration::from_secs(10),
            store_retry: Duration::from_secs(1),
            clock: crate::clock::Clock::system(),
        }
    }
}

/// Runs the wheel on the real clock until `shutdown`; wakes `notifier` after escalating so the
/// events go out at once.
pub fn spawn(
    wheel: SlaWheel,
    notifier: Notifier,
    policy: SlaPolicy,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    let wheel = Arc::new(wheel);
    tokio::spawn(async move {
        let mut shutdown = std::pin::pin!(shutdown);
        info!("callback SLA timers started");
        loop {
            let now = policy.clock.now();
            let pause = match blocking(&wheel, move |w| w.tick(now)).await {
                Ok(tick) => {
                    if !tick.escalated.is_empty() {
                        notifier.wake();
                    }
                    sleep_for(policy.clock.now(), tick.next_due, policy.max_sleep)
                }
                Err(e) => {
                    warn!(error = %e, "callback SLA timers: store error, retrying");
                    policy.store_retry
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        info!("callback SLA timers stopped");
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventKind, MemoryStore, OutboxStore, SlaState, Target};

    fn t0() -> Timestamp {
        "2025-01-31T22:04:05Z".parse().unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        t0().checked_add(SignedDuration::from_secs(secs)).unwrap()
    }

    fn voicemail(id: i64) -> SlaTimer {
        SlaTimer {
            voicemail_id: id,
            due_at: due_at(t0(), DEFAULT_SLA),
            state: SlaState::Pending,
            call_id: format!("call-{id}"),
            caller: "+15551234567".into(),
            client: None,
            ticket: Some("T-9".into()),
            created_at: t0(),
        }
    }

    fn setup() -> (Arc<MemoryStore>, SlaWheel) {
        let store = Arc::new(MemoryStore::new());
        store.add_sla_timer(voicemail(1));
        let wheel = SlaWheel::new(store.clone());
        (store, wheel)
    }

    #[test]
    fn fires_at_twenty_minutes_not_before() {
        let (store, wheel) = setup();
        let tick = wheel.tick(at(19 * 60 + 59)).unwrap();
        assert!(tick.escalated.is_empty());
        assert_eq!(tick.next_due, Some(at(20 * 60)));
        assert!(store.snapshot().is_empty());

        let tick = wheel.tick(at(20 * 60)).unwrap();
        assert_eq!(tick.escalated.len(), 1);
        assert_eq!(tick.next_due, None);
        let rows = store.snapshot();
        assert_eq!(rows.len(), 1);
        let ev = &rows[0].event;
        assert_eq!(ev.kind, EventKind::CallbackOverdue);
        assert_eq!(ev.target, Target::Escalation);
        assert_eq!(ev.call_id.as_deref(), Some("call-1"));
        assert_eq!(ev.occurred_at, at(20 * 60));
        assert_eq!(ev.payload["voicemail_id"], 1);
        assert_eq!(ev.payload["ticket"], "T-9");
        assert_eq!(ev.payload["recorded_at"], "2025-01-31T22:04:05Z");
        assert_eq!(ev.payload["due_at"], "2025-01-31T22:24:05Z");
        assert_eq!(store.escalated_at(1), Some(at(20 * 60)));

        // Later ticks do not fire it again.
        assert!(wheel.tick(at(40 * 60)).unwrap().escalated.is_empty());
        assert_eq!(store.snapshot().len(), 1);
    }

    #[test]
    fn acknowledged_in_time_never_fires() {
        let (store, wheel) = setup();
        assert!(store.ack_voicemail(1, at(5 * 60)));
        let tick = wheel.tick(at(60 * 60)).unwrap();
        assert!(tick.escalated.is_empty());
        assert_eq!(tick.next_due, None);
        assert!(store.snapshot().is_empty());
    }

    #[test]
    fn survives_a_restart_and_fires_once() {
        let (store, wheel) = setup();
        assert!(wheel.tick(at(10 * 60)).unwrap().escalated.is_empty());
        drop(wheel);
        // "Restart": a new wheel on the same store, first tick long after the due time.
        let wheel = SlaWheel::new(store.clone());
        assert_eq!(wheel.tick(at(45 * 60)).unwrap().escalated.len(), 1);
        drop(wheel);
        let wheel = SlaWheel::new(store.clone());
        assert!(wheel.tick(at(50 * 60)).unwrap().escalated.is_empty());
        assert_eq!(store.snapshot().len(), 1);
        // Still stamped with the due time, not the late notice.
        assert_eq!(store.snapshot()[0].event.occurred_at, at(20 * 60));
    }

    #[test]
    fn an_ack_racing_the_tick_wins() {
        // The store lists the timer as due, then it is acknowledged before `escalate`:
        // the transaction sees the ack and queues nothing.
        let store = MemoryStore::new();
        store.add_sla_timer(voicemail(1));
        let listed = store.due_sla_timers(at(20 * 60)).unwrap();
        assert_eq!(listed.len(), 1);
        store.ack_voicemail(1, at(20 * 60));
        let got = store
            .escalate(1, at(20 * 60), &overdue_event(&listed[0]))
            .unwrap();
        assert_eq!(got, None);
        assert!(store.pending_outbox(Timestamp::MAX, 10).unwrap().is_empty());
    }

    #[test]
    fn several_timers_in_due_order() {
        let store = Arc::new(MemoryStore::new());
        let mut late = voicemail(2);
        late.due_at = at(25 * 60);
        store.add_sla_timer(late);
        store.add_sla_timer(voicemail(1));
        let wheel = SlaWheel::new(store.clone());
        let tick = wheel.tick(at(30 * 60)).unwrap();
        let ids: Vec<i64> = tick.escalated.iter().map(|e| e.voicemail_id).collect();
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn pure_helpers() {
        let timers = [voicemail(1)];
        assert!(due(at(20 * 60 - 1), &timers).is_empty());
        assert_eq!(due(at(20 * 60), &timers).len(), 1);
        let max = Duration::from_secs(10);
        assert_eq!(sleep_for(at(0), None, max), max);
        assert_eq!(sleep_for(at(0), Some(at(3)), max), Duration::from_secs(3));
        assert_eq!(sleep_for(at(0), Some(at(3600)), max), max);
        assert_eq!(sleep_for(at(5), Some(at(3)), max), Duration::ZERO);
        assert_eq!(due_at(Timestamp::MAX, DEFAULT_SLA), Timestamp::MAX);
    }

    /// The wheel on the real store: escalated once, across restarts (the file reopened and a
    /// new wheel each time), with the event addressed to the escalation endpoint.
    #[test]
    fn on_sqlite_it_fires_once_across_a_restart() {
        use crate::store::{NewVoicemail, SqliteStore, VoicemailStore};
        let dir = std::env::temp_dir().join(format!("ivr-sla-sqlite-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let vm = {
            let store = Arc::new(SqliteStore::open(&dir).unwrap());
            let vm = store
                .add_voicemail(
                    &NewVoicemail {
                        call_id: "call-v".into(),
                        caller: "+15551234567".into(),
                        client: None,
                        ticket: Some("T-1".into()),
                        path: "vm/1.wav".into(),
                        duration_ms: 9000,
                        created_at: t0(),
                    },
                    due_at(t0(), DEFAULT_SLA),
                )
                .unwrap();
            let wheel = SlaWheel::new(store.clone());
            assert!(wheel.tick(at(19 * 60 + 59)).unwrap().escalated.is_empty());
            vm
        };
        let store = Arc::new(SqliteStore::open(&dir).unwrap());
        let tick = SlaWheel::new(store.clone()).tick(at(20 * 60)).unwrap();
        assert_eq!(tick.escalated.len(), 1);
        assert_eq!(tick.escalated[0].voicemail_id, vm);
        let rows = store.pending_outbox(Timestamp::MAX, 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].event.kind, EventKind::CallbackOverdue);
        assert_eq!(rows[0].event.target, Target::Escalation);
        assert_eq!(rows[0].event.call_id.as_deref(), Some("call-v"));
        assert_eq!(rows[0].event.payload["recorded_at"], "2025-01-31T22:04:05Z");
        drop(store);

        let store = Arc::new(SqliteStore::open(&dir).unwrap());
        let tick = SlaWheel::new(store.clone()).tick(at(60 * 60)).unwrap();
        assert!(tick.escalated.is_empty());
        assert_eq!(tick.next_due, None);
        assert_eq!(store.pending_outbox(Timestamp::MAX, 10).unwrap().len(), 1);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
