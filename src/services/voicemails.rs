//! Voicemails with their callback status, acknowledgement, and the WAV behind each.

use std::path::PathBuf;

use jiff::Timestamp;

use crate::store::{AckOutcome, SlaState, Store, StoreError, Voicemail};

/// Where a voicemail's callback promise stands at a given time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallbackStatus {
    Acked { by: String, at: Timestamp },
    Escalated { at: Timestamp },
    Overdue { since: Timestamp },
    Waiting { due: Timestamp },
}

impl CallbackStatus {
    /// The status of `vm` judged at `now`.
    pub fn of(vm: &Voicemail, now: Timestamp) -> CallbackStatus {
        match (vm.sla_state, vm.acked_at, vm.escalated_at) {
            (SlaState::Acked, Some(at), _) => CallbackStatus::Acked {
                by: vm.acked_by.clone().unwrap_or_default(),
                at,
            },
            (SlaState::Escalated, _, Some(at)) => CallbackStatus::Escalated { at },
            _ if vm.sla_due_at <= now => CallbackStatus::Overdue {
                since: vm.sla_due_at,
            },
            _ => CallbackStatus::Waiting { due: vm.sla_due_at },
        }
    }

    /// A short machine name: `acked`, `escalated`, `overdue`, `waiting`.
    pub fn name(&self) -> &'static str {
        match self {
            CallbackStatus::Acked { .. } => "acked",
            CallbackStatus::Escalated { .. } => "escalated",
            CallbackStatus::Overdue { .. } => "overdue",
            CallbackStatus::Waiting { .. } => "waiting",
        }
    }

    /// The sentence `ivr voicemail list` prints (`by` is caller-free but admin-typed: escaped).
    pub fn describe(&self) -> String {
        match self {
            CallbackStatus::Acked { by, at } => {
                format!("acked by {} at {at}", crate::text::escape_control(by))
            }
            CallbackStatus::Escalated { at } => format!("ESCALATED at {at}, not acked"),
            CallbackStatus::Overdue { since } => format!("OVERDUE since {since}"),
            CallbackStatus::Waiting { due } => format!("waiting, callback due by {due}"),
        }
    }
}

/// A voicemail and its status at the time of the listing.
#[derive(Clone, Debug)]
pub struct Listed {
    pub voicemail: Voicemail,
    pub status: CallbackStatus,
}

/// Every voicemail, oldest first, judged at `now`.
pub fn list(store: &dyn Store, now: Timestamp) -> Result<Vec<Listed>, StoreError> {
    Ok(store
        .voicemails()?
        .into_iter()
        .map(|voicemail| Listed {
            status: CallbackStatus::of(&voicemail, now),
            voicemail,
        })
        .collect())
}

/// Acknowledges voicemail `id` for `by` at `at` (stops its callback timer).
pub fn ack(store: &dyn Store, id: i64, by: &str, at: Timestamp) -> Result<AckOutcome, StoreError> {
    store.ack_voicemail(id, by, at)
}

/// The WAV file of voicemail `id`, if there is such a voicemail.
pub fn audio_path(store: &dyn Store, id: i64) -> Result<Option<PathBuf>, StoreError> {
    Ok(store.voicemail(id)?.map(|vm| vm.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(state: SlaState) -> Voicemail {
        Voicemail {
            id: 1,
            call_id: "c".into(),
            caller: "+1555".into(),
            client: None,
            ticket: None,
            path: "v.wav".into(),
            duration_ms: 1000,
            created_at: "2026-11-27T22:00:00Z".parse().unwrap(),
            acked_at: None,
            acked_by: None,
            escalated_at: None,
            sla_due_at: "2026-11-27T22:20:00Z".parse().unwrap(),
            sla_state: state,
        }
    }

    #[test]
    fn status_follows_the_clock_until_acked_or_escalated() {
        let before: Timestamp = "2026-11-27T22:19:59Z".parse().unwrap();
        let after: Timestamp = "2026-11-27T22:20:00Z".parse().unwrap();
        let pending = vm(SlaState::Pending);
        assert_eq!(CallbackStatus::of(&pending, before).name(), "waiting");
        assert_eq!(CallbackStatus::of(&pending, after).name(), "overdue");
        let mut acked = vm(SlaState::Acked);
        acked.acked_at = Some(before);
        acked.acked_by = Some("al\x1bice".into());
        let status = CallbackStatus::of(&acked, after);
        assert_eq!(
            status.describe(),
            "acked by al\\x1bice at 2026-11-27T22:19:59Z"
        );
    }
}
