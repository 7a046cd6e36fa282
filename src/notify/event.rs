//! What the IVR tells the helpdesk: the typed `data` of each built-in event, the constructors
//! of each [`OutboxEvent`], and the JSON body posted for it (documented in [`crate::notify`]).
//! The event itself, its kinds and targets are the store's model (`crate::store::event`),
//! re-exported here.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Serialize, Serializer};
use serde_json::Value;

pub use crate::store::{EventKind, OutboxEvent, Target};

/// `data` of `call_started`.
#[derive(Clone, Debug, Serialize)]
pub struct CallStarted {
    pub caller: String,
    pub called: String,
    pub client: Option<String>,
    pub after_hours: bool,
    pub repeat: bool,
}

/// `data` of `repeat_caller`.
#[derive(Clone, Debug, Serialize)]
pub struct RepeatCaller {
    pub caller: String,
    #[serde(serialize_with = "rfc3339")]
    pub previous_call_at: Timestamp,
    /// Calls from this number within the window, this one included.
    pub calls_in_window: u32,
}

/// `data` of `voicemail_recorded`.
#[derive(Clone, Debug, Serialize)]
pub struct VoicemailRecorded {
    pub voicemail_id: i64,
    pub caller: String,
    pub client: Option<String>,
    /// The client has an After Hours Escalation Agreement.
    pub agreement: bool,
    /// The call came outside business hours.
    pub after_hours: bool,
    /// The rate multiplier the billing rules set for the call; `None` when unknown (a message
    /// recovered after a crash whose call left no record).
    pub rate_multiplier: Option<f64>,
    pub ticket: Option<String>,
    pub duration_ms: u64,
    pub path: String,
    #[serde(serialize_with = "rfc3339")]
    pub callback_due_at: Timestamp,
}

/// `data` of `call_ended`: the CDR as the store serialises it.
#[derive(Clone, Debug, Serialize)]
pub struct CallEnded {
    pub cdr: Value,
}

/// `data` of `callback_overdue`.
#[derive(Clone, Debug, Serialize)]
pub struct CallbackOverdue {
    pub voicemail_id: i64,
    pub caller: String,
    pub ticket: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub recorded_at: Timestamp,
    #[serde(serialize_with = "rfc3339")]
    pub due_at: Timestamp,
}

/// `data` of `voicemail_transcribed`: exactly one of `transcript` and `error` is set.
#[derive(Clone, Debug, Serialize)]
pub struct VoicemailTranscribed {
    pub voicemail_id: i64,
    pub caller: String,
    pub client: Option<String>,
    pub ticket: Option<String>,
    /// The text (empty when the engine recognised nothing), or `null` when it failed.
    pub transcript: Option<String>,
    pub engine: String,
    /// Why there is no transcript, or `null`.
    pub error: Option<String>,
}

// The constructors live next to the payload types they serialise; an inherent impl may sit in
// any module of the crate that defines the type.
impl OutboxEvent {
    pub fn call_started(call_id: &str, at: Timestamp, data: CallStarted) -> Self {
        Self::build(
            EventKind::CallStarted,
            Some(call_id),
            at,
            Target::Primary,
            data,
        )
    }

    pub fn repeat_caller(call_id: &str, at: Timestamp, data: RepeatCaller) -> Self {
        Self::build(
            EventKind::RepeatCaller,
            Some(call_id),
            at,
            Target::Primary,
            data,
        )
    }

    pub fn voicemail_recorded(call_id: &str, at: Timestamp, data: VoicemailRecorded) -> Self {
        let kind = EventKind::VoicemailRecorded;
        Self::build(kind, Some(call_id), at, Target::Primary, data)
    }

    /// The same event for another target (the voicemail's mail is its `voicemail_recorded`
    /// addressed to [`Target::Email`]).
    pub fn to_target(&self, target: Target) -> Self {
        OutboxEvent {
            target,
            ..self.clone()
        }
    }

    /// For the primary target, in the voicemail's call's order (after its `voicemail_recorded`).
    pub fn voicemail_transcribed(call_id: &str, at: Timestamp, data: VoicemailTranscribed) -> Self {
        let kind = EventKind::VoicemailTranscribed;
        Self::build(kind, Some(call_id), at, Target::Primary, data)
    }

    pub fn call_ended(call_id: &str, at: Timestamp, data: CallEnded) -> Self {
        Self::build(
            EventKind::CallEnded,
            Some(call_id),
            at,
            Target::Primary,
            data,
        )
    }

    /// Always for the escalation target (the worker falls back to primary when it is unset).
    pub fn callback_overdue(call_id: Option<&str>, at: Timestamp, data: CallbackOverdue) -> Self {
        let kind = EventKind::CallbackOverdue;
        Self::build(kind, call_id, at, Target::Escalation, data)
    }

    /// A flow `webhook` node's event: `data` is the call's variables.
    pub fn custom(
        name: &str,
        call_id: &str,
        at: Timestamp,
        vars: &BTreeMap<String, String>,
    ) -> Self {
        let kind = EventKind::from_name(name);
        Self::build(kind, Some(call_id), at, Target::Primary, vars)
    }

    fn build(
        kind: EventKind,
        call_id: Option<&str>,
        at: Timestamp,
        target: Target,
        data: impl Serialize,
    ) -> Self {
        // The data types above are plain structs and string maps, which always serialise; the
        // fallback only keeps this infallible without a panic path.
        let payload = serde_json::to_value(data)
            .unwrap_or_else(|e| serde_json::json!({ "serialisation_error": e.to_string() }));
        OutboxEvent {
            kind,
            call_id: call_id.map(str::to_string),
            occurred_at: at,
            payload,
            target,
        }
    }
}

/// The JSON body posted for outbox row `id`, fields in the documented order.
pub fn body(id: i64, event: &OutboxEvent) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        event: &'a str,
        id: i64,
        call_id: Option<&'a str>,
        #[serde(serialize_with = "rfc3339")]
        occurred_at: Timestamp,
        data: &'a Value,
    }
    let b = Body {
        event: event.kind.as_str(),
        id,
        call_id: event.call_id.as_deref(),
        occurred_at: event.occurred_at,
        data: &event.payload,
    };
    // A struct of strings, an integer and a `Value` always serialises (`Value` keys are
    // strings); the fallback keeps this free of a panic path.
    serde_json::to_vec(&b)
        .unwrap_or_else(|e| format!("{{\"serialisation_error\":{:?}}}", e.to_string()).into_bytes())
}

/// Timestamps in bodies are RFC 3339 in UTC (jiff's `Display` of a `Timestamp`).
fn rfc3339<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn body_shape_voicemail() {
        let ev = OutboxEvent::voicemail_recorded(
            "abc@host",
            t("2025-01-31T22:04:05Z"),
            VoicemailRecorded {
                voicemail_id: 7,
                caller: "+15551234567".into(),
                client: Some("Acme".into()),
                agreement: true,
                after_hours: true,
                rate_multiplier: Some(1.5),
                ticket: None,
                duration_ms: 12_500,
                path: "var/voicemail/7.wav".into(),
                callback_due_at: t("2025-01-31T22:24:05Z"),
            },
        );
        let body = String::from_utf8(body(42, &ev)).unwrap();
        // The envelope keeps its documented order; `data` is a JSON object whose keys come out
        // sorted (serde_json's default map).
        assert_eq!(
            body,
            r#"{"event":"voicemail_recorded","id":42,"call_id":"abc@host","occurred_at":"2025-01-31T22:04:05Z","data":{"after_hours":true,"agreement":true,"callback_due_at":"2025-01-31T22:24:05Z","caller":"+15551234567","client":"Acme","duration_ms":12500,"path":"var/voicemail/7.wav","rate_multiplier":1.5,"ticket":null,"voicemail_id":7}}"#
        );
    }

    #[test]
    fn overdue_goes_to_escalation_and_custom_carries_vars() {
        let at = t("2025-01-31T22:24:05Z");
        let ev = OutboxEvent::callback_overdue(
            None,
            at,
            CallbackOverdue {
                voicemail_id: 7,
                caller: "+15551234567".into(),
                ticket: Some("T-1".into()),
                recorded_at: t("2025-01-31T22:04:05Z"),
                due_at: at,
            },
        );
        assert_eq!(ev.target, Target::Escalation);
        let v: Value = serde_json::from_slice(&body(1, &ev)).unwrap();
        assert_eq!(v["call_id"], Value::Null);
        assert_eq!(v["data"]["due_at"], "2025-01-31T22:24:05Z");

        let vars = BTreeMap::from([("caller".to_string(), "+1555".to_string())]);
        let ev = OutboxEvent::custom("after_hours_request", "c1", at, &vars);
        assert_eq!(ev.kind.as_str(), "after_hours_request");
        let v: Value = serde_json::from_slice(&body(2, &ev)).unwrap();
        assert_eq!(v["event"], "after_hours_request");
        assert_eq!(v["data"]["caller"], "+1555");
    }
}
