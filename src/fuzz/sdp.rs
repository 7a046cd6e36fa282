//! `sdp`: an SDP body through the parser and every offer/answer step that consumes it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::signature::Signature;
use crate::sip::sdp::{self, AudioEncoding, Negotiated};

const LOCAL_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
const LOCAL_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10));
const LOCAL_PORT: u16 = 4000;

/// Parses `data` as an offer (from an INVITE, a re-INVITE, an ACK or a staff phone's answer),
/// negotiates it as a new call and as a re-offer keeping either codec, and writes the answers.
///
/// Checked: every answer we write parses, and negotiating it as if it were an offer finds the
/// stream, codec and telephone-event we chose, at our address, with the mirrored direction. A
/// far end reads our answer with the same rules, so a broken answer is a failed call.
pub fn sdp(data: &[u8]) -> u64 {
    let mut sig = Signature::new("sdp");
    let offer = match sdp::parse(data) {
        Ok(o) => o,
        Err(e) => {
            sig.kind(&e);
            let _ = e.to_string();
            return sig.finish();
        }
    };
    sig.add((offer.media.len().min(4), offer.direction.is_some()));
    match sdp::negotiate(&offer) {
        Ok(neg) => {
            sig.add((
                neg.encoding.name(),
                neg.telephone_event.is_some(),
                neg.direction.as_str(),
            ));
            check_answer(&offer, &neg, LOCAL_V4);
            check_answer(&offer, &neg, LOCAL_V6);
        }
        Err(e) => {
            sig.kind(&e);
            // The reason goes into a Warning header.
            let _ = e.to_string();
        }
    }
    for keep in [AudioEncoding::Pcmu, AudioEncoding::Pcma] {
        match sdp::renegotiate(&offer, keep) {
            Ok(neg) => {
                assert_eq!(neg.encoding, keep, "a re-offer changed the codec");
                check_answer(&offer, &neg, LOCAL_V4);
            }
            Err(e) => sig.kind(&e),
        }
    }
    sig.finish()
}

fn check_answer(offer: &sdp::SessionDescription, neg: &Negotiated, local: IpAddr) {
    let answer = sdp::answer(offer, neg, local, LOCAL_PORT, 1, 2);
    let parsed = match sdp::parse(answer.as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("our answer does not parse ({e}):\n{answer}"),
    };
    assert_eq!(
        parsed.media.len(),
        offer.media.len(),
        "answer m-lines:\n{answer}"
    );
    let back = match sdp::negotiate(&parsed) {
        Ok(b) => b,
        Err(e) => panic!("our answer does not negotiate ({e}):\n{answer}"),
    };
    let expected = Negotiated {
        remote_rtp: SocketAddr::new(local, LOCAL_PORT),
        direction: neg.direction.answer(),
        ptime: back.ptime,
        ..neg.clone()
    };
    assert_eq!(
        back, expected,
        "our answer reads back differently:\n{answer}"
    );
}
