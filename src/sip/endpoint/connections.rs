//! Which TCP connections the endpoint still needs: those of live calls (in-dialog requests and
//! our BYE travel over the connection the dialog began on) and those registration bindings came
//! over (a phone behind NAT registered over TCP can only be reached over its own connection).
//! The transport never closes these for being idle.

use std::collections::HashSet;

use super::*;

impl Endpoint {
    /// Ids of the [`Transport::Tcp`] connections that live calls and registration bindings use
    /// at `now`.
    pub fn tcp_connections_in_use(&self, now: Instant) -> HashSet<u64> {
        let calls = self.calls.values().map(|c| c.peer_transport);
        let bindings = self
            .registrar
            .users()
            .flat_map(|user| self.registrar.contacts(now, user))
            .map(|b| b.transport);
        calls
            .chain(bindings)
            .filter_map(|t| match t {
                Transport::Tcp(id) => Some(id),
                Transport::Udp => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sip::auth;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";

    fn phone() -> SocketAddr {
        "192.0.2.10:5061".parse().unwrap()
    }

    fn ours() -> SocketAddr {
        "192.0.2.1:5060".parse().unwrap()
    }

    /// A request from `bob` (a caller), or a REGISTER from `alice` (staff).
    fn request(method: &str, call_id: &str, cseq: u32, extra: &str, body: &str) -> String {
        // A caller's From names its own host; a From in our domain would be challenged.
        let (user, host) = if method == "REGISTER" {
            ("alice", "192.0.2.1")
        } else {
            ("bob", "192.0.2.10:5061")
        };
        format!(
            "{method} sip:ivr@192.0.2.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.10:5061;branch=z9hG4bK{call_id}{cseq}\r\n\
From: <sip:{user}@{host}>;tag=a1\r\nTo: <sip:{user}@192.0.2.1>\r\n\
Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{user}@192.0.2.10:5061;transport=tcp>\r\n\
{extra}Max-Forwards: 70\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// Feeds `msg` over `transport` and returns what the endpoint sent.
    fn feed(ep: &mut Endpoint, now: Instant, msg: &str, transport: Transport) -> Vec<String> {
        ep.handle_message(now, msg.as_bytes(), phone(), transport, ours());
        std::iter::from_fn(|| ep.poll_output())
            .filter_map(|o| match o {
                Output::Transmit { bytes, .. } => Some(String::from_utf8_lossy(&bytes).into()),
                Output::Event(..) => None,
            })
            .collect()
    }

    #[test]
    fn calls_and_bindings_keep_their_connections_in_use() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig {
            staff: StaffAuth {
                users: [("alice".to_string(), "s3cret".to_string())].into(),
                ..StaffAuth::default()
            },
            ..EndpointConfig::default()
        });
        assert!(ep.tcp_connections_in_use(t0).is_empty());

        // A call over connection 7, another over UDP.
        let sdp = "Content-Type: application/sdp\r\n";
        feed(
            &mut ep,
            t0,
            &request("INVITE", "c7", 1, sdp, SDP),
            Transport::Tcp(7),
        );
        feed(
            &mut ep,
            t0,
            &request("INVITE", "cu", 1, sdp, SDP),
            Transport::Udp,
        );
        assert_eq!(ep.tcp_connections_in_use(t0), HashSet::from([7]));

        // alice registers over connection 9 for 60 s.
        let expires = "Expires: 60\r\n";
        let sent = feed(
            &mut ep,
            t0,
            &request("REGISTER", "r9", 1, expires, ""),
            Transport::Tcp(9),
        );
        let challenge = sent[0]
            .lines()
            .find_map(|l| l.strip_prefix("WWW-Authenticate: "))
            .expect("a challenge");
        let answer = auth::answer_challenge(
            challenge,
            "REGISTER",
            "sip:ivr@192.0.2.1:5060",
            "alice",
            "s3cret",
            "cn",
            1,
        )
        .expect("an answer");
        let extra = format!("{expires}Authorization: {answer}\r\n");
        let sent = feed(
            &mut ep,
            t0,
            &request("REGISTER", "r9", 2, &extra, ""),
            Transport::Tcp(9),
        );
        assert!(sent[0].starts_with("SIP/2.0 200"), "{}", sent[0]);
        assert_eq!(ep.tcp_connections_in_use(t0), HashSet::from([7, 9]));

        // Once the binding has expired, its connection is no longer needed.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(ep.tcp_connections_in_use(later), HashSet::from([7]));
    }
}
