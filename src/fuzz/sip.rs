//! `sip_message`: one SIP message as a datagram and as a TCP stream, through the parser, the
//! helpers that read its headers, the response builder, and a fresh endpoint core.

use std::net::SocketAddr;
use std::time::Instant;

use super::signature::Signature;
use crate::sip::message::{
    Frame, Incoming, ParseError, Rejection, ResponseBuilder, frame_stream, parse, split_comma_list,
    uri_user,
};
use crate::sip::registrar::parse_contacts;
use crate::sip::{Endpoint, EndpointConfig, Output, Transport, uri_host_port, uri_socket_addr};

/// Where the fuzzed message comes from, and our own address.
const SOURCE: &str = "127.0.0.2:5062";
const LOCAL: &str = "127.0.0.1:5060";

/// Messages taken off one fuzzed TCP stream at most (each needs at least its headers' bytes, so
/// this only bounds pathological inputs of keep-alives and tiny messages).
const MAX_STREAM_MESSAGES: usize = 64;

/// Parses `data` as one datagram (reading every header the endpoint would read, and building the
/// response it would send), frames it as a TCP stream, and hands it to a fresh [`Endpoint`] over
/// UDP and TCP, draining what it sends.
///
/// Checked: a response we build for a request that parsed parses as a response; stream framing
/// always makes progress and never claims more bytes than it has.
pub fn sip_message(data: &[u8]) -> u64 {
    let mut sig = Signature::new("sip_message");
    let source = addr(SOURCE);
    let local = addr(LOCAL);
    read_message(data, source, &mut sig);

    let mut rest = data;
    for _ in 0..MAX_STREAM_MESSAGES {
        match frame_stream(rest) {
            Ok(Frame::KeepAlive(n)) => {
                assert!(n > 0 && n <= rest.len(), "keep-alive of {n} bytes");
                rest = &rest[n..];
            }
            Ok(Frame::Message(n)) => {
                assert!(
                    n > 0 && n <= rest.len(),
                    "message of {n} bytes in {}",
                    rest.len()
                );
                sig.add(("stream", n == rest.len()));
                read_message(&rest[..n], source, &mut sig);
                rest = &rest[n..];
            }
            Ok(Frame::Incomplete) => break,
            Err(e) => {
                sig.kind(&e);
                break;
            }
        }
    }

    // The endpoint sees a message only once the transport has framed it; a datagram is framed
    // by the network, so the whole input is what it gets over UDP.
    let now = Instant::now();
    for transport in [Transport::Udp, Transport::Tcp(1)] {
        let mut ep = Endpoint::new(EndpointConfig::default());
        ep.handle_message(now, data, source, transport, local);
        while let Some(out) = ep.poll_output() {
            match out {
                Output::Transmit { bytes, .. } => sig.add(status_of(&bytes)),
                Output::Event(_, e) => sig.kind(&e),
            }
        }
    }
    sig.finish()
}

/// Parses one message and reads it the way the endpoint, registrar and dialog code do.
fn read_message(data: &[u8], source: SocketAddr, sig: &mut Signature) {
    match parse(data) {
        Ok(Incoming::Request(req)) => {
            sig.add(("request", req.method.to_string()));
            let _ = req.asserted_identity();
            let _ = req.via.stamped(source);
            let _ = req.via.response_target(source);
            let _ = req.via.rfc3261_branch();
            let _ = (uri_user(&req.uri), req.from.user(), req.to.user());
            let _ = (uri_host_port(&req.uri), uri_socket_addr(&req.uri));
            for rr in &req.record_route {
                let _ = uri_host_port(rr);
            }
            let contacts: Vec<&str> = req.raw.header_values("Contact").collect();
            sig.add(parse_contacts(&contacts).is_ok());
            for v in req.raw.header_values("Route") {
                let _ = split_comma_list(v);
            }
            // What the endpoint answers must be readable by the peer, which we stand in for.
            let resp = ResponseBuilder::new(&req.raw, source, 200, Some("fuzz"))
                .header("Contact", "<sip:ivr@127.0.0.1:5060>")
                .build();
            match parse(&resp) {
                // A request near the size limit gets a response past it (Via stamping adds to
                // it); it cannot be sent over UDP, and the peer gets no answer, which is fine.
                Err(Rejection::Drop(ParseError::TooLarge(_))) => {}
                Ok(Incoming::Response(r)) => {
                    assert_eq!(r.call_id, req.call_id, "response Call-ID");
                    assert_eq!(r.cseq, req.cseq, "response CSeq");
                }
                other => panic!(
                    "our 200 to a parsed {} does not parse as a response: {other:?}\n{}",
                    req.method,
                    String::from_utf8_lossy(&resp)
                ),
            }
        }
        Ok(Incoming::Response(resp)) => {
            sig.add(("response", resp.status));
            for c in &resp.contacts {
                let _ = (c.user(), uri_socket_addr(&c.uri));
            }
            let _ = resp.via.rfc3261_branch();
        }
        Err(Rejection::Respond {
            status,
            reason,
            raw,
        }) => {
            sig.add(("respond", status));
            let _ = ResponseBuilder::with_reason(&raw, source, status, &reason, None)
                .header(
                    "Warning",
                    &format!("399 ivr \"{}\"", reason.replace('"', "'")),
                )
                .build();
        }
        Err(Rejection::Drop(e)) => sig.kind(&e),
    }
}

/// The status code of a response we sent, 0 for a request.
pub(super) fn status_of(bytes: &[u8]) -> u16 {
    bytes
        .strip_prefix(b"SIP/2.0 ")
        .and_then(|b| b.get(..3))
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A socket address written as a constant in this module.
pub(super) fn addr(s: &str) -> SocketAddr {
    // The callers pass literals that are valid addresses; a typo shows up in the first test run.
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 5060)))
}
