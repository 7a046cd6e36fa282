//! REGISTER for staff phones (RFC 3261 §10.3 with digest auth, RFC 7616/8760): the part of the
//! endpoint core that authenticates a phone and keeps its bindings in the registrar.

use std::time::Instant;

use tracing::{info, warn};

use super::*;

impl Endpoint {
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
        let challenges: Vec<String> = self
            .config
            .staff
            .algorithms
            .iter()
            .map(|a| {
                if stale {
                    self.digest.stale_challenge(now_unix, *a)
                } else {
                    self.digest.challenge(now_unix, *a)
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

    /// Checks the request's digest credentials (in any of `headers`) against the staff users.
    /// Several may be present (one per realm): ours is answered.
    fn verify_digest(
        &mut self,
        now: Instant,
        req: &Request,
        headers: &[&str],
    ) -> Result<String, AuthError> {
        let values: Vec<&str> = req
            .raw
            .headers
            .iter()
            .filter(|h| headers.iter().any(|n| h.name.eq_ignore_ascii_case(n)))
            .filter_map(|h| h.value_str())
            .collect();
        let ours = values
            .iter()
            .find(|v| {
                parse_digest(v)
                    .ok()
                    .is_some_and(|p| p.get("realm") == Some(self.digest.realm.as_str()))
            })
            .or(values.first())
            .copied();
        let now_unix = self.unix_secs(now);
        let users = &self.config.staff.users;
        let method = req.method.to_string();
        self.digest
            .verify(&method, &req.uri, ours, |u| users.get(u).cloned(), now_unix)
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
        let verified = self.verify_digest(now, req, &["Proxy-Authorization", "Authorization"]);
        match verified {
            Ok(user) if user == from => Some(user),
            Ok(user) => {
                warn!(call_id = %req.call_id, user = %user, from = %from, %source, event = "callback_refused", "authenticated user may not call as another staff user");
                self.respond_with(now, key, 403, |b| b);
                None
            }
            Err(AuthError::Missing) => {
                self.challenge_with(now, key, false, 407);
                None
            }
            Err(AuthError::StaleNonce) => {
                self.challenge_with(now, key, true, 407);
                None
            }
            Err(e) => {
                warn!(call_id = %req.call_id, user = %from, %source, error = %e, event = "callback_auth_failed", "staff INVITE authentication failed");
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
        let verified = self.verify_digest(now, req, &["Authorization"]);
        let user = match verified {
            Ok(user) => user,
            Err(AuthError::Missing) => {
                debug!(call_id = %req.call_id, user = %aor, "REGISTER without credentials: challenging");
                self.challenge(now, key, false);
                return;
            }
            Err(AuthError::StaleNonce) => {
                debug!(call_id = %req.call_id, user = %aor, "stale nonce: re-challenging");
                self.challenge(now, key, true);
                return;
            }
            Err(AuthError::Malformed(why)) => {
                warn!(call_id = %req.call_id, user = %aor, %source, error = %why, event = "register_failed", "malformed Authorization");
                let w = warning(&why);
                self.respond_with(now, key, 400, |b| b.header("Warning", &w));
                return;
            }
            Err(e) => {
                // Never tell the peer which check failed (usernames must not be guessable).
                warn!(call_id = %req.call_id, user = %aor, %source, error = %e, event = "register_failed", "REGISTER authentication failed");
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
                },
            )
        });
        match parsed {
            Ok(bindings) => {
                let values = contact_header_values(&bindings, now);
                let requested: Vec<String> = contact_values.iter().map(|v| v.to_string()).collect();
                info!(call_id = %req.call_id, user = %user, %source, contact = %requested.join(", "),
                    expires = req.raw.header_str("Expires").unwrap_or("-"),
                    bindings = %values.join(", "), event = "register", "staff registration");
                self.respond_with(now, key, 200, |mut b| {
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
