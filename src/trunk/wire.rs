//! A trunk's REGISTER on the wire: the request's text, and what the registration client reads
//! of the registrar's final response.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::register::{RegisterSpec, Reply, Send};
use crate::sip::message::Response;

/// What the registration client reads of a final response.
pub fn reply_of(resp: &Response) -> Reply {
    let raw = &resp.raw;
    let strings =
        |name: &str| -> Vec<String> { raw.header_values(name).map(str::to_string).collect() };
    let number = |name: &str| -> Option<u32> {
        raw.header_str(name)
            .and_then(|v| v.split([';', '(']).next())
            .and_then(|v| v.trim().parse().ok())
    };
    Reply {
        status: resp.status,
        cseq: resp.cseq,
        www_authenticate: strings("WWW-Authenticate"),
        proxy_authenticate: strings("Proxy-Authenticate"),
        contacts: raw.header_list("Contact"),
        expires: number("Expires"),
        min_expires: number("Min-Expires"),
        retry_after: number("Retry-After"),
        service_route: raw.header_list("Service-Route"),
        path: raw.header_list("Path"),
    }
}

/// The REGISTER text: stable Call-ID and From tag, the client's CSeq, Expires and answer.
pub(super) fn render_register(
    spec: &RegisterSpec,
    via: SocketAddr,
    call_id: &str,
    from_tag: &str,
    branch: &str,
    send: &Send,
) -> Vec<u8> {
    let mut t = String::with_capacity(640);
    let _ = write!(t, "REGISTER {} SIP/2.0\r\n", spec.request_uri);
    let _ = write!(t, "Via: SIP/2.0/UDP {};branch={branch};rport\r\n", via);
    let _ = write!(t, "Max-Forwards: 70\r\n");
    let _ = write!(t, "From: <{}>;tag={}\r\n", spec.aor, from_tag);
    let _ = write!(t, "To: <{}>\r\n", spec.aor);
    let _ = write!(t, "Call-ID: {}\r\n", call_id);
    let _ = write!(t, "CSeq: {} REGISTER\r\n", send.cseq);
    let _ = write!(t, "Contact: <{}>\r\n", spec.contact);
    let _ = write!(t, "Expires: {}\r\n", send.expires);
    if let Some((name, value)) = &send.authorization {
        let _ = write!(t, "{name}: {value}\r\n");
    }
    let _ = write!(t, "User-Agent: ivr/{}\r\n", env!("CARGO_PKG_VERSION"));
    let _ = write!(t, "Content-Length: 0\r\n\r\n");
    t.into_bytes()
}
