//! Webhooks: telling the helpdesk what happened, through a durable outbox.
//!
//! Every event is written to the store's outbox *before* anything is sent; a worker task
//! ([`Notifier::spawn`]) posts it to the configured endpoint and marks it delivered only after a
//! 2xx answer. Because the outbox lives in the store, a restart (or a crash) loses nothing: the
//! next worker picks up where the last one stopped.
//!
//! # Delivery guarantees
//! - **At least once.** A crash between the receiver's 2xx and `mark_delivered` sends that event
//!   again after the restart. Receivers deduplicate on `X-Ivr-Delivery` (equal to the body's `id`).
//! - **In order per call and target.** Events of one call to one target (primary or escalation)
//!   are delivered strictly in the order they were queued: while the oldest undelivered event of a
//!   call is failing, that call's later events wait. Other calls are not held up. Primary and
//!   escalation are separate queues, so a dead helpdesk endpoint never delays an escalation.
//!   Events without a call id are independent of each other.
//! - **Never dropped.** Failures (non-2xx, timeout, connection refused, redirects) are retried
//!   with exponential backoff and jitter ([`BackoffPolicy`]: 1 s doubling to 5 min, ±20%), for
//!   ever. An event whose target has no endpoint configured stays in the outbox (logged once) and
//!   goes out once an endpoint is configured and the process restarts.
//! - Events left out by an endpoint's `events` filter are never queued (the admin asked not to
//!   get them); `callback_overdue` is always queued.
//! - HTTP or HTTPS. HTTPS certificates are checked against the system's CAs and
//!   `webhooks.ca_file` ([`tls`]); a rejected certificate is a failure like any other (logged,
//!   kept in the row's `last_error` in plain words, retried with backoff).
//! - Custom headers per target (`webhooks.headers`, `webhooks.escalation_headers`), e.g. a
//!   helpdesk API's `Authorization: Bearer ...`; their values never reach a log.
//!
//! # The request
//! `POST <url>` with `Content-Type: application/json` and these headers:
//! - `X-Ivr-Event`: the event name (`call_started`, ...).
//! - `X-Ivr-Delivery`: the outbox id, the idempotency key (same as the body's `id`).
//! - `X-Ivr-Timestamp`: Unix seconds at the time of this attempt.
//! - `X-Ivr-Signature`: `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, only when a
//!   secret is configured. Check it with [`verify`] (or the same three lines in any language),
//!   and reject timestamps far from your clock to stop replays.
//! - Any headers configured for the target (`webhooks.headers` or `escalation_headers`).
//!
//! The body:
//! ```json
//! {"event": "voicemail_recorded", "id": 42, "call_id": "a84b4c76e66710", "occurred_at": "2025-01-31T22:04:05Z", "data": {...}}
//! ```
//! `call_id` is the SIP Call-ID of the call the event belongs to (`null` when there is none);
//! `occurred_at` is RFC 3339 in UTC. `data` per event:
//!
//! | event | `data` fields |
//! | --- | --- |
//! | `call_started` | `caller` (E.164 or SIP user, `"anonymous"`), `called` (dialled number), `client` (name or `null`), `after_hours` (bool), `repeat` (bool: a repeat caller) |
//! | `repeat_caller` | `caller`, `previous_call_at` (RFC 3339), `calls_in_window` (every call from this number within `callers.repeat_window_min`, this one included: a third call says 3) |
//! | `voicemail_recorded` | `voicemail_id`, `caller`, `client` (or `null`), `agreement` (bool: the client has an After Hours Escalation Agreement), `after_hours` (bool), `rate_multiplier` (the call's billing multiplier, `null` when unknown), `ticket` (or `null`), `duration_ms`, `path` (WAV file on the IVR host), `callback_due_at` (RFC 3339: when `callback_overdue` fires unless acknowledged) |
//! | `voicemail_transcribed` | `voicemail_id`, `caller`, `client` (or `null`), `ticket` (or `null`), `transcript` (the text, `""` when nothing was recognised; `null` when transcription failed), `engine` (`pocketsphinx`, `command:PROGRAM`), `error` (why it failed, or `null`). Sent once per voicemail, after its `voicemail_recorded`, when the transcription worker stores the outcome (`[transcription]`) |
//! | `call_ended` | `cdr`: the call detail record (the same columns as `ivr cdr export`) |
//! | `callback_overdue` | `voicemail_id`, `caller`, `ticket` (or `null`), `recorded_at`, `due_at` (both RFC 3339); sent to the escalation endpoint, or the primary one when none is set |
//! | custom (a flow's `webhook` node) | the call's variables, name → string (`caller`, `called`, `digits`, `ticket`, ...) |
//!
//! # Parts
//! - [`event`]: the typed `data` of each event, the [`OutboxEvent`] constructors and the body.
//! - [`sign`]: the signature ([`sign()`](sign::sign), [`verify`]).
//! - [`endpoint`]: [`Endpoint`] (URL, secret, filter, headers) and [`WebhookTargets`].
//! - [`tls`]: the CAs HTTPS trusts, and certificate errors in words.
//! - [`backoff`]: the pure retry schedule.
//! - [`plan`]: the pure per-round decision (what to send now, what waits, when to wake).
//! - The outbox itself is the store's: [`crate::store::OutboxStore`], whose rows are
//!   [`crate::store::OutboxRow`]s of [`OutboxEvent`]s.
//! - [`worker`]: the tokio shell that posts with `reqwest`.

pub mod backoff;
pub mod endpoint;
pub mod event;
pub mod mail_config;
pub mod mail_text;
pub mod plan;
pub mod sign;
pub mod smtp;
pub mod tls;
pub mod worker;

pub use backoff::BackoffPolicy;
pub use endpoint::{Endpoint, NotifyError, WebhookTargets};
pub use event::{
    CallEnded, CallStarted, CallbackOverdue, EventKind, OutboxEvent, RepeatCaller, Target,
    VoicemailRecorded, VoicemailTranscribed,
};
pub use sign::verify;
pub use worker::{DeliveryPolicy, Notifier};
