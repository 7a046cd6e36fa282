//! Parsing, framing and response building against hand-written messages.

use std::net::SocketAddr;

use super::*;

const INVITE: &str = "INVITE sip:ivr@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK-abc;rport\r\n\
Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-older\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:+15551230001@client.example>;tag=a1\r\n\
To: <sip:ivr@127.0.0.1>\r\n\
Call-ID: call-1@10.0.0.5\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@10.0.0.5:5070>\r\n\
Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

fn src() -> SocketAddr {
    "192.0.2.7:40000".parse().unwrap()
}

#[test]
fn parses_a_plain_invite() {
    let Incoming::Request(r) = parse(INVITE.as_bytes()).unwrap() else {
        panic!("not a request")
    };
    assert_eq!(r.method, rsip::Method::Invite);
    assert_eq!(r.call_id, "call-1@10.0.0.5");
    assert_eq!(r.cseq, 1);
    assert_eq!(r.from.tag.as_deref(), Some("a1"));
    assert_eq!(r.from.user(), "+15551230001");
    assert_eq!(r.to.tag, None);
    assert_eq!(r.via.rfc3261_branch(), Some("z9hG4bK-abc"));
    assert_eq!(r.vias.len(), 2);
    assert_eq!(r.record_route.len(), 2);
    assert_eq!(r.contact.unwrap().uri, "sip:alice@10.0.0.5:5070");
    assert_eq!(r.body, b"v=0\n");
}

#[test]
fn compact_and_folded_headers_are_understood() {
    let msg = "OPTIONS sip:ivr@h SIP/2.0\r\n\
v: SIP/2.0/UDP h2;branch=z9hG4bK1\r\n\
f: <sip:a@h2>\r\n ;tag=x\r\n\
t: <sip:ivr@h>\r\n\
i: compact-1\r\n\
CSeq: 7 OPTIONS\r\n\
l: 0\r\n\r\n";
    let Incoming::Request(r) = parse(msg.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(r.call_id, "compact-1");
    assert_eq!(r.from.tag.as_deref(), Some("x"));
    assert_eq!(r.via.port, None);
}

#[test]
fn response_copies_vias_and_stamps_rport() {
    let Incoming::Request(r) = parse(INVITE.as_bytes()).unwrap() else {
        panic!()
    };
    let bytes = ResponseBuilder::new(&r.raw, src(), 180, Some("t1")).build();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("SIP/2.0 180 Ringing\r\n"));
    assert!(text.contains(
        "Via: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK-abc;received=192.0.2.7;rport=40000\r\n"
    ));
    assert!(text.contains("Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-older\r\n"));
    assert!(text.contains("To: <sip:ivr@127.0.0.1>;tag=t1\r\n"));
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    assert_eq!(r.via.response_target(src()), src());
}

#[test]
fn response_target_without_rport_uses_sent_by_port() {
    let v = Via::parse("SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKx").unwrap();
    assert_eq!(
        v.response_target(src()),
        "192.0.2.7:5070".parse::<SocketAddr>().unwrap()
    );
    assert!(v.stamped(src()).ends_with(";received=192.0.2.7"));
}

#[test]
fn truncated_message_gets_400() {
    let cut = &INVITE[..INVITE.find("Contact").unwrap()];
    match parse(cut.as_bytes()) {
        Err(Rejection::Respond { status, reason, .. }) => {
            assert_eq!(status, 400);
            assert!(reason.contains("truncated"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_call_id_gets_400() {
    let msg = INVITE.replace("Call-ID: call-1@10.0.0.5\r\n", "");
    match parse(msg.as_bytes()) {
        Err(Rejection::Respond { status, reason, .. }) => {
            assert_eq!(status, 400);
            assert_eq!(reason, "missing Call-ID header");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn huge_content_length_gets_400() {
    let msg = INVITE.replace("Content-Length: 4", "Content-Length: 999999");
    match parse(msg.as_bytes()) {
        Err(Rejection::Respond { status, reason, .. }) => {
            assert_eq!(status, 400);
            assert!(reason.contains("999999"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_is_dropped() {
    assert!(matches!(
        parse(b"\x00\x01\x02hello world\r\n\r\n"),
        Err(Rejection::Drop(ParseError::NoStartLine))
    ));
    assert!(matches!(parse(b""), Err(Rejection::Drop(_))));
}

#[test]
fn non_utf8_header_gets_400() {
    let mut msg = INVITE.as_bytes().to_vec();
    let at = INVITE.find("Max-Forwards").unwrap();
    let insert = b"Subject: caf\xe9 \xff\r\n";
    msg.splice(at..at, insert.iter().copied());
    match parse(&msg) {
        Err(Rejection::Respond { status, reason, .. }) => {
            assert_eq!(status, 400);
            assert!(reason.contains("Subject"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_method_gets_501() {
    let msg = "FOOBAR sip:ivr@h SIP/2.0\r\nVia: SIP/2.0/UDP h2;branch=z9hG4bK1\r\n\
From: <sip:a@h2>;tag=x\r\nTo: <sip:ivr@h>\r\nCall-ID: u1\r\nCSeq: 1 FOOBAR\r\n\
Content-Length: 0\r\n\r\n";
    match parse(msg.as_bytes()) {
        Err(Rejection::Respond { status, .. }) => assert_eq!(status, 501),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_version_gets_505() {
    let msg = INVITE.replace(
        "sip:ivr@127.0.0.1:5060 SIP/2.0",
        "sip:ivr@127.0.0.1:5060 SIP/7.0",
    );
    match parse(msg.as_bytes()) {
        Err(Rejection::Respond { status, .. }) => assert_eq!(status, 505),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stream_framing() {
    let two = format!("{INVITE}{INVITE}");
    let first = INVITE.len();
    assert_eq!(frame_stream(two.as_bytes()).unwrap(), Frame::Message(first));
    assert_eq!(
        frame_stream(&INVITE.as_bytes()[..first - 2]).unwrap(),
        Frame::Incomplete
    );
    assert_eq!(frame_stream(b"\r\n\r\nINV").unwrap(), Frame::KeepAlive(4));
    let huge = INVITE.replace("Content-Length: 4", "Content-Length: 99999999");
    assert!(matches!(
        frame_stream(huge.as_bytes()),
        Err(ParseError::TooLarge(_))
    ));
    let none = INVITE.replace("Content-Length: 4\r\n", "");
    assert!(frame_stream(none.as_bytes()).is_err());
}

#[test]
fn parses_responses() {
    let msg = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKour\r\n\
From: <sip:ivr@h>;tag=ours\r\nTo: <sip:a@h2>;tag=theirs\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\
Content-Length: 0\r\n\r\n";
    let Incoming::Response(r) = parse(msg.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(r.status, 200);
    assert_eq!(r.cseq_method, "BYE");
    assert_eq!(r.via.branch.as_deref(), Some("z9hG4bKour"));
    assert_eq!(r.to_tag.as_deref(), Some("theirs"));
}

#[test]
fn comma_lists_respect_quotes_and_brackets() {
    let v = split_comma_list("\"Doe, John\" <sip:a@b>, <sip:c@d;x=1,2>");
    assert_eq!(v, vec!["\"Doe, John\" <sip:a@b>", "<sip:c@d;x=1,2>"]);
}

#[test]
fn p_asserted_identity_is_read() {
    let msg = INVITE.replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nP-Asserted-Identity: \"Acme\" <sip:+15551230001@trunk>, <tel:+15551230001>\r\n",
    );
    let Incoming::Request(r) = parse(msg.as_bytes()).unwrap() else {
        panic!()
    };
    let pai = r.asserted_identity().unwrap();
    assert_eq!(pai.uri, "sip:+15551230001@trunk");
    assert_eq!(pai.user(), "+15551230001");
    let Incoming::Request(plain) = parse(INVITE.as_bytes()).unwrap() else {
        panic!()
    };
    assert!(plain.asserted_identity().is_none());
    let tel = NameAddr::parse("<tel:+15551230001;phone-context=x>", "To").unwrap();
    assert_eq!(tel.user(), "+15551230001");
}

/// The status a request is refused with, or `None` when it parses.
fn refusal(msg: &str) -> Option<u16> {
    match parse(msg.as_bytes()) {
        Ok(_) => None,
        Err(Rejection::Respond { status, .. }) => Some(status),
        Err(Rejection::Drop(e)) => panic!("dropped instead of answered: {e}"),
    }
}

#[test]
fn a_request_uri_of_another_scheme_gets_416() {
    // RFC 4475 §3.3.1 (unksm2) and a mailto: one.
    for uri in [
        "mailto:alice@example.com",
        "isbn:2983792873",
        "tel:+15550100",
    ] {
        let msg = INVITE.replacen("sip:ivr@127.0.0.1:5060", uri, 1);
        assert_eq!(refusal(&msg), Some(416), "{uri}");
    }
    let sips = INVITE.replacen("sip:ivr@", "sips:ivr@", 1);
    assert_eq!(refusal(&sips), None);
    let upper = INVITE.replacen("sip:ivr@", "SIP:ivr@", 1);
    assert_eq!(refusal(&upper), None);
}

#[test]
fn content_length_headers_that_disagree_get_400() {
    // RFC 4475 §3.1.2.11 (mcl01): the body's end is ambiguous.
    let msg = INVITE.replace("Content-Length: 4\r\n", "Content-Length: 4\r\nl: 2\r\n");
    assert_eq!(refusal(&msg), Some(400));
    let same = INVITE.replace("Content-Length: 4\r\n", "Content-Length: 4\r\nl: 4\r\n");
    assert_eq!(refusal(&same), None);
    // And on a stream, where framing depends on it.
    let head = "OPTIONS sip:ivr@h SIP/2.0\r\nContent-Length: 0\r\nContent-Length: 10\r\n\r\n";
    assert_eq!(
        frame_stream(head.as_bytes()),
        Err(ParseError::ConflictingContentLength)
    );
}

#[test]
fn an_unterminated_quoted_display_name_gets_400() {
    // RFC 4475 §3.1.2.6 (quotbal).
    let msg = INVITE.replace("From: \"Alice\" <sip:", "From: \"Alice <sip:");
    assert_eq!(refusal(&msg), Some(400));
    // A closed quote may hold '<', ';' and escaped quotes.
    let msg = INVITE.replace("From: \"Alice\" <sip:", "From: \"A \\\"<b>\\\"; c\" <sip:");
    let Incoming::Request(r) = parse(msg.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(r.from.uri, "sip:+15551230001@client.example");
    assert_eq!(r.from.tag.as_deref(), Some("a1"));
}

// Found by the fuzzer (`fuzz/corpus/sip_message/regress_*`).

#[test]
fn a_content_length_that_wraps_the_frame_size_is_too_large() {
    // end + 4 + length wrapped to 0: the TCP reader was handed `Message(0)` for ever.
    let head = "OPTIONS sip:ivr@h SIP/2.0\r\nContent-Length: ";
    let end = head.len() + 20; // the 20-digit length below, then the blank line at `end`
    let length = usize::MAX - (end + 4) + 1;
    let msg = format!("{head}{length}\r\n\r\n");
    assert_eq!(msg.find("\r\n\r\n"), Some(end));
    assert!(matches!(
        frame_stream(msg.as_bytes()),
        Err(ParseError::TooLarge(_))
    ));
}

#[test]
fn an_empty_continuation_line_adds_nothing_to_the_value() {
    let msg = "OPTIONS sip:ivr@h SIP/2.0\r\n\
Via: SIP/2.0/UDP h2;branch=z9hG4bK1\r\n\
From: <sip:a@h2>;tag=x\r\n\
To: <sip:ivr@h>\r\n\
Call-ID: folded-1\r\n\t\r\n\
CSeq: 7 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";
    let Incoming::Request(r) = parse(msg.as_bytes()).unwrap() else {
        panic!("not a request")
    };
    // A trailing blank would be echoed, and the peer (which trims) would see another Call-ID.
    assert_eq!(r.call_id, "folded-1");
}

#[test]
fn an_ipv6_request_uri_is_accepted() {
    // Phones on IPv6 address us (and we address them, in BYE and re-INVITE) this way.
    let msg = "BYE sip:caller@[::1]:5080;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP [::1]:5060;branch=z9hG4bK1\r\n\
From: <sip:ivr@[::1]:5060>;tag=x\r\n\
To: <sip:caller@[::1]:5080>;tag=y\r\n\
Call-ID: v6\r\n\
CSeq: 2 BYE\r\n\
Content-Length: 0\r\n\r\n";
    let Incoming::Request(r) = parse(msg.as_bytes()).unwrap() else {
        panic!("not a request")
    };
    assert_eq!(r.uri, "sip:caller@[::1]:5080;transport=udp");
    for bad in [
        "sip:caller@[::1",
        "sip:caller@[::g]:5080",
        "sip:caller@[::1]x",
    ] {
        let msg = msg.replace("sip:caller@[::1]:5080;transport=udp", bad);
        assert_eq!(refusal(&msg), Some(400), "{bad}");
    }
}

#[test]
fn an_empty_contact_gets_400() {
    for contact in ["", ",", " , ,"] {
        let msg = INVITE.replace(
            "Contact: <sip:alice@10.0.0.5:5070>",
            &format!("Contact: {contact}"),
        );
        assert_eq!(refusal(&msg), Some(400), "Contact: {contact:?}");
    }
}

#[test]
fn a_dialog_contact_we_could_not_send_to_gets_400() {
    // Found by the fuzzer: a re-INVITE's Contact `<;sip:...>` became the target of our BYE,
    // which no parser (ours included) accepts; a tel: one would fare no better.
    for contact in [
        "<;sip:alice@10.0.0.5>",
        "<tel:+15551230001>",
        "<sip:a b@10.0.0.5>",
    ] {
        let msg = INVITE.replace("<sip:alice@10.0.0.5:5070>", contact);
        assert_eq!(refusal(&msg), Some(400), "Contact: {contact}");
    }
    // Outside a dialog any URI will do (nothing is ever sent to it).
    let options = INVITE
        .replace("INVITE", "OPTIONS")
        .replace("<sip:alice@10.0.0.5:5070>", "<tel:+15551230001>");
    assert_eq!(refusal(&options), None);
    let ipv6 = INVITE.replace("alice@10.0.0.5:5070", "alice@[2001:db8::5]:5070");
    assert_eq!(refusal(&ipv6), None);
    // Without a Contact the From URI is the target (fuzzer: `<sip:caller@127.0.0.2:\5062>`).
    let no_contact = INVITE.replace("Contact: <sip:alice@10.0.0.5:5070>\r\n", "");
    assert_eq!(refusal(&no_contact), None);
    let bad_from = no_contact.replace("sip:+15551230001@client.example", "sip:a@h:\\5062");
    assert_eq!(refusal(&bad_from), Some(400));
}

#[test]
fn response_contacts_we_could_not_send_to_are_ignored() {
    let resp = "SIP/2.0 302 Moved\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
From: <sip:ivr@127.0.0.1>;tag=a\r\nTo: <sip:alice@h>;tag=b\r\n\
Call-ID: c\r\nCSeq: 1 INVITE\r\n\
Contact: <tel:+15551230001>, <;sip:x@h>, <sip:bob@10.0.0.7>\r\n\
Content-Length: 0\r\n\r\n";
    let Ok(Incoming::Response(r)) = parse(resp.as_bytes()) else {
        panic!("not a response")
    };
    let uris: Vec<&str> = r.contacts.iter().map(|c| c.uri.as_str()).collect();
    assert_eq!(uris, ["sip:bob@10.0.0.7"]);
}

#[test]
fn a_record_route_we_could_not_send_to_is_refused() {
    // Found by the fuzzer: `<.0.1:5060>` in a 2xx became the request line of our ACK.
    for rr in [
        "<.0.1:5060>",
        "sip:p1.example;lr",
        "<tel:+1555>",
        "<sip:p1;lr>, <>",
    ] {
        let msg = INVITE.replace("<sip:p1.example;lr>, <sip:p2.example;lr>", rr);
        assert_eq!(refusal(&msg), Some(400), "Record-Route: {rr}");
        let resp = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
From: <sip:ivr@127.0.0.1>;tag=a\r\nTo: <sip:alice@h>;tag=b\r\nCall-ID: c\r\n\
CSeq: 1 INVITE\r\nRecord-Route: {rr}\r\nContent-Length: 0\r\n\r\n"
        );
        assert!(
            matches!(parse(resp.as_bytes()), Err(Rejection::Drop(_))),
            "response with Record-Route: {rr}"
        );
    }
    let v6 = INVITE.replace("<sip:p2.example;lr>", "<sip:[2001:db8::1]:5070;lr>");
    assert_eq!(refusal(&v6), None);
}
