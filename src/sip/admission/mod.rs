//! Per-source admission of out-of-dialog requests, sans-IO: one source can never take the line.
//!
//! Each source (an IPv4 address, or an IPv6 /64, which one host or subscriber usually holds
//! whole) has a token bucket per kind of work (new calls, REGISTERs, other out-of-dialog requests
//! such as OPTIONS) and a count of its half-open calls: INVITEs not yet confirmed by an ACK or
//! ended. Work beyond a bucket or the half-open cap is refused cheaply (the endpoint answers 503
//! with Retry-After, statelessly); a source that keeps going after many refusals in a row is no
//! longer answered at all, so we never reflect a flood back at the address it claims to come
//! from. Trunks and proxies that carry many callers from one address are listed as exempt.
//!
//! Memory is bounded: the table holds at most `max_sources` entries; idle ones (no half-open
//! calls, buckets full again) are swept when it fills, and sources that arrive while it is full
//! of active ones share a single overflow entry, so a sweep of a million spoofed addresses costs
//! one entry's worth of admissions, not a million entries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// A refill rate and a burst; `per_s == 0` means unlimited.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_s: f64,
    pub burst: f64,
}

impl Rate {
    pub const UNLIMITED: Rate = Rate {
        per_s: 0.0,
        burst: 0.0,
    };
}

#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionConfig {
    /// New INVITEs (dialogs) per source.
    pub calls: Rate,
    pub registers: Rate,
    /// Every other request outside a dialog (OPTIONS, stray BYE/INFO, ...).
    pub requests: Rate,
    /// Calls per source whose INVITE is not yet ACKed or ended; 0 = no cap.
    pub max_half_open: u32,
    /// Refusals in a row after which a source is dropped silently until a request of it is
    /// admitted again; 0 = always answer.
    pub silent_after: u32,
    /// Sources never limited (trunks, the proxy in front).
    pub exempt: Vec<IpNet>,
    /// Most sources tracked at once.
    pub max_sources: usize,
}

impl Default for AdmissionConfig {
    /// No limits: the core's tests and embedders that do their own admission.
    fn default() -> Self {
        AdmissionConfig {
            calls: Rate::UNLIMITED,
            registers: Rate::UNLIMITED,
            requests: Rate::UNLIMITED,
            max_half_open: 0,
            silent_after: 0,
            exempt: Vec::new(),
            max_sources: 10_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    Call,
    Register,
    Request,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Refuse, suggesting a retry after this many seconds.
    Refuse {
        retry_after: u32,
        why: Limit,
    },
    /// Say nothing: the source ignores refusals.
    Drop {
        why: Limit,
    },
}

/// Which limit a refused request hit, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Rate,
    HalfOpen,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Rate => "rate",
            Limit::HalfOpen => "half-open calls",
        })
    }
}

/// A source's table key: the address, or its /64 for IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceKey(IpAddr);

impl SourceKey {
    pub fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(_) => SourceKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    SourceKey(IpAddr::V6(bits.into()))
                }
            },
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst.max(1.0),
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate.per_s).min(rate.burst.max(1.0));
        self.at = now;
    }

    /// Takes a token, or says in how many whole seconds one will be there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), u32> {
        if rate.per_s <= 0.0 {
            return Ok(());
        }
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / rate.per_s).ceil().max(1.0) as u32)
        }
    }

    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let mut b = *self;
        b.refill(rate, now);
        rate.per_s <= 0.0 || b.tokens >= rate.burst.max(1.0)
    }
}

#[derive(Debug)]
struct Source {
    calls: Bucket,
    registers: Bucket,
    requests: Bucket,
    half_open: u32,
    refused_in_a_row: u32,
}

impl Source {
    fn new(config: &AdmissionConfig, now: Instant) -> Source {
        Source {
            calls: Bucket::full(config.calls, now),
            registers: Bucket::full(config.registers, now),
            requests: Bucket::full(config.requests, now),
            half_open: 0,
            refused_in_a_row: 0,
        }
    }

    fn idle(&self, config: &AdmissionConfig, now: Instant) -> bool {
        self.half_open == 0
            && self.calls.is_full(config.calls, now)
            && self.registers.is_full(config.registers, now)
            && self.requests.is_full(config.requests, now)
    }
}

/// Seconds suggested to a caller refused for its half-open calls: about when an unanswered
/// INVITE of a real caller has been answered or given up.
const HALF_OPEN_RETRY_S: u32 = 5;

/// A full table is swept for idle entries at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Admission {
    config: AdmissionConfig,
    sources: HashMap<SourceKey, Source>,
    /// Shared by sources that arrived while the table was full of active ones.
    overflow: Option<Source>,
    swept_at: Option<Instant>,
}

impl Admission {
    pub fn new(config: AdmissionConfig) -> Admission {
        Admission {
            overflow: None,
            config,
            sources: HashMap::new(),
            swept_at: None,
        }
    }

    /// Whether `ip` is one of the exempt trunks or proxies.
    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        self.config.exempt.iter().any(|n| n.contains(&ip))
    }

    /// Decides on a new request of `work` from `ip`. A call admitted here and then created counts
    /// as half-open from [`opened`](Self::opened) until [`closed`](Self::closed).
    pub fn check(&mut self, now: Instant, ip: IpAddr, work: Work) -> Verdict {
        if self.is_exempt(ip) {
            return Verdict::Admit;
        }
        let (max_half_open, silent_after) = (self.config.max_half_open, self.config.silent_after);
        let rate = match work {
            Work::Call => self.config.calls,
            Work::Register => self.config.registers,
            Work::Request => self.config.requests,
        };
        let source = self.source_mut(now, SourceKey::of(ip));
        let outcome =
            if work == Work::Call && max_half_open > 0 && source.half_open >= max_half_open {
                Err((HALF_OPEN_RETRY_S, Limit::HalfOpen))
            } else {
                let bucket = match work {
                    Work::Call => &mut source.calls,
                    Work::Register => &mut source.registers,
                    Work::Request => &mut source.requests,
                };
                bucket.take(rate, now).map_err(|s| (s, Limit::Rate))
            };
        match outcome {
            Ok(()) => {
                source.refused_in_a_row = 0;
                Verdict::Admit
            }
            Err((retry_after, why)) => {
                source.refused_in_a_row = source.refused_in_a_row.saturating_add(1);
                if silent_after > 0 && source.refused_in_a_row > silent_after {
                    Verdict::Drop { why }
                } else {
                    Verdict::Refuse { retry_after, why }
                }
            }
        }
    }

    /// A call from `ip` was created: it is half-open until confirmed or ended.
    pub fn opened(&mut self, ip: IpAddr) {
        if self.is_exempt(ip) {
            return;
        }
        let key = SourceKey::of(ip);
        if let Some(source) = self.sources.get_mut(&key).or(self.overflow.as_mut()) {
            source.half_open += 1;
        }
    }

    /// A call from `ip` was confirmed (ACK) or ended: it no longer counts as half-open.
    pub fn closed(&mut self, ip: IpAddr) {
        if self.is_exempt(ip) {
            return;
        }
        // Not in the table: it was admitted through the overflow entry, which holds the count (a
        // source with half-open calls is never swept).
        let key = SourceKey::of(ip);
        if let Some(source) = self.sources.get_mut(&key).or(self.overflow.as_mut()) {
            source.half_open = source.half_open.saturating_sub(1);
        }
    }

    /// Sources tracked now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    fn source_mut(&mut self, now: Instant, key: SourceKey) -> &mut Source {
        if !self.sources.contains_key(&key) && self.sources.len() >= self.config.max_sources {
            self.sweep(now);
            if self.sources.len() >= self.config.max_sources {
                let config = &self.config;
                return self
                    .overflow
                    .get_or_insert_with(|| Source::new(config, now));
            }
        }
        let config = &self.config;
        self.sources
            .entry(key)
            .or_insert_with(|| Source::new(config, now))
    }

    fn sweep(&mut self, now: Instant) {
        if self
            .swept_at
            .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_EVERY)
        {
            return;
        }
        self.swept_at = Some(now);
        let config = &self.config;
        self.sources.retain(|_, s| !s.idle(config, now));
    }
}

#[cfg(test)]
mod tests;
