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
