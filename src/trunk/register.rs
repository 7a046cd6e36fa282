//! The registration client of one trunk (RFC 3261 §10.2), sans-IO: fed the time and what
//! happened (a final response, a transaction timeout, a transport error, a timer, shutdown), it
//! says what to send and when it next wants to be woken. The shell (`shell.rs`) renders the
//! REGISTER, runs it as a non-INVITE client transaction of the endpoint and reports back.
//!
//! Decisions, and why:
//! - **Refresh** at `max(granted / 2, granted - 60 s)` after the grant: a short grant (a
//!   provider's 60 s NAT keep-alive) refreshes at half-time, a long one a minute before expiry,
//!   which leaves room for a whole UDP transaction timeout (32 s) before the binding lapses.
//! - **Granted** is the `expires` parameter of the Contact in the 200 that is ours, else the
//!   `Expires` header, else what we asked for. A grant of 0 counts as a failure.
//! - **Digest**: a 401/407 is answered (`Authorization`/`Proxy-Authorization`, the strongest
//!   algorithm offered, qop=auth with a fresh cnonce). Refreshes re-use the last challenge with
//!   the nonce count going up (no extra round trip); a registrar that no longer likes the nonce
//!   challenges again and is answered. A second challenge in one attempt, after we answered a
//!   fresh one, means the credentials are wrong, unless it says `stale=true`: a failure.
//! - **423**: ask again at once with `Min-Expires`.
//! - **Failures** (other 3xx-6xx, timeout, transport error) wait `retry_initial` doubling per
//!   failure up to `retry_max`, each scaled by a random 80-100 % so many ivrs behind one
//!   provider do not retry in step; a `Retry-After` (503) is waited instead, within
//!   `[1 s, retry_max]`. A binding the provider still holds stays "registered" until it lapses.
//! - **Shutdown**: a live binding is removed with `Expires: 0` (best effort, one attempt).

use std::time::{Duration, Instant};

use crate::sip::auth::{ClientSecret, answer_challenge_with, parse_digest, pick_challenge};

/// The password or its HA1 (config `password` / `ha1`).
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Password(String),
    Ha1(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What one trunk registers, fixed for its life.
#[derive(Clone, Debug)]
pub struct RegisterSpec {
    pub trunk: String,
    /// The REGISTER's Request-URI (and the digest `uri`): `sip:registrar[:port]`.
    pub request_uri: String,
    /// Our address of record (To and From): `sip:username@domain`.
    pub aor: String,
    /// The Contact URI we register, `sip:user@ip:port`.
    pub contact: String,
    pub username: String,
    pub secret: Secret,
    /// Only challenges for this realm are answered; `None`: any.
    pub realm: Option<String>,
    /// Seconds asked for.
    pub expires: u32,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// The parts of a final response the client reads (see `Reply::from_response` in the shell).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub cseq: u32,
    pub www_authenticate: Vec<String>,
    pub proxy_authenticate: Vec<String>,
    /// Every Contact element of the response, as written.
    pub contacts: Vec<String>,
    pub expires: Option<u32>,
    pub min_expires: Option<u32>,
    pub retry_after: Option<u32>,
    pub service_route: Vec<String>,
    pub path: Vec<String>,
}

/// What happened, as the shell tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Reply(Reply),
    /// The transaction of the REGISTER with this CSeq got no final response (timer F).
    Timeout {
        cseq: u32,
    },
    /// The REGISTER with this CSeq could not be sent.
    TransportError {
        cseq: u32,
    },
    /// The REGISTER with this CSeq had nowhere to go (the registrar's name did not resolve).
    Unreachable {
        cseq: u32,
        reason: String,
    },
    /// The time from [`RegisterClient::next_wake`] has come.
    Timer,
    Shutdown,
}

/// One REGISTER to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send {
    pub cseq: u32,
    pub expires: u32,
    /// `("Authorization" | "Proxy-Authorization", value)`.
    pub authorization: Option<(&'static str, String)>,
}

/// State changes worth a log line, a metric and the admin page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    Registered {
        granted: u32,
        refresh_in: Duration,
    },
    Failed {
        reason: String,
        retry_in: Duration,
        failures: u32,
        auth: bool,
    },
    /// The binding expired at the provider without a successful refresh.
    Lapsed,
    Unregistered,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send(Send),
    Report(Report),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    /// A REGISTER is out.
    Registering,
    Registered,
    /// Waiting to retry after a failure.
    Backoff,
    Unregistering,
    Stopped,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Registering => "registering",
            Phase::Registered => "registered",
            Phase::Backoff => "backoff",
            Phase::Unregistering => "unregistering",
            Phase::Stopped => "stopped",
        }
    }
}

/// The last challenge answered, re-used for refreshes.
#[derive(Clone, Debug)]
struct Challenge {
    header: &'static str,
    value: String,
    cnonce: String,
    nc: u32,
}

#[derive(Debug)]
pub struct RegisterClient {
    spec: RegisterSpec,
    phase: Phase,
    cseq: u32,
    /// CSeq of the REGISTER out, if any: replies and timeouts for others are stale.
    in_flight: Option<u32>,
    expires: u32,
    challenge: Option<Challenge>,
    /// A fresh challenge was answered in this attempt (a second one means wrong credentials).
    answered_fresh: bool,
    /// Min-Expires was applied in this attempt (a second 423 is a failure).
    raised: bool,
    failures: u32,
    bound_until: Option<Instant>,
    wake: Option<Instant>,
    service_route: Vec<String>,
    path: Vec<String>,
    last_error: Option<String>,
    rng: u64,
}

impl RegisterClient {
    /// `seed` feeds the retry jitter (any value; tests pick one).
    pub fn new(spec: RegisterSpec, seed: u64) -> Self {
        RegisterClient {
            expires: spec.expires,
            spec,
            phase: Phase::Idle,
            cseq: 0,
            in_flight: None,
            challenge: None,
            answered_fresh: false,
            raised: false,
            failures: 0,
            bound_until: None,
            wake: None,
            service_route: Vec::new(),
            path: Vec::new(),
            last_error: None,
            rng: seed | 1,
        }
    }

    /// Our Contact, once the address towards a registrar found by name is known (before the
    /// first REGISTER goes out).
    pub fn set_contact(&mut self, contact: String) {
        self.spec.contact = contact;
    }

    pub fn spec(&self) -> &RegisterSpec {
        &self.spec
    }
    pub fn phase(&self) -> Phase {
        self.phase
    }
    /// Whether the provider holds a binding of ours now.
    pub fn registered(&self, now: Instant) -> bool {
        self.bound_until.is_some_and(|b| b > now)
    }
    pub fn bound_until(&self) -> Option<Instant> {
        self.bound_until
    }
    /// The CSeq of the REGISTER out, if any.
    pub fn in_flight(&self) -> Option<u32> {
        self.in_flight
    }
    pub fn failures(&self) -> u32 {
        self.failures
    }
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
    /// The 200's Service-Route (RFC 3608): the route set for requests we send through the trunk.
    pub fn service_route(&self) -> &[String] {
        &self.service_route
    }
    /// The 200's Path (RFC 3327), as the registrar recorded it.
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// When the client next wants [`Input::Timer`]: a refresh, a retry or the binding's end.
    pub fn next_wake(&self) -> Option<Instant> {
        let lapse = self.bound_until.filter(|_| self.phase != Phase::Stopped);
        [self.wake, lapse].into_iter().flatten().min()
    }

    /// Sends the first REGISTER.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Idle {
            self.new_attempt(now, &mut out);
        }
        out
    }

    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Reply(r) if Some(r.cseq) == self.in_flight => self.on_reply(now, r, &mut out),
            Input::Reply(_) => {}
            Input::Timeout { cseq }
            | Input::TransportError { cseq }
            | Input::Unreachable { cseq, .. }
                if Some(cseq) == self.in_flight =>
            {
                let why = match input {
                    Input::Timeout { .. } => {
                        "no response from the registrar (transaction timeout)".to_string()
                    }
                    Input::Unreachable { reason, .. } => reason,
                    _ => "cannot send to the registrar (transport error)".to_string(),
                };
                self.in_flight = None;
                if self.phase == Phase::Unregistering {
                    self.stop(&mut out, false);
                } else {
                    self.fail(now, why, None, false, &mut out);
                }
            }
            Input::Timeout { .. } | Input::TransportError { .. } | Input::Unreachable { .. } => {}
            Input::Timer => self.on_timer(now, &mut out),
            Input::Shutdown => self.on_shutdown(now, &mut out),
        }
        out
    }

    fn on_timer(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.bound_until.is_some_and(|b| b <= now) && self.phase != Phase::Stopped {
            self.bound_until = None;
            out.push(Action::Report(Report::Lapsed));
        }
        if self.wake.is_some_and(|w| w <= now) {
            self.wake = None;
            if matches!(self.phase, Phase::Registered | Phase::Backoff) {
                self.new_attempt(now, out);
            }
        }
    }

    fn on_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        if matches!(self.phase, Phase::Stopped | Phase::Unregistering) {
            return;
        }
        self.wake = None;
        if self.registered(now) || self.in_flight.is_some() {
            self.phase = Phase::Unregistering;
            self.answered_fresh = false;
            self.send(0, out);
        } else {
            self.stop(out, false);
        }
    }

    fn on_reply(&mut self, now: Instant, r: Reply, out: &mut Vec<Action>) {
        self.in_flight = None;
        let unregistering = self.phase == Phase::Unregistering;
        match r.status {
            200..=299 if unregistering => self.stop(out, true),
            200..=299 => self.on_ok(now, r, out),
            401 | 407 => match self.answer(&r) {
                Ok(()) => {
                    let expires = if unregistering { 0 } else { self.expires };
                    self.send(expires, out);
                }
                Err(why) if unregistering => {
                    self.last_error = Some(why);
                    self.stop(out, false);
                }
                Err(why) => self.fail(now, why, None, true, out),
            },
            423 if !unregistering => match r.min_expires {
                Some(min) if !self.raised && min > self.expires => {
                    self.raised = true;
                    self.expires = min;
                    self.send(self.expires, out);
                }
                _ => self.fail(
                    now,
                    "423 Interval Too Brief without a usable Min-Expires".into(),
                    None,
                    false,
                    out,
                ),
            },
            _ if unregistering => self.stop(out, false),
            status => {
                let retry_after = r.retry_after.map(|s| Duration::from_secs(s.into()));
                self.fail(
                    now,
                    format!("registrar answered {status}"),
                    retry_after,
                    false,
                    out,
                );
            }
        }
    }

    fn on_ok(&mut self, now: Instant, r: Reply, out: &mut Vec<Action>) {
        let granted = r
            .contacts
            .iter()
            .filter(|c| same_contact(c, &self.spec.contact))
            .find_map(|c| contact_expires(c))
            .or(r.expires)
            .unwrap_or(self.expires);
        if granted == 0 {
            self.fail(now, "registrar granted 0 seconds".into(), None, false, out);
            return;
        }
        let refresh_in = refresh_delay(granted);
        self.phase = Phase::Registered;
        self.failures = 0;
        self.last_error = None;
        self.bound_until = Some(now + Duration::from_secs(granted.into()));
        self.wake = Some(now + refresh_in);
        self.service_route = r.service_route;
        self.path = r.path;
        out.push(Action::Report(Report::Registered {
            granted,
            refresh_in,
        }));
    }

    /// Stores the answer to a challenge, or says why it cannot be answered.
    fn answer(&mut self, r: &Reply) -> Result<(), String> {
        let (header, offered) = if r.status == 401 {
            ("Authorization", &r.www_authenticate)
        } else {
            ("Proxy-Authorization", &r.proxy_authenticate)
        };
        let usable: Vec<&str> = offered
            .iter()
            .map(String::as_str)
            .filter(|c| {
                let Ok(p) = parse_digest(c) else { return false };
                let realm_ok = match &self.spec.realm {
                    Some(want) => p.get("realm").is_some_and(|r| r == want),
                    None => true,
                };
                // An HA1 is the MD5 one: other algorithms cannot be answered with it.
                let alg_ok = match self.spec.secret {
                    Secret::Ha1(_) => p
                        .get("algorithm")
                        .is_none_or(|a| a.eq_ignore_ascii_case("MD5")),
                    Secret::Password(_) => true,
                };
                realm_ok && alg_ok
            })
            .collect();
        let challenge = pick_challenge(&usable)
            .ok_or_else(|| format!("{} with no digest challenge we can answer", r.status))?;
        let stale = parse_digest(challenge)
            .ok()
            .and_then(|p| p.get("stale").map(|s| s.eq_ignore_ascii_case("true")))
            .unwrap_or(false);
        if self.answered_fresh && !stale {
            return Err(format!(
                "credentials refused (a second {} after our answer)",
                r.status
            ));
        }
        self.answered_fresh = true;
        let cnonce = format!("{:016x}", self.next_random());
        self.challenge = Some(Challenge {
            header,
            value: challenge.to_string(),
            cnonce,
            nc: 0,
        });
        Ok(())
    }

    fn fail(
        &mut self,
        now: Instant,
        reason: String,
        retry_after: Option<Duration>,
        auth: bool,
        out: &mut Vec<Action>,
    ) {
        self.failures += 1;
        let retry_in = match retry_after {
            Some(r) => r.clamp(Duration::from_secs(1), self.spec.retry_max),
            None => {
                let doublings = (self.failures - 1).min(20);
                let base = self
                    .spec
                    .retry_initial
                    .saturating_mul(1 << doublings)
                    .min(self.spec.retry_max);
                // 80-100 % of the base, never more: tests and admins can rely on the bound.
                let fraction = 0.8 + 0.2 * (self.next_random() % 1001) as f64 / 1000.0;
                base.mul_f64(fraction)
            }
        };
        if auth {
            // Credentials that were refused are not re-used for the next attempt's first try.
            self.challenge = None;
        }
        self.phase = Phase::Backoff;
        self.wake = Some(now + retry_in);
        self.last_error = Some(reason.clone());
        out.push(Action::Report(Report::Failed {
            reason,
            retry_in,
            failures: self.failures,
            auth,
        }));
    }

    fn stop(&mut self, out: &mut Vec<Action>, removed: bool) {
        self.phase = Phase::Stopped;
        self.wake = None;
        self.in_flight = None;
        if removed {
            self.bound_until = None;
            out.push(Action::Report(Report::Unregistered));
        }
    }

    fn new_attempt(&mut self, _now: Instant, out: &mut Vec<Action>) {
        self.phase = Phase::Registering;
        self.answered_fresh = false;
        self.raised = false;
        self.expires = self.expires.max(self.spec.expires);
        self.send(self.expires, out);
    }

    /// Sends the next REGISTER, with the stored challenge answered (nonce count up) if any.
    fn send(&mut self, expires: u32, out: &mut Vec<Action>) {
        self.cseq += 1;
        self.in_flight = Some(self.cseq);
        let authorization = match self.challenge.as_mut() {
            Some(c) => {
                c.nc += 1;
                let secret = match &self.spec.secret {
                    Secret::Password(p) => ClientSecret::Password(p),
                    Secret::Ha1(h) => ClientSecret::Ha1(h),
                };
                answer_challenge_with(
                    &c.value,
                    "REGISTER",
                    &self.spec.request_uri,
                    &self.spec.username,
                    secret,
                    &c.cnonce,
                    c.nc,
                )
                .ok()
                .map(|v| (c.header, v))
            }
            None => None,
        };
        out.push(Action::Send(Send {
            cseq: self.cseq,
            expires,
            authorization,
        }));
    }

    /// xorshift64: jitter and cnonces need no cryptographic strength here (the cnonce only has
    /// to differ between our requests; the seed comes from the OS RNG in the shell).
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// When to refresh a binding granted for `granted` seconds (see the module docs).
pub fn refresh_delay(granted: u32) -> Duration {
    let g = u64::from(granted);
    Duration::from_secs((g / 2).max(g.saturating_sub(60)).max(1))
}

/// The URI of a Contact element without display name, brackets or parameters, lowercased.
fn contact_key(contact: &str) -> String {
    crate::sip::name_addr_uri(contact)
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn same_contact(element: &str, ours: &str) -> bool {
    contact_key(element) == contact_key(ours)
}

/// The `expires` parameter of a Contact element (after the URI).
fn contact_expires(element: &str) -> Option<u32> {
    let params = match element.rfind('>') {
        Some(i) => &element[i + 1..],
        None => element.split_once(';').map_or("", |(_, p)| p),
    };
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("expires")
            .then(|| v.trim().parse().ok())
            .flatten()
    })
}

#[cfg(test)]
#[path = "register_tests.rs"]
mod tests;
