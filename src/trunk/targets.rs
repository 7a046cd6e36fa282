//! Where one trunk's REGISTERs go (sans-IO): an IP literal is its one target; a host name is
//! looked up by RFC 3263 (the shell runs the lookup and hands the answer back), and a REGISTER
//! that times out or gets a 503 is sent again, as a new transaction, to the next target
//! (§4.3) before the registration client hears of any failure. Only when every target has
//! failed does the client count a failure and back off; the next attempt looks the name up
//! again, so DNS changes (and TTLs) are followed.
//!
//! The target that worked is kept for refreshes: going back to the first (dead) one each time
//! would cost a whole transaction timeout per refresh.

use std::net::SocketAddr;

use super::register::Send;
use crate::dns::{DnsError, Failure, Target, TargetCursor};

/// What to do with a REGISTER the client wants sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Send it there now.
    SendTo(SocketAddr, Send),
    /// Look the registrar up (start a lookup of [`RegistrarTargets::uri`]); it waits.
    Lookup,
    /// A lookup is already running; it waits for it.
    Wait,
}

/// A lookup came back.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Send the waiting REGISTER there.
    SendTo(SocketAddr, Send),
    /// Nothing to reach: the waiting REGISTER (this CSeq) fails, for this reason.
    Failed { cseq: u32, reason: String },
    /// Nothing was waiting (shutdown took it, or it was answered meanwhile).
    Idle,
}

#[derive(Debug)]
pub struct RegistrarTargets {
    uri: String,
    literal: Option<SocketAddr>,
    cursor: Option<TargetCursor>,
    resolving: bool,
    waiting: Option<Send>,
}

impl RegistrarTargets {
    /// `uri` is the registrar as configured; `literal` its address when the host is an IP.
    pub fn new(uri: &str, literal: Option<SocketAddr>) -> RegistrarTargets {
        RegistrarTargets {
            uri: uri.to_string(),
            literal,
            cursor: literal.map(|a| TargetCursor::new(vec![udp(a)])),
            resolving: false,
            waiting: None,
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The target REGISTERs go to now, if known.
    pub fn current(&self) -> Option<SocketAddr> {
        self.cursor.as_ref()?.current().map(|t| t.addr)
    }

    pub fn route(&mut self, send: Send) -> Route {
        if let Some(to) = self.current() {
            return Route::SendTo(to, send);
        }
        self.waiting = Some(send);
        if self.resolving {
            Route::Wait
        } else {
            self.resolving = true;
            Route::Lookup
        }
    }

    pub fn resolved(&mut self, result: Result<Vec<Target>, DnsError>) -> Resolved {
        self.resolving = false;
        let reason = match result {
            Ok(targets) if !targets.is_empty() => {
                self.cursor = Some(TargetCursor::new(targets));
                None
            }
            Ok(_) => Some(format!("{}: no targets", self.uri)),
            Err(e) => Some(format!("registrar {} did not resolve: {e}", self.uri)),
        };
        let Some(send) = self.waiting.take() else {
            return Resolved::Idle;
        };
        match (reason, self.current()) {
            (None, Some(to)) => Resolved::SendTo(to, send),
            (reason, _) => Resolved::Failed {
                cseq: send.cseq,
                reason: reason.unwrap_or_default(),
            },
        }
    }

    /// The REGISTER sent to the current target failed this way: the next target to send the
    /// same REGISTER to, or `None` when the client must hear the failure: it was no failover
    /// failure (RFC 3263 §4.3: only a timeout, a transport error or a 503 is), or every target
    /// has failed, and then the next attempt starts from a fresh lookup.
    pub fn failed(&mut self, failure: Failure) -> Option<SocketAddr> {
        if !failure.fails_over() {
            // The far end's word (401, 403, 404...): that target is working; stay on it.
            return None;
        }
        let next = self.cursor.as_mut()?.failed(failure).map(|t| t.addr);
        if next.is_none() {
            self.cursor = self.literal.map(|a| TargetCursor::new(vec![udp(a)]));
        }
        next
    }

    /// Shutdown: a REGISTER waiting for a lookup is dropped (there is no binding to remove).
    pub fn drop_waiting(&mut self) -> Option<Send> {
        self.waiting.take()
    }

    /// The addresses the last lookup gave (the provider's, for recognising its calls).
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.cursor
            .as_ref()
            .map(|c| c.targets().iter().map(|t| t.addr).collect())
            .unwrap_or_default()
    }
}

fn udp(addr: SocketAddr) -> Target {
    Target {
        transport: crate::dns::Transport::Udp,
        addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(cseq: u32) -> Send {
        Send {
            cseq,
            expires: 600,
            authorization: None,
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_ip_literal_is_its_own_target_and_never_looked_up() {
        let mut t = RegistrarTargets::new("sip:192.0.2.10", Some(addr("192.0.2.10:5060")));
        assert_eq!(
            t.route(send(1)),
            Route::SendTo(addr("192.0.2.10:5060"), send(1))
        );
        // Failing over from the only target: the client hears it; the address stays.
        assert_eq!(t.failed(Failure::Timeout), None);
        assert_eq!(t.current(), Some(addr("192.0.2.10:5060")));
    }

    #[test]
    fn a_name_is_looked_up_once_and_the_waiting_register_goes_to_the_first_target() {
        let mut t = RegistrarTargets::new("sip:carrier.test", None);
        assert_eq!(t.route(send(1)), Route::Lookup);
        assert_eq!(t.route(send(2)), Route::Wait);
        let targets = vec![udp(addr("127.0.0.2:5071")), udp(addr("127.0.0.3:5072"))];
        assert_eq!(
            t.resolved(Ok(targets)),
            Resolved::SendTo(addr("127.0.0.2:5071"), send(2))
        );
        assert_eq!(t.addresses().len(), 2);
    }

    #[test]
    fn timeout_and_503_move_on_other_answers_stay_and_the_end_looks_up_again() {
        let mut t = RegistrarTargets::new("sip:carrier.test", None);
        t.route(send(1));
        t.resolved(Ok(vec![
            udp(addr("127.0.0.2:5071")),
            udp(addr("127.0.0.3:5072")),
        ]));
        assert_eq!(t.failed(Failure::Timeout), Some(addr("127.0.0.3:5072")));
        // A 403 from the second is the provider's answer: no failover, and it stays the target.
        assert_eq!(t.failed(Failure::Status(403)), None);
        assert_eq!(t.current(), Some(addr("127.0.0.3:5072")));
        // Its 503 with nothing after it: the client hears it, and the next REGISTER looks up.
        assert_eq!(t.failed(Failure::Status(503)), None);
        assert_eq!(t.current(), None);
        assert_eq!(t.route(send(3)), Route::Lookup);
    }

    #[test]
    fn a_name_that_does_not_resolve_fails_the_waiting_register_with_the_reason() {
        let mut t = RegistrarTargets::new("sip:nowhere.test", None);
        t.route(send(4));
        let r = t.resolved(Err(DnsError::NxDomain {
            name: "_sip._udp.nowhere.test".into(),
        }));
        assert_eq!(
            r,
            Resolved::Failed {
                cseq: 4,
                reason: "registrar sip:nowhere.test did not resolve: _sip._udp.nowhere.test: no such domain (NXDOMAIN)".into()
            }
        );
        assert_eq!(t.route(send(5)), Route::Lookup);
    }
}
