//! What the line remembers about a call, and what it owes the helpdesk: caller identity, repeat
//! detection, the client and its billing terms, the call detail record, voicemails with their
//! callback promise, and the webhook events for each.
//!
//! The store is synchronous (SQLite); every call goes through `spawn_blocking` so a slow disk never
//! stalls a call's media. A store failure (disk full, read-only data directory) is logged and the
//! call goes on: callers still get their prompts, and a CDR the start could not write is inserted
//! whole at the end. What the call learns as it goes (facts, the voicemail, the final record) is
//! written in order by the call's own writer ([`super::call_writer`]), which retries a full disk.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tracing::{error, info, warn};

use super::call_writer::{CallWriter, VoicemailJob};
use crate::billing::{self, Client};
use crate::notify::Notifier;
use crate::notify::event::{CallEnded, CallStarted, OutboxEvent, RepeatCaller, VoicemailRecorded};
use crate::repeat::{self, CallerId, RepeatPolicy};
use crate::sip::IncomingCall;
use crate::store::{CallStart, Cdr, NewVoicemail, Outcome, Store, blocking, cdr_json};

/// Process-wide memory settings and handles.
pub struct Memory {
    /// `None` when the store could not be opened: calls are served, nothing is remembered.
    pub store: Option<Arc<dyn Store>>,
    pub notifier: Option<Notifier>,
    pub clients: Vec<Client>,
    pub repeat: RepeatPolicy,
    pub default_country: Option<String>,
    pub trusted_proxies: Vec<IpAddr>,
    pub after_hours_multiplier: f64,
    pub callback_sla: Duration,
    /// The calendar clock every record and event is stamped with.
    pub clock: crate::clock::Clock,
    /// Where failures an operator must act on (a full disk) are raised.
    pub health: crate::health::Health,
    /// `[cluster] node`: recorded with each call, so a restart closes only this node's calls.
    pub node: String,
}

/// One call's record, filled in as the call goes.
#[derive(Clone, Debug)]
pub struct CallRecord {
    pub call_id: String,
    pub caller: CallerId,
    pub caller_raw: String,
    pub called: String,
    pub client: Option<Client>,
    pub started_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub after_hours: bool,
    pub repeat: bool,
    /// The number agreed to the terms on a call within the repeat window (`call_started` says).
    pub agreed_recently: bool,
    pub rate_multiplier: f64,
    /// The incident announced to this call, if the flow plays it: (prompt, incident key).
    pub incident: Option<(String, String)>,
    /// Where the call's facts, voicemail and final record are written, in order.
    pub writer: CallWriter,
    /// Where a failure to keep the call's voicemail is raised.
    pub health: crate::health::Health,
}

impl CallRecord {
    pub fn agreement(&self) -> bool {
        self.client.as_ref().is_some_and(|c| c.agreement)
    }
}

/// How the call went, from the call task.
#[derive(Debug, Default)]
pub struct CallSummary {
    pub vars: BTreeMap<String, String>,
    pub digits: String,
    pub voicemail: bool,
    pub bridged: bool,
    /// The desk member who accepted the call.
    pub answered_by: Option<String>,
    /// The incident (key) whose announcement the caller heard.
    pub incident: Option<String>,
    /// Time connected to staff, from the moment they pressed 1.
    pub talk: Duration,
    pub answered: bool,
    pub rejected: bool,
    /// The flow rang the desk (whatever came of it).
    pub desk_rung: bool,
    /// A voicemail could not be recorded (the directory cannot be written).
    pub voicemail_failed: bool,
    /// The caller reached the tone but left no message (too short or all silence).
    pub no_message: bool,
    pub end_reason: String,
}

impl Memory {
    /// Who is calling: the P-Asserted-Identity of a trusted proxy, else the From user part.
    pub fn identify(&self, incoming: &IncomingCall) -> (CallerId, String) {
        let trusted = self.trusted_proxies.contains(&incoming.source.ip());
        let raw = match (&incoming.asserted_identity, trusted) {
            (Some(pai), true) => pai.user().to_string(),
            _ => incoming.from.user().to_string(),
        };
        let id = repeat::normalise(&raw, self.default_country.as_deref());
        (id, raw)
    }

    /// The record for a new call, with its client and the rate that applies.
    pub fn new_record(
        &self,
        incoming: &IncomingCall,
        called: &str,
        after_hours: bool,
    ) -> CallRecord {
        let (caller, caller_raw) = self.identify(incoming);
        let client = billing::client_for(&self.clients, &caller).cloned();
        let rate_multiplier =
            billing::rate_multiplier(after_hours, client.as_ref(), self.after_hours_multiplier);
        CallRecord {
            call_id: incoming.call_id.clone(),
            caller,
            caller_raw,
            called: called.to_string(),
            client,
            started_at: self.clock.now(),
            answered_at: None,
            after_hours,
            repeat: false,
            agreed_recently: false,
            rate_multiplier,
            incident: None,
            writer: CallWriter::default(),
            health: self.health.clone(),
        }
    }

    /// Records the start; decides whether this is a repeat caller and alerts at once if so.
    pub async fn call_started(&self, rec: &mut CallRecord) {
        let Some(store) = self.store.clone() else {
            return;
        };
        // Started even when the start is not recorded: the final record is then inserted whole.
        rec.writer = CallWriter::start(
            store.clone(),
            self.notifier.clone(),
            self.health.clone(),
            rec.call_id.clone(),
        );
        let start = CallStart {
            call_id: rec.call_id.clone(),
            caller: rec.caller.clone(),
            caller_raw: rec.caller_raw.clone(),
            called: rec.called.clone(),
            client: rec.client.as_ref().map(|c| c.name.clone()),
            started_at: rec.started_at,
            after_hours: rec.after_hours,
            agreement: rec.agreement(),
            rate_multiplier: rec.rate_multiplier,
            repeat_rule: std::sync::Arc::new(self.repeat),
            node: self.node.clone(),
        };
        let outcome = match blocking(&store, move |s| s.call_started(&start)).await {
            Ok(o) => o,
            Err(e) => {
                error!(call_id = %rec.call_id, error = %e, "store: call start not recorded");
                return;
            }
        };
        rec.repeat = outcome.repeat;
        rec.agreed_recently = outcome.agreed_recently;
        let caller = rec.caller.as_str().to_string();
        self.emit(OutboxEvent::call_started(
            &rec.call_id,
            rec.started_at,
            CallStarted {
                caller: caller.clone(),
                called: rec.called.clone(),
                client: rec.client.as_ref().map(|c| c.name.clone()),
                after_hours: rec.after_hours,
                repeat: rec.repeat,
            },
        ))
        .await;
        if rec.repeat {
            let previous = outcome
                .previous_calls
                .first()
                .map(|p| p.started_at)
                .unwrap_or(rec.started_at);
            let in_window = outcome.calls_in_window;
            warn!(call_id = %rec.call_id, caller = %crate::text::Escaped(&caller), event = "repeat_caller",
                  calls_in_window = in_window, "repeat caller: alerting staff");
            self.emit(OutboxEvent::repeat_caller(
                &rec.call_id,
                rec.started_at,
                RepeatCaller {
                    caller,
                    previous_call_at: previous,
                    calls_in_window: in_window,
                },
            ))
            .await;
        }
    }

    /// Incidents active now, oldest first. None without a store, or when it cannot be read:
    /// the call goes on without an announcement rather than waiting on its memory.
    pub async fn active_incidents(&self) -> Vec<crate::store::Incident> {
        let Some(store) = self.store.clone() else {
            return Vec::new();
        };
        let now = self.clock.now();
        match blocking(&store, move |s| s.active_incidents(now)).await {
            Ok(list) => list,
            Err(e) => {
                error!(error = %e, "cannot read incidents; the call goes on without one");
                Vec::new()
            }
        }
    }

    /// Whether staff may call `number` back through the line: it left a voicemail that is not
    /// yet answered, or was answered less than `window` ago. No store: nobody may.
    pub async fn callback_allowed(&self, number: &str, window: Duration) -> bool {
        let Some(store) = self.store.clone() else {
            return false;
        };
        let number = number.to_string();
        let since = self
            .clock
            .now()
            .checked_sub(jiff::SignedDuration::try_from(window).unwrap_or_default())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        match blocking(&store, move |s| s.voicemails()).await {
            Ok(vms) => vms
                .iter()
                .any(|v| v.caller == number && v.acked_at.is_none_or(|acked| acked >= since)),
            Err(e) => {
                error!(error = %e, "cannot read voicemails; call-back refused");
                false
            }
        }
    }

    /// A desk call-back to `number` was answered: its voicemails are called back (their SLA
    /// timers stop). Returns how many were acknowledged.
    pub async fn callback_answered(&self, number: &str, staff: &str) -> u32 {
        let Some(store) = self.store.clone() else {
            return 0;
        };
        let number_owned = number.to_string();
        let now = self.clock.now();
        match blocking(&store, move |s| {
            s.ack_voicemails_for_number(&number_owned, now)
        })
        .await
        {
            Ok(n) => n,
            Err(e) => {
                error!(error = %e, %number, %staff, "call-back answered but the voicemails could not be marked; the callback timer may still escalate");
                0
            }
        }
    }

    /// Stores a finished voicemail, starts its callback timer and tells the helpdesk.
    pub async fn voicemail_recorded(
        &self,
        rec: &CallRecord,
        path: &Path,
        duration_ms: u64,
        ticket: Option<String>,
    ) {
        let created_at = self.clock.now();
        let due = crate::sla::due_at(created_at, self.callback_sla);
        let vm = NewVoicemail {
            call_id: rec.call_id.clone(),
            caller: rec.caller.as_str().to_string(),
            client: rec.client.as_ref().map(|c| c.name.clone()),
            ticket: ticket.clone(),
            path: path.to_path_buf(),
            duration_ms,
            created_at,
        };
        if !rec.writer.enabled() {
            error!(call_id = %rec.call_id, path = %path.display(),
                   "store unavailable: voicemail kept on disk only, no callback timer");
            return;
        }
        // The store puts the voicemail's id in the event, in the transaction that stores both.
        let event = OutboxEvent::voicemail_recorded(
            &rec.call_id,
            created_at,
            VoicemailRecorded {
                voicemail_id: 0,
                caller: rec.caller.as_str().to_string(),
                client: rec.client.as_ref().map(|c| c.name.clone()),
                agreement: rec.agreement(),
                after_hours: rec.after_hours,
                rate_multiplier: Some(rec.rate_multiplier),
                ticket,
                duration_ms,
                path: path.display().to_string(),
                callback_due_at: due,
            },
        );
        rec.writer.voicemail(VoicemailJob {
            vm,
            due,
            event: Some(event),
        });
    }

    /// A flow `webhook` node: queues a custom event; true when it is owed (durably queued).
    pub async fn custom_event(
        &self,
        name: &str,
        call_id: &str,
        vars: &BTreeMap<String, String>,
    ) -> bool {
        let Some(n) = &self.notifier else {
            return false;
        };
        match n
            .enqueue(OutboxEvent::custom(name, call_id, self.clock.now(), vars))
            .await
        {
            Ok(_) => true,
            Err(e) => {
                error!(call_id, event = name, error = %e, "webhook event not queued");
                false
            }
        }
    }

    /// Completes the CDR and sends `call_ended`.
    pub async fn call_ended(&self, rec: &CallRecord, s: &CallSummary) {
        let outcome = outcome_of(rec, s);
        let ended_at = self.clock.now();
        let cdr = Cdr {
            call_id: rec.call_id.clone(),
            caller: rec.caller.as_str().to_string(),
            caller_raw: rec.caller_raw.clone(),
            called: rec.called.clone(),
            client: rec.client.as_ref().map(|c| c.name.clone()),
            started_at: rec.started_at,
            answered_at: rec.answered_at,
            ended_at: Some(ended_at),
            // Talk time runs from the staff member's accept; billed by started second.
            talk_seconds: u64::try_from(s.talk.as_millis().div_ceil(1000)).unwrap_or(u64::MAX),
            after_hours: rec.after_hours,
            agreement: rec.agreement(),
            rate_multiplier: rec.rate_multiplier,
            agreed_terms: s.vars.get("agreed").is_some_and(|v| v == "true"),
            digits: s.digits.clone(),
            ticket: s.vars.get("ticket").filter(|t| !t.is_empty()).cloned(),
            outcome: Some(outcome),
            end_reason: s.end_reason.clone(),
            repeat: rec.repeat,
            answered_by: s.answered_by.clone(),
            incident: s.incident.clone(),
        };
        let payload = cdr_json(&cdr);
        let event = OutboxEvent::call_ended(
            &rec.call_id,
            ended_at,
            CallEnded {
                cdr: payload.clone(),
            },
        );
        // Logged once the record is written (tests and operators read the store after it).
        let written = if rec.writer.enabled() {
            rec.writer.ended(cdr, Some(event)).await
        } else {
            self.emit(event).await;
            false
        };
        info!(call_id = %rec.call_id, event = "cdr", outcome = outcome.as_str(),
              rate_multiplier = rec.rate_multiplier, after_hours = rec.after_hours,
              written, client = rec.client.as_ref().map(|c| c.name.as_str()).unwrap_or(""), "call detail record");
    }

    async fn emit(&self, event: OutboxEvent) {
        let Some(n) = &self.notifier else {
            return;
        };
        let kind = event.kind.as_str().to_string();
        if let Err(e) = n.enqueue(event).await {
            error!(event = %kind, error = %e, "webhook event not queued");
        }
    }
}

/// The outcome a call's CDR records. What happened wins over when: a call bridged, taken to
/// voicemail or abandoned at the desk in business hours is recorded as such; `closed_hours` is
/// for calls answered in hours that the flow sent on without involving the desk.
pub fn outcome_of(rec: &CallRecord, s: &CallSummary) -> Outcome {
    if s.rejected {
        Outcome::Rejected
    } else if s.bridged {
        Outcome::Bridged
    } else if s.voicemail {
        Outcome::Voicemail
    } else if s.voicemail_failed {
        Outcome::VoicemailFailed
    } else if s.no_message {
        Outcome::NoMessage
    } else if !rec.after_hours && s.answered && !s.desk_rung {
        Outcome::ClosedHours
    } else {
        Outcome::Abandoned
    }
}
