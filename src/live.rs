//! The calls up right now, for the admin page and API: each call task registers itself when
//! its start is recorded and is removed when it ends (a guard, so a panicking or early-returning
//! task cannot leave a ghost). Only start and end are recorded; what a call is doing in between
//! (flow node, ringing, bridged) would be updates from the call task, not done yet.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;

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
}

/// The registry; cheap to clone, every clone is the same registry.
#[derive(Clone, Default)]
pub struct LiveCalls {
    next: Arc<AtomicU64>,
    calls: Arc<Mutex<BTreeMap<u64, LiveCall>>>,
}

/// Removes its call from the registry when dropped.
#[must_use = "the call is removed when the guard drops"]
pub struct LiveGuard {
    key: u64,
    calls: Arc<Mutex<BTreeMap<u64, LiveCall>>>,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

impl LiveCalls {
    pub fn new() -> LiveCalls {
        LiveCalls::default()
    }

    /// Adds `call` until the returned guard drops.
    pub fn register(&self, call: LiveCall) -> LiveGuard {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, call);
        LiveGuard {
            key,
            calls: self.calls.clone(),
        }
    }

    /// Every live call, oldest first.
    pub fn snapshot(&self) -> Vec<LiveCall> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str) -> LiveCall {
        LiveCall {
            call_id: id.into(),
            caller: "+15550100".into(),
            called: "100".into(),
            client: None,
            repeat: false,
            after_hours: true,
            started_at: Timestamp::UNIX_EPOCH,
        }
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
}
