//! What the endpoint hands its shell: bytes to transmit and events for call tasks (a new call,
//! its confirmation, offers, progress of the legs we dial, INFO, the end and why).

use std::net::SocketAddr;

use bytes::Bytes;

use crate::sip::message::{NameAddr, Transport};

/// Identifies one call (one INVITE dialog) between the endpoint and its call task.
pub type CallRef = u64;

#[derive(Debug, PartialEq)]
pub enum Output {
    Transmit {
        transport: Transport,
        to: SocketAddr,
        bytes: Bytes,
    },
    Event(CallRef, CallEvent),
}

/// What a new INVITE tells the call task.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingCall {
    pub call_id: String,
    pub from: NameAddr,
    pub to: NameAddr,
    pub request_uri: String,
    /// The SDP offer; empty for a late-offer INVITE (the answer then comes in the ACK).
    pub offer: Vec<u8>,
    pub source: SocketAddr,
    pub transport: Transport,
    /// Our address as the caller reached it (for Contact and SDP).
    pub local: SocketAddr,
    /// P-Asserted-Identity (RFC 3325), to be believed only from trusted proxies.
    pub asserted_identity: Option<NameAddr>,
    /// Set when a staff user placed this call and proved it with digest auth: a desk call-back.
    pub staff_user: Option<String>,
    /// The `[[trunks]]` entry the call came through (set by the signalling shell from the
    /// source address; see `crate::trunk::inbound`).
    pub trunk: Option<String>,
    /// The number dialled when the trunk told it (its DID); else the Request-URI/To user is.
    pub dialled: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    Incoming(Box<IncomingCall>),
    /// The caller ACKed our 2xx; `body` holds the SDP answer of a late-offer call.
    Confirmed {
        body: Vec<u8>,
    },
    /// An in-dialog offer (re-INVITE or UPDATE) to answer with `answer_reoffer`; empty for an
    /// offerless re-INVITE, which we answer with a fresh offer.
    ReOffer {
        offer: Vec<u8>,
    },
    /// A staff leg we dial: a provisional response (180 Ringing, 183 with early media).
    Progress {
        status: u16,
        body: Vec<u8>,
    },
    /// A staff leg we dial answered (2xx, already ACKed); `body` is its SDP answer.
    Answered {
        body: Vec<u8>,
    },
    /// SIP INFO inside the dialog (DTMF relay and the like).
    Info {
        content_type: Option<String>,
        body: Vec<u8>,
    },
    /// The call is over; no more events follow.
    Ended {
        reason: EndReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The caller sent BYE.
    RemoteBye,
    /// We sent BYE and it completed (or timed out).
    LocalBye,
    /// The caller sent CANCEL before we answered.
    Cancelled,
    /// No ACK for our 2xx within 64*T1: we sent BYE (§13.3.1.4).
    NoAck,
    /// We answered with this final non-2xx status.
    Rejected(u16),
    /// A leg we dialled got this final non-2xx status (486 busy, 603 declined, 487 after our
    /// CANCEL...).
    Declined(u16),
    /// A leg we dialled never answered our INVITE (timer B) or our CANCEL.
    NoResponse,
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::RemoteBye => write!(f, "caller hung up"),
            EndReason::LocalBye => write!(f, "we hung up"),
            EndReason::Cancelled => write!(f, "caller cancelled"),
            EndReason::NoAck => write!(f, "no ACK for 200 OK"),
            EndReason::Rejected(s) => write!(f, "rejected with {s}"),
            EndReason::Declined(s) => write!(f, "declined with {s}"),
            EndReason::NoResponse => write!(f, "no response"),
        }
    }
}
