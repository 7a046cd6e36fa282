//! SIP signalling: message parsing, SDP offer/answer, transactions, dialogs and transport.
pub mod auth;
pub mod dialog;
pub mod endpoint;
pub mod message;
pub mod registrar;
pub mod sdp;
pub mod transaction;
pub mod transport;
