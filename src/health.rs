//! What is wrong with this node right now, for the operator: a registry of failing checks
//! (`store` cannot write, the voicemail disk is full, ...).
//!
//! Components report a failure when it happens and the recovery when it ends; the registry
//! logs each change of state once (an ERROR when a check starts failing, a WARN with how long it
//! lasted when it recovers), not once per failed write, so a full disk during a busy night is
//! one alert in the log, not thousands. The health endpoint and the admin page read
//! [`Health::problems`]. Cheap to clone; every clone is the same registry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use tracing::{error, warn};

use crate::clock::Clock;

/// One failing check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The check's name (`store`, `voicemail`).
    pub check: &'static str,
    /// The latest failure, as the operator should read it.
    pub message: String,
    /// When it started failing.
    pub since: Timestamp,
    /// Failures reported since then.
    pub failures: u64,
}

/// The registry of failing checks.
#[derive(Clone, Debug, Default)]
pub struct Health {
    clock: Clock,
    failing: Arc<Mutex<BTreeMap<&'static str, Problem>>>,
}

impl Health {
    pub fn new(clock: Clock) -> Health {
        Health {
            clock,
            failing: Arc::default(),
        }
    }

    /// `check` failed (again); the first failure of a run is logged as an alert.
    pub fn fail(&self, check: &'static str, message: impl std::fmt::Display) {
        let message = message.to_string();
        let mut failing = self.lock();
        match failing.get_mut(check) {
            Some(p) => {
                p.failures += 1;
                p.message = message;
            }
            None => {
                error!(check, problem = %message, event = "health_alert",
                       "ALERT: {check} is failing; the line still answers, see the problem");
                failing.insert(
                    check,
                    Problem {
                        check,
                        message,
                        since: self.clock.now(),
                        failures: 1,
                    },
                );
            }
        }
    }

    /// `check` works (again); a recovery is logged with how long the failure lasted.
    pub fn ok(&self, check: &'static str) {
        if let Some(p) = self.lock().remove(check) {
            let lasted = self.clock.now().duration_since(p.since);
            warn!(
                check,
                failures = p.failures,
                lasted_s = lasted.as_secs(),
                event = "health_recovered",
                "{check} works again"
            );
        }
    }

    /// Every failing check, by name.
    pub fn problems(&self) -> Vec<Problem> {
        self.lock().values().cloned().collect()
    }

    /// The failing check called `check`, if it is failing.
    pub fn problem(&self, check: &str) -> Option<Problem> {
        self.lock().get(check).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Problem>> {
        // Only inserts and removals happen under the lock: a poisoned map is still consistent.
        self.failing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_fails_once_counts_repeats_and_recovers() {
        let health = Health::new(Clock::system());
        assert!(health.problems().is_empty());
        health.fail("store", "disk full");
        health.fail("store", "disk still full");
        let p = health.problem("store").expect("store is failing");
        assert_eq!((p.failures, p.message.as_str()), (2, "disk still full"));
        health.fail("voicemail", "cannot write");
        let names: Vec<_> = health.problems().iter().map(|p| p.check).collect();
        assert_eq!(names, ["store", "voicemail"]);
        health.clone().ok("store");
        assert!(
            health.problem("store").is_none(),
            "clones share the registry"
        );
        assert_eq!(health.problems().len(), 1);
    }
}
