//! The delivery worker: the tokio shell around [`plan`] and
//! [`BackoffPolicy`]. It reads the outbox, posts due rows with `reqwest`, writes the outcome
//! back, and sleeps until the earliest retry or until [`Notifier::wake`] (called on every
//! enqueue). All state is in the store, so a new worker after a restart carries on exactly.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use tokio::sync::{Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use super::backoff::BackoffPolicy;
use super::endpoint::{Endpoint, NotifyError, WebhookTargets};
use super::event::{self, OutboxEvent, Target};
use super::mail_text::{MailReadiness, Transcript, VoicemailFacts, readiness};
use super::plan::{leased_elsewhere_wake, plan};
use super::sign::sign;
use super::smtp::Mailer;
use super::tls;
use crate::clock::Clock;
use crate::store::{OutboxRow, OutboxStore, StoreError, VoicemailStore, blocking};

/// Tunables of the worker; the defaults are the production values, tests shorten them.
#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    pub backoff: BackoffPolicy,
    /// Per request, connection included: a receiver slower than this counts as failed.
    pub request_timeout: Duration,
    /// Rows read per round.
    pub batch: usize,
    /// Requests in flight at once (each to a different call's queue).
    pub concurrency: usize,
    /// Longest sleep between rounds, so a wall-clock jump cannot stall the outbox.
    pub max_sleep: Duration,
    /// Wait after a store error before trying again.
    pub store_retry: Duration,
    /// When rows are due and failures retried: the clock the events were stamped with.
    pub clock: Clock,
    /// `[cluster] node`: whose lease a claimed event carries (nodes sharing a database).
    pub node: String,
    /// How long a claimed event stays this node's: long enough for one delivery attempt with
    /// its HTTP or SMTP timeout (twice the longer one), short enough that another node takes
    /// over soon when this one dies holding it.
    pub lease: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            backoff: BackoffPolicy::default(),
            request_timeout: Duration::from_secs(5),
            batch: 256,
            concurrency: 8,
            max_sleep: Duration::from_secs(30),
            store_retry: Duration::from_secs(1),
            clock: Clock::system(),
            node: "ivr".into(),
            lease: Duration::from_secs(10),
        }
    }
}

struct Shared {
    store: Arc<dyn OutboxStore>,
    /// Where a voicemail's mail finds its transcript (with a mailer).
    voicemails: Option<Arc<dyn VoicemailStore>>,
    targets: WebhookTargets,
    /// `[email]`: voicemails' mails, when configured.
    mailer: Option<Arc<Mailer>>,
    policy: DeliveryPolicy,
    wake: Notify,
}

/// The handle calls use to queue events; cheap to clone. [`spawn`](Self::spawn) starts the
/// worker that delivers them.
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
}

impl Notifier {
    pub fn new(
        store: Arc<dyn OutboxStore>,
        targets: WebhookTargets,
        policy: DeliveryPolicy,
    ) -> Self {
        Self::build(store, None, targets, None, policy)
    }

    /// [`new`](Self::new) that also mails each kept voicemail, with `[email]`'s `mailer`; a
    /// mail reads its voicemail's transcript from `voicemails`.
    pub fn with_mailer(
        store: Arc<dyn OutboxStore>,
        voicemails: Arc<dyn VoicemailStore>,
        targets: WebhookTargets,
        mailer: Option<Mailer>,
        policy: DeliveryPolicy,
    ) -> Self {
        Self::build(store, Some(voicemails), targets, mailer, policy)
    }

    fn build(
        store: Arc<dyn OutboxStore>,
        voicemails: Option<Arc<dyn VoicemailStore>>,
        targets: WebhookTargets,
        mailer: Option<Mailer>,
        policy: DeliveryPolicy,
    ) -> Self {
        Notifier {
            shared: Arc::new(Shared {
                store,
                voicemails,
                targets,
                mailer: mailer.map(Arc::new),
                policy,
                wake: Notify::new(),
            }),
        }
    }

    pub fn targets(&self) -> &WebhookTargets {
        &self.shared.targets
    }

    /// Whether voicemails are mailed.
    pub fn mails(&self) -> bool {
        self.shared.mailer.is_some()
    }

    /// The outbox rows a kept voicemail owes, from its `voicemail_recorded`: the webhook's
    /// (unless its endpoint filters it out) and, with `[email]`, the mail's. The store queues
    /// them with the voicemail in one transaction.
    pub fn voicemail_events(&self, event: &OutboxEvent) -> Vec<OutboxEvent> {
        let mut rows = Vec::new();
        if self.shared.targets.accepts(event) {
            rows.push(event.clone());
        }
        if self.mails() {
            rows.push(event.to_target(Target::Email));
        }
        rows
    }

    /// Tells the worker to look at the outbox now (something was queued behind its back, e.g.
    /// by the SLA escalation).
    pub fn wake(&self) {
        // `notify_one` keeps a permit when the worker is busy, so a wake-up during a round is
        // not lost: the next sleep ends at once.
        self.shared.wake.notify_one();
    }

    /// Queues `event` durably and wakes the worker. `Ok(None)` when the endpoint's `events`
    /// filter leaves it out. Once this returns `Ok`, the event is owed (it survives restarts).
    pub async fn enqueue(&self, event: OutboxEvent) -> Result<Option<i64>, StoreError> {
        if !self.shared.targets.accepts(&event) {
            debug!(
                event = event.kind.as_str(),
                "webhook event filtered out by config"
            );
            return Ok(None);
        }
        let routable = self.shared.targets.route(event.target).is_some();
        let id = blocking(&self.shared.store, move |s| s.enqueue(&event)).await?;
        // With no endpoint for its target the event waits in the outbox for a configured URL
        // and a restart; waking the worker for it would only re-read the backlog.
        if routable {
            self.wake();
        }
        Ok(Some(id))
    }

    /// [`enqueue`](Self::enqueue) for synchronous callers (blocks on the store write).
    pub fn enqueue_blocking(&self, event: &OutboxEvent) -> Result<Option<i64>, StoreError> {
        if !self.shared.targets.accepts(event) {
            return Ok(None);
        }
        let id = self.shared.store.enqueue(event)?;
        self.wake();
        Ok(Some(id))
    }

    /// Starts the delivery worker; it runs until `shutdown` completes, then makes one last
    /// round (for events queued while calls drained) and returns. Undelivered rows stay in the
    /// store for the next start.
    pub fn spawn(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<JoinHandle<()>, NotifyError> {
        let tls = tls::client_config(self.shared.targets.ca_file.as_deref())?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(self.shared.policy.request_timeout)
            // A redirect would turn the POST into a GET elsewhere; a 3xx counts as a failure
            // and the admin fixes the URL.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(NotifyError::Client)?;
        let shared = Arc::clone(&self.shared);
        Ok(tokio::spawn(run(shared, client, shutdown)))
    }
}

/// What the worker does after a round.
enum Next {
    /// Something was sent: the queues moved, plan again at once.
    Again,
    /// Nothing due: sleep until this retry (or `max_sleep` / a wake-up).
    At(Option<Timestamp>),
}

async fn run(shared: Arc<Shared>, client: reqwest::Client, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned = HashSet::new();
    let policy = &shared.policy;
    info!(
        primary = shared.targets.primary.as_ref().map(Endpoint::url_for_log),
        escalation = shared
            .targets
            .escalation
            .as_ref()
            .map(Endpoint::url_for_log),
        email = shared.mailer.as_deref().map(Mailer::server_for_log),
        "webhook worker started"
    );
    loop {
        let pause = match round(&shared, &client, &mut warned).await {
            Ok(Next::Again) => Duration::ZERO,
            Ok(Next::At(at)) => until(at, policy.clock.now(), policy.max_sleep),
            Err(e) => {
                // Rows are unchanged on a store error, so waiting and retrying loses nothing;
                // the pause keeps a broken store (or a failed mark after a 2xx) from spinning.
                warn!(error = %e, "webhook outbox: store error, retrying");
                policy.store_retry
            }
        };
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
    // Events queued while calls drained (their `call_ended`) get one last try before exit; a
    // dead endpoint costs at most one request timeout here, and whatever is left stays queued.
    if let Err(e) = round(&shared, &client, &mut warned).await {
        warn!(error = %e, "webhook outbox: store error during the last round");
    }
    info!("webhook worker stopped");
}

fn until(at: Option<Timestamp>, now: Timestamp, max: Duration) -> Duration {
    let Some(at) = at else { return max };
    let d = at.duration_since(now);
    Duration::try_from(d).unwrap_or(Duration::ZERO).min(max)
}

async fn round(
    shared: &Arc<Shared>,
    client: &reqwest::Client,
    warned: &mut HashSet<Target>,
) -> Result<Next, StoreError> {
    let policy = &shared.policy;
    // At most as many as go out at once: each claimed row is attempted straight away, so one
    // attempt's lease covers it (a bigger batch would wait behind the semaphore, lease ticking).
    let claim = u32::try_from(policy.batch.min(policy.concurrency).max(1)).unwrap_or(u32::MAX);
    let now = policy.clock.now();
    let lease_until = now
        .checked_add(SignedDuration::try_from(policy.lease).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX);
    let node = policy.node.clone();
    // The due queue heads, leased to this node: with several nodes on one database each event
    // goes to one of them (a dead holder's lease runs out and another node takes the row).
    let rows = blocking(&shared.store, move |s| {
        s.claim_outbox(&node, now, lease_until, claim)
    })
    .await?;
    let mut r = plan(rows, now, |t| routable(shared, t));
    if r.send.is_empty() {
        // Nothing to send now: when is the next retry due? Every queue's head, due or not
        // (asked at the end of time), read without leasing; only its wake-up time is used.
        let batch = u32::try_from(policy.batch.max(1)).unwrap_or(u32::MAX);
        let heads = blocking(&shared.store, move |s| {
            s.pending_outbox(Timestamp::MAX, batch)
        })
        .await?;
        let now = policy.clock.now();
        let peek = plan(heads, now, |t| routable(shared, t));
        // Due but leased to another node (or claimed just after ours): look again when its
        // lease runs out rather than sleeping the longest pause.
        let leased = leased_elsewhere_wake(&peek.send, now, lease_until);
        r.wake_at = [r.wake_at, peek.wake_at, leased]
            .into_iter()
            .flatten()
            .min();
    }
    for row in &r.unrouted {
        // Once per target per process: these events wait for an endpoint to be configured.
        if warned.insert(row.event.target) {
            warn!(
                target = row.event.target.as_str(),
                outbox_id = row.id,
                event = row.event.kind.as_str(),
                "webhook events kept in the outbox: no endpoint configured for this target"
            );
        }
    }
    if r.send.is_empty() {
        return Ok(Next::At(r.wake_at));
    }
    let permits = Arc::new(Semaphore::new(shared.policy.concurrency.max(1)));
    let mut set = JoinSet::new();
    for row in r.send {
        let channel = match (row.event.target, &shared.mailer) {
            (Target::Email, Some(m)) => Channel::Mail(Arc::clone(m)),
            (t, _) => match shared.targets.route(t) {
                Some(endpoint) => Channel::Http(Box::new(endpoint.clone())),
                None => continue, // `plan` only sends routable rows
            },
        };
        let (shared, client, permits) = (Arc::clone(shared), client.clone(), Arc::clone(&permits));
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            attempt(&shared, &client, &channel, row).await
        });
    }
    let mut result = Ok(Next::Again);
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(e) => result = Err(StoreError::Task(e.to_string())),
        }
    }
    result
}

/// Whether rows for `target` can go anywhere now.
fn routable(shared: &Shared, target: Target) -> bool {
    match target {
        Target::Email => shared.mailer.is_some(),
        t => shared.targets.route(t).is_some(),
    }
}

/// How a row goes out.
enum Channel {
    Http(Box<Endpoint>),
    Mail(Arc<Mailer>),
}

/// What came of an attempt.
enum Outcome {
    Sent,
    Failed(String),
    /// Not tried yet: held back until then (a mail waiting for its transcript).
    Held(Timestamp),
}

/// Sends one row and records the outcome.
async fn attempt(
    shared: &Arc<Shared>,
    client: &reqwest::Client,
    channel: &Channel,
    row: OutboxRow,
) -> Result<(), StoreError> {
    let id = row.id;
    let outcome = match channel {
        Channel::Http(endpoint) => match post(client, endpoint, &row).await {
            Ok(()) => Outcome::Sent,
            Err(e) => Outcome::Failed(e),
        },
        Channel::Mail(mailer) => mail(shared, mailer, &row).await?,
    };
    let now = shared.policy.clock.now();
    let call_id = row.event.call_id.as_deref().unwrap_or("");
    let name = row.event.kind.as_str();
    let target = row.event.target.as_str();
    match outcome {
        Outcome::Sent => {
            let what = if row.event.target == Target::Email {
                "mail delivered"
            } else {
                "webhook delivered"
            };
            debug!(outbox_id = id, call_id, event = name, target, "{what}");
            blocking(&shared.store, move |s| s.mark_delivered(id, now)).await
        }
        Outcome::Held(until) => {
            debug!(outbox_id = id, call_id, event = name, target, until = %until,
                   "mail waits for the voicemail's transcript");
            blocking(&shared.store, move |s| s.postpone_outbox(id, until)).await
        }
        Outcome::Failed(error) => {
            let attempts = row.attempts.saturating_add(1);
            let next = shared
                .policy
                .backoff
                .next_attempt(attempts, now, rand::random::<f64>());
            warn!(
                outbox_id = id,
                call_id,
                event = name,
                target,
                attempt = attempts,
                next_attempt_at = %next,
                error = %error,
                "webhook delivery failed, will retry"
            );
            blocking(&shared.store, move |s| {
                s.mark_attempt_failed(id, next, &error)
            })
            .await
        }
    }
}

/// A voicemail's mail: sent with its transcript when ready, held back while the transcript is
/// being made (at most the configured wait, counted from the recording), sent without it after.
async fn mail(
    shared: &Arc<Shared>,
    mailer: &Mailer,
    row: &OutboxRow,
) -> Result<Outcome, StoreError> {
    let facts = match VoicemailFacts::from_event(&row.event) {
        Ok(f) => f,
        Err(e) => return Ok(Outcome::Failed(format!("not a voicemail's mail: {e}"))),
    };
    let transcript = match mailer.transcript_wait {
        None => Transcript::Off,
        Some(wait) => {
            let t = match &shared.voicemails {
                Some(store) => {
                    let id = facts.voicemail_id;
                    let vm = blocking(store, move |s| s.voicemail(id)).await?;
                    Transcript::of(vm.as_ref())
                }
                // No voicemails to read: as if nobody made the transcript yet.
                None => Transcript::Pending,
            };
            match readiness(t, facts.recorded_at, wait, shared.policy.clock.now()) {
                MailReadiness::Send(t) => t,
                MailReadiness::WaitUntil(at) => return Ok(Outcome::Held(at)),
            }
        }
    };
    let wav = recording(shared, &facts).await?;
    Ok(match mailer.send(&facts, &transcript, wav).await {
        Ok(()) => {
            info!(outbox_id = row.id, voicemail_id = facts.voicemail_id,
                  server = %mailer.server_for_log(), "voicemail mailed");
            Outcome::Sent
        }
        Err(e) => Outcome::Failed(e),
    })
}

/// The voicemail's WAV for the attachment: the file as stored on this host, or else the
/// store's copy (PostgreSQL: recorded on another node, whose disk this host cannot see).
/// Neither (deleted by hand, a lost disk): `Err` says so, and the alert still goes without it
/// rather than retrying for ever over an attachment. A store that cannot answer now is an
/// error: the mail is tried again, not sent without a recording it may still get.
async fn recording(
    shared: &Arc<Shared>,
    facts: &VoicemailFacts,
) -> Result<Result<Vec<u8>, String>, StoreError> {
    let error = match tokio::fs::read(&facts.path).await {
        Ok(bytes) => return Ok(Ok(bytes)),
        Err(e) => e.to_string(),
    };
    if let Some(store) = &shared.voicemails {
        let id = facts.voicemail_id;
        match blocking(store, move |s| s.voicemail_audio(id)).await {
            Ok(Some(bytes)) => return Ok(Ok(bytes)),
            // No copy, or the same file unreadable (the SQLite store reads it too).
            Ok(None) | Err(StoreError::Audio { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Err(format!(
        "the recording {} could not be read ({error}); listen on the admin page or the IVR host",
        facts.path.display()
    )))
}

/// One POST; `Err` carries a one-line reason for the log and the admin page.
async fn post(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    row: &OutboxRow,
) -> Result<(), String> {
    let body = event::body(row.id, &row.event);
    // The signature's time is checked against the receiver's own clock (replay window), so it
    // is the system time even when `serve --now` moves the clock the events are stamped with.
    let ts = Timestamp::now().as_second();
    // The configured headers first: ivr's own (checked not to collide) are set after them.
    let mut req = client
        .post(endpoint.url.clone())
        .headers(endpoint.headers.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, concat!("ivr/", env!("CARGO_PKG_VERSION")))
        .header("X-Ivr-Event", row.event.kind.as_str())
        .header("X-Ivr-Delivery", row.id.to_string())
        .header("X-Ivr-Timestamp", ts.to_string());
    if let Some(secret) = &endpoint.secret {
        req = req.header("X-Ivr-Signature", sign(secret.as_bytes(), ts, &body));
    }
    match req.body(body).send().await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("HTTP {}", resp.status())),
        Err(e) => Err(match tls::find_tls_error(&e) {
            // A certificate problem buried in "error sending request: ... : invalid peer
            // certificate: UnknownIssuer" is the one thing the admin must read: say it first.
            Some(tls) => tls::describe(tls, &endpoint.authority()),
            None => tls::chain(&e),
        }),
    }
}
