//! The registrar's location service (RFC 3261 §10.3), sans-IO: bindings of staff users to the
//! Contact URIs their phones registered, with expiry on a caller-supplied clock.
//!
//! The endpoint authenticates a REGISTER (`sip::auth`), distils it into a [`RegisterInput`]
//! ([`parse_contacts`] reads the Contact headers), calls [`Registrar::register`] and answers:
//! - `Ok(bindings)`: 200 OK with one Contact per binding from [`contact_header_values`];
//! - [`RegisterError::IntervalTooBrief`]: 423 with `Min-Expires: min`;
//! - [`RegisterError::OutOfOrder`]: 500 (RFC 3261 §10.3 step 7 "the update MUST be aborted and the
//!   request fails", and step 8 names 500 for a failed update; the phone retries with a new CSeq);
//! - [`RegisterError::BadStar`] and [`RegisterError::BadContact`]: 400;
//! - [`RegisterError::TooManyContacts`]: 403 (a policy refusal, so a hostile or broken phone cannot
//!   grow the table without bound).
//!
//! An update is all-or-nothing: every contact is checked before any binding changes. The Call-ID/
//! CSeq rule (steps 6 and 7: for `Contact: *` every binding, else each binding of a listed URI;
//! same Call-ID and a CSeq not higher aborts) only orders one client's requests: a request with
//! another Call-ID is another client by the RFC, so a replayed REGISTER with a fresh Call-ID is
//! refused by `sip::auth`'s nonce-count check before it gets here.
//! The dial node asks [`Registrar::contacts`] for a user's live contacts; the shell calls
//! [`Registrar::expire`] at [`Registrar::next_expiry`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::message::{Transport, split_comma_list};

/// RFC 3261 §10.2.1.1 suggests one hour when the client says nothing.
pub const DEFAULT_EXPIRES: u32 = 3600;
/// Below this the registrar answers 423 (RFC 3261 §10.3 step 7 suggests the 60 s minimum).
pub const MIN_EXPIRES: u32 = 60;
/// Longer requests are shortened to this (the 200 OK tells the phone what it got).
pub const MAX_EXPIRES: u32 = 7200;
/// Bindings per user: a laptop, a desk phone and a mobile fit with room to spare.
pub const MAX_CONTACTS_PER_USER: usize = 10;

/// One registered contact of a user.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// The Contact URI, without angle brackets or header parameters.
    pub contact: String,
    pub expires_at: Instant,
    pub call_id: String,
    pub cseq: u32,
    pub q: Option<f32>,
    /// Where the REGISTER came from (the address to send requests to when behind NAT).
    pub source: SocketAddr,
    pub transport: Transport,
    /// The REGISTER's Path header values (RFC 3327), in order: the proxies a request to this
    /// contact goes through (sent as its Route headers). Empty when it came directly.
    pub path: Vec<String>,
}

impl Binding {
    /// Whole seconds left, rounded up so a live binding never advertises 0.
    pub fn remaining_secs(&self, now: Instant) -> u32 {
        let left = self.expires_at.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }
}

/// One live binding with its user: what the admin page lists. A copy, so the signalling thread
/// can publish it to the admin server's (see [`Registrar::registrations`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    pub user: String,
    pub binding: Binding,
}

/// One Contact of a REGISTER.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactSpec {
    pub uri: String,
    /// The `expires` Contact parameter, which overrides the Expires header.
    pub expires: Option<u32>,
    pub q: Option<f32>,
}

/// What the registrar needs from a REGISTER.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterInput {
    pub contacts: Vec<ContactSpec>,
    pub expires_header: Option<u32>,
    pub call_id: String,
    pub cseq: u32,
    /// `Contact: *` (remove every binding; only valid with `Expires: 0` and no other contact).
    pub star: bool,
    pub source: SocketAddr,
    pub transport: Transport,
    /// The Path header values (RFC 3327 §5.3: stored with each contact it registers).
    pub path: Vec<String>,
}

#[derive(Clone, Debug, Error, PartialEq)]
pub enum RegisterError {
    /// 423 Interval Too Brief with `Min-Expires: min`.
    #[error("expiration interval is shorter than the minimum {min}s")]
    IntervalTooBrief { min: u32 },
    /// 500: same Call-ID as an existing binding with a CSeq not higher (replayed or reordered).
    #[error("CSeq {cseq} is not higher than {existing} for this Call-ID (out of order)")]
    OutOfOrder { cseq: u32, existing: u32 },
    /// 400: `Contact: *` with other contacts or an Expires other than 0.
    #[error("Contact: * needs Expires: 0 and no other Contact")]
    BadStar,
    /// 400: a Contact header that cannot be read.
    #[error("bad Contact: {0}")]
    BadContact(String),
    /// 403: the user would have more than the allowed number of bindings.
    #[error("too many contacts for this user (at most {max})")]
    TooManyContacts { max: usize },
}

#[derive(Debug)]
pub struct Registrar {
    bindings: HashMap<String, Vec<Binding>>,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_contacts: usize,
}

impl Default for Registrar {
    fn default() -> Self {
        Registrar::new(MIN_EXPIRES, MAX_EXPIRES, DEFAULT_EXPIRES)
    }
}

impl Registrar {
    pub fn new(min_expires: u32, max_expires: u32, default_expires: u32) -> Self {
        Registrar {
            bindings: HashMap::new(),
            min_expires,
            max_expires: max_expires.max(min_expires),
            default_expires,
            max_contacts: MAX_CONTACTS_PER_USER,
        }
    }

    /// Applies a REGISTER for `user` (already authenticated) at `now` and returns the user's
    /// bindings after it, for the 200 OK. A REGISTER without Contact is a query.
    pub fn register(
        &mut self,
        now: Instant,
        user: &str,
        req: RegisterInput,
    ) -> Result<Vec<Binding>, RegisterError> {
        let mut list: Vec<Binding> = self
            .bindings
            .get(user)
            .map(|l| l.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();

        if req.star {
            // Step 6.
            if !req.contacts.is_empty() || req.expires_header != Some(0) {
                return Err(RegisterError::BadStar);
            }
            for b in &list {
                if b.call_id == req.call_id && req.cseq <= b.cseq {
                    return Err(RegisterError::OutOfOrder {
                        cseq: req.cseq,
                        existing: b.cseq,
                    });
                }
            }
            list.clear();
        }

        // Step 7: check everything first, then apply to the working copy.
        for c in &req.contacts {
            if let Some(q) = c.q
                && !(0.0..=1.0).contains(&q)
            {
                return Err(RegisterError::BadContact(format!(
                    "q={q} for {} is outside 0..1",
                    c.uri
                )));
            }
            let expires = c
                .expires
                .or(req.expires_header)
                .unwrap_or(self.default_expires);
            if expires != 0 && expires < self.min_expires {
                return Err(RegisterError::IntervalTooBrief {
                    min: self.min_expires,
                });
            }
        }
        for c in &req.contacts {
            let expires = c
                .expires
                .or(req.expires_header)
                .unwrap_or(self.default_expires)
                .min(self.max_expires);
            let existing = list.iter().position(|b| same_uri(&b.contact, &c.uri));
            if let Some(i) = existing {
                let b = &list[i];
                if b.call_id == req.call_id && req.cseq <= b.cseq {
                    return Err(RegisterError::OutOfOrder {
                        cseq: req.cseq,
                        existing: b.cseq,
                    });
                }
            }
            let binding = Binding {
                contact: c.uri.clone(),
                expires_at: now + Duration::from_secs(u64::from(expires)),
                call_id: req.call_id.clone(),
                cseq: req.cseq,
                q: c.q,
                source: req.source,
                transport: req.transport,
                path: req.path.clone(),
            };
            match (existing, expires) {
                (Some(i), 0) => {
                    list.remove(i);
                }
                (Some(i), _) => list[i] = binding,
                (None, 0) => {}
                (None, _) => list.push(binding),
            }
        }
        if list.len() > self.max_contacts {
            return Err(RegisterError::TooManyContacts {
                max: self.max_contacts,
            });
        }

        // Step 8: commit.
        if list.is_empty() {
            self.bindings.remove(user);
        } else {
            self.bindings.insert(user.to_string(), list.clone());
        }
        Ok(list)
    }

    /// The user's live bindings, highest q first (no q counts as 1.0), then in registration order.
    pub fn contacts(&self, now: Instant, user: &str) -> Vec<&Binding> {
        let mut v: Vec<&Binding> = self
            .bindings
            .get(user)
            .map(|l| l.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.q.unwrap_or(1.0).total_cmp(&a.q.unwrap_or(1.0)));
        v
    }

    /// Drops every binding that has expired by `now`.
    pub fn expire(&mut self, now: Instant) {
        self.bindings.retain(|_, l| {
            l.retain(|b| b.expires_at > now);
            !l.is_empty()
        });
    }

    /// When the next binding expires (the shell's timer for [`expire`](Self::expire)).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.bindings.values().flatten().map(|b| b.expires_at).min()
    }

    /// Every live binding at `now`, by user then in the order [`contacts`](Self::contacts) rings
    /// them: the snapshot the endpoint's shell publishes when the bindings change.
    pub fn registrations(&self, now: Instant) -> Vec<Registration> {
        let mut users: Vec<&str> = self.users().collect();
        users.sort_unstable();
        users
            .into_iter()
            .flat_map(|user| {
                self.contacts(now, user)
                    .into_iter()
                    .map(move |b| Registration {
                        user: user.to_string(),
                        binding: b.clone(),
                    })
            })
            .collect()
    }

    /// Users with at least one binding (live or not yet purged).
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.bindings.keys().map(String::as_str)
    }
}

/// The 200 OK Contact values: `<uri>;expires=N[;q=Q]`, N the seconds left at `now`.
pub fn contact_header_values(bindings: &[Binding], now: Instant) -> Vec<String> {
    bindings
        .iter()
        .map(|b| {
            let mut s = format!("<{}>;expires={}", b.contact, b.remaining_secs(now));
            if let Some(q) = b.q {
                s.push_str(&format!(";q={}", format_q(q)));
            }
            s
        })
        .collect()
}

/// `q` as RFC 3261 §25.1 `qvalue`: at most three decimals, no trailing zeros.
fn format_q(q: f32) -> String {
    let s = format!("{:.3}", q);
    let s = s.trim_end_matches('0');
    let s = s.strip_suffix('.').unwrap_or(s);
    s.to_string()
}

/// Reads the Contact header values of a REGISTER (each may hold several comma-separated
/// contacts). Returns the contacts and whether `*` was given. `<uri>;params` and bare
/// `uri;params` forms are accepted; for a bare URI, `;` parameters are header parameters
/// (RFC 3261 §20.10), so `expires` and `q` are found either way.
pub fn parse_contacts(values: &[&str]) -> Result<(Vec<ContactSpec>, bool), RegisterError> {
    let mut out = Vec::new();
    let mut star = false;
    for v in values {
        for item in split_comma_list(v) {
            if item == "*" {
                star = true;
                continue;
            }
            out.push(parse_one_contact(&item)?);
        }
    }
    if star && !out.is_empty() {
        return Err(RegisterError::BadStar);
    }
    Ok((out, star))
}

fn parse_one_contact(item: &str) -> Result<ContactSpec, RegisterError> {
    let bad = |m: &str| RegisterError::BadContact(format!("{m}: {item:?}"));
    let (uri, params) = match item.find('<') {
        Some(open) => {
            let close = item[open..]
                .find('>')
                .map(|i| open + i)
                .ok_or_else(|| bad("unclosed <"))?;
            (&item[open + 1..close], &item[close + 1..])
        }
        None => match item.find(';') {
            Some(i) => (&item[..i], &item[i..]),
            None => (item, ""),
        },
    };
    let uri = uri.trim();
    let lower = uri.to_ascii_lowercase();
    if !(lower.starts_with("sip:") || lower.starts_with("sips:")) || uri.contains(' ') {
        return Err(bad("not a sip: URI"));
    }
    let mut spec = ContactSpec {
        uri: uri.to_string(),
        expires: None,
        q: None,
    };
    for p in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "expires" => {
                // Huge values are legal (RFC 3261 §20.19 allows up to 2^32-1); saturate.
                let n: u64 = v.parse().map_err(|_| bad("expires is not a number"))?;
                spec.expires = Some(u32::try_from(n).unwrap_or(u32::MAX));
            }
            "q" => {
                let q: f32 = v.parse().map_err(|_| bad("q is not a number"))?;
                if !(0.0..=1.0).contains(&q) {
                    return Err(bad("q outside 0..1"));
                }
                spec.q = Some(q);
            }
            _ => {}
        }
    }
    Ok(spec)
}

/// Contact URI equality, simplified from RFC 3261 §19.1.4: case-insensitive on the whole URI.
/// (User parts are case-sensitive in the RFC; treating two case variants from the same
/// authenticated user as one binding is harmless.)
fn same_uri(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

#[cfg(test)]
#[path = "registrar_tests.rs"]
mod tests;
