//! SIP signalling: message parsing, SDP offer/answer, transactions, dialogs and transport.
pub mod dialog;
pub mod endpoint;
pub mod message;
pub mod sdp;
pub mod transaction;
pub mod transport;
