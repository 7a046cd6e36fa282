//! UAS dialog state (RFC 3261 §12): identifiers, CSeq spaces, route set and remote target, and the
//! construction of requests we send inside the dialog (BYE today, re-INVITE later).

use std::fmt::Write as _;

use super::message::{NameAddr, Request};

/// Why a request inside the dialog is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("CSeq {got} is not above the last one seen ({last}); out of order")]
    CSeqOutOfOrder { got: u32, last: u32 },
}

#[derive(Clone, Debug)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    /// Our identity as the remote party addressed it (the INVITE's To), without tag.
    local_uri: String,
    /// The remote party's From value (with its tag), echoed as To in our requests.
    remote_uri: String,
    /// Where in-dialog requests go (the remote Contact URI, updated by target refreshes).
    pub remote_target: String,
    /// Record-Route of the INVITE, in received order (§12.1.1).
    pub route_set: Vec<String>,
    local_cseq: u32,
    remote_cseq: u32,
}

impl Dialog {
    /// The dialog a UAS creates when it answers `invite` with a To tag of `local_tag`.
    pub fn uas(invite: &Request, local_tag: &str) -> Dialog {
        Dialog {
            call_id: invite.call_id.clone(),
            local_tag: local_tag.to_string(),
            remote_tag: invite.from.tag.clone(),
            local_uri: invite.to.raw.clone(),
            remote_uri: invite.from.raw.clone(),
            remote_target: invite
                .contact
                .as_ref()
                .map(|c| c.uri.clone())
                .unwrap_or_else(|| invite.from.uri.clone()),
            route_set: invite.record_route.clone(),
            // Our own CSeq space starts anywhere below 2^31 (§8.1.1.5); 1 keeps traces readable.
            local_cseq: 0,
            remote_cseq: invite.cseq,
        }
    }

    /// The dialog a UAC starts with its INVITE (§12.1.2): the remote tag, target and route set
    /// are filled in by [`on_answer`](Self::on_answer) when the 2xx arrives. `local_uri` and
    /// `remote_uri` are the From (without our tag) and To values of the INVITE; `cseq` its CSeq.
    pub fn uac(
        call_id: &str,
        local_tag: &str,
        local_uri: &str,
        remote_uri: &str,
        remote_target: &str,
        cseq: u32,
    ) -> Dialog {
        Dialog {
            call_id: call_id.to_string(),
            local_tag: local_tag.to_string(),
            remote_tag: None,
            local_uri: local_uri.to_string(),
            remote_uri: remote_uri.to_string(),
            remote_target: remote_target.to_string(),
            route_set: Vec::new(),
            local_cseq: cseq,
            remote_cseq: 0,
        }
    }

    /// The 2xx to our INVITE established the dialog (§12.1.2): its To (with the remote tag)
    /// becomes the remote URI, its Contact the target, its Record-Route (reversed) the route set.
    pub fn on_answer(
        &mut self,
        to: &NameAddr,
        contact: Option<&NameAddr>,
        record_route: &[String],
    ) {
        self.remote_tag = to.tag.clone();
        self.remote_uri = to.raw.clone();
        if let Some(c) = contact {
            self.remote_target = c.uri.clone();
        }
        self.route_set = record_route.iter().rev().cloned().collect();
    }

    /// Our CSeq for the next request: a re-sent INVITE (after a challenge or redirect) moves it.
    pub fn set_local_cseq(&mut self, cseq: u32) {
        self.local_cseq = cseq;
    }

    pub fn local_cseq(&self) -> u32 {
        self.local_cseq
    }

    /// The ACK for a 2xx to our INVITE with CSeq `cseq` (§13.2.2.4): a request of its own, sent
    /// along the dialog's route with the INVITE's CSeq number.
    pub fn ack(
        &mut self,
        cseq: u32,
        via_sent_by: &str,
        via_transport: &str,
        branch: &str,
    ) -> (Vec<u8>, String) {
        let saved = self.local_cseq;
        self.local_cseq = cseq.saturating_sub(1);
        let out = self.request("ACK", via_sent_by, via_transport, branch, &[], None);
        self.local_cseq = saved;
        out
    }

    /// Accepts a new request from the remote side: CSeq must grow (§12.2.2).
    pub fn on_remote_request(&mut self, req: &Request) -> Result<(), DialogError> {
        if req.cseq <= self.remote_cseq && req.method != rsip::Method::Ack {
            return Err(DialogError::CSeqOutOfOrder {
                got: req.cseq,
                last: self.remote_cseq,
            });
        }
        self.remote_cseq = self.remote_cseq.max(req.cseq);
        // A re-INVITE or UPDATE may move the remote target (§12.2.2 target refresh).
        if matches!(req.method, rsip::Method::Invite | rsip::Method::Update)
            && let Some(c) = &req.contact
        {
            self.remote_target = c.uri.clone();
        }
        Ok(())
    }

    /// Whether a request (From tag, To tag) belongs to this dialog, from the remote side's view.
    pub fn matches(&self, call_id: &str, from: &NameAddr, to: &NameAddr) -> bool {
        self.call_id == call_id
            && to.tag.as_deref() == Some(self.local_tag.as_str())
            && from.tag == self.remote_tag
    }

    /// Builds an in-dialog request (§12.2.1.1). Returns the bytes and the URI of the next hop
    /// (first Route entry or the remote target) for the caller to resolve.
    pub fn request(
        &mut self,
        method: &str,
        via_sent_by: &str,
        via_transport: &str,
        branch: &str,
        extra_headers: &[(&str, String)],
        body: Option<(&str, &[u8])>,
    ) -> (Vec<u8>, String) {
        self.local_cseq += 1;
        let loose = self
            .route_set
            .first()
            .is_none_or(|r| name_addr_uri(r).contains(";lr"));
        let (request_uri, routes, next_hop) = if self.route_set.is_empty() {
            (
                self.remote_target.clone(),
                Vec::new(),
                self.remote_target.clone(),
            )
        } else if loose {
            (
                self.remote_target.clone(),
                self.route_set.clone(),
                name_addr_uri(&self.route_set[0]).to_string(),
            )
        } else {
            // Strict router (RFC 2543 style): its URI becomes the Request-URI and the remote
            // target goes to the end of the Route header (§12.2.1.1).
            let first = name_addr_uri(&self.route_set[0]).to_string();
            let mut rest: Vec<String> = self.route_set[1..].to_vec();
            rest.push(format!("<{}>", self.remote_target));
            (first.clone(), rest, first)
        };
        let mut text = String::with_capacity(512);
        let _ = write!(text, "{method} {request_uri} SIP/2.0\r\n");
        let _ = write!(
            text,
            "Via: SIP/2.0/{via_transport} {via_sent_by};branch={branch};rport\r\n"
        );
        let _ = write!(text, "Max-Forwards: 70\r\n");
        let _ = write!(text, "From: {};tag={}\r\n", self.local_uri, self.local_tag);
        let _ = write!(text, "To: {}\r\n", self.remote_uri);
        let _ = write!(text, "Call-ID: {}\r\n", self.call_id);
        let _ = write!(text, "CSeq: {} {method}\r\n", self.local_cseq);
        if method == "INVITE" || method == "UPDATE" {
            let _ = write!(text, "Contact: <sip:ivr@{via_sent_by}>\r\n");
        }
        for r in &routes {
            let _ = write!(text, "Route: {r}\r\n");
        }
        for (name, value) in extra_headers {
            let _ = write!(text, "{name}: {value}\r\n");
        }
        let _ = write!(text, "User-Agent: ivr/{}\r\n", env!("CARGO_PKG_VERSION"));
        let mut out = with_body(text, body);
        out.shrink_to_fit();
        (out, next_hop)
    }
}

/// The URI inside a name-addr value: a Route, Record-Route, Path or Contact element
/// (`<sip:p1;lr>` → `sip:p1;lr`); a bare URI as it is, trimmed.
pub fn name_addr_uri(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if b > a => &value[a + 1..b],
        _ => value.trim(),
    }
}

/// The address of a SIP URI whose host is an IP literal (port 5060 when none); `None` for host
/// names, which the line does not resolve (no DNS).
pub fn uri_socket_addr(uri: &str) -> Option<std::net::SocketAddr> {
    let (host, port) = uri_host_port(uri)?;
    let ip = host
        .trim_matches(|ch| ch == '[' || ch == ']')
        .parse()
        .ok()?;
    Some(std::net::SocketAddr::new(ip, port.unwrap_or(5060)))
}

/// Request bytes: the header text so far, then Content-Type/Length and the body (if any).
pub fn with_body(mut text: String, body: Option<(&str, &[u8])>) -> Vec<u8> {
    match body {
        Some((ct, b)) => {
            let _ = write!(
                text,
                "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                b.len()
            );
            let mut v = text.into_bytes();
            v.extend_from_slice(b);
            v
        }
        None => {
            text.push_str("Content-Length: 0\r\n\r\n");
            text.into_bytes()
        }
    }
}

/// `host:port` of a SIP URI, for next-hop resolution (`sip:alice@10.0.0.5:5070;transport=udp`).
pub fn uri_host_port(uri: &str) -> Option<(String, Option<u16>)> {
    let rest = uri.split_once(':')?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |x| x.1);
    let hostport = rest.split([';', '?', '>']).next()?;
    super::message::split_host_port(hostport)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Incoming, parse};

    fn invite(extra: &str) -> Request {
        let msg = format!(
            "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK-abc\r\n\
From: <sip:alice@client>;tag=a1\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: d1\r\nCSeq: 5 INVITE\r\n\
Contact: <sip:alice@10.0.0.5:5070>\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match parse(msg.as_bytes()).unwrap() {
            Incoming::Request(r) => *r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn bye_goes_to_the_contact_with_swapped_identities() {
        let mut d = Dialog::uas(&invite(""), "ours");
        let (bytes, hop) = d.request("BYE", "127.0.0.1:5060", "UDP", "z9hG4bKb1", &[], None);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("BYE sip:alice@10.0.0.5:5070 SIP/2.0\r\n"));
        assert!(text.contains("From: <sip:ivr@127.0.0.1>;tag=ours\r\n"));
        assert!(text.contains("To: <sip:alice@client>;tag=a1\r\n"));
        assert!(text.contains("CSeq: 1 BYE\r\n"));
        assert_eq!(hop, "sip:alice@10.0.0.5:5070");
        assert_eq!(
            uri_host_port(&hop),
            Some(("10.0.0.5".to_string(), Some(5070)))
        );
    }

    #[test]
    fn loose_route_set_is_copied_into_route() {
        let mut d = Dialog::uas(
            &invite("Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n"),
            "ours",
        );
        let (bytes, hop) = d.request("BYE", "h:1", "UDP", "z9hG4bKb1", &[], None);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("BYE sip:alice@10.0.0.5:5070 SIP/2.0"));
        let routes: Vec<&str> = text.lines().filter(|l| l.starts_with("Route:")).collect();
        assert_eq!(
            routes,
            vec!["Route: <sip:p1.example;lr>", "Route: <sip:p2.example;lr>"]
        );
        assert_eq!(hop, "sip:p1.example;lr");
    }

    #[test]
    fn strict_router_becomes_request_uri() {
        let mut d = Dialog::uas(&invite("Record-Route: <sip:strict.example>\r\n"), "ours");
        let (bytes, hop) = d.request("BYE", "h:1", "UDP", "z9hG4bKb1", &[], None);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("BYE sip:strict.example SIP/2.0"));
        assert!(text.contains("Route: <sip:alice@10.0.0.5:5070>\r\n"));
        assert_eq!(hop, "sip:strict.example");
    }

    #[test]
    fn remote_cseq_must_grow() {
        let inv = invite("");
        let mut d = Dialog::uas(&inv, "ours");
        let mut bye = inv.clone();
        bye.method = rsip::Method::Bye;
        bye.cseq = 5;
        assert_eq!(
            d.on_remote_request(&bye),
            Err(DialogError::CSeqOutOfOrder { got: 5, last: 5 })
        );
        bye.cseq = 6;
        assert!(d.on_remote_request(&bye).is_ok());
    }
}
