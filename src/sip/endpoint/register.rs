//! REGISTER for staff phones (RFC 3261 §10.3 with digest auth, RFC 7616/8760): the part of the
//! endpoint core that authenticates a phone (and a staff call-back INVITE) through the
//! [`Gatekeeper`](crate::sip::auth::Gatekeeper), which refuses replayed answers and blocks
//! sources and users after repeated failures, and keeps the bindings in the registrar.

use std::time::Instant;

use tracing::{info, warn};

use super::super::auth::{Admission, Block, Culprit};
use super::super::message::split_comma_list;
use super::super::registrar::Registration;
use super::*;

impl Endpoint {
    /// Every live binding, when they changed (a REGISTER, an expiry) since the last call: the
    /// shell publishes this for the admin page's staff list.
    pub fn take_registrations(&mut self, now: Instant) -> Option<Vec<Registration>> {
        std::mem::take(&mut self.registrations_changed).then(|| self.registrar.registrations(now))
    }

    /// Unix seconds at `now`, for digest nonces (see [`EndpointConfig::wall_clock`]).
    pub(super) fn unix_secs(&mut self, now: Instant) -> u64 {
        let (at, unix) = *self.wall_clock.get_or_insert((now, 0));
        match now.checked_duration_since(at) {
            Some(d) => unix.saturating_add(d.as_secs()),
            None => unix.saturating_sub(at.duration_since(now).as_secs()),
        }
    }

    /// 401 with one challenge per configured algorithm (`stale=true` after a stale nonce).
    pub(super) fn challenge(&mut self, now: Instant, key: &TxKey, stale: bool) {
        self.challenge_with(now, key, stale, 401);
    }

    /// A 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`) challenge.
    fn challenge_with(&mut self, now: Instant, key: &TxKey, stale: bool, status: u16) {
        let now_unix = self.unix_secs(now);
        let digest = self.auth.digest();
        let challenges: Vec<String> = self
            .config
            .staff
            .algorithms
            .iter()
            .map(|a| {
                if stale {
                    digest.stale_challenge(now_unix, *a)
                } else {
                    digest.challenge(now_unix, *a)
                }
            })
            .collect();
        let header = if status == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        self.respond_with(now, key, status, |mut b| {
            for c in &challenges {
                b = b.header(header, c);
            }
            b
        });
    }

    /// The request's digest credentials for our realm among `headers` (a request may carry one
    /// per realm), else the first there is.
    fn our_credentials(&self, req: &Request, headers: &[&str]) -> Option<String> {
        let values: Vec<&str> = req
            .raw
            .headers
            .iter()
            .filter(|h| headers.iter().any(|n| h.name.eq_ignore_ascii_case(n)))
            .filter_map(|h| h.value_str())
            .collect();
        let realm = self.auth.digest().realm.as_str();
        values
            .iter()
            .find(|v| {
                parse_digest(v)
                    .ok()
                    .is_some_and(|p| p.get("realm") == Some(realm))
            })
            .or(values.first())
            .map(|v| v.to_string())
    }

    /// Checks the request's digest credentials (in any of `headers`) against the staff users,
    /// after asking the lockout whether to look at them at all. `None`: the source or user is
    /// blocked and the request was answered 403 or dropped. Failures are logged as `event`, at
    /// most once a second with a count; blocks that start get a line each.
    fn check_credentials(
        &mut self,
        now: Instant,
        req: &Request,
        key: &TxKey,
        source: SocketAddr,
        headers: &[&str],
        event: &str,
    ) -> Option<Result<String, AuthError>> {
        let credentials = self.our_credentials(req, headers);
        let named = credentials
            .as_deref()
            .and_then(|c| parse_digest(c).ok())
            .and_then(|p| p.get("username").map(str::to_string));
        match self.auth.admit(now, source.ip(), named.as_deref()) {
            Admission::Check => {}
            Admission::Refuse => {
                // The same answer for every source and user, known or not.
                self.respond_with(now, key, 403, |b| {
                    b.header(
                        "Warning",
                        "399 ivr \"too many failed attempts; try again later\"",
                    )
                });
                return None;
            }
            Admission::Drop => {
                self.forget_request(key);
                return None;
            }
        }
        let now_unix = self.unix_secs(now);
        let users = &self.config.staff.users;
        let method = req.method.to_string();
        let result = self.auth.authenticate(
            now,
            now_unix,
            source.ip(),
            &method,
            &req.uri,
            credentials.as_deref(),
            |u| users.get(u).cloned(),
        );
        while let Some(block) = self.auth.poll_block() {
            self.log_block(now, &block);
        }
        match &result {
            Ok(_) | Err(AuthError::Missing | AuthError::StaleNonce) => {}
            Err(AuthError::Replayed) => {
                if let Some(count) = self.auth.replay_log.note(now) {
                    warn!(call_id = %req.call_id, user = named.as_deref().unwrap_or("-"), %source, %method, count, event = "auth_replay", "replayed digest answer refused (stale challenge sent); count since the last line");
                }
            }
            Err(e) => {
                if let Some(count) = self.auth.failure_log.note(now) {
                    warn!(call_id = %req.call_id, user = named.as_deref().unwrap_or("-"), %source, %method, error = %e, count, event, "digest authentication failed; count: failures since the last such line");
                }
            }
        }
        Some(result)
    }

    fn log_block(&mut self, now: Instant, block: &Block) {
        let until_unix = self.unix_secs(block.until);
        let until = i64::try_from(until_unix)
            .ok()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map(|t| t.to_string())
            .unwrap_or_else(|| until_unix.to_string());
        let secs = block.length.as_secs();
        let remaining = block.until.saturating_duration_since(now).as_secs();
        match &block.who {
            Culprit::Source(ip) => {
                warn!(source = %ip, failures = block.failures, block_s = secs, nth = block.nth, %until, remaining_s = remaining, event = "auth_blocked", "source blocked from authenticating after repeated failures")
            }
            Culprit::User(user) => {
                warn!(user = %user, failures = block.failures, block_s = secs, nth = block.nth, %until, remaining_s = remaining, event = "auth_blocked", "user blocked from authenticating except from addresses it logged in from")
            }
        }
    }

    /// Forgets a request we will never answer (a blocked source past its answered refusals):
    /// no transaction state is kept for it, and a retransmission is judged afresh.
    fn forget_request(&mut self, key: &TxKey) {
        self.server_txs.remove(key);
        self.timers.set(&TimerKey::Server(key.clone()), None);
    }

    /// The staff user an INVITE from a staff From proves to be (407 challenge like a PBX), or
    /// `None` when it was challenged or refused (the response is sent).
    pub(super) fn authenticate_invite(
        &mut self,
        now: Instant,
        req: &Request,
        key: &TxKey,
        source: SocketAddr,
    ) -> Option<String> {
        let from = req.from.user().to_string();
        let verified = self.check_credentials(
            now,
            req,
            key,
            source,
            &["Proxy-Authorization", "Authorization"],
            "callback_auth_failed",
        )?;
        match verified {
            Ok(user) if user == from => Some(user),
            Ok(user) => {
                warn!(call_id = %req.call_id, user = %user, from = %from, %source, event = "callback_refused", "authenticated user may not call as another staff user");
                self.respond_with(now, key, 403, |b| b);
                None
            }
            Err(AuthError::StaleNonce | AuthError::Replayed) => {
                self.challenge_with(now, key, true, 407);
                None
            }
            Err(_) => {
                self.challenge_with(now, key, false, 407);
                None
            }
        }
    }

    /// REGISTER outside a dialog (RFC 3261 §10.3): authenticate, then update the bindings.
    pub(super) fn on_register(
        &mut self,
        now: Instant,
        req: &Request,
        key: &TxKey,
        source: SocketAddr,
        transport: Transport,
    ) {
        let warning = |why: &str| format!("399 ivr \"{}\"", why.replace('"', "'"));
        let aor = req.to.user().to_string();
        if self.config.staff.users.is_empty() {
            info!(call_id = %req.call_id, user = %aor, %source, event = "register_refused", "REGISTER refused: no staff users configured");
            let w = warning("no staff users configured");
            self.respond_with(now, key, 403, |b| b.header("Warning", &w));
            return;
        }
        let Some(verified) =
            self.check_credentials(now, req, key, source, &["Authorization"], "register_failed")
        else {
            return;
        };
        let user = match verified {
            Ok(user) => user,
            Err(AuthError::Missing) => {
                debug!(call_id = %req.call_id, user = %aor, "REGISTER without credentials: challenging");
                self.challenge(now, key, false);
                return;
            }
            Err(AuthError::StaleNonce | AuthError::Replayed) => {
                debug!(call_id = %req.call_id, user = %aor, "stale or replayed answer: re-challenging");
                self.challenge(now, key, true);
                return;
            }
            Err(AuthError::Malformed(why)) => {
                let w = warning(&why);
                self.respond_with(now, key, 400, |b| b.header("Warning", &w));
                return;
            }
            // Never tell the peer which check failed (usernames must not be guessable).
            Err(_) => {
                self.challenge(now, key, false);
                return;
            }
        };
        if user != aor {
            warn!(call_id = %req.call_id, user = %user, to = %aor, %source, event = "register_failed", "authenticated user may not register another address");
            let w = warning(&format!("user {user} may only register {user}, not {aor}"));
            self.respond_with(now, key, 403, |b| b.header("Warning", &w));
            return;
        }
        let contact_values: Vec<&str> = req.raw.header_values("Contact").collect();
        // RFC 3327: each Path value (a header may list several) in order, stored with the
        // contacts and echoed in the 200 OK.
        let path: Vec<String> = req
            .raw
            .header_values("Path")
            .flat_map(split_comma_list)
            .collect();
        let parsed = parse_contacts(&contact_values).and_then(|(contacts, star)| {
            let expires_header = match req.raw.header_str("Expires") {
                None => None,
                Some(v) => {
                    let n: u64 = v.trim().parse().map_err(|_| {
                        RegisterError::BadContact(format!("Expires {v:?} is not a number"))
                    })?;
                    Some(u32::try_from(n).unwrap_or(u32::MAX))
                }
            };
            self.registrar.register(
                now,
                &user,
                RegisterInput {
                    contacts,
                    expires_header,
                    call_id: req.call_id.clone(),
                    cseq: req.cseq,
                    star,
                    source,
                    transport,
                    path: path.clone(),
                },
            )
        });
        match parsed {
            Ok(bindings) => {
                self.registrations_changed = true;
                let values = contact_header_values(&bindings, now);
                let requested: Vec<String> = contact_values.iter().map(|v| v.to_string()).collect();
                info!(call_id = %req.call_id, user = %user, %source, contact = %requested.join(", "), path = %path.join(", "),
                    expires = req.raw.header_str("Expires").unwrap_or("-"),
                    bindings = %values.join(", "), event = "register", "staff registration");
                // RFC 3327 §5.3: the registrar returns the Path it stored, so the phone (and
                // the proxies) learn the route its requests are reached by.
                self.respond_with(now, key, 200, |mut b| {
                    for p in &path {
                        b = b.header("Path", p);
                    }
                    for v in &values {
                        b = b.header("Contact", v);
                    }
                    b
                });
            }
            Err(e) => {
                warn!(call_id = %req.call_id, user = %user, %source, error = %e, event = "register_failed", "REGISTER refused");
                let w = warning(&e.to_string());
                let status = match e {
                    RegisterError::IntervalTooBrief { min } => {
                        let min = min.to_string();
                        self.respond_with(now, key, 423, |b| {
                            b.header("Min-Expires", &min).header("Warning", &w)
                        });
                        return;
                    }
                    RegisterError::OutOfOrder { .. } => 500,
                    RegisterError::BadStar | RegisterError::BadContact(_) => 400,
                    RegisterError::TooManyContacts { .. } => 403,
                };
                self.respond_with(now, key, status, |b| b.header("Warning", &w));
            }
        }
    }
}

#[cfg(test)]
mod tests;
