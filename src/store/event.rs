//! The outbox's values: an event owed to the helpdesk ([`OutboxEvent`], of an [`EventKind`],
//! for a [`Target`]) and a queued one with its delivery state ([`OutboxRow`]). Defined once,
//! here: the store keeps them, the webhook/mail worker delivers them, the SLA timers and the
//! transcription worker queue them. What each kind's `payload` holds, and the constructors that
//! build it, are the notifier's (`crate::notify::event`).

use jiff::Timestamp;
use serde_json::Value;

/// The kind of an event; its wire name is [`EventKind::as_str`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    CallStarted,
    RepeatCaller,
    VoicemailRecorded,
    CallEnded,
    CallbackOverdue,
    /// A kept voicemail's transcript (or why there is none), from the transcription worker.
    VoicemailTranscribed,
    /// An event named by a flow's `webhook` node.
    Custom(String),
}

impl EventKind {
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::CallStarted => "call_started",
            EventKind::RepeatCaller => "repeat_caller",
            EventKind::VoicemailRecorded => "voicemail_recorded",
            EventKind::CallEnded => "call_ended",
            EventKind::CallbackOverdue => "callback_overdue",
            EventKind::VoicemailTranscribed => "voicemail_transcribed",
            EventKind::Custom(name) => name,
        }
    }

    /// The kind with this wire name (the inverse of [`as_str`](Self::as_str), for stores that
    /// keep the name as text). Unknown names are custom events.
    pub fn from_name(name: &str) -> EventKind {
        match name {
            "call_started" => EventKind::CallStarted,
            "repeat_caller" => EventKind::RepeatCaller,
            "voicemail_recorded" => EventKind::VoicemailRecorded,
            "call_ended" => EventKind::CallEnded,
            "callback_overdue" => EventKind::CallbackOverdue,
            "voicemail_transcribed" => EventKind::VoicemailTranscribed,
            other => EventKind::Custom(other.to_string()),
        }
    }
}

/// Which configured endpoint an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The helpdesk's webhook (`[webhooks.primary]`).
    Primary,
    /// The next tier (`[webhooks.escalation]`); falls back to the primary endpoint when unset.
    Escalation,
    /// The helpdesk's mail intake (`[email]`): a voicemail's mail with the WAV attached.
    Email,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Primary => "primary",
            Target::Escalation => "escalation",
            Target::Email => "email",
        }
    }

    /// The inverse of [`as_str`](Self::as_str); `None` for anything else.
    pub fn from_name(name: &str) -> Option<Target> {
        match name {
            "primary" => Some(Target::Primary),
            "escalation" => Some(Target::Escalation),
            "email" => Some(Target::Email),
            _ => None,
        }
    }

    /// The target of stored outbox row `id`, whatever the database. Rows of older versions say
    /// `default`; any other unknown name is delivered to the primary endpoint too (logged),
    /// rather than stranded in the outbox for ever.
    pub fn from_stored(id: i64, name: &str) -> Target {
        Target::from_name(name).unwrap_or_else(|| {
            if name != "default" {
                tracing::warn!(outbox_id = id, target = %name, "unknown webhook target; sending to primary");
            }
            Target::Primary
        })
    }
}

/// One event owed to a webhook endpoint or the mail intake, as queued in the outbox (the
/// outbox id is added by the store and sent as the body's `id`).
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEvent {
    pub kind: EventKind,
    /// The SIP Call-ID of the call it belongs to: events of one call are delivered in order
    /// (per target).
    pub call_id: Option<String>,
    /// When it happened (the body's `occurred_at`), not when it was sent.
    pub occurred_at: Timestamp,
    /// The body's `data` object.
    pub payload: Value,
    pub target: Target,
}

/// A queued event with its delivery state.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    /// Ids grow in enqueue order; they are the body's `id` and the `X-Ivr-Delivery` header.
    pub id: i64,
    pub event: OutboxEvent,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the row may be tried (again): its `occurred_at` when queued, then the backoff after
    /// a failure, or the end of a postponement.
    pub next_attempt_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    /// The last failed attempt's error, for the admin page.
    pub last_error: Option<String>,
    /// Until when a node holds the row for one delivery attempt (stores shared by several
    /// nodes; `None` where rows are never leased, or not now). Another node waiting for the row
    /// looks again at this time, not a whole lease of its own later.
    pub lease_until: Option<Timestamp>,
}

impl OutboxRow {
    /// When the worker must wait for before trying this row; `None`: try it now. A row never
    /// tried is due at once whatever the clocks say (its `next_attempt_at` is only its
    /// `occurred_at`), unless it was postponed past that (a mail waiting for its transcript):
    /// read as due then, it would be attempted, held and attempted again in a loop for the whole
    /// wait.
    pub fn retry_at(&self) -> Option<Timestamp> {
        (self.attempts > 0 || self.next_attempt_at > self.event.occurred_at)
            .then_some(self.next_attempt_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn names_round_trip() {
        let kinds = [
            EventKind::CallStarted,
            EventKind::RepeatCaller,
            EventKind::VoicemailRecorded,
            EventKind::CallEnded,
            EventKind::CallbackOverdue,
            EventKind::VoicemailTranscribed,
            EventKind::Custom("after_hours_request".into()),
        ];
        for k in kinds {
            assert_eq!(EventKind::from_name(k.as_str()), k);
        }
        for t in [Target::Primary, Target::Escalation, Target::Email] {
            assert_eq!(Target::from_name(t.as_str()), Some(t));
        }
        assert_eq!(Target::from_name("nope"), None);
    }

    /// A never-tried row is due now even when its `occurred_at` is in the future (another
    /// node's clock); a postponed or failed one waits for its time.
    #[test]
    fn retry_at_reads_a_fresh_row_as_due_and_a_postponed_one_as_waiting() {
        let at = t("2025-01-31T22:00:00Z");
        let mut row = OutboxRow {
            id: 1,
            event: OutboxEvent {
                kind: EventKind::CallStarted,
                call_id: Some("a".into()),
                occurred_at: at,
                payload: Value::Null,
                target: Target::Primary,
            },
            attempts: 0,
            next_attempt_at: at,
            delivered_at: None,
            last_error: None,
            lease_until: None,
        };
        assert_eq!(row.retry_at(), None);
        row.next_attempt_at = t("2025-01-31T22:02:00Z");
        assert_eq!(row.retry_at(), Some(t("2025-01-31T22:02:00Z")));
        row.next_attempt_at = at;
        row.attempts = 1;
        assert_eq!(row.retry_at(), Some(at));
    }
}
