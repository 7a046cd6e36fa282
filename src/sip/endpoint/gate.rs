//! What the endpoint lets in and where it lets its own requests go: the Request-URI host check
//! (RFC 3261 §8.2.2.1), per-source admission of out-of-dialog requests (`sip::admission`), the
//! rule for which From must prove itself, and the hosts our in-dialog requests may be sent to.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use tracing::{debug, warn};

use super::dialog_requests::stateless_tag;
use super::*;

impl Endpoint {
    /// Whether a Request-URI names this server: its host is the address the request arrived on,
    /// or one of `EndpointConfig::domains` (which include the public and listen addresses).
    pub(super) fn names_us(&self, uri: &str, local: SocketAddr) -> bool {
        let Some((host, _port)) = uri_host_port(uri) else {
            return false;
        };
        self.is_our_host(&host, local)
    }

    fn is_our_host(&self, host: &str, local: SocketAddr) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.parse::<IpAddr>().is_ok_and(|ip| ip == local.ip()) {
            return true;
        }
        self.config
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(host))
    }

    /// Whether a From claims to be one of our own users: its host is ours and its port, if any,
    /// is our SIP port (a caller's own phone names its own address). Such a caller must prove it
    /// with a digest answer, whatever the user name: challenging only the names that exist would
    /// tell a scanner which ones do (like FreeSWITCH, which challenges calls from its domains).
    pub(super) fn claims_to_be_ours(&self, from_uri: &str, local: SocketAddr) -> bool {
        if !from_uri
            .get(..4)
            .is_some_and(|s| s.eq_ignore_ascii_case("sip:"))
        {
            return false;
        }
        let Some((host, port)) = uri_host_port(from_uri) else {
            return false;
        };
        self.is_our_host(&host, local) && port.is_none_or(|p| p == local.port())
    }

    /// 404 for a request addressed to a host that is not ours, without keeping any state.
    pub(super) fn refuse_foreign_host(
        &mut self,
        now: Instant,
        req: &Request,
        source: SocketAddr,
        transport: Transport,
        reply_to: SocketAddr,
        local: SocketAddr,
    ) {
        if let Some(count) = self.foreign.note(now) {
            warn!(call_id = %req.call_id, uri = %req.uri, %source, %local, count, event = "foreign_host",
                "request for a host that is not ours refused with 404; if it is ours, add its name or address to sip.domains");
        }
        let warning = [("Warning", "399 ivr \"not a host served here\"")];
        self.reply_statelessly(req, (source, transport, reply_to), 404, &warning);
    }

    /// Per-source admission of an out-of-dialog request: `true` lets it through; otherwise it was
    /// answered 503 with Retry-After (statelessly) or dropped.
    pub(super) fn admit(
        &mut self,
        now: Instant,
        req: &Request,
        source: SocketAddr,
        transport: Transport,
        reply_to: SocketAddr,
    ) -> bool {
        let work = match req.method {
            rsip::Method::Invite => Work::Call,
            rsip::Method::Register => Work::Register,
            _ => Work::Request,
        };
        let (retry_after, why, answered) = match self.admission.check(now, source.ip(), work) {
            Verdict::Admit => return true,
            Verdict::Refuse { retry_after, why } => (Some(retry_after), why, true),
            Verdict::Drop { why } => (None, why, false),
        };
        match why {
            crate::sip::admission::Limit::Rate => self.refused.rate += 1,
            crate::sip::admission::Limit::HalfOpen => self.refused.half_open += 1,
        }
        if let Some(count) = self.limited.note(now) {
            warn!(%source, method = %req.method, limit = %why, count, answered, event = "source_limited",
                "per-source limit: requests refused (503) or, from sources that ignore refusals, dropped (sip.limits)");
        }
        if let Some(secs) = retry_after {
            let secs = secs.to_string();
            let retry = [("Retry-After", secs.as_str())];
            self.reply_statelessly(req, (source, transport, reply_to), 503, &retry);
        }
        false
    }
}

impl Endpoint {
    /// Answers `req` with `status` and `headers` without keeping any state (RFC 3261 §8.2.7):
    /// the To tag derives from the request, so a retransmission gets the same answer. `peer` is
    /// (source, transport, where responses go).
    pub(super) fn reply_statelessly(
        &mut self,
        req: &Request,
        peer: (SocketAddr, Transport, SocketAddr),
        status: u16,
        headers: &[(&str, &str)],
    ) {
        let (source, transport, reply_to) = peer;
        let tag = stateless_tag(req);
        let mut b = ResponseBuilder::new(&req.raw, source, status, Some(&tag));
        for (name, value) in headers {
            b = b.header(name, value);
        }
        self.transmit(transport, reply_to, b.build());
    }
}

/// Where an in-dialog request of ours goes when the dialog's route or target names `hop`: there
/// only if it is the host the dialog came from (`flow`; any port: the far end may listen elsewhere
/// than it sends from) or in `follow` (`sip.follow_routes_to`); otherwise back along the flow, so
/// a caller cannot aim our BYE at a third party with a Record-Route or Contact.
pub(super) fn allowed_hop(
    follow: &[IpNet],
    hop: Option<SocketAddr>,
    flow: SocketAddr,
) -> SocketAddr {
    match hop {
        Some(h) if h.ip() == flow.ip() || follow.iter().any(|n| n.contains(&h.ip())) => h,
        Some(h) => {
            debug!(hop = %h, %flow, "in-dialog request sent along the dialog's flow, not to the host its route names (sip.follow_routes_to)");
            flow
        }
        None => flow,
    }
}
