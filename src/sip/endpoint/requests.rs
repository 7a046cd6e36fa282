//! Out-of-dialog requests a shell composes itself (trunk REGISTERs), run as ordinary non-INVITE
//! client transactions of the endpoint: retransmission (timer E), timeout (timer F) and response
//! matching by branch stay in one place, and the outcome comes back by reference.

use super::*;

/// Identifies one [`Endpoint::send_request`] request.
pub type RequestRef = u64;

/// How a request sent with [`Endpoint::send_request`] ended.
#[derive(Debug)]
pub enum RequestOutcome {
    /// Its final response (provisional ones are absorbed).
    Response(Box<Response>),
    /// No final response within 64*T1 (timer F).
    Timeout,
}

impl Endpoint {
    /// Sends `bytes` (a complete request whose top Via carries `branch`) to `to` as a non-INVITE
    /// client transaction; its outcome comes out of [`poll_request_outcome`](Self::poll_request_outcome).
    pub fn send_request(
        &mut self,
        now: Instant,
        to: SocketAddr,
        transport: Transport,
        branch: &str,
        bytes: Vec<u8>,
    ) -> RequestRef {
        let id = self.next_request;
        self.next_request += 1;
        let (tx, actions) = NonInviteClientTx::new(
            now,
            transport.is_reliable(),
            self.config.timers,
            Bytes::from(bytes),
        );
        self.client_txs.insert(
            branch.to_string(),
            ClientTx {
                tx,
                to,
                transport,
                call: None,
                request: Some(id),
            },
        );
        self.apply_client_actions(branch, actions);
        id
    }

    /// The next finished [`send_request`](Self::send_request) request.
    pub fn poll_request_outcome(&mut self) -> Option<(RequestRef, RequestOutcome)> {
        self.request_outcomes.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRANCH: &str = "z9hG4bKtrunk1";

    fn register_to(ep: &mut Endpoint, now: Instant, to: SocketAddr) -> RequestRef {
        let req = format!(
            "REGISTER sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={BRANCH};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:acct@{to}>;tag=t1\r\nTo: <sip:acct@{to}>\r\n\
             Call-ID: reg1@ivr\r\nCSeq: 1 REGISTER\r\nContact: <sip:acct@127.0.0.1:5060>\r\n\
             Expires: 60\r\nContent-Length: 0\r\n\r\n"
        );
        ep.send_request(now, to, Transport::Udp, BRANCH, req.into_bytes())
    }

    #[test]
    fn the_final_response_comes_back_and_the_request_is_no_longer_in_flight() {
        let now = Instant::now();
        let to: SocketAddr = "192.0.2.10:5060".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let id = register_to(&mut ep, now, to);
        assert!(matches!(ep.poll_output(), Some(Output::Transmit { to: t, .. }) if t == to));
        assert!(ep.requests_in_flight());
        let ok = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={BRANCH};rport=5060\r\n\
             From: <sip:acct@{to}>;tag=t1\r\nTo: <sip:acct@{to}>;tag=r1\r\nCall-ID: reg1@ivr\r\n\
             CSeq: 1 REGISTER\r\nContact: <sip:acct@127.0.0.1:5060>;expires=30\r\n\
             Content-Length: 0\r\n\r\n"
        );
        ep.handle_message(now, ok.as_bytes(), to, Transport::Udp, local);
        match ep.poll_request_outcome() {
            Some((got, RequestOutcome::Response(r))) => {
                assert_eq!((got, r.status), (id, 200));
            }
            other => panic!("expected the 200, got {other:?}"),
        }
        // The transaction absorbs retransmissions for T4, but nothing waits for it: a shutdown
        // need not either.
        assert!(!ep.requests_in_flight());
        assert!(ep.transactions_pending());
        ep.handle_message(now, ok.as_bytes(), to, Transport::Udp, local);
        assert!(
            ep.poll_request_outcome().is_none(),
            "a retransmission is absorbed"
        );
    }

    #[test]
    fn no_response_is_reported_as_a_timeout() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let id = register_to(&mut ep, t0, "192.0.2.10:5060".parse().unwrap());
        while let Some(now) = ep.poll_timeout() {
            ep.handle_timeout(now);
            if let Some(out) = ep.poll_request_outcome() {
                assert!(matches!(out, (got, RequestOutcome::Timeout) if got == id));
                assert_eq!(now - t0, EndpointConfig::default().timers.t1x64());
                assert!(!ep.requests_in_flight());
                return;
            }
        }
        panic!("no timeout reported");
    }
}
