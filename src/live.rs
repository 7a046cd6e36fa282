//! The calls up right now, for the admin page and API: each call task registers itself when
//! its start is recorded and is removed when it ends (a guard, so a panicking or early-returning
//! task cannot leave a ghost). Through the guard the task also says what the call is doing: the
//! flow node it is in and its state (ringing the desk, bridged, recording, ending).
//!
//! Listeners (the admin page's event stream) learn of every change from a `watch` channel
//! carrying a generation number, so they never poll. A call updates its entry a few times in its
//! life (each node, each phone rung), never per packet: one short lock and one notify each.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use tokio::sync::watch;

use crate::clock::Clock;

/// What a call is doing now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveState {
    /// Ringing the caller before we answer.
    Answering,
    /// Running its flow (the node says where).
    InFlow,
    /// A `dial` node rings the desk: its `targets` (groups, users) and the phones ringing now,
    /// each as `member` or `member (contact)`.
    RingingDesk {
        targets: Vec<String>,
        phones: Vec<String>,
    },
    /// Connected to the staff member (a user name or a phone's URI) who accepted.
    Bridged { with: String },
    /// Recording a voicemail.
    Recording,
    /// We sent BYE or the caller hung up; the call's record is being written.
    Ending,
}

impl LiveState {
    /// The state's name in the API.
    pub fn name(&self) -> &'static str {
        match self {
            LiveState::Answering => "answering",
            LiveState::InFlow => "in_flow",
            LiveState::RingingDesk { .. } => "ringing_desk",
            LiveState::Bridged { .. } => "bridged",
            LiveState::Recording => "recording",
            LiveState::Ending => "ending",
        }
    }

    /// Who the state involves: the phones ringing, the staff member bridged; else empty.
    pub fn detail(&self) -> String {
        match self {
            LiveState::RingingDesk { targets, phones } if phones.is_empty() => {
                format!("{} (no phone ringing yet)", targets.join(", "))
            }
            LiveState::RingingDesk { phones, .. } => phones.join(", "),
            LiveState::Bridged { with } => with.clone(),
            _ => String::new(),
        }
    }

    /// For people: `ringing desk: alice, bob`, `bridged with alice`.
    pub fn describe(&self) -> String {
        match self {
            LiveState::Answering => "answering".into(),
            LiveState::InFlow => "in flow".into(),
            LiveState::RingingDesk { .. } => format!("ringing desk: {}", self.detail()),
            LiveState::Bridged { with } => format!("bridged with {with}"),
            LiveState::Recording => "recording voicemail".into(),
            LiveState::Ending => "ending".into(),
        }
    }
}

/// One call in progress.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveCall {
    pub call_id: String,
    /// Normalised caller.
    pub caller: String,
    pub called: String,
    pub client: Option<String>,
    pub repeat: bool,
    pub after_hours: bool,
    pub started_at: Timestamp,
    /// The flow node entered last; `None` before the flow starts.
    pub node: Option<String>,
    pub state: LiveState,
    /// When `state` was entered.
    pub state_since: Timestamp,
}

impl LiveCall {
    /// A call that has just arrived: no node yet, being answered.
    pub fn arriving(
        call_id: String,
        caller: String,
        called: String,
        client: Option<String>,
        repeat: bool,
        after_hours: bool,
        started_at: Timestamp,
    ) -> LiveCall {
        LiveCall {
            call_id,
            caller,
            called,
            client,
            repeat,
            after_hours,
            started_at,
            node: None,
            state: LiveState::Answering,
            state_since: started_at,
        }
    }
}

struct Inner {
    next: AtomicU64,
    calls: Mutex<BTreeMap<u64, LiveCall>>,
    /// The generation: bumped on every change, after the change is in `calls`.
    changes: watch::Sender<u64>,
    clock: Clock,
}

impl Inner {
    fn calls(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, LiveCall>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        // `send_modify` updates the value even with no receiver listening.
        self.changes.send_modify(|g| *g += 1);
    }
}

/// The registry; cheap to clone, every clone is the same registry.
#[derive(Clone)]
pub struct LiveCalls {
    inner: Arc<Inner>,
}

impl Default for LiveCalls {
    fn default() -> Self {
        LiveCalls::with_clock(Clock::system())
    }
}

/// Removes its call from the registry when dropped; its call task updates the entry through it.
#[must_use = "the call is removed when the guard drops"]
pub struct LiveGuard {
    key: u64,
    inner: Arc<Inner>,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let removed = self.inner.calls().remove(&self.key).is_some();
        if removed {
            self.inner.changed();
        }
    }
}

impl LiveGuard {
    /// The call entered flow node `node`.
    pub fn set_node(&self, node: &str) {
        self.update(|c| {
            if c.node.as_deref() == Some(node) {
                return false;
            }
            c.node = Some(node.to_string());
            true
        });
    }

    /// The call is now in `state` (unchanged if it already is).
    pub fn set_state(&self, state: LiveState) {
        let now = self.inner.clock.now();
        self.update(|c| {
            if c.state == state {
                return false;
            }
            c.state = state;
            c.state_since = now;
            true
        });
    }

    /// Applies `f`; listeners hear of it when it says it changed something.
    fn update(&self, f: impl FnOnce(&mut LiveCall) -> bool) {
        let changed = self.inner.calls().get_mut(&self.key).is_some_and(f);
        if changed {
            self.inner.changed();
        }
    }
}

impl LiveCalls {
    pub fn new() -> LiveCalls {
        LiveCalls::default()
    }

    /// A registry stamping state changes with `clock` (`serve --now` moves it).
    pub fn with_clock(clock: Clock) -> LiveCalls {
        LiveCalls {
            inner: Arc::new(Inner {
                next: AtomicU64::new(0),
                calls: Mutex::new(BTreeMap::new()),
                changes: watch::channel(0).0,
                clock,
            }),
        }
    }

    /// Adds `call` until the returned guard drops.
    pub fn register(&self, call: LiveCall) -> LiveGuard {
        let key = self.inner.next.fetch_add(1, Ordering::Relaxed);
        self.inner.calls().insert(key, call);
        self.inner.changed();
        LiveGuard {
            key,
            inner: self.inner.clone(),
        }
    }

    /// Every live call, oldest first.
    pub fn snapshot(&self) -> Vec<LiveCall> {
        self.inner.calls().values().cloned().collect()
    }

    /// The generation now and a receiver that wakes on each later change (changes in quick
    /// succession may wake it once: it then reads the latest snapshot).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// How many changes there have been.
    pub fn generation(&self) -> u64 {
        *self.inner.changes.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str) -> LiveCall {
        LiveCall::arriving(
            id.into(),
            "+15550100".into(),
            "100".into(),
            None,
            false,
            true,
            Timestamp::UNIX_EPOCH,
        )
    }

    #[test]
    fn calls_leave_when_their_guard_drops_even_on_panic() {
        let live = LiveCalls::new();
        let a = live.register(call("a"));
        let b = live.clone().register(call("b"));
        let ids = |l: &LiveCalls| {
            l.snapshot()
                .into_iter()
                .map(|c| c.call_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&live), ["a", "b"]);
        drop(a);
        assert_eq!(ids(&live), ["b"]);
        let l2 = live.clone();
        let _ = std::thread::spawn(move || {
            let _g = l2.register(call("c"));
            panic!("call task died");
        })
        .join();
        assert_eq!(ids(&live), ["b"]);
        drop(b);
        assert!(live.snapshot().is_empty());
    }

    #[test]
    fn node_and_state_updates_show_in_the_snapshot_with_when_the_state_began() {
        let at = Timestamp::from_second(1_000_000).expect("ts");
        let live = LiveCalls::with_clock(Clock::starting_at(at));
        let g = live.register(call("a"));
        assert_eq!(live.snapshot()[0].node, None);
        assert_eq!(live.snapshot()[0].state, LiveState::Answering);
        g.set_node("menu");
        g.set_state(LiveState::RingingDesk {
            targets: vec!["desk".into()],
            phones: vec!["alice".into(), "sip:bob@h".into()],
        });
        let c = &live.snapshot()[0];
        assert_eq!(c.node.as_deref(), Some("menu"));
        assert_eq!(c.state.name(), "ringing_desk");
        assert_eq!(c.state.detail(), "alice, sip:bob@h");
        assert_eq!(c.state.describe(), "ringing desk: alice, sip:bob@h");
        // The clock starts at `at` and runs: the state began at or just after it.
        let since = c.state_since.duration_since(at).as_secs();
        assert!((0..5).contains(&since), "{since}");
        g.set_state(LiveState::Bridged {
            with: "alice".into(),
        });
        assert_eq!(live.snapshot()[0].state.describe(), "bridged with alice");
    }

    #[test]
    fn every_change_and_only_a_change_bumps_the_generation_and_wakes_listeners() {
        let live = LiveCalls::new();
        let mut rx = live.subscribe();
        let g0 = live.generation();
        let g = live.register(call("a"));
        assert!(rx.has_changed().expect("open"));
        rx.mark_unchanged();
        assert_eq!(live.generation(), g0 + 1);
        g.set_node("menu");
        assert_eq!(live.generation(), g0 + 2);
        // The same node again, the same state again: nothing to tell.
        g.set_node("menu");
        g.set_state(LiveState::Answering);
        assert_eq!(live.generation(), g0 + 2);
        g.set_state(LiveState::Recording);
        assert_eq!(live.generation(), g0 + 3);
        assert!(rx.has_changed().expect("open"));
        rx.mark_unchanged();
        drop(g);
        assert_eq!(live.generation(), g0 + 4);
        assert!(rx.has_changed().expect("open"));
    }

    #[tokio::test]
    async fn a_listener_wakes_on_a_change_made_from_another_thread() {
        let live = LiveCalls::new();
        let mut rx = live.subscribe();
        let l2 = live.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(l2.register(call("a")));
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed())
            .await
            .expect("woken in time")
            .expect("open");
        t.join().expect("thread");
    }
}
